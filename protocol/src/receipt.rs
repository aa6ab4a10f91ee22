//! Receipts: C2SP transparency log proofs (<https://c2sp.org/tlog-proof>), an
//! offline-verifiable proof that an entry is in the log at an index, under a
//! signed (and optionally witness-cosigned) checkpoint. SPEC R-RCPT-1…R-RCPT-6.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index 73894
//! gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
//! B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
//!
//! example.org/pledge/v1
//! 109482
//! sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=
//!
//! — example.org/pledge/v1 hI2DJw…
//! ```
//!
//! The optional `extra <base64>` line is parsed and kept, never trusted and
//! never used: the ledger does not write one (SPEC R-RCPT-3).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;

use crate::checkpoint::{
    Checkpoint, CheckpointError, SignedCheckpoint, hash_b64, parse_decimal, parse_hash_b64,
    verify_checkpoint,
};
use crate::cosignature::{Cosignature, CosignatureError, WitnessVerifier, verify_cosignatures};
use crate::hash::Hash;
use crate::note::{MAX_NOTE_BYTES, NoteVerifier, SignedNote};

/// First line of every receipt. SPEC R-RCPT-1.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most inclusion proof lines: a tree of at most 2^64 − 1 leaves has paths of at
/// most 64 hashes. SPEC R-RCPT-2.
pub const MAX_INCLUSION_PROOF_LINES: usize = 64;

/// Largest receipt accepted: the checkpoint note plus header, index, an
/// `extra` line of up to 4 KiB of base64, and 64 proof lines. SPEC R-RCPT-2.
pub const MAX_RECEIPT_BYTES: usize = MAX_NOTE_BYTES + 8 * 1024;

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Longer than [`MAX_RECEIPT_BYTES`].
    #[error("receipt is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Length seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8, or contains a control character other than newline.
    #[error("receipt is not UTF-8 text without control characters")]
    BadText,
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("first line must be c2sp.org/tlog-proof@v1")]
    BadHeader,
    /// The `extra` line is not `extra <non-empty canonical base64>`.
    #[error("extra line must carry non-empty canonical padded base64")]
    BadExtra,
    /// The index line is not `index <canonical decimal>`.
    #[error("expected 'index <n>' with a canonical decimal index")]
    BadIndex,
    /// A proof line is not the padded base64 of 32 bytes.
    #[error("inclusion proof line {0} is not the padded base64 of a 32-byte hash")]
    BadProofLine(usize),
    /// More than [`MAX_INCLUSION_PROOF_LINES`] proof lines.
    #[error("more than {max} inclusion proof lines")]
    TooManyProofLines {
        /// The limit.
        max: usize,
    },
    /// No empty line before the checkpoint.
    #[error("missing blank line between the proof and the checkpoint")]
    MissingBlankLine,
    /// The checkpoint note is malformed or not signed by the log.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The index is not below the checkpoint's tree size.
    #[error("index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// Index in the receipt.
        index: u64,
        /// Checkpoint tree size.
        size: u64,
    },
    /// The inclusion proof does not lead from the leaf to the root.
    #[error("inclusion proof does not verify for this entry")]
    BadInclusionProof,
    /// The witness policy is not met.
    #[error("witness cosignatures: {0}")]
    Cosignatures(#[from] CosignatureError),
}

/// A parsed receipt (tlog-proof). Nothing in it is trusted until one of the
/// `verify*` methods succeeds.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt {
    extra: Option<Vec<u8>>,
    index: u64,
    proof: Vec<Hash>,
    note: SignedNote,
    checkpoint: Checkpoint,
}

impl Receipt {
    /// Builds a receipt (no extra data) for the entry at `index`, with its
    /// inclusion proof in the tree of the checkpoint `note`.
    ///
    /// # Errors
    /// [`ReceiptError::TooManyProofLines`], or [`ReceiptError::Checkpoint`] if
    /// the note body is not a checkpoint.
    pub fn new(index: u64, proof: Vec<Hash>, note: SignedNote) -> Result<Self, ReceiptError> {
        if proof.len() > MAX_INCLUSION_PROOF_LINES {
            return Err(ReceiptError::TooManyProofLines {
                max: MAX_INCLUSION_PROOF_LINES,
            });
        }
        let checkpoint = Checkpoint::from_body(note.body())?;
        Ok(Self {
            extra: None,
            index,
            proof,
            note,
            checkpoint,
        })
    }

    /// Parses a receipt strictly (SPEC R-RCPT-1, R-RCPT-2): header line, an
    /// optional `extra` line, `index <n>`, up to 64 proof lines, an empty line,
    /// and a signed checkpoint note (itself parsed strictly).
    ///
    /// # Errors
    /// [`ReceiptError`] naming the first part at fault.
    pub fn parse(text: &[u8]) -> Result<Self, ReceiptError> {
        if text.len() > MAX_RECEIPT_BYTES {
            return Err(ReceiptError::TooLarge {
                len: text.len(),
                max: MAX_RECEIPT_BYTES,
            });
        }
        let text = std::str::from_utf8(text).map_err(|_| ReceiptError::BadText)?;
        if text.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(ReceiptError::BadText);
        }
        let (header, rest) = text.split_once('\n').ok_or(ReceiptError::BadHeader)?;
        if header != TLOG_PROOF_HEADER {
            return Err(ReceiptError::BadHeader);
        }
        let (mut line, mut rest) = rest.split_once('\n').ok_or(ReceiptError::BadIndex)?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            // SPEC R-RCPT-3: kept opaque; an empty value would be a second
            // encoding of "no extra data", so it is refused.
            let data = B64.decode(b64).map_err(|_| ReceiptError::BadExtra)?;
            if data.is_empty() {
                return Err(ReceiptError::BadExtra);
            }
            extra = Some(data);
            (line, rest) = rest.split_once('\n').ok_or(ReceiptError::BadIndex)?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(ReceiptError::BadIndex)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(ReceiptError::MissingBlankLine)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_INCLUSION_PROOF_LINES {
                return Err(ReceiptError::TooManyProofLines {
                    max: MAX_INCLUSION_PROOF_LINES,
                });
            }
            proof.push(parse_hash_b64(line).ok_or(ReceiptError::BadProofLine(proof.len() + 1))?);
        }
        let note = SignedNote::parse(rest.as_bytes()).map_err(CheckpointError::from)?;
        let mut receipt = Self::new(index, proof, note)?;
        receipt.extra = extra;
        Ok(receipt)
    }

    /// The receipt text (what [`Receipt::parse`] reads; ends in a newline).
    pub fn to_text(&self) -> String {
        let mut out = String::from(TLOG_PROOF_HEADER);
        out.push('\n');
        if let Some(e) = &self.extra {
            out.push_str("extra ");
            out.push_str(&B64.encode(e));
            out.push('\n');
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&hash_b64(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note.to_text());
        out
    }

    /// Index of the entry in the log.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Inclusion proof, from the leaf's sibling up to the root's child.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The checkpoint (unverified until a `verify*` call succeeds).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The checkpoint note with all its signatures.
    pub fn note(&self) -> &SignedNote {
        &self.note
    }

    /// Opaque, unauthenticated extra data, if the receipt had an `extra`
    /// line. Never trust it. SPEC R-RCPT-3.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// Verifies offline that the leaf hash `leaf` is at [`Receipt::index`] in
    /// the tree of a checkpoint signed by `log` (SPEC R-RCPT-4): the log's
    /// signature and origin, `index < size`, and the RFC 6962 inclusion proof.
    ///
    /// # Errors
    /// [`ReceiptError::Checkpoint`], [`ReceiptError::IndexOutOfRange`] or
    /// [`ReceiptError::BadInclusionProof`].
    pub fn verify_leaf(
        &self,
        leaf: &Hash,
        log: &NoteVerifier,
    ) -> Result<SignedCheckpoint, ReceiptError> {
        let signed = verify_checkpoint(self.note.clone(), log)?;
        let size = self.checkpoint.size();
        if self.index >= size {
            return Err(ReceiptError::IndexOutOfRange {
                index: self.index,
                size,
            });
        }
        crate::merkle::verify_inclusion(
            leaf,
            self.index,
            size,
            &self.proof,
            self.checkpoint.root(),
        )
        .map_err(|_| ReceiptError::BadInclusionProof)?;
        Ok(signed)
    }

    /// As [`Receipt::verify_leaf`] for the entry bytes (hashed as an RFC 6962
    /// leaf, `SHA-256(0x00 ‖ entry)`).
    ///
    /// # Errors
    /// As [`Receipt::verify_leaf`].
    pub fn verify_entry(
        &self,
        entry: &[u8],
        log: &NoteVerifier,
    ) -> Result<SignedCheckpoint, ReceiptError> {
        self.verify_leaf(&crate::merkle::leaf_hash(entry), log)
    }

    /// As [`Receipt::verify_leaf`], plus a k-of-n witness policy on the
    /// checkpoint's cosignatures (SPEC R-RCPT-5, R-COSIG-7).
    ///
    /// # Errors
    /// As [`Receipt::verify_leaf`], or [`ReceiptError::Cosignatures`].
    pub fn verify_leaf_cosigned(
        &self,
        leaf: &Hash,
        log: &NoteVerifier,
        witnesses: &[WitnessVerifier],
        threshold: usize,
    ) -> Result<(SignedCheckpoint, Vec<Cosignature>), ReceiptError> {
        let signed = self.verify_leaf(leaf, log)?;
        let cosigs = verify_cosignatures(&self.note, witnesses, threshold)?;
        Ok((signed, cosigs))
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("extra", &self.extra.as_ref().map(|e| B64.encode(e)))
            .field("index", &self.index)
            .field("proof", &self.proof)
            .field("note", &self.note)
            .finish()
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}
