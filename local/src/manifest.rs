//! The `localnet.json` manifest that lets [`crate::LocalNet::open`] re-open a network
//! directory written by [`crate::LocalNet::init`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::AppKind;

/// File name of the manifest inside the network directory.
pub const MANIFEST_FILE: &str = "localnet.json";

const MANIFEST_VERSION: u32 = 1;

/// Identity and ports of one validator node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Validator index, `0..validators`.
    pub index: usize,
    /// CometBFT moniker (`node<i>`).
    pub moniker: String,
    /// CometBFT node id (hex of the node key's address), used in peer strings.
    pub node_id: String,
    /// P2P listen port on 127.0.0.1.
    pub p2p_port: u16,
    /// RPC listen port on 127.0.0.1.
    pub rpc_port: u16,
    /// ABCI app listen port on 127.0.0.1 (unused for [`AppKind::Kvstore`]).
    pub abci_port: u16,
}

/// Persistent description of an initialised network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub version: u32,
    /// Genesis chain id.
    pub chain_id: String,
    /// The `cometbft` binary.
    pub cometbft_bin: PathBuf,
    /// The app each validator runs.
    pub app: AppKind,
    /// `consensus.timeout_commit` in milliseconds.
    pub timeout_commit_ms: u64,
    /// `consensus.timeout_propose` in milliseconds.
    pub timeout_propose_ms: u64,
    /// CometBFT log level.
    pub log_level: String,
    /// One entry per validator, in index order.
    pub nodes: Vec<NodeInfo>,
}

impl Manifest {
    /// Builds a manifest for the current format version.
    pub(crate) fn new(
        chain_id: String,
        cometbft_bin: PathBuf,
        app: AppKind,
        timeout_commit_ms: u64,
        timeout_propose_ms: u64,
        log_level: String,
        nodes: Vec<NodeInfo>,
    ) -> Self {
        Manifest {
            version: MANIFEST_VERSION,
            chain_id,
            cometbft_bin,
            app,
            timeout_commit_ms,
            timeout_propose_ms,
            log_level,
            nodes,
        }
    }

    /// Reads and validates `<dir>/localnet.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is this an initialised net dir?)",
                path.display()
            )
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        manifest
            .validate()
            .with_context(|| format!("invalid {}", path.display()))?;
        Ok(manifest)
    }

    /// Writes `<dir>/localnet.json` atomically (write to a temporary file, then rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(format!(".{MANIFEST_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).context("serialising manifest")?;
        std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if self.version != MANIFEST_VERSION {
            bail!(
                "unsupported manifest version {} (expected {MANIFEST_VERSION})",
                self.version
            );
        }
        if self.nodes.is_empty() {
            bail!("manifest lists no nodes");
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.index != i {
                bail!("node entry {i} has index {}", n.index);
            }
        }
        let mut ports: Vec<u16> = self
            .nodes
            .iter()
            .flat_map(|n| [n.p2p_port, n.rpc_port, n.abci_port])
            .collect();
        ports.sort_unstable();
        let before = ports.len();
        ports.dedup();
        if ports.len() != before || ports.first() == Some(&0) {
            bail!("manifest ports are not distinct and non-zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest::new(
            "c".into(),
            "/bin/cometbft".into(),
            AppKind::Dome {
                abci_bin: "/bin/dome-abci".into(),
            },
            500,
            1000,
            "info".into(),
            (0..2)
                .map(|i| NodeInfo {
                    index: i,
                    moniker: format!("node{i}"),
                    node_id: "ab".into(),
                    p2p_port: 100 + i as u16,
                    rpc_port: 200 + i as u16,
                    abci_port: 300 + i as u16,
                })
                .collect(),
        )
    }

    #[test]
    fn round_trips_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let m = sample();
        m.write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), m);

        let mut dup = sample();
        dup.nodes[1].rpc_port = dup.nodes[0].p2p_port;
        dup.write(dir.path()).unwrap();
        assert!(Manifest::read(dir.path()).is_err());

        let mut bad_index = sample();
        bad_index.nodes[1].index = 5;
        bad_index.write(dir.path()).unwrap();
        assert!(Manifest::read(dir.path()).is_err());

        let empty = tempfile::tempdir().unwrap();
        let err = Manifest::read(empty.path()).unwrap_err();
        assert!(format!("{err:#}").contains("initialised"));
    }
}
