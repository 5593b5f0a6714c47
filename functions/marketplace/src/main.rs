//! `dome-marketplace`: one self-hosted marketplace in one process, the way the local
//! federation runs them. The TMF620 API (the same router as the `tmf-api` function) and the
//! replication workers share the embedded store, which only one process may open:
//!
//! - the publisher announces this marketplace's outbox on the bus;
//! - the relay follows the bus and hands the events meant for this marketplace straight to
//!   the replicator (the in-process queue), advancing its checkpoint once they are settled.
//!
//! With `DOME_STORE=dynamodb` the store is the DynamoDB table `DOME_TABLE`; if
//! `DOME_REPLICATION_QUEUE_URL` is set too, the relay hands off to that SQS FIFO queue
//! instead and a polling loop of the SQS replicator consumes it (dead letters also go to the
//! FIFO queue `DOME_REPLICATION_DLQ_URL`), the same code as the AWS functions.
//!
//! Configuration: the `tmf-api` variables (functions/tmf-api/README.md) with
//! `DOME_MEMBER_ID` and `DOME_BUS_RPC` required, plus `DOME_SIGNING_KEY_FILE` (a file holding
//! the member's base64 ed25519 seed) and `DOME_REPLICATION=off` to serve the API alone; with
//! the queue, `DOME_MAX_ATTEMPTS`, `DOME_REPLICATION_VISIBILITY_SECONDS` and
//! `DOME_REPLICATION_BACKOFF_CAP_SECONDS` (see dome-replication-aws).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use dome_bus_client::BusClient;
use dome_catalog_store::CatalogStore;
use dome_events::{MemberId, MemberKeypair};
use dome_queue_sqs::SqsQueue;
use dome_replication::fetch::HttpFetcher;
use dome_replication::publisher::{Publisher, PublisherConfig};
use dome_replication::relay::{DirectHandoff, Handoff, Relay, RelayConfig};
use dome_replication::replicator::{Replicator, ReplicatorConfig};
use dome_replication_aws::{SqsHandoff, SqsReplicator};
use dome_tmf_api::config::{default_base_url, Config};
use dome_tmf_api::{router, startup};

/// Timeout of one RPC call to a validator.
const BUS_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one fetch from an origin.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before trying again to take the relay lease held by another process.
const LEASE_RETRY: Duration = Duration::from_secs(2);

struct Replication {
    member: MemberId,
    bus: BusClient,
    key: Arc<MemberKeypair>,
}

fn replication_config(config: &Config) -> anyhow::Result<Option<Replication>> {
    if std::env::var("DOME_REPLICATION").is_ok_and(|v| v.trim() == "off") {
        return Ok(None);
    }
    let member = config
        .member_id
        .clone()
        .ok_or_else(|| anyhow!("DOME_MEMBER_ID: required (or DOME_REPLICATION=off)"))?;
    if config.bus_rpc.is_empty() {
        bail!("DOME_BUS_RPC: required (or DOME_REPLICATION=off)");
    }
    let key_file = std::env::var("DOME_SIGNING_KEY_FILE")
        .map_err(|_| anyhow!("DOME_SIGNING_KEY_FILE: required (or DOME_REPLICATION=off)"))?;
    let seed = std::fs::read_to_string(&key_file)
        .with_context(|| format!("DOME_SIGNING_KEY_FILE: reading {key_file}"))?;
    let key = MemberKeypair::from_base64_seed(seed.trim()).map_err(|e| {
        anyhow!("DOME_SIGNING_KEY_FILE: {key_file} is not a base64 ed25519 seed: {e}")
    })?;
    let bus = BusClient::new(config.bus_rpc.clone(), BUS_TIMEOUT)
        .map_err(|e| anyhow!("DOME_BUS_RPC: {e}"))?;
    Ok(Some(Replication {
        member,
        bus,
        key: Arc::new(key),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    startup::init_tracing(config.log_format);
    let replication = replication_config(&config)?;
    // The same assembly as the tmf-api function: same settings, same meaning.
    let store = startup::open_store(&config).await?;
    let mut state = startup::app_state(&config, Arc::clone(&store)).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding DOME_LISTEN {}", config.listen))?;
    let addr = listener.local_addr()?;
    if state.public_base_url.is_none() {
        state.public_base_url = Some(default_base_url(addr));
    }
    if let Some(replication) = replication {
        start_workers(Arc::clone(&store), replication).await?;
    }
    tracing::info!(%addr, "listening");
    if let Some(file) = &config.addr_file {
        std::fs::write(file, addr.to_string())
            .with_context(|| format!("writing DOME_ADDR_FILE {}", file.display()))?;
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    Ok(())
}

/// Starts the publisher and the relay (which drives the replicator) as tasks. They run until
/// the process ends: every step they take is durable or repeatable, so stopping them at any
/// point loses nothing.
async fn start_workers(
    store: Arc<dyn CatalogStore>,
    replication: Replication,
) -> anyhow::Result<()> {
    let Replication { member, bus, key } = replication;
    let publisher = Publisher::new(
        Arc::clone(&store),
        bus.clone(),
        Arc::clone(&key),
        PublisherConfig::new(member.clone())
            .with_bundle(dome_replication_aws::env::publish_bundle()?),
    );
    tokio::spawn(async move {
        loop {
            match publisher.run(None, false).await {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "publisher stopped; restarting"),
            }
            tokio::time::sleep(LEASE_RETRY).await;
        }
    });
    let fetcher = HttpFetcher::new(member.clone(), key, FETCH_TIMEOUT)
        .map_err(|e| anyhow!("fetch client: {e}"))?;
    let queue_url = dome_replication_aws::env::optional("DOME_REPLICATION_QUEUE_URL");
    let consumer_config = match &queue_url {
        Some(_) => Some(dome_replication_aws::config_from_env()?),
        None => None,
    };
    let replicator = Arc::new(Replicator::new(
        Arc::clone(&store),
        Arc::new(fetcher),
        ReplicatorConfig {
            max_attempts: consumer_config
                .as_ref()
                .map_or(ReplicatorConfig::default().max_attempts, |c| c.max_attempts),
            ..ReplicatorConfig::default()
        },
    ));
    let handoff: Arc<dyn Handoff> = match (queue_url, consumer_config) {
        (Some(url), Some(config)) => {
            let dlq_url = dome_replication_aws::env::required("DOME_REPLICATION_DLQ_URL")?;
            let visibility = dome_replication_aws::visibility_from_env()?;
            let queue = SqsQueue::connect(url).await;
            let consumer = SqsReplicator::new(replicator, SqsQueue::connect(dlq_url).await, config);
            let polled = queue.clone();
            tokio::spawn(async move {
                dome_replication_aws::poll_forever(&consumer, &polled, visibility).await;
            });
            tracing::info!(queue = %queue.queue_url(), "replicating through SQS");
            Arc::new(SqsHandoff::new(queue))
        }
        _ => Arc::new(DirectHandoff::new(replicator)),
    };
    let holder = format!("dome-marketplace/{}", std::process::id());
    let relay = Relay::new(store, bus, handoff, RelayConfig::new(member, holder));
    tokio::spawn(async move {
        loop {
            match relay.run(None).await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "relay stopped; restarting"),
            }
            tokio::time::sleep(LEASE_RETRY).await;
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}
