//! Every kind of bad input gets the right 4xx TMF error, and nothing is stored.

mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, Options, BASE, TOKEN};
use serde_json::json;

const AUTH: &str = "Bearer test-token";

/// Asserts that `run` changed nothing in the store.
async fn stores_nothing(h: &Harness, before: usize) {
    assert_eq!(h.outbox().await.len(), before, "something was stored");
    assert!(h.store.subscriptions().await.expect("subs").is_empty());
}

#[tokio::test]
async fn malformed_json() {
    let h = Harness::new();
    for body in ["{", "", "not json", "{\"name\": \"x\",}", "[1,2", "\u{0}"] {
        let a = h
            .raw(
                Method::POST,
                &format!("{BASE}/productOffering"),
                &[
                    ("content-type", "application/json"),
                    ("authorization", AUTH),
                ],
                body.as_bytes().to_vec(),
            )
            .await;
        let message = a.tmf_error(400, "InvalidJson");
        assert!(
            message.starts_with("the body is not valid JSON"),
            "{message}"
        );
    }
    // deeply nested JSON is refused, not a stack overflow
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let a = h
        .raw(
            Method::POST,
            &format!("{BASE}/catalog"),
            &[
                ("content-type", "application/json"),
                ("authorization", AUTH),
            ],
            deep.into_bytes(),
        )
        .await;
    a.tmf_error(400, "InvalidJson");
    stores_nothing(&h, 0).await;
}

#[tokio::test]
async fn wrong_types_and_missing_mandatory_fields() {
    let h = Harness::new();
    let cases = [
        ("/productOffering", json!({}), "name: required attribute is missing"),
        ("/catalog", json!({"name": 5}), "name: must be a string, not a number"),
        (
            "/productOffering",
            json!({"name": "x", "isBundle": "yes"}),
            "isBundle: must be a boolean, not a string",
        ),
        (
            "/productOffering",
            json!({"name": "x", "validFor": {"startDateTime": "tomorrow"}}),
            "validFor.startDateTime: must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z, not \"tomorrow\"",
        ),
        (
            "/productOfferingPrice",
            json!({"name": "x", "price": {"value": "1"}}),
            "price.value: must be a number, not a string",
        ),
        (
            "/productSpecification",
            json!({"name": "x", "relatedParty": [{"id": "p1"}]}),
            "relatedParty[0].@referredType: required attribute is missing",
        ),
        ("/category", json!([{"name": "x"}]), "the body must be a JSON object"),
        ("/category", json!("x"), "the body must be a JSON object"),
        ("/catalog", json!({"name": null}), "name: must be a string, not null"),
    ];
    for (path, body, expected) in cases {
        let a = h.post(path, body.clone()).await;
        assert_eq!(a.tmf_error(400, "InvalidBody"), expected, "{path} {body}");
    }
    stores_nothing(&h, 0).await;
}

#[tokio::test]
async fn unknown_resource_id_and_paths() {
    let h = Harness::new();
    h.get("/productOffering/3c1b2f7e-0000-4000-8000-000000000000")
        .await
        .tmf_error(404, "NotFound");
    h.get("/nonsense").await.tmf_error(404, "NotFound");
    h.get("/nonsense/1").await.tmf_error(404, "NotFound");
    h.post("/nonsense", json!({"name": "x"}))
        .await
        .tmf_error(404, "NotFound");
    h.patch("/catalog/unknown", json!({"name": "x"}))
        .await
        .tmf_error(404, "NotFound");
    h.delete("/catalog/unknown")
        .await
        .tmf_error(404, "NotFound");
    h.delete("/hub/unknown").await.tmf_error(404, "NotFound");
    let long = "x".repeat(5000);
    h.get(&format!("/catalog/{long}"))
        .await
        .tmf_error(404, "NotFound");
    h.get(&format!("/catalog/{long}/version/1"))
        .await
        .tmf_error(404, "NotFound");
    h.get("/catalog/%FF%FE").await.tmf_error(404, "NotFound");
    h.get("/catalog/").await.tmf_error(404, "NotFound");
    h.get("/catalog/x/version/")
        .await
        .tmf_error(404, "NotFound");
    h.get("/catalog/x/other/1").await.tmf_error(404, "NotFound");
    h.get("/").await.tmf_error(404, "NotFound");
    let a = h.raw(Method::GET, "/somewhere/else", &[], Vec::new()).await;
    a.tmf_error(404, "NotFound");
    // wrong method on a known path
    h.call(Method::PUT, "/catalog", Some(json!({"name": "x"})))
        .await
        .tmf_error(405, "MethodNotAllowed");
    h.call(Method::GET, "/hub", None)
        .await
        .tmf_error(405, "MethodNotAllowed");
    // import and export jobs
    // (the operations TMF620 declares answer 501, other methods 405)
    for job in ["/importJob", "/exportJob"] {
        h.get(job).await.tmf_error(501, "NotImplemented");
        h.post(job, json!({"url": "https://x"}))
            .await
            .tmf_error(501, "NotImplemented");
        h.call(Method::DELETE, job, None)
            .await
            .tmf_error(405, "MethodNotAllowed");
        let one = format!("{job}/1");
        h.get(&one).await.tmf_error(501, "NotImplemented");
        h.call(Method::DELETE, &one, None)
            .await
            .tmf_error(501, "NotImplemented");
        h.post(&one, json!({"url": "https://x"}))
            .await
            .tmf_error(405, "MethodNotAllowed");
        h.call(Method::TRACE, &one, None)
            .await
            .tmf_error(405, "MethodNotAllowed");
        h.get(&format!("{job}/1/deeper"))
            .await
            .tmf_error(404, "NotFound");
    }
    stores_nothing(&h, 0).await;
}

#[tokio::test]
async fn oversize_body() {
    let h = Harness::with(Options {
        max_body_bytes: 2048,
        ..Options::default()
    });
    let big = json!({"name": "x", "description": "d".repeat(4096)});
    h.post("/catalog", big.clone())
        .await
        .tmf_error(413, "PayloadTooLarge");
    // without Content-Length (chunked): refused while reading
    let stream = axum::body::Body::from_stream(futures_stream(big.to_string().into_bytes()));
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!("{BASE}/catalog"))
        .header("content-type", "application/json")
        .header("authorization", AUTH)
        .body(stream)
        .expect("request");
    let response = tower::ServiceExt::oneshot(h.router.clone(), request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    stores_nothing(&h, 0).await;
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(512).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn bad_filters_sort_fields_and_limits() {
    let h = Harness::new();
    h.create("catalog", json!({"name": "c"})).await;
    for query in [
        "sort=",
        "sort=a..b",
        "fields=",
        "fields=a%20b",
        "name=",
        "name.regex=(",
        "limit=ten",
        "limit=-1",
        "offset=x",
        "limit=1&limit=2",
        "expand=category",
        "a%3Eb=c",
    ] {
        let a = h.get(&format!("/catalog?{query}")).await;
        a.tmf_error(400, "InvalidQuery");
    }
    let a = h.get("/catalog?limit=1001").await;
    assert_eq!(
        a.tmf_error(400, "LimitTooLarge"),
        "limit=1001 is above the maximum page size 1000"
    );
    h.get("/catalog?limit=100000000000000000000000")
        .await
        .tmf_error(400, "LimitTooLarge");
    // a single entity takes only fields; versions have their own path
    let c = h.create("category", json!({"name": "x"})).await;
    let id = c["id"].as_str().unwrap_or_default();
    h.get(&format!("/category/{id}?version=1"))
        .await
        .tmf_error(400, "InvalidQuery");
    h.get(&format!("/category/{id}?fields=a..b"))
        .await
        .tmf_error(400, "InvalidQuery");
}

#[tokio::test]
async fn unsupported_content_type() {
    let h = Harness::new();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/merge-patch+json"),
        Some("application/xml"),
    ] {
        let mut headers = vec![("authorization", AUTH)];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        let a = h
            .raw(
                Method::POST,
                &format!("{BASE}/catalog"),
                &headers,
                br#"{"name":"x"}"#.to_vec(),
            )
            .await;
        a.tmf_error(415, "UnsupportedMediaType");
    }
    // JSON with parameters is fine
    let ok = h
        .raw(
            Method::POST,
            &format!("{BASE}/catalog"),
            &[
                ("authorization", AUTH),
                ("content-type", "Application/JSON; charset=utf-8"),
            ],
            br#"{"name":"x"}"#.to_vec(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let id = ok.body["id"].as_str().unwrap_or_default().to_string();
    let before = h.outbox().await.len();
    let a = h
        .raw(
            Method::PATCH,
            &format!("{BASE}/catalog/{id}"),
            &[
                ("authorization", AUTH),
                ("content-type", "application/json-patch+json"),
            ],
            br#"[{"op":"replace","path":"/name","value":"y"}]"#.to_vec(),
        )
        .await;
    a.tmf_error(415, "UnsupportedMediaType");
    let a = h
        .raw(
            Method::POST,
            &format!("{BASE}/hub"),
            &[("authorization", AUTH), ("content-type", "text/plain")],
            br#"{"callback":"http://127.0.0.1:1/x"}"#.to_vec(),
        )
        .await;
    a.tmf_error(415, "UnsupportedMediaType");
    assert_eq!(h.outbox().await.len(), before);
}

#[tokio::test]
async fn server_managed_fields() {
    let h = Harness::new();
    for field in ["id", "href", "lastUpdate", "version"] {
        let mut body = json!({"name": "x"});
        body[field] = json!("1");
        let message = h
            .post("/productOffering", body)
            .await
            .tmf_error(400, "ReadOnlyField");
        assert_eq!(
            message,
            format!("{field} is set by the server and cannot be sent on create")
        );
    }
    let po = h.create("productOffering", json!({"name": "x"})).await;
    let path = format!("/productOffering/{}", po["id"].as_str().unwrap_or_default());
    let before = h.outbox().await.len();
    for (field, value) in [
        ("id", json!("other")),
        ("href", json!("https://elsewhere")),
        ("lastUpdate", json!("2020-01-01T00:00:00Z")),
        ("version", json!("9")),
        ("version", json!(null)),
        ("@type", json!("Other")),
        ("@baseType", json!("Other")),
    ] {
        let mut body = json!({"name": "changed"});
        body[field] = value;
        h.patch(&path, body).await.tmf_error(400, "ReadOnlyField");
    }
    assert_eq!(h.outbox().await.len(), before);
    assert_eq!(h.get(&path).await.body, po);
}

#[tokio::test]
async fn writes_need_a_valid_bearer_token() {
    let h = Harness::new();
    let cases: [&[(&str, &str)]; 4] = [
        &[("content-type", "application/json")],
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer wrong"),
        ],
        &[
            ("content-type", "application/json"),
            ("authorization", "Basic dGVzdA=="),
        ],
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer"),
        ],
    ];
    for headers in cases {
        let a = h
            .raw(
                Method::POST,
                &format!("{BASE}/catalog"),
                headers,
                br#"{"name":"x"}"#.to_vec(),
            )
            .await;
        a.tmf_error(401, "Unauthorized");
        assert_eq!(a.header("www-authenticate"), Some("Bearer realm=\"dome\""));
    }
    let c = h.create("catalog", json!({"name": "x"})).await;
    let path = format!("{BASE}/catalog/{}", c["id"].as_str().unwrap_or_default());
    let before = h.outbox().await.len();
    h.raw(Method::DELETE, &path, &[], Vec::new())
        .await
        .tmf_error(401, "Unauthorized");
    h.raw(
        Method::PATCH,
        &path,
        &[("content-type", "application/json")],
        br#"{"name":"y"}"#.to_vec(),
    )
    .await
    .tmf_error(401, "Unauthorized");
    h.raw(
        Method::POST,
        &format!("{BASE}/hub"),
        &[("content-type", "application/json")],
        br#"{"callback":"http://127.0.0.1:1/x"}"#.to_vec(),
    )
    .await
    .tmf_error(401, "Unauthorized");
    h.raw(Method::DELETE, &format!("{BASE}/hub/x"), &[], Vec::new())
        .await
        .tmf_error(401, "Unauthorized");
    assert_eq!(h.outbox().await.len(), before);
    // reads are public
    assert_eq!(
        h.raw(Method::GET, &path, &[], Vec::new()).await.status,
        StatusCode::OK
    );
    let _ = TOKEN;
}

#[tokio::test]
async fn bad_hub_registrations() {
    let h = Harness::new();
    for (body, code) in [
        (json!({}), "InvalidBody"),
        (json!({"callback": 5}), "InvalidBody"),
        (json!({"callback": "not a url"}), "InvalidBody"),
        (json!({"callback": "ftp://host/x"}), "InvalidBody"),
        (json!({"callback": "/relative"}), "InvalidBody"),
        (
            json!({"callback": "http://127.0.0.1:1/x", "query": 3}),
            "InvalidBody",
        ),
        (
            json!({"callback": "http://127.0.0.1:1/x", "query": "name.regex=("}),
            "InvalidBody",
        ),
        (
            json!({"callback": "http://127.0.0.1:1/x", "query": "limit=3"}),
            "InvalidBody",
        ),
    ] {
        h.post("/hub", body).await.tmf_error(400, code);
    }
    stores_nothing(&h, 0).await;
}

#[tokio::test]
async fn no_input_yields_a_server_error() {
    let h = Harness::new();
    let c = h.create("catalog", json!({"name": "c"})).await;
    let id = c["id"].as_str().unwrap_or_default().to_string();
    let paths = [
        format!("{BASE}/catalog"),
        format!("{BASE}/catalog/{id}"),
        format!("{BASE}/catalog/{id}/version/1"),
        format!("{BASE}/catalog/{id}/version/99999999999999999999999"),
        format!("{BASE}/hub"),
        format!("{BASE}/hub/{id}"),
        format!("{BASE}/catalog?name.regex=%28%3F%3D"),
        format!("{BASE}/catalog?%FF%FE=%FF"),
        format!("{BASE}/catalog?fields=%00"),
        format!("{BASE}/catalog?sort=-&offset=18446744073709551616"),
        format!("{BASE}/catalog?lastUpdate.gt=2024-13-45T99:99:99Z"),
        format!("{BASE}/catalog?validFor.startDateTime.lt=%2B"),
        format!("{BASE}/catalog/{id}?fields=validFor.startDateTime.x.y"),
        format!("{BASE}/%2e%2e/%2e%2e/etc/passwd"),
        format!("{BASE}/catalog/..%2F..%2F"),
    ];
    let bodies: [&[u8]; 9] = [
        b"",
        b"null",
        b"{}",
        b"{\"name\":\"x\",\"category\":[{\"id\":null}]}",
        b"{\"name\":\"\\ud800\"}",
        b"{\"name\":1e400}",
        b"{\"callback\":\"http://[::1]:99999/x\"}",
        b"{\"name\":\"x\",\"validFor\":{\"startDateTime\":\"2024-02-30T00:00:00Z\"}}",
        b"\xff\xfe\xfd",
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::PUT,
        Method::OPTIONS,
        Method::HEAD,
    ];
    for path in &paths {
        for method in &methods {
            for body in bodies {
                for content_type in [
                    "application/json",
                    "application/merge-patch+json",
                    "applicatión/json",
                ] {
                    let a = h
                        .raw(
                            method.clone(),
                            path,
                            &[
                                ("content-type", content_type),
                                ("authorization", AUTH),
                                ("if-match", "\"x\""),
                            ],
                            body.to_vec(),
                        )
                        .await;
                    assert!(
                        a.status.is_client_error() || a.status.is_success(),
                        "{method} {path} {:?}: {} {}",
                        String::from_utf8_lossy(body),
                        a.status,
                        a.text
                    );
                }
            }
        }
    }
}
