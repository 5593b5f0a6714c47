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
//!
//! [`TestQueues`] gives a test its queue and dead-letter queue: new ones on a moto server of
//! its own, or, with `DOME_TEST_SQS_QUEUE_URL` (standard) / `DOME_TEST_SQS_FIFO_QUEUE_URL`
//! (FIFO) and `DOME_TEST_AWS_ENDPOINT` set, the deployed queue and the dead-letter queue its
//! redrive policy names, purged, held exclusively until dropped.

use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
pub use dome_store_dynamodb::testing::{
    deployed_endpoint, test_credentials, MotoError, MotoServer, TEST_ACCESS_KEY_ID,
    TEST_ENDPOINT_ENV, TEST_REGION, TEST_SECRET_ACCESS_KEY,
};

use crate::{https_client, sqs_error, QueueError, SqsQueue};

/// URL of an existing standard queue with a redrive policy to run the queue tests on.
pub const TEST_QUEUE_URL_ENV: &str = "DOME_TEST_SQS_QUEUE_URL";
/// URL of an existing FIFO queue with a redrive policy to run the FIFO queue tests on.
pub const TEST_FIFO_QUEUE_URL_ENV: &str = "DOME_TEST_SQS_FIFO_QUEUE_URL";

#[derive(Debug, thiserror::Error)]
pub enum TestQueueError {
    #[error(transparent)]
    Moto(#[from] MotoError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("deployed test queue {url}: {problem}")]
    Deployed { url: String, problem: String },
}

/// Tests on deployed queues take turns: they count and drain every message of the queue.
static DEPLOYED_QUEUE_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A queue and its dead-letter queue for one test.
#[derive(Debug)]
pub struct TestQueues {
    pub queue: SqsQueue,
    pub dlq: SqsQueue,
    /// Receives after which the queue moves a message to `dlq`.
    pub max_receive_count: u32,
    /// The SQS endpoint (for clients of other queues).
    pub endpoint: String,
    _server: Option<MotoServer>,
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl TestQueues {
    /// New queues `name` (see [`create_queue_with_dlq`]) on a server of the test's own, or
    /// the deployed queue of that kind when its variable is set. A deployed queue keeps its
    /// own `max_receive_count`, whatever is asked here.
    pub async fn new(
        name: &str,
        fifo: bool,
        max_receive_count: u32,
    ) -> Result<Self, TestQueueError> {
        let variable = if fifo {
            TEST_FIFO_QUEUE_URL_ENV
        } else {
            TEST_QUEUE_URL_ENV
        };
        let Some(url) = std::env::var(variable).ok().filter(|u| !u.is_empty()) else {
            let server = MotoServer::start().await?;
            let sqs = client(&server.endpoint());
            let (url, dlq) = create_queue_with_dlq(&sqs, name, fifo, max_receive_count).await?;
            return Ok(Self {
                queue: SqsQueue::new(sqs.clone(), url),
                dlq: SqsQueue::new(sqs, dlq),
                max_receive_count,
                endpoint: server.endpoint(),
                _server: Some(server),
                _turn: None,
            });
        };
        let endpoint = deployed_endpoint()?;
        let turn = DEPLOYED_QUEUE_TURN.lock().await;
        let sqs = client(&endpoint);
        let queue = SqsQueue::new(sqs.clone(), url.clone());
        let problem = |problem: String| TestQueueError::Deployed {
            url: url.clone(),
            problem,
        };
        if queue.is_fifo() != fifo {
            return Err(problem(format!(
                "{variable} must name a {} queue",
                if fifo { "FIFO" } else { "standard" }
            )));
        }
        let (dlq_arn, max_receive_count) = redrive_policy(&sqs, &url).await.map_err(problem)?;
        // The queue name is the last field of its ARN.
        let dlq_name = dlq_arn.rsplit(':').next().unwrap_or_default();
        let dlq_url = sqs
            .get_queue_url()
            .queue_name(dlq_name)
            .send()
            .await
            .map_err(sqs_error("GetQueueUrl"))?
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| problem(format!("no URL for its dead-letter queue {dlq_arn}")))?;
        let dlq = SqsQueue::new(sqs, dlq_url);
        for q in [&queue, &dlq] {
            empty(q).await?;
        }
        Ok(Self {
            queue,
            dlq,
            max_receive_count,
            endpoint,
            _server: None,
            _turn: Some(turn),
        })
    }
}

/// SQS (and moto) allow one purge per queue a minute; a test that found messages in flight
/// waits for the next one.
const PURGE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);
const PURGE_ATTEMPTS: u32 = 15;

/// Empties a deployed queue: deletes what is visible, and purges only if messages in flight
/// (received, not deleted) remain, as a case that failed midway leaves behind. Tests on
/// deployed queues delete what they receive, so the purge is the exception.
async fn empty(queue: &SqsQueue) -> Result<(), QueueError> {
    loop {
        let messages = queue.receive(10, 0, 30).await?;
        if messages.is_empty() {
            break;
        }
        for message in messages {
            queue.delete(&message.receipt_handle).await?;
        }
    }
    if queue.approximate_depth().await? == 0 {
        return Ok(());
    }
    let mut attempt = 1;
    loop {
        let purged = queue
            .client()
            .purge_queue()
            .queue_url(queue.queue_url())
            .send()
            .await
            .map_err(sqs_error("PurgeQueue"));
        match purged {
            Ok(_) => return Ok(()),
            Err(QueueError::Sqs { message, .. })
                if message.contains("PurgeQueueInProgress") && attempt < PURGE_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(PURGE_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The dead-letter queue ARN and receive count of the queue's redrive policy.
async fn redrive_policy(sqs: &Client, url: &str) -> Result<(String, u32), String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes")(e).to_string())?;
    let policy = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .ok_or("it has no redrive policy")?;
    let policy: serde_json::Value =
        serde_json::from_str(policy).map_err(|e| format!("redrive policy {policy}: {e}"))?;
    let arn = policy["deadLetterTargetArn"]
        .as_str()
        .ok_or_else(|| format!("redrive policy {policy} has no deadLetterTargetArn"))?;
    // SQS writes the count as a number, CloudFormation-created queues in moto as a string.
    let count = match &policy["maxReceiveCount"] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .ok_or_else(|| format!("redrive policy {policy} has no maxReceiveCount"))?;
    Ok((arn.to_owned(), count))
}

/// An SQS client for the server at `endpoint`, with the fake test credentials. Configured
/// explicitly rather than through the environment, so parallel tests never race on
/// `set_var`.
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(test_credentials())
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
