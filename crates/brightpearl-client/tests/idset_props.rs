//! Properties of ID-set compression: any ids compress to canonical text that parses back to
//! the same set, and chunks keep every id once within both limits.

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
