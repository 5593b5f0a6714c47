//! Shared helpers of the end-to-end federation tests: start 4 validators and 3 marketplaces
//! in a temporary directory, read entities and audit trails, announce events as a member
//! that runs no marketplace.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dome_events::{
    test_keys, Action, Audience, CatalogueEvent, ContentHash, EntityRef, Transaction,
};
use dome_localnet::federation::{self, Federation, TMF620_BASE};
use dome_localnet::{AppKind, LocalNet, NetConfig};
use serde_json::Value;

/// The `dome-marketplace` binary: `DOME_MARKETPLACE_BIN`, else next to `dome-abci`.
pub fn marketplace_bin() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("DOME_MARKETPLACE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let candidate = super::abci_bin()?.with_file_name("dome-marketplace");
    if !candidate.exists() {
        bail!(
            "{} not found: build it first (`cargo build --bins`)",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// A running federation; dropping it stops the marketplaces (and their moto server, if
/// any), then the net, then removes the directory.
pub struct TestFederation {
    pub markets: Federation,
    pub net: LocalNet,
    _dir: tempfile::TempDir,
}

/// 4 validators (`timeout_commit` 200 ms) and marketplaces A, B, C as founding members, plus
/// `extra_members` members without a marketplace (test key indices 3, 4...). `prepare` may
/// change a marketplace's setup (e.g. put it on DynamoDB) before they all start.
pub fn start(
    extra_members: usize,
    prepare: impl FnOnce(&mut Federation) -> anyhow::Result<()>,
) -> anyhow::Result<TestFederation> {
    let dir = tempfile::Builder::new().prefix("dome-fed-").tempdir()?;
    let (markets, app_state) = federation::plan_with_members(3, extra_members)?;
    let mut cfg = NetConfig::new(
        dir.path().join("net"),
        super::cometbft_bin()?,
        AppKind::Dome {
            abci_bin: super::abci_bin()?,
        },
    );
    cfg.timeout_commit = Duration::from_millis(200);
    cfg.app_state = app_state;
    let mut net = LocalNet::init(cfg)?;
    net.start()?;
    net.wait_for_height_all(1, Duration::from_secs(60))?;
    Federation::init(dir.path(), markets)?;
    let mut markets = Federation::open(dir.path(), marketplace_bin()?, net.rpc_urls())?;
    prepare(&mut markets)?;
    markets.start_all()?;
    for i in 0..markets.len() {
        markets.wait_ready(i, Duration::from_secs(30))?;
    }
    Ok(TestFederation {
        markets,
        net,
        _dir: dir,
    })
}

/// Polls `check` every 100 ms until it says yes, or fails after `timeout`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?} (last error: {last_error:?})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn entity_path(resource: &str, id: &str) -> String {
    format!("{TMF620_BASE}/{resource}/{id}")
}

/// The entity as marketplace `i` serves it: `Some(body)` on 200, `None` on 404.
pub fn get_entity(
    f: &Federation,
    i: usize,
    resource: &str,
    id: &str,
) -> anyhow::Result<Option<Value>> {
    let (status, body) = f.request(i, "GET", &entity_path(resource, id), None)?;
    match status {
        200 => Ok(Some(serde_json::from_slice(&body)?)),
        404 => Ok(None),
        other => bail!(
            "GET {resource}/{id}: HTTP {other}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// Every line of marketplace `i`'s audit trail (the tests keep it under one page).
pub fn audit(f: &Federation, i: usize) -> anyhow::Result<Vec<Value>> {
    let page = f.get_json(i, "/replication/v1/audit?limit=1000")?;
    let items = page.as_array().context("audit page is not an array")?;
    if items.len() >= 1000 {
        bail!("audit trail longer than one page");
    }
    Ok(items.clone())
}

/// A create of `productOffering/{id}` announced by member `member_index` (a member that runs
/// no marketplace), with the hash of `announced` and `location` on 127.0.0.1:`port`.
pub fn foreign_create(
    member_index: u32,
    id: &str,
    announced: &Value,
    port: u16,
) -> anyhow::Result<Transaction> {
    let event = CatalogueEvent {
        origin: test_keys::member_id(member_index),
        origin_seq: 1,
        entity: EntityRef {
            entity_type: "productOffering".into(),
            id: id.into(),
            version: 1,
        },
        action: Action::Create,
        content_hash: Some(ContentHash::of_json(announced)?),
        previous_hash: None,
        location: format!("http://127.0.0.1:{port}{TMF620_BASE}/productOffering/{id}/version/1"),
        audience: Audience::All,
        issued_at: "2026-11-29T12:00:00.000Z".into(),
    };
    Ok(Transaction::signed_event(
        event,
        &test_keys::member_keypair(member_index),
    )?)
}
