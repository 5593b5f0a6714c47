//! `publisher`: announces the marketplace's outbox on the bus. Under Lambda
//! (`AWS_LAMBDA_RUNTIME_API` set) every invocation (a DynamoDB stream batch or a schedule:
//! the payload is only a wake-up) publishes until nothing is left or its time budget is
//! spent; otherwise it runs as a long-lived worker. Either way under the publisher lease.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use dome_bus_client::BusClient;
use dome_replication::lease::LeaseError;
use dome_replication::publisher::{Publisher, PublisherConfig};
use dome_replication_aws::workers::{publish_with_lease, WorkerError};
use dome_replication_aws::{env, runtime};
use lambda_runtime::{service_fn, LambdaEvent};

/// The variables this binary reads on AWS: exactly the `publisher` entry of
/// infra/functions.json.
pub const ENV_VARS: &[&str] = &[
    "DOME_TABLE",
    "DOME_MEMBER_ID",
    "DOME_BUS_RPC",
    "DOME_SIGNING_KEY_SECRET",
    "DOME_TIME_BUDGET_MS",
    "DOME_PUBLISH_BUNDLE",
    "DOME_LOG_FORMAT",
    "RUST_LOG",
];
/// Read outside Lambda only: the key file instead of the secret.
pub const LOCAL_ENV_VARS: &[&str] = &["DOME_SIGNING_KEY_FILE"];

const BUS_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause of the local worker when another publisher holds the lease.
const LEASE_RETRY: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    let store = runtime::table_store().await.context("DOME_TABLE")?;
    let member = env::member_id()?;
    let bus = BusClient::new(env::bus_rpc("DOME_BUS_RPC")?, BUS_TIMEOUT)
        .map_err(|e| anyhow!("DOME_BUS_RPC: {e}"))?;
    let key = dome_replication_aws::load_signing_key().await?;
    let budget = env::millis("DOME_TIME_BUDGET_MS", Duration::from_secs(50))?;
    let publisher = Publisher::new(
        Arc::clone(&store),
        bus,
        Arc::new(key),
        PublisherConfig::new(member).with_bundle(env::publish_bundle()?),
    );

    if env::under_lambda() {
        let (store, publisher) = (&store, &publisher);
        return lambda_runtime::run(service_fn(
            move |event: LambdaEvent<serde_json::Value>| async move {
                let deadline = runtime::invocation_deadline(budget, event.context.deadline);
                let holder = format!("publisher/{}", event.context.request_id);
                match publish_with_lease(
                    Arc::clone(store),
                    publisher,
                    &holder,
                    Some(deadline),
                    true,
                )
                .await
                {
                    Ok(()) => {}
                    // The running invocation publishes this row too.
                    Err(WorkerError::Lease(LeaseError::Held { .. })) => {
                        tracing::info!("another publisher holds the lease");
                    }
                    Err(e) => return Err(lambda_runtime::Error::from(e.to_string())),
                }
                Ok::<_, lambda_runtime::Error>(())
            },
        ))
        .await
        .map_err(|e| anyhow!("lambda runtime: {e}"));
    }

    let holder = format!("publisher/{}", std::process::id());
    tracing::info!("publishing as a local worker");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            result = publish_with_lease(Arc::clone(&store), &publisher, &holder, None, false) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "publisher stopped; restarting");
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
        if let Err(e) = dome_functions_manifest::check_env("publisher", super::ENV_VARS, &[]) {
            panic!("{e}");
        }
    }
}
