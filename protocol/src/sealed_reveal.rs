//! The reveal of a sealed campaign (SPEC R-SEAL-35 … R-SEAL-37): the
//! entries that fix an aggregate (a *snapshot*), carry the trustees'
//! decryption shares of it, and log the counts they decrypt to.
//!
//! - [`SealedSnapshot`] (entry kind 9): at an early reveal, the aggregate of
//!   the campaign's sealed terms so far is fixed, named by its digest. The
//!   final snapshot is the campaign's `CampaignClosed` (R-SEAL-35).
//! - [`DecryptionShares`] (entry kind 10): one trustee's shares of every
//!   bucket of a snapshot's aggregate, each with its DLEQ proof.
//! - [`SealedTallyRevealed`] (entry kind 11): the per-bucket counts that the
//!   first `k` trustees' shares of a snapshot decrypt to.
//!
//! A snapshot is named by its *log index* (the index of the snapshot entry
//! or of the CampaignClosed): the aggregate covers the campaign's entries
//! before it, and the shares' DLEQ transcript binds it (`RevealContext`'s
//! `size`).

use crate::codec::{Decode, DecodeError, Reader, Writer};
use crate::hash::{CampaignId, Hash, sha256};
use crate::sealed::{Ciphertext, DecryptionShare, MAX_BUCKETS};

/// Domain tag of an aggregate's digest. SPEC R-SEAL-35.
pub const AGGREGATE_TAG: &[u8] = b"pledge/v2/sealed-aggregate";

/// `SHA-256("pledge/v2/sealed-aggregate" ‖ B u8 ‖ B × (c1 32 ‖ c2 32))`: what
/// a snapshot and a sealed CampaignClosed commit to. SPEC R-SEAL-35.
pub fn aggregate_digest(aggregate: &[Ciphertext]) -> Hash {
    let mut w = Writer::new();
    // INVARIANT: at most MAX_BUCKETS (64) buckets.
    w.u8(u8::try_from(aggregate.len()).unwrap_or(u8::MAX));
    for ct in aggregate {
        w.raw(&ct.to_bytes());
    }
    Hash(sha256(&[AGGREGATE_TAG, &w.into_bytes()]))
}

/// An early reveal's snapshot (entry kind 9). SPEC R-SEAL-35.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSnapshot {
    /// The sealed campaign.
    pub campaign: CampaignId,
    /// [`aggregate_digest`] of the aggregate at this entry.
    pub aggregate_digest: Hash,
}

impl SealedSnapshot {
    /// `campaign 32 ‖ aggregate_digest 32`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes())
            .raw(self.aggregate_digest.as_bytes());
    }
}

impl Decode for SealedSnapshot {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            campaign: CampaignId(r.array("snapshot.campaign")?),
            aggregate_digest: Hash(r.array("snapshot.aggregate_digest")?),
        })
    }
}

/// One trustee's decryption shares of a snapshot (entry kind 10). SPEC
/// R-SEAL-36.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptionShares {
    /// The sealed campaign.
    pub campaign: CampaignId,
    /// The log index of the snapshot (a [`SealedSnapshot`] or the
    /// campaign's CampaignClosed).
    pub snapshot: u64,
    /// The trustee, `1..=n`.
    pub trustee: u8,
    /// One share per bucket, bucket 0 first.
    pub shares: Vec<DecryptionShare>,
}

impl DecryptionShares {
    /// `campaign 32 ‖ snapshot u64 ‖ trustee u8 ‖ B u8 ‖ B × (D 32 ‖ c 32 ‖ s 32)`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes())
            .u64(self.snapshot)
            .u8(self.trustee)
            // INVARIANT: 1..=MAX_BUCKETS shares (checked when decoding).
            .u8(u8::try_from(self.shares.len()).unwrap_or(u8::MAX));
        for s in &self.shares {
            s.encode_into(w);
        }
    }
}

impl Decode for DecryptionShares {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let campaign = CampaignId(r.array("shares.campaign")?);
        let snapshot = r.u64("shares.snapshot")?;
        let trustee = r.u8("shares.trustee")?;
        if trustee == 0 {
            return Err(DecodeError::OutOfRange {
                field: "shares.trustee",
                reason: "trustees are numbered from 1",
            });
        }
        let b = usize::from(r.u8("shares.bucket_count")?);
        if !(1..=MAX_BUCKETS).contains(&b) {
            return Err(DecodeError::OutOfRange {
                field: "shares.bucket_count",
                reason: "must be 1..=64",
            });
        }
        let shares = (0..b)
            .map(|_| DecryptionShare::decode_from(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            campaign,
            snapshot,
            trustee,
            shares,
        })
    }
}

/// The counts a snapshot decrypts to (entry kind 11). SPEC R-SEAL-37.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedTallyRevealed {
    /// The sealed campaign.
    pub campaign: CampaignId,
    /// The log index of the snapshot.
    pub snapshot: u64,
    /// Pledges per bucket, bucket 0 first.
    pub counts: Vec<u64>,
}

impl SealedTallyRevealed {
    /// `campaign 32 ‖ snapshot u64 ‖ B u8 ‖ B × count u64`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes())
            .u64(self.snapshot)
            // INVARIANT: 1..=MAX_BUCKETS counts (checked when decoding).
            .u8(u8::try_from(self.counts.len()).unwrap_or(u8::MAX));
        for &c in &self.counts {
            w.u64(c);
        }
    }
}

impl Decode for SealedTallyRevealed {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let campaign = CampaignId(r.array("revealed.campaign")?);
        let snapshot = r.u64("revealed.snapshot")?;
        let b = usize::from(r.u8("revealed.bucket_count")?);
        if !(1..=MAX_BUCKETS).contains(&b) {
            return Err(DecodeError::OutOfRange {
                field: "revealed.bucket_count",
                reason: "must be 1..=64",
            });
        }
        let counts = (0..b)
            .map(|_| r.u64("revealed.count"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            campaign,
            snapshot,
            counts,
        })
    }
}
