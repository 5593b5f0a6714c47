//! `tmf-api`: the TMF620 API as a local HTTP server or, when `AWS_LAMBDA_RUNTIME_API` is set,
//! as a Lambda function behind a function URL. Configuration: environment variables (README).

use anyhow::{anyhow, Context as _};
use dome_tmf_api::config::{default_base_url, Config};
use dome_tmf_api::{router, startup};

/// mimalloc instead of glibc malloc: cheaper allocation on the request path (GET by id about
/// 25% faster in docs/benchmarks.md). See `disable_transparent_huge_pages` for its memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    let config = Config::from_env()?;
    startup::init_tracing(config.log_format);
    // What `#[tokio::main]` builds, with a cap on the blocking pool.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.blocking_threads)
        .build()
        .context("starting the tokio runtime")?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = startup::open_store(&config).await?;
    let mut state = startup::app_state(&config, store).await?;

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
