//! The replicator: one accepted event → the exact version fetched from its origin, checked
//! against the event's content hash, applied to the local store if newer.
//!
//! Every decision goes to the audit trail. Retryable failures (origin unreachable) are
//! retried with backoff by the caller ([`Replicator::deliver`] in-process, the queue's
//! redelivery on AWS) and, after [`ReplicatorConfig::max_attempts`], become dead letters with
//! their reason. Failures no retry can fix (content that does not match the hash, a refused
//! fetch, an entity that belongs to someone else) are dead-lettered at once. Applying is
//! idempotent: a redelivered event finds the version already held and is skipped as stale.

use std::sync::Arc;
use std::time::Duration;

use dome_catalog_store::{
    AuditRecord, CatalogStore, DeadLetter, Decision, EntityVersion, Provenance, ReplicaOutcome,
    StoreError,
};
use dome_events::Action;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::event::{coalesce, content_hash, Delivery};
use crate::fetch::VersionFetcher;
use crate::now_rfc3339;

#[derive(Debug, Clone)]
pub struct ReplicatorConfig {
    /// Attempts before an event becomes a dead letter.
    pub max_attempts: u32,
    /// Pause after the first failed attempt; doubles after each (in-process retries).
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Entities replicated at the same time by [`Replicator::deliver_all`].
    pub concurrency: usize,
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        ReplicatorConfig {
            max_attempts: 5,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            concurrency: 8,
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Settled: applied, skipped, or refused for good (then already dead-lettered).
    Done(Decision),
    /// Failed in a way a later attempt may not; the reason.
    Retry(String),
}

pub struct Replicator {
    store: Arc<dyn CatalogStore>,
    fetcher: Arc<dyn VersionFetcher>,
    config: ReplicatorConfig,
}

impl Replicator {
    pub fn new(
        store: Arc<dyn CatalogStore>,
        fetcher: Arc<dyn VersionFetcher>,
        config: ReplicatorConfig,
    ) -> Self {
        Replicator {
            store,
            fetcher,
            config,
        }
    }

    pub fn config(&self) -> &ReplicatorConfig {
        &self.config
    }

    async fn audit(
        &self,
        d: &Delivery,
        decision: Decision,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        match decision {
            Decision::Applied | Decision::SkippedStale | Decision::SkippedSuperseded => {
                tracing::info!(height = d.height, tx = %d.tx_hash, entity = %d.entity_key(), version = d.event.entity.version, ?decision, "replication decision");
            }
            _ => {
                tracing::warn!(height = d.height, tx = %d.tx_hash, entity = %d.entity_key(), version = d.event.entity.version, ?decision, reason = reason.as_deref().unwrap_or(""), "replication decision");
            }
        }
        self.store
            .append_audit(AuditRecord {
                at: now_rfc3339(),
                origin: d.event.origin.to_string(),
                height: d.height,
                tx_hash: d.tx_hash.clone(),
                resource: d.event.entity.entity_type.clone(),
                id: d.event.entity.id.clone(),
                version: d.event.entity.version,
                decision,
                reason,
            })
            .await
    }

    /// Records that `d` was given up on, with why.
    pub async fn dead_letter(
        &self,
        d: &Delivery,
        reason: String,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let event = serde_json::to_value(&d.event)
            .map_err(|e| StoreError::BadRequest(format!("event not serialisable: {e}")))?;
        self.store
            .put_dead_letter(DeadLetter {
                tx_hash: d.tx_hash.clone(),
                height: d.height,
                event,
                reason: reason.clone(),
                attempts,
                at: now_rfc3339(),
            })
            .await?;
        self.audit(d, Decision::DeadLettered, Some(reason)).await
    }

    /// Records that `d` needs no fetch because a newer version of its entity is pending.
    pub async fn supersede(&self, d: &Delivery) -> Result<(), StoreError> {
        self.audit(
            d,
            Decision::SkippedSuperseded,
            Some("a newer version of the entity is pending".into()),
        )
        .await
    }

    /// Settles a permanent refusal: audited as rejected and dead-lettered.
    async fn reject(
        &self,
        d: &Delivery,
        reason: String,
        attempt: u32,
    ) -> Result<Attempt, StoreError> {
        self.audit(d, Decision::Rejected, Some(reason.clone()))
            .await?;
        self.dead_letter(d, reason, attempt).await?;
        Ok(Attempt::Done(Decision::Rejected))
    }

    /// One attempt at `d` (attempt number `attempt`, from 1). Store failures are returned as
    /// errors: nothing was decided and the whole delivery should be retried.
    pub async fn attempt(&self, d: &Delivery, attempt: u32) -> Result<Attempt, StoreError> {
        let event = &d.event;
        let entity = &event.entity;
        let held = self.store.head(&entity.entity_type, &entity.id).await?;
        if let Some(head) = &held {
            if head.version >= entity.version {
                self.audit(
                    d,
                    Decision::SkippedStale,
                    Some(format!("version {} is held", head.version)),
                )
                .await?;
                return Ok(Attempt::Done(Decision::SkippedStale));
            }
            if head.provenance.is_none() {
                return self
                    .reject(
                        d,
                        format!("{} exists here as a local entity", entity.key()),
                        attempt,
                    )
                    .await;
            }
        }
        let (body, deleted, hash) = if event.action == Action::Delete {
            // A tombstone keeps the last representation held; nothing to fetch.
            let body = held
                .as_ref()
                .map(|h| h.body.clone())
                .unwrap_or_else(|| json!({"id": entity.id}));
            let hash = event.previous_hash.map(|h| h.to_hex()).unwrap_or_default();
            (body, true, hash)
        } else {
            let Some(expected) = event.content_hash else {
                return self
                    .reject(d, "the event carries no content hash".into(), attempt)
                    .await;
            };
            let body = match self.fetcher.fetch(&event.location).await {
                Ok(body) => body,
                Err(e) if e.retryable() => {
                    let reason = format!("{e} (attempt {attempt} of {})", self.config.max_attempts);
                    self.audit(d, Decision::Retrying, Some(reason.clone()))
                        .await?;
                    return Ok(Attempt::Retry(e.to_string()));
                }
                Err(e) => return self.reject(d, e.to_string(), attempt).await,
            };
            let actual = match content_hash(&body) {
                Ok(hash) => hash,
                Err(e) => {
                    return self
                        .reject(d, format!("the content cannot be hashed: {e}"), attempt)
                        .await
                }
            };
            if actual != expected {
                return self
                    .reject(
                        d,
                        format!("content hash mismatch: the event announces {expected}, the origin served {actual}"),
                        attempt,
                    )
                    .await;
            }
            if body.get("id").and_then(Value::as_str) != Some(entity.id.as_str()) {
                return self
                    .reject(
                        d,
                        "the served content has another id than the event".into(),
                        attempt,
                    )
                    .await;
            }
            (body, false, expected.to_hex())
        };
        let last_update = body
            .get("lastUpdate")
            .and_then(Value::as_str)
            .map_or_else(|| event.issued_at.clone(), str::to_owned);
        let version = EntityVersion {
            resource: entity.entity_type.clone(),
            id: entity.id.clone(),
            version: entity.version,
            body,
            last_update,
            deleted,
            provenance: Some(Provenance {
                origin: event.origin.to_string(),
                height: d.height,
                tx_hash: d.tx_hash.clone(),
                content_hash: hash,
            }),
        };
        match self.store.apply_replica(version).await {
            Ok(ReplicaOutcome::Applied) => {
                self.audit(d, Decision::Applied, None).await?;
                Ok(Attempt::Done(Decision::Applied))
            }
            Ok(ReplicaOutcome::Stale { held_version }) => {
                self.audit(
                    d,
                    Decision::SkippedStale,
                    Some(format!("version {held_version} is held")),
                )
                .await?;
                Ok(Attempt::Done(Decision::SkippedStale))
            }
            Err(StoreError::Conflict(reason)) | Err(StoreError::BadRequest(reason)) => {
                self.reject(
                    d,
                    format!("the store refuses the version: {reason}"),
                    attempt,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }

    /// Delivers `d` in-process: attempts with exponential backoff, then a dead letter.
    pub async fn deliver(&self, d: &Delivery) -> Result<Decision, StoreError> {
        let mut pause = self.config.first_backoff;
        let max_attempts = self.config.max_attempts.max(1);
        for attempt in 1..=max_attempts {
            match self.attempt(d, attempt).await? {
                Attempt::Done(decision) => return Ok(decision),
                Attempt::Retry(reason) if attempt == max_attempts => {
                    self.dead_letter(
                        d,
                        format!("gave up after {attempt} attempts: {reason}"),
                        attempt,
                    )
                    .await?;
                    return Ok(Decision::DeadLettered);
                }
                Attempt::Retry(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.config.max_backoff);
                }
            }
        }
        Ok(Decision::DeadLettered)
    }

    /// Delivers a batch in-process: only the newest pending version of each entity is
    /// fetched (the older ones are audited as superseded), entities in parallel.
    pub async fn deliver_all(&self, deliveries: Vec<Delivery>) -> Result<(), StoreError> {
        let (newest, superseded) = coalesce(deliveries);
        for d in &superseded {
            self.supersede(d).await?;
        }
        let mut results = futures_util::stream::iter(
            newest
                .into_iter()
                .map(|d| async move { self.deliver(&d).await }),
        )
        .buffer_unordered(self.config.concurrency.max(1));
        while let Some(result) = results.next().await {
            result?;
        }
        Ok(())
    }
}
