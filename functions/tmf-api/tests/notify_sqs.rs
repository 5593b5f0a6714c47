//! `SqsNotificationSink` on a moto server: one message per event with its id and type as
//! attributes; FIFO queues group by entity and deduplicate by event id; events too large
//! for SQS travel as a reference to the stored version and are rebuilt from the store.

use std::sync::Arc;

use dome_catalog_store::{CatalogStore, ChangeKind, EntityVersion};
use dome_queue_sqs::testing::{client, create_queue_with_dlq, MotoServer};
use dome_queue_sqs::SqsQueue;
use dome_tmf_api::notify::{NotificationSink, QueuedNotification, SqsNotificationSink};
use serde_json::{json, Value};

fn event(id: &str, description: &str) -> Value {
    json!({
        "eventId": id,
        "eventTime": "2025-01-01T00:00:00.000Z",
        "eventType": "ProductOfferingCreateEvent",
        "event": {"productOffering": {
            "id": "po-1", "href": "https://m.example/po-1", "version": "1",
            "name": "Fibre", "description": description
        }}
    })
}

#[tokio::test]
async fn one_message_per_event_with_attributes() {
    let moto = MotoServer::start().await.expect("moto");
    let sqs = client(&moto.endpoint());
    let (url, _) = create_queue_with_dlq(&sqs, "notify", false, 3)
        .await
        .expect("queue");
    let queue = SqsQueue::new(sqs, url);
    let sink = SqsNotificationSink::new(queue.clone());
    sink.publish(event("ev-1", "small")).await;
    sink.publish(event("ev-2", "small")).await;

    let mut received = queue.receive(10, 1, 30).await.expect("receive");
    received.sort_by(|a, b| a.attributes.cmp(&b.attributes));
    assert_eq!(received.len(), 2);
    let first = &received[0];
    assert_eq!(
        first.attributes,
        vec![
            ("eventId".to_string(), "ev-1".to_string()),
            (
                "eventType".to_string(),
                "ProductOfferingCreateEvent".to_string()
            ),
        ]
    );
    assert_eq!(first.group_id, None);
    assert_eq!(
        QueuedNotification::decode(&first.body).expect("decode"),
        QueuedNotification::Event {
            event: event("ev-1", "small")
        }
    );
}

#[tokio::test]
async fn fifo_groups_by_entity_and_dedups_by_event() {
    let moto = MotoServer::start().await.expect("moto");
    let sqs = client(&moto.endpoint());
    let (url, _) = create_queue_with_dlq(&sqs, "notify", true, 3)
        .await
        .expect("queue");
    let queue = SqsQueue::new(sqs, url);
    let sink = SqsNotificationSink::new(queue.clone());
    sink.publish(event("ev-1", "small")).await;
    sink.publish(event("ev-1", "small")).await;
    let received = queue.receive(10, 1, 30).await.expect("receive");
    assert_eq!(received.len(), 1, "deduplicated by eventId");
    assert_eq!(
        received[0].group_id.as_deref(),
        Some("productOffering/po-1")
    );
}

#[tokio::test]
async fn large_events_travel_as_references() {
    let moto = MotoServer::start().await.expect("moto");
    let store: Arc<dyn CatalogStore> = Arc::new(moto.store("catalog").await.expect("table"));
    let sqs = client(&moto.endpoint());
    let (url, _) = create_queue_with_dlq(&sqs, "notify", false, 3)
        .await
        .expect("queue");
    let queue = SqsQueue::new(sqs, url);

    // An entity of 300 KiB: over SQS's message limit, within the store's.
    let big = event("ev-big", &"x".repeat(300 * 1024));
    let entity = big["event"]["productOffering"].clone();
    store
        .create(
            EntityVersion {
                resource: "productOffering".into(),
                id: "po-1".into(),
                version: 1,
                body: entity,
                last_update: "2025-01-01T00:00:00.000Z".into(),
                deleted: false,
                provenance: None,
            },
            ChangeKind::Create,
        )
        .await
        .expect("stored");

    SqsNotificationSink::new(queue.clone())
        .publish(big.clone())
        .await;
    let received = queue.receive(10, 1, 30).await.expect("receive");
    assert_eq!(received.len(), 1);
    assert!(received[0].body.len() < 1024, "a reference, not the entity");
    let queued = QueuedNotification::decode(&received[0].body).expect("decode");
    assert!(matches!(
        queued,
        QueuedNotification::Reference { version: 1, .. }
    ));
    assert_eq!(
        queued.into_event(store.as_ref()).await.expect("rebuilt"),
        big
    );
}
