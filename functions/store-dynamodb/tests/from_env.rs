//! `DynamoStore::from_env` as a deployed function uses it: table from `DOME_TABLE`, endpoint,
//! credentials and region from the standard AWS variables. Its own test binary (a process of
//! its own) because it sets process environment variables.

use dome_catalog_store::contract;
use dome_catalog_store::{CatalogStore, ChangeKind, StoreError};
use dome_store_dynamodb::testing::TestStore;
use dome_store_dynamodb::{DynamoStore, TABLE_ENV};

#[tokio::test]
async fn store_configured_from_the_environment() {
    // Its own moto server, or the deployed table (DOME_TEST_DYNAMODB_TABLE), emptied: then
    // this is exactly how the deployed functions reach it.
    let target = match TestStore::new("dome-from-env").await {
        Ok(target) => target,
        Err(e) => panic!("{e}"),
    };
    std::env::remove_var(TABLE_ENV);
    match DynamoStore::from_env().await {
        Err(StoreError::BadRequest(message)) => assert!(message.contains(TABLE_ENV)),
        other => panic!("expected BadRequest without {TABLE_ENV}, got {other:?}"),
    }

    // The only test in this binary, so nothing else reads the environment meanwhile.
    for (name, value) in target.env() {
        std::env::set_var(name, value);
    }
    std::env::set_var(TABLE_ENV, target.store().table());
    let store = DynamoStore::from_env().await.expect("store from env");
    assert_eq!(store.table(), target.store().table());
    store.create_table().await.expect("create table");
    let v1 = contract::sample("productOffering", "po-1", 1, "from env");
    assert_eq!(store.create(v1.clone(), ChangeKind::Create).await, Ok(1));
    assert_eq!(store.head("productOffering", "po-1").await, Ok(Some(v1)));
}
