//! The member registry as the API sees it: who a signed fetch may come from.
//!
//! The registry lives on the bus (the ABCI app's `/member/{id}` query). [`BusMemberDirectory`]
//! asks a validator's CometBFT RPC over plain HTTP (`abci_query`) instead of going through
//! `tendermint-rpc`, whose dependency tree would push the Lambda package past its size budget;
//! one GET and a JSON answer is all this needs. Answers are cached briefly, so a burst of
//! fetches costs one registry read and a removed member is refused within [`MEMBER_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use dome_events::{MemberId, PublicKey, QueryCode};
use serde_json::Value;

/// How long a found member (key and active flag) is trusted before it is read again.
pub const MEMBER_TTL: Duration = Duration::from_secs(30);
/// How long "no such member" is remembered: short, so a newly added member is served soon.
pub const UNKNOWN_MEMBER_TTL: Duration = Duration::from_secs(5);
/// Timeout of one registry read on one endpoint.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// Most ids the cache keeps. Callers choose the ids they claim, so the cache must not grow
/// with them; past this, expired entries go, and if none has expired, everything does.
const MAX_CACHED_MEMBERS: usize = 1024;
/// Largest RPC answer read (a member record is a few hundred bytes).
const MAX_RPC_ANSWER_BYTES: usize = 64 * 1024;

/// What the registry says about a member: its registered key and whether it is still active
/// (a removed member stays in the registry with `active = false`).
pub type MemberRecord = (PublicKey, bool);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// No endpoint answered usefully; the request may be retried.
    #[error("member registry unavailable: {0}")]
    Unavailable(String),
    /// An endpoint answered something that is not a member record.
    #[error("member registry answered nonsense: {0}")]
    BadAnswer(String),
}

/// Looks members up in the registry.
#[async_trait]
pub trait MemberDirectory: Send + Sync + 'static {
    /// The member's key and active flag, or `None` if the registry does not know the id.
    async fn member(&self, id: &MemberId) -> Result<Option<MemberRecord>, DirectoryError>;
}

/// The registry read from the bus through CometBFT's JSON-RPC `abci_query`, trying the
/// configured endpoints in turn, with a small TTL cache in front.
pub struct BusMemberDirectory {
    endpoints: Vec<String>,
    client: reqwest::Client,
    cache: Mutex<HashMap<MemberId, Cached>>,
}

struct Cached {
    record: Option<MemberRecord>,
    expires: Instant,
}

impl std::fmt::Debug for BusMemberDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusMemberDirectory")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl BusMemberDirectory {
    /// `endpoints`: CometBFT RPC base URLs, e.g. `http://127.0.0.1:26657`.
    pub fn new(endpoints: Vec<String>) -> Result<Self, DirectoryError> {
        if endpoints.is_empty() {
            return Err(DirectoryError::Unavailable(
                "no RPC endpoint configured".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(RPC_TIMEOUT)
            .build()
            .map_err(|e| DirectoryError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.trim().trim_end_matches('/').to_string())
                .collect(),
            client,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, id: &MemberId) -> Option<Option<MemberRecord>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(id)
            .filter(|entry| entry.expires > Instant::now())
            .map(|entry| entry.record)
    }

    fn remember(&self, id: &MemberId, record: Option<MemberRecord>) {
        let now = Instant::now();
        let ttl = if record.is_some() {
            MEMBER_TTL
        } else {
            UNKNOWN_MEMBER_TTL
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_MEMBERS && !cache.contains_key(id) {
            cache.retain(|_, entry| entry.expires > now);
            if cache.len() >= MAX_CACHED_MEMBERS {
                cache.clear();
            }
        }
        cache.insert(
            id.clone(),
            Cached {
                record,
                expires: now + ttl,
            },
        );
    }

    /// One registry read on one endpoint.
    async fn query(
        &self,
        endpoint: &str,
        id: &MemberId,
    ) -> Result<Option<MemberRecord>, DirectoryError> {
        // Member ids are `[a-z0-9._-]`: nothing in them needs escaping. The quotes (%22) make
        // CometBFT read the argument as a string.
        let url = format!("{endpoint}/abci_query?path=%22%2Fmember%2F{id}%22");
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("{endpoint}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(DirectoryError::Unavailable(format!(
                "{endpoint}: HTTP {status}"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("{endpoint}: {e}")))?;
        if bytes.len() > MAX_RPC_ANSWER_BYTES {
            return Err(DirectoryError::BadAnswer(format!(
                "{endpoint}: answer of {} bytes",
                bytes.len()
            )));
        }
        parse_member_answer(&bytes, id).map_err(|reason| match reason {
            DirectoryError::BadAnswer(why) => {
                DirectoryError::BadAnswer(format!("{endpoint}: {why}"))
            }
            DirectoryError::Unavailable(why) => {
                DirectoryError::Unavailable(format!("{endpoint}: {why}"))
            }
        })
    }
}

#[async_trait]
impl MemberDirectory for BusMemberDirectory {
    async fn member(&self, id: &MemberId) -> Result<Option<MemberRecord>, DirectoryError> {
        if let Some(record) = self.cached(id) {
            return Ok(record);
        }
        let mut last_error = None;
        for endpoint in &self.endpoints {
            match self.query(endpoint, id).await {
                Ok(record) => {
                    self.remember(id, record);
                    return Ok(record);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "member registry read failed; trying the next endpoint");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| DirectoryError::Unavailable("no RPC endpoint configured".into())))
    }
}

/// Reads CometBFT's `abci_query` JSON-RPC answer for `/member/{id}`:
/// `{"result":{"response":{"code":0,"value":"<base64 of the member JSON>",...}}}`, where the
/// member JSON is `{"id","public_key","base_url","active"}`. Code 102 (not found): `None`.
pub fn parse_member_answer(
    bytes: &[u8],
    id: &MemberId,
) -> Result<Option<MemberRecord>, DirectoryError> {
    let bad = |why: String| DirectoryError::BadAnswer(why);
    let answer: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    if let Some(error) = answer.get("error") {
        // A JSON-RPC error is about the node (e.g. still starting), not about the member.
        return Err(DirectoryError::Unavailable(format!("RPC error {error}")));
    }
    let response = answer
        .pointer("/result/response")
        .ok_or_else(|| bad("no result.response".into()))?;
    let code = response.get("code").and_then(Value::as_u64).unwrap_or(0);
    if code == QueryCode::NotFound as u64 {
        return Ok(None);
    }
    if code != QueryCode::Ok as u64 {
        let log = response.get("log").and_then(Value::as_str).unwrap_or("");
        return Err(bad(format!("query code {code}: {log}")));
    }
    let value = response
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no value".into()))?;
    let json = BASE64
        .decode(value)
        .map_err(|e| bad(format!("value is not base64: {e}")))?;
    let member: Value =
        serde_json::from_slice(&json).map_err(|e| bad(format!("value is not JSON: {e}")))?;
    if member.get("id").and_then(Value::as_str) != Some(id.as_str()) {
        return Err(bad(format!("asked for member {id}, got {}", member["id"])));
    }
    let key = member
        .get("public_key")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("member has no public_key".into()))
        .and_then(|k| PublicKey::from_base64(k).map_err(|e| bad(format!("public_key: {e}"))))?;
    let active = member
        .get("active")
        .and_then(Value::as_bool)
        .ok_or_else(|| bad("member has no active flag".into()))?;
    Ok(Some((key, active)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dome_events::MemberKeypair;
    use serde_json::json;

    fn answer(code: u32, member: Option<Value>) -> Vec<u8> {
        let value = member.map(|m| BASE64.encode(m.to_string()));
        json!({"jsonrpc": "2.0", "id": -1, "result": {"response": {
            "code": code, "log": "", "info": "", "index": "0", "key": null,
            "value": value, "proofOps": null, "height": "7", "codespace": "dome"}}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn reads_member_records() {
        let id = MemberId::new("member-b").unwrap();
        let key = MemberKeypair::from_seed([3; 32]).public_key();
        let record = json!({"id": "member-b", "public_key": key.to_base64(),
                            "base_url": "https://b.example", "active": false});
        assert_eq!(
            parse_member_answer(&answer(0, Some(record.clone())), &id),
            Ok(Some((key, false)))
        );
        assert_eq!(parse_member_answer(&answer(102, None), &id), Ok(None));

        let other = MemberId::new("member-c").unwrap();
        assert!(matches!(
            parse_member_answer(&answer(0, Some(record)), &other),
            Err(DirectoryError::BadAnswer(_))
        ));
        assert!(matches!(
            parse_member_answer(&answer(101, None), &id),
            Err(DirectoryError::BadAnswer(_))
        ));
        assert!(matches!(
            parse_member_answer(br#"{"jsonrpc":"2.0","id":-1,"error":{"code":-32603}}"#, &id),
            Err(DirectoryError::Unavailable(_))
        ));
        assert!(matches!(
            parse_member_answer(b"<html>", &id),
            Err(DirectoryError::BadAnswer(_))
        ));
        let bad_key = json!({"id": "member-b", "public_key": "AAAA", "active": true});
        assert!(matches!(
            parse_member_answer(&answer(0, Some(bad_key)), &id),
            Err(DirectoryError::BadAnswer(_))
        ));
    }

    #[test]
    fn needs_an_endpoint() {
        assert!(BusMemberDirectory::new(Vec::new()).is_err());
    }

    #[test]
    fn cache_stays_bounded() {
        let directory = BusMemberDirectory::new(vec!["http://127.0.0.1:1".into()]).unwrap();
        for i in 0..(MAX_CACHED_MEMBERS + 10) {
            directory.remember(&MemberId::new(format!("m{i}")).unwrap(), None);
        }
        let size = directory.cache.lock().unwrap().len();
        assert!(size <= MAX_CACHED_MEMBERS, "{size}");
        let last = MemberId::new(format!("m{}", MAX_CACHED_MEMBERS + 9)).unwrap();
        assert_eq!(directory.cached(&last), Some(None));
    }
}
