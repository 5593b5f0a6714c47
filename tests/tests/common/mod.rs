//! Shared helpers of the network tests: start a real 4-validator net, publish valid events.

#![allow(dead_code)]

pub mod federation;
pub mod lambda_runtime;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use dome_bus_client::BusClient;
use dome_events::{
    test_keys, Action, Audience, CatalogueEvent, ContentHash, EntityRef, MemberKeypair, Transaction,
};
use dome_localnet::{AppKind, LocalNet, NetConfig};

pub const MEMBERS: usize = 4;

/// The `dome-abci` binary: `DOME_ABCI_BIN`, else next to the test executable's target dir.
pub fn abci_bin() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("DOME_ABCI_BIN") {
        return Ok(PathBuf::from(path));
    }
    // Test executables live in <target>/<profile>/deps/.
    let exe = std::env::current_exe()?;
    let candidate = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("dome-abci"))
        .context("locating the target directory")?;
    if !candidate.exists() {
        bail!(
            "{} not found: build it first (`cargo build --bins`) or set DOME_ABCI_BIN",
            candidate.display()
        );
    }
    Ok(candidate)
}

pub fn cometbft_bin() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("DOME_COMETBFT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(dome_localnet::default_cometbft_bin);
    if !path.exists() {
        bail!(
            "CometBFT binary {} not found: run local/bootstrap.sh or set DOME_COMETBFT_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// A started dome network in a temporary directory; everything stops when it is dropped.
pub struct TestNet {
    pub net: LocalNet,
    // Dropped after `net`, so processes stop before their directories go.
    _dir: tempfile::TempDir,
}

pub fn start_net(validators: usize, timeout_commit: Duration) -> anyhow::Result<TestNet> {
    let dir = tempfile::Builder::new().prefix("dome-net-").tempdir()?;
    let mut cfg = NetConfig::new(
        dir.path().join("net"),
        cometbft_bin()?,
        AppKind::Dome {
            abci_bin: abci_bin()?,
        },
    );
    cfg.validators = validators;
    cfg.timeout_commit = timeout_commit;
    cfg.app_state = dome_events::genesis::demo_app_state(MEMBERS);
    let mut net = LocalNet::init(cfg)?;
    net.start()?;
    net.wait_for_height_all(1, Duration::from_secs(60))?;
    Ok(TestNet { net, _dir: dir })
}

pub fn client(urls: Vec<String>) -> anyhow::Result<BusClient> {
    Ok(BusClient::new(urls, Duration::from_secs(3))?)
}

/// A member that publishes valid events: tracks its origin_seq and its entities' heads.
pub struct Origin {
    pub index: u32,
    pub key: MemberKeypair,
    pub seq: u64,
    heads: HashMap<String, (u64, Option<ContentHash>)>,
}

impl Origin {
    pub fn new(index: u32) -> Origin {
        Origin {
            index,
            key: test_keys::member_keypair(index),
            seq: 0,
            heads: HashMap::new(),
        }
    }

    /// The next valid event for `id`: a create if it is new, else an update.
    pub fn next_event(&self, id: &str, action: Option<Action>) -> CatalogueEvent {
        let (version, previous) = match self.heads.get(id) {
            Some((v, hash)) => (v + 1, *hash),
            None => (1, None),
        };
        let action = action.unwrap_or(if version == 1 {
            Action::Create
        } else {
            Action::Update
        });
        let content = (action != Action::Delete)
            .then(|| ContentHash::of_bytes(format!("{id}@{version}").as_bytes()));
        CatalogueEvent {
            origin: test_keys::member_id(self.index),
            origin_seq: self.seq + 1,
            entity: EntityRef {
                entity_type: "productOffering".into(),
                id: id.into(),
                version,
            },
            action,
            content_hash: content,
            previous_hash: previous,
            location: format!(
                "http://127.0.0.1:18080/tmf-api/productCatalogManagement/v4/productOffering/{id}/version/{version}"
            ),
            audience: Audience::All,
            issued_at: "2026-11-29T12:00:00Z".into(),
        }
    }

    /// Signs `event` and records it as this origin's newest (call once it is accepted,
    /// or before submitting when the test expects acceptance).
    pub fn sign_and_advance(&mut self, event: CatalogueEvent) -> Transaction {
        self.seq = event.origin_seq;
        self.heads.insert(
            event.entity.id.clone(),
            (event.entity.version, event.content_hash),
        );
        self.sign(event)
    }

    pub fn sign(&self, event: CatalogueEvent) -> Transaction {
        match Transaction::signed_event(event, &self.key) {
            Ok(tx) => tx,
            Err(e) => panic!("test event is invalid: {e}"),
        }
    }

    pub fn publish(&mut self, id: &str) -> Transaction {
        let event = self.next_event(id, None);
        self.sign_and_advance(event)
    }
}

/// Submits transactions in order and waits until each is committed and accepted.
pub async fn publish_all(client: &BusClient, txs: &[Transaction]) -> anyhow::Result<u64> {
    let mut hashes = Vec::new();
    for tx in txs {
        let submitted = client
            .submit(tx)
            .await
            .with_context(|| format!("submitting {:?}", tx.payload))?;
        hashes.push(submitted.tx_hash);
    }
    let mut last_height = 0;
    for hash in hashes {
        let committed = client
            .wait_committed(&hash, Duration::from_secs(30))
            .await
            .with_context(|| format!("waiting for {hash}"))?;
        if !committed.accepted() {
            bail!(
                "{hash} committed with code {}: {}",
                committed.code,
                committed.log
            );
        }
        last_height = last_height.max(committed.height);
    }
    Ok(last_height)
}

/// Waits until every listed validator has block `height + 1`, then returns the app hash
/// each reports after block `height`.
pub fn app_hashes_after(
    net: &LocalNet,
    nodes: &[usize],
    height: u64,
) -> anyhow::Result<Vec<String>> {
    let mut hashes = Vec::new();
    for &i in nodes {
        net.wait_for_height(i, height + 1, Duration::from_secs(60))?;
        hashes.push(net.app_hash(i, height + 1)?);
    }
    Ok(hashes)
}

pub fn assert_all_equal(values: &[String], what: &str) {
    assert!(
        values.windows(2).all(|w| w[0] == w[1]),
        "{what} differ between validators: {values:?}"
    );
}
