//! Running the publisher under its lease, in slices that renew the lease in between
//! (`Publisher::run` itself does not know about leases).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dome_catalog_store::{records, CatalogStore};
use dome_replication::lease::{Lease, LeaseError};
use dome_replication::publisher::{PublishError, Publisher};

/// How long the publisher lease lasts without renewal.
pub const PUBLISHER_LEASE_DURATION: Duration = Duration::from_secs(30);
/// Longest stretch of publishing between two lease renewals.
const SLICE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Publishes under the publisher lease until `deadline` (forever with `None`), or, with
/// `until_idle`, until every outbox row is committed. Fails at once with
/// [`LeaseError::Held`] if another publisher holds the lease.
pub async fn publish_with_lease(
    store: Arc<dyn CatalogStore>,
    publisher: &Publisher,
    holder: &str,
    deadline: Option<Instant>,
    until_idle: bool,
) -> Result<(), WorkerError> {
    let mut lease = Lease::acquire(
        store,
        records::PUBLISHER_LEASE,
        holder,
        PUBLISHER_LEASE_DURATION,
    )
    .await?;
    let result = publish_slices(&mut lease, publisher, deadline, until_idle).await;
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "could not release the publisher lease");
    }
    result
}

async fn publish_slices(
    lease: &mut Lease,
    publisher: &Publisher,
    deadline: Option<Instant>,
    until_idle: bool,
) -> Result<(), WorkerError> {
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(());
        }
        let slice_end = deadline.map_or(now + SLICE, |d| d.min(now + SLICE));
        publisher.run(Some(slice_end), until_idle).await?;
        // `run` returns before its deadline only when it found nothing left to publish.
        if until_idle && Instant::now() + Duration::from_millis(100) < slice_end {
            return Ok(());
        }
        lease.renew().await?;
    }
}
