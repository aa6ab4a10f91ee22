//! The sans-IO replay (`pledge_protocol::replay`) against the rule vectors:
//! each entry's decision and the failures an auditor reports for it
//! (`rule_decisions.json`, R-AUDIT-12), each campaign's tally and last
//! change size (R-TALLY-12), and the tree root of a valid log
//! (`entries.json`), whichever way the stateless checks run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::audit_kind;

use std::collections::HashMap;

use pledge_protocol::entry::{Entry, EntryKind};
use pledge_protocol::hash::{CampaignId, Hash};
use pledge_protocol::ledger::{RuleError, VerifiedEntry};
use pledge_protocol::merkle::{MemoryHashes, Tree};
use pledge_protocol::replay::{Leaf, ReplayError, Replayed, Replayer, Verification};
use pledge_protocol::token::IssuerPublicKey;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn case_bytes(c: &Value) -> Vec<Vec<u8>> {
    c["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| hex::decode(e.as_str().unwrap()).unwrap())
        .collect()
}

/// What an auditor's parallel pass computes: every pledge verified under the
/// key of its campaign's first CampaignOpened anywhere in `bytes`.
fn parallel_pass(bytes: &[Vec<u8>]) -> Vec<(Leaf, Option<Result<VerifiedEntry, RuleError>>)> {
    let leaves: Vec<Leaf> = bytes.iter().map(|b| Leaf::decode(b)).collect();
    let mut keys: HashMap<CampaignId, IssuerPublicKey> = HashMap::new();
    for l in &leaves {
        if let Ok(Entry::CampaignOpened(o)) = l.entry() {
            keys.entry(o.definition.id())
                .or_insert_with(|| o.issuer_key.clone());
        }
    }
    leaves
        .into_iter()
        .map(|l| {
            let verdict = match l.entry() {
                Ok(e @ Entry::Pledge(p)) => keys
                    .get(&p.campaign)
                    .map(|k| VerifiedEntry::verify(e.clone(), Some(k), None)),
                _ => None,
            };
            (l, verdict)
        })
        .collect()
}

fn decision(r: &Replayed) -> String {
    match r.clone().into_result() {
        Ok(_) => "valid".into(),
        Err(ReplayError::Refused(refusal)) => format!("{:?}", refusal.first().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

fn tallies(replayer: &Replayer<Tree>) -> Vec<Value> {
    let mut out: Vec<Value> = replayer
        .last_change()
        .iter()
        .map(|(id, at)| {
            let s = replayer.tally(id).unwrap().unwrap();
            serde_json::json!({"campaign": id.to_hex(), "live": s.live(), "active": s.active(),
                               "buckets": s.buckets(), "last_change": at})
        })
        .collect();
    out.sort_by_key(|v| v["campaign"].as_str().unwrap().to_owned());
    out
}

#[test]
fn decisions_failures_and_tallies_match_the_vectors_whichever_way_checks_run() {
    let v = load("rule_decisions.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let bytes = case_bytes(c);
        let want = c["decisions"].as_array().unwrap();
        // Checked here, entry by entry (the demo).
        let mut now = Replayer::<Tree>::new();
        for (i, b) in bytes.iter().enumerate() {
            let r = now.replay_bytes(b, Verification::Now).unwrap();
            assert_eq!(r.index, i as u64);
            assert_eq!(decision(&r), want[i]["decision"], "{name}: entry {i} (now)");
        }
        assert_eq!(
            tallies(&now),
            c["tallies"].as_array().unwrap().clone(),
            "{name}"
        );
        // Checked beforehand in parallel (the auditor): every failure, in
        // R-AUDIT-12's order.
        let mut done = Replayer::<Tree>::new();
        for (i, (leaf, verdict)) in parallel_pass(&bytes).into_iter().enumerate() {
            let verification = verdict.map_or(Verification::Now, Verification::Done);
            let r = done.replay(leaf, verification).unwrap();
            assert_eq!(
                decision(&r),
                want[i]["decision"],
                "{name}: entry {i} (done)"
            );
            let judged = r.entry.unwrap();
            let failures: Vec<&str> = judged
                .refused
                .iter()
                .flat_map(|f| f.errors())
                .map(audit_kind)
                .collect();
            assert_eq!(
                failures,
                want[i]["failures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect::<Vec<_>>(),
                "{name}: entry {i}"
            );
        }
        assert_eq!(
            tallies(&done),
            c["tallies"].as_array().unwrap().clone(),
            "{name}"
        );
        assert_eq!(done.tree().root(), now.tree().root());
    }
}

#[test]
fn a_valid_log_replays_the_same_from_a_store_and_builds_its_tree() {
    let v = load("entries.json");
    let bytes: Vec<Vec<u8>> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| hex::decode(e["entry"].as_str().unwrap()).unwrap())
        .collect();
    let root = Hash(
        hex::decode(v["root"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let mut stored = Replayer::<Tree>::new();
    let mut fetched = Replayer::<MemoryHashes>::new();
    let mut kinds = Vec::new();
    for b in &bytes {
        let s = stored
            .replay(Leaf::decode_stored(b), Verification::Previously)
            .unwrap()
            .into_result()
            .unwrap();
        assert!(s.canonical && !s.checked);
        let f = fetched
            .replay_bytes(b, Verification::Now)
            .unwrap()
            .into_result()
            .unwrap();
        assert_eq!(f.checked, f.kind == EntryKind::Pledge);
        kinds.push(f.kind);
    }
    assert_eq!(stored.tree().root(), root);
    assert_eq!(fetched.tree().root(), root);
    let state = stored.into_state();
    let id = Entry::decode(&bytes[0]).unwrap().campaign();
    assert_eq!(state.opened.get(&id), Some(&0));
    let close = kinds
        .iter()
        .position(|k| *k == EntryKind::CampaignClosed)
        .unwrap() as u64;
    assert_eq!(state.closed.get(&id), Some(&close));
    // The closing entry does not change the tally (R-TALLY-12).
    assert_eq!(state.last_change.get(&id), Some(&close));
    assert_eq!(
        fetched.tally(&id).unwrap().unwrap(),
        state
            .ledger
            .campaign(&id)
            .unwrap()
            .tally
            .snapshot()
            .unwrap()
    );
}

#[test]
fn a_verdict_under_a_later_opening_is_not_used_and_bad_bytes_take_their_place() {
    let v = load("entries.json");
    let entry = |i: usize| hex::decode(v["entries"][i]["entry"].as_str().unwrap()).unwrap();
    // A good pledge, and a pledge with its token altered, both before their
    // campaign's opening: verified beforehand under the opening's key, but
    // judged as the rules say, outside the open window only.
    let pledge = entry(1);
    let mut forged = pledge.clone();
    forged[70] ^= 1;
    let bytes = vec![pledge, forged, entry(0), b"not an entry".to_vec()];
    let mut r = Replayer::<MemoryHashes>::new();
    for (i, (leaf, verdict)) in parallel_pass(&bytes).into_iter().enumerate() {
        let with_verdict = verdict.is_some();
        let step = r.replay(leaf, verdict.map_or(Verification::Now, Verification::Done));
        match (i, step.unwrap().into_result()) {
            (0 | 1, Err(ReplayError::Refused(f))) => {
                assert!(with_verdict);
                assert_eq!(
                    f.errors().collect::<Vec<_>>(),
                    vec![&RuleError::UnknownCampaign]
                );
            }
            (2, Ok(j)) => assert_eq!(j.kind, EntryKind::CampaignOpened),
            (3, Err(ReplayError::Undecodable(_))) => {}
            other => panic!("entry {i}: {other:?}"),
        }
    }
    assert_eq!(r.size(), 4);
    assert_eq!(
        r.into_state().opened.values().copied().collect::<Vec<_>>(),
        [2]
    );
}
