//! The actor's inbox (SPEC R-API-44 … R-API-46): a signed `Follow` from an
//! instance or a group is accepted (its inbox URL stored, an `Accept`
//! sent), a signed `Undo` of it removes it; everything else is refused with
//! a typed error, and nothing about a refused sender is kept or logged.
//!
//! Checks, in order: the `Signature` header parses and covers
//! `(request-target) host date digest`; `Host` is this instance's; `Date`
//! is within [`MAX_SKEW`] of now; `Digest` is the body's SHA-256; the body
//! is a `Follow` or an `Undo`; the key named by `keyId` is fetched (with its
//! actor), belongs to the activity's actor on the same origin, and verifies
//! the signature; for a `Follow`, the actor's type is an organisation's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::Federation;
use super::documents::PUBLIC;
use super::signature::{self, SigError};

/// How far `Date` may be from the server's clock, either way (SPEC
/// R-API-44).
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// Largest actor or key document read from another server.
pub const MAX_REMOTE_DOCUMENT: usize = 256 * 1024;

/// Actor types that may follow (SPEC R-API-45): organisations, never
/// people.
pub const FOLLOWER_TYPES: [&str; 4] = ["Group", "Organization", "Service", "Application"];

/// The headers an inbox POST must sign.
const REQUIRED: [&str; 4] = ["(request-target)", "host", "date", "digest"];

/// Why an inbox request was refused. Each maps to one error code (SPEC
/// R-API-46); none carries an address or a remote document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// No `Signature` (or `Authorization: Signature`) header.
    #[error("the request is not signed (an HTTP Signature header is required)")]
    Unsigned,
    /// The signature header, its coverage or the signature itself.
    #[error(transparent)]
    Signature(#[from] SigError),
    /// `Host` is not this instance's.
    #[error("the request was signed for another host")]
    WrongHost,
    /// `Date` missing or unparsable.
    #[error("the Date header is missing or not an HTTP date")]
    BadDate,
    /// `Date` too far from now.
    #[error("the Date header is {0} s away from this server's clock (at most 300 s allowed)")]
    Stale(u64),
    /// No SHA-256 `Digest`.
    #[error("the Digest header is missing or has no SHA-256 digest")]
    NoDigest,
    /// The digest is not the body's.
    #[error("the Digest header does not match the body")]
    DigestMismatch,
    /// The body is not an activity this inbox reads.
    #[error("the body is not a JSON activity: {0}")]
    BadActivity(String),
    /// A valid activity of a kind this inbox does not take.
    #[error("this inbox takes Follow and Undo activities only, not {0}")]
    Unsupported(String),
    /// The key or its actor could not be fetched or is not usable.
    #[error("the signer's key could not be used: {0}")]
    ActorUnavailable(String),
    /// The key's actor is not the activity's actor.
    #[error("the key does not belong to the activity's actor")]
    ActorMismatch,
    /// A follower that is not an instance or a group.
    #[error(
        "only instances and groups may follow (actor type Group, Organization, Service or \
         Application), not {0}: this server keeps no list of people"
    )]
    NotAllowed(String),
    /// The followers file could not be written; nothing changed.
    #[error("the follow could not be stored")]
    Storage,
}

impl InboxError {
    /// A short name for the log (no content).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Signature(_) | Self::WrongHost | Self::BadDate | Self::ActorMismatch => {
                "bad signature"
            }
            Self::Stale(_) => "stale date",
            Self::NoDigest | Self::DigestMismatch => "bad digest",
            Self::BadActivity(_) => "bad activity",
            Self::Unsupported(_) => "unsupported activity",
            Self::ActorUnavailable(_) => "actor unavailable",
            Self::NotAllowed(_) => "actor type not allowed",
            Self::Storage => "storage",
        }
    }
}

/// What an accepted inbox request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A follower was added (or already followed); an `Accept` is on its way.
    Followed,
    /// A follower was removed (or was not following).
    Unfollowed,
}

/// An inbox request as received.
#[derive(Debug)]
pub struct Request<'a> {
    /// `POST`.
    pub method: &'a str,
    /// The path and query as received.
    pub path_and_query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// The values of header `name`, joined by `, ` (draft-cavage §2.3).
fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let vals: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .collect();
    if vals.is_empty() {
        None
    } else {
        Some(vals.join(", "))
    }
}

/// Whether `a` is a loopback, private, link-local, unspecified, broadcast
/// or multicast address (or an IPv4-mapped IPv6 one): never fetched from
/// or posted to unless private addresses are allowed (SPEC R-API-45).
pub fn is_local(a: std::net::IpAddr) -> bool {
    match a {
        std::net::IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                // 100.64.0.0/10, carrier-grade NAT.
                || (a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (a.segments()[0] & 0xfe00) == 0xfc00
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some()
        }
    }
}

/// The DNS resolver of the ActivityPub client (SPEC R-API-45): the
/// system's, minus local and private addresses, so that a name that
/// resolves to one is refused like a URL naming one.
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<std::net::SocketAddr> =
                all.into_iter().filter(|a| !is_local(a.ip())).collect();
            if public.is_empty() {
                return Err("the name resolves to no public address".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Refuses URLs this server must not fetch or post to (SPEC R-API-45):
/// anything but `https://` (and `http://` with `allow_private`), and hosts
/// that are loopback, private, link-local or unspecified addresses or
/// `localhost` unless `allow_private`. A name that resolves to such an
/// address is refused by [`PublicResolver`] when connecting.
///
/// # Errors
/// [`InboxError::ActorUnavailable`] saying why.
pub fn check_remote_url(url: &reqwest::Url, allow_private: bool) -> Result<(), InboxError> {
    let no = |why: &str| Err(InboxError::ActorUnavailable(why.to_owned()));
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return no("remote URLs must be https://"),
    }
    if allow_private {
        return Ok(());
    }
    match url.host() {
        Some(url::Host::Ipv4(a)) if is_local(std::net::IpAddr::V4(a)) => {
            no("remote URLs may not name a local or private address")
        }
        Some(url::Host::Ipv6(a)) if is_local(std::net::IpAddr::V6(a)) => {
            no("remote URLs may not name a local or private address")
        }
        Some(url::Host::Domain(d))
            if d.eq_ignore_ascii_case("localhost")
                || d.to_ascii_lowercase().ends_with(".localhost") =>
        {
            no("remote URLs may not name a local or private address")
        }
        None => no("a remote URL has no host"),
        _ => Ok(()),
    }
}

/// GETs an ActivityPub document, signed with the actor's key (servers in
/// "authorized fetch" mode want that), without redirects, at most
/// [`MAX_REMOTE_DOCUMENT`] bytes.
///
/// # Errors
/// [`InboxError::ActorUnavailable`].
pub async fn fetch_document(fed: &Federation, url: &str) -> Result<Value, InboxError> {
    let unavailable = |why: String| InboxError::ActorUnavailable(why);
    let url = reqwest::Url::parse(url).map_err(|_| unavailable("an unparsable URL".into()))?;
    check_remote_url(&url, fed.allow_private())?;
    let host = super::authority(&url);
    let date = httpdate::fmt_http_date(SystemTime::now());
    let sig = fed
        .key()
        .signature_header(
            &fed.base().key_id(),
            "GET",
            &super::path_and_query(&url),
            &["(request-target)", "host", "date"],
            &[("host", &host), ("date", &date)],
        )
        .map_err(unavailable)?;
    let mut r = fed
        .http()
        .get(url)
        .header("host", host)
        .header("date", date)
        .header("signature", sig)
        .header(
            "accept",
            "application/activity+json, application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"",
        )
        .send()
        .await
        .map_err(|e| unavailable(super::transport_error(&e)))?;
    if !r.status().is_success() {
        return Err(unavailable(format!(
            "fetching it answered HTTP {}",
            r.status().as_u16()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = r
        .chunk()
        .await
        .map_err(|e| unavailable(super::transport_error(&e)))?
    {
        if body.len() + chunk.len() > MAX_REMOTE_DOCUMENT {
            return Err(unavailable("its document is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| unavailable("its document is not JSON".into()))
}

/// An `id`: the string itself, or an object's `id`.
fn id_of(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v.get("id").and_then(Value::as_str))
}

/// `scheme://host:port` of a URL, to compare origins.
fn origin_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

/// The actor of `key_id` and its public key (SPEC R-API-44): the key id's
/// document is the actor (Mastodon: `…/users/x#main-key`) or a key object
/// whose `owner` is the actor; the key must be listed by the actor with
/// this id and owner, on the actor's origin.
async fn resolve_key(
    fed: &Federation,
    key_id: &str,
) -> Result<(Value, openssl::pkey::PKey<openssl::pkey::Public>), InboxError> {
    let bad = |why: &str| InboxError::ActorUnavailable(why.to_owned());
    let doc_url = key_id.split('#').next().unwrap_or(key_id);
    let doc = fetch_document(fed, doc_url).await?;
    let actor = if doc.get("publicKey").is_some() {
        doc
    } else if let Some(owner) = doc.get("owner").and_then(Value::as_str) {
        if origin_of(owner) != origin_of(key_id) {
            return Err(InboxError::ActorMismatch);
        }
        fetch_document(fed, owner).await?
    } else {
        return Err(bad("the key id names neither an actor nor a key"));
    };
    let actor_id = actor
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the actor has no id"))?;
    if origin_of(actor_id).is_none() || origin_of(actor_id) != origin_of(key_id) {
        return Err(InboxError::ActorMismatch);
    }
    let keys: Vec<&Value> = match actor.get("publicKey") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(k @ Value::Object(_)) => vec![k],
        _ => Vec::new(),
    };
    let key = keys
        .into_iter()
        .find(|k| k.get("id").and_then(Value::as_str) == Some(key_id))
        .ok_or_else(|| bad("the actor does not list this key"))?;
    if key.get("owner").and_then(Value::as_str) != Some(actor_id) {
        return Err(InboxError::ActorMismatch);
    }
    let pem = key
        .get("publicKeyPem")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the key has no publicKeyPem"))?;
    let pkey = signature::public_key_from_pem(pem, 2048)?;
    Ok((actor, pkey))
}

/// Checks and acts on one inbox request (SPEC R-API-44 … R-API-46).
///
/// # Errors
/// [`InboxError`]: the request changed nothing.
pub async fn receive(
    fed: &Arc<Federation>,
    req: &Request<'_>,
    now: SystemTime,
) -> Result<Outcome, InboxError> {
    // The signature header and what it covers.
    let value = header_value(req.headers, "signature")
        .or_else(|| {
            header_value(req.headers, "authorization")
                .and_then(|a| a.strip_prefix("Signature ").map(str::to_owned))
        })
        .ok_or(InboxError::Unsigned)?;
    let sig = signature::parse_header(&value)?;
    for h in REQUIRED {
        if !sig.headers.iter().any(|s| s == h) {
            return Err(SigError::NotCovered(h).into());
        }
    }
    if header_value(req.headers, "host").as_deref() != Some(fed.base().authority()) {
        return Err(InboxError::WrongHost);
    }
    // Date within the window.
    let date = header_value(req.headers, "date")
        .and_then(|d| httpdate::parse_http_date(&d).ok())
        .ok_or(InboxError::BadDate)?;
    let skew = match now.duration_since(date) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_SKEW {
        return Err(InboxError::Stale(skew.as_secs()));
    }
    // Digest of the body.
    let digest = header_value(req.headers, "digest").ok_or(InboxError::NoDigest)?;
    match signature::digest_matches(&digest, req.body) {
        None => return Err(InboxError::NoDigest),
        Some(false) => return Err(InboxError::DigestMismatch),
        Some(true) => {}
    }
    // The activity: only Follow and Undo are read (before any fetch).
    let activity: Value =
        serde_json::from_slice(req.body).map_err(|_| InboxError::BadActivity("not JSON".into()))?;
    let kind = activity
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| InboxError::BadActivity("no type".into()))?
        .to_owned();
    if kind != "Follow" && kind != "Undo" {
        return Err(InboxError::Unsupported(kind.chars().take(40).collect()));
    }
    let actor_id = activity
        .get("actor")
        .and_then(id_of)
        .ok_or_else(|| InboxError::BadActivity("no actor".into()))?
        .to_owned();
    // The signature, under the key of the activity's actor.
    let signing = signature::signing_string(req.method, req.path_and_query, &sig.headers, |n| {
        header_value(req.headers, n)
    })?;
    let (actor, key) = resolve_key(fed, &sig.key_id).await?;
    if actor.get("id").and_then(Value::as_str) != Some(actor_id.as_str()) {
        return Err(InboxError::ActorMismatch);
    }
    signature::verify(&key, sig.algorithm.as_deref(), &signing, &sig.signature)?;
    let inbox = actor
        .get("inbox")
        .and_then(Value::as_str)
        .ok_or_else(|| InboxError::ActorUnavailable("the actor has no inbox".into()))?
        .to_owned();
    match kind.as_str() {
        "Follow" => follow(fed, &activity, &actor, &actor_id, &inbox).await,
        _ => {
            // Undo: of a Follow (embedded, as Mastodon and Mobilizon send
            // it) or of an id; either way this actor stops following.
            let object = activity.get("object");
            if let Some(o) = object.filter(|o| o.is_object())
                && o.get("type").and_then(Value::as_str) != Some("Follow")
            {
                return Err(InboxError::Unsupported(format!(
                    "Undo of {}",
                    o.get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("an object without type")
                        .chars()
                        .take(40)
                        .collect::<String>()
                )));
            }
            fed.remove_follower(&inbox)
                .map_err(|_| InboxError::Storage)?;
            Ok(Outcome::Unfollowed)
        }
    }
}

/// Whether `t` (a string or an array of strings) names an organisation's
/// actor type and no `Person`.
fn organisation_type(t: Option<&Value>) -> Result<(), String> {
    let types: Vec<&str> = match t {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty()
        && !types.contains(&"Person")
        && types.iter().any(|t| FOLLOWER_TYPES.contains(t))
    {
        Ok(())
    } else if types.is_empty() {
        Err("an actor without type".into())
    } else {
        Err(types.join(", ").chars().take(60).collect::<String>())
    }
}

/// A verified `Follow` (SPEC R-API-45).
async fn follow(
    fed: &Arc<Federation>,
    activity: &Value,
    actor: &Value,
    actor_id: &str,
    inbox: &str,
) -> Result<Outcome, InboxError> {
    let follow_id = activity
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| InboxError::BadActivity("a Follow without id".into()))?
        .to_owned();
    let object = activity
        .get("object")
        .and_then(id_of)
        .ok_or_else(|| InboxError::BadActivity("a Follow without object".into()))?
        .to_owned();
    let inbox_url = reqwest::Url::parse(inbox)
        .map_err(|_| InboxError::ActorUnavailable("its inbox is not a URL".into()))?;
    if let Err(why) = organisation_type(actor.get("type")) {
        // A person: nothing is stored, and a `Reject` tells their server to
        // drop the pending request (R-API-45) — sent only where any delivery
        // may go.
        if check_remote_url(&inbox_url, fed.allow_private()).is_ok() {
            answer_follow(fed, "Reject", &follow_id, actor_id, &object, inbox);
        }
        return Err(InboxError::NotAllowed(why));
    }
    // Our actor, or the public collection (a Mastodon relay subscription).
    if object != fed.base().actor() && !matches!(object.as_str(), PUBLIC | "as:Public" | "Public") {
        return Err(InboxError::BadActivity(
            "the Follow's object is not this instance's actor".into(),
        ));
    }
    check_remote_url(&inbox_url, fed.allow_private())?;
    fed.add_follower(inbox).map_err(|_| InboxError::Storage)?;
    answer_follow(fed, "Accept", &follow_id, actor_id, &object, inbox);
    Ok(Outcome::Followed)
}

/// POSTs, signed, an `Accept` or a `Reject` (`kind`) of a `Follow` to the
/// follower's inbox, from memory with a few retries (SPEC R-API-45): a
/// restart forgets an unsent answer, and the follower may follow again.
fn answer_follow(
    fed: &Arc<Federation>,
    kind: &'static str,
    follow_id: &str,
    actor_id: &str,
    object: &str,
    inbox: &str,
) {
    let answer = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!(
            "{}/ap/{}s/{}",
            fed.base().origin(),
            kind.to_ascii_lowercase(),
            hex::encode(&sha2::Sha256::digest(follow_id.as_bytes())[..16])
        ),
        "type": kind,
        "actor": fed.base().actor(),
        "object": {
            "id": follow_id,
            "type": "Follow",
            "actor": actor_id,
            "object": object
        }
    });
    let fed = fed.clone();
    let inbox = inbox.to_owned();
    tokio::spawn(async move {
        let Ok(body) = serde_json::to_vec(&answer) else {
            return;
        };
        for wait in [0u64, 5, 30, 120] {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            match fed.post_signed(&inbox, &body).await {
                Ok(()) => return,
                Err(why) => tracing::info!("sending an ActivityPub {kind} failed: {why}"),
            }
        }
        tracing::warn!(
            "an ActivityPub {kind} could not be delivered; the follower may follow again"
        );
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn only_organisations_may_follow() {
        for ok in ["Group", "Organization", "Service", "Application"] {
            assert!(organisation_type(Some(&json!(ok))).is_ok(), "{ok}");
        }
        assert!(organisation_type(Some(&json!(["Group", "Organization"]))).is_ok());
        assert_eq!(
            organisation_type(Some(&json!("Person"))).unwrap_err(),
            "Person"
        );
        assert!(organisation_type(Some(&json!(["Group", "Person"]))).is_err());
        assert!(organisation_type(Some(&json!("Note"))).is_err());
        assert!(organisation_type(None).is_err());
    }

    #[test]
    fn remote_urls_must_be_public_https() {
        let ok = |u: &str, p: bool| check_remote_url(&reqwest::Url::parse(u).unwrap(), p).is_ok();
        assert!(ok("https://mobilizon.example/relay/inbox", false));
        for bad in [
            "http://mobilizon.example/inbox",
            "https://127.0.0.1/inbox",
            "https://10.1.2.3/inbox",
            "https://192.168.0.1/inbox",
            "https://169.254.169.254/latest",
            "https://[::1]/inbox",
            "https://[fd00::1]/inbox",
            "https://[::ffff:127.0.0.1]/inbox",
            "https://localhost/inbox",
            "https://a.localhost/inbox",
        ] {
            assert!(!ok(bad, false), "{bad}");
        }
        assert!(ok("http://127.0.0.1:8080/inbox", true));
        assert!(!ok("ftp://127.0.0.1/inbox", true));
        assert!(is_local("100.100.1.1".parse().unwrap()));
        assert!(!is_local("100.128.1.1".parse().unwrap()));
        assert!(!is_local("2a01:4f8::1".parse().unwrap()));
        assert!(!is_local("93.184.216.34".parse().unwrap()));
    }

    /// SPEC R-API-45: a name that resolves only to local addresses is
    /// refused when connecting (`localhost` resolves without a network).
    #[tokio::test]
    async fn names_resolving_to_local_addresses_are_refused() {
        use reqwest::dns::Resolve as _;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let e = match PublicResolver.resolve(name).await {
            Ok(a) => panic!("resolved to {:?}", a.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(e.to_string().contains("no public address"), "{e}");
    }
}
