//! ID-set compression: any ids compress to canonical text that parses back to the same set,
//! chunks keep every id once within both limits (properties), and examples of both.

use std::collections::BTreeSet;

use brightpearl_client::IdSet;
use proptest::prelude::*;

/// Ids clustered enough to make ranges, sparse enough to make gaps.
fn ids() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(
        prop_oneof![0u64..50, 1_000u64..1_100, 1u64..u64::MAX],
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compression_round_trips(ids in ids()) {
        let set = IdSet::from_ids(ids.iter().copied());
        let expected: BTreeSet<u64> = ids.iter().copied().filter(|id| *id > 0).collect();
        prop_assert_eq!(set.iter().collect::<BTreeSet<_>>(), expected.clone());
        prop_assert_eq!(set.len(), expected.len() as u64);
        let text = set.to_string();
        let parsed: IdSet = text.parse().unwrap();
        prop_assert_eq!(&parsed, &set);
        // Ranges are canonical: ascending, apart by at least one missing id.
        for pair in set.ranges().windows(2) {
            prop_assert!(pair[0].1 + 1 < pair[1].0, "{:?}", pair);
        }
    }

    #[test]
    fn text_in_any_order_with_overlaps_means_the_same_set(
        ranges in proptest::collection::vec((1u64..500, 0u64..20), 1..30),
    ) {
        let text: Vec<String> = ranges
            .iter()
            .map(|(lo, width)| if *width == 0 { lo.to_string() } else { format!("{lo}-{}", lo + width) })
            .collect();
        let parsed: IdSet = text.join(" , ").parse().unwrap();
        let expected = IdSet::from_ids(ranges.iter().flat_map(|(lo, width)| *lo..=lo + width));
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn chunks_keep_every_id_once_within_the_limits(
        ids in ids(),
        max_ids in 1usize..250,
        max_chars in 41usize..400,
    ) {
        let set = IdSet::from_ids(ids);
        let chunks = set.chunks(max_ids, max_chars);
        let mut seen = Vec::new();
        for chunk in &chunks {
            prop_assert!(!chunk.is_empty());
            prop_assert!(chunk.len() <= max_ids as u64);
            prop_assert!(chunk.to_string().len() <= max_chars, "{}", chunk);
            seen.extend(chunk.iter());
        }
        prop_assert_eq!(seen, set.iter().collect::<Vec<_>>());
    }
}

#[test]
fn compresses_and_chunks() {
    assert_eq!(IdSet::from_ids([]).to_string(), "");
    assert_eq!(
        IdSet::from_ids([10, 1, 3, 2, 12, 11, 0]).to_string(),
        "1-3,10-12"
    );
    let scattered = IdSet::from_ids((1..=300).map(|i| i * 2));
    let chunks = scattered.chunks(200, 100_000);
    assert_eq!(
        chunks.iter().map(IdSet::len).collect::<Vec<_>>(),
        [200, 100]
    );
    for chunk in scattered.chunks(1000, 50) {
        assert!(chunk.to_string().len() <= 50, "{chunk}");
    }
    let total: u64 = scattered.chunks(1000, 50).iter().map(IdSet::len).sum();
    assert_eq!(total, 300);
}

#[test]
fn parses_text_into_the_canonical_form() {
    let parse = |text: &str| {
        text.parse::<IdSet>()
            .map(|s| s.to_string())
            .map_err(|e| e.to_string())
    };
    assert_eq!(parse(" 7, 3-5 ,1,2,5-6 ").unwrap(), "1-7");
    assert_eq!(parse("10-12,1,11").unwrap(), "1,10-12");
    assert_eq!(parse("").unwrap(), "");
    assert_eq!(
        "1-1000000000".parse::<IdSet>().unwrap().len(),
        1_000_000_000,
        "ranges are never expanded"
    );
    assert!(parse("5-1").unwrap_err().contains("`5-1`"));
    assert!(parse("0").unwrap_err().contains("`0`"));
    assert!(parse("1,,2").is_err());
    assert!(parse("a-3").unwrap_err().contains("`a`"));
    assert!(parse("*").is_err());
}
