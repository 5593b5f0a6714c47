//! A stand-in for the AWS Lambda Runtime API on 127.0.0.1, so that a function binary can be
//! run exactly as Lambda runs it: the process starts with `AWS_LAMBDA_RUNTIME_API` pointing
//! here, long-polls `GET /2018-06-01/runtime/invocation/next` for an event and posts the result
//! to `.../invocation/{request id}/response` (or `/error`). Only the calls a function makes
//! are served; each invocation gets a fresh request id and a 30 s deadline.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

const DEADLINE: Duration = Duration::from_secs(30);

/// What the function reported for one invocation.
#[derive(Debug)]
pub enum Outcome {
    /// Posted to `/response`: the handler's result.
    Response(Value),
    /// Posted to `/error`: `errorType` and `errorMessage`.
    Error(Value),
}

#[derive(Default)]
struct Shared {
    queued: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_errors: Mutex<Vec<Value>>,
    next_id: Mutex<u64>,
}

pub struct RuntimeApi {
    address: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    pub async fn start() -> anyhow::Result<RuntimeApi> {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Queues `event` and waits for the function's answer.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> anyhow::Result<Outcome> {
        let id = {
            let mut next = self.shared.next_id.lock().expect("lock");
            *next += 1;
            format!("00000000-0000-4000-8000-{:012}", *next)
        };
        let (sender, receiver) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .expect("lock")
            .insert(id.clone(), sender);
        self.shared
            .queued
            .lock()
            .expect("lock")
            .push_back((id.clone(), event));
        self.shared.arrived.notify_one();
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => bail!("invocation {id}: the emulator dropped it"),
            Err(_) => {
                let init = self.shared.init_errors.lock().expect("lock").clone();
                bail!("invocation {id}: no answer within {timeout:?} (init errors: {init:?})")
            }
        }
    }
}

async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    loop {
        // Register interest before looking, so an event queued in between is not missed.
        let arrived = shared.arrived.notified();
        let queued = shared.queued.lock().expect("lock").pop_front();
        if let Some((id, event)) = queued {
            let deadline = SystemTime::now()
                .checked_add(DEADLINE)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis())
                .unwrap_or_default();
            let mut headers = HeaderMap::new();
            let mut set = |name: &'static str, value: String| {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            };
            set("lambda-runtime-aws-request-id", id);
            set("lambda-runtime-deadline-ms", deadline.to_string());
            set(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:000000000000:function:under-test".to_owned(),
            );
            set(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
            );
            set("content-type", "application/json".to_owned());
            return (StatusCode::OK, headers, event.to_string()).into_response();
        }
        arrived.await;
    }
}

fn answer(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.waiting.lock().expect("lock").remove(id) {
        Some(sender) => {
            let _ = sender.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Outcome::Response(json_or_text(&body)))
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Outcome::Error(json_or_text(&body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    shared
        .init_errors
        .lock()
        .expect("lock")
        .push(json_or_text(&body));
    StatusCode::ACCEPTED
}

/// A function process started against a [`RuntimeApi`]; killed when dropped. Its output goes
/// to a file, shown by [`FunctionProcess::log`] when a test fails.
pub struct FunctionProcess {
    child: Child,
    log: PathBuf,
}

impl FunctionProcess {
    /// Starts `binary` with the variables Lambda sets for a function plus `env`.
    pub fn start(
        binary: &Path,
        name: &str,
        runtime: &RuntimeApi,
        env: &[(&str, String)],
        log: PathBuf,
    ) -> anyhow::Result<FunctionProcess> {
        let stderr = std::fs::File::create(&log)?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", "eu-west-1")
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(FunctionProcess { child, log })
    }

    /// Whether the process is still running (a function must survive bad input).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
