//! The publisher: outbox rows → signed catalogue events on the bus, in order.
//!
//! The origin sequence number of an event is the outbox position of its row, so the bus
//! itself says what is published: `/origin/{me}/seq` is the last committed row. The
//! checkpoint record follows that value (it advances only after the commit), and rows after
//! it are (re)submitted. A crash anywhere loses nothing (rows stay in the outbox until the
//! bus has them) and duplicates nothing (the bus refuses a second event with the same
//! sequence number as a replay, whatever its bytes).
//!
//! Submission is pipelined: rows are submitted as they appear without waiting for each
//! commit (CheckTx checks sequence numbers against the node's mempool as well), and the
//! checkpoint catches up as blocks commit. A backlog goes out in bundles of consecutive rows
//! (one bus transaction, each row's event still signed on its own); a bundle the bus refuses
//! is sent again row by row, so each row gets its own answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dome_bus_client::{BusClient, QueryError, SubmitError};
use dome_catalog_store::{records, CatalogStore, OutboxEntry, StoreError};
use dome_events::{MemberId, MemberKeypair, Transaction, TxCode, MAX_BUNDLE_EVENTS};

use crate::event::{build_event, BuildError};
use crate::lease::read_checkpoint;
use crate::now_rfc3339;

/// Most outbox rows per bus transaction unless configured otherwise.
pub const DEFAULT_BUNDLE: usize = 32;

#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// This marketplace's member id (the `origin` of its events).
    pub member: MemberId,
    /// Outbox rows read per store call.
    pub batch: usize,
    /// Most consecutive rows sent as one bus transaction (a bundle), taken as 1 to 64; 1
    /// sends each alone.
    /// Every bus transaction costs each validator a fixed amount of work, so a backlog
    /// goes out in bundles; a lone row still goes out at once.
    pub bundle: usize,
    /// Pause between looks at an idle outbox.
    pub poll_interval: Duration,
    /// Submitted rows that are not committed within this are submitted again (a mempool
    /// can drop transactions, e.g. when its node restarts).
    pub stall_timeout: Duration,
}

impl PublisherConfig {
    /// Sends at most `rows` outbox rows per bus transaction (1 to 64).
    pub fn with_bundle(mut self, rows: usize) -> Self {
        self.bundle = rows;
        self
    }

    pub fn new(member: MemberId) -> Self {
        PublisherConfig {
            member,
            batch: 256,
            bundle: DEFAULT_BUNDLE,
            poll_interval: Duration::from_millis(50),
            stall_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("bus query: {0}")]
    Query(#[from] QueryError),
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The bus refuses the event of this row for a reason a retry cannot fix; the outbox
    /// is stuck behind it until an operator looks.
    #[error("the bus refuses outbox row {seq} with code {code}: {log}")]
    Refused { seq: u64, code: u32, log: String },
    #[error("outbox row {seq}: {source}")]
    Build { seq: u64, source: BuildError },
    #[error(
        "outbox row {seq} names version {version} of {resource}/{id}, which is not in the store"
    )]
    MissingVersion {
        seq: u64,
        resource: String,
        id: String,
        version: u64,
    },
    /// The checkpoint moved under us: another publisher is running.
    #[error("the publisher checkpoint was moved by another publisher")]
    CheckpointConflict,
}

/// What the publisher knows between steps.
#[derive(Debug, Clone)]
pub struct PublishState {
    /// Last outbox seq committed on the bus (as last written to the checkpoint record).
    pub checkpoint: u64,
    revision: Option<u64>,
    /// Highest outbox seq handed to the bus (committed or in a mempool).
    pub submitted: u64,
    last_progress: Instant,
    loaded: bool,
}

impl Default for PublishState {
    fn default() -> Self {
        PublishState {
            checkpoint: 0,
            revision: None,
            submitted: 0,
            last_progress: Instant::now(),
            loaded: false,
        }
    }
}

/// What one [`Publisher::step`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// Rows submitted in this step.
    pub submitted: usize,
    /// Last committed outbox seq.
    pub committed: u64,
    /// Nothing left to submit and nothing in flight.
    pub idle: bool,
}

pub struct Publisher {
    store: Arc<dyn CatalogStore>,
    bus: BusClient,
    key: Arc<MemberKeypair>,
    config: PublisherConfig,
}

impl Publisher {
    pub fn new(
        store: Arc<dyn CatalogStore>,
        bus: BusClient,
        key: Arc<MemberKeypair>,
        config: PublisherConfig,
    ) -> Self {
        Publisher {
            store,
            bus,
            key,
            config,
        }
    }

    /// Publishes until the deadline; with `until_idle`, returns as soon as every outbox row is
    /// committed (a scheduled or triggered run), otherwise keeps following the outbox. Errors
    /// are logged and retried with backoff; only a lost checkpoint race ends the run early.
    pub async fn run(
        &self,
        deadline: Option<Instant>,
        until_idle: bool,
    ) -> Result<PublishState, PublishError> {
        let mut state = PublishState::default();
        let mut backoff = self.config.poll_interval;
        loop {
            let pause = match self.step(&mut state).await {
                Ok(report) => {
                    backoff = self.config.poll_interval;
                    if report.idle && until_idle {
                        return Ok(state);
                    }
                    if report.submitted > 0 && !report.idle {
                        // More rows may be waiting; look again at once.
                        Duration::ZERO
                    } else {
                        self.config.poll_interval
                    }
                }
                Err(PublishError::CheckpointConflict) => {
                    return Err(PublishError::CheckpointConflict)
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "publishing failed, will retry");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    pause
                }
            };
            if let Some(deadline) = deadline {
                if Instant::now() + pause >= deadline {
                    return Ok(state);
                }
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// One round: catch the checkpoint up with the bus, then submit the rows after what is
    /// already in flight.
    pub async fn step(&self, state: &mut PublishState) -> Result<StepReport, PublishError> {
        if !state.loaded {
            let (checkpoint, revision) =
                read_checkpoint(self.store.as_ref(), records::PUBLISHER_CHECKPOINT).await?;
            state.checkpoint = checkpoint;
            state.revision = revision;
            state.submitted = checkpoint;
            state.last_progress = Instant::now();
            state.loaded = true;
        }
        let committed = self.bus.origin_last_seq(&self.config.member).await?;
        if committed > state.checkpoint {
            let revision = self
                .store
                .put_record(
                    records::PUBLISHER_CHECKPOINT,
                    &committed.to_string(),
                    state.revision,
                )
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => {
                        state.loaded = false;
                        PublishError::CheckpointConflict
                    }
                    other => PublishError::Store(other),
                })?;
            tracing::debug!(
                from = state.checkpoint,
                to = committed,
                "publisher checkpoint advanced"
            );
            state.checkpoint = committed;
            state.revision = Some(revision);
            state.last_progress = Instant::now();
        }
        if state.submitted < committed {
            state.submitted = committed;
        }
        if state.submitted > committed && state.last_progress.elapsed() > self.config.stall_timeout
        {
            tracing::warn!(
                committed,
                submitted = state.submitted,
                "submitted events are not being committed; submitting them again"
            );
            state.submitted = committed;
            state.last_progress = Instant::now();
        }
        let entries = self
            .store
            .outbox_after(state.submitted, self.config.batch)
            .await?;
        let mut submitted = 0;
        for chunk in entries.chunks(self.config.bundle.clamp(1, MAX_BUNDLE_EVENTS)) {
            let mut txs = Vec::with_capacity(chunk.len());
            for entry in chunk {
                txs.push(self.transaction(entry).await?);
            }
            let outcome = match self.send(&txs, chunk[0].seq).await {
                Ok(()) => {
                    state.submitted = chunk[chunk.len() - 1].seq;
                    submitted += chunk.len();
                    Ok(())
                }
                // A bundle the bus refuses (one of its rows was already taken, say, after a
                // resubmission) goes again row by row, so that each row gets its own answer.
                Err(SubmitOutcome::Refused(_)) if chunk.len() > 1 => {
                    self.send_one_by_one(chunk, &txs, state, &mut submitted)
                        .await
                }
                Err(other) => Err(other),
            };
            match outcome {
                Ok(()) => {}
                Err(SubmitOutcome::Gap) => {
                    // This node's mempool lacks an earlier row (it was dropped, or the
                    // client moved to another validator): start again after the last
                    // committed row.
                    tracing::info!(
                        seq = chunk[0].seq,
                        committed,
                        "sequence gap at the bus; resubmitting from the last committed row"
                    );
                    state.submitted = committed;
                    break;
                }
                Err(SubmitOutcome::Refused(e)) | Err(SubmitOutcome::Failed(e)) => return Err(e),
            }
        }
        let idle = entries.is_empty() && state.submitted == committed;
        Ok(StepReport {
            submitted,
            committed,
            idle,
        })
    }

    /// Sends each row of `chunk` alone, in order, until one is not taken.
    async fn send_one_by_one(
        &self,
        chunk: &[OutboxEntry],
        txs: &[Transaction],
        state: &mut PublishState,
        submitted: &mut usize,
    ) -> Result<(), SubmitOutcome> {
        for (entry, tx) in chunk.iter().zip(txs) {
            self.send(std::slice::from_ref(tx), entry.seq).await?;
            state.submitted = entry.seq;
            *submitted += 1;
        }
        Ok(())
    }

    /// Sends the rows' transactions, alone or as one bundle; `first_seq` names the first row.
    async fn send(&self, txs: &[Transaction], first_seq: u64) -> Result<(), SubmitOutcome> {
        let result = match txs {
            [tx] => self.bus.submit(tx).await,
            _ => self.bus.submit_bundle(txs).await,
        };
        let refused = |code: u32, log: String| {
            SubmitOutcome::Refused(PublishError::Refused {
                seq: first_seq,
                code,
                log,
            })
        };
        match result {
            Ok(_) => Ok(()),
            // Already committed or already in the mempool: published (or about to be). For a
            // bundle only its first row is known to be, so it counts as refused (and goes
            // again row by row).
            Err(SubmitError::Rejected {
                known: Some(TxCode::SeqReplayed),
                ..
            }) if txs.len() == 1 => Ok(()),
            // Rows are consecutive, so only the first can be ahead of the bus.
            Err(SubmitError::Rejected {
                known: Some(TxCode::SeqGap),
                ..
            }) => Err(SubmitOutcome::Gap),
            Err(SubmitError::Rejected { code, log, .. }) => Err(refused(code, log)),
            Err(e @ SubmitError::Encode(_)) => {
                Err(refused(TxCode::Malformed as u32, e.to_string()))
            }
            Err(SubmitError::Unavailable(e)) => Err(SubmitOutcome::Failed(
                PublishError::Unavailable(e.to_string()),
            )),
        }
    }

    /// The signed transaction announcing one outbox row.
    pub async fn transaction(&self, entry: &OutboxEntry) -> Result<Transaction, PublishError> {
        let missing = |version: u64| PublishError::MissingVersion {
            seq: entry.seq,
            resource: entry.resource.clone(),
            id: entry.id.clone(),
            version,
        };
        let version = self
            .store
            .version(&entry.resource, &entry.id, entry.version)
            .await?
            .ok_or_else(|| missing(entry.version))?;
        let previous = if entry.version > 1 {
            Some(
                self.store
                    .version(&entry.resource, &entry.id, entry.version - 1)
                    .await?
                    .ok_or_else(|| missing(entry.version - 1))?,
            )
        } else {
            None
        };
        let event = build_event(
            &self.config.member,
            entry,
            &version,
            previous.as_ref(),
            now_rfc3339(),
        )
        .map_err(|source| PublishError::Build {
            seq: entry.seq,
            source,
        })?;
        Transaction::signed_event(event, &self.key).map_err(|e| PublishError::Refused {
            seq: entry.seq,
            code: TxCode::Malformed as u32,
            log: e.to_string(),
        })
    }
}

enum SubmitOutcome {
    Gap,
    /// The bus (or the encoder) refuses the transaction: retrying the same bytes cannot help.
    Refused(PublishError),
    /// The bus could not be reached: retry later.
    Failed(PublishError),
}
