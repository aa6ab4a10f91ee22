//! HTTP reads of the auditor: bounded bodies, a few retries on transient
//! errors, and a clear line between "the server answered something" (judged
//! by the audit) and "we could not talk to it" (an [`AuditError`]).

use std::time::Duration;

use super::{AuditError, NetworkError};

/// Largest campaign list accepted.
pub(crate) const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;
/// Attempts for transient failures (connection errors, 429, 5xx).
const ATTEMPTS: u32 = 3;

/// What the server answered.
#[derive(Debug)]
pub(crate) enum Got {
    /// 200 with a body within the limit.
    Body(Vec<u8>),
    /// 200 with a body over the limit.
    TooLarge,
    /// A 4xx status (the resource is refused or missing).
    Status(u16),
}

/// A reader of one server.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    http: reqwest::Client,
    base: String,
}

impl Fetcher {
    /// A fetcher for `base` (`http://host:port`, a trailing slash is dropped).
    pub(crate) fn new(base: &str) -> Result<Self, AuditError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(AuditError::BadServerUrl(base));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| AuditError::HttpClient { source })?;
        Ok(Self { http, base })
    }

    /// The base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path` (starting with `/`), reading at most `limit` bytes.
    ///
    /// # Errors
    /// [`AuditError::Network`] when the server cannot be reached or keeps
    /// answering 429/5xx.
    pub(crate) async fn get(&self, path: &str, limit: usize) -> Result<Got, AuditError> {
        let url = format!("{}{path}", self.base);
        let mut last = NetworkError::Unavailable;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            match self.try_get(&url, limit).await {
                Ok(Some(got)) => return Ok(got),
                Ok(None) => last = NetworkError::Unavailable,
                Err(e) => last = NetworkError::Request(e),
            }
        }
        Err(AuditError::Network { url, source: last })
    }

    /// `Ok(None)` for a transient status worth retrying.
    async fn try_get(&self, url: &str, limit: usize) -> Result<Option<Got>, reqwest::Error> {
        let mut resp = self.http.get(url).send().await?;
        let status = resp.status().as_u16();
        if status == 429 || status >= 500 {
            return Ok(None);
        }
        if status != 200 {
            return Ok(Some(Got::Status(status)));
        }
        if resp
            .content_length()
            .is_some_and(|l| l > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Ok(Some(Got::TooLarge));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Ok(Some(Got::TooLarge));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(Got::Body(body)))
    }
}
