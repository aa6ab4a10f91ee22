//! Trustee key generation's known answers through the public API (SPEC
//! §17.2, R-DKG-39): `vectors/dkg_kat.json` is decoded, verified and
//! replayed message by message, and its outcome recomputed.
//!
//! The vector is regenerated and compared byte for byte by the unit tests of
//! `protocol/src/dkg.rs` (its generator needs a dealer that cheats); `cargo
//! test -p pledge-protocol --lib dkg -- --ignored generate_vectors` writes
//! `dkg_kat-new.json` for review and never overwrites.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pledge_protocol::dkg::{
    Complaint, ComplaintVerdict, Dealing, DkgContext, DkgError, DkgTranscript, Ready, TrusteeKey,
    TrusteeKeyPair,
};
use pledge_protocol::sealed::TrusteeSecretShare;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn hex32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn dkg_known_answers_replay() {
    let v = load("dkg_kat.json");
    let kps: Vec<TrusteeKeyPair> = v["trustee_secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| TrusteeKeyPair::from_secret_bytes(&hex32(s)).unwrap())
        .collect();
    let keys: Vec<TrusteeKey> = v["trustee_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| TrusteeKey::from_bytes(hex32(k)).unwrap())
        .collect();
    assert_eq!(
        kps.iter()
            .map(TrusteeKeyPair::public_key)
            .collect::<Vec<_>>(),
        keys
    );
    let ctx = DkgContext {
        campaign: hex32(&v["campaign"]),
        k: u8::try_from(v["k"].as_u64().unwrap()).unwrap(),
        trustees: keys,
    };
    assert_eq!(ctx.n() as u64, v["n"].as_u64().unwrap());
    assert_eq!(
        hex::encode(ctx.hash().unwrap()),
        v["context_hash"].as_str().unwrap()
    );

    let mut t = DkgTranscript::new(&ctx).unwrap();
    let mut dealings = vec![];
    for d in v["dealings"].as_array().unwrap() {
        let d = Dealing::decode(&ctx, &bytes(d)).unwrap();
        d.verify(&ctx).unwrap();
        t.add_dealing(d.clone()).unwrap();
        dealings.push(d);
    }
    // Dealer 3 cheated on trustee 1's share only.
    for d in &dealings {
        for (at, kp) in kps.iter().enumerate() {
            let j = u8::try_from(at + 1).unwrap();
            let opened = d.open_share(&ctx, kp, j);
            if (d.dealer(), j) == (3, 1) {
                assert_eq!(
                    opened.unwrap_err(),
                    DkgError::BadShare {
                        dealer: 3,
                        recipient: 1
                    }
                );
            } else {
                assert!(opened.is_ok());
            }
        }
    }
    for c in v["complaints"].as_array().unwrap() {
        let complaint = Complaint::decode(&ctx, &bytes(&c["encoding"])).unwrap();
        let expected = match c["verdict"].as_str().unwrap() {
            "holds" => ComplaintVerdict::Holds,
            "unfounded" => ComplaintVerdict::Unfounded,
            other => panic!("verdict {other}"),
        };
        assert_eq!(t.add_complaint(complaint), Ok(expected));
    }
    assert_eq!(
        hex::encode(t.digest().0),
        v["transcript_digest"].as_str().unwrap()
    );
    for r in v["readies"].as_array().unwrap() {
        let ready = Ready::decode(&ctx, &bytes(r)).unwrap();
        assert_eq!(ready.digest(), t.digest());
        t.add_ready(ready).unwrap();
    }
    assert!(t.is_complete());
    let outcome = t.outcome().unwrap();
    assert_eq!(
        hex::encode(outcome.joint_key().to_bytes()),
        v["joint_key"].as_str().unwrap()
    );
    let as_u8 = |key: &str| -> Vec<u8> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| u8::try_from(x.as_u64().unwrap()).unwrap())
            .collect()
    };
    assert_eq!(outcome.qualified(), as_u8("qualified"));
    assert_eq!(outcome.disqualified(), as_u8("disqualified"));
    let publics = v["public_shares"].as_array().unwrap();
    let secrets = v["secret_shares"].as_array().unwrap();
    for (at, kp) in kps.iter().enumerate() {
        let j = u8::try_from(at + 1).unwrap();
        let x = outcome.public_shares()[at];
        assert_eq!(hex::encode(x.to_bytes()), publics[at].as_str().unwrap());
        let mine = outcome.secret_share(kp, j).unwrap();
        let listed = TrusteeSecretShare::from_bytes(u16::from(j), &hex32(&secrets[at])).unwrap();
        assert_eq!(mine.public_share(), x);
        assert_eq!(listed.public_share(), x);
    }
}
