//! Network configuration and the pure `config.toml` editing applied to every node home.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use toml_edit::{value, DocumentMut, Item, Table};

use crate::manifest::NodeInfo;

/// The CometBFT version this crate is written and tested against.
pub const COMETBFT_VERSION: &str = "0.38.25";

/// Voting power given to every validator in the generated genesis.
pub const VALIDATOR_POWER: u64 = 10;

/// Which ABCI application each validator runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AppKind {
    /// One `dome-abci` process per validator, spawned as
    /// `<abci_bin> --addr 127.0.0.1:<abci port> --db <node dir>/app-data`
    /// and reached by CometBFT over a socket (`proxy_app = "tcp://127.0.0.1:<abci port>"`).
    Dome {
        /// Path of the `dome-abci` executable.
        abci_bin: PathBuf,
    },
    /// CometBFT's built-in in-memory kvstore (`proxy_app = "kvstore"`); no app process.
    /// Useful as a baseline and for testing this crate on its own.
    Kvstore,
}

impl AppKind {
    /// `true` for [`AppKind::Dome`], i.e. when a separate app process is spawned per validator.
    pub fn has_app_process(&self) -> bool {
        matches!(self, AppKind::Dome { .. })
    }
}

/// Everything [`crate::LocalNet::init`] needs to lay out a network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Number of validators (each with equal voting power [`VALIDATOR_POWER`]). Default 4.
    pub validators: usize,
    /// Directory holding the network: `node<i>/` homes and the `localnet.json` manifest.
    pub dir: PathBuf,
    /// Path of the `cometbft` v0.38.25 binary (see `local/bootstrap.sh`).
    pub cometbft_bin: PathBuf,
    /// The ABCI application run by every validator.
    pub app: AppKind,
    /// Written verbatim as `app_state` into `genesis.json` (omitted when `Null`).
    pub app_state: serde_json::Value,
    /// `consensus.timeout_commit`. Default 500 ms.
    pub timeout_commit: Duration,
    /// `consensus.timeout_propose`. Default 1 s.
    pub timeout_propose: Duration,
    /// Genesis chain id. Default `"dome-localnet"`.
    pub chain_id: String,
    /// CometBFT `log_level`, e.g. `"info"` or `"state:info,*:error"`. Default
    /// `"state:info,*:error"` (one line per committed block plus errors).
    pub log_level: String,
}

impl NetConfig {
    /// A configuration with the defaults documented on each field.
    pub fn new(dir: impl Into<PathBuf>, cometbft_bin: impl Into<PathBuf>, app: AppKind) -> Self {
        NetConfig {
            validators: 4,
            dir: dir.into(),
            cometbft_bin: cometbft_bin.into(),
            app,
            app_state: serde_json::Value::Null,
            timeout_commit: Duration::from_millis(500),
            timeout_propose: Duration::from_secs(1),
            chain_id: "dome-localnet".to_string(),
            log_level: DEFAULT_LOG_LEVEL.to_string(),
        }
    }
}

/// Default CometBFT log level: committed blocks plus errors.
pub const DEFAULT_LOG_LEVEL: &str = "state:info,*:error";

/// The dome cache directory: `$DOME_CACHE`, else `$HOME/.cache/dome`.
pub fn dome_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOME_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join(".cache").join("dome")
}

/// Where `local/bootstrap.sh` installs CometBFT:
/// `<dome cache>/cometbft-v0.38.25/cometbft`.
pub fn default_cometbft_bin() -> PathBuf {
    dome_cache_dir()
        .join(format!("cometbft-v{COMETBFT_VERSION}"))
        .join("cometbft")
}

/// Formats a duration the way CometBFT's config parser (Go `time.ParseDuration`) accepts it.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_nanos() % 1_000_000 != 0 {
        format!("{}ns", d.as_nanos())
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `persistent_peers` for node `self_index`: every other node as `id@127.0.0.1:p2p_port`,
/// comma separated, in index order.
pub fn persistent_peers(nodes: &[NodeInfo], self_index: usize) -> String {
    nodes
        .iter()
        .filter(|n| n.index != self_index)
        .map(|n| format!("{}@127.0.0.1:{}", n.node_id, n.p2p_port))
        .collect::<Vec<_>>()
        .join(",")
}

/// Per-node values substituted into `config.toml`.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// `moniker`.
    pub moniker: String,
    /// `proxy_app`: `tcp://127.0.0.1:<port>` or `kvstore`.
    pub proxy_app: String,
    /// `rpc.laddr` port.
    pub rpc_port: u16,
    /// `p2p.laddr` port.
    pub p2p_port: u16,
    /// `p2p.persistent_peers`.
    pub persistent_peers: String,
    /// `consensus.timeout_commit`.
    pub timeout_commit: Duration,
    /// `consensus.timeout_propose`.
    pub timeout_propose: Duration,
    /// `log_level`.
    pub log_level: String,
}

impl NodeSettings {
    /// The settings of node `index` of a network described by `nodes`.
    pub fn for_node(
        nodes: &[NodeInfo],
        index: usize,
        app: &AppKind,
        timeout_commit: Duration,
        timeout_propose: Duration,
        log_level: &str,
    ) -> Result<Self> {
        let node = nodes
            .get(index)
            .ok_or_else(|| anyhow!("no node with index {index}"))?;
        let proxy_app = match app {
            AppKind::Dome { .. } => format!("tcp://127.0.0.1:{}", node.abci_port),
            AppKind::Kvstore => "kvstore".to_string(),
        };
        Ok(NodeSettings {
            moniker: node.moniker.clone(),
            proxy_app,
            rpc_port: node.rpc_port,
            p2p_port: node.p2p_port,
            persistent_peers: persistent_peers(nodes, index),
            timeout_commit,
            timeout_propose,
            log_level: log_level.to_string(),
        })
    }
}

/// One `config.toml` assignment: `section` (`None` = top level), key, value.
type Setting = (Option<&'static str>, &'static str, Item);

fn settings_list(s: &NodeSettings) -> Vec<Setting> {
    let rpc_laddr = format!("tcp://127.0.0.1:{}", s.rpc_port);
    let p2p_laddr = format!("tcp://127.0.0.1:{}", s.p2p_port);
    vec![
        // Base.
        (None, "proxy_app", value(s.proxy_app.as_str())),
        (None, "moniker", value(s.moniker.as_str())),
        (None, "log_level", value(s.log_level.as_str())),
        (None, "log_format", value("plain")),
        (None, "abci", value("socket")),
        (None, "priv_validator_laddr", value("")),
        (None, "filter_peers", value(false)),
        // RPC: loopback only, roomy limits for tests that subscribe and post a lot.
        (Some("rpc"), "laddr", value(rpc_laddr)),
        (Some("rpc"), "grpc_laddr", value("")),
        (Some("rpc"), "pprof_laddr", value("")),
        (Some("rpc"), "unsafe", value(false)),
        (Some("rpc"), "max_open_connections", value(900_i64)),
        (Some("rpc"), "max_subscription_clients", value(200_i64)),
        (Some("rpc"), "max_subscriptions_per_client", value(50_i64)),
        (
            Some("rpc"),
            "experimental_subscription_buffer_size",
            value(1000_i64),
        ),
        (
            Some("rpc"),
            "experimental_websocket_write_buffer_size",
            value(1000_i64),
        ),
        (Some("rpc"), "timeout_broadcast_tx_commit", value("10s")),
        (Some("rpc"), "max_body_bytes", value(5_000_000_i64)),
        (Some("rpc"), "max_request_batch_size", value(100_i64)),
        // P2P: loopback, static full mesh, fast flushing.
        (Some("p2p"), "laddr", value(p2p_laddr.as_str())),
        (Some("p2p"), "external_address", value(p2p_laddr.as_str())),
        (Some("p2p"), "seeds", value("")),
        (
            Some("p2p"),
            "persistent_peers",
            value(s.persistent_peers.as_str()),
        ),
        (Some("p2p"), "addr_book_strict", value(false)),
        (Some("p2p"), "allow_duplicate_ip", value(true)),
        (Some("p2p"), "pex", value(false)),
        (Some("p2p"), "seed_mode", value(false)),
        (Some("p2p"), "flush_throttle_timeout", value("10ms")),
        (Some("p2p"), "send_rate", value(52_428_800_i64)),
        (Some("p2p"), "recv_rate", value(52_428_800_i64)),
        (
            Some("p2p"),
            "max_packet_msg_payload_size",
            value(10_240_i64),
        ),
        (Some("p2p"), "persistent_peers_max_dial_period", value("3s")),
        (Some("p2p"), "dial_timeout", value("3s")),
        (Some("p2p"), "handshake_timeout", value("10s")),
        // Mempool.
        (Some("mempool"), "size", value(20_000_i64)),
        (Some("mempool"), "max_txs_bytes", value(1_073_741_824_i64)),
        (Some("mempool"), "cache_size", value(100_000_i64)),
        // Consensus.
        (
            Some("consensus"),
            "timeout_commit",
            value(go_duration(s.timeout_commit)),
        ),
        (
            Some("consensus"),
            "timeout_propose",
            value(go_duration(s.timeout_propose)),
        ),
        (Some("consensus"), "skip_timeout_commit", value(false)),
        (Some("consensus"), "create_empty_blocks", value(true)),
        (
            Some("consensus"),
            "create_empty_blocks_interval",
            value("0s"),
        ),
        (
            Some("consensus"),
            "peer_gossip_sleep_duration",
            value("20ms"),
        ),
        // Indexing, metrics.
        (Some("tx_index"), "indexer", value("kv")),
        (Some("instrumentation"), "prometheus", value(false)),
        (
            Some("instrumentation"),
            "prometheus_listen_addr",
            value("127.0.0.1:0"),
        ),
    ]
}

/// Applies the dome local-network settings to the text of a CometBFT `config.toml`
/// (as written by `cometbft init`), preserving comments and unrelated keys.
/// Idempotent: applying it to its own output with the same settings changes nothing.
pub fn edit_config_toml(original: &str, s: &NodeSettings) -> Result<String> {
    let mut doc: DocumentMut = original.parse().context("config.toml is not valid TOML")?;
    for (section, key, item) in settings_list(s) {
        let table: &mut Table = match section {
            None => doc.as_table_mut(),
            Some(name) => {
                let root = doc.as_table_mut();
                if !root.contains_key(name) {
                    root.insert(name, Item::Table(Table::new()));
                }
                root.get_mut(name)
                    .and_then(Item::as_table_mut)
                    .ok_or_else(|| anyhow!("config.toml: [{name}] is not a table"))?
            }
        };
        match table.get_mut(key) {
            // Keep the decoration (comments) of an existing key, replace only its value.
            Some(existing) if existing.is_value() => {
                let decor = existing.as_value().map(|v| v.decor().clone());
                *existing = item;
                if let (Some(decor), Some(v)) = (decor, existing.as_value_mut()) {
                    *v.decor_mut() = decor;
                }
            }
            Some(_) => bail!(
                "config.toml: {}{key} is not a plain value",
                section.map(|s| format!("{s}.")).unwrap_or_default()
            ),
            None => {
                table.insert(key, item);
            }
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeInfo> {
        (0..3)
            .map(|i| NodeInfo {
                index: i,
                moniker: format!("node{i}"),
                node_id: format!("{i:040x}"),
                p2p_port: 20000 + i as u16,
                rpc_port: 21000 + i as u16,
                abci_port: 22000 + i as u16,
            })
            .collect()
    }

    const SAMPLE: &str = r#"# top comment
version = "0.38.25"
proxy_app = "tcp://127.0.0.1:26658"
moniker = "vm"
log_level = "info"

[rpc]
# The RPC listen address
laddr = "tcp://127.0.0.1:26657"
pprof_laddr = ""

[p2p]
laddr = "tcp://0.0.0.0:26656"
persistent_peers = ""
pex = true

[consensus]
timeout_commit = "1s"
"#;

    #[test]
    fn peers_exclude_self_and_use_loopback() {
        let n = nodes();
        assert_eq!(
            persistent_peers(&n, 1),
            format!(
                "{}@127.0.0.1:20000,{}@127.0.0.1:20002",
                n[0].node_id, n[2].node_id
            )
        );
        assert_eq!(persistent_peers(&n[..1], 0), "");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::from_micros(1)), "1000ns");
    }

    #[test]
    fn config_edit_sets_everything_and_keeps_comments() {
        let n = nodes();
        let s = NodeSettings::for_node(
            &n,
            2,
            &AppKind::Dome {
                abci_bin: "x".into(),
            },
            Duration::from_millis(200),
            Duration::from_secs(1),
            "info",
        )
        .unwrap();
        let out = edit_config_toml(SAMPLE, &s).unwrap();
        assert!(out.contains("# top comment"));
        assert!(out.contains("# The RPC listen address"));
        let doc: DocumentMut = out.parse().unwrap();
        assert_eq!(doc["proxy_app"].as_str(), Some("tcp://127.0.0.1:22002"));
        assert_eq!(doc["moniker"].as_str(), Some("node2"));
        assert_eq!(doc["version"].as_str(), Some("0.38.25"));
        assert_eq!(doc["rpc"]["laddr"].as_str(), Some("tcp://127.0.0.1:21002"));
        assert_eq!(doc["p2p"]["laddr"].as_str(), Some("tcp://127.0.0.1:20002"));
        assert_eq!(
            doc["p2p"]["persistent_peers"].as_str(),
            Some(persistent_peers(&n, 2).as_str())
        );
        assert_eq!(doc["p2p"]["pex"].as_bool(), Some(false));
        assert_eq!(doc["p2p"]["allow_duplicate_ip"].as_bool(), Some(true));
        assert_eq!(doc["p2p"]["addr_book_strict"].as_bool(), Some(false));
        assert_eq!(doc["consensus"]["timeout_commit"].as_str(), Some("200ms"));
        assert_eq!(doc["consensus"]["timeout_propose"].as_str(), Some("1s"));
        // Sections missing from the input are created.
        assert_eq!(doc["mempool"]["size"].as_integer(), Some(20_000));
        assert_eq!(doc["tx_index"]["indexer"].as_str(), Some("kv"));
        assert_eq!(doc["instrumentation"]["prometheus"].as_bool(), Some(false));
        // Idempotent.
        assert_eq!(edit_config_toml(&out, &s).unwrap(), out);
    }

    #[test]
    fn every_listener_is_loopback_or_disabled() {
        let n = nodes();
        let s = NodeSettings::for_node(
            &n,
            0,
            &AppKind::Kvstore,
            Duration::from_millis(500),
            Duration::from_secs(1),
            "info",
        )
        .unwrap();
        let out = edit_config_toml(SAMPLE, &s).unwrap();
        let doc: DocumentMut = out.parse().unwrap();
        assert_eq!(doc["proxy_app"].as_str(), Some("kvstore"));
        for (section, key) in [
            ("rpc", "laddr"),
            ("rpc", "grpc_laddr"),
            ("rpc", "pprof_laddr"),
            ("p2p", "laddr"),
            ("instrumentation", "prometheus_listen_addr"),
        ] {
            let v = doc[section][key].as_str().unwrap();
            assert!(
                v.is_empty() || v.contains("127.0.0.1:"),
                "{section}.{key} = {v:?}"
            );
        }
        assert_eq!(doc["priv_validator_laddr"].as_str(), Some(""));
    }

    #[test]
    fn non_table_section_is_an_error() {
        let n = nodes();
        let s = NodeSettings::for_node(
            &n,
            0,
            &AppKind::Kvstore,
            Duration::from_millis(500),
            Duration::from_secs(1),
            "info",
        )
        .unwrap();
        assert!(edit_config_toml("rpc = 3\n", &s).is_err());
        assert!(edit_config_toml("not toml [", &s).is_err());
    }
}
