//! Who may read an entity: the `@audience` extension attribute and the checks behind
//! restricted reads.
//!
//! An entity without `@audience` is public, as every TMF620 entity was before. One with
//! `"@audience": ["member-b", ...]` is meant for those members only: the publisher announces it
//! to them alone, and this API serves its versions only to the marketplace's own staff (a
//! valid bearer token) or to a listed member proving who it is with a signed fetch
//! (`dome_events::fetch_auth`), checked against its key in the member registry on the bus.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use dome_events::fetch_auth::{
    parse_fetch_headers, FetchAuthError, MEMBER_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use dome_events::model::MAX_AUDIENCE;
use dome_events::MemberId;
use serde_json::Value;

use crate::auth::{bearer_token, AuthError, Principal, TokenVerifier};
use crate::members::MemberDirectory;

/// The extension attribute naming an entity's audience.
pub const AUDIENCE_ATTRIBUTE: &str = "@audience";
/// How far a signed fetch's timestamp may be from this server's clock, either way. Wide
/// enough for unsynchronised clocks and a slow retry, narrow enough that a captured request
/// is soon useless.
pub const MAX_FETCH_SKEW_SECONDS: u64 = 300;

/// Checks the `@audience` of an entity about to be stored: absent, or an array of 1 to 64
/// distinct valid member ids. The message names what is wrong.
pub fn validate_audience(body: &Value) -> Result<(), String> {
    let Some(value) = body.get(AUDIENCE_ATTRIBUTE) else {
        return Ok(());
    };
    let Some(items) = value.as_array() else {
        return Err(format!(
            "{AUDIENCE_ATTRIBUTE}: must be an array of member ids (omit it for all members)"
        ));
    };
    if items.is_empty() || items.len() > MAX_AUDIENCE {
        return Err(format!(
            "{AUDIENCE_ATTRIBUTE}: must list 1 to {MAX_AUDIENCE} member ids, not {} (omit it for all members)",
            items.len()
        ));
    }
    let mut seen: Vec<&str> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(text) = item.as_str() else {
            return Err(format!(
                "{AUDIENCE_ATTRIBUTE}[{i}]: must be a member id string"
            ));
        };
        MemberId::new(text).map_err(|e| format!("{AUDIENCE_ATTRIBUTE}[{i}]: {}", e.reason))?;
        if seen.contains(&text) {
            return Err(format!(
                "{AUDIENCE_ATTRIBUTE}[{i}]: member {text:?} is listed twice"
            ));
        }
        seen.push(text);
    }
    Ok(())
}

/// `Some(members)` when the stored body restricts its audience. Any `@audience` restricts,
/// also one that is malformed (e.g. written by another origin's older software): it then
/// admits only the valid member ids it lists, so a bad value never makes an entity public.
pub fn restricted_audience(body: &Value) -> Option<Vec<&str>> {
    let value = body.get(AUDIENCE_ATTRIBUTE)?;
    Some(
        value
            .as_array()
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
    )
}

/// Who was let in to a restricted version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// The marketplace's own staff (valid bearer token).
    Staff(Principal),
    /// A member in the audience, proven by a signed fetch.
    Member(MemberId),
}

/// Why a restricted read is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadRefusal {
    /// 403: the caller is not entitled (the message says why).
    #[error("{0}")]
    Forbidden(String),
    /// 503: a check could not be made (token verifier or member registry unreachable).
    #[error("{0}")]
    Unavailable(String),
}

/// What a restricted read is checked with.
pub struct ReadGate<'a> {
    /// `None`: no bearer tokens are configured, so nobody is staff.
    pub verifier: Option<&'a dyn TokenVerifier>,
    /// `None`: no member registry configured, so signed fetches cannot be checked.
    pub members: Option<&'a dyn MemberDirectory>,
    pub now_unix: u64,
}

/// Seconds since the unix epoch (0 if the clock is before it, which fails every signed fetch
/// as stale rather than admitting any).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `true` if the request carries a bearer token the verifier accepts. An invalid token is
/// just not staff (reads of public data need none); a verifier that cannot decide is 503.
pub async fn is_staff(
    verifier: Option<&dyn TokenVerifier>,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ReadRefusal> {
    let (Some(verifier), Some(token)) = (
        verifier,
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token),
    ) else {
        return Ok(None);
    };
    match verifier.verify(token).await {
        Ok(principal) => Ok(Some(principal)),
        Err(AuthError::InvalidToken) => Ok(None),
        Err(AuthError::Unavailable(reason)) => {
            tracing::error!(%reason, "token verification unavailable");
            Err(ReadRefusal::Unavailable(
                "the token could not be checked; retry later".into(),
            ))
        }
    }
}

impl ReadGate<'_> {
    /// Decides whether the caller may read a version whose audience is `audience`, for the
    /// request `method path_and_query` (what a signed fetch must have signed).
    pub async fn check(
        &self,
        headers: &HeaderMap,
        method: &str,
        path_and_query: &str,
        audience: &[&str],
    ) -> Result<Reader, ReadRefusal> {
        if let Some(principal) = is_staff(self.verifier, headers).await? {
            return Ok(Reader::Staff(principal));
        }
        let forbidden = |why: String| Err(ReadRefusal::Forbidden(why));
        let text = |name: &'static str| -> Result<Option<&str>, ReadRefusal> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str().map_err(|_| {
                        ReadRefusal::Forbidden(format!("header {name} is not visible ASCII"))
                    })
                })
                .transpose()
        };
        let claim = parse_fetch_headers(
            text(MEMBER_HEADER)?,
            text(TIMESTAMP_HEADER)?,
            text(SIGNATURE_HEADER)?,
        )
        .map_err(|e| ReadRefusal::Forbidden(e.to_string()))?;
        let Some(claim) = claim else {
            return forbidden(
                "this entity is restricted to its audience: send a valid bearer token or a \
                 signed fetch (x-dome-member, x-dome-timestamp, x-dome-signature)"
                    .into(),
            );
        };
        let Some(members) = self.members else {
            return forbidden(
                "signed fetches cannot be checked here: no member registry is configured".into(),
            );
        };
        let record = members.member(&claim.member).await.map_err(|e| {
            tracing::error!(error = %e, "member registry read failed");
            ReadRefusal::Unavailable("the member registry could not be read; retry later".into())
        })?;
        let Some((key, active)) = record else {
            return forbidden(format!("{} is not a member of the bus", claim.member));
        };
        if !active {
            return forbidden(format!("member {} was removed from the bus", claim.member));
        }
        claim
            .verify(
                &key,
                method,
                path_and_query,
                self.now_unix,
                MAX_FETCH_SKEW_SECONDS,
            )
            .map_err(|e: FetchAuthError| ReadRefusal::Forbidden(e.to_string()))?;
        // Checked after the signature, so that nobody learns who is in an audience by
        // claiming to be someone else.
        if !audience.contains(&claim.member.as_str()) {
            return forbidden(format!(
                "member {} is not in this entity's audience",
                claim.member
            ));
        }
        Ok(Reader::Member(claim.member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audience_validation() {
        assert_eq!(validate_audience(&json!({"name": "x"})), Ok(()));
        assert_eq!(
            validate_audience(&json!({"@audience": ["member-b", "m.c_1"]})),
            Ok(())
        );
        let max: Vec<String> = (0..MAX_AUDIENCE).map(|i| format!("m{i}")).collect();
        assert_eq!(validate_audience(&json!({ "@audience": max })), Ok(()));
        let too_many: Vec<String> = (0..=MAX_AUDIENCE).map(|i| format!("m{i}")).collect();
        for (bad, fragment) in [
            (json!({"@audience": []}), "1 to 64"),
            (json!({ "@audience": too_many }), "not 65"),
            (json!({"@audience": "member-b"}), "must be an array"),
            (json!({"@audience": null}), "must be an array"),
            (
                json!({"@audience": ["member-b", 7]}),
                "[1]: must be a member id",
            ),
            (json!({"@audience": ["Member-B"]}), "[0]:"),
            (json!({"@audience": [""]}), "[0]:"),
            (
                json!({"@audience": ["member-b", "member-b"]}),
                "listed twice",
            ),
        ] {
            let message = validate_audience(&bad).expect_err("refused");
            assert!(message.contains(fragment), "{bad}: {message}");
            assert!(message.starts_with("@audience"), "{message}");
        }
    }

    #[test]
    fn restriction_fails_closed() {
        assert_eq!(restricted_audience(&json!({"name": "x"})), None);
        assert_eq!(
            restricted_audience(&json!({"@audience": ["a", "b"]})),
            Some(vec!["a", "b"])
        );
        assert_eq!(
            restricted_audience(&json!({"@audience": "a"})),
            Some(vec![])
        );
        assert_eq!(
            restricted_audience(&json!({"@audience": [1, "b"]})),
            Some(vec!["b"])
        );
    }
}
