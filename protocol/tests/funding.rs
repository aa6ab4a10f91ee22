//! Conditional funding through the ledger rules, and its known answers:
//! funding campaigns' definitions, the new terms kinds, joint tallies, their
//! binary snapshots and statements (SPEC R-CAMP-5, R-PLEDGE-8, R-RULE-10,
//! R-FUND-1…R-FUND-7).
//!
//! Vectors: `vectors/funding.json`. Regenerate with `cargo test -p
//! pledge-protocol --test funding -- --ignored generate_vectors`: it writes
//! `funding-new.json` for review and never overwrites.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, Funding, RevealPolicy};
use pledge_protocol::entry::{CampaignClosed, CampaignOpened, Entry};
use pledge_protocol::funding::{
    FundingSnapshot, FundingStatement, FundingTally, Outcome, allocate, recompute_joint,
};
use pledge_protocol::hash::{CampaignId, Hash, Nullifier};
use pledge_protocol::ledger::{LedgerState, PledgeKeys, RuleError};
use pledge_protocol::pledge::{Amendment, Pledge, PledgeSigningKey, Terms, Withdrawal};
use pledge_protocol::tally::TallySnapshot;
use pledge_protocol::token::{self, IssuerSecretKey, Token};
use serde_json::{Value, json};

fn vectors_dir() -> String {
    format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Value {
    let path = format!("{}/{name}", vectors_dir());
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn issuer() -> IssuerSecretKey {
    let v = load("tokens.json");
    IssuerSecretKey::from_der(&hex::decode(v["issuer_sk_pkcs8"].as_str().unwrap()).unwrap())
        .unwrap()
}

fn params(nonce: u8) -> CampaignParams {
    CampaignParams {
        nonce: [nonce; 16],
        title: "Grève du 8 mars".into(),
        text: "Nous arrêtons le travail le 8 mars.\nSi nous sommes soutenues.".into(),
        action: "strike on 8 March".into(),
        deadline: 1_772_928_000,
        goal: 3,
        threshold_min: 1,
        threshold_max: 10,
        reveal: RevealPolicy::Live,
    }
}

/// A funding campaign: EUR, support levels 30 € and 60 €, pro rata.
fn funding_definition(nonce: u8) -> CampaignDefinition {
    CampaignDefinition::with_funding(
        params(nonce),
        Some(Funding::new(*b"EUR", 2, vec![3000, 6000], 0).unwrap()),
    )
    .unwrap()
}

fn token_for(sk: &IssuerSecretKey, campaign: &CampaignId, key: &PledgeSigningKey) -> Token {
    let pk = sk.public_key();
    let (blinded, state) = token::blind(pk, campaign, &key.public_key()).unwrap();
    let sig = sk.blind_sign(blinded.as_bytes()).unwrap();
    token::finalize(pk, &state, sig.as_bytes(), campaign, &key.public_key()).unwrap()
}

fn key(i: u8) -> PledgeSigningKey {
    PledgeSigningKey::from_seed(&[i; 32])
}

fn nullifier(id: &CampaignId, i: u8) -> Nullifier {
    token::nullifier(id, &key(i).public_key())
}

fn pledge(sk: &IssuerSecretKey, id: CampaignId, i: u8, terms: Terms) -> Entry {
    let k = key(i);
    Entry::Pledge(Pledge::sign(id, token_for(sk, &id, &k), terms, &k).unwrap())
}

fn open(sk: &IssuerSecretKey, def: CampaignDefinition) -> Entry {
    Entry::CampaignOpened(CampaignOpened {
        definition: def,
        issuer_key: sk.public_key().clone(),
    })
}

fn apply(state: &mut LedgerState, keys: &mut PledgeKeys, e: Entry) -> Result<(), RuleError> {
    state.verify_and_apply(e, keys)
}

#[test]
fn a_funding_campaign_counts_all_three_kinds_amends_across_kinds_and_closes() {
    let sk = issuer();
    let def = funding_definition(1);
    let id = def.id();
    let (mut s, mut keys) = (LedgerState::new(), PledgeKeys::new());
    apply(&mut s, &mut keys, open(&sk, def)).unwrap();
    let pledges = [
        (1u8, Terms::threshold(2).unwrap()),
        (2, Terms::supported(2, 3000).unwrap()),
        (3, Terms::supported(3, 6000).unwrap()),
        (4, Terms::fund(2, 5000).unwrap()),
        (5, Terms::fund(3, 2000).unwrap()),
    ];
    for (i, t) in pledges {
        apply(&mut s, &mut keys, pledge(&sk, id, i, t)).unwrap();
    }
    let j = s
        .campaign(&id)
        .unwrap()
        .funding
        .as_ref()
        .unwrap()
        .joint()
        .unwrap();
    // m = 3: cost 0 + 3000 + 6000 = 9000 > F(3) = 7000; m = 2: 3000 ≤ 5000.
    assert_eq!((j.active, j.funds, j.cost, j.demand), (2, 5000, 3000, 3000));
    assert!(
        s.campaign(&id).unwrap().tally.live() == 0,
        "plain tally unused"
    );
    // Pledger 1 switches from acting to funding 4000 at n = 3: F(3) = 11000.
    let a = Amendment::sign(
        id,
        nullifier(&id, 1),
        1,
        Terms::fund(3, 4000).unwrap(),
        &key(1),
    );
    apply(&mut s, &mut keys, Entry::PledgeAmended(a)).unwrap();
    assert_eq!(
        s.live_terms(&nullifier(&id, 1)),
        Some(Terms::fund(3, 4000).unwrap())
    );
    assert_eq!(
        s.live_terms(&nullifier(&id, 3)),
        Some(Terms::supported(3, 6000).unwrap())
    );
    let j = s
        .campaign(&id)
        .unwrap()
        .funding
        .as_ref()
        .unwrap()
        .joint()
        .unwrap();
    // E(2) = {3000} only: |E(2)| < 2; m = 1: 3000 ≤ 0? no (no funder n ≤ 1).
    assert_eq!(j.active, 0);
    // Pledger 1 comes back as a plain actor.
    let a = Amendment::sign(
        id,
        nullifier(&id, 1),
        2,
        Terms::threshold(1).unwrap(),
        &key(1),
    );
    apply(&mut s, &mut keys, Entry::PledgeAmended(a)).unwrap();
    let w = Withdrawal::sign(id, nullifier(&id, 5), 1, &key(5));
    apply(&mut s, &mut keys, Entry::PledgeWithdrawn(w)).unwrap();
    assert_eq!(s.live_terms(&nullifier(&id, 5)), None);
    let c = s.campaign(&id).unwrap();
    let f = c.funding.as_ref().unwrap();
    assert_eq!(f.live(), 4);
    let snap = f.snapshot().unwrap();
    // {act 1, sup 2 @3000, sup 3 @6000, fund 2 @5000}: A = 2, cost 3000.
    assert_eq!(snap.active(), 2);
    assert_eq!(snap.joint().cost, 3000);
    // A plain close (of the empty plain tally) does not match; the funding one does.
    let plain = CampaignClosed::new(id, 5, &TallySnapshot::empty());
    assert_eq!(
        apply(&mut s, &mut keys, Entry::CampaignClosed(plain)),
        Err(RuleError::TallyMismatch)
    );
    let close = CampaignClosed::for_funding(id, 5, &snap);
    apply(&mut s, &mut keys, Entry::CampaignClosed(close)).unwrap();
    assert!(s.campaign(&id).unwrap().closed.is_some());
}

#[test]
fn hostile_terms_are_refused_by_the_rules_and_change_nothing() {
    let sk = issuer();
    let plain = CampaignDefinition::new(params(2)).unwrap();
    let pid = plain.id();
    let def = funding_definition(3);
    let fid = def.id();
    let (mut s, mut keys) = (LedgerState::new(), PledgeKeys::new());
    apply(&mut s, &mut keys, open(&sk, plain)).unwrap();
    apply(&mut s, &mut keys, open(&sk, def)).unwrap();
    let before = s.len();
    for (campaign, terms, want) in [
        (
            pid,
            Terms::supported(2, 3000).unwrap(),
            RuleError::FundingNotAllowed,
        ),
        (
            pid,
            Terms::fund(2, 3000).unwrap(),
            RuleError::FundingNotAllowed,
        ),
        (
            fid,
            Terms::supported(2, 3001).unwrap(),
            RuleError::SupportNotOnMenu,
        ),
        (
            fid,
            Terms::fund(11, 1).unwrap(),
            RuleError::ThresholdOutOfRange,
        ),
        (
            fid,
            Terms::supported(11, 3000).unwrap(),
            RuleError::ThresholdOutOfRange,
        ),
    ] {
        assert_eq!(
            apply(&mut s, &mut keys, pledge(&sk, campaign, 9, terms)),
            Err(want)
        );
    }
    assert_eq!(s.len(), before);
    assert_eq!(
        s.campaign(&fid).unwrap().funding.as_ref().unwrap().live(),
        0
    );
    // A live pledge cannot be amended off the menu or to a plain-only kind
    // elsewhere; the refusal changes nothing.
    apply(
        &mut s,
        &mut keys,
        pledge(&sk, fid, 9, Terms::fund(2, 700).unwrap()),
    )
    .unwrap();
    let bad = Amendment::sign(
        fid,
        nullifier(&fid, 9),
        1,
        Terms::supported(2, 1).unwrap(),
        &key(9),
    );
    assert_eq!(
        apply(&mut s, &mut keys, Entry::PledgeAmended(bad)),
        Err(RuleError::SupportNotOnMenu)
    );
    assert_eq!(
        s.live_terms(&nullifier(&fid, 9)),
        Some(Terms::fund(2, 700).unwrap())
    );
    assert_eq!(s.next_seq(&nullifier(&fid, 9)), Some(1));
    // The plain campaign's pledges keep their old packed state.
    apply(
        &mut s,
        &mut keys,
        pledge(&sk, pid, 10, Terms::threshold(7).unwrap()),
    )
    .unwrap();
    assert_eq!(
        s.live_terms(&nullifier(&pid, 10)),
        Some(Terms::threshold(7).unwrap())
    );
}

// ---------------------------------------------------------------------------
// Known answers
// ---------------------------------------------------------------------------

fn terms_json(t: &Terms) -> Value {
    match *t {
        Terms::Threshold { t } => json!({"kind": "act", "t": t}),
        Terms::SupportedThreshold { t, support } => {
            json!({"kind": "act_if_supported", "t": t, "support": support})
        }
        Terms::Fund { n, amount } => json!({"kind": "fund", "n": n, "amount": amount}),
        _ => unreachable!(),
    }
}

fn terms_from(v: &Value) -> Terms {
    let u = |f: &str| v[f].as_u64().unwrap();
    match v["kind"].as_str().unwrap() {
        "act" => Terms::threshold(u("t") as u32).unwrap(),
        "act_if_supported" => Terms::supported(u("t") as u32, u("support")).unwrap(),
        "fund" => Terms::fund(u("n") as u32, u("amount")).unwrap(),
        k => panic!("{k}"),
    }
}

/// Joint tallies worth pinning: ROUND2's examples, the plain reduction, a
/// split level, pro rata with a remainder, and sums beyond 64 bits.
fn tally_cases() -> Vec<(&'static str, Vec<Terms>)> {
    let act = |t| Terms::threshold(t).unwrap();
    let sup = |t, y| Terms::supported(t, y).unwrap();
    let fund = |n, x| Terms::fund(n, x).unwrap();
    let big = (1u64 << 53) - 1;
    vec![
        ("empty", vec![]),
        (
            "plain_reduction_1_2_2_4_4_4_10",
            [1, 2, 2, 4, 4, 4, 10].map(act).to_vec(),
        ),
        (
            "round2_eligible_not_funded",
            vec![sup(1, 1000), sup(1, 1000), fund(1, 1000)],
        ),
        (
            "funders_pay_nothing_without_support",
            vec![act(1), act(2), fund(1, 500), fund(3, 700)],
        ),
        (
            "pro_rata_with_remainder",
            vec![
                sup(1, 1000),
                sup(2, 2500),
                fund(1, 10000),
                fund(1, 10000),
                fund(2, 10000),
            ],
        ),
        (
            "cheapest_first_across_levels",
            vec![
                act(3),
                sup(2, 3000),
                sup(2, 6000),
                sup(3, 3000),
                fund(2, 4000),
                fund(3, 2500),
            ],
        ),
        (
            "sums_beyond_64_bits",
            vec![fund(1, big); 2049]
                .into_iter()
                .chain([sup(1, big), sup(1, big)])
                .collect(),
        ),
    ]
}

fn case_json(name: &str, terms: &[Terms]) -> Value {
    let mut actors: Vec<(u32, u64, u64)> = Vec::new();
    let mut funders: Vec<(u32, u64, u128)> = Vec::new();
    for t in terms {
        match *t {
            Terms::Fund { n, amount } => match funders.iter_mut().find(|f| f.0 == n) {
                Some(f) => {
                    f.1 += 1;
                    f.2 += u128::from(amount);
                }
                None => funders.push((n, 1, u128::from(amount))),
            },
            _ => {
                let (t, y) = (t.threshold_value(), t.support().unwrap());
                match actors.iter_mut().find(|a| (a.0, a.1) == (t, y)) {
                    Some(a) => a.2 += 1,
                    None => actors.push((t, y, 1)),
                }
            }
        }
    }
    actors.sort_unstable();
    funders.sort_unstable();
    let snap = FundingSnapshot::new(actors, funders).unwrap();
    let j = recompute_joint(terms).unwrap();
    assert_eq!(snap.joint(), &j);
    let st = FundingStatement::new(
        "pledge.example/log",
        42,
        CampaignId([0x5a; 32]),
        snap.clone(),
    )
    .unwrap();
    let root = Hash([0x11; 32]);
    let pledges: Vec<(Nullifier, Terms)> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                Nullifier(pledge_protocol::hash::sha256(&[&(i as u64).to_be_bytes()])),
                *t,
            )
        })
        .collect();
    let (_, out) = allocate(&root, &pledges, false).unwrap();
    // The informative hint of R-FUND-2 from an incremental tally.
    let mut ys: Vec<u64> = terms
        .iter()
        .filter_map(Terms::support)
        .filter(|&y| y > 0)
        .collect();
    ys.sort_unstable();
    ys.dedup();
    let t_max = terms.iter().map(Terms::threshold_value).max().unwrap_or(1);
    let mut incremental = FundingTally::new(t_max, &ys).unwrap();
    for t in terms {
        incremental.add(t).unwrap();
    }
    let next = incremental
        .next_funding()
        .unwrap()
        .map(|n| json!({"actors": n.actors, "more_funds": n.more_funds.to_string()}));
    let outcomes: Vec<Value> = out
        .iter()
        .map(|o| match o {
            Outcome::Acts { support } => json!({"acts": support}),
            Outcome::WaitingForFunds => json!("waiting_for_funds"),
            Outcome::NotActivated => json!("not_activated"),
            Outcome::Owes { due } => json!({"owes": due}),
        })
        .collect();
    // Runs of equal terms as {terms…, "count": k}, so a case of 2,049
    // funders stays one line.
    let mut runs: Vec<(Terms, u64)> = Vec::new();
    for t in terms {
        match runs.last_mut() {
            Some((last, k)) if last == t => *k += 1,
            _ => runs.push((*t, 1)),
        }
    }
    let runs: Vec<Value> = runs
        .iter()
        .map(|(t, k)| {
            let mut v = terms_json(t);
            v["count"] = json!(k);
            v
        })
        .collect();
    // Outcomes as runs too: (outcome, how many in a row).
    let mut out_runs: Vec<(Value, u64)> = Vec::new();
    for o in outcomes {
        match out_runs.last_mut() {
            Some((last, k)) if *last == o => *k += 1,
            _ => out_runs.push((o, 1)),
        }
    }
    let outcomes: Vec<Value> = out_runs
        .into_iter()
        .map(|(o, k)| json!({"outcome": o, "count": k}))
        .collect();
    json!({
        "name": name,
        "terms": runs,
        "active": j.active,
        "funds": j.funds.to_string(),
        "cost": j.cost.to_string(),
        "demand": j.demand.to_string(),
        "snapshot": hex::encode(snap.to_bytes()),
        "digest": snap.digest().to_hex(),
        "statement": st.to_note_body(),
        "final_root": root.to_hex(),
        "outcomes": outcomes,
        "next_funding": next,
    })
}

fn vectors_json() -> Value {
    let plain = CampaignDefinition::new(params(1)).unwrap();
    let def = funding_definition(1);
    let surplus = CampaignDefinition::with_funding(
        params(1),
        Some(Funding::new(*b"JPY", 0, vec![], 1).unwrap()),
    )
    .unwrap();
    let terms = [
        Terms::threshold(5).unwrap(),
        Terms::supported(5, 3000).unwrap(),
        Terms::fund(1000, 50_000).unwrap(),
    ];
    json!({
        "source": "pledge SPEC §4, §6, §9 (R-CAMP-5, R-PLEDGE-8, R-FUND-1..7); generated by protocol/tests/funding.rs. In `tallies`, terms and outcomes are runs ({…, count}); pledge i (0-based, in the order of the expanded terms) has nullifier SHA-256(i as u64 big-endian), and outcomes are computed with final_root (R-FUND-4, R-FUND-5); next_funding is R-FUND-2's informative hint (null when no larger group can act).",
        "definitions": [
            {"name": "plain_v1", "encoding": hex::encode(plain.encode()), "id": plain.id().to_hex()},
            {"name": "funding_eur_3000_6000", "encoding": hex::encode(def.encode()), "id": def.id().to_hex()},
            {"name": "funding_jpy_no_levels_surplus_to_fund", "encoding": hex::encode(surplus.encode()), "id": surplus.id().to_hex()},
        ],
        "terms": terms.iter().map(|t| json!({"terms": terms_json(t), "encoding": hex::encode(t.encode())})).collect::<Vec<_>>(),
        "tallies": tally_cases().iter().map(|(n, t)| case_json(n, t)).collect::<Vec<_>>(),
    })
}

#[test]
fn known_answers_match_the_vectors() {
    let v = load("funding.json");
    // Recomputing everything gives the file, byte for byte.
    assert_eq!(vectors_json(), v);
    // And each recorded encoding decodes to what it says.
    for d in v["definitions"].as_array().unwrap() {
        let bytes = hex::decode(d["encoding"].as_str().unwrap()).unwrap();
        let def = CampaignDefinition::decode(&bytes).unwrap();
        assert_eq!(def.id().to_hex(), d["id"].as_str().unwrap());
        assert_eq!(def.encode(), bytes);
    }
    for t in v["terms"].as_array().unwrap() {
        let bytes = hex::decode(t["encoding"].as_str().unwrap()).unwrap();
        assert_eq!(Terms::decode(&bytes).unwrap(), terms_from(&t["terms"]));
    }
    for c in v["tallies"].as_array().unwrap() {
        let snap =
            FundingSnapshot::from_bytes(&hex::decode(c["snapshot"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(snap.active(), c["active"].as_u64().unwrap());
        assert_eq!(snap.digest().to_hex(), c["digest"].as_str().unwrap());
        let st = FundingStatement::parse_note_body(c["statement"].as_str().unwrap()).unwrap();
        assert_eq!(st.snapshot(), &snap);
    }
}

#[test]
#[ignore = "vector generator: run explicitly, review, rename"]
fn generate_vectors() {
    let path = format!("{}/funding-new.json", vectors_dir());
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&vectors_json()).unwrap() + "\n",
    )
    .unwrap();
    eprintln!("wrote {path}");
}
