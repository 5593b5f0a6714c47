//! End-to-end replication: 4 CometBFT validators with the dome app and 3 marketplaces
//! (`dome-marketplace`: TMF620 API + publisher + relay + replicator, embedded store), all real
//! processes on 127.0.0.1, started and stopped by each test.

mod common;

use common::federation::{self as fed, audit, entity_path, get_entity, wait_until, TestFederation};

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use anyhow::{bail, Context};
use dome_events::test_keys;
use dome_localnet::federation::Federation;
use serde_json::{json, Value};

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
/// How long a change may take to reach the other marketplaces in these tests.
const CONVERGE: Duration = Duration::from_secs(60);

fn start_federation(extra_members: usize) -> anyhow::Result<TestFederation> {
    fed::start(extra_members, |_| Ok(()))
}

fn patch(f: &Federation, i: usize, resource: &str, id: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = f.request(i, "PATCH", &entity_path(resource, id), Some(&body))?;
    if status != 200 {
        bail!(
            "PATCH {resource}/{id}: HTTP {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(serde_json::from_slice(&answer)?)
}

fn wait_for_version(
    f: &Federation,
    i: usize,
    resource: &str,
    id: &str,
    expected: &Value,
) -> anyhow::Result<()> {
    wait_until(
        &format!("{resource}/{id} on marketplace {i}"),
        CONVERGE,
        || Ok(get_entity(f, i, resource, id)?.as_ref() == Some(expected)),
    )
}

/// The `Applied` audit lines of marketplace `i`, as (resource/id, version) → line.
fn applied(f: &Federation, i: usize) -> anyhow::Result<HashMap<(String, u64), Vec<Value>>> {
    let mut map: HashMap<(String, u64), Vec<Value>> = HashMap::new();
    for line in audit(f, i)? {
        if line["decision"] == "applied" {
            let key = format!(
                "{}/{}",
                line["resource"].as_str().unwrap_or(""),
                line["id"].as_str().unwrap_or("")
            );
            map.entry((key, line["version"].as_u64().unwrap_or(0)))
                .or_default()
                .push(line);
        }
    }
    Ok(map)
}

#[test]
fn changes_on_a_reach_b_and_c_with_identical_content_and_provenance() -> anyhow::Result<()> {
    let fed = start_federation(0)?;
    let f = &fed.markets;
    let created = f.create(
        A,
        "productOffering",
        &json!({"name": "Object storage", "lifecycleStatus": "In design"}),
    )?;
    let id = created["id"].as_str().context("id")?.to_string();
    for i in [B, C] {
        wait_for_version(f, i, "productOffering", &id, &created)?;
    }
    let updated = patch(
        f,
        A,
        "productOffering",
        &id,
        json!({"description": "S3-compatible"}),
    )?;
    let launched = patch(
        f,
        A,
        "productOffering",
        &id,
        json!({"lifecycleStatus": "Launched"}),
    )?;
    assert_ne!(updated, launched);
    for i in [B, C] {
        wait_for_version(f, i, "productOffering", &id, &launched)?;
    }
    // Provenance: B and C recorded the same origin, bus position and content hash for each
    // version they applied.
    let on_b = applied(f, B)?;
    let on_c = applied(f, C)?;
    let key = format!("productOffering/{id}");
    let b_last = on_b
        .keys()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .max()
        .context("B applied nothing")?;
    let b_line = &on_b[&(key.clone(), b_last)][0];
    let c_line = &on_c
        .get(&(key.clone(), b_last))
        .context("C did not apply the same version")?[0];
    for field in ["origin", "height", "tx_hash", "version"] {
        assert_eq!(
            b_line[field], c_line[field],
            "{field} differs between B and C"
        );
    }
    assert_eq!(b_line["origin"], "member-a");
    for lines in on_b.values().chain(on_c.values()) {
        assert_eq!(lines.len(), 1, "a version was applied twice: {lines:?}");
    }
    // Replicated entities are read-only where they are replicas.
    let (status, body) = f.request(
        B,
        "PATCH",
        &entity_path("productOffering", &id),
        Some(&json!({"name": "hijacked"})),
    )?;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // Delete on A: a tombstone on B and C.
    let (status, _) = f.request(A, "DELETE", &entity_path("productOffering", &id), None)?;
    assert_eq!(status, 204);
    for i in [B, C] {
        wait_until("the delete to reach the replicas", CONVERGE, || {
            Ok(get_entity(f, i, "productOffering", &id)?.is_none())
        })?;
    }
    Ok(())
}

#[test]
fn a_restricted_offering_reaches_b_only_and_c_is_refused() -> anyhow::Result<()> {
    let fed = start_federation(0)?;
    let f = &fed.markets;
    let created = f.create(
        A,
        "productOffering",
        &json!({"name": "Partner pricing", "lifecycleStatus": "Active", "@audience": ["member-b"]}),
    )?;
    let id = created["id"].as_str().context("id")?.to_string();
    wait_until("the restricted offering on B", CONVERGE, || {
        Ok(applied(f, B)?.contains_key(&(format!("productOffering/{id}"), 1)))
    })?;
    // A public one created afterwards reaches C: C has followed past the restricted event.
    let public = f.create(A, "productOffering", &json!({"name": "Public offer"}))?;
    let public_id = public["id"].as_str().context("id")?.to_string();
    wait_for_version(f, C, "productOffering", &public_id, &public)?;
    assert!(
        !audit(f, C)?.iter().any(|l| l["id"] == id.as_str()),
        "C must not even see the restricted event"
    );
    // C asking A directly with a valid member signature: refused.
    let location = format!("{}/version/1", entity_path("productOffering", &id));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let c_key = test_keys::member_keypair(2);
    let c_headers = dome_events::fetch_auth::sign_fetch(
        &c_key,
        &test_keys::member_id(2),
        "GET",
        &location,
        now,
    );
    let headers: Vec<(&str, &str)> = c_headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let port = f.marketplaces()[A].port;
    let (status, _) = dome_localnet::http_request(
        port,
        "GET",
        &location,
        &headers,
        None,
        Duration::from_secs(5),
    )?;
    assert_eq!(status, 403, "C's signed fetch of a version restricted to B");
    // B's signature is accepted; no credentials are refused.
    let b_headers = dome_events::fetch_auth::sign_fetch(
        &test_keys::member_keypair(1),
        &test_keys::member_id(1),
        "GET",
        &location,
        now,
    );
    let headers: Vec<(&str, &str)> = b_headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, _) = dome_localnet::http_request(
        port,
        "GET",
        &location,
        &headers,
        None,
        Duration::from_secs(5),
    )?;
    assert_eq!(status, 200);
    let (status, _) =
        dome_localnet::http_request(port, "GET", &location, &[], None, Duration::from_secs(5))?;
    assert_eq!(status, 403);
    Ok(())
}

/// Serves `body` to every request on 127.0.0.1 until the test ends; returns the port.
fn serve_forever(body: Vec<u8>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    Ok(port)
}

#[test]
fn content_that_does_not_match_the_event_hash_is_rejected_and_not_stored() -> anyhow::Result<()> {
    // Member d runs no marketplace: the test is that origin, and it serves other content
    // than it announced.
    let fed = start_federation(1)?;
    let f = &fed.markets;
    let announced = json!({"id": "forged-1", "href": "http://127.0.0.1/x", "name": "announced"});
    let served = serde_json::to_vec(
        &json!({"id": "forged-1", "href": "http://127.0.0.1/x", "name": "tampered"}),
    )?;
    let port = serve_forever(served)?;
    let tx = fed::foreign_create(3, "forged-1", &announced, port)?;
    let rt = tokio::runtime::Runtime::new()?;
    let client = common::client(fed.net.rpc_urls())?;
    let committed = rt.block_on(client.submit_and_wait(&tx, Duration::from_secs(30)))?;
    assert!(committed.accepted(), "{committed:?}");
    for i in [A, B, C] {
        wait_until("the rejection to be recorded", CONVERGE, || {
            Ok(audit(f, i)?
                .iter()
                .any(|l| l["id"] == "forged-1" && l["decision"] == "rejected"))
        })?;
        let line = audit(f, i)?
            .into_iter()
            .find(|l| l["id"] == "forged-1" && l["decision"] == "rejected")
            .context("rejection line")?;
        assert!(
            line["reason"]
                .as_str()
                .unwrap_or("")
                .contains("hash mismatch"),
            "{line}"
        );
        assert_eq!(
            get_entity(f, i, "productOffering", "forged-1")?,
            None,
            "nothing stored"
        );
        let status = f.status(i)?;
        assert_eq!(status["deadLetters"], 1, "{status}");
    }
    Ok(())
}

#[test]
fn a_marketplace_down_during_50_changes_converges_without_duplicates() -> anyhow::Result<()> {
    let mut fed = start_federation(0)?;
    fed.markets.stop(B)?;
    let f = &fed.markets;
    let mut latest: HashMap<String, Value> = HashMap::new();
    let mut ids = Vec::new();
    for n in 0..10 {
        let created = f.create(A, "productOffering", &json!({"name": format!("offer {n}")}))?;
        let id = created["id"].as_str().context("id")?.to_string();
        ids.push(id.clone());
        latest.insert(id, created);
    }
    for n in 0..40 {
        let id = &ids[n % ids.len()];
        let updated = patch(
            f,
            A,
            "productOffering",
            id,
            json!({"description": format!("revision {n}")}),
        )?;
        latest.insert(id.clone(), updated);
    }
    // A crash of A's own process while it publishes: the outbox is replayed, nothing lost.
    fed.markets.kill(A)?;
    fed.markets.start(A)?;
    fed.markets.wait_ready(A, Duration::from_secs(30))?;
    fed.markets.start(B)?;
    fed.markets.wait_ready(B, Duration::from_secs(30))?;
    let f = &fed.markets;
    for (id, body) in &latest {
        wait_for_version(f, B, "productOffering", id, body)?;
        wait_for_version(f, C, "productOffering", id, body)?;
    }
    for i in [B, C] {
        for (key, lines) in applied(f, i)? {
            assert_eq!(
                lines.len(),
                1,
                "{key:?} applied {} times on {i}",
                lines.len()
            );
        }
    }
    // A's 50 changes are 50 events on the bus, each exactly once.
    let rt = tokio::runtime::Runtime::new()?;
    let client = common::client(fed.net.rpc_urls())?;
    let last_seq = rt.block_on(client.origin_last_seq(&test_keys::member_id(0)))?;
    assert_eq!(last_seq, 50);
    Ok(())
}

#[test]
fn replication_continues_with_a_validator_down_and_it_catches_up() -> anyhow::Result<()> {
    let mut fed = start_federation(0)?;
    fed.net.stop_validator(3)?;
    let f = &fed.markets;
    let created = f.create(
        A,
        "productOffering",
        &json!({"name": "while a validator is down"}),
    )?;
    let id = created["id"].as_str().context("id")?.to_string();
    for i in [B, C] {
        wait_for_version(f, i, "productOffering", &id, &created)?;
    }
    fed.net.start_validator(3)?;
    let height = fed.net.height(0)?;
    fed.net
        .wait_for_height(3, height, Duration::from_secs(60))?;
    let hashes: Vec<String> = (0..4)
        .map(|i| fed.net.app_hash(i, height))
        .collect::<anyhow::Result<_>>()?;
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    Ok(())
}

#[test]
fn killing_the_replicating_marketplace_mid_stream_loses_and_duplicates_nothing(
) -> anyhow::Result<()> {
    let mut fed = start_federation(0)?;
    let mut latest: HashMap<String, Value> = HashMap::new();
    for round in 0..3 {
        for n in 0..10 {
            let created = fed.markets.create(
                A,
                "productOffering",
                &json!({"name": format!("r{round} o{n}")}),
            )?;
            latest.insert(created["id"].as_str().context("id")?.to_string(), created);
        }
        // B dies at whatever point it was, and comes back.
        fed.markets.kill(B)?;
        fed.markets.start(B)?;
        fed.markets.wait_ready(B, Duration::from_secs(30))?;
    }
    let f = &fed.markets;
    for (id, body) in &latest {
        wait_for_version(f, B, "productOffering", id, body)?;
    }
    for (key, lines) in applied(f, B)? {
        assert_eq!(lines.len(), 1, "{key:?} applied {} times", lines.len());
    }
    Ok(())
}
