//! End-to-end tests over a real socket: `pledged` on 127.0.0.1:0 with a
//! temporary data folder, a client built from `pledge-protocol` and reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_protocol::checkpoint::verify_checkpoint;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::{CampaignId, Hash};
use pledge_protocol::merkle::{self, MemoryHashes};
use pledge_protocol::note::{NoteVerifier, SignedNote};
use pledge_protocol::pledge::{Amendment, Pledge, PledgeSigningKey, Terms, Withdrawal};
use pledge_protocol::receipt::Receipt;
use pledge_protocol::tile::{BundleId, TileHashes, TileId, decode_bundle, tiles_for_size};
use pledge_protocol::token::{IssuerPublicKey, Token};
use pledge_tests::server::Server;
use serde_json::{Value, json};

/// The calls of this suite, on the harness's server.
trait Calls {
    async fn get_json(&self, path: &str) -> Value;
    async fn verifier(&self) -> NoteVerifier;
    async fn checkpoint(&self) -> (u64, Hash, Vec<u8>);
    async fn entries(&self, size: u64) -> Vec<Vec<u8>>;
    async fn demo(&self) -> (CampaignId, IssuerPublicKey);
    async fn tally(&self, c: &CampaignId) -> (u64, u64);
}

async fn start(dir: &Path) -> Server {
    Server::start_in(dir, |_| {}).await
}

impl Calls for Server {
    async fn get_json(&self, path: &str) -> Value {
        let (s, b) = self.get(path).await;
        assert_eq!(s, 200, "{path}");
        serde_json::from_slice(&b).unwrap()
    }

    async fn verifier(&self) -> NoteVerifier {
        let (_, b) = self.get("/v1/log/key").await;
        NoteVerifier::from_text(std::str::from_utf8(&b).unwrap().trim_end()).unwrap()
    }

    /// The verified checkpoint: (size, root, note text).
    async fn checkpoint(&self) -> (u64, Hash, Vec<u8>) {
        let (_, b) = self.get("/log/checkpoint").await;
        let signed =
            verify_checkpoint(SignedNote::parse(&b).unwrap(), &self.verifier().await).unwrap();
        (signed.checkpoint().size(), *signed.checkpoint().root(), b)
    }

    /// Every entry of the log, fetched as entry bundles.
    async fn entries(&self, size: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut n = 0;
        while n * 256 < size {
            let width = u16::try_from((size - n * 256).min(256)).unwrap();
            let id = BundleId::new(n, width).unwrap();
            let (s, b) = self.get(&format!("/log/{}", id.path())).await;
            assert_eq!(s, 200, "{}", id.path());
            for e in decode_bundle(&b, &id).unwrap() {
                out.push(e.to_vec());
            }
            n += 1;
        }
        out
    }

    /// The demo campaign, with its issuer key checked against the logged
    /// CampaignOpened entry (SPEC R-TOKEN-11).
    async fn demo(&self) -> (CampaignId, IssuerPublicKey) {
        let list = self.get_json("/v1/campaigns").await;
        let c = &list["campaigns"][0];
        let id = CampaignId::from_hex(c["campaign_id"].as_str().unwrap()).unwrap();
        let key = B64.decode(c["issuer_key"].as_str().unwrap()).unwrap();
        let key = IssuerPublicKey::from_spki(&key).unwrap();
        let (size, _, _) = self.checkpoint().await;
        let entries = self.entries(size).await;
        let opened = &entries[usize::try_from(c["opened_index"].as_u64().unwrap()).unwrap()];
        match Entry::decode(opened).unwrap() {
            Entry::CampaignOpened(o) => {
                assert_eq!(o.definition.id(), id);
                assert_eq!(o.issuer_key, key);
            }
            other => panic!("opened_index points at {other:?}"),
        }
        (id, key)
    }

    async fn tally(&self, c: &CampaignId) -> (u64, u64) {
        let v = self
            .get_json(&format!("/v1/campaigns/{}", c.to_hex()))
            .await;
        (
            v["tally"]["live"].as_u64().unwrap(),
            v["tally"]["active"].as_u64().unwrap(),
        )
    }
}

fn pledge(c: &CampaignId, token: Token, key: &PledgeSigningKey, t: u32) -> Entry {
    Entry::Pledge(Pledge::sign(*c, token, Terms::threshold(t).unwrap(), key).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pledge_flow_over_http_survives_restart_and_tiles_rebuild_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path()).await;
    let log = srv.verifier().await;
    let (c, pk) = srv.demo().await;

    // Token → pledge → receipt that verifies offline.
    let (token, key) = srv.token(&c, &pk).await;
    let first = pledge(&c, token, &key, 1);
    let (s, v) = srv.submit("/v1/pledges", &first).await;
    assert_eq!(s, 200, "{v}");
    let receipt = Receipt::parse(v["receipt"].as_str().unwrap().as_bytes()).unwrap();
    receipt
        .verify_entry(&first.encode().unwrap(), &log)
        .unwrap();

    // The same token again: refused.
    let (s, v) = srv.submit("/v1/pledges", &first).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("double_spend")));

    // One token submitted 20 times at once: exactly one accepted.
    let (token2, key2) = srv.token(&c, &pk).await;
    let second = pledge(&c, token2, &key2, 4);
    let body = json!({"entry": B64.encode(second.encode().unwrap())});
    let calls: Vec<_> = (0..20).map(|_| srv.post("/v1/pledges", &body)).collect();
    let results = futures_join_all(calls).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let dup = results
        .iter()
        .filter(|(s, v)| *s == 409 && v["error"] == "double_spend")
        .count();
    assert_eq!((ok, dup), (1, 19), "{results:?}");
    assert_eq!(srv.tally(&c).await, (2, 1));

    // Amend the second pledge down to 2 (both activated), then withdraw it.
    let n2 = match &second {
        Entry::Pledge(p) => p.nullifier(),
        _ => unreachable!(),
    };
    let amend = Entry::PledgeAmended(Amendment::sign(
        c,
        n2,
        1,
        Terms::threshold(2).unwrap(),
        &key2,
    ));
    let (s, v) = srv.submit("/v1/pledges/amend", &amend).await;
    assert_eq!(s, 200, "{v}");
    let r = Receipt::parse(v["receipt"].as_str().unwrap().as_bytes()).unwrap();
    r.verify_entry(&amend.encode().unwrap(), &log).unwrap();
    assert_eq!(srv.tally(&c).await, (2, 2));
    let w = Entry::PledgeWithdrawn(Withdrawal::sign(c, n2, 2, &key2));
    assert_eq!(srv.submit("/v1/pledges/withdraw", &w).await.0, 200);
    assert_eq!(srv.tally(&c).await, (1, 1));

    // Tiles and bundles rebuild the checkpoint's root.
    let (size, root, note_before) = srv.checkpoint().await;
    let entries = srv.entries(size).await;
    assert_eq!(entries.len() as u64, size);
    assert_eq!(
        entries[usize::try_from(receipt.index()).unwrap()],
        first.encode().unwrap()
    );
    let mut mem = MemoryHashes::new();
    for e in &entries {
        mem.push(merkle::leaf_hash(e)).unwrap();
    }
    assert_eq!(mem.root(), root);
    let mut tiles = TileHashes::new();
    for t in tiles_for_size(size) {
        let t: TileId = t;
        let (s, b) = srv.get(&format!("/log/{}", t.path())).await;
        assert_eq!(s, 200, "{}", t.path());
        tiles.insert(t, &b).unwrap();
    }
    assert_eq!(merkle::tree_root(size, &tiles).unwrap(), root);
    // The first receipt still verifies against the latest checkpoint's tree.
    let proof = merkle::inclusion_proof(receipt.index(), size, &tiles).unwrap();
    merkle::verify_inclusion(
        &merkle::leaf_hash(&first.encode().unwrap()),
        receipt.index(),
        size,
        &proof,
        &root,
    )
    .unwrap();

    srv.shutdown_within(Duration::from_secs(10)).await;

    // Restart on the same folder: same checkpoint, same tally, the spent
    // nullifier is still refused, and the log continues.
    let srv = start(dir.path()).await;
    assert_eq!(srv.verifier().await, log);
    let (size2, root2, note_after) = srv.checkpoint().await;
    assert_eq!((size2, root2), (size, root));
    assert_eq!(note_after, note_before);
    assert_eq!(srv.tally(&c).await, (1, 1));
    let (s, v) = srv.submit("/v1/pledges", &first).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("double_spend")));
    let (token3, key3) = srv.token(&c, &pk).await;
    let (s, v) = srv
        .submit("/v1/pledges", &pledge(&c, token3, &key3, 1))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["index"].as_u64(), Some(size));
    assert_eq!(srv.tally(&c).await, (2, 2));
    srv.shutdown_within(Duration::from_secs(10)).await;
}

/// `join_all` without a futures dependency: spawn each call on the runtime.
async fn futures_join_all<F>(calls: Vec<F>) -> Vec<(u16, Value)>
where
    F: std::future::Future<Output = (u16, Value)>,
{
    // The calls borrow the server, so run them concurrently in place.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = calls.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<(u16, Value)>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}
