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

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::{
    check_append, check_audit, check_create, check_dead_letter, check_id, check_key, check_limit,
    check_record, check_record_name, check_replica, check_resource, judge_replica, AuditRecord,
    CatalogStore, ChangeKind, DeadLetter, EntityVersion, HeadPage, HeldHead, OutboxEntry, Page,
    Record, ReplicaOutcome, StoreError, Subscription,
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
/// The origin of every replicated entity: (resource, id) → member id. Entities created
/// locally have no entry, which is how `apply_replica` tells them apart without reading
/// (and decoding) the head version.
const ORIGINS: TableDefinition<(&str, &str), &str> = TableDefinition::new("replica_origins");
/// Named records: name → (revision, value).
const RECORDS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("records");
/// The audit trail: (at, append seq) → JSON of the [`AuditRecord`]. The seq (from
/// [`AUDIT_LAST_SEQ`]) keeps lines with the same `at` apart, in the order they came.
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
/// Dead letters: tx_hash → JSON of the [`DeadLetter`].
const DEAD_LETTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("dead_letters");

/// The last outbox seq handed out. Kept as its own counter rather than derived from the last
/// outbox key so that pruning old outbox entries later can never make a seq be reused.
const OUTBOX_LAST_SEQ: &str = "outbox_last_seq";
/// The last audit seq handed out (the tie breaker of [`AUDIT`] keys).
const AUDIT_LAST_SEQ: &str = "audit_last_seq";

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

/// The position of an audit or dead-letter page: the key of its last item. Tagged with the
/// log so that a cursor of one log is refused by the other.
#[derive(Serialize, Deserialize)]
#[serde(tag = "log", rename_all = "snake_case")]
enum LogCursor {
    Audit { at: String, seq: u64 },
    DeadLetters { after: String },
}

impl EmbeddedStore {
    /// Page cache of [`EmbeddedStore::open`]: 4 MiB. Enough for the branch pages of a
    /// catalogue of many thousands of entities and its recent writes; a larger cache did not
    /// make lists faster (they are bound by decoding the heads) but held up to its size of
    /// written pages (docs/benchmarks.md, "TMF620 API").
    pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;

    /// Opens the store at `path`, creating the file and its tables if needed, with a page
    /// cache of [`Self::DEFAULT_CACHE_BYTES`]. Fails with `Unavailable` if another process has it
    /// open (redb locks the file).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, Self::DEFAULT_CACHE_BYTES)
    }

    /// [`EmbeddedStore::open`] with a page cache of at most `cache_bytes`. redb keeps every
    /// page it reads or writes in that cache until the limit (its own default is 1 GiB), so
    /// the cache, not the catalogue, would otherwise decide how much memory a long-running
    /// server ends up with. Reads of pages that are not cached go to the OS page cache.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path.as_ref())
            .map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        // Opening a table in a write transaction creates it, so that read transactions never
        // meet a missing table.
        txn.open_table(VERSIONS).map_err(backend)?;
        txn.open_table(HEADS).map_err(backend)?;
        txn.open_table(LIVE).map_err(backend)?;
        txn.open_table(OUTBOX).map_err(backend)?;
        txn.open_table(META).map_err(backend)?;
        txn.open_table(SUBSCRIPTIONS).map_err(backend)?;
        txn.open_table(ORIGINS).map_err(backend)?;
        txn.open_table(RECORDS).map_err(backend)?;
        txn.open_table(AUDIT).map_err(backend)?;
        txn.open_table(DEAD_LETTERS).map_err(backend)?;
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
    write_head(txn, version)?;
    let mut meta = txn.open_table(META).map_err(backend)?;
    let seq = next_seq(&mut meta, OUTBOX_LAST_SEQ)?;
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

/// Takes the next value of the counter `name` in `meta`.
fn next_seq(meta: &mut redb::Table<&str, u64>, name: &str) -> Result<u64, StoreError> {
    let last = meta
        .get(name)
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(0);
    let seq = last
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt(format!("{name} overflow")))?;
    meta.insert(name, seq).map_err(backend)?;
    Ok(seq)
}

/// Writes `version`, makes it the head and keeps the listing in step; no outbox entry. Used
/// for local changes (with their outbox entry) and replicas alike, so that `head`, `version`
/// and `list_heads` serve both the same way.
fn write_head(txn: &WriteTransaction, version: &EntityVersion) -> Result<(), StoreError> {
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
    Ok(())
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

fn encode_log_cursor(cursor: &LogCursor) -> Result<String, StoreError> {
    Ok(URL_SAFE_NO_PAD.encode(encode(cursor)?))
}

fn decode_log_cursor(cursor: &str) -> Result<LogCursor, StoreError> {
    let bad = || StoreError::BadRequest("invalid cursor".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
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

    async fn apply_replica(&self, replica: EntityVersion) -> Result<ReplicaOutcome, StoreError> {
        check_replica(&replica)?;
        // One write transaction: redb's single writer makes the read of the head and the
        // write that depends on it race-free.
        self.write(move |txn| {
            let key = (replica.resource.as_str(), replica.id.as_str());
            let head = txn
                .open_table(HEADS)
                .map_err(backend)?
                .get(key)
                .map_err(backend)?
                .map(|v| v.value());
            let mut origins = txn.open_table(ORIGINS).map_err(backend)?;
            let origin = origins
                .get(key)
                .map_err(backend)?
                .map(|v| v.value().to_owned());
            let held = head.map(|(version, deleted)| HeldHead {
                version,
                deleted,
                origin: origin.as_deref(),
            });
            let outcome = judge_replica(&replica, held)?;
            if outcome == ReplicaOutcome::Applied {
                if origin.is_none() {
                    let from = replica
                        .provenance
                        .as_ref()
                        .map(|p| p.origin.as_str())
                        .unwrap_or_default();
                    origins.insert(key, from).map_err(backend)?;
                }
                write_head(txn, &replica)?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn get_record(&self, name: &str) -> Result<Option<Record>, StoreError> {
        check_record_name(name)?;
        let name = name.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(RECORDS).map_err(backend)?;
            let found = table.get(name.as_str()).map_err(backend)?;
            Ok(found.map(|entry| {
                let (revision, value) = entry.value();
                Record {
                    value: value.to_owned(),
                    revision,
                }
            }))
        })
        .await
    }

    async fn put_record(
        &self,
        name: &str,
        value: &str,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        check_record(name, value)?;
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(move |txn| {
            let mut table = txn.open_table(RECORDS).map_err(backend)?;
            let held = table
                .get(name.as_str())
                .map_err(backend)?
                .map(|entry| entry.value().0);
            if held != expected {
                return Err(StoreError::Conflict(format!(
                    "record {name} is at revision {held:?}, not {expected:?}"
                )));
            }
            let revision = held
                .unwrap_or(0)
                .checked_add(1)
                .ok_or_else(|| StoreError::Corrupt(format!("record {name}: revision overflow")))?;
            table
                .insert(name.as_str(), (revision, value.as_str()))
                .map_err(backend)?;
            Ok(revision)
        })
        .await
    }

    async fn append_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        check_audit(&record)?;
        self.write(move |txn| {
            let seq = next_seq(&mut txn.open_table(META).map_err(backend)?, AUDIT_LAST_SEQ)?;
            txn.open_table(AUDIT)
                .map_err(backend)?
                .insert((record.at.as_str(), seq), encode(&record)?.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn audit(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<AuditRecord>, StoreError> {
        check_limit(limit)?;
        let after = match cursor.as_deref().map(decode_log_cursor).transpose()? {
            None => None,
            Some(LogCursor::Audit { at, seq }) => Some((at, seq)),
            Some(LogCursor::DeadLetters { .. }) => {
                return Err(StoreError::BadRequest(
                    "cursor belongs to the dead letters, not the audit trail".into(),
                ))
            }
        };
        self.read(move |txn| {
            let table = txn.open_table(AUDIT).map_err(backend)?;
            let start = match &after {
                Some((at, seq)) => Bound::Excluded((at.as_str(), *seq)),
                None => Bound::Unbounded,
            };
            let mut items = Vec::new();
            let mut last_key = None;
            let range = table
                .range::<(&str, u64)>((start, Bound::Unbounded))
                .map_err(backend)?;
            for item in range {
                let (key, bytes) = item.map_err(backend)?;
                // One more than a page tells whether another page follows.
                if items.len() == limit {
                    let next = match last_key.take() {
                        Some((at, seq)) => Some(encode_log_cursor(&LogCursor::Audit { at, seq })?),
                        None => None,
                    };
                    return Ok(Page { items, next });
                }
                let (at, seq) = key.value();
                last_key = Some((at.to_owned(), seq));
                items.push(decode(bytes.value(), "audit record")?);
            }
            Ok(Page { items, next: None })
        })
        .await
    }

    async fn put_dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError> {
        check_dead_letter(&letter)?;
        self.write(move |txn| {
            txn.open_table(DEAD_LETTERS)
                .map_err(backend)?
                .insert(letter.tx_hash.as_str(), encode(&letter)?.as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn dead_letters(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<DeadLetter>, StoreError> {
        check_limit(limit)?;
        let after = match cursor.as_deref().map(decode_log_cursor).transpose()? {
            None => None,
            Some(LogCursor::DeadLetters { after }) => Some(after),
            Some(LogCursor::Audit { .. }) => {
                return Err(StoreError::BadRequest(
                    "cursor belongs to the audit trail, not the dead letters".into(),
                ))
            }
        };
        self.read(move |txn| {
            let table = txn.open_table(DEAD_LETTERS).map_err(backend)?;
            let start = match &after {
                Some(after) => Bound::Excluded(after.as_str()),
                None => Bound::Unbounded,
            };
            let mut items: Vec<DeadLetter> = Vec::new();
            let range = table
                .range::<&str>((start, Bound::Unbounded))
                .map_err(backend)?;
            for item in range {
                let (_, bytes) = item.map_err(backend)?;
                if items.len() == limit {
                    let after = items.last().map(|l| l.tx_hash.clone()).unwrap_or_default();
                    let next = encode_log_cursor(&LogCursor::DeadLetters { after })?;
                    return Ok(Page {
                        items,
                        next: Some(next),
                    });
                }
                items.push(decode(bytes.value(), "dead letter")?);
            }
            Ok(Page { items, next: None })
        })
        .await
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            txn.open_table(DEAD_LETTERS)
                .map_err(backend)?
                .len()
                .map_err(backend)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A page cache much smaller than the data: every read that misses it must come from the
    /// file, in a fresh process (reopen) too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cache_smaller_than_the_data_serves_every_read() {
        const ENTITIES: usize = 300;
        const CACHE_BYTES: usize = 64 * 1024;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("catalog.redb");
        let padding = "x".repeat(1024);
        let entity = |n: usize| EntityVersion {
            resource: "productOffering".into(),
            id: format!("po-{n:04}"),
            version: 1,
            body: serde_json::json!({"id": format!("po-{n:04}"), "description": format!("{n} {padding}")}),
            last_update: "2025-01-01T00:00:00Z".into(),
            deleted: false,
            provenance: None,
        };
        {
            let store = EmbeddedStore::open_with_cache(&path, CACHE_BYTES).expect("open");
            for n in 0..ENTITIES {
                store
                    .create(entity(n), ChangeKind::Create)
                    .await
                    .expect("create");
            }
            check_all(&store, ENTITIES, &entity).await;
        }
        let reopened = EmbeddedStore::open_with_cache(&path, CACHE_BYTES).expect("reopen");
        check_all(&reopened, ENTITIES, &entity).await;
    }

    async fn check_all(
        store: &EmbeddedStore,
        entities: usize,
        entity: &impl Fn(usize) -> EntityVersion,
    ) {
        for n in 0..entities {
            let expected = entity(n);
            let head = store
                .head(&expected.resource, &expected.id)
                .await
                .expect("head")
                .expect("stored");
            assert_eq!(head.body, expected.body);
        }
        let mut listed = 0;
        let mut cursor = None;
        loop {
            let page = store
                .list_heads("productOffering", cursor, 128)
                .await
                .expect("list");
            listed += page.items.len();
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, entities);
    }
}
