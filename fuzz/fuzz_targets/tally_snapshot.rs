//! Fuzz `TallySnapshot::from_bytes`: never panics; identity with `to_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::tally::TallySnapshot;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = TallySnapshot::from_bytes(data) {
        assert_eq!(t.to_bytes(), data, "from_bytes∘to_bytes identity");
    }
});
