//! Fuzz C2SP tlog-proof `Receipt::parse`: never panics; parse∘to_text identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::receipt::Receipt;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Receipt::parse(data) {
        assert_eq!(r.to_text().as_bytes(), data, "parse∘to_text identity");
    }
});
