//! The embedded adapter: one redb file, for local runs and self-hosted marketplaces.
//!
//! Every change is one redb write transaction (version, head, listing index, outbox entry and
//! outbox counter together) committed with redb's default `Durability::Immediate`, so after a
//! crash either all of a change is on disk or none of it is. redb runs one write transaction
//! at a time, which is what makes the conditional writes and the gap-free outbox seqs simple:
//! the check of the head and the write happen under that exclusive transaction.
//!
//! The async methods run the redb work on tokio's blocking pool (`spawn_blocking`): a commit
//! waits for an fsync and a writer may wait for another writer's transaction, and neither
//! should stall the runtime's worker threads that serve HTTP requests.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::{
    check_append, check_create, check_id, check_key, check_limit, check_resource, CatalogStore,
    ChangeKind, EntityVersion, HeadPage, OutboxEntry, StoreError, Subscription,
};

/// Every version ever written: (resource, id, version) → JSON of the [`EntityVersion`].
const VERSIONS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("versions");
/// The head of every entity, tombstones included: (resource, id) → (version, deleted).
const HEADS: TableDefinition<(&str, &str), (u64, bool)> = TableDefinition::new("heads");
/// The heads that are not deleted: (resource, id) → version. Kept beside `HEADS` so that
/// listing one resource is a range read over exactly the items it returns.
const LIVE: TableDefinition<(&str, &str), u64> = TableDefinition::new("live_heads");
/// seq → JSON of the [`OutboxEntry`].
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Small counters; see [`OUTBOX_LAST_SEQ`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Subscription id → JSON of the [`Subscription`].
const SUBSCRIPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("subscriptions");

/// The last outbox seq handed out. Kept as its own counter rather than derived from the last
/// outbox key so that pruning old outbox entries later can never make a seq be reused.
const OUTBOX_LAST_SEQ: &str = "outbox_last_seq";

/// A [`CatalogStore`] in one local redb file. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

/// The position of a listing page: the last id returned, for the resource it belongs to.
#[derive(Serialize, Deserialize)]
struct Cursor {
    resource: String,
    after: String,
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating the file and its tables if needed. Fails with
    /// `Unavailable` if another process has it open (redb locks the file).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path.as_ref()).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        // Opening a table in a write transaction creates it, so that read transactions never
        // meet a missing table.
        txn.open_table(VERSIONS).map_err(backend)?;
        txn.open_table(HEADS).map_err(backend)?;
        txn.open_table(LIVE).map_err(backend)?;
        txn.open_table(OUTBOX).map_err(backend)?;
        txn.open_table(META).map_err(backend)?;
        txn.open_table(SUBSCRIPTIONS).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs `work` on the blocking pool with the database.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Runs `write` in one write transaction: commits if it succeeds, aborts otherwise.
    async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            match write(&txn) {
                Ok(value) => {
                    txn.commit().map_err(backend)?;
                    Ok(value)
                }
                Err(e) => {
                    // The write's own error is the one worth reporting; an abort failure
                    // leaves nothing behind either, as nothing was committed.
                    let _ = txn.abort();
                    Err(e)
                }
            }
        })
        .await
    }

    /// Runs `read` in one read transaction (a consistent snapshot).
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            read(&txn)
        })
        .await
    }
}

/// Maps a redb failure: corruption is reported as such, anything else may pass on a retry.
fn backend(error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Corrupted(message) => StoreError::Corrupt(message),
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::BadRequest(format!("not serialisable: {e}")))
}

/// Writes `version` as the new head and its outbox entry; the caller has checked that it may.
fn write_version(
    txn: &WriteTransaction,
    version: &EntityVersion,
    change: ChangeKind,
) -> Result<u64, StoreError> {
    let key = (version.resource.as_str(), version.id.as_str());
    let bytes = encode(version)?;
    txn.open_table(VERSIONS)
        .map_err(backend)?
        .insert((key.0, key.1, version.version), bytes.as_slice())
        .map_err(backend)?;
    txn.open_table(HEADS)
        .map_err(backend)?
        .insert(key, (version.version, version.deleted))
        .map_err(backend)?;
    let mut live = txn.open_table(LIVE).map_err(backend)?;
    if version.deleted {
        live.remove(key).map_err(backend)?;
    } else {
        live.insert(key, version.version).map_err(backend)?;
    }

    let mut meta = txn.open_table(META).map_err(backend)?;
    let last = meta
        .get(OUTBOX_LAST_SEQ)
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(0);
    let seq = last
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt("outbox seq overflow".into()))?;
    meta.insert(OUTBOX_LAST_SEQ, seq).map_err(backend)?;
    let entry = OutboxEntry {
        seq,
        resource: version.resource.clone(),
        id: version.id.clone(),
        version: version.version,
        change,
    };
    txn.open_table(OUTBOX)
        .map_err(backend)?
        .insert(seq, encode(&entry)?.as_slice())
        .map_err(backend)?;
    Ok(seq)
}

fn read_version(
    txn: &ReadTransaction,
    resource: &str,
    id: &str,
    version: u64,
) -> Result<Option<EntityVersion>, StoreError> {
    let table = txn.open_table(VERSIONS).map_err(backend)?;
    let found = table.get((resource, id, version)).map_err(backend)?;
    found
        .map(|bytes| decode(bytes.value(), "entity version"))
        .transpose()
}

/// The version a head points to; its absence means the store is inconsistent.
fn read_head_version(
    txn: &ReadTransaction,
    resource: &str,
    id: &str,
    version: u64,
) -> Result<EntityVersion, StoreError> {
    read_version(txn, resource, id, version)?.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "head of {resource}/{id} names version {version}, which is missing"
        ))
    })
}

fn encode_cursor(resource: &str, after: &str) -> Result<String, StoreError> {
    let cursor = Cursor {
        resource: resource.to_owned(),
        after: after.to_owned(),
    };
    Ok(URL_SAFE_NO_PAD.encode(encode(&cursor)?))
}

fn decode_cursor(resource: &str, cursor: &str) -> Result<String, StoreError> {
    let bad = || StoreError::BadRequest("invalid cursor".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor.resource != resource {
        return Err(StoreError::BadRequest(format!(
            "cursor belongs to resource {:?}, not {resource:?}",
            cursor.resource
        )));
    }
    Ok(cursor.after)
}

#[async_trait]
impl CatalogStore for EmbeddedStore {
    async fn create(&self, first: EntityVersion, change: ChangeKind) -> Result<u64, StoreError> {
        check_create(&first, change)?;
        self.write(move |txn| {
            let exists = txn
                .open_table(HEADS)
                .map_err(backend)?
                .get((first.resource.as_str(), first.id.as_str()))
                .map_err(backend)?
                .is_some();
            if exists {
                return Err(StoreError::Conflict(format!(
                    "{}/{} already exists",
                    first.resource, first.id
                )));
            }
            write_version(txn, &first, change)
        })
        .await
    }

    async fn append(&self, next: EntityVersion, change: ChangeKind) -> Result<u64, StoreError> {
        check_append(&next, change)?;
        self.write(move |txn| {
            let head = txn
                .open_table(HEADS)
                .map_err(backend)?
                .get((next.resource.as_str(), next.id.as_str()))
                .map_err(backend)?
                .map(|v| v.value());
            let expected = next.version - 1;
            match head {
                Some((version, false)) if version == expected => {}
                Some((_, true)) => {
                    return Err(StoreError::Conflict(format!(
                        "{}/{} is deleted",
                        next.resource, next.id
                    )))
                }
                Some((version, false)) => {
                    return Err(StoreError::Conflict(format!(
                        "{}/{} is at version {version}, not {expected}",
                        next.resource, next.id
                    )))
                }
                None => {
                    return Err(StoreError::Conflict(format!(
                        "{}/{} does not exist",
                        next.resource, next.id
                    )))
                }
            }
            write_version(txn, &next, change)
        })
        .await
    }

    async fn head(&self, resource: &str, id: &str) -> Result<Option<EntityVersion>, StoreError> {
        check_key(resource, id)?;
        let (resource, id) = (resource.to_owned(), id.to_owned());
        self.read(move |txn| {
            let head = txn
                .open_table(HEADS)
                .map_err(backend)?
                .get((resource.as_str(), id.as_str()))
                .map_err(backend)?
                .map(|v| v.value());
            match head {
                Some((version, _)) => read_head_version(txn, &resource, &id, version).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn version(
        &self,
        resource: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<EntityVersion>, StoreError> {
        check_key(resource, id)?;
        let (resource, id) = (resource.to_owned(), id.to_owned());
        self.read(move |txn| read_version(txn, &resource, &id, version))
            .await
    }

    async fn list_heads(
        &self,
        resource: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<HeadPage, StoreError> {
        check_resource(resource)?;
        check_limit(limit)?;
        let after = cursor.map(|c| decode_cursor(resource, &c)).transpose()?;
        let resource = resource.to_owned();
        self.read(move |txn| {
            let live = txn.open_table(LIVE).map_err(backend)?;
            let start = after.as_deref().unwrap_or("");
            // The range starts inside this resource's keys and the loop stops at the first
            // key of another resource: only the returned items (plus one) are read.
            let range = live.range((resource.as_str(), start)..).map_err(backend)?;
            let mut ids: Vec<(String, u64)> = Vec::new();
            for item in range {
                let (key, version) = item.map_err(backend)?;
                let (key_resource, id) = key.value();
                if key_resource != resource {
                    break;
                }
                if after.as_deref() == Some(id) {
                    continue;
                }
                // One more than a page tells whether another page follows.
                if ids.len() == limit {
                    let last = ids.last().map(|(id, _)| id.as_str()).unwrap_or_default();
                    let next = encode_cursor(&resource, last)?;
                    let items = fetch(txn, &resource, &ids)?;
                    return Ok(HeadPage {
                        items,
                        next: Some(next),
                    });
                }
                ids.push((id.to_owned(), version.value()));
            }
            Ok(HeadPage {
                items: fetch(txn, &resource, &ids)?,
                next: None,
            })
        })
        .await
    }

    async fn outbox_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        check_limit(limit)?;
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.read(move |txn| {
            let outbox = txn.open_table(OUTBOX).map_err(backend)?;
            let mut entries = Vec::new();
            for item in outbox.range(first..).map_err(backend)?.take(limit) {
                let (_, bytes) = item.map_err(backend)?;
                entries.push(decode(bytes.value(), "outbox entry")?);
            }
            Ok(entries)
        })
        .await
    }

    async fn put_subscription(&self, subscription: Subscription) -> Result<(), StoreError> {
        check_id(&subscription.id)?;
        self.write(move |txn| {
            txn.open_table(SUBSCRIPTIONS)
                .map_err(backend)?
                .insert(subscription.id.as_str(), encode(&subscription)?.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        let id = id.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(SUBSCRIPTIONS).map_err(backend)?;
            let removed = table.remove(id.as_str()).map_err(backend)?.is_some();
            Ok(removed)
        })
        .await
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(SUBSCRIPTIONS).map_err(backend)?;
            let mut all = Vec::new();
            for item in table.iter().map_err(backend)? {
                let (_, bytes) = item.map_err(backend)?;
                all.push(decode(bytes.value(), "subscription")?);
            }
            Ok(all)
        })
        .await
    }
}

/// Reads the head versions a listing page names.
fn fetch(
    txn: &ReadTransaction,
    resource: &str,
    ids: &[(String, u64)],
) -> Result<Vec<EntityVersion>, StoreError> {
    ids.iter()
        .map(|(id, version)| read_head_version(txn, resource, id, *version))
        .collect()
}
