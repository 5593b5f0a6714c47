//! `relay`: follows the bus for this marketplace and hands the events meant for it to the
//! SQS FIFO replication queue. Under Lambda (`AWS_LAMBDA_RUNTIME_API` set) each scheduled
//! invocation follows the chain for its time budget and exits; the next one resumes from the
//! checkpoint. Otherwise it follows forever.
//!
//! After each Lambda invocation it prints the relay lag (`Dome/RelayLagHeights`, dimension
//! `Member`) as a CloudWatch embedded-metric line on stdout; the stack's RelayLag alarm
//! watches it (names shared through infra/functions.json, `metrics.relay_lag`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use dome_bus_client::BusClient;
use dome_catalog_store::{records, CatalogStore};
use dome_events::MemberId;
use dome_queue_sqs::SqsQueue;
use dome_replication::lease::{read_checkpoint, LeaseError};
use dome_replication::relay::{Relay, RelayConfig, RelayError};
use dome_replication_aws::{env, metrics, runtime, SqsHandoff};
use lambda_runtime::{service_fn, LambdaEvent};

/// The variables this binary reads: exactly the `relay` entry of infra/functions.json.
pub const ENV_VARS: &[&str] = &[
    "DOME_TABLE",
    "DOME_MEMBER_ID",
    "DOME_BUS_RPC",
    "DOME_REPLICATION_QUEUE_URL",
    "DOME_TIME_BUDGET_MS",
    "DOME_LOG_FORMAT",
    "RUST_LOG",
];

const BUS_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause of the local worker before trying the lease again.
const LEASE_RETRY: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    let store = runtime::table_store().await.context("DOME_TABLE")?;
    let member = env::member_id()?;
    let bus = BusClient::new(env::bus_rpc("DOME_BUS_RPC")?, BUS_TIMEOUT)
        .map_err(|e| anyhow!("DOME_BUS_RPC: {e}"))?;
    let queue = SqsQueue::connect(env::required("DOME_REPLICATION_QUEUE_URL")?).await;
    let budget = env::millis("DOME_TIME_BUDGET_MS", Duration::from_secs(50))?;
    let handoff = Arc::new(SqsHandoff::new(queue));
    // The lease holder names the invocation or the process.
    let relay = |holder: String| {
        Relay::new(
            Arc::clone(&store),
            bus.clone(),
            handoff.clone(),
            RelayConfig::new(member.clone(), holder),
        )
    };

    if env::under_lambda() {
        let relay = &relay;
        let (store, bus, member) = (&store, &bus, &member);
        return lambda_runtime::run(service_fn(
            move |event: LambdaEvent<serde_json::Value>| async move {
                let deadline = runtime::invocation_deadline(budget, event.context.deadline);
                let relay = relay(format!("relay/{}", event.context.request_id));
                let outcome = relay.run(Some(deadline)).await;
                // Reported after every run, also a failed one or one that found the lease
                // held: the alarm treats a missing report as breaching, so only a relay
                // that cannot see the bus or its store stays silent.
                let checkpoint = match &outcome {
                    Ok(report) => Some(report.checkpoint),
                    Err(_) => stored_checkpoint(&**store).await,
                };
                if let Some(checkpoint) = checkpoint {
                    report_lag(bus, member, checkpoint).await;
                }
                match outcome {
                    Ok(report) => tracing::info!(
                        checkpoint = report.checkpoint,
                        handed_off = report.handed_off,
                        "relay run done"
                    ),
                    Err(RelayError::Lease(LeaseError::Held { .. })) => {
                        tracing::info!("another relay holds the lease");
                    }
                    Err(e) => return Err(lambda_runtime::Error::from(e.to_string())),
                }
                Ok::<_, lambda_runtime::Error>(())
            },
        ))
        .await
        .map_err(|e| anyhow!("lambda runtime: {e}"));
    }

    tracing::info!("relaying as a local worker");
    let relay = relay(format!("relay/{}", std::process::id()));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            result = relay.run(None) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "relay stopped; restarting");
                }
                tokio::time::sleep(LEASE_RETRY).await;
            }
        }
    }
    Ok(())
}

/// The relay checkpoint as stored (the progress of whichever relay holds the lease).
async fn stored_checkpoint(store: &dyn CatalogStore) -> Option<u64> {
    match read_checkpoint(store, records::RELAY_CHECKPOINT).await {
        Ok((checkpoint, _)) => Some(checkpoint),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the relay checkpoint; lag not reported");
            None
        }
    }
}

/// Prints the relay lag (bus height - checkpoint) as one CloudWatch embedded-metric line on
/// stdout, which Lambda sends to the function's log group; logs go to stderr, so the line
/// is never interleaved with them.
async fn report_lag(bus: &BusClient, member: &MemberId, checkpoint: u64) {
    match bus.latest_height().await {
        Ok(height) => {
            let lag = metrics::relay_lag(height, checkpoint);
            println!(
                "{}",
                metrics::relay_lag_line(member.as_str(), lag, dome_replication::now_ms())
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the bus height; lag not reported"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_vars_are_those_of_infra_functions_json() {
        if let Err(e) = dome_functions_manifest::check_env("relay", super::ENV_VARS, &[]) {
            panic!("{e}");
        }
    }
}
