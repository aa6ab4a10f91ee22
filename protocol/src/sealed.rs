//! Sealed campaigns' cryptographic core (issue 16; ROUND2 §1.4): exponential
//! ElGamal on ristretto255, one-hot sealed terms with disjunctive
//! Chaum–Pedersen (CDS) proofs, the homomorphic tally, trustees' decryption
//! shares with DLEQ proofs, Lagrange combination and a bounded discrete log.
//!
//! Pure functions and types only: no ledger rules, no key generation (a
//! trusted dealer exists for this module's tests only; the DKG is
//! `crate::dkg`). The normative text is SPEC §17 ("Sealed terms and proofs",
//! R-SEAL-1 … R-SEAL-29): encodings, transcripts and verification equations
//! are specified there byte for byte, with known-answer vectors in
//! `protocol/tests/vectors/sealed_kat.json`. A summary:
//!
//! - ristretto255 (RFC 9496), generator `G`, order `ℓ`; canonical 32-byte
//!   points, scalars 32 bytes little-endian `< ℓ` (R-SEAL-1). Challenges are
//!   SHA-512 over `u16 length ‖ bytes` fields, wide-reduced (R-SEAL-2).
//! - `Enc(m; r) = (r·G, m·G + r·K)`, 64 bytes (R-SEAL-4).
//! - Sealed terms, `1 + 64·B + 224·(B+1)` bytes (R-SEAL-6):
//!
//!   ```text
//!   B u8 (1..=64) ‖ B × ciphertext ‖ B × bit proof ‖ 1 × bit proof (the sum)
//!   bit proof = A0 ‖ B0 ‖ A1 ‖ B1 ‖ c0 ‖ s0 ‖ s1        (224 bytes)
//!   ```
//!
//!   Verification: with `e` the challenge, `c_0 = c0`, `c_1 = e − c0`,
//!   `s_j·G = A_j + c_j·c1` and `s_j·K = B_j + c_j·(c2 − j·G)` (R-SEAL-13).
//! - Challenge fields (R-SEAL-12): `"pledge/v2/sealed-bit"`, campaign id,
//!   nullifier, seq u32, pledge key ([`SealContext`]), `K`, `B u16`, index
//!   u32 (`0xFFFFFFFF` for the sum proof), `c1`, `c2`, `A0 B0 A1 B1`.
//! - Decryption share `D 32 ‖ c 32 ‖ s 32` (R-SEAL-21), challenge fields
//!   (R-SEAL-22): `"pledge/v2/sealed-dleq"`, campaign id, `N u64`
//!   ([`RevealContext`]), `K`, trustee index u16, `K_i`, bucket u32, `c1`,
//!   `c2`, `D`, `a1`, `a2`.
//! - Lagrange at 0 with the public-share check `Σ λ_i·K_i = K`, then
//!   `n_b` with `n_b·G = c2 − Σ λ_i·D_i` in `0..=bound` (R-SEAL-24 …
//!   R-SEAL-26).
//!
//! # Batch verification
//!
//! [`SealedTerms::verify`] checks the `4·(B+1)` equations as one random
//! linear combination (one multiscalar multiplication) with deterministic
//! public-coin weights (SPEC R-SEAL-28, informative):
//!
//! ```text
//! seed = SHA-512(fields "pledge/v2/sealed-batch", the SealContext fields, K,
//!                the whole terms encoding)       (length-prefixed, R-SEAL-2)
//! h_r  = SHA-512(field seed 64 ‖ field r u32)
//! z_q  = bytes 16·(q mod 4) .. 16·(q mod 4) + 16 of h_{⌊q/4⌋}, a 128-bit
//!        little-endian integer
//! ```
//!
//! `q = 4·p + 2·j + {0: the G equation, 1: the K equation}` for proof `p` =
//! bucket index, `B` for the sum. An invalid proof passes with probability
//! at most `2^-128` per hash evaluation an attacker spends. The weights are
//! 128 bits long, not full scalars, because the commitments' coefficients
//! are the weights themselves: a multiscalar multiplication adds once per
//! non-zero digit, so 68 of the 100 dynamic points at `B = 16` cost half. Any verifier may use its
//! own weights; [`SealedTerms::verify_unbatched`] checks each equation on
//! its own and gives the same verdict.
//!
//! # Security
//!
//! The prover is constant-time in the secret bucket (SPEC R-SEAL-16): every
//! bucket runs the same code, the plaintext bit is `ct_eq` of the bucket
//! index, both CDS branches use one formula with `subtle` selection, and all
//! multiplications involving secrets use constant-time fixed-base tables. The
//! only branches on the secret input are `Option::is_some` (a flag read
//! without a branch) and the range check that refuses an invalid bucket.
//! Secret scalars are held in [`Zeroizing`] and wiped (best effort: `Scalar`
//! is `Copy`, so register and stack copies may survive). Verification,
//! aggregation, combination and the discrete log work on public data and are
//! variable-time.

use crate::codec::{Decode, DecodeError, Reader, Writer};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::{
    CompressedRistretto, RistrettoBasepointTable, RistrettoPoint, VartimeRistrettoPrecomputation,
};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{
    Identity, IsIdentity, VartimeMultiscalarMul, VartimePrecomputedMultiscalarMul,
};
use rand::CryptoRng;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Most buckets a sealed campaign may have (the entry stays below R-ENTRY-2's
/// 65,535 bytes).
pub const MAX_BUCKETS: usize = 64;
/// Most buckets recommended: client proof and server verification cost grow
/// linearly with `B` (ROUND2 §0.1).
pub const RECOMMENDED_MAX_BUCKETS: usize = 32;
/// Domain tag of the bit and sum proofs' challenges.
pub const BIT_PROOF_TAG: &[u8] = b"pledge/v2/sealed-bit";
/// Domain tag of the decryption shares' DLEQ challenges.
pub const DLEQ_TAG: &[u8] = b"pledge/v2/sealed-dleq";
/// Domain tag of the batch verifier's weights.
pub const BATCH_WEIGHTS_TAG: &[u8] = b"pledge/v2/sealed-batch";
/// Index the sum proof's transcript uses in place of a bucket index.
pub const SUM_INDEX: u32 = u32::MAX;
/// Bytes of one encoded [`Ciphertext`].
pub const CIPHERTEXT_LEN: usize = 64;
/// Bytes of one encoded bit proof.
pub const BIT_PROOF_LEN: usize = 224;
/// Bytes of one encoded [`DecryptionShare`].
pub const DECRYPTION_SHARE_LEN: usize = 96;
/// Largest bound [`DiscreteLogTable::new`] accepts (`2^40`: a table of
/// `2^20` entries).
pub const MAX_DLOG_BOUND: u64 = 1 << 40;

/// Length of the encoding of [`SealedTerms`] over `bucket_count` buckets.
// SPEC R-SEAL-6
pub const fn sealed_terms_len(bucket_count: usize) -> usize {
    1 + CIPHERTEXT_LEN * bucket_count + BIT_PROOF_LEN * (bucket_count + 1)
}

const G: RistrettoPoint = RISTRETTO_BASEPOINT_POINT;

/// Why a sealed-campaign operation failed. Each variant names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealedError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A bucket count outside `1..=64`.
    #[error("bucket count {0} outside 1..=64")]
    BucketCount(usize),
    /// The chosen bucket is not below the bucket count.
    #[error("bucket index out of range")]
    BucketOutOfRange,
    /// Terms or an aggregate over another number of buckets than expected.
    #[error("{got} buckets where {expected} were expected")]
    BucketCountMismatch {
        /// The campaign's (or the aggregate's) bucket count.
        expected: usize,
        /// The count found.
        got: usize,
    },
    /// The 0-or-1 proof of one bucket does not verify.
    #[error("the proof of bucket {0} does not verify")]
    InvalidBitProof(u32),
    /// The proof that the buckets sum to 0 or 1 does not verify.
    #[error("the sum proof does not verify")]
    InvalidSumProof,
    /// The batched check failed although each proof verifies alone (a
    /// verifier bug or a `1/ℓ` event; the terms are refused).
    #[error("the proofs do not verify as a batch")]
    InvalidBatch,
    /// A decryption share's DLEQ proof does not verify.
    #[error("decryption share of trustee {trustee} for bucket {bucket} does not verify")]
    InvalidDecryptionShare {
        /// Trustee index.
        trustee: u16,
        /// Bucket index.
        bucket: u32,
    },
    /// Trustee index 0, or a threshold `k` outside `1..=n`.
    #[error("trustee index or threshold out of range")]
    TrusteeIndex,
    /// Two shares from one trustee.
    #[error("two share sets from trustee {0}")]
    DuplicateTrustee(u16),
    /// Fewer share sets than the threshold.
    #[error("{got} trustees' shares, {needed} needed")]
    TooFewShares {
        /// The threshold `k`.
        needed: usize,
        /// Share sets given.
        got: usize,
    },
    /// The trustees' public shares do not interpolate to the joint key.
    #[error("the trustees' public shares do not match the joint key")]
    PublicSharesMismatch,
    /// A decrypted count is not in `0..=bound` (a trustee error or a wrong
    /// bound), or the bound exceeds [`MAX_DLOG_BOUND`].
    #[error("decrypted count beyond the bound {bound}")]
    CountBeyondBound {
        /// The bound searched.
        bound: u64,
    },
}

/// Decompresses a canonical, valid ristretto255 encoding.
// SPEC R-SEAL-1: RFC 9496 decoding refuses every non-canonical encoding.
pub(crate) fn decode_point(
    bytes: [u8; 32],
    field: &'static str,
) -> Result<RistrettoPoint, DecodeError> {
    CompressedRistretto(bytes)
        .decompress()
        .ok_or(DecodeError::Malformed {
            field,
            reason: "not a canonical ristretto255 encoding",
        })
}

/// Reads a canonical scalar (`< ℓ`).
// SPEC R-SEAL-1: scalars >= ℓ are refused.
pub(crate) fn decode_scalar(bytes: [u8; 32], field: &'static str) -> Result<Scalar, DecodeError> {
    Option::from(Scalar::from_canonical_bytes(bytes)).ok_or(DecodeError::Malformed {
        field,
        reason: "scalar not reduced modulo the group order",
    })
}

/// A uniformly random scalar from 64 random bytes, the buffer wiped.
pub(crate) fn random_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<Scalar> {
    let mut wide = Zeroizing::new([0u8; 64]);
    rng.fill_bytes(wide.as_mut());
    Zeroizing::new(Scalar::from_bytes_mod_order_wide(&wide))
}

/// SHA-512 over length-prefixed fields, wide-reduced. SPEC R-SEAL-2. The
/// key generation's transcripts ([`crate::dkg`], R-DKG-2) follow the same
/// convention and use this type.
#[derive(Clone)]
pub(crate) struct Transcript(Sha512);

impl Transcript {
    pub(crate) fn new(tag: &[u8]) -> Self {
        let mut t = Self(Sha512::new());
        t.field(tag);
        t
    }

    /// Appends `u16 length ‖ bytes`. Every field is at most 65,535 bytes:
    /// 64 in this module, a dealing's 2,177 in [`crate::dkg`] (INVARIANT
    /// checked by debug assertion).
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        debug_assert!(bytes.len() <= usize::from(u16::MAX));
        let n = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        self.0.update(n.to_be_bytes());
        self.0.update(bytes);
        self
    }

    pub(crate) fn digest(self) -> [u8; 64] {
        self.0.finalize().into()
    }

    pub(crate) fn challenge(self) -> Scalar {
        Scalar::from_bytes_mod_order_wide(&self.digest())
    }
}

/// The trustees' joint encryption key `K` (from the DKG), with the tables
/// provers and verifiers use. Cheap to clone.
#[derive(Clone)]
pub struct JointPublicKey {
    point: RistrettoPoint,
    bytes: [u8; 32],
    tables: Arc<KeyTables>,
}

struct KeyTables {
    /// Constant-time fixed-base table of `K` (prover).
    k: RistrettoBasepointTable,
    /// `[G, K]` for the verifier's mixed multiscalar products.
    static_points: VartimeRistrettoPrecomputation,
}

impl JointPublicKey {
    /// The key for a point; refuses the identity.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] for the identity.
    // SPEC R-SEAL-3
    pub fn from_point(point: RistrettoPoint) -> Result<Self, DecodeError> {
        if point.is_identity() {
            return Err(DecodeError::Malformed {
                field: "sealed.joint_key",
                reason: "the identity is not a key",
            });
        }
        Ok(Self {
            point,
            bytes: point.compress().to_bytes(),
            tables: Arc::new(KeyTables {
                k: RistrettoBasepointTable::create(&point),
                static_points: VartimeRistrettoPrecomputation::new([G, point]),
            }),
        })
    }

    /// Parses the canonical 32-byte encoding.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] for a non-canonical encoding or the identity.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, DecodeError> {
        Self::from_point(decode_point(bytes, "sealed.joint_key")?)
    }

    /// The canonical 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// The point `K`.
    pub fn point(&self) -> RistrettoPoint {
        self.point
    }
}

impl PartialEq for JointPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for JointPublicKey {}

impl std::fmt::Debug for JointPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JointPublicKey({})", hex::encode(self.bytes))
    }
}

/// Everything a sealed pledge's proofs are bound to besides the joint key:
/// the pledge's identity in the log. Fixed-size byte arrays so that this
/// module does not depend on the ledger's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext {
    /// The campaign id.
    pub campaign: [u8; 32],
    /// The pledge's nullifier.
    pub nullifier: [u8; 32],
    /// 0 for the pledge, the amendment's `seq` for an amendment (R-PLEDGE-7).
    pub seq: u32,
    /// The pledge's Ed25519 public key.
    pub pledge_key: [u8; 32],
}

impl SealContext {
    fn append_to(&self, t: &mut Transcript) {
        t.field(&self.campaign)
            .field(&self.nullifier)
            .field(&self.seq.to_be_bytes())
            .field(&self.pledge_key);
    }
}

/// An exponential-ElGamal ciphertext `(c1, c2) = (r·G, m·G + r·K)`. Adding
/// ciphertexts adds plaintexts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ciphertext {
    c1: RistrettoPoint,
    c2: RistrettoPoint,
}

impl Default for Ciphertext {
    fn default() -> Self {
        Self::zero()
    }
}

impl Ciphertext {
    /// `(identity, identity)`: the encryption of 0 with randomness 0, the
    /// neutral element of the sum.
    pub fn zero() -> Self {
        Self {
            c1: RistrettoPoint::identity(),
            c2: RistrettoPoint::identity(),
        }
    }

    /// Encrypts bit `m` with randomness `r`, in constant time.
    // SPEC R-SEAL-4
    fn encrypt_bit(key: &JointPublicKey, m: Choice, r: &Scalar) -> Self {
        let rk = &key.tables.k * r;
        Self {
            c1: RistrettoPoint::mul_base(r),
            c2: RistrettoPoint::conditional_select(&rk, &(rk + G), m),
        }
    }

    /// `c1`, the randomness part.
    pub fn c1(&self) -> RistrettoPoint {
        self.c1
    }

    /// `c2`, the masked plaintext part.
    pub fn c2(&self) -> RistrettoPoint {
        self.c2
    }

    /// `c1 32 ‖ c2 32`.
    pub fn to_bytes(&self) -> [u8; CIPHERTEXT_LEN] {
        let mut out = [0u8; CIPHERTEXT_LEN];
        out[..32].copy_from_slice(self.c1.compress().as_bytes());
        out[32..].copy_from_slice(self.c2.compress().as_bytes());
        out
    }

    /// Appends `c1 32 ‖ c2 32`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(&self.to_bytes());
    }
}

impl Decode for Ciphertext {
    /// Reads `c1 32 ‖ c2 32`.
    ///
    /// # Errors
    /// Truncation or a non-canonical point.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            c1: decode_point(r.array("sealed.c1")?, "sealed.c1")?,
            c2: decode_point(r.array("sealed.c2")?, "sealed.c2")?,
        })
    }
}

crate::codec::inherent_decode!(Ciphertext);

impl std::ops::Add for Ciphertext {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            c1: self.c1 + o.c1,
            c2: self.c2 + o.c2,
        }
    }
}

impl std::ops::Sub for Ciphertext {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            c1: self.c1 - o.c1,
            c2: self.c2 - o.c2,
        }
    }
}

impl std::ops::AddAssign for Ciphertext {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

impl std::ops::SubAssign for Ciphertext {
    fn sub_assign(&mut self, o: Self) {
        *self = *self - o;
    }
}

impl std::iter::Sum for Ciphertext {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::zero(), |a, b| a + b)
    }
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext({})", hex::encode(self.to_bytes()))
    }
}

/// A CDS proof that a ciphertext holds 0 or 1, batchable form. SPEC R-SEAL-9, R-SEAL-10
/// Commitments are kept both as points and as their encodings.
#[derive(Clone, PartialEq, Eq)]
struct BitProof {
    /// `A0, B0, A1, B1`.
    commitments: [RistrettoPoint; 4],
    commitment_bytes: [[u8; 32]; 4],
    c0: Scalar,
    s0: Scalar,
    s1: Scalar,
}

impl BitProof {
    fn encode_into(&self, w: &mut Writer) {
        for c in &self.commitment_bytes {
            w.raw(c);
        }
        w.raw(self.c0.as_bytes())
            .raw(self.s0.as_bytes())
            .raw(self.s1.as_bytes());
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut commitment_bytes = [[0u8; 32]; 4];
        let mut commitments = [RistrettoPoint::identity(); 4];
        for (b, p) in commitment_bytes.iter_mut().zip(commitments.iter_mut()) {
            *b = r.array("sealed.proof.commitment")?;
            *p = decode_point(*b, "sealed.proof.commitment")?;
        }
        Ok(Self {
            commitments,
            commitment_bytes,
            c0: decode_scalar(r.array("sealed.proof.c0")?, "sealed.proof.c0")?,
            s0: decode_scalar(r.array("sealed.proof.s0")?, "sealed.proof.s0")?,
            s1: decode_scalar(r.array("sealed.proof.s1")?, "sealed.proof.s1")?,
        })
    }

    /// The Fiat–Shamir challenge for this proof of `ct` at `index`, from the
    /// transcript `prefix` (tag, context, key, bucket count).
    // SPEC R-SEAL-12
    fn challenge(prefix: &Transcript, index: u32, ct: &[u8; 64], comm: &[[u8; 32]; 4]) -> Scalar {
        let mut t = prefix.clone();
        t.field(&index.to_be_bytes())
            .field(&ct[..32])
            .field(&ct[32..]);
        for c in comm {
            t.field(c);
        }
        t.challenge()
    }

    /// Proves that `ct = Enc(m; r)` holds `m ∈ {0, 1}`, constant-time in `m`
    /// and `r`. Both branches run one formula: with `(s', c')` = `(w, 0)` for
    /// the real branch and `(s_sim, c_sim)` for the other, and `t = s' − c'·r`,
    /// `δ = m − j`:
    /// `A_j = s'·G − c'·c1 = t·G` and `B_j = s'·K − c'·(c2 − j·G) = t·K − (c'·δ)·G`,
    /// all fixed-base multiplications.
    #[allow(clippy::too_many_arguments)]
    // SPEC R-SEAL-15, R-SEAL-16
    fn prove<R: CryptoRng + ?Sized>(
        prefix: &Transcript,
        key: &JointPublicKey,
        index: u32,
        ct_bytes: &[u8; 64],
        m: Choice,
        r: &Scalar,
        rng: &mut R,
    ) -> Self {
        let w = random_scalar(rng);
        let c_sim = random_scalar(rng);
        let s_sim = random_scalar(rng);
        let m_scalar = Zeroizing::new(Scalar::from(m.unwrap_u8()));
        let mut commitments = [RistrettoPoint::identity(); 4];
        for j in 0..2u8 {
            let real = if j == 1 { m } else { !m };
            let sp = Zeroizing::new(Scalar::conditional_select(&s_sim, &w, real));
            let cp = Zeroizing::new(Scalar::conditional_select(&c_sim, &Scalar::ZERO, real));
            let t = Zeroizing::new(*sp - *cp * r);
            let delta = Zeroizing::new(*m_scalar - Scalar::from(j));
            let cd = Zeroizing::new(*cp * *delta);
            let j = usize::from(j);
            commitments[2 * j] = RistrettoPoint::mul_base(&t);
            commitments[2 * j + 1] = &key.tables.k * &*t - RistrettoPoint::mul_base(&cd);
        }
        let commitment_bytes = commitments.map(|p| p.compress().to_bytes());
        let e = Self::challenge(prefix, index, ct_bytes, &commitment_bytes);
        let c_real = Zeroizing::new(e - *c_sim);
        let s_real = Zeroizing::new(*w + *c_real * r);
        // Branch 1 is the real one iff m.
        Self {
            commitments,
            commitment_bytes,
            c0: Scalar::conditional_select(&c_real, &c_sim, m),
            s0: Scalar::conditional_select(&s_real, &s_sim, m),
            s1: Scalar::conditional_select(&s_sim, &s_real, m),
        }
    }

    /// `(c_0, c_1)` for challenge `e`.
    fn challenges(&self, e: Scalar) -> [Scalar; 2] {
        [self.c0, e - self.c0]
    }

    /// Checks the four equations one by one (variable time).
    // SPEC R-SEAL-13
    fn verify_vartime(
        &self,
        prefix: &Transcript,
        key: &JointPublicKey,
        index: u32,
        ct: &Ciphertext,
        ct_bytes: &[u8; 64],
    ) -> bool {
        let e = Self::challenge(prefix, index, ct_bytes, &self.commitment_bytes);
        let c = self.challenges(e);
        let s = [self.s0, self.s1];
        (0..2).all(|j| {
            // s·G − c·c1 = A_j
            let a = RistrettoPoint::vartime_double_scalar_mul_basepoint(&(-c[j]), &ct.c1, &s[j]);
            // s·K − c·c2 + j·c·G = B_j
            let g = if j == 1 { c[j] } else { Scalar::ZERO };
            let b =
                key.tables
                    .static_points
                    .vartime_mixed_multiscalar_mul([g, s[j]], [-c[j]], [ct.c2]);
            a == self.commitments[2 * j] && b == self.commitments[2 * j + 1]
        })
    }
}

/// A sealed pledge's terms: `B` ciphertexts of a one-hot (or zero) vector,
/// a 0-or-1 proof per bucket and a 0-or-1 proof of their sum. Layout in the
/// SPEC R-SEAL-6.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTerms {
    ciphertexts: Vec<Ciphertext>,
    ciphertext_bytes: Vec<[u8; 64]>,
    proofs: Vec<BitProof>,
    sum_proof: BitProof,
}

/// The transcript prefix shared by every proof of one sealed terms value.
// SPEC R-SEAL-8, R-SEAL-12 (fields 1 to 7)
fn bit_prefix(context: &SealContext, key: &JointPublicKey, bucket_count: usize) -> Transcript {
    let mut t = Transcript::new(BIT_PROOF_TAG);
    context.append_to(&mut t);
    // INVARIANT: bucket_count <= MAX_BUCKETS, checked by every caller.
    let b = u16::try_from(bucket_count).unwrap_or(u16::MAX);
    t.field(&key.bytes).field(&b.to_be_bytes());
    t
}

/// `1..=MAX_BUCKETS`.
// SPEC R-SEAL-5
fn check_bucket_count(bucket_count: usize) -> Result<(), SealedError> {
    if (1..=MAX_BUCKETS).contains(&bucket_count) {
        Ok(())
    } else {
        Err(SealedError::BucketCount(bucket_count))
    }
}

/// Bucket index `i < 64` as the transcript's u32.
fn index_u32(i: usize) -> u32 {
    // INVARIANT: i < MAX_BUCKETS.
    u32::try_from(i).unwrap_or(SUM_INDEX)
}

impl SealedTerms {
    /// Seals `bucket` (`None`: a null pledge, the zero vector) over
    /// `bucket_count` buckets, bound to `context` and `key`.
    ///
    /// # Errors
    /// [`SealedError::BucketCount`] or [`SealedError::BucketOutOfRange`].
    ///
    /// # Security
    /// Constant-time in `bucket` (SPEC R-SEAL-16); `rng` must be a
    /// CSPRNG: a repeated or predictable draw reveals the bucket.
    pub fn seal<R: CryptoRng + ?Sized>(
        context: &SealContext,
        key: &JointPublicKey,
        bucket_count: usize,
        bucket: Option<usize>,
        rng: &mut R,
    ) -> Result<Self, SealedError> {
        check_bucket_count(bucket_count)?;
        let real = Choice::from(u8::from(bucket.is_some()));
        let chosen = Zeroizing::new(bucket.unwrap_or(0));
        if *chosen >= bucket_count {
            return Err(SealedError::BucketOutOfRange);
        }
        let chosen = Zeroizing::new(index_u32(*chosen));
        let prefix = bit_prefix(context, key, bucket_count);
        let mut ciphertexts = Vec::with_capacity(bucket_count);
        let mut ciphertext_bytes = Vec::with_capacity(bucket_count);
        let mut proofs = Vec::with_capacity(bucket_count);
        let mut r_sum = Zeroizing::new(Scalar::ZERO);
        for i in 0..bucket_count {
            let index = index_u32(i);
            let m = real & index.ct_eq(&chosen);
            let r = random_scalar(rng);
            let ct = Ciphertext::encrypt_bit(key, m, &r);
            let bytes = ct.to_bytes();
            proofs.push(BitProof::prove(&prefix, key, index, &bytes, m, &r, rng));
            *r_sum += *r;
            ciphertexts.push(ct);
            ciphertext_bytes.push(bytes);
        }
        let sum: Ciphertext = ciphertexts.iter().copied().sum();
        // SPEC R-SEAL-11: the sum proof's witness is (Σ m_i, Σ r_i).
        let sum_proof =
            BitProof::prove(&prefix, key, SUM_INDEX, &sum.to_bytes(), real, &r_sum, rng);
        Ok(Self {
            ciphertexts,
            ciphertext_bytes,
            proofs,
            sum_proof,
        })
    }

    /// `B`, the number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.ciphertexts.len()
    }

    /// The `B` ciphertexts, bucket 0 first.
    pub fn ciphertexts(&self) -> &[Ciphertext] {
        &self.ciphertexts
    }

    /// The ciphertexts' canonical encodings, as received or sealed (no
    /// compression needed to store or hash them).
    pub fn ciphertext_bytes(&self) -> &[[u8; 64]] {
        &self.ciphertext_bytes
    }

    /// Encoding length of these terms.
    pub fn encoded_len(&self) -> usize {
        sealed_terms_len(self.bucket_count())
    }

    /// The sum ciphertext and its encoding.
    // SPEC R-SEAL-11: computed by the verifier, never transmitted.
    fn sum(&self) -> (Ciphertext, [u8; 64]) {
        let sum: Ciphertext = self.ciphertexts.iter().copied().sum();
        (sum, sum.to_bytes())
    }

    /// Verifies every proof under `context` and `key`, as one batch (module
    /// docs, "Batch verification"); on failure, finds the first failing proof
    /// with [`SealedTerms::verify_unbatched`] to name it.
    ///
    /// # Errors
    /// [`SealedError::InvalidBitProof`], [`SealedError::InvalidSumProof`] or,
    /// should the batch fail while each proof passes, [`SealedError::InvalidBatch`].
    // SPEC R-SEAL-14
    pub fn verify(&self, context: &SealContext, key: &JointPublicKey) -> Result<(), SealedError> {
        if self.verify_batch(context, key) {
            return Ok(());
        }
        self.verify_unbatched(context, key)?;
        Err(SealedError::InvalidBatch)
    }

    /// Verifies every proof on its own, equation by equation: the simple
    /// reference check the batch must agree with (about twice slower).
    ///
    /// # Errors
    /// [`SealedError::InvalidBitProof`] naming the first failing bucket, or
    /// [`SealedError::InvalidSumProof`].
    pub fn verify_unbatched(
        &self,
        context: &SealContext,
        key: &JointPublicKey,
    ) -> Result<(), SealedError> {
        let prefix = bit_prefix(context, key, self.bucket_count());
        for (i, ((ct, bytes), proof)) in self
            .ciphertexts
            .iter()
            .zip(&self.ciphertext_bytes)
            .zip(&self.proofs)
            .enumerate()
        {
            let index = index_u32(i);
            if !proof.verify_vartime(&prefix, key, index, ct, bytes) {
                return Err(SealedError::InvalidBitProof(index));
            }
        }
        let (sum, sum_bytes) = self.sum();
        if !self
            .sum_proof
            .verify_vartime(&prefix, key, SUM_INDEX, &sum, &sum_bytes)
        {
            return Err(SealedError::InvalidSumProof);
        }
        Ok(())
    }

    /// The batch weights' seed (module docs; SPEC R-SEAL-28).
    fn weight_seed(&self, context: &SealContext, key: &JointPublicKey) -> [u8; 64] {
        let mut t = Transcript::new(BATCH_WEIGHTS_TAG);
        context.append_to(&mut t);
        t.field(&key.bytes).field(&self.encode());
        t.digest()
    }

    /// One multiscalar product over `[G, K]` and `6·B + 4` dynamic points.
    fn verify_batch(&self, context: &SealContext, key: &JointPublicKey) -> bool {
        let b = self.bucket_count();
        let prefix = bit_prefix(context, key, b);
        let seed = self.weight_seed(context, key);
        // 128-bit weights, four per hash (module docs): the commitments'
        // scalars are then half as long, and Straus adds half as often.
        let mut q = 0usize;
        let mut block = [0u8; 64];
        let mut weight = || {
            let lane = q % 4;
            if lane == 0 {
                let mut t = Transcript::new(&seed);
                // INVARIANT: q < 4·(64 + 1) equations.
                t.field(&u32::try_from(q / 4).unwrap_or(u32::MAX).to_be_bytes());
                block = t.digest();
            }
            q += 1;
            let mut w = [0u8; 32];
            w[..16].copy_from_slice(&block[16 * lane..16 * lane + 16]);
            // < 2^128 < ℓ: canonical.
            Scalar::from_bytes_mod_order(w)
        };
        let (_, sum_bytes) = self.sum();
        let mut g_coeff = Scalar::ZERO;
        let mut k_coeff = Scalar::ZERO;
        let mut scalars = Vec::with_capacity(6 * b + 4);
        let mut points = Vec::with_capacity(6 * b + 4);
        // Coefficients of each bucket's c1 and c2; the sum proof's go to
        // every bucket (Σ c1_i, Σ c2_i), saving two points.
        let mut ct_coeffs = vec![(Scalar::ZERO, Scalar::ZERO); b];
        let mut sum_coeffs = (Scalar::ZERO, Scalar::ZERO);
        for p in 0..=b {
            let (proof, index, ct_bytes, coeffs) = match (self.proofs.get(p), ct_coeffs.get_mut(p))
            {
                (Some(proof), Some(coeffs)) => (
                    proof,
                    index_u32(p),
                    self.ciphertext_bytes.get(p).unwrap_or(&sum_bytes),
                    coeffs,
                ),
                _ => (&self.sum_proof, SUM_INDEX, &sum_bytes, &mut sum_coeffs),
            };
            let e = BitProof::challenge(&prefix, index, ct_bytes, &proof.commitment_bytes);
            let c = proof.challenges(e);
            let s = [proof.s0, proof.s1];
            for j in 0..2 {
                let z = weight();
                let y = weight();
                // z·(s·G − c·c1 − A_j) + y·(s·K − c·c2 + j·c·G − B_j) = 0
                g_coeff += z * s[j];
                if j == 1 {
                    g_coeff += y * c[j];
                }
                k_coeff += y * s[j];
                coeffs.0 -= z * c[j];
                coeffs.1 -= y * c[j];
                scalars.push(-z);
                points.push(proof.commitments[2 * j]);
                scalars.push(-y);
                points.push(proof.commitments[2 * j + 1]);
            }
        }
        for (ct, (a, b)) in self.ciphertexts.iter().zip(ct_coeffs) {
            scalars.push(a + sum_coeffs.0);
            points.push(ct.c1);
            scalars.push(b + sum_coeffs.1);
            points.push(ct.c2);
        }
        key.tables
            .static_points
            .vartime_mixed_multiscalar_mul([g_coeff, k_coeff], &scalars, &points)
            .is_identity()
    }

    /// Appends the layout of SPEC R-SEAL-6.
    pub fn encode_into(&self, w: &mut Writer) {
        // INVARIANT: 1 <= B <= 64, checked by `seal` and `decode_from`.
        w.u8(u8::try_from(self.bucket_count()).unwrap_or(u8::MAX));
        for bytes in &self.ciphertext_bytes {
            w.raw(bytes);
        }
        for proof in &self.proofs {
            proof.encode_into(w);
        }
        self.sum_proof.encode_into(w);
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }
}

impl Decode for SealedTerms {
    /// Reads the layout of SPEC R-SEAL-6, with the refusals of R-SEAL-7.
    ///
    /// # Errors
    /// [`DecodeError::OutOfRange`] for `B` outside `1..=64`, truncation,
    /// non-canonical points or scalars.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let b = usize::from(r.u8("sealed.bucket_count")?);
        if check_bucket_count(b).is_err() {
            return Err(DecodeError::OutOfRange {
                field: "sealed.bucket_count",
                reason: "must be 1..=64",
            });
        }
        // SPEC R-SEAL-7 (3); trailing bytes: `Decode::decode`.
        if r.remaining() < sealed_terms_len(b) - 1 {
            return Err(DecodeError::Truncated {
                field: "sealed.terms",
            });
        }
        let mut ciphertexts = Vec::with_capacity(b);
        let mut ciphertext_bytes = Vec::with_capacity(b);
        for _ in 0..b {
            let bytes: [u8; 64] = r.array("sealed.ciphertext")?;
            let mut inner = Reader::new(&bytes);
            ciphertexts.push(Ciphertext::decode_from(&mut inner)?);
            ciphertext_bytes.push(bytes);
        }
        let proofs = (0..b)
            .map(|_| BitProof::decode_from(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            ciphertexts,
            ciphertext_bytes,
            proofs,
            sum_proof: BitProof::decode_from(r)?,
        })
    }

    /// Refuses inputs longer than the encoding at 64 buckets.
    // SPEC R-SEAL-7 (1)
    fn check_len(len: usize) -> Result<(), DecodeError> {
        if len > sealed_terms_len(MAX_BUCKETS) {
            return Err(DecodeError::OutOfRange {
                field: "sealed.terms",
                reason: "longer than 64 buckets allow",
            });
        }
        Ok(())
    }
}

crate::codec::inherent_decode!(SealedTerms);

impl std::fmt::Debug for SealedTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedTerms")
            .field("bucket_count", &self.bucket_count())
            .finish_non_exhaustive()
    }
}

/// The aggregate of many sealed terms, bucket by bucket: `Σ` of the `i`-th
/// ciphertexts for each `i`. (An amendment subtracts the old vector and adds
/// the new one: [`Ciphertext`] implements `Sub`.)
///
/// # Errors
/// [`SealedError::BucketCount`], or [`SealedError::BucketCountMismatch`] if
/// some terms have another bucket count.
// SPEC R-SEAL-17
pub fn aggregate<'a>(
    bucket_count: usize,
    terms: impl IntoIterator<Item = &'a SealedTerms>,
) -> Result<Vec<Ciphertext>, SealedError> {
    check_bucket_count(bucket_count)?;
    let mut sum = vec![Ciphertext::zero(); bucket_count];
    for t in terms {
        if t.bucket_count() != bucket_count {
            return Err(SealedError::BucketCountMismatch {
                expected: bucket_count,
                got: t.bucket_count(),
            });
        }
        for (acc, ct) in sum.iter_mut().zip(&t.ciphertexts) {
            *acc += *ct;
        }
    }
    Ok(sum)
}

/// What decryption shares are bound to: the campaign and the checkpoint size
/// the aggregate is taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevealContext {
    /// The campaign id.
    pub campaign: [u8; 32],
    /// The log size `N` the aggregate covers.
    pub size: u64,
}

/// Trustee `i`'s secret share `x_i` of the joint key (from the DKG). Zeroized
/// on drop; no `Clone`; `Debug` shows the index only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct TrusteeSecretShare {
    index: u16,
    secret: Scalar,
}

impl TrusteeSecretShare {
    /// Trustee `index` (`≥ 1`) with share `x_i` (32 bytes, canonical).
    ///
    /// # Errors
    /// [`SealedError::TrusteeIndex`] for index 0; a decode error for a
    /// non-canonical scalar, and for zero (whose public share, the
    /// identity, [`TrusteePublicShare::from_bytes`] refuses).
    pub fn from_bytes(index: u16, secret: &[u8; 32]) -> Result<Self, SealedError> {
        if index == 0 {
            return Err(SealedError::TrusteeIndex);
        }
        let secret = decode_scalar(*secret, "sealed.trustee_secret")?;
        if secret == Scalar::ZERO {
            return Err(DecodeError::OutOfRange {
                field: "sealed.trustee_secret",
                reason: "a trustee's secret share is never zero",
            }
            .into());
        }
        Ok(Self { index, secret })
    }

    /// The trustee's index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// `K_i = x_i·G`.
    pub fn public_share(&self) -> TrusteePublicShare {
        let point = RistrettoPoint::mul_base(&self.secret);
        TrusteePublicShare {
            index: self.index,
            point,
            bytes: point.compress().to_bytes(),
        }
    }

    /// The decryption share of bucket `bucket`'s aggregate `ct`, with its
    /// DLEQ proof.
    // SPEC R-SEAL-21
    pub fn decryption_share<R: CryptoRng + ?Sized>(
        &self,
        context: &RevealContext,
        key: &JointPublicKey,
        bucket: u32,
        ct: &Ciphertext,
        rng: &mut R,
    ) -> DecryptionShare {
        let public = self.public_share();
        let d = ct.c1 * self.secret;
        let d_bytes = d.compress().to_bytes();
        let w = random_scalar(rng);
        let a1 = RistrettoPoint::mul_base(&w);
        let a2 = ct.c1 * *w;
        let c = dleq_challenge(context, key, &public, bucket, ct, &d_bytes, &a1, &a2);
        DecryptionShare {
            d,
            d_bytes,
            c,
            s: *w + c * self.secret,
        }
    }

    /// One decryption share per bucket of `aggregate`, bucket 0 first.
    pub fn decryption_shares<R: CryptoRng + ?Sized>(
        &self,
        context: &RevealContext,
        key: &JointPublicKey,
        aggregate: &[Ciphertext],
        rng: &mut R,
    ) -> Vec<DecryptionShare> {
        aggregate
            .iter()
            .enumerate()
            .map(|(b, ct)| self.decryption_share(context, key, index_u32(b), ct, rng))
            .collect()
    }
}

impl std::fmt::Debug for TrusteeSecretShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrusteeSecretShare")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Trustee `i`'s public share `K_i = x_i·G`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TrusteePublicShare {
    index: u16,
    point: RistrettoPoint,
    bytes: [u8; 32],
}

impl TrusteePublicShare {
    /// Trustee `index` (`≥ 1`) with public share `K_i` (canonical encoding).
    ///
    /// # Errors
    /// [`SealedError::TrusteeIndex`] for index 0, a decode error for a
    /// non-canonical encoding or the identity.
    pub fn from_bytes(index: u16, bytes: [u8; 32]) -> Result<Self, SealedError> {
        if index == 0 {
            return Err(SealedError::TrusteeIndex);
        }
        let point = decode_point(bytes, "sealed.trustee_share")?;
        // SPEC R-SEAL-19
        if point.is_identity() {
            return Err(DecodeError::Malformed {
                field: "sealed.trustee_share",
                reason: "the identity is not a key",
            }
            .into());
        }
        Ok(Self {
            index,
            point,
            bytes,
        })
    }

    /// The trustee's index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The canonical encoding of `K_i`.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }
}

impl std::fmt::Debug for TrusteePublicShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TrusteePublicShare({}, {})",
            self.index,
            hex::encode(self.bytes)
        )
    }
}

/// The DLEQ challenge. SPEC R-SEAL-22
#[allow(clippy::too_many_arguments)]
fn dleq_challenge(
    context: &RevealContext,
    key: &JointPublicKey,
    public: &TrusteePublicShare,
    bucket: u32,
    ct: &Ciphertext,
    d_bytes: &[u8; 32],
    a1: &RistrettoPoint,
    a2: &RistrettoPoint,
) -> Scalar {
    let ct_bytes = ct.to_bytes();
    let mut t = Transcript::new(DLEQ_TAG);
    t.field(&context.campaign)
        .field(&context.size.to_be_bytes())
        .field(&key.bytes)
        .field(&public.index.to_be_bytes())
        .field(&public.bytes)
        .field(&bucket.to_be_bytes())
        .field(&ct_bytes[..32])
        .field(&ct_bytes[32..])
        .field(d_bytes)
        .field(a1.compress().as_bytes())
        .field(a2.compress().as_bytes());
    t.challenge()
}

/// A trustee's decryption share `D_i = x_i·c1` of one aggregate ciphertext,
/// with its DLEQ proof `(c, s)`. Encoding `D_i 32 ‖ c 32 ‖ s 32`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DecryptionShare {
    d: RistrettoPoint,
    d_bytes: [u8; 32],
    c: Scalar,
    s: Scalar,
}

impl DecryptionShare {
    /// Checks the DLEQ proof: `D_i` was made with the secret behind `public`
    /// for bucket `bucket`'s aggregate `ct`, in `context`, under `key`.
    ///
    /// # Errors
    /// [`SealedError::InvalidDecryptionShare`].
    pub fn verify(
        &self,
        context: &RevealContext,
        key: &JointPublicKey,
        public: &TrusteePublicShare,
        bucket: u32,
        ct: &Ciphertext,
    ) -> Result<(), SealedError> {
        // SPEC R-SEAL-23
        let a1 =
            RistrettoPoint::vartime_double_scalar_mul_basepoint(&(-self.c), &public.point, &self.s);
        let a2 = RistrettoPoint::vartime_multiscalar_mul([self.s, -self.c], [ct.c1, self.d]);
        if dleq_challenge(context, key, public, bucket, ct, &self.d_bytes, &a1, &a2) == self.c {
            Ok(())
        } else {
            Err(SealedError::InvalidDecryptionShare {
                trustee: public.index,
                bucket,
            })
        }
    }

    /// Appends `D_i 32 ‖ c 32 ‖ s 32`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(&self.d_bytes)
            .raw(self.c.as_bytes())
            .raw(self.s.as_bytes());
    }

    /// The 96-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }
}

// SPEC R-SEAL-21: D canonical, c and s < ℓ, exactly 96 bytes.
impl Decode for DecryptionShare {
    /// Reads `D_i 32 ‖ c 32 ‖ s 32`.
    ///
    /// # Errors
    /// Truncation, a non-canonical point or scalar.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let d_bytes = r.array("sealed.share.d")?;
        Ok(Self {
            d: decode_point(d_bytes, "sealed.share.d")?,
            d_bytes,
            c: decode_scalar(r.array("sealed.share.c")?, "sealed.share.c")?,
            s: decode_scalar(r.array("sealed.share.s")?, "sealed.share.s")?,
        })
    }
}

crate::codec::inherent_decode!(DecryptionShare);

impl std::fmt::Debug for DecryptionShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecryptionShare({})", hex::encode(self.d_bytes))
    }
}

/// Lagrange coefficients at 0 for distinct nonzero `indices`.
// SPEC R-SEAL-24
fn lagrange_at_zero(indices: &[u16]) -> Vec<Scalar> {
    indices
        .iter()
        .map(|&i| {
            let (num, den) = indices.iter().filter(|&&j| j != i).fold(
                (Scalar::ONE, Scalar::ONE),
                |(num, den), &j| {
                    let (i, j) = (Scalar::from(i), Scalar::from(j));
                    (num * j, den * (j - i))
                },
            );
            // Distinct indices: den != 0, so the inverse exists.
            num * den.invert()
        })
        .collect()
}

/// One trustee's published shares for a reveal: its public share and one
/// decryption share per bucket.
#[derive(Debug, Clone, Copy)]
pub struct TrusteeReveal<'a> {
    /// The trustee's public share `K_i` (from the DKG).
    pub public: &'a TrusteePublicShare,
    /// One share per bucket, bucket 0 first.
    pub shares: &'a [DecryptionShare],
}

/// Recovers the bucket counts of `aggregate` from `k = threshold` trustees'
/// shares: verifies every share given, checks that the first `k` trustees'
/// public shares interpolate to `key`, combines their shares with Lagrange
/// coefficients and solves each bucket's discrete log in `0..=bound` (the
/// number of pledges aggregated).
///
/// # Errors
/// [`SealedError::TooFewShares`], [`SealedError::DuplicateTrustee`],
/// [`SealedError::TrusteeIndex`] (threshold 0),
/// [`SealedError::BucketCountMismatch`], [`SealedError::InvalidDecryptionShare`],
/// [`SealedError::PublicSharesMismatch`], [`SealedError::CountBeyondBound`].
pub fn reveal_counts(
    context: &RevealContext,
    key: &JointPublicKey,
    aggregate: &[Ciphertext],
    threshold: usize,
    reveals: &[TrusteeReveal<'_>],
    bound: u64,
) -> Result<Vec<u64>, SealedError> {
    if threshold == 0 {
        return Err(SealedError::TrusteeIndex);
    }
    if reveals.len() < threshold {
        return Err(SealedError::TooFewShares {
            needed: threshold,
            got: reveals.len(),
        });
    }
    for (n, rv) in reveals.iter().enumerate() {
        // SPEC R-SEAL-24: distinct trustees.
        if reveals[..n]
            .iter()
            .any(|o| o.public.index == rv.public.index)
        {
            return Err(SealedError::DuplicateTrustee(rv.public.index));
        }
        if rv.shares.len() != aggregate.len() {
            return Err(SealedError::BucketCountMismatch {
                expected: aggregate.len(),
                got: rv.shares.len(),
            });
        }
        for (b, (share, ct)) in rv.shares.iter().zip(aggregate).enumerate() {
            share.verify(context, key, rv.public, index_u32(b), ct)?;
        }
    }
    let used = &reveals[..threshold];
    let indices: Vec<u16> = used.iter().map(|rv| rv.public.index).collect();
    let lambdas = lagrange_at_zero(&indices);
    let interpolated =
        RistrettoPoint::vartime_multiscalar_mul(&lambdas, used.iter().map(|rv| rv.public.point));
    // SPEC R-SEAL-25
    if interpolated != key.point {
        return Err(SealedError::PublicSharesMismatch);
    }
    let table = DiscreteLogTable::new(bound)?;
    aggregate
        .iter()
        .enumerate()
        .map(|(b, ct)| {
            // Every `rv.shares` has `aggregate.len()` entries (checked
            // above); the multiscalar product needs equal lengths.
            let ds: Vec<RistrettoPoint> = used
                .iter()
                .map(|rv| rv.shares.get(b).map(|s| s.d))
                .collect::<Option<_>>()
                .ok_or(SealedError::BucketCountMismatch {
                    expected: aggregate.len(),
                    got: b,
                })?;
            let combined = RistrettoPoint::vartime_multiscalar_mul(&lambdas, &ds);
            table.solve_vartime(&(ct.c2 - combined))
        })
        .collect()
}

/// Baby-step giant-step tables for `n·G` with `n ∈ 0..=bound`.
#[derive(Clone)]
pub struct DiscreteLogTable {
    bound: u64,
    step: u64,
    baby: HashMap<[u8; 32], u64>,
    giant: RistrettoPoint,
}

impl DiscreteLogTable {
    /// Builds the `⌈√(bound+1)⌉` baby steps.
    ///
    /// # Errors
    /// [`SealedError::CountBeyondBound`] if `bound > MAX_DLOG_BOUND`.
    pub fn new(bound: u64) -> Result<Self, SealedError> {
        if bound > MAX_DLOG_BOUND {
            return Err(SealedError::CountBeyondBound { bound });
        }
        let mut step = (bound + 1).isqrt();
        if step * step < bound + 1 {
            step += 1;
        }
        let mut baby = HashMap::with_capacity(usize::try_from(step).unwrap_or(0));
        let mut p = RistrettoPoint::identity();
        for j in 0..step {
            baby.insert(p.compress().to_bytes(), j);
            p += G;
        }
        // p = step·G
        Ok(Self {
            bound,
            step,
            baby,
            giant: -p,
        })
    }

    /// The `n ≤ bound` with `n·G = point`.
    ///
    /// # Errors
    /// [`SealedError::CountBeyondBound`] if there is none.
    // SPEC R-SEAL-26: never searches beyond the bound.
    pub fn solve_vartime(&self, point: &RistrettoPoint) -> Result<u64, SealedError> {
        let mut q = *point;
        let mut base = 0u64;
        while base <= self.bound {
            if let Some(&j) = self.baby.get(&q.compress().to_bytes()) {
                let n = base + j;
                if n <= self.bound {
                    return Ok(n);
                }
            }
            q += self.giant;
            base += self.step;
        }
        Err(SealedError::CountBeyondBound { bound: self.bound })
    }
}

impl std::fmt::Debug for DiscreteLogTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscreteLogTable")
            .field("bound", &self.bound)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Trusted dealer for tests only (the DKG is later work): a random
    /// polynomial `f` of degree `k − 1`, `x = f(0)`, `x_i = f(i)`.
    struct TrusteeShares {
        key: JointPublicKey,
        secrets: Vec<TrusteeSecretShare>,
    }

    impl TrusteeShares {
        fn deal(n: u16, k: usize, rng: &mut StdRng) -> Self {
            let coeffs: Vec<Scalar> = (0..k).map(|_| *random_scalar(rng)).collect();
            let key = JointPublicKey::from_point(RistrettoPoint::mul_base(&coeffs[0])).unwrap();
            let secrets = (1..=n)
                .map(|i| {
                    let x = Scalar::from(i);
                    let y = coeffs.iter().rev().fold(Scalar::ZERO, |acc, a| acc * x + a);
                    TrusteeSecretShare::from_bytes(i, y.as_bytes()).unwrap()
                })
                .collect();
            Self { key, secrets }
        }
    }

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    /// A key with its secret `x` (one trustee).
    fn keypair(rng: &mut StdRng) -> (JointPublicKey, Scalar) {
        let x = *random_scalar(rng);
        (
            JointPublicKey::from_point(RistrettoPoint::mul_base(&x)).unwrap(),
            x,
        )
    }

    fn ctx() -> SealContext {
        SealContext {
            campaign: [1; 32],
            nullifier: [2; 32],
            seq: 3,
            pledge_key: [4; 32],
        }
    }

    /// `m·G` of a ciphertext under secret `x`.
    fn decrypt(x: &Scalar, ct: &Ciphertext) -> RistrettoPoint {
        ct.c2 - ct.c1 * x
    }

    fn both_verdicts(
        t: &SealedTerms,
        c: &SealContext,
        key: &JointPublicKey,
    ) -> (Result<(), SealedError>, Result<(), SealedError>) {
        (
            if t.verify_batch(c, key) {
                Ok(())
            } else {
                Err(SealedError::InvalidBatch)
            },
            t.verify_unbatched(c, key),
        )
    }

    fn assert_refused(t: &SealedTerms, c: &SealContext, key: &JointPublicKey) {
        let (batch, single) = both_verdicts(t, c, key);
        assert!(batch.is_err(), "batch accepted");
        assert!(single.is_err(), "unbatched accepted");
        assert!(t.verify(c, key).is_err());
    }

    #[test]
    fn seal_verify_decode_round_trip_and_one_hot_plaintexts() {
        let mut rng = rng(1);
        let (key, x) = keypair(&mut rng);
        for (b, bucket) in [
            (1, Some(0)),
            (1, None),
            (5, Some(4)),
            (5, None),
            (16, Some(7)),
        ] {
            let t = SealedTerms::seal(&ctx(), &key, b, bucket, &mut rng).unwrap();
            assert_eq!(t.bucket_count(), b);
            assert_eq!(t.verify(&ctx(), &key), Ok(()));
            assert_eq!(t.verify_unbatched(&ctx(), &key), Ok(()));
            let bytes = t.encode();
            assert_eq!(bytes.len(), sealed_terms_len(b));
            assert_eq!(bytes.len(), t.encoded_len());
            let back = SealedTerms::decode(&bytes).unwrap();
            assert_eq!(back, t);
            assert_eq!(back.encode(), bytes);
            assert_eq!(back.verify(&ctx(), &key), Ok(()));
            for (i, ct) in t.ciphertexts().iter().enumerate() {
                let expect = if bucket == Some(i) {
                    G
                } else {
                    RistrettoPoint::identity()
                };
                assert_eq!(decrypt(&x, ct), expect, "bucket {i}");
                assert_eq!(Ciphertext::decode(&ct.to_bytes()).unwrap(), *ct);
            }
        }
        assert_eq!(sealed_terms_len(16), 4_833);
        assert_eq!(sealed_terms_len(32), 9_441);
        assert_eq!(sealed_terms_len(64), 18_657);
    }

    #[test]
    fn seal_refuses_bad_bucket_arguments() {
        let mut rng = rng(2);
        let (key, _) = keypair(&mut rng);
        for (b, bucket, err) in [
            (0, None, SealedError::BucketCount(0)),
            (65, Some(1), SealedError::BucketCount(65)),
            (4, Some(4), SealedError::BucketOutOfRange),
        ] {
            assert_eq!(
                SealedTerms::seal(&ctx(), &key, b, bucket, &mut rng).unwrap_err(),
                err
            );
        }
        assert!(SealedTerms::seal(&ctx(), &key, 64, Some(63), &mut rng).is_ok());
    }

    /// Offset of field `f` (0..7: A0 B0 A1 B1 c0 s0 s1) of proof `p` (`B` =
    /// the sum proof).
    fn proof_field(b: usize, p: usize, f: usize) -> usize {
        1 + 64 * b + 224 * p + 32 * f
    }

    fn replaced(bytes: &[u8], at: usize, with: [u8; 32]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out[at..at + 32].copy_from_slice(&with);
        out
    }

    /// A valid point or scalar that differs from the one at `at`.
    fn bumped(bytes: &[u8], at: usize, is_point: bool) -> [u8; 32] {
        let old: [u8; 32] = bytes[at..at + 32].try_into().unwrap();
        if is_point {
            (decode_point(old, "t").unwrap() + G).compress().to_bytes()
        } else {
            (decode_scalar(old, "t").unwrap() + Scalar::ONE).to_bytes()
        }
    }

    #[test]
    fn every_single_field_tamper_is_refused_by_both_verifiers() {
        let mut rng = rng(3);
        let (key, _) = keypair(&mut rng);
        let b = 3;
        for bucket in [Some(1), None] {
            let bytes = SealedTerms::seal(&ctx(), &key, b, bucket, &mut rng)
                .unwrap()
                .encode();
            let mut offsets: Vec<(usize, bool)> = (0..2 * b).map(|k| (1 + 32 * k, true)).collect();
            for p in 0..=b {
                offsets.extend((0..7).map(|f| (proof_field(b, p, f), f < 4)));
            }
            assert_eq!(offsets.len(), 2 * b + 7 * (b + 1));
            for (at, is_point) in offsets {
                let t = SealedTerms::decode(&replaced(&bytes, at, bumped(&bytes, at, is_point)))
                    .unwrap();
                assert_refused(&t, &ctx(), &key);
            }
        }
    }

    /// The best a cheating prover can do without breaking the hash: the CDS
    /// prover run for claim `claim` with randomness `r` on any ciphertext,
    /// commitments computed from the ciphertext itself (so the simulated
    /// branch is a perfect simulation).
    fn forge_proof(
        prefix: &Transcript,
        key: &JointPublicKey,
        index: u32,
        ct: &Ciphertext,
        claim: usize,
        r: &Scalar,
        rng: &mut StdRng,
    ) -> BitProof {
        let (w, c_sim, s_sim) = (
            *random_scalar(rng),
            *random_scalar(rng),
            *random_scalar(rng),
        );
        let sim = 1 - claim;
        let mut comm = [RistrettoPoint::identity(); 4];
        comm[2 * claim] = RistrettoPoint::mul_base(&w);
        comm[2 * claim + 1] = key.point * w;
        let shifted = ct.c2 - G * Scalar::from(sim as u8);
        comm[2 * sim] = RistrettoPoint::mul_base(&s_sim) - ct.c1 * c_sim;
        comm[2 * sim + 1] = key.point * s_sim - shifted * c_sim;
        let commitment_bytes = comm.map(|p| p.compress().to_bytes());
        let e = BitProof::challenge(prefix, index, &ct.to_bytes(), &commitment_bytes);
        let c_real = e - c_sim;
        let s_real = w + c_real * r;
        let (c0, s0, s1) = if claim == 1 {
            (c_sim, s_sim, s_real)
        } else {
            (c_real, s_real, s_sim)
        };
        BitProof {
            commitments: comm,
            commitment_bytes,
            c0,
            s0,
            s1,
        }
    }

    /// Terms encrypting the arbitrary plaintexts `ms`, every proof forged
    /// with [`forge_proof`] claiming 1 where the plaintext is not 0.
    fn forge_terms(
        c: &SealContext,
        key: &JointPublicKey,
        ms: &[i64],
        rng: &mut StdRng,
    ) -> SealedTerms {
        let prefix = bit_prefix(c, key, ms.len());
        let scalar = |m: i64| {
            let s = Scalar::from(m.unsigned_abs());
            if m < 0 { -s } else { s }
        };
        let mut r_sum = Scalar::ZERO;
        let (mut ciphertexts, mut ciphertext_bytes, mut proofs) = (vec![], vec![], vec![]);
        for (i, &m) in ms.iter().enumerate() {
            let r = *random_scalar(rng);
            r_sum += r;
            let ct = Ciphertext {
                c1: RistrettoPoint::mul_base(&r),
                c2: G * scalar(m) + key.point * r,
            };
            let claim = usize::from(m != 0);
            proofs.push(forge_proof(&prefix, key, index_u32(i), &ct, claim, &r, rng));
            ciphertexts.push(ct);
            ciphertext_bytes.push(ct.to_bytes());
        }
        let sum: Ciphertext = ciphertexts.iter().copied().sum();
        let total: i64 = ms.iter().sum();
        let claim = usize::from(total != 0);
        let sum_proof = forge_proof(&prefix, key, SUM_INDEX, &sum, claim, &r_sum, rng);
        SealedTerms {
            ciphertexts,
            ciphertext_bytes,
            proofs,
            sum_proof,
        }
    }

    #[test]
    fn the_forger_is_honest_on_valid_vectors() {
        // Guards the forgery tests below: the forger does produce valid
        // proofs when the statement is true.
        let mut rng = rng(4);
        let (key, _) = keypair(&mut rng);
        for ms in [[0, 1, 0, 0], [0, 0, 0, 0]] {
            let t = forge_terms(&ctx(), &key, &ms, &mut rng);
            assert_eq!(t.verify(&ctx(), &key), Ok(()));
            let t = SealedTerms::decode(&t.encode()).unwrap();
            assert_eq!(t.verify(&ctx(), &key), Ok(()));
        }
    }

    #[test]
    fn two_hot_vector_is_refused() {
        let mut rng = rng(5);
        let (key, _) = keypair(&mut rng);
        let t = forge_terms(&ctx(), &key, &[0, 1, 1, 0], &mut rng);
        // Each bucket holds 0 or 1 and is proved so; only the sum fails.
        assert_eq!(
            t.verify_unbatched(&ctx(), &key),
            Err(SealedError::InvalidSumProof)
        );
        assert_refused(&t, &ctx(), &key);
        assert_eq!(t.verify(&ctx(), &key), Err(SealedError::InvalidSumProof));
        // The sum proof claiming 0 instead of 1 fails too.
        let mut t0 = t.clone();
        let prefix = bit_prefix(&ctx(), &key, 4);
        let (sum, _) = t.sum();
        t0.sum_proof = forge_proof(&prefix, &key, SUM_INDEX, &sum, 0, &Scalar::ZERO, &mut rng);
        assert_refused(&t0, &ctx(), &key);
    }

    #[test]
    fn vectors_not_summing_to_zero_or_one_are_refused() {
        let mut rng = rng(6);
        let (key, _) = keypair(&mut rng);
        // One bucket holding 2.
        let t = forge_terms(&ctx(), &key, &[0, 0, 2], &mut rng);
        assert_eq!(
            t.verify_unbatched(&ctx(), &key),
            Err(SealedError::InvalidBitProof(2))
        );
        assert_refused(&t, &ctx(), &key);
        // 2 and −1: the sum holds 1, but two buckets are not bits.
        let t = forge_terms(&ctx(), &key, &[2, -1, 0], &mut rng);
        assert_eq!(
            t.verify_unbatched(&ctx(), &key),
            Err(SealedError::InvalidBitProof(0))
        );
        assert_refused(&t, &ctx(), &key);
        // Three hot buckets.
        let t = forge_terms(&ctx(), &key, &[1, 1, 1], &mut rng);
        assert_refused(&t, &ctx(), &key);
    }

    #[test]
    fn proofs_do_not_verify_in_another_context_key_or_bucket() {
        let mut rng = rng(7);
        let (key, _) = keypair(&mut rng);
        let (other_key, _) = keypair(&mut rng);
        let t = SealedTerms::seal(&ctx(), &key, 4, Some(2), &mut rng).unwrap();
        assert_eq!(t.verify(&ctx(), &key), Ok(()));
        let mut contexts = vec![];
        for f in 0..4 {
            let mut c = ctx();
            match f {
                0 => c.campaign[0] ^= 1,
                1 => c.nullifier[31] ^= 1,
                2 => c.seq += 1,
                _ => c.pledge_key[5] ^= 1,
            }
            contexts.push(c);
        }
        for c in &contexts {
            assert_refused(&t, c, &key);
        }
        assert_refused(&t, &ctx(), &other_key);
        // Swapping two buckets keeps every ciphertext, proof and the sum,
        // only the indices change: refused.
        let mut swapped = t.clone();
        swapped.ciphertexts.swap(1, 2);
        swapped.ciphertext_bytes.swap(1, 2);
        swapped.proofs.swap(1, 2);
        assert_eq!(
            swapped.verify_unbatched(&ctx(), &key),
            Err(SealedError::InvalidBitProof(1))
        );
        assert_refused(&swapped, &ctx(), &key);
        // A bucket's proof used as the sum proof of a one-bucket vector.
        let one = SealedTerms {
            ciphertexts: vec![t.ciphertexts[2]],
            ciphertext_bytes: vec![t.ciphertext_bytes[2]],
            proofs: vec![t.proofs[2].clone()],
            sum_proof: t.proofs[2].clone(),
        };
        assert_refused(&one, &ctx(), &key);
    }

    /// ℓ, little-endian: the smallest non-canonical scalar encoding.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    /// Encodings no ristretto255 decoder may accept: `p = 2^255 − 19`
    /// (non-canonical field element), `s = 1` (negative), a valid point with
    /// the top bit set, all ones.
    fn bad_points() -> Vec<[u8; 32]> {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut high = G.compress().to_bytes();
        high[31] |= 0x80;
        vec![p, one, high, [0xff; 32]]
    }

    #[test]
    fn decoders_refuse_non_canonical_encodings() {
        // A zero secret share (its public share would be the identity,
        // which the public side refuses) is refused too.
        assert!(TrusteeSecretShare::from_bytes(1, &[0; 32]).is_err());
        assert!(TrusteeSecretShare::from_bytes(1, &[1; 32]).is_ok());
        let mut rng = rng(8);
        let (key, _) = keypair(&mut rng);
        let b = 2;
        let bytes = SealedTerms::seal(&ctx(), &key, b, Some(0), &mut rng)
            .unwrap()
            .encode();
        let point_offsets = [1, 33, 65, 97, proof_field(b, 0, 0), proof_field(b, 2, 3)];
        for at in point_offsets {
            for bad in bad_points() {
                assert!(
                    matches!(
                        SealedTerms::decode(&replaced(&bytes, at, bad)),
                        Err(DecodeError::Malformed { .. })
                    ),
                    "point at {at}"
                );
            }
        }
        for at in [
            proof_field(b, 0, 4),
            proof_field(b, 1, 5),
            proof_field(b, 2, 6),
        ] {
            for bad in [ELL, [0xff; 32]] {
                assert!(matches!(
                    SealedTerms::decode(&replaced(&bytes, at, bad)),
                    Err(DecodeError::Malformed { .. })
                ));
            }
        }
        for b in [0u8, 65, 255] {
            let mut bad = bytes.clone();
            bad[0] = b;
            assert!(matches!(
                SealedTerms::decode(&bad),
                Err(DecodeError::OutOfRange { .. })
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            SealedTerms::decode(&longer),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            SealedTerms::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            SealedTerms::decode(&vec![1; sealed_terms_len(64) + 1]),
            Err(DecodeError::OutOfRange { .. })
        ));
        // The joint key: canonical, not the identity.
        assert_eq!(JointPublicKey::from_bytes(key.to_bytes()).unwrap(), key);
        assert!(JointPublicKey::from_bytes([0; 32]).is_err());
        for bad in bad_points() {
            assert!(JointPublicKey::from_bytes(bad).is_err());
            assert!(TrusteePublicShare::from_bytes(1, bad).is_err());
            let mut share = [0u8; 96];
            share[..32].copy_from_slice(&bad);
            assert!(DecryptionShare::decode(&share).is_err());
        }
        assert!(TrusteeSecretShare::from_bytes(1, &ELL).is_err());
        assert_eq!(
            TrusteeSecretShare::from_bytes(0, &[1; 32]).unwrap_err(),
            SealedError::TrusteeIndex
        );
    }

    #[test]
    fn decryption_shares_verify_and_wrong_ones_are_refused() {
        let mut rng = rng(9);
        let dealt = TrusteeShares::deal(3, 2, &mut rng);
        let key = &dealt.key;
        let rc = RevealContext {
            campaign: [7; 32],
            size: 100,
        };
        let terms: Vec<SealedTerms> = [Some(0), Some(1), None]
            .into_iter()
            .map(|b| SealedTerms::seal(&ctx(), key, 2, b, &mut rng).unwrap())
            .collect();
        let agg = aggregate(2, &terms).unwrap();
        let (t1, t2) = (&dealt.secrets[0], &dealt.secrets[1]);
        let (p1, p2) = (t1.public_share(), t2.public_share());
        let share = t1.decryption_share(&rc, key, 0, &agg[0], &mut rng);
        assert_eq!(share.verify(&rc, key, &p1, 0, &agg[0]), Ok(()));
        let bytes = share.encode();
        assert_eq!(bytes.len(), DECRYPTION_SHARE_LEN);
        assert_eq!(DecryptionShare::decode(&bytes).unwrap(), share);
        assert_eq!(
            TrusteePublicShare::from_bytes(1, p1.to_bytes()).unwrap(),
            p1
        );
        let refused = |r: Result<(), SealedError>| {
            assert!(matches!(r, Err(SealedError::InvalidDecryptionShare { .. })))
        };
        // Another bucket, trustee, ciphertext, reveal context or key.
        refused(share.verify(&rc, key, &p1, 1, &agg[0]));
        refused(share.verify(&rc, key, &p2, 0, &agg[0]));
        refused(share.verify(&rc, key, &p1, 0, &agg[1]));
        let later = RevealContext { size: 101, ..rc };
        refused(share.verify(&later, key, &p1, 0, &agg[0]));
        let (other_key, _) = keypair(&mut rng);
        refused(share.verify(&rc, &other_key, &p1, 0, &agg[0]));
        // A wrong D (D + G), re-encoded.
        let mut wrong = share;
        wrong.d += G;
        wrong.d_bytes = wrong.d.compress().to_bytes();
        refused(wrong.verify(&rc, key, &p1, 0, &agg[0]));
        // Each proof scalar bumped.
        for at in [32, 64] {
            let bad =
                DecryptionShare::decode(&replaced(&bytes, at, bumped(&bytes, at, false))).unwrap();
            refused(bad.verify(&rc, key, &p1, 0, &agg[0]));
        }
        // A non-trustee with trustee 1's index: a valid proof for its own
        // key, refused against trustee 1's public share.
        let intruder =
            TrusteeSecretShare::from_bytes(1, random_scalar(&mut rng).as_bytes()).unwrap();
        let fake = intruder.decryption_share(&rc, key, 0, &agg[0], &mut rng);
        assert_eq!(
            fake.verify(&rc, key, &intruder.public_share(), 0, &agg[0]),
            Ok(())
        );
        refused(fake.verify(&rc, key, &p1, 0, &agg[0]));
    }

    #[test]
    fn k_of_n_reveal_with_absent_trustees_recovers_the_histogram() {
        let mut rng = rng(10);
        let (n, k, b) = (5u16, 3usize, 8usize);
        let dealt = TrusteeShares::deal(n, k, &mut rng);
        let key = &dealt.key;
        let mut expected = vec![0u64; b];
        let mut terms = vec![];
        for p in 0..50u32 {
            let pick = rng.next_u32() % (b as u32 + 3);
            // About a quarter null pledges.
            let bucket = (pick < b as u32).then_some(pick as usize);
            if let Some(i) = bucket {
                expected[i] += 1;
            }
            let c = SealContext { seq: p, ..ctx() };
            let t = SealedTerms::seal(&c, key, b, bucket, &mut rng).unwrap();
            assert_eq!(t.verify(&c, key), Ok(()));
            terms.push(t);
        }
        assert!(expected.iter().sum::<u64>() < 50, "some null pledges");
        let agg = aggregate(b, &terms).unwrap();
        let rc = RevealContext {
            campaign: [1; 32],
            size: 51,
        };
        let publics: Vec<TrusteePublicShare> =
            dealt.secrets.iter().map(|s| s.public_share()).collect();
        let shares: Vec<Vec<DecryptionShare>> = dealt
            .secrets
            .iter()
            .map(|s| s.decryption_shares(&rc, key, &agg, &mut rng))
            .collect();
        let reveal = |who: &[usize]| -> Vec<TrusteeReveal<'_>> {
            who.iter()
                .map(|&i| TrusteeReveal {
                    public: &publics[i],
                    shares: &shares[i],
                })
                .collect()
        };
        // n − k = 2 trustees absent, in several subsets and orders.
        for who in [[1, 3, 4], [4, 0, 2], [0, 1, 2]] {
            assert_eq!(
                reveal_counts(&rc, key, &agg, k, &reveal(&who), 50),
                Ok(expected.clone())
            );
        }
        // All five: the first three are used, the others still verified.
        assert_eq!(
            reveal_counts(&rc, key, &agg, k, &reveal(&[0, 1, 2, 3, 4]), 50),
            Ok(expected.clone())
        );
        assert_eq!(
            reveal_counts(&rc, key, &agg, k, &reveal(&[0, 1]), 50),
            Err(SealedError::TooFewShares { needed: 3, got: 2 })
        );
        assert_eq!(
            reveal_counts(&rc, key, &agg, k, &reveal(&[0, 1, 1]), 50),
            Err(SealedError::DuplicateTrustee(2))
        );
        let max = *expected.iter().max().unwrap();
        assert_eq!(
            reveal_counts(&rc, key, &agg, k, &reveal(&[0, 1, 2]), max - 1),
            Err(SealedError::CountBeyondBound { bound: max - 1 })
        );
        // A wrong share among them is named.
        let mut bad = shares[3].clone();
        bad[5].d += G;
        bad[5].d_bytes = bad[5].d.compress().to_bytes();
        let mut rv = reveal(&[0, 1, 3]);
        rv[2].shares = &bad;
        assert_eq!(
            reveal_counts(&rc, key, &agg, k, &rv, 50),
            Err(SealedError::InvalidDecryptionShare {
                trustee: 4,
                bucket: 5
            })
        );
        // Shares made for another aggregate size are refused.
        let later = RevealContext { size: 52, ..rc };
        assert!(matches!(
            reveal_counts(&later, key, &agg, k, &reveal(&[0, 1, 2]), 50),
            Err(SealedError::InvalidDecryptionShare { .. })
        ));
        // A self-consistent non-trustee: valid proofs, wrong public share.
        let intruder =
            TrusteeSecretShare::from_bytes(2, random_scalar(&mut rng).as_bytes()).unwrap();
        let ipub = intruder.public_share();
        let ishares = intruder.decryption_shares(&rc, key, &agg, &mut rng);
        let mut rv = reveal(&[0, 2]);
        rv.insert(
            1,
            TrusteeReveal {
                public: &ipub,
                shares: &ishares,
            },
        );
        assert_eq!(
            reveal_counts(&rc, key, &agg, k, &rv, 50),
            Err(SealedError::PublicSharesMismatch)
        );
    }

    #[test]
    fn amendments_move_the_aggregate() {
        let mut rng = rng(11);
        let (key, x) = keypair(&mut rng);
        let old = SealedTerms::seal(&ctx(), &key, 3, Some(0), &mut rng).unwrap();
        let new = SealedTerms::seal(&ctx(), &key, 3, Some(2), &mut rng).unwrap();
        let other = SealedTerms::seal(&ctx(), &key, 3, Some(2), &mut rng).unwrap();
        let mut agg = aggregate(3, [&old, &other]).unwrap();
        for ((a, o), n) in agg.iter_mut().zip(old.ciphertexts()).zip(new.ciphertexts()) {
            *a -= *o;
            *a += *n;
        }
        let table = DiscreteLogTable::new(3).unwrap();
        let counts: Vec<u64> = agg
            .iter()
            .map(|ct| table.solve_vartime(&decrypt(&x, ct)).unwrap())
            .collect();
        assert_eq!(counts, [0, 0, 2]);
        let short = SealedTerms::seal(&ctx(), &key, 2, None, &mut rng).unwrap();
        assert_eq!(
            aggregate(3, [&old, &short]),
            Err(SealedError::BucketCountMismatch {
                expected: 3,
                got: 2
            })
        );
    }

    #[test]
    fn discrete_log_is_exact_up_to_the_bound_and_refuses_beyond() {
        for bound in [0u64, 1, 2, 15, 16, 17, 1000] {
            let table = DiscreteLogTable::new(bound).unwrap();
            for n in [0, 1, bound / 2, bound.saturating_sub(1), bound].map(|n| n.min(bound)) {
                assert_eq!(
                    table.solve_vartime(&(G * Scalar::from(n))),
                    Ok(n),
                    "{n} <= {bound}"
                );
            }
            for n in [bound + 1, bound + 2, 5 * bound + 7] {
                assert_eq!(
                    table.solve_vartime(&(G * Scalar::from(n))),
                    Err(SealedError::CountBeyondBound { bound })
                );
            }
            assert!(table.solve_vartime(&(-G)).is_err());
        }
        assert!(DiscreteLogTable::new(MAX_DLOG_BOUND + 1).is_err());
    }

    #[test]
    fn secret_share_debug_prints_no_secret() {
        let mut secret = [0x11; 32];
        secret[31] = 1;
        let s = TrusteeSecretShare::from_bytes(3, &secret).unwrap();
        let d = format!("{s:?}");
        assert!(
            d.contains("index: 3") && !d.contains("17") && !d.contains("11"),
            "{d}"
        );
    }

    /// SPEC R-SEAL-2's transcript written out by hand: `u16 length ‖
    /// bytes` per field, SHA-512, wide reduction.
    fn documented_challenge(fields: &[&[u8]]) -> Scalar {
        let mut h = Sha512::new();
        for f in fields {
            h.update(u16::try_from(f.len()).unwrap().to_be_bytes());
            h.update(f);
        }
        Scalar::from_bytes_mod_order_wide(&h.finalize().into())
    }

    #[test]
    fn challenges_follow_the_documented_transcript() {
        let mut rng = rng(12);
        let x = *random_scalar(&mut rng);
        let trustee = TrusteeSecretShare::from_bytes(1, x.as_bytes()).unwrap();
        let key = JointPublicKey::from_bytes(trustee.public_share().to_bytes()).unwrap();
        let (c, b) = (ctx(), 3usize);
        let t = SealedTerms::seal(&c, &key, b, Some(1), &mut rng).unwrap();
        let (sum, sum_bytes) = t.sum();
        let (k, seq, bb) = (key.to_bytes(), c.seq.to_be_bytes(), [0, 3]);
        for p in 0..=b {
            let (proof, index, ct, ct_bytes) = if p < b {
                (
                    &t.proofs[p],
                    p as u32,
                    t.ciphertexts[p],
                    t.ciphertext_bytes[p],
                )
            } else {
                (&t.sum_proof, 0xFFFF_FFFF, sum, sum_bytes)
            };
            let ib = index.to_be_bytes();
            let mut fields: Vec<&[u8]> = vec![
                b"pledge/v2/sealed-bit",
                &c.campaign,
                &c.nullifier,
                &seq,
                &c.pledge_key,
                &k,
                &bb,
                &ib,
                &ct_bytes[..32],
                &ct_bytes[32..],
            ];
            fields.extend(proof.commitment_bytes.iter().map(|x| &x[..]));
            assert_eq!(fields.len(), 14);
            let e = documented_challenge(&fields);
            let branches = [(proof.c0, proof.s0), (e - proof.c0, proof.s1)];
            for (j, (cj, sj)) in branches.into_iter().enumerate() {
                let shifted = ct.c2 - G * Scalar::from(j as u8);
                assert_eq!(G * sj, proof.commitments[2 * j] + ct.c1 * cj);
                assert_eq!(key.point * sj, proof.commitments[2 * j + 1] + shifted * cj);
            }
        }
        let rc = RevealContext {
            campaign: [9; 32],
            size: 77,
        };
        let ct = t.ciphertexts[2];
        let share = trustee.decryption_share(&rc, &key, 2, &ct, &mut rng);
        let ct_bytes = ct.to_bytes();
        let a1 = (G * share.s - key.point * share.c).compress().to_bytes();
        let a2 = (ct.c1 * share.s - share.d * share.c).compress().to_bytes();
        let fields: [&[u8]; 12] = [
            b"pledge/v2/sealed-dleq",
            &rc.campaign,
            &77u64.to_be_bytes(),
            &k,
            &[0, 1],
            &k,
            &2u32.to_be_bytes(),
            &ct_bytes[..32],
            &ct_bytes[32..],
            &share.d_bytes,
            &a1,
            &a2,
        ];
        assert_eq!(documented_challenge(&fields), share.c);
        assert_eq!(share.d, ct.c1 * x);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn prop_round_trip_and_any_flipped_bit_is_refused(
            b in 1usize..=6,
            pick in 0usize..8,
            seed in any::<u64>(),
            flip in any::<proptest::sample::Index>(),
        ) {
            let bucket = (pick < b).then_some(pick);
            let mut rng = rng(seed);
            let (key, _) = keypair(&mut rng);
            let t = SealedTerms::seal(&ctx(), &key, b, bucket, &mut rng).unwrap();
            let bytes = t.encode();
            let back = SealedTerms::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &t);
            prop_assert_eq!(back.encode(), bytes.clone());
            prop_assert_eq!(back.verify(&ctx(), &key), Ok(()));
            let bit = flip.index(bytes.len() * 8);
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            if let Ok(t) = SealedTerms::decode(&bad) {
                prop_assert!(t.verify(&ctx(), &key).is_err());
                prop_assert!(t.verify_unbatched(&ctx(), &key).is_err());
            }
        }

        #[test]
        fn prop_decryption_share_round_trip_and_flips(
            seed in any::<u64>(),
            flip in any::<proptest::sample::Index>(),
        ) {
            let mut rng = rng(seed);
            let dealt = TrusteeShares::deal(2, 2, &mut rng);
            let t = SealedTerms::seal(&ctx(), &dealt.key, 1, Some(0), &mut rng).unwrap();
            let ct = t.ciphertexts()[0];
            let rc = RevealContext { campaign: [3; 32], size: 9 };
            let s = &dealt.secrets[1];
            let share = s.decryption_share(&rc, &dealt.key, 0, &ct, &mut rng);
            let bytes = share.encode();
            prop_assert_eq!(DecryptionShare::decode(&bytes).unwrap(), share);
            let bit = flip.index(bytes.len() * 8);
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            if let Ok(d) = DecryptionShare::decode(&bad) {
                prop_assert!(d.verify(&rc, &dealt.key, &s.public_share(), 0, &ct).is_err());
            }
        }
    }
}
