//! The plain-server path: the `tmf-api` binary with the embedded store, over real HTTP.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BASE: &str = "/tmf-api/productCatalogManagement/v4";

/// The server process; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &Path, extra: &[(&str, &str)]) -> Server {
    let addr_file = data_dir.join("addr");
    let _ = std::fs::remove_file(&addr_file);
    let mut command = Command::new(env!("CARGO_BIN_EXE_tmf-api"));
    command
        .env_clear()
        .env("DOME_LISTEN", "127.0.0.1:0")
        .env("DOME_ADDR_FILE", &addr_file)
        .env("DOME_DATA_DIR", data_dir)
        .env("DOME_API_TOKENS", "server-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        command.env(k, v);
    }
    let child = command.spawn().expect("spawn tmf-api");
    let mut server = Server {
        child,
        url: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(addr) = std::fs::read_to_string(&addr_file) {
            if !addr.is_empty() {
                server.url = format!("http://{addr}");
                return server;
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("tmf-api exited early: {status}");
        }
        assert!(Instant::now() < deadline, "tmf-api did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client
        .request(method, url)
        .header("authorization", "Bearer server-token");
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("text");
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, value)
}

#[tokio::test]
async fn binary_serves_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::new();
    let id;
    {
        let server = start(dir.path(), &[]);
        let (status, headers, body) = send(
            &client,
            reqwest::Method::POST,
            &format!("{}{BASE}/productSpecification", server.url),
            Some(json!({"name": "Router"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        id = body["id"].as_str().expect("id").to_string();
        let href = format!("{}{BASE}/productSpecification/{id}", server.url);
        assert_eq!(body["href"], href);
        assert_eq!(
            headers.get("location").and_then(|v| v.to_str().ok()),
            Some(href.as_str())
        );
        let (status, _, body) = send(
            &client,
            reqwest::Method::PATCH,
            &href,
            Some(json!({"brand": "acme"})),
        )
        .await;
        assert_eq!((status, body["version"].as_str()), (200, Some("2")));
        // a body over 1 MiB is refused over a real connection too
        let big = json!({"name": "x", "description": "d".repeat(1_100_000)});
        let (status, _, body) = send(
            &client,
            reqwest::Method::POST,
            &format!("{}{BASE}/productSpecification", server.url),
            Some(big),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (413, Some("PayloadTooLarge"))
        );
    }
    // a restarted server (another port) serves what was stored
    let server = start(
        dir.path(),
        &[("DOME_PUBLIC_BASE_URL", "https://market.example")],
    );
    let (status, _, body) = send(
        &client,
        reqwest::Method::GET,
        &format!("{}{BASE}/productSpecification/{id}/version/1", server.url),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Router");
    assert!(body.get("brand").is_none());
    let (status, headers, body) = send(
        &client,
        reqwest::Method::GET,
        &format!("{}{BASE}/productSpecification", server.url),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-total-count").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(body[0]["brand"], "acme");
    let (status, _, body) = send(
        &client,
        reqwest::Method::POST,
        &format!("{}{BASE}/catalog", server.url),
        Some(json!({"name": "c"})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(body["href"]
        .as_str()
        .is_some_and(|h| h.starts_with("https://market.example/tmf-api/")));
}

#[test]
fn refuses_to_start_without_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_tmf-api"))
        .env_clear()
        .env("DOME_DATA_DIR", dir.path())
        .output()
        .expect("run tmf-api");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DOME_API_TOKENS"), "{stderr}");
}
