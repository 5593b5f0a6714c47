//! The contract suite against [`DynamoStore`] on a real moto server, one server and one table
//! per test. Needs moto: `DOME_MOTO_SERVER="$(local/moto.sh | tail -n 1)"` (local/test.sh
//! does this); without it every test here fails and says so.
//!
//! With `DOME_TEST_DYNAMODB_TABLE` and `DOME_TEST_AWS_ENDPOINT` (local/infra-check.sh sets
//! them to the table it deployed into moto's CloudFormation) every case runs on that table
//! instead, in turn, each on the emptied table ([`TestStore`]).

use dome_catalog_store::contract;
use dome_catalog_store::{CatalogStore, ChangeKind, StoreError};
use dome_store_dynamodb::testing::TestStore;
use dome_store_dynamodb::DynamoStore;

async fn test_store(own_table: &str) -> TestStore {
    match TestStore::new(own_table).await {
        Ok(store) => store,
        Err(e) => panic!("{e}"),
    }
}

macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let target = test_store(concat!("dome-", stringify!($case))).await;
                contract::$case(target.store()).await;
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

/// All cases on one table, as the embedded store runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_table() {
    let target = test_store("dome-run-all").await;
    contract::run_all(target.store()).await;
}

/// Tables are independent stores, and creating an existing table is not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_separate_stores() {
    let target = test_store("dome-a").await;
    let a = target.store();
    // A fresh name on the deployed endpoint too, so that b starts empty on every run.
    let b = DynamoStore::new(target.client(), format!("dome-b-{}", std::process::id()));
    b.create_table().await.expect("create table b");
    let v1 = contract::sample("productOffering", "po-1", 1, "in a");
    assert_eq!(a.create(v1.clone(), ChangeKind::Create).await, Ok(1));
    assert_eq!(b.head("productOffering", "po-1").await, Ok(None));
    assert_eq!(b.outbox_after(0, 10).await, Ok(Vec::new()));
    a.create_table()
        .await
        .expect("create an existing table again");
    assert_eq!(a.head("productOffering", "po-1").await, Ok(Some(v1)));
}

/// A missing table is reported as the store being unavailable, not as missing data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_is_unavailable() {
    let target = test_store("dome-unused").await;
    let store = DynamoStore::new(target.client(), "dome-never-created");
    match store.head("productOffering", "x").await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("ResourceNotFound"), "{message}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
