//! Starts and controls an N-validator CometBFT v0.38.25 network on 127.0.0.1 for development
//! and tests, each validator running its own `dome-abci` process (or CometBFT's built-in
//! kvstore as a baseline).
//!
//! # Layout
//!
//! [`LocalNet::init`] lays out a network directory:
//!
//! ```text
//! <dir>/localnet.json          manifest: chain id, binaries, app kind, node ids and ports
//! <dir>/node<i>/               CometBFT home of validator i (`cometbft init` + our config)
//! <dir>/node<i>/cometbft.log   CometBFT stdout+stderr (appended across restarts)
//! <dir>/node<i>/app.log        dome-abci stdout+stderr (appended across restarts)
//! <dir>/node<i>/app-data       passed to dome-abci as `--db` (created by the app)
//! ```
//!
//! All validators share one genesis with equal voting power ([`VALIDATOR_POWER`]), the
//! configured `app_state` and chain id. Every listener (p2p, RPC, ABCI) is on 127.0.0.1 with
//! ports chosen at init and kept for the life of the directory, so a stopped node restarts on
//! the same home and ports and catches up.
//!
//! # Processes
//!
//! Every child process is spawned with `PR_SET_PDEATHSIG = SIGKILL` and in its own process
//! group, so children die with the process (strictly: the thread) that spawned them, and
//! terminal signals such as Ctrl-C reach only the supervisor. Stopping is SIGTERM, a bounded
//! wait, then SIGKILL; every wait in this crate is bounded. Dropping a [`LocalNet`] stops
//! every child it started.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use dome_localnet::{AppKind, LocalNet, NetConfig, default_cometbft_bin};
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut cfg = NetConfig::new("/tmp/mynet", default_cometbft_bin(), AppKind::Kvstore);
//! cfg.timeout_commit = Duration::from_millis(200);
//! let mut net = LocalNet::init(cfg)?;
//! net.start()?;
//! net.wait_for_height_all(3, Duration::from_secs(30))?;
//! println!("{}", net.rpc_url(0));
//! # Ok(())
//! # }
//! ```

mod config;
pub mod federation;
mod genesis;
mod manifest;
mod net;
mod ports;
mod process;
mod rpc;

pub use config::{
    default_cometbft_bin, dome_cache_dir, edit_config_toml, go_duration, persistent_peers, AppKind,
    NetConfig, NodeSettings, COMETBFT_VERSION, DEFAULT_LOG_LEVEL, VALIDATOR_POWER,
};
pub use genesis::{build_genesis, rfc3339_utc, GenesisValidator};
pub use manifest::{Manifest, NodeInfo, MANIFEST_FILE};
pub use net::{ExitedProcess, LocalNet, NodeStatus, ProcessRole};
pub use ports::{pick_free_ports, port_is_free};
pub use process::{log_tail, pid_alive};
pub use rpc::{http_request, port_accepts};
