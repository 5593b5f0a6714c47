//! From a [`Config`] to a running API's parts: logs, the store, the token verifier, the member
//! directory, the notification sink, the [`AppState`]. The `tmf-api` binary and
//! `dome-marketplace` both start through here, so that a setting means the same in both (a
//! marketplace once ignored `DOME_AUTH=jwt` and served writes to anyone).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dome_catalog_store::{CatalogStore, EmbeddedStore, StoreError};
use dome_tmf::{ApiSpec, QueryLimits};
use tracing_subscriber::EnvFilter;

use crate::auth::{StaticTokens, TokenVerifier};
use crate::config::{AuthConfig, Config, LogFormat, StoreConfig};
use crate::jwt::{JwtSettings, JwtVerifier};
use crate::members::{BusMemberDirectory, MemberDirectory};
use crate::notify::{HttpTransport, InProcessNotifier, NotificationSink, RetryPolicy};
use crate::{AppState, HeadCache};

/// Timeout of one notification POST to a hub listener.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the API cannot start; each names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("loading the TMF620 definitions: {0}")]
    Spec(String),
    #[error("DOME_DATA_DIR: creating {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("DOME_DATA_DIR: opening the embedded store {path}: {source}")]
    EmbeddedStore { path: PathBuf, source: StoreError },
    #[error("DOME_STORE=dynamodb: {0}")]
    DynamoDb(String),
    #[error("DOME_AUTH=jwt: {0}")]
    Jwt(String),
    #[error("DOME_BUS_RPC: the member registry: {0}")]
    MemberRegistry(String),
    #[error("DOME_NOTIFY_QUEUE_URL: {0}")]
    Notifications(String),
}

/// Logs to stderr, JSON lines when `format` says so (on Lambda), filtered by `RUST_LOG`.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
        LogFormat::Text => builder.init(),
    }
}

/// The catalogue store of `config`, behind the head cache when the store is embedded.
pub async fn open_store(config: &Config) -> Result<Arc<dyn CatalogStore>, StartupError> {
    match &config.store {
        StoreConfig::Embedded { data_dir } => {
            std::fs::create_dir_all(data_dir).map_err(|source| StartupError::DataDir {
                path: data_dir.clone(),
                source,
            })?;
            let file = data_dir.join("catalog.redb");
            let store = EmbeddedStore::open_with_cache(&file, config.store_cache_bytes).map_err(
                |source| StartupError::EmbeddedStore {
                    path: file.clone(),
                    source,
                },
            )?;
            tracing::info!(file = %file.display(), head_cache = config.head_cache, "embedded store");
            if config.head_cache == 0 {
                return Ok(Arc::new(store));
            }
            // This process alone can write the file (redb locks it): heads can be cached.
            Ok(Arc::new(HeadCache::new(Arc::new(store), config.head_cache)))
        }
        #[cfg(feature = "dynamodb")]
        StoreConfig::DynamoDb { table } => {
            // Reads DOME_TABLE (already checked by Config) and the AWS SDK settings.
            let store = dome_store_dynamodb::DynamoStore::from_env()
                .await
                .map_err(|e| StartupError::DynamoDb(e.to_string()))?;
            tracing::info!(%table, "DynamoDB store");
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "dynamodb"))]
        StoreConfig::DynamoDb { .. } => Err(StartupError::DynamoDb(
            "this binary was built without the `dynamodb` feature".into(),
        )),
    }
}

/// Who may change the catalogue: `None` only when `DOME_AUTH=none` (refused on Lambda).
pub fn token_verifier(config: &Config) -> Result<Option<Arc<dyn TokenVerifier>>, StartupError> {
    match &config.auth {
        AuthConfig::Tokens(tokens) => Ok(Some(Arc::new(StaticTokens::new(tokens)))),
        AuthConfig::Jwt {
            issuer,
            audience,
            jwks_url,
        } => {
            let settings = JwtSettings::new(issuer.clone(), audience.clone(), jwks_url.clone());
            tracing::info!(%issuer, %audience, %jwks_url, "JWT authentication");
            let verifier =
                JwtVerifier::new(settings).map_err(|e| StartupError::Jwt(e.to_string()))?;
            Ok(Some(Arc::new(verifier)))
        }
        AuthConfig::Disabled => {
            tracing::warn!("DOME_AUTH=none: anyone can change this catalogue");
            Ok(None)
        }
    }
}

/// The bus member registry that decides who may read restricted versions, when the bus is
/// configured.
pub fn member_directory(config: &Config) -> Result<Option<Arc<dyn MemberDirectory>>, StartupError> {
    if config.bus_rpc.is_empty() {
        tracing::info!(
            "DOME_BUS_RPC unset: restricted versions are served to bearer-token callers only"
        );
        return Ok(None);
    }
    let directory = BusMemberDirectory::new(config.bus_rpc.clone())
        .map_err(|e| StartupError::MemberRegistry(e.to_string()))?;
    Ok(Some(Arc::new(directory)))
}

/// Hub notifications: through SQS when `DOME_NOTIFY_QUEUE_URL` is set (the notifier function
/// delivers them), otherwise delivered by this process, with retries.
pub async fn notification_sink(
    config: &Config,
    store: &Arc<dyn CatalogStore>,
    limits: &QueryLimits,
) -> Result<Arc<dyn NotificationSink>, StartupError> {
    if let Some(url) = &config.notify_queue_url {
        #[cfg(feature = "sqs")]
        {
            tracing::info!(queue = %url, "hub notifications through SQS");
            let queue = dome_queue_sqs::SqsQueue::connect(url.clone()).await;
            return Ok(Arc::new(crate::notify::SqsNotificationSink::new(queue)));
        }
        #[cfg(not(feature = "sqs"))]
        return Err(StartupError::Notifications(format!(
            "{url}: this binary was built without the `sqs` feature"
        )));
    }
    if !config.callback_allow_private {
        tracing::info!("callbacks on non-public addresses refused");
    }
    let transport = Arc::new(HttpTransport::with_private_callbacks(
        DELIVERY_TIMEOUT,
        config.callback_allow_private,
    ));
    Ok(Arc::new(InProcessNotifier::start(
        Arc::clone(store),
        transport,
        RetryPolicy::default(),
        limits.clone(),
    )))
}

/// Everything the router needs, over `store` (see [`open_store`]).
pub async fn app_state(
    config: &Config,
    store: Arc<dyn CatalogStore>,
) -> Result<AppState, StartupError> {
    let api = Arc::new(ApiSpec::tmf620().map_err(|e| StartupError::Spec(e.to_string()))?);
    let limits = QueryLimits {
        max_limit: config.max_limit,
        ..QueryLimits::default()
    };
    let notifier = notification_sink(config, &store, &limits).await?;
    Ok(AppState {
        api,
        verifier: token_verifier(config)?,
        notifier,
        public_base_url: config.public_base_url.clone(),
        max_body_bytes: config.max_body_bytes,
        limits,
        members: member_directory(config)?,
        member_id: config.member_id.clone(),
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: std::collections::HashMap<&str, &str> = pairs.iter().copied().collect();
        Config::from_lookup(|name| map.get(name).map(|v| (*v).to_owned())).expect("valid")
    }

    #[test]
    fn every_auth_mode_builds_the_verifier_it_names() {
        let tokens = config(&[("DOME_AUTH", "tokens"), ("DOME_API_TOKENS", "t")]);
        assert!(token_verifier(&tokens).expect("tokens").is_some());
        let jwt = config(&[
            ("DOME_AUTH", "jwt"),
            ("DOME_JWT_ISSUER", "https://issuer.example"),
            ("DOME_JWT_AUDIENCE", "dome"),
            ("DOME_JWKS_URL", "https://issuer.example/jwks"),
        ]);
        assert!(
            token_verifier(&jwt).expect("jwt").is_some(),
            "DOME_AUTH=jwt must never leave writes open"
        );
        let none = config(&[("DOME_AUTH", "none")]);
        assert!(token_verifier(&none).expect("none").is_none());
    }

    #[tokio::test]
    async fn an_unusable_data_dir_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").expect("write");
        let path = file.join("data");
        let broken = config(&[
            ("DOME_AUTH", "none"),
            ("DOME_DATA_DIR", path.to_str().expect("utf-8")),
        ]);
        match open_store(&broken).await {
            Err(e @ StartupError::DataDir { .. }) => {
                assert!(e.to_string().starts_with("DOME_DATA_DIR"), "{e}")
            }
            other => panic!("{:?}", other.map(|_| "a store")),
        }
    }
}
