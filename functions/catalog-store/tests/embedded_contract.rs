//! The contract suite against [`EmbeddedStore`], one test per case, each on its own file.

use dome_catalog_store::contract;
use dome_catalog_store::{CatalogStore, ChangeKind, EmbeddedStore, StoreError};
use tempfile::TempDir;

fn fresh() -> (TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path().join("catalog.redb")).expect("open store");
    (dir, store)
}

macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_dir, store) = fresh();
                contract::$case(&store).await;
            }
        )*
    };
}

contract_tests!(
    create_then_read,
    duplicate_create_conflicts,
    append_versions,
    stale_append_conflicts,
    append_to_unknown_conflicts,
    tombstone_is_final,
    versions_stay_readable,
    list_heads_pages,
    list_heads_rejects_foreign_cursor,
    outbox_in_order,
    subscriptions,
    concurrent_appends_one_wins,
    concurrent_creates_same_id_one_wins,
    concurrent_creates_all_succeed,
    bad_requests_refused,
    oversized_version_refused,
    replica_applied_on_empty,
    replica_newer_with_gap,
    replica_stale_changes_nothing,
    replica_tombstone,
    replica_over_local_conflicts,
    replica_from_other_origin_conflicts,
    replica_bad_requests_refused,
    concurrent_replicas_newest_wins,
    records_conditional_writes,
    concurrent_record_writes_one_wins,
    audit_ordered_and_paged,
    dead_letters_replace_count_page,
);

/// All cases on one store, as an adapter that can afford only one store would run them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_store() {
    let (_dir, store) = fresh();
    contract::run_all(&store).await;
}

/// What was committed survives closing and reopening the file, and the outbox seq goes on
/// from where it was rather than restarting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.redb");
    let v1 = contract::sample("productOffering", "po-1", 1, "one");
    {
        let store = EmbeddedStore::open(&path).expect("open");
        assert_eq!(store.create(v1.clone(), ChangeKind::Create).await, Ok(1));
    }
    let store = EmbeddedStore::open(&path).expect("reopen");
    assert_eq!(store.head("productOffering", "po-1").await, Ok(Some(v1)));
    let v2 = contract::sample("productOffering", "po-1", 2, "two");
    assert_eq!(store.append(v2, ChangeKind::Update).await, Ok(2));
    let outbox = store.outbox_after(0, 10).await.expect("outbox");
    assert_eq!(outbox.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
}

/// redb locks its file: a second store on the same path is refused, not silently shared.
#[tokio::test]
async fn second_open_is_refused() {
    let (dir, _store) = fresh();
    match EmbeddedStore::open(dir.path().join("catalog.redb")) {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
