//! End-to-end replication with one marketplace on AWS services: 4 CometBFT validators, A and
//! C on the embedded store, B on DynamoDB with an SQS FIFO replication queue and FIFO
//! dead-letter queue (a moto server), all real processes on 127.0.0.1. B's relay hands off
//! to SQS and its SQS replicator (the code of the `replicator` function) consumes the queue.

mod common;

use common::federation::{self as fed, audit, entity_path, get_entity, wait_until, TestFederation};

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use anyhow::Context;
use dome_localnet::federation::{AwsOptions, Federation};
use serde_json::{json, Value};

const A: usize = 0;
const B: usize = 1;
const CONVERGE: Duration = Duration::from_secs(45);
/// Small bounds so that the retry and redelivery paths run within seconds.
const MAX_ATTEMPTS: u32 = 3;

fn start_federation(extra_members: usize) -> anyhow::Result<TestFederation> {
    fed::start(extra_members, |markets| {
        markets.use_dynamodb(
            B,
            &AwsOptions {
                max_attempts: MAX_ATTEMPTS,
                visibility_seconds: 3,
                backoff_cap_seconds: 1,
            },
        )?;
        Ok(())
    })
}

fn wait_for(
    f: &Federation,
    i: usize,
    resource: &str,
    id: &str,
    expected: Option<&Value>,
) -> anyhow::Result<()> {
    wait_until(
        &format!("{resource}/{id} on marketplace {i}"),
        CONVERGE,
        || Ok(get_entity(f, i, resource, id)?.as_ref() == expected),
    )
}

#[test]
fn changes_on_a_reach_b_through_sqs_and_an_unreachable_origin_ends_in_the_dlq() -> anyhow::Result<()>
{
    // Member d runs no marketplace: the test announces a version as d from a dead address.
    let fed = start_federation(1)?;
    let f = &fed.markets;

    let created = f.create(
        A,
        "productOffering",
        &json!({"name": "Object storage", "lifecycleStatus": "In design"}),
    )?;
    let id = created["id"].as_str().context("id")?.to_owned();
    wait_for(f, B, "productOffering", &id, Some(&created))?;
    let (status, body) = f.request(
        A,
        "PATCH",
        &entity_path("productOffering", &id),
        Some(&json!({"lifecycleStatus": "Active", "description": "now on sale"})),
    )?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let updated: Value = serde_json::from_slice(&body)?;
    wait_for(f, B, "productOffering", &id, Some(&updated))?;
    let replica = f.get_json(
        B,
        &format!("{}/version/2", entity_path("productOffering", &id)),
    )?;
    assert_eq!(replica, updated, "identical content");
    let (status, _) = f.request(A, "DELETE", &entity_path("productOffering", &id), None)?;
    assert_eq!(status, 204);
    wait_for(f, B, "productOffering", &id, None)?;

    // The unreachable origin: a port that was just free.
    let dead_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let announced = json!({"id": "unreachable-1", "href": format!("http://127.0.0.1:{dead_port}/x"), "name": "never served"});
    let tx = fed::foreign_create(3, "unreachable-1", &announced, dead_port)?;
    let rt = tokio::runtime::Runtime::new()?;
    let client = common::client(fed.net.rpc_urls())?;
    let committed = rt.block_on(client.submit_and_wait(&tx, Duration::from_secs(30)))?;
    assert!(committed.accepted(), "{committed:?}");

    wait_until("the SQS dead letter", CONVERGE, || {
        Ok(f.sqs_dead_letters(B)? == Some(1))
    })?;
    let parked = f.sqs_dead_letter_messages(B)?;
    assert_eq!(parked.len(), 1);
    let (message, attributes) = &parked[0];
    assert!(message.contains("unreachable-1"), "{message}");
    let reason = attributes
        .iter()
        .find(|(name, _)| name == "reason")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    assert!(
        reason.contains(&format!("gave up after {MAX_ATTEMPTS} attempts")),
        "{reason}"
    );
    let status = f.status(B)?;
    assert_eq!(status["deadLetters"], 1, "{status}");
    let trail = audit(f, B)?;
    let retries = trail
        .iter()
        .filter(|l| l["id"] == "unreachable-1" && l["decision"] == "retrying")
        .count();
    assert_eq!(retries, MAX_ATTEMPTS as usize, "one attempt per receive");
    assert!(trail
        .iter()
        .any(|l| l["id"] == "unreachable-1" && l["decision"] == "dead_lettered"));
    assert_eq!(
        get_entity(f, B, "productOffering", "unreachable-1")?,
        None,
        "nothing stored"
    );
    // The embedded marketplaces settle the same event on their own path.
    assert_eq!(f.sqs_dead_letters(A)?, None);
    Ok(())
}

#[test]
fn killing_b_with_messages_in_flight_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let mut fed = start_federation(0)?;
    let mut latest: HashMap<String, Value> = HashMap::new();
    for round in 0..3 {
        for n in 0..10 {
            let created = fed.markets.create(
                A,
                "productOffering",
                &json!({"name": format!("r{round} o{n}")}),
            )?;
            latest.insert(created["id"].as_str().context("id")?.to_owned(), created);
        }
        // Let B's relay enqueue and its replicator receive some of them, then SIGKILL: the
        // received messages stay invisible until their visibility timeout, then come back.
        std::thread::sleep(Duration::from_millis(300 * (round + 1)));
        fed.markets.kill(B)?;
        fed.markets.start(B)?;
        fed.markets.wait_ready(B, Duration::from_secs(30))?;
    }
    let f = &fed.markets;
    for (id, body) in &latest {
        wait_for(f, B, "productOffering", id, Some(body))?;
    }
    let mut applied: HashMap<(String, u64), usize> = HashMap::new();
    for line in audit(f, B)? {
        if line["decision"] == "applied" {
            let key = (
                line["id"].as_str().unwrap_or("").to_owned(),
                line["version"].as_u64().unwrap_or(0),
            );
            *applied.entry(key).or_default() += 1;
        }
    }
    assert_eq!(applied.len(), latest.len());
    for (key, count) in applied {
        assert_eq!(count, 1, "{key:?} applied {count} times");
    }
    assert_eq!(f.sqs_dead_letters(B)?, Some(0));
    Ok(())
}
