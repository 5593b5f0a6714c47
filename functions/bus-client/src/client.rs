//! [`BusClient`]: submits transactions and reads the bus through several validator RPC
//! endpoints, failing over from one to the next.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dome_events::wire::EncodeError;
use dome_events::{Transaction, TxCode};
use tendermint::abci::Code;
use tendermint_rpc::client::CompatMode;
use tendermint_rpc::error::ErrorDetail;
use tendermint_rpc::{Client, HttpClient, HttpClientUrl};
use thiserror::Error;
use tokio::time::Instant;

use crate::failover::{AllEndpointsFailed, EndpointFailure, FailureKind, Rotation};
use crate::hash::{parse_tx_hash, tx_hash};

/// Default per-request timeout of [`BusClientConfig`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default interval between two `tx` look-ups in [`BusClient::wait_committed`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How to reach the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusClientConfig {
    /// CometBFT RPC URLs of validators, e.g. `http://127.0.0.1:26657`. Tried in this order
    /// at first; afterwards the last endpoint that answered is tried first.
    pub endpoints: Vec<String>,
    /// Bound on each single RPC request (connect, send, receive).
    pub request_timeout: Duration,
    /// Interval between polls while waiting for a transaction to be committed.
    pub poll_interval: Duration,
}

impl BusClientConfig {
    /// A configuration with the default timeout and poll interval.
    pub fn new(endpoints: Vec<String>) -> Self {
        BusClientConfig {
            endpoints,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// The configuration cannot produce a client.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The endpoint list is empty.
    #[error("at least one RPC endpoint is required")]
    NoEndpoints,
    /// An endpoint is not an `http://` or `https://` URL.
    #[error("invalid RPC endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// A zero duration where a positive one is needed.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
}

/// A transaction CometBFT accepted into a mempool (CheckTx passed, or the node already had
/// it). It is not committed yet: see [`BusClient::wait_committed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Uppercase hex sha256 of the transaction bytes, as CometBFT prints it.
    pub tx_hash: String,
    /// The endpoint that took the transaction.
    pub endpoint: String,
    /// True when the node answered "tx already exists in cache": an identical transaction
    /// had already been submitted (idempotent resubmission).
    pub already_known: bool,
}

/// Where and how a transaction was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Uppercase hex sha256 of the transaction bytes.
    pub tx_hash: String,
    /// Height of the block that contains it.
    pub height: u64,
    /// Position of the transaction in that block.
    pub index: u32,
    /// The app's FinalizeBlock result code: 0 accepted, otherwise a [`TxCode`] rejection
    /// (a transaction can pass CheckTx and still be rejected when executed, e.g. when a
    /// conflicting one is ordered before it).
    pub code: u32,
    /// The app's log for this transaction.
    pub log: String,
}

impl Committed {
    /// True when the app accepted the transaction (code 0).
    pub fn accepted(&self) -> bool {
        self.code == 0
    }

    /// The code as a known [`TxCode`], if this build knows it.
    pub fn known_code(&self) -> Option<TxCode> {
        TxCode::from_u32(self.code)
    }
}

/// The raw answer of an ABCI query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAnswer {
    /// Query result code (see [`dome_events::QueryCode`]).
    pub code: u32,
    /// The app's log.
    pub log: String,
    /// The answer bytes (JSON for the dome app's paths).
    pub value: Vec<u8>,
    /// The height the answer reflects.
    pub height: u64,
    /// The endpoint that answered.
    pub endpoint: String,
}

/// Why [`BusClient::submit`] did not get the transaction into a mempool.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The transaction could not be encoded (it breaks a stateless rule or is too large).
    #[error("cannot encode transaction: {0}")]
    Encode(#[from] EncodeError),
    /// CheckTx refused the transaction. Not retried on another endpoint: every honest
    /// validator runs the same check.
    #[error("transaction rejected by CheckTx with code {code} ({}): {log}", known.map(|c| format!("{c:?}")).unwrap_or_else(|| "unknown code".into()))]
    Rejected {
        /// The app's result code.
        code: u32,
        /// The code as a known [`TxCode`], if this build knows it.
        known: Option<TxCode>,
        /// The app's log.
        log: String,
    },
    /// No endpoint took the transaction (all unreachable, timed out or erroring).
    #[error(transparent)]
    Unavailable(#[from] AllEndpointsFailed),
}

/// Why [`BusClient::wait_committed`] did not return a commit.
#[derive(Debug, Error)]
pub enum WaitError {
    /// The hash is not 64 hex digits.
    #[error("invalid transaction hash {0:?}: expected 64 hex digits")]
    InvalidHash(String),
    /// A single look-up ([`BusClient::find_committed`]) failed on every endpoint.
    #[error(transparent)]
    Unavailable(#[from] AllEndpointsFailed),
    /// The transaction was not found in a block before the timeout. When the endpoints
    /// were failing at the end, `last_failure` says how.
    #[error("transaction {tx_hash} not committed within {waited:?}{}", last_failure.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        /// The hash waited for.
        tx_hash: String,
        /// The timeout.
        waited: Duration,
        /// The error of the last poll round, if it failed on every endpoint.
        last_failure: Option<AllEndpointsFailed>,
    },
}

/// Why [`BusClient::submit_and_wait`] failed.
#[derive(Debug, Error)]
pub enum SubmitAndWaitError {
    /// Submission failed.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// Submitted, but the commit was not observed.
    #[error(transparent)]
    Wait(#[from] WaitError),
}

#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) rpc: HttpClient,
}

#[derive(Debug)]
struct Inner {
    endpoints: Vec<Endpoint>,
    names: Vec<String>,
    rotation: Rotation,
    request_timeout: Duration,
    poll_interval: Duration,
}

/// A client of the bus over several validator RPC endpoints.
///
/// Cheap to clone; clones share the connections and the memory of which endpoint answered
/// last. Every operation tries the last healthy endpoint first and moves to the next one
/// on a transport error, a timeout or an RPC error, so a single validator going down is
/// invisible to callers.
///
/// ```no_run
/// # async fn demo(tx: dome_events::Transaction) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use dome_bus_client::BusClient;
///
/// let client = BusClient::new(
///     vec!["http://127.0.0.1:26657".into(), "http://127.0.0.1:26667".into()],
///     Duration::from_secs(3),
/// )?;
/// let committed = client.submit_and_wait(&tx, Duration::from_secs(20)).await?;
/// assert!(committed.accepted());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BusClient {
    inner: Arc<Inner>,
}

impl BusClient {
    /// A client over `endpoints` with the given per-request timeout and the default poll
    /// interval.
    pub fn new(endpoints: Vec<String>, request_timeout: Duration) -> Result<Self, ConfigError> {
        Self::with_config(BusClientConfig {
            request_timeout,
            ..BusClientConfig::new(endpoints)
        })
    }

    /// A client from a full configuration.
    pub fn with_config(config: BusClientConfig) -> Result<Self, ConfigError> {
        if config.endpoints.is_empty() {
            return Err(ConfigError::NoEndpoints);
        }
        if config.request_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration("request_timeout"));
        }
        if config.poll_interval.is_zero() {
            return Err(ConfigError::ZeroDuration("poll_interval"));
        }
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for url in &config.endpoints {
            let invalid = |reason: String| ConfigError::InvalidEndpoint {
                endpoint: url.clone(),
                reason,
            };
            let parsed: HttpClientUrl = url.parse().map_err(|e| invalid(format!("{e}")))?;
            let rpc = HttpClient::builder(parsed)
                .compat_mode(CompatMode::V0_38)
                // The transport's own bound is a backstop; the per-request timeout is
                // enforced around each call so that it is reported as a timeout.
                .timeout(config.request_timeout + Duration::from_secs(1))
                .build()
                .map_err(|e| invalid(format!("{e}")))?;
            endpoints.push(Endpoint {
                url: url.clone(),
                rpc,
            });
        }
        let names = config.endpoints.clone();
        Ok(BusClient {
            inner: Arc::new(Inner {
                rotation: Rotation::new(endpoints.len()),
                endpoints,
                names,
                request_timeout: config.request_timeout,
                poll_interval: config.poll_interval,
            }),
        })
    }

    /// The configured endpoints, in configuration order.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.names
    }

    /// The endpoint that will be tried first by the next operation (the last one that
    /// answered).
    pub fn preferred_endpoint(&self) -> &str {
        let index = self.inner.rotation.preferred();
        self.inner
            .names
            .get(index)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Runs one RPC against each endpoint in failover order until one answers.
    ///
    /// `call` performs the request on an endpoint's RPC client; `interpret` turns its result
    /// into this operation's answer, or into a failure that moves on to the next endpoint.
    /// Each request is bounded by the per-request timeout. Returns the answer and the URL
    /// of the endpoint that gave it.
    pub(crate) async fn failover<T, R, C, Fut, I>(
        &self,
        operation: &'static str,
        call: C,
        interpret: I,
    ) -> Result<(T, String), AllEndpointsFailed>
    where
        C: Fn(HttpClient) -> Fut,
        Fut: Future<Output = Result<R, tendermint_rpc::Error>>,
        I: Fn(&str, Result<R, tendermint_rpc::Error>) -> Result<T, EndpointFailure>,
    {
        let inner = &*self.inner;
        let timeout = inner.request_timeout;
        let call = &call;
        let interpret = &interpret;
        let (answer, index) = inner
            .rotation
            .run(operation, &inner.names, |index| async move {
                let endpoint = &inner.endpoints[index];
                tracing::debug!(operation, endpoint = %endpoint.url, "RPC request");
                match tokio::time::timeout(timeout, call(endpoint.rpc.clone())).await {
                    Ok(result) => interpret(&endpoint.url, result),
                    Err(_) => Err(EndpointFailure {
                        endpoint: endpoint.url.clone(),
                        kind: FailureKind::Timeout,
                        message: format!("no answer within {timeout:?}"),
                    }),
                }
            })
            .await?;
        Ok((answer, inner.names[index].clone()))
    }

    /// Encodes `tx` and hands it to a validator's mempool with `broadcast_tx_sync`.
    ///
    /// Failover: an unreachable, timing-out or erroring endpoint is skipped and the next one
    /// tried. A CheckTx rejection is final ([`SubmitError::Rejected`]). A node answering
    /// that the transaction is already in its cache counts as a success
    /// ([`Submitted::already_known`]), so resubmitting after a lost answer is safe.
    pub async fn submit(&self, tx: &Transaction) -> Result<Submitted, SubmitError> {
        let bytes = tx.encode()?;
        self.submit_bytes(bytes).await
    }

    /// Hands several signed catalogue events to a validator as one bundle transaction
    /// ([`dome_events::bundle`]): the bus accepts or rejects them together, in this order.
    /// A rejection's code and log are those of the first event that failed, and the log
    /// names its position. [`Submitted::tx_hash`] is the bundle's hash; each event keeps its
    /// own id ([`dome_events::transaction_id`]).
    pub async fn submit_bundle(&self, txs: &[Transaction]) -> Result<Submitted, SubmitError> {
        let bytes = dome_events::encode_bundle(txs)?;
        self.submit_bytes(bytes).await
    }

    /// Like [`BusClient::submit`] for bytes that are already encoded (or deliberately not a
    /// valid transaction, for tests of the app's checks).
    pub async fn submit_bytes(&self, bytes: Vec<u8>) -> Result<Submitted, SubmitError> {
        let hash = tx_hash(&bytes);
        let bytes = &bytes;
        let local_hash = &hash;
        let (outcome, endpoint) = self
            .failover(
                "broadcast_tx_sync",
                |rpc| async move { rpc.broadcast_tx_sync(bytes.clone()).await },
                |endpoint, result| match result {
                    Ok(response) => {
                        let node_hash = response.hash.to_string();
                        if !node_hash.eq_ignore_ascii_case(local_hash) {
                            tracing::warn!(
                                endpoint,
                                local = %local_hash,
                                node = %node_hash,
                                "node reports a different transaction hash"
                            );
                        }
                        Ok(match response.code {
                            Code::Ok => Broadcast::Accepted,
                            code => Broadcast::Rejected {
                                code: code.value(),
                                log: response.log,
                            },
                        })
                    }
                    Err(e) if rpc_error_text(&e).is_some_and(|t| is_already_in_cache(&t)) => {
                        Ok(Broadcast::AlreadyKnown)
                    }
                    Err(e) => Err(classify(endpoint, &e)),
                },
            )
            .await?;
        match outcome {
            Broadcast::Accepted | Broadcast::AlreadyKnown => {
                let already_known = matches!(outcome, Broadcast::AlreadyKnown);
                tracing::info!(tx_hash = %hash, %endpoint, already_known, "transaction submitted");
                Ok(Submitted {
                    tx_hash: hash,
                    endpoint,
                    already_known,
                })
            }
            Broadcast::Rejected { code, log } => {
                let known = TxCode::from_u32(code);
                tracing::info!(tx_hash = %hash, %endpoint, code, ?known, %log, "transaction rejected by CheckTx");
                Err(SubmitError::Rejected { code, known, log })
            }
        }
    }

    /// Looks a transaction up by hash once, with failover; `Ok(None)` when the endpoint
    /// that answered does not know it (not committed yet, or never).
    pub async fn find_committed(&self, tx_hash: &str) -> Result<Option<Committed>, WaitError> {
        let hash =
            parse_tx_hash(tx_hash).ok_or_else(|| WaitError::InvalidHash(tx_hash.to_owned()))?;
        Ok(self.lookup(hash).await?)
    }

    async fn lookup(
        &self,
        hash: tendermint::Hash,
    ) -> Result<Option<Committed>, AllEndpointsFailed> {
        let (found, _) = self
            .failover(
                "tx",
                |rpc| async move { rpc.tx(hash, false).await },
                |endpoint, result| match result {
                    Ok(response) => Ok(Some(Committed {
                        tx_hash: response.hash.to_string().to_ascii_uppercase(),
                        height: response.height.value(),
                        index: response.index,
                        code: response.tx_result.code.value(),
                        log: response.tx_result.log,
                    })),
                    Err(e) if rpc_error_text(&e).is_some_and(|t| is_tx_not_found(&t)) => Ok(None),
                    Err(e) => Err(classify(endpoint, &e)),
                },
            )
            .await?;
        Ok(found)
    }

    /// Polls the `tx` RPC (by hash, with failover) until the transaction is in a committed
    /// block or `timeout` passes. A committed transaction may still have been rejected by
    /// the app when executed: check [`Committed::accepted`].
    ///
    /// The transaction index of the nodes must be enabled (`tx_index.indexer = "kv"`, the
    /// CometBFT default).
    pub async fn wait_committed(
        &self,
        tx_hash: &str,
        timeout: Duration,
    ) -> Result<Committed, WaitError> {
        let hash =
            parse_tx_hash(tx_hash).ok_or_else(|| WaitError::InvalidHash(tx_hash.to_owned()))?;
        let deadline = Instant::now() + timeout;
        loop {
            let last_failure = match self.lookup(hash).await {
                Ok(Some(committed)) => {
                    tracing::debug!(
                        tx_hash,
                        height = committed.height,
                        code = committed.code,
                        "transaction committed"
                    );
                    return Ok(committed);
                }
                Ok(None) => None,
                Err(e) => Some(e),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::Timeout {
                    tx_hash: tx_hash.to_owned(),
                    waited: timeout,
                    last_failure,
                });
            }
            tokio::time::sleep_until(deadline.min(now + self.inner.poll_interval)).await;
        }
    }

    /// [`BusClient::submit`], then [`BusClient::wait_committed`] for the returned hash.
    pub async fn submit_and_wait(
        &self,
        tx: &Transaction,
        timeout: Duration,
    ) -> Result<Committed, SubmitAndWaitError> {
        let submitted = self.submit(tx).await?;
        Ok(self.wait_committed(&submitted.tx_hash, timeout).await?)
    }

    /// The latest block height (from `/status`) of the first endpoint that answers.
    pub async fn latest_height(&self) -> Result<u64, AllEndpointsFailed> {
        let (height, _) = self
            .failover(
                "status",
                |rpc| async move { rpc.status().await },
                |endpoint, result| match result {
                    Ok(status) => Ok(status.sync_info.latest_block_height.value()),
                    Err(e) => Err(classify(endpoint, &e)),
                },
            )
            .await?;
        Ok(height)
    }

    /// Runs an ABCI query on the first endpoint that answers. A non-zero query code is an
    /// answer, not a failure: it is returned as is (see [`QueryAnswer::code`]); the typed
    /// wrappers such as [`BusClient::members`] turn codes into errors.
    pub async fn abci_query(
        &self,
        path: &str,
        data: &[u8],
    ) -> Result<QueryAnswer, AllEndpointsFailed> {
        let (answer, endpoint) = self
            .failover(
                "abci_query",
                |rpc| async move {
                    rpc.abci_query(Some(path.to_owned()), data.to_vec(), None, false)
                        .await
                },
                |endpoint, result| match result {
                    Ok(answer) => Ok(QueryAnswer {
                        code: answer.code.value(),
                        log: answer.log,
                        value: answer.value,
                        height: answer.height.value(),
                        endpoint: endpoint.to_owned(),
                    }),
                    Err(e) => Err(classify(endpoint, &e)),
                },
            )
            .await?;
        tracing::debug!(path, %endpoint, code = answer.code, "ABCI query answered");
        Ok(answer)
    }
}

enum Broadcast {
    Accepted,
    AlreadyKnown,
    Rejected { code: u32, log: String },
}

/// The text of a JSON-RPC error answer (message and data), if `error` is one.
pub(crate) fn rpc_error_text(error: &tendermint_rpc::Error) -> Option<String> {
    match error.detail() {
        ErrorDetail::Response(detail) => {
            let response = &detail.source;
            Some(match response.data() {
                Some(data) => format!("{}: {}", response.message(), data),
                None => response.message().to_owned(),
            })
        }
        _ => None,
    }
}

/// CometBFT's mempool error for a transaction it has already seen.
pub(crate) fn is_already_in_cache(text: &str) -> bool {
    text.to_ascii_lowercase()
        .contains("tx already exists in cache")
}

/// CometBFT's `tx` RPC error for an unknown hash: `tx (HASH) not found`.
pub(crate) fn is_tx_not_found(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("tx (") && text.contains(") not found")
}

/// CometBFT's errors for a height the node does not have yet: beyond its block store, or
/// stored but not yet executed (no results).
pub(crate) fn is_not_yet_available(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("must be less than or equal to the current blockchain height")
        || text.contains("could not find results for height")
}

/// Classifies an RPC error as an [`EndpointFailure`].
pub(crate) fn classify(endpoint: &str, error: &tendermint_rpc::Error) -> EndpointFailure {
    let (kind, message) = match rpc_error_text(error) {
        Some(text) if is_not_yet_available(&text) => (FailureKind::NotYetAvailable, text),
        Some(text) => (FailureKind::Rpc, text),
        None => {
            let kind = match error.detail() {
                ErrorDetail::Serde(_)
                | ErrorDetail::Parse(_)
                | ErrorDetail::MalformedJson(_)
                | ErrorDetail::Tendermint(_) => FailureKind::Rpc,
                _ => FailureKind::Transport,
            };
            (kind, error.to_string())
        }
    };
    EndpointFailure {
        endpoint: endpoint.to_owned(),
        kind,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_cometbft_error_texts() {
        assert!(is_already_in_cache(
            "Internal error: tx already exists in cache"
        ));
        assert!(!is_already_in_cache("Internal error: mempool is full"));
        assert!(is_tx_not_found("Internal error: tx (0A1B2C) not found"));
        assert!(!is_tx_not_found(
            "Internal error: transaction indexing is disabled"
        ));
        assert!(is_not_yet_available(
            "Internal error: height 12 must be less than or equal to the current blockchain height 11"
        ));
        assert!(is_not_yet_available(
            "Internal error: could not find results for height #12"
        ));
        assert!(!is_not_yet_available(
            "Internal error: height 1 is not available, lowest height is 5"
        ));
    }

    #[test]
    fn classifies_response_and_transport_errors() {
        let in_cache = tendermint_rpc::Error::response(tendermint_rpc::ResponseError::new(
            tendermint_rpc::Code::InternalError,
            Some("tx already exists in cache".into()),
        ));
        assert!(rpc_error_text(&in_cache).is_some_and(|t| is_already_in_cache(&t)));
        let lagging = tendermint_rpc::Error::response(tendermint_rpc::ResponseError::new(
            tendermint_rpc::Code::InternalError,
            Some("height 9 must be less than or equal to the current blockchain height 8".into()),
        ));
        assert_eq!(classify("e", &lagging).kind, FailureKind::NotYetAvailable);
        let other = tendermint_rpc::Error::response(tendermint_rpc::ResponseError::new(
            tendermint_rpc::Code::InternalError,
            Some("mempool is full".into()),
        ));
        assert_eq!(classify("e", &other).kind, FailureKind::Rpc);
        let io = tendermint_rpc::Error::io(std::io::Error::other("connection refused"));
        let failure = classify("http://x:1", &io);
        assert_eq!(failure.kind, FailureKind::Transport);
        assert_eq!(failure.endpoint, "http://x:1");
    }

    /// The futures of the public API can be spawned on a multi-threaded runtime.
    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let client = BusClient::new(vec!["http://127.0.0.1:9".into()], DEFAULT_REQUEST_TIMEOUT)
            .expect("valid");
        let tx_bytes = Vec::new();
        assert_send(&client.submit_bytes(tx_bytes));
        assert_send(&client.wait_committed("00", DEFAULT_REQUEST_TIMEOUT));
        assert_send(&client.latest_height());
        assert_send(&client.members());
        assert_send(&client.events_in_range(1, 2));
        let mut follower = crate::EventFollower::new(client.clone(), 0);
        assert_send(&follower.next_height());
        assert_send(&follower.wait_next(DEFAULT_POLL_INTERVAL, Instant::now()));
        fn assert_sync<T: Send + Sync + Clone>() {}
        assert_sync::<BusClient>();
    }

    #[test]
    fn config_is_validated() {
        assert!(matches!(
            BusClient::new(vec![], DEFAULT_REQUEST_TIMEOUT),
            Err(ConfigError::NoEndpoints)
        ));
        assert!(matches!(
            BusClient::new(vec!["ftp://x".into()], DEFAULT_REQUEST_TIMEOUT),
            Err(ConfigError::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            BusClient::new(vec!["http://127.0.0.1:26657".into()], Duration::ZERO),
            Err(ConfigError::ZeroDuration(_))
        ));
        let client = BusClient::new(
            vec![
                "http://127.0.0.1:26657".into(),
                "http://127.0.0.1:26667".into(),
            ],
            DEFAULT_REQUEST_TIMEOUT,
        )
        .expect("valid");
        assert_eq!(client.endpoints().len(), 2);
        assert_eq!(client.preferred_endpoint(), "http://127.0.0.1:26657");
    }

    #[tokio::test]
    async fn silent_endpoint_times_out_and_the_next_one_is_tried() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let silent = format!("http://{}", listener.local_addr().expect("addr"));
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = BusClient::new(
            vec![silent.clone(), "http://127.0.0.1:9".into()],
            Duration::from_millis(300),
        )
        .expect("valid");
        let started = Instant::now();
        let err = client.latest_height().await.expect_err("nobody answers");
        hold.abort();
        assert_eq!(err.failures.len(), 2);
        assert_eq!(err.failures[0].endpoint, silent);
        assert_eq!(err.failures[0].kind, FailureKind::Timeout);
        assert_eq!(err.failures[1].kind, FailureKind::Transport);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn unreachable_endpoints_fail_over_then_report() {
        // Port 9 on loopback (discard) is closed on test machines: connection refused.
        let client = BusClient::new(
            vec!["http://127.0.0.1:9".into(), "http://127.0.0.1:9/".into()],
            Duration::from_secs(2),
        )
        .expect("valid");
        let err = client.latest_height().await.expect_err("nothing listens");
        assert_eq!(err.failures.len(), 2);
        assert!(err
            .failures
            .iter()
            .all(|f| f.kind != FailureKind::NotYetAvailable));
    }
}
