//! The AWS adapters of [`dome_replication`], which itself stays free of AWS types:
//!
//! - [`SqsHandoff`]: the relay's hand-off to an SQS FIFO queue (one message per event, message
//!   group = entity, deduplication id = the event's own transaction id);
//! - [`SqsReplicator`]: the consumer of that queue, shared by the `replicator` Lambda function
//!   (partial batch failures) and local polling loops: coalescing per entity, retries through
//!   the message's visibility timeout, and a FIFO dead-letter queue with the reason;
//! - [`key`]: the member signing key, from Secrets Manager on AWS or a file locally;
//! - [`env`]: environment reading shared by the function binaries;
//! - [`metrics`]: CloudWatch embedded-metric-format lines (the relay's lag).

pub mod consumer;
pub mod env;
pub mod handoff;
pub mod key;
pub mod metrics;
pub mod runtime;
pub mod workers;

pub use consumer::{
    config_from_env, handle_sqs_event, poll_forever, poll_once, queue_url_from_arn,
    visibility_from_env, BatchOutcome, ConsumerConfig, ConsumerError, Settlement, SqsReplicator,
};
pub use handoff::SqsHandoff;
pub use key::{load_signing_key, KeyError};
