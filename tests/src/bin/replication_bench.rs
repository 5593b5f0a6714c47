//! `replication-bench`: replication latency and catch-up of a real local federation
//! (4 validators with the dome app, 3 marketplaces), all on 127.0.0.1.
//!
//! - Latency: from the 201 of a POST on A to the moment B serves the same version, for
//!   changes offered at a fixed rate (default 1/s and 100/s), p50 and p99. B's moment is the
//!   `at` of its `applied` audit line, written right after the version becomes readable
//!   (all processes share one clock), so measuring adds no load while the changes flow.
//! - Catch-up: C is stopped while A creates `--catch-up N` offerings (default 10,000); the
//!   time from C's restart until it holds all of them, and its fetches per second.
//!
//! ```text
//! cargo build --release --bins && target/release/replication-bench [--timeout-commit 500ms]
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use dome_localnet::federation::{self, Federation, LOCAL_API_TOKEN, TMF620_BASE};
use dome_localnet::{default_cometbft_bin, AppKind, LocalNet, NetConfig};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(about = "Replication latency and catch-up of a local dome federation")]
struct Args {
    /// consensus.timeout_commit in milliseconds
    #[arg(long, default_value_t = 500)]
    timeout_commit_ms: u64,
    /// Offered rates (changes per second) of the latency runs
    #[arg(long, value_delimiter = ',', default_values_t = vec![1.0, 100.0])]
    rates: Vec<f64>,
    /// Length of each latency run, in seconds
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Offerings created while C is down (0: no catch-up run)
    #[arg(long, default_value_t = 10_000)]
    catch_up: usize,
    /// Directory holding dome-abci and dome-marketplace [default: next to this executable]
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

struct Client {
    http: reqwest::Client,
    a: String,
    b: String,
}

impl Client {
    async fn post(&self, base: &str, name: String) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{base}{TMF620_BASE}/productOffering"))
            .bearer_auth(LOCAL_API_TOKEN)
            .json(&json!({"name": name, "lifecycleStatus": "Active"}))
            .send()
            .await?;
        if response.status().as_u16() != 201 {
            bail!("POST: {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// Polls `base` until it serves `version` of `id`; returns when it first did.
    async fn first_seen(
        &self,
        base: &str,
        id: &str,
        version: &str,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        let url = format!("{base}{TMF620_BASE}/productOffering/{id}");
        loop {
            if let Ok(response) = self.http.get(&url).send().await {
                if response.status().as_u16() == 200 {
                    let body: Value = response.json().await?;
                    if body["version"].as_str() == Some(version)
                        || body["version"] == json!(version)
                    {
                        return Ok(Instant::now());
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!("{id} v{version} not seen within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn epoch_ms(at: &str) -> Option<f64> {
    let t = dome_tmf::time::parse_rfc3339(at)?;
    Some(t.secs() as f64 * 1000.0 + f64::from(t.nanos()) / 1e6)
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// When B applied each version: the `applied` lines of its audit trail, which B writes
/// right after the version becomes readable (reading the trail costs the federation nothing
/// while the load runs, unlike polling B for every change).
async fn applied_on(client: &Client, base: &str) -> anyhow::Result<HashMap<(String, u64), f64>> {
    let mut applied = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/replication/v1/audit?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", urlencode(c)));
        }
        // The audit trail names restricted entities: it needs the token, as writes do.
        let response = client
            .http
            .get(&url)
            .bearer_auth(LOCAL_API_TOKEN)
            .send()
            .await?
            .error_for_status()?;
        let next = response
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let lines: Vec<Value> = response.json().await?;
        for line in lines {
            if line["decision"] == "applied" {
                if let (Some(id), Some(version), Some(at)) = (
                    line["id"].as_str(),
                    line["version"].as_u64(),
                    line["at"].as_str().and_then(epoch_ms),
                ) {
                    applied.insert((id.to_owned(), version), at);
                }
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(applied),
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Offers `rate` creates per second on A for `seconds`; returns each create's (id, time of
/// its 201 in ms since the epoch).
async fn offer_load(
    client: Arc<Client>,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<Vec<(String, f64)>> {
    let count = ((rate * seconds as f64).round() as usize).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        tokio::time::sleep_until(start + interval * n as u32).await;
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let created = client.post(&client.a, format!("latency {n}")).await?;
            let acked = now_ms();
            let id = created["id"].as_str().context("id")?.to_string();
            anyhow::Ok((id, acked))
        }));
    }
    let mut acks = Vec::with_capacity(count);
    for task in tasks {
        acks.push(task.await??);
    }
    Ok(acks)
}

async fn latency_run(client: Arc<Client>, rate: f64, seconds: u64) -> anyhow::Result<Vec<f64>> {
    let acks = offer_load(Arc::clone(&client), rate, seconds).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let applied = applied_on(&client, &client.b).await?;
        if acks
            .iter()
            .all(|(id, _)| applied.contains_key(&(id.clone(), 1)))
        {
            let mut latencies: Vec<f64> = acks
                .iter()
                .map(|(id, acked)| applied[&(id.clone(), 1)] - acked)
                .collect();
            latencies.sort_by(f64::total_cmp);
            return Ok(latencies);
        }
        if Instant::now() >= deadline {
            bail!("B did not apply every change within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("executable directory")?
            .to_path_buf(),
    };
    let dir = tempfile::Builder::new()
        .prefix("dome-repl-bench-")
        .tempdir()?;
    let (markets, app_state) = federation::plan(3)?;
    let mut cfg = NetConfig::new(
        dir.path().join("net"),
        default_cometbft_bin(),
        AppKind::Dome {
            abci_bin: bin_dir.join("dome-abci"),
        },
    );
    cfg.timeout_commit = Duration::from_millis(args.timeout_commit_ms);
    cfg.app_state = app_state;
    let mut net = LocalNet::init(cfg)?;
    net.start()?;
    net.wait_for_height_all(1, Duration::from_secs(60))?;
    Federation::init(dir.path(), markets)?;
    let mut fed = Federation::open(dir.path(), bin_dir.join("dome-marketplace"), net.rpc_urls())?;
    fed.start_all()?;
    for i in 0..fed.len() {
        fed.wait_ready(i, Duration::from_secs(30))?;
    }
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        a: fed.url(0),
        b: fed.url(1),
    });
    let runtime = tokio::runtime::Runtime::new()?;
    println!(
        "replication-bench: 4 validators, timeout_commit {} ms, 3 marketplaces (embedded store)",
        args.timeout_commit_ms
    );
    for rate in &args.rates {
        let latencies = runtime.block_on(latency_run(Arc::clone(&client), *rate, args.seconds))?;
        println!(
            "latency A 201 -> B 200  rate {rate}/s  n={}  p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
            latencies.len(),
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
    }
    if args.catch_up > 0 {
        fed.stop(2)?;
        let created_at = Instant::now();
        let ids: Vec<String> = runtime.block_on(async {
            let mut ids = Vec::with_capacity(args.catch_up);
            let mut tasks = Vec::new();
            for chunk in 0..args.catch_up.div_ceil(250) {
                let client = Arc::clone(&client);
                let n = (args.catch_up - chunk * 250).min(250);
                tasks.push(tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(n);
                    for k in 0..n {
                        let created = client
                            .post(&client.a, format!("catch-up {chunk}-{k}"))
                            .await?;
                        ids.push(created["id"].as_str().context("id")?.to_string());
                    }
                    anyhow::Ok(ids)
                }));
            }
            for task in tasks {
                ids.extend(task.await??);
            }
            anyhow::Ok(ids)
        })?;
        println!(
            "catch-up: {} offerings created on A in {:.1} s",
            ids.len(),
            created_at.elapsed().as_secs_f64()
        );
        // Wait until A's outbox is on the bus and B has everything: C then has a fixed
        // backlog to replay.
        let last = ids.last().context("no ids")?.clone();
        runtime.block_on(client.first_seen(&client.b, &last, "1", Duration::from_secs(600)))?;
        let target_height = net.height(0)?;
        let restarted = Instant::now();
        fed.start(2)?;
        fed.wait_ready(2, Duration::from_secs(30))?;
        loop {
            let status = fed.status(2)?;
            if status["relayCheckpoint"].as_u64().unwrap_or(0) >= target_height {
                break;
            }
            if restarted.elapsed() > Duration::from_secs(1800) {
                bail!("C did not catch up within 30 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let took = restarted.elapsed().as_secs_f64();
        // The relay checkpoint only says the backlog was handed off: check that C serves the
        // last offering created (the first one C is missing would stall its replicator).
        runtime.block_on(client.first_seen(&fed.url(2), &last, "1", Duration::from_secs(60)))?;
        println!(
            "catch-up: C converged on {} offerings (bus height {}) in {took:.1} s: {:.0} fetches/s",
            ids.len(),
            target_height,
            ids.len() as f64 / took
        );
    }
    fed.stop_all()?;
    net.stop();
    Ok(())
}
