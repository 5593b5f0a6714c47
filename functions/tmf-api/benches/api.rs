//! Benchmark of the TMF620 API (not a test): `cargo bench -p dome-tmf-api --bench api`.
//!
//! In one run, on 127.0.0.1:
//! 1. starts the release `tmf-api` (built by cargo for this bench, default features) with the
//!    embedded store in a temporary directory and seeds it with `DOME_BENCH_ENTITIES` (1,000)
//!    product offerings over HTTP (a quarter of them `Active`);
//! 2. starts the floor: this same executable re-run as a minimal axum server (same HTTP stack,
//!    same tokio runtime defaults as tmf-api, its own process) answering every GET with a
//!    fixed JSON body as long as tmf-api's answer to a GET by id;
//! 3. drives each with the same load generator: `DOME_BENCH_CONNECTIONS` (32) keep-alive
//!    HTTP/1.1 connections, each sending its next request when the previous answer is read,
//!    for `DOME_BENCH_SECONDS` (5) after `DOME_BENCH_WARMUP_SECONDS` (1) of warm-up, on a
//!    single-threaded tokio runtime (a minimal client written for this, so that the client
//!    takes as little of the 2 cores as possible). Scenarios: the floor and GET by id
//!    (alternating, `DOME_BENCH_ROUNDS` (3) rounds each, the median round reported), a
//!    filtered list (`?lifecycleStatus=Active&limit=20`), PATCH, POST (writes with a bearer
//!    token and valid bodies); requests/s, p50 and p99 latency, answers with an unexpected
//!    status, the server's `VmHWM` after each;
//! 4. measures the start-up time: `DOME_BENCH_STARTS` (20) starts of tmf-api on the seeded
//!    data directory (each stopped with SIGTERM), from spawning the process to the first
//!    answered GET by id (median);
//! 5. reports the size of the tmf-api executable, as built and stripped (`strip`).
//!
//! The results go to stdout as Markdown (docs/benchmarks.md, "TMF620 API"); progress to
//! stderr. `DOME_BENCH_SCENARIOS=floor,get,list,patch,post,starts` runs a subset (profiling);
//! `DOME_BLOCKING_THREADS`, `DOME_HEAD_CACHE`, `DOME_STORE_CACHE_MIB` and `MIMALLOC_*` are
//! passed to tmf-api.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const BASE: &str = "/tmf-api/productCatalogManagement/v4";
const TOKEN: &str = "bench-token";
const ROLE_ENV: &str = "DOME_BENCH_ROLE";
const FLOOR_BYTES_ENV: &str = "DOME_BENCH_FLOOR_BYTES";
const LIFECYCLE: [&str; 4] = ["Active", "In study", "Launched", "Retired"];

struct Settings {
    connections: usize,
    duration: Duration,
    warmup: Duration,
    entities: usize,
    starts: usize,
    /// Alternating rounds of the floor and GET by id (`DOME_BENCH_ROUNDS`, 3).
    rounds: usize,
    /// `DOME_BENCH_SCENARIOS`: a comma-separated subset of floor,get,list,patch,post,starts
    /// (for profiling one of them); all when unset.
    scenarios: Option<Vec<String>>,
}

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("{name} must be a positive integer, not {text:?}")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            connections: env_number("DOME_BENCH_CONNECTIONS", 32)? as usize,
            duration: Duration::from_secs(env_number("DOME_BENCH_SECONDS", 5)?),
            warmup: Duration::from_secs(env_number("DOME_BENCH_WARMUP_SECONDS", 1)?),
            entities: env_number("DOME_BENCH_ENTITIES", 1000)? as usize,
            starts: env_number("DOME_BENCH_STARTS", 20)? as usize,
            rounds: env_number("DOME_BENCH_ROUNDS", 3)? as usize,
            scenarios: std::env::var("DOME_BENCH_SCENARIOS")
                .ok()
                .map(|list| list.split(',').map(|s| s.trim().to_string()).collect()),
        })
        .and_then(|settings| {
            if settings.entities < settings.connections {
                bail!("DOME_BENCH_ENTITIES must be at least DOME_BENCH_CONNECTIONS");
            }
            Ok(settings)
        })
    }

    fn wants(&self, scenario: &str) -> bool {
        self.scenarios
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == scenario))
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::var(ROLE_ENV).as_deref() == Ok("floor") {
        return run_floor();
    }
    let settings = Settings::from_env()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(settings))
}

// --- processes ----------------------------------------------------------------------------

/// A child process, killed and reaped when dropped (also when the bench fails).
struct Process {
    child: Child,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (tmf-api then closes its store cleanly), SIGKILL after 10 s.
    fn stop(mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        bail!("the server did not stop within 10 s of SIGTERM")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tmf_api_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tmf-api"))
}

fn tmf_api_command(data_dir: &Path, listen: &str) -> Command {
    let mut command = Command::new(tmf_api_bin());
    command
        .env_clear()
        .env("DOME_LISTEN", listen)
        .env("DOME_DATA_DIR", data_dir)
        .env("DOME_STORE", "embedded")
        .env("DOME_API_TOKENS", TOKEN)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // Server tuning under test (README of tmf-api), passed through when set.
    for (name, value) in std::env::vars() {
        if matches!(
            name.as_str(),
            "DOME_BLOCKING_THREADS" | "DOME_HEAD_CACHE" | "DOME_STORE_CACHE_MIB"
        ) || name.starts_with("MIMALLOC_")
        {
            command.env(name, value);
        }
    }
    command
}

/// Waits for a server to write its address to `addr_file`.
fn wait_for_addr(process: &mut Process, addr_file: &Path) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(addr_file) {
            if let Ok(addr) = text.trim().parse() {
                return Ok(addr);
            }
        }
        if let Some(status) = process.child.try_wait()? {
            bail!("the server exited during start-up: {status}");
        }
        if Instant::now() > deadline {
            bail!("the server did not start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn start_tmf_api(data_dir: &Path, work: &Path) -> anyhow::Result<(Process, SocketAddr)> {
    let addr_file = work.join("tmf-api.addr");
    let _ = std::fs::remove_file(&addr_file);
    let mut command = tmf_api_command(data_dir, "127.0.0.1:0");
    command.env("DOME_ADDR_FILE", &addr_file);
    let mut process = Process {
        child: command.spawn().context("starting tmf-api")?,
    };
    let addr = wait_for_addr(&mut process, &addr_file)?;
    Ok((process, addr))
}

fn start_floor(body_bytes: usize, work: &Path) -> anyhow::Result<(Process, SocketAddr)> {
    let addr_file = work.join("floor.addr");
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(ROLE_ENV, "floor")
        .env(FLOOR_BYTES_ENV, body_bytes.to_string())
        .env("DOME_ADDR_FILE", &addr_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut process = Process {
        child: command.spawn().context("starting the floor server")?,
    };
    let addr = wait_for_addr(&mut process, &addr_file)?;
    Ok((process, addr))
}

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM in /proc/{pid}/status"))
}

// --- the floor ----------------------------------------------------------------------------

/// The floor server: every GET answers 200 with the same JSON body of the requested size.
fn run_floor() -> anyhow::Result<()> {
    use axum::http::header::CONTENT_TYPE;
    let bytes: usize = std::env::var(FLOOR_BYTES_ENV)?.parse()?;
    let addr_file = std::env::var("DOME_ADDR_FILE")?;
    // {"id":"floor","pad":"xxxx..."}
    let overhead = r#"{"id":"floor","pad":""}"#.len();
    let body = format!(
        r#"{{"id":"floor","pad":"{}"}}"#,
        "x".repeat(bytes.saturating_sub(overhead))
    );
    let body = axum::body::Bytes::from(body);
    // The same runtime tmf-api's `#[tokio::main]` builds: one worker per core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let app = axum::Router::new().route(
                "/floor",
                axum::routing::get(move || {
                    let body = body.clone();
                    async move { ([(CONTENT_TYPE, "application/json;charset=utf-8")], body) }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            std::fs::write(addr_file, listener.local_addr()?.to_string())?;
            axum::serve(listener, app).await?;
            Ok(())
        })
}

// --- the load generator -------------------------------------------------------------------

/// One keep-alive HTTP/1.1 connection that sends a request and reads its answer.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// An answer: its status and the length of its body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(16 * 1024),
        })
    }

    async fn send(&mut self, request: &[u8]) -> anyhow::Result<Answer> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buffer, b"\r\n\r\n") {
                break i + 4;
            }
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end])?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line in {head:?}"))?;
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim().parse::<usize>())
            .transpose()?;
        let length = match length {
            Some(n) => n,
            None if status == 204 || status == 304 => 0,
            None => bail!("answer without Content-Length: {head:?}"),
        };
        while self.buffer.len() < head_end + length {
            self.read_more().await?;
        }
        let body = self.buffer[head_end..head_end + length].to_vec();
        Ok(Answer { status, body })
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn get_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n").into_bytes()
}

fn write_request(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What one scenario measured.
struct Stats {
    requests: usize,
    unexpected: usize,
    seconds: f64,
    latencies_us: Vec<u32>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Builds the `n`-th request of connection `c`.
type MakeRequest = dyn Fn(usize, usize) -> Vec<u8>;

/// Runs `connections` connections against `addr` until `duration` has passed, each sending
/// its next request as soon as the previous answer is read. Records every latency.
async fn load(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    expected: u16,
    make: std::rc::Rc<MakeRequest>,
) -> anyhow::Result<Stats> {
    let started = Instant::now();
    let deadline = started + duration;
    let local = tokio::task::LocalSet::new();
    let results = local
        .run_until(async move {
            let mut tasks = Vec::new();
            for c in 0..connections {
                let make = std::rc::Rc::clone(&make);
                tasks.push(tokio::task::spawn_local(async move {
                    let mut connection = Connection::open(addr).await?;
                    let mut latencies = Vec::with_capacity(64 * 1024);
                    let mut unexpected = 0usize;
                    let mut n = 0usize;
                    while Instant::now() < deadline {
                        let request = make(c, n);
                        let sent = Instant::now();
                        let answer = connection.send(&request).await?;
                        let micros = sent.elapsed().as_micros().min(u128::from(u32::MAX));
                        latencies.push(micros as u32);
                        if answer.status != expected {
                            unexpected += 1;
                        }
                        n += 1;
                    }
                    anyhow::Ok((latencies, unexpected))
                }));
            }
            let mut all = Vec::new();
            for task in tasks {
                all.push(task.await??);
            }
            anyhow::Ok(all)
        })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies_us: Vec<u32> = Vec::new();
    let mut unexpected = 0;
    for (l, u) in results {
        latencies_us.extend(l);
        unexpected += u;
    }
    latencies_us.sort_unstable();
    Ok(Stats {
        requests: latencies_us.len(),
        unexpected,
        seconds,
        latencies_us,
    })
}

/// Warm-up (discarded), then the measured run.
async fn scenario(
    settings: &Settings,
    addr: SocketAddr,
    expected: u16,
    make: std::rc::Rc<MakeRequest>,
) -> anyhow::Result<Stats> {
    let warmup = load(
        addr,
        settings.connections,
        settings.warmup,
        expected,
        std::rc::Rc::clone(&make),
    )
    .await?;
    if warmup.requests == 0 {
        bail!("no request completed during the warm-up");
    }
    load(
        addr,
        settings.connections,
        settings.duration,
        expected,
        make,
    )
    .await
}

// --- the run ------------------------------------------------------------------------------

fn offering(i: usize) -> Value {
    json!({
        "name": format!("Fibre {i} Mbit/s"),
        "description": format!("Home broadband offering number {i}, with a router and installation"),
        "lifecycleStatus": LIFECYCLE[i % LIFECYCLE.len()],
        "isBundle": false,
        "isSellable": true,
        "validFor": {"startDateTime": "2024-01-01T00:00:00Z", "endDateTime": "2030-12-31T23:59:59Z"},
        "category": [{"id": format!("cat-{}", i % 10), "name": format!("Category {}", i % 10)}],
        "productSpecification": {"id": format!("spec-{i}"), "name": format!("Fibre spec {i}")},
        "channel": [{"id": "web", "name": "Web shop"}],
        "productOfferingPrice": [{"id": format!("price-{i}"), "name": "Monthly fee"}]
    })
}

/// Seeds `count` product offerings through the API; returns their ids.
async fn seed(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<String>> {
    let path = format!("{BASE}/productOffering");
    let mut ids = Vec::with_capacity(count);
    let mut connection = Connection::open(addr).await?;
    for i in 0..count {
        let answer = connection
            .send(&write_request(addr, "POST", &path, &offering(i)))
            .await?;
        if answer.status != 201 {
            bail!(
                "seeding: POST answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        let created: Value = serde_json::from_slice(&answer.body)?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no id in {created}"))?;
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One blocking GET, `None` while nothing listens yet.
fn try_get(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = StdStream::connect(addr).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    std::str::from_utf8(answer.get(9..12)?).ok()?.parse().ok()
}

/// Milliseconds from spawning tmf-api to its first answered GET of `path`, `starts` times.
fn start_times(data_dir: &Path, path: &str, starts: usize) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(starts);
    for _ in 0..starts {
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut command = tmf_api_command(data_dir, &addr.to_string());
        let began = Instant::now();
        let mut process = Process {
            child: command.spawn().context("starting tmf-api")?,
        };
        loop {
            if let Some(status) = try_get(addr, path) {
                if status != 200 {
                    bail!("start-up probe answered {status}");
                }
                times.push(began.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if let Some(status) = process.child.try_wait()? {
                bail!("tmf-api exited during start-up: {status}");
            }
            if began.elapsed() > Duration::from_secs(30) {
                bail!("tmf-api did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // A clean stop, as on a redeploy; after SIGKILL redb would first repair the file.
        process.stop()?;
    }
    Ok(times)
}

/// The run with the median rate, and every run's rate (in run order) for the report.
fn median_run(runs: Vec<Stats>) -> (Stats, String) {
    let all = runs
        .iter()
        .map(|r| format!("{:.0}", r.rate()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut runs = runs;
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let middle = runs.len() / 2;
    (runs.swap_remove(middle), all)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn stripped_size(bin: &Path, work: &Path) -> Option<u64> {
    let copy = work.join("tmf-api.stripped");
    std::fs::copy(bin, &copy).ok()?;
    let status = Command::new("strip").arg(&copy).status().ok()?;
    if !status.success() {
        return None;
    }
    std::fs::metadata(&copy).ok().map(|m| m.len())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One row of the results table.
struct Row {
    name: String,
    stats: Stats,
    /// `VmHWM` of the server measured, after the scenario, in KiB.
    hwm_kib: u64,
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "tmf-bench: {} cores, {} connections, {} s per scenario after {} s warm-up",
        cores,
        settings.connections,
        settings.duration.as_secs(),
        settings.warmup.as_secs()
    );

    let (server, api) = start_tmf_api(&data_dir, work.path())?;
    eprintln!(
        "tmf-bench: tmf-api pid {}; seeding {} product offerings",
        server.pid(),
        settings.entities
    );
    let ids = std::rc::Rc::new(seed(api, settings.entities).await?);
    let first = format!("{BASE}/productOffering/{}", ids[0]);
    let sample = Connection::open(api)
        .await?
        .send(&get_request(api, &first))
        .await?;
    if sample.status != 200 {
        bail!("GET {first} answered {}", sample.status);
    }
    let body_bytes = sample.body.len();
    let connections = settings.connections;
    let mut rows: Vec<Row> = Vec::new();

    // The floor and GET by id alternate, `rounds` times each, and each reports its median
    // round: the ratio of the two should not depend on what else the machine did meanwhile.
    let floor = if settings.wants("floor") {
        let (process, addr) = start_floor(body_bytes, work.path())?;
        eprintln!("tmf-bench: floor pid {}", process.pid());
        Some((process, addr))
    } else {
        None
    };
    let mut floor_runs = Vec::new();
    let mut get_runs = Vec::new();
    for round in 1..=settings.rounds {
        if let Some((_, floor_addr)) = &floor {
            eprintln!("tmf-bench: floor, round {round}");
            let floor_request = get_request(*floor_addr, "/floor");
            let stats = scenario(
                &settings,
                *floor_addr,
                200,
                std::rc::Rc::new(move |_, _| floor_request.clone()),
            )
            .await?;
            floor_runs.push(stats);
        }
        if settings.wants("get") {
            eprintln!("tmf-bench: GET by id, round {round}");
            let get_ids = std::rc::Rc::clone(&ids);
            let stats = scenario(
                &settings,
                api,
                200,
                std::rc::Rc::new(move |c, n| {
                    let id = &get_ids[(c + n * connections) % get_ids.len()];
                    get_request(api, &format!("{BASE}/productOffering/{id}"))
                }),
            )
            .await?;
            get_runs.push(stats);
        }
    }
    if let Some((process, _)) = floor {
        let (stats, all) = median_run(floor_runs);
        rows.push(Row {
            name: format!(
                "floor: fixed {body_bytes}-byte JSON body (axum, own process); rounds: {all}"
            ),
            stats,
            hwm_kib: peak_rss_kib(process.pid())?,
        });
        process.stop()?;
    }
    if !get_runs.is_empty() {
        let (stats, all) = median_run(get_runs);
        rows.push(Row {
            name: format!("GET /productOffering/{{id}} ({body_bytes}-byte answer); rounds: {all}"),
            stats,
            hwm_kib: peak_rss_kib(server.pid())?,
        });
    }

    if settings.wants("list") {
        eprintln!("tmf-bench: filtered list");
        let list_request = get_request(
            api,
            &format!("{BASE}/productOffering?lifecycleStatus=Active&limit=20"),
        );
        let stats = scenario(
            &settings,
            api,
            206,
            std::rc::Rc::new(move |_, _| list_request.clone()),
        )
        .await?;
        rows.push(Row {
            name: format!(
                "GET /productOffering?lifecycleStatus=Active&limit=20 ({} of {} match)",
                settings.entities.div_ceil(LIFECYCLE.len()),
                settings.entities
            ),
            stats,
            hwm_kib: peak_rss_kib(server.pid())?,
        });
    }

    if settings.wants("patch") {
        eprintln!("tmf-bench: PATCH");
        let patch_ids = std::rc::Rc::clone(&ids);
        let stats = scenario(
            &settings,
            api,
            200,
            // Connection c patches only ids c, c + connections, ...: no two connections race
            // on one entity (that would be a 409, not what is measured here).
            std::rc::Rc::new(move |c, n| {
                let per_connection = (patch_ids.len() / connections).max(1);
                let slot = c + (n % per_connection) * connections;
                let id = &patch_ids[slot % patch_ids.len()];
                write_request(
                    api,
                    "PATCH",
                    &format!("{BASE}/productOffering/{id}"),
                    &json!({"description": format!("patched by connection {c}, request {n}")}),
                )
            }),
        )
        .await?;
        rows.push(Row {
            name: "PATCH /productOffering/{id} (merge patch: a new version)".into(),
            stats,
            hwm_kib: peak_rss_kib(server.pid())?,
        });
    }

    if settings.wants("post") {
        eprintln!("tmf-bench: POST");
        let stats = scenario(
            &settings,
            api,
            201,
            std::rc::Rc::new(move |c, n| {
                write_request(
                    api,
                    "POST",
                    &format!("{BASE}/productOffering"),
                    &offering(100_000 + c * 1_000_000 + n),
                )
            }),
        )
        .await?;
        rows.push(Row {
            name: "POST /productOffering (create)".into(),
            stats,
            hwm_kib: peak_rss_kib(server.pid())?,
        });
    }
    let api_hwm = peak_rss_kib(server.pid())?;
    server.stop()?;

    let starts = if settings.wants("starts") {
        eprintln!("tmf-bench: {} starts", settings.starts);
        start_times(&data_dir, &first, settings.starts)?
    } else {
        Vec::new()
    };

    let bin = tmf_api_bin();
    let size = std::fs::metadata(&bin)?.len();
    let stripped = stripped_size(&bin, work.path());

    // --- report ---
    println!("Machine: {cores} cores (`nproc`), {}.", cpu_model());
    println!(
        "Load: {} keep-alive connections, {} s per scenario after {} s of warm-up (floor and GET \
         by id: {} alternating rounds, median round shown); {} seeded product offerings.",
        settings.connections,
        settings.duration.as_secs(),
        settings.warmup.as_secs(),
        settings.rounds,
        settings.entities
    );
    println!();
    println!(
        "| scenario | requests/s | p50 ms | p99 ms | unexpected status | server VmHWM after |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.1} MiB |",
            row.name,
            row.stats.rate(),
            row.stats.percentile_ms(50.0),
            row.stats.percentile_ms(99.0),
            row.stats.unexpected,
            row.hwm_kib as f64 / 1024.0
        );
    }
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("| measure | value | target | |");
    println!("| --- | ---: | ---: | --- |");
    let rate = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix))
            .map(|r| r.stats.rate())
    };
    if let (Some(get), Some(floor)) = (rate("GET /productOffering/{id}"), rate("floor")) {
        let ratio = get / floor;
        println!(
            "| GET by id / floor (requests/s) | {ratio:.2} | >= 0.5 | {} |",
            verdict(ratio >= 0.5)
        );
    }
    println!(
        "| tmf-api executable, as built | {size} bytes ({:.1} MiB) | < 20 MB | {} |",
        mib(size),
        verdict(size < 20_000_000)
    );
    match stripped {
        Some(s) => println!(
            "| tmf-api executable, stripped | {s} bytes ({:.1} MiB) | < 20 MB | {} |",
            mib(s),
            verdict(s < 20_000_000)
        ),
        None => println!("| tmf-api executable, stripped | (strip failed) | < 20 MB | |"),
    }
    if !starts.is_empty() {
        let start_median = median(&starts);
        let start_max = starts.iter().copied().fold(f64::MIN, f64::max);
        println!(
            "| process start to first answered GET by id, median of {} (max) | {start_median:.1} ms \
             ({start_max:.1} ms) | < 50 ms | {} |",
            starts.len(),
            verdict(start_median < 50.0)
        );
    }
    println!(
        "| tmf-api peak resident memory (VmHWM) after the load | {:.1} MiB | < 50 MiB | {} |",
        api_hwm as f64 / 1024.0,
        verdict(api_hwm < 50 * 1024)
    );
    let unexpected: usize = rows.iter().map(|r| r.stats.unexpected).sum();
    if unexpected > 0 {
        bail!("{unexpected} answers had an unexpected status");
    }
    Ok(())
}
