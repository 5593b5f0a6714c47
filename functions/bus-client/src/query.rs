//! Typed access to the dome app's ABCI query paths.
//!
//! The contract with the app: every path answers JSON with code 0, or one of the
//! [`QueryCode`] rejections. Paths: `/members`, `/member/{id}`, `/entity/{type}/{id}`,
//! `/origin/{id}/seq`, `/events/{from}/{to}` (inclusive, at most 1000 heights) and
//! `/governance`.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use thiserror::Error;

use dome_events::{MemberId, QueryCode};

use crate::client::{BusClient, QueryAnswer};
use crate::failover::AllEndpointsFailed;

/// The [`QueryCode`] for a raw query result code, if it is one this build knows.
pub fn known_query_code(code: u32) -> Option<QueryCode> {
    [
        QueryCode::Ok,
        QueryCode::UnknownPath,
        QueryCode::BadArgument,
        QueryCode::NotFound,
        QueryCode::RangeTooLarge,
    ]
    .into_iter()
    .find(|known| *known as u32 == code)
}

/// Why a typed query did not produce its value.
#[derive(Debug, Error)]
pub enum QueryError {
    /// The argument cannot be put in a query path (empty, or characters outside
    /// `[A-Za-z0-9._:-]`), or the range is reversed. Not sent.
    #[error("invalid query argument: {0}")]
    InvalidArgument(String),
    /// Code 100: the app does not serve this path.
    #[error("query {path}: unknown path: {log}")]
    UnknownPath {
        /// The query path.
        path: String,
        /// The app's log.
        log: String,
    },
    /// Code 101: the app refused an argument in the path.
    #[error("query {path}: bad argument: {log}")]
    BadArgument {
        /// The query path.
        path: String,
        /// The app's log.
        log: String,
    },
    /// Code 102: the member, entity or origin is not known to the bus.
    #[error("query {path}: not found: {log}")]
    NotFound {
        /// The query path.
        path: String,
        /// The app's log.
        log: String,
    },
    /// Code 103: the height range is wider than the app serves at once.
    #[error("query {path}: range too large: {log}")]
    RangeTooLarge {
        /// The query path.
        path: String,
        /// The app's log.
        log: String,
    },
    /// Any other non-zero code.
    #[error("query {path} failed with code {code}: {log}")]
    Failed {
        /// The query path.
        path: String,
        /// The raw code.
        code: u32,
        /// The app's log.
        log: String,
    },
    /// Code 0, but the value is not the JSON the contract promises.
    #[error("query {path} answered unexpected content: {reason}")]
    UnexpectedAnswer {
        /// The query path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// No endpoint answered.
    #[error(transparent)]
    Unavailable(#[from] AllEndpointsFailed),
}

impl QueryError {
    /// True for [`QueryError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, QueryError::NotFound { .. })
    }
}

impl QueryAnswer {
    /// The code as a known [`QueryCode`].
    pub fn known_code(&self) -> Option<QueryCode> {
        known_query_code(self.code)
    }

    /// The value bytes when the code is 0, otherwise the typed error for the code.
    pub fn into_value(self, path: &str) -> Result<Vec<u8>, QueryError> {
        let path = path.to_owned();
        let log = self.log;
        match known_query_code(self.code) {
            Some(QueryCode::Ok) => Ok(self.value),
            Some(QueryCode::UnknownPath) => Err(QueryError::UnknownPath { path, log }),
            Some(QueryCode::BadArgument) => Err(QueryError::BadArgument { path, log }),
            Some(QueryCode::NotFound) => Err(QueryError::NotFound { path, log }),
            Some(QueryCode::RangeTooLarge) => Err(QueryError::RangeTooLarge { path, log }),
            None => Err(QueryError::Failed {
                path,
                code: self.code,
                log,
            }),
        }
    }

    /// The value parsed as JSON into `T` when the code is 0, otherwise the typed error.
    pub fn into_json<T: DeserializeOwned>(self, path: &str) -> Result<T, QueryError> {
        let bytes = self.into_value(path)?;
        serde_json::from_slice(&bytes).map_err(|e| QueryError::UnexpectedAnswer {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Checks that `value` can be one segment of a query path.
pub(crate) fn path_segment<'a>(what: &str, value: &'a str) -> Result<&'a str, QueryError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(value)
    } else {
        Err(QueryError::InvalidArgument(format!(
            "{what} {value:?} cannot be a query path segment"
        )))
    }
}

#[derive(Deserialize)]
struct OriginSeq {
    origin: String,
    last_seq: u64,
}

impl BusClient {
    /// Runs the ABCI query `path` (no data) and parses a code-0 answer as JSON.
    pub async fn query_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, QueryError> {
        self.abci_query(path, &[]).await?.into_json(path)
    }

    /// `/members`: the member registry, one JSON object per member.
    pub async fn members(&self) -> Result<Vec<serde_json::Value>, QueryError> {
        self.query_json("/members").await
    }

    /// `/member/{id}`: one member's registry entry.
    pub async fn member(&self, id: &MemberId) -> Result<serde_json::Value, QueryError> {
        let path = format!("/member/{}", path_segment("member id", id.as_str())?);
        self.query_json(&path).await
    }

    /// `/entity/{type}/{id}`: the head (latest accepted version) of a catalogue entity.
    pub async fn entity_head(
        &self,
        entity_type: &str,
        id: &str,
    ) -> Result<serde_json::Value, QueryError> {
        let path = format!(
            "/entity/{}/{}",
            path_segment("entity type", entity_type)?,
            path_segment("entity id", id)?
        );
        self.query_json(&path).await
    }

    /// `/origin/{id}/seq`: the last accepted `origin_seq` of a member; its next event must
    /// carry this + 1.
    pub async fn origin_last_seq(&self, origin: &MemberId) -> Result<u64, QueryError> {
        let path = format!("/origin/{}/seq", path_segment("origin", origin.as_str())?);
        let answer: OriginSeq = self.query_json(&path).await?;
        if answer.origin != origin.as_str() {
            return Err(QueryError::UnexpectedAnswer {
                path,
                reason: format!("answer is about origin {:?}", answer.origin),
            });
        }
        Ok(answer.last_seq)
    }

    /// `/events/{from}/{to}`: the accepted events of heights `from..=to` (the app serves
    /// at most 1000 heights per query, otherwise [`QueryError::RangeTooLarge`]).
    pub async fn events_in_range(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<serde_json::Value>, QueryError> {
        if from > to {
            return Err(QueryError::InvalidArgument(format!(
                "range {from}..={to} is reversed"
            )));
        }
        self.query_json(&format!("/events/{from}/{to}")).await
    }

    /// `/governance`: the governance state (nonce, validator set changes...).
    pub async fn governance(&self) -> Result<serde_json::Value, QueryError> {
        self.query_json("/governance").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: u32, value: &str) -> QueryAnswer {
        QueryAnswer {
            code,
            log: "log".into(),
            value: value.as_bytes().to_vec(),
            height: 7,
            endpoint: "http://n:1".into(),
        }
    }

    #[test]
    fn codes_map_to_typed_errors() {
        let v: serde_json::Value = answer(0, r#"{"a":1}"#).into_json("/p").expect("ok");
        assert_eq!(v["a"], 1);
        assert!(matches!(
            answer(100, "").into_json::<serde_json::Value>("/p"),
            Err(QueryError::UnknownPath { .. })
        ));
        assert!(matches!(
            answer(101, "").into_value("/p"),
            Err(QueryError::BadArgument { .. })
        ));
        assert!(answer(102, "")
            .into_value("/p")
            .expect_err("nf")
            .is_not_found());
        assert!(matches!(
            answer(103, "").into_value("/p"),
            Err(QueryError::RangeTooLarge { .. })
        ));
        assert!(matches!(
            answer(7, "").into_value("/p"),
            Err(QueryError::Failed { code: 7, .. })
        ));
        assert!(matches!(
            answer(0, "not json").into_json::<serde_json::Value>("/p"),
            Err(QueryError::UnexpectedAnswer { .. })
        ));
        assert_eq!(answer(103, "").known_code(), Some(QueryCode::RangeTooLarge));
        assert_eq!(known_query_code(5), None);
    }

    #[test]
    fn path_segments_are_checked() {
        assert!(path_segment("id", "po-1:v.2_x").is_ok());
        assert!(path_segment("id", "").is_err());
        assert!(path_segment("id", "a/b").is_err());
        assert!(path_segment("id", "a b").is_err());
    }
}
