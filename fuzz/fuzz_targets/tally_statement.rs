//! Fuzz `TallyStatement::parse_note_body`: never panics; identity with
//! `to_note_body` (SPEC R-TALLY-8: exactly one text per statement).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::tally::TallyStatement;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(t) = TallyStatement::parse_note_body(s)
    {
        assert_eq!(t.to_note_body(), s, "parse∘to_note_body identity");
    }
});
