//! Fuzz sealed campaigns' decoders and verifiers (SPEC R-SEAL-7, R-SEAL-13,
//! R-SEAL-21, R-SEAL-23). The first byte picks what the rest is:
//!
//! - `0`: one `SealedTerms`: never panics; decode∘encode identity; terms
//!   of at most 4 buckets are verified, batched and unbatched, under the
//!   context and key of `sealed_kat.json`'s `b4_bucket2`: the two verdicts
//!   agree.
//! - `1`: `DecryptionShare (96) ‖ Ciphertext (64)`: decode∘encode identity
//!   of both, then the share's DLEQ proof is checked against trustee 1 of
//!   the vectors' reveal without panicking.
//! - `2`: a `JointPublicKey` or a trustee's public share: never panics, and
//!   what decodes re-encodes to the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::codec::Reader;
use pledge_protocol::sealed::{
    Ciphertext, DecryptionShare, JointPublicKey, RevealContext, SealContext, SealedTerms,
    TrusteePublicShare,
};

fn h32(s: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    v.try_into().expect("32 bytes")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(t) = SealedTerms::decode(rest) else {
                return;
            };
            assert_eq!(t.encode(), rest, "decode∘encode identity");
            if t.bucket_count() <= 4 {
                let key = JointPublicKey::from_bytes(h32(
                    "0277b75aace33475a8c64009e7dcf14984c8fd9de9f764bb0b11e3b9c21ae03a",
                ))
                .expect("the vectors' key");
                let ctx = SealContext {
                    campaign: h32(
                        "e5dbf644c273391d4abaf3fe16c022abb23a58395c94354701082b901b58bcbd",
                    ),
                    nullifier: h32(
                        "ab64928f5aae66c1de8ea6f7bdb0a9b1677bea46fa6f8e69cebcbddaa5ca8dac",
                    ),
                    seq: 0,
                    pledge_key: h32(
                        "87df9abeaeb7de91569d1354e9ef808186e93dd81c4a3b00c97d97b2205326b0",
                    ),
                };
                let batched = t.verify(&ctx, &key);
                let single = t.verify_unbatched(&ctx, &key);
                assert_eq!(batched.is_ok(), single.is_ok(), "batch and unbatched agree");
            }
        }
        1 => {
            let mut r = Reader::new(rest);
            let (Ok(share), Ok(ct)) = (
                DecryptionShare::decode_from(&mut r),
                Ciphertext::decode_from(&mut r),
            ) else {
                return;
            };
            if r.remaining() != 0 {
                return;
            }
            assert_eq!(share.encode(), rest[..96], "share decode∘encode identity");
            assert_eq!(
                ct.to_bytes(),
                rest[96..],
                "ciphertext decode∘encode identity"
            );
            let key = JointPublicKey::from_bytes(h32(
                "74defcf50ba774ed1fb17e2dc4a8f678d7f0a6232ca9ca0cef60c30069986138",
            ))
            .expect("the vectors' key");
            let public = TrusteePublicShare::from_bytes(
                1,
                h32("dc11381e30074ebfabed456708893a809c194f3a60140beebce60651f1ea112c"),
            )
            .expect("trustee 1");
            let rc = RevealContext {
                campaign: h32("b9f3345da3c32ecfe40599b06195c273e7b143bcad29ee7df9358e58b81d4ffa"),
                size: 1234,
            };
            for bucket in 0..4 {
                let _ = share.verify(&rc, &key, &public, bucket, &ct);
            }
        }
        _ => {
            let Ok(bytes) = <[u8; 32]>::try_from(rest) else {
                return;
            };
            if let Ok(k) = JointPublicKey::from_bytes(bytes) {
                assert_eq!(k.to_bytes(), bytes);
            }
            if let Ok(p) = TrusteePublicShare::from_bytes(1, bytes) {
                assert_eq!(p.to_bytes(), bytes);
            }
        }
    }
});
