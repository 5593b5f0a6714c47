//! Test support: SQS clients and queues on the moto server of
//! `dome_store_dynamodb::testing` (moto serves SQS on the same endpoint as DynamoDB).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dome_queue_sqs::testing::{client, create_queue_with_dlq, MotoServer};
//! let moto = MotoServer::start().await?;
//! let sqs = client(&moto.endpoint());
//! let (queue_url, dlq_url) = create_queue_with_dlq(&sqs, "events", true, 3).await?;
//! # Ok(()) }
//! ```

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
pub use dome_store_dynamodb::testing::{
    MotoServer, TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY,
};

use crate::{https_client, sqs_error, QueueError};

/// An SQS client for the server at `endpoint`, with the fake test credentials. Configured
/// explicitly rather than through the environment, so parallel tests never race on
/// `set_var`.
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(Credentials::new(
            TEST_ACCESS_KEY_ID,
            TEST_SECRET_ACCESS_KEY,
            None,
            None,
            "dome-moto-test",
        ))
        .endpoint_url(endpoint)
        .http_client(https_client())
        .build();
    Client::from_conf(config)
}

/// Creates the queue `name` (`name.fifo` when `fifo`) and its dead-letter queue
/// `name-dlq[.fifo]`, which receives a message once it has been received
/// `max_receive_count` times without being deleted. Returns `(queue_url, dlq_url)`.
/// FIFO queues are created without content-based deduplication, so senders must set
/// deduplication ids.
pub async fn create_queue_with_dlq(
    client: &Client,
    name: &str,
    fifo: bool,
    max_receive_count: u32,
) -> Result<(String, String), QueueError> {
    let suffix = if fifo { ".fifo" } else { "" };
    let create = |queue_name: String, redrive: Option<String>| async move {
        let mut request = client.create_queue().queue_name(queue_name);
        if fifo {
            request = request.attributes(QueueAttributeName::FifoQueue, "true");
        }
        if let Some(policy) = redrive {
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
        }
        let output = request.send().await.map_err(sqs_error("CreateQueue"))?;
        output
            .queue_url()
            .map(str::to_string)
            .ok_or_else(|| QueueError::Unexpected {
                operation: "CreateQueue",
                message: "no queue URL".into(),
            })
    };
    let dlq_url = create(format!("{name}-dlq{suffix}"), None).await?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sqs_error("GetQueueAttributes"))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Unexpected {
            operation: "GetQueueAttributes",
            message: "no QueueArn".into(),
        })?;
    let policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count,
    })
    .to_string();
    let queue_url = create(format!("{name}{suffix}"), Some(policy)).await?;
    Ok((queue_url, dlq_url))
}
