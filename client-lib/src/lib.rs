//! `pledge-client`: what pledgers, auditors and witnesses run. The protocol
//! itself (encodings, tokens, proofs, tallies) is in `pledge-protocol`; this
//! crate adds HTTP and files, and its `pledge` binary the command line (which
//! only parses arguments, prints and picks exit codes: everything else is here).
//!
//! # Layout
//!
//! - [`client`]: typed async HTTP client for the whole `pledged` API.
//! - [`wallet`]: the pledger's encrypted wallet file (Argon2id + XChaCha20-Poly1305).
//! - [`flows`]: pledger flows: pin the log, cover issuance with the key check
//!   (P3, P5), commit with a random delay (P4), amend, withdraw, status, watch,
//!   offline receipts.
//! - [`demo`]: `pledge demo`, many simulated pledgers against a demo server.
//! - [`audit`]: the independent auditor (`pledge audit`): rebuilds the log from
//!   tiles and checks every entry, proof and tally.
//! - [`witness`]: a C2SP tlog-witness (`pledge witness serve`).
//! - [`rt`]: sleeping, natively (tokio) and in a browser (`setTimeout`).
//!
//! # Features
//!
//! | feature    | adds                                                  | pulls in                               |
//! |------------|-------------------------------------------------------|----------------------------------------|
//! | `native`   | the tokio timer, the wallet file, `watch`, [`demo`]   | tokio (time), fs2, directories         |
//! | `tls`      | `https://` servers (implies `native`)                 | reqwest's rustls                       |
//! | `audit`    | [`audit`] (implies `native`)                          | rayon, tokio (rt, sync)                |
//! | `witness`  | [`witness`] (implies `native`)                        | axum, tokio (rt, sync, net)            |
//! | `fast-rsa` | OpenSSL and aws-lc RSA paths (byte-identical, faster) | openssl, aws-lc-rs                     |
//! | `cli`      | the `pledge` binary (implies `native`, `audit`, `witness`) | clap, jiff, anyhow, tracing-subscriber, tokio (rt-multi-thread, signal) |
//!
//! `default` is all of them. With none (`--no-default-features`) the client,
//! the flows and the wallet format build for `wasm32-unknown-unknown` (the
//! `pledge-web` crate, SPEC R-WEB-1).

#![warn(missing_docs)]

#[cfg(feature = "audit")]
pub mod audit;
pub mod client;
#[cfg(feature = "native")]
pub mod demo;
pub mod flows;
pub mod rt;
#[cfg(feature = "audit")]
pub mod trustee;
pub mod wallet;
#[cfg(feature = "witness")]
pub mod witness;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u8 = pledge_protocol::PROTOCOL_VERSION;
