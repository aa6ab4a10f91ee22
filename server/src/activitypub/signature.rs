//! HTTP signatures as the fediverse uses them (SPEC R-API-44): the
//! `Signature` header of draft-cavage-http-signatures-12 with `rsa-sha256`
//! (RSASSA-PKCS1-v1_5 over SHA-256), signing `(request-target) host date
//! digest` on a POST and `(request-target) host date` on a GET, and the
//! `Digest: SHA-256=<base64>` header of RFC 3230 over the body. Only the
//! profile Mastodon and Mobilizon send and accept; nothing else of the draft.
//!
//! RSA is OpenSSL's (already linked into `pledged` for the issuer's fast
//! path): PEM in every form servers publish (SPKI `PUBLIC KEY`, PKCS#1 `RSA
//! PUBLIC KEY`), key generation and constant-time signing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;
use openssl::sign::{Signer, Verifier};
use sha2::Digest as _;

/// Why a `Signature` header or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigError {
    /// The header does not parse.
    #[error("the Signature header does not parse: {0}")]
    Malformed(String),
    /// A header the profile requires is not among the signed ones.
    #[error("the signature does not cover `{0}` (required: (request-target) host date digest)")]
    NotCovered(&'static str),
    /// A signed header is missing from the request.
    #[error("the signed header `{0}` is not in the request")]
    Missing(String),
    /// An algorithm other than rsa-sha256 (or hs2019 with an RSA key).
    #[error("unsupported signature algorithm {0:?} (rsa-sha256 only)")]
    Algorithm(String),
    /// A key that is not RSA, or too short.
    #[error("the key is not an RSA key of at least {0} bits")]
    Key(u32),
    /// The signature does not verify.
    #[error("the signature does not verify under the actor's key")]
    Invalid,
}

/// The parameters of a `Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `keyId`: the URL of the signer's key.
    pub key_id: String,
    /// `algorithm`, if given.
    pub algorithm: Option<String>,
    /// `headers`, lower-cased, in order (`date` alone when absent, as the
    /// draft says).
    pub headers: Vec<String>,
    /// The decoded `signature`.
    pub signature: Vec<u8>,
}

/// Parses the value of a `Signature` header (or of `Authorization:
/// Signature …` without its scheme word): comma-separated `name="value"`
/// pairs; unknown parameters (`created`, `expires`) are ignored.
///
/// # Errors
/// [`SigError::Malformed`].
pub fn parse_header(value: &str) -> Result<SignatureHeader, SigError> {
    let bad = |why: &str| SigError::Malformed(why.to_owned());
    let mut key_id = None;
    let mut algorithm = None;
    let mut headers = None;
    let mut signature = None;
    let mut rest = value.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| bad("a parameter has no `=`"))?;
        let name = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let val;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r
                .find('"')
                .ok_or_else(|| bad("an unterminated quoted value"))?;
            val = &r[..end];
            rest = r[end + 1..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            val = rest[..end].trim();
            rest = &rest[end..];
        }
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(bad("parameters must be separated by commas")),
        }
        let slot = match name.as_str() {
            "keyid" => &mut key_id,
            "algorithm" => &mut algorithm,
            "headers" => &mut headers,
            "signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(val.to_owned()).is_some() {
            return Err(SigError::Malformed(format!("`{name}` twice")));
        }
    }
    let key_id = key_id.ok_or_else(|| bad("no keyId"))?;
    let signature = B64
        .decode(signature.ok_or_else(|| bad("no signature"))?)
        .map_err(|_| bad("the signature is not base64"))?;
    let headers = headers
        .unwrap_or_else(|| "date".to_owned())
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>();
    if headers.is_empty() {
        return Err(bad("an empty header list"));
    }
    Ok(SignatureHeader {
        key_id,
        algorithm,
        headers,
        signature,
    })
}

/// The signing string of draft-cavage-http-signatures-12 §2.3: one line per
/// signed header, `name: value` (values of a repeated header joined by `, `,
/// trimmed), `(request-target): <method lower-cased> <path and query>` for
/// the pseudo-header, joined by `\n` without a final newline.
///
/// # Errors
/// [`SigError::Missing`] when `header` has no value for a signed name.
pub fn signing_string(
    method: &str,
    path_and_query: &str,
    signed: &[String],
    header: impl Fn(&str) -> Option<String>,
) -> Result<String, SigError> {
    let mut lines = Vec::with_capacity(signed.len());
    for name in signed {
        if name == "(request-target)" {
            lines.push(format!(
                "(request-target): {} {path_and_query}",
                method.to_ascii_lowercase()
            ));
        } else {
            let v = header(name).ok_or_else(|| SigError::Missing(name.clone()))?;
            lines.push(format!("{name}: {}", v.trim()));
        }
    }
    Ok(lines.join("\n"))
}

/// The `Digest` header value of `body`: `SHA-256=<base64 of its SHA-256>`.
pub fn digest(body: &[u8]) -> String {
    format!("SHA-256={}", B64.encode(sha2::Sha256::digest(body)))
}

/// Whether a received `Digest` header carries a `SHA-256` digest equal to
/// `body`'s. `None` when it carries no SHA-256 digest at all.
pub fn digest_matches(header: &str, body: &[u8]) -> Option<bool> {
    let want = B64.encode(sha2::Sha256::digest(body));
    let mut found = None;
    for part in header.split(',') {
        if let Some((alg, val)) = part.trim().split_once('=')
            && alg.trim().eq_ignore_ascii_case("sha-256")
        {
            found = Some(val.trim() == want);
            if found == Some(true) {
                break;
            }
        }
    }
    found
}

/// A public RSA key from PEM: SPKI (`BEGIN PUBLIC KEY`, Mastodon) or PKCS#1
/// (`BEGIN RSA PUBLIC KEY`, Mobilizon), of at least `min_bits`.
///
/// # Errors
/// [`SigError::Key`].
pub fn public_key_from_pem(pem: &str, min_bits: u32) -> Result<PKey<Public>, SigError> {
    let rsa = Rsa::public_key_from_pem(pem.as_bytes())
        .or_else(|_| Rsa::public_key_from_pem_pkcs1(pem.as_bytes()))
        .map_err(|_| SigError::Key(min_bits))?;
    if rsa.n().num_bits() < i32::try_from(min_bits).unwrap_or(i32::MAX) {
        return Err(SigError::Key(min_bits));
    }
    PKey::from_rsa(rsa).map_err(|_| SigError::Key(min_bits))
}

/// Verifies `signature` over `signing_string` under `key` (RSASSA-PKCS1-v1_5
/// with SHA-256). `algorithm`, if given, must be `rsa-sha256` or `hs2019`
/// (which names no algorithm: the key's type decides, and only RSA keys are
/// taken).
///
/// # Errors
/// [`SigError::Algorithm`], [`SigError::Invalid`].
pub fn verify(
    key: &PKey<Public>,
    algorithm: Option<&str>,
    signing_string: &str,
    signature: &[u8],
) -> Result<(), SigError> {
    if let Some(a) = algorithm
        && !a.eq_ignore_ascii_case("rsa-sha256")
        && !a.eq_ignore_ascii_case("hs2019")
    {
        return Err(SigError::Algorithm(a.to_owned()));
    }
    let ok = Verifier::new(MessageDigest::sha256(), key)
        .and_then(|mut v| v.verify_oneshot(signature, signing_string.as_bytes()))
        .unwrap_or(false);
    if ok { Ok(()) } else { Err(SigError::Invalid) }
}

/// The actor's signing key (RSA-2048, PKCS#8 PEM in the data folder).
/// `Debug` prints nothing of it.
pub struct ActorKey {
    key: PKey<Private>,
    public_pem: String,
}

impl std::fmt::Debug for ActorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorKey").finish_non_exhaustive()
    }
}

impl ActorKey {
    /// A new RSA-2048 key.
    ///
    /// # Errors
    /// OpenSSL's, as text.
    pub fn generate() -> Result<Self, String> {
        let rsa = Rsa::generate(2048).map_err(|e| e.to_string())?;
        Self::from_key(PKey::from_rsa(rsa).map_err(|e| e.to_string())?)
    }

    /// The key from PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    ///
    /// # Errors
    /// When it is not an RSA private key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let key = PKey::private_key_from_pem(pem).map_err(|_| "not a PEM private key")?;
        if key.rsa().is_err() {
            return Err("not an RSA key".into());
        }
        Self::from_key(key)
    }

    fn from_key(key: PKey<Private>) -> Result<Self, String> {
        let public_pem = String::from_utf8(key.public_key_to_pem().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        Ok(Self { key, public_pem })
    }

    /// The private key as PKCS#8 PEM, to store (zeroized on drop).
    ///
    /// # Errors
    /// OpenSSL's, as text.
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        self.key
            .private_key_to_pem_pkcs8()
            .map(zeroize::Zeroizing::new)
            .map_err(|e| e.to_string())
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as the
    /// actor document publishes it.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Signs `signing_string` (RSASSA-PKCS1-v1_5, SHA-256).
    ///
    /// # Errors
    /// OpenSSL's, as text.
    pub fn sign(&self, signing_string: &str) -> Result<Vec<u8>, String> {
        Signer::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut s| s.sign_oneshot_to_vec(signing_string.as_bytes()))
            .map_err(|e| e.to_string())
    }

    /// The `Signature` header value for a request with these headers
    /// (`(request-target)` and each name of `signed`, looked up in `headers`
    /// by lower-case name).
    ///
    /// # Errors
    /// A missing header, or OpenSSL's.
    pub fn signature_header(
        &self,
        key_id: &str,
        method: &str,
        path_and_query: &str,
        signed: &[&str],
        headers: &[(&str, &str)],
    ) -> Result<String, String> {
        let names: Vec<String> = signed.iter().map(|s| (*s).to_owned()).collect();
        let s = signing_string(method, path_and_query, &names, |n| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| (*v).to_owned())
        })
        .map_err(|e| e.to_string())?;
        let sig = self.sign(&s)?;
        Ok(format!(
            "keyId=\"{key_id}\",algorithm=\"rsa-sha256\",headers=\"{}\",signature=\"{}\"",
            signed.join(" "),
            B64.encode(sig)
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The RSA test key of draft-cavage-http-signatures-12, Appendix C
    /// ("Test Values"), as published there (PKCS#1, 1024 bits).
    const CAVAGE_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----
";

    /// Appendix C's request: `POST /foo?param=value&pet=dog` with these
    /// headers and the body `{"hello": "world"}`.
    const HEADERS: [(&str, &str); 5] = [
        ("host", "example.com"),
        ("date", "Sun, 05 Jan 2014 21:31:40 GMT"),
        ("content-type", "application/json"),
        (
            "digest",
            "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
        ),
        ("content-length", "18"),
    ];
    const PATH: &str = "/foo?param=value&pet=dog";

    /// SPEC R-API-44: the draft's Appendix C.2 ("Basic Test"), byte for
    /// byte: signing string, signature and header value.
    #[test]
    fn draft_cavage_appendix_c2_vector() {
        let key = ActorKey::from_pem(CAVAGE_KEY.as_bytes()).unwrap();
        assert_eq!(digest(br#"{"hello": "world"}"#), HEADERS[3].1);
        let signed: Vec<String> = ["(request-target)", "host", "date"]
            .map(String::from)
            .to_vec();
        let s = signing_string("POST", PATH, &signed, |n| {
            HEADERS
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap();
        assert_eq!(
            s,
            "(request-target): post /foo?param=value&pet=dog\nhost: example.com\n\
             date: Sun, 05 Jan 2014 21:31:40 GMT"
        );
        let want = "qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn7\
                    ndmw2iicw3HMbe8VfEdKFYRqzic+efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn0\
                    4swr2Os0=";
        assert_eq!(B64.encode(key.sign(&s).unwrap()), want);
        let header = key
            .signature_header(
                "Test",
                "POST",
                PATH,
                &["(request-target)", "host", "date"],
                &HEADERS,
            )
            .unwrap();
        assert_eq!(
            header,
            format!(
                "keyId=\"Test\",algorithm=\"rsa-sha256\",headers=\"(request-target) host date\",\
                 signature=\"{want}\""
            )
        );
        // It parses back and verifies under the public key (1024 bits: the
        // draft's key; an inbox wants 2048).
        let p = parse_header(&header).unwrap();
        let public = public_key_from_pem(key.public_pem(), 1024).unwrap();
        verify(&public, p.algorithm.as_deref(), &s, &p.signature).unwrap();
        assert_eq!(
            public_key_from_pem(key.public_pem(), 2048).unwrap_err(),
            SigError::Key(2048)
        );
        // A flipped bit anywhere in the signature, or one changed byte of
        // the signing string, is refused.
        for i in 0..p.signature.len() {
            let mut bad = p.signature.clone();
            bad[i] ^= 0x01;
            assert_eq!(verify(&public, None, &s, &bad), Err(SigError::Invalid));
        }
        let other = s.replace("21:31:40", "21:31:41");
        assert_eq!(
            verify(&public, None, &other, &p.signature),
            Err(SigError::Invalid)
        );
        assert_eq!(
            verify(&public, Some("hmac-sha256"), &s, &p.signature),
            Err(SigError::Algorithm("hmac-sha256".into()))
        );
    }

    /// SPEC R-API-44: the draft's "All Headers" values (its earlier
    /// revisions' C.3, which implementations still carry): the same key and
    /// request, signing `(request-target) host date content-type digest
    /// content-length`.
    #[test]
    fn all_headers_vector() {
        let key = ActorKey::from_pem(CAVAGE_KEY.as_bytes()).unwrap();
        let header = key
            .signature_header(
                "Test",
                "POST",
                PATH,
                &[
                    "(request-target)",
                    "host",
                    "date",
                    "content-type",
                    "digest",
                    "content-length",
                ],
                &HEADERS,
            )
            .unwrap();
        let want = "vSdrb+dS3EceC9bcwHSo4MlyKS59iFIrhgYkz8+oVLEEzmYZZvRs8rgOp+63LEM3v+MFHB32NfpB2bEKBI\
                    vB1q52LaEUHFv120V01IL+TAD48XaERZFukWgHoBTLMhYS2Gb51gWxpeIq8knRmPnYePbF5MOkR0Zkly4zKH7s1dE=";
        assert!(
            header.ends_with(&format!("signature=\"{want}\"")),
            "{header}"
        );
    }

    #[test]
    fn headers_parse_strictly() {
        let h = parse_header(
            r#"keyId="https://a.example/actor#main-key", algorithm="hs2019",created=1402170695, headers="(request-target) Host date digest",signature="AAAA""#,
        )
        .unwrap();
        assert_eq!(h.key_id, "https://a.example/actor#main-key");
        assert_eq!(h.headers, ["(request-target)", "host", "date", "digest"]);
        assert_eq!(h.signature, [0, 0, 0]);
        // No headers parameter: `date` alone (draft §2.1.6).
        assert_eq!(
            parse_header(r#"keyId="k",signature="AAAA""#)
                .unwrap()
                .headers,
            ["date"]
        );
        for bad in [
            "",
            r#"keyId="k""#,
            r#"signature="AAAA""#,
            r#"keyId="k",signature="not base64!""#,
            r#"keyId="k" signature="AAAA""#,
            r#"keyId="k,signature="AAAA""#,
            r#"keyId="k",keyId="j",signature="AAAA""#,
            r#"keyId="k",headers="",signature="AAAA""#,
        ] {
            assert!(
                matches!(parse_header(bad), Err(SigError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn digests_are_checked() {
        let body = br#"{"hello": "world"}"#;
        assert_eq!(digest_matches(&digest(body), body), Some(true));
        assert_eq!(
            digest_matches(
                "MD5=abc, sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
                body
            ),
            Some(true)
        );
        assert_eq!(digest_matches(&digest(b"other"), body), Some(false));
        assert_eq!(digest_matches("SHA-512=abc", body), None);
    }
}
