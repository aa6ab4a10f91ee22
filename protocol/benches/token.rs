//! Criterion benchmarks of the token operations that set the service's costs:
//! issuer blind_sign (one RSA-2048 private operation per token), token verify
//! (one RSASSA-PSS verification per pledge), client blind and finalize.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::PledgeSigningKey;
use pledge_protocol::token::{self, IssuerSecretKey};

/// The PKCS#8 DER of the fixed issuer key of the test vectors (no key
/// generation in benchmarks).
fn fixed_key_der() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/tokens.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    hex::decode(v["issuer_sk_pkcs8"].as_str().unwrap()).unwrap()
}

fn fixed_key() -> IssuerSecretKey {
    IssuerSecretKey::from_der(&fixed_key_der()).unwrap()
}

fn bench_tokens(c: &mut Criterion) {
    let sk = fixed_key();
    let pk = sk.public_key().clone();
    let campaign = CampaignId([7; 32]);
    let pledge_pk = PledgeSigningKey::from_seed(&[3; 32]).public_key();
    let (blinded, state) = token::blind(&pk, &campaign, &pledge_pk).unwrap();
    let blind_sig = sk.blind_sign(blinded.as_bytes()).unwrap();
    let tok = token::finalize(&pk, &state, blind_sig.as_bytes(), &campaign, &pledge_pk).unwrap();

    let mut g = c.benchmark_group("token");
    g.bench_function("verify", |b| {
        b.iter(|| black_box(&tok).verify(black_box(&pk), &campaign).unwrap());
    });
    g.bench_function("blind_sign", |b| {
        b.iter(|| sk.blind_sign(black_box(blinded.as_bytes())).unwrap());
    });
    g.bench_function("client_blind", |b| {
        b.iter(|| token::blind(black_box(&pk), &campaign, &pledge_pk).unwrap());
    });
    g.bench_function("client_finalize", |b| {
        b.iter(|| {
            token::finalize(
                &pk,
                &state,
                black_box(blind_sig.as_bytes()),
                &campaign,
                &pledge_pk,
            )
            .unwrap()
        });
    });
    g.finish();
}

/// The backend crate called directly with its defaults, on the same key and
/// inputs: the difference to the `token` group is this crate's wrapper cost.
fn bench_backend(c: &mut Criterion) {
    use blind_rsa_signatures::{MessageRandomizer, SecretKeySha384PSSRandomized};

    let sk = SecretKeySha384PSSRandomized::from_der(&fixed_key_der()).unwrap();
    let pk = sk.public_key().unwrap();
    let msg = [5u8; 79];
    let blinded = pk
        .blind(&mut blind_rsa_signatures::DefaultRng, msg)
        .unwrap();
    let blind_sig = sk.blind_sign(&blinded.blind_message).unwrap();
    let sig = pk.finalize(&blind_sig, &blinded, msg).unwrap();
    let randomizer: Option<MessageRandomizer> = blinded.msg_randomizer;

    let mut g = c.benchmark_group("backend");
    g.bench_function("verify", |b| {
        b.iter(|| pk.verify(black_box(&sig), randomizer, msg).unwrap());
    });
    g.bench_function("blind_sign", |b| {
        b.iter(|| sk.blind_sign(black_box(&blinded.blind_message)).unwrap());
    });
    g.finish();
}

criterion_group!(benches, bench_tokens, bench_backend);
criterion_main!(benches);
