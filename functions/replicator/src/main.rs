//! `replicator`: consumes the SQS FIFO replication queue and replicates each announced
//! version into the marketplace's store. Under Lambda (`AWS_LAMBDA_RUNTIME_API` set) it
//! handles SQS events with partial batch failures; otherwise it polls
//! `DOME_REPLICATION_QUEUE_URL` until Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aws_lambda_events::event::sqs::SqsEvent;
use dome_queue_sqs::SqsQueue;
use dome_replication::fetch::HttpFetcher;
use dome_replication::replicator::{Replicator, ReplicatorConfig};
use dome_replication_aws::{consumer, env, runtime, SqsReplicator};
use lambda_runtime::{service_fn, LambdaEvent};

/// The variables this binary reads on AWS: the `replicator` entry of infra/functions.json
/// but `DOME_BUS_RPC`, which the replicator does not need (the origin checks the bus).
pub const ENV_VARS: &[&str] = &[
    "DOME_TABLE",
    "DOME_MEMBER_ID",
    "DOME_SIGNING_KEY_SECRET",
    "DOME_REPLICATION_DLQ_URL",
    "DOME_MAX_ATTEMPTS",
    "DOME_LOG_FORMAT",
    "RUST_LOG",
];
/// Read outside Lambda only (the polling loop, the key file, shorter delays for tests).
pub const LOCAL_ENV_VARS: &[&str] = &[
    "DOME_SIGNING_KEY_FILE",
    "DOME_REPLICATION_QUEUE_URL",
    consumer::VISIBILITY_ENV,
    consumer::BACKOFF_CAP_ENV,
];

/// Timeout of one fetch from an origin; keep the queue's visibility timeout above it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    let store = runtime::table_store().await.context("DOME_TABLE")?;
    let member = env::member_id()?;
    let key = Arc::new(dome_replication_aws::load_signing_key().await?);
    let dlq = SqsQueue::connect(env::required("DOME_REPLICATION_DLQ_URL")?).await;
    let config = consumer::config_from_env()?;
    let fetcher =
        HttpFetcher::new(member, key, FETCH_TIMEOUT).map_err(|e| anyhow!("fetch client: {e}"))?;
    let replicator = Arc::new(Replicator::new(
        store,
        Arc::new(fetcher),
        ReplicatorConfig {
            max_attempts: config.max_attempts,
            ..ReplicatorConfig::default()
        },
    ));
    let consumer = SqsReplicator::new(replicator, dlq, config);

    if env::under_lambda() {
        let consumer = &consumer;
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(
                dome_replication_aws::handle_sqs_event(consumer, event.payload).await,
            )
        }))
        .await
        .map_err(|e| anyhow!("lambda runtime: {e}"));
    }

    let queue = SqsQueue::connect(
        env::required("DOME_REPLICATION_QUEUE_URL").context("the queue to poll outside Lambda")?,
    )
    .await;
    let visibility = consumer::visibility_from_env()?;
    tracing::info!(queue = %queue.queue_url(), "polling");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = dome_replication_aws::poll_forever(&consumer, &queue, visibility) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_vars_are_those_of_infra_functions_json() {
        if let Err(e) =
            dome_functions_manifest::check_env("replicator", super::ENV_VARS, &["DOME_BUS_RPC"])
        {
            panic!("{e}");
        }
        for name in super::LOCAL_ENV_VARS {
            assert!(
                !super::ENV_VARS.contains(name),
                "{name} is for local runs only"
            );
        }
    }
}
