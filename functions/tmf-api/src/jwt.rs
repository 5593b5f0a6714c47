//! [`JwtVerifier`]: the [`TokenVerifier`] for AWS (`DOME_AUTH=jwt`). It accepts JWTs issued
//! by the marketplace's identity provider, e.g. an Amazon Cognito user pool, and checks:
//!
//! - the signature, RS256 or ES256 only (`none`, HMAC and every other algorithm are refused),
//!   with the key the header's `kid` names in the issuer's JWKS;
//! - `iss` equal to the configured issuer;
//! - the audience: `aud` contains it, or, for tokens without `aud` such as Cognito access
//!   tokens, `client_id` equals it;
//! - `exp` (required) and `nbf` (when present), with [`LEEWAY`] for clock skew.
//!
//! The key set is fetched over HTTPS at the first token, cached, refreshed after
//! [`KEYS_MAX_AGE`], and fetched again when a token names an unknown `kid` (the provider
//! rotated its keys), at most once per [`MIN_REFETCH_INTERVAL`], so a flood of tokens with
//! made-up `kid`s cannot turn into a flood of requests to the provider.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use crate::auth::{AuthError, Principal, TokenVerifier};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// Age after which the key set is fetched again even if every `kid` is known, so that keys
/// the provider withdrew stop being accepted.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Least time between two fetches caused by unknown `kid`s.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Timeout of one key set request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set read (a JWKS holds a few keys; this bounds what a broken URL can cost).
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// What a [`JwtVerifier`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// `iss` of valid tokens, e.g. `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc`.
    pub issuer: String,
    /// `aud` (or Cognito's `client_id`) of valid tokens.
    pub audience: String,
    /// The issuer's key set, e.g. `{issuer}/.well-known/jwks.json`. HTTPS, except for
    /// loopback addresses (tests, local identity providers).
    pub jwks_url: String,
    pub leeway: Duration,
    pub min_refetch_interval: Duration,
    pub keys_max_age: Duration,
}

impl JwtSettings {
    pub fn new(issuer: String, audience: String, jwks_url: String) -> Self {
        Self {
            issuer,
            audience,
            jwks_url,
            leeway: LEEWAY,
            min_refetch_interval: MIN_REFETCH_INTERVAL,
            keys_max_age: KEYS_MAX_AGE,
        }
    }
}

/// Whether `url` may serve a key set: `https://`, or `http://` to a loopback host.
pub fn acceptable_jwks_url(url: &str) -> bool {
    if url.starts_with("https://") && url.len() > "https://".len() {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        // `[::1]:8080` or `127.0.0.1:8080`; a bare `[::1]` has its colons inside brackets.
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A usable key of the set.
#[derive(Clone)]
struct Key {
    algorithm: Algorithm,
    decoding: DecodingKey,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Key>,
    /// When the set was last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch was last tried (successful or not), for the rate limit.
    attempted: Option<Instant>,
}

/// Verifies JWTs against an issuer's JWKS; see the module documentation.
pub struct JwtVerifier {
    settings: JwtSettings,
    client: tokio::sync::OnceCell<reqwest::Client>,
    cache: RwLock<KeyCache>,
    /// One fetch at a time; tokens that arrive meanwhile wait for its result.
    fetching: Mutex<()>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("DOME_JWKS_URL must be https:// (http:// only to a loopback address): {0}")]
    InsecureJwksUrl(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

/// Why a key set could not be used.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("request to the key set failed: {0}")]
    Request(String),
    #[error("the key set URL answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the key set is over {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the key set is not a JWKS: {0}")]
    Malformed(String),
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Result<Self, JwtConfigError> {
        if settings.issuer.trim().is_empty() {
            return Err(JwtConfigError::Empty("DOME_JWT_ISSUER"));
        }
        if settings.audience.trim().is_empty() {
            return Err(JwtConfigError::Empty("DOME_JWT_AUDIENCE"));
        }
        if !acceptable_jwks_url(&settings.jwks_url) {
            return Err(JwtConfigError::InsecureJwksUrl(settings.jwks_url));
        }
        Ok(Self {
            settings,
            client: tokio::sync::OnceCell::new(),
            cache: RwLock::new(KeyCache::default()),
            fetching: Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// The key named `kid`, fetching the set when it is unknown or stale (within the rate
    /// limit). `Ok(None)`: the issuer has no such key.
    async fn key(&self, kid: &str) -> Result<Option<Key>, AuthError> {
        {
            let cache = self.cache.read().await;
            let fresh = cache
                .fetched
                .is_some_and(|t| t.elapsed() < self.settings.keys_max_age);
            if fresh {
                if let Some(key) = cache.keys.get(kid) {
                    return Ok(Some(key.clone()));
                }
            }
        }
        let _fetching = self.fetching.lock().await;
        // Another task may have fetched while this one waited for the lock.
        let (known, stale, may_fetch) = {
            let cache = self.cache.read().await;
            let stale = cache
                .fetched
                .is_none_or(|t| t.elapsed() >= self.settings.keys_max_age);
            let may_fetch = cache
                .attempted
                .is_none_or(|t| t.elapsed() >= self.settings.min_refetch_interval);
            (cache.keys.get(kid).cloned(), stale, may_fetch)
        };
        match (known, stale, may_fetch) {
            (Some(key), false, _) => return Ok(Some(key)),
            // Stale, but refreshing failed a moment ago: keep using what we have.
            (Some(key), true, false) => return Ok(Some(key)),
            (None, _, false) => {
                let cache = self.cache.read().await;
                return if cache.fetched.is_some() {
                    Ok(None)
                } else {
                    Err(AuthError::Unavailable(
                        "the issuer's key set could not be fetched".into(),
                    ))
                };
            }
            (_, _, true) => {}
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.attempted = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), url = %self.settings.jwks_url, "JWKS fetched");
                cache.keys = keys;
                cache.fetched = Some(Instant::now());
                Ok(cache.keys.get(kid).cloned())
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %self.settings.jwks_url, "cannot fetch the JWKS");
                match cache.keys.get(kid) {
                    // A known key from the previous set still works until the issuer is back.
                    Some(key) => Ok(Some(key.clone())),
                    None if cache.fetched.is_some() => Ok(None),
                    None => Err(AuthError::Unavailable(e.to_string())),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, FetchError> {
        let client = self
            .client
            .get_or_try_init(|| async {
                // Reads the system's root certificates: off the runtime's worker threads.
                tokio::task::spawn_blocking(|| {
                    reqwest::Client::builder()
                        .timeout(FETCH_TIMEOUT)
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .map_err(|e| FetchError::Client(e.to_string()))
                })
                .await
                .map_err(|e| FetchError::Client(e.to_string()))?
            })
            .await?;
        let mut response = client
            .get(&self.settings.jwks_url)
            .send()
            .await
            .map_err(|e| FetchError::Request(e.to_string()))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Request(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

/// The RS256 and ES256 (P-256) keys of a JWKS document, by `kid`. Keys of other types, for
/// other uses, without a `kid`, or that the JWKS marks for another algorithm are skipped;
/// a document that is not a JWKS at all is an error.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Key>, FetchError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| FetchError::Malformed(e.to_string()))?;
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| FetchError::Malformed("no `keys` array".into()))?;
    let mut keys = HashMap::new();
    for entry in entries {
        // One odd key (a type this library does not know) must not hide the others.
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if entry
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => continue,
        };
        let declared = entry.get("alg").and_then(Value::as_str);
        let expected = if algorithm == Algorithm::RS256 {
            "RS256"
        } else {
            "ES256"
        };
        if declared.is_some_and(|alg| alg != expected) {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(
            kid,
            Key {
                algorithm,
                decoding,
            },
        );
    }
    Ok(keys)
}

/// The claims read beyond what `jsonwebtoken` validates.
#[derive(Debug, serde::Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    client_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // The header is read before anything is checked, but only to pick the key: the
        // algorithm must match that key's, so a token cannot choose `none` or HMAC.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::InvalidToken);
        }
        let kid = header.kid.ok_or(AuthError::InvalidToken)?;
        let key = self.key(&kid).await?.ok_or(AuthError::InvalidToken)?;
        if key.algorithm != header.alg {
            return Err(AuthError::InvalidToken);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        // Checked below, so that Cognito access tokens (`client_id`, no `aud`) pass too.
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|e| {
                tracing::debug!(error = %e, "JWT refused");
                AuthError::InvalidToken
            })?;
        let claims = data.claims;
        let audience = self.settings.audience.as_str();
        let audience_ok = match &claims.aud {
            Some(Audience::One(aud)) => aud == audience,
            Some(Audience::Many(auds)) => auds.iter().any(|a| a == audience),
            None => claims.client_id.as_deref() == Some(audience),
        };
        if !audience_ok {
            tracing::debug!("JWT refused: audience");
            return Err(AuthError::InvalidToken);
        }
        Ok(Principal {
            subject: claims.sub.unwrap_or_else(|| "jwt".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls() {
        for ok in [
            "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json",
            "http://127.0.0.1:9000/jwks",
            "http://localhost/jwks",
            "http://[::1]:80/jwks",
        ] {
            assert!(acceptable_jwks_url(ok), "{ok}");
        }
        for bad in [
            "http://idp.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://x",
            "https://",
            "http://localhost.evil.example/jwks",
        ] {
            assert!(!acceptable_jwks_url(bad), "{bad}");
        }
    }

    #[test]
    fn jwks_parsing_keeps_only_signature_keys_it_supports() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird"},
            {"kty": "RSA", "kid": "ok", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"}
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["ok"]);
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"nope").is_err());
    }
}
