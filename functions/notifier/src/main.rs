//! `notifier`: delivers tmf-api's queued hub notifications. Under Lambda
//! (`AWS_LAMBDA_RUNTIME_API` set) it handles SQS events; otherwise it polls
//! `DOME_NOTIFY_QUEUE_URL` until Ctrl-C. Environment: see the crate README.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aws_lambda_events::event::sqs::SqsEvent;
use dome_notifier::{handle_sqs_event, poll_once, Notifier, PollSettings};
use dome_queue_sqs::SqsQueue;
use dome_tmf::QueryLimits;
use dome_tmf_api::notify::HttpTransport;
use lambda_runtime::{service_fn, LambdaEvent};
use tracing_subscriber::EnvFilter;

/// The variables this function reads on Lambda; `infra/functions.json`, from which the CDK
/// app builds the function's environment, lists exactly these (checked by a test).
pub const ENV_VARS: &[&str] = &["DOME_TABLE", "DOME_CALLBACK_ALLOW_PRIVATE"];
/// Read only by the local polling mode.
pub const LOCAL_ENV_VARS: &[&str] = &[
    "DOME_NOTIFY_QUEUE_URL",
    "DOME_NOTIFY_WAIT_SECONDS",
    "DOME_NOTIFY_VISIBILITY_SECONDS",
];

/// Timeout of one callback POST; keep the queue's visibility timeout (and the Lambda
/// timeout) above it.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn flag(name: &str, default: bool) -> anyhow::Result<bool> {
    match env(name).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(anyhow!("{name}: {other:?}: expected true or false")),
    }
}

fn seconds(name: &str, default: i32, max: i32) -> anyhow::Result<i32> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| anyhow!("{name}: {v:?} is not a number of seconds from 0 to {max}")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let lambda = env("AWS_LAMBDA_RUNTIME_API").is_some();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if lambda {
        builder.json().flatten_event(true).with_ansi(false).init();
    } else {
        builder.init();
    }

    // Callbacks are user-supplied URLs: on AWS, private addresses are refused unless
    // explicitly allowed.
    let allow_private = flag("DOME_CALLBACK_ALLOW_PRIVATE", !lambda)?;
    let transport = Arc::new(HttpTransport::with_private_callbacks(
        DELIVERY_TIMEOUT,
        allow_private,
    ));
    env("DOME_TABLE").context("DOME_TABLE: the catalogue's DynamoDB table is required")?;
    let store = dome_store_dynamodb::DynamoStore::from_env()
        .await
        .context("configuring the DynamoDB store")?;
    let notifier = Notifier::new(Arc::new(store), transport, QueryLimits::default());

    if lambda {
        tracing::info!(allow_private, "running under the Lambda runtime");
        let notifier = &notifier;
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(handle_sqs_event(notifier, event.payload).await)
        }))
        .await
        .map_err(|e| anyhow!("lambda runtime: {e}"));
    }

    let url = env("DOME_NOTIFY_QUEUE_URL")
        .context("DOME_NOTIFY_QUEUE_URL: the queue to poll is required outside Lambda")?;
    let settings = PollSettings {
        wait_seconds: seconds("DOME_NOTIFY_WAIT_SECONDS", 20, 20)?,
        visibility_timeout_seconds: seconds("DOME_NOTIFY_VISIBILITY_SECONDS", 60, 43_200)?,
    };
    let queue = SqsQueue::connect(url.clone()).await;
    tracing::info!(queue = %url, allow_private, "polling");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            outcome = poll_once(&notifier, &queue, settings) => match outcome {
                Ok(o) if o.received > 0 => tracing::debug!(?o, "polled"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "polling failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_vars_are_those_of_infra_functions_json() {
        if let Err(e) =
            dome_functions_manifest::check_env("notifier", super::ENV_VARS, &["RUST_LOG"])
        {
            panic!("{e}");
        }
        let deployed = dome_functions_manifest::deployed_env("notifier").expect("notifier");
        for name in super::LOCAL_ENV_VARS {
            assert!(!deployed.contains(*name), "{name} is for local runs only");
        }
    }
}
