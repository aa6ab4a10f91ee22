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

pub mod audit;
pub mod client;
pub mod demo;
pub mod flows;
pub mod wallet;
pub mod witness;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u8 = pledge_protocol::PROTOCOL_VERSION;
