//! Fuzz `SignedNote::parse` and `open_note`: never panic; a parsed note prints
//! back to exactly its input; opening with a fixed key never accepts a note
//! that the key did not sign (the fuzzer cannot forge Ed25519).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::note::{KeyName, NoteSigner, SignedNote, Verifier, open_note};

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = SignedNote::parse(data) {
        assert_eq!(n.to_text().as_bytes(), data, "parse∘to_text identity");
    }
    let name = KeyName::new("example.com/fuzz").expect("valid name");
    let signer = NoteSigner::from_seed(name, &[7; 32]);
    let v = signer.verifier();
    let verifiers: [&dyn Verifier; 1] = [&v];
    if let Ok(opened) = open_note(data, &verifiers) {
        // Only reachable with a real signature by the fixed seed, which the
        // seed corpus does not contain: the body must then re-verify.
        assert!(opened.is_verified_by(v.name(), v.key_id()));
    }
});
