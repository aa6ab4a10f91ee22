//! Criterion benchmarks: sealing and verifying sealed terms (issue 16,
//! ROUND2 §0.1) at B = 16 and B = 32, and the reveal side per bucket.
//! Run: `cargo bench -p pledge-protocol --bench sealed`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use curve25519_dalek::ristretto::RistrettoPoint;
use pledge_protocol::sealed::{
    DiscreteLogTable, JointPublicKey, RevealContext, SealContext, SealedTerms, TrusteeSecretShare,
    aggregate,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::hint::black_box;

fn context() -> SealContext {
    SealContext {
        campaign: [1; 32],
        nullifier: [2; 32],
        seq: 0,
        pledge_key: [3; 32],
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(16);
    let mut secret = [7u8; 32];
    secret[31] = 0;
    let trustee = TrusteeSecretShare::from_bytes(1, &secret).unwrap();
    let key = JointPublicKey::from_bytes(trustee.public_share().to_bytes()).unwrap();
    let ctx = context();
    for b in [16usize, 32] {
        c.bench_function(&format!("sealed/seal/B={b}"), |bench| {
            bench.iter(|| {
                SealedTerms::seal(&ctx, &key, b, black_box(Some(b / 2)), &mut rng).unwrap()
            })
        });
        let terms = SealedTerms::seal(&ctx, &key, b, Some(3), &mut rng).unwrap();
        let bytes = terms.encode();
        c.bench_function(&format!("sealed/decode/B={b}"), |bench| {
            bench.iter(|| SealedTerms::decode(black_box(&bytes)).unwrap())
        });
        c.bench_function(&format!("sealed/verify/B={b}"), |bench| {
            bench.iter(|| black_box(&terms).verify(&ctx, &key).unwrap())
        });
        c.bench_function(&format!("sealed/decode_verify/B={b}"), |bench| {
            bench.iter(|| {
                SealedTerms::decode(black_box(&bytes))
                    .unwrap()
                    .verify(&ctx, &key)
                    .unwrap()
            })
        });
        c.bench_function(&format!("sealed/verify_unbatched/B={b}"), |bench| {
            bench.iter(|| black_box(&terms).verify_unbatched(&ctx, &key).unwrap())
        });
    }
    // Reveal side, per bucket.
    let terms = SealedTerms::seal(&ctx, &key, 1, Some(0), &mut rng).unwrap();
    let agg = aggregate(1, [&terms]).unwrap();
    let rc = RevealContext {
        campaign: [1; 32],
        size: 1,
    };
    let public = trustee.public_share();
    c.bench_function("sealed/decryption_share", |bench| {
        bench.iter(|| trustee.decryption_share(&rc, &key, 0, &agg[0], &mut rng))
    });
    let share = trustee.decryption_share(&rc, &key, 0, &agg[0], &mut rng);
    c.bench_function("sealed/verify_decryption_share", |bench| {
        bench.iter(|| share.verify(&rc, &key, &public, 0, &agg[0]).unwrap())
    });
    let table = DiscreteLogTable::new(1 << 22).unwrap();
    let point = RistrettoPoint::mul_base(&curve25519_dalek::scalar::Scalar::from(3_000_000u64));
    c.bench_function("sealed/discrete_log/bound=2^22", |bench| {
        bench.iter(|| table.solve_vartime(black_box(&point)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
