//! Signed fetches: how a member proves to an origin marketplace who is asking for a version.
//!
//! A replicator fetching an announced version sends three headers:
//!
//! | header | value |
//! | --- | --- |
//! | `x-dome-member` | its member id |
//! | `x-dome-timestamp` | unix seconds when it signed |
//! | `x-dome-signature` | standard base64 of its ed25519 signature over the bytes of `"dome-fetch-v1\n{METHOD}\n{path_and_query}\n{timestamp}"` |
//!
//! The origin looks the member's key up in the registry on the bus, checks the signature and
//! that the timestamp is within its allowed skew, then decides from the entity's audience.
//! The signed text names the method and the exact path and query, so a signature for one
//! version cannot be replayed to read another; the timestamp bounds how long a captured
//! request stays usable. The member id itself is not in the signed text: the signature only
//! verifies under the key of the member the header names, which binds it.

use thiserror::Error;

use crate::crypto::{MemberKeypair, PublicKey, Signature};
use crate::model::MemberId;

/// Header carrying the member id of the caller.
pub const MEMBER_HEADER: &str = "x-dome-member";
/// Header carrying the unix time (seconds) at which the request was signed.
pub const TIMESTAMP_HEADER: &str = "x-dome-timestamp";
/// Header carrying the base64 ed25519 signature.
pub const SIGNATURE_HEADER: &str = "x-dome-signature";
/// Domain separator of the signed text, so that a fetch signature can never be mistaken for
/// a bus transaction signature (which starts with `dome-bus-transaction\n`).
const DOMAIN: &str = "dome-fetch-v1";
/// Longest accepted timestamp header: a u64 has at most 20 digits.
const MAX_TIMESTAMP_DIGITS: usize = 20;

/// Why a signed fetch is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FetchAuthError {
    /// Some of the three headers were sent, but not this one.
    #[error("signed fetch: header {0} is missing")]
    MissingHeader(&'static str),
    /// A header is present but cannot be read.
    #[error("signed fetch: header {header} is malformed: {reason}")]
    Malformed {
        header: &'static str,
        reason: String,
    },
    /// The request was signed longer ago than the allowed skew.
    #[error("signed fetch: timestamp {timestamp} is too old (now {now}, allowed skew {max_skew_seconds} s)")]
    StaleTimestamp {
        timestamp: u64,
        now: u64,
        max_skew_seconds: u64,
    },
    /// The request claims to be signed further in the future than the allowed skew.
    #[error("signed fetch: timestamp {timestamp} is in the future (now {now}, allowed skew {max_skew_seconds} s)")]
    FutureTimestamp {
        timestamp: u64,
        now: u64,
        max_skew_seconds: u64,
    },
    /// The signature does not verify under the member's key for this method, path and time.
    #[error("signed fetch: the signature does not verify for member {0}")]
    BadSignature(MemberId),
}

/// The exact bytes a fetch signature covers.
fn signed_text(method: &str, path_and_query: &str, unix_seconds: u64) -> String {
    format!("{DOMAIN}\n{method}\n{path_and_query}\n{unix_seconds}")
}

/// The three headers (name, value) that prove `member` asks for `method path_and_query` at
/// `unix_seconds`. `path_and_query` is what the origin will see as the request target, e.g.
/// `/tmf-api/productCatalogManagement/v4/productOffering/42/version/3`.
pub fn sign_fetch(
    keypair: &MemberKeypair,
    member: &MemberId,
    method: &str,
    path_and_query: &str,
    unix_seconds: u64,
) -> Vec<(&'static str, String)> {
    let signature = keypair.sign(signed_text(method, path_and_query, unix_seconds).as_bytes());
    vec![
        (MEMBER_HEADER, member.as_str().to_owned()),
        (TIMESTAMP_HEADER, unix_seconds.to_string()),
        (SIGNATURE_HEADER, signature.to_base64()),
    ]
}

/// Who a signed fetch claims to come from; not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchClaim {
    pub member: MemberId,
    pub timestamp: u64,
    pub signature: Signature,
}

/// Reads the three headers' values. `Ok(None)` when none is present (an unsigned request);
/// an error when only some are, or one cannot be read.
pub fn parse_fetch_headers(
    member: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
) -> Result<Option<FetchClaim>, FetchAuthError> {
    if member.is_none() && timestamp.is_none() && signature.is_none() {
        return Ok(None);
    }
    let member = member.ok_or(FetchAuthError::MissingHeader(MEMBER_HEADER))?;
    let timestamp = timestamp.ok_or(FetchAuthError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(FetchAuthError::MissingHeader(SIGNATURE_HEADER))?;

    let member = MemberId::new(member.trim()).map_err(|e| FetchAuthError::Malformed {
        header: MEMBER_HEADER,
        reason: e.reason,
    })?;
    let timestamp_text = timestamp.trim();
    // Plain decimal digits only: `u64::from_str` would also take a leading `+`.
    let timestamp = Some(timestamp_text)
        .filter(|t| {
            !t.is_empty()
                && t.len() <= MAX_TIMESTAMP_DIGITS
                && t.bytes().all(|b| b.is_ascii_digit())
        })
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| FetchAuthError::Malformed {
            header: TIMESTAMP_HEADER,
            reason: format!("{timestamp_text:?} is not unix seconds"),
        })?;
    let signature =
        Signature::from_base64(signature.trim()).map_err(|e| FetchAuthError::Malformed {
            header: SIGNATURE_HEADER,
            reason: e.to_string(),
        })?;
    Ok(Some(FetchClaim {
        member,
        timestamp,
        signature,
    }))
}

impl FetchClaim {
    /// Checks the timestamp against `now_unix` (at most `max_skew_seconds` off either way),
    /// then the signature under `public_key` (the claimed member's registered key) for this
    /// method and request target.
    pub fn verify(
        &self,
        public_key: &PublicKey,
        method: &str,
        path_and_query: &str,
        now_unix: u64,
        max_skew_seconds: u64,
    ) -> Result<(), FetchAuthError> {
        if now_unix.saturating_sub(self.timestamp) > max_skew_seconds {
            return Err(FetchAuthError::StaleTimestamp {
                timestamp: self.timestamp,
                now: now_unix,
                max_skew_seconds,
            });
        }
        if self.timestamp.saturating_sub(now_unix) > max_skew_seconds {
            return Err(FetchAuthError::FutureTimestamp {
                timestamp: self.timestamp,
                now: now_unix,
                max_skew_seconds,
            });
        }
        let text = signed_text(method, path_and_query, self.timestamp);
        public_key
            .verify(text.as_bytes(), &self.signature)
            .map_err(|_| FetchAuthError::BadSignature(self.member.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/tmf-api/productCatalogManagement/v4/productOffering/42/version/3";
    const NOW: u64 = 1_700_000_000;
    const SKEW: u64 = 300;

    fn member() -> MemberId {
        MemberId::new("member-b").expect("valid id")
    }

    fn keypair() -> MemberKeypair {
        MemberKeypair::from_seed([11; 32])
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn claim(headers: &[(&'static str, String)]) -> FetchClaim {
        parse_fetch_headers(
            header(headers, MEMBER_HEADER),
            header(headers, TIMESTAMP_HEADER),
            header(headers, SIGNATURE_HEADER),
        )
        .expect("parses")
        .expect("present")
    }

    #[test]
    fn signed_headers_verify() {
        let headers = sign_fetch(&keypair(), &member(), "GET", PATH, NOW);
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [MEMBER_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER]);
        let claim = claim(&headers);
        assert_eq!(claim.member, member());
        assert_eq!(claim.timestamp, NOW);
        claim
            .verify(&keypair().public_key(), "GET", PATH, NOW, SKEW)
            .expect("verifies");
        // within the skew either way
        claim
            .verify(&keypair().public_key(), "GET", PATH, NOW + SKEW, SKEW)
            .expect("just within the past skew");
        claim
            .verify(&keypair().public_key(), "GET", PATH, NOW - SKEW, SKEW)
            .expect("just within the future skew");
    }

    #[test]
    fn signature_covers_the_documented_text() {
        let headers = sign_fetch(&keypair(), &member(), "GET", PATH, NOW);
        let signature =
            Signature::from_base64(header(&headers, SIGNATURE_HEADER).expect("sig")).expect("b64");
        let text = format!("dome-fetch-v1\nGET\n{PATH}\n{NOW}");
        keypair()
            .public_key()
            .verify(text.as_bytes(), &signature)
            .expect("signature over the documented bytes");
    }

    #[test]
    fn tampered_path_method_or_time_is_refused() {
        let claim = claim(&sign_fetch(&keypair(), &member(), "GET", PATH, NOW));
        let key = keypair().public_key();
        let other_version = PATH.replace("/version/3", "/version/4");
        for (method, path) in [
            ("GET", other_version.as_str()),
            (
                "GET",
                "/tmf-api/productCatalogManagement/v4/productOffering/42",
            ),
            ("GET", &format!("{PATH}?fields=name")),
            ("DELETE", PATH),
        ] {
            assert_eq!(
                claim.verify(&key, method, path, NOW, SKEW),
                Err(FetchAuthError::BadSignature(member())),
                "{method} {path}"
            );
        }
        let mut later = claim.clone();
        later.timestamp += 1;
        assert_eq!(
            later.verify(&key, "GET", PATH, NOW, SKEW),
            Err(FetchAuthError::BadSignature(member()))
        );
        let mut flipped = claim.clone();
        flipped.signature.0[0] ^= 1;
        assert_eq!(
            flipped.verify(&key, "GET", PATH, NOW, SKEW),
            Err(FetchAuthError::BadSignature(member()))
        );
    }

    #[test]
    fn wrong_key_is_refused() {
        let claim = claim(&sign_fetch(&keypair(), &member(), "GET", PATH, NOW));
        let other = MemberKeypair::from_seed([12; 32]).public_key();
        assert_eq!(
            claim.verify(&other, "GET", PATH, NOW, SKEW),
            Err(FetchAuthError::BadSignature(member()))
        );
    }

    #[test]
    fn skew_is_enforced_both_ways() {
        let claim = claim(&sign_fetch(&keypair(), &member(), "GET", PATH, NOW));
        let key = keypair().public_key();
        assert_eq!(
            claim.verify(&key, "GET", PATH, NOW + SKEW + 1, SKEW),
            Err(FetchAuthError::StaleTimestamp {
                timestamp: NOW,
                now: NOW + SKEW + 1,
                max_skew_seconds: SKEW
            })
        );
        assert_eq!(
            claim.verify(&key, "GET", PATH, NOW - SKEW - 1, SKEW),
            Err(FetchAuthError::FutureTimestamp {
                timestamp: NOW,
                now: NOW - SKEW - 1,
                max_skew_seconds: SKEW
            })
        );
        // extreme values neither overflow nor pass
        let mut ancient = claim.clone();
        ancient.timestamp = 0;
        assert!(matches!(
            ancient.verify(&key, "GET", PATH, u64::MAX, SKEW),
            Err(FetchAuthError::StaleTimestamp { .. })
        ));
        let mut far = claim;
        far.timestamp = u64::MAX;
        assert!(matches!(
            far.verify(&key, "GET", PATH, 0, SKEW),
            Err(FetchAuthError::FutureTimestamp { .. })
        ));
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse_fetch_headers(None, None, None), Ok(None));
        let headers = sign_fetch(&keypair(), &member(), "GET", PATH, NOW);
        let sig = header(&headers, SIGNATURE_HEADER);
        assert_eq!(
            parse_fetch_headers(Some("member-b"), None, sig),
            Err(FetchAuthError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            parse_fetch_headers(None, Some("1"), sig),
            Err(FetchAuthError::MissingHeader(MEMBER_HEADER))
        );
        assert_eq!(
            parse_fetch_headers(Some("member-b"), Some("1"), None),
            Err(FetchAuthError::MissingHeader(SIGNATURE_HEADER))
        );
        let malformed =
            |m: &str, t: &str, s: &str| match parse_fetch_headers(Some(m), Some(t), Some(s)) {
                Err(FetchAuthError::Malformed { header, .. }) => header,
                other => panic!("expected Malformed, got {other:?}"),
            };
        let good_sig = sig.expect("sig");
        assert_eq!(malformed("Member-B", "1", good_sig), MEMBER_HEADER);
        assert_eq!(malformed("", "1", good_sig), MEMBER_HEADER);
        for bad_time in ["", "-1", "+1", "1.5", "abc", "99999999999999999999999"] {
            assert_eq!(
                malformed("member-b", bad_time, good_sig),
                TIMESTAMP_HEADER,
                "{bad_time:?}"
            );
        }
        assert_eq!(malformed("member-b", "1", "not base64!"), SIGNATURE_HEADER);
        assert_eq!(malformed("member-b", "1", "AAAA"), SIGNATURE_HEADER);
    }

    #[test]
    fn errors_are_distinct_and_readable() {
        let errors = [
            FetchAuthError::MissingHeader(MEMBER_HEADER).to_string(),
            FetchAuthError::Malformed {
                header: SIGNATURE_HEADER,
                reason: "x".into(),
            }
            .to_string(),
            FetchAuthError::StaleTimestamp {
                timestamp: 1,
                now: 2,
                max_skew_seconds: 0,
            }
            .to_string(),
            FetchAuthError::FutureTimestamp {
                timestamp: 2,
                now: 1,
                max_skew_seconds: 0,
            }
            .to_string(),
            FetchAuthError::BadSignature(member()).to_string(),
        ];
        for (i, e) in errors.iter().enumerate() {
            assert!(errors[..i].iter().all(|other| other != e), "{e}");
        }
        assert!(errors[4].contains("member-b"));
    }
}
