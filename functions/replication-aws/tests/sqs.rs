//! The SQS hand-off and consumer against real SQS semantics (a moto server): FIFO groups,
//! receive counts, visibility, the dead-letter queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dome_catalog_store::{CatalogStore, Decision, EmbeddedStore};
use dome_events::{test_keys, Action, ContentHash};
use dome_queue_sqs::testing::{client, create_queue_with_dlq, MotoServer};
use dome_queue_sqs::SqsQueue;
use dome_replication::event::Delivery;
use dome_replication::fetch::{FetchError, VersionFetcher};
use dome_replication::relay::Handoff;
use dome_replication::replicator::{Replicator, ReplicatorConfig};
use dome_replication_aws::consumer::REASON_ATTRIBUTE;
use dome_replication_aws::{poll_once, ConsumerConfig, SqsHandoff, SqsReplicator};
use serde_json::{json, Value};

/// Serves the bodies it was given; counts fetches; `down` makes the origin unreachable.
#[derive(Default)]
struct FakeOrigin {
    bodies: Mutex<HashMap<String, Value>>,
    fetches: Mutex<Vec<String>>,
    down: bool,
}

#[async_trait]
impl VersionFetcher for FakeOrigin {
    async fn fetch(&self, location: &str) -> Result<Value, FetchError> {
        self.fetches
            .lock()
            .map_err(|_| FetchError::Unreachable("poisoned".into()))?
            .push(location.to_owned());
        if self.down {
            return Err(FetchError::Unreachable("connection refused".into()));
        }
        self.bodies
            .lock()
            .map_err(|_| FetchError::Unreachable("poisoned".into()))?
            .get(location)
            .cloned()
            .ok_or_else(|| FetchError::Missing(location.to_owned()))
    }
}

impl FakeOrigin {
    fn fetch_count(&self) -> usize {
        self.fetches.lock().map(|f| f.len()).unwrap_or(0)
    }
}

/// Version `version` of offering `id` from member 0, with the body its origin serves.
fn delivery(origin: &FakeOrigin, id: &str, version: u64, seq: u64) -> Delivery {
    let mut event = test_keys::sample_create(0, seq, id);
    let body =
        json!({"id": id, "name": format!("{id} v{version}"), "version": version.to_string()});
    event.entity.version = version;
    if version > 1 {
        event.action = Action::Update;
        event.previous_hash = Some(ContentHash::of_bytes(b"previous"));
    }
    event.location = format!("http://origin.test/productOffering/{id}/version/{version}");
    event.content_hash = Some(ContentHash::of_json(&body).expect("hashable"));
    if let Ok(mut bodies) = origin.bodies.lock() {
        bodies.insert(event.location.clone(), body);
    }
    Delivery {
        height: 10 + seq,
        index: 0,
        tx_hash: format!("{seq:064X}"),
        event,
    }
}

struct Setup {
    _moto: MotoServer,
    _dir: tempfile::TempDir,
    store: Arc<dyn CatalogStore>,
    queue: SqsQueue,
    dlq: SqsQueue,
    consumer: SqsReplicator,
}

async fn setup(origin: Arc<FakeOrigin>, max_attempts: u32) -> anyhow::Result<Setup> {
    let moto = MotoServer::start().await?;
    let sqs = client(&moto.endpoint());
    // The redrive backstop sits above the consumer's own bound, as on AWS.
    let (queue_url, dlq_url) =
        create_queue_with_dlq(&sqs, "replication", true, max_attempts + 2).await?;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn CatalogStore> = Arc::new(EmbeddedStore::open(dir.path().join("s.redb"))?);
    let replicator = Arc::new(Replicator::new(
        Arc::clone(&store),
        origin,
        ReplicatorConfig::default(),
    ));
    let dlq = SqsQueue::new(sqs.clone(), dlq_url);
    let consumer = SqsReplicator::new(
        replicator,
        dlq.clone(),
        ConsumerConfig {
            max_attempts,
            // Retries become visible again at once, so the test does not wait.
            backoff_cap_seconds: 0,
            concurrency: 4,
        },
    );
    Ok(Setup {
        _moto: moto,
        _dir: dir,
        store,
        queue: SqsQueue::new(sqs, queue_url),
        dlq,
        consumer,
    })
}

async fn decisions(store: &dyn CatalogStore) -> anyhow::Result<Vec<(String, u64, Decision)>> {
    Ok(store
        .audit(None, 1000)
        .await?
        .items
        .into_iter()
        .map(|a| (a.id, a.version, a.decision))
        .collect())
}

#[tokio::test]
async fn handed_off_events_are_applied_once_coalesced_per_entity_and_deleted() -> anyhow::Result<()>
{
    let origin = Arc::new(FakeOrigin::default());
    let s = setup(Arc::clone(&origin), 3).await?;
    let deliveries = vec![
        delivery(&origin, "po-1", 1, 1),
        delivery(&origin, "po-2", 1, 2),
        delivery(&origin, "po-1", 2, 3),
        delivery(&origin, "po-1", 3, 4),
    ];
    let handoff = SqsHandoff::new(s.queue.clone());
    handoff.hand_off(deliveries.clone()).await?;
    // A relay replaying the same heights: deduplicated by transaction hash.
    handoff.hand_off(deliveries).await?;
    assert_eq!(s.queue.approximate_depth().await?, 4);

    let mut total = dome_replication_aws::BatchOutcome::default();
    for _ in 0..5 {
        let outcome = poll_once(&s.consumer, &s.queue, 0, 30).await?;
        total.received += outcome.received;
        total.settled += outcome.settled;
        total.superseded += outcome.superseded;
        assert!(outcome.failed.is_empty(), "{outcome:?}");
    }
    assert_eq!(total.received, 4);
    assert_eq!(s.queue.approximate_depth().await?, 0);
    let held = s
        .store
        .head("productOffering", "po-1")
        .await?
        .expect("po-1 held");
    assert_eq!(held.version, 3);
    assert_eq!(held.body["name"], "po-1 v3");
    assert_eq!(
        s.store
            .head("productOffering", "po-2")
            .await?
            .map(|h| h.version),
        Some(1)
    );
    // Each applied version was fetched once; superseded ones (if the batch held them
    // together) were not fetched at all.
    let applied = decisions(s.store.as_ref())
        .await?
        .into_iter()
        .filter(|d| d.2 == Decision::Applied)
        .count();
    assert_eq!(origin.fetch_count(), applied);
    assert_eq!(total.settled + total.superseded, 4);
    assert_eq!(s.dlq.approximate_depth().await?, 0);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_origin_is_retried_by_redelivery_then_dead_lettered_with_its_reason(
) -> anyhow::Result<()> {
    let origin = Arc::new(FakeOrigin {
        down: true,
        ..FakeOrigin::default()
    });
    let s = setup(Arc::clone(&origin), 3).await?;
    SqsHandoff::new(s.queue.clone())
        .hand_off(vec![delivery(&origin, "po-9", 1, 1)])
        .await?;
    let mut failed_rounds = 0;
    let mut dead = 0;
    for _ in 0..20 {
        let outcome = poll_once(&s.consumer, &s.queue, 1, 30).await?;
        failed_rounds += outcome.failed.len();
        dead += outcome.dead_lettered;
        if dead > 0 {
            break;
        }
    }
    assert_eq!((failed_rounds, dead), (2, 1), "two retries, then the DLQ");
    assert_eq!(origin.fetch_count(), 3);
    assert_eq!(s.queue.approximate_depth().await?, 0);
    let letters = s.store.dead_letters(None, 10).await?.items;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("gave up after 3 attempts"),
        "{}",
        letters[0].reason
    );
    assert!(s.store.head("productOffering", "po-9").await?.is_none());
    let in_dlq = s.dlq.receive(10, 1, 30).await?;
    assert_eq!(in_dlq.len(), 1);
    let reason = in_dlq[0]
        .attributes
        .iter()
        .find(|(name, _)| name == REASON_ATTRIBUTE)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(reason.contains("origin unreachable"), "{reason}");
    let parked: Delivery = serde_json::from_str(&in_dlq[0].body)?;
    assert_eq!(parked.event.entity.id, "po-9");
    Ok(())
}

#[tokio::test]
async fn an_unparsable_message_goes_straight_to_the_dlq() -> anyhow::Result<()> {
    let origin = Arc::new(FakeOrigin::default());
    let s = setup(origin, 3).await?;
    s.queue
        .send_batch(vec![dome_queue_sqs::OutgoingMessage {
            body: "{not json".into(),
            group_id: Some("g".into()),
            dedup_id: Some("d".into()),
            attributes: Vec::new(),
        }])
        .await?;
    let outcome = poll_once(&s.consumer, &s.queue, 1, 30).await?;
    assert_eq!((outcome.received, outcome.dead_lettered), (1, 1));
    assert_eq!(s.queue.approximate_depth().await?, 0);
    let in_dlq = s.dlq.receive(10, 1, 30).await?;
    assert_eq!(in_dlq.len(), 1);
    assert_eq!(in_dlq[0].body, "{not json");
    assert!(in_dlq[0]
        .attributes
        .iter()
        .any(|(name, value)| name == REASON_ATTRIBUTE && value.contains("unparsable")));
    Ok(())
}

#[tokio::test]
async fn lambda_events_report_only_the_messages_to_retry() -> anyhow::Result<()> {
    let origin = Arc::new(FakeOrigin::default());
    let s = setup(Arc::clone(&origin), 3).await?;
    let good = delivery(&origin, "po-1", 1, 1);
    let mut missing = delivery(&origin, "po-2", 1, 2);
    // Not served (yet): a retryable 404.
    missing.event.location.push_str("-not-there");
    SqsHandoff::new(s.queue.clone())
        .hand_off(vec![good, missing])
        .await?;
    let received = s.queue.receive(10, 1, 30).await?;
    assert_eq!(received.len(), 2);
    let arn = "arn:aws:sqs:us-east-1:123456789012:replication.fifo";
    let records = received
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {"ApproximateReceiveCount": m.receive_count.to_string(), "MessageGroupId": m.group_id},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect::<Vec<Value>>();
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(json!({ "Records": records }))?;
    let response = dome_replication_aws::handle_sqs_event(&s.consumer, event).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    let po2 = received
        .iter()
        .find(|m| m.body.contains("po-2"))
        .map(|m| m.message_id.clone());
    assert_eq!(failed, po2.into_iter().collect::<Vec<_>>());
    assert_eq!(
        s.store
            .head("productOffering", "po-1")
            .await?
            .map(|h| h.version),
        Some(1)
    );
    Ok(())
}

#[test]
fn queue_urls_come_from_source_arns_and_backoff_is_exponential_and_capped() {
    assert_eq!(
        dome_replication_aws::queue_url_from_arn("arn:aws:sqs:eu-west-1:123456789012:r.fifo").ok(),
        Some("https://sqs.eu-west-1.amazonaws.com/123456789012/r.fifo".to_owned())
    );
    assert!(dome_replication_aws::queue_url_from_arn("arn:aws:sns:eu-west-1:1:r").is_err());
    assert!(dome_replication_aws::queue_url_from_arn("not an arn").is_err());
    let config = ConsumerConfig::default();
    assert_eq!(config.backoff_seconds(1), 2);
    assert_eq!(config.backoff_seconds(3), 8);
    assert_eq!(config.backoff_seconds(6), 60);
    assert_eq!(config.backoff_seconds(200), 60);
}
