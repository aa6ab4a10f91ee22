//! ActivityPub announcements (SPEC R-API-40 … R-API-47, R-PRIV-4) over real
//! sockets on loopback: a test "remote instance" (a small axum server with
//! a Mobilizon-style `Group`, a Mastodon-style `Person` and a Mastodon
//! instance actor, each with its own RSA key) follows `pledged`'s actor,
//! gets the `Accept`, receives the `Create` of a newly opened campaign and
//! checks our HTTP signature with the key our actor publishes; a `Person`'s
//! follow (which gets a signed `Reject`), bad signatures, a stale `Date` and
//! a wrong `Digest` are refused.
//!
//! The remote documents reproduce the shape of ones the real servers
//! publish (the "Actor sample files" of the fediverse developer docs, as of
//! 2024-04-11: Mobilizon's group `@framasoft@mobilizon.fr` with its PKCS#1
//! `RSA PUBLIC KEY`, Mastodon's `@Gargron@mastodon.social`), re-pointed to
//! loopback and re-keyed: not a capture of a live exchange, which the test
//! machine cannot reach. The test side signs and verifies with OpenSSL
//! directly, independently of `pledged`'s own code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::{Signer, Verifier};
use pledge_server::activitypub::Settings;
use pledge_server::activitypub::documents::Base;
use pledge_tests::server::{config, send, send_json, start_state};
use pledge_tests::serving::Serving;
use pledge_tests::unix_now;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::mpsc;

/// One request a remote inbox received.
#[derive(Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// The remote instance: its actors' documents and what its inboxes got.
struct Remote {
    base: String,
    group_key: PKey<Private>,
    person_key: PKey<Private>,
    instance_key: PKey<Private>,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    /// How many of the next inbox requests are answered 503 (then 202).
    fail: Arc<AtomicU32>,
    _serving: Serving,
}

#[derive(Clone)]
struct RemoteState {
    base: String,
    group_pem: String,
    person_pem: String,
    instance_pem: String,
    tx: mpsc::UnboundedSender<Received>,
    fail: Arc<AtomicU32>,
}

/// A Mobilizon group (shape of `https://mobilizon.fr/@framasoft`; Mobilizon
/// publishes PKCS#1 `RSA PUBLIC KEY` PEM).
fn group_doc(s: &RemoteState) -> Value {
    let id = format!("{}/@strikers", s.base);
    json!({
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1",
                     {"mz": "https://joinmobilizon.org/ns#", "sc": "http://schema.org#"}],
        "id": id,
        "type": "Group",
        "preferredUsername": "strikers",
        "name": "Strikers",
        "openness": "moderated",
        "manuallyApprovesFollowers": false,
        "inbox": format!("{id}/inbox"),
        "outbox": format!("{id}/outbox"),
        "followers": format!("{id}/followers"),
        "following": format!("{id}/following"),
        "endpoints": {"sharedInbox": format!("{}/inbox", s.base)},
        "publicKey": {"id": format!("{id}#main-key"), "owner": id, "publicKeyPem": s.group_pem}
    })
}

/// A Mastodon account (shape of `https://mastodon.social/users/Gargron`).
fn person_doc(s: &RemoteState) -> Value {
    let id = format!("{}/users/jane", s.base);
    json!({
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": id,
        "type": "Person",
        "preferredUsername": "jane",
        "inbox": format!("{id}/inbox"),
        "outbox": format!("{id}/outbox"),
        "followers": format!("{id}/followers"),
        "endpoints": {"sharedInbox": format!("{}/inbox", s.base)},
        "publicKey": {"id": format!("{id}#main-key"), "owner": id, "publicKeyPem": s.person_pem}
    })
}

/// Mastodon's instance actor (`/actor`, an `Application`), which follows a
/// relay with `object` the public collection.
fn instance_doc(s: &RemoteState) -> Value {
    let id = format!("{}/actor", s.base);
    json!({
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": id,
        "type": "Application",
        "preferredUsername": "remote.example",
        "inbox": format!("{id}/inbox"),
        "outbox": format!("{id}/outbox"),
        "endpoints": {"sharedInbox": format!("{}/inbox", s.base)},
        "publicKey": {"id": format!("{id}#main-key"), "owner": id, "publicKeyPem": s.instance_pem}
    })
}

async fn record(
    State(s): State<RemoteState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    // The answer is decided before the test can see the request, so that
    // a test changing `fail` after seeing one never changes its answer.
    let failing = s
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let _ = s.tx.send(Received {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::ACCEPTED
    }
}

impl Remote {
    async fn start() -> Self {
        let key = || PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let (group_key, person_key, instance_key) = (key(), key(), key());
        let (tx, rx) = mpsc::unbounded_channel();
        let group_pem =
            String::from_utf8(group_key.rsa().unwrap().public_key_to_pem_pkcs1().unwrap()).unwrap();
        let spki = |k: &PKey<Private>| String::from_utf8(k.public_key_to_pem().unwrap()).unwrap();
        let (person_pem, instance_pem) = (spki(&person_key), spki(&instance_key));
        let (btx, brx) = tokio::sync::oneshot::channel::<String>();
        let fail = Arc::new(AtomicU32::new(0));
        let st_fail = fail.clone();
        let serving = Serving::spawn(move |listener, stop| {
            let base = format!("http://{}", listener.local_addr().unwrap());
            let _ = btx.send(base.clone());
            let st = RemoteState {
                base,
                group_pem,
                person_pem,
                instance_pem,
                tx,
                fail: st_fail,
            };
            let app = Router::new()
                .route(
                    "/@strikers",
                    get(|State(s): State<RemoteState>| async move { axum::Json(group_doc(&s)) }),
                )
                .route(
                    "/users/jane",
                    get(|State(s): State<RemoteState>| async move { axum::Json(person_doc(&s)) }),
                )
                .route(
                    "/actor",
                    get(|State(s): State<RemoteState>| async move { axum::Json(instance_doc(&s)) }),
                )
                .route("/@strikers/inbox", post(record))
                .route("/users/jane/inbox", post(record))
                .route("/actor/inbox", post(record))
                .with_state(st);
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
        })
        .await;
        let base = brx.await.unwrap();
        Self {
            base,
            group_key,
            person_key,
            instance_key,
            inbox: tokio::sync::Mutex::new(rx),
            fail,
            _serving: serving,
        }
    }

    /// The next request one of its inboxes received (at most 30 s).
    async fn next(&self) -> Received {
        tokio::time::timeout(Duration::from_secs(30), self.inbox.lock().await.recv())
            .await
            .expect("no delivery within 30 s")
            .unwrap()
    }
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

fn sha256_digest(body: &[u8]) -> String {
    format!("SHA-256={}", B64.encode(sha2::Sha256::digest(body)))
}

/// How to spoil a signed request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spoil {
    None,
    Signature,
    Date,
    Digest,
    Unsigned,
}

/// POSTs `activity` to `pledged`'s inbox, signed the way Mastodon signs
/// (`(request-target) host date digest`, rsa-sha256), by `key_id`.
async fn post_signed(
    http: &reqwest::Client,
    inbox: &str,
    key: &PKey<Private>,
    key_id: &str,
    activity: &Value,
    spoil: Spoil,
) -> (u16, Value) {
    let url = reqwest::Url::parse(inbox).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let body = serde_json::to_vec(activity).unwrap();
    let when = if spoil == Spoil::Date {
        SystemTime::now() - Duration::from_secs(3600)
    } else {
        SystemTime::now()
    };
    let date = http_date(when);
    let digest = if spoil == Spoil::Digest {
        sha256_digest(b"another body")
    } else {
        sha256_digest(&body)
    };
    let signing = format!(
        "(request-target): post {}\nhost: {host}\ndate: {date}\ndigest: {digest}",
        url.path()
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key).unwrap();
    let mut sig = signer.sign_oneshot_to_vec(signing.as_bytes()).unwrap();
    if spoil == Spoil::Signature {
        sig[10] ^= 1;
    }
    let header = format!(
        "keyId=\"{key_id}\",algorithm=\"rsa-sha256\",headers=\"(request-target) host date digest\",signature=\"{}\"",
        B64.encode(sig)
    );
    let mut req = http
        .post(url)
        .header("date", date)
        .header("digest", digest)
        .header("content-type", "application/activity+json")
        .body(body);
    if spoil != Spoil::Unsigned {
        req = req.header("signature", header);
    }
    send_json(req).await
}

/// Checks a request `pledged` sent (SPEC R-API-44) with OpenSSL alone: the
/// digest is the body's, the signature covers `(request-target) host date
/// digest` and verifies under the key our actor publishes.
fn verify_ours(r: &Received, our_key_id: &str, our_pem: &str) -> Value {
    let h = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("digest"), sha256_digest(&r.body));
    assert!(h("content-type").starts_with("application/activity+json"));
    let sig = h("signature");
    let param = |name: &str| -> String {
        let start = sig.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = sig[start..].find('"').unwrap() + start;
        sig[start..end].to_owned()
    };
    assert_eq!(param("keyId"), our_key_id);
    assert_eq!(param("algorithm"), "rsa-sha256");
    assert_eq!(param("headers"), "(request-target) host date digest");
    let signing = format!(
        "(request-target): post {}\nhost: {}\ndate: {}\ndigest: {}",
        r.path,
        h("host"),
        h("date"),
        h("digest")
    );
    let key = PKey::public_key_from_pem(our_pem.as_bytes()).unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &key).unwrap();
    let ok = v
        .verify_oneshot(&B64.decode(param("signature")).unwrap(), signing.as_bytes())
        .unwrap();
    assert!(ok, "our signature does not verify under our published key");
    let date = httpdate::parse_http_date(&h("date")).unwrap();
    let skew = SystemTime::now()
        .duration_since(date)
        .unwrap_or_default()
        .as_secs();
    assert!(skew < 300, "Date {skew} s old");
    serde_json::from_slice(&r.body).unwrap()
}

/// `pledged` with ActivityPub on, its public URL the loopback address it
/// listens on.
struct Pledged {
    base: String,
    admin: String,
    dir: std::path::PathBuf,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _temp: Option<tempfile::TempDir>,
}

/// Starts `pledged` on `dir` (a fresh temporary folder if `None`) and
/// 127.0.0.1:`port` (0: any), ActivityPub on if `on`, first retry after
/// `retry`.
async fn start_pledged_in(
    dir: Option<&std::path::Path>,
    port: u16,
    on: bool,
    retry: Duration,
) -> Pledged {
    let temp = match dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().unwrap()),
    };
    let dir = dir
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| temp.as_ref().unwrap().path().to_path_buf());
    let mut c = config(&dir);
    c.demo = false;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    if on {
        let mut s = Settings::new(Base::parse(&base).unwrap());
        // The remote instance is on loopback too.
        s.allow_private = true;
        s.retry_base = retry;
        c.activitypub = Some(s);
    }
    let state = start_state(&c).await;
    let admin = state.admin_token().to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pledge_server::run(listener, state, async move {
        let _ = rx.await;
    }));
    Pledged {
        base,
        admin,
        dir,
        http: reqwest::Client::new(),
        stop: Some(tx),
        task,
        _temp: temp,
    }
}

async fn start_pledged(on: bool) -> Pledged {
    start_pledged_in(None, 0, on, Duration::from_secs(30)).await
}

impl Pledged {
    /// Stops it and waits (at most 20 s) until it has.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("pledged did not stop")
            .unwrap()
            .unwrap();
    }

    /// The value of a metric line `name value`.
    async fn metric(&self, name: &str) -> u64 {
        let (s, m) = send(
            self.http
                .get(format!("{}/metrics", self.base))
                .bearer_auth(&self.admin),
        )
        .await;
        assert_eq!(s, 200);
        let m = String::from_utf8(m).unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {m}"))
            .parse()
            .unwrap()
    }

    /// Opens a campaign; its id.
    async fn open_campaign(&self, title: &str) -> String {
        let (s, v) = send_json(
            self.http
                .post(format!("{}/v1/campaigns", self.base))
                .bearer_auth(&self.admin)
                .json(&json!({"title": title, "action": "walk out",
                              "deadline": unix_now() + 3 * 86_400, "goal": 20,
                              "threshold_min": 1, "threshold_max": 100,
                              "attester": {"kind": "open"}})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        v["campaign_id"].as_str().unwrap().to_owned()
    }

    async fn get_json(&self, path: &str) -> (u16, Value, HeaderMap) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "application/activity+json")
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let h = r.headers().clone();
        (s, r.json().await.unwrap_or(Value::Null), h)
    }
}

/// The whole exchange: WebFinger and actor as Mastodon and Mobilizon need
/// them, a group follows and gets an Accept, a new campaign reaches it as a
/// signed Create of an Event, refusals are typed, Undo removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_follows_and_receives_a_new_campaign() {
    let remote = Remote::start().await;
    let p = start_pledged(true).await;
    let authority = p.base.trim_start_matches("http://").to_owned();
    let actor_id = format!("{}/ap/actor", p.base);

    // WebFinger (SPEC R-API-41). Mastodon's "WebFinger" spec page: it looks
    // up acct:user@domain and follows the link with rel "self" and type
    // application/activity+json to the actor. Mobilizon's relay follow of a
    // bare domain looks up relay@domain (its Relay.fetch_actor).
    for user in ["campaigns", "relay"] {
        let (s, jrd, h) = p
            .get_json(&format!(
                "/.well-known/webfinger?resource=acct:{user}@{authority}"
            ))
            .await;
        assert_eq!(s, 200, "{jrd}");
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/jrd+json")
        );
        assert_eq!(jrd["subject"], format!("acct:{user}@{authority}"));
        let links = jrd["links"].as_array().unwrap();
        let me = links.iter().find(|l| l["rel"] == "self").unwrap();
        assert_eq!(me["type"], "application/activity+json");
        assert_eq!(me["href"], actor_id);
    }
    let (s, e, _) = p
        .get_json(&format!(
            "/.well-known/webfinger?resource=acct:jane@{authority}"
        ))
        .await;
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")));
    let (s, e, _) = p.get_json("/.well-known/webfinger").await;
    assert_eq!((s, e["error"].as_str()), (400, Some("bad_request")));

    // The actor (SPEC R-API-42). Mastodon's "ActivityPub" and "Security"
    // spec pages: an actor needs id, type, inbox, outbox, preferredUsername
    // and publicKey {id, owner, publicKeyPem} (the key id is what signatures
    // name); Mobilizon refuses to follow a Person (":person_no_follow"),
    // so the actor is an Application.
    let (s, actor, h) = p.get_json("/ap/actor").await;
    assert_eq!(s, 200);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/activity+json")
    );
    assert_eq!(actor["id"], actor_id);
    assert_eq!(actor["type"], "Application");
    assert_eq!(actor["preferredUsername"], "campaigns");
    assert!(
        actor["@context"]
            .as_array()
            .unwrap()
            .contains(&json!("https://w3id.org/security/v1"))
    );
    for (k, path) in [
        ("inbox", "/ap/inbox"),
        ("outbox", "/ap/outbox"),
        ("followers", "/ap/followers"),
        ("following", "/ap/following"),
    ] {
        assert_eq!(actor[k], format!("{}{path}", p.base), "{k}");
    }
    assert_eq!(actor["endpoints"]["sharedInbox"], actor["inbox"]);
    let key_id = format!("{actor_id}#main-key");
    assert_eq!(actor["publicKey"]["id"], key_id);
    assert_eq!(actor["publicKey"]["owner"], actor_id);
    let our_pem = actor["publicKey"]["publicKeyPem"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        PKey::public_key_from_pem(our_pem.as_bytes())
            .unwrap()
            .bits(),
        2048
    );
    // The key is in the data folder, 0600 (SPEC R-API-40).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let m = std::fs::metadata(p.dir.join("activitypub.key")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }

    let inbox = format!("{}/ap/inbox", p.base);
    let group = format!("{}/@strikers", remote.base);
    let follow = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/follow/5b2a7f", remote.base),
        "type": "Follow",
        "actor": group,
        "object": actor_id,
    });

    // Refusals before anything is stored (SPEC R-API-44, R-API-46).
    let gk = format!("{group}#main-key");
    for (spoil, status, code) in [
        (Spoil::Unsigned, 401, "signature_invalid"),
        (Spoil::Signature, 401, "signature_invalid"),
        (Spoil::Date, 401, "signature_stale"),
        (Spoil::Digest, 400, "digest_mismatch"),
    ] {
        let (s, e) = post_signed(&p.http, &inbox, &remote.group_key, &gk, &follow, spoil).await;
        assert_eq!((s, e["error"].as_str()), (status, Some(code)), "{e}");
    }
    // Signed by another actor's key than the activity's actor.
    let (s, e) = post_signed(
        &p.http,
        &inbox,
        &remote.person_key,
        &format!("{}/users/jane#main-key", remote.base),
        &follow,
        Spoil::None,
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("signature_invalid")),
        "{e}"
    );
    // An activity this inbox does not take.
    let like = json!({"id": format!("{}/like/1", remote.base), "type": "Like", "actor": group,
                      "object": actor_id});
    let (s, e) = post_signed(&p.http, &inbox, &remote.group_key, &gk, &like, Spoil::None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (422, Some("unsupported_activity")),
        "{e}"
    );
    let (s, followers, _) = p.get_json("/ap/followers").await;
    assert_eq!((s, followers["totalItems"].as_u64()), (200, Some(0)));

    // A Person may not follow (SPEC R-API-45): typed refusal, nothing kept.
    let jane = format!("{}/users/jane", remote.base);
    let (s, e) = post_signed(
        &p.http,
        &inbox,
        &remote.person_key,
        &format!("{jane}#main-key"),
        &json!({"@context": "https://www.w3.org/ns/activitystreams",
                "id": format!("{jane}#follows/1"), "type": "Follow",
                "actor": jane, "object": actor_id}),
        Spoil::None,
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("actor_not_allowed")),
        "{e}"
    );
    // ... and a signed Reject of that Follow goes to the person's inbox, so
    // their server drops the pending request instead of showing it forever.
    let got = remote.next().await;
    assert_eq!(got.path, "/users/jane/inbox");
    let reject = verify_ours(&got, &key_id, &our_pem);
    assert_eq!(reject["type"], "Reject");
    assert_eq!(reject["actor"], actor_id);
    assert_eq!(reject["object"]["id"], format!("{jane}#follows/1"));
    assert_eq!(reject["object"]["type"], "Follow");
    assert_eq!(reject["object"]["actor"], jane);

    // The group follows: 202, then a signed Accept of its Follow.
    let (s, v) = post_signed(
        &p.http,
        &inbox,
        &remote.group_key,
        &gk,
        &follow,
        Spoil::None,
    )
    .await;
    assert_eq!((s, v["accepted"].as_str()), (202, Some("follow")), "{v}");
    let got = remote.next().await;
    assert_eq!(got.path, "/@strikers/inbox");
    let accept = verify_ours(&got, &key_id, &our_pem);
    assert_eq!(accept["type"], "Accept");
    assert_eq!(accept["actor"], actor_id);
    assert_eq!(accept["object"]["id"], follow["id"]);
    assert_eq!(accept["object"]["type"], "Follow");
    assert_eq!(accept["object"]["actor"], group);
    let (_, followers, _) = p.get_json("/ap/followers").await;
    assert_eq!(followers["totalItems"], 1);
    assert!(followers.get("orderedItems").is_none() && followers.get("items").is_none());

    // What is stored (SPEC R-PRIV-4): the group's inbox URL; nothing of
    // the person who was refused.
    let state = std::fs::read_to_string(p.dir.join("activitypub.json")).unwrap();
    assert!(state.contains(&format!("{group}/inbox")), "{state}");
    assert!(!state.contains("jane"), "{state}");

    // A campaign opens: the group gets a signed Create of its Event.
    let deadline = unix_now() + 3 * 86_400;
    let (s, v) = send_json(
        p.http
            .post(format!("{}/v1/campaigns", p.base))
            .bearer_auth(&p.admin)
            .json(
                &json!({"title": "Walkout <Friday>", "text": "All of us & more",
                          "action": "walk out", "deadline": deadline, "goal": 20,
                          "threshold_min": 1, "threshold_max": 100,
                          "attester": {"kind": "open"}}),
            ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let hex = v["campaign_id"].as_str().unwrap().to_owned();
    let got = remote.next().await;
    assert_eq!(got.path, "/@strikers/inbox");
    let create = verify_ours(&got, &key_id, &our_pem);
    assert_eq!(create["type"], "Create");
    assert_eq!(create["actor"], actor_id);
    assert_eq!(
        create["id"],
        format!("{}/ap/campaigns/{hex}/opened", p.base)
    );
    assert!(
        create["to"]
            .as_array()
            .unwrap()
            .contains(&json!("https://www.w3.org/ns/activitystreams#Public"))
    );
    let ev = &create["object"];
    // Mobilizon's Event (its EventConverter): name, content, startTime,
    // endTime, joinMode "external" with externalParticipationUrl.
    assert_eq!(ev["type"], "Event");
    assert_eq!(ev["id"], format!("{}/ap/campaigns/{hex}", p.base));
    assert_eq!(ev["name"], "Walkout <Friday>");
    assert_eq!(ev["joinMode"], "external");
    assert_eq!(ev["url"], format!("{}/c/{hex}", p.base));
    assert_eq!(ev["externalParticipationUrl"], ev["url"]);
    assert_eq!(ev["attributedTo"], actor_id);
    let start = ev["startTime"].as_str().unwrap();
    assert!(
        start.ends_with('Z') && ev["endTime"] == ev["startTime"],
        "{start}"
    );
    let content = ev["content"].as_str().unwrap();
    assert!(content.contains("All of us &amp; more"), "{content}");
    assert!(ev["published"].as_str().unwrap().ends_with(":00:00Z"));

    // The outbox lists it; the Event and the activity are served at their ids.
    let (_, outbox, _) = p.get_json("/ap/outbox").await;
    assert_eq!(outbox["type"], "OrderedCollection");
    assert_eq!(outbox["totalItems"], 1);
    assert_eq!(outbox["orderedItems"][0]["id"], create["id"]);
    let (s, event, _) = p.get_json(&format!("/ap/campaigns/{hex}")).await;
    assert_eq!((s, &event["type"]), (200, &json!("Event")));
    let (s, act, _) = p.get_json(&format!("/ap/campaigns/{hex}/opened")).await;
    assert_eq!((s, &act["type"]), (200, &json!("Create")));

    // A Mastodon instance subscribes as to a relay: its Application actor
    // follows the public collection.
    let mastodon = format!("{}/actor", remote.base);
    let relay_follow = json!({"@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/e3c9-relay-follow", remote.base), "type": "Follow",
        "actor": mastodon, "object": "https://www.w3.org/ns/activitystreams#Public"});
    let (s, v) = post_signed(
        &p.http,
        &inbox,
        &remote.instance_key,
        &format!("{mastodon}#main-key"),
        &relay_follow,
        Spoil::None,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let got = remote.next().await;
    assert_eq!(got.path, "/actor/inbox");
    let accept = verify_ours(&got, &key_id, &our_pem);
    assert_eq!(accept["object"]["id"], relay_follow["id"]);
    let (_, followers, _) = p.get_json("/ap/followers").await;
    assert_eq!(followers["totalItems"], 2);

    // The group undoes its follow (Mobilizon and Mastodon embed the Follow).
    let undo = json!({"@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/follow/5b2a7f/undo", remote.base), "type": "Undo",
        "actor": group, "object": follow});
    let (s, v) = post_signed(&p.http, &inbox, &remote.group_key, &gk, &undo, Spoil::None).await;
    assert_eq!((s, v["accepted"].as_str()), (202, Some("undo")), "{v}");
    let (_, followers, _) = p.get_json("/ap/followers").await;
    assert_eq!(followers["totalItems"], 1);
    let state = std::fs::read_to_string(p.dir.join("activitypub.json")).unwrap();
    assert!(!state.contains("strikers"), "{state}");

    // Metrics (SPEC R-API-47): one delivery (counted once its answer is
    // in), the refusals, one follower.
    let mut delivered = 0;
    for _ in 0..200 {
        delivered = p.metric("pledged_activitypub_deliveries_total").await;
        if delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, 1);
    assert_eq!(p.metric("pledged_activitypub_followers").await, 1);
    assert_eq!(p.metric("pledged_activitypub_inbox_refused_total").await, 7);
    assert_eq!(
        p.metric("pledged_activitypub_delivery_failures_total")
            .await,
        0
    );

    // A body over 64 KiB is refused before anything is read into an
    // activity (SPEC R-API-46).
    let (s, e) = send_json(
        p.http
            .post(&inbox)
            .header("content-type", "application/activity+json")
            .body(vec![b' '; 65 * 1024]),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (413, Some("body_too_large")),
        "{e}"
    );
}

/// SPEC R-API-40: off by default, every ActivityPub path is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activitypub_is_off_by_default() {
    let p = start_pledged(false).await;
    for path in [
        "/.well-known/webfinger?resource=acct:campaigns@127.0.0.1",
        "/ap/actor",
        "/ap/outbox",
        "/ap/followers",
    ] {
        let (s, e, _) = p.get_json(path).await;
        assert_eq!((s, e["error"].as_str()), (404, Some("not_found")), "{path}");
    }
    let (s, _) = send(p.http.post(format!("{}/ap/inbox", p.base)).body("{}")).await;
    assert_eq!(s, 404);
    assert!(!p.dir.join("activitypub.key").exists());
}

/// SPEC R-API-47: a delivery that fails is retried until it succeeds, and
/// one still queued when the server stops is sent after the restart (the
/// queue and the followers are in `activitypub.json`, R-PRIV-4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_and_survive_a_restart() {
    let remote = Remote::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A short first backoff so that the retry comes within the test.
    let retry = Duration::from_millis(200);
    let p = start_pledged_in(Some(dir.path()), 0, true, retry).await;
    let port = reqwest::Url::parse(&p.base).unwrap().port().unwrap();
    let actor_id = format!("{}/ap/actor", p.base);
    let group = format!("{}/@strikers", remote.base);
    let follow = json!({"@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{}/follow/1", remote.base), "type": "Follow",
        "actor": group, "object": actor_id});
    let (s, v) = post_signed(
        &p.http,
        &format!("{}/ap/inbox", p.base),
        &remote.group_key,
        &format!("{group}#main-key"),
        &follow,
        Spoil::None,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(json_of(&remote.next().await)["type"], "Accept");

    // The group's server fails the first attempt, then takes the retry.
    remote.fail.store(1, Ordering::SeqCst);
    let first = p.open_campaign("One").await;
    let a = json_of(&remote.next().await);
    assert_eq!(a["id"], format!("{}/ap/campaigns/{first}/opened", p.base));
    let b = json_of(&remote.next().await);
    assert_eq!(b["id"], a["id"]);
    assert_eq!(b, a, "the retry sends the same activity");
    assert_eq!(
        p.metric("pledged_activitypub_delivery_failures_total")
            .await,
        1
    );
    // The success is recorded once the answer is in.
    let mut delivered = 0;
    for _ in 0..100 {
        delivered = p.metric("pledged_activitypub_deliveries_total").await;
        if delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, 1);

    // Failing for good; the server stops with the delivery queued.
    remote.fail.store(u32::MAX, Ordering::SeqCst);
    let second = p.open_campaign("Two").await;
    let c = json_of(&remote.next().await);
    assert_eq!(c["id"], format!("{}/ap/campaigns/{second}/opened", p.base));
    let attempts = || -> (Value, u64) {
        let state: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("activitypub.json")).unwrap())
                .unwrap();
        let n = state["queue"][0]["attempts"].as_u64().unwrap_or(0);
        (state, n)
    };
    let mut seen = attempts();
    for _ in 0..200 {
        if seen.1 >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = attempts();
    }
    let (state, n) = seen;
    assert!(n >= 1, "{state}");
    assert_eq!(state["queue"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(
        state["queue"][0]["activity"],
        format!("{}/ap/campaigns/{second}/opened", p.base)
    );
    p.stop().await;

    // After the restart (same folder, same public URL) it is sent again,
    // and this time taken.
    remote.fail.store(0, Ordering::SeqCst);
    let p = start_pledged_in(Some(dir.path()), port, true, retry).await;
    // Attempts of the first run may still be in the channel: the same body.
    let d = json_of(&remote.next().await);
    assert_eq!(d, c);
    while p.metric("pledged_activitypub_deliveries_total").await == 0 {
        assert_eq!(json_of(&remote.next().await), c);
    }
    let (state, _) = attempts();
    assert_eq!(state["queue"], json!([]), "{state}");
    let (_, followers, _) = p.get_json("/ap/followers").await;
    assert_eq!(followers["totalItems"], 1);
    p.stop().await;
}

/// The JSON body of a delivery.
fn json_of(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}
