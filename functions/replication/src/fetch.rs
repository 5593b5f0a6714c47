//! Fetching an exact version from its origin.
//!
//! Every fetch is signed with the subscriber's member key (`dome_events::fetch_auth`): the
//! origin serves an audience-restricted version only to members of its audience, which it
//! checks against the member registry on the bus. Signing public versions too costs one
//! signature and tells origins who is fetching.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dome_events::fetch_auth::sign_fetch;
use dome_events::{MemberId, MemberKeypair};
use serde_json::Value;

/// Why a fetch failed; `retryable` says whether trying again later may help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Network error, timeout, 5xx, 429: the origin may answer later.
    #[error("origin unreachable: {0}")]
    Unreachable(String),
    /// The origin refused (401/403): this member is not entitled to the version.
    #[error("origin refused the fetch with {status}: {message}")]
    Refused { status: u16, message: String },
    /// The version is not there (404/410) or the answer is not a JSON object.
    #[error("origin has no such version ({0})")]
    Missing(String),
    /// The location is not an http(s) URL.
    #[error("bad location {0:?}")]
    BadLocation(String),
}

impl FetchError {
    pub fn retryable(&self) -> bool {
        // A 404 is retried too: an origin on an eventually consistent store may serve the
        // new version a moment after the bus has it.
        matches!(self, FetchError::Unreachable(_) | FetchError::Missing(_))
    }
}

#[async_trait]
pub trait VersionFetcher: Send + Sync {
    /// The JSON body served at `location`.
    async fn fetch(&self, location: &str) -> Result<Value, FetchError>;
}

/// Fetches over HTTP(S) with signed requests.
pub struct HttpFetcher {
    client: reqwest::Client,
    member: MemberId,
    key: Arc<MemberKeypair>,
}

impl HttpFetcher {
    pub fn new(
        member: MemberId,
        key: Arc<MemberKeypair>,
        timeout: Duration,
    ) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            // An origin that redirects a version URL elsewhere would move the fetch to a
            // place the event did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FetchError::Unreachable(format!("http client: {e}")))?;
        Ok(HttpFetcher {
            client,
            member,
            key,
        })
    }
}

/// The path and query of an absolute URL: what the signature covers.
fn path_and_query(url: &reqwest::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

#[async_trait]
impl VersionFetcher for HttpFetcher {
    async fn fetch(&self, location: &str) -> Result<Value, FetchError> {
        let url =
            reqwest::Url::parse(location).map_err(|_| FetchError::BadLocation(location.into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::BadLocation(location.into()));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut request = self
            .client
            .get(url.clone())
            .header("accept", "application/json");
        for (name, value) in sign_fetch(&self.key, &self.member, "GET", &path_and_query(&url), now)
        {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| FetchError::Unreachable(format!("reading the body: {e}")))?;
        let snippet = || String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        match status {
            200 => {
                let value: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| FetchError::Missing(format!("the answer is not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(FetchError::Missing(
                        "the answer is not a JSON object".into(),
                    ));
                }
                Ok(value)
            }
            401 | 403 => Err(FetchError::Refused {
                status,
                message: snippet(),
            }),
            404 | 410 => Err(FetchError::Missing(format!("{status}: {}", snippet()))),
            _ => Err(FetchError::Unreachable(format!("{status}: {}", snippet()))),
        }
    }
}
