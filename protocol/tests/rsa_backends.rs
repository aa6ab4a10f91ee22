//! Cross-test of the `fast-rsa` backends (OpenSSL blind signing, aws-lc
//! RSASSA-PSS verification) against the pure-Rust `blind-rsa-signatures` path:
//! byte-identical blind signatures, and the same accept/reject decision on valid
//! signatures and on every kind of bad one. Runs whenever the feature is on,
//! which includes `cargo test --workspace` (pledge-server enables it, and cargo
//! unifies features across the workspace members it builds).
#![cfg(feature = "fast-rsa")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;

use openssl::bn::{BigNum, BigNumContext};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::PledgeSigningKey;
use pledge_protocol::token::{self, IssuerPublicKey, IssuerSecretKey, Token, TokenError};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}")),
    )
    .unwrap()
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).unwrap();
    b
}

/// Three independent RSA-2048 issuer keys: the two published ones and a fresh one.
static KEYS: LazyLock<Vec<IssuerSecretKey>> = LazyLock::new(|| {
    vec![
        IssuerSecretKey::from_der(&hx(&load("tokens.json"), "issuer_sk_pkcs8")).unwrap(),
        IssuerSecretKey::from_der(&hx(&load("rfc9578.json")["vectors"][0], "sk_pkcs8")).unwrap(),
        IssuerSecretKey::generate().unwrap(),
    ]
});

/// `blind_sign` (OpenSSL with the feature) and `blind_sign_portable` (the crate)
/// agree byte for byte on many random blinded messages, under every key.
#[test]
fn blind_signatures_are_byte_identical_on_random_inputs() {
    for sk in KEYS.iter() {
        let pk = sk.public_key();
        for _ in 0..100 {
            let campaign = CampaignId(random());
            let pledge_pk = PledgeSigningKey::from_seed(&random()).public_key();
            let (blinded, state) = token::blind(pk, &campaign, &pledge_pk).unwrap();
            let fast = sk.blind_sign(blinded.as_bytes()).unwrap();
            let portable = sk.blind_sign_portable(blinded.as_bytes()).unwrap();
            assert_eq!(fast.as_bytes(), portable.as_bytes());
            // And the result finalises into a token both verifiers accept.
            let tok = token::finalize(pk, &state, fast.as_bytes(), &campaign, &pledge_pk).unwrap();
            tok.verify(pk, &campaign).unwrap();
            let msg = token::token_message(&campaign, &pledge_pk);
            pk.verify_message_portable(&tok.randomizer, &msg, &tok.signature)
                .unwrap();
        }
        // Raw random values below n (not produced by blinding) as well.
        let n = &pk.as_spki()[pk.as_spki().len() - 261..pk.as_spki().len() - 5];
        let mut tried = 0;
        while tried < 50 {
            let m: [u8; 256] = random();
            if m.as_slice() >= n {
                continue;
            }
            tried += 1;
            assert_eq!(
                sk.blind_sign(&m).unwrap().as_bytes(),
                sk.blind_sign_portable(&m).unwrap().as_bytes()
            );
        }
    }
}

/// The published 2048-bit answers: our own vector (tokens.json) and RFC 9578
/// Appendix A.2 vector 1, both deterministic, so only one answer is right.
#[test]
fn blind_signatures_match_published_vectors() {
    let file = load("tokens.json");
    for v in file["vectors"].as_array().unwrap() {
        let sig = KEYS[0].blind_sign(&hx(v, "blinded_msg")).unwrap();
        assert_eq!(sig.as_bytes().as_slice(), hx(v, "blind_sig"));
    }
    let v = &load("rfc9578.json")["vectors"][0];
    let request = hx(v, "token_request");
    let sig = KEYS[1].blind_sign(&request[3..]).unwrap();
    assert_eq!(sig.as_bytes().as_slice(), hx(v, "token_response"));
}

/// RFC 9474 Appendix A (4096-bit key, which our types refuse): the backend
/// libraries themselves compute the published blind signature (OpenSSL raw
/// private operation) and accept the published signature (aws-lc PSS-SHA384).
#[test]
fn backend_libraries_reproduce_rfc9474_appendix_a() {
    let file = load("rfc9474.json");
    let v = &file["vectors"][0];
    let bn = |f: &str| BigNum::from_slice(&hx(v, f)).unwrap();
    let (n, e, d, p, q) = (bn("n"), bn("e"), bn("d"), bn("p"), bn("q"));
    let mut ctx = BigNumContext::new().unwrap();
    let one = BigNum::from_u32(1).unwrap();
    let (mut p1, mut q1) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    p1.checked_sub(&p, &one).unwrap();
    q1.checked_sub(&q, &one).unwrap();
    let (mut dp, mut dq, mut qi) = (
        BigNum::new().unwrap(),
        BigNum::new().unwrap(),
        BigNum::new().unwrap(),
    );
    dp.nnmod(&d, &p1, &mut ctx).unwrap();
    dq.nnmod(&d, &q1, &mut ctx).unwrap();
    qi.mod_inverse(&q, &p, &mut ctx).unwrap();
    let pub_der = Rsa::from_public_components(n.to_owned().unwrap(), e.to_owned().unwrap())
        .unwrap()
        .public_key_to_der_pkcs1()
        .unwrap();
    let rsa = Rsa::from_private_components(n, e, d, p, q, dp, dq, qi).unwrap();
    assert!(rsa.check_key().unwrap());

    let mut out = vec![0u8; rsa.size() as usize];
    let len = rsa
        .private_encrypt(&hx(v, "blinded_msg"), &mut out, Padding::NONE)
        .unwrap();
    assert_eq!(&out[..len], hx(v, "blind_sig").as_slice());

    let key = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA384,
        &pub_der,
    )
    .unwrap();
    let signed = [hx(v, "msg_prefix"), hx(v, "msg")].concat();
    key.verify_sig(&signed, &hx(v, "sig")).unwrap();
    assert!(key.verify_sig(&signed[1..], &hx(v, "sig")).is_err());
}

/// Both verifiers, on one input: they must agree, and the answer must be `want`.
fn both(pk: &IssuerPublicKey, randomizer: &[u8; 32], msg: &[u8], sig: &[u8; 256], want: bool) {
    let fast = pk.verify_message(randomizer, msg, sig);
    let portable = pk.verify_message_portable(randomizer, msg, sig);
    assert_eq!(fast, portable, "backends disagree");
    assert_eq!(fast.is_ok(), want, "{fast:?}");
    if !want {
        assert_eq!(fast, Err(TokenError::InvalidSignature));
    }
}

/// aws-lc accepts exactly what the crate accepts: valid signatures, and not
/// flipped bits (signature, randomizer, message), the wrong key, the wrong
/// randomizer, a wrong-length message, values 0, 1, n − 1, ≥ n, and signatures
/// the key holder made with another salt length or padding.
#[test]
fn verification_accepts_exactly_what_the_crate_accepts() {
    for (i, sk) in KEYS.iter().enumerate() {
        let pk = sk.public_key();
        let other = KEYS[(i + 1) % KEYS.len()].public_key();
        for round in 0..20 {
            let campaign = CampaignId(random());
            let pledge_pk = PledgeSigningKey::from_seed(&random()).public_key();
            let (blinded, state) = token::blind(pk, &campaign, &pledge_pk).unwrap();
            let bs = sk.blind_sign(blinded.as_bytes()).unwrap();
            let tok: Token =
                token::finalize(pk, &state, bs.as_bytes(), &campaign, &pledge_pk).unwrap();
            let msg = token::token_message(&campaign, &pledge_pk);
            let (r, s) = (tok.randomizer, tok.signature);

            both(pk, &r, &msg, &s, true);
            both(other, &r, &msg, &s, false);
            both(pk, &random(), &msg, &s, false);
            both(pk, &r, &msg[..78], &s, false);
            both(pk, &r, &[msg.as_slice(), &[0]].concat(), &s, false);
            let bit = round * 13 % 8;
            let mut s2 = s;
            s2[(round * 37) % 256] ^= 1 << bit;
            both(pk, &r, &msg, &s2, false);
            let mut r2 = r;
            r2[round % 32] ^= 1 << bit;
            both(pk, &r2, &msg, &s, false);
            let mut m2 = msg;
            m2[(round * 7) % 79] ^= 1 << bit;
            both(pk, &r, &m2, &s, false);
        }

        // Special values.
        let n: [u8; 256] = pk.as_spki()[pk.as_spki().len() - 261..pk.as_spki().len() - 5]
            .try_into()
            .unwrap();
        let msg = [7u8; 79];
        let r = [9u8; 32];
        let mut one = [0u8; 256];
        one[255] = 1;
        let mut n_minus_1 = n;
        n_minus_1[255] -= 1;
        for s in [[0u8; 256], one, n_minus_1, n, [0xff; 256]] {
            both(pk, &r, &msg, &s, false);
        }

        // The key holder's own signatures over `r ‖ msg`, with the right padding
        // but another salt length, or PKCS#1 v1.5: both verifiers refuse them;
        // with salt 48 both accept.
        let der = sk.to_der().unwrap();
        let key = PKey::private_key_from_der(der.expose()).unwrap();
        let signed = [r.as_slice(), &msg].concat();
        for (salt, pss, want) in [
            (48, true, true),
            (32, true, false),
            (0, true, false),
            (64, true, false),
            (0, false, false),
        ] {
            let mut signer = Signer::new(MessageDigest::sha384(), &key).unwrap();
            if pss {
                signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                signer
                    .set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt))
                    .unwrap();
                signer.set_rsa_mgf1_md(MessageDigest::sha384()).unwrap();
            }
            signer.update(&signed).unwrap();
            let s: [u8; 256] = signer.sign_to_vec().unwrap().try_into().unwrap();
            both(pk, &r, &msg, &s, want);
        }
    }
}

/// The secret key still round-trips through its zeroizing DER form and the
/// reloaded key signs identically on the fast path.
#[test]
fn reloaded_key_signs_identically() {
    let sk = &KEYS[2];
    let again = IssuerSecretKey::from_der(sk.to_der().unwrap().expose()).unwrap();
    assert_eq!(again.public_key(), sk.public_key());
    let (blinded, _) = token::blind(
        sk.public_key(),
        &CampaignId([1; 32]),
        &PledgeSigningKey::from_seed(&[2; 32]).public_key(),
    )
    .unwrap();
    assert_eq!(
        again.blind_sign(blinded.as_bytes()).unwrap().as_bytes(),
        sk.blind_sign(blinded.as_bytes()).unwrap().as_bytes()
    );
}
