//! Storage of TM Forum catalogue entities behind one interface.
//!
//! Every change to an entity writes a new immutable [`EntityVersion`] and, in the same atomic
//! write, an [`OutboxEntry`] that the replication publisher later turns into a bus event. Two
//! writers racing on one entity: exactly one wins, the other gets [`StoreError::Conflict`].
//! Adapters: the embedded store (this crate, [`EmbeddedStore`]) and DynamoDB
//! (`dome-store-dynamodb`); both pass the same contract suite (module `contract`, behind the
//! cargo feature `contract`). `docs/storage.md` describes how each adapter lays out its data.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

mod embedded;
pub use embedded::EmbeddedStore;

#[cfg(feature = "contract")]
pub mod contract;

/// Longest accepted resource name, in bytes. Bounded so that every adapter can build its keys
/// from it (DynamoDB caps partition keys at 2048 bytes and sort keys at 1024).
pub const MAX_RESOURCE_LEN: usize = 128;
/// Longest accepted entity or subscription id, in bytes (see [`MAX_RESOURCE_LEN`]).
pub const MAX_ID_LEN: usize = 512;
/// Largest accepted entity version: the length of its JSON (`serde_json` of the
/// [`EntityVersion`]), in bytes. Bounded by what every adapter can hold (DynamoDB refuses items
/// over 400 KB; this leaves room for its keys and attribute names), and enforced by all of
/// them alike: a version one marketplace's store accepts must fit every other member's store
/// when it is replicated.
pub const MAX_VERSION_BYTES: usize = 350 * 1024;

/// Where a replicated entity came from (absent for entities created locally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Member id of the origin marketplace.
    pub origin: String,
    /// Bus height of the accepted event.
    pub height: u64,
    pub tx_hash: String,
    /// Hex sha256 of the canonical JSON of the version.
    pub content_hash: String,
}

/// One immutable version of an entity. Versions of an entity are numbered 1, 2, 3... without
/// gaps; the newest is the head. A delete writes a tombstone version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityVersion {
    /// TMF resource name, e.g. `productOffering`.
    pub resource: String,
    pub id: String,
    pub version: u64,
    /// The full TMF representation served for this version (id, href, lastUpdate... included).
    /// For a tombstone, the last representation before the delete.
    pub body: serde_json::Value,
    /// RFC 3339 UTC with a trailing `Z`.
    pub last_update: String,
    pub deleted: bool,
    pub provenance: Option<Provenance>,
}

/// What a change did, as the outbox and notifications name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Create,
    Update,
    StateChange,
    Delete,
}

/// A change waiting to be announced on the bus, in the order the store accepted changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in this store's outbox: 1, 2, 3... without gaps.
    pub seq: u64,
    pub resource: String,
    pub id: String,
    pub version: u64,
    pub change: ChangeKind,
}

/// A hub registration (TMF630 notifications).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub callback: String,
    /// The registration's query, e.g. `eventType=ProductOfferingCreateEvent`; may be empty.
    pub query: Option<String>,
}

/// One page of heads.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadPage {
    pub items: Vec<EntityVersion>,
    /// Opaque; pass back to get the next page. `None` on the last page.
    pub next: Option<String>,
}

/// What [`CatalogStore::apply_replica`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaOutcome {
    /// The version is now the head.
    Applied,
    /// Nothing written: the store already holds this version or a newer one.
    Stale { held_version: u64 },
}

/// A small named record that the workers keep (checkpoints, leases). Every write bumps
/// `revision`, so that writes can be made conditional on what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    pub revision: u64,
}

/// Names of the records the replication workers keep in their marketplace's store.
pub mod records {
    /// Last outbox seq that is committed on the bus (decimal).
    pub const PUBLISHER_CHECKPOINT: &str = "publisher/checkpoint";
    /// Who may publish, until when (JSON `{"holder":..,"expires_ms":..}`).
    pub const PUBLISHER_LEASE: &str = "publisher/lease";
    /// Last bus height whose events are durably handed to the replicator (decimal).
    pub const RELAY_CHECKPOINT: &str = "relay/checkpoint";
    /// Who may relay, until when (JSON `{"holder":..,"expires_ms":..}`).
    pub const RELAY_LEASE: &str = "relay/lease";
}

/// What the replicator decided about one bus event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The version was fetched, verified and written.
    Applied,
    /// The store already held this version or a newer one.
    SkippedStale,
    /// A newer version of the same entity was pending; only that one is fetched.
    SkippedSuperseded,
    /// Refused for good (e.g. the content does not match the event's hash).
    Rejected,
    /// An attempt failed and will be retried (e.g. the origin was unreachable).
    Retrying,
    /// Given up after the retry bound; the event is in the dead-letter queue.
    DeadLettered,
}

/// One line of the replication audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC with milliseconds and a trailing `Z`; the trail is ordered by it.
    pub at: String,
    pub origin: String,
    pub height: u64,
    pub tx_hash: String,
    pub resource: String,
    pub id: String,
    pub version: u64,
    pub decision: Decision,
    /// Why, for anything but `Applied`.
    pub reason: Option<String>,
}

/// An event the replicator gave up on, with why. Keyed by `tx_hash`: putting it again
/// replaces it (a redelivered event does not make a second dead letter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub tx_hash: String,
    pub height: u64,
    /// The accepted catalogue event, as JSON.
    pub event: serde_json::Value,
    pub reason: String,
    pub attempts: u32,
    /// RFC 3339 UTC, trailing `Z`.
    pub at: String,
}

/// One page of a log (audit trail, dead letters), oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass back to get the next page. `None` on the last page.
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// A conditional write lost: the id already exists, or the head moved on.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store refused the request as malformed (e.g. a bad cursor).
    #[error("bad request to the store: {0}")]
    BadRequest(String),
    /// The backend could not be reached or failed; the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// The storage interface of the catalogue functions.
///
/// Requests that break the rules below fail with [`StoreError::BadRequest`] before anything is
/// written: `resource` is non-empty, at most [`MAX_RESOURCE_LEN`] bytes and contains no `#`;
/// ids are non-empty and at most [`MAX_ID_LEN`] bytes; `limit` is at least 1; a version is
/// a tombstone (`deleted`) exactly when its change is [`ChangeKind::Delete`]; a version's JSON
/// is at most [`MAX_VERSION_BYTES`] long.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Writes version 1 of a new entity and its outbox entry atomically; returns the outbox
    /// seq. `Conflict` if the id exists (deleted ones included) for that resource.
    /// `BadRequest` unless `first.version == 1`, `change == Create` and it is not a tombstone.
    async fn create(&self, first: EntityVersion, change: ChangeKind) -> Result<u64, StoreError>;

    /// Writes `next` and its outbox entry atomically if the head is still version
    /// `next.version - 1` and is not a tombstone; `Conflict` otherwise (a concurrent change
    /// won, the entity is unknown, or it was deleted: a delete is final). Used for updates,
    /// state changes and deletes (tombstones). `BadRequest` if `next.version < 2` or
    /// `change == Create`.
    async fn append(&self, next: EntityVersion, change: ChangeKind) -> Result<u64, StoreError>;

    /// The newest version (possibly a tombstone), or `None` if the id was never created.
    async fn head(&self, resource: &str, id: &str) -> Result<Option<EntityVersion>, StoreError>;

    /// One exact version.
    async fn version(
        &self,
        resource: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<EntityVersion>, StoreError>;

    /// Heads of one resource type that are not deleted, ordered by id (byte order), `limit`
    /// at most per page. Reads one resource type only: never a scan of the whole store. A
    /// cursor is only valid for the resource it was issued for (`BadRequest` otherwise).
    async fn list_heads(
        &self,
        resource: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<HeadPage, StoreError>;

    /// Outbox entries with `seq > after`, in order, at most `limit`. An entry becomes visible
    /// only after every entry with a lower seq, so a reader that remembers the last seq it
    /// handled never skips one.
    async fn outbox_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Inserts or replaces the subscription with that id.
    async fn put_subscription(&self, subscription: Subscription) -> Result<(), StoreError>;
    /// `true` if it existed.
    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError>;
    /// Every subscription, ordered by id.
    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError>;

    /// Writes a version received from another member through the bus. It keeps its origin's
    /// id and version number (a replica's versions may have gaps: catch-up fetches only the
    /// newest) and its `provenance`; no outbox entry is written (replicas are not announced
    /// again). Written only if the store holds no version of that entity or an older head:
    /// otherwise [`ReplicaOutcome::Stale`] and nothing changes, so a redelivered event is
    /// harmless. A tombstone (delete) is applied the same way. `Conflict` if the entity held
    /// was created locally or comes from another origin (an origin never overwrites another's
    /// entity). `BadRequest` if `provenance` is `None`, on the key and size rules, or if a
    /// version is 0. A newer version over a tombstone is a `Conflict` too: a delete is final
    /// (the bus refuses anything after a delete, so only a broken origin can send one). The
    /// rules are [`judge_replica`], which every adapter applies.
    async fn apply_replica(&self, version: EntityVersion) -> Result<ReplicaOutcome, StoreError>;

    /// A named record (see [`records`]), or `None` if it was never written.
    async fn get_record(&self, name: &str) -> Result<Option<Record>, StoreError>;

    /// Writes `value` if the record's revision is still `expected` (`None`: the record must
    /// not exist yet) and returns the new revision; `Conflict` otherwise. `BadRequest` if the
    /// name is empty or over [`MAX_ID_LEN`] bytes, or the value over
    /// [`MAX_RECORD_VALUE_BYTES`]. Revisions start at 1.
    async fn put_record(
        &self,
        name: &str,
        value: &str,
        expected: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// Appends a line to the replication audit trail. Lines with the same `at` are all kept,
    /// in the order they were appended (by one process). `BadRequest` if `at` is empty or
    /// over [`MAX_AT_LEN`] bytes, or the line's JSON over [`MAX_LOG_BYTES`].
    async fn append_audit(&self, record: AuditRecord) -> Result<(), StoreError>;

    /// The audit trail, oldest first, at most `limit` per page.
    async fn audit(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<AuditRecord>, StoreError>;

    /// Inserts or replaces (same `tx_hash`) a dead letter. `BadRequest` if `tx_hash` breaks
    /// the id rule ([`MAX_ID_LEN`]) or the letter's JSON is over [`MAX_LOG_BYTES`].
    async fn put_dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError>;

    /// Dead letters ordered by `tx_hash`, at most `limit` per page.
    async fn dead_letters(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<DeadLetter>, StoreError>;

    /// How many dead letters there are (for status and alarms).
    async fn dead_letter_count(&self) -> Result<u64, StoreError>;
}

/// Checks the key rules of [`CatalogStore`]; shared by the adapters so they refuse alike.
pub fn check_key(resource: &str, id: &str) -> Result<(), StoreError> {
    check_resource(resource)?;
    check_id(id)
}

/// Checks a resource name against [`MAX_RESOURCE_LEN`] and the `#` rule.
pub fn check_resource(resource: &str) -> Result<(), StoreError> {
    if resource.is_empty() || resource.len() > MAX_RESOURCE_LEN {
        return Err(StoreError::BadRequest(format!(
            "resource name must be 1 to {MAX_RESOURCE_LEN} bytes"
        )));
    }
    // Adapters join resource and id into one key with `#`; a `#` in the resource would make
    // two different (resource, id) pairs map to the same key.
    if resource.contains('#') {
        return Err(StoreError::BadRequest(format!(
            "resource name {resource:?} must not contain '#'"
        )));
    }
    Ok(())
}

/// Checks an entity or subscription id against [`MAX_ID_LEN`].
pub fn check_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(StoreError::BadRequest(format!(
            "id must be 1 to {MAX_ID_LEN} bytes"
        )));
    }
    Ok(())
}

/// Checks a page size.
pub fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 {
        return Err(StoreError::BadRequest("limit must be at least 1".into()));
    }
    Ok(())
}

/// Checks that the JSON of `version` is at most [`MAX_VERSION_BYTES`] long.
pub fn check_size(version: &EntityVersion) -> Result<(), StoreError> {
    /// Counts what is written, so that measuring needs no buffer.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, version)
        .map_err(|e| StoreError::BadRequest(format!("version not serialisable: {e}")))?;
    if counter.0 > MAX_VERSION_BYTES {
        return Err(StoreError::BadRequest(format!(
            "version is {} bytes serialised, over the {MAX_VERSION_BYTES} byte limit",
            counter.0
        )));
    }
    Ok(())
}

/// Checks the arguments of [`CatalogStore::apply_replica`].
pub fn check_replica(replica: &EntityVersion) -> Result<(), StoreError> {
    check_key(&replica.resource, &replica.id)?;
    if replica.version == 0 {
        return Err(StoreError::BadRequest("versions start at 1, not 0".into()));
    }
    if replica.provenance.is_none() {
        return Err(StoreError::BadRequest(
            "a replica must say where it came from (provenance)".into(),
        ));
    }
    check_size(replica)
}

/// The head a store holds for an entity, as [`judge_replica`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldHead<'a> {
    pub version: u64,
    pub deleted: bool,
    /// The origin of a replicated entity; `None` for one created locally.
    pub origin: Option<&'a str>,
}

/// Decides what [`CatalogStore::apply_replica`] does with `replica` given the head held for
/// its entity: `Applied` means "write it". Shared so that the adapters decide alike.
pub fn judge_replica(
    replica: &EntityVersion,
    held: Option<HeldHead<'_>>,
) -> Result<ReplicaOutcome, StoreError> {
    let Some(held) = held else {
        return Ok(ReplicaOutcome::Applied);
    };
    let key = format!("{}/{}", replica.resource, replica.id);
    let incoming = replica.provenance.as_ref().map(|p| p.origin.as_str());
    match held.origin {
        None => {
            return Err(StoreError::Conflict(format!(
                "{key} was created locally; a replica cannot overwrite it"
            )))
        }
        Some(origin) if Some(origin) != incoming => {
            return Err(StoreError::Conflict(format!(
                "{key} comes from {origin}, not from {}",
                incoming.unwrap_or("an unknown origin")
            )))
        }
        Some(_) => {}
    }
    // Stale before deleted: a redelivered tombstone (or anything older) is harmless.
    if held.version >= replica.version {
        return Ok(ReplicaOutcome::Stale {
            held_version: held.version,
        });
    }
    if held.deleted {
        return Err(StoreError::Conflict(format!(
            "{key} is deleted; nothing may follow a delete"
        )));
    }
    Ok(ReplicaOutcome::Applied)
}

/// Largest value of a named record ([`CatalogStore::put_record`]), in bytes.
pub const MAX_RECORD_VALUE_BYTES: usize = 4 * 1024;
/// Longest `at` of an [`AuditRecord`], in bytes (an RFC 3339 timestamp needs about 30); the
/// adapters build sort keys from it.
pub const MAX_AT_LEN: usize = 64;
/// Largest JSON of one audit line or dead letter, in bytes: what every adapter can hold in
/// one item (see [`MAX_VERSION_BYTES`]).
pub const MAX_LOG_BYTES: usize = 64 * 1024;

/// Checks the arguments of [`CatalogStore::put_record`] (and the name of `get_record`).
pub fn check_record(name: &str, value: &str) -> Result<(), StoreError> {
    check_record_name(name)?;
    if value.len() > MAX_RECORD_VALUE_BYTES {
        return Err(StoreError::BadRequest(format!(
            "record value is {} bytes, over the {MAX_RECORD_VALUE_BYTES} byte limit",
            value.len()
        )));
    }
    Ok(())
}

/// Checks a record name: non-empty, at most [`MAX_ID_LEN`] bytes.
pub fn check_record_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > MAX_ID_LEN {
        return Err(StoreError::BadRequest(format!(
            "record name must be 1 to {MAX_ID_LEN} bytes"
        )));
    }
    Ok(())
}

/// Checks an audit line: its `at` against [`MAX_AT_LEN`], its JSON against [`MAX_LOG_BYTES`].
pub fn check_audit(record: &AuditRecord) -> Result<(), StoreError> {
    if record.at.is_empty() || record.at.len() > MAX_AT_LEN {
        return Err(StoreError::BadRequest(format!(
            "audit `at` must be 1 to {MAX_AT_LEN} bytes"
        )));
    }
    check_log_size(record, "audit line")
}

/// Checks a dead letter: its `tx_hash` against the id rule, its JSON against
/// [`MAX_LOG_BYTES`].
pub fn check_dead_letter(letter: &DeadLetter) -> Result<(), StoreError> {
    check_id(&letter.tx_hash)?;
    check_log_size(letter, "dead letter")
}

fn check_log_size<T: Serialize>(value: &T, what: &str) -> Result<(), StoreError> {
    let json = serde_json::to_vec(value)
        .map_err(|e| StoreError::BadRequest(format!("{what} not serialisable: {e}")))?;
    if json.len() > MAX_LOG_BYTES {
        return Err(StoreError::BadRequest(format!(
            "{what} is {} bytes serialised, over the {MAX_LOG_BYTES} byte limit",
            json.len()
        )));
    }
    Ok(())
}

/// Checks the arguments of [`CatalogStore::create`].
pub fn check_create(first: &EntityVersion, change: ChangeKind) -> Result<(), StoreError> {
    check_key(&first.resource, &first.id)?;
    if first.version != 1 {
        return Err(StoreError::BadRequest(format!(
            "a new entity starts at version 1, not {}",
            first.version
        )));
    }
    if change != ChangeKind::Create || first.deleted {
        return Err(StoreError::BadRequest(
            "create takes ChangeKind::Create and a live (not deleted) version".into(),
        ));
    }
    check_size(first)
}

/// Checks the arguments of [`CatalogStore::append`].
pub fn check_append(next: &EntityVersion, change: ChangeKind) -> Result<(), StoreError> {
    check_key(&next.resource, &next.id)?;
    if next.version < 2 {
        return Err(StoreError::BadRequest(format!(
            "append writes version 2 or later, not {}",
            next.version
        )));
    }
    if change == ChangeKind::Create {
        return Err(StoreError::BadRequest(
            "append cannot announce a create".into(),
        ));
    }
    // The outbox entry becomes a bus event; a tombstone announced as an update (or the
    // reverse) would tell subscribers something that did not happen.
    if next.deleted != (change == ChangeKind::Delete) {
        return Err(StoreError::BadRequest(
            "a version is a tombstone exactly when its change is Delete".into(),
        ));
    }
    check_size(next)
}
