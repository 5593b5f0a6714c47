//! Marketplaces of a local federation: `dome-marketplace` processes (TMF620 API plus the
//! replication workers, embedded store) on 127.0.0.1, one per founding member of the bus.
//!
//! ```text
//! <dir>/federation.json        manifest: each marketplace's name, member id and port
//! <dir>/market-<x>/signing.key the member's ed25519 seed (PUBLIC TEST KEYS, see dome_events::test_keys)
//! <dir>/market-<x>/data/       the embedded store
//! <dir>/market-<x>/market.log  stdout+stderr
//! ```
//!
//! Member `i` uses the published test key `i`, so a federation directory holds no secret.
//!
//! [`Federation::use_dynamodb`] puts a marketplace on DynamoDB and an SQS FIFO replication
//! queue served by a moto server that this value starts and keeps until it is dropped
//! (moto keeps everything in memory: that marketplace's catalogue lasts as long as the
//! federation runs). `<dir>/market-<x>/aws.json` records the endpoint and the queues, for
//! `status`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dome_events::genesis::GenesisAppState;
use dome_events::test_keys;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use dome_queue_sqs::testing as sqs_testing;
use dome_store_dynamodb::testing::MotoServer;

use crate::ports::pick_free_ports;
use crate::process::{terminate_all, ManagedChild};
use crate::rpc::http_request;

/// Manifest of the marketplaces inside a federation directory.
pub const FEDERATION_FILE: &str = "federation.json";
/// The bearer token that local marketplaces accept for writes. A TEST TOKEN for loopback
/// federations only; deployments configure their own authentication.
pub const LOCAL_API_TOKEN: &str = "local-dev-token";
/// Base path of the TMF620 API.
pub const TMF620_BASE: &str = "/tmf-api/productCatalogManagement/v4";
const STOP_GRACE: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One marketplace of the federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketplaceInfo {
    /// Short name: `a`, `b`, `c`...
    pub name: String,
    /// Member id on the bus (`member-a`...).
    pub member: String,
    /// Index of the member's public test key.
    pub key_index: u32,
    pub port: u16,
}

impl MarketplaceInfo {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    marketplaces: Vec<MarketplaceInfo>,
}

/// Picks ports for `count` marketplaces (names `a`, `b`, ...) and returns them with the
/// genesis `app_state` that makes them the founding members of the bus.
pub fn plan(count: usize) -> Result<(Vec<MarketplaceInfo>, Value)> {
    plan_with_members(count, 0)
}

/// Like [`plan`], with `extra` more founding members (test keys `count..count+extra`) that
/// run no marketplace: tests act as them (e.g. a misbehaving origin).
pub fn plan_with_members(count: usize, extra: usize) -> Result<(Vec<MarketplaceInfo>, Value)> {
    if count == 0 || count + extra > 26 {
        bail!("a federation has 1 to 26 marketplaces, not {count}");
    }
    let ports = pick_free_ports(count)?;
    let mut markets = Vec::with_capacity(count);
    let mut members = Vec::with_capacity(count);
    for (i, port) in ports.into_iter().enumerate() {
        let index = i as u32;
        let mut info = test_keys::member_info(index);
        let market = MarketplaceInfo {
            name: ((b'a' + i as u8) as char).to_string(),
            member: info.id.to_string(),
            key_index: index,
            port,
        };
        info.base_url = market.url();
        members.push(info);
        markets.push(market);
    }
    for index in count..count + extra {
        members.push(test_keys::member_info(index as u32));
    }
    let app_state = serde_json::to_value(GenesisAppState { members })
        .context("serialising the genesis app_state")?;
    Ok((markets, app_state))
}

/// The marketplaces of a federation directory and the processes this value started.
#[derive(Debug)]
pub struct Federation {
    dir: PathBuf,
    markets: Vec<MarketplaceInfo>,
    children: Vec<Option<ManagedChild>>,
    bin: PathBuf,
    bus_rpc: Vec<String>,
    extra_env: Vec<Vec<(String, String)>>,
    /// Declared after the children, so `Drop` stops the marketplaces before moto goes.
    aws: Option<LocalAws>,
}

/// The moto server of the marketplaces on AWS services and the runtime its clients use.
#[derive(Debug)]
struct LocalAws {
    moto: MotoServer,
    runtime: tokio::runtime::Runtime,
}

/// Settings of a marketplace on DynamoDB and SQS ([`Federation::use_dynamodb`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// Receives of a replication message before it is dead-lettered.
    pub max_attempts: u32,
    /// Visibility timeout of the replicator's receives (how soon a crashed consumer's
    /// messages come back).
    pub visibility_seconds: u32,
    /// Longest retry delay.
    pub backoff_cap_seconds: u32,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            max_attempts: 5,
            visibility_seconds: 30,
            backoff_cap_seconds: 60,
        }
    }
}

/// What `<dir>/market-<x>/aws.json` records of a marketplace on AWS services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsResources {
    pub endpoint: String,
    pub table: String,
    pub queue_url: String,
    pub dlq_url: String,
}

/// A message parked in a dead-letter queue: its body and its (name, value) attributes.
pub type ParkedMessage = (String, Vec<(String, String)>);

/// File of [`AwsResources`] in a marketplace's home.
pub const AWS_FILE: &str = "aws.json";

impl Federation {
    /// Writes the manifest and the key files for `markets` into `dir`.
    pub fn init(dir: impl AsRef<Path>, markets: Vec<MarketplaceInfo>) -> Result<()> {
        let dir = dir.as_ref();
        for market in &markets {
            let home = dir.join(format!("market-{}", market.name));
            std::fs::create_dir_all(home.join("data"))
                .with_context(|| format!("creating {}", home.display()))?;
            let key = test_keys::member_keypair(market.key_index);
            std::fs::write(home.join("signing.key"), key.secret_seed_base64())
                .with_context(|| format!("writing the key of {}", market.name))?;
        }
        let manifest = Manifest {
            version: 1,
            marketplaces: markets,
        };
        let text = serde_json::to_string_pretty(&manifest).context("serialising the manifest")?;
        std::fs::write(dir.join(FEDERATION_FILE), text)
            .with_context(|| format!("writing {}", dir.join(FEDERATION_FILE).display()))
    }

    /// Opens the federation in `dir`, to be run with `bin` (`dome-marketplace`) against the
    /// validators at `bus_rpc`.
    pub fn open(
        dir: impl AsRef<Path>,
        bin: impl Into<PathBuf>,
        bus_rpc: Vec<String>,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(FEDERATION_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let manifest: Manifest =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let count = manifest.marketplaces.len();
        Ok(Federation {
            dir,
            markets: manifest.marketplaces,
            children: (0..count).map(|_| None).collect(),
            bin: bin.into(),
            bus_rpc,
            extra_env: vec![Vec::new(); count],
            aws: None,
        })
    }

    pub fn exists(dir: impl AsRef<Path>) -> bool {
        dir.as_ref().join(FEDERATION_FILE).is_file()
    }

    pub fn marketplaces(&self) -> &[MarketplaceInfo] {
        &self.markets
    }

    pub fn len(&self) -> usize {
        self.markets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.markets.is_empty()
    }

    /// Index of the marketplace called `name`.
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.markets
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| anyhow!("no marketplace {name:?} in this federation"))
    }

    pub fn url(&self, i: usize) -> String {
        self.markets[i].url()
    }

    pub fn home(&self, i: usize) -> PathBuf {
        self.dir.join(format!("market-{}", self.markets[i].name))
    }

    pub fn log(&self, i: usize) -> PathBuf {
        self.home(i).join("market.log")
    }

    /// Extra environment for marketplace `i` (e.g. another store), applied at its next start.
    pub fn set_env(&mut self, i: usize, env: Vec<(String, String)>) {
        self.extra_env[i] = env;
    }

    /// Puts marketplace `i` on DynamoDB and SQS: starts the moto server (once per
    /// federation), creates the table and the FIFO replication queue with its FIFO
    /// dead-letter queue, and sets the marketplace's environment (replacing what
    /// [`set_env`](Self::set_env) gave) for its next start.
    pub fn use_dynamodb(&mut self, i: usize, options: &AwsOptions) -> Result<AwsResources> {
        if self.aws.is_none() {
            // A current-thread runtime runs on this thread, which moto's parent-death signal
            // follows: moto lives exactly as long as whoever holds this federation.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime for the AWS clients")?;
            let moto = runtime
                .block_on(MotoServer::start())
                .context("starting the moto server (local/moto.sh installs it)")?;
            self.aws = Some(LocalAws { moto, runtime });
        }
        let Some(aws) = self.aws.as_ref() else {
            bail!("the moto server is not running");
        };
        let name = self.markets[i].name.clone();
        let table = format!("dome-market-{name}");
        let endpoint = aws.moto.endpoint();
        let (queue_url, dlq_url) = aws.runtime.block_on(async {
            aws.moto
                .store(&table)
                .await
                .with_context(|| format!("creating the table {table}"))?;
            let sqs = sqs_testing::client(&endpoint);
            // The redrive policy is only a backstop above the replicator's own bound.
            sqs_testing::create_queue_with_dlq(
                &sqs,
                &format!("dome-replication-{name}"),
                true,
                options.max_attempts + 2,
            )
            .await
            .context("creating the replication queues")
        })?;
        let resources = AwsResources {
            endpoint,
            table: table.clone(),
            queue_url: queue_url.clone(),
            dlq_url: dlq_url.clone(),
        };
        let text = serde_json::to_string_pretty(&resources).context("serialising aws.json")?;
        std::fs::write(self.home(i).join(AWS_FILE), text)
            .with_context(|| format!("writing {}", self.home(i).join(AWS_FILE).display()))?;
        let mut env: Vec<(String, String)> = aws
            .moto
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.extend([
            ("DOME_STORE".to_owned(), "dynamodb".to_owned()),
            ("DOME_TABLE".to_owned(), table),
            ("DOME_REPLICATION_QUEUE_URL".to_owned(), queue_url),
            ("DOME_REPLICATION_DLQ_URL".to_owned(), dlq_url),
            (
                "DOME_MAX_ATTEMPTS".to_owned(),
                options.max_attempts.to_string(),
            ),
            (
                "DOME_REPLICATION_VISIBILITY_SECONDS".to_owned(),
                options.visibility_seconds.to_string(),
            ),
            (
                "DOME_REPLICATION_BACKOFF_CAP_SECONDS".to_owned(),
                options.backoff_cap_seconds.to_string(),
            ),
        ]);
        self.set_env(i, env);
        Ok(resources)
    }

    /// The AWS resources of marketplace `i`, if it runs on DynamoDB and SQS.
    pub fn aws_resources(&self, i: usize) -> Result<Option<AwsResources>> {
        let path = self.home(i).join(AWS_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        ))
    }

    /// Messages in the SQS dead-letter queue of marketplace `i` (`None` unless it runs on
    /// SQS). Works from any process: it reads the queue recorded in `aws.json`.
    pub fn sqs_dead_letters(&self, i: usize) -> Result<Option<u64>> {
        let Some(resources) = self.aws_resources(i)? else {
            return Ok(None);
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a runtime for the SQS client")?;
        let depth = runtime.block_on(async {
            let queue = dome_queue_sqs::SqsQueue::new(
                sqs_testing::client(&resources.endpoint),
                resources.dlq_url.clone(),
            );
            queue.approximate_depth().await
        })?;
        Ok(Some(depth))
    }

    /// The messages in the SQS dead-letter queue of marketplace `i`, as (body, attributes),
    /// left in the queue (received with a zero visibility timeout).
    pub fn sqs_dead_letter_messages(&self, i: usize) -> Result<Vec<ParkedMessage>> {
        let Some(resources) = self.aws_resources(i)? else {
            bail!("marketplace {} does not run on SQS", self.markets[i].name);
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a runtime for the SQS client")?;
        let messages = runtime.block_on(async {
            let queue = dome_queue_sqs::SqsQueue::new(
                sqs_testing::client(&resources.endpoint),
                resources.dlq_url.clone(),
            );
            queue.receive(10, 1, 0).await
        })?;
        Ok(messages
            .into_iter()
            .map(|m| (m.body, m.attributes))
            .collect())
    }

    /// Starts marketplace `i` (no-op if this value already runs it).
    pub fn start(&mut self, i: usize) -> Result<()> {
        if let Some(child) = self.children[i].as_mut() {
            if child.exit_status().is_none() {
                return Ok(());
            }
        }
        if !self.bin.is_file() {
            bail!("dome-marketplace not found at {}", self.bin.display());
        }
        let market = self.markets[i].clone();
        let home = self.home(i);
        let mut cmd = Command::new(&self.bin);
        cmd.env("DOME_LISTEN", format!("127.0.0.1:{}", market.port))
            .env("DOME_PUBLIC_BASE_URL", market.url())
            .env("DOME_DATA_DIR", home.join("data"))
            .env("DOME_MEMBER_ID", &market.member)
            .env("DOME_BUS_RPC", self.bus_rpc.join(","))
            .env("DOME_SIGNING_KEY_FILE", home.join("signing.key"))
            .env("DOME_API_TOKENS", LOCAL_API_TOKEN)
            .env("DOME_LOG_FORMAT", "text")
            .env(
                "RUST_LOG",
                std::env::var("DOME_MARKET_LOG").unwrap_or_else(|_| "info".into()),
            );
        for (name, value) in &self.extra_env[i] {
            cmd.env(name, value);
        }
        let child =
            ManagedChild::spawn(&format!("marketplace {}", market.name), cmd, &self.log(i))?;
        self.children[i] = Some(child);
        Ok(())
    }

    pub fn start_all(&mut self) -> Result<()> {
        for i in 0..self.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// Waits until marketplace `i` answers its status endpoint.
    pub fn wait_ready(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.children[i].as_mut() {
                if let Some(status) = child.exit_status() {
                    bail!(
                        "marketplace {} exited ({status}); log {}:\n{}",
                        self.markets[i].name,
                        self.log(i).display(),
                        crate::process::log_tail(&self.log(i), 4000)
                    );
                }
            }
            if self.status(i).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "marketplace {} not ready within {timeout:?}; log {}",
                    self.markets[i].name,
                    self.log(i).display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self, i: usize) -> Result<()> {
        if let Some(mut child) = self.children[i].take() {
            child.terminate(STOP_GRACE)?;
        }
        Ok(())
    }

    /// SIGKILL: a crash at whatever point the marketplace was.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(mut child) = self.children[i].take() {
            child.kill()?;
        }
        Ok(())
    }

    pub fn stop_all(&mut self) -> Result<()> {
        let mut running: Vec<&mut ManagedChild> = self.children.iter_mut().flatten().collect();
        let result = terminate_all(&mut running, STOP_GRACE);
        for child in self.children.iter_mut() {
            *child = None;
        }
        result
    }

    /// Marketplaces this value started that have exited since, with their status.
    pub fn poll_exited(&mut self) -> Vec<(String, String)> {
        let mut exited = Vec::new();
        for (i, slot) in self.children.iter_mut().enumerate() {
            if let Some(child) = slot.as_mut() {
                if let Some(status) = child.exit_status() {
                    exited.push((self.markets[i].name.clone(), status.to_string()));
                    *slot = None;
                }
            }
        }
        exited
    }

    /// `GET /replication/v1/status` of marketplace `i`.
    pub fn status(&self, i: usize) -> Result<Value> {
        self.get_json(i, "/replication/v1/status")
    }

    /// `GET path` on marketplace `i`, parsed; fails unless 200.
    pub fn get_json(&self, i: usize, path: &str) -> Result<Value> {
        let (status, body) = self.request(i, "GET", path, None)?;
        if status != 200 {
            bail!(
                "GET {path} on marketplace {}: HTTP {status}: {}",
                self.markets[i].name,
                String::from_utf8_lossy(&body)
            );
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
    }

    /// One request to marketplace `i` with the local write token; returns status and body.
    pub fn request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>)> {
        let auth = format!("Bearer {LOCAL_API_TOKEN}");
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .context("serialising the body")?;
        let mut headers = vec![("Authorization", auth.as_str())];
        if bytes.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        http_request(
            self.markets[i].port,
            method,
            path,
            &headers,
            bytes.as_deref(),
            HTTP_TIMEOUT,
        )
    }

    /// Creates `body` as a `resource` on marketplace `i`; returns the created entity.
    pub fn create(&self, i: usize, resource: &str, body: &Value) -> Result<Value> {
        let path = format!("{TMF620_BASE}/{resource}");
        let (status, answer) = self.request(i, "POST", &path, Some(body))?;
        if status != 201 {
            bail!(
                "POST {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        serde_json::from_slice(&answer).context("POST answer is not JSON")
    }

    /// A small demo catalogue on marketplace `i`: one catalog, one category, three offerings.
    pub fn seed_demo(&self, i: usize) -> Result<Vec<Value>> {
        let mut created = Vec::new();
        let category = self.create(
            i,
            "category",
            &json!({"name": "Cloud services", "lifecycleStatus": "Active"}),
        )?;
        created.push(self.create(
            i,
            "catalog",
            &json!({"name": "Demo catalogue", "lifecycleStatus": "Active"}),
        )?);
        let category_ref =
            json!([{"id": category["id"], "href": category["href"], "name": "Cloud services"}]);
        for name in ["Object storage", "Managed Kubernetes", "Virtual machines"] {
            created.push(self.create(
                i,
                "productOffering",
                &json!({"name": name, "lifecycleStatus": "Active", "isBundle": false, "category": category_ref}),
            )?);
        }
        created.insert(0, category);
        Ok(created)
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}
