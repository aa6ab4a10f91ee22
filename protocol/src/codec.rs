//! Canonical binary codec (SPEC §3, R-ENC-1…R-ENC-4).
//!
//! Every integer is big-endian and fixed-width; every variable-length field is
//! prefixed by its length as a fixed-width integer; booleans and tags admit exactly
//! the values the SPEC lists; text is UTF-8. With fixed-width lengths there is
//! exactly one encoding per value, so "canonical" reduces to: decoders reject
//! trailing bytes, out-of-range values, unknown tags and invalid UTF-8.

/// Why bytes could not be decoded. Each variant names what the caller should fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside `field`.
    #[error("input truncated while reading {field}")]
    Truncated {
        /// Field being read.
        field: &'static str,
    },
    /// Bytes remained after a complete value. SPEC R-ENC-2.
    #[error("{0} trailing byte(s) after a complete value")]
    TrailingBytes(usize),
    /// The version byte is not one this implementation speaks. SPEC R-VER-2.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// A tag byte (entry kind, terms kind, reveal policy…) is unknown.
    #[error("unknown {field} tag {tag}")]
    UnknownTag {
        /// Which tag.
        field: &'static str,
        /// The value seen.
        tag: u8,
    },
    /// A field is outside the range the SPEC allows.
    #[error("{field} out of range: {reason}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// What the SPEC requires.
        reason: &'static str,
    },
    /// A text field is not valid UTF-8 or contains a forbidden character.
    #[error("{0} is not valid text (UTF-8 without control characters)")]
    BadText(&'static str),
    /// A key or signature field does not parse as what it claims to be.
    #[error("{field} is malformed: {reason}")]
    Malformed {
        /// Field name.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// Reads a canonical encoding front to back.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Succeeds only if every byte was consumed. SPEC R-ENC-2.
    ///
    /// # Errors
    /// [`DecodeError::TrailingBytes`].
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }

    /// Takes exactly `n` bytes.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// Reads one byte.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a big-endian u16.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian u32.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian u64.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Reads `u16 length ‖ bytes`, with `length <= max`. SPEC R-ENC-3.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] or [`DecodeError::OutOfRange`] if longer than `max`.
    pub fn bytes16(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = usize::from(self.u16(field)?);
        if n > max {
            return Err(DecodeError::OutOfRange {
                field,
                reason: "longer than the SPEC allows",
            });
        }
        self.take(n, field)
    }

    /// Reads `u16 length ‖ UTF-8` with `min <= length <= max` bytes and no control
    /// characters other than `\n` when `multiline`. SPEC R-ENC-4.
    ///
    /// # Errors
    /// Truncation, range or [`DecodeError::BadText`].
    pub fn text16(
        &mut self,
        min: usize,
        max: usize,
        multiline: bool,
        field: &'static str,
    ) -> Result<String, DecodeError> {
        let raw = self.bytes16(max, field)?;
        if raw.len() < min {
            return Err(DecodeError::OutOfRange {
                field,
                reason: "shorter than the SPEC allows",
            });
        }
        let s = std::str::from_utf8(raw).map_err(|_| DecodeError::BadText(field))?;
        check_text(s, multiline, field)?;
        Ok(s.to_owned())
    }
}

/// A value with a canonical binary encoding (as rustls's `Codec`):
/// [`Decode::decode_from`] reads one value from a [`Reader`], inside a larger
/// value or on its own; [`Decode::decode`] reads exactly one value from bytes
/// and refuses trailing bytes (SPEC R-ENC-2), here for every type.
///
/// The types implementing it also have inherent `decode` and `decode_from`
/// (see `inherent_decode!`), so callers need not import the trait.
pub trait Decode: Sized {
    /// Reads one value from `r`, leaving what follows it.
    ///
    /// # Errors
    /// Any [`DecodeError`].
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Refuses a whole input longer than the type's encoding can be, before
    /// reading it (an entry: R-ENTRY-2). By default any length is read.
    ///
    /// # Errors
    /// [`DecodeError::OutOfRange`].
    fn check_len(len: usize) -> Result<(), DecodeError> {
        let _ = len;
        Ok(())
    }

    /// Decodes exactly one value, rejecting trailing bytes.
    ///
    /// # Errors
    /// Any [`DecodeError`]; [`DecodeError::TrailingBytes`] if bytes remain.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::check_len(bytes.len())?;
        read_exactly(bytes, Self::decode_from)
    }
}

/// Runs `read` on all of `bytes` and fails if it leaves any (SPEC R-ENC-2):
/// the one place a decoder checks for trailing bytes, for [`Decode::decode`]
/// and for decoders with their own error type or layout (a length-prefixed
/// body, a tally snapshot's precise errors).
///
/// # Errors
/// `read`'s error, or [`DecodeError::TrailingBytes`] converted to `E`.
pub fn read_exactly<'a, T, E: From<DecodeError>>(
    bytes: &'a [u8],
    read: impl FnOnce(&mut Reader<'a>) -> Result<T, E>,
) -> Result<T, E> {
    let mut r = Reader::new(bytes);
    let value = read(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// Gives [`Decode`] types inherent `decode` and `decode_from` that forward
/// to the trait, so callers need not import it.
macro_rules! inherent_decode {
    ($($t:ty),+ $(,)?) => {$(
        impl $t {
            /// Decodes exactly one value, rejecting trailing bytes
            /// ([`Decode::decode`](crate::codec::Decode::decode)).
            ///
            /// # Errors
            /// Any [`DecodeError`](crate::codec::DecodeError).
            pub fn decode(bytes: &[u8]) -> Result<Self, $crate::codec::DecodeError> {
                <Self as $crate::codec::Decode>::decode(bytes)
            }

            /// Reads one value from `r`, leaving what follows it
            /// ([`Decode::decode_from`](crate::codec::Decode::decode_from)).
            ///
            /// # Errors
            /// Any [`DecodeError`](crate::codec::DecodeError).
            pub fn decode_from(
                r: &mut $crate::codec::Reader<'_>,
            ) -> Result<Self, $crate::codec::DecodeError> {
                <Self as $crate::codec::Decode>::decode_from(r)
            }
        }
    )+};
}
pub(crate) use inherent_decode;

/// Text rule of R-ENC-4: no control characters, except `\n` in multi-line fields.
///
/// # Errors
/// [`DecodeError::BadText`].
pub fn check_text(s: &str, multiline: bool, field: &'static str) -> Result<(), DecodeError> {
    if s.chars()
        .any(|c| c.is_control() && !(multiline && c == '\n'))
    {
        return Err(DecodeError::BadText(field));
    }
    Ok(())
}

/// Appends a canonical encoding. Writers never fail: values are validated when
/// they are constructed, so every value that exists has an encoding.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Appends raw bytes (fixed-size fields).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// Appends `u16 length ‖ bytes`. Lengths are bounded by validated
    /// constructors; a longer slice is truncated at the type's invariant boundary,
    /// which no constructor allows (INVARIANT checked by debug assertion).
    pub fn bytes16(&mut self, b: &[u8]) -> &mut Self {
        debug_assert!(b.len() <= usize::from(u16::MAX));
        let n = u16::try_from(b.len()).unwrap_or(u16::MAX);
        self.u16(n);
        self.raw(&b[..usize::from(n)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_truncation_and_trailing_bytes() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.u16("x"), Ok(1));
        assert_eq!(r.u16("y"), Err(DecodeError::Truncated { field: "y" }));
        assert_eq!(
            Reader::new(&[1]).finish(),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn text_rules() {
        let mut w = Writer::new();
        w.bytes16("a\nb".as_bytes());
        let bytes = w.into_bytes();
        assert_eq!(
            Reader::new(&bytes).text16(1, 10, false, "t"),
            Err(DecodeError::BadText("t"))
        );
        assert_eq!(
            Reader::new(&bytes).text16(1, 10, true, "t").as_deref(),
            Ok("a\nb")
        );
        assert!(matches!(
            Reader::new(&bytes).text16(1, 2, true, "t"),
            Err(DecodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            Reader::new(&[0, 2, 0xff, 0xfe]).text16(0, 10, true, "t"),
            Err(DecodeError::BadText("t"))
        ));
    }
}
