//! Fuzz `TileResource::parse` (tlog-tiles paths): never panics; identity with
//! `path` (one path per tile).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::tile::TileResource;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(t) = TileResource::parse(s)
    {
        assert_eq!(t.path(), s, "parse∘path identity");
    }
});
