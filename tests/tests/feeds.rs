//! The Atom feeds (SPEC R-API-24 … R-API-27) over a real socket: a campaign
//! with a hostile title is opened, pledged to until it reaches its goal and
//! closed; both feeds are fetched over HTTP, parsed back as XML and checked
//! entry by entry, before and after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::{Pledge, Terms};
use pledge_protocol::token::IssuerPublicKey;
use pledge_tests::server::Server;
use pledge_tests::unix_now;
use serde_json::{Value, json};

const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
const TITLE: &str = "Strike <now> & \"always\" 'maybe' ]]> </title><x>";

/// An answer's status, headers and body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn fetch(srv: &Server, path: &str, etag: Option<&str>) -> Answer {
    let mut req = srv.http.get(format!("{}{path}", srv.base));
    if let Some(t) = etag {
        req = req.header("if-none-match", t);
    }
    let r = req.send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

/// One entry of a parsed feed: (id, title, updated, summary).
type Row = (String, String, String, String);

/// Parses an Atom feed (it must be well-formed XML in the Atom namespace):
/// the feed's title and its entries in document order.
fn parse(xml: &str) -> (String, Vec<Row>) {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let feed = doc.root_element();
    assert!(feed.has_tag_name((ATOM_NS, "feed")), "{xml}");
    let text = |n: roxmltree::Node<'_, '_>, name: &str| -> String {
        n.children()
            .find(|c| c.has_tag_name((ATOM_NS, name)))
            .unwrap_or_else(|| panic!("no {name}"))
            .text()
            .unwrap_or("")
            .to_owned()
    };
    let entries = feed
        .children()
        .filter(|c| c.has_tag_name((ATOM_NS, "entry")))
        .map(|e| {
            (
                text(e, "id"),
                text(e, "title"),
                text(e, "updated"),
                text(e, "summary"),
            )
        })
        .collect();
    (text(feed, "title"), entries)
}

/// The entry ids of a campaign's feed without their common prefix.
fn kinds(c: &CampaignId, rows: &[Row]) -> Vec<String> {
    let prefix = format!("urn:pledge:campaign:{}:", c.to_hex());
    rows.iter()
        .map(|r| {
            r.0.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{}", r.0))
                .to_owned()
        })
        .collect()
}

fn check_feed_headers(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.headers["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    assert_eq!(a.headers["cache-control"], "public, max-age=300");
    assert!(a.headers.get("set-cookie").is_none());
    assert_eq!(a.headers["content-security-policy"], "default-src 'none'");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    let etag = a.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    etag
}

async fn campaign(srv: &Server, c: &CampaignId) -> Value {
    let (s, b) = srv.get(&format!("/v1/campaigns/{}", c.to_hex())).await;
    assert_eq!(s, 200);
    serde_json::from_slice(&b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_follow_a_campaign_from_opening_to_close_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), |_| {}).await;

    let deadline = unix_now() + 4;
    let (s, v) = srv
        .post_admin(
            "/v1/campaigns",
            &json!({"title": TITLE, "text": "Bring <b>friends</b> & family",
                    "action": "walk out", "deadline": deadline,
                    "goal": 2, "threshold_min": 1, "threshold_max": 10,
                    "attester": {"kind": "open"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let c = CampaignId::from_hex(v["campaign_id"].as_str().unwrap()).unwrap();
    let hex = c.to_hex();
    let path = format!("/v1/campaigns/{hex}/feed.atom");

    // Just opened: one entry, the title exactly as given, dated on the hour.
    let a = fetch(&srv, &path, None).await;
    let etag0 = check_feed_headers(&a);
    let (title, rows) = parse(&a.body);
    assert_eq!(title, TITLE);
    assert_eq!(kinds(&c, &rows), ["opened"]);
    assert_eq!(rows[0].1, format!("Campaign opened: {TITLE}"));
    assert!(rows[0].2.ends_with(":00:00Z"), "{}", rows[0].2);
    assert!(
        rows[0].3.starts_with("Bring <b>friends</b> & family"),
        "{}",
        rows[0].3
    );
    // Revalidation: 304 with no body while nothing changed.
    let again = fetch(&srv, &path, Some(&etag0)).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    // Two pledges at threshold 1: A = 1 (step), then A = 2 (the goal).
    let key = B64
        .decode(campaign(&srv, &c).await["issuer_key"].as_str().unwrap())
        .unwrap();
    let pk = IssuerPublicKey::from_spki(&key).unwrap();
    for want in [1, 2] {
        let (token, k) = srv.token(&c, &pk).await;
        let e = Entry::Pledge(Pledge::sign(c, token, Terms::threshold(1).unwrap(), &k).unwrap());
        let (s, v) = srv.submit("/v1/pledges", &e).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(campaign(&srv, &c).await["tally"]["active"], want);
    }
    let a = fetch(&srv, &path, Some(&etag0)).await;
    let etag1 = check_feed_headers(&a);
    assert_ne!(etag1, etag0);
    let (_, rows) = parse(&a.body);
    // Newest first; step 2 is the goal and appears once, as the goal.
    let k = kinds(&c, &rows);
    assert_eq!(k.len(), 3, "{k:?}");
    assert_eq!(k[2], "opened");
    let mut steps = k[..2].to_vec();
    steps.sort();
    assert_eq!(steps, ["active:1", "goal"]);
    let goal = rows.iter().find(|r| r.0.ends_with(":goal")).unwrap();
    assert_eq!(goal.1, format!("Goal reached: {TITLE}"));
    assert!(goal.3.contains("reached the goal of 2"), "{}", goal.3);
    assert!(rows.iter().all(|r| r.2.ends_with(":00:00Z")));

    // The list's feed: the opening of the demo campaign and of this one.
    let a = fetch(&srv, "/v1/feed.atom", None).await;
    check_feed_headers(&a);
    let (_, list) = parse(&a.body);
    assert_eq!(list.len(), 2, "{}", a.body);
    assert!(list.iter().all(|r| r.0.ends_with(":opened")));
    assert!(
        list.iter()
            .any(|r| r.0 == format!("urn:pledge:campaign:{hex}:opened"))
    );

    // Unknown and malformed campaigns.
    let missing = fetch(
        &srv,
        &format!("/v1/campaigns/{}/feed.atom", "0".repeat(64)),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        fetch(&srv, "/v1/campaigns/XYZ/feed.atom", None)
            .await
            .status,
        400
    );

    // The campaign page announces its feed and the list's.
    let page = fetch(&srv, &format!("/c/{hex}"), None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!(
        "type=\"application/atom+xml\" title=\"This campaign (Atom feed)\" href=\"{path}\""
    )));
    assert!(page.body.contains("href=\"/v1/feed.atom\""));

    // The close: the newest entry gives the outcome, dated by the deadline.
    let wait = Instant::now() + Duration::from_secs(20);
    while campaign(&srv, &c).await["state"] != "closed" {
        assert!(Instant::now() < wait, "the campaign did not close");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = fetch(&srv, &path, Some(&etag1)).await;
    let etag2 = check_feed_headers(&a);
    let closed_body = a.body.clone();
    let (_, rows) = parse(&a.body);
    assert_eq!(kinds(&c, &rows)[0], "closed");
    assert_eq!(rows[0].1, format!("Closed, goal reached: {TITLE}"));
    assert!(
        rows[0].3.contains("Final active count: 2 (goal 2)")
            && rows[0].3.contains("Live pledges: 2"),
        "{}",
        rows[0].3
    );
    let d = deadline;
    let (hh, mm, ss) = ((d % 86_400) / 3600, (d % 3600) / 60, d % 60);
    assert!(
        rows[0].2.ends_with(&format!("T{hh:02}:{mm:02}:{ss:02}Z")),
        "{} vs {d}",
        rows[0].2
    );
    let (_, list) = parse(&fetch(&srv, "/v1/feed.atom", None).await.body);
    assert_eq!(list[0].0, format!("urn:pledge:campaign:{hex}:closed"));

    // A restart on the same data folder serves the same bytes (and the same
    // ETag). That the dates are read back rather than rebuilt is checked by
    // the ledger's `feed_histories_are_committed_with_their_batch`, with a
    // clock this test cannot set.
    srv.shutdown_within(Duration::from_secs(10)).await;
    let srv = Server::start_in(dir.path(), |_| {}).await;
    let a = fetch(&srv, &path, Some(&etag2)).await;
    assert_eq!(a.status, 304, "{}", a.body);
    let a = fetch(&srv, &path, None).await;
    assert_eq!(a.body, closed_body);
    srv.shutdown_within(Duration::from_secs(10)).await;
}
