//! Fuzz `Entry::decode`: never panics, and whatever decodes re-encodes to the
//! same bytes (one encoding per value, SPEC R-ENTRY-1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::entry::Entry;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::decode(data) {
        let again = e.encode().expect("a decoded entry re-encodes");
        assert_eq!(again, data, "decode∘encode identity");
        assert_eq!(Entry::decode(&again).expect("re-decodes"), e);
    }
});
