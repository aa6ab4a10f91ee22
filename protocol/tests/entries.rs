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

use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, RevealPolicy};
use pledge_protocol::entry::{CampaignClosed, CampaignOpened, Entry};
use pledge_protocol::hash::{CampaignId, Nullifier};
use pledge_protocol::ledger::{LedgerState, RuleError, StatelessChecks};
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

fn replay(entries: &[Entry]) -> Result<LedgerState, (usize, RuleError)> {
    let mut state = LedgerState::new();
    for (i, e) in entries.iter().enumerate() {
        state
            .apply(e, StatelessChecks::Verify)
            .map_err(|err| (i, err))?;
    }
    Ok(state)
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
    let state = replay(&decoded).unwrap();
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
        let mut state = replay(&entries).unwrap_or_else(|e| panic!("{name}: prefix {e:?}"));
        let before = format!("{state:?}");
        let err = state.apply(&bad, StatelessChecks::Verify).expect_err(name);
        assert!(
            format!("{err:?}").starts_with(c["error"].as_str().unwrap()),
            "{name}: got {err:?}"
        );
        assert_eq!(format!("{state:?}"), before, "{name}: state changed");
        assert_eq!(state.check(&bad, StatelessChecks::Verify), Err(err));
    }
}

#[test]
fn amendments_and_withdrawals_update_the_tally_incrementally() {
    let sk = issuer();
    let log = sample_log(&sk);
    let state = replay(&log[..log.len() - 1]).unwrap();
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
    let state = replay(&log).unwrap();
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
            {"name": "pledge_terms_unknown_kind", "entry": with(1, &|v| v[terms_at] = 2), "error": "UnknownTag { field: \"terms.kind\", tag: 2 }"},
            {"name": "pledge_threshold_zero", "entry": with(1, &|v| v[terms_at + 3..terms_at + 7].copy_from_slice(&[0, 0, 0, 0])), "error": "OutOfRange { field: \"terms.threshold\""},
            {"name": "pledge_terms_body_padded", "entry": with(1, &|v| { v[terms_at + 2] = 5; v.insert(terms_at + 7, 0); }), "error": "TrailingBytes(1)"},
            {"name": "pledge_pk_small_order", "entry": with(1, &|v| { let mut z = [0u8; 32]; z[0] = 1; v[34..66].copy_from_slice(&z); }), "error": "Malformed { field: \"pledge_pk\""},
            {"name": "amend_seq_zero", "entry": with(5, &|v| v[66..70].copy_from_slice(&[0, 0, 0, 0])), "error": "OutOfRange { field: \"seq\""},
            {"name": "withdraw_seq_zero", "entry": with(6, &|v| v[66..70].copy_from_slice(&[0, 0, 0, 0])), "error": "OutOfRange { field: \"seq\""},
            {"name": "campaign_definition_version_2", "entry": with(0, &|v| v[2] = 2), "error": "UnsupportedVersion(2)"},
            {"name": "campaign_title_control_char", "entry": with(0, &|v| v[title_at] = b'\t'), "error": "BadText(\"title\")"},
            {"name": "campaign_title_invalid_utf8", "entry": with(0, &|v| v[title_at] = 0xff), "error": "BadText(\"title\")"},
            {"name": "campaign_reveal_unknown", "entry": with(0, &|v| v[def_len - 1] = 2), "error": "UnknownTag { field: \"reveal_policy\", tag: 2 }"},
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
