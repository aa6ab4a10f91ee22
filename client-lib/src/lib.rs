//! `pledge-client`: what pledgers, auditors and witnesses run. The protocol
//! itself (encodings, tokens, proofs, tallies) is in `pledge-protocol`; this
//! crate adds HTTP, files and the command line.
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
//! `native` (default) adds what cannot run in a browser: [`audit`],
//! [`witness`], [`demo`], the wallet file on disk, `pledge watch`, the CLI and
//! TLS. Without it the client, the flows and the wallet format build for
//! `wasm32-unknown-unknown` (the `pledge-web` crate, SPEC R-WEB-1).

#[cfg(feature = "native")]
pub mod audit;
pub mod client;
#[cfg(feature = "native")]
pub mod demo;
pub mod flows;
pub mod rt;
pub mod wallet;
#[cfg(feature = "native")]
pub mod witness;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u8 = pledge_protocol::PROTOCOL_VERSION;
