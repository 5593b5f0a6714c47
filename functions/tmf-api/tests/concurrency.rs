//! Conditional writes: two PATCHes of the same version race; one wins, the other gets 409.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use common::{Harness, Options};
use dome_catalog_store::{
    CatalogStore, ChangeKind, EntityVersion, HeadPage, OutboxEntry, StoreError, Subscription,
};
use dome_tmf_api::HeadCache;
use serde_json::json;
use tokio::sync::Barrier;

/// Holds every `head` read at a barrier of two while `gate` is set, so that two requests
/// both read the same head before either writes.
struct Racing {
    inner: Arc<dyn CatalogStore>,
    gate: Arc<AtomicBool>,
    barrier: Barrier,
}

#[async_trait]
impl CatalogStore for Racing {
    async fn create(&self, first: EntityVersion, change: ChangeKind) -> Result<u64, StoreError> {
        self.inner.create(first, change).await
    }
    async fn append(&self, next: EntityVersion, change: ChangeKind) -> Result<u64, StoreError> {
        self.inner.append(next, change).await
    }
    async fn head(&self, resource: &str, id: &str) -> Result<Option<EntityVersion>, StoreError> {
        let head = self.inner.head(resource, id).await;
        if self.gate.load(Ordering::SeqCst) {
            self.barrier.wait().await;
        }
        head
    }
    async fn version(
        &self,
        resource: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<EntityVersion>, StoreError> {
        self.inner.version(resource, id, version).await
    }
    async fn list_heads(
        &self,
        resource: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<HeadPage, StoreError> {
        self.inner.list_heads(resource, cursor, limit).await
    }
    async fn outbox_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.outbox_after(after, limit).await
    }
    async fn put_subscription(&self, subscription: Subscription) -> Result<(), StoreError> {
        self.inner.put_subscription(subscription).await
    }
    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_subscription(id).await
    }
    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.inner.subscriptions().await
    }

    // The replication methods play no part in the race; they go straight to the store.
    async fn apply_replica(
        &self,
        version: EntityVersion,
    ) -> Result<dome_catalog_store::ReplicaOutcome, StoreError> {
        self.inner.apply_replica(version).await
    }
    async fn get_record(
        &self,
        name: &str,
    ) -> Result<Option<dome_catalog_store::Record>, StoreError> {
        self.inner.get_record(name).await
    }
    async fn put_record(
        &self,
        name: &str,
        value: &str,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.inner.put_record(name, value, expected).await
    }
    async fn append_audit(
        &self,
        record: dome_catalog_store::AuditRecord,
    ) -> Result<(), StoreError> {
        self.inner.append_audit(record).await
    }
    async fn audit(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<dome_catalog_store::Page<dome_catalog_store::AuditRecord>, StoreError> {
        self.inner.audit(cursor, limit).await
    }
    async fn put_dead_letter(
        &self,
        letter: dome_catalog_store::DeadLetter,
    ) -> Result<(), StoreError> {
        self.inner.put_dead_letter(letter).await
    }
    async fn dead_letters(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<dome_catalog_store::Page<dome_catalog_store::DeadLetter>, StoreError> {
        self.inner.dead_letters(cursor, limit).await
    }
    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.inner.dead_letter_count().await
    }
}

fn racing_harness() -> (Harness, Arc<AtomicBool>) {
    racing_harness_with(false)
}

/// With `cached`, the racing reads are served by a [`HeadCache`] in front of the store (as
/// the binary runs the embedded store).
fn racing_harness_with(cached: bool) -> (Harness, Arc<AtomicBool>) {
    let gate = Arc::new(AtomicBool::new(false));
    let g = Arc::clone(&gate);
    let h = Harness::with(Options {
        wrap: Some(Box::new(move |inner| {
            let inner: Arc<dyn CatalogStore> = if cached {
                Arc::new(HeadCache::new(inner, 16))
            } else {
                inner
            };
            Arc::new(Racing {
                inner,
                gate: g,
                barrier: Barrier::new(2),
            })
        })),
        ..Options::default()
    });
    (h, gate)
}

#[tokio::test]
async fn concurrent_patches_through_the_head_cache() {
    let (h, gate) = racing_harness_with(true);
    let po = h.create("productOffering", json!({"name": "x"})).await;
    let path = format!("/productOffering/{}", po["id"].as_str().unwrap_or_default());
    gate.store(true, Ordering::SeqCst);
    let (a, b) = tokio::join!(
        h.patch(&path, json!({"name": "from a"})),
        h.patch(&path, json!({"name": "from b"}))
    );
    gate.store(false, Ordering::SeqCst);
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let winner = if a.status == StatusCode::OK { a } else { b };
    // the cache serves the winner, then follows later changes
    assert_eq!(h.get(&path).await.body, winner.body);
    let again = h.patch(&path, json!({"name": "later"})).await;
    assert_eq!(again.status, StatusCode::OK);
    let head = h.get(&path).await;
    assert_eq!(
        (head.body["name"].clone(), head.body["version"].clone()),
        (json!("later"), json!("3"))
    );
    assert_eq!(h.get(&format!("{path}/version/2")).await.body, winner.body);
    h.delete(&path).await;
    h.get(&path).await.tmf_error(404, "NotFound");
    assert_eq!(h.outbox().await.len(), 4);
}

#[tokio::test]
async fn concurrent_patches_one_wins_the_other_conflicts() {
    let (h, gate) = racing_harness();
    let po = h.create("productOffering", json!({"name": "x"})).await;
    let path = format!("/productOffering/{}", po["id"].as_str().unwrap_or_default());
    gate.store(true, Ordering::SeqCst);
    let (a, b) = tokio::join!(
        h.patch(&path, json!({"name": "from a"})),
        h.patch(&path, json!({"name": "from b"}))
    );
    gate.store(false, Ordering::SeqCst);
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} / {}",
        a.text,
        b.text
    );
    let (winner, loser) = if a.status == StatusCode::OK {
        (a, b)
    } else {
        (b, a)
    };
    loser.tmf_error(409, "Conflict");
    let head = h.get(&path).await;
    assert_eq!(head.body, winner.body);
    assert_eq!(head.body["version"], "2");
    // exactly one change was stored for the race
    assert_eq!(h.outbox().await.len(), 2);
}

#[tokio::test]
async fn concurrent_patch_and_delete() {
    let (h, gate) = racing_harness();
    let c = h.create("category", json!({"name": "x"})).await;
    let path = format!("/category/{}", c["id"].as_str().unwrap_or_default());
    gate.store(true, Ordering::SeqCst);
    let (a, b) = tokio::join!(h.patch(&path, json!({"name": "y"})), h.delete(&path));
    gate.store(false, Ordering::SeqCst);
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert!(
        statuses == [200, 409] || statuses == [204, 409],
        "{statuses:?}"
    );
    assert_eq!(h.outbox().await.len(), 2);
}
