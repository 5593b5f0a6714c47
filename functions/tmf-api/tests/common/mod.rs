//! Shared test harness: the real router over an embedded store in a temporary directory.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use dome_catalog_store::{CatalogStore, EmbeddedStore, OutboxEntry};
use dome_tmf::{ApiSpec, QueryLimits};
use dome_tmf_api::auth::TokenVerifier;
use dome_tmf_api::notify::{HttpTransport, InProcessNotifier, RetryPolicy};
use dome_tmf_api::{router, AppState, StaticTokens};
use serde_json::Value;
use tokio::sync::mpsc;
use tower::ServiceExt;

pub const BASE: &str = "/tmf-api/productCatalogManagement/v4";
pub const PUBLIC: &str = "https://market-a.example";
pub const TOKEN: &str = "test-token";

pub struct Harness {
    pub router: Router,
    pub store: Arc<dyn CatalogStore>,
    _dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a TMF error with this status and code, and returns its message.
    pub fn tmf_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(self.body["status"], status.to_string(), "{}", self.text);
        assert!(self.body["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(
            self.header("content-type"),
            Some("application/json;charset=utf-8")
        );
        self.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

/// Wraps the store the router uses (e.g. to delay reads).
pub type StoreWrapper = Box<dyn FnOnce(Arc<dyn CatalogStore>) -> Arc<dyn CatalogStore>>;

pub struct Options {
    pub public_base_url: Option<String>,
    pub max_body_bytes: usize,
    pub auth: bool,
    /// Wraps the embedded store (e.g. to delay reads).
    pub wrap: Option<StoreWrapper>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            public_base_url: Some(PUBLIC.to_string()),
            max_body_bytes: 1024 * 1024,
            auth: true,
            wrap: None,
        }
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    pub fn with(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let embedded: Arc<dyn CatalogStore> =
            Arc::new(EmbeddedStore::open(dir.path().join("catalog.redb")).expect("store"));
        let store = match options.wrap {
            Some(wrap) => wrap(embedded),
            None => embedded,
        };
        let limits = QueryLimits::default();
        let transport = Arc::new(HttpTransport::new(Duration::from_secs(5)).expect("client"));
        let notifier = Arc::new(InProcessNotifier::start(
            Arc::clone(&store),
            transport,
            fast_retries(),
            limits.clone(),
        ));
        let verifier: Option<Arc<dyn TokenVerifier>> = if options.auth {
            Some(Arc::new(StaticTokens::new([TOKEN])))
        } else {
            None
        };
        let state = AppState {
            api: Arc::new(ApiSpec::tmf620().expect("spec")),
            store: Arc::clone(&store),
            verifier,
            notifier,
            public_base_url: options.public_base_url,
            max_body_bytes: options.max_body_bytes,
            limits,
            members: None,
            member_id: None,
        };
        Self {
            router: router(state),
            store,
            _dir: dir,
        }
    }

    /// Sends a request; `body` is sent as is with the given content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Body::from(body)).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// An authorised JSON request below the API base path.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {TOKEN}");
        let headers = [
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ];
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, &format!("{BASE}{path}"), &headers, bytes)
            .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.raw(Method::GET, &format!("{BASE}{path}"), &[], Vec::new())
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates an entity and returns its representation.
    pub async fn create(&self, resource: &str, body: Value) -> Value {
        let answer = self.post(&format!("/{resource}"), body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer.body
    }

    /// The whole outbox (what was stored, in order).
    pub async fn outbox(&self) -> Vec<OutboxEntry> {
        self.store.outbox_after(0, 100_000).await.expect("outbox")
    }
}

/// A local HTTP listener that records the notifications it receives. The first `failures`
/// requests are answered 500.
pub struct Listener {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<Value>,
    pub attempts: Arc<Mutex<u32>>,
}

impl Listener {
    pub async fn start(failures: u32) -> Self {
        use axum::extract::State;
        use axum::routing::post;

        #[derive(Clone)]
        struct Shared {
            tx: mpsc::UnboundedSender<Value>,
            attempts: Arc<Mutex<u32>>,
            failures: u32,
        }

        async fn receive(State(shared): State<Shared>, body: axum::body::Bytes) -> StatusCode {
            let attempt = {
                let mut attempts = shared.attempts.lock().unwrap_or_else(|p| p.into_inner());
                *attempts += 1;
                *attempts
            };
            if attempt <= shared.failures {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = shared.tx.send(value);
            StatusCode::CREATED
        }

        let (tx, received) = mpsc::unbounded_channel();
        let attempts = Arc::new(Mutex::new(0));
        let shared = Shared {
            tx,
            attempts: Arc::clone(&attempts),
            failures,
        };
        let app = Router::new()
            .route("/listener", post(receive))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/listener"),
            received,
            attempts,
        }
    }

    /// The next notification, or `None` after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.received.recv())
            .await
            .ok()
            .flatten()
    }
}
