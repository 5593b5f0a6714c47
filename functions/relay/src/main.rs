//! `relay`: follows the bus for this marketplace and hands the events meant for it to the
//! SQS FIFO replication queue. Under Lambda (`AWS_LAMBDA_RUNTIME_API` set) each scheduled
//! invocation follows the chain for its time budget and exits; the next one resumes from the
//! checkpoint. Otherwise it follows forever.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use dome_bus_client::BusClient;
use dome_catalog_store::CatalogStore;
use dome_events::MemberId;
use dome_queue_sqs::SqsQueue;
use dome_replication::lease::LeaseError;
use dome_replication::relay::{Relay, RelayConfig, RelayError};
use dome_replication_aws::{env, runtime, SqsHandoff};
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
    let store: Arc<dyn CatalogStore> = Arc::new(
        dome_store_dynamodb::DynamoStore::from_env()
            .await
            .context("DOME_TABLE")?,
    );
    let member = MemberId::new(env::required("DOME_MEMBER_ID")?)
        .map_err(|e| anyhow!("DOME_MEMBER_ID: {e}"))?;
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
        return lambda_runtime::run(service_fn(
            move |event: LambdaEvent<serde_json::Value>| async move {
                let deadline = runtime::invocation_deadline(budget, event.context.deadline);
                let relay = relay(format!("relay/{}", event.context.request_id));
                match relay.run(Some(deadline)).await {
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

#[cfg(test)]
mod tests {
    #[test]
    fn env_vars_are_those_of_infra_functions_json() {
        let text = include_str!("../../../infra/functions.json");
        let file: serde_json::Value = serde_json::from_str(text).expect("functions.json parses");
        let mut listed: Vec<&str> = file["functions"]["relay"]["env"]
            .as_object()
            .expect("relay env")
            .keys()
            .map(String::as_str)
            .collect();
        let mut ours = super::ENV_VARS.to_vec();
        listed.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, listed);
    }
}
