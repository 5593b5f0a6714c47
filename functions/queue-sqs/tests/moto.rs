//! The adapter against a real moto server: FIFO order, deduplication, batches over 10,
//! redelivery, the dead-letter queue, attributes and depth.
//!
//! Each test gets new queues on a moto server of its own, or, with `DOME_TEST_AWS_ENDPOINT`
//! and `DOME_TEST_SQS_QUEUE_URL` / `DOME_TEST_SQS_FIFO_QUEUE_URL` set (local/infra-check.sh:
//! the queues it deployed into moto's CloudFormation), the deployed queues, purged, in turn.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dome_queue_sqs::testing::{client, TestQueues};
use dome_queue_sqs::{dedup_id, fifo_group_id, OutgoingMessage, QueueError, SqsQueue};

async fn queues(name: &str, fifo: bool, max_receive: u32) -> TestQueues {
    match TestQueues::new(name, fifo, max_receive).await {
        Ok(queues) => queues,
        Err(e) => panic!("{e}"),
    }
}

/// Tags this test run's deduplication ids: a deployed FIFO queue remembers ids for five
/// minutes, even across a purge, so a second run must not reuse the first one's.
fn run_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}/", std::process::id())
    })
}

fn fifo_message(group: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_string(),
        group_id: Some(fifo_group_id(group)),
        dedup_id: Some(dedup_id(&format!("{}{body}", run_tag()))),
        attributes: vec![],
    }
}

/// Receives until `count` messages arrived or `timeout` passed, deleting each one.
async fn drain(queue: &SqsQueue, count: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut bodies = Vec::new();
    while bodies.len() < count && Instant::now() < deadline {
        for message in queue.receive(10, 1, 30).await.expect("receive") {
            queue.delete(&message.receipt_handle).await.expect("delete");
            bodies.push(message.body);
        }
    }
    bodies
}

#[tokio::test]
async fn fifo_order_dedup_batches_and_depth() {
    let queues = queues("order", true, 5).await;
    let queue = &queues.queue;
    assert!(queue.is_fifo());

    // 25 messages over three batches, in two interleaved groups, plus one duplicate.
    let mut messages: Vec<OutgoingMessage> = (0..25)
        .map(|i| {
            let group = if i % 2 == 0 { "entity A" } else { "entity/B" };
            fifo_message(group, &format!("{group}#{i:02}"))
        })
        .collect();
    messages.push(fifo_message("entity A", "entity A#00"));
    queue.send_batch(messages).await.expect("send");
    assert_eq!(queue.approximate_depth().await.expect("depth"), 25);

    let bodies = drain(queue, 25, Duration::from_secs(20)).await;
    assert_eq!(bodies.len(), 25, "{bodies:?}");
    for group in ["entity A", "entity/B"] {
        let in_group: Vec<&String> = bodies.iter().filter(|b| b.starts_with(group)).collect();
        let mut sorted = in_group.clone();
        sorted.sort();
        assert_eq!(in_group, sorted, "order within {group}");
    }
    assert_eq!(
        bodies.iter().filter(|b| *b == "entity A#00").count(),
        1,
        "dedup"
    );
    assert_eq!(queue.approximate_depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn attributes_group_and_receive_count_round_trip() {
    let queues = queues("attrs", true, 5).await;
    let queue = &queues.queue;
    let mut message = fifo_message("group:1", "hello");
    message.attributes = vec![
        ("origin".into(), "member-a".into()),
        ("eventType".into(), "ProductOfferingCreateEvent".into()),
    ];
    queue.send_batch(vec![message]).await.expect("send");

    let received = queue.receive(10, 1, 1).await.expect("receive");
    assert_eq!(received.len(), 1);
    let first = &received[0];
    assert_eq!(first.body, "hello");
    assert_eq!(first.receive_count, 1);
    assert_eq!(first.group_id.as_deref(), Some("group:1"));
    assert_eq!(
        first.attributes,
        vec![
            (
                "eventType".to_string(),
                "ProductOfferingCreateEvent".to_string()
            ),
            ("origin".to_string(), "member-a".to_string()),
        ]
    );
    // In flight still counts.
    assert_eq!(queue.approximate_depth().await.expect("depth"), 1);

    // Not deleted: after the 1 s visibility timeout it comes back, counted twice.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = queue.receive(10, 2, 1).await.expect("receive");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first.message_id);
    assert_eq!(again[0].receive_count, 2);

    // change_visibility(0) releases it at once.
    queue
        .change_visibility(&again[0].receipt_handle, 0)
        .await
        .expect("change visibility");
    let third = queue.receive(10, 2, 30).await.expect("receive");
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].receive_count, 3);
    // Nothing left in flight for the next test on a deployed queue.
    queue
        .delete(&third[0].receipt_handle)
        .await
        .expect("delete");
}

/// A message never deleted is received `max_receive_count` times, then lands in the
/// dead-letter queue with its attributes.
async fn redrive(queues: &TestQueues) {
    let (queue, dlq) = (&queues.queue, &queues.dlq);
    let max = queues.max_receive_count;
    let mut message = OutgoingMessage {
        body: "poison".into(),
        attributes: vec![("reason".into(), "test".into())],
        ..Default::default()
    };
    if queue.is_fifo() {
        message = OutgoingMessage {
            attributes: message.attributes,
            ..fifo_message("poison-group", "poison")
        };
    }
    queue.send_batch(vec![message]).await.expect("send");

    let mut counts = Vec::new();
    // About 1.1 s a receive; deployed queues allow up to 10 receives.
    let deadline = Instant::now() + Duration::from_secs(10 + 3 * u64::from(max));
    while Instant::now() < deadline {
        let received = queue.receive(1, 1, 1).await.expect("receive");
        counts.extend(received.iter().map(|m| m.receive_count));
        if received.is_empty() && counts.len() >= max as usize {
            break;
        }
        // Never deleted: wait out the visibility timeout.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(
        counts,
        (1..=max).collect::<Vec<u32>>(),
        "received max_receive_count times"
    );
    let dead = dlq.receive(10, 2, 30).await.expect("receive dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(
        dead[0].attributes,
        vec![("reason".to_string(), "test".to_string())]
    );
    dlq.delete(&dead[0].receipt_handle).await.expect("delete");
    assert_eq!(queue.approximate_depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn redrive_to_the_dead_letter_queue() {
    let queues = queues("redrive", false, 2).await;
    assert!(!queues.queue.is_fifo());
    redrive(&queues).await;
}

#[tokio::test]
async fn fifo_redrive_to_the_dead_letter_queue() {
    let queues = queues("redrive", true, 2).await;
    assert!(queues.queue.is_fifo() && queues.dlq.is_fifo());
    redrive(&queues).await;
}

#[tokio::test]
async fn refused_requests_are_reported() {
    let queues = queues("refuse", true, 5).await;
    let queue = &queues.queue;
    // (Entry-level refusals, which moto does not produce for these fields, are covered by
    // the unit test of the retry loop.)
    // A FIFO queue refuses a request with an entry without a group id as a whole.
    let whole = queue
        .send_batch(vec![OutgoingMessage {
            body: "no group".into(),
            ..Default::default()
        }])
        .await
        .expect_err("refused");
    assert!(
        matches!(&whole, QueueError::Sqs { message, .. } if message.contains("MessageGroupId")),
        "{whole}"
    );

    let missing = SqsQueue::new(
        client(&queues.endpoint),
        format!("{}/000000000000/missing", queues.endpoint),
    );
    assert!(matches!(
        missing.approximate_depth().await,
        Err(QueueError::Sqs { .. })
    ));
}
