//! Pure protocol of the conditional pledge ledger: every byte layout, every
//! signature and every proof that the issuer, the ledger, clients, witnesses and
//! auditors must agree on. Normative text: `SPEC.md` at the repository root;
//! requirement IDs (`R-…`) cited in comments point there.
//!
//! This crate does no I/O: no sockets, no files, no clocks, no async. Callers pass
//! time and randomness in (randomness through a CSPRNG the caller owns or the
//! operating system's, via [`getrandom`]).
//!
//! # Layout
//!
//! - [`codec`]: the canonical binary reader/writer every encoding is built on.
//! - [`hash`]: SHA-256 newtypes (`Hash`, `CampaignId`, `Nullifier`).
//! - [`campaign`]: campaign definitions and their ids.
//! - [`token`]: RFC 9474 blind-RSA tokens, issuer keys, nullifiers.
//! - [`pledge`]: pledge keys, terms, pledges, amendments and withdrawals.
//! - [`entry`]: ledger entries, the leaves of the log.
//! - [`update`]: campaign updates (an extended deadline, texts in other
//!   languages) and what a campaign's updates amount to.
//! - [`ledger`]: the ledger rules as a pure state machine (server and auditor).
//! - [`merkle`]: RFC 6962 hashing, the incremental tree, proofs.
//! - [`replay`]: a log replayed entry by entry into the rules and the tree
//!   (server start-up, auditor, demo).
//! - [`tile`]: C2SP tlog-tiles coordinates, paths and entry bundles.
//! - [`note`]: C2SP signed notes, Ed25519 note keys and verifier keys.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies.
//! - [`cosignature`]: C2SP tlog-cosignature (witness cosignatures).
//! - [`receipt`]: C2SP tlog-proof receipts.
//! - [`tally`]: threshold histograms, the active count, tally statements.
//! - [`funding`]: conditional funding's joint tally (action, supported
//!   action, funding pledges), its snapshots, statements and outcomes.
//! - [`sealed`]: sealed campaigns' cryptography: exponential ElGamal on
//!   ristretto255, one-hot sealed terms with 0-or-1 proofs, the homomorphic
//!   tally, trustees' decryption shares, the bounded discrete log.
//! - [`dkg`]: sealed campaigns' trustee key generation (joint-Feldman DKG
//!   through the log): dealings, complaints, ready messages, the outcome.
//! - [`sealed_tally`]: the signed statement of a sealed campaign before its
//!   reveal (the count of its sealed entries, no histogram).
//! - [`secret`]: zeroizing containers for secret bytes.
//! - `api` (feature `serde`): the JSON wire API of SPEC §12, typed request
//!   and response bodies, error codes and the limits both sides enforce.
//! - `rsa_fast` (feature `fast-rsa`, native only): OpenSSL / aws-lc backends
//!   behind [`token`]'s blind signing and verification.

#[cfg(feature = "serde")]
pub mod api;
pub mod campaign;
pub mod checkpoint;
pub mod codec;
pub mod cosignature;
pub mod dkg;
pub mod entry;
pub mod funding;
pub mod hash;
pub mod ledger;
pub mod merkle;
pub mod note;
pub mod pledge;
mod pledge_index;
pub mod receipt;
pub mod replay;
#[cfg(feature = "fast-rsa")]
mod rsa_fast;
pub mod sealed;
pub mod sealed_pledge;
pub mod sealed_reveal;
pub mod sealed_tally;
pub mod secret;
pub mod tally;
pub mod tile;
pub mod token;
pub mod update;

/// Protocol version carried by every versioned encoding of this crate. SPEC R-VER-1.
pub const PROTOCOL_VERSION: u8 = 1;
