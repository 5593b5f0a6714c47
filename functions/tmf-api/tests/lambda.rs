//! The Lambda path: function URL events (payload v2, committed under tests/fixtures) go
//! through lambda_http's request and response conversion — the code `lambda_http::run`
//! uses — into the same router as the plain server.

mod common;

use common::{Harness, Options, BASE};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use serde_json::Value;

const DOMAIN: &str = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws";

fn fixture(name: &str, id: Option<&str>) -> LambdaRequest {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    if let Some(id) = id {
        text = text.replace("{id}", id);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

struct Invoked {
    status: u16,
    headers: Value,
    body: Value,
}

/// Invokes the router as the Lambda runtime would and returns the function URL response.
async fn invoke(h: &Harness, name: &str, id: Option<&str>) -> Invoked {
    let mut adapter = lambda_http::Adapter::from(h.router.clone());
    let event = LambdaEvent::new(fixture(name, id), Context::default());
    let response = adapter.call(event).await.unwrap_or_else(|e| match e {});
    let json = serde_json::to_value(&response).expect("serialisable response");
    let status = json["statusCode"].as_u64().expect("statusCode") as u16;
    assert_eq!(json["isBase64Encoded"], false, "{json}");
    let body = match json["body"].as_str() {
        Some(text) if !text.is_empty() => serde_json::from_str(text).expect("JSON body"),
        _ => Value::Null,
    };
    Invoked {
        status,
        headers: json["headers"].clone(),
        body,
    }
}

fn lambda_harness() -> Harness {
    // no configured base URL: hrefs come from the function URL's domain name
    Harness::with(Options {
        public_base_url: None,
        ..Options::default()
    })
}

#[tokio::test]
async fn function_url_round_trip() {
    let h = lambda_harness();
    let created = invoke(&h, "create_product_offering.json", None).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    let href = format!("https://{DOMAIN}{BASE}/productOffering/{id}");
    assert_eq!(created.body["href"], href);
    assert_eq!(created.headers["location"], href);
    assert_eq!(
        created.headers["content-type"],
        "application/json;charset=utf-8"
    );
    assert_eq!(created.body["lifecycleStatus"], "Launched");

    let base64 = invoke(&h, "create_base64_body.json", None).await;
    assert_eq!(base64.status, 201, "{}", base64.body);
    assert_eq!(base64.body["name"], "Encoded category");

    let listed = invoke(&h, "list_product_offering.json", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.headers["x-total-count"], "1");
    assert_eq!(listed.headers["x-result-count"], "1");
    assert_eq!(
        listed.body,
        serde_json::json!([{"id": id, "href": href, "name": "Lambda offering"}])
    );

    let patched = invoke(&h, "patch_product_offering.json", Some(&id)).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["version"], "2");
    assert_eq!(patched.headers["etag"], "\"2\"");

    let read = invoke(&h, "retrieve_product_offering.json", Some(&id)).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["description"], "patched through a function URL");

    let deleted = invoke(&h, "delete_product_offering.json", Some(&id)).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.body, Value::Null);
    let gone = invoke(&h, "retrieve_product_offering.json", Some(&id)).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body["code"], "NotFound");
}

#[tokio::test]
async fn function_url_errors_are_tmf_errors() {
    let h = lambda_harness();
    for (name, status, code) in [
        ("create_without_token.json", 401, "Unauthorized"),
        ("malformed_json.json", 400, "InvalidJson"),
        ("unknown_id.json", 404, "NotFound"),
    ] {
        let answer = invoke(&h, name, None).await;
        assert_eq!(answer.status, status, "{name}: {}", answer.body);
        assert_eq!(answer.body["code"], code, "{name}");
        assert_eq!(answer.body["status"], status.to_string());
    }
    assert!(h.outbox().await.is_empty());
}
