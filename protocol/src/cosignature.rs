//! Witness cosignatures (<https://c2sp.org/tlog-cosignature>, Ed25519 type 0x04)
//! and the witness `add-checkpoint` protocol (<https://c2sp.org/tlog-witness>):
//! request and response bodies, and the witness's pure acceptance check.
//! SPEC R-COSIG-1…R-COSIG-7, R-WIT-1…R-WIT-8.
//!
//! A cosignature is a note signature line on a checkpoint whose signature bytes
//! are `u64 timestamp (big-endian) ‖ Ed25519 signature` over
//!
//! ```text
//! cosignature/v1
//! time <timestamp>
//! <checkpoint body>
//! ```

use std::fmt;

use crate::checkpoint::{
    Checkpoint, CheckpointError, SignedCheckpoint, hash_b64, parse_decimal, parse_hash_b64,
    verify_checkpoint,
};
use crate::hash::Hash;
use crate::note::{
    Ed25519Signer, Ed25519Verifier, KeyId, KeyKind, KeyName, MAX_NOTE_BYTES, MAX_SIGNATURES,
    NoteError, NoteSignature, NoteVerifier, SIG_TYPE_COSIGNATURE_V1, SignedNote,
};

/// First line of the message a v1 cosignature signs. SPEC R-COSIG-3.
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1\n";

/// Largest timestamp a cosignature may carry: 2^63 − 1. SPEC R-COSIG-2.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Most consistency proof lines in an `add-checkpoint` request. SPEC R-WIT-2.
pub const MAX_CONSISTENCY_PROOF_LINES: usize = 63;

/// Largest `add-checkpoint` request body: the note plus the `old` line (at
/// most 25 bytes), 63 proof lines of 45 bytes and the blank line. SPEC R-WIT-2.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = MAX_NOTE_BYTES + 26 + MAX_CONSISTENCY_PROOF_LINES * 45;

/// Content type of the 409 response body that carries the witness's size.
/// SPEC R-WIT-5.
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Why a cosignature could not be made or did not meet a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The timestamp is above 2^63 − 1. SPEC R-COSIG-2.
    #[error("cosignature timestamp {0} exceeds 2^63-1")]
    TimestampTooLarge(u64),
    /// A configured witness's cosignature on the note does not verify.
    /// SPEC R-COSIG-6.
    #[error("invalid cosignature from witness {name}+{key_id}")]
    InvalidCosignature {
        /// Witness key name.
        name: KeyName,
        /// Witness key id.
        key_id: KeyId,
    },
    /// Fewer distinct configured witnesses cosigned than the policy requires.
    /// SPEC R-COSIG-7.
    #[error("{found} valid witness cosignature(s), policy requires {required}")]
    QuorumNotMet {
        /// Distinct witnesses whose cosignature verified.
        found: usize,
        /// The threshold.
        required: usize,
    },
    /// The policy asks for more witnesses than it lists.
    #[error("quorum {threshold} is larger than the {witnesses} configured witnesses")]
    ImpossibleQuorum {
        /// The threshold.
        threshold: usize,
        /// Distinct witnesses configured.
        witnesses: usize,
    },
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// The message a v1 Ed25519 cosignature signs: `cosignature/v1\ntime <ts>\n`
/// then the whole checkpoint body. SPEC R-COSIG-3.
pub fn cosigned_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("{COSIGNATURE_V1_HEADER}time {timestamp}\n{body}").into_bytes()
}

/// Timestamped Ed25519 witness cosignatures (signature type 0x04): the
/// witness key kind. SPEC R-COSIG-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CosignatureV1 {}

impl crate::note::sealed::Sealed for CosignatureV1 {}

impl KeyKind for CosignatureV1 {
    const SIG_TYPE: u8 = SIG_TYPE_COSIGNATURE_V1;
    const SIGNER: &'static str = "WitnessSigner";
    const VERIFIER: &'static str = "WitnessVerifier";
    fn verify(key: &WitnessVerifier, body: &[u8], signature: &[u8]) -> bool {
        key.verify_cosignature(body, signature).is_some()
    }
}

/// A witness's cosigning key (Ed25519, signature type 0x04). Zeroized on drop,
/// no `Clone`; `Debug` shows only the name and key id. SPEC R-COSIG-1.
pub type WitnessSigner = Ed25519Signer<CosignatureV1>;

impl WitnessSigner {
    /// Cosigns `checkpoint` at `timestamp` (POSIX seconds, supplied by the
    /// caller: this crate reads no clock). SPEC R-COSIG-2, R-COSIG-3.
    ///
    /// # Errors
    /// [`CosignatureError::TimestampTooLarge`].
    pub fn cosign(
        &self,
        checkpoint: &Checkpoint,
        timestamp: u64,
    ) -> Result<NoteSignature, CosignatureError> {
        self.cosign_body(&checkpoint.to_body(), timestamp)
    }

    /// Cosigns a checkpoint note body as received (extension lines included).
    ///
    /// # Errors
    /// [`CosignatureError::TimestampTooLarge`].
    pub fn cosign_body(
        &self,
        body: &str,
        timestamp: u64,
    ) -> Result<NoteSignature, CosignatureError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge(timestamp));
        }
        let sig = self.sign_raw(&cosigned_message(body, timestamp));
        let mut raw = Vec::with_capacity(72);
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig);
        Ok(self.signature_line(raw))
    }
}

/// A witness's public key: name, type-0x04 key id, Ed25519 key.
/// SPEC R-COSIG-1, R-COSIG-4.
pub type WitnessVerifier = Ed25519Verifier<CosignatureV1>;

impl WitnessVerifier {
    /// Verifies a cosignature's bytes (after the key id) on `body` and returns
    /// its timestamp. `None` if the length is not 72, the timestamp exceeds
    /// 2^63 − 1, or the Ed25519 signature (strict) fails. SPEC R-COSIG-5.
    pub fn verify_cosignature(&self, body: &[u8], signature: &[u8]) -> Option<u64> {
        let (ts, sig) = signature.split_first_chunk::<8>()?;
        let timestamp = u64::from_be_bytes(*ts);
        if timestamp > MAX_TIMESTAMP {
            return None;
        }
        let mut msg = format!("{COSIGNATURE_V1_HEADER}time {timestamp}\n").into_bytes();
        msg.extend_from_slice(body);
        self.verify_strict(&msg, sig).then_some(timestamp)
    }
}

/// The timestamp a v1 cosignature line claims, without verifying it (for
/// display and freshness policies; verify first with
/// [`verify_cosignatures`]). `None` if the signature is not 72 bytes.
pub fn cosignature_timestamp(sig: &NoteSignature) -> Option<u64> {
    if sig.signature().len() != 72 {
        return None;
    }
    let (ts, _) = sig.signature().split_first_chunk::<8>()?;
    Some(u64::from_be_bytes(*ts))
}

/// One verified witness cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub witness: KeyName,
    /// Its key id.
    pub key_id: KeyId,
    /// When it cosigned (POSIX seconds, as claimed by the witness).
    pub timestamp: u64,
}

/// Checks a k-of-n witness policy on a note (normally a checkpoint whose log
/// signature was already verified): every signature line naming a configured
/// witness (name and key id) must verify; lines from other keys are ignored;
/// at least `threshold` distinct configured witnesses must have cosigned.
/// A witness listed twice counts once. `threshold == 0` always passes.
/// SPEC R-COSIG-5…R-COSIG-7.
///
/// # Errors
/// [`CosignatureError::InvalidCosignature`], [`CosignatureError::QuorumNotMet`]
/// or [`CosignatureError::ImpossibleQuorum`].
pub fn verify_cosignatures(
    note: &SignedNote,
    witnesses: &[WitnessVerifier],
    threshold: usize,
) -> Result<Vec<Cosignature>, CosignatureError> {
    let mut distinct: Vec<&WitnessVerifier> = Vec::new();
    for w in witnesses {
        if !distinct
            .iter()
            .any(|d| d.name() == w.name() && d.key_id() == w.key_id())
        {
            distinct.push(w);
        }
    }
    if threshold > distinct.len() {
        return Err(CosignatureError::ImpossibleQuorum {
            threshold,
            witnesses: distinct.len(),
        });
    }
    let mut found: Vec<Cosignature> = Vec::new();
    for sig in note.signatures() {
        let Some(w) = distinct
            .iter()
            .find(|w| w.name() == sig.name() && w.key_id() == sig.key_id())
        else {
            continue;
        };
        let Some(timestamp) = w.verify_cosignature(note.body().as_bytes(), sig.signature()) else {
            return Err(CosignatureError::InvalidCosignature {
                name: w.name().clone(),
                key_id: w.key_id(),
            });
        };
        if !found
            .iter()
            .any(|c| c.witness == *w.name() && c.key_id == w.key_id())
        {
            found.push(Cosignature {
                witness: w.name().clone(),
                key_id: w.key_id(),
                timestamp,
            });
        }
    }
    if found.len() < threshold {
        return Err(CosignatureError::QuorumNotMet {
            found: found.len(),
            required: threshold,
        });
    }
    Ok(found)
}

// ---------------------------------------------------------------------------
// tlog-witness: add-checkpoint
// ---------------------------------------------------------------------------

/// Why an `add-checkpoint` request or response body is malformed (HTTP 400 on
/// the witness side). SPEC R-WIT-1…R-WIT-3, R-WIT-7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessRequestError {
    /// The body is larger than [`MAX_ADD_CHECKPOINT_BYTES`].
    #[error("request body is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Length seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8, or a control character other than newline.
    #[error("request body is not UTF-8 text without control characters")]
    BadText,
    /// The first line is not `old <decimal>`.
    #[error("first line must be 'old <size>' with a canonical decimal size")]
    BadOldLine,
    /// A proof line is not the padded base64 of 32 bytes.
    #[error("consistency proof line {0} is not the padded base64 of a 32-byte hash")]
    BadProofLine(usize),
    /// More than [`MAX_CONSISTENCY_PROOF_LINES`] proof lines.
    #[error("more than {max} consistency proof lines")]
    TooManyProofLines {
        /// The limit.
        max: usize,
    },
    /// No blank line before the checkpoint.
    #[error("missing blank line between the proof and the checkpoint")]
    MissingBlankLine,
    /// The checkpoint note or body is malformed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A response body is not one or more cosignature lines.
    #[error("response body must be one or more signature lines: {0}")]
    BadResponse(NoteError),
    /// A 409 body is not `<decimal size>\n`.
    #[error("size body must be a canonical decimal followed by a newline")]
    BadSizeBody,
}

/// An `add-checkpoint` request: the size the client believes the witness has,
/// a consistency proof from it, and the signed checkpoint. SPEC R-WIT-1.
#[derive(Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    old_size: u64,
    proof: Vec<Hash>,
    note: SignedNote,
    checkpoint: Checkpoint,
}

impl AddCheckpointRequest {
    /// Builds a request.
    ///
    /// # Errors
    /// [`WitnessRequestError::TooManyProofLines`], or
    /// [`WitnessRequestError::Checkpoint`] if the note body is not a checkpoint.
    pub fn new(
        old_size: u64,
        proof: Vec<Hash>,
        note: SignedNote,
    ) -> Result<Self, WitnessRequestError> {
        if proof.len() > MAX_CONSISTENCY_PROOF_LINES {
            return Err(WitnessRequestError::TooManyProofLines {
                max: MAX_CONSISTENCY_PROOF_LINES,
            });
        }
        let checkpoint = Checkpoint::from_body(note.body())?;
        Ok(Self {
            old_size,
            proof,
            note,
            checkpoint,
        })
    }

    /// Parses a request body strictly: `old <N>\n`, at most 63 lines each the
    /// padded base64 of a hash, an empty line, then a signed checkpoint note.
    /// SPEC R-WIT-1, R-WIT-2.
    ///
    /// # Errors
    /// [`WitnessRequestError`] (answer 400).
    pub fn parse(body: &[u8]) -> Result<Self, WitnessRequestError> {
        if body.len() > MAX_ADD_CHECKPOINT_BYTES {
            return Err(WitnessRequestError::TooLarge {
                len: body.len(),
                max: MAX_ADD_CHECKPOINT_BYTES,
            });
        }
        let text = std::str::from_utf8(body).map_err(|_| WitnessRequestError::BadText)?;
        if text.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(WitnessRequestError::BadText);
        }
        let (first, mut rest) = text
            .split_once('\n')
            .ok_or(WitnessRequestError::BadOldLine)?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or(WitnessRequestError::BadOldLine)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(WitnessRequestError::MissingBlankLine)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_CONSISTENCY_PROOF_LINES {
                return Err(WitnessRequestError::TooManyProofLines {
                    max: MAX_CONSISTENCY_PROOF_LINES,
                });
            }
            let h =
                parse_hash_b64(line).ok_or(WitnessRequestError::BadProofLine(proof.len() + 1))?;
            proof.push(h);
        }
        let note = SignedNote::parse(rest.as_bytes()).map_err(CheckpointError::from)?;
        Self::new(old_size, proof, note)
    }

    /// The request body.
    pub fn to_text(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&hash_b64(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note.to_text());
        out
    }

    /// The `old` size.
    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    /// The consistency proof.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The checkpoint note as sent (unverified).
    pub fn note(&self) -> &SignedNote {
        &self.note
    }

    /// The checkpoint (unverified).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

impl fmt::Debug for AddCheckpointRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddCheckpointRequest")
            .field("old_size", &self.old_size)
            .field("proof", &self.proof)
            .field("note", &self.note)
            .finish()
    }
}

/// Encodes the 200 response body: the cosignature lines. SPEC R-WIT-7.
pub fn format_cosignature_lines(sigs: &[NoteSignature]) -> String {
    sigs.iter().map(NoteSignature::to_line).collect()
}

/// Parses a 200 response body: one or more signature lines, each ending in a
/// newline, at most [`MAX_SIGNATURES`]. The client then adds them to its
/// checkpoint note and verifies them with [`verify_cosignatures`]. SPEC R-WIT-7,
/// R-WIT-8.
///
/// # Errors
/// [`WitnessRequestError::BadResponse`].
pub fn parse_cosignature_lines(body: &[u8]) -> Result<Vec<NoteSignature>, WitnessRequestError> {
    let bad = WitnessRequestError::BadResponse;
    let text = std::str::from_utf8(body).map_err(|_| bad(NoteError::NotUtf8))?;
    if text.len() > MAX_NOTE_BYTES {
        return Err(bad(NoteError::TooLarge {
            len: text.len(),
            max: MAX_NOTE_BYTES,
        }));
    }
    let text = text
        .strip_suffix('\n')
        .ok_or(bad(NoteError::MissingFinalNewline))?;
    let mut out = Vec::new();
    for line in text.split('\n') {
        if out.len() == MAX_SIGNATURES {
            return Err(bad(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            }));
        }
        out.push(NoteSignature::from_line(line).map_err(bad)?);
    }
    Ok(out)
}

/// Encodes a 409 body: the witness's latest cosigned size and a newline.
/// SPEC R-WIT-5.
pub fn format_size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses a 409 body (`text/x.tlog.size`). SPEC R-WIT-5.
///
/// # Errors
/// [`WitnessRequestError::BadSizeBody`].
pub fn parse_size_body(body: &[u8]) -> Result<u64, WitnessRequestError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .and_then(parse_decimal)
        .ok_or(WitnessRequestError::BadSizeBody)
}

/// Why a witness refuses to cosign. Each variant names the HTTP status
/// tlog-witness prescribes; only the server's error layer maps them.
/// SPEC R-WIT-4…R-WIT-6.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessCheckError {
    /// The checkpoint origin differs from the configured log key name (the
    /// caller looked the log up by origin; 404).
    #[error("checkpoint origin {origin} is not the log {log}")]
    UnknownOrigin {
        /// Origin in the checkpoint.
        origin: KeyName,
        /// Key name of the log verifier given.
        log: KeyName,
    },
    /// No valid signature by the log key, or a bad one (403).
    #[error("checkpoint not signed by the log key: {0}")]
    NotSignedByLog(NoteError),
    /// `old` is larger than the checkpoint size (400).
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldSizeTooLarge {
        /// `old` in the request.
        old: u64,
        /// Checkpoint size.
        size: u64,
    },
    /// `old` is not the witness's latest cosigned size (409, body
    /// [`format_size_body`] of `latest_size`).
    #[error("old size {old} does not match the witness's latest size {latest_size}")]
    StaleOldSize {
        /// `old` in the request.
        old: u64,
        /// The witness's latest cosigned size for this origin (0 if none).
        latest_size: u64,
    },
    /// Same size as the latest cosigned checkpoint, different root: a fork
    /// (409; keep the request as evidence).
    #[error("same size {size} as the latest cosigned checkpoint but a different root")]
    RootMismatch {
        /// The size both share.
        size: u64,
    },
    /// The consistency proof does not verify, or is not empty when it must be
    /// (422).
    #[error("consistency proof from {old} to {size} does not verify")]
    BadProof {
        /// `old` in the request.
        old: u64,
        /// Checkpoint size.
        size: u64,
    },
}

/// The state a witness keeps per log: the latest checkpoint it cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitnessedTree {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

/// The witness's acceptance check for `add-checkpoint` (tlog-witness), pure:
/// `latest` is the witness's stored state for the request's origin (`None` if
/// it never cosigned one), `log` the log key configured for that origin. On
/// success the caller must, atomically with re-reading `latest`, store the new
/// checkpoint and only then cosign and answer 200. SPEC R-WIT-4…R-WIT-6.
///
/// Order of checks: origin and log signature (404/403), `old ≤ size` (400),
/// `old == latest size` (409), then consistency: equal sizes need equal roots
/// and an empty proof (409/422); `old == 0` needs an empty proof (422);
/// otherwise [`crate::merkle::verify_consistency`] (422).
///
/// # Errors
/// [`WitnessCheckError`].
pub fn check_add_checkpoint(
    req: &AddCheckpointRequest,
    log: &NoteVerifier,
    latest: Option<WitnessedTree>,
) -> Result<SignedCheckpoint, WitnessCheckError> {
    let cp = req.checkpoint();
    // SPEC R-WIT-4
    if cp.origin() != log.name() {
        return Err(WitnessCheckError::UnknownOrigin {
            origin: cp.origin().clone(),
            log: log.name().clone(),
        });
    }
    let signed = verify_checkpoint(req.note().clone(), log).map_err(|e| match e {
        CheckpointError::Note(n) => WitnessCheckError::NotSignedByLog(n),
        // INVARIANT: the body was parsed and the origin matched above, so only
        // note errors remain; map anything else to 403 conservatively.
        _ => WitnessCheckError::NotSignedByLog(NoteError::NoVerifiedSignature),
    })?;
    // SPEC R-WIT-5
    let (old, size) = (req.old_size(), cp.size());
    if old > size {
        return Err(WitnessCheckError::OldSizeTooLarge { old, size });
    }
    let latest = latest.unwrap_or(WitnessedTree {
        size: 0,
        root: crate::merkle::empty_root(),
    });
    if old != latest.size {
        return Err(WitnessCheckError::StaleOldSize {
            old,
            latest_size: latest.size,
        });
    }
    // SPEC R-WIT-6
    let bad_proof = WitnessCheckError::BadProof { old, size };
    if old == size {
        if cp.root() != &latest.root {
            return Err(WitnessCheckError::RootMismatch { size });
        }
        if !req.proof().is_empty() {
            return Err(bad_proof);
        }
    } else if old == 0 {
        if !req.proof().is_empty() {
            return Err(bad_proof);
        }
    } else {
        crate::merkle::verify_consistency(old, size, &latest.root, cp.root(), req.proof())
            .map_err(|_| bad_proof)?;
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosigned_message_matches_spec_example() {
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(
            cosigned_message(body, 1_679_315_147),
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn size_body() {
        assert_eq!(parse_size_body(format_size_body(42).as_bytes()), Ok(42));
        assert!(parse_size_body(b"042\n").is_err());
        assert!(parse_size_body(b"42").is_err());
    }

    #[test]
    fn timestamp_limit() {
        let w = WitnessSigner::from_seed(KeyName::new("w").unwrap(), &[1; 32]);
        let cp = Checkpoint::new(KeyName::new("l").unwrap(), 0, crate::merkle::empty_root());
        assert_eq!(
            w.cosign(&cp, MAX_TIMESTAMP + 1),
            Err(CosignatureError::TimestampTooLarge(MAX_TIMESTAMP + 1))
        );
        let sig = w.cosign(&cp, MAX_TIMESTAMP).unwrap();
        assert_eq!(cosignature_timestamp(&sig), Some(MAX_TIMESTAMP));
    }
}
