//! One HTTP proxy in front of a server, for what a lying or coerced server
//! does: it forwards every request (method, path and query, body and its
//! content type; never credentials), logs and counts them, and applies the
//! [`Rule`]s the test sets while it runs: serve another answer without asking
//! the server, flip a bit of an answer, strip a checkpoint's cosignatures,
//! tag the issuer keys of campaign objects with another key, or swallow an
//! answer the server gave and answer 503 instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Which request paths (path and query) a [`Rule`] applies to.
#[derive(Clone, Debug)]
pub enum Paths {
    /// Exactly this one.
    Is(String),
    /// Those that start with this.
    StartWith(String),
    /// Those that end with this.
    EndWith(String),
}

impl Paths {
    /// Exactly `p`.
    pub fn is(p: impl Into<String>) -> Self {
        Self::Is(p.into())
    }

    /// Those starting with `p`.
    pub fn start_with(p: impl Into<String>) -> Self {
        Self::StartWith(p.into())
    }

    /// Those ending with `p`.
    pub fn end_with(p: impl Into<String>) -> Self {
        Self::EndWith(p.into())
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Is(p) => path == p,
            Self::StartWith(p) => path.starts_with(p.as_str()),
            Self::EndWith(p) => path.ends_with(p.as_str()),
        }
    }
}

/// A byte of an answer body.
#[derive(Clone, Copy, Debug)]
pub enum Byte {
    /// At this offset.
    At(usize),
    /// The last one.
    Last,
}

#[derive(Clone, Debug)]
enum Action {
    Serve(Vec<u8>),
    FlipBit(Byte),
    StripCosignatures,
    TagIssuerKeys(String),
    LoseAnswer,
}

/// What the proxy does to the requests on some paths.
#[derive(Clone, Debug)]
pub struct Rule {
    on: Paths,
    action: Action,
}

impl Rule {
    /// Answers `body` (200, `text/plain`) without asking the server (a
    /// replayed statement, a forged checkpoint). The first matching `serve`
    /// rule wins.
    pub fn serve(on: Paths, body: impl Into<Vec<u8>>) -> Self {
        Self {
            on,
            action: Action::Serve(body.into()),
        }
    }

    /// Flips the lowest bit of one byte of the server's answer.
    pub fn flip_bit(on: Paths, byte: Byte) -> Self {
        Self {
            on,
            action: Action::FlipBit(byte),
        }
    }

    /// Keeps only the first signature line (the log's) of `/log/checkpoint`.
    pub fn strip_cosignatures() -> Self {
        Self {
            on: Paths::is("/log/checkpoint"),
            action: Action::StripCosignatures,
        }
    }

    /// Replaces every `issuer_key` in the JSON answers under `/v1/campaigns`
    /// with `key` (base64 SPKI): a key-tagging server.
    pub fn tag_issuer_keys(key: impl Into<String>) -> Self {
        Self {
            on: Paths::start_with("/v1/campaigns"),
            action: Action::TagIssuerKeys(key.into()),
        }
    }

    /// Forwards the request, then answers 503 `busy` with `Retry-After: 1`
    /// instead of the server's answer, like a connection lost on the way back.
    pub fn lose_answers(on: Paths) -> Self {
        Self {
            on,
            action: Action::LoseAnswer,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    /// `METHOD path` of every request since the last take, in order.
    log: Mutex<Vec<String>>,
    /// Requests by path (and query), since the start.
    counts: Mutex<HashMap<String, usize>>,
}

#[derive(Clone, Debug)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    shared: Arc<Shared>,
}

/// A running proxy; it runs until the end of the test.
#[derive(Debug)]
pub struct Proxy {
    /// `http://127.0.0.1:<port>`: where clients go instead of the server.
    pub base: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy to `upstream` (a base URL) that changes nothing until rules
    /// are set.
    pub async fn start(upstream: &str) -> Self {
        Self::with(upstream, []).await
    }

    /// A proxy to `upstream` with `rules` from its first request on.
    pub async fn with(upstream: &str, rules: impl IntoIterator<Item = Rule>) -> Self {
        let shared = Arc::new(Shared::default());
        *shared.rules.lock().unwrap() = rules.into_iter().collect();
        let app = axum::Router::new().fallback(handle).with_state(Upstream {
            base: upstream.to_owned(),
            http: reqwest::Client::new(),
            shared: Arc::clone(&shared),
        });
        Self {
            base: crate::serving::serve(app).await,
            shared,
        }
    }

    /// Replaces the rules with `rules`.
    pub fn set(&self, rules: impl IntoIterator<Item = Rule>) {
        *self.shared.rules.lock().unwrap() = rules.into_iter().collect();
    }

    /// Removes every rule: the proxy forwards faithfully again.
    pub fn clear(&self) {
        self.set([]);
    }

    /// How many requests had exactly this path (and query), since the start.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The requests (`METHOD path`) since the last call (or the start), in
    /// order; the log starts afresh.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.shared.log.lock().unwrap())
    }
}

/// Flips the lowest bit of `byte` (nothing if the body is shorter).
fn flip(body: &mut [u8], byte: Byte) {
    let at = match byte {
        Byte::At(i) => i,
        Byte::Last => body.len().wrapping_sub(1),
    };
    if let Some(b) = body.get_mut(at) {
        *b ^= 0x01;
    }
}

/// Keeps the note body and its first signature line.
fn strip_cosignatures(note: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(note).unwrap();
    let (body, sigs) = text.split_once("\n\n").unwrap();
    let first = sigs.lines().next().unwrap();
    format!("{body}\n\n{first}\n").into_bytes()
}

fn tag(v: &mut Value, key: &str) {
    if let Some(o) = v.as_object_mut() {
        if o.contains_key("issuer_key") {
            o.insert("issuer_key".into(), Value::String(key.into()));
        }
        for (_, x) in o.iter_mut() {
            tag(x, key);
        }
    } else if let Some(a) = v.as_array_mut() {
        for x in a {
            tag(x, key);
        }
    }
}

async fn handle(State(up): State<Upstream>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|x| x.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().clone();
    up.shared
        .log
        .lock()
        .unwrap()
        .push(format!("{method} {path}"));
    *up.shared
        .counts
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default() += 1;
    let rules: Vec<Action> = up
        .shared
        .rules
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.on.matches(&path))
        .map(|r| r.action.clone())
        .collect();
    if let Some(body) = rules.iter().find_map(|a| match a {
        Action::Serve(b) => Some(b.clone()),
        _ => None,
    }) {
        return ([("content-type", "text/plain; charset=utf-8")], body).into_response();
    }

    let ctype_in = req.headers().get("content-type").cloned();
    let body: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let mut fwd = up.http.request(method, format!("{}{path}", up.base));
    if let Some(c) = ctype_in {
        fwd = fwd.header("content-type", c);
    }
    let resp = fwd.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut bytes = resp.bytes().await.unwrap().to_vec();
    if rules.iter().any(|a| matches!(a, Action::LoseAnswer)) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            r#"{"error":"busy","detail":"lost"}"#,
        )
            .into_response();
    }
    for a in rules {
        match a {
            Action::FlipBit(byte) => flip(&mut bytes, byte),
            Action::StripCosignatures => bytes = strip_cosignatures(bytes),
            Action::TagIssuerKeys(key) if ctype.starts_with("application/json") => {
                let mut v: Value = serde_json::from_slice(&bytes).unwrap();
                tag(&mut v, &key);
                bytes = serde_json::to_vec(&v).unwrap();
            }
            Action::TagIssuerKeys(_) | Action::Serve(_) | Action::LoseAnswer => {}
        }
    }
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", ctype)],
        bytes,
    )
        .into_response()
}
