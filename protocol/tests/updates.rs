//! Campaign updates (issue 19, SPEC R-CAMP-6…R-CAMP-9, R-ENTRY-7…R-ENTRY-9,
//! R-RULE-11…R-RULE-14): known answers for the CampaignUpdated entry and the
//! effective deadline and texts it leaves, failure vectors named by how they
//! fail (decoding and rules), and property tests of the round trip.
//!
//! Vectors: `vectors/campaign_updates.json` (a valid log with updates, then
//! rule cases: a valid prefix and one update that breaks the named rule),
//! `vectors/campaign_update_failures.json` (bytes that must not decode).
//! Regenerate with `cargo test -p pledge-protocol --test updates --
//! --ignored generate_update_vectors`: it writes `*-new.json` for review and
//! never overwrites. The vectors of `entries.json` and the other files are
//! untouched by updates (their tests still pass on the same bytes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::audit_kind;

use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, RevealPolicy};
use pledge_protocol::entry::{CampaignClosed, CampaignOpened, CampaignUpdated, Entry, EntryKind};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::ledger::{LedgerState, PledgeKeys, RuleError};
use pledge_protocol::merkle;
use pledge_protocol::pledge::{Pledge, PledgeSigningKey, Terms};
use pledge_protocol::replay::{Replayer, Verification};
use pledge_protocol::tally::TallySnapshot;
use pledge_protocol::token::{self, IssuerSecretKey};
use pledge_protocol::update::{CampaignText, MAX_EXTENSION_SECS};
use proptest::prelude::*;
use serde_json::{Value, json};

const DEADLINE: u64 = 1_772_928_000;
const DAY: u64 = 86_400;

fn vectors_dir() -> String {
    format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Value {
    let path = format!("{}/{name}", vectors_dir());
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

fn decode_all(v: &Value) -> Vec<Entry> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| Entry::decode(&hex::decode(e.as_str().unwrap()).unwrap()).unwrap())
        .collect()
}

fn issuer() -> IssuerSecretKey {
    IssuerSecretKey::from_der(&hx(&load("tokens.json"), "issuer_sk_pkcs8")).unwrap()
}

fn definition(nonce: u8) -> CampaignDefinition {
    CampaignDefinition::new(CampaignParams {
        nonce: [nonce; 16],
        title: "Strike on 8 March".into(),
        text: "We stop work on 8 March.\nIf enough of us do.".into(),
        action: "strike on 8 March".into(),
        deadline: DEADLINE,
        goal: 3,
        threshold_min: 1,
        threshold_max: 10,
        reveal: RevealPolicy::Live,
    })
    .unwrap()
}

fn text(lang: &str, title: &str, body: &str) -> CampaignText {
    CampaignText::new(lang.into(), title.into(), body.into()).unwrap()
}

fn update(id: CampaignId, n: u32, deadline: Option<u64>, texts: Vec<CampaignText>) -> Entry {
    Entry::CampaignUpdated(CampaignUpdated::new(id, n, deadline, texts).unwrap())
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

fn hexs(e: &Entry) -> String {
    hex::encode(e.encode().unwrap())
}

/// The valid log of `campaign_updates.json`: open, a pledge, an extension
/// by 7 days, texts in French and Brazilian Portuguese, then an extension to
/// 30 days with a Spanish text and a corrected French one.
fn sample_log(sk: &IssuerSecretKey) -> Vec<Entry> {
    let def = definition(1);
    let id = def.id();
    let key = PledgeSigningKey::from_seed(&[1; 32]);
    let pk = sk.public_key();
    let (blinded, st) = token::blind(pk, &id, &key.public_key()).unwrap();
    let sig = sk.blind_sign(blinded.as_bytes()).unwrap();
    let tok = token::finalize(pk, &st, sig.as_bytes(), &id, &key.public_key()).unwrap();
    vec![
        Entry::CampaignOpened(CampaignOpened {
            definition: def,
            issuer_key: pk.clone(),
        }),
        Entry::Pledge(Pledge::sign(id, tok, Terms::threshold(1).unwrap(), &key).unwrap()),
        update(id, 1, Some(DEADLINE + 7 * DAY), vec![]),
        update(
            id,
            2,
            None,
            vec![
                text(
                    "pt-br",
                    "Greve em 8 de março",
                    "Paramos de trabalhar em 8 de março.\nSe formos bastantes.",
                ),
                text(
                    "fr",
                    "Grève du 8 mars",
                    "Nous arrêtons le travail le 8 mars.",
                ),
            ],
        ),
        update(
            id,
            3,
            Some(DEADLINE + 30 * DAY),
            vec![
                text(
                    "es",
                    "Huelga el 8 de marzo",
                    "Dejamos de trabajar el 8 de marzo.",
                ),
                text(
                    "fr",
                    "Grève du 8 mars",
                    "Nous arrêtons le travail le 8 mars.\nSi nous sommes assez nombreuses.",
                ),
            ],
        ),
    ]
}

#[test]
fn known_answer_log_with_updates() {
    let v = load("campaign_updates.json");
    let entries: Vec<Entry> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let bytes = hx(e, "entry");
            let entry = Entry::decode(&bytes).unwrap();
            // SPEC R-ENTRY-9: one encoding per value.
            assert_eq!(entry.encode().unwrap(), bytes, "{}", e["name"]);
            assert_eq!(
                entry.leaf_hash().unwrap().to_hex(),
                e["leaf_hash"].as_str().unwrap()
            );
            entry
        })
        .collect();
    assert!(
        entries
            .iter()
            .filter(|e| e.kind() == EntryKind::CampaignUpdated)
            .count()
            >= 3
    );
    // SPEC R-ENTRY-1: kind 0x07.
    assert_eq!(hx(&v["entries"][2], "entry")[..2], [1, 7]);
    let (state, _) = replay(&entries).unwrap();
    let id = entries[0].campaign();
    let c = state.campaign(&id).unwrap();
    let want = &v["effective"];
    // SPEC R-CAMP-8: the last update's deadline.
    assert_eq!(c.deadline(), want["deadline"].as_u64().unwrap());
    assert_eq!(
        c.definition.deadline(),
        want["original_deadline"].as_u64().unwrap()
    );
    assert_eq!(c.updates.count(), want["updates"].as_u64().unwrap() as u32);
    // SPEC R-CAMP-9: texts by language, the last one of each wins.
    let texts: Vec<Value> = c
        .updates
        .texts()
        .values()
        .map(|t| json!({"lang": t.lang(), "title": t.title(), "text": t.text()}))
        .collect();
    assert_eq!(Value::from(texts), want["texts"]);
    // SPEC R-RULE-14: the tally is the pledge's alone.
    assert_eq!(c.tally.live(), 1);
    assert_eq!(c.tally.active(), 1);
    let mut tree = merkle::Tree::new();
    for e in &entries {
        tree.append(e.leaf_hash().unwrap()).unwrap();
    }
    assert_eq!(tree.root().to_hex(), v["root"].as_str().unwrap());
    // R-TALLY-12: updates are not changes: the last change is the pledge.
    let mut r = Replayer::<merkle::Tree>::new();
    for e in &entries {
        r.replay_bytes(&e.encode().unwrap(), Verification::Now)
            .unwrap()
            .into_result()
            .unwrap();
    }
    assert_eq!(
        r.last_change().get(&id).copied(),
        want["last_change"].as_u64()
    );
}

/// Each rule case is a valid prefix followed by one update that breaks the
/// named rule: refused with that error, the state unchanged, the stateful
/// check agreeing, and the auditor's failure kind the one recorded.
#[test]
fn rule_cases_are_refused_and_change_nothing() {
    let v = load("campaign_updates.json");
    let cases = v["rule_cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let mut entries = decode_all(&c["entries"]);
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
        assert_eq!(state.check(&bad), Err(err.clone()), "{name}");
        assert_eq!(audit_kind(&err), c["audit"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn failure_vectors_do_not_decode() {
    let v = load("campaign_update_failures.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
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

/// The vectors of every earlier entry kind decode exactly as before: kind 6
/// stays unknown (SPEC R-ENTRY-1), so `entry_unknown_kind` still fails as
/// recorded.
#[test]
fn kind_six_stays_unknown() {
    let v = load("entry_failures.json");
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "entry_unknown_kind")
        .unwrap();
    let bytes = hx(case, "entry");
    assert_eq!(bytes[1], 6);
    assert!(format!("{:?}", Entry::decode(&bytes).unwrap_err()).contains("tag: 6"));
}

/// SPEC R-RULE-12, R-RULE-14 through a replay: an update before the close
/// applies, the close still commits to the tally, and after the close an
/// update is outside the open window.
#[test]
fn updates_change_no_tally_and_stop_at_the_close() {
    let sk = issuer();
    let log = sample_log(&sk);
    let id = log[0].campaign();
    let mut entries = log.clone();
    entries.push(Entry::CampaignClosed(CampaignClosed::new(
        id,
        1,
        &TallySnapshot::from_buckets(vec![(1, 1)]).unwrap(),
    )));
    let (mut state, mut keys) = replay(&entries).unwrap();
    assert_eq!(
        state.verify_and_apply(update(id, 4, Some(DEADLINE + 40 * DAY), vec![]), &mut keys),
        Err(RuleError::CampaignClosed)
    );
    // The bound is from the original deadline, not the extended one.
    let (mut open, mut keys) = replay(&log).unwrap();
    assert_eq!(
        open.verify_and_apply(
            update(id, 4, Some(DEADLINE + MAX_EXTENSION_SECS + 1), vec![]),
            &mut keys
        ),
        Err(RuleError::DeadlineTooLate)
    );
    open.verify_and_apply(
        update(id, 4, Some(DEADLINE + MAX_EXTENSION_SECS), vec![]),
        &mut keys,
    )
    .unwrap();
    assert_eq!(
        open.campaign(&id).unwrap().deadline(),
        DEADLINE + MAX_EXTENSION_SECS
    );
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

fn arb_lang() -> impl Strategy<Value = String> {
    "[a-z]{2,3}(-[a-z0-9]{1,8}){0,2}".prop_filter("35 bytes at most", |s| s.len() <= 35)
}

fn arb_update() -> impl Strategy<Value = Entry> {
    (
        any::<[u8; 32]>(),
        1u32..,
        proptest::option::of(1u64..),
        proptest::collection::btree_map(arb_lang(), ("[^\\p{Cc}]{1,40}", "[^\\p{Cc}]{0,80}"), 0..5),
    )
        .prop_filter_map("changes something", |(c, n, d, texts)| {
            let texts = texts
                .into_iter()
                .filter_map(|(l, (t, x))| CampaignText::new(l, t, x).ok())
                .collect();
            CampaignUpdated::new(CampaignId(c), n, d, texts)
                .ok()
                .map(Entry::CampaignUpdated)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn updates_round_trip(entry in arb_update()) {
        let bytes = entry.encode().unwrap();
        prop_assert_eq!(Entry::decode(&bytes).unwrap(), entry);
    }

    #[test]
    fn any_truncation_or_extension_of_an_update_is_refused(
        entry in arb_update(), cut in any::<prop::sample::Index>(), extra in any::<u8>()
    ) {
        let bytes = entry.encode().unwrap();
        let n = cut.index(bytes.len());
        prop_assert!(Entry::decode(&bytes[..n]).is_err());
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert!(Entry::decode(&longer).is_err());
    }

    #[test]
    fn a_flipped_bit_never_decodes_to_another_encoding(
        entry in arb_update(), at in any::<prop::sample::Index>(), bit in 0u8..8
    ) {
        let mut bytes = entry.encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
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

#[test]
#[ignore = "vector generator: run explicitly, review, rename"]
fn generate_update_vectors() {
    let sk = issuer();
    let log = sample_log(&sk);
    let id = log[0].campaign();
    let (state, _) = replay(&log).unwrap();
    let c = state.campaign(&id).unwrap();
    let names = [
        "campaign_opened",
        "pledge_t1",
        "update_1_extend_7_days",
        "update_2_texts_fr_pt_br",
        "update_3_extend_30_days_es_fr",
    ];
    let mut tree = merkle::Tree::new();
    let entries: Vec<Value> = log
        .iter()
        .zip(names)
        .map(|(e, name)| {
            tree.append(e.leaf_hash().unwrap()).unwrap();
            json!({"name": name, "entry": hexs(e), "leaf_hash": e.leaf_hash().unwrap().to_hex()})
        })
        .collect();
    let texts: Vec<Value> = c
        .updates
        .texts()
        .values()
        .map(|t| json!({"lang": t.lang(), "title": t.title(), "text": t.text()}))
        .collect();

    let open = log[0].clone();
    let pledge = log[1].clone();
    let u1 = log[2].clone();
    let close = Entry::CampaignClosed(CampaignClosed::new(
        id,
        1,
        &TallySnapshot::from_buckets(vec![(1, 1)]).unwrap(),
    ));
    let other = definition(2).id();
    let fr = || text("fr", "Grève", "");
    let langs: Vec<String> = (0..33u8)
        .map(|i| format!("{}{}", char::from(b'a' + i / 26), char::from(b'a' + i % 26)))
        .collect();
    let first16 = update(
        id,
        1,
        None,
        langs[..16].iter().map(|l| text(l, "t", "")).collect(),
    );
    let next16 = update(
        id,
        2,
        None,
        langs[16..32].iter().map(|l| text(l, "t", "")).collect(),
    );
    let case = |name: &str, entries: Vec<&Entry>, error: &str, audit: &str| {
        json!({"name": name, "entries": entries.iter().map(|e| hexs(e)).collect::<Vec<_>>(),
               "error": error, "audit": audit})
    };
    let rule_cases = vec![
        case(
            "update_unknown_campaign",
            vec![&open, &update(other, 1, Some(DEADLINE + DAY), vec![])],
            "UnknownCampaign",
            "outside_open_window",
        ),
        case(
            "update_after_close",
            vec![
                &open,
                &pledge,
                &close,
                &update(id, 1, Some(DEADLINE + DAY), vec![]),
            ],
            "CampaignClosed",
            "outside_open_window",
        ),
        case(
            "update_first_number_two",
            vec![&open, &update(id, 2, Some(DEADLINE + DAY), vec![])],
            "BadUpdateNumber",
            "bad_update",
        ),
        case(
            "update_number_replayed",
            vec![&open, &u1, &u1],
            "BadUpdateNumber",
            "bad_update",
        ),
        case(
            "update_number_replayed_with_texts",
            vec![&open, &u1, &update(id, 1, None, vec![fr()])],
            "BadUpdateNumber",
            "bad_update",
        ),
        case(
            "update_deadline_earlier",
            vec![&open, &update(id, 1, Some(DEADLINE - 1), vec![])],
            "DeadlineNotLater",
            "bad_update",
        ),
        case(
            "update_deadline_unchanged",
            vec![&open, &update(id, 1, Some(DEADLINE), vec![])],
            "DeadlineNotLater",
            "bad_update",
        ),
        case(
            "update_deadline_back_to_original",
            vec![&open, &u1, &update(id, 2, Some(DEADLINE + DAY), vec![])],
            "DeadlineNotLater",
            "bad_update",
        ),
        case(
            "update_deadline_beyond_90_days",
            vec![
                &open,
                &update(id, 1, Some(DEADLINE + MAX_EXTENSION_SECS + 1), vec![]),
            ],
            "DeadlineTooLate",
            "bad_update",
        ),
        case(
            "update_33rd_language",
            vec![
                &open,
                &first16,
                &next16,
                &update(id, 3, None, vec![text(&langs[32], "t", "")]),
            ],
            "TooManyLanguages",
            "bad_update",
        ),
    ];
    write_new(
        "campaign_updates",
        &json!({
            "source": "pledge SPEC §4, §7, §8 (R-CAMP-6..9, R-ENTRY-7..9, R-RULE-11..14): a valid log with CampaignUpdated entries (issuer key of tokens.json, pledge key from seed [1;32]), the effective deadline and texts after it, and rule cases: a valid prefix, then one update that breaks the named rule, with the auditor's failure kind (R-AUDIT-15)",
            "entries": entries,
            "effective": {
                "deadline": c.deadline(),
                "original_deadline": c.definition.deadline(),
                "updates": c.updates.count(),
                "texts": texts,
                "last_change": 2,
            },
            "root": tree.root().to_hex(),
            "rule_cases": rule_cases,
        }),
    );

    // Decoding failures: mutations of the valid updates. Layout after the
    // 2-byte header: campaign 32, update u32 at 34, deadline u64 at 38,
    // n_texts at 46, then the first text's lang length at 47.
    let b = |e: &Entry| e.encode().unwrap();
    let u2 = b(&log[3]); // texts fr, pt-br
    let with = |bytes: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = bytes.to_vec();
        f(&mut v);
        hex::encode(v)
    };
    let u1b = b(&u1);
    let lang_at = 47 + 2; // first text's lang bytes ("fr")
    let fr_len =
        2 + 2 + 2 + "Grève du 8 mars".len() + 2 + "Nous arrêtons le travail le 8 mars.".len();
    // Swap the two texts: pt-br first.
    let unsorted = {
        let mut v = u2[..47].to_vec();
        v.extend_from_slice(&u2[47 + fr_len..]);
        v.extend_from_slice(&u2[47..47 + fr_len]);
        v
    };
    let duplicate = {
        let mut v = u2[..47].to_vec();
        v[46] = 2;
        v.extend_from_slice(&u2[47..47 + fr_len]);
        v.extend_from_slice(&u2[47..47 + fr_len]);
        v
    };
    let title_at = 47 + 2 + 2; // title length of the first text
    let text_at = title_at + 2 + "Grève du 8 mars".len(); // its text length
    let failures = json!({
        "source": "pledge SPEC §3, §7 (R-ENTRY-7..9, R-CAMP-7): each case is an update of campaign_updates.json with one defect",
        "cases": [
            {"name": "update_trailing_byte", "entry": with(&u1b, &|v| v.push(0)), "error": "TrailingBytes(1)"},
            {"name": "update_truncated", "entry": with(&u1b, &|v| { v.pop(); }), "error": "Truncated"},
            {"name": "update_number_zero", "entry": with(&u1b, &|v| v[34..38].copy_from_slice(&[0, 0, 0, 0])), "error": "OutOfRange { field: \"update.number\""},
            {"name": "update_changes_nothing", "entry": with(&u1b, &|v| v[38..46].copy_from_slice(&[0; 8])), "error": "OutOfRange { field: \"update\""},
            {"name": "update_17_texts", "entry": with(&u1b, &|v| v[46] = 17), "error": "OutOfRange { field: \"update.texts\", reason: \"at most 16"},
            {"name": "update_255_texts", "entry": with(&u1b, &|v| v[46] = 255), "error": "OutOfRange { field: \"update.texts\", reason: \"at most 16"},
            {"name": "update_texts_count_short", "entry": with(&u2, &|v| v[46] = 1), "error": "TrailingBytes"},
            {"name": "update_texts_count_long", "entry": with(&u2, &|v| v[46] = 3), "error": "Truncated"},
            {"name": "update_languages_unsorted", "entry": hex::encode(&unsorted), "error": "OutOfRange { field: \"update.texts\", reason: \"languages must be distinct"},
            {"name": "update_language_twice", "entry": hex::encode(&duplicate), "error": "OutOfRange { field: \"update.texts\", reason: \"languages must be distinct"},
            {"name": "update_lang_upper_case", "entry": with(&u2, &|v| v[lang_at] = b'F'), "error": "OutOfRange { field: \"update.lang\""},
            {"name": "update_lang_underscore", "entry": with(&u2, &|v| v[lang_at + 1] = b'_'), "error": "OutOfRange { field: \"update.lang\""},
            {"name": "update_lang_one_letter", "entry": with(&u2, &|v| { v[lang_at - 1] = 1; v.remove(lang_at + 1); }), "error": "OutOfRange { field: \"update.lang\""},
            {"name": "update_lang_36_bytes", "entry": with(&u2, &|v| { v[lang_at - 1] = 36; }), "error": "OutOfRange { field: \"update.lang\""},
            {"name": "update_title_empty", "entry": with(&u2, &|v| { let n = "Grève du 8 mars".len(); v[title_at] = 0; v[title_at + 1] = 0; v.drain(title_at + 2..title_at + 2 + n); }), "error": "OutOfRange { field: \"update.title\""},
            {"name": "update_title_line_feed", "entry": with(&u2, &|v| v[title_at + 2] = b'\n'), "error": "BadText(\"update.title\")"},
            {"name": "update_title_invalid_utf8", "entry": with(&u2, &|v| v[title_at + 2] = 0xff), "error": "BadText(\"update.title\")"},
            {"name": "update_text_control_char", "entry": with(&u2, &|v| v[text_at + 2] = 0x07), "error": "BadText(\"update.text\")"},
            {"name": "update_text_longer_than_16000", "entry": with(&u2, &|v| { v[text_at] = 0x3e; v[text_at + 1] = 0x81; }), "error": "OutOfRange { field: \"update.text\""},
        ]
    });
    write_new("campaign_update_failures", &failures);
}
