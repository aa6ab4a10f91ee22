//! The campaign web pages served by `pledged` itself: the campaign list (`/`),
//! one page per campaign (`/c/<id>`), their scripts, style sheet and message
//! catalogs (`/static/…`), all embedded in the binary. Every answer carries a
//! strict Content-Security-Policy: the pages load nothing from any other host
//! and run no inline script or style. SPEC R-WEB-10 … R-WEB-13.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use crate::web_bundle::{PLEDGE_WEB_JS, PLEDGE_WEB_WASM};

/// The Content-Security-Policy of every page and static file (SPEC R-WEB-10):
/// scripts and the WebAssembly client only from this server, no inline code,
/// no fonts, no frames, connections only to this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JSON: &str = "application/json";
const SVG: &str = "image/svg+xml";
const WASM: &str = "application/wasm";

/// One embedded file: its URL path below `/static/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset {
            name: $name,
            content_type: $ct,
            bytes: include_bytes!(concat!("../../web/", $name)),
        }
    };
}

/// Everything under `/static/`. The message catalogs are listed in
/// [`LANGUAGES`] too.
const ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("campaign.js", JS),
    asset!("list.js", JS),
    asset!("chart.js", JS),
    asset!("tally.js", JS),
    // SPEC R-WEB-15, R-WEB-16: which of a campaign's texts a visitor reads
    // (the pages show it, and an extended deadline, from the campaign
    // object of R-API-34).
    asset!("texts.js", JS),
    asset!("i18n.js", JS),
    asset!("wallet.js", JS),
    asset!("style.css", CSS),
    asset!("icon.svg", SVG),
    asset!("i18n/en.json", JSON),
    asset!("i18n/fr.json", JSON),
    asset!("i18n/es.json", JSON),
];

/// The languages with a message catalog (`/static/i18n/<code>.json`).
pub const LANGUAGES: &[&str] = &["en", "fr", "es"];

const INDEX_HTML: &[u8] = include_bytes!("../../web/index.html");
const CAMPAIGN_HTML: &[u8] = include_bytes!("../../web/campaign.html");

/// The routes of the pages, for any router state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/c/{id}", get(campaign))
        .route("/static/{*file}", get(static_file))
        .route("/favicon.ico", get(favicon))
        .route("/app/pledge_web.js", get(bundle_js))
        .route("/app/pledge_web_bg.wasm", get(bundle_wasm))
}

/// The ETags of the WebAssembly client's two files, computed once.
fn bundle_etags() -> &'static (String, String) {
    static TAGS: OnceLock<(String, String)> = OnceLock::new();
    TAGS.get_or_init(|| (etag(PLEDGE_WEB_JS), etag(PLEDGE_WEB_WASM)))
}

/// `/app/pledge_web.js`: the wasm-bindgen glue of the browser client.
async fn bundle_js(headers: HeaderMap) -> Response {
    serve(
        &headers,
        JS,
        Bytes::from_static(PLEDGE_WEB_JS),
        &bundle_etags().0,
    )
}

/// `/app/pledge_web_bg.wasm`: the browser client (the same Rust code as the
/// `pledge` CLI), compiled to WebAssembly.
async fn bundle_wasm(headers: HeaderMap) -> Response {
    serve(
        &headers,
        WASM,
        Bytes::from_static(PLEDGE_WEB_WASM),
        &bundle_etags().1,
    )
}

/// A strong validator for embedded bytes: they change only with the binary.
fn etag(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    format!("\"{}\"", hex::encode(d.get(..12).unwrap_or(&d[..])))
}

/// The ETags of the pages and assets, computed once.
fn etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut v: Vec<String> = ASSETS.iter().map(|a| etag(a.bytes)).collect();
        v.push(etag(INDEX_HTML));
        v
    })
}

/// Answers `bytes` with the security headers, the content type, `no-cache`
/// (the browser revalidates with the ETag, so a new binary's pages are seen
/// at once) and 304 when the browser already holds them.
fn serve(headers: &HeaderMap, content_type: &'static str, bytes: Bytes, tag: &str) -> Response {
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        bytes.into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    security_headers(h);
    resp
}

/// The headers of SPEC R-WEB-10 on any response.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
}

fn not_found(what: &str) -> Response {
    let mut resp = (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN))],
        format!("{what}\n"),
    )
        .into_response();
    security_headers(resp.headers_mut());
    resp
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

async fn index(headers: HeaderMap) -> Response {
    let tag = etags().get(ASSETS.len()).map_or("", String::as_str);
    serve(&headers, HTML, Bytes::from_static(INDEX_HTML), tag)
}

/// `/c/<id>`: the same page for every campaign id of the right form; the
/// script reads the id from the address and asks the API for the campaign.
async fn campaign(headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ok = id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return not_found("no such campaign page: campaign ids are 64 lower-case hex digits");
    }
    let page = campaign_page(&id);
    let tag = etag(page.as_bytes());
    serve(&headers, HTML, Bytes::from(page), &tag)
}

/// The campaign page with its own feed announced (SPEC R-API-24), so that a
/// feed reader given the page's address finds the campaign's feed. `id` is
/// 64 lower-case hex digits, checked by the caller.
fn campaign_page(id: &str) -> String {
    let html = String::from_utf8_lossy(CAMPAIGN_HTML);
    html.replacen(
        CAMPAIGN_FEED_MARK,
        &format!(
            "<link rel=\"alternate\" type=\"application/atom+xml\" \
             title=\"This campaign (Atom feed)\" href=\"/v1/campaigns/{id}/feed.atom\">"
        ),
        1,
    )
}

/// Where [`campaign_page`] puts the campaign's feed link.
const CAMPAIGN_FEED_MARK: &str = "<!--campaign-feed-->";

async fn static_file(headers: HeaderMap, Path(file): Path<String>) -> Response {
    match ASSETS.iter().zip(etags()).find(|(a, _)| a.name == file) {
        Some((a, tag)) => serve(&headers, a.content_type, Bytes::from_static(a.bytes), tag),
        None => not_found("no such file"),
    }
}

async fn favicon(headers: HeaderMap) -> Response {
    static_file(headers, Path("icon.svg".to_owned())).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::collections::BTreeSet;

    fn catalog(lang: &str) -> serde_json::Map<String, serde_json::Value> {
        let name = format!("i18n/{lang}.json");
        let a = ASSETS.iter().find(|a| a.name == name).unwrap();
        match serde_json::from_slice(a.bytes).unwrap() {
            serde_json::Value::Object(m) => m,
            _ => panic!("{name} is not a JSON object"),
        }
    }

    /// SPEC R-WEB-13: every catalog has exactly the keys of the English one,
    /// every value is a non-empty string, and `_dir` is `ltr` or `rtl`.
    #[test]
    fn catalogs_have_the_same_keys() {
        let en: BTreeSet<String> = catalog("en").keys().cloned().collect();
        assert!(en.len() > 40, "the English catalog looks truncated");
        for lang in LANGUAGES {
            let c = catalog(lang);
            let keys: BTreeSet<String> = c.keys().cloned().collect();
            let missing: Vec<_> = en.difference(&keys).collect();
            let extra: Vec<_> = keys.difference(&en).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{lang}.json: missing {missing:?}, extra {extra:?}"
            );
            for (k, v) in &c {
                let s = v.as_str().unwrap_or_default();
                assert!(!s.trim().is_empty(), "{lang}.json: {k} is empty");
            }
            let dir = c.get("_dir").and_then(|v| v.as_str());
            assert!(matches!(dir, Some("ltr" | "rtl")), "{lang}.json: _dir");
            assert_eq!(c.get("_lang").and_then(|v| v.as_str()), Some(*lang));
        }
    }

    /// Placeholders like `{count}` are the same in every language.
    #[test]
    fn catalogs_have_the_same_placeholders() {
        fn holes(s: &str) -> BTreeSet<String> {
            s.split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(h, _)| h.to_owned()))
                .collect()
        }
        let en = catalog("en");
        for lang in LANGUAGES {
            let c = catalog(lang);
            for (k, v) in &en {
                let theirs = c.get(k).and_then(|x| x.as_str()).unwrap_or_default();
                assert_eq!(
                    holes(v.as_str().unwrap()),
                    holes(theirs),
                    "{lang}.json: placeholders of {k}"
                );
            }
        }
    }

    /// Every key the pages and scripts use exists in the catalogs.
    #[test]
    fn used_keys_exist() {
        let en = catalog("en");
        let mut sources: Vec<(&str, &[u8])> =
            vec![("index.html", INDEX_HTML), ("campaign.html", CAMPAIGN_HTML)];
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            sources.push((a.name, a.bytes));
        }
        let mut used = 0;
        for (name, bytes) in sources {
            let text = std::str::from_utf8(bytes).unwrap();
            for marker in ["data-i18n=\"", "t(\"", "tp(\"", "data-i18n-label=\""] {
                for (at, _) in text.match_indices(marker) {
                    // `t("` only as a call of t itself, not `split("`.
                    let before = text[..at].chars().next_back().unwrap_or(' ');
                    if before.is_alphanumeric() || before == '_' || before == '.' {
                        continue;
                    }
                    let key = text[at + marker.len()..].split('"').next().unwrap();
                    used += 1;
                    assert!(
                        en.contains_key(key) || en.contains_key(&format!("{key}.one")),
                        "{name} uses {key}, which en.json lacks"
                    );
                }
            }
        }
        assert!(used > 30, "too few keys found: {used}");
    }

    /// SPEC R-WEB-11: no page or script names another host, loads inline
    /// code, or uses a style attribute.
    #[test]
    fn no_inline_code_and_no_other_host() {
        let mut files: Vec<(&str, &[u8])> =
            vec![("index.html", INDEX_HTML), ("campaign.html", CAMPAIGN_HTML)];
        for a in ASSETS {
            files.push((a.name, a.bytes));
        }
        for (name, bytes) in files {
            let text = std::str::from_utf8(bytes).unwrap();
            for bad in ["http://", "https://", "//fonts.", "@import"] {
                // The SVG namespace is an identifier, not a request.
                let hits = text
                    .matches(bad)
                    .count()
                    .saturating_sub(text.matches("http://www.w3.org/2000/svg").count());
                assert_eq!(hits, 0, "{name} contains {bad}");
            }
            if name.ends_with(".html") {
                assert!(!text.contains(" style="), "{name}: style attribute");
                assert!(!text.contains("<style"), "{name}: inline style");
                for part in text.split(" on").skip(1) {
                    let word: String = part.chars().take_while(char::is_ascii_lowercase).collect();
                    let rest = part.get(word.len()..).unwrap_or_default();
                    assert!(
                        word.is_empty() || !rest.starts_with('='),
                        "{name}: inline event handler on{word}"
                    );
                }
                for script in text.split("<script").skip(1) {
                    assert!(
                        script.trim_start().starts_with("type=\"module\" src=\"/"),
                        "{name}: inline or foreign script"
                    );
                }
            }
        }
    }

    /// SPEC R-API-24: both pages announce the list's feed, a campaign page
    /// its own, and the campaign page's ETag differs per campaign.
    #[tokio::test]
    async fn pages_announce_their_feeds() {
        use tower::ServiceExt as _;
        let app: Router = router();
        let list = "<link rel=\"alternate\" type=\"application/atom+xml\" \
                    title=\"Campaigns (Atom feed)\" href=\"/v1/feed.atom\">";
        let mut tags = Vec::new();
        for id in ["ab".repeat(32), "cd".repeat(32)] {
            let req = axum::http::Request::get(format!("/c/{id}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            tags.push(resp.headers().get(header::ETAG).unwrap().clone());
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let html = std::str::from_utf8(&body).unwrap();
            assert!(html.contains(list), "{html}");
            let own = format!(
                "type=\"application/atom+xml\" title=\"This campaign (Atom feed)\" \
                 href=\"/v1/campaigns/{id}/feed.atom\">"
            );
            assert!(html.contains(&own), "{html}");
            assert!(!html.contains(CAMPAIGN_FEED_MARK));
        }
        assert_ne!(tags[0], tags[1]);
        let index = std::str::from_utf8(INDEX_HTML).unwrap();
        assert!(index.contains(list));
        assert!(!index.contains(CAMPAIGN_FEED_MARK) && !index.contains("This campaign"));
    }

    #[tokio::test]
    async fn headers_and_revalidation() {
        use tower::ServiceExt as _;
        let app: Router = router();
        let id = "ab".repeat(32);
        for path in [
            "/".to_owned(),
            format!("/c/{id}"),
            "/static/app.js".to_owned(),
            "/static/style.css".to_owned(),
            "/static/i18n/fr.json".to_owned(),
            "/app/pledge_web.js".to_owned(),
            "/app/pledge_web_bg.wasm".to_owned(),
        ] {
            let req = axum::http::Request::get(&path)
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let h = resp.headers();
            assert_eq!(
                h.get(header::CONTENT_SECURITY_POLICY).unwrap(),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(h.get(header::REFERRER_POLICY).unwrap(), "no-referrer");
            assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
            assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-cache");
            let ct = h.get(header::CONTENT_TYPE).unwrap().to_str().unwrap();
            let want = if path.ends_with(".wasm") {
                WASM
            } else if path.ends_with(".js") {
                JS
            } else if path.ends_with(".css") {
                CSS
            } else if path.ends_with(".json") {
                JSON
            } else {
                HTML
            };
            assert_eq!(ct, want, "{path}");
            let tag = h.get(header::ETAG).unwrap().clone();
            let req = axum::http::Request::get(&path)
                .header(header::IF_NONE_MATCH, tag)
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{path}");
        }
        for path in [
            "/c/ABCD",
            "/c/../etc",
            "/static/../Cargo.toml",
            "/static/nope.js",
        ] {
            let req = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}
