//! The replicator's consumer of the SQS FIFO replication queue.
//!
//! One batch at a time (up to 10 messages from SQS, a Lambda event or a polling loop):
//!
//! 1. each body is parsed as a [`Delivery`]; an unparsable one goes straight to the
//!    dead-letter queue with its reason;
//! 2. per entity only the newest version is attempted ([`coalesce`]); older ones are audited
//!    as superseded and settled;
//! 3. [`Replicator::attempt`] with the message's receive count as the attempt number:
//!    settled (applied, skipped, rejected) → done; retryable → if the message has been
//!    received `max_attempts` times, dead-lettered (store and DLQ, with the reason), else
//!    made visible again after an exponential backoff so that SQS redelivers it.
//!
//! A message that is not settled blocks its FIFO group (its entity) until it is, which keeps
//! an entity's versions in bus order. The queue's redrive policy is only a backstop for
//! consumers that crash on a message.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use dome_catalog_store::Decision;
use dome_queue_sqs::{
    dedup_id, fifo_group_id, OutgoingMessage, QueueError, ReceivedMessage, SqsQueue,
};
use dome_replication::event::{coalesce, Delivery};
use dome_replication::replicator::{Attempt, Replicator};
use futures_util::StreamExt;

/// Name of the DLQ message attribute that says why the message was given up on.
pub const REASON_ATTRIBUTE: &str = "reason";
/// Group of unparsable messages that arrive without a group (standard queues).
const UNPARSABLE_GROUP: &str = "unparsable";
/// Longest reason put in a message attribute; the store keeps the full text.
const MAX_REASON_CHARS: usize = 1000;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Receives of one message before it is given up on.
    pub max_attempts: u32,
    /// Longest visibility delay before a retry, in seconds; the delay is
    /// `min(2^receive_count, backoff_cap_seconds)`.
    pub backoff_cap_seconds: u32,
    /// Entities attempted at once within a batch.
    pub concurrency: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_attempts: 5,
            backoff_cap_seconds: 60,
            concurrency: 10,
        }
    }
}

impl ConsumerConfig {
    /// Seconds before a message received `receive_count` times is offered again.
    pub fn backoff_seconds(&self, receive_count: u32) -> i32 {
        let exponential = 1u64.checked_shl(receive_count).unwrap_or(u64::MAX);
        let seconds = exponential.min(u64::from(self.backoff_cap_seconds));
        // SQS's visibility timeout is at most 12 hours.
        i32::try_from(seconds.min(43_200)).unwrap_or(43_200)
    }
}

/// Who removes settled messages from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The consumer deletes them (polling loops).
    Delete,
    /// The Lambda service deletes every message not reported as failed.
    ReportFailures,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("event source {0:?} is not an SQS queue ARN")]
    SourceArn(String),
}

/// What one batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub received: usize,
    /// Applied, skipped as stale, or rejected (recorded in the store).
    pub settled: usize,
    pub superseded: usize,
    pub dead_lettered: usize,
    /// Left in the queue to be received again: their ids (a Lambda's batch item failures).
    pub failed: Vec<String>,
}

/// What became of one message.
enum Fate {
    Settled,
    Superseded,
    DeadLettered,
    Failed,
}

pub struct SqsReplicator {
    replicator: Arc<Replicator>,
    dlq: SqsQueue,
    config: ConsumerConfig,
}

impl SqsReplicator {
    pub fn new(replicator: Arc<Replicator>, dlq: SqsQueue, config: ConsumerConfig) -> Self {
        SqsReplicator {
            replicator,
            dlq,
            config,
        }
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Handles `messages` received from `queue`. Never fails as a whole: a message that
    /// cannot be settled now is left to SQS (with a backoff) and listed in
    /// [`BatchOutcome::failed`].
    pub async fn handle_batch(
        &self,
        queue: &SqsQueue,
        messages: Vec<ReceivedMessage>,
        settlement: Settlement,
    ) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            received: messages.len(),
            ..BatchOutcome::default()
        };
        let mut fates: Vec<Option<Fate>> = (0..messages.len()).map(|_| None).collect();
        let mut parsed: Vec<Delivery> = Vec::new();
        // The messages of each transaction; a redelivered duplicate may share one.
        let mut by_tx: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, message) in messages.iter().enumerate() {
            match serde_json::from_str::<Delivery>(&message.body) {
                Ok(delivery) => {
                    by_tx.entry(delivery.tx_hash.clone()).or_default().push(i);
                    parsed.push(delivery);
                }
                Err(e) => {
                    let reason = format!("unparsable replication message: {e}");
                    tracing::error!(message_id = %message.message_id, %reason, "dead-lettering");
                    let group = message
                        .group_id
                        .clone()
                        .unwrap_or_else(|| fifo_group_id(UNPARSABLE_GROUP));
                    let sent = self
                        .send_to_dlq(message.body.clone(), group, &message.message_id, &reason)
                        .await;
                    fates[i] = Some(if sent {
                        Fate::DeadLettered
                    } else {
                        Fate::Failed
                    });
                }
            }
        }
        // Takes the index of the next message carrying `delivery`.
        let mut take = |delivery: &Delivery| -> Option<usize> {
            let indexes = by_tx.get_mut(&delivery.tx_hash)?;
            (!indexes.is_empty()).then(|| indexes.remove(0))
        };
        let (newest, superseded) = coalesce(parsed);
        for delivery in &superseded {
            let Some(i) = take(delivery) else { continue };
            fates[i] = Some(match self.replicator.supersede(delivery).await {
                Ok(()) => Fate::Superseded,
                Err(e) => {
                    tracing::warn!(tx = %delivery.tx_hash, error = %e, "store error; left in the queue");
                    Fate::Failed
                }
            });
        }
        let work: Vec<(usize, Delivery)> = newest
            .into_iter()
            .filter_map(|delivery| take(&delivery).map(|i| (i, delivery)))
            .collect();
        let messages_ref = &messages;
        let mut attempts =
            futures_util::stream::iter(work.into_iter().map(|(i, delivery)| async move {
                let fate = self.attempt(&messages_ref[i], &delivery).await;
                (i, fate)
            }))
            .buffer_unordered(self.config.concurrency.max(1));
        while let Some((i, fate)) = attempts.next().await {
            fates[i] = Some(fate);
        }
        drop(attempts);

        for (message, fate) in messages.iter().zip(fates) {
            match fate.unwrap_or(Fate::Failed) {
                Fate::Failed => {
                    let delay = self.config.backoff_seconds(message.receive_count);
                    if let Err(e) = queue
                        .change_visibility(&message.receipt_handle, delay)
                        .await
                    {
                        // The queue's own visibility timeout applies instead.
                        tracing::warn!(message_id = %message.message_id, error = %e, "could not set the retry delay");
                    }
                    outcome.failed.push(message.message_id.clone());
                    continue;
                }
                Fate::Settled => outcome.settled += 1,
                Fate::Superseded => outcome.superseded += 1,
                Fate::DeadLettered => outcome.dead_lettered += 1,
            }
            if settlement == Settlement::Delete {
                if let Err(e) = queue.delete(&message.receipt_handle).await {
                    // Redelivery is harmless: the store skips versions it holds.
                    tracing::warn!(message_id = %message.message_id, error = %e, "could not delete a settled message");
                }
            }
        }
        outcome
    }

    async fn attempt(&self, message: &ReceivedMessage, delivery: &Delivery) -> Fate {
        let attempt = message.receive_count.max(1);
        let reason = match self.replicator.attempt(delivery, attempt).await {
            Ok(Attempt::Done(Decision::DeadLettered)) => return Fate::DeadLettered,
            Ok(Attempt::Done(_)) => return Fate::Settled,
            Ok(Attempt::Retry(reason)) => reason,
            Err(e) => {
                // Our own store failing is no reason to give up on the event: SQS keeps it
                // (and the redrive policy catches a store that never comes back).
                tracing::warn!(tx = %delivery.tx_hash, error = %e, "store error; left in the queue");
                return Fate::Failed;
            }
        };
        if attempt < self.config.max_attempts {
            return Fate::Failed;
        }
        let reason = format!("gave up after {attempt} attempts: {reason}");
        if let Err(e) = self
            .replicator
            .dead_letter(delivery, reason.clone(), attempt)
            .await
        {
            tracing::warn!(tx = %delivery.tx_hash, error = %e, "could not record the dead letter; left in the queue");
            return Fate::Failed;
        }
        let group = message
            .group_id
            .clone()
            .unwrap_or_else(|| fifo_group_id(&delivery.entity_key()));
        if self
            .send_to_dlq(message.body.clone(), group, &delivery.tx_hash, &reason)
            .await
        {
            Fate::DeadLettered
        } else {
            Fate::Failed
        }
    }

    /// Sends `body` to the dead-letter queue with its reason; false if SQS did not take it.
    async fn send_to_dlq(
        &self,
        body: String,
        group: String,
        dedup_key: &str,
        reason: &str,
    ) -> bool {
        let fifo = self.dlq.is_fifo();
        let message = OutgoingMessage {
            body,
            group_id: fifo.then_some(group),
            dedup_id: fifo.then(|| dedup_id(dedup_key)),
            attributes: vec![(
                REASON_ATTRIBUTE.to_owned(),
                reason.chars().take(MAX_REASON_CHARS).collect(),
            )],
        };
        match self.dlq.send_batch(vec![message]).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "could not send to the dead-letter queue; left in the queue");
                false
            }
        }
    }
}

/// One receive from `queue` and its handling (polling loops: local runs and the
/// self-hosted marketplace). Settled messages are deleted.
pub async fn poll_once(
    consumer: &SqsReplicator,
    queue: &SqsQueue,
    wait_seconds: i32,
    visibility_timeout_seconds: i32,
) -> Result<BatchOutcome, QueueError> {
    let messages = queue
        .receive(10, wait_seconds, visibility_timeout_seconds)
        .await?;
    if messages.is_empty() {
        return Ok(BatchOutcome::default());
    }
    Ok(consumer
        .handle_batch(queue, messages, Settlement::Delete)
        .await)
}

/// The URL of the queue an event source ARN (`arn:PARTITION:sqs:REGION:ACCOUNT:NAME`)
/// names. SQS routes a request by the account and name in the URL's path; the host is
/// SQS's regional endpoint (`AWS_ENDPOINT_URL` overrides where the request actually goes).
pub fn queue_url_from_arn(arn: &str) -> Result<String, ConsumerError> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [_, partition, "sqs", region, account, name] = parts.as_slice() else {
        return Err(ConsumerError::SourceArn(arn.to_owned()));
    };
    if region.is_empty() || account.is_empty() || name.is_empty() {
        return Err(ConsumerError::SourceArn(arn.to_owned()));
    }
    let domain = match *partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    };
    Ok(format!("https://sqs.{region}.{domain}/{account}/{name}"))
}

/// A Lambda SQS record as a [`ReceivedMessage`]; `None` without id or receipt handle.
fn received(record: &SqsMessage) -> Option<ReceivedMessage> {
    let mut attributes: Vec<(String, String)> = record
        .message_attributes
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
        .collect();
    attributes.sort();
    Some(ReceivedMessage {
        message_id: record.message_id.clone()?,
        body: record.body.clone().unwrap_or_default(),
        receipt_handle: record.receipt_handle.clone()?,
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        group_id: record.attributes.get("MessageGroupId").cloned(),
        attributes,
    })
}

/// The Lambda handler: one SQS event (a batch from one queue) → the ids of the messages to
/// leave in the queue (`ReportBatchItemFailures`).
pub async fn handle_sqs_event(consumer: &SqsReplicator, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut by_source: HashMap<String, Vec<ReceivedMessage>> = HashMap::new();
    for record in &event.records {
        match received(record) {
            Some(message) => by_source
                .entry(record.event_source_arn.clone().unwrap_or_default())
                .or_default()
                .push(message),
            None => tracing::error!(
                message_id = record.message_id.as_deref().unwrap_or(""),
                "SQS record without message id or receipt handle; ignored"
            ),
        }
    }
    for (arn, messages) in by_source {
        let url = match queue_url_from_arn(&arn) {
            Ok(url) => url,
            Err(e) => {
                tracing::error!(error = %e, "cannot address the source queue; the batch is retried");
                for message in messages {
                    response.add_failure(message.message_id);
                }
                continue;
            }
        };
        let queue = SqsQueue::new(consumer.dlq.client().clone(), url);
        let outcome = consumer
            .handle_batch(&queue, messages, Settlement::ReportFailures)
            .await;
        tracing::info!(?outcome, "batch handled");
        for id in outcome.failed {
            response.add_failure(id);
        }
    }
    response
}

/// Local-only: longest retry delay in seconds (tests shorten it; default 60).
pub const BACKOFF_CAP_ENV: &str = "DOME_REPLICATION_BACKOFF_CAP_SECONDS";
/// Receives of one message before it is given up on (the queue's redrive bound sits above).
pub const MAX_ATTEMPTS_ENV: &str = "DOME_MAX_ATTEMPTS";
/// Local-only: visibility timeout of the polling loop's receives (default 30 s).
pub const VISIBILITY_ENV: &str = "DOME_REPLICATION_VISIBILITY_SECONDS";

/// The consumer settings from `DOME_MAX_ATTEMPTS` and `DOME_REPLICATION_BACKOFF_CAP_SECONDS`.
pub fn config_from_env() -> Result<ConsumerConfig, crate::env::EnvError> {
    let defaults = ConsumerConfig::default();
    let max_attempts =
        crate::env::number(MAX_ATTEMPTS_ENV, u64::from(defaults.max_attempts), 1, 1000)?;
    let cap = crate::env::number(
        BACKOFF_CAP_ENV,
        u64::from(defaults.backoff_cap_seconds),
        0,
        43_200,
    )?;
    Ok(ConsumerConfig {
        max_attempts: u32::try_from(max_attempts).unwrap_or(defaults.max_attempts),
        backoff_cap_seconds: u32::try_from(cap).unwrap_or(defaults.backoff_cap_seconds),
        ..defaults
    })
}

/// The visibility timeout of polling receives, from `DOME_REPLICATION_VISIBILITY_SECONDS`.
pub fn visibility_from_env() -> Result<i32, crate::env::EnvError> {
    let seconds = crate::env::number(VISIBILITY_ENV, 30, 1, 43_200)?;
    Ok(i32::try_from(seconds).unwrap_or(30))
}

/// Polls `queue` until the future is dropped: receives of up to 10 messages with a 1 s wait.
pub async fn poll_forever(consumer: &SqsReplicator, queue: &SqsQueue, visibility_seconds: i32) {
    let mut pause = std::time::Duration::from_millis(200);
    loop {
        match poll_once(consumer, queue, 1, visibility_seconds).await {
            Ok(outcome) => {
                pause = std::time::Duration::from_millis(200);
                if outcome.received > 0 {
                    tracing::debug!(?outcome, "replication batch");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot receive from the replication queue; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}
