//! The function binaries run as Lambda runs them: the built `tmf-api` executable started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a local stand-in of the Runtime API
//! (common/lambda_runtime.rs), fed the function URL events committed under
//! functions/tmf-api/tests/fixtures. This covers what the in-process adapter tests cannot:
//! the binary's choice of runtime, its Lambda configuration and the runtime client itself.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use common::lambda_runtime::{FunctionProcess, Outcome, RuntimeApi};
use serde_json::Value;

const TOKEN: &str = "test-token";
const FUNCTION_URL_HOST: &str = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws";
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// A function binary of the workspace, next to `dome-abci` (`cargo build --bins`).
fn function_bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = common::abci_bin()?.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found: build it first (`cargo build --bins`)",
            path.display()
        );
    }
    Ok(path)
}

fn fixture(name: &str, id: Option<&str>) -> anyhow::Result<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/tmf-api/tests/fixtures")
        .join(name);
    let mut text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if let Some(id) = id {
        text = text.replace("{id}", id);
    }
    serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))
}

/// A function URL response (payload v2): status, headers, the body parsed as JSON (Null
/// when empty).
struct HttpAnswer {
    status: u64,
    headers: Value,
    body: Value,
}

async fn call(
    runtime: &RuntimeApi,
    function: &FunctionProcess,
    name: &str,
    id: Option<&str>,
) -> anyhow::Result<HttpAnswer> {
    let outcome = runtime
        .invoke(fixture(name, id)?, ANSWER_WITHIN)
        .await
        .with_context(|| format!("{name}; function log:\n{}", function.log()))?;
    let response = match outcome {
        Outcome::Response(response) => response,
        Outcome::Error(error) => bail!("{name}: the function reported an error: {error}"),
    };
    let status = response["statusCode"]
        .as_u64()
        .with_context(|| format!("{name}: no statusCode in {response}"))?;
    let body = match response["body"].as_str() {
        Some(text) if !text.is_empty() => {
            serde_json::from_str(text).with_context(|| format!("{name}: body {text:?}"))?
        }
        _ => Value::Null,
    };
    Ok(HttpAnswer {
        status,
        headers: response["headers"].clone(),
        body,
    })
}

fn assert_tmf_error(answer: &HttpAnswer, status: u64, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    for field in ["code", "reason", "message"] {
        assert!(
            answer.body[field].is_string(),
            "{what}: TMF Error without {field}: {}",
            answer.body
        );
    }
    assert_eq!(
        answer.body["status"].as_str(),
        Some(status.to_string().as_str()),
        "{what}: {}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmf_api_binary_serves_function_url_events_under_the_lambda_runtime() -> anyhow::Result<()>
{
    let runtime = RuntimeApi::start().await?;
    let dir = tempfile::tempdir()?;
    let mut function = FunctionProcess::start(
        &function_bin("tmf-api")?,
        "tmf-api",
        &runtime,
        &[
            ("DOME_STORE", "embedded".to_owned()),
            (
                "DOME_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            ("DOME_API_TOKENS", TOKEN.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ],
        dir.path().join("tmf-api.log"),
    )?;

    let created = call(&runtime, &function, "create_product_offering.json", None).await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"]
        .as_str()
        .context("the created offering has an id")?
        .to_owned();
    let href = created.body["href"].as_str().context("href")?.to_owned();
    // Without a configured base URL, hrefs are built from the function URL's domain.
    assert!(
        href.starts_with(&format!("https://{FUNCTION_URL_HOST}/")),
        "{href}"
    );
    assert_eq!(created.headers["location"].as_str(), Some(href.as_str()));

    let read = call(
        &runtime,
        &function,
        "retrieve_product_offering.json",
        Some(&id),
    )
    .await?;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["name"], "Lambda offering");
    assert_eq!(read.body["href"].as_str(), Some(href.as_str()));

    let patched = call(
        &runtime,
        &function,
        "patch_product_offering.json",
        Some(&id),
    )
    .await?;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        patched.body["description"],
        "patched through a function URL"
    );
    assert_ne!(patched.body["version"], read.body["version"]);

    // Bad input answers with a TMF Error body and the process keeps serving.
    let malformed = call(&runtime, &function, "malformed_json.json", None).await?;
    assert_tmf_error(&malformed, 400, "malformed JSON");
    let anonymous = call(&runtime, &function, "create_without_token.json", None).await?;
    assert_tmf_error(&anonymous, 401, "create without a token");
    let unknown = call(&runtime, &function, "unknown_id.json", None).await?;
    assert_tmf_error(&unknown, 404, "unknown id");

    let deleted = call(
        &runtime,
        &function,
        "delete_product_offering.json",
        Some(&id),
    )
    .await?;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let gone = call(
        &runtime,
        &function,
        "retrieve_product_offering.json",
        Some(&id),
    )
    .await?;
    assert_tmf_error(&gone, 404, "read after delete");

    assert!(
        function.is_running(),
        "the function exited; log:\n{}",
        function.log()
    );
    // Under Lambda the logs are JSON lines (CloudWatch Logs Insights reads their fields).
    let log = function.log();
    let first = log.lines().next().context("the function logged nothing")?;
    serde_json::from_str::<Value>(first)
        .with_context(|| format!("log line is not JSON: {first}"))?;
    Ok(())
}

/// The relay binary under the Lambda runtime, as its schedule invokes it: it hands this
/// member's share of the bus to the SQS FIFO queue, checkpoints, and prints the lag metric
/// (CloudWatch embedded metric format) that the stack's RelayLag alarm watches. A second
/// invocation hands off only what is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_binary_relays_and_reports_its_lag_under_the_lambda_runtime() -> anyhow::Result<()> {
    use common::{publish_all, start_net, Origin};
    use dome_catalog_store::records;
    use dome_events::{test_keys, Audience};
    use dome_queue_sqs::SqsQueue;
    use dome_replication::lease::read_checkpoint;

    let test_net = start_net(4, Duration::from_millis(200))?;
    let urls = test_net.net.rpc_urls();
    let bus = common::client(urls.clone())?;
    let relayed_for = test_keys::member_id(1);
    let mut origin = Origin::new(0);
    // Three public offerings and one restricted to another member.
    let mut txs: Vec<_> = ["relayed-1", "relayed-2", "relayed-3"]
        .iter()
        .map(|id| origin.publish(id))
        .collect();
    let mut restricted = origin.next_event("not-for-b", None);
    restricted.audience = Audience::Members(vec![test_keys::member_id(2)]);
    txs.push(origin.sign_and_advance(restricted));
    let published_at = publish_all(&bus, &txs).await?;

    let moto = dome_store_dynamodb::testing::MotoServer::start().await?;
    let store = moto.store("relay-table").await?;
    let sqs = dome_queue_sqs::testing::client(&moto.endpoint());
    let (queue_url, _dlq) =
        dome_queue_sqs::testing::create_queue_with_dlq(&sqs, "replication", true, 3).await?;
    let queue = SqsQueue::new(sqs, queue_url.clone());

    let runtime = RuntimeApi::start().await?;
    let dir = tempfile::tempdir()?;
    let mut env: Vec<(&str, String)> = moto.env();
    env.extend([
        ("DOME_TABLE", "relay-table".to_owned()),
        ("DOME_MEMBER_ID", relayed_for.as_str().to_owned()),
        ("DOME_BUS_RPC", urls.join(",")),
        ("DOME_REPLICATION_QUEUE_URL", queue_url),
        // Each scheduled run follows the bus for this long, then checkpoints and returns.
        ("DOME_TIME_BUDGET_MS", "2000".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    let mut function = FunctionProcess::start(
        &function_bin("relay")?,
        "relay",
        &runtime,
        &env,
        dir.path().join("relay.log"),
    )?;

    let scheduled = serde_json::json!({
        "version": "0",
        "id": "5d4b5a0c-0000-4000-8000-000000000001",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": "2026-11-30T00:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:000000000000:rule/relay-schedule"],
        "detail": {}
    });
    let first = runtime
        .invoke(scheduled.clone(), ANSWER_WITHIN)
        .await
        .with_context(|| format!("relay log:\n{}", function.log()))?;
    assert!(
        matches!(first, Outcome::Response(_)),
        "{first:?}; log:\n{}",
        function.log()
    );
    let mut handed_off = Vec::new();
    loop {
        let batch = queue.receive(10, 1, 60).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            queue.delete(&message.receipt_handle).await?;
            handed_off.push(message.body);
        }
    }
    assert_eq!(handed_off.len(), 3, "{handed_off:#?}");
    for id in ["relayed-1", "relayed-2", "relayed-3"] {
        assert!(
            handed_off.iter().any(|body| body.contains(id)),
            "{id} not handed off: {handed_off:#?}"
        );
    }
    assert!(
        !handed_off.iter().any(|body| body.contains("not-for-b")),
        "a restricted event reached a member outside its audience"
    );

    // The lag line: the names of infra/functions.json's `metrics.relay_lag`, which the
    // alarm reads, and a lag of a few heights at most right after a run.
    let log = function.log();
    let metrics: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .collect();
    let infra: Value = serde_json::from_str(include_str!("../../infra/functions.json"))?;
    let lag = &infra["metrics"]["relay_lag"];
    let metric_name = lag["name"].as_str().context("metrics.relay_lag.name")?;
    let [line] = metrics.as_slice() else {
        bail!("expected one metric line after one run, got {metrics:?}; log:\n{log}");
    };
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], lag["namespace"], "{line}");
    assert_eq!(directive["Metrics"][0]["Name"], metric_name, "{line}");
    assert_eq!(line["Member"], relayed_for.as_str(), "{line}");
    let heights = line[metric_name].as_u64().context("the lag is a count")?;
    assert!(
        heights <= 20,
        "lag of {heights} heights right after a run: {line}"
    );

    // The checkpoint is past the published events, so the next run starts after them.
    let (checkpoint, _) = read_checkpoint(&store, records::RELAY_CHECKPOINT).await?;
    assert!(
        checkpoint >= published_at,
        "checkpoint {checkpoint} < height {published_at} of the events handed off"
    );
    let second = runtime.invoke(scheduled, ANSWER_WITHIN).await?;
    assert!(matches!(second, Outcome::Response(_)), "{second:?}");
    let again = queue.receive(10, 1, 60).await?;
    assert!(again.is_empty(), "handed off twice: {again:#?}");
    let (after_second, _) = read_checkpoint(&store, records::RELAY_CHECKPOINT).await?;
    assert!(after_second >= checkpoint);
    assert!(function.is_running(), "log:\n{}", function.log());
    Ok(())
}
