//! Connection handling: the accept loop of `pledged` (SPEC §12 "Connections").
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no connection
//! cap: a few hundred half-open requests from one client exhausted the file
//! descriptors and a handful kept a stopping server alive. This loop bounds
//! every connection:
//!
//! - at most [`ConnLimits::max_connections`] at once, and at most
//!   [`ConnLimits::max_per_address`] from one address (an IPv6 /64 counts as
//!   one address; trusted proxies are exempt). A connection over a cap is
//!   closed at once, before anything is read, so it costs one descriptor for
//!   an instant;
//! - the request head must arrive within [`ConnLimits::header_read_timeout`];
//! - a connection with no request in flight is closed after
//!   [`ConnLimits::idle_timeout`]: keep-alive never joins two requests far
//!   apart in time (a token request and a later pledge, DESIGN P3), and a
//!   connection that sends nothing is cut after the header-read timeout;
//! - on shutdown, in-flight requests get [`ConnLimits::shutdown_grace`], then
//!   every connection is dropped so the store can be closed.
//!
//! Nothing here logs or stores a peer address (DESIGN P6): the address is
//! only a key of the in-memory per-address counter while the connection
//! lives, and the client address handed to handlers ([`ClientIp`]) only feeds
//! the open attester's in-memory rate limit.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// Connection limits; defaults in [`ConnLimits::default`] (SPEC §12).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// The request head (request line and headers) must arrive within this.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Connections open at once from one address (IPv4 address or IPv6 /64).
    pub max_per_address: usize,
    /// How long in-flight requests may still run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed
    /// (for the open attester's rate limit) and which the per-address cap
    /// does not apply to.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_connections: 1024,
            max_per_address: 256,
            shutdown_grace: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The client's address as the open attester's rate limit sees it: the peer,
/// or for a trusted proxy the address it forwarded. A request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The key of per-address accounting: an IPv4 address, or the /64 prefix of
/// an IPv6 address (one subscriber usually holds a whole /64). IPv4-mapped
/// IPv6 addresses count as their IPv4 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client address of a request that arrived from `peer`: `peer` itself
/// unless it is a trusted proxy, in which case the nearest address in
/// `X-Forwarded-For` (or `Forwarded: for=`) that is not a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("forwarded") {
        let Ok(v) = v.to_str() else { continue };
        for element in v.split(',') {
            for pair in element.split(';') {
                let Some((k, val)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("for")
                    && let Some(ip) = parse_forwarded_node(val.trim())
                {
                    hops.push(ip);
                }
            }
        }
    }
    if hops.is_empty() {
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { continue };
            hops.extend(v.split(',').filter_map(|h| h.trim().parse::<IpAddr>().ok()));
        }
    }
    // Rightmost first: the nearest hop is the last one our proxy appended.
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// `192.0.2.1`, `"192.0.2.1:443"`, `"[2001:db8::1]:443"`, `"[2001:db8::1]"`.
fn parse_forwarded_node(v: &str) -> Option<IpAddr> {
    let v = v.trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    v.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// Open connections, in total and per address key.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_key: HashMap<IpAddr, usize>,
}

/// Releases a connection's slot when the connection ends.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    key: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(k) = self.key
            && let Some(n) = c.per_key.get_mut(&k)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_key.remove(&k);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes a slot for a connection from `peer`, or `None` over a cap.
fn admit(counts: &Arc<Mutex<Counts>>, peer: IpAddr, limits: &ConnLimits) -> Option<Slot> {
    let mut c = lock(counts);
    if c.total >= limits.max_connections {
        return None;
    }
    let key = if limits.trusted_proxies.contains(&peer) {
        None
    } else {
        let k = address_key(peer);
        let n = c.per_key.get(&k).copied().unwrap_or(0);
        if n >= limits.max_per_address {
            return None;
        }
        c.per_key.insert(k, n + 1);
        Some(k)
    };
    c.total += 1;
    Some(Slot {
        counts: counts.clone(),
        key,
    })
}

/// What a connection is doing: requests whose response is not yet fully
/// sent, and when the last one began or ended (milliseconds since `epoch`).
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has had nothing in flight (zero while busy).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// Held from a request's arrival until its response body is finished (or
/// dropped): a streaming answer such as `/v1/events` keeps its connection busy.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        a.touch();
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that releases its [`InFlight`] when finished or dropped.
struct TrackedBody {
    inner: Body,
    guard: Option<InFlight>,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes; then
/// stops accepting, lets in-flight requests finish for at most
/// `limits.shutdown_grace`, and drops every connection left.
///
/// `on_shutdown` runs as soon as the signal arrives (the service uses it to
/// end its event streams).
///
/// # Errors
/// None today: accept errors (such as running out of descriptors) are
/// retried after a pause. The result type leaves room for fatal ones.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_shutdown: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    let mut limits = limits;
    // The global cap must stay below the descriptor limit (the store, the
    // listener and outgoing witness connections need some too).
    if let Some(fds) = descriptor_limit() {
        let room = usize::try_from(fds.saturating_sub(128))
            .unwrap_or(usize::MAX)
            .max(16);
        if limits.max_connections > room {
            tracing::warn!(
                "max_connections {} is above what the descriptor limit {fds} allows: using {room} \
                 (raise `ulimit -n` to serve more)",
                limits.max_connections
            );
            limits.max_connections = room;
        }
    }
    let limits = Arc::new(limits);
    let counts = Arc::new(Mutex::new(Counts::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    // HTTP/1.1 only (as before): HTTP/2 would multiplex a whole page's
    // requests on one connection, which is what DESIGN P3 must avoid.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
            // Reap finished connection tasks so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: pause instead of spinning; the caps
                // keep us below the descriptor limit in normal operation.
                tracing::warn!("accept failed: {}", e.kind());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = admit(&counts, peer.ip(), &limits) else {
            // Over a cap: close at once (nothing read, nothing logged).
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        conns.spawn(connection(
            stream,
            peer,
            slot,
            app.clone(),
            limits.clone(),
            builder.clone(),
            stop_rx.clone(),
        ));
    }
    on_shutdown();
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            "shutdown grace of {} s over: closing {} connection(s) still open",
            limits.shutdown_grace.as_secs(),
            conns.len()
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    Ok(())
}

/// The soft limit on open descriptors of this process, if known.
fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
    app: Router,
    limits: Arc<ConnLimits>,
    builder: Arc<hyper::server::conn::http1::Builder>,
    mut stop: watch::Receiver<bool>,
) {
    let _slot = slot;
    let activity = Arc::new(Activity::new());
    let act = activity.clone();
    let trusted = limits.trusted_proxies.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = InFlight::begin(&act);
        let client = ClientIp(client_ip(peer.ip(), req.headers(), &trusted));
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(client);
        let app = app.clone();
        async move {
            let resp = match app.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<Response<TrackedBody>, Infallible>(resp.map(|inner| TrackedBody {
                inner,
                guard: Some(guard),
            }))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let tick = (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            r = stop.changed(), if !closing => {
                if r.is_err() || *stop.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(tick) => {
                let idle = activity.idle_for();
                if idle >= limits.idle_timeout.max(limits.header_read_timeout) + limits.idle_timeout {
                    // Nothing in flight and the graceful close did not end
                    // it (a peer that never finished a request head): cut it.
                    return;
                }
                if idle >= limits.idle_timeout && !closing {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy = ip("127.0.0.1");
        let h = headers(&[("x-forwarded-for", "198.51.100.9, 203.0.113.5")]);
        // Untrusted peer: its headers are ignored.
        assert_eq!(client_ip(ip("192.0.2.1"), &h, &[proxy]), ip("192.0.2.1"));
        // Trusted: the nearest untrusted hop (a client cannot choose it by
        // prepending a fake address).
        assert_eq!(client_ip(proxy, &h, &[proxy]), ip("203.0.113.5"));
        let chain = [proxy, ip("10.0.0.2")];
        let h = headers(&[("x-forwarded-for", "203.0.113.5, 10.0.0.2")]);
        assert_eq!(client_ip(proxy, &h, &chain), ip("203.0.113.5"));
        // RFC 7239 wins over X-Forwarded-For; quoted IPv6 with a port.
        let h = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=https, for=\"[2001:db8::17]:4711\"",
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(client_ip(proxy, &h, &[proxy]), ip("2001:db8::17"));
        // Nothing usable forwarded: the proxy itself.
        let h = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(client_ip(proxy, &h, &[proxy]), proxy);
    }

    #[test]
    fn address_keys_group_an_ipv6_64() {
        assert_eq!(
            address_key(ip("2001:db8:a:b:1:2:3:4")),
            ip("2001:db8:a:b::")
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn caps_hold_per_address_and_in_total_and_slots_come_back() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = ConnLimits {
            max_connections: 3,
            max_per_address: 2,
            trusted_proxies: vec![ip("10.0.0.1")],
            ..ConnLimits::default()
        };
        let a1 = admit(&counts, ip("2001:db8::1"), &limits).unwrap();
        let _a2 = admit(&counts, ip("2001:db8::2"), &limits).unwrap();
        // Same /64: over the per-address cap.
        assert!(admit(&counts, ip("2001:db8::3"), &limits).is_none());
        let _p = admit(&counts, ip("10.0.0.1"), &limits).unwrap();
        // Total cap, even for a trusted proxy.
        assert!(admit(&counts, ip("10.0.0.1"), &limits).is_none());
        drop(a1);
        let a3 = admit(&counts, ip("2001:db8::3"), &limits);
        assert!(a3.is_some(), "the dropped slot was reused");
        assert_eq!(lock(&counts).total, 3);
        drop(a3);
        assert_eq!(lock(&counts).total, 2);
    }
}
