//! The bus state machine: pure, deterministic, no I/O.
//!
//! [`BusState`] is the committed state. Transactions are applied to a [`Pending`] change set
//! layered over it, so CheckTx, proposal checks and block execution never touch the committed
//! state until the block is durable.

use std::collections::BTreeMap;

use dome_events::model::InvalidField;
use dome_events::wire::DecodeError;
use dome_events::{
    decode_bus_tx, Action, CatalogueEvent, ContentHash, GovernanceAction, GovernanceProposal,
    MemberId, MemberInfo, Payload, PreparedKey, PublicKey, Transaction, TxCode, TxId,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A member as the registry holds it; removed members stay, inactive, so their history and
/// ids are never reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub info: MemberInfo,
    pub active: bool,
}

/// The newest accepted version of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityHead {
    pub entity_type: String,
    pub id: String,
    pub origin: MemberId,
    pub version: u64,
    /// Content hash of the head version; `None` once deleted.
    pub content_hash: Option<ContentHash>,
    pub deleted: bool,
    /// Height of the block that accepted the head version.
    pub height: u64,
}

/// The committed state of the bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusState {
    pub members: BTreeMap<MemberId, MemberRecord>,
    pub origin_seqs: BTreeMap<MemberId, u64>,
    pub heads: BTreeMap<String, EntityHead>,
    /// Voting power of each validator, keyed by its ed25519 public key.
    pub validators: BTreeMap<PublicKey, u64>,
    pub governance_nonce: u64,
}

/// Writes of not-yet-committed transactions, in a deterministic (sorted) order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub members: BTreeMap<MemberId, MemberRecord>,
    pub origin_seqs: BTreeMap<MemberId, u64>,
    pub heads: BTreeMap<String, EntityHead>,
    pub validators: BTreeMap<PublicKey, u64>,
    pub governance_nonce: Option<u64>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
            && self.origin_seqs.is_empty()
            && self.heads.is_empty()
            && self.validators.is_empty()
            && self.governance_nonce.is_none()
    }

    /// sha256 over the canonical form of the change set: the per-block input of the app hash.
    pub fn digest(&self) -> [u8; 32] {
        let text = dome_events::canonical::to_canonical_string(&PendingDigestView(self))
            .unwrap_or_default();
        Sha256::digest(text.as_bytes()).into()
    }
}

/// Serialises validator keys as base64 strings so the change set is plain JSON.
struct PendingDigestView<'a>(&'a Pending);

impl Serialize for PendingDigestView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let p = self.0;
        let validators: BTreeMap<String, u64> = p
            .validators
            .iter()
            .map(|(k, v)| (k.to_base64(), *v))
            .collect();
        let mut st = s.serialize_struct("Pending", 5)?;
        st.serialize_field("members", &p.members)?;
        st.serialize_field("origin_seqs", &p.origin_seqs)?;
        st.serialize_field("heads", &p.heads)?;
        st.serialize_field("validators", &validators)?;
        st.serialize_field("governance_nonce", &p.governance_nonce)?;
        st.end()
    }
}

impl BusState {
    /// The state a federation starts from.
    pub fn genesis(members: &[MemberInfo], validators: &[(PublicKey, u64)]) -> BusState {
        BusState {
            members: members
                .iter()
                .map(|m| {
                    (
                        m.id.clone(),
                        MemberRecord {
                            info: m.clone(),
                            active: true,
                        },
                    )
                })
                .collect(),
            validators: validators.iter().copied().collect(),
            ..BusState::default()
        }
    }

    /// Folds a committed change set into the state.
    pub fn apply_pending(&mut self, pending: Pending) {
        self.members.extend(pending.members);
        self.origin_seqs.extend(pending.origin_seqs);
        self.heads.extend(pending.heads);
        for (key, power) in pending.validators {
            if power == 0 {
                self.validators.remove(&key);
            } else {
                self.validators.insert(key, power);
            }
        }
        if let Some(nonce) = pending.governance_nonce {
            self.governance_nonce = nonce;
        }
    }

    /// Commitment to the genesis state, the first link of the app-hash chain.
    pub fn genesis_hash(&self) -> [u8; 32] {
        let as_pending = Pending {
            members: self.members.clone(),
            origin_seqs: self.origin_seqs.clone(),
            heads: self.heads.clone(),
            validators: self.validators.clone(),
            governance_nonce: Some(self.governance_nonce),
        };
        let mut h = Sha256::new();
        h.update(b"dome-app-hash-genesis\n");
        h.update(as_pending.digest());
        h.finalize().into()
    }
}

/// The app hash after a block: chains the previous hash with the block's change set, so it
/// commits to the whole state (every node derives the state from genesis plus these change
/// sets) while costing only the size of the block to compute. Blocks that change nothing
/// keep the hash unchanged.
pub fn next_app_hash(previous: &[u8], height: u64, pending: &Pending) -> Vec<u8> {
    if pending.is_empty() {
        return previous.to_vec();
    }
    let mut h = Sha256::new();
    h.update(b"dome-app-hash-v1\n");
    h.update(previous);
    h.update(height.to_be_bytes());
    h.update(pending.digest());
    h.finalize().to_vec()
}

/// Why a transaction was refused: an ABCI code and a log line that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: TxCode,
    pub log: String,
}

fn reject(code: TxCode, log: impl Into<String>) -> Rejection {
    Rejection {
        code,
        log: log.into(),
    }
}

impl From<DecodeError> for Rejection {
    fn from(e: DecodeError) -> Self {
        let code = match &e {
            DecodeError::TooLarge { .. } => TxCode::TooLarge,
            DecodeError::NotJson(_) | DecodeError::Malformed(_) | DecodeError::MissingVersion => {
                TxCode::Malformed
            }
            DecodeError::UnknownVersion(_) => TxCode::UnknownVersion,
            DecodeError::Invalid(_) => TxCode::InvalidField,
        };
        reject(code, e.to_string())
    }
}

impl From<InvalidField> for Rejection {
    fn from(e: InvalidField) -> Self {
        reject(TxCode::InvalidField, e.to_string())
    }
}

/// What an accepted transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Catalogue(CatalogueEvent),
    Governance {
        nonce: u64,
        action: GovernanceAction,
        /// The CometBFT validator power change, if the action was one.
        validator_update: Option<(PublicKey, u64)>,
    },
}

/// Decides whether a transaction's approval verifies. The app answers from what its own
/// CheckTx already verified for the same bytes; tests and cold paths verify every time.
pub trait SignatureCheck {
    /// `true` when approval `index` of `tx` (whose bytes hash to `tx_id`) is a valid
    /// signature by `key` over the transaction's signing bytes.
    fn verify(&self, tx_id: &[u8; 32], tx: &Transaction, index: usize, key: &PublicKey) -> bool;
}

/// Verifies every time.
pub struct PlainVerifier;

impl SignatureCheck for PlainVerifier {
    fn verify(&self, _tx_id: &[u8; 32], tx: &Transaction, index: usize, key: &PublicKey) -> bool {
        key.prepare()
            .is_ok_and(|key| approval_verifies(tx, index, &key))
    }
}

/// Whether approval `index` of `tx` is a valid signature by `key` over the transaction's
/// signing bytes (strict RFC 8032).
pub fn approval_verifies(tx: &Transaction, index: usize, key: &PreparedKey) -> bool {
    let Some(approval) = tx.signatures.get(index) else {
        return false;
    };
    match tx.own_signing_bytes() {
        Ok(message) => key.verify(&message, &approval.signature).is_ok(),
        Err(_) => false,
    }
}

/// Identity of a transaction's bytes: sha256, as CometBFT hashes transactions.
pub use dome_events::tx_id;

/// One transaction of a bus transaction, with its id and how to check its signatures.
pub struct BusItem<'a> {
    pub id: &'a TxId,
    pub tx: &'a Transaction,
    pub verifier: &'a dyn SignatureCheck,
}

/// Committed state seen through a change set: the view transactions are checked against.
pub struct View<'a> {
    pub base: &'a BusState,
    pub pending: &'a mut Pending,
}

impl View<'_> {
    pub fn member(&self, id: &MemberId) -> Option<&MemberRecord> {
        self.pending
            .members
            .get(id)
            .or_else(|| self.base.members.get(id))
    }

    pub fn last_seq(&self, origin: &MemberId) -> u64 {
        self.pending
            .origin_seqs
            .get(origin)
            .or_else(|| self.base.origin_seqs.get(origin))
            .copied()
            .unwrap_or(0)
    }

    pub fn head(&self, key: &str) -> Option<&EntityHead> {
        self.pending
            .heads
            .get(key)
            .or_else(|| self.base.heads.get(key))
    }

    pub fn governance_nonce(&self) -> u64 {
        self.pending
            .governance_nonce
            .unwrap_or(self.base.governance_nonce)
    }

    fn validator_power(&self, key: &PublicKey) -> u64 {
        self.pending
            .validators
            .get(key)
            .or_else(|| self.base.validators.get(key))
            .copied()
            .unwrap_or(0)
    }

    fn active_members(&self) -> Vec<MemberId> {
        let mut ids: Vec<MemberId> = self
            .base
            .members
            .keys()
            .chain(self.pending.members.keys())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter(|id| self.member(id).is_some_and(|m| m.active))
            .collect()
    }

    fn total_validator_power_after(&self, key: &PublicKey, power: u64) -> u64 {
        let mut keys: Vec<&PublicKey> = self
            .base
            .validators
            .keys()
            .chain(self.pending.validators.keys())
            .collect();
        keys.sort();
        keys.dedup();
        let others: u64 = keys
            .into_iter()
            .filter(|k| *k != key)
            .map(|k| self.validator_power(k))
            .sum();
        others + power
    }

    /// Decodes, checks and, when valid, applies one transaction to the change set.
    /// A rejected transaction leaves the change set exactly as it was.
    pub fn apply_bytes(
        &mut self,
        tx_bytes: &[u8],
        height: u64,
        verifier: &dyn SignatureCheck,
    ) -> Result<Accepted, Rejection> {
        let tx = Transaction::decode(tx_bytes)?;
        self.apply(&tx, &tx_id(tx_bytes), height, verifier)
    }

    /// Applies the transactions one bus transaction carries (one alone, or a bundle's
    /// events), in order and all or none: when one is rejected the change set is restored
    /// to what it was before the first, and the rejection names the event that failed.
    pub fn apply_all(
        &mut self,
        items: &[BusItem<'_>],
        height: u64,
    ) -> Result<Vec<Accepted>, Rejection> {
        if let [only] = items {
            return Ok(vec![self.apply(only.tx, only.id, height, only.verifier)?]);
        }
        // Bundles carry catalogue events only (the decoder refuses anything else), and an
        // event writes exactly its origin's seq and its entity's head: remembering those two
        // entries before each event is a complete undo log.
        let mut undo: Vec<(MemberId, Option<u64>, String, Option<EntityHead>)> =
            Vec::with_capacity(items.len());
        let mut accepted = Vec::with_capacity(items.len());
        for (position, item) in items.iter().enumerate() {
            let Payload::CatalogueEvent(event) = &item.tx.payload else {
                self.undo(undo);
                return Err(reject(
                    TxCode::InvalidField,
                    format!(
                        "event {} of {} in the bundle: a bundle carries catalogue events only",
                        position + 1,
                        items.len()
                    ),
                ));
            };
            let key = event.entity.key();
            let previous_seq = self.pending.origin_seqs.get(&event.origin).copied();
            let previous_head = self.pending.heads.get(&key).cloned();
            match self.apply(item.tx, item.id, height, item.verifier) {
                Ok(done) => {
                    undo.push((event.origin.clone(), previous_seq, key, previous_head));
                    accepted.push(done);
                }
                Err(rejection) => {
                    self.undo(undo);
                    return Err(Rejection {
                        code: rejection.code,
                        log: format!(
                            "event {} of {} in the bundle ({} seq {}): {}",
                            position + 1,
                            items.len(),
                            event.origin,
                            event.origin_seq,
                            rejection.log
                        ),
                    });
                }
            }
        }
        Ok(accepted)
    }

    fn undo(&mut self, undo: Vec<(MemberId, Option<u64>, String, Option<EntityHead>)>) {
        for (origin, seq, key, head) in undo.into_iter().rev() {
            match seq {
                Some(seq) => self.pending.origin_seqs.insert(origin, seq),
                None => self.pending.origin_seqs.remove(&origin),
            };
            match head {
                Some(head) => self.pending.heads.insert(key, head),
                None => self.pending.heads.remove(&key),
            };
        }
    }

    /// Decodes a bus transaction (alone or a bundle) and applies it with [`View::apply_all`].
    pub fn apply_bus_bytes(
        &mut self,
        tx_bytes: &[u8],
        height: u64,
        verifier: &dyn SignatureCheck,
    ) -> Result<Vec<(TxId, Accepted)>, Rejection> {
        let items = decode_bus_tx(tx_bytes)?;
        let refs: Vec<BusItem<'_>> = items
            .iter()
            .map(|item| BusItem {
                id: &item.id,
                tx: &item.tx,
                verifier,
            })
            .collect();
        let accepted = self.apply_all(&refs, height)?;
        Ok(items.iter().map(|i| i.id).zip(accepted).collect())
    }

    pub fn apply(
        &mut self,
        tx: &Transaction,
        tx_id: &[u8; 32],
        height: u64,
        verifier: &dyn SignatureCheck,
    ) -> Result<Accepted, Rejection> {
        tx.validate()?;
        // Every signer must be an active member whose registered key made the signature.
        for (index, approval) in tx.signatures.iter().enumerate() {
            let member = self.member(&approval.signer).ok_or_else(|| {
                reject(
                    TxCode::UnknownMember,
                    format!("{} is not a member of the federation", approval.signer),
                )
            })?;
            if !member.active {
                return Err(reject(
                    TxCode::RemovedMember,
                    format!("{} was removed from the federation", approval.signer),
                ));
            }
            if !verifier.verify(tx_id, tx, index, &member.info.public_key) {
                return Err(reject(
                    TxCode::BadSignature,
                    format!(
                        "signature of {} does not verify with its registered key",
                        approval.signer
                    ),
                ));
            }
        }
        match &tx.payload {
            Payload::CatalogueEvent(event) => self.apply_event(event, height),
            Payload::Governance(proposal) => self.apply_governance(tx, proposal),
        }
    }

    fn apply_event(&mut self, event: &CatalogueEvent, height: u64) -> Result<Accepted, Rejection> {
        let last = self.last_seq(&event.origin);
        if event.origin_seq <= last {
            return Err(reject(
                TxCode::SeqReplayed,
                format!(
                    "origin_seq {} of {} already used: last accepted is {last}",
                    event.origin_seq, event.origin
                ),
            ));
        }
        if event.origin_seq != last + 1 {
            return Err(reject(
                TxCode::SeqGap,
                format!(
                    "origin_seq {} of {} skips ahead: expected {}",
                    event.origin_seq,
                    event.origin,
                    last + 1
                ),
            ));
        }
        if let dome_events::Audience::Members(list) = &event.audience {
            if let Some(unknown) = list.iter().find(|m| self.member(m).is_none()) {
                return Err(reject(
                    TxCode::UnknownMember,
                    format!("audience names {unknown}, who is not a member"),
                ));
            }
        }
        let key = event.entity.key();
        let version = event.entity.version;
        match (self.head(&key), event.action) {
            (Some(head), Action::Create) => {
                let code = if head.deleted {
                    TxCode::EntityDeleted
                } else {
                    TxCode::EntityExists
                };
                return Err(reject(
                    code,
                    format!("{key} already exists (created by {})", head.origin),
                ));
            }
            (None, Action::Create) => {}
            (None, _) => {
                return Err(reject(
                    TxCode::UnknownEntity,
                    format!("{key} has never been created"),
                ));
            }
            (Some(head), _) => {
                if head.origin != event.origin {
                    return Err(reject(
                        TxCode::NotEntityOrigin,
                        format!(
                            "{key} belongs to {}; {} may not change it",
                            head.origin, event.origin
                        ),
                    ));
                }
                if head.deleted {
                    return Err(reject(
                        TxCode::EntityDeleted,
                        format!("{key} was deleted at version {}", head.version),
                    ));
                }
                if version <= head.version {
                    return Err(reject(
                        TxCode::StaleVersion,
                        format!("{key} version {version} is stale: head is {}", head.version),
                    ));
                }
                if version != head.version + 1 {
                    return Err(reject(
                        TxCode::VersionGap,
                        format!(
                            "{key} version {version} skips ahead: expected {}",
                            head.version + 1
                        ),
                    ));
                }
                if event.previous_hash != head.content_hash {
                    return Err(reject(
                        TxCode::PreviousHashMismatch,
                        format!(
                            "{key} previous_hash {} does not match head hash {}",
                            describe(event.previous_hash),
                            describe(head.content_hash)
                        ),
                    ));
                }
            }
        }
        self.pending
            .origin_seqs
            .insert(event.origin.clone(), event.origin_seq);
        self.pending.heads.insert(
            key,
            EntityHead {
                entity_type: event.entity.entity_type.clone(),
                id: event.entity.id.clone(),
                origin: event.origin.clone(),
                version,
                content_hash: event.content_hash,
                deleted: event.action == Action::Delete,
                height,
            },
        );
        Ok(Accepted::Catalogue(event.clone()))
    }

    fn apply_governance(
        &mut self,
        tx: &Transaction,
        proposal: &GovernanceProposal,
    ) -> Result<Accepted, Rejection> {
        let expected = self.governance_nonce() + 1;
        if proposal.nonce != expected {
            return Err(reject(
                TxCode::GovernanceNonce,
                format!(
                    "governance nonce {} is not the next one ({expected})",
                    proposal.nonce
                ),
            ));
        }
        let active = self.active_members();
        // Signers were checked to be active members above; strictly more than 2/3 must approve.
        let approvals = tx.signatures.len();
        if approvals * 3 <= active.len() * 2 {
            return Err(reject(
                TxCode::InsufficientApprovals,
                format!(
                    "{approvals} of {} active members approved; more than two thirds are needed",
                    active.len()
                ),
            ));
        }
        let mut validator_update = None;
        match &proposal.action {
            GovernanceAction::AddMember(info) => {
                if self.member(&info.id).is_some() {
                    return Err(reject(
                        TxCode::GovernanceConflict,
                        format!("{} is or was already a member", info.id),
                    ));
                }
                if let Some(holder) = active.iter().find(|id| {
                    self.member(id)
                        .is_some_and(|m| m.info.public_key == info.public_key)
                }) {
                    return Err(reject(
                        TxCode::GovernanceConflict,
                        format!("that public key already belongs to {holder}"),
                    ));
                }
                self.pending.members.insert(
                    info.id.clone(),
                    MemberRecord {
                        info: info.clone(),
                        active: true,
                    },
                );
            }
            GovernanceAction::RemoveMember { member } => {
                let mut record = self.existing_active(member)?;
                if active.len() == 1 {
                    return Err(reject(
                        TxCode::GovernanceConflict,
                        "the last active member cannot be removed",
                    ));
                }
                record.active = false;
                self.pending.members.insert(member.clone(), record);
            }
            GovernanceAction::RotateKey {
                member,
                new_public_key,
            } => {
                if let Some(holder) = active.iter().find(|id| {
                    self.member(id)
                        .is_some_and(|m| m.info.public_key == *new_public_key)
                }) {
                    return Err(reject(
                        TxCode::GovernanceConflict,
                        format!("that public key already belongs to {holder}"),
                    ));
                }
                let mut record = self.existing_active(member)?;
                record.info.public_key = *new_public_key;
                self.pending.members.insert(member.clone(), record);
            }
            GovernanceAction::SetValidatorPower {
                validator_public_key,
                power,
            } => {
                if *power == 0 && self.validator_power(validator_public_key) == 0 {
                    return Err(reject(
                        TxCode::GovernanceConflict,
                        "that key is not a validator; nothing to remove",
                    ));
                }
                if self.total_validator_power_after(validator_public_key, *power) == 0 {
                    return Err(reject(
                        TxCode::GovernanceConflict,
                        "the change would leave no validator",
                    ));
                }
                self.pending
                    .validators
                    .insert(*validator_public_key, *power);
                validator_update = Some((*validator_public_key, *power));
            }
        }
        self.pending.governance_nonce = Some(proposal.nonce);
        Ok(Accepted::Governance {
            nonce: proposal.nonce,
            action: proposal.action.clone(),
            validator_update,
        })
    }

    /// An owned copy of an active member's record, for modification.
    fn existing_active(&self, member: &MemberId) -> Result<MemberRecord, Rejection> {
        match self.member(member) {
            None => Err(reject(
                TxCode::UnknownMember,
                format!("{member} is not a member"),
            )),
            Some(record) if !record.active => Err(reject(
                TxCode::GovernanceConflict,
                format!("{member} was already removed"),
            )),
            Some(record) => Ok(record.clone()),
        }
    }
}

fn describe(hash: Option<ContentHash>) -> String {
    hash.map(|h| h.to_hex()).unwrap_or_else(|| "none".into())
}
