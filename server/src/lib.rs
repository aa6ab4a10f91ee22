//! `pledged`: the issuer and ledger service. Filled by the "pledged" issue; the
//! protocol it serves is in `pledge-protocol`.

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u8 = pledge_protocol::PROTOCOL_VERSION;

pub mod store;
