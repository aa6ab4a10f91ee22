//! Cross-check of `sealed` against an independent implementation,
//! `elastic-elgamal` 0.4.0-beta.1 (a dev-dependency: ROUND2 §1.8), where the
//! primitives coincide: exponential ElGamal on ristretto255 (SPEC R-SEAL-4),
//! a dealer's `k`-of-`n` shares with their public shares (R-SEAL-19), the
//! decryption share's element `D = x_i·c1` (R-SEAL-21) and the Lagrange
//! combination (R-SEAL-24). The proofs themselves cannot be compared: elastic
//! uses merlin transcripts and ring proofs, we use SPEC's SHA-512 transcripts
//! and CDS proofs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use elastic_elgamal::group::Ristretto;
use elastic_elgamal::sharing::{ActiveParticipant, Dealer, Params, PublicKeySet};
use elastic_elgamal::{Ciphertext as EC, DiscreteLogTable as EDlog, Keypair};
use pledge_protocol::sealed::{
    Ciphertext, JointPublicKey, RevealContext, SealContext, SealedTerms, TrusteePublicShare,
    TrusteeReveal, TrusteeSecretShare, aggregate, reveal_counts,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn ctx(seq: u32) -> SealContext {
    SealContext {
        campaign: [5; 32],
        nullifier: [6; 32],
        seq,
        pledge_key: [7; 32],
    }
}

fn to_elastic(ct: &Ciphertext) -> EC<Ristretto> {
    EC::from_elements(ct.c1(), ct.c2())
}

#[test]
fn elastic_decrypts_our_ciphertexts_and_we_read_its() {
    let mut rng = StdRng::seed_from_u64(41);
    let keys = Keypair::<Ristretto>::generate(&mut rng);
    let key = JointPublicKey::from_bytes(keys.public().as_bytes().try_into().unwrap()).unwrap();
    assert_eq!(key.point(), keys.public().as_element());
    let bits = EDlog::<Ristretto>::new(0..=1);
    for (b, bucket) in [(1, Some(0)), (4, Some(3)), (4, None), (16, Some(9))] {
        let terms = SealedTerms::seal(&ctx(0), &key, b, bucket, &mut rng).unwrap();
        let plain: Vec<u64> = terms
            .ciphertexts()
            .iter()
            .map(|ct| keys.secret().decrypt(to_elastic(ct), &bits).unwrap())
            .collect();
        let want: Vec<u64> = (0..b).map(|i| u64::from(bucket == Some(i))).collect();
        assert_eq!(plain, want, "B = {b}, bucket {bucket:?}");
        // The same 64-byte layout: r·G then m·G + r·K.
        for ct in terms.ciphertexts() {
            assert_eq!(to_elastic(ct).to_bytes(), ct.to_bytes());
        }
    }
    // elastic's encryptions decode as ours, and add up under our aggregate.
    let counts = EDlog::<Ristretto>::new(0..=10);
    let mut sum = Ciphertext::zero();
    for m in [0u64, 1, 1, 3] {
        let e = keys.public().encrypt(m, &mut rng);
        let ours = Ciphertext::decode(&e.to_bytes()).unwrap();
        assert_eq!(
            ours.c2() - ours.c1() * keys.secret().expose_scalar(),
            G * curve25519_dalek::scalar::Scalar::from(m)
        );
        sum += ours;
    }
    assert_eq!(keys.secret().decrypt(to_elastic(&sum), &counts), Some(5));
}

#[test]
fn dealer_shares_decryption_shares_and_lagrange_agree_with_elastic() {
    let mut rng = StdRng::seed_from_u64(42);
    let (n, k, b) = (5usize, 3usize, 6usize);
    let params = Params::new(n, k);
    let dealer = Dealer::<Ristretto>::new(params, &mut rng);
    let (poly, pop) = dealer.public_info();
    let key_set = PublicKeySet::new(params, poly, pop).unwrap();
    let key =
        JointPublicKey::from_bytes(key_set.shared_key().as_bytes().try_into().unwrap()).unwrap();
    // Participant i (0-based in elastic) is our trustee i + 1.
    let secrets: Vec<TrusteeSecretShare> = (0..n)
        .map(|i| {
            let s = dealer.secret_share_for_participant(i);
            TrusteeSecretShare::from_bytes(
                u16::try_from(i + 1).unwrap(),
                s.expose_scalar().as_bytes(),
            )
            .unwrap()
        })
        .collect();
    let publics: Vec<TrusteePublicShare> = secrets
        .iter()
        .map(TrusteeSecretShare::public_share)
        .collect();
    for (i, p) in publics.iter().enumerate() {
        assert_eq!(
            &p.to_bytes()[..],
            key_set.participant_key(i).unwrap().as_bytes(),
            "K_{}",
            i + 1
        );
    }
    let participants: Vec<ActiveParticipant<Ristretto>> = (0..n)
        .map(|i| {
            ActiveParticipant::new(key_set.clone(), i, dealer.secret_share_for_participant(i))
                .unwrap()
        })
        .collect();

    // 20 sealed pledges, some null; their aggregate.
    let mut expected = vec![0u64; b];
    let mut terms = Vec::new();
    for p in 0..20u32 {
        let pick = (p as usize * 7 + 3) % (b + 2);
        let bucket = (pick < b).then_some(pick);
        if let Some(i) = bucket {
            expected[i] += 1;
        }
        terms.push(SealedTerms::seal(&ctx(p), &key, b, bucket, &mut rng).unwrap());
    }
    let agg = aggregate(b, &terms).unwrap();
    let rc = RevealContext {
        campaign: [5; 32],
        size: 21,
    };
    let ours: Vec<_> = secrets
        .iter()
        .map(|s| s.decryption_shares(&rc, &key, &agg, &mut rng))
        .collect();
    let table = EDlog::<Ristretto>::new(0..=20);
    for (bucket, ct) in agg.iter().enumerate() {
        // Each trustee's D equals elastic's decryption share element.
        let theirs: Vec<_> = participants
            .iter()
            .map(|p| p.decrypt_share(to_elastic(ct), &mut rng).0)
            .collect();
        for (i, t) in theirs.iter().enumerate() {
            assert_eq!(
                &ours[i][bucket].encode()[..32],
                t.as_element().compress().as_bytes(),
                "trustee {} bucket {bucket}",
                i + 1
            );
        }
        // elastic's Lagrange combination of trustees 2, 4, 5 decrypts the count.
        let combined = params
            .combine_shares([1usize, 3, 4].into_iter().map(|i| (i, theirs[i])))
            .unwrap();
        let m = combined.decrypt_to_element(to_elastic(ct));
        assert_eq!(table.get(&m), Some(expected[bucket]), "bucket {bucket}");
    }
    // Ours, from the same trustees, gives the same histogram.
    let rv: Vec<TrusteeReveal<'_>> = [1usize, 3, 4]
        .iter()
        .map(|&i| TrusteeReveal {
            public: &publics[i],
            shares: &ours[i],
        })
        .collect();
    assert_eq!(reveal_counts(&rc, &key, &agg, k, &rv, 20), Ok(expected));
}
