//! Fuzz `Checkpoint::from_body`: never panics; from_body∘to_body identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(c) = Checkpoint::from_body(s)
    {
        assert_eq!(c.to_body(), s, "from_body∘to_body identity");
    }
});
