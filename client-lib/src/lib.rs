//! `pledge-client`: the pledger, auditor and witness library. Filled by the
//! "pledge-client" issue; the protocol it speaks is in `pledge-protocol`.

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u8 = pledge_protocol::PROTOCOL_VERSION;
