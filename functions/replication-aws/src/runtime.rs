//! What the three function binaries share: logging, time budgets, the local/Lambda switch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dome_catalog_store::{CatalogStore, StoreError};

use tracing_subscriber::EnvFilter;

/// Time kept back from the Lambda deadline to release leases and answer the runtime.
const LAMBDA_MARGIN: Duration = Duration::from_secs(2);

/// Logs to stderr: JSON with `DOME_LOG_FORMAT=json` (CloudWatch Logs Insights), text
/// otherwise; filter from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if crate::env::optional("DOME_LOG_FORMAT").as_deref() == Some("json") {
        builder.json().flatten_event(true).with_ansi(false).init();
    } else {
        builder.init();
    }
}

/// When an invocation must stop: after `budget`, and no later than the Lambda deadline
/// (`deadline_ms`, milliseconds since the Unix epoch) less a margin.
pub fn invocation_deadline(budget: Duration, deadline_ms: u64) -> Instant {
    let now = Instant::now();
    let left_ms = deadline_ms.saturating_sub(dome_replication::now_ms());
    let lambda_left = Duration::from_millis(left_ms).saturating_sub(LAMBDA_MARGIN);
    now + budget.min(lambda_left)
}

/// The marketplace's DynamoDB table (`DOME_TABLE`, SDK settings from the environment) as
/// the catalogue store every function works on.
pub async fn table_store() -> Result<Arc<dyn CatalogStore>, StoreError> {
    Ok(Arc::new(
        dome_store_dynamodb::DynamoStore::from_env().await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_the_budget_or_the_lambda_deadline_less_a_margin() {
        let now_ms = dome_replication::now_ms();
        let soon = invocation_deadline(Duration::from_secs(50), now_ms + 10_000);
        let left = soon.saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(8) && left > Duration::from_secs(7),
            "{left:?}"
        );
        let budget = invocation_deadline(Duration::from_secs(3), now_ms + 60_000);
        assert!(budget.saturating_duration_since(Instant::now()) <= Duration::from_secs(3));
        let past = invocation_deadline(Duration::from_secs(3), now_ms.saturating_sub(1));
        assert!(past <= Instant::now());
    }
}
