//! tmf-api (over DynamoDB, with the SQS sink) → SQS → notifier → callbacks, on a moto server
//! and a local callback server: delivery, redelivery after failures, the dead-letter queue,
//! and the Lambda handler's partial batch failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use dome_catalog_store::CatalogStore;
use dome_notifier::{handle_sqs_event, poll_once, Notifier, PollSettings};
use dome_queue_sqs::testing::{client, create_queue_with_dlq, MotoServer};
use dome_queue_sqs::SqsQueue;
use dome_tmf::{ApiSpec, QueryLimits};
use dome_tmf_api::notify::{HttpTransport, SqsNotificationSink};
use dome_tmf_api::{router, AppState, StaticTokens};
use serde_json::{json, Value};
use tower::ServiceExt;

const BASE: &str = "/tmf-api/productCatalogManagement/v4";
const TOKEN: &str = "test-token";

/// What the callback server received, per callback name: (X-Event-Id header, body).
type Received = Arc<Mutex<HashMap<String, Vec<(String, Value)>>>>;
/// Requests seen per callback name, failed ones included.
type Attempts = Arc<Mutex<HashMap<String, u32>>>;

/// Listeners: `ok` always answers 204; `flaky` answers 500 twice, then 204; `down` always 500.
struct Callbacks {
    base: String,
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Callbacks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Callbacks {
    async fn start() -> Self {
        let received: Received = Arc::default();
        let attempts: Attempts = Arc::default();
        let app = Router::new()
            .route(
                "/cb/{name}",
                post(
                    |State((received, attempts)): State<(Received, Attempts)>,
                     Path(name): Path<String>,
                     headers: HeaderMap,
                     body: String| async move {
                        let attempt = {
                            let mut a = attempts.lock().unwrap_or_else(|p| p.into_inner());
                            let n = a.entry(name.clone()).or_insert(0);
                            *n += 1;
                            *n
                        };
                        let fail = match name.as_str() {
                            "flaky" => attempt <= 2,
                            "down" => true,
                            _ => false,
                        };
                        if fail {
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        let id = headers
                            .get("x-event-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        received
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(name)
                            .or_default()
                            .push((id, body));
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state((Arc::clone(&received), attempts));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}/cb"),
            received,
            task,
        }
    }

    fn got(&self, name: &str) -> Vec<(String, Value)> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

async fn call(app: &Router, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(format!("{BASE}{path}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

struct Setup {
    _moto: MotoServer,
    app: Router,
    queue: SqsQueue,
    dlq: SqsQueue,
    notifier: Notifier,
    callbacks: Callbacks,
}

async fn setup(max_receive_count: u32) -> Setup {
    let moto = MotoServer::start().await.expect("moto");
    let store: Arc<dyn CatalogStore> = Arc::new(moto.store("catalog").await.expect("table"));
    let sqs = client(&moto.endpoint());
    let (url, dlq_url) = create_queue_with_dlq(&sqs, "notify", false, max_receive_count)
        .await
        .expect("queues");
    let queue = SqsQueue::new(sqs.clone(), url);
    let state = AppState {
        api: Arc::new(ApiSpec::tmf620().expect("spec")),
        store: Arc::clone(&store),
        verifier: Some(Arc::new(StaticTokens::new([TOKEN]))),
        notifier: Arc::new(SqsNotificationSink::new(queue.clone())),
        public_base_url: Some("https://market-a.example".into()),
        max_body_bytes: 1024 * 1024,
        limits: QueryLimits::default(),
        members: None,
        member_id: None,
    };
    // The callbacks are on loopback, which only a permissive transport reaches.
    let transport = Arc::new(HttpTransport::with_private_callbacks(
        Duration::from_secs(5),
        true,
    ));
    Setup {
        _moto: moto,
        app: router(state),
        queue,
        dlq: SqsQueue::new(sqs, dlq_url),
        notifier: Notifier::new(store, transport, QueryLimits::default()),
        callbacks: Callbacks::start().await,
    }
}

const FAST: PollSettings = PollSettings {
    wait_seconds: 1,
    visibility_timeout_seconds: 1,
};

/// Polls until `done` or 30 s passed.
async fn poll_until(s: &Setup, mut done: impl FnMut(&Setup) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(s) {
        assert!(Instant::now() < deadline, "timed out");
        poll_once(&s.notifier, &s.queue, FAST).await.expect("poll");
    }
}

async fn register(s: &Setup, name: &str, query: &str) {
    let (status, body) = call(
        &s.app,
        Method::POST,
        "/hub",
        json!({"callback": format!("{}/{name}", s.callbacks.base), "query": query}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn create_offering(s: &Setup, name: &str) -> Value {
    let (status, body) = call(
        &s.app,
        Method::POST,
        "/productOffering",
        json!({"name": name}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn delivery_redelivery_and_dead_letters() {
    let s = setup(3).await;
    register(&s, "ok", "eventType=ProductOfferingCreateEvent").await;
    register(&s, "flaky", "name=Flaky").await;
    register(&s, "down", "name=Doomed").await;

    // Delivered on the first receive.
    let plain = create_offering(&s, "Plain").await;
    poll_until(&s, |s| !s.callbacks.got("ok").is_empty()).await;
    let (event_id, event) = s.callbacks.got("ok")[0].clone();
    assert_eq!(event["eventType"], "ProductOfferingCreateEvent");
    assert_eq!(
        event["eventId"],
        event_id.as_str(),
        "X-Event-Id is the eventId"
    );
    assert_eq!(event["event"]["productOffering"], plain);
    assert_eq!(s.queue.approximate_depth().await.expect("depth"), 0);

    // `flaky` fails twice: the message comes back until it succeeds; `ok` sees repeats of
    // the same eventId.
    let flaky = create_offering(&s, "Flaky").await;
    poll_until(&s, |s| !s.callbacks.got("flaky").is_empty()).await;
    let (flaky_id, flaky_event) = s.callbacks.got("flaky")[0].clone();
    assert_eq!(flaky_event["event"]["productOffering"], flaky);
    let ok_copies: Vec<_> = s
        .callbacks
        .got("ok")
        .into_iter()
        .filter(|(id, _)| *id == flaky_id)
        .collect();
    assert_eq!(ok_copies.len(), 3, "delivered with each of the 3 receives");
    assert_eq!(s.queue.approximate_depth().await.expect("depth"), 0);

    // `down` never answers 2xx: after 3 receives the message is in the dead-letter queue.
    create_offering(&s, "Doomed").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        poll_once(&s.notifier, &s.queue, FAST).await.expect("poll");
        let dead = s.dlq.receive(10, 0, 30).await.expect("dlq");
        if !dead.is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "never dead-lettered");
    };
    assert_eq!(dead.len(), 1);
    assert!(dead[0].body.contains("Doomed"), "{}", dead[0].body);
    assert!(s.callbacks.got("down").is_empty());
    assert_eq!(s.queue.approximate_depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn lambda_handler_reports_only_failed_messages() {
    let s = setup(5).await;
    register(&s, "ok", "name=Fine").await;
    register(&s, "down", "name=Doomed").await;
    create_offering(&s, "Fine").await;
    create_offering(&s, "Doomed").await;

    // Turn the queued messages into the event Lambda would hand the function.
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while records.len() < 2 && Instant::now() < deadline {
        for m in s.queue.receive(10, 1, 30).await.expect("receive") {
            records.push(json!({
                "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:notify", "awsRegion": "us-east-1"
            }));
        }
    }
    records.push(json!({"messageId": "garbage", "body": "not json", "attributes": {}, "messageAttributes": {}}));
    let doomed_id = records
        .iter()
        .find(|r| r["body"].as_str().is_some_and(|b| b.contains("Doomed")))
        .map(|r| r["messageId"].as_str().unwrap_or_default().to_string())
        .expect("doomed message");
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).expect("event");
    let response = handle_sqs_event(&s.notifier, event).await;
    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    let mut expected = vec![doomed_id, "garbage".to_string()];
    expected.sort();
    assert_eq!(failed, expected);
    assert_eq!(s.callbacks.got("ok").len(), 1);
    let wire = serde_json::to_value(&response).expect("serialise");
    assert!(
        wire["batchItemFailures"][0]["itemIdentifier"].is_string(),
        "{wire}"
    );
}
