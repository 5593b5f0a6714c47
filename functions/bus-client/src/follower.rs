//! [`EventFollower`]: the accepted catalogue events of the bus, height by height, in commit
//! order, from a checkpoint.
//!
//! Correctness rests on three rules: a height is only ever fetched as `checkpoint + 1`;
//! the checkpoint only moves when the consumer acknowledges exactly that height; and a
//! height whose block cannot be fetched from any endpoint is retried, never skipped.
//! Whatever endpoint answers, a committed block and its results are the same on every
//! honest validator, so failover cannot change what a height contains.

use std::future::Future;
use std::time::Duration;

use dome_events::{decode_bus_tx, CarriedTx, CatalogueEvent, MemberId, Payload, Transaction};
use thiserror::Error;
use tokio::time::Instant;

use crate::client::{classify, BusClient};
use crate::failover::{AllEndpointsFailed, EndpointFailure, FailureKind};
use crate::hash::tx_hash;

/// The transactions of one committed block with their FinalizeBlock result codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBlock {
    height: u64,
    txs: Vec<Vec<u8>>,
    codes: Vec<u32>,
}

/// A block whose transaction and result counts differ.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("block {height} has {txs} transactions but {codes} results")]
pub struct LengthMismatch {
    /// The block height.
    pub height: u64,
    /// Number of transactions.
    pub txs: usize,
    /// Number of results.
    pub codes: usize,
}

impl RawBlock {
    /// Pairs the transactions of block `height` with their result codes (same order).
    pub fn new(height: u64, txs: Vec<Vec<u8>>, codes: Vec<u32>) -> Result<Self, LengthMismatch> {
        if txs.len() != codes.len() {
            return Err(LengthMismatch {
                height,
                txs: txs.len(),
                codes: codes.len(),
            });
        }
        Ok(RawBlock { height, txs, codes })
    }

    /// The block height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The transactions, in block order.
    pub fn txs(&self) -> &[Vec<u8>] {
        &self.txs
    }

    /// The result code of each transaction (0 = accepted).
    pub fn codes(&self) -> &[u32] {
        &self.codes
    }
}

/// Why a [`BlockSource`] did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SourceError {
    /// The height does not exist yet (or is not executed yet) on the endpoints that
    /// answered; asking again later will succeed.
    #[error("height {height} is not available yet")]
    NotYetAvailable {
        /// The height asked for.
        height: u64,
    },
    /// No endpoint answered.
    #[error(transparent)]
    Unavailable(#[from] AllEndpointsFailed),
}

/// Where the follower reads committed blocks. [`BusClient`] is the real implementation
/// (CometBFT RPC with failover); tests use in-memory fakes.
pub trait BlockSource {
    /// The latest committed height (0 before the first block).
    fn tip_height(&self) -> impl Future<Output = Result<u64, SourceError>> + Send;

    /// The transactions and result codes of the block at `height`.
    fn fetch_block(
        &self,
        height: u64,
    ) -> impl Future<Output = Result<RawBlock, SourceError>> + Send;
}

impl BlockSource for BusClient {
    async fn tip_height(&self) -> Result<u64, SourceError> {
        Ok(self.latest_height().await?)
    }

    /// Fetches `block` and `block_results` for the height from the same endpoint,
    /// checks that they agree, and fails over to the next endpoint otherwise.
    async fn fetch_block(&self, height: u64) -> Result<RawBlock, SourceError> {
        use tendermint_rpc::Client;
        let Ok(at) = tendermint::block::Height::try_from(height) else {
            return Err(SourceError::NotYetAvailable { height });
        };
        let result = self
            .failover(
                "block",
                |rpc| async move {
                    let (block, results) = tokio::join!(rpc.block(at), rpc.block_results(at));
                    Ok((block?, results?))
                },
                |endpoint, result| {
                    let (block, results) = result.map_err(|e| classify(endpoint, &e))?;
                    let inconsistent = |message: String| EndpointFailure {
                        endpoint: endpoint.to_owned(),
                        kind: FailureKind::Inconsistent,
                        message,
                    };
                    let block_height = block.block.header.height.value();
                    if block_height != height || results.height.value() != height {
                        return Err(inconsistent(format!(
                            "asked for height {height}, got block {block_height} and results {}",
                            results.height.value()
                        )));
                    }
                    let codes = results
                        .txs_results
                        .unwrap_or_default()
                        .iter()
                        .map(|r| r.code.value())
                        .collect();
                    RawBlock::new(height, block.block.data, codes)
                        .map_err(|e| inconsistent(e.to_string()))
                },
            )
            .await;
        match result {
            Ok((block, _)) => Ok(block),
            Err(e) if e.any_not_yet_available() => Err(SourceError::NotYetAvailable { height }),
            Err(e) => Err(SourceError::Unavailable(e)),
        }
    }
}

/// A catalogue event the app accepted, with its place on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedEvent {
    /// Height of the block that contains it.
    pub height: u64,
    /// Position of its transaction in the block (counting every transaction; the events of
    /// one bundle share it).
    pub index: u32,
    /// Uppercase hex sha256 of the event's own signed transaction: CometBFT's transaction
    /// hash when it travelled alone, the hash of its canonical bytes inside a bundle.
    pub tx_hash: String,
    /// The event.
    pub event: CatalogueEvent,
    /// The event's own transaction (envelope and origin signature).
    pub tx: Transaction,
}

/// An accepted transaction (code 0) this build cannot decode, e.g. a newer wire-format
/// version. It should not happen with a client as recent as the validators; it is
/// reported rather than silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecodableTx {
    /// Position in the block.
    pub index: u32,
    /// Uppercase hex sha256 of the transaction bytes.
    pub tx_hash: String,
    /// The decoding error.
    pub error: String,
}

/// Everything the follower yields for one height. A height without (matching) events
/// still yields a batch, with `events` empty, so that it can be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeightBatch {
    /// The height.
    pub height: u64,
    /// The accepted catalogue events that pass the filter, in block order.
    pub events: Vec<AcceptedEvent>,
    /// Accepted transactions that could not be decoded (normally empty).
    pub undecodable: Vec<UndecodableTx>,
}

/// Which accepted events a follower yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowFilter {
    /// When set, only events whose audience includes this member and whose origin is
    /// another member (a subscriber's view). When `None`, every accepted event.
    pub me: Option<MemberId>,
}

impl FollowFilter {
    /// Every accepted event.
    pub fn all() -> Self {
        FollowFilter { me: None }
    }

    /// The events `member` receives from the other members.
    pub fn for_member(member: MemberId) -> Self {
        FollowFilter { me: Some(member) }
    }

    /// Whether the filter keeps `event`.
    pub fn keeps(&self, event: &CatalogueEvent) -> bool {
        match &self.me {
            None => true,
            Some(me) => event.origin != *me && event.audience.includes(me),
        }
    }
}

/// Extracts the accepted catalogue events of a block: transactions with code 0 that decode
/// as catalogue events and pass `filter`. Rejected transactions (non-zero code) and
/// governance transactions are left out; accepted transactions that do not decode are
/// listed in [`HeightBatch::undecodable`].
pub fn extract_accepted(block: &RawBlock, filter: &FollowFilter) -> HeightBatch {
    let mut events = Vec::new();
    let mut undecodable = Vec::new();
    for (position, (bytes, code)) in block.txs.iter().zip(&block.codes).enumerate() {
        if *code != 0 {
            continue;
        }
        let index = u32::try_from(position).unwrap_or(u32::MAX);
        match decode_bus_tx(bytes) {
            Ok(carried) => {
                // A bundle yields each of its events, with the id of the event's own
                // transaction; a transaction alone yields its one event.
                for CarriedTx { id, tx } in carried {
                    let Payload::CatalogueEvent(event) = &tx.payload else {
                        continue;
                    };
                    if !filter.keeps(event) {
                        continue;
                    }
                    events.push(AcceptedEvent {
                        height: block.height,
                        index,
                        tx_hash: hex::encode_upper(id),
                        event: event.clone(),
                        tx,
                    });
                }
            }
            Err(error) => {
                let hash = tx_hash(bytes);
                tracing::warn!(height = block.height, index, tx_hash = %hash, %error, "accepted transaction does not decode");
                undecodable.push(UndecodableTx {
                    index,
                    tx_hash: hash,
                    error: error.to_string(),
                });
            }
        }
    }
    HeightBatch {
        height: block.height,
        events,
        undecodable,
    }
}

/// Why the follower could not produce the next height.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FollowError {
    /// No endpoint delivered the height (or the latest height). Nothing was skipped: the
    /// same height is tried again next time.
    #[error(transparent)]
    Unavailable(#[from] AllEndpointsFailed),
}

/// An acknowledgement the follower cannot take.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AckError {
    /// Only the height just delivered (checkpoint + 1) can move the checkpoint.
    #[error("height {height} cannot be acknowledged: the next height to acknowledge is {expected} and it must have been delivered first")]
    NotDelivered {
        /// The height given.
        height: u64,
        /// checkpoint + 1.
        expected: u64,
    },
}

/// Follows the accepted catalogue events of the bus in commit order, one height at a time,
/// from a checkpoint.
///
/// The checkpoint is the last height the consumer has fully and durably handled (0 =
/// nothing yet, start at height 1). [`EventFollower::next_height`] returns the batch of
/// `checkpoint + 1`; it keeps returning that same batch until the consumer calls
/// [`EventFollower::ack`] with its height. Restarting with the persisted checkpoint
/// therefore resumes without gaps or duplicates.
///
/// ```no_run
/// # async fn demo(client: dome_bus_client::BusClient, saved: u64) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use dome_bus_client::EventFollower;
///
/// let mut follower = EventFollower::new(client, saved);
/// loop {
///     let deadline = Instant::now() + Duration::from_secs(30);
///     let Some(batch) = follower.wait_next(Duration::from_millis(200), deadline).await? else {
///         continue; // nothing new for 30 s
///     };
///     for accepted in &batch.events {
///         println!("{} {:?}", accepted.height, accepted.event.entity);
///     }
///     // persist batch.height durably, then:
///     follower.ack(batch.height)?;
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct EventFollower<S = BusClient> {
    source: S,
    checkpoint: u64,
    filter: FollowFilter,
    /// The highest height known to exist; refreshed when the follower gets there.
    known_tip: u64,
    /// The batch of `checkpoint + 1` once fetched, until acknowledged.
    pending: Option<HeightBatch>,
}

impl<S: BlockSource> EventFollower<S> {
    /// A follower reading from `source` (normally a [`BusClient`]) that starts after
    /// `checkpoint` and yields every accepted catalogue event.
    pub fn new(source: S, checkpoint: u64) -> Self {
        EventFollower {
            source,
            checkpoint,
            filter: FollowFilter::all(),
            known_tip: 0,
            pending: None,
        }
    }

    /// Keeps only the events `filter` keeps. The checkpoint still covers every height.
    pub fn with_filter(mut self, filter: FollowFilter) -> Self {
        self.filter = filter;
        self.pending = None;
        self
    }

    /// The last acknowledged height (0 = none).
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// The active filter.
    pub fn filter(&self) -> &FollowFilter {
        &self.filter
    }

    /// The block source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The batch of height `checkpoint + 1`, or `Ok(None)` when that height does not exist
    /// yet (caught up). Returns the same height again until it is acknowledged.
    pub async fn next_height(&mut self) -> Result<Option<HeightBatch>, FollowError> {
        let Some(target) = self.checkpoint.checked_add(1) else {
            return Ok(None);
        };
        if let Some(batch) = &self.pending {
            if batch.height == target {
                return Ok(Some(batch.clone()));
            }
        }
        if self.known_tip < target {
            match self.source.tip_height().await {
                Ok(tip) => self.known_tip = tip,
                Err(SourceError::NotYetAvailable { .. }) => return Ok(None),
                Err(SourceError::Unavailable(e)) => return Err(e.into()),
            }
            if self.known_tip < target {
                return Ok(None);
            }
        }
        match self.source.fetch_block(target).await {
            Ok(block) if block.height == target => {
                let batch = extract_accepted(&block, &self.filter);
                tracing::debug!(
                    height = target,
                    events = batch.events.len(),
                    "height fetched"
                );
                self.pending = Some(batch.clone());
                Ok(Some(batch))
            }
            Ok(block) => Err(FollowError::Unavailable(AllEndpointsFailed {
                operation: "block",
                failures: vec![EndpointFailure {
                    endpoint: String::new(),
                    kind: FailureKind::Inconsistent,
                    message: format!("asked for height {target}, got {}", block.height),
                }],
            })),
            Err(SourceError::NotYetAvailable { .. }) => {
                // The endpoint that answered lags behind the one that reported the tip, or
                // has the block but not its results yet: ask for the tip again next time.
                self.known_tip = target - 1;
                Ok(None)
            }
            Err(SourceError::Unavailable(e)) => Err(e.into()),
        }
    }

    /// Records that the consumer has durably handled `height`: the checkpoint becomes
    /// `height`. Only the height last delivered by [`EventFollower::next_height`]
    /// (`checkpoint + 1`) moves the checkpoint; acknowledging a height at or below the
    /// checkpoint again is a no-op.
    pub fn ack(&mut self, height: u64) -> Result<(), AckError> {
        if height <= self.checkpoint {
            return Ok(());
        }
        let expected = self.checkpoint.saturating_add(1);
        match &self.pending {
            Some(batch) if batch.height == height && height == expected => {
                self.checkpoint = height;
                self.pending = None;
                Ok(())
            }
            _ => Err(AckError::NotDelivered { height, expected }),
        }
    }

    /// Like [`EventFollower::next_height`], but when caught up polls every
    /// `poll_interval` until a new height exists or `deadline` passes (`Ok(None)`).
    ///
    /// Errors while polling are logged and retried until the deadline; if the last attempt
    /// before the deadline failed, that error is returned instead of `Ok(None)`. At least
    /// one attempt is made even if the deadline has already passed.
    pub async fn wait_next(
        &mut self,
        poll_interval: Duration,
        deadline: impl Into<Instant>,
    ) -> Result<Option<HeightBatch>, FollowError> {
        let deadline = deadline.into();
        loop {
            let last_error = match self.next_height().await {
                Ok(Some(batch)) => return Ok(Some(batch)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(height = self.checkpoint.saturating_add(1), error = %e, "cannot fetch the next height, will retry");
                    Some(e)
                }
            };
            let now = Instant::now();
            if now >= deadline {
                return match last_error {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            tokio::time::sleep_until(deadline.min(now + poll_interval)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use dome_events::{
        test_keys, Action, Audience, ContentHash, EntityRef, GovernanceAction, GovernanceProposal,
        MemberKeypair,
    };

    use super::*;

    fn event(origin: u32, seq: u64, audience: Audience) -> CatalogueEvent {
        CatalogueEvent {
            origin: test_keys::member_id(origin),
            origin_seq: seq,
            entity: EntityRef {
                entity_type: "productOffering".into(),
                id: format!("po-{origin}-{seq}"),
                version: 1,
            },
            action: Action::Create,
            content_hash: Some(ContentHash::of_bytes(format!("{origin}/{seq}").as_bytes())),
            previous_hash: None,
            location: format!("http://127.0.0.1:{}/po/{seq}", 18080 + origin),
            audience,
            issued_at: "2026-11-29T10:00:00Z".into(),
        }
    }

    fn event_tx(origin: u32, seq: u64, audience: Audience) -> (Transaction, Vec<u8>) {
        let tx = Transaction::signed_event(
            event(origin, seq, audience),
            &test_keys::member_keypair(origin),
        )
        .expect("valid event");
        let bytes = tx.encode().expect("encodes");
        (tx, bytes)
    }

    fn governance_bytes() -> Vec<u8> {
        let keys: Vec<MemberKeypair> = (0..3).map(test_keys::member_keypair).collect();
        let approvers: Vec<(MemberId, &MemberKeypair)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (test_keys::member_id(i as u32), k))
            .collect();
        let proposal = GovernanceProposal {
            nonce: 1,
            action: GovernanceAction::RemoveMember {
                member: test_keys::member_id(3),
            },
            issued_at: "2026-11-29T10:00:00Z".into(),
        };
        Transaction::approved_proposal(proposal, &approvers)
            .expect("valid proposal")
            .encode()
            .expect("encodes")
    }

    fn members(ids: &[u32]) -> Audience {
        Audience::Members(ids.iter().map(|i| test_keys::member_id(*i)).collect())
    }

    /// A block mixing every kind of transaction:
    /// 0 accepted event from a to all, 1 event rejected (SeqReplayed), 2 garbage rejected
    /// (Malformed), 3 accepted governance, 4 accepted event from b to [a],
    /// 5 accepted event from c to [c, d].
    fn mixed_block(height: u64) -> (RawBlock, Vec<Transaction>) {
        let (a, a_bytes) = event_tx(0, 1, Audience::All);
        let (_, rejected) = event_tx(0, 1, Audience::All);
        let (b, b_bytes) = event_tx(1, 1, members(&[0]));
        let (c, c_bytes) = event_tx(2, 1, members(&[2, 3]));
        let txs = vec![
            a_bytes,
            rejected,
            b"\x00not a transaction".to_vec(),
            governance_bytes(),
            b_bytes,
            c_bytes,
        ];
        let codes = vec![0, 8, 1, 0, 0, 0];
        (
            RawBlock::new(height, txs, codes).expect("same lengths"),
            vec![a, b, c],
        )
    }

    #[test]
    fn extracts_accepted_catalogue_events_in_block_order() {
        let (block, txs) = mixed_block(7);
        let batch = extract_accepted(&block, &FollowFilter::all());
        assert_eq!(batch.height, 7);
        assert!(batch.undecodable.is_empty());
        let found: Vec<(u32, &Transaction)> =
            batch.events.iter().map(|e| (e.index, &e.tx)).collect();
        assert_eq!(found, vec![(0, &txs[0]), (4, &txs[1]), (5, &txs[2])]);
        for accepted in &batch.events {
            assert_eq!(accepted.height, 7);
            assert_eq!(
                accepted.tx_hash,
                tx_hash(&block.txs()[accepted.index as usize])
            );
            assert_eq!(
                Payload::CatalogueEvent(accepted.event.clone()),
                accepted.tx.payload
            );
        }
    }

    #[test]
    fn a_bundle_yields_each_of_its_events_with_its_own_id() {
        let (a, a_bytes) = event_tx(0, 1, Audience::All);
        let (b, _) = event_tx(0, 2, members(&[1]));
        let (c, _) = event_tx(0, 3, members(&[2]));
        let bundle = dome_events::encode_bundle(&[b.clone(), c.clone()]).expect("bundle");
        let block = RawBlock::new(4, vec![a_bytes, bundle], vec![0, 0]).expect("ok");
        let batch = extract_accepted(&block, &FollowFilter::all());
        let found: Vec<(u32, &Transaction)> =
            batch.events.iter().map(|e| (e.index, &e.tx)).collect();
        assert_eq!(found, vec![(0, &a), (1, &b), (1, &c)]);
        for accepted in &batch.events {
            // The id each event has when it travels alone.
            assert_eq!(
                accepted.tx_hash,
                tx_hash(&accepted.tx.encode().expect("encodes"))
            );
        }
        // The member filter applies to each event of a bundle.
        let for_c = extract_accepted(&block, &FollowFilter::for_member(test_keys::member_id(2)));
        let kept: Vec<&Transaction> = for_c.events.iter().map(|e| &e.tx).collect();
        assert_eq!(kept, vec![&a, &c]);
        // A rejected bundle yields nothing.
        let (_, a_bytes) = event_tx(0, 1, Audience::All);
        let bundle = dome_events::encode_bundle(&[b, c]).expect("bundle");
        let block = RawBlock::new(5, vec![a_bytes, bundle], vec![0, 9]).expect("ok");
        assert_eq!(
            extract_accepted(&block, &FollowFilter::all()).events.len(),
            1
        );
    }

    #[test]
    fn member_filter_keeps_audience_and_drops_own_events() {
        let (block, _) = mixed_block(1);
        let origins = |filter: FollowFilter| -> Vec<u32> {
            extract_accepted(&block, &filter)
                .events
                .iter()
                .map(|e| e.index)
                .collect()
        };
        // a: its own event (0) dropped, b's event to [a] kept, c's to [c, d] not for a.
        assert_eq!(
            origins(FollowFilter::for_member(test_keys::member_id(0))),
            vec![4]
        );
        // d: a's event to all, c's event to [c, d].
        assert_eq!(
            origins(FollowFilter::for_member(test_keys::member_id(3))),
            vec![0, 5]
        );
        // c: a's event to all only (its own is dropped).
        assert_eq!(
            origins(FollowFilter::for_member(test_keys::member_id(2))),
            vec![0]
        );
    }

    #[test]
    fn accepted_garbage_is_reported_not_dropped_silently() {
        let (_, bytes) = event_tx(0, 1, Audience::All);
        let block = RawBlock::new(3, vec![b"{}".to_vec(), bytes], vec![0, 0]).expect("ok");
        let batch = extract_accepted(&block, &FollowFilter::all());
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].index, 1);
        assert_eq!(batch.undecodable.len(), 1);
        assert_eq!(batch.undecodable[0].index, 0);
        assert_eq!(batch.undecodable[0].tx_hash, tx_hash(b"{}"));
    }

    #[test]
    fn raw_block_requires_one_code_per_tx() {
        let err = RawBlock::new(5, vec![vec![1], vec![2]], vec![0]).expect_err("mismatch");
        assert_eq!(
            err,
            LengthMismatch {
                height: 5,
                txs: 2,
                codes: 1
            }
        );
    }

    /// An in-memory chain: heights 1..=visible_tip can be fetched; failures can be queued.
    #[derive(Default)]
    struct FakeChain {
        state: Mutex<FakeState>,
    }

    #[derive(Default)]
    struct FakeState {
        blocks: Vec<RawBlock>,
        visible_tip: u64,
        fetch_failures: VecDeque<SourceError>,
        tip_failures: VecDeque<SourceError>,
        fetched: Vec<u64>,
        tip_polls: u64,
        /// Reveal one more height every this many tip polls (0 = never).
        reveal_every: u64,
    }

    fn down() -> SourceError {
        SourceError::Unavailable(AllEndpointsFailed {
            operation: "block",
            failures: vec![EndpointFailure {
                endpoint: "http://fake:1".into(),
                kind: FailureKind::Transport,
                message: "connection refused".into(),
            }],
        })
    }

    impl FakeChain {
        /// `heights` blocks; block h carries an event of member (h % 3) with seq h when
        /// `h` is even, and is empty otherwise.
        fn new(heights: u64, visible: u64) -> Self {
            let blocks = (1..=heights)
                .map(|h| {
                    if h % 2 == 0 {
                        let (_, bytes) = event_tx((h % 3) as u32, h, Audience::All);
                        RawBlock::new(h, vec![bytes], vec![0]).expect("ok")
                    } else {
                        RawBlock::new(h, vec![], vec![]).expect("ok")
                    }
                })
                .collect();
            FakeChain {
                state: Mutex::new(FakeState {
                    blocks,
                    visible_tip: visible,
                    ..FakeState::default()
                }),
            }
        }

        fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
            f(&mut self.state.lock().expect("not poisoned"))
        }
    }

    impl BlockSource for FakeChain {
        async fn tip_height(&self) -> Result<u64, SourceError> {
            self.with(|s| {
                s.tip_polls += 1;
                if let Some(failure) = s.tip_failures.pop_front() {
                    return Err(failure);
                }
                if s.reveal_every > 0 && s.tip_polls % s.reveal_every == 0 {
                    s.visible_tip = (s.visible_tip + 1).min(s.blocks.len() as u64);
                }
                Ok(s.visible_tip)
            })
        }

        async fn fetch_block(&self, height: u64) -> Result<RawBlock, SourceError> {
            self.with(|s| {
                s.fetched.push(height);
                if let Some(failure) = s.fetch_failures.pop_front() {
                    return Err(failure);
                }
                if height == 0 || height > s.visible_tip {
                    return Err(SourceError::NotYetAvailable { height });
                }
                Ok(s.blocks[(height - 1) as usize].clone())
            })
        }
    }

    /// Drives `follower` until caught up, acknowledging every batch; returns the
    /// (height, origin_seq) of every event seen and the heights delivered.
    async fn drain(follower: &mut EventFollower<FakeChain>) -> (Vec<(u64, u64)>, Vec<u64>) {
        let mut events = Vec::new();
        let mut heights = Vec::new();
        while let Some(batch) = follower.next_height().await.expect("no failure injected") {
            heights.push(batch.height);
            events.extend(batch.events.iter().map(|e| (e.height, e.event.origin_seq)));
            follower.ack(batch.height).expect("delivered");
        }
        (events, heights)
    }

    #[tokio::test]
    async fn delivers_every_height_once_in_order_and_stops_when_caught_up() {
        let mut follower = EventFollower::new(FakeChain::new(6, 6), 0);
        let (events, heights) = drain(&mut follower).await;
        assert_eq!(heights, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(events, vec![(2, 2), (4, 4), (6, 6)]);
        assert_eq!(follower.checkpoint(), 6);
        assert_eq!(follower.next_height().await.expect("ok"), None);
    }

    #[tokio::test]
    async fn unacknowledged_height_is_delivered_again() {
        let mut follower = EventFollower::new(FakeChain::new(4, 4), 1);
        let first = follower.next_height().await.expect("ok").expect("height 2");
        assert_eq!(first.height, 2);
        assert_eq!(first.events.len(), 1);
        let again = follower
            .next_height()
            .await
            .expect("ok")
            .expect("height 2 again");
        assert_eq!(again, first);
        assert_eq!(follower.checkpoint(), 1);
        // The cached batch is served without refetching.
        assert_eq!(follower.source().with(|s| s.fetched.clone()), vec![2]);
        follower.ack(2).expect("delivered");
        assert_eq!(follower.checkpoint(), 2);
        let next = follower.next_height().await.expect("ok").expect("height 3");
        assert_eq!(next.height, 3);
    }

    #[tokio::test]
    async fn ack_only_moves_over_the_delivered_height() {
        let mut follower = EventFollower::new(FakeChain::new(4, 4), 0);
        // Nothing delivered yet.
        assert_eq!(
            follower.ack(1),
            Err(AckError::NotDelivered {
                height: 1,
                expected: 1
            })
        );
        let batch = follower.next_height().await.expect("ok").expect("height 1");
        assert_eq!(
            follower.ack(2),
            Err(AckError::NotDelivered {
                height: 2,
                expected: 1
            })
        );
        follower.ack(batch.height).expect("delivered");
        // Repeated or older acknowledgements are harmless no-ops.
        follower.ack(1).expect("idempotent");
        follower.ack(0).expect("idempotent");
        assert_eq!(follower.checkpoint(), 1);
    }

    #[tokio::test]
    async fn resuming_from_a_checkpoint_has_no_gap_and_no_duplicate() {
        let (all, _) = drain(&mut EventFollower::new(FakeChain::new(10, 10), 0)).await;

        // First run stops after height 5 (the consumer persisted checkpoint 5).
        let mut first = EventFollower::new(FakeChain::new(10, 5), 0);
        let (mut seen, _) = drain(&mut first).await;
        let saved = first.checkpoint();
        assert_eq!(saved, 5);
        // A new process resumes from the saved checkpoint on a chain that grew.
        let mut second = EventFollower::new(FakeChain::new(10, 10), saved);
        let (rest, heights) = drain(&mut second).await;
        assert_eq!(heights, vec![6, 7, 8, 9, 10]);
        seen.extend(rest);
        assert_eq!(seen, all);
    }

    #[tokio::test]
    async fn fetch_failure_retries_the_same_height_never_skips() {
        let chain = FakeChain::new(5, 5);
        chain.with(|s| s.fetch_failures.extend([down(), down()]));
        let mut follower = EventFollower::new(chain, 2);
        assert!(matches!(
            follower.next_height().await,
            Err(FollowError::Unavailable(_))
        ));
        assert!(follower.next_height().await.is_err());
        assert_eq!(follower.checkpoint(), 2);
        let batch = follower.next_height().await.expect("ok").expect("height 3");
        assert_eq!(batch.height, 3);
        assert_eq!(follower.source().with(|s| s.fetched.clone()), vec![3, 3, 3]);
    }

    #[tokio::test]
    async fn tip_failure_is_an_error_and_not_yet_available_means_caught_up() {
        let chain = FakeChain::new(5, 3);
        chain.with(|s| s.tip_failures.push_back(down()));
        let mut follower = EventFollower::new(chain, 0);
        assert!(follower.next_height().await.is_err());
        // A lagging endpoint answers "not yet" for a height another one reported.
        follower.source().with(|s| {
            s.fetch_failures
                .push_back(SourceError::NotYetAvailable { height: 1 })
        });
        assert_eq!(follower.next_height().await.expect("ok"), None);
        assert_eq!(follower.checkpoint(), 0);
        let (_, heights) = drain(&mut follower).await;
        assert_eq!(heights, vec![1, 2, 3]);
        // The chain grows: the follower notices on its next call.
        follower.source().with(|s| s.visible_tip = 5);
        let (_, heights) = drain(&mut follower).await;
        assert_eq!(heights, vec![4, 5]);
    }

    #[tokio::test]
    async fn filter_does_not_hold_back_the_checkpoint() {
        // Every event of the fake chain is sent to all; member (h % 3) is the origin.
        let mut follower = EventFollower::new(FakeChain::new(6, 6), 0)
            .with_filter(FollowFilter::for_member(test_keys::member_id(0)));
        let (events, heights) = drain(&mut follower).await;
        assert_eq!(heights, vec![1, 2, 3, 4, 5, 6]);
        // Height 6 is member a's own event (6 % 3 == 0): filtered out.
        assert_eq!(events, vec![(2, 2), (4, 4)]);
        assert_eq!(follower.checkpoint(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_next_polls_until_a_height_appears() {
        let chain = FakeChain::new(3, 1);
        chain.with(|s| s.reveal_every = 5);
        let mut follower = EventFollower::new(chain, 1);
        let start = Instant::now();
        let batch = follower
            .wait_next(Duration::from_millis(100), start + Duration::from_secs(10))
            .await
            .expect("ok")
            .expect("height 2 appears");
        assert_eq!(batch.height, 2);
        assert!(start.elapsed() >= Duration::from_millis(400));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_next_gives_up_at_the_deadline() {
        let mut follower = EventFollower::new(FakeChain::new(3, 3), 3);
        let start = Instant::now();
        let got = follower
            .wait_next(Duration::from_millis(300), start + Duration::from_secs(1))
            .await
            .expect("ok");
        assert_eq!(got, None);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(follower.source().with(|s| s.tip_polls) >= 4);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_next_retries_errors_and_reports_a_persistent_one() {
        let chain = FakeChain::new(3, 3);
        // Two failures, then the bus recovers before the deadline.
        chain.with(|s| s.fetch_failures.extend([down(), down()]));
        let mut follower = EventFollower::new(chain, 0);
        let start = Instant::now();
        let batch = follower
            .wait_next(Duration::from_millis(100), start + Duration::from_secs(5))
            .await
            .expect("recovers")
            .expect("height 1");
        assert_eq!(batch.height, 1);
        follower.ack(1).expect("delivered");

        // The bus stays down until the deadline: the error is returned.
        follower
            .source()
            .with(|s| s.fetch_failures.extend((0..100).map(|_| down())));
        let err = follower
            .wait_next(
                Duration::from_millis(100),
                Instant::now() + Duration::from_secs(1),
            )
            .await
            .expect_err("still down");
        assert!(matches!(err, FollowError::Unavailable(_)));
        assert_eq!(follower.checkpoint(), 1);
    }
}
