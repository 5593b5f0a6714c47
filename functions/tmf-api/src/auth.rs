//! Who may change the catalogue. Reads are public; every mutating request (POST, PATCH,
//! DELETE, hub registration) carries `Authorization: Bearer <token>`, checked by a
//! [`TokenVerifier`].
//!
//! Implementations: [`StaticTokens`] (tokens from `DOME_API_TOKENS`, for local runs and
//! simple deployments). On AWS the intended verifier checks JWTs issued by the marketplace's
//! identity provider (see the README); it plugs in here without touching the handlers.

use async_trait::async_trait;

/// The caller a token belongs to, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not valid")]
    InvalidToken,
    /// The verifier could not decide (e.g. its key set could not be fetched).
    #[error("the token could not be checked: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// Checks a bearer token (without the `Bearer ` prefix).
    async fn verify(&self, token: &str) -> Result<Principal, AuthError>;
}

/// A fixed set of opaque tokens. Comparison takes the same time whatever the token, so the
/// response time does not reveal how much of a guess was right.
#[derive(Clone)]
pub struct StaticTokens {
    tokens: Vec<Vec<u8>>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokens")
            .field("count", &self.tokens.len())
            .finish()
    }
}

impl StaticTokens {
    /// Empty tokens are ignored.
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            tokens: tokens
                .into_iter()
                .map(|t| t.as_ref().trim().as_bytes().to_vec())
                .filter(|t| !t.is_empty())
                .collect(),
        }
    }

    /// Parses the comma-separated `DOME_API_TOKENS` value.
    pub fn from_list(list: &str) -> Self {
        Self::new(list.split(','))
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[async_trait]
impl TokenVerifier for StaticTokens {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let mut found = None;
        for (i, known) in self.tokens.iter().enumerate() {
            if constant_time_eq(known, token.as_bytes()) && found.is_none() {
                found = Some(i);
            }
        }
        found
            .map(|i| Principal {
                subject: format!("static-token-{}", i + 1),
            })
            .ok_or(AuthError::InvalidToken)
    }
}

/// Extracts the token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_tokens() {
        let tokens = StaticTokens::from_list(" alpha, ,beta ");
        assert!(!tokens.is_empty());
        assert_eq!(
            tokens.verify("alpha").await.unwrap().subject,
            "static-token-1"
        );
        assert_eq!(
            tokens.verify("beta").await.unwrap().subject,
            "static-token-2"
        );
        assert_eq!(tokens.verify("alph").await, Err(AuthError::InvalidToken));
        assert_eq!(tokens.verify("alphaa").await, Err(AuthError::InvalidToken));
        assert_eq!(tokens.verify("").await, Err(AuthError::InvalidToken));
        assert!(StaticTokens::from_list(",,").is_empty());
        assert!(format!("{tokens:?}").contains("count: 2"));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
