//! `tmf-api`: the TMF620 API as a local HTTP server or, when `AWS_LAMBDA_RUNTIME_API` is set,
//! as a Lambda function behind a function URL. Configuration: environment variables (README).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use dome_catalog_store::{CatalogStore, EmbeddedStore};
use dome_tmf::{ApiSpec, QueryLimits};
use dome_tmf_api::auth::TokenVerifier;
use dome_tmf_api::config::{default_base_url, AuthConfig, Config, LogFormat, StoreConfig};
use dome_tmf_api::jwt::{JwtSettings, JwtVerifier};
use dome_tmf_api::members::MemberDirectory;
use dome_tmf_api::notify::{HttpTransport, InProcessNotifier, NotificationSink, RetryPolicy};
use dome_tmf_api::{router, AppState, BusMemberDirectory, HeadCache, StaticTokens};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: cheaper allocation on the request path (GET by id about
/// 25% faster in docs/benchmarks.md). See `disable_transparent_huge_pages` for its memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Timeout of one notification POST.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn CatalogStore>> {
    match &config.store {
        StoreConfig::Embedded { data_dir } => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating DOME_DATA_DIR {}", data_dir.display()))?;
            let file = data_dir.join("catalog.redb");
            let store = EmbeddedStore::open_with_cache(&file, config.store_cache_bytes)
                .with_context(|| format!("opening the embedded store {}", file.display()))?;
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
                .context("configuring the DynamoDB store")?;
            tracing::info!(%table, "DynamoDB store");
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "dynamodb"))]
        StoreConfig::DynamoDb { .. } => Err(anyhow!(
            "DOME_STORE=dynamodb: this binary was built without the `dynamodb` feature"
        )),
    }
}

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    let config = Config::from_env()?;
    init_tracing(config.log_format);
    // What `#[tokio::main]` builds, with a cap on the blocking pool.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.blocking_threads)
        .build()
        .context("starting the tokio runtime")?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let api = Arc::new(ApiSpec::tmf620().context("loading the TMF620 definitions")?);
    let store = open_store(&config).await?;
    let verifier: Option<Arc<dyn TokenVerifier>> = match &config.auth {
        AuthConfig::Tokens(tokens) => Some(Arc::new(StaticTokens::new(tokens))),
        AuthConfig::Jwt {
            issuer,
            audience,
            jwks_url,
        } => {
            let settings = JwtSettings::new(issuer.clone(), audience.clone(), jwks_url.clone());
            tracing::info!(%issuer, %audience, %jwks_url, "JWT authentication");
            Some(Arc::new(
                JwtVerifier::new(settings).context("DOME_AUTH=jwt")?,
            ))
        }
        AuthConfig::Disabled => {
            tracing::warn!("DOME_AUTH=none: anyone can change this catalogue");
            None
        }
    };
    let limits = QueryLimits {
        max_limit: config.max_limit,
        ..QueryLimits::default()
    };
    let notifier = notification_sink(&config, &store, &limits).await?;
    let members: Option<Arc<dyn MemberDirectory>> = if config.bus_rpc.is_empty() {
        tracing::info!(
            "DOME_BUS_RPC unset: restricted versions are served to bearer-token callers only"
        );
        None
    } else {
        let directory = BusMemberDirectory::new(config.bus_rpc.clone())
            .map_err(|e| anyhow!("member registry: {e}"))?;
        Some(Arc::new(directory))
    };
    let mut state = AppState {
        api,
        store,
        verifier,
        notifier,
        public_base_url: config.public_base_url.clone(),
        max_body_bytes: config.max_body_bytes,
        limits,
        members,
        member_id: config.member_id.clone(),
    };

    if config.lambda {
        tracing::info!("running under the Lambda runtime");
        return lambda_http::run(router(state))
            .await
            .map_err(|e| anyhow!("lambda runtime: {e}"));
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding DOME_LISTEN {}", config.listen))?;
    let addr = listener.local_addr()?;
    if state.public_base_url.is_none() {
        state.public_base_url = Some(default_base_url(addr));
    }
    tracing::info!(%addr, base_url = state.public_base_url.as_deref().unwrap_or(""), "listening");
    if let Some(file) = &config.addr_file {
        std::fs::write(file, addr.to_string())
            .with_context(|| format!("writing DOME_ADDR_FILE {}", file.display()))?;
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

/// Where hub notifications go: the SQS queue of `DOME_NOTIFY_QUEUE_URL` (the notifier
/// function delivers them), else this process's own delivery worker.
async fn notification_sink(
    config: &Config,
    store: &Arc<dyn CatalogStore>,
    limits: &QueryLimits,
) -> anyhow::Result<Arc<dyn NotificationSink>> {
    if let Some(url) = &config.notify_queue_url {
        #[cfg(feature = "sqs")]
        {
            tracing::info!(queue = %url, "hub notifications through SQS");
            let queue = dome_queue_sqs::SqsQueue::connect(url.clone()).await;
            return Ok(Arc::new(dome_tmf_api::notify::SqsNotificationSink::new(
                queue,
            )));
        }
        #[cfg(not(feature = "sqs"))]
        return Err(anyhow!(
            "DOME_NOTIFY_QUEUE_URL={url}: this binary was built without the `sqs` feature"
        ));
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

/// mimalloc asks for transparent huge pages on its arenas (madvise); each touched 2 MiB page
/// is then resident whole, which more than doubled the resident memory of a small catalogue
/// (docs/benchmarks.md). Small pages cost nothing measurable here.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) only sets a flag of this process.
        let status = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if status != 0 {
            // Not fatal: only memory use changes. Logging is not set up yet.
            eprintln!(
                "tmf-api: prctl(PR_SET_THP_DISABLE) failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
