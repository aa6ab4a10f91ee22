//! The one test harness of the end-to-end suites (`tests/tests/*.rs`): each
//! suite starts servers, proxies and witnesses through these modules instead
//! of carrying its own copy.
//!
//! - [`serving`]: a server task of the test process that stops when told, and
//!   a bare axum router on 127.0.0.1:0 (fakes of a log).
//! - [`server`]: `pledged` in process (`AppState::start` + `run`) on a
//!   temporary or given data folder, with the harness defaults changed by a
//!   closure, waiting for a store lock still held by a server that just
//!   stopped; and its raw HTTP calls.
//! - [`proxy`]: one configurable HTTP proxy in front of a server: it logs and
//!   counts requests and, by [`proxy::Rule`], serves other answers, flips
//!   bits, strips cosignatures, tags issuer keys or loses answers.
//! - [`witness`]: a witness (`pledge witness serve`'s library) in process.
//! - [`postgres`]: a throwaway PostgreSQL cluster, one fresh database per
//!   test that asks.
//! - [`smtp`]: a real SMTP listener (Python's aiosmtpd) that files every
//!   message it accepts, for the e-mail attester.
//! - [`pledged`]: the real `pledged` binary as a child process, optionally
//!   under `strace --inject` or a wrapper, killed with SIGKILL or SIGTERM.
//! - [`sealed`]: sealed campaigns over HTTP: trustees, key generation
//!   through the log, sealed pledges and amendments, shares and reveals.
//!
//! The library is for tests: it panics on what a test should fail on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The time now, in POSIX seconds (campaign deadlines, statement times).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub mod logs;
pub mod pledged;
pub mod postgres;
pub mod proxy;
pub mod sealed;
pub mod server;
pub mod serving;
pub mod smtp;
pub mod witness;
