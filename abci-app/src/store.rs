//! Persistence of the bus state in an embedded, crash-safe store (redb).
//!
//! Everything a block changes is written in ONE redb write transaction at Commit, together
//! with the new height and app hash, so after a crash the store holds either the whole block
//! or none of it. `Info` then reports the last committed height and CometBFT replays the rest.

use std::path::Path;

use dome_events::{CatalogueEvent, MemberId, PublicKey};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::state::{BusState, EntityHead, MemberRecord, Pending};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
const SEQS: TableDefinition<&str, u64> = TableDefinition::new("origin_seqs");
const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("heads");
const VALIDATORS: TableDefinition<&[u8], u64> = TableDefinition::new("validators");
const EVENTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("events");

const KEY_HEIGHT: &str = "height";
const KEY_APP_HASH: &str = "app_hash";
const KEY_GOVERNANCE_NONCE: &str = "governance_nonce";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(String),
    #[error("store holds a corrupt record in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// An accepted catalogue event as stored and as queries return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub height: u64,
    /// Position of the transaction in its block (events of one bundle share it).
    pub index: u32,
    /// Uppercase hex sha256 of the event's own signed transaction: CometBFT's transaction
    /// hash when it travelled alone, the hash of its canonical bytes inside a bundle.
    pub tx_hash: String,
    pub event: CatalogueEvent,
}

/// What the store holds at its last commit.
#[derive(Debug, Clone)]
pub struct Committed {
    pub state: BusState,
    pub height: u64,
    pub app_hash: Vec<u8>,
}

pub struct Store {
    db: Database,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path)?;
        Ok(Store { db })
    }

    /// The committed state, or `None` before InitChain.
    pub fn load(&self) -> Result<Option<Committed>, StoreError> {
        let read = self.db.begin_read()?;
        let meta = match read.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(height) = meta.get(KEY_HEIGHT)? else {
            return Ok(None);
        };
        let height = u64_from(height.value(), "meta")?;
        let app_hash = meta
            .get(KEY_APP_HASH)?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        let governance_nonce = match meta.get(KEY_GOVERNANCE_NONCE)? {
            Some(v) => u64_from(v.value(), "meta")?,
            None => 0,
        };
        let mut state = BusState {
            governance_nonce,
            ..BusState::default()
        };
        for row in read.open_table(MEMBERS)?.iter()? {
            let (k, v) = row?;
            let record: MemberRecord = from_json(v.value(), "members")?;
            state.members.insert(MemberId(k.value().to_owned()), record);
        }
        for row in read.open_table(SEQS)?.iter()? {
            let (k, v) = row?;
            state
                .origin_seqs
                .insert(MemberId(k.value().to_owned()), v.value());
        }
        for row in read.open_table(HEADS)?.iter()? {
            let (k, v) = row?;
            let head: EntityHead = from_json(v.value(), "heads")?;
            state.heads.insert(k.value().to_owned(), head);
        }
        for row in read.open_table(VALIDATORS)?.iter()? {
            let (k, v) = row?;
            let key: [u8; 32] = k.value().try_into().map_err(|_| StoreError::Corrupt {
                table: "validators",
                reason: "key is not 32 bytes".into(),
            })?;
            state.validators.insert(PublicKey(key), v.value());
        }
        Ok(Some(Committed {
            state,
            height,
            app_hash,
        }))
    }

    /// Replaces whatever the store holds by the genesis state (InitChain may be repeated
    /// when the node crashed before the first block was committed).
    pub fn write_genesis(&self, state: &BusState, app_hash: &[u8]) -> Result<(), StoreError> {
        let write = self.db.begin_write()?;
        for table in [META, MEMBERS, HEADS] {
            write.delete_table(table)?;
        }
        write.delete_table(SEQS)?;
        write.delete_table(VALIDATORS)?;
        write.delete_table(EVENTS)?;
        {
            let pending = Pending {
                members: state.members.clone(),
                origin_seqs: state.origin_seqs.clone(),
                heads: state.heads.clone(),
                validators: state.validators.clone(),
                governance_nonce: Some(state.governance_nonce),
            };
            write_pending(&write, &pending)?;
            let mut meta = write.open_table(META)?;
            meta.insert(KEY_HEIGHT, 0u64.to_be_bytes().as_slice())?;
            meta.insert(KEY_APP_HASH, app_hash)?;
            write.open_table(EVENTS)?;
        }
        write.commit()?;
        Ok(())
    }

    /// Writes one block atomically: its state changes, its accepted events, height and hash.
    pub fn commit_block(
        &self,
        height: u64,
        app_hash: &[u8],
        pending: &Pending,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        let write = self.db.begin_write()?;
        {
            write_pending(&write, pending)?;
            let mut table = write.open_table(EVENTS)?;
            // Keyed by height and the event's place among the block's accepted events (a
            // bundle puts several events at one transaction index).
            for (position, event) in events.iter().enumerate() {
                let position = u32::try_from(position).unwrap_or(u32::MAX);
                let json = serde_json::to_vec(event).map_err(|e| StoreError::Corrupt {
                    table: "events",
                    reason: e.to_string(),
                })?;
                table.insert((event.height, position), json.as_slice())?;
            }
            let mut meta = write.open_table(META)?;
            meta.insert(KEY_HEIGHT, height.to_be_bytes().as_slice())?;
            meta.insert(KEY_APP_HASH, app_hash)?;
        }
        write.commit()?;
        Ok(())
    }

    /// Accepted catalogue events of heights `from..=to`, in commit order.
    pub fn events_in_range(&self, from: u64, to: u64) -> Result<Vec<StoredEvent>, StoreError> {
        let read = self.db.begin_read()?;
        let table = match read.open_table(EVENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in table.range((from, 0)..=(to, u32::MAX))? {
            let (_, v) = row?;
            out.push(from_json(v.value(), "events")?);
        }
        Ok(out)
    }
}

fn write_pending(write: &redb::WriteTransaction, pending: &Pending) -> Result<(), StoreError> {
    let mut members = write.open_table(MEMBERS)?;
    for (id, record) in &pending.members {
        members.insert(id.as_str(), to_json(record)?.as_slice())?;
    }
    let mut seqs = write.open_table(SEQS)?;
    for (id, seq) in &pending.origin_seqs {
        seqs.insert(id.as_str(), seq)?;
    }
    let mut heads = write.open_table(HEADS)?;
    for (key, head) in &pending.heads {
        heads.insert(key.as_str(), to_json(head)?.as_slice())?;
    }
    let mut validators = write.open_table(VALIDATORS)?;
    for (key, power) in &pending.validators {
        if *power == 0 {
            validators.remove(key.0.as_slice())?;
        } else {
            validators.insert(key.0.as_slice(), power)?;
        }
    }
    if let Some(nonce) = pending.governance_nonce {
        let mut meta = write.open_table(META)?;
        meta.insert(KEY_GOVERNANCE_NONCE, nonce.to_be_bytes().as_slice())?;
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        table: "any",
        reason: e.to_string(),
    })
}

fn from_json<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    table: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

fn u64_from(bytes: &[u8], table: &'static str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        table,
        reason: "expected an 8-byte integer".into(),
    })?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dome_events::test_keys;

    #[test]
    fn commit_is_reloaded_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bus.redb");
        let genesis = BusState::genesis(&[test_keys::member_info(0)], &[(PublicKey([9; 32]), 10)]);
        {
            let store = Store::open(&path).expect("open");
            assert!(store.load().expect("load").is_none());
            store
                .write_genesis(&genesis, b"genesis-hash")
                .expect("genesis");
            let mut pending = Pending::default();
            pending.origin_seqs.insert(test_keys::member_id(0), 3);
            pending.governance_nonce = Some(2);
            pending.validators.insert(PublicKey([9; 32]), 0);
            pending.validators.insert(PublicKey([8; 32]), 5);
            store
                .commit_block(7, b"hash-7", &pending, &[])
                .expect("commit");
        }
        let store = Store::open(&path).expect("reopen");
        let loaded = store.load().expect("load").expect("initialised");
        assert_eq!(loaded.height, 7);
        assert_eq!(loaded.app_hash, b"hash-7");
        assert_eq!(loaded.state.origin_seqs[&test_keys::member_id(0)], 3);
        assert_eq!(loaded.state.governance_nonce, 2);
        assert_eq!(loaded.state.members.len(), 1);
        assert_eq!(
            loaded.state.validators.into_iter().collect::<Vec<_>>(),
            vec![(PublicKey([8; 32]), 5)]
        );
    }
}
