//! The relay: accepted events on the bus → the replicator, for one marketplace.
//!
//! It follows the bus from its checkpoint (the last height whose events are durably handed
//! over), keeps the events meant for its marketplace (audience) that come from other members,
//! and hands them over in bus order. The checkpoint advances only after the hand-off has
//! returned: a crash before that replays the same heights, which the replicator absorbs
//! (applying is idempotent). A lease keeps one relay per marketplace at work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dome_bus_client::{BusClient, EventFollower, FollowFilter};
use dome_catalog_store::{records, CatalogStore, StoreError};
use dome_events::MemberId;

use crate::event::Delivery;
use crate::lease::{read_checkpoint, Lease, LeaseError};
use crate::replicator::Replicator;

#[derive(Debug, thiserror::Error)]
#[error("hand-off failed: {0}")]
pub struct HandoffError(pub String);

/// Where the relay puts the events it keeps.
#[async_trait]
pub trait Handoff: Send + Sync {
    /// Hands `deliveries` (in bus order) over durably: once this returns `Ok`, they will be
    /// replicated even if this process dies.
    async fn hand_off(&self, deliveries: Vec<Delivery>) -> Result<(), HandoffError>;
}

/// The in-process hand-off of local and self-hosted marketplaces: the replicator settles
/// every delivery (applied, skipped or dead-lettered, all recorded in the store) before the
/// hand-off returns, so the store itself is the durable record.
pub struct DirectHandoff {
    replicator: Arc<Replicator>,
}

impl DirectHandoff {
    pub fn new(replicator: Arc<Replicator>) -> Self {
        DirectHandoff { replicator }
    }
}

#[async_trait]
impl Handoff for DirectHandoff {
    async fn hand_off(&self, deliveries: Vec<Delivery>) -> Result<(), HandoffError> {
        self.replicator
            .deliver_all(deliveries)
            .await
            .map_err(|e| HandoffError(e.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub member: MemberId,
    /// Names this process in the lease.
    pub holder: String,
    pub poll_interval: Duration,
    /// Most events collected before one hand-off (catch-up collects many heights at once).
    pub max_events: usize,
    /// Most heights collected before one hand-off.
    pub max_heights: u64,
    pub lease_duration: Duration,
}

impl RelayConfig {
    pub fn new(member: MemberId, holder: String) -> Self {
        RelayConfig {
            member,
            holder,
            poll_interval: Duration::from_millis(50),
            max_events: 500,
            max_heights: 500,
            lease_duration: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the relay checkpoint was moved by another relay")]
    CheckpointConflict,
}

pub struct Relay {
    store: Arc<dyn CatalogStore>,
    bus: BusClient,
    handoff: Arc<dyn Handoff>,
    config: RelayConfig,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayReport {
    pub checkpoint: u64,
    pub handed_off: u64,
}

impl Relay {
    pub fn new(
        store: Arc<dyn CatalogStore>,
        bus: BusClient,
        handoff: Arc<dyn Handoff>,
        config: RelayConfig,
    ) -> Self {
        Relay {
            store,
            bus,
            handoff,
            config,
        }
    }

    /// Relays until `deadline` (forever with `None`). Fails at once if another relay holds
    /// the lease; transient bus and hand-off failures are retried.
    pub async fn run(&self, deadline: Option<Instant>) -> Result<RelayReport, RelayError> {
        let mut lease = Lease::acquire(
            self.store.clone(),
            records::RELAY_LEASE,
            &self.config.holder,
            self.config.lease_duration,
        )
        .await?;
        let result = self.follow(&mut lease, deadline).await;
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the relay lease");
        }
        result
    }

    async fn follow(
        &self,
        lease: &mut Lease,
        deadline: Option<Instant>,
    ) -> Result<RelayReport, RelayError> {
        let (checkpoint, mut revision) =
            read_checkpoint(self.store.as_ref(), records::RELAY_CHECKPOINT).await?;
        let mut report = RelayReport {
            checkpoint,
            handed_off: 0,
        };
        let filter = FollowFilter::for_member(self.config.member.clone());
        let mut follower =
            EventFollower::new(self.bus.clone(), checkpoint).with_filter(filter.clone());
        let mut renewed = Instant::now();
        let mut backoff = self.config.poll_interval;
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(report);
            }
            if renewed.elapsed() >= self.config.lease_duration / 3 {
                lease.renew().await?;
                renewed = Instant::now();
            }
            let wait_until = {
                let soon = Instant::now() + Duration::from_secs(1);
                deadline.map_or(soon, |d| d.min(soon))
            };
            let first = match follower
                .wait_next(self.config.poll_interval, wait_until)
                .await
            {
                Ok(Some(batch)) => batch,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow the bus, will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = self.config.poll_interval;
            // Collect what is already available: during catch-up many heights at once, so
            // that the replicator can coalesce versions of the same entity.
            let mut deliveries: Vec<Delivery> = Vec::new();
            let mut last_height = first.height;
            let mut batch = Some(first);
            while let Some(current) = batch.take() {
                for tx in &current.undecodable {
                    tracing::error!(height = current.height, tx = %tx.tx_hash, error = %tx.error, "accepted transaction this build cannot decode; skipped");
                }
                last_height = current.height;
                deliveries.extend(current.events.into_iter().map(Delivery::from));
                if follower.ack(current.height).is_err() {
                    break;
                }
                let heights = last_height - report.checkpoint;
                if deliveries.len() >= self.config.max_events || heights >= self.config.max_heights
                {
                    break;
                }
                batch = follower.next_height().await.ok().flatten();
            }
            let count = deliveries.len() as u64;
            if !deliveries.is_empty() {
                if let Err(e) = self.handoff.hand_off(deliveries).await {
                    tracing::warn!(error = %e, from = report.checkpoint + 1, to = last_height, "hand-off failed; these heights will be followed again");
                    follower = EventFollower::new(self.bus.clone(), report.checkpoint)
                        .with_filter(filter.clone());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            let new_revision = self
                .store
                .put_record(
                    records::RELAY_CHECKPOINT,
                    &last_height.to_string(),
                    revision,
                )
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => RelayError::CheckpointConflict,
                    other => RelayError::Store(other),
                })?;
            revision = Some(new_revision);
            report.checkpoint = last_height;
            report.handed_off += count;
            if count > 0 {
                tracing::info!(checkpoint = last_height, events = count, "relayed");
            }
        }
    }
}
