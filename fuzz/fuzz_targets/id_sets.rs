//! Brightpearl ID sets (a webhook's `id`, our request paths): any text parses or is refused
//! without a panic or an expansion; what parses is written canonically and parses back to the
//! same set; chunks of small sets keep every id once, within their limits.
#![no_main]

use brightpearl_client::IdSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = text.parse::<IdSet>() else {
        return;
    };
    let written = set.to_string();
    let again: IdSet = written.parse().expect("the canonical text parses");
    assert_eq!(again, set);
    assert_eq!(again.to_string(), written);
    let _ = set.len();
    if set.len() <= 5_000 {
        let ids: Vec<u64> = set.iter().collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending, no duplicate");
        assert!(ids.iter().all(|id| set.contains(*id)));
        let chunks = set.chunks(100, 200);
        let mut seen = Vec::new();
        for chunk in &chunks {
            assert!(chunk.len() <= 100);
            assert!(chunk.to_string().len() <= 200);
            seen.extend(chunk.iter());
        }
        assert_eq!(seen, ids);
    }
});
