//! Fuzz the witness side: `AddCheckpointRequest::parse` (identity with
//! `to_text`), the cosignature-lines answer and the 409 size body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::cosignature::{
    AddCheckpointRequest, parse_cosignature_lines, parse_size_body,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = AddCheckpointRequest::parse(data) {
        assert_eq!(r.to_text().as_bytes(), data, "parse∘to_text identity");
    }
    if let Ok(lines) = parse_cosignature_lines(data) {
        let text: String = lines.iter().map(|l| l.to_line()).collect();
        assert_eq!(text.as_bytes(), data, "cosignature lines identity");
    }
    if let Ok(n) = parse_size_body(data) {
        assert_eq!(format!("{n}\n").as_bytes(), data, "size body identity");
    }
});
