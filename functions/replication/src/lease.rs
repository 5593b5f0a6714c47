//! A time-bound lease in a store record, so that one publisher and one relay per marketplace
//! do the work even when several copies run (a scheduled function overlapping the previous
//! run, a restarted worker next to one that has not noticed yet). Safety does not depend on
//! it (checkpoints are conditional writes and the bus refuses replayed sequence numbers);
//! it avoids wasted and interleaved work.

use std::sync::Arc;
use std::time::Duration;

use dome_catalog_store::{CatalogStore, Record, StoreError};
use serde::{Deserialize, Serialize};

use crate::now_ms;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseValue {
    holder: String,
    expires_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another holder has the lease until `expires_ms`.
    #[error("lease {name} is held by {holder} for another {remaining_ms} ms")]
    Held {
        name: String,
        holder: String,
        remaining_ms: u64,
    },
    /// Someone else took the lease since it was last renewed.
    #[error("lease {name} was lost to another holder")]
    Lost { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A lease held by this process. Renew it more often than its duration.
pub struct Lease {
    store: Arc<dyn CatalogStore>,
    name: String,
    holder: String,
    duration: Duration,
    revision: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("revision", &self.revision)
            .finish()
    }
}

fn parse(record: &Record) -> Option<LeaseValue> {
    serde_json::from_str(&record.value).ok()
}

fn value(holder: &str, duration: Duration) -> String {
    let expires_ms =
        now_ms().saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    serde_json::json!({"holder": holder, "expires_ms": expires_ms}).to_string()
}

impl Lease {
    /// Takes the lease `name` for `holder` if it is free, expired, or already `holder`'s.
    pub async fn acquire(
        store: Arc<dyn CatalogStore>,
        name: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<Lease, LeaseError> {
        let current = store.get_record(name).await?;
        let expected = match &current {
            None => None,
            Some(record) => {
                // An unreadable lease record is treated as expired: it can only come from
                // a bug, and refusing forever would stop replication.
                if let Some(lease) = parse(record) {
                    let now = now_ms();
                    if lease.holder != holder && lease.expires_ms > now {
                        return Err(LeaseError::Held {
                            name: name.to_owned(),
                            holder: lease.holder,
                            remaining_ms: lease.expires_ms - now,
                        });
                    }
                }
                Some(record.revision)
            }
        };
        let revision = store
            .put_record(name, &value(holder, duration), expected)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => LeaseError::Held {
                    name: name.to_owned(),
                    holder: "another process".into(),
                    remaining_ms: 0,
                },
                other => LeaseError::Store(other),
            })?;
        Ok(Lease {
            store,
            name: name.to_owned(),
            holder: holder.to_owned(),
            duration,
            revision,
        })
    }

    /// Extends the lease by its duration from now; `Lost` if someone took it meanwhile.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        match self
            .store
            .put_record(
                &self.name,
                &value(&self.holder, self.duration),
                Some(self.revision),
            )
            .await
        {
            Ok(revision) => {
                self.revision = revision;
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Err(LeaseError::Lost {
                name: self.name.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the lease up (expires it now) so that the next holder need not wait.
    pub async fn release(self) -> Result<(), LeaseError> {
        self.store
            .put_record(
                &self.name,
                &value(&self.holder, Duration::ZERO),
                Some(self.revision),
            )
            .await?;
        Ok(())
    }
}

/// Reads a decimal checkpoint record: its value (0 when absent) and revision.
pub async fn read_checkpoint(
    store: &dyn CatalogStore,
    name: &str,
) -> Result<(u64, Option<u64>), StoreError> {
    match store.get_record(name).await? {
        None => Ok((0, None)),
        Some(record) => {
            let value = record.value.trim().parse::<u64>().map_err(|_| {
                StoreError::Corrupt(format!(
                    "checkpoint {name} is {:?}, not a number",
                    record.value
                ))
            })?;
            Ok((value, Some(record.revision)))
        }
    }
}
