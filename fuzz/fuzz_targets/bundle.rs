//! Fuzz `decode_bundle`: the first byte picks the declared width (0 = a full
//! bundle of 256), the rest is the bundle. Never panics; identity with
//! `encode_bundle`; exactly `width` entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::tile::{BundleId, decode_bundle, encode_bundle};

fuzz_target!(|data: &[u8]| {
    let Some((&w, bytes)) = data.split_first() else {
        return;
    };
    let width = if w == 0 { 256 } else { u16::from(w) };
    let id = BundleId::new(0, width).expect("width in 1..=256");
    if let Ok(entries) = decode_bundle(bytes, &id) {
        assert_eq!(entries.len(), usize::from(width));
        assert_eq!(encode_bundle(&entries).expect("re-encodes"), bytes);
    }
});
