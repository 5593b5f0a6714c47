//! The relay's hand-off to an SQS FIFO queue.

use async_trait::async_trait;
use dome_queue_sqs::{dedup_id, fifo_group_id, OutgoingMessage, SqsQueue};
use dome_replication::event::Delivery;
use dome_replication::relay::{Handoff, HandoffError};

/// Hands each [`Delivery`] to a FIFO queue as one message whose body is the delivery's JSON.
///
/// The message group is the entity, so versions of one entity are consumed in bus order and
/// a failing one blocks only its own entity. The deduplication id is the event's own
/// transaction id (unique per event, inside a bundle too): a relay that replays heights after a crash (within SQS's 5-minute deduplication
/// window) enqueues nothing twice, and a later replay is absorbed by the replicator, which
/// skips versions it already holds.
pub struct SqsHandoff {
    queue: SqsQueue,
}

impl SqsHandoff {
    pub fn new(queue: SqsQueue) -> Self {
        SqsHandoff { queue }
    }

    /// The message that carries `delivery`.
    pub fn message(delivery: &Delivery) -> Result<OutgoingMessage, HandoffError> {
        let body = serde_json::to_string(delivery).map_err(|e| {
            HandoffError(format!(
                "delivery {} not serialisable: {e}",
                delivery.tx_hash
            ))
        })?;
        Ok(OutgoingMessage {
            body,
            group_id: Some(fifo_group_id(&delivery.entity_key())),
            dedup_id: Some(dedup_id(&delivery.tx_hash)),
            attributes: Vec::new(),
        })
    }
}

#[async_trait]
impl Handoff for SqsHandoff {
    /// Returns `Ok` only once SQS accepted every message: only then may the relay advance its
    /// checkpoint. On a partial failure the whole batch is handed over again later; the
    /// messages SQS already took are deduplicated by their events' transaction ids.
    async fn hand_off(&self, deliveries: Vec<Delivery>) -> Result<(), HandoffError> {
        let messages = deliveries
            .iter()
            .map(Self::message)
            .collect::<Result<Vec<_>, _>>()?;
        self.queue
            .send_batch(messages)
            .await
            .map_err(|e| HandoffError(e.to_string()))
    }
}
