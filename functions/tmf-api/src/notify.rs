//! Delivery of TMF notifications to the listeners registered on `/hub`.
//!
//! The handlers hand every event to a [`NotificationSink`] once the change is stored. The
//! local sink, [`InProcessNotifier`], runs a worker task that matches the event against the
//! registrations (their TMF630 query) and POSTs it to each matching callback, retrying with
//! exponential backoff until the listener answers 2xx: at-least-once delivery for as long as
//! the process runs. On AWS the sink is meant to be a queue (SQS) feeding a delivery
//! function that uses the same [`deliver_with_retries`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dome_catalog_store::CatalogStore;
use dome_tmf::{HubQuery, QueryLimits};
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

/// Where the handlers put events. `publish` must not wait for the deliveries.
#[async_trait]
pub trait NotificationSink: Send + Sync + 'static {
    /// `event` is the full TMF notification body (`eventId`, `eventType`, `event`...).
    async fn publish(&self, event: Value);
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryFailure {
    /// Worth trying again (network error, timeout, 5xx, 408, 429).
    pub retryable: bool,
    pub reason: String,
}

/// Sends one notification to one callback.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn deliver(&self, callback: &str, event: &Value) -> Result<(), DeliveryFailure>;
}

/// POSTs JSON over HTTP(S); redirects are not followed.
///
/// The HTTP client is built at the first delivery, not at start-up: building it loads the
/// system's root certificates (tens of milliseconds), which most processes (a Lambda
/// invocation, a catalogue without listeners) never need.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    timeout: Duration,
    client: Arc<tokio::sync::OnceCell<reqwest::Client>>,
}

impl HttpTransport {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            timeout,
            client: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    async fn client(&self) -> Result<&reqwest::Client, DeliveryFailure> {
        let timeout = self.timeout;
        self.client
            .get_or_try_init(|| async move {
                // Reads certificate files: off the runtime's worker threads.
                tokio::task::spawn_blocking(move || {
                    reqwest::Client::builder()
                        .timeout(timeout)
                        .redirect(reqwest::redirect::Policy::none())
                        .user_agent(concat!("dome-tmf-api/", env!("CARGO_PKG_VERSION")))
                        .build()
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|built| built)
                .map_err(|e| DeliveryFailure {
                    retryable: true,
                    reason: format!("HTTP client: {e}"),
                })
            })
            .await
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn deliver(&self, callback: &str, event: &Value) -> Result<(), DeliveryFailure> {
        let body = serde_json::to_vec(event).map_err(|e| DeliveryFailure {
            retryable: false,
            reason: format!("event not serialisable: {e}"),
        })?;
        let response = self
            .client()
            .await?
            .post(callback)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryFailure {
                retryable: true,
                reason: format!("request failed: {e}"),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = status.as_u16();
        Err(DeliveryFailure {
            retryable: status.is_server_error() || code == 408 || code == 429,
            reason: format!("listener answered {status}"),
        })
    }
}

/// How hard a delivery is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (the first one included).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further failure.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts over about 4 minutes.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (`attempt` counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Tries one delivery until it succeeds, fails permanently or runs out of attempts. Returns
/// the number of attempts made and the final failure, if any.
pub async fn deliver_with_retries(
    transport: &dyn Transport,
    policy: &RetryPolicy,
    callback: &str,
    event: &Value,
) -> (u32, Result<(), DeliveryFailure>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match transport.deliver(callback, event).await {
            Ok(()) => return (attempt, Ok(())),
            Err(failure) if !failure.retryable || attempt >= policy.max_attempts => {
                return (attempt, Err(failure));
            }
            Err(failure) => {
                let wait = policy.backoff(attempt);
                tracing::debug!(callback, attempt, reason = %failure, ?wait, "delivery failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The local [`NotificationSink`]: an in-process queue and worker.
#[derive(Clone)]
pub struct InProcessNotifier {
    queue: mpsc::UnboundedSender<Value>,
}

/// Deliveries in flight at once; further ones wait for a slot (in memory), so a slow
/// listener delays other deliveries but never the requests that publish events.
const MAX_CONCURRENT_DELIVERIES: usize = 64;
/// Most events matched against one read of the registrations.
const EVENT_BATCH: usize = 256;

impl InProcessNotifier {
    /// Starts the worker on the current tokio runtime. It reads the registrations from
    /// `store` for every event, so registrations take effect immediately.
    pub fn start(
        store: Arc<dyn CatalogStore>,
        transport: Arc<dyn Transport>,
        policy: RetryPolicy,
        limits: QueryLimits,
    ) -> Self {
        let (queue, mut events) = mpsc::unbounded_channel::<Value>();
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES));
        tokio::spawn(async move {
            // Events are taken in batches and the registrations read once per batch: under a
            // burst of writes one store read serves many events, so the queue cannot grow
            // faster than it drains (it did, by hundreds of MiB, with one read per event).
            let mut batch = Vec::with_capacity(EVENT_BATCH);
            while events.recv_many(&mut batch, EVENT_BATCH).await > 0 {
                let Some(subscriptions) = load_subscriptions(store.as_ref(), &policy).await else {
                    batch.clear();
                    continue;
                };
                let queries: Vec<_> = subscriptions
                    .into_iter()
                    .filter_map(|subscription| {
                        let query = subscription.query.as_deref().unwrap_or("");
                        match HubQuery::parse(query, &limits) {
                            Ok(q) => Some((subscription, q)),
                            Err(e) => {
                                tracing::warn!(subscription = %subscription.id, error = %e, "unusable hub query");
                                None
                            }
                        }
                    })
                    .collect();
                for event in batch.drain(..) {
                    let event = Arc::new(event);
                    for (subscription, query) in &queries {
                        if query.matches(&event) {
                            tokio::spawn(deliver(
                                Arc::clone(&slots),
                                Arc::clone(&transport),
                                policy,
                                subscription.clone(),
                                Arc::clone(&event),
                            ));
                        }
                    }
                }
            }
        });
        Self { queue }
    }
}

async fn deliver(
    slots: Arc<Semaphore>,
    transport: Arc<dyn Transport>,
    policy: RetryPolicy,
    subscription: dome_catalog_store::Subscription,
    event: Arc<Value>,
) {
    let Ok(_permit) = slots.acquire_owned().await else {
        return;
    };
    let event_type = event.get("eventType").and_then(Value::as_str).unwrap_or("");
    let (attempts, result) =
        deliver_with_retries(transport.as_ref(), &policy, &subscription.callback, &event).await;
    match result {
        Ok(()) => tracing::info!(
            subscription = %subscription.id,
            callback = %subscription.callback,
            event_type,
            attempts,
            "notification delivered"
        ),
        Err(failure) => tracing::warn!(
            subscription = %subscription.id,
            callback = %subscription.callback,
            event_type,
            attempts,
            reason = %failure,
            "notification not delivered"
        ),
    }
}

async fn load_subscriptions(
    store: &dyn CatalogStore,
    policy: &RetryPolicy,
) -> Option<Vec<dome_catalog_store::Subscription>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.subscriptions().await {
            Ok(s) => return Some(s),
            Err(e) if attempt >= policy.max_attempts => {
                tracing::error!(error = %e, "cannot read hub registrations; event not delivered");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot read hub registrations; retrying");
                tokio::time::sleep(policy.backoff(attempt)).await;
            }
        }
    }
}

#[async_trait]
impl NotificationSink for InProcessNotifier {
    async fn publish(&self, event: Value) {
        if self.queue.send(event).is_err() {
            tracing::error!("notification worker stopped; event dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(350));
        assert_eq!(p.backoff(200), Duration::from_millis(350));
    }

    /// Fails the first `failures` attempts with the given retryability.
    struct Flaky {
        failures: u32,
        retryable: bool,
        calls: Mutex<u32>,
    }

    #[async_trait]
    impl Transport for Flaky {
        async fn deliver(&self, _: &str, _: &Value) -> Result<(), DeliveryFailure> {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            *calls += 1;
            if *calls <= self.failures {
                Err(DeliveryFailure {
                    retryable: self.retryable,
                    reason: "nope".into(),
                })
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn retries_until_success_or_permanent_failure() {
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let event = serde_json::json!({});
        let flaky = Flaky {
            failures: 2,
            retryable: true,
            calls: Mutex::new(0),
        };
        let (attempts, result) = deliver_with_retries(&flaky, &policy, "http://x", &event).await;
        assert_eq!((attempts, result.is_ok()), (3, true));
        let down = Flaky {
            failures: 10,
            retryable: true,
            calls: Mutex::new(0),
        };
        let (attempts, result) = deliver_with_retries(&down, &policy, "http://x", &event).await;
        assert_eq!((attempts, result.is_err()), (4, true));
        let refused = Flaky {
            failures: 10,
            retryable: false,
            calls: Mutex::new(0),
        };
        let (attempts, result) = deliver_with_retries(&refused, &policy, "http://x", &event).await;
        assert_eq!((attempts, result.is_err()), (1, true));
    }
}
