//! Sealed campaigns over HTTP (SPEC §17.3), shared by the sealed suites and
//! the load generator: trustee keys in memory, the organiser's campaign,
//! key generation run to the logged joint key by the trustees' own tool
//! (`pledge_client::trustee::step`, each round on a log it audited itself),
//! sealed pledges and amendments built as a pledger would, and the trustees'
//! shares of a snapshot.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_client::audit::AuditOptions;
use pledge_client::client::{Client, NewCampaign};
use pledge_client::trustee::{self, Action};
use pledge_protocol::api::{Attestation, AttesterPolicy, Campaign, SealedSpec};
use pledge_protocol::dkg::TrusteeKeyPair;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::PledgeSigningKey;
use pledge_protocol::sealed::{JointPublicKey, SealedTerms};
use pledge_protocol::sealed_pledge::{SealedAmendment, SealedPledge};
use pledge_protocol::token::{IssuerPublicKey, Token, blind, finalize, nullifier};
use rand::CryptoRng;
use rand::SeedableRng as _;
use rand::rngs::{StdRng, SysRng};

/// A fresh generator seeded by the system (one per thread or task).
pub fn system_rng() -> StdRng {
    StdRng::try_from_rng(&mut SysRng).expect("no randomness from the system")
}

/// `n` trustees' keys (R-DKG-4: fresh per campaign).
pub fn trustee_keys<R: CryptoRng + ?Sized>(n: usize, rng: &mut R) -> Vec<TrusteeKeyPair> {
    (0..n).map(|_| TrusteeKeyPair::generate(rng)).collect()
}

/// An open-attester sealed campaign of `buckets`, `k` of `keys`' trustees,
/// the given early reveal times and deadline.
pub fn campaign(
    title: &str,
    deadline: u64,
    buckets: &[u32],
    k: u8,
    keys: &[TrusteeKeyPair],
    reveals: Vec<u64>,
) -> NewCampaign {
    NewCampaign {
        title: title.into(),
        text: String::new(),
        action: "strike".into(),
        deadline,
        goal: 2,
        threshold_min: buckets.first().copied().unwrap_or(1),
        threshold_max: buckets.last().copied().unwrap_or(1),
        attester: AttesterPolicy::Open,
        publication: None,
        funding: None,
        sealed: Some(SealedSpec {
            buckets: buckets.to_vec(),
            k,
            trustees: keys
                .iter()
                .map(|kp| hex::encode(kp.public_key().to_bytes()))
                .collect(),
            reveals,
        }),
    }
}

/// Creates `c` as the operator; its id.
pub async fn create(client: &Client, admin: &str, c: &NewCampaign) -> CampaignId {
    let created = client.create_campaign(admin, c).await.unwrap();
    CampaignId::from_hex(&created.campaign_id).unwrap()
}

/// Polls the campaign object until `done` holds (`limit` at most).
pub async fn wait_for(
    client: &Client,
    id: &CampaignId,
    limit: Duration,
    done: impl Fn(&Campaign) -> bool,
) -> Campaign {
    let deadline = Instant::now() + limit;
    loop {
        let c = client.campaign(id).await.unwrap();
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "waited in vain; campaign: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One round of each of `keys`' trustees, in order; what they posted.
pub async fn trustees_step(
    opts: &AuditOptions,
    client: &Client,
    id: &CampaignId,
    keys: &[TrusteeKeyPair],
) -> Vec<Action> {
    let mut all = Vec::new();
    for kp in keys {
        all.extend(trustee::step(opts, client, id, kp).await.unwrap());
    }
    all
}

/// The key generation through the log: every trustee deals, then every
/// trustee is ready; returns the joint key once the server publishes it
/// (R-SEAL-86) and the campaign's issuer key.
pub async fn key_generation(
    opts: &AuditOptions,
    client: &Client,
    id: &CampaignId,
    keys: &[TrusteeKeyPair],
) -> (JointPublicKey, IssuerPublicKey) {
    let n = keys.len();
    assert_eq!(
        trustees_step(opts, client, id, keys).await,
        vec![Action::Dealt; n]
    );
    assert_eq!(
        trustees_step(opts, client, id, keys).await,
        vec![Action::Ready; n]
    );
    let info = wait_for(client, id, Duration::from_secs(60), |c| {
        c.sealed.as_ref().is_some_and(|s| s.joint_key.is_some())
    })
    .await;
    let joint_hex = info.sealed.unwrap().joint_key.unwrap();
    let joint =
        JointPublicKey::from_bytes(hex::decode(joint_hex).unwrap().try_into().unwrap()).unwrap();
    let issuer = IssuerPublicKey::from_spki(&B64.decode(&info.issuer_key).unwrap()).unwrap();
    (joint, issuer)
}

/// A token for a fresh pledge key from the open attester.
pub async fn token(
    client: &Client,
    id: &CampaignId,
    issuer: &IssuerPublicKey,
) -> (PledgeSigningKey, Token) {
    let key = PledgeSigningKey::generate().unwrap();
    let (blinded, st) = blind(issuer, id, &key.public_key()).unwrap();
    let sigs = client
        .tokens(&Attestation::Open, &[(*id, blinded)])
        .await
        .unwrap();
    let token = finalize(issuer, &st, &sigs[0], id, &key.public_key()).unwrap();
    (key, token)
}

/// The sealed pledge of `bucket` (`None`: null) over `bucket_count`
/// buckets, spending `token`.
pub fn pledge_entry<R: CryptoRng + ?Sized>(
    id: &CampaignId,
    token: Token,
    key: &PledgeSigningKey,
    joint: &JointPublicKey,
    bucket_count: usize,
    bucket: Option<usize>,
    rng: &mut R,
) -> Entry {
    let ctx = SealedPledge::context_of(id, &token);
    let terms = SealedTerms::seal(&ctx, joint, bucket_count, bucket, rng).unwrap();
    Entry::SealedPledge(Box::new(
        SealedPledge::sign(*id, token, terms, key).unwrap(),
    ))
}

/// Amendment `seq` of the pledge of `key` to `bucket` (`None`: null).
pub fn amendment_entry<R: CryptoRng + ?Sized>(
    id: &CampaignId,
    key: &PledgeSigningKey,
    seq: u32,
    joint: &JointPublicKey,
    bucket_count: usize,
    bucket: Option<usize>,
    rng: &mut R,
) -> Entry {
    let n = nullifier(id, &key.public_key());
    let ctx = SealedAmendment::context_of(id, &n, seq, &key.public_key());
    let terms = SealedTerms::seal(&ctx, joint, bucket_count, bucket, rng).unwrap();
    Entry::SealedAmended(Box::new(SealedAmendment::sign(*id, n, seq, terms, key)))
}

/// A sealed pledge of `bucket` made and sent as a pledger does; returns the
/// pledge key (for amendments).
pub async fn pledge<R: CryptoRng + ?Sized>(
    client: &Client,
    id: &CampaignId,
    issuer: &IssuerPublicKey,
    joint: &JointPublicKey,
    bucket_count: usize,
    bucket: Option<usize>,
    rng: &mut R,
) -> PledgeSigningKey {
    let (key, token) = token(client, id, issuer).await;
    let e = pledge_entry(id, token, &key, joint, bucket_count, bucket, rng);
    client.submit(&e).await.unwrap();
    key
}

/// Trustees in `keys` order each run rounds until they have shared the
/// snapshot at log index `snapshot`; then waits until the server logs its
/// reveal and returns the revealed counts.
pub async fn share_and_reveal(
    opts: &AuditOptions,
    client: &Client,
    id: &CampaignId,
    keys: &[TrusteeKeyPair],
    snapshot: u64,
    limit: Duration,
) -> Vec<u64> {
    for kp in keys {
        let posted = trustee::step(opts, client, id, kp).await.unwrap();
        assert!(
            posted.contains(&Action::Shared { snapshot }),
            "trustee posted {posted:?}, not its shares of {snapshot}"
        );
    }
    let c = wait_for(client, id, limit, |c| {
        c.sealed
            .as_ref()
            .is_some_and(|s| s.revealed.iter().any(|r| r.snapshot == snapshot))
    })
    .await;
    let sealed = c.sealed.unwrap();
    let r = sealed
        .revealed
        .iter()
        .find(|r| r.snapshot == snapshot)
        .unwrap();
    r.counts.clone()
}
