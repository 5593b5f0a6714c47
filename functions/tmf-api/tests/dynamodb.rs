//! The router over the DynamoDB store, on a real moto server: a create / read / patch / list /
//! delete scenario with a hub registration, so that `cargo test` exercises the path the AWS
//! deployment takes (the other router tests use the embedded store; `local/ctk.sh --store
//! dynamodb` runs the conformance kit on it). Needs moto:
//! `DOME_MOTO_SERVER="$(local/moto.sh | tail -n 1)"` (local/test.sh does this); without it the
//! test fails and says so.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Harness, Listener, Options, BASE, PUBLIC, TOKEN};
use dome_catalog_store::{CatalogStore, ChangeKind};
use dome_store_dynamodb::testing::MotoServer;
use dome_store_dynamodb::DynamoStore;
use serde_json::{json, Value};

const TABLE: &str = "dome-tmf-api";
const WAIT: Duration = Duration::from_secs(10);

fn id_of(entity: &Value) -> String {
    entity["id"].as_str().expect("id").to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("array").iter().map(id_of).collect()
}

// The moto server is started here, on the test thread: it is killed when that thread dies.
#[tokio::test]
async fn lifecycle_on_dynamodb() {
    let moto = match MotoServer::start().await {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    };
    let store = match moto.store(TABLE).await {
        Ok(store) => store,
        Err(e) => panic!("{e}"),
    };
    // The harness opens an embedded store; the router gets the DynamoDB store in its place.
    let h = Harness::with(Options {
        wrap: Some(Box::new(move |_embedded| Arc::new(store))),
        ..Options::default()
    });

    let mut listener = Listener::start(0).await;
    let hub = h.post("/hub", json!({"callback": listener.url})).await;
    assert_eq!(hub.status, StatusCode::CREATED, "{}", hub.text);
    let hub_id = id_of(&hub.body);

    // create: 201 with Location = href, version 1; the hub hears of it
    let created = h
        .post(
            "/productOffering",
            json!({"name": "Fibre 1G", "description": "fast", "isBundle": false}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let fibre = created.body.clone();
    let id = id_of(&fibre);
    let href = format!("{PUBLIC}{BASE}/productOffering/{id}");
    assert_eq!(fibre["href"], href);
    assert_eq!(created.header("location"), Some(href.as_str()));
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(fibre["version"], "1");
    assert_eq!(fibre["lifecycleStatus"], "In study");
    let event = listener.next(WAIT).await.expect("create event");
    assert_eq!(event["eventType"], "ProductOfferingCreateEvent");
    assert_eq!(event["event"]["productOffering"], fibre);
    let mobile = h
        .create("productOffering", json!({"name": "Mobile S"}))
        .await;
    let event = listener.next(WAIT).await.expect("create event");
    assert_eq!(event["event"]["productOffering"], mobile);

    // read: the newest version, byte for byte what create answered
    let read = h.get(&format!("/productOffering/{id}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.body, fibre);
    let v1_url = format!("{href}/version/1");
    assert_eq!(read.header("content-location"), Some(v1_url.as_str()));

    // patch: version 2; a stale If-Match is refused and writes nothing
    let patched = h
        .patch(
            &format!("/productOffering/{id}"),
            json!({"lifecycleStatus": "Launched"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["version"], "2");
    assert_eq!(patched.header("etag"), Some("\"2\""));
    assert_eq!(patched.body["lifecycleStatus"], "Launched");
    assert_eq!(patched.body["description"], "fast");
    let event = listener.next(WAIT).await.expect("state change event");
    assert_eq!(event["eventType"], "ProductOfferingStateChangeEvent");
    let auth = format!("Bearer {TOKEN}");
    let stale = h
        .raw(
            Method::PATCH,
            &format!("{BASE}/productOffering/{id}"),
            &[
                ("content-type", "application/merge-patch+json"),
                ("authorization", auth.as_str()),
                ("if-match", "\"1\""),
            ],
            br#"{"name": "lost update"}"#.to_vec(),
        )
        .await;
    stale.tmf_error(412, "PreconditionFailed");
    let v1 = h.get(&format!("/productOffering/{id}/version/1")).await;
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.body, fibre);

    // list: ordered by id, with paging headers and filters
    let mut both = vec![id.clone(), id_of(&mobile)];
    both.sort();
    let all = h.get("/productOffering").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.header("x-total-count"), Some("2"));
    let mut listed = ids(&all.body);
    listed.sort();
    assert_eq!(listed, both);
    let page = h.get("/productOffering?limit=1").await;
    assert_eq!(page.status, StatusCode::PARTIAL_CONTENT, "{}", page.text);
    assert_eq!(page.header("x-total-count"), Some("2"));
    assert_eq!(page.header("x-result-count"), Some("1"));
    let launched = h
        .get("/productOffering?lifecycleStatus=Launched&fields=name")
        .await;
    assert_eq!(
        launched.body,
        json!([{"id": id, "href": href, "name": "Fibre 1G"}])
    );

    // delete: 204, then 404; the versions stay readable; the list loses the entity
    let deleted = h.delete(&format!("/productOffering/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    h.get(&format!("/productOffering/{id}"))
        .await
        .tmf_error(404, "NotFound");
    h.patch(&format!("/productOffering/{id}"), json!({"name": "z"}))
        .await
        .tmf_error(404, "NotFound");
    let v2 = h.get(&format!("/productOffering/{id}/version/2")).await;
    assert_eq!(v2.status, StatusCode::OK);
    assert_eq!(v2.body, patched.body);
    h.get(&format!("/productOffering/{id}/version/3"))
        .await
        .tmf_error(404, "NotFound");
    assert_eq!(ids(&h.get("/productOffering").await.body), [id_of(&mobile)]);
    let event = listener.next(WAIT).await.expect("delete event");
    assert_eq!(event["eventType"], "ProductOfferingDeleteEvent");

    // an entity over the stores' size limit (within the request body limit) is refused by
    // DynamoDB and the embedded store alike, and nothing is written
    let huge = "x".repeat(dome_catalog_store::MAX_VERSION_BYTES);
    h.post(
        "/productOffering",
        json!({"name": "huge", "description": huge}),
    )
    .await
    .tmf_error(400, "InvalidBody");

    // the hub registration goes away once
    let unregistered = h.delete(&format!("/hub/{hub_id}")).await;
    assert_eq!(unregistered.status, StatusCode::NO_CONTENT);
    h.delete(&format!("/hub/{hub_id}"))
        .await
        .tmf_error(404, "NotFound");

    // Everything is in the DynamoDB table (read through a store of its own): the outbox in
    // order, the tombstone as head, no subscription left.
    let table = DynamoStore::new(moto.client(), TABLE);
    let changes: Vec<(String, u64, ChangeKind)> = table
        .outbox_after(0, 100)
        .await
        .expect("outbox")
        .into_iter()
        .map(|e| (e.id, e.version, e.change))
        .collect();
    assert_eq!(
        changes,
        [
            (id.clone(), 1, ChangeKind::Create),
            (id_of(&mobile), 1, ChangeKind::Create),
            (id.clone(), 2, ChangeKind::StateChange),
            (id.clone(), 3, ChangeKind::Delete),
        ]
    );
    let head = table
        .head("productOffering", &id)
        .await
        .expect("head")
        .expect("an entity");
    assert_eq!((head.version, head.deleted), (3, true));
    assert_eq!(table.subscriptions().await, Ok(Vec::new()));
}
