//! Test support: a real moto server (the local DynamoDB stand-in) on a free loopback port,
//! and clients and stores wired to it with obviously fake credentials.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let moto = dome_store_dynamodb::testing::MotoServer::start().await?;
//! let store = moto.store("my-test-table").await?;
//! # Ok(()) }
//! ```
//!
//! With `DOME_TEST_DYNAMODB_TABLE` and `DOME_TEST_AWS_ENDPOINT` set, [`TestStore`] uses that
//! existing table instead (the smoke deployment of infra/ runs the suites against the table
//! it deployed into moto's CloudFormation): cases then take turns on it, each starting on an
//! emptied table. Emptying is why the endpoint must be a loopback address.
//!
//! The server binary comes from `DOME_MOTO_SERVER`, else from the venv that `local/moto.sh`
//! installs. It must be the launcher that script prints (`moto_server_serial`), not the
//! stock threaded `moto_server`, whose transactions are not atomic under concurrency (see
//! `local/moto.sh`). It is killed when the [`MotoServer`] is dropped, and also when the thread that
//! started it dies (`PR_SET_PDEATHSIG`), so an aborted test run leaves nothing behind. That
//! signal follows the starting *thread*: start the server from the test itself (or a runtime
//! worker thread), not from a short-lived thread such as tokio's blocking pool.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::Client;
use dome_catalog_store::StoreError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{https_client, DynamoStore};

/// Environment variable with the path of the moto server launcher.
pub const MOTO_SERVER_ENV: &str = "DOME_MOTO_SERVER";

/// Fake credentials and region: moto accepts anything, and these must never be real.
pub const TEST_ACCESS_KEY_ID: &str = "testing";
pub const TEST_SECRET_ACCESS_KEY: &str = "testing";
pub const TEST_REGION: &str = "us-east-1";

/// How long moto may take to answer after it was started (it usually needs about a second).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error(
        "moto server not found at {0}: run local/moto.sh and set \
         DOME_MOTO_SERVER=\"$(local/moto.sh | tail -n 1)\""
    )]
    NotInstalled(PathBuf),
    #[error("could not start {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("moto server exited during startup ({status}); its output: {output}")]
    Exited { status: String, output: String },
    #[error("moto server did not answer on port {port} within {seconds} s")]
    Timeout { port: u16, seconds: u64 },
    #[error("no free loopback port: {0}")]
    Port(std::io::Error),
    #[error("creating the test table: {0}")]
    Table(#[from] StoreError),
    #[error("{0}")]
    TestEnv(String),
    #[error("emptying the deployed test table {table}: {message}")]
    Wipe { table: String, message: String },
}

/// Names an existing table to run the store tests on (with [`TEST_ENDPOINT_ENV`]).
pub const TEST_TABLE_ENV: &str = "DOME_TEST_DYNAMODB_TABLE";
/// The endpoint serving [`TEST_TABLE_ENV`] (and the SQS queues of `dome-queue-sqs`'s tests):
/// a loopback URL, because the tests empty the table.
pub const TEST_ENDPOINT_ENV: &str = "DOME_TEST_AWS_ENDPOINT";

/// The endpoint of deployed test resources, from [`TEST_ENDPOINT_ENV`]; refused unless it is
/// plain HTTP on a loopback address, so a test can never empty a table in a real account.
pub fn deployed_endpoint() -> Result<String, MotoError> {
    let endpoint = std::env::var(TEST_ENDPOINT_ENV)
        .ok()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            MotoError::TestEnv(format!(
                "{TEST_ENDPOINT_ENV} must name the (loopback) endpoint of the deployed test resources"
            ))
        })?;
    if is_loopback_http(&endpoint) {
        Ok(endpoint.trim_end_matches('/').to_owned())
    } else {
        Err(MotoError::TestEnv(format!(
            "{TEST_ENDPOINT_ENV}={endpoint} is not http://127.0.0.1, http://localhost or http://[::1]: \
             the tests delete every item of the table they are given"
        )))
    }
}

fn is_loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// Cases on a deployed table take turns: they count outbox entries and expect an empty
/// audit trail, so two at once would see each other's writes.
static DEPLOYED_TABLE_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A store for one test: a new table on a moto server of its own, or, with
/// [`TEST_TABLE_ENV`] set, the deployed table, emptied, held exclusively until dropped.
#[derive(Debug)]
pub struct TestStore {
    store: DynamoStore,
    endpoint: String,
    _server: Option<MotoServer>,
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl TestStore {
    /// `own_table` names the table created on the test's own server.
    pub async fn new(own_table: &str) -> Result<Self, MotoError> {
        let deployed_table = std::env::var(TEST_TABLE_ENV).ok().filter(|t| !t.is_empty());
        let Some(table) = deployed_table else {
            let server = MotoServer::start().await?;
            let store = server.store(own_table).await?;
            return Ok(Self {
                store,
                endpoint: server.endpoint(),
                _server: Some(server),
                _turn: None,
            });
        };
        let endpoint = deployed_endpoint()?;
        let turn = DEPLOYED_TABLE_TURN.lock().await;
        let store = DynamoStore::new(client_for(&endpoint), table);
        wipe(&store).await?;
        Ok(Self {
            store,
            endpoint,
            _server: None,
            _turn: Some(turn),
        })
    }

    pub fn store(&self) -> &DynamoStore {
        &self.store
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A client of the same endpoint (for other tables).
    pub fn client(&self) -> Client {
        client_for(&self.endpoint)
    }

    /// The AWS SDK variables of the same endpoint, for `from_env` configurations.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        test_env_pairs(&self.endpoint)
    }
}

/// Deletes every item of the store's table (scan, then one delete per key).
async fn wipe(store: &DynamoStore) -> Result<(), MotoError> {
    let failed = |message: String| MotoError::Wipe {
        table: store.table().to_owned(),
        message,
    };
    let client = store.client();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(store.table())
            .projection_expression("PK, SK")
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| {
                failed(format!(
                    "scan: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                ))
            })?;
        for key in page.items() {
            client
                .delete_item()
                .table_name(store.table())
                .set_key(Some(key.clone()))
                .send()
                .await
                .map_err(|e| {
                    failed(format!(
                        "delete: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    ))
                })?;
        }
        match page.last_evaluated_key() {
            Some(last) if !last.is_empty() => start = Some(last.clone()),
            _ => return Ok(()),
        }
    }
}

/// The fake credentials every test client of moto uses (DynamoDB, SQS, Secrets Manager).
pub fn test_credentials() -> Credentials {
    Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        None,
        None,
        "dome-moto-test",
    )
}

/// A DynamoDB client for `endpoint` with the fake test credentials. Configured explicitly
/// rather than through the process environment, so that tests running in parallel threads
/// never race on `set_var`.
pub fn client_for(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(test_credentials())
        .endpoint_url(endpoint)
        .http_client(https_client())
        .build();
    Client::from_conf(config)
}

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl MotoServer {
    /// Where the launcher is looked for: `DOME_MOTO_SERVER`, else the venv of `local/moto.sh`.
    pub fn binary() -> PathBuf {
        if let Some(path) = std::env::var_os(MOTO_SERVER_ENV).filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let cache = std::env::var_os("DOME_CACHE")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/dome")))
            .unwrap_or_else(|| PathBuf::from(".cache/dome"));
        cache.join("venv-moto/bin/moto_server_serial")
    }

    /// Starts moto on a free loopback port and waits until it answers HTTP.
    pub async fn start() -> Result<Self, MotoError> {
        let binary = Self::binary();
        if !binary.is_file() {
            return Err(MotoError::NotInstalled(binary));
        }
        // Another process may take the port between our probe and moto's bind; moto then
        // exits at once, and another port is tried.
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let mut server = Self::spawn(&binary, port)?;
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                Err(e @ MotoError::Exited { .. }) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(MotoError::Timeout {
            port: 0,
            seconds: STARTUP_TIMEOUT.as_secs(),
        }))
    }

    fn spawn(binary: &PathBuf, port: u16) -> Result<Self, MotoError> {
        let log = std::env::temp_dir().join(format!("dome-moto-{}-{port}.log", std::process::id()));
        let spawn_error = |source| MotoError::Spawn {
            path: binary.clone(),
            source,
        };
        let output = std::fs::File::create(&log).map_err(spawn_error)?;
        let errors = output.try_clone().map_err(spawn_error)?;
        let mut command = Command::new(binary);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(test_env_pairs(&endpoint(port)))
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe calls (prctl, getppid).
        unsafe {
            let parent = libc::getpid();
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect: then no signal comes.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(spawn_error)?;
        Ok(Self { child, port, log })
    }

    async fn wait_ready(&mut self) -> Result<(), MotoError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(MotoError::Exited {
                    status: status.to_string(),
                    output: std::fs::read_to_string(&self.log).unwrap_or_default(),
                });
            }
            if answers(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(MotoError::Timeout {
            port: self.port,
            seconds: STARTUP_TIMEOUT.as_secs(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        endpoint(self.port)
    }

    /// The environment a process needs to use this server through the AWS SDK's standard
    /// variables: endpoint, fake credentials, region.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        test_env_pairs(&self.endpoint())
    }

    /// A DynamoDB client for this server (see [`client_for`]).
    pub fn client(&self) -> Client {
        client_for(&self.endpoint())
    }

    /// A store on a new table `table` of this server.
    pub async fn store(&self, table: &str) -> Result<DynamoStore, MotoError> {
        let store = DynamoStore::new(self.client(), table);
        store.create_table().await?;
        Ok(store)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Errors mean the process is already gone, which is the goal.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn test_env_pairs(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY.to_owned()),
        ("AWS_REGION", TEST_REGION.to_owned()),
        ("AWS_DEFAULT_REGION", TEST_REGION.to_owned()),
        // Nothing here runs on EC2; skip the SDK's metadata probes.
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

fn free_port() -> Result<u16, MotoError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(MotoError::Port)?;
    Ok(listener.local_addr().map_err(MotoError::Port)?.port())
}

/// Whether an HTTP server answers on the port (any status will do).
async fn answers(port: u16) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        stream
            .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await?;
        Ok::<bool, std::io::Error>(&head == b"HTTP/")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

#[cfg(test)]
mod tests {
    use super::is_loopback_http;

    #[test]
    fn only_plain_http_on_loopback_counts_as_a_test_endpoint() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/",
            "http://localhost:1",
            "http://[::1]:8080",
        ] {
            assert!(is_loopback_http(ok), "{ok}");
        }
        for refused in [
            "https://dynamodb.eu-west-1.amazonaws.com",
            "http://10.0.0.1:5000",
            "http://127.0.0.1.example.org:5000",
            "http://localhost.example.org",
            "127.0.0.1:5000",
            "",
        ] {
            assert!(!is_loopback_http(refused), "{refused}");
        }
    }
}
