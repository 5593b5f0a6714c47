//! `bus-bench`: committed transactions per second and commit latency on a local
//! N-validator network, for the dome ABCI app and, side by side in the same run, CometBFT's
//! built-in kvstore app with the same transaction size and the same load generator.
//!
//! Load: S streams; stream i submits its transactions one after another with
//! `broadcast_tx_sync` to validator i mod N (as a publisher would: one origin, in order).
//! For dome each stream is one member publishing creates with consecutive origin_seq, `--bundle`
//! events per transaction (a bundle of individually signed events when above 1); for kvstore
//! each transaction is `key=padding` of the same length as dome's (`kvstore-event`: of the
//! length of one event alone, one transaction per event). An observer reads every new
//! block and its results from validator 0; a transaction's latency is from the start of its
//! submission to the moment the observer sees it committed.
//!
//!     cargo run --release -p dome-tests --bin bus-bench -- --help

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use dome_bus_client::{BlockSource, BusClient, SubmitError};
use dome_events::{test_keys, Transaction, TxCode};
use dome_localnet::{AppKind, LocalNet, NetConfig};

#[derive(Parser, Clone)]
#[command(about = "Bus throughput and commit latency: dome ABCI app vs CometBFT kvstore")]
struct Args {
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Concurrent submission streams (dome: one member each).
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// Events per stream in the saturation run, a multiple of `--bundle`. `kvstore-event`
    /// submits as many transactions; `kvstore` and `socket-kvstore` as many as dome does.
    #[arg(long, default_value_t = 250)]
    per_stream: usize,
    /// Offered load of the paced run, events per second (0 skips it); `kvstore` and
    /// `socket-kvstore` are offered dome's transactions at dome's rate.
    #[arg(long, default_value_t = 1000)]
    paced_rate: u64,
    /// Duration of the paced run, seconds.
    #[arg(long, default_value_t = 5)]
    paced_seconds: u64,
    /// CometBFT consensus.timeout_commit, in milliseconds.
    #[arg(long, default_value_t = 200)]
    timeout_commit_ms: u64,
    /// dome: catalogue events per transaction (1: each event alone; more: a bundle, as the
    /// publisher sends a backlog). `kvstore` and `socket-kvstore` transactions get the same
    /// size, `kvstore-event` transactions the size of one event alone.
    #[arg(long, default_value_t = 1)]
    bundle: usize,
    /// Which apps to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "kvstore,dome")]
    apps: Vec<String>,
    #[arg(long)]
    abci_bin: Option<std::path::PathBuf>,
    /// CometBFT's abci-cli v0.38.25, for the `socket-kvstore` app
    /// (`GOBIN=~/.cache/dome/abci-cli-v0.38.25 go install github.com/cometbft/cometbft/abci/cmd/abci-cli@v0.38.25`).
    #[arg(long)]
    abci_cli: Option<std::path::PathBuf>,
    /// Override a CometBFT config.toml key on every node, e.g. `--set recheck=false`
    /// (first key of that name in the file).
    #[arg(long, value_parser = parse_setting)]
    set: Vec<(String, String)>,
    #[arg(long)]
    cometbft_bin: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq)]
enum App {
    /// CometBFT's built-in kvstore, in process.
    Kvstore,
    /// The in-process kvstore with transactions the size of one event alone: one key per
    /// event, each in its own transaction (the kvstore's best rate per key).
    KvstoreEvent,
    /// The same kvstore logic served over the ABCI socket by CometBFT's `abci-cli`: isolates
    /// what the socket transport costs every out-of-process app.
    SocketKvstore,
    Dome,
}

struct Outcome {
    committed: usize,
    rejected_in_block: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    retries: usize,
}

/// What the observer and the submitters share: submit start and commit time per tx hash.
#[derive(Default)]
struct Ledger {
    submitted: HashMap<String, Instant>,
    committed: HashMap<String, (Instant, u32)>,
}

/// The transactions every app gets: dome's events per transaction and its byte size, which
/// the kvstore's transactions are padded to.
#[derive(Clone, Copy)]
struct TxShape {
    size: usize,
    bundle: usize,
    /// Size of one event's transaction alone.
    event_size: usize,
}

/// Transaction `k` of a stream: events `k * bundle + 1 ..= (k + 1) * bundle` of its member.
fn dome_tx(stream: usize, k: usize, bundle: usize) -> anyhow::Result<Vec<u8>> {
    let key = test_keys::member_keypair(stream as u32);
    let mut txs = Vec::with_capacity(bundle);
    for seq in (k * bundle + 1)..=((k + 1) * bundle) {
        let id = format!("offering-{stream}-{seq}");
        let event = test_keys::sample_create(stream as u32, seq as u64, &id);
        txs.push(Transaction::signed_event(event, &key)?);
    }
    Ok(match txs.as_slice() {
        [tx] => tx.encode()?,
        _ => dome_events::encode_bundle(&txs)?,
    })
}

fn kvstore_tx(stream: usize, k: usize, size: usize) -> Vec<u8> {
    let mut tx = format!("bench-{stream}-{k}=").into_bytes();
    tx.resize(size.max(tx.len() + 1), b'x');
    tx
}

/// A script that starts abci-cli's kvstore with the command line the local net gives an app
/// process (`--addr HOST:PORT --db DIR`).
fn abci_cli_wrapper(dir: &std::path::Path, args: &Args) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let cli = args.abci_cli.clone().unwrap_or_else(|| {
        dome_localnet::dome_cache_dir()
            .join("abci-cli-v0.38.25")
            .join("abci-cli")
    });
    if !cli.exists() {
        bail!("{} not found (see --abci-cli)", cli.display());
    }
    let script = dir.join("socket-kvstore.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# --addr HOST:PORT --db DIR\nexec '{}' kvstore --log_level error --address \"tcp://$2\" --persist \"$4\"\n",
            cli.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("{text:?} is not key=value"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn observe(
    client: BusClient,
    ledger: Arc<Mutex<Ledger>>,
    from_height: u64,
    expected: usize,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut next = from_height + 1;
    loop {
        if Instant::now() > deadline {
            bail!("observer deadline passed at height {next}");
        }
        let tip = client.tip_height().await.unwrap_or(0);
        if tip < next {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let block = match client.fetch_block(next).await {
            Ok(b) => b,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let seen = Instant::now();
        if std::env::var_os("DOME_BENCH_BLOCKS").is_some() {
            eprintln!("block {next}: {} txs at {:?}", block.txs().len(), seen);
        }
        let mut l = ledger
            .lock()
            .map_err(|_| anyhow::anyhow!("ledger poisoned"))?;
        for (tx, code) in block.txs().iter().zip(block.codes()) {
            l.committed
                .insert(dome_bus_client::tx_hash(tx), (seen, *code));
        }
        if l.committed.len() >= expected {
            return Ok(());
        }
        drop(l);
        next += 1;
    }
}

async fn submit_stream(
    client: BusClient,
    txs: Vec<Vec<u8>>,
    ledger: Arc<Mutex<Ledger>>,
    start: Instant,
    interval: Option<Duration>,
) -> anyhow::Result<usize> {
    let mut retries = 0;
    for (k, tx) in txs.into_iter().enumerate() {
        if let Some(interval) = interval {
            let due = start + interval * k as u32;
            tokio::time::sleep_until(due.into()).await;
        }
        let hash = dome_bus_client::tx_hash(&tx);
        let began = Instant::now();
        ledger
            .lock()
            .map_err(|_| anyhow::anyhow!("ledger poisoned"))?
            .submitted
            .insert(hash, began);
        let mut attempts = 0;
        loop {
            match client.submit_bytes(tx.clone()).await {
                Ok(_) => break,
                // A node that has not yet seen this origin's previous transaction (gossip
                // order, or a re-check after a commit) answers SeqGap: wait and resubmit.
                Err(SubmitError::Rejected { code, .. })
                    if code == TxCode::SeqGap.as_u32() && attempts < 200 =>
                {
                    attempts += 1;
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => bail!("submission failed: {e}"),
            }
        }
    }
    Ok(retries)
}

async fn run_load(
    net: &LocalNet,
    app: App,
    streams: usize,
    txs_per_stream: usize,
    first_k: usize,
    shape: TxShape,
    rate: Option<u64>,
) -> anyhow::Result<Outcome> {
    let urls = net.rpc_urls();
    let observer_client = BusClient::new(vec![urls[0].clone()], Duration::from_secs(5))?;
    let start_height = observer_client.latest_height().await?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut per_stream = Vec::new();
    for s in 0..streams {
        let mut txs = Vec::with_capacity(txs_per_stream);
        for k in first_k..first_k + txs_per_stream {
            txs.push(match app {
                App::Dome => dome_tx(s, k, shape.bundle)?,
                App::Kvstore | App::SocketKvstore => kvstore_tx(s, k, shape.size),
                App::KvstoreEvent => kvstore_tx(s, k, shape.event_size),
            });
        }
        per_stream.push(txs);
    }
    let expected = streams * txs_per_stream;
    let deadline = Instant::now() + Duration::from_secs(300);
    let observer = tokio::spawn(observe(
        observer_client,
        ledger.clone(),
        start_height,
        expected,
        deadline,
    ));
    let interval = rate.map(|r| Duration::from_secs_f64(streams as f64 / r as f64));
    let start = Instant::now();
    let mut submitters = Vec::new();
    for (s, txs) in per_stream.into_iter().enumerate() {
        let client = BusClient::new(vec![urls[s % urls.len()].clone()], Duration::from_secs(10))?;
        // Stagger paced streams so the offered load is smooth.
        let offset = interval
            .map(|i| i.mul_f64(s as f64 / streams as f64))
            .unwrap_or_default();
        submitters.push(tokio::spawn(submit_stream(
            client,
            txs,
            ledger.clone(),
            start + offset,
            interval,
        )));
    }
    let mut retries = 0;
    for s in submitters {
        retries += s.await??;
    }
    observer.await??;
    let l = ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("ledger poisoned"))?;
    let first_submit = l.submitted.values().min().copied().unwrap_or(start);
    let mut latencies = Vec::new();
    let mut last_commit = first_submit;
    let mut rejected_in_block = 0;
    for (hash, began) in &l.submitted {
        let Some((at, code)) = l.committed.get(hash) else {
            bail!("transaction {hash} was never committed");
        };
        if *code != 0 {
            rejected_in_block += 1;
            continue;
        }
        latencies.push(at.duration_since(*began).as_secs_f64() * 1e3);
        last_commit = last_commit.max(*at);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Outcome {
        committed: latencies.len(),
        rejected_in_block,
        seconds: last_commit.duration_since(first_submit).as_secs_f64(),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        retries,
    })
}

fn report(app: &str, profile: &str, events_per_tx: usize, o: &Outcome) {
    let tx_per_second = o.committed as f64 / o.seconds;
    println!(
        "| {app} | {profile} | {} | {:.0} | {events_per_tx} | {:.0} | {:.0} | {:.0} | {} | {} |",
        o.committed,
        tx_per_second,
        tx_per_second * events_per_tx as f64,
        o.p50_ms,
        o.p99_ms,
        o.rejected_in_block,
        o.retries
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cometbft = args
        .cometbft_bin
        .clone()
        .unwrap_or_else(dome_localnet::default_cometbft_bin);
    let abci = match &args.abci_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("executable directory")?
            .join("dome-abci"),
    };
    if !(1..=dome_events::MAX_BUNDLE_EVENTS).contains(&args.bundle) {
        bail!(
            "--bundle must be 1 to {} events",
            dome_events::MAX_BUNDLE_EVENTS
        );
    }
    let tx_size = dome_tx(0, 0, args.bundle)?.len();
    let shape = TxShape {
        size: tx_size,
        bundle: args.bundle,
        event_size: dome_tx(0, 0, 1)?.len(),
    };
    if args.per_stream % args.bundle != 0 {
        bail!("--per-stream must be a multiple of --bundle");
    }
    println!(
        "validators {}, streams {}, timeout_commit {} ms, dome events per tx {}, tx size {tx_size} bytes (one event alone: {} bytes)",
        args.validators, args.streams, args.timeout_commit_ms, args.bundle, shape.event_size
    );
    println!(
        "| app | load | committed tx | tx/s | events per tx | events/s | p50 ms | p99 ms | refused in block | CheckTx retries |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for name in &args.apps {
        let app = match name.as_str() {
            "kvstore" => App::Kvstore,
            "kvstore-event" => App::KvstoreEvent,
            "socket-kvstore" => App::SocketKvstore,
            "dome" => App::Dome,
            other => {
                bail!("unknown app {other:?}: use kvstore, kvstore-event, socket-kvstore or dome")
            }
        };
        let dir = tempfile::Builder::new().prefix("dome-bench-").tempdir()?;
        let kind = match app {
            App::Kvstore | App::KvstoreEvent => AppKind::Kvstore,
            App::SocketKvstore => AppKind::Dome {
                abci_bin: abci_cli_wrapper(dir.path(), &args)?,
            },
            App::Dome => AppKind::Dome {
                abci_bin: abci.clone(),
            },
        };
        let mut cfg = NetConfig::new(dir.path().join("net"), cometbft.clone(), kind);
        cfg.validators = args.validators;
        cfg.timeout_commit = Duration::from_millis(args.timeout_commit_ms);
        cfg.app_state = dome_events::genesis::demo_app_state(args.streams);
        let mut net = LocalNet::init(cfg)?;
        for (key, value) in &args.set {
            for i in 0..args.validators {
                let path = net.node_dir(i).join("config").join("config.toml");
                let text = std::fs::read_to_string(&path)?;
                let edited: Vec<String> = text
                    .lines()
                    .map(|l| {
                        if l.split('=').next().map(str::trim) == Some(key.as_str()) {
                            format!("{key} = {value}")
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect();
                std::fs::write(&path, edited.join("\n"))?;
            }
        }
        net.start()?;
        net.wait_for_height_all(2, Duration::from_secs(60))?;
        // kvstore writes one key per transaction.
        let events_per_tx = if app == App::Dome { args.bundle } else { 1 };
        // `kvstore` and `socket-kvstore` get dome's transactions' number, size and pace;
        // `kvstore-event` one transaction per event.
        let events_per_submission = if app == App::KvstoreEvent {
            1
        } else {
            args.bundle
        };
        let tx_per_stream = args.per_stream / events_per_submission;
        let saturation = run_load(&net, app, args.streams, tx_per_stream, 0, shape, None)
            .await
            .with_context(|| format!("{name}: saturation run"))?;
        report(name, "saturation", events_per_tx, &saturation);
        if args.paced_rate > 0 {
            let tx_rate = (args.paced_rate / events_per_submission as u64).max(1);
            let per_stream = (tx_rate * args.paced_seconds) as usize / args.streams;
            let paced = run_load(
                &net,
                app,
                args.streams,
                per_stream,
                tx_per_stream,
                shape,
                Some(tx_rate),
            )
            .await
            .with_context(|| format!("{name}: paced run"))?;
            report(
                name,
                &format!("paced {} events/s", args.paced_rate),
                events_per_tx,
                &paced,
            );
        }
        net.stop();
        if let Some(keep) = std::env::var_os("DOME_BENCH_KEEP") {
            let target = std::path::Path::new(&keep).join(name);
            let _ = std::fs::remove_dir_all(&target);
            std::fs::rename(dir.path().join("net"), &target)?;
        }
    }
    Ok(())
}
