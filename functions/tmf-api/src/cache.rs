//! A write-through cache of entity heads in front of a store that this process alone writes.
//!
//! [`HeadCache`] wraps a [`CatalogStore`] and keeps the most recently used heads in memory,
//! so that a read of an entity (`GET /{resource}/{id}`, and the head read before every PATCH
//! and DELETE) does not go to the store. It is only correct when every write to the store
//! goes through this wrapper: true for the embedded store, whose redb file a single process
//! can open (the file is locked), and false for DynamoDB, which several Lambda instances write
//! to. `main` wraps the embedded store only.
//!
//! Memory. A head is kept as the compact JSON of its body (one allocation of about the size
//! of the representation), not as a `serde_json::Value` tree, which took about six times as
//! much in the benchmark (docs/benchmarks.md); it is parsed again when served (microseconds,
//! against a store read on tokio's blocking pool).
//!
//! Coherence. Versions of an entity only grow, so the cache keeps, per entity, the highest
//! version it has seen and ignores an older one: a reader that fetched version `k` from the
//! store and inserts it after a writer inserted `k + 1` changes nothing. A write is inserted
//! only after the store accepted it, before the handler answers, so a client that got the
//! answer to its write reads that version or a newer one. A failed write drops the entry
//! (the store may or may not have applied it). A replica the store applied replaces the
//! cached head like a local write does; one it refused drops the entry. Lists, versions, the
//! outbox, the subscriptions and the replication records, audit trail and dead letters go
//! to the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dome_catalog_store::{
    AuditRecord, CatalogStore, ChangeKind, DeadLetter, EntityVersion, HeadPage, OutboxEntry, Page,
    Provenance, Record, ReplicaOutcome, StoreError, Subscription,
};

type Key = (String, String);

/// A [`CatalogStore`] that serves heads from memory; see the module documentation.
pub struct HeadCache {
    inner: Arc<dyn CatalogStore>,
    capacity: usize,
    state: Mutex<Entries>,
}

/// One cached head: an [`EntityVersion`] without its key, the body as compact JSON.
struct Cached {
    version: u64,
    deleted: bool,
    last_update: String,
    provenance: Option<Provenance>,
    body: Box<[u8]>,
}

impl Cached {
    fn of(head: &EntityVersion) -> Option<Self> {
        Some(Self {
            version: head.version,
            deleted: head.deleted,
            last_update: head.last_update.clone(),
            provenance: head.provenance.clone(),
            body: serde_json::to_vec(&head.body).ok()?.into_boxed_slice(),
        })
    }

    fn entity(&self, resource: &str, id: &str) -> Option<EntityVersion> {
        Some(EntityVersion {
            resource: resource.to_string(),
            id: id.to_string(),
            version: self.version,
            body: serde_json::from_slice(&self.body).ok()?,
            last_update: self.last_update.clone(),
            deleted: self.deleted,
            provenance: self.provenance.clone(),
        })
    }
}

/// The cached heads (by resource, then id: looked up without building a key) and their
/// insertion order (the oldest is evicted first).
#[derive(Default)]
struct Entries {
    heads: HashMap<String, HashMap<String, Arc<Cached>>>,
    order: VecDeque<Key>,
}

impl Entries {
    fn get(&self, resource: &str, id: &str) -> Option<&Arc<Cached>> {
        self.heads.get(resource)?.get(id)
    }

    fn remove(&mut self, resource: &str, id: &str) -> bool {
        self.heads
            .get_mut(resource)
            .is_some_and(|ids| ids.remove(id).is_some())
    }
}

impl HeadCache {
    /// Caches at most `capacity` heads (at least 1) of `inner`, which must not be written by
    /// anything but this wrapper.
    pub fn new(inner: Arc<dyn CatalogStore>, capacity: usize) -> Self {
        Self {
            inner,
            capacity: capacity.max(1),
            state: Mutex::new(Entries::default()),
        }
    }

    /// Number of cached heads.
    pub fn len(&self) -> usize {
        self.entries().order.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is
        // a single insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, resource: &str, id: &str) -> Option<Arc<Cached>> {
        self.entries().get(resource, id).cloned()
    }

    /// Keeps `head` unless the same or a newer version of the entity is already cached.
    fn remember(&self, head: &EntityVersion) {
        // Serialised before taking the lock.
        let Some(cached) = Cached::of(head) else {
            return;
        };
        let mut entries = self.entries();
        if let Some(current) = entries.get(&head.resource, &head.id) {
            if current.version < head.version {
                let ids = entries.heads.entry(head.resource.clone()).or_default();
                ids.insert(head.id.clone(), Arc::new(cached));
            }
            return;
        }
        while entries.order.len() >= self.capacity {
            let Some((resource, id)) = entries.order.pop_front() else {
                break;
            };
            entries.remove(&resource, &id);
        }
        entries
            .order
            .push_back((head.resource.clone(), head.id.clone()));
        let ids = entries.heads.entry(head.resource.clone()).or_default();
        ids.insert(head.id.clone(), Arc::new(cached));
    }

    fn forget(&self, resource: &str, id: &str) {
        let mut entries = self.entries();
        if entries.remove(resource, id) {
            entries.order.retain(|(r, i)| !(r == resource && i == id));
        }
    }
}

#[async_trait]
impl CatalogStore for HeadCache {
    async fn create(&self, first: EntityVersion, change: ChangeKind) -> Result<u64, StoreError> {
        let head = first.clone();
        match self.inner.create(first, change).await {
            Ok(seq) => {
                self.remember(&head);
                Ok(seq)
            }
            Err(e) => {
                // A conflict means the id exists: what is cached for it (if anything) stays
                // right. Any other failure may or may not have been applied.
                if !matches!(e, StoreError::Conflict(_)) {
                    self.forget(&head.resource, &head.id);
                }
                Err(e)
            }
        }
    }

    async fn append(&self, next: EntityVersion, change: ChangeKind) -> Result<u64, StoreError> {
        let head = next.clone();
        match self.inner.append(next, change).await {
            Ok(seq) => {
                self.remember(&head);
                Ok(seq)
            }
            Err(e) => {
                self.forget(&head.resource, &head.id);
                Err(e)
            }
        }
    }

    async fn head(&self, resource: &str, id: &str) -> Result<Option<EntityVersion>, StoreError> {
        if let Some(head) = self
            .cached(resource, id)
            .and_then(|c| c.entity(resource, id))
        {
            return Ok(Some(head));
        }
        let found = self.inner.head(resource, id).await?;
        if let Some(head) = &found {
            self.remember(head);
        }
        Ok(found)
    }

    async fn version(
        &self,
        resource: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<EntityVersion>, StoreError> {
        if let Some(cached) = self.cached(resource, id) {
            if cached.version == version {
                if let Some(head) = cached.entity(resource, id) {
                    return Ok(Some(head));
                }
            }
        }
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

    async fn apply_replica(&self, replica: EntityVersion) -> Result<ReplicaOutcome, StoreError> {
        let head = replica.clone();
        let result = self.inner.apply_replica(replica).await;
        match &result {
            // Without this, reads would go on serving the head cached before the replica.
            Ok(ReplicaOutcome::Applied) => self.remember(&head),
            // The store holds a newer head than the replica; what is cached (if anything) was
            // read from or written through the store and stays right.
            Ok(ReplicaOutcome::Stale { .. }) => {}
            // Refused or maybe applied: let the next read load the head from the store.
            Err(_) => self.forget(&head.resource, &head.id),
        }
        result
    }

    async fn get_record(&self, name: &str) -> Result<Option<Record>, StoreError> {
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

    async fn append_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        self.inner.append_audit(record).await
    }

    async fn audit(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<AuditRecord>, StoreError> {
        self.inner.audit(cursor, limit).await
    }

    async fn put_dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError> {
        self.inner.put_dead_letter(letter).await
    }

    async fn dead_letters(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<DeadLetter>, StoreError> {
        self.inner.dead_letters(cursor, limit).await
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.inner.dead_letter_count().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dome_catalog_store::EmbeddedStore;
    use serde_json::json;

    fn version(id: &str, n: u64, deleted: bool) -> EntityVersion {
        EntityVersion {
            resource: "productOffering".into(),
            id: id.into(),
            version: n,
            body: json!({"id": id, "version": n.to_string()}),
            last_update: format!("2024-01-01T00:00:0{n}.000Z"),
            deleted,
            provenance: None,
        }
    }

    fn store() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path().join("catalog.redb")).unwrap());
        (dir, store)
    }

    #[tokio::test]
    async fn writes_go_through_and_reads_come_from_memory() {
        let (_dir, inner) = store();
        let cache = HeadCache::new(inner.clone(), 10);
        cache
            .create(version("a", 1, false), ChangeKind::Create)
            .await
            .unwrap();
        assert_eq!(cache.len(), 1);
        cache
            .append(version("a", 2, false), ChangeKind::Update)
            .await
            .unwrap();
        // what the store holds, and the cache serves the same
        assert_eq!(
            inner
                .head("productOffering", "a")
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            cache
                .head("productOffering", "a")
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            cache
                .version("productOffering", "a", 1)
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );
        // a stale write loses in the store and drops the entry; the next read reloads it
        let stale = cache
            .append(version("a", 2, false), ChangeKind::Update)
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))));
        assert!(cache.is_empty());
        assert_eq!(
            cache
                .head("productOffering", "a")
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        assert_eq!(cache.len(), 1);
        // a delete caches the tombstone
        cache
            .append(version("a", 3, true), ChangeKind::Delete)
            .await
            .unwrap();
        assert!(
            cache
                .head("productOffering", "a")
                .await
                .unwrap()
                .unwrap()
                .deleted
        );
        // unknown ids are not cached
        assert_eq!(cache.head("productOffering", "b").await.unwrap(), None);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn an_older_version_never_replaces_a_newer_one() {
        let (_dir, inner) = store();
        let cache = HeadCache::new(inner, 10);
        cache.remember(&version("a", 3, false));
        cache.remember(&version("a", 2, false));
        assert_eq!(cache.cached("productOffering", "a").unwrap().version, 3);
        cache.remember(&version("a", 4, false));
        assert_eq!(cache.cached("productOffering", "a").unwrap().version, 4);
    }

    #[tokio::test]
    async fn the_oldest_entries_are_evicted() {
        let (_dir, inner) = store();
        let cache = HeadCache::new(inner, 2);
        for id in ["a", "b", "c"] {
            cache.remember(&version(id, 1, false));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.cached("productOffering", "a").is_none());
        assert!(cache.cached("productOffering", "c").is_some());
        cache.forget("productOffering", "c");
        cache.remember(&version("d", 1, false));
        assert_eq!(cache.len(), 2);
        assert!(cache.cached("productOffering", "b").is_some());
    }

    fn replica(id: &str, n: u64, deleted: bool) -> EntityVersion {
        EntityVersion {
            provenance: Some(Provenance {
                origin: "member-b".into(),
                height: 10 + n,
                tx_hash: format!("tx-{id}-{n}"),
                content_hash: format!("{n:064x}"),
            }),
            ..version(id, n, deleted)
        }
    }

    #[tokio::test]
    async fn an_applied_replica_replaces_the_cached_head() {
        let (_dir, inner) = store();
        let cache = HeadCache::new(inner.clone(), 10);
        let first = replica("r", 2, false);
        assert_eq!(
            cache.apply_replica(first.clone()).await,
            Ok(ReplicaOutcome::Applied)
        );
        // cached by the write, or by this read: either way the next reads come from memory
        assert_eq!(cache.head("productOffering", "r").await, Ok(Some(first)));
        assert!(cache.cached("productOffering", "r").is_some());

        let newer = replica("r", 5, false);
        assert_eq!(
            cache.apply_replica(newer.clone()).await,
            Ok(ReplicaOutcome::Applied)
        );
        assert_eq!(cache.cached("productOffering", "r").unwrap().version, 5);
        assert_eq!(
            cache.head("productOffering", "r").await,
            Ok(Some(newer.clone()))
        );
        assert_eq!(inner.head("productOffering", "r").await, Ok(Some(newer)));

        // a stale replica changes neither the store nor the cache
        assert_eq!(
            cache.apply_replica(replica("r", 3, false)).await,
            Ok(ReplicaOutcome::Stale { held_version: 5 })
        );
        assert_eq!(cache.cached("productOffering", "r").unwrap().version, 5);

        // a tombstone replica is served as the head at once
        let gone = replica("r", 6, true);
        assert_eq!(
            cache.apply_replica(gone.clone()).await,
            Ok(ReplicaOutcome::Applied)
        );
        assert_eq!(cache.head("productOffering", "r").await, Ok(Some(gone)));

        // a refused replica over a local entity leaves what the store holds visible
        let local = version("l", 1, false);
        cache
            .create(local.clone(), ChangeKind::Create)
            .await
            .unwrap();
        assert!(matches!(
            cache.apply_replica(replica("l", 2, false)).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(cache.head("productOffering", "l").await, Ok(Some(local)));
        assert!(cache.outbox_after(0, 10).await.unwrap().len() == 1);
    }
}
