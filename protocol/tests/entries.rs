//! Ledger entries and ledger rules: known-answer vectors for every entry kind,
//! failure vectors named by how they fail (decoding and rules), and property
//! tests for the encode/decode round trip.
//!
//! Vectors: `vectors/entries.json` (a valid log of every kind),
//! `vectors/entry_failures.json` (bytes that must not decode),
//! `vectors/rule_failures.json` (entries that decode but break a rule).
//! Regenerate with `cargo test -p pledge-protocol --test entries -- --ignored
//! generate_vectors`: it writes `*-new.json` for review and never overwrites.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::audit_kind;

use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, RevealPolicy};
use pledge_protocol::entry::{CampaignClosed, CampaignOpened, Entry};
use pledge_protocol::hash::{CampaignId, Nullifier};
use pledge_protocol::ledger::{LedgerState, PledgeKeys, RuleError};
use pledge_protocol::merkle;
use pledge_protocol::pledge::{Amendment, Pledge, PledgeSigningKey, Terms, Withdrawal};
use pledge_protocol::tally::TallySnapshot;
use pledge_protocol::token::{self, IssuerSecretKey, Token};
use proptest::prelude::*;
use serde_json::{Value, json};

fn vectors_dir() -> String {
    format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Value {
    let path = format!("{}/{name}", vectors_dir());
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing")),
    )
    .unwrap()
}

/// The fixed issuer key of `tokens.json` (so this file needs no key generation).
fn issuer() -> IssuerSecretKey {
    IssuerSecretKey::from_der(&hx(&load("tokens.json"), "issuer_sk_pkcs8")).unwrap()
}

fn definition(nonce: u8, t_min: u32, t_max: u32) -> CampaignDefinition {
    CampaignDefinition::new(CampaignParams {
        nonce: [nonce; 16],
        title: "Grève du 8 mars".into(),
        text: "Nous arrêtons le travail le 8 mars.\nSi nous sommes assez nombreuses.".into(),
        action: "strike on 8 March".into(),
        deadline: 1_772_928_000,
        goal: 3,
        threshold_min: t_min,
        threshold_max: t_max,
        reveal: RevealPolicy::Live,
    })
    .unwrap()
}

/// A token for `campaign` bound to `key`, issued by `sk` through the real
/// blind/sign/finalize path.
fn token_for(sk: &IssuerSecretKey, campaign: &CampaignId, key: &PledgeSigningKey) -> Token {
    let pk = sk.public_key();
    let (blinded, state) = token::blind(pk, campaign, &key.public_key()).unwrap();
    let sig = sk.blind_sign(blinded.as_bytes()).unwrap();
    token::finalize(pk, &state, sig.as_bytes(), campaign, &key.public_key()).unwrap()
}

fn pledge_key(i: u8) -> PledgeSigningKey {
    PledgeSigningKey::from_seed(&[i; 32])
}

/// A valid log with every entry kind: open, 4 pledges, an amendment, a
/// withdrawal, close. Signatures of RFC 9474 are randomized, so this is the
/// generator's input, not the known answer: the known answer is the bytes
/// recorded in `entries.json`.
fn sample_log(sk: &IssuerSecretKey) -> Vec<Entry> {
    let def = definition(1, 1, 10);
    let id = def.id();
    let mut log = vec![Entry::CampaignOpened(CampaignOpened {
        definition: def,
        issuer_key: sk.public_key().clone(),
    })];
    for (i, t) in [(1u8, 2u32), (2, 2), (3, 3), (4, 9)] {
        let k = pledge_key(i);
        let tok = token_for(sk, &id, &k);
        log.push(Entry::Pledge(
            Pledge::sign(id, tok, Terms::threshold(t).unwrap(), &k).unwrap(),
        ));
    }
    let n1 = token::nullifier(&id, &pledge_key(1).public_key());
    let n4 = token::nullifier(&id, &pledge_key(4).public_key());
    log.push(Entry::PledgeAmended(Amendment::sign(
        id,
        n1,
        1,
        Terms::threshold(1).unwrap(),
        &pledge_key(1),
    )));
    log.push(Entry::PledgeWithdrawn(Withdrawal::sign(
        id,
        n4,
        1,
        &pledge_key(4),
    )));
    log.push(Entry::CampaignClosed(CampaignClosed::new(
        id,
        5,
        &TallySnapshot::from_buckets(vec![(1, 1), (2, 1), (3, 1)]).unwrap(),
    )));
    log
}

fn replay(entries: &[Entry]) -> Result<(LedgerState, PledgeKeys), (usize, RuleError)> {
    let mut state = LedgerState::new();
    let mut keys = PledgeKeys::new();
    for (i, e) in entries.iter().enumerate() {
        state
            .verify_and_apply(e.clone(), &mut keys)
            .map_err(|err| (i, err))?;
    }
    Ok((state, keys))
}

#[test]
fn known_answer_log_of_every_kind() {
    let v = load("entries.json");
    let mut decoded = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for e in v["entries"].as_array().unwrap() {
        let bytes = hx(e, "entry");
        let entry = Entry::decode(&bytes).unwrap();
        // Canonical: re-encoding gives the same bytes, so the leaf hash is defined.
        assert_eq!(entry.encode().unwrap(), bytes, "{}", e["name"]);
        assert_eq!(
            entry.leaf_hash().unwrap().to_hex(),
            e["leaf_hash"].as_str().unwrap()
        );
        assert_eq!(
            entry.campaign().to_hex(),
            e["campaign_id"].as_str().unwrap()
        );
        match e.get("nullifier").and_then(Value::as_str) {
            Some(n) => assert_eq!(entry.nullifier().unwrap().to_hex(), n),
            None => assert!(entry.nullifier().is_none()),
        }
        kinds.insert(entry.kind() as u8);
        decoded.push(entry);
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);

    // The whole log is valid, and the tally at close is the recorded one.
    let (state, _) = replay(&decoded).unwrap();
    let id = decoded[0].campaign();
    let c = state.campaign(&id).unwrap();
    assert!(c.closed.is_some());
    assert_eq!(c.tally.live(), v["live"].as_u64().unwrap());
    assert_eq!(c.tally.active(), v["active"].as_u64().unwrap());

    // The Merkle root over the leaves is the recorded one.
    let mut tree = merkle::Tree::new();
    for e in &decoded {
        tree.append(e.leaf_hash().unwrap()).unwrap();
    }
    assert_eq!(tree.root().to_hex(), v["root"].as_str().unwrap());
}

#[test]
fn failure_vectors_do_not_decode() {
    let v = load("entry_failures.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let err = Entry::decode(&hx(c, "entry")).expect_err(name);
        let want = c["error"].as_str().unwrap();
        assert!(
            format!("{err:?}").contains(want),
            "{name}: got {err:?}, want {want}"
        );
    }
}

/// Each rule vector is a prefix of valid entries followed by one that breaks a
/// rule; the state must refuse it with the named error and stay unchanged.
#[test]
fn rule_failure_vectors_are_refused_and_change_nothing() {
    let v = load("rule_failures.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let mut entries: Vec<Entry> = c["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Entry::decode(&hex::decode(e.as_str().unwrap()).unwrap()).unwrap())
            .collect();
        let bad = entries.pop().unwrap();
        let (mut state, mut keys) =
            replay(&entries).unwrap_or_else(|e| panic!("{name}: prefix {e:?}"));
        let before = format!("{state:?}");
        let err = state
            .verify_and_apply(bad.clone(), &mut keys)
            .expect_err(name);
        assert!(
            format!("{err:?}").starts_with(c["error"].as_str().unwrap()),
            "{name}: got {err:?}"
        );
        assert_eq!(format!("{state:?}"), before, "{name}: state changed");
        // The stateful check alone agrees unless the entry fails only its
        // stateless checks.
        match state.check(&bad) {
            Ok(()) => assert!(
                matches!(err, RuleError::BadToken | RuleError::BadPledgeSignature),
                "{name}: {err:?} but the stateful rules pass"
            ),
            Err(e) => assert_eq!(e, err, "{name}"),
        }
    }
}

#[test]
fn amendments_and_withdrawals_update_the_tally_incrementally() {
    let sk = issuer();
    let log = sample_log(&sk);
    let (state, _) = replay(&log[..log.len() - 1]).unwrap();
    let id = log[0].campaign();
    let c = state.campaign(&id).unwrap();
    // thresholds after amend/withdraw: {1, 2, 3} → A = 3.
    assert_eq!(
        c.tally.histogram().collect::<Vec<_>>(),
        vec![(1, 1), (2, 1), (3, 1)]
    );
    assert_eq!(c.tally.active(), 3);
    assert_eq!(c.pledges, 4);
    let n1 = token::nullifier(&id, &pledge_key(1).public_key());
    assert_eq!(state.next_seq(&n1), Some(2));
    let n4 = token::nullifier(&id, &pledge_key(4).public_key());
    assert!(state.is_spent(&n4));
    assert_eq!(
        state.next_seq(&n4),
        None,
        "withdrawn pledges take no more changes"
    );
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

fn arb_terms() -> impl Strategy<Value = Terms> {
    (1u32..=u32::MAX).prop_map(|t| Terms::threshold(t).unwrap())
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    let amend = (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        1u32..,
        arb_terms(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(c, n, seq, terms, s)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&s);
            Entry::PledgeAmended(Amendment {
                campaign: CampaignId(c),
                nullifier: Nullifier(n),
                seq,
                terms,
                signature,
            })
        });
    let withdraw =
        (any::<[u8; 32]>(), any::<[u8; 32]>(), 1u32.., any::<u8>()).prop_map(|(c, n, seq, s)| {
            Entry::PledgeWithdrawn(Withdrawal {
                campaign: CampaignId(c),
                nullifier: Nullifier(n),
                seq,
                signature: [s; 64],
            })
        });
    let closed = (
        any::<[u8; 32]>(),
        any::<u64>(),
        proptest::collection::btree_map(1u32..1000, 1u64..1000, 0..20),
    )
        .prop_map(|(c, tokens, hist)| {
            Entry::CampaignClosed(CampaignClosed::new(
                CampaignId(c),
                tokens,
                &TallySnapshot::from_buckets(hist.into_iter().collect()).unwrap(),
            ))
        });
    let pledge = (any::<u8>(), any::<[u8; 32]>(), arb_terms(), any::<u8>()).prop_map(
        |(k, c, terms, fill)| {
            let key = pledge_key(k);
            let tok = Token {
                pledge_pk: key.public_key(),
                randomizer: [fill; 32],
                signature: [fill; 256],
            };
            Entry::Pledge(Pledge::sign(CampaignId(c), tok, terms, &key).unwrap())
        },
    );
    prop_oneof![amend, withdraw, closed, pledge]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn entries_round_trip(entry in arb_entry()) {
        let bytes = entry.encode().unwrap();
        prop_assert_eq!(Entry::decode(&bytes).unwrap(), entry);
    }

    #[test]
    fn any_truncation_or_extension_is_refused(entry in arb_entry(), cut in any::<prop::sample::Index>(), extra in any::<u8>()) {
        let bytes = entry.encode().unwrap();
        let n = cut.index(bytes.len());
        prop_assert!(Entry::decode(&bytes[..n]).is_err());
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert!(Entry::decode(&longer).is_err());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(e) = Entry::decode(&bytes) {
            prop_assert_eq!(e.encode().unwrap(), bytes);
        }
    }
}

// ---------------------------------------------------------------------------
// Vector generator (writes *-new.json for review; never overwrites)
// ---------------------------------------------------------------------------

fn write_new(name: &str, v: &Value) {
    let path = format!("{}/{name}-new.json", vectors_dir());
    std::fs::write(&path, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
    eprintln!("wrote {path}");
}

fn hexs(e: &Entry) -> String {
    hex::encode(e.encode().unwrap())
}

#[test]
#[ignore = "vector generator: run explicitly, review, rename"]
fn generate_vectors() {
    let sk = issuer();
    let log = sample_log(&sk);
    let (state, _) = replay(&log).unwrap();
    let id = log[0].campaign();
    let names = [
        "campaign_opened",
        "pledge_t2",
        "pledge_t2_b",
        "pledge_t3",
        "pledge_t9",
        "amend_t2_to_t1",
        "withdraw_t9",
        "campaign_closed",
    ];
    let mut tree = merkle::Tree::new();
    let entries: Vec<Value> = log
        .iter()
        .zip(names)
        .map(|(e, name)| {
            tree.append(e.leaf_hash().unwrap()).unwrap();
            let mut v = json!({
                "name": name,
                "entry": hexs(e),
                "leaf_hash": e.leaf_hash().unwrap().to_hex(),
                "campaign_id": e.campaign().to_hex(),
            });
            if let Some(n) = e.nullifier() {
                v["nullifier"] = json!(n.to_hex());
            }
            v
        })
        .collect();
    let c = state.campaign(&id).unwrap();
    write_new(
        "entries",
        &json!({
            "source": "pledge SPEC §4, §6, §7 (R-CAMP-1/2, R-PLEDGE-3..7, R-ENTRY-1..4), issuer key of tokens.json, pledge keys from seeds [i;32]",
            "entries": entries,
            "live": c.tally.live(),
            "active": c.tally.active(),
            "root": tree.root().to_hex(),
        }),
    );

    // Decoding failures: mutations of the valid entries.
    let b = |i: usize| log[i].encode().unwrap();
    let with = |i: usize, f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = b(i);
        f(&mut v);
        hex::encode(v)
    };
    // Offsets inside a Pledge: 2 header, 32 campaign, 32 pk, 32 randomizer, 256 sig,
    // then terms (kind u8, len u16, t u32), then 64 signature.
    let terms_at = 2 + 32 + 320;
    // Offsets inside CampaignOpened: 2 header, 1 version, 16 nonce, title len u16.
    let title_at = 2 + 1 + 16 + 2;
    let def_len = log[0].encode().unwrap().len() - 344; // issuer key: len u16 + 342
    let failures = json!({
        "source": "pledge SPEC §3, §4, §6, §7: each case is a valid entry of entries.json with one defect",
        "cases": [
            {"name": "entry_empty", "entry": "", "error": "Truncated"},
            {"name": "entry_trailing_byte", "entry": with(1, &|v| v.push(0)), "error": "TrailingBytes(1)"},
            {"name": "entry_truncated_signature", "entry": with(1, &|v| { v.pop(); }), "error": "Truncated"},
            {"name": "entry_unknown_version", "entry": with(1, &|v| v[0] = 2), "error": "UnsupportedVersion(2)"},
            {"name": "entry_version_zero", "entry": with(1, &|v| v[0] = 0), "error": "UnsupportedVersion(0)"},
            {"name": "entry_unknown_kind", "entry": with(1, &|v| v[1] = 6), "error": "UnknownTag { field: \"entry.kind\", tag: 6 }"},
            {"name": "entry_kind_zero", "entry": with(1, &|v| v[1] = 0), "error": "UnknownTag { field: \"entry.kind\", tag: 0 }"},
            {"name": "entry_kind_swapped_amend_as_withdraw", "entry": with(5, &|v| v[1] = 4), "error": "TrailingBytes"},
            {"name": "pledge_terms_unknown_kind", "entry": with(1, &|v| v[terms_at] = 5), "error": "UnknownTag { field: \"terms.kind\", tag: 5 }"},
            {"name": "pledge_threshold_zero", "entry": with(1, &|v| v[terms_at + 3..terms_at + 7].copy_from_slice(&[0, 0, 0, 0])), "error": "OutOfRange { field: \"terms.threshold\""},
            {"name": "pledge_terms_body_padded", "entry": with(1, &|v| { v[terms_at + 2] = 5; v.insert(terms_at + 7, 0); }), "error": "TrailingBytes(1)"},
            {"name": "pledge_pk_small_order", "entry": with(1, &|v| { let mut z = [0u8; 32]; z[0] = 1; v[34..66].copy_from_slice(&z); }), "error": "Malformed { field: \"pledge_pk\""},
            {"name": "amend_seq_zero", "entry": with(5, &|v| v[66..70].copy_from_slice(&[0, 0, 0, 0])), "error": "OutOfRange { field: \"seq\""},
            {"name": "withdraw_seq_zero", "entry": with(6, &|v| v[66..70].copy_from_slice(&[0, 0, 0, 0])), "error": "OutOfRange { field: \"seq\""},
            {"name": "campaign_definition_version_2", "entry": with(0, &|v| v[2] = 2), "error": "UnsupportedVersion(2)"},
            {"name": "campaign_title_control_char", "entry": with(0, &|v| v[title_at] = b'\t'), "error": "BadText(\"title\")"},
            {"name": "campaign_title_invalid_utf8", "entry": with(0, &|v| v[title_at] = 0xff), "error": "BadText(\"title\")"},
            {"name": "campaign_reveal_unknown", "entry": with(0, &|v| v[def_len - 1] = 3), "error": "UnknownTag { field: \"reveal_policy\", tag: 3 }"},
            {"name": "campaign_threshold_min_above_max", "entry": with(0, &|v| v[def_len - 9..def_len - 5].copy_from_slice(&[0, 0, 0, 11])), "error": "OutOfRange { field: \"threshold_min\""},
            {"name": "campaign_issuer_key_truncated", "entry": with(0, &|v| { v.truncate(v.len() - 1); }), "error": "Truncated"},
            {"name": "closed_digest_truncated", "entry": with(7, &|v| { v.pop(); }), "error": "Truncated { field: \"closed.tally_digest\" }"},
        ]
    });
    write_new("entry_failures", &failures);

    // Rule failures: valid prefixes followed by one bad entry.
    let def = definition(1, 1, 10);
    let open = log[0].clone();
    let p1 = log[1].clone();
    let other_sk = IssuerSecretKey::generate().unwrap();
    let k9 = pledge_key(9);
    let foreign_token = token_for(&other_sk, &id, &k9);
    let foreign =
        Entry::Pledge(Pledge::sign(id, foreign_token, Terms::threshold(2).unwrap(), &k9).unwrap());
    let k8 = pledge_key(8);
    let good8 = token_for(&sk, &id, &k8);
    let out_of_range =
        Entry::Pledge(Pledge::sign(id, good8.clone(), Terms::threshold(11).unwrap(), &k8).unwrap());
    let mut bad_sig = Pledge::sign(id, good8.clone(), Terms::threshold(2).unwrap(), &k8).unwrap();
    bad_sig.terms = Terms::threshold(3).unwrap();
    let mut bad_rand = Pledge::sign(id, good8.clone(), Terms::threshold(2).unwrap(), &k8).unwrap();
    bad_rand.token.randomizer[0] ^= 1;
    let n1 = token::nullifier(&id, &pledge_key(1).public_key());
    let n8 = token::nullifier(&id, &k8.public_key());
    let amend = |seq, t, k: &PledgeSigningKey, n| {
        Entry::PledgeAmended(Amendment::sign(id, n, seq, Terms::threshold(t).unwrap(), k))
    };
    let withdraw =
        |seq, k: &PledgeSigningKey, n| Entry::PledgeWithdrawn(Withdrawal::sign(id, n, seq, k));
    let close = |tokens, hist: Vec<(u32, u64)>| {
        Entry::CampaignClosed(CampaignClosed::new(
            id,
            tokens,
            &TallySnapshot::from_buckets(hist).unwrap(),
        ))
    };
    let unknown_def = definition(2, 1, 10);
    let case = |name: &str, entries: Vec<&Entry>, error: &str| json!({"name": name, "entries": entries.iter().map(|e| hexs(e)).collect::<Vec<_>>(), "error": error});
    let p8 = Entry::Pledge(Pledge::sign(id, good8, Terms::threshold(2).unwrap(), &k8).unwrap());
    let cases = vec![
        case(
            "campaign_opened_twice",
            vec![&open, &open],
            "CampaignExists",
        ),
        case(
            "pledge_unknown_campaign",
            vec![&Entry::Pledge({
                let k = pledge_key(7);
                let t = token_for(&sk, &unknown_def.id(), &k);
                Pledge::sign(unknown_def.id(), t, Terms::threshold(2).unwrap(), &k).unwrap()
            })],
            "UnknownCampaign",
        ),
        case("pledge_double_spend", vec![&open, &p1, &p1], "DoubleSpend"),
        case(
            "pledge_token_from_other_key",
            vec![&open, &foreign],
            "BadToken",
        ),
        case(
            "pledge_randomizer_altered",
            vec![&open, &Entry::Pledge(bad_rand)],
            "BadToken",
        ),
        case(
            "pledge_terms_altered_after_signing",
            vec![&open, &Entry::Pledge(bad_sig)],
            "BadPledgeSignature",
        ),
        case(
            "pledge_threshold_above_range",
            vec![&open, &out_of_range],
            "ThresholdOutOfRange",
        ),
        case(
            "amend_wrong_key",
            vec![&open, &p1, &amend(1, 3, &k8, n1)],
            "BadPledgeSignature",
        ),
        case(
            "amend_seq_replayed",
            vec![
                &open,
                &p1,
                &amend(1, 3, &pledge_key(1), n1),
                &amend(1, 3, &pledge_key(1), n1),
            ],
            "BadSequence",
        ),
        case(
            "amend_seq_skipped",
            vec![&open, &p1, &amend(2, 3, &pledge_key(1), n1)],
            "BadSequence",
        ),
        case(
            "amend_unknown_nullifier",
            vec![&open, &p1, &amend(1, 3, &k8, n8)],
            "UnknownPledge",
        ),
        case(
            "amend_after_withdraw",
            vec![
                &open,
                &p1,
                &withdraw(1, &pledge_key(1), n1),
                &amend(2, 3, &pledge_key(1), n1),
            ],
            "Withdrawn",
        ),
        case(
            "amend_threshold_above_range",
            vec![&open, &p1, &amend(1, 11, &pledge_key(1), n1)],
            "ThresholdOutOfRange",
        ),
        case(
            "withdraw_twice",
            vec![
                &open,
                &p1,
                &withdraw(1, &pledge_key(1), n1),
                &withdraw(2, &pledge_key(1), n1),
            ],
            "Withdrawn",
        ),
        case(
            "pledge_after_close",
            vec![&open, &p1, &close(1, vec![(2, 1)]), &p8],
            "CampaignClosed",
        ),
        case(
            "close_wrong_tally",
            vec![&open, &p1, &close(1, vec![(3, 1)])],
            "TallyMismatch",
        ),
        case(
            "close_more_pledges_than_tokens",
            vec![&open, &p1, &p8, &close(1, vec![(2, 2)])],
            "MorePledgesThanTokens",
        ),
        case(
            "close_twice",
            vec![&open, &p1, &close(1, vec![(2, 1)]), &close(1, vec![(2, 1)])],
            "CampaignClosed",
        ),
    ];
    let _ = def;
    write_new(
        "rule_failures",
        &json!({"source": "pledge SPEC §8 (R-RULE-1..9): valid prefix, then one entry that breaks the named rule", "cases": cases}),
    );
}

// ---------------------------------------------------------------------------
// Rule decisions (SPEC §8 preamble, R-RULE-4, R-RULE-8, R-RULE-9, R-TALLY-12,
// R-AUDIT-12): `vectors/rule_decisions.json`
// ---------------------------------------------------------------------------

/// SPEC R-AUDIT-12: every failure of one entry, in order: a pledge's token
/// and signature (only against a campaign opened earlier), then the first
/// ledger rule it breaks.
fn audit_failures(state: &LedgerState, e: &Entry) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Entry::Pledge(p) = e
        && let Some(c) = state.campaign(&p.campaign)
    {
        if p.token.verify(&c.issuer_key, &p.campaign).is_err() {
            out.push("bad_token");
        }
        if !p.verify_pledge_signature() {
            out.push("bad_pledge_signature");
        }
    }
    if let Err(err) = state.check(e) {
        out.push(audit_kind(&err));
    }
    out
}

/// Replays `entries`: each entry's decision (`"valid"` or the rule error),
/// its auditor failures, and each campaign's last change size (R-TALLY-12).
fn decide(entries: &[Entry]) -> (LedgerState, Vec<Value>, Vec<(CampaignId, u64)>) {
    let mut state = LedgerState::new();
    let mut keys = PledgeKeys::new();
    let mut decisions = Vec::new();
    let mut last: Vec<(CampaignId, u64)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let failures = audit_failures(&state, e);
        let decision = match state.verify_and_apply(e.clone(), &mut keys) {
            Ok(()) => {
                if !matches!(e, Entry::CampaignClosed(_)) {
                    let id = e.campaign();
                    last.retain(|(c, _)| *c != id);
                    last.push((id, i as u64 + 1));
                }
                "valid".to_owned()
            }
            Err(err) => format!("{err:?}"),
        };
        assert_eq!(
            failures.is_empty(),
            decision == "valid",
            "entry {i}: {decision} but failures {failures:?}"
        );
        decisions.push(json!({"decision": decision, "failures": failures}));
    }
    (state, decisions, last)
}

fn tally_json(state: &LedgerState, last: &[(CampaignId, u64)]) -> Vec<Value> {
    let mut out: Vec<Value> = last
        .iter()
        .map(|(id, at)| {
            let s = state.campaign(id).unwrap().tally.snapshot().unwrap();
            json!({"campaign": id.to_hex(), "live": s.live(), "active": s.active(),
                   "buckets": s.buckets(), "last_change": at})
        })
        .collect();
    out.sort_by_key(|v| v["campaign"].as_str().unwrap().to_owned());
    out
}

#[test]
fn rule_decision_vectors() {
    let v = load("rule_decisions.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    let mut refused = 0;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let entries: Vec<Entry> = c["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Entry::decode(&hex::decode(e.as_str().unwrap()).unwrap()).unwrap())
            .collect();
        let (state, decisions, last) = decide(&entries);
        let want = c["decisions"].as_array().unwrap();
        assert_eq!(decisions.len(), want.len(), "{name}");
        for (i, (got, want)) in decisions.iter().zip(want).enumerate() {
            let wd = want["decision"].as_str().unwrap();
            let gd = got["decision"].as_str().unwrap();
            assert!(gd.starts_with(wd), "{name} entry {i}: {gd} vs {wd}");
            assert_eq!(got["failures"], want["failures"], "{name} entry {i}");
            if wd != "valid" {
                refused += 1;
            }
        }
        assert_eq!(
            Value::from(tally_json(&state, &last)),
            c["tallies"],
            "{name}"
        );
    }
    assert!(refused >= 8);
}

#[test]
#[ignore = "vector generator: run explicitly, review, rename"]
fn generate_rule_decision_vectors() {
    let sk = issuer();
    let log = sample_log(&sk);
    let id = log[0].campaign();
    let open = log[0].clone();
    let p1 = log[1].clone(); // threshold 2, key 1
    let n1 = token::nullifier(&id, &pledge_key(1).public_key());
    let pledge = |k: u8, t: u32| {
        let key = pledge_key(k);
        let tok = token_for(&sk, &id, &key);
        Pledge::sign(id, tok, Terms::threshold(t).unwrap(), &key).unwrap()
    };
    let p8 = pledge(8, 2);
    let p9 = Entry::Pledge(pledge(9, 3));
    let mut p8_bad_token = p8.clone();
    p8_bad_token.token.randomizer[0] ^= 1;
    let Entry::Pledge(p1_pledge) = &p1 else {
        unreachable!()
    };
    let mut p1_copy = p1_pledge.clone();
    p1_copy.token.signature[7] ^= 1;
    let mut both = pledge(7, 2);
    both.token.signature[9] ^= 1;
    both.terms = Terms::threshold(3).unwrap();
    let other_sk = IssuerSecretKey::generate().unwrap();
    let k6 = pledge_key(6);
    let foreign = Entry::Pledge(
        Pledge::sign(
            id,
            token_for(&other_sk, &id, &k6),
            Terms::threshold(2).unwrap(),
            &k6,
        )
        .unwrap(),
    );
    let p8 = Entry::Pledge(p8);
    let close = |tokens, hist: Vec<(u32, u64)>| {
        Entry::CampaignClosed(CampaignClosed::new(
            id,
            tokens,
            &TallySnapshot::from_buckets(hist).unwrap(),
        ))
    };
    let amend = |seq, t| {
        Entry::PledgeAmended(Amendment::sign(
            id,
            n1,
            seq,
            Terms::threshold(t).unwrap(),
            &pledge_key(1),
        ))
    };
    let withdraw = |seq| Entry::PledgeWithdrawn(Withdrawal::sign(id, n1, seq, &pledge_key(1)));
    let cases: Vec<(&str, &str, Vec<Entry>)> = vec![
        (
            "refused_close_closes_nothing",
            "R-RULE-9: a CampaignClosed with a wrong tally is refused, the campaign stays open, a later close closes it",
            vec![
                open.clone(),
                p1.clone(),
                close(1, vec![(3, 1)]),
                p8.clone(),
                close(2, vec![(2, 2)]),
                p9.clone(),
            ],
        ),
        (
            "refused_spend_spends_nothing",
            "R-RULE-4: a pledge refused for its token spends nothing; the valid pledge of the same nullifier is applied",
            vec![
                open.clone(),
                Entry::Pledge(p8_bad_token.clone()),
                p8.clone(),
            ],
        ),
        (
            "copy_with_a_flipped_rsa_bit",
            "R-AUDIT-12: a copy of a valid pledge with one RSA bit flipped is bad_token and duplicate_nullifier",
            vec![open.clone(), p1.clone(), Entry::Pledge(p1_copy)],
        ),
        (
            "bad_token_and_bad_signature",
            "R-AUDIT-6: both stateless checks are reported",
            vec![open.clone(), Entry::Pledge(both)],
        ),
        (
            "only_valid_pledges_count_against_tokens",
            "R-RULE-8: a refused pledge is not a Pledge entry of the campaign",
            vec![open.clone(), p1.clone(), foreign, close(1, vec![(2, 1)])],
        ),
        (
            "pledge_before_its_campaign",
            "R-AUDIT-6: a pledge before its campaign's opening is only outside_open_window, even with a bad token",
            vec![Entry::Pledge(p8_bad_token), open.clone(), p1.clone()],
        ),
        (
            "last_change_counts_amendments_not_the_close",
            "R-TALLY-12: an amendment to the same threshold is a change, CampaignClosed is not",
            vec![
                open.clone(),
                p1.clone(),
                amend(1, 2),
                close(1, vec![(2, 1)]),
            ],
        ),
        (
            "refused_entries_are_not_changes",
            "R-TALLY-12, R-RULE-6: an amendment after a withdrawal is refused and changes nothing",
            vec![open.clone(), p1.clone(), withdraw(1), amend(2, 3)],
        ),
        (
            "pledge_after_valid_close",
            "R-RULE-9: nothing of the campaign after its valid CampaignClosed",
            vec![open, p1, close(1, vec![(2, 1)]), p9],
        ),
    ];
    let out: Vec<Value> = cases
        .iter()
        .map(|(name, rule, entries)| {
            let (state, decisions, last) = decide(entries);
            json!({"name": name, "rule": rule,
                   "entries": entries.iter().map(hexs).collect::<Vec<_>>(),
                   "decisions": decisions,
                   "tallies": tally_json(&state, &last)})
        })
        .collect();
    write_new(
        "rule_decisions",
        &json!({"source": "pledge SPEC §8 preamble, R-RULE-4/8/9, R-TALLY-12, R-AUDIT-6/12: each entry's decision (valid, or the first rule error LedgerState::apply returns with signatures verified), the failures an auditor reports for it (R-AUDIT-12 order), and each campaign's tally and last change size after the log", "cases": out}),
    );
}

/// SPEC R-RULE-3 as a type: a pledge verified under another key than its
/// campaign's (another campaign's, here) is refused when applied, and the
/// state is unchanged; verified under the right key it applies.
#[test]
fn a_pledge_verified_under_another_campaigns_key_is_refused() {
    use pledge_protocol::ledger::VerifiedEntry;
    let sk = issuer();
    let other = IssuerSecretKey::generate().unwrap();
    let log = sample_log(&sk);
    let mut state = LedgerState::new();
    let mut keys = PledgeKeys::new();
    state.verify_and_apply(log[0].clone(), &mut keys).unwrap();
    let Entry::Pledge(p) = &log[1] else {
        panic!("entry 1 is a pledge")
    };
    // A token issued by `other` for this campaign verifies under `other`…
    let k = pledge_key(9);
    let forged = Entry::Pledge(
        Pledge::sign(
            p.campaign,
            token_for(&other, &p.campaign, &k),
            Terms::threshold(2).unwrap(),
            &k,
        )
        .unwrap(),
    );
    let v = VerifiedEntry::verify(forged.clone(), Some(other.public_key()), None).unwrap();
    let before = format!("{state:?}");
    // …but the campaign logged `sk`'s key.
    assert_eq!(state.apply(&v), Err(RuleError::BadToken));
    assert_eq!(format!("{state:?}"), before);
    assert_eq!(
        state.verify_and_apply(forged, &mut keys),
        Err(RuleError::BadToken)
    );
    let good = state.verify(log[1].clone(), &keys).unwrap();
    state.apply(&good).unwrap();
    assert_eq!(state.campaign(&p.campaign).unwrap().pledges, 1);
}

/// The rules keep no pledge keys: an amendment or withdrawal is verified
/// under the key its caller supplies, and only the key its nullifier names
/// (R-TOKEN-3) is accepted, whatever the source.
#[test]
fn an_amendment_is_verified_only_under_the_key_its_nullifier_names() {
    use pledge_protocol::ledger::VerifiedEntry;
    let sk = issuer();
    let log = sample_log(&sk);
    let (mut state, keys) = replay(&log[..5]).unwrap();
    let amend = log[5].clone();
    let withdraw = log[6].clone();
    let (k1, k4, other) = (
        pledge_key(1).public_key(),
        pledge_key(4).public_key(),
        pledge_key(7).public_key(),
    );
    for e in [&amend, &withdraw] {
        assert_eq!(
            VerifiedEntry::verify(e.clone(), None, None).unwrap_err(),
            RuleError::UnknownPledge,
            "no key: the pledge is unknown to the verifier"
        );
        // The key of another pledge, or of no pledge, is not this pledge's.
        for wrong in [&other, if e == &amend { &k4 } else { &k1 }] {
            assert_eq!(
                VerifiedEntry::verify(e.clone(), None, Some(wrong)).unwrap_err(),
                RuleError::BadPledgeSignature
            );
        }
    }
    // An amendment of pledge 1 signed by another key, offered with that key:
    // the key verifies the signature but is not the one nullifier 1 names.
    let id = log[0].campaign();
    let n1 = token::nullifier(&id, &k1);
    let forged = Entry::PledgeAmended(Amendment::sign(
        id,
        n1,
        1,
        Terms::threshold(1).unwrap(),
        &pledge_key(7),
    ));
    assert_eq!(
        VerifiedEntry::verify(forged.clone(), None, Some(&other)).unwrap_err(),
        RuleError::BadPledgeSignature
    );
    assert_eq!(
        state.verify(forged, &keys).unwrap_err(),
        RuleError::BadPledgeSignature
    );
    // The right key, from the caller's own memory of the log.
    assert_eq!(keys.for_entry(&amend), Some(k1));
    let v = VerifiedEntry::verify(amend, None, Some(&k1)).unwrap();
    state.apply(&v).unwrap();
    assert_eq!(state.next_seq(&n1), Some(2));
}

// ---------------------------------------------------------------------------
// Sealed campaigns (SPEC §17.3, R-SEAL-61): a valid sealed log with every
// sealed entry kind, and failure vectors for each of their decoders
// ---------------------------------------------------------------------------

/// The buckets of the sealed sample log.
const SEALED_BUCKETS: [u32; 4] = [1, 10, 100, 1000];

/// A valid sealed log, named: the campaign (3 trustees, k = 2, one early
/// reveal), the trustees' key generation (3 dealings, 3 ready messages),
/// sealed pledges (buckets 0, 2, 3, a null one), a sealed amendment (the
/// first pledge to null: a withdrawal), the early snapshot, trustees 1 and
/// 3's shares, its reveal, the close (the final snapshot), trustees 2 and
/// 3's shares, the final reveal. Seeded: the generator's input; the known
/// answer is the bytes recorded in `sealed_entries.json`.
fn sample_sealed_log(sk: &IssuerSecretKey) -> Vec<(&'static str, Entry)> {
    use pledge_protocol::campaign::Sealed;
    use pledge_protocol::dkg::{Dealing, DkgOutcome, Ready, TrusteeKeyPair};
    use pledge_protocol::entry::{TrusteeMessage, TrusteeMessageKind};
    use pledge_protocol::ledger::dkg_context;
    use pledge_protocol::sealed::{RevealContext, SealedTerms};
    use pledge_protocol::sealed_pledge::{SealedAmendment, SealedPledge};
    use pledge_protocol::sealed_reveal::{
        DecryptionShares, SealedSnapshot, SealedTallyRevealed, aggregate_digest,
    };
    use rand::SeedableRng as _;

    let mut rng = rand::rngs::StdRng::seed_from_u64(61);
    let pairs: Vec<TrusteeKeyPair> = (0..3).map(|_| TrusteeKeyPair::generate(&mut rng)).collect();
    let def = CampaignDefinition::sealed(
        CampaignParams {
            nonce: [61; 16],
            title: "Grève scellée".into(),
            text: "Les seuils restent cachés jusqu'à la révélation.".into(),
            action: "strike on 8 March".into(),
            deadline: 1_772_928_000,
            goal: 3,
            threshold_min: 1,
            threshold_max: 1000,
            reveal: RevealPolicy::Sealed,
        },
        Sealed::new(
            SEALED_BUCKETS.to_vec(),
            2,
            pairs.iter().map(|p| p.public_key().to_bytes()).collect(),
            vec![1_772_000_000],
        )
        .unwrap(),
    )
    .unwrap();
    let id = def.id();
    let mut state = LedgerState::new();
    let mut keys = PledgeKeys::new();
    let mut log: Vec<(&'static str, Entry)> = Vec::new();
    let mut push = |state: &mut LedgerState, name: &'static str, e: Entry| {
        state.verify_and_apply(e.clone(), &mut keys).unwrap();
        log.push((name, e));
    };
    push(
        &mut state,
        "sealed_campaign_opened",
        Entry::CampaignOpened(CampaignOpened {
            definition: def.clone(),
            issuer_key: sk.public_key().clone(),
        }),
    );
    let ctx = dkg_context(&id, &def).unwrap();
    let msg = |kind, body: Vec<u8>| {
        Entry::TrusteeMessage(TrusteeMessage {
            campaign: id,
            kind,
            body,
        })
    };
    let dealings: Vec<Dealing> = pairs
        .iter()
        .zip(1u8..)
        .map(|(kp, i)| Dealing::deal(&ctx, kp, i, &mut rng).unwrap())
        .collect();
    for (d, name) in dealings.iter().zip(["dealing_1", "dealing_2", "dealing_3"]) {
        push(
            &mut state,
            name,
            msg(TrusteeMessageKind::Dealing, d.as_bytes().to_vec()),
        );
    }
    let digest = state
        .campaign(&id)
        .unwrap()
        .sealed
        .as_ref()
        .unwrap()
        .dkg
        .as_ref()
        .unwrap()
        .digest();
    for ((kp, j), name) in pairs
        .iter()
        .zip(1u8..)
        .zip(["ready_1", "ready_2", "ready_3"])
    {
        let r = Ready::sign(&ctx, kp, j, digest).unwrap();
        push(&mut state, name, msg(TrusteeMessageKind::Ready, r.encode()));
    }
    let outcome = DkgOutcome::compute(&ctx, &dealings, &[]).unwrap();
    let joint = outcome.joint_key().clone();
    assert_eq!(state.joint_key(&id), Some(&joint));
    let b = SEALED_BUCKETS.len();
    for (seed, bucket, name) in [
        (11u8, Some(0), "sealed_pledge_bucket_0"),
        (12, Some(2), "sealed_pledge_bucket_2"),
        (13, None, "sealed_pledge_null"),
        (14, Some(3), "sealed_pledge_bucket_3"),
    ] {
        let k = pledge_key(seed);
        let tok = token_for(sk, &id, &k);
        let ctx = SealedPledge::context_of(&id, &tok);
        let terms = SealedTerms::seal(&ctx, &joint, b, bucket, &mut rng).unwrap();
        let p = SealedPledge::sign(id, tok, terms, &k).unwrap();
        push(&mut state, name, Entry::SealedPledge(Box::new(p)));
    }
    let k = pledge_key(11);
    let n = token::nullifier(&id, &k.public_key());
    let actx = SealedAmendment::context_of(&id, &n, 1, &k.public_key());
    let terms = SealedTerms::seal(&actx, &joint, b, None, &mut rng).unwrap();
    push(
        &mut state,
        "sealed_amendment_to_null",
        Entry::SealedAmended(Box::new(SealedAmendment::sign(id, n, 1, terms, &k))),
    );
    let aggregate = |state: &LedgerState| {
        state
            .campaign(&id)
            .unwrap()
            .sealed
            .as_ref()
            .unwrap()
            .aggregate()
            .to_vec()
    };
    let mut reveal =
        |state: &mut LedgerState,
         log_names: [&'static str; 3],
         index: u64,
         trustees: [u8; 2],
         counts: Vec<u64>,
         push: &mut dyn FnMut(&mut LedgerState, &'static str, Entry)| {
            let agg = state
                .campaign(&id)
                .unwrap()
                .sealed
                .as_ref()
                .unwrap()
                .snapshot(index)
                .unwrap()
                .aggregate
                .clone();
            let rctx = RevealContext {
                campaign: *id.as_bytes(),
                size: index,
            };
            for (j, name) in trustees.into_iter().zip(log_names) {
                let x = outcome.secret_share(&pairs[usize::from(j) - 1], j).unwrap();
                let shares = x.decryption_shares(&rctx, &joint, &agg, &mut rng);
                push(
                    state,
                    name,
                    Entry::DecryptionShares(DecryptionShares {
                        campaign: id,
                        snapshot: index,
                        trustee: j,
                        shares,
                    }),
                );
            }
            push(
                state,
                log_names[2],
                Entry::SealedTallyRevealed(SealedTallyRevealed {
                    campaign: id,
                    snapshot: index,
                    counts,
                }),
            );
        };
    let early = state.len();
    let digest = aggregate_digest(&aggregate(&state));
    push(
        &mut state,
        "sealed_snapshot",
        Entry::SealedSnapshot(SealedSnapshot {
            campaign: id,
            aggregate_digest: digest,
        }),
    );
    reveal(
        &mut state,
        [
            "shares_1_of_snapshot",
            "shares_3_of_snapshot",
            "revealed_snapshot",
        ],
        early,
        [1, 3],
        vec![0, 0, 1, 1],
        &mut push,
    );
    let close_at = state.len();
    let digest = aggregate_digest(&aggregate(&state));
    push(
        &mut state,
        "sealed_campaign_closed",
        Entry::CampaignClosed(CampaignClosed {
            campaign: id,
            tokens_issued: 4,
            live: 0,
            active: 0,
            tally_digest: digest,
        }),
    );
    reveal(
        &mut state,
        ["shares_2_of_close", "shares_3_of_close", "revealed_close"],
        close_at,
        [2, 3],
        vec![0, 0, 1, 1],
        &mut push,
    );
    log
}

/// The sealed known-answer log: every entry decodes, re-encodes to the same
/// bytes, has the recorded leaf hash, campaign and nullifier; the whole log
/// replays through the rules (key generation, proofs, snapshots, shares,
/// reveals), the reveals give the recorded counts, and the Merkle root is
/// the recorded one. Every sealed entry kind is there.
#[test]
fn known_answer_sealed_log() {
    let v = load("sealed_entries.json");
    let mut decoded = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    let mut sealed_terms = std::collections::BTreeSet::new();
    let mut state = LedgerState::new();
    let mut keys = PledgeKeys::new();
    let mut tree = merkle::Tree::new();
    for e in v["entries"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let bytes = hx(e, "entry");
        let entry = Entry::decode(&bytes).unwrap_or_else(|err| panic!("{name}: {err:?}"));
        assert_eq!(entry.encode().unwrap(), bytes, "{name}");
        assert_eq!(
            entry.leaf_hash().unwrap().to_hex(),
            e["leaf_hash"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            entry.campaign().to_hex(),
            e["campaign_id"].as_str().unwrap()
        );
        match e.get("nullifier").and_then(Value::as_str) {
            Some(n) => assert_eq!(entry.nullifier().unwrap().to_hex(), n, "{name}"),
            None => assert!(entry.nullifier().is_none(), "{name}"),
        }
        kinds.insert(entry.kind() as u8);
        match &entry {
            Entry::SealedPledge(_) => sealed_terms.insert(2),
            Entry::SealedAmended(_) => sealed_terms.insert(3),
            _ => false,
        };
        tree.append(entry.leaf_hash().unwrap()).unwrap();
        state
            .verify_and_apply(entry.clone(), &mut keys)
            .unwrap_or_else(|err| panic!("{name} breaks a rule: {err:?}"));
        decoded.push(entry);
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        // No 4: a sealed campaign has no withdrawal entry (R-SEAL-33).
        vec![1, 2, 3, 5, 8, 9, 10, 11]
    );
    assert_eq!(sealed_terms.into_iter().collect::<Vec<_>>(), vec![2, 3]);
    let id = decoded[0].campaign();
    let sealed = state.campaign(&id).unwrap().sealed.as_ref().unwrap();
    let revealed: Vec<Value> = sealed
        .snapshots
        .iter()
        .map(|s| json!({"snapshot": s.index, "counts": s.revealed}))
        .collect();
    assert_eq!(Value::Array(revealed), v["revealed"]);
    assert_eq!(tree.root().to_hex(), v["root"].as_str().unwrap());
}

/// Every sealed failure vector fails to decode with the named error, and
/// the vectors cover every new decoder.
#[test]
fn sealed_failure_vectors_do_not_decode() {
    let v = load("sealed_entry_failures.json");
    let cases = v["cases"].as_array().unwrap();
    let mut covered = std::collections::BTreeSet::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let err = Entry::decode(&hx(c, "entry")).expect_err(name);
        let want = c["error"].as_str().unwrap();
        assert!(
            format!("{err:?}").contains(want),
            "{name}: got {err:?}, want {want}"
        );
        covered.insert(name.split("__").next().unwrap().to_owned());
    }
    assert_eq!(
        covered.into_iter().collect::<Vec<_>>(),
        [
            "decryption_shares",
            "sealed_amendment",
            "sealed_campaign",
            "sealed_pledge",
            "sealed_snapshot",
            "sealed_tally_revealed",
            "trustee_message",
        ]
    );
}

#[test]
#[ignore = "vector generator: run explicitly, review, rename"]
fn generate_sealed_vectors() {
    use pledge_protocol::sealed::{CIPHERTEXT_LEN, sealed_terms_len};
    let sk = issuer();
    let log = sample_sealed_log(&sk);
    let mut state = LedgerState::new();
    let mut keys = PledgeKeys::new();
    let mut tree = merkle::Tree::new();
    let entries: Vec<Value> = log
        .iter()
        .map(|(name, e)| {
            state.verify_and_apply(e.clone(), &mut keys).unwrap();
            tree.append(e.leaf_hash().unwrap()).unwrap();
            let mut v = json!({
                "name": name,
                "entry": hexs(e),
                "leaf_hash": e.leaf_hash().unwrap().to_hex(),
                "campaign_id": e.campaign().to_hex(),
            });
            if let Some(n) = e.nullifier() {
                v["nullifier"] = json!(n.to_hex());
            }
            v
        })
        .collect();
    let id = log[0].1.campaign();
    let sealed = state.campaign(&id).unwrap().sealed.as_ref().unwrap();
    let revealed: Vec<Value> = sealed
        .snapshots
        .iter()
        .map(|s| json!({"snapshot": s.index, "counts": s.revealed}))
        .collect();
    write_new(
        "sealed_entries",
        &json!({
            "source": "pledge SPEC §17 (R-SEAL-6, R-SEAL-30..37, R-DKG-12, R-DKG-23; R-SEAL-61): a sealed campaign (buckets 1, 10, 100, 1000; 3 trustees, k = 2; one early reveal), its key generation, sealed pledges and an amendment, the early snapshot, shares and reveal, the close, shares and reveal; issuer key of tokens.json, pledge keys from seeds [i;32], trustees and sealing from StdRng seed 61",
            "entries": entries,
            "revealed": revealed,
            "root": tree.root().to_hex(),
        }),
    );

    // Failure vectors: one defect each in a valid sealed entry. The error
    // recorded is the decoder's (its Debug text up to the first field).
    let by_name = |n: &str| {
        log.iter()
            .find(|(name, _)| *name == n)
            .unwrap()
            .1
            .encode()
            .unwrap()
    };
    let find =
        |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle).unwrap();
    let b = SEALED_BUCKETS.len();
    let terms_len = sealed_terms_len(b);
    let pledge = by_name("sealed_pledge_bucket_2");
    let pledge_terms = match &log
        .iter()
        .find(|(n, _)| *n == "sealed_pledge_bucket_2")
        .unwrap()
        .1
    {
        Entry::SealedPledge(p) => p.terms.encode(),
        _ => unreachable!(),
    };
    // Offset of the terms body (its B byte) in the entry.
    let pt = find(&pledge, &pledge_terms);
    let amend = by_name("sealed_amendment_to_null");
    let amend_terms = match &log
        .iter()
        .find(|(n, _)| *n == "sealed_amendment_to_null")
        .unwrap()
        .1
    {
        Entry::SealedAmended(a) => a.terms.encode(),
        _ => unreachable!(),
    };
    let at = find(&amend, &amend_terms);
    let dealing = by_name("dealing_1");
    let snapshot = by_name("sealed_snapshot");
    let shares = by_name("shares_1_of_snapshot");
    let revealed_e = by_name("revealed_snapshot");
    let opened = by_name("sealed_campaign_opened");
    // A point that is not a canonical ristretto255 encoding (s ≥ p), and a
    // scalar ≥ ℓ.
    let bad_point = [0xffu8; 32];
    let mut big_scalar = [0xffu8; 32];
    big_scalar[31] = 0x1f;
    let mutate = |base: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = base.to_vec();
        f(&mut v);
        v
    };
    let set_u16 = |v: &mut Vec<u8>, at: usize, x: usize| {
        v[at..at + 2].copy_from_slice(&u16::try_from(x).unwrap().to_be_bytes());
    };
    // Shares: campaign 32, snapshot u64, trustee u8, B u8 after the 2-byte header.
    let sh_b = 2 + 32 + 8 + 1;
    // Revealed: campaign 32, snapshot u64, B u8.
    let rv_b = 2 + 32 + 8;
    // Trustee message: campaign 32, kind u8, len u16.
    let tm_kind = 2 + 32;
    let tm_len = tm_kind + 1;
    // The sealed block of the definition: find the bucket list.
    let mut block = vec![u8::try_from(b).unwrap()];
    for t in SEALED_BUCKETS {
        block.extend_from_slice(&t.to_be_bytes());
    }
    let sb = find(&opened, &block);
    // Framing, for every entry kind: one byte less, one byte more.
    let framing = |kind: &str, base: &[u8]| {
        vec![
            (
                format!("{kind}__truncated"),
                base[..base.len() - 1].to_vec(),
            ),
            (format!("{kind}__trailing_byte"), [base, &[0]].concat()),
        ]
    };
    // The bucket count byte at `at`: 0, 65, then (`steps` of them) one
    // more and one less than the entry holds.
    let bucket_counts = |kind: &str, base: &[u8], at: usize, steps: usize| {
        let set = |name: &str, f: &dyn Fn(u8) -> u8| {
            (
                format!("{kind}__bucket_count_{name}"),
                mutate(base, &|v| v[at] = f(v[at])),
            )
        };
        let mut out = vec![set("zero", &|_| 0), set("65", &|_| 65)];
        out.extend(
            [set("one_more", &|x| x + 1), set("one_less", &|x| x - 1)]
                .into_iter()
                .take(steps),
        );
        out
    };
    let named = |v: Vec<(&'static str, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        v.into_iter().map(|(n, b)| (n.to_owned(), b)).collect()
    };
    let mut cases = framing("trustee_message", &dealing);
    cases.extend(named(vec![
        (
            "trustee_message__unknown_kind",
            mutate(&dealing, &|v| v[tm_kind] = 4),
        ),
        (
            "trustee_message__kind_zero",
            mutate(&dealing, &|v| v[tm_kind] = 0),
        ),
        (
            "trustee_message__len_above_max",
            mutate(&dealing, &|v| {
                let extra = 2178 - (v.len() - tm_len - 2);
                set_u16(v, tm_len, 2178);
                v.extend(std::iter::repeat_n(0, extra));
            }),
        ),
        (
            "trustee_message__len_short",
            mutate(&dealing, &|v| {
                let len = v.len() - tm_len - 2;
                set_u16(v, tm_len, len - 1);
            }),
        ),
    ]));
    cases.extend(framing("sealed_snapshot", &snapshot));
    cases.extend(framing("decryption_shares", &shares));
    cases.extend(bucket_counts("decryption_shares", &shares, sh_b, 2));
    cases.extend(named(vec![
        (
            "decryption_shares__share_point_not_canonical",
            mutate(&shares, &|v| {
                v[sh_b + 1..sh_b + 33].copy_from_slice(&bad_point)
            }),
        ),
        (
            "decryption_shares__challenge_not_reduced",
            mutate(&shares, &|v| {
                v[sh_b + 33..sh_b + 65].copy_from_slice(&big_scalar)
            }),
        ),
        (
            "decryption_shares__response_not_reduced",
            mutate(&shares, &|v| {
                v[sh_b + 65..sh_b + 97].copy_from_slice(&big_scalar)
            }),
        ),
    ]));
    cases.extend(framing("sealed_tally_revealed", &revealed_e));
    cases.extend(bucket_counts("sealed_tally_revealed", &revealed_e, rv_b, 1));
    cases.extend(framing("sealed_pledge", &pledge));
    cases.extend(named(vec![
        (
            "sealed_pledge__terms_len_short",
            mutate(&pledge, &|v| set_u16(v, pt - 2, terms_len - 1)),
        ),
        (
            "sealed_pledge__terms_len_long",
            mutate(&pledge, &|v| set_u16(v, pt - 2, terms_len + 1)),
        ),
        (
            "sealed_pledge__terms_len_above_max",
            mutate(&pledge, &|v| set_u16(v, pt - 2, sealed_terms_len(64) + 1)),
        ),
    ]));
    cases.extend(bucket_counts("sealed_pledge", &pledge, pt, 0));
    cases.extend(named(vec![
        (
            "sealed_pledge__bucket_count_not_the_length",
            mutate(&pledge, &|v| v[pt] = 3),
        ),
        (
            "sealed_pledge__ciphertext_c1_not_canonical",
            mutate(&pledge, &|v| v[pt + 1..pt + 33].copy_from_slice(&bad_point)),
        ),
        (
            "sealed_pledge__ciphertext_c2_not_canonical",
            mutate(&pledge, &|v| {
                v[pt + 33..pt + 65].copy_from_slice(&bad_point)
            }),
        ),
        (
            "sealed_pledge__proof_commitment_not_canonical",
            mutate(&pledge, &|v| {
                let p = pt + 1 + CIPHERTEXT_LEN * b;
                v[p..p + 32].copy_from_slice(&bad_point);
            }),
        ),
        (
            "sealed_pledge__proof_scalar_not_reduced",
            mutate(&pledge, &|v| {
                let p = pt + terms_len - 32;
                v[p..p + 32].copy_from_slice(&big_scalar);
            }),
        ),
        (
            "sealed_pledge__terms_kind_unknown",
            mutate(&pledge, &|v| v[pt - 3] = 3),
        ),
    ]));
    cases.extend(framing("sealed_amendment", &amend));
    cases.extend(named(vec![
        (
            "sealed_amendment__bucket_count_not_the_length",
            mutate(&amend, &|v| v[at] = 5),
        ),
        (
            "sealed_amendment__ciphertext_not_canonical",
            mutate(&amend, &|v| v[at + 1..at + 33].copy_from_slice(&bad_point)),
        ),
        (
            "sealed_amendment__terms_len_short",
            mutate(&amend, &|v| set_u16(v, at - 2, terms_len - 1)),
        ),
        (
            "sealed_campaign__bucket_count_zero",
            mutate(&opened, &|v| v[sb] = 0),
        ),
        (
            "sealed_campaign__buckets_not_ascending",
            mutate(&opened, &|v| {
                v[sb + 5..sb + 9].copy_from_slice(&1u32.to_be_bytes())
            }),
        ),
        (
            "sealed_campaign__trustee_key_not_canonical",
            mutate(&opened, &|v| {
                // After the buckets: k u8, n u8, then the keys.
                let keys_at = sb + 1 + 4 * b + 2;
                v[keys_at..keys_at + 32].copy_from_slice(&bad_point);
            }),
        ),
        (
            "sealed_campaign__k_above_n",
            mutate(&opened, &|v| v[sb + 1 + 4 * b] = 4),
        ),
    ]));
    let cases: Vec<Value> = cases
        .into_iter()
        .map(|(name, bytes)| {
            let err = match Entry::decode(&bytes) {
                Ok(e) => panic!("{name} decodes: {e:?}"),
                Err(e) => format!("{e:?}"),
            };
            // The variant and its first field: enough to name the check.
            let cut = err
                .find(", ")
                .or_else(|| err.find(" }"))
                .unwrap_or(err.len());
            json!({"name": name, "entry": hex::encode(bytes), "error": err[..cut].to_owned()})
        })
        .collect();
    write_new(
        "sealed_entry_failures",
        &json!({
            "source": "pledge SPEC §17 (R-SEAL-1, R-SEAL-6, R-SEAL-7, R-SEAL-30, R-SEAL-31, R-SEAL-34..37; R-SEAL-61): each case is a valid entry of sealed_entries.json with one defect; the name's prefix (before \"__\") names the decoder",
            "cases": cases,
        }),
    );
}
