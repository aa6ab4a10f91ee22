//! Fuzz conditional funding's decoders and tally (SPEC R-PLEDGE-8, R-FUND-1,
//! R-FUND-6, R-FUND-7). The first byte picks what the rest is:
//!
//! - `0`: one `Terms`: never panics; decode∘encode identity.
//! - `1`: a sequence of terms, fed to a `FundingTally` (menu 10, 25, 60;
//!   thresholds up to 64), with every fourth one withdrawn again: hostile
//!   amounts and thresholds are refused without change, and the incremental
//!   joint tally equals `recompute_joint` of what was accepted.
//! - `2`: a binary `FundingSnapshot`: decode∘encode identity.
//! - `3`: a `FundingStatement` body: parse∘to_note_body identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::codec::Reader;
use pledge_protocol::funding::{FundingSnapshot, FundingStatement, FundingTally, recompute_joint};
use pledge_protocol::pledge::Terms;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(t) = Terms::decode(rest) {
                assert_eq!(t.encode(), rest, "decode∘encode identity");
            }
        }
        1 => {
            let mut tally = FundingTally::new(64, &[10, 25, 60]).expect("valid menu");
            let mut live: Vec<Terms> = Vec::new();
            let mut r = Reader::new(rest);
            let mut i = 0usize;
            while let Ok(t) = Terms::decode_from(&mut r) {
                let before = tally.live();
                match tally.add(&t) {
                    Ok(()) => live.push(t),
                    Err(_) => assert_eq!(tally.live(), before, "a refused add changes nothing"),
                }
                i += 1;
                if i % 4 == 0 && !live.is_empty() {
                    let gone = live.swap_remove(i % live.len());
                    tally.remove(&gone).expect("a live pledge can be removed");
                }
            }
            let inc = tally.joint().expect("joint tally");
            assert_eq!(inc, recompute_joint(&live).expect("recompute"), "incremental = scratch");
            assert!(inc.cost <= inc.funds);
        }
        2 => {
            if let Ok(s) = FundingSnapshot::from_bytes(rest) {
                assert_eq!(s.to_bytes(), rest, "decode∘encode identity");
            }
        }
        _ => {
            if let Ok(s) = std::str::from_utf8(rest)
                && let Ok(st) = FundingStatement::parse_note_body(s)
            {
                assert_eq!(st.to_note_body(), s, "parse∘to_note_body identity");
            }
        }
    }
});
