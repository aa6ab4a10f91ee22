//! Fuzz `IssuerPublicKey::from_spki` and the client's stored blinding state:
//! never panic; a key that parses is stored in its one canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::token::{BlindingState, IssuerPublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = IssuerPublicKey::from_spki(data) {
        assert_eq!(&k.as_spki()[..], data, "from_spki∘as_spki identity");
    }
    if let Ok(s) = BlindingState::from_bytes(data) {
        assert_eq!(
            s.to_secret_bytes().expose(),
            data,
            "blinding state identity"
        );
    }
});
