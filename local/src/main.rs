//! `dome-net`: bring a local dome validator network up and down.
//!
//! ```text
//! dome-net up [--validators 4] [--dir DIR] [--timeout-commit 500ms] [--kvstore]
//!             [--abci-bin PATH] [--cometbft-bin PATH] [--members 4] [--detach]
//!             [--marketplaces N] [--marketplace-bin PATH] [--no-seed]
//! dome-net down   [--dir DIR]
//! dome-net status [--dir DIR]
//! dome-net reset  [--dir DIR]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dome_localnet::federation::{self, Federation};
use dome_localnet::{
    default_cometbft_bin, dome_cache_dir, log_tail, pid_alive, port_accepts, AppKind, LocalNet,
    NetConfig, ProcessRole, MANIFEST_FILE,
};

/// Name of the supervisor pid file inside the net dir.
const PID_FILE: &str = "dome-net.pid";
/// Log of a detached supervisor inside the net dir.
const SUPERVISOR_LOG: &str = "dome-net.log";
/// How long `up` waits for every validator to reach height 1.
const FIRST_BLOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `up --detach` waits for the background supervisor to report the net up.
const DETACH_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `up` waits for each marketplace to answer.
const MARKET_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Marks a federation whose demo catalogue was seeded (seeding happens once).
const SEEDED_FILE: &str = "demo-seeded";
/// How long `down` waits for the supervisor after SIGTERM before SIGKILL.
const DOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(
    name = "dome-net",
    version,
    about = "Run a local N-validator CometBFT network of dome ABCI apps on 127.0.0.1"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Initialise the net (if DIR holds none), start it, print each validator's RPC URL and
    /// supervise it until Ctrl-C/SIGTERM (or return once it is up with --detach).
    Up(UpArgs),
    /// Stop a net started with `up --detach` (SIGTERM to its supervisor, then SIGKILL).
    Down(DirArg),
    /// Print height and app hash of every validator.
    Status(DirArg),
    /// Wipe chain and app data of every validator (keeps keys, genesis and config).
    Reset(DirArg),
}

#[derive(Debug, Args)]
struct DirArg {
    /// Network directory [default: $DOME_CACHE or $HOME/.cache/dome, + /net]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl DirArg {
    fn resolve(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| dome_cache_dir().join("net"))
    }
}

#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Number of validators, used when initialising [default: 4]
    #[arg(long, value_name = "N")]
    validators: Option<usize>,
    /// consensus.timeout_commit, e.g. 500ms, 1s [default: 500ms]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout_commit: Option<Duration>,
    /// Run CometBFT's built-in kvstore instead of dome-abci (a baseline)
    #[arg(long)]
    kvstore: bool,
    /// dome-abci binary [default: dome-abci next to this executable]
    #[arg(long, value_name = "PATH")]
    abci_bin: Option<PathBuf>,
    /// CometBFT binary [default: $HOME/.cache/dome/cometbft-v0.38.25/cometbft]
    #[arg(long, value_name = "PATH")]
    cometbft_bin: Option<PathBuf>,
    /// Number of demo members in the genesis app_state, used when initialising [default: 4]
    #[arg(long, value_name = "N")]
    members: Option<usize>,
    /// CometBFT log_level, used when initialising [default: state:info,*:error]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Start in the background: write DIR/dome-net.pid, return once every validator has
    /// produced a block (stop with `dome-net down`)
    #[arg(long)]
    detach: bool,
    /// Also run N marketplaces (TMF620 API + replication, embedded store), the founding
    /// members of the bus; used when initialising [default: 0]
    #[arg(long, value_name = "N")]
    marketplaces: Option<usize>,
    /// dome-marketplace binary [default: next to this executable]
    #[arg(long, value_name = "PATH")]
    marketplace_bin: Option<PathBuf>,
    /// Do not seed the demo catalogue on the first marketplace of a new federation
    #[arg(long)]
    no_seed: bool,
    /// Run marketplace NAME (e.g. `b`) on DynamoDB and SQS FIFO, served by a moto server
    /// this command starts (install it with local/moto.sh); its data lasts while the net runs
    #[arg(long, value_name = "NAME")]
    dynamodb: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up(args) => up(args),
        Cmd::Down(args) => down(&args.resolve()),
        Cmd::Status(args) => status(&args.resolve()),
        Cmd::Reset(args) => reset(&args.resolve()),
    };
    if let Err(e) = result {
        eprintln!("dome-net: error: {e:#}");
        std::process::exit(1);
    }
}

fn up(args: UpArgs) -> Result<()> {
    let dir = args.dir.resolve();
    if let Some(pid) = running_supervisor(&dir)? {
        if pid != std::process::id() {
            bail!(
                "a dome-net supervisor (pid {pid}) is already running the net in {}; stop it \
                 with `dome-net down --dir {}`",
                dir.display(),
                dir.display()
            );
        }
    }
    let net = if dir.join(MANIFEST_FILE).exists() {
        let mut net = LocalNet::open(&dir)?;
        reconcile(&mut net, &args)?;
        net
    } else {
        eprintln!("dome-net: initialising a new net in {}", dir.display());
        let mut cfg = new_config(&dir, &args)?;
        let mut planned = None;
        if let Some(count) = args.marketplaces.filter(|n| *n > 0) {
            if args.kvstore {
                bail!("--marketplaces needs the dome app: drop --kvstore");
            }
            let (markets, app_state) = federation::plan(count)?;
            cfg.app_state = app_state;
            planned = Some(markets);
        }
        let net = LocalNet::init(cfg)?;
        if let Some(markets) = planned {
            Federation::init(&dir, markets)?;
        }
        net
    };
    if let AppKind::Dome { abci_bin } = net.app_kind() {
        if !abci_bin.is_file() {
            bail!(
                "dome-abci not found at {}; build it with `cargo build -p dome-abci` or pass \
                 --abci-bin",
                abci_bin.display()
            );
        }
    }
    let markets = if Federation::exists(&dir) {
        let bin = match &args.marketplace_bin {
            Some(p) => p.clone(),
            None => sibling_bin("dome-marketplace")?,
        };
        Some(Federation::open(&dir, bin, net.rpc_urls())?)
    } else {
        None
    };
    if args.detach {
        detach(net, &dir, &args)
    } else {
        let mut markets = markets;
        if let Some(name) = &args.dynamodb {
            let Some(federation) = markets.as_mut() else {
                bail!("--dynamodb needs a federation: add --marketplaces N");
            };
            let i = federation.index_of(name)?;
            let resources = federation.use_dynamodb(i, &federation::AwsOptions::default())?;
            eprintln!(
                "dome-net: marketplace {name} on DynamoDB table {} and SQS queue {} (moto at {})",
                resources.table, resources.queue_url, resources.endpoint
            );
        }
        supervise(net, markets, &dir, !args.no_seed)
    }
}

fn sibling_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the current executable")?;
    Ok(exe
        .parent()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name)))
}

/// Starts the marketplaces, seeds the demo catalogue on the first one of a new federation,
/// and prints each marketplace's API URL.
fn start_marketplaces(markets: &mut Federation, dir: &Path, seed: bool) -> Result<()> {
    markets.start_all()?;
    for i in 0..markets.len() {
        markets.wait_ready(i, MARKET_READY_TIMEOUT)?;
    }
    let marker = dir.join(SEEDED_FILE);
    if seed && !marker.exists() && !markets.is_empty() {
        let created = markets.seed_demo(0)?;
        std::fs::write(&marker, format!("{}\n", created.len()))
            .with_context(|| format!("writing {}", marker.display()))?;
        eprintln!(
            "dome-net: seeded {} demo entities on marketplace {}",
            created.len(),
            markets.marketplaces()[0].name
        );
    }
    for m in markets.marketplaces() {
        println!(
            "marketplace {} ({}): {}{}",
            m.name,
            m.member,
            m.url(),
            federation::TMF620_BASE
        );
    }
    Ok(())
}

fn new_config(dir: &Path, args: &UpArgs) -> Result<NetConfig> {
    let cometbft_bin = args
        .cometbft_bin
        .clone()
        .unwrap_or_else(default_cometbft_bin);
    let app = if args.kvstore {
        AppKind::Kvstore
    } else {
        AppKind::Dome {
            abci_bin: match &args.abci_bin {
                Some(p) => p.clone(),
                None => default_abci_bin()?,
            },
        }
    };
    let app_state = if args.kvstore {
        serde_json::Value::Null
    } else {
        dome_events::genesis::demo_app_state(args.members.unwrap_or(4))
    };
    let mut cfg = NetConfig::new(dir, cometbft_bin, app);
    cfg.app_state = app_state;
    if let Some(v) = args.validators {
        cfg.validators = v;
    }
    if let Some(t) = args.timeout_commit {
        cfg.timeout_commit = t;
    }
    if let Some(l) = &args.log_level {
        cfg.log_level = l.clone();
    }
    Ok(cfg)
}

/// Applies the flags of `up` to an existing net, refusing those that cannot change after init.
fn reconcile(net: &mut LocalNet, args: &UpArgs) -> Result<()> {
    let dir = net.dir().display().to_string();
    if let Some(v) = args.validators {
        if v != net.validators() {
            bail!(
                "{dir} holds a {}-validator net; use another --dir or delete it to change \
                 --validators",
                net.validators()
            );
        }
    }
    match (net.app_kind(), args.kvstore) {
        (AppKind::Kvstore, false) => {
            bail!("{dir} holds a kvstore net; pass --kvstore or use another --dir")
        }
        (AppKind::Dome { .. }, true) => {
            bail!("{dir} holds a dome net; drop --kvstore or use another --dir")
        }
        _ => {}
    }
    if args.members.is_some() || args.log_level.is_some() {
        eprintln!("dome-net: note: --members and --log-level only apply when initialising a net");
    }
    if let Some(bin) = &args.cometbft_bin {
        net.set_cometbft_bin(bin)?;
    }
    if let AppKind::Dome { abci_bin } = net.app_kind() {
        if let Some(bin) = &args.abci_bin {
            net.set_abci_bin(bin)?;
        } else if !abci_bin.is_file() {
            net.set_abci_bin(default_abci_bin()?)?;
        }
    }
    if let Some(t) = args.timeout_commit {
        if u128::from(net.manifest().timeout_commit_ms) != t.as_millis() {
            net.set_timeout_commit(t)?;
        }
    }
    Ok(())
}

fn default_abci_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the current executable")?;
    Ok(exe
        .parent()
        .map(|d| d.join("dome-abci"))
        .unwrap_or_else(|| PathBuf::from("dome-abci")))
}

/// Foreground mode: start, print URLs, watch the children until Ctrl-C/SIGTERM, stop.
fn supervise(
    mut net: LocalNet,
    mut markets: Option<Federation>,
    dir: &Path,
    seed: bool,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C/SIGTERM handler")?;
    let pid_file = dir.join(PID_FILE);
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", pid_file.display()))?;
    let _pid_guard = RemoveOnDrop(pid_file);

    eprintln!(
        "dome-net: starting {} validators ({}) from {}",
        net.validators(),
        describe_app(net.app_kind()),
        dir.display()
    );
    net.start()?;
    net.wait_for_height_all(1, FIRST_BLOCK_TIMEOUT)?;
    for url in net.rpc_urls() {
        println!("{url}");
    }
    if let Some(markets) = markets.as_mut() {
        if let Err(e) = start_marketplaces(markets, dir, seed) {
            let _ = markets.stop_all();
            net.stop();
            return Err(e);
        }
    }
    eprintln!(
        "dome-net: net is up; logs in {}/node<i>/{{cometbft,app}}.log and market-<x>/market.log; Ctrl-C to stop",
        dir.display()
    );
    while !stop.load(Ordering::SeqCst) {
        if let Some(markets) = markets.as_mut() {
            for (name, status) in markets.poll_exited() {
                eprintln!("dome-net: marketplace {name} exited: {status}; see its market.log");
            }
        }
        for e in net.poll_exited() {
            let what = match e.role {
                ProcessRole::Node => "cometbft",
                ProcessRole::App => "app",
            };
            eprintln!(
                "dome-net: {what} of validator {} (pid {}) exited: {}; see {}",
                e.validator,
                e.pid,
                e.status,
                e.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("dome-net: stopping");
    if let Some(markets) = markets.as_mut() {
        let _ = markets.stop_all();
    }
    net.stop();
    eprintln!("dome-net: stopped");
    Ok(())
}

/// Background mode: re-run `dome-net up --dir DIR` as a new session leader whose output goes to
/// DIR/dome-net.log, and wait until it reports every validator at height 1.
fn detach(net: LocalNet, dir: &Path, args: &UpArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the current executable")?;
    let log_path = dir.join(SUPERVISOR_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let log_err = log.try_clone().context("duplicating log handle")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("up").arg("--dir").arg(dir);
    if matches!(net.app_kind(), AppKind::Kvstore) {
        cmd.arg("--kvstore");
    }
    if let Some(bin) = &args.marketplace_bin {
        cmd.arg("--marketplace-bin").arg(bin);
    }
    if args.no_seed {
        cmd.arg("--no-seed");
    }
    if let Some(name) = &args.dynamodb {
        cmd.arg("--dynamodb").arg(name);
    }
    let federated = Federation::exists(dir);
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
    // SAFETY: setsid is async-signal-safe; it detaches the supervisor from our terminal and
    // process group so that it outlives this process.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", exe.display()))?;
    let pid_file = dir.join(PID_FILE);
    std::fs::write(&pid_file, format!("{}\n", child.id()))
        .with_context(|| format!("writing {}", pid_file.display()))?;

    let deadline = Instant::now() + DETACH_READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("polling the supervisor")? {
            let _ = std::fs::remove_file(&pid_file);
            bail!(
                "the background supervisor exited ({status}); tail of {}:\n{}",
                log_path.display(),
                log_tail(&log_path, 4096)
            );
        }
        let mut up = (0..net.validators()).all(|i| net.height(i).is_ok_and(|h| h >= 1));
        if up && federated {
            // The supervisor prints the marketplace URLs once they are ready and seeded.
            up = log_tail(&log_path, 64 * 1024).contains("net is up;");
        }
        if up {
            break;
        }
        if Instant::now() >= deadline {
            // SAFETY: plain kill(2) of our own child, which has not been reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            bail!(
                "the net did not come up within {DETACH_READY_TIMEOUT:?}; supervisor (pid {}) \
                 told to stop; tail of {}:\n{}",
                child.id(),
                log_path.display(),
                log_tail(&log_path, 4096)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for url in net.rpc_urls() {
        println!("{url}");
    }
    if federated {
        let markets = Federation::open(dir, PathBuf::new(), Vec::new())?;
        for m in markets.marketplaces() {
            println!(
                "marketplace {} ({}): {}{}",
                m.name,
                m.member,
                m.url(),
                federation::TMF620_BASE
            );
        }
    }
    eprintln!(
        "dome-net: net is up in the background (supervisor pid {}, log {}); stop it with \
         `dome-net down --dir {}`",
        child.id(),
        log_path.display(),
        dir.display()
    );
    Ok(())
}

fn down(dir: &Path) -> Result<()> {
    let Some(pid) = running_supervisor(dir)? else {
        eprintln!("dome-net: no supervisor is running for {}", dir.display());
        return Ok(());
    };
    eprintln!("dome-net: stopping supervisor pid {pid}");
    let raw = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) of a process verified to be a dome-net supervisor of this dir.
    unsafe {
        libc::kill(raw, libc::SIGTERM);
    }
    if !wait_gone(pid, DOWN_GRACE) {
        eprintln!("dome-net: supervisor did not stop within {DOWN_GRACE:?}; sending SIGKILL");
        // SAFETY: as above. Its children die with it (PR_SET_PDEATHSIG).
        unsafe {
            libc::kill(raw, libc::SIGKILL);
        }
        if !wait_gone(pid, Duration::from_secs(5)) {
            bail!("supervisor pid {pid} survived SIGKILL");
        }
    }
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    // The validators die with the supervisor; make sure their RPC ports are closed.
    if let Ok(net) = LocalNet::open(dir) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for n in net.nodes() {
            while port_accepts(n.rpc_port, Duration::from_millis(200)) {
                if Instant::now() >= deadline {
                    bail!("RPC port {} still answers after shutdown", n.rpc_port);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    eprintln!("dome-net: stopped");
    Ok(())
}

fn status(dir: &Path) -> Result<()> {
    let net = LocalNet::open(dir)?;
    match running_supervisor(dir)? {
        Some(pid) => println!("supervisor: running (pid {pid})"),
        None => println!("supervisor: not running"),
    }
    println!(
        "chain: {}  app: {}  dir: {}",
        net.manifest().chain_id,
        describe_app(net.app_kind()),
        dir.display()
    );
    for i in 0..net.validators() {
        match net.status(i) {
            Ok(s) => println!(
                "node{i}  {}  height={}  app_hash={}{}",
                net.rpc_url(i),
                s.height,
                if s.app_hash.is_empty() {
                    "-"
                } else {
                    &s.app_hash
                },
                if s.catching_up { "  (catching up)" } else { "" }
            ),
            Err(_) => println!("node{i}  {}  down", net.rpc_url(i)),
        }
    }
    if Federation::exists(dir) {
        let bus_height = (0..net.validators())
            .filter_map(|i| net.height(i).ok())
            .max()
            .unwrap_or(0);
        let markets = Federation::open(dir, PathBuf::new(), Vec::new())?;
        for (i, m) in markets.marketplaces().iter().enumerate() {
            match markets.status(i) {
                Ok(s) => {
                    let checkpoint = s["relayCheckpoint"].as_u64().unwrap_or(0);
                    // A marketplace on SQS also has the messages parked in its DLQ.
                    let sqs = match markets.sqs_dead_letters(i) {
                        Ok(Some(depth)) => format!("  sqs_dlq={depth}"),
                        Ok(None) => String::new(),
                        Err(_) => "  sqs_dlq=?".to_owned(),
                    };
                    println!(
                        "market-{}  {}  {}  relay_checkpoint={}  lag={}  published={}/{}  dead_letters={}{sqs}",
                        m.name,
                        m.member,
                        m.url(),
                        checkpoint,
                        bus_height.saturating_sub(checkpoint),
                        s["publisherCheckpoint"],
                        s["outboxLast"],
                        s["deadLetters"]
                    );
                }
                Err(_) => println!("market-{}  {}  {}  down", m.name, m.member, m.url()),
            }
        }
    }
    Ok(())
}

fn reset(dir: &Path) -> Result<()> {
    if let Some(pid) = running_supervisor(dir)? {
        bail!(
            "the net in {} is running (supervisor pid {pid}); stop it first with `dome-net down`",
            dir.display()
        );
    }
    let mut net = LocalNet::open(dir)?;
    net.reset()?;
    eprintln!(
        "dome-net: reset chain and app data of {} validators in {}",
        net.validators(),
        dir.display()
    );
    Ok(())
}

fn describe_app(app: &AppKind) -> String {
    match app {
        AppKind::Dome { abci_bin } => format!("dome-abci {}", abci_bin.display()),
        AppKind::Kvstore => "kvstore".to_string(),
    }
}

/// The pid in DIR/dome-net.pid if it names a live dome-net process; a stale file is removed.
fn running_supervisor(dir: &Path) -> Result<Option<u32>> {
    let path = dir.join(PID_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let live = text
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&pid| process_is_live(pid) && is_dome_net(pid));
    if live.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    Ok(live)
}

/// Alive and not a zombie.
fn process_is_live(pid: u32) -> bool {
    if !pid_alive(pid) {
        return false;
    }
    // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether the process's `argv[0]` is a `dome-net` executable (guards against pid reuse).
fn is_dome_net(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    Path::new(&*String::from_utf8_lossy(argv0))
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("dome-net"))
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_is_live(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        // Only remove the pid file if it still names us (a detaching parent wrote the same pid).
        let ours = std::fs::read_to_string(&self.0)
            .map(|t| t.trim() == std::process::id().to_string())
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Parses `500ms`, `1s`, `1.5s`, `2m`, `100us`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?} has no unit (use e.g. 500ms or 1s)"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("bad number {num:?} in duration {s:?}"))?;
    let secs = match unit {
        "ns" => value / 1e9,
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in duration {s:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("500").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn cli_is_consistent_and_parses() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "dome-net",
            "up",
            "--validators",
            "7",
            "--timeout-commit",
            "200ms",
            "--kvstore",
            "--detach",
            "--dir",
            "/tmp/x",
        ])
        .unwrap();
        let Cmd::Up(up) = cli.command else {
            panic!("expected up")
        };
        assert_eq!(up.validators, Some(7));
        assert_eq!(up.timeout_commit, Some(Duration::from_millis(200)));
        assert!(up.kvstore && up.detach);
        assert_eq!(up.dir.resolve(), PathBuf::from("/tmp/x"));
        assert!(Cli::try_parse_from(["dome-net", "status"]).is_ok());
    }

    #[test]
    fn stale_pid_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Our own test binary is alive but is not a dome-net process (it is dome_net-<hash>).
        std::fs::write(
            dir.path().join(PID_FILE),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        assert_eq!(running_supervisor(dir.path()).unwrap(), None);
        assert!(!dir.path().join(PID_FILE).exists());
        std::fs::write(dir.path().join(PID_FILE), "garbage").unwrap();
        assert_eq!(running_supervisor(dir.path()).unwrap(), None);
    }
}
