//! The notifier: delivers the hub notifications tmf-api queued on SQS
//! ([`dome_tmf_api::notify::SqsNotificationSink`]) to the callbacks registered on `/hub`.
//!
//! For each message it reads the registrations from the catalogue store, matches the event
//! against their queries ([`dome_tmf_api::notify::matching_subscriptions`], the same code as
//! tmf-api's in-process worker) and POSTs it to every matching callback once. If any
//! delivery fails, the whole message fails: SQS hands it out again after its visibility
//! timeout (to every matching callback, so listeners may see an event twice and dedupe on
//! its `eventId`, also sent as the `X-Event-Id` header), and after the queue's
//! `maxReceiveCount` moves it to the dead-letter queue.
//!
//! Two ways to run: an SQS-triggered Lambda function ([`handle_sqs_event`], with
//! `ReportBatchItemFailures`: only the failed messages return to the queue), or a polling
//! loop ([`poll_once`]) for local runs and tests.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dome_catalog_store::CatalogStore;
use dome_queue_sqs::{QueueError, SqsQueue};
use dome_tmf::QueryLimits;
use dome_tmf_api::notify::{
    hub_queries, matching_subscriptions, QueuedNotification, QueuedNotificationError, Transport,
};
use serde_json::Value;

/// Why a message was not (fully) delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("unreadable message: {0}")]
    Message(#[from] QueuedNotificationError),
    #[error("reading the hub registrations: {0}")]
    Store(#[from] dome_catalog_store::StoreError),
    #[error("{} of {matched} deliveries failed: {}", failed.len(), failed.join("; "))]
    Delivery { matched: usize, failed: Vec<String> },
}

/// Delivers queued notifications.
#[derive(Clone)]
pub struct Notifier {
    store: Arc<dyn CatalogStore>,
    transport: Arc<dyn Transport>,
    limits: QueryLimits,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn CatalogStore>,
        transport: Arc<dyn Transport>,
        limits: QueryLimits,
    ) -> Self {
        Self {
            store,
            transport,
            limits,
        }
    }

    /// Delivers the notification in one queue message body to every matching callback, all
    /// at once; returns how many callbacks got it.
    pub async fn handle(&self, body: &str) -> Result<usize, NotifyError> {
        let event = QueuedNotification::decode(body)?
            .into_event(self.store.as_ref())
            .await?;
        let subscriptions = self.store.subscriptions().await?;
        let queries = hub_queries(subscriptions, &self.limits);
        let targets: Vec<_> = matching_subscriptions(&queries, &event).collect();
        let deliveries = targets.iter().map(|subscription| {
            let transport = Arc::clone(&self.transport);
            let event: &Value = &event;
            async move {
                transport
                    .deliver(&subscription.callback, event)
                    .await
                    .map_err(|failure| {
                        format!(
                            "subscription {} ({}): {failure}",
                            subscription.id, subscription.callback
                        )
                    })
            }
        });
        let failed: Vec<String> = futures_util::future::join_all(deliveries)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        let event_id = event.get("eventId").and_then(Value::as_str).unwrap_or("");
        if failed.is_empty() {
            tracing::info!(
                event_id,
                delivered = targets.len(),
                "notification delivered"
            );
            Ok(targets.len())
        } else {
            Err(NotifyError::Delivery {
                matched: targets.len(),
                failed,
            })
        }
    }
}

/// The Lambda handler: every record is handled concurrently; the ids of the failed ones are
/// reported so that only they return to the queue (needs `ReportBatchItemFailures` on the
/// event source mapping).
pub async fn handle_sqs_event(notifier: &Notifier, event: SqsEvent) -> SqsBatchResponse {
    let handled = event.records.iter().map(|record| async move {
        let message_id = record.message_id.clone().unwrap_or_default();
        let result = match &record.body {
            Some(body) => notifier.handle(body).await,
            None => Err(NotifyError::Message(QueuedNotificationError::Malformed(
                "no body".into(),
            ))),
        };
        (message_id, result)
    });
    let mut response = SqsBatchResponse::default();
    for (message_id, result) in futures_util::future::join_all(handled).await {
        if let Err(e) = result {
            tracing::warn!(%message_id, error = %e, "notification not delivered; back to the queue");
            response.add_failure(message_id);
        }
    }
    response
}

/// Settings of the polling loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    /// Long-polling wait, 0 to 20 s.
    pub wait_seconds: i32,
    /// How long a received message stays hidden; a failed one is retried after it.
    pub visibility_timeout_seconds: i32,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            wait_seconds: 20,
            visibility_timeout_seconds: 60,
        }
    }
}

/// What one [`poll_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    pub received: usize,
    pub delivered: usize,
    pub failed: usize,
}

/// Receives up to 10 messages, handles them and deletes the delivered ones; failed ones are
/// left to reappear after the visibility timeout (and to reach the dead-letter queue).
pub async fn poll_once(
    notifier: &Notifier,
    queue: &SqsQueue,
    settings: PollSettings,
) -> Result<PollOutcome, QueueError> {
    let messages = queue
        .receive(
            10,
            settings.wait_seconds,
            settings.visibility_timeout_seconds,
        )
        .await?;
    let handled = messages
        .iter()
        .map(|message| async move { (message, notifier.handle(&message.body).await) });
    let mut outcome = PollOutcome {
        received: messages.len(),
        ..PollOutcome::default()
    };
    for (message, result) in futures_util::future::join_all(handled).await {
        match result {
            Ok(_) => {
                queue.delete(&message.receipt_handle).await?;
                outcome.delivered += 1;
            }
            Err(e) => {
                tracing::warn!(
                    message_id = %message.message_id,
                    receive_count = message.receive_count,
                    error = %e,
                    "notification not delivered; retried after the visibility timeout"
                );
                outcome.failed += 1;
            }
        }
    }
    Ok(outcome)
}
