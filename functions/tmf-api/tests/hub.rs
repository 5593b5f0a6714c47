//! Hub registrations and notification delivery to a local listener.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Harness, Listener, BASE, PUBLIC};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn register_deliver_and_unregister() {
    let h = Harness::new();
    let mut listener = Listener::start(0).await;
    let registered = h.post("/hub", json!({"callback": listener.url})).await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text
    );
    let hub_id = registered.body["id"].as_str().expect("id").to_string();
    assert_eq!(registered.body["callback"], listener.url);
    assert_eq!(
        registered.header("location"),
        Some(format!("{PUBLIC}{BASE}/hub/{hub_id}").as_str())
    );

    // create, attribute change, state change, delete: four events in that order
    let po = h.create("productOffering", json!({"name": "Fibre"})).await;
    let id = po["id"].as_str().expect("id").to_string();
    let created = listener.next(WAIT).await.expect("create event");
    assert_eq!(created["eventType"], "ProductOfferingCreateEvent");
    assert_eq!(created["event"]["productOffering"], po);
    assert!(created["eventId"].as_str().is_some_and(|e| e.len() == 36));
    assert!(created["eventTime"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    h.patch(
        &format!("/productOffering/{id}"),
        json!({"description": "fast"}),
    )
    .await;
    let changed = listener.next(WAIT).await.expect("change event");
    assert_eq!(
        changed["eventType"],
        "ProductOfferingAttributeValueChangeEvent"
    );
    assert_eq!(changed["event"]["productOffering"]["description"], "fast");
    assert_eq!(changed["event"]["productOffering"]["version"], "2");

    h.patch(
        &format!("/productOffering/{id}"),
        json!({"lifecycleStatus": "Launched"}),
    )
    .await;
    let state = listener.next(WAIT).await.expect("state event");
    assert_eq!(state["eventType"], "ProductOfferingStateChangeEvent");
    assert_eq!(
        state["event"]["productOffering"]["lifecycleStatus"],
        "Launched"
    );

    assert_eq!(
        h.delete(&format!("/productOffering/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    let deleted = listener.next(WAIT).await.expect("delete event");
    assert_eq!(deleted["eventType"], "ProductOfferingDeleteEvent");
    assert_eq!(deleted["event"]["productOffering"]["id"], id.as_str());
    assert_eq!(deleted["event"]["productOffering"]["version"], "3");

    // unregister: 204, then 404, and no more events
    assert_eq!(
        h.delete(&format!("/hub/{hub_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    h.delete(&format!("/hub/{hub_id}"))
        .await
        .tmf_error(404, "NotFound");
    h.create("catalog", json!({"name": "after"})).await;
    assert!(listener.next(Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn queries_select_events() {
    let h = Harness::new();
    let mut launched = Listener::start(0).await;
    let mut categories = Listener::start(0).await;
    h.post(
        "/hub",
        json!({"callback": launched.url,
               "query": "eventType=ProductOfferingStateChangeEvent&lifecycleStatus=Launched"}),
    )
    .await;
    let r = h
        .post(
            "/hub",
            json!({"callback": categories.url, "query": "eventType = CategoryCreateEvent"}),
        )
        .await;
    assert_eq!(r.body["query"], "eventType = CategoryCreateEvent");

    let po = h.create("productOffering", json!({"name": "x"})).await;
    let path = format!("/productOffering/{}", po["id"].as_str().unwrap_or_default());
    h.patch(&path, json!({"lifecycleStatus": "Active"})).await;
    h.patch(&path, json!({"lifecycleStatus": "Launched"})).await;
    let cat = h.create("category", json!({"name": "c"})).await;

    let got = launched.next(WAIT).await.expect("launched event");
    assert_eq!(got["eventType"], "ProductOfferingStateChangeEvent");
    assert_eq!(got["event"]["productOffering"]["version"], "3");
    let got = categories.next(WAIT).await.expect("category event");
    assert_eq!(got["event"]["category"]["id"], cat["id"]);
    assert!(launched.next(Duration::from_millis(500)).await.is_none());
    assert!(categories.next(Duration::from_millis(100)).await.is_none());
}

#[tokio::test]
async fn failed_deliveries_are_retried() {
    let h = Harness::new();
    // the listener fails three times, then accepts
    let mut listener = Listener::start(3).await;
    h.post("/hub", json!({"callback": listener.url})).await;
    let c = h.create("catalog", json!({"name": "retry me"})).await;
    let got = listener.next(WAIT).await.expect("delivered after retries");
    assert_eq!(got["event"]["catalog"]["id"], c["id"]);
    assert_eq!(
        *listener.attempts.lock().unwrap_or_else(|p| p.into_inner()),
        4
    );
}

#[tokio::test]
async fn one_dead_listener_does_not_block_others() {
    let h = Harness::new();
    let mut alive = Listener::start(0).await;
    // nothing listens on port 1
    h.post("/hub", json!({"callback": "http://127.0.0.1:1/dead"}))
        .await;
    h.post("/hub", json!({"callback": alive.url})).await;
    h.create("category", json!({"name": "c"})).await;
    let got = alive.next(WAIT).await.expect("event");
    assert_eq!(got["eventType"], "CategoryCreateEvent");
}
