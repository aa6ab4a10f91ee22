//! Ledger entries: the leaves of the public log (DESIGN §5, SPEC §7, R-ENTRY-1…).
//!
//! `entry = version u8 (=1) ‖ kind u8 ‖ body`, decoded strictly: unknown version or
//! kind, truncation, trailing bytes and out-of-range fields are errors, so each
//! entry value has exactly one encoding and its leaf hash is well defined.

use crate::campaign::CampaignDefinition;
use crate::codec::{Decode, DecodeError, Reader, Writer};
use crate::hash::{CampaignId, Hash, Nullifier};
use crate::merkle;
use crate::pledge::{Amendment, Pledge, Terms, Withdrawal, read_seq};
use crate::sealed_pledge::{SEALED_TERMS_KIND, SealedAmendment, SealedPledge, decode_terms_body};
pub use crate::sealed_reveal::{DecryptionShares, SealedSnapshot, SealedTallyRevealed};
use crate::tally::TallySnapshot;
use crate::token::IssuerPublicKey;
use crate::token::Token;
pub use crate::update::CampaignUpdated;

/// Largest encoded entry: entry bundles prefix each entry with a u16 length
/// (C2SP tlog-tiles). SPEC R-ENTRY-2.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// Entry kind tags. SPEC R-ENTRY-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum EntryKind {
    /// A campaign opens, with its issuer key.
    CampaignOpened = 1,
    /// An anonymous pledge.
    Pledge = 2,
    /// New terms for a pledge.
    PledgeAmended = 3,
    /// A pledge withdrawn.
    PledgeWithdrawn = 4,
    /// A campaign closes with its final tally.
    CampaignClosed = 5,
    /// A campaign's deadline extended or its text given in other languages
    /// (SPEC R-ENTRY-7). Kind 6 stays unassigned: `entry_failures.json`
    /// uses it as the example of an unknown kind.
    CampaignUpdated = 7,
    /// A trustee's key-generation message in a sealed campaign (SPEC
    /// R-SEAL-34).
    TrusteeMessage = 8,
    /// An early reveal's snapshot of a sealed campaign's aggregate (SPEC
    /// R-SEAL-35).
    SealedSnapshot = 9,
    /// A trustee's decryption shares of a snapshot (SPEC R-SEAL-36).
    DecryptionShares = 10,
    /// The counts a snapshot decrypts to (SPEC R-SEAL-37).
    SealedTallyRevealed = 11,
}

/// Which key-generation message a [`TrusteeMessage`] carries (SPEC
/// R-SEAL-34, §17.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TrusteeMessageKind {
    /// A dealing (R-DKG-12).
    Dealing = 1,
    /// A complaint (R-DKG-17).
    Complaint = 2,
    /// A ready message (R-DKG-23).
    Ready = 3,
}

/// A trustee's key-generation message, logged in the campaign's log so the
/// log is the broadcast channel (SPEC R-SEAL-34): `campaign 32 ‖ kind u8 ‖
/// len u16 ‖ body`, the body being the §17.2 encoding of the message. The
/// body's layout depends on the campaign's `k` and `n`, so it is decoded by
/// the rules, under the campaign's key-generation context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrusteeMessage {
    /// The sealed campaign.
    pub campaign: CampaignId,
    /// The kind of message.
    pub kind: TrusteeMessageKind,
    /// Its §17.2 encoding (at most [`MAX_TRUSTEE_MESSAGE`] bytes).
    pub body: Vec<u8>,
}

/// Largest trustee message body: a dealing with `k = n = 32`
/// ([`crate::dkg::dealing_len`]). SPEC R-SEAL-34.
pub const MAX_TRUSTEE_MESSAGE: usize = crate::dkg::dealing_len(32, 32);

/// A campaign opens: its definition and the issuer key that signs its tokens.
/// Clients refuse any other key for this campaign (DESIGN P5). SPEC R-ENTRY-3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignOpened {
    /// The definition; the campaign id is derived from it.
    pub definition: CampaignDefinition,
    /// The campaign's RFC 9474 issuer public key.
    pub issuer_key: IssuerPublicKey,
}

/// A campaign closes: tokens issued and a commitment to the final tally. The
/// histogram itself is not logged (a wide one would not fit an entry); anyone
/// recomputes it from the log and checks it against `tally_digest`.
/// SPEC R-ENTRY-6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignClosed {
    /// The campaign.
    pub campaign: CampaignId,
    /// How many blind signatures the issuer made for this campaign.
    pub tokens_issued: u64,
    /// Live pledges at close.
    pub live: u64,
    /// Active count at close.
    pub active: u64,
    /// [`TallySnapshot::digest`] of the final tally (R-TALLY-10).
    pub tally_digest: Hash,
}

impl CampaignClosed {
    /// The closing record of `campaign` for its final `tally`.
    pub fn new(campaign: CampaignId, tokens_issued: u64, tally: &TallySnapshot) -> Self {
        Self {
            campaign,
            tokens_issued,
            live: tally.live(),
            active: tally.active(),
            tally_digest: tally.digest(),
        }
    }

    /// The closing record of a funding campaign `campaign` for its final
    /// joint tally (SPEC R-ENTRY-6, R-FUND-6): `tally_digest` is the funding
    /// snapshot's digest.
    pub fn for_funding(
        campaign: CampaignId,
        tokens_issued: u64,
        tally: &crate::funding::FundingSnapshot,
    ) -> Self {
        Self {
            campaign,
            tokens_issued,
            live: tally.live(),
            active: tally.active(),
            tally_digest: tally.digest(),
        }
    }

    /// True if this record commits to exactly the funding `tally`.
    pub fn matches_funding(&self, tally: &crate::funding::FundingSnapshot) -> bool {
        self.live == tally.live()
            && self.active == tally.active()
            && self.tally_digest == tally.digest()
    }

    /// True if this record commits to exactly `tally`.
    pub fn matches(&self, tally: &TallySnapshot) -> bool {
        self.live == tally.live()
            && self.active == tally.active()
            && self.tally_digest == tally.digest()
    }
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// See [`CampaignOpened`].
    CampaignOpened(CampaignOpened),
    /// See [`Pledge`]. SPEC R-ENTRY-4.
    Pledge(Pledge),
    /// See [`Amendment`]. SPEC R-ENTRY-5.
    PledgeAmended(Amendment),
    /// A pledge (kind 2) with sealed terms: see [`SealedPledge`]. SPEC R-SEAL-31.
    SealedPledge(Box<SealedPledge>),
    /// An amendment (kind 3) with sealed terms: see [`SealedAmendment`].
    /// SPEC R-SEAL-31.
    SealedAmended(Box<SealedAmendment>),
    /// See [`Withdrawal`]. SPEC R-ENTRY-5.
    PledgeWithdrawn(Withdrawal),
    /// See [`CampaignClosed`].
    CampaignClosed(CampaignClosed),
    /// See [`CampaignUpdated`].
    CampaignUpdated(CampaignUpdated),
    /// See [`TrusteeMessage`].
    TrusteeMessage(TrusteeMessage),
    /// See [`SealedSnapshot`].
    SealedSnapshot(SealedSnapshot),
    /// See [`DecryptionShares`].
    DecryptionShares(DecryptionShares),
    /// See [`SealedTallyRevealed`].
    SealedTallyRevealed(SealedTallyRevealed),
}

/// An entry too large for an entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("entry of {0} bytes exceeds the 65535-byte limit")]
pub struct EntryTooLarge(pub usize);

impl Entry {
    /// The kind tag.
    pub fn kind(&self) -> EntryKind {
        match self {
            Entry::CampaignOpened(_) => EntryKind::CampaignOpened,
            Entry::Pledge(_) => EntryKind::Pledge,
            Entry::PledgeAmended(_) => EntryKind::PledgeAmended,
            Entry::SealedPledge(_) => EntryKind::Pledge,
            Entry::SealedAmended(_) => EntryKind::PledgeAmended,
            Entry::PledgeWithdrawn(_) => EntryKind::PledgeWithdrawn,
            Entry::CampaignClosed(_) => EntryKind::CampaignClosed,
            Entry::CampaignUpdated(_) => EntryKind::CampaignUpdated,
            Entry::TrusteeMessage(_) => EntryKind::TrusteeMessage,
            Entry::SealedSnapshot(_) => EntryKind::SealedSnapshot,
            Entry::DecryptionShares(_) => EntryKind::DecryptionShares,
            Entry::SealedTallyRevealed(_) => EntryKind::SealedTallyRevealed,
        }
    }

    /// The campaign this entry belongs to.
    pub fn campaign(&self) -> CampaignId {
        match self {
            Entry::CampaignOpened(o) => o.definition.id(),
            Entry::Pledge(p) => p.campaign,
            Entry::PledgeAmended(a) => a.campaign,
            Entry::SealedPledge(p) => p.campaign,
            Entry::SealedAmended(a) => a.campaign,
            Entry::PledgeWithdrawn(w) => w.campaign,
            Entry::CampaignClosed(c) => c.campaign,
            Entry::CampaignUpdated(u) => u.campaign(),
            Entry::TrusteeMessage(m) => m.campaign,
            Entry::SealedSnapshot(x) => x.campaign,
            Entry::DecryptionShares(x) => x.campaign,
            Entry::SealedTallyRevealed(x) => x.campaign,
        }
    }

    /// The nullifier a pledge, amendment or withdrawal refers to.
    pub fn nullifier(&self) -> Option<Nullifier> {
        match self {
            Entry::Pledge(p) => Some(p.nullifier()),
            Entry::PledgeAmended(a) => Some(a.nullifier),
            Entry::SealedPledge(p) => Some(p.nullifier()),
            Entry::SealedAmended(a) => Some(a.nullifier),
            Entry::PledgeWithdrawn(w) => Some(w.nullifier),
            Entry::CampaignOpened(_)
            | Entry::CampaignClosed(_)
            | Entry::CampaignUpdated(_)
            | Entry::TrusteeMessage(_)
            | Entry::SealedSnapshot(_)
            | Entry::DecryptionShares(_)
            | Entry::SealedTallyRevealed(_) => None,
        }
    }

    /// Canonical encoding. SPEC R-ENTRY-1.
    ///
    /// # Errors
    /// [`EntryTooLarge`] if over [`MAX_ENTRY_BYTES`] (only a CampaignOpened with a
    /// maximal text could come near, and none reaches it; a CampaignUpdated
    /// with many long texts can exceed it).
    pub fn encode(&self) -> Result<Vec<u8>, EntryTooLarge> {
        let mut w = Writer::new();
        w.u8(crate::PROTOCOL_VERSION).u8(self.kind() as u8);
        match self {
            Entry::CampaignOpened(o) => {
                o.definition.encode_into(&mut w);
                o.issuer_key.encode_into(&mut w);
            }
            Entry::Pledge(p) => p.encode_into(&mut w),
            Entry::PledgeAmended(a) => a.encode_into(&mut w),
            Entry::SealedPledge(p) => p.encode_into(&mut w),
            Entry::SealedAmended(a) => a.encode_into(&mut w),
            Entry::PledgeWithdrawn(x) => x.encode_into(&mut w),
            Entry::CampaignClosed(c) => {
                w.raw(c.campaign.as_bytes())
                    .u64(c.tokens_issued)
                    .u64(c.live)
                    .u64(c.active)
                    .raw(c.tally_digest.as_bytes());
            }
            // SPEC R-ENTRY-7
            Entry::CampaignUpdated(u) => u.encode_into(&mut w),
            // SPEC R-SEAL-34
            Entry::TrusteeMessage(m) => {
                w.raw(m.campaign.as_bytes())
                    .u8(m.kind as u8)
                    .bytes16(&m.body);
            }
            // SPEC R-SEAL-35 … R-SEAL-37
            Entry::SealedSnapshot(x) => x.encode_into(&mut w),
            Entry::DecryptionShares(x) => x.encode_into(&mut w),
            Entry::SealedTallyRevealed(x) => x.encode_into(&mut w),
        }
        let bytes = w.into_bytes();
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryTooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// RFC 6962 leaf hash of the encoding. SPEC R-LOG-1.
    ///
    /// # Errors
    /// [`EntryTooLarge`].
    pub fn leaf_hash(&self) -> Result<Hash, EntryTooLarge> {
        Ok(merkle::leaf_hash(&self.encode()?))
    }
}

crate::codec::inherent_decode!(Entry);

/// Exactly one entry per input. SPEC R-ENTRY-1, R-ENC-2, R-VER-2.
impl Decode for Entry {
    fn check_len(len: usize) -> Result<(), DecodeError> {
        if len > MAX_ENTRY_BYTES {
            return Err(DecodeError::OutOfRange {
                field: "entry",
                reason: "longer than 65535 bytes",
            });
        }
        Ok(())
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8("entry.version")?;
        if version != crate::PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let kind = r.u8("entry.kind")?;
        Ok(match kind {
            1 => {
                let definition = CampaignDefinition::decode_from(r)?;
                let issuer_key = IssuerPublicKey::decode_from(r)?;
                Entry::CampaignOpened(CampaignOpened {
                    definition,
                    issuer_key,
                })
            }
            // SPEC R-PLEDGE-4, R-SEAL-31: the terms kind tells a sealed
            // pledge apart.
            2 => {
                let campaign = CampaignId(r.array("pledge.campaign")?);
                let token = Token::decode_from(r)?;
                let kind = r.u8("terms.kind")?;
                if kind == SEALED_TERMS_KIND {
                    Entry::SealedPledge(Box::new(SealedPledge {
                        campaign,
                        token,
                        terms: decode_terms_body(r)?,
                        signature: r.array("pledge.signature")?,
                    }))
                } else {
                    Entry::Pledge(Pledge {
                        campaign,
                        token,
                        terms: Terms::decode_after_kind(kind, r)?,
                        signature: r.array("pledge.signature")?,
                    })
                }
            }
            // SPEC R-PLEDGE-5, R-SEAL-31
            3 => {
                let campaign = CampaignId(r.array("amend.campaign")?);
                let nullifier = Nullifier(r.array("amend.nullifier")?);
                let seq = read_seq(r)?;
                let kind = r.u8("terms.kind")?;
                if kind == SEALED_TERMS_KIND {
                    Entry::SealedAmended(Box::new(SealedAmendment {
                        campaign,
                        nullifier,
                        seq,
                        terms: decode_terms_body(r)?,
                        signature: r.array("amend.signature")?,
                    }))
                } else {
                    Entry::PledgeAmended(Amendment {
                        campaign,
                        nullifier,
                        seq,
                        terms: Terms::decode_after_kind(kind, r)?,
                        signature: r.array("amend.signature")?,
                    })
                }
            }
            4 => Entry::PledgeWithdrawn(Withdrawal::decode_from(r)?),
            5 => Entry::CampaignClosed(CampaignClosed {
                campaign: CampaignId(r.array("closed.campaign")?),
                tokens_issued: r.u64("closed.tokens_issued")?,
                live: r.u64("closed.live")?,
                active: r.u64("closed.active")?,
                tally_digest: Hash(r.array("closed.tally_digest")?),
            }),
            // SPEC R-ENTRY-7, R-ENTRY-9
            7 => Entry::CampaignUpdated(CampaignUpdated::decode_from(r)?),
            // SPEC R-SEAL-34
            8 => {
                let campaign = CampaignId(r.array("trustee.campaign")?);
                let kind = match r.u8("trustee.kind")? {
                    1 => TrusteeMessageKind::Dealing,
                    2 => TrusteeMessageKind::Complaint,
                    3 => TrusteeMessageKind::Ready,
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            field: "trustee.kind",
                            tag,
                        });
                    }
                };
                let body = r.bytes16(MAX_TRUSTEE_MESSAGE, "trustee.body")?.to_vec();
                Entry::TrusteeMessage(TrusteeMessage {
                    campaign,
                    kind,
                    body,
                })
            }
            // SPEC R-SEAL-35 … R-SEAL-37
            9 => Entry::SealedSnapshot(SealedSnapshot::decode_from(r)?),
            10 => Entry::DecryptionShares(DecryptionShares::decode_from(r)?),
            11 => Entry::SealedTallyRevealed(SealedTallyRevealed::decode_from(r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    field: "entry.kind",
                    tag,
                });
            }
        })
    }
}
