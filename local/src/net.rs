//! [`LocalNet`]: initialising, starting, stopping and querying the validators.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::config::VALIDATOR_POWER;
use crate::config::{edit_config_toml, AppKind, NetConfig, NodeSettings, COMETBFT_VERSION};
use crate::genesis::{build_genesis, rfc3339_utc, GenesisValidator};
use crate::manifest::{Manifest, NodeInfo, MANIFEST_FILE};
use crate::ports::{pick_free_ports, port_is_free};
use crate::process::{describe_status, log_tail, run_bounded, terminate_all, ManagedChild};
use crate::rpc;

/// Bound on short CometBFT commands (`init`, `show-node-id`, `version`, `unsafe-reset-all`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on an app process starting to accept connections on its ABCI port.
const APP_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a CometBFT node answering RPC `/status` after spawn (includes the ABCI handshake
/// and replay of stored blocks into the app).
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// SIGTERM grace for CometBFT nodes before SIGKILL.
const NODE_STOP_GRACE: Duration = Duration::from_secs(10);
/// SIGTERM grace for app processes before SIGKILL.
const APP_STOP_GRACE: Duration = Duration::from_secs(5);
/// Per-request RPC timeout.
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// Poll interval of the readiness and height waits.
const POLL: Duration = Duration::from_millis(50);
/// How much of a log file is quoted in errors.
const LOG_TAIL_BYTES: u64 = 4096;

/// Which of a validator's two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    /// The `cometbft start` process.
    Node,
    /// The ABCI app process (only for [`AppKind::Dome`]).
    App,
}

/// A child process found to have exited on its own (see [`LocalNet::poll_exited`]).
#[derive(Debug, Clone)]
pub struct ExitedProcess {
    /// Validator index.
    pub validator: usize,
    /// Which process.
    pub role: ProcessRole,
    /// Its pid.
    pub pid: u32,
    /// Human-readable exit status, e.g. `exit code 1`.
    pub status: String,
    /// Its log file.
    pub log: PathBuf,
}

/// A node's view of the chain, from RPC `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// CometBFT node id.
    pub node_id: String,
    /// Moniker (`node<i>`).
    pub moniker: String,
    /// `sync_info.latest_block_height`.
    pub height: u64,
    /// `sync_info.latest_block_hash` (hex).
    pub block_hash: String,
    /// `sync_info.latest_app_hash` (hex): the `app_hash` in the header of the latest block,
    /// i.e. the app state after block `height - 1`.
    pub app_hash: String,
    /// `sync_info.catching_up`.
    pub catching_up: bool,
}

/// A local CometBFT network: N validator homes under one directory plus the child processes
/// this value started. Dropping it stops every child process it started.
///
/// Methods taking a validator index `i` panic if `i >= self.validators()` when they return no
/// `Result`; the others return an error.
///
/// Children are spawned with `PR_SET_PDEATHSIG = SIGKILL`, which Linux ties to the spawning
/// *thread*: call the starting methods from a thread that outlives the processes (e.g. the
/// test's own thread or `main`), not from a short-lived helper thread.
#[derive(Debug)]
pub struct LocalNet {
    dir: PathBuf,
    manifest: Manifest,
    nodes: Vec<Option<ManagedChild>>,
    apps: Vec<Option<ManagedChild>>,
}

impl LocalNet {
    /// Lays out a new network in `cfg.dir` (created if missing; it must not already contain
    /// files): runs `cometbft init` for every `node<i>` home, builds one genesis with all
    /// validators (power [`VALIDATOR_POWER`] each) and `cfg.app_state`, picks 3 free loopback
    /// ports per validator (p2p, RPC, ABCI), edits every `config.toml`, and writes the
    /// `localnet.json` manifest last (so its presence marks a complete init). Starts nothing.
    pub fn init(cfg: NetConfig) -> Result<Self> {
        if cfg.validators == 0 {
            bail!("a network needs at least one validator");
        }
        check_cometbft_version(&cfg.cometbft_bin)?;
        let dir = cfg.dir.clone();
        if dir.join(MANIFEST_FILE).exists() {
            bail!(
                "{} already holds an initialised network; use LocalNet::open or delete it",
                dir.display()
            );
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let not_empty = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .next()
            .is_some();
        if not_empty {
            bail!(
                "{} is not empty but has no {MANIFEST_FILE} (a partial init?); delete it first",
                dir.display()
            );
        }

        let n = cfg.validators;
        let ports = pick_free_ports(3 * n)?;
        let mut nodes = Vec::with_capacity(n);
        let mut validators = Vec::with_capacity(n);
        for i in 0..n {
            let home = node_dir_in(&dir, i);
            let mut init = Command::new(&cfg.cometbft_bin);
            init.arg("init").arg("--home").arg(&home);
            run_bounded(init, COMMAND_TIMEOUT)
                .with_context(|| format!("initialising {}", home.display()))?;

            let mut show = Command::new(&cfg.cometbft_bin);
            show.arg("show-node-id").arg("--home").arg(&home);
            let out = run_bounded(show, COMMAND_TIMEOUT)?;
            let node_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if node_id.len() != 40 || !node_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("cometbft show-node-id printed {node_id:?}, expected 40 hex digits");
            }

            let moniker = format!("node{i}");
            let key = read_json(&home.join("config").join("priv_validator_key.json"))?;
            validators.push(GenesisValidator::from_priv_validator_key(
                &key,
                VALIDATOR_POWER,
                &moniker,
            )?);
            nodes.push(NodeInfo {
                index: i,
                moniker,
                node_id,
                p2p_port: ports[3 * i],
                rpc_port: ports[3 * i + 1],
                abci_port: ports[3 * i + 2],
            });
        }

        let template = read_json(&genesis_path(&node_dir_in(&dir, 0)))?;
        let genesis = build_genesis(
            &template,
            &cfg.chain_id,
            &rfc3339_utc(SystemTime::now()),
            &validators,
            &cfg.app_state,
        )?;
        let genesis_text =
            serde_json::to_string_pretty(&genesis).context("serialising genesis")? + "\n";
        for i in 0..n {
            let path = genesis_path(&node_dir_in(&dir, i));
            std::fs::write(&path, &genesis_text)
                .with_context(|| format!("writing {}", path.display()))?;
        }

        let manifest = Manifest::new(
            cfg.chain_id,
            cfg.cometbft_bin,
            cfg.app,
            duration_ms(cfg.timeout_commit),
            duration_ms(cfg.timeout_propose),
            cfg.log_level,
            nodes,
        );
        let net = LocalNet::from_manifest(dir, manifest);
        net.write_configs()?;
        net.manifest.write(&net.dir)?;
        Ok(net)
    }

    /// Re-opens a directory initialised by [`LocalNet::init`] (reads `localnet.json`).
    /// Starts nothing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::read(&dir)?;
        for i in 0..manifest.nodes.len() {
            let cfg = config_path(&node_dir_in(&dir, i));
            if !cfg.is_file() {
                bail!("{} is missing; the net dir is damaged", cfg.display());
            }
        }
        Ok(LocalNet::from_manifest(dir, manifest))
    }

    fn from_manifest(dir: PathBuf, manifest: Manifest) -> Self {
        let n = manifest.nodes.len();
        LocalNet {
            dir,
            manifest,
            nodes: (0..n).map(|_| None).collect(),
            apps: (0..n).map(|_| None).collect(),
        }
    }

    /// (Re)applies the network settings to every node's `config.toml`.
    fn write_configs(&self) -> Result<()> {
        for i in 0..self.validators() {
            let path = config_path(&self.node_dir(i));
            let original = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let settings = NodeSettings::for_node(
                &self.manifest.nodes,
                i,
                &self.manifest.app,
                Duration::from_millis(self.manifest.timeout_commit_ms),
                Duration::from_millis(self.manifest.timeout_propose_ms),
                &self.manifest.log_level,
            )?;
            let edited = edit_config_toml(&original, &settings)
                .with_context(|| format!("editing {}", path.display()))?;
            std::fs::write(&path, edited).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Replaces the `cometbft` binary used from now on (persisted in the manifest).
    pub fn set_cometbft_bin(&mut self, bin: impl Into<PathBuf>) -> Result<()> {
        let bin = bin.into();
        check_cometbft_version(&bin)?;
        self.manifest.cometbft_bin = bin;
        self.manifest.write(&self.dir)
    }

    /// Replaces the `dome-abci` binary used from now on (persisted in the manifest).
    /// Fails for a kvstore network.
    pub fn set_abci_bin(&mut self, bin: impl Into<PathBuf>) -> Result<()> {
        match &mut self.manifest.app {
            AppKind::Dome { abci_bin } => *abci_bin = bin.into(),
            AppKind::Kvstore => bail!("this network runs the kvstore app; it has no ABCI binary"),
        }
        self.manifest.write(&self.dir)
    }

    /// Changes `consensus.timeout_commit` in every `config.toml` (and the manifest). Takes
    /// effect for nodes started afterwards.
    pub fn set_timeout_commit(&mut self, timeout_commit: Duration) -> Result<()> {
        self.manifest.timeout_commit_ms = duration_ms(timeout_commit);
        self.write_configs()?;
        self.manifest.write(&self.dir)
    }

    /// The network directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest (chain id, binaries, app kind, node ids and ports).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Identity and ports of every validator, in index order.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.manifest.nodes
    }

    /// Number of validators.
    pub fn validators(&self) -> usize {
        self.manifest.nodes.len()
    }

    /// The app every validator runs.
    pub fn app_kind(&self) -> &AppKind {
        &self.manifest.app
    }

    /// CometBFT home of validator `i`: `<dir>/node<i>`.
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.assert_index(i);
        node_dir_in(&self.dir, i)
    }

    /// Data path passed to the app of validator `i` as `--db`: `<dir>/node<i>/app-data`.
    pub fn app_data_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("app-data")
    }

    /// CometBFT log of validator `i`: `<dir>/node<i>/cometbft.log`.
    pub fn node_log(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("cometbft.log")
    }

    /// App log of validator `i`: `<dir>/node<i>/app.log`.
    pub fn app_log(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("app.log")
    }

    /// `http://127.0.0.1:<rpc port>` of validator `i`.
    pub fn rpc_url(&self, i: usize) -> String {
        self.assert_index(i);
        format!("http://127.0.0.1:{}", self.manifest.nodes[i].rpc_port)
    }

    /// The RPC URLs of all validators, in index order.
    pub fn rpc_urls(&self) -> Vec<String> {
        (0..self.validators()).map(|i| self.rpc_url(i)).collect()
    }

    /// Pid of validator `i`'s CometBFT process if this value started it and it has not been
    /// reaped (it may have exited without [`LocalNet::poll_exited`] noticing yet).
    pub fn node_pid(&self, i: usize) -> Option<u32> {
        self.assert_index(i);
        self.nodes[i].as_ref().map(ManagedChild::pid)
    }

    /// Pid of validator `i`'s app process, like [`LocalNet::node_pid`].
    pub fn app_pid(&self, i: usize) -> Option<u32> {
        self.assert_index(i);
        self.apps[i].as_ref().map(ManagedChild::pid)
    }

    /// Whether validator `i`'s CometBFT process (started by this value) is running.
    pub fn node_running(&mut self, i: usize) -> bool {
        self.assert_index(i);
        running(&mut self.nodes[i])
    }

    /// Whether validator `i`'s app process (started by this value) is running. Always false
    /// for a kvstore network.
    pub fn app_running(&mut self, i: usize) -> bool {
        self.assert_index(i);
        running(&mut self.apps[i])
    }

    /// Starts every app process and then every CometBFT node that is not already running,
    /// waiting until each app accepts connections on its ABCI port and each node answers RPC
    /// `/status`. If anything fails, the processes started by this call are stopped again and
    /// the error (with the tail of the relevant log) is returned.
    ///
    /// Blocks are produced once more than 2/3 of the voting power is up; use
    /// [`LocalNet::wait_for_height_all`] to wait for that.
    pub fn start(&mut self) -> Result<()> {
        let mut started: Vec<(ProcessRole, usize)> = Vec::new();
        let result = self.start_inner(&mut started);
        if result.is_err() {
            let mut children: Vec<&mut ManagedChild> = Vec::new();
            for (role, slots) in [
                (ProcessRole::Node, &mut self.nodes),
                (ProcessRole::App, &mut self.apps),
            ] {
                for (i, slot) in slots.iter_mut().enumerate() {
                    if started.contains(&(role, i)) {
                        children.extend(slot.as_mut());
                    }
                }
            }
            let _ = terminate_all(&mut children, APP_STOP_GRACE);
            for (role, i) in started {
                match role {
                    ProcessRole::Node => self.nodes[i] = None,
                    ProcessRole::App => self.apps[i] = None,
                }
            }
        }
        result
    }

    fn start_inner(&mut self, started: &mut Vec<(ProcessRole, usize)>) -> Result<()> {
        let n = self.validators();
        if self.manifest.app.has_app_process() {
            for i in 0..n {
                if !self.app_running(i) {
                    self.spawn_app(i)?;
                    started.push((ProcessRole::App, i));
                }
            }
            for &(_, i) in started.iter() {
                self.wait_app_ready(i)?;
            }
        }
        let first_node = started.len();
        for i in 0..n {
            if !self.node_running(i) {
                self.spawn_node(i)?;
                started.push((ProcessRole::Node, i));
            }
        }
        let new_nodes: Vec<usize> = started[first_node..].iter().map(|&(_, i)| i).collect();
        for i in new_nodes {
            self.wait_node_ready(i)?;
        }
        Ok(())
    }

    /// Starts validator `i`'s app process (no-op if running) and waits until it accepts
    /// connections on its ABCI port (bounded, 10 s). Fails for a kvstore network.
    pub fn start_app(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        if !self.manifest.app.has_app_process() {
            bail!("this network runs the kvstore app inside CometBFT; there is no app process");
        }
        if self.app_running(i) {
            return Ok(());
        }
        self.spawn_app(i)?;
        let ready = self.wait_app_ready(i);
        if ready.is_err() {
            if let Some(mut c) = self.apps[i].take() {
                let _ = c.kill();
            }
        }
        ready
    }

    /// Kills validator `i`'s app process with SIGKILL, simulating a crash, and reaps it
    /// (bounded). No-op if it is not running. CometBFT 0.38 exits by itself once its ABCI
    /// connections break; restart with [`LocalNet::start_app`] then [`LocalNet::start_node`].
    pub fn kill_app(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        match self.apps[i].take() {
            Some(mut c) => c.kill().map(drop),
            None => Ok(()),
        }
    }

    /// Stops validator `i`'s app process gracefully: SIGTERM, up to 5 s, then SIGKILL.
    pub fn stop_app(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        match self.apps[i].take() {
            Some(mut c) => c.terminate(APP_STOP_GRACE).map(drop),
            None => Ok(()),
        }
    }

    /// Starts validator `i`'s CometBFT process (no-op if running) on its existing home and
    /// ports, and waits until it answers RPC `/status` (bounded, 30 s). For a dome network
    /// the app must be running (see [`LocalNet::start_app`]).
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        if self.node_running(i) {
            return Ok(());
        }
        if self.manifest.app.has_app_process() && !self.app_running(i) {
            bail!("the app of validator {i} is not running; call start_app({i}) first");
        }
        self.spawn_node(i)?;
        let ready = self.wait_node_ready(i);
        if ready.is_err() {
            if let Some(mut c) = self.nodes[i].take() {
                let _ = c.kill();
            }
        }
        ready
    }

    /// Stops validator `i`'s CometBFT process: SIGTERM, up to 10 s, then SIGKILL.
    /// No-op if it is not running.
    pub fn stop_node(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        match self.nodes[i].take() {
            Some(mut c) => c.terminate(NODE_STOP_GRACE).map(drop),
            None => Ok(()),
        }
    }

    /// Kills validator `i`'s CometBFT process with SIGKILL (a crash) and reaps it (bounded).
    pub fn kill_node(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        match self.nodes[i].take() {
            Some(mut c) => c.kill().map(drop),
            None => Ok(()),
        }
    }

    /// Starts whatever of validator `i` is not running: its app (dome networks), then its node.
    pub fn start_validator(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        if self.manifest.app.has_app_process() {
            self.start_app(i)?;
        }
        self.start_node(i)
    }

    /// Stops validator `i`'s node, then its app (both gracefully, bounded).
    pub fn stop_validator(&mut self, i: usize) -> Result<()> {
        self.stop_node(i)?;
        self.stop_app(i)
    }

    /// Stops everything this value started: all CometBFT nodes concurrently (SIGTERM, 10 s,
    /// SIGKILL), then all apps (SIGTERM, 5 s, SIGKILL). Also done on drop.
    pub fn stop(&mut self) {
        let mut nodes: Vec<ManagedChild> = self.nodes.iter_mut().filter_map(Option::take).collect();
        let mut refs: Vec<&mut ManagedChild> = nodes.iter_mut().collect();
        if let Err(e) = terminate_all(&mut refs, NODE_STOP_GRACE) {
            eprintln!("dome-localnet: stopping nodes: {e:#}");
        }
        let mut apps: Vec<ManagedChild> = self.apps.iter_mut().filter_map(Option::take).collect();
        let mut refs: Vec<&mut ManagedChild> = apps.iter_mut().collect();
        if let Err(e) = terminate_all(&mut refs, APP_STOP_GRACE) {
            eprintln!("dome-localnet: stopping apps: {e:#}");
        }
    }

    /// Stops everything, then wipes chain state like `cometbft unsafe-reset-all` for every
    /// node (blocks, state, WAL, address book; the validator signing state goes back to
    /// genesis) and deletes every app data path. Keys, genesis, config and logs are kept.
    pub fn reset(&mut self) -> Result<()> {
        self.stop();
        for i in 0..self.validators() {
            let home = self.node_dir(i);
            let mut cmd = Command::new(&self.manifest.cometbft_bin);
            cmd.arg("unsafe-reset-all").arg("--home").arg(&home);
            run_bounded(cmd, COMMAND_TIMEOUT)
                .with_context(|| format!("resetting {}", home.display()))?;
            remove_path(&self.app_data_dir(i))?;
        }
        Ok(())
    }

    /// Reaps processes that exited on their own since the last call (e.g. CometBFT after its
    /// app was killed, or a crashed app) and reports them. Their slots become "not running".
    pub fn poll_exited(&mut self) -> Vec<ExitedProcess> {
        let mut out = Vec::new();
        for (role, slots) in [
            (ProcessRole::Node, &mut self.nodes),
            (ProcessRole::App, &mut self.apps),
        ] {
            for (i, slot) in slots.iter_mut().enumerate() {
                let Some(status) = slot.as_mut().and_then(ManagedChild::exit_status) else {
                    continue;
                };
                if let Some(c) = slot.take() {
                    out.push(ExitedProcess {
                        validator: i,
                        role,
                        pid: c.pid(),
                        status: describe_status(status),
                        log: c.log().to_path_buf(),
                    });
                }
            }
        }
        out
    }

    /// Validator `i`'s view of the chain via RPC `GET /status`.
    pub fn status(&self, i: usize) -> Result<NodeStatus> {
        self.check_index(i)?;
        let port = self.manifest.nodes[i].rpc_port;
        let r = rpc::get_result(port, "/status", RPC_TIMEOUT)
            .with_context(|| format!("querying /status of validator {i}"))?;
        parse_status(&r).with_context(|| format!("parsing /status of validator {i}"))
    }

    /// `GET <rpc url><path_and_query>` on validator `i` and return the JSON-RPC `result`,
    /// e.g. `net.rpc_get(0, "/abci_query?data=0x6b6579")`. Fails on transport errors, non-200
    /// responses and JSON-RPC errors. Bounded by a 3 s timeout, so not suitable for
    /// `/broadcast_tx_commit` with a long commit wait.
    pub fn rpc_get(&self, i: usize, path_and_query: &str) -> Result<Value> {
        self.check_index(i)?;
        let port = self.manifest.nodes[i].rpc_port;
        rpc::get_result(port, path_and_query, RPC_TIMEOUT)
            .with_context(|| format!("GET {path_and_query} on validator {i}"))
    }

    /// Latest block height of validator `i` (RPC `GET /status`).
    pub fn height(&self, i: usize) -> Result<u64> {
        Ok(self.status(i)?.height)
    }

    /// `header.app_hash` of block `height` as seen by validator `i` (RPC
    /// `GET /block?height=<height>`), upper-case hex. This is the app hash **after executing
    /// block `height - 1`** (CometBFT records the result of a block in the next header); to
    /// get the state after block `h`, ask for `h + 1` once it exists.
    pub fn app_hash(&self, i: usize, height: u64) -> Result<String> {
        self.check_index(i)?;
        let port = self.manifest.nodes[i].rpc_port;
        let r = rpc::get_result(port, &format!("/block?height={height}"), RPC_TIMEOUT)
            .with_context(|| format!("querying block {height} from validator {i}"))?;
        r.pointer("/block/header/app_hash")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("block {height} from validator {i} has no header.app_hash"))
    }

    /// Waits until validator `i` reports a height of at least `height`, polling RPC every
    /// 50 ms, for at most `timeout`. The error names the last height or RPC error seen.
    pub fn wait_for_height(&self, i: usize, height: u64, timeout: Duration) -> Result<()> {
        self.check_index(i)?;
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.height(i) {
                Ok(h) if h >= height => return Ok(()),
                Ok(h) => format!("last seen height {h}"),
                Err(e) => format!("last error: {e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "validator {i} did not reach height {height} within {timeout:?} ({last}); see {}",
                    self.node_log(i).display()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// [`LocalNet::wait_for_height`] for every validator, sharing one `timeout`.
    pub fn wait_for_height_all(&self, height: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.validators() {
            let left = deadline.saturating_duration_since(Instant::now());
            self.wait_for_height(i, height, left)?;
        }
        Ok(())
    }

    fn spawn_app(&mut self, i: usize) -> Result<()> {
        let AppKind::Dome { abci_bin } = &self.manifest.app else {
            bail!("kvstore networks have no app process");
        };
        let port = self.manifest.nodes[i].abci_port;
        if !port_is_free(port) {
            bail!(
                "ABCI port 127.0.0.1:{port} of validator {i} is in use (is this net already \
                 running from another process, e.g. `dome-net up`?)"
            );
        }
        let mut cmd = Command::new(abci_bin);
        cmd.arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db")
            .arg(self.app_data_dir(i))
            .env("NO_COLOR", "1")
            .current_dir(self.node_dir(i));
        let child = ManagedChild::spawn(&format!("app{i}"), cmd, &self.app_log(i))?;
        self.apps[i] = Some(child);
        Ok(())
    }

    fn wait_app_ready(&mut self, i: usize) -> Result<()> {
        let port = self.manifest.nodes[i].abci_port;
        let deadline = Instant::now() + APP_READY_TIMEOUT;
        loop {
            let Some(child) = self.apps[i].as_mut() else {
                bail!("app of validator {i} is not running");
            };
            if let Some(status) = child.exit_status() {
                let log = child.log().to_path_buf();
                self.apps[i] = None;
                bail!(
                    "app of validator {i} exited during startup ({}); tail of {}:\n{}",
                    describe_status(status),
                    log.display(),
                    log_tail(&log, LOG_TAIL_BYTES)
                );
            }
            if rpc::port_accepts(port, Duration::from_millis(200)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "app of validator {i} did not accept connections on 127.0.0.1:{port} within \
                     {APP_READY_TIMEOUT:?}; tail of {}:\n{}",
                    child.log().display(),
                    log_tail(child.log(), LOG_TAIL_BYTES)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn spawn_node(&mut self, i: usize) -> Result<()> {
        let info = &self.manifest.nodes[i];
        for (what, port) in [("RPC", info.rpc_port), ("P2P", info.p2p_port)] {
            if !port_is_free(port) {
                bail!(
                    "{what} port 127.0.0.1:{port} of validator {i} is in use (is this net \
                     already running from another process, e.g. `dome-net up`?)"
                );
            }
        }
        let mut cmd = Command::new(&self.manifest.cometbft_bin);
        cmd.arg("start")
            .arg("--home")
            .arg(self.node_dir(i))
            .current_dir(self.node_dir(i));
        let child = ManagedChild::spawn(&format!("cometbft{i}"), cmd, &self.node_log(i))?;
        self.nodes[i] = Some(child);
        Ok(())
    }

    fn wait_node_ready(&mut self, i: usize) -> Result<()> {
        let port = self.manifest.nodes[i].rpc_port;
        let deadline = Instant::now() + NODE_READY_TIMEOUT;
        loop {
            let Some(child) = self.nodes[i].as_mut() else {
                bail!("node {i} is not running");
            };
            if let Some(status) = child.exit_status() {
                let log = child.log().to_path_buf();
                self.nodes[i] = None;
                bail!(
                    "cometbft of validator {i} exited during startup ({}); tail of {}:\n{}",
                    describe_status(status),
                    log.display(),
                    log_tail(&log, LOG_TAIL_BYTES)
                );
            }
            if rpc::get_result(port, "/status", Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "cometbft of validator {i} did not answer RPC on 127.0.0.1:{port} within \
                     {NODE_READY_TIMEOUT:?}; tail of {}:\n{}",
                    child.log().display(),
                    log_tail(child.log(), LOG_TAIL_BYTES)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.validators() {
            bail!(
                "validator index {i} out of range (the net has {})",
                self.validators()
            );
        }
        Ok(())
    }

    fn assert_index(&self, i: usize) {
        assert!(
            i < self.validators(),
            "validator index {i} out of range (the net has {})",
            self.validators()
        );
    }
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        self.stop();
    }
}

fn running(slot: &mut Option<ManagedChild>) -> bool {
    match slot {
        Some(c) => c.exit_status().is_none(),
        None => false,
    }
}

fn node_dir_in(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("node{i}"))
}

fn config_path(home: &Path) -> PathBuf {
    home.join("config").join("config.toml")
}

fn genesis_path(home: &Path) -> PathBuf {
    home.join("config").join("genesis.json")
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn remove_path(path: &Path) -> Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.with_context(|| format!("removing {}", path.display()))
}

fn check_cometbft_version(bin: &Path) -> Result<()> {
    let mut cmd = Command::new(bin);
    cmd.arg("version");
    let out = run_bounded(cmd, COMMAND_TIMEOUT).with_context(|| {
        format!(
            "running `{} version` (install CometBFT with local/bootstrap.sh)",
            bin.display()
        )
    })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if version != COMETBFT_VERSION {
        bail!(
            "{} reports version {version:?}, expected {COMETBFT_VERSION:?} (see local/bootstrap.sh)",
            bin.display()
        );
    }
    Ok(())
}

fn parse_status(r: &Value) -> Result<NodeStatus> {
    let s = |ptr: &str| -> Result<String> {
        r.pointer(ptr)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("missing string {ptr}"))
    };
    let height_text = s("/sync_info/latest_block_height")?;
    let height = height_text
        .parse()
        .with_context(|| format!("bad latest_block_height {height_text:?}"))?;
    Ok(NodeStatus {
        node_id: s("/node_info/id")?,
        moniker: s("/node_info/moniker")?,
        height,
        block_hash: s("/sync_info/latest_block_hash")?,
        app_hash: s("/sync_info/latest_app_hash")?,
        catching_up: r
            .pointer("/sync_info/catching_up")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_status() {
        let r = json!({
            "node_info": {"id": "abc", "moniker": "node1"},
            "sync_info": {
                "latest_block_hash": "BH",
                "latest_app_hash": "AH",
                "latest_block_height": "42",
                "catching_up": true
            }
        });
        let s = parse_status(&r).unwrap();
        assert_eq!(
            s,
            NodeStatus {
                node_id: "abc".into(),
                moniker: "node1".into(),
                height: 42,
                block_hash: "BH".into(),
                app_hash: "AH".into(),
                catching_up: true,
            }
        );
        assert!(parse_status(&json!({})).is_err());
    }

    #[test]
    fn init_rejects_bad_inputs_without_touching_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = NetConfig::new(
            dir.path().join("net"),
            "/nonexistent/cometbft",
            AppKind::Kvstore,
        );
        let err = format!("{:#}", LocalNet::init(cfg.clone()).unwrap_err());
        assert!(err.contains("bootstrap.sh"), "{err}");
        assert!(!dir.path().join("net").exists());
        cfg.validators = 0;
        assert!(LocalNet::init(cfg).is_err());
        assert!(LocalNet::open(dir.path()).is_err());
    }
}
