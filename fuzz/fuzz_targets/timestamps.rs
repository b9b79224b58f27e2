//! nShift, Norce and Brightpearl timestamps: any text parses or is refused without a panic,
//! and what parses is written back unchanged and parses again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use models_runtime::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(timestamp) = Timestamp::parse(text) {
        let written = timestamp.to_string();
        assert_eq!(written, text, "a timestamp is written back as it came");
        let again = Timestamp::parse(&written).expect("what parsed once parses again");
        assert_eq!(again, timestamp);
        // And through serde, as the models read it.
        let json = serde_json::to_string(&timestamp).expect("serializes");
        let back: Timestamp = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, timestamp);
    }
});
