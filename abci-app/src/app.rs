//! The ABCI 2.0 application: glue between CometBFT's calls and the pure state machine.
//!
//! Every call takes the one state lock only for as long as it reads or writes state; the
//! expensive part of CheckTx (signature verification) runs outside it and its result is
//! cached, so ProcessProposal and FinalizeBlock re-check the rules without re-verifying the
//! signatures this node has already verified for the same bytes and key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use dome_events::genesis::GenesisAppState;
use dome_events::{decode_bus_tx, CarriedTx, PreparedKey, PublicKey, Transaction, TxId, CODESPACE};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    response_process_proposal::ProposalStatus, Event, EventAttribute, ExecTxResult, RequestCheckTx,
    RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, ResponseCheckTx, ResponseCommit, ResponseFinalizeBlock,
    ResponseInfo, ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal,
    ResponseQuery, ValidatorUpdate,
};
use tendermint_proto::v0_38::crypto::{public_key::Sum, PublicKey as ProtoPublicKey};
use tracing::{debug, error, info, warn};

use crate::query;
use crate::state::{
    approval_verifies, next_app_hash, tx_id, Accepted, BusItem, BusState, Pending, PlainVerifier,
    SignatureCheck, View,
};
use crate::store::{Store, StoreError, StoredEvent};

/// Bound on remembered transactions; the cache is cleared when it grows past it.
const TX_CACHE_LIMIT: usize = 100_000;
/// Bound on remembered decompressed member keys (members, plus rotated keys).
const PREPARED_KEY_LIMIT: usize = 4_096;
/// Proposals executed in ProcessProposal and kept for FinalizeBlock (several rounds may
/// propose different blocks at one height).
const PROPOSAL_CACHE_LIMIT: usize = 8;

#[derive(Clone)]
pub struct DomeApp {
    inner: Arc<Mutex<Inner>>,
    transactions: Arc<TxCache>,
}

struct Inner {
    store: Store,
    state: BusState,
    height: u64,
    app_hash: Vec<u8>,
    /// Transactions accepted into this node's mempool since the last commit.
    check_pending: Pending,
    proposals: Vec<(Vec<u8>, ExecutedBlock)>,
    finalized: Option<ExecutedBlock>,
}

/// A block run against the committed state, not yet durable.
#[derive(Clone)]
pub struct ExecutedBlock {
    pub height: u64,
    pub pending: Pending,
    pub tx_results: Vec<ExecTxResult>,
    pub stored_events: Vec<StoredEvent>,
    pub validator_updates: Vec<ValidatorUpdate>,
    pub app_hash: Vec<u8>,
}

impl ExecutedBlock {
    pub fn all_accepted(&self) -> bool {
        self.tx_results.iter().all(|r| r.code == 0)
    }

    /// Records what the accepted bus transaction at `index` did (its events, validator power
    /// changes) and returns its result: one ABCI event per catalogue event or governance
    /// action it carried.
    fn record_accepted(&mut self, index: u32, accepted: Vec<(TxId, Accepted)>) -> ExecTxResult {
        let events = accepted
            .into_iter()
            .map(|(id, done)| match done {
                Accepted::Catalogue(event) => {
                    let indexed = catalogue_event_attributes(&event);
                    self.stored_events.push(StoredEvent {
                        height: self.height,
                        index,
                        tx_hash: hex::encode_upper(id),
                        event,
                    });
                    indexed
                }
                Accepted::Governance {
                    nonce,
                    action,
                    validator_update,
                } => {
                    if let Some((key, power)) = validator_update {
                        self.validator_updates.push(ValidatorUpdate {
                            pub_key: Some(ProtoPublicKey {
                                sum: Some(Sum::Ed25519(key.0.to_vec())),
                            }),
                            power: power as i64,
                        });
                    }
                    governance_event(nonce, &action)
                }
            })
            .collect();
        ExecTxResult {
            code: 0,
            events,
            ..Default::default()
        }
    }
}

/// A bus transaction this node decoded: the transaction alone, or a bundle's events.
pub struct CheckedTx {
    pub items: Vec<CheckedItem>,
}

/// One signed transaction of a bus transaction, with the keys its approvals verified under.
pub struct CheckedItem {
    pub id: TxId,
    pub tx: Transaction,
    /// For each approval, the key its signature verified with (empty: not verified).
    verified_keys: Vec<PublicKey>,
}

impl CheckedTx {
    fn bus_items(&self) -> Vec<BusItem<'_>> {
        self.items
            .iter()
            .map(|item| BusItem {
                id: &item.id,
                tx: &item.tx,
                verifier: item,
            })
            .collect()
    }
}

/// Transactions this node has already decoded and verified, by the sha256 of their bytes.
///
/// CheckTx fills it; re-checks after each commit, PrepareProposal, ProcessProposal and
/// FinalizeBlock then skip decoding and signature verification for the same bytes. Sound
/// because the bytes determine the decoded transaction; a cached verification only counts if
/// the member's key is still the one it verified under (keys can rotate).
#[derive(Default)]
pub struct TxCache {
    entries: Mutex<HashMap<[u8; 32], Arc<CheckedTx>>>,
    misses: AtomicU64,
    /// Members' keys with their curve points decompressed (a few per federation).
    prepared_keys: Mutex<HashMap<PublicKey, PreparedKey>>,
}

impl TxCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Arc<CheckedTx>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &[u8; 32]) -> Option<Arc<CheckedTx>> {
        self.lock().get(id).cloned()
    }

    fn insert(&self, id: [u8; 32], checked: CheckedTx) -> Arc<CheckedTx> {
        let checked = Arc::new(checked);
        let mut entries = self.lock();
        if entries.len() >= TX_CACHE_LIMIT {
            entries.clear();
        }
        entries.insert(id, checked.clone());
        checked
    }

    /// Strict verification of approval `index` of `tx` by `key`, with the key decompressed
    /// once rather than at every signature.
    fn verify(&self, tx: &Transaction, index: usize, key: &PublicKey) -> bool {
        let prepared = {
            let mut keys = self.prepared_keys.lock().unwrap_or_else(|p| p.into_inner());
            match keys.get(key) {
                Some(prepared) => prepared.clone(),
                None => {
                    let Ok(prepared) = key.prepare() else {
                        return false;
                    };
                    if keys.len() >= PREPARED_KEY_LIMIT {
                        keys.clear();
                    }
                    keys.insert(*key, prepared.clone());
                    prepared
                }
            }
        };
        approval_verifies(tx, index, &prepared)
    }

    /// Decodes `tx_bytes` and verifies every approval of every transaction it carries
    /// against `current_keys` (for each transaction, the registered key of each signer, if
    /// any), caching the result when all of them verify.
    fn check(
        &self,
        id: [u8; 32],
        tx_bytes: &[u8],
        current_keys: impl Fn(&[CarriedTx]) -> Vec<Vec<Option<PublicKey>>>,
    ) -> Result<Arc<CheckedTx>, crate::state::Rejection> {
        if let Some(hit) = self.get(&id) {
            return Ok(hit);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let carried = decode_bus_tx(tx_bytes)?;
        let keys = current_keys(&carried);
        let mut all_verified = true;
        let mut items = Vec::with_capacity(carried.len());
        for (CarriedTx { id: item_id, tx }, keys) in carried.into_iter().zip(keys) {
            let mut verified_keys = Vec::with_capacity(keys.len());
            for (index, key) in keys.iter().enumerate() {
                match key {
                    Some(key) if self.verify(&tx, index, key) => verified_keys.push(*key),
                    // Not cacheable: the rules will reject it with the precise reason.
                    _ => {
                        all_verified = false;
                        verified_keys.clear();
                        break;
                    }
                }
            }
            items.push(CheckedItem {
                id: item_id,
                tx,
                verified_keys,
            });
        }
        let checked = CheckedTx { items };
        if all_verified {
            Ok(self.insert(id, checked))
        } else {
            Ok(Arc::new(checked))
        }
    }
}

impl SignatureCheck for CheckedItem {
    fn verify(&self, tx_id: &[u8; 32], tx: &Transaction, index: usize, key: &PublicKey) -> bool {
        self.verified_keys.get(index) == Some(key) || PlainVerifier.verify(tx_id, tx, index, key)
    }
}

impl DomeApp {
    /// Opens (or creates) the app's store and resumes from its last commit.
    pub fn open(db_path: &Path) -> Result<DomeApp, StoreError> {
        let store = Store::open(db_path)?;
        let (state, height, app_hash) = match store.load()? {
            Some(c) => (c.state, c.height, c.app_hash),
            None => (BusState::default(), 0, Vec::new()),
        };
        info!(height, app_hash = %hex::encode(&app_hash), "state loaded");
        Ok(DomeApp {
            inner: Arc::new(Mutex::new(Inner {
                store,
                state,
                height,
                app_hash,
                check_pending: Pending::default(),
                proposals: Vec::new(),
                finalized: None,
            })),
            transactions: Arc::new(TxCache::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the state half-written: blocks only become state at
        // Commit, which replaces it whole. So a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a block's transactions, in order, against the committed state.
    pub fn execute(&self, height: u64, txs: &[Bytes]) -> ExecutedBlock {
        let inner = self.lock();
        self.execute_block(&inner.state, &inner.app_hash, height, txs)
    }

    /// Checks one transaction against the committed state plus this node's mempool.
    pub fn check(&self, tx_bytes: &[u8]) -> Result<(), crate::state::Rejection> {
        let id = tx_id(tx_bytes);
        // Decoding and signature verification run outside the state lock: they are the costly
        // part, and the mempool connection should not hold up consensus calls.
        let checked = self.transactions.check(id, tx_bytes, |items| {
            let inner = self.lock();
            items
                .iter()
                .map(|item| {
                    item.tx
                        .signatures
                        .iter()
                        .map(|a| {
                            inner
                                .check_pending
                                .members
                                .get(&a.signer)
                                .or_else(|| inner.state.members.get(&a.signer))
                                .map(|m| m.info.public_key)
                        })
                        .collect()
                })
                .collect()
        })?;
        let mut inner = self.lock();
        let next_height = inner.height + 1;
        let Inner {
            state,
            check_pending,
            ..
        } = &mut *inner;
        let mut view = View {
            base: state,
            pending: check_pending,
        };
        view.apply_all(&checked.bus_items(), next_height)
            .map(|_| ())
    }

    /// One transaction of a proposal or block: from the cache when this node checked the same
    /// bytes, else decoded and verified now.
    fn apply_in_block(
        &self,
        view: &mut View<'_>,
        tx_bytes: &[u8],
        height: u64,
    ) -> Result<Vec<(TxId, Accepted)>, crate::state::Rejection> {
        let id = tx_id(tx_bytes);
        match self.transactions.get(&id) {
            Some(checked) => {
                let accepted = view.apply_all(&checked.bus_items(), height)?;
                Ok(checked.items.iter().map(|i| i.id).zip(accepted).collect())
            }
            None => {
                self.transactions.misses.fetch_add(1, Ordering::Relaxed);
                view.apply_bus_bytes(tx_bytes, height, &PlainVerifier)
            }
        }
    }
}

impl DomeApp {
    fn execute_block(
        &self,
        base: &BusState,
        previous_app_hash: &[u8],
        height: u64,
        txs: &[Bytes],
    ) -> ExecutedBlock {
        let mut pending = Pending::default();
        let mut block = ExecutedBlock {
            height,
            pending: Pending::default(),
            tx_results: Vec::with_capacity(txs.len()),
            stored_events: Vec::new(),
            validator_updates: Vec::new(),
            app_hash: Vec::new(),
        };
        for (index, tx) in txs.iter().enumerate() {
            let mut view = View {
                base,
                pending: &mut pending,
            };
            let result = match self.apply_in_block(&mut view, tx, height) {
                Ok(accepted) => block.record_accepted(index as u32, accepted),
                Err(rejection) => ExecTxResult {
                    code: rejection.code.as_u32(),
                    log: rejection.log,
                    codespace: CODESPACE.to_owned(),
                    ..Default::default()
                },
            };
            block.tx_results.push(result);
        }
        block.app_hash = next_app_hash(previous_app_hash, height, &pending);
        block.pending = pending;
        block
    }
}

fn attribute(key: &str, value: impl Into<String>, index: bool) -> EventAttribute {
    EventAttribute {
        key: key.to_owned(),
        value: value.into(),
        index,
    }
}

/// The ABCI event of an accepted catalogue event. The attributes subscribers filter on are
/// indexed, so `tx_search` and websocket subscriptions can select, e.g.
/// `catalogue.entity_type='productOffering' AND catalogue.origin='member-a'`; the rest ride
/// along unindexed (every index entry costs each validator a write per transaction).
fn catalogue_event_attributes(event: &dome_events::CatalogueEvent) -> Event {
    let mut attributes = vec![
        attribute("origin", event.origin.as_str(), true),
        attribute("entity_type", event.entity.entity_type.clone(), true),
        attribute("entity_id", event.entity.id.clone(), true),
        attribute("version", event.entity.version.to_string(), true),
        attribute("action", event.action.as_str(), true),
        attribute("audience", event.audience.index_value(), true),
        attribute("origin_seq", event.origin_seq.to_string(), false),
    ];
    if let Some(content_hash) = event.content_hash {
        attributes.push(attribute("content_hash", content_hash.to_hex(), false));
    }
    Event {
        r#type: "catalogue".to_owned(),
        attributes,
    }
}

fn governance_event(nonce: u64, action: &dome_events::GovernanceAction) -> Event {
    use dome_events::GovernanceAction as G;
    let (kind, subject) = match action {
        G::AddMember(info) => ("add_member", info.id.to_string()),
        G::RemoveMember { member } => ("remove_member", member.to_string()),
        G::RotateKey { member, .. } => ("rotate_key", member.to_string()),
        G::SetValidatorPower {
            validator_public_key,
            power,
        } => (
            "set_validator_power",
            format!("{}={power}", validator_public_key.to_base64()),
        ),
    };
    Event {
        r#type: "governance".to_owned(),
        attributes: vec![
            attribute("nonce", nonce.to_string(), true),
            attribute("action", kind, true),
            attribute("subject", subject, true),
        ],
    }
}

fn ed25519_key(update: &ValidatorUpdate) -> Option<PublicKey> {
    match update.pub_key.as_ref()?.sum.as_ref()? {
        Sum::Ed25519(bytes) => Some(PublicKey(bytes.as_slice().try_into().ok()?)),
        _ => None,
    }
}

/// The node cannot go on without its state: stop it, so CometBFT stops too and an operator
/// (or the supervisor) restarts it, which replays from the last durable commit.
fn fatal(what: &str, err: impl std::fmt::Display) -> ! {
    error!(error = %err, "{what}");
    eprintln!("dome-abci: fatal: {what}: {err}");
    std::process::exit(70)
}

impl Application for DomeApp {
    fn info(&self, _request: RequestInfo) -> ResponseInfo {
        let inner = self.lock();
        ResponseInfo {
            data: "dome-abci".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            app_version: 1,
            last_block_height: inner.height as i64,
            last_block_app_hash: inner.app_hash.clone().into(),
        }
    }

    fn init_chain(&self, request: RequestInitChain) -> ResponseInitChain {
        let genesis: GenesisAppState = match serde_json::from_slice(&request.app_state_bytes) {
            Ok(g) => g,
            Err(e) => fatal("genesis app_state is not a valid dome genesis", e),
        };
        if let Err(e) = genesis.validate() {
            fatal("genesis app_state is invalid", e);
        }
        let mut validators = Vec::new();
        for update in &request.validators {
            match ed25519_key(update) {
                Some(key) => validators.push((key, update.power.max(0) as u64)),
                None => fatal(
                    "genesis validator",
                    "only ed25519 validator keys are supported",
                ),
            }
        }
        let state = BusState::genesis(&genesis.members, &validators);
        let app_hash = state.genesis_hash().to_vec();
        let mut inner = self.lock();
        if let Err(e) = inner.store.write_genesis(&state, &app_hash) {
            fatal("cannot persist the genesis state", e);
        }
        info!(
            members = genesis.members.len(),
            validators = validators.len(),
            "chain initialised"
        );
        inner.state = state;
        inner.height = 0;
        inner.app_hash = app_hash.clone();
        inner.check_pending = Pending::default();
        ResponseInitChain {
            consensus_params: None,
            validators: Vec::new(),
            app_hash: app_hash.into(),
        }
    }

    fn query(&self, request: RequestQuery) -> ResponseQuery {
        let inner = self.lock();
        query::answer(&inner.state, &inner.store, inner.height, &request)
    }

    fn check_tx(&self, request: RequestCheckTx) -> ResponseCheckTx {
        match self.check(&request.tx) {
            Ok(()) => ResponseCheckTx {
                code: 0,
                gas_wanted: 1,
                ..Default::default()
            },
            Err(rejection) => ResponseCheckTx {
                code: rejection.code.as_u32(),
                log: rejection.log,
                codespace: CODESPACE.to_owned(),
                ..Default::default()
            },
        }
    }

    fn prepare_proposal(&self, request: RequestPrepareProposal) -> ResponsePrepareProposal {
        let started = std::time::Instant::now();
        let offered = request.txs.len();
        // Propose only transactions that are valid, in order, against the committed state,
        // within the byte budget: an honest proposer's block always passes ProcessProposal.
        let inner = self.lock();
        let max_bytes = usize::try_from(request.max_tx_bytes).unwrap_or(0);
        let height = u64::try_from(request.height).unwrap_or(0);
        let mut pending = Pending::default();
        let mut used = 0usize;
        let mut txs = Vec::with_capacity(request.txs.len());
        for tx in request.txs {
            if used + tx.len() > max_bytes {
                continue;
            }
            let mut view = View {
                base: &inner.state,
                pending: &mut pending,
            };
            if self.apply_in_block(&mut view, &tx, height).is_ok() {
                used += tx.len();
                txs.push(tx);
            }
        }
        debug!(
            height,
            offered,
            kept = txs.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "prepare_proposal"
        );
        ResponsePrepareProposal { txs }
    }

    fn process_proposal(&self, request: RequestProcessProposal) -> ResponseProcessProposal {
        let height = u64::try_from(request.height).unwrap_or(0);
        let started = std::time::Instant::now();
        let misses_before = self.transactions.misses.load(Ordering::Relaxed);
        let executed = self.execute(height, &request.txs);
        let misses = self.transactions.misses.load(Ordering::Relaxed) - misses_before;
        debug!(
            height,
            txs = request.txs.len(),
            misses,
            elapsed_us = started.elapsed().as_micros() as u64,
            "process_proposal"
        );
        let status = if executed.all_accepted() {
            let mut inner = self.lock();
            if inner.proposals.len() >= PROPOSAL_CACHE_LIMIT {
                inner.proposals.remove(0);
            }
            inner.proposals.push((request.hash.to_vec(), executed));
            ProposalStatus::Accept
        } else {
            let refused: Vec<String> = executed
                .tx_results
                .iter()
                .enumerate()
                .filter(|(_, r)| r.code != 0)
                .map(|(i, r)| format!("tx {i}: code {} ({})", r.code, r.log))
                .collect();
            warn!(height, refused = %refused.join("; "), "proposal refused: it carries invalid transactions");
            ProposalStatus::Reject
        };
        ResponseProcessProposal {
            status: status as i32,
        }
    }

    fn finalize_block(&self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        let height = u64::try_from(request.height).unwrap_or(0);
        let cached = {
            let mut inner = self.lock();
            let position = inner
                .proposals
                .iter()
                .position(|(hash, block)| *hash == request.hash.as_ref() && block.height == height);
            position.map(|p| inner.proposals.swap_remove(p).1)
        };
        // Cached executions ran against the state we still hold: the cache is cleared at Commit.
        let started = std::time::Instant::now();
        let reused = cached.is_some();
        let executed = match cached {
            Some(block) => block,
            None => self.execute(height, &request.txs),
        };
        debug!(
            height,
            txs = request.txs.len(),
            reused,
            elapsed_us = started.elapsed().as_micros() as u64,
            "finalize_block"
        );
        let response = ResponseFinalizeBlock {
            events: Vec::new(),
            tx_results: executed.tx_results.clone(),
            validator_updates: executed.validator_updates.clone(),
            consensus_param_updates: None,
            app_hash: executed.app_hash.clone().into(),
        };
        self.lock().finalized = Some(executed);
        response
    }

    fn commit(&self) -> ResponseCommit {
        let started = std::time::Instant::now();
        let mut inner = self.lock();
        let Some(block) = inner.finalized.take() else {
            fatal("commit", "Commit called without a finalized block");
        };
        if let Err(e) = inner.store.commit_block(
            block.height,
            &block.app_hash,
            &block.pending,
            &block.stored_events,
        ) {
            fatal("cannot persist the block", e);
        }
        inner.state.apply_pending(block.pending);
        inner.height = block.height;
        inner.app_hash = block.app_hash;
        // CometBFT re-checks the remaining mempool transactions after every commit.
        inner.check_pending = Pending::default();
        inner.proposals.clear();
        debug!(
            height = inner.height,
            elapsed_us = started.elapsed().as_micros() as u64,
            "commit"
        );
        ResponseCommit { retain_height: 0 }
    }
}
