//! RFC 9474 token tests: published vectors (RFC 9474 Appendix A, RFC 9578
//! Appendix A.2), our own known-answer and failure vectors, and a property test
//! of the blind → sign → finalize → verify round trip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::LazyLock;

use pledge_protocol::codec::{Reader, Writer};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::{PledgePublicKey, PledgeSigningKey};
use pledge_protocol::token::{
    self, BlindingState, ForbiddenValue, ISSUER_KEY_BYTES, IssuerPublicKey, IssuerSecretKey, Token,
    TokenError,
};
use proptest::prelude::*;
use rand::{TryCryptoRng, TryRng};
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
    .unwrap_or_else(|e| panic!("{field}: {e}"))
}

fn arr<const N: usize>(v: &Value, field: &str) -> [u8; N] {
    hx(v, field).try_into().unwrap()
}

/// Replays fixed bytes as a CSPRNG, to inject RFC 9474's random inputs. Every
/// `fill_bytes` takes the next bytes of the stream; the test then checks that
/// exactly the whole stream was consumed, which pins the order the backend
/// draws them in: randomizer, salt, blinding factor r (little-endian, as
/// crypto-bigint's rejection sampler reads it).
struct Replay {
    bytes: Vec<u8>,
    pos: usize,
}

impl Replay {
    fn new(parts: &[&[u8]]) -> Self {
        Self {
            bytes: parts.concat(),
            pos: 0,
        }
    }

    fn assert_consumed(&self) {
        assert_eq!(
            self.pos,
            self.bytes.len(),
            "replayed randomness not consumed exactly"
        );
    }
}

impl TryRng for Replay {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let end = self.pos + dst.len();
        assert!(end <= self.bytes.len(), "replayed randomness exhausted");
        dst.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(())
    }
}

impl TryCryptoRng for Replay {}

fn reversed(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

/// The TokenError variant name (Debug up to the first `(`), or the full Debug
/// form when `expected` has parentheses.
fn assert_error(name: &str, got: &TokenError, expected: &str) {
    let debug = format!("{got:?}");
    if expected.contains('(') {
        assert_eq!(debug, expected, "{name}");
    } else {
        let variant = debug.split(['(', ' ', '{']).next().unwrap();
        assert_eq!(variant, expected, "{name}: {debug}");
    }
}

struct Fixed {
    v: Value,
    sk: IssuerSecretKey,
}

/// The fixed issuer key of tokens.json (parsing validates the key: do it once).
static FIXED: LazyLock<Fixed> = LazyLock::new(|| {
    let v = load("tokens.json");
    let sk = IssuerSecretKey::from_der(&hx(&v, "issuer_sk_pkcs8")).unwrap();
    Fixed { v, sk }
});

/// The RFC 9578 vector 1 key: a second, independent 2048-bit key.
static RFC9578: LazyLock<(Value, IssuerSecretKey)> = LazyLock::new(|| {
    let v = load("rfc9578.json")["vectors"][0].clone();
    let sk = IssuerSecretKey::from_der(&hx(&v, "sk_pkcs8")).unwrap();
    (v, sk)
});

/// RFC 9474 Appendix A, RSABSSA-SHA384-PSS-Randomized (4096-bit key). Our types
/// accept RSA-2048 only, so this drives the backend crate directly, with the
/// published randomizer, salt and blinding factor injected through the RNG: it
/// checks that the pinned `blind-rsa-signatures` / `rsa` / `crypto-bigint`
/// versions compute the RFC's blinded message, blind signature and signature.
#[test]
fn rfc9474_appendix_a_pss_randomized() {
    use blind_rsa_signatures::{BlindSignature, SecretKeySha384PSSRandomized};
    use rsa::BoxedUint;

    let file = load("rfc9474.json");
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 1);
    let v = &vectors[0];
    assert_eq!(v["name"], "RSABSSA-SHA384-PSS-Randomized");
    let big = |f: &str| BoxedUint::from_be_slice_vartime(&hx(v, f));
    let (n, inv) = (big("n"), big("inv"));
    let inner = rsa::RsaPrivateKey::from_components(
        n.clone(),
        big("e"),
        big("d"),
        vec![big("p"), big("q")],
    )
    .unwrap();
    let sk = SecretKeySha384PSSRandomized::new(inner);
    let pk = sk.public_key().unwrap();

    // RFC 9474 publishes inv = r^-1 mod n; the RNG must supply r.
    let r = inv.invert_mod(&n.to_nz().unwrap()).unwrap();
    let mut rng = Replay::new(&[&hx(v, "msg_prefix"), &hx(v, "salt"), &r.to_le_bytes()]);
    let msg = hx(v, "msg");
    let blinded = pk.blind(&mut rng, &msg).unwrap();
    rng.assert_consumed();
    assert_eq!(blinded.blind_message.0, hx(v, "blinded_msg"));
    assert_eq!(blinded.secret.0, hx(v, "inv"));
    assert_eq!(
        blinded.msg_randomizer.unwrap().0.to_vec(),
        hx(v, "msg_prefix")
    );

    let blind_sig = sk.blind_sign(&blinded.blind_message).unwrap();
    assert_eq!(blind_sig.0, hx(v, "blind_sig"));
    let sig = pk.finalize(&blind_sig, &blinded, &msg).unwrap();
    assert_eq!(sig.0, hx(v, "sig"));
    pk.verify(&sig, blinded.msg_randomizer, &msg).unwrap();
    // The published signature alone, with the published randomizer.
    let published = blind_rsa_signatures::Signature(hx(v, "sig"));
    let randomizer = blind_rsa_signatures::MessageRandomizer(arr(v, "msg_prefix"));
    pk.verify(&published, Some(randomizer), &msg).unwrap();
    assert!(pk.verify(&published, Some(randomizer), b"other").is_err());
    // A corrupted blind signature must not finalise.
    let mut bad = hx(v, "blind_sig");
    bad[10] ^= 1;
    assert!(pk.finalize(&BlindSignature(bad), &blinded, &msg).is_err());

    // Our issuer keys are RSA-2048 only (R-TOKEN-5).
    let err = IssuerPublicKey::from_spki(&pk.to_spki().unwrap()).unwrap_err();
    assert_eq!(err, TokenError::ModulusBits(4096));
}

/// RFC 9578 Appendix A.2 (Privacy Pass token type 2, RSA-2048) vector 1, through
/// our own API. Type 2 uses the Deterministic variant over the 98-byte
/// `token_input`; RFC 9474's Randomized variant signs `randomizer ‖ msg`, so
/// splitting `token_input` into its first 32 bytes (as the randomizer) and the
/// rest (as the message) yields the same PSS input. That makes the RFC's
/// published blind, salt, blinded message, blind signature and authenticator a
/// full 2048-bit known-answer test of our encoding, key id, blinding, signing,
/// finalisation and verification.
#[test]
fn rfc9578_issuance_protocol_2_vector_1() {
    let (v, sk) = &*RFC9578;
    let pk = sk.public_key();

    // Key encoding and key id (R-TOKEN-5, R-TOKEN-7) match Privacy Pass.
    let spki = hx(v, "pk_spki");
    assert_eq!(spki.len(), ISSUER_KEY_BYTES);
    assert_eq!(pk.as_spki().as_slice(), spki.as_slice());
    assert_eq!(&IssuerPublicKey::from_spki(&spki).unwrap(), pk);
    let token = hx(v, "token");
    assert_eq!(token.len(), 2 + 32 + 32 + 32 + 256);
    assert_eq!(pk.key_id().as_bytes().as_slice(), &token[66..98]);
    let request = hx(v, "token_request");
    assert_eq!(request[..2], [0x00, 0x02]);
    assert_eq!(request[2], pk.key_id().as_bytes()[31], "truncated key id");
    let blinded = &request[3..];
    assert_eq!(blinded.len(), 256);

    // Issuer: deterministic, so the published response is the only right answer.
    let response = hx(v, "token_response");
    assert_eq!(
        sk.blind_sign(blinded).unwrap().as_bytes().as_slice(),
        response
    );

    // Client: replay nonce-prefix, salt and blind r.
    let token_input = &token[..98];
    let (prefix, rest) = token_input.split_at(32);
    let mut rng = Replay::new(&[prefix, &hx(v, "salt"), &reversed(&hx(v, "blind"))]);
    let (blinded_msg, state) = pk.blind_message_with_rng(&mut rng, rest).unwrap();
    rng.assert_consumed();
    assert_eq!(blinded_msg.as_bytes().as_slice(), blinded);
    assert_eq!(state.blinded_message(), blinded_msg);

    let sig = pk.finalize_message(&state, &response, rest).unwrap();
    assert_eq!(sig.as_slice(), &token[98..]);
    pk.verify_message(prefix.try_into().unwrap(), rest, &sig)
        .unwrap();
    assert_eq!(
        pk.verify_message(&[0; 32], rest, &sig),
        Err(TokenError::InvalidSignature)
    );
}

/// tokens.json: our own known-answer vector, made by an independent Python
/// implementation of RFC 9474 with fixed inputs, driven through the token layer.
#[test]
fn own_token_known_answer() {
    let Fixed { v: file, sk } = &*FIXED;
    let pk = sk.public_key();
    assert_eq!(pk.as_spki().as_slice(), hx(file, "issuer_spki").as_slice());
    assert_eq!(
        pk.key_id().to_hex(),
        file["issuer_key_id"].as_str().unwrap()
    );

    for v in file["vectors"].as_array().unwrap() {
        let campaign = CampaignId(arr(v, "campaign_id"));
        let pledge_sk = PledgeSigningKey::from_seed(&arr(v, "pledge_seed"));
        let pledge_pk = pledge_sk.public_key();
        assert_eq!(pledge_pk.as_bytes(), &arr::<32>(v, "pledge_pk"));
        assert_eq!(
            token::token_message(&campaign, &pledge_pk).as_slice(),
            hx(v, "token_message")
        );
        assert_eq!(
            token::nullifier(&campaign, &pledge_pk).as_bytes(),
            &arr::<32>(v, "nullifier")
        );

        let mut rng = Replay::new(&[&hx(v, "randomizer"), &hx(v, "salt"), &reversed(&hx(v, "r"))]);
        let (blinded, state) = token::blind_with_rng(&mut rng, pk, &campaign, &pledge_pk).unwrap();
        rng.assert_consumed();
        assert_eq!(blinded.as_bytes().as_slice(), hx(v, "blinded_msg"));
        assert_eq!(state.to_secret_bytes().expose(), hx(v, "blinding_state"));

        let blind_sig = sk.blind_sign(blinded.as_bytes()).unwrap();
        assert_eq!(blind_sig.as_bytes().as_slice(), hx(v, "blind_sig"));

        let tok = token::finalize(pk, &state, blind_sig.as_bytes(), &campaign, &pledge_pk).unwrap();
        assert_eq!(tok.signature.as_slice(), hx(v, "signature"));
        let mut w = Writer::new();
        tok.encode_into(&mut w);
        let encoded = w.into_bytes();
        assert_eq!(encoded, hx(v, "token"));
        tok.verify(pk, &campaign).unwrap();
        assert_eq!(
            tok.nullifier(&campaign).as_bytes(),
            &arr::<32>(v, "nullifier")
        );

        // Decoding the published token gives the same value, which verifies.
        let mut r = Reader::new(&encoded);
        let decoded = Token::decode_from(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(decoded, tok);
        decoded.verify(pk, &campaign).unwrap();

        // A wallet that stored the state can finalise after a restart.
        let restored = BlindingState::from_bytes(&hx(v, "blinding_state")).unwrap();
        let again =
            token::finalize(pk, &restored, blind_sig.as_bytes(), &campaign, &pledge_pk).unwrap();
        assert_eq!(again, tok);
        // Finalising for another pledge key or campaign fails (R-TOKEN-10).
        let other = PledgeSigningKey::from_seed(&[7; 32]).public_key();
        assert_eq!(
            token::finalize(pk, &restored, blind_sig.as_bytes(), &campaign, &other),
            Err(TokenError::FinalizeFailed)
        );
        assert_eq!(
            token::finalize(
                pk,
                &restored,
                blind_sig.as_bytes(),
                &CampaignId([0; 32]),
                &pledge_pk
            ),
            Err(TokenError::FinalizeFailed)
        );
    }
}

#[test]
fn failure_vectors_public_keys() {
    let f = load("token_failures.json");
    let cases = f["public_keys"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let err = IssuerPublicKey::from_spki(&hx(c, "spki")).expect_err(name);
        assert_error(name, &err, c["error"].as_str().unwrap());
    }
    // Through the entry codec the same keys are malformed fields.
    let mut w = Writer::new();
    w.bytes16(&hx(&cases[0], "spki"));
    let bytes = w.into_bytes();
    assert!(IssuerPublicKey::decode_from(&mut Reader::new(&bytes)).is_err());
}

#[test]
fn failure_vectors_blinded_messages() {
    let f = load("token_failures.json");
    let sk = &FIXED.sk;
    let cases = f["blinded_messages"].as_array().unwrap();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let err = sk.blind_sign(&hx(c, "blinded_msg")).expect_err(name);
        assert_error(name, &err, c["error"].as_str().unwrap());
    }
    for needed in [
        "blinded_msg_zero",
        "blinded_msg_one",
        "blinded_msg_n_minus_1",
        "blinded_msg_n",
        "blinded_msg_too_long",
    ] {
        assert!(cases.iter().any(|c| c["name"] == needed), "{needed}");
    }
    // n - 2 and 2 are ordinary values and are signed.
    let mut n_minus_2 = hx(&FIXED.v, "issuer_spki")[81..337].to_vec();
    assert_eq!(n_minus_2.len(), 256);
    *n_minus_2.last_mut().unwrap() -= 2;
    assert!(sk.blind_sign(&n_minus_2).is_ok());
    let mut two = [0u8; 256];
    two[255] = 2;
    assert!(sk.blind_sign(&two).is_ok());
    assert_eq!(
        format!(
            "{}",
            TokenError::BlindedMessageValue(ForbiddenValue::ModulusMinusOne)
        ),
        "blinded message value refused: n - 1"
    );
}

#[test]
fn failure_vectors_tokens() {
    let f = load("token_failures.json");
    let fixed = FIXED.sk.public_key();
    let rfc = RFC9578.1.public_key();
    let cases = f["tokens"].as_array().unwrap();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let pk = match c["issuer"].as_str().unwrap() {
            "fixed" => fixed,
            "rfc9578" => rfc,
            other => panic!("{name}: unknown issuer {other}"),
        };
        let campaign = CampaignId(arr(c, "campaign_id"));
        let bytes = hx(c, "token");
        let mut r = Reader::new(&bytes);
        let tok = Token::decode_from(&mut r).unwrap();
        r.finish().unwrap();
        let err = tok.verify(pk, &campaign).expect_err(name);
        assert_error(name, &err, c["error"].as_str().unwrap());
    }
    for needed in [
        "token_wrong_campaign_key",
        "token_randomizer_altered",
        "token_signature_zero",
        "token_signature_equals_n",
    ] {
        assert!(cases.iter().any(|c| c["name"] == needed), "{needed}");
    }
}

#[test]
fn failure_vectors_blind_signatures() {
    let f = load("token_failures.json");
    let Fixed { v: file, sk } = &*FIXED;
    let pk = sk.public_key();
    let v = &file["vectors"][0];
    let campaign = CampaignId(arr(v, "campaign_id"));
    let pledge_pk = PledgePublicKey::from_bytes(arr(v, "pledge_pk")).unwrap();
    let state = BlindingState::from_bytes(&hx(v, "blinding_state")).unwrap();
    for c in f["blind_signatures"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let err = token::finalize(pk, &state, &hx(c, "blind_sig"), &campaign, &pledge_pk)
            .expect_err(name);
        assert_error(name, &err, c["error"].as_str().unwrap());
    }
}

/// A finalised token is a plain RSASSA-PSS-SHA384 (salt 48) signature over
/// `randomizer ‖ token_message`: checked with the `rsa` crate's own PSS verifier
/// and the PKCS#1 key inside our SPKI. Any faster verification backend must
/// agree with this: the `fast-rsa` feature verifies with aws-lc-rs's
/// `RSA_PSS_2048_8192_SHA384` (cross-tested in `rsa_backends.rs`).
#[test]
fn token_is_standard_rsassa_pss() {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::signature::Verifier;

    let Fixed { v: file, sk } = &*FIXED;
    let spki = sk.public_key().as_spki();
    // 4 (SEQUENCE) + 63 (AlgorithmIdentifier) + 4 (BIT STRING) + 1 (unused bits).
    let key = rsa::RsaPublicKey::from_pkcs1_der(&spki[72..]).unwrap();
    let verifier = rsa::pss::VerifyingKey::<sha2::Sha384>::new_with_salt_len(key, 48);
    let v = &file["vectors"][0];
    let signed = [hx(v, "randomizer"), hx(v, "token_message")].concat();
    let sig = rsa::pss::Signature::try_from(hx(v, "signature").as_slice()).unwrap();
    verifier.verify(&signed, &sig).unwrap();
    assert!(verifier.verify(&signed[1..], &sig).is_err());
}

#[test]
fn generated_key_round_trips_and_debug_hides_secrets() {
    let sk = IssuerSecretKey::generate().unwrap();
    let pk = sk.public_key().clone();
    assert_eq!(pk.as_spki().len(), ISSUER_KEY_BYTES);
    assert_ne!(&pk, FIXED.sk.public_key());

    let der = sk.to_der().unwrap();
    let again = IssuerSecretKey::from_der(der.expose()).unwrap();
    assert_eq!(again.public_key(), &pk);

    let debug = format!("{sk:?}");
    assert!(debug.contains(&pk.key_id().to_hex()), "{debug}");
    assert!(
        !debug.contains(&hex::encode(&der.expose()[40..60])),
        "{debug}"
    );
    assert!(format!("{der:?}").len() < 64);

    // OS-randomness path of the client.
    let campaign = CampaignId([9; 32]);
    let pledge_pk = PledgeSigningKey::generate().unwrap().public_key();
    let (blinded, state) = token::blind(&pk, &campaign, &pledge_pk).unwrap();
    assert_eq!(format!("{state:?}"), "BlindingState { .. }");
    let blind_sig = again.blind_sign(blinded.as_bytes()).unwrap();
    let tok = token::finalize(&pk, &state, blind_sig.as_bytes(), &campaign, &pledge_pk).unwrap();
    tok.verify(&pk, &campaign).unwrap();
    // Under the fixed key (another campaign's key) it fails.
    assert_eq!(
        tok.verify(FIXED.sk.public_key(), &campaign),
        Err(TokenError::InvalidSignature)
    );
}

#[test]
fn secret_key_decoding_rejects_garbage_and_foreign_parameters() {
    assert!(matches!(
        IssuerSecretKey::from_der(b"not a key"),
        Err(TokenError::SecretKey(_))
    ));
    assert!(matches!(
        IssuerSecretKey::from_der(&vec![0x30; 5000]),
        Err(TokenError::SecretKey(_))
    ));
    let mut der = hx(&FIXED.v, "issuer_sk_pkcs8");
    der[200] ^= 0x01;
    assert!(IssuerSecretKey::from_der(&der).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// blind → sign → finalize → verify, for random campaigns and pledge keys,
    /// under the fixed key; then any flipped bit of the token is rejected.
    #[test]
    fn round_trip_and_flipped_bits(
        campaign in any::<[u8; 32]>(),
        seed in any::<[u8; 32]>(),
        flip in 0usize..(320 * 8),
    ) {
        let sk = &FIXED.sk;
        let pk = sk.public_key();
        let campaign = CampaignId(campaign);
        let pledge_pk = PledgeSigningKey::from_seed(&seed).public_key();
        let (blinded, state) = token::blind(pk, &campaign, &pledge_pk).unwrap();
        let blind_sig = sk.blind_sign(blinded.as_bytes()).unwrap();
        let tok = token::finalize(pk, &state, blind_sig.as_bytes(), &campaign, &pledge_pk).unwrap();
        prop_assert!(tok.verify(pk, &campaign).is_ok());
        prop_assert_eq!(tok.verify(RFC9578.1.public_key(), &campaign), Err(TokenError::InvalidSignature));

        let mut w = Writer::new();
        tok.encode_into(&mut w);
        let mut bytes = w.into_bytes();
        bytes[flip / 8] ^= 1 << (flip % 8);
        // A flipped pledge-key bit may give an invalid point: rejected at decoding.
        if let Ok(altered) = Token::decode_from(&mut Reader::new(&bytes)) {
            prop_assert_eq!(altered.verify(pk, &campaign), Err(TokenError::InvalidSignature));
        }
    }
}
