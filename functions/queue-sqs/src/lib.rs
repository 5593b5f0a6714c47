//! A small typed adapter over Amazon SQS for dome's functions (tmf-api's notification sink,
//! the notifier, the replication relay and replicator).
//!
//! ```no_run
//! # async fn demo() -> Result<(), dome_queue_sqs::QueueError> {
//! use dome_queue_sqs::{fifo_group_id, OutgoingMessage, SqsQueue};
//! let queue = SqsQueue::connect("https://sqs.eu-west-1.amazonaws.com/123/events.fifo".into()).await;
//! queue
//!     .send_batch(vec![OutgoingMessage {
//!         body: "{}".into(),
//!         group_id: Some(fifo_group_id("productOffering/42")),
//!         dedup_id: Some(dome_queue_sqs::dedup_id("member-a/17")),
//!         attributes: vec![("origin".into(), "member-a".into())],
//!     }])
//!     .await?;
//! for message in queue.receive(10, 20, 30).await? {
//!     // ... handle, then:
//!     queue.delete(&message.receipt_handle).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Sends are batched (`SendMessageBatch`, 10 entries and 256 KiB a request); entries SQS
//! refuses for a reason of its own (throttling, internal errors) are sent again a few times,
//! entries refused because of the message itself fail at once with their index and reason.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use sha2::{Digest, Sha256};

#[cfg(feature = "testing")]
pub mod testing;

/// Most entries SQS takes in one `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most bytes (bodies and attributes) SQS takes in one `SendMessageBatch`: 256 KiB, the
/// limit of a single message too.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Longest message group or deduplication id SQS accepts.
pub const MAX_ID_CHARS: usize = 128;
/// Attempts in total for an entry that SQS refused for a retryable reason.
const SEND_ATTEMPTS: u32 = 4;
/// Wait before the second attempt; doubled for each further one.
const SEND_BACKOFF: Duration = Duration::from_millis(100);
/// Prefix of the ids [`fifo_group_id`] and [`dedup_id`] derive by hashing.
const HASHED_ID_PREFIX: &str = "sha256:";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Some entries of a batch were not enqueued (the others were).
    #[error("{} message(s) not sent: {}", failed.len(), describe_failures(failed))]
    NotSent { failed: Vec<FailedEntry> },
    /// A call to SQS failed as a whole (network, credentials, unknown queue...).
    #[error("SQS {operation} failed: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
    },
    /// SQS answered something this adapter cannot read.
    #[error("unexpected SQS answer to {operation}: {message}")]
    Unexpected {
        operation: &'static str,
        message: String,
    },
}

/// One message of a [`SqsQueue::send_batch`] call that was not enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// Position of the message in the `messages` passed to `send_batch`.
    pub index: usize,
    /// SQS's error code, e.g. `InvalidParameterValue`.
    pub code: String,
    pub message: String,
    /// SQS blamed the message itself (not worth resending unchanged).
    pub sender_fault: bool,
}

fn describe_failures(failed: &[FailedEntry]) -> String {
    failed
        .iter()
        .map(|f| format!("#{} {} ({})", f.index, f.code, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn sqs_error<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |e| QueueError::Sqs {
        operation,
        // SQS's own code and message when it answered; the whole chain of causes otherwise
        // (its Display alone says only "dispatch failure" or "service error").
        message: match (e.code(), e.message()) {
            (Some(code), message) => format!("{code}: {}", message.unwrap_or_default()),
            (None, _) => DisplayErrorContext(&e).to_string(),
        },
    }
}

/// A message to send. `group_id` is required by FIFO queues and refused by standard ones;
/// `dedup_id` is for FIFO queues without content-based deduplication (see [`fifo_group_id`]
/// and [`dedup_id`] to derive valid ids from any key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    pub body: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// String message attributes (name, value).
    pub attributes: Vec<(String, String)>,
}

impl OutgoingMessage {
    /// What the message counts for against [`MAX_BATCH_BYTES`]: body, attribute names,
    /// types and values.
    fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }
}

/// A received message. Hand `receipt_handle` to [`SqsQueue::delete`] once it is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub body: String,
    pub receipt_handle: String,
    /// How many times SQS has handed this message out, this time included (1 the first time).
    pub receive_count: u32,
    /// The message group of a FIFO queue.
    pub group_id: Option<String>,
    /// String (and number) message attributes, sorted by name.
    pub attributes: Vec<(String, String)>,
}

/// One SQS queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// A queue reached with the AWS SDK's usual environment (credentials, region,
    /// `AWS_ENDPOINT_URL` for a local endpoint such as moto), over rustls with ring.
    pub async fn connect(queue_url: String) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https_client())
            .load()
            .await;
        Self::new(Client::new(&config), queue_url)
    }

    pub fn new(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether this is a FIFO queue (its name ends with `.fifo`).
    pub fn is_fifo(&self) -> bool {
        self.queue_url.ends_with(".fifo")
    }

    /// Sends `messages` in order, in batches of at most 10 entries and 256 KiB. Entries SQS
    /// refused for a retryable reason are sent again (up to 4 attempts in all) before the
    /// next batch goes out, so a message is never overtaken by a later batch. Fails with
    /// [`QueueError::NotSent`] naming every entry that was not enqueued; the others were.
    ///
    /// Ordering within a FIFO message group holds across batches; inside one batch, SQS
    /// could in principle accept a later entry of a group after refusing an earlier one that
    /// is then resent, so consumers that need strict order should still check a sequence.
    pub async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        send_in_chunks(&messages, SEND_BACKOFF, |indexes| {
            self.send_chunk(&messages, indexes)
        })
        .await
    }

    /// One `SendMessageBatch` of the messages at `indexes`; returns the refused entries.
    async fn send_chunk(
        &self,
        messages: &[OutgoingMessage],
        indexes: Vec<usize>,
    ) -> Result<Vec<FailedEntry>, QueueError> {
        let mut entries = Vec::with_capacity(indexes.len());
        for &index in &indexes {
            let Some(message) = messages.get(index) else {
                continue;
            };
            let mut entry = SendMessageBatchRequestEntry::builder()
                // Entry ids only need to be unique within the request: the index is.
                .id(index.to_string())
                .message_body(&message.body)
                .set_message_group_id(message.group_id.clone())
                .set_message_deduplication_id(message.dedup_id.clone());
            for (name, value) in &message.attributes {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .map_err(|e| QueueError::Unexpected {
                        operation: "SendMessageBatch",
                        message: e.to_string(),
                    })?;
                entry = entry.message_attributes(name, value);
            }
            entries.push(entry.build().map_err(|e| QueueError::Unexpected {
                operation: "SendMessageBatch",
                message: e.to_string(),
            })?);
        }
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sqs_error("SendMessageBatch"))?;
        output
            .failed()
            .iter()
            .map(|f| {
                let index = f
                    .id()
                    .parse::<usize>()
                    .ok()
                    .filter(|i| indexes.contains(i))
                    .ok_or_else(|| QueueError::Unexpected {
                        operation: "SendMessageBatch",
                        message: format!("failure for unknown entry id {:?}", f.id()),
                    })?;
                Ok(FailedEntry {
                    index,
                    code: f.code().to_string(),
                    message: f.message().unwrap_or_default().to_string(),
                    sender_fault: f.sender_fault(),
                })
            })
            .collect()
    }

    /// Receives up to `max` messages (1 to 10), waiting up to `wait_seconds` (0 to 20) for
    /// the first one (long polling), and hides them from other consumers for
    /// `visibility_timeout_seconds`.
    pub async fn receive(
        &self,
        max: i32,
        wait_seconds: i32,
        visibility_timeout_seconds: i32,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .visibility_timeout(visibility_timeout_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(sqs_error("ReceiveMessage"))?;
        output.messages().iter().map(received).collect()
    }

    /// Removes a handled message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(sqs_error("DeleteMessage"))?;
        Ok(())
    }

    /// Makes a received message visible again after `seconds` (0: at once), e.g. to retry
    /// it sooner or later than the queue's visibility timeout.
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(sqs_error("ChangeMessageVisibility"))?;
        Ok(())
    }

    /// Messages in the queue, visible or in flight (SQS's approximate counts).
    pub async fn approximate_depth(&self) -> Result<u64, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(sqs_error("GetQueueAttributes"))?;
        let attributes = output.attributes();
        let count = |name: QueueAttributeName| -> Result<u64, QueueError> {
            let text = attributes
                .and_then(|a| a.get(&name))
                .map(String::as_str)
                .unwrap_or("0");
            text.parse().map_err(|_| QueueError::Unexpected {
                operation: "GetQueueAttributes",
                message: format!("{name}: {text:?} is not a count"),
            })
        };
        Ok(count(QueueAttributeName::ApproximateNumberOfMessages)?
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?)
    }
}

fn received(message: &aws_sdk_sqs::types::Message) -> Result<ReceivedMessage, QueueError> {
    let missing = |what: &str| QueueError::Unexpected {
        operation: "ReceiveMessage",
        message: format!("message without {what}"),
    };
    let system: Option<&HashMap<MessageSystemAttributeName, String>> = message.attributes();
    let system_attribute = |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name));
    let receive_count = match system_attribute(MessageSystemAttributeName::ApproximateReceiveCount)
    {
        Some(text) => text.parse().map_err(|_| QueueError::Unexpected {
            operation: "ReceiveMessage",
            message: format!("ApproximateReceiveCount {text:?} is not a count"),
        })?,
        None => return Err(missing("ApproximateReceiveCount")),
    };
    let mut attributes: Vec<(String, String)> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_string())))
        .collect();
    attributes.sort();
    Ok(ReceivedMessage {
        message_id: message
            .message_id()
            .ok_or_else(|| missing("MessageId"))?
            .to_string(),
        body: message.body().unwrap_or_default().to_string(),
        receipt_handle: message
            .receipt_handle()
            .ok_or_else(|| missing("ReceiptHandle"))?
            .to_string(),
        receive_count,
        group_id: system_attribute(MessageSystemAttributeName::MessageGroupId).cloned(),
        attributes,
    })
}

/// The retry loop of [`SqsQueue::send_batch`], over any `send` of one batch (given the
/// indexes of its messages, it returns the refused entries).
async fn send_in_chunks<F, Fut>(
    messages: &[OutgoingMessage],
    backoff: Duration,
    mut send: F,
) -> Result<(), QueueError>
where
    F: FnMut(Vec<usize>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<FailedEntry>, QueueError>>,
{
    let mut failed = Vec::new();
    for chunk in chunks(messages) {
        let mut pending = chunk;
        let mut attempt = 1;
        loop {
            let refused = send(pending).await?;
            let (retry, permanent): (Vec<FailedEntry>, Vec<FailedEntry>) = refused
                .into_iter()
                .partition(|f| !f.sender_fault && attempt < SEND_ATTEMPTS);
            failed.extend(permanent);
            if retry.is_empty() {
                break;
            }
            tracing::debug!(
                entries = retry.len(),
                attempt,
                reasons = %describe_failures(&retry),
                "SQS refused entries for now; resending"
            );
            tokio::time::sleep(backoff * 2u32.pow(attempt - 1)).await;
            // Resent in their original order.
            pending = retry.iter().map(|f| f.index).collect();
            pending.sort_unstable();
            attempt += 1;
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        failed.sort_by_key(|f| f.index);
        Err(QueueError::NotSent { failed })
    }
}

/// Splits `messages` into runs of consecutive indexes that fit one `SendMessageBatch`.
/// A message alone over the byte limit still gets a batch of its own, for SQS to refuse
/// with its reason.
fn chunks(messages: &[OutgoingMessage]) -> Vec<Vec<usize>> {
    let mut all = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for (index, message) in messages.iter().enumerate() {
        let size = message.size();
        if !current.is_empty()
            && (current.len() == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES)
        {
            all.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += size;
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// A valid FIFO `MessageGroupId` for `key`: the key itself when it already uses only the
/// characters SQS allows (ASCII letters, digits, punctuation) and fits 128 characters,
/// otherwise `sha256:` and the hex SHA-256 of the key. Deterministic, and distinct keys give
/// distinct ids (a key that itself starts with `sha256:` is always hashed).
pub fn fifo_group_id(key: &str) -> String {
    sqs_id(key)
}

/// A valid `MessageDeduplicationId` for `key`, derived like [`fifo_group_id`].
pub fn dedup_id(key: &str) -> String {
    sqs_id(key)
}

fn sqs_id(key: &str) -> String {
    let usable = !key.is_empty()
        && key.len() <= MAX_ID_CHARS
        && !key.starts_with(HASHED_ID_PREFIX)
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if usable {
        key.to_string()
    } else {
        format!(
            "{HASHED_ID_PREFIX}{}",
            hex::encode(Sha256::digest(key.as_bytes()))
        )
    }
}

/// The HTTP(S) client of the SDK clients: rustls with ring rather than the SDK default
/// aws-lc-rs (a long C build); plain HTTP works too, for local endpoints.
pub fn https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_valid_keys_and_hash_the_rest() {
        assert_eq!(fifo_group_id("productOffering/42"), "productOffering/42");
        assert_eq!(dedup_id("member-a:17"), "member-a:17");
        let long = "x".repeat(129);
        for key in [long.as_str(), "with space", "é", "", "sha256:abc"] {
            let id = fifo_group_id(key);
            assert!(
                id.starts_with("sha256:") && id.len() == 7 + 64,
                "{key:?} -> {id}"
            );
            assert_eq!(id, dedup_id(key), "deterministic");
        }
        assert_ne!(fifo_group_id("a b"), fifo_group_id("a  b"));
        assert_eq!(fifo_group_id(&"y".repeat(128)), "y".repeat(128));
    }

    fn refusal(index: usize, sender_fault: bool) -> FailedEntry {
        FailedEntry {
            index,
            code: if sender_fault {
                "InvalidMessageContents"
            } else {
                "InternalError"
            }
            .into(),
            message: "refused".into(),
            sender_fault,
        }
    }

    /// SQS stand-in: entry 3 is refused for good, entry 12 fails twice for a retryable
    /// reason, entry 14 always fails for a retryable reason.
    #[tokio::test]
    async fn resends_retryable_entries_and_names_the_rest() {
        let messages: Vec<OutgoingMessage> = (0..15)
            .map(|i| OutgoingMessage {
                body: i.to_string(),
                ..Default::default()
            })
            .collect();
        let calls = std::sync::Mutex::new(Vec::<Vec<usize>>::new());
        let result = send_in_chunks(&messages, Duration::from_millis(1), |indexes| {
            let mut log = calls.lock().unwrap_or_else(|p| p.into_inner());
            let seen_12 = log.iter().flatten().filter(|i| **i == 12).count();
            log.push(indexes.clone());
            let refused: Vec<FailedEntry> = indexes
                .iter()
                .filter_map(|&i| match i {
                    3 => Some(refusal(3, true)),
                    12 if seen_12 < 2 => Some(refusal(12, false)),
                    14 => Some(refusal(14, false)),
                    _ => None,
                })
                .collect();
            async move { Ok(refused) }
        })
        .await;
        let Err(QueueError::NotSent { failed }) = result else {
            panic!("expected NotSent, got {result:?}");
        };
        assert_eq!(failed.iter().map(|f| f.index).collect::<Vec<_>>(), [3, 14]);
        let calls = calls.into_inner().unwrap_or_else(|p| p.into_inner());
        assert_eq!(
            calls,
            vec![
                (0..10).collect::<Vec<_>>(),
                (10..15).collect(),
                vec![12, 14],
                vec![12, 14],
                vec![14],
            ]
        );
    }

    #[test]
    fn chunks_respect_count_and_bytes() {
        let small = |n: usize| -> Vec<OutgoingMessage> {
            (0..n)
                .map(|i| OutgoingMessage {
                    body: i.to_string(),
                    ..Default::default()
                })
                .collect()
        };
        let lens = |c: Vec<Vec<usize>>| c.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(lens(chunks(&small(0))), Vec::<usize>::new());
        assert_eq!(lens(chunks(&small(10))), vec![10]);
        assert_eq!(lens(chunks(&small(23))), vec![10, 10, 3]);
        let big = OutgoingMessage {
            body: "b".repeat(100 * 1024),
            ..Default::default()
        };
        let mixed = vec![big.clone(), big.clone(), big.clone(), big];
        assert_eq!(chunks(&mixed), vec![vec![0, 1], vec![2, 3]]);
    }
}
