//! `pledge-client`: what pledgers, auditors and witnesses run. The protocol
//! itself (encodings, tokens, proofs, tallies) is in `pledge-protocol`; this
//! crate adds HTTP, files and the command line.
//!
//! # Layout
//!
//! - [`audit`]: the independent auditor (`pledge audit`): rebuilds the log from
//!   tiles and checks every entry, proof and tally.
//! - [`witness`]: a C2SP tlog-witness (`pledge witness serve`).

pub mod audit;
pub mod witness;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u8 = pledge_protocol::PROTOCOL_VERSION;
