//! The bus rules at the application level: each rejection has its own code and changes
//! nothing; governance needs more than 2/3 approvals; a byzantine proposer's invalid block
//! is refused; state survives a restart.

use bytes::Bytes;
use dome_abci::DomeApp;
use dome_events::{
    test_keys, Action, Audience, CatalogueEvent, ContentHash, EntityRef, GovernanceAction,
    GovernanceProposal, MemberId, MemberKeypair, Transaction, TxCode,
};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    response_process_proposal::ProposalStatus, RequestCheckTx, RequestFinalizeBlock, RequestInfo,
    RequestInitChain, RequestProcessProposal, RequestQuery,
};

const MEMBERS: u32 = 4;

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    app: DomeApp,
    height: i64,
}

fn member(i: u32) -> MemberId {
    test_keys::member_id(i)
}

fn key(i: u32) -> MemberKeypair {
    test_keys::member_keypair(i)
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bus.redb");
        let app = DomeApp::open(&path).expect("open");
        let app_state = dome_events::genesis::demo_app_state(MEMBERS as usize);
        app.init_chain(RequestInitChain {
            chain_id: "test".into(),
            app_state_bytes: serde_json::to_vec(&app_state).expect("json").into(),
            ..Default::default()
        });
        Harness {
            _dir: dir,
            path,
            app,
            height: 0,
        }
    }

    fn check(&self, tx: &[u8]) -> (u32, String) {
        let r = self.app.check_tx(RequestCheckTx {
            tx: Bytes::copy_from_slice(tx),
            r#type: 0,
        });
        (r.code, r.log)
    }

    /// Finalizes and commits a block; returns each transaction's code.
    fn block(&mut self, txs: Vec<Vec<u8>>) -> Vec<(u32, String)> {
        self.height += 1;
        let response = self.app.finalize_block(RequestFinalizeBlock {
            txs: txs.into_iter().map(Bytes::from).collect(),
            height: self.height,
            hash: Bytes::from(vec![self.height as u8; 32]),
            ..Default::default()
        });
        self.app.commit();
        response
            .tx_results
            .into_iter()
            .map(|r| (r.code, r.log))
            .collect()
    }

    fn app_hash(&self) -> Vec<u8> {
        self.app
            .info(RequestInfo::default())
            .last_block_app_hash
            .to_vec()
    }

    fn query(&self, path: &str) -> (u32, serde_json::Value) {
        let r = self.app.query(RequestQuery {
            path: path.into(),
            ..Default::default()
        });
        let value = if r.value.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&r.value).expect("query answers JSON")
        };
        (r.code, value)
    }
}

fn event(origin: u32, seq: u64, id: &str, version: u64, action: Action) -> CatalogueEvent {
    let content = (action != Action::Delete)
        .then(|| ContentHash::of_bytes(format!("{id}@{version}").as_bytes()));
    let previous =
        (version > 1).then(|| ContentHash::of_bytes(format!("{id}@{}", version - 1).as_bytes()));
    CatalogueEvent {
        origin: member(origin),
        origin_seq: seq,
        entity: EntityRef {
            entity_type: "productOffering".into(),
            id: id.into(),
            version,
        },
        action,
        content_hash: content,
        previous_hash: previous,
        location: format!("http://127.0.0.1:9000/productOffering/{id}/version/{version}"),
        audience: Audience::All,
        issued_at: "2026-11-29T12:00:00Z".into(),
    }
}

fn signed(e: CatalogueEvent, by: u32) -> Vec<u8> {
    Transaction::signed_event(e, &key(by))
        .expect("valid")
        .encode()
        .expect("encodes")
}

fn proposal(nonce: u64, action: GovernanceAction, approvers: &[u32]) -> Vec<u8> {
    let keys: Vec<MemberKeypair> = approvers.iter().map(|i| key(*i)).collect();
    let pairs: Vec<(MemberId, &MemberKeypair)> = approvers
        .iter()
        .zip(keys.iter())
        .map(|(i, k)| (member(*i), k))
        .collect();
    Transaction::approved_proposal(
        GovernanceProposal {
            nonce,
            action,
            issued_at: "2026-11-29T12:00:00Z".into(),
        },
        &pairs,
    )
    .expect("valid")
    .encode()
    .expect("encodes")
}

fn assert_code(got: (u32, String), want: TxCode) {
    assert_eq!(
        got.0,
        want.as_u32(),
        "expected {want:?}, got code {} ({})",
        got.0,
        got.1
    );
    if want != TxCode::Ok {
        assert!(!got.1.is_empty(), "a rejection must say why");
    }
}

#[test]
fn a_valid_lifecycle_is_accepted_and_recorded() {
    let mut h = Harness::new();
    let results = h.block(vec![
        signed(event(0, 1, "po-1", 1, Action::Create), 0),
        signed(event(0, 2, "po-1", 2, Action::Update), 0),
        signed(event(0, 3, "po-1", 3, Action::StateChange), 0),
        signed(event(0, 4, "po-1", 4, Action::Delete), 0),
    ]);
    for r in results {
        assert_code(r, TxCode::Ok);
    }
    let (code, head) = h.query("/entity/productOffering/po-1");
    assert_eq!(code, 0);
    assert_eq!(head["version"], 4);
    assert_eq!(head["deleted"], true);
    let (_, seq) = h.query(&format!("/origin/{}/seq", member(0)));
    assert_eq!(seq["last_seq"], 4);
    let (_, events) = h.query("/events/1/1");
    assert_eq!(events.as_array().map(Vec::len), Some(4));
    // A tombstone is final.
    let results = h.block(vec![signed(event(0, 5, "po-1", 5, Action::Update), 0)]);
    assert_code(results[0].clone(), TxCode::EntityDeleted);
}

#[test]
fn each_bad_transaction_is_rejected_with_its_own_code_and_changes_nothing() {
    let mut h = Harness::new();
    h.block(vec![
        signed(event(0, 1, "po-1", 1, Action::Create), 0),
        signed(event(0, 2, "po-1", 2, Action::Update), 0),
    ]);
    let hash_before = h.app_hash();

    // Forged: signed by member 1's key but claims to come from member 0.
    let forged = {
        let mut tx = Transaction::signed_event(event(0, 3, "po-2", 1, Action::Create), &key(1))
            .expect("valid shape");
        tx.signatures[0].signer = member(0);
        tx.encode().expect("encodes")
    };
    // Replay of an accepted transaction, and a skipped seq.
    let replayed = signed(event(0, 2, "po-1", 2, Action::Update), 0);
    let skipped = signed(event(0, 4, "po-3", 1, Action::Create), 0);
    // A non-member with a valid signature of its own.
    let outsider_key = MemberKeypair::from_seed([42; 32]);
    let outsider = {
        let mut e = event(0, 1, "po-9", 1, Action::Create);
        e.origin = MemberId::new("outsider").expect("id");
        Transaction::signed_event(e, &outsider_key)
            .expect("valid")
            .encode()
            .expect("encodes")
    };
    // Member 1 changing member 0's entity.
    let foreign_change = signed(event(1, 1, "po-1", 3, Action::Update), 1);
    // Version problems on member 0's entity.
    let stale = signed(event(0, 3, "po-1", 2, Action::Update), 0);
    let version_gap = signed(event(0, 3, "po-1", 4, Action::Update), 0);
    let wrong_previous = {
        let mut e = event(0, 3, "po-1", 3, Action::Update);
        e.previous_hash = Some(ContentHash::of_bytes(b"not the head"));
        signed(e, 0)
    };
    let unknown_entity = signed(event(0, 3, "po-404", 2, Action::Update), 0);
    let duplicate_create = signed(event(0, 3, "po-1", 1, Action::Create), 0);
    let oversize = vec![b'{'; dome_events::MAX_TX_BYTES + 1];
    let garbage: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
    let unknown_version = {
        let mut v: serde_json::Value =
            serde_json::from_slice(&signed(event(0, 3, "po-5", 1, Action::Create), 0))
                .expect("json");
        v["v"] = 9.into();
        serde_json::to_vec(&v).expect("json")
    };
    let unknown_field = {
        let mut v: serde_json::Value =
            serde_json::from_slice(&signed(event(0, 3, "po-5", 1, Action::Create), 0))
                .expect("json");
        v["payload"]["catalogue_event"]["price"] = 1.into();
        serde_json::to_vec(&v).expect("json")
    };

    let cases = vec![
        (forged, TxCode::BadSignature),
        (replayed, TxCode::SeqReplayed),
        (skipped, TxCode::SeqGap),
        (outsider, TxCode::UnknownMember),
        (foreign_change, TxCode::NotEntityOrigin),
        (stale, TxCode::StaleVersion),
        (version_gap, TxCode::VersionGap),
        (wrong_previous, TxCode::PreviousHashMismatch),
        (unknown_entity, TxCode::UnknownEntity),
        (duplicate_create, TxCode::EntityExists),
        (oversize, TxCode::TooLarge),
        (garbage, TxCode::Malformed),
        (unknown_version, TxCode::UnknownVersion),
        (unknown_field, TxCode::Malformed),
    ];
    for (tx, want) in &cases {
        assert_code(h.check(tx), *want);
    }
    // The same transactions forced into a block: each refused with the same code.
    let results = h.block(cases.iter().map(|(tx, _)| tx.clone()).collect());
    for (got, (_, want)) in results.into_iter().zip(cases.iter()) {
        assert_code(got, *want);
    }
    assert_eq!(
        h.app_hash(),
        hash_before,
        "rejected transactions changed the state"
    );
    let (_, seq) = h.query(&format!("/origin/{}/seq", member(0)));
    assert_eq!(seq["last_seq"], 2);
    let (code, _) = h.query("/entity/productOffering/po-2");
    assert_eq!(code, dome_events::QueryCode::NotFound as u32);
}

#[test]
fn removed_members_can_no_longer_publish() {
    let mut h = Harness::new();
    let r = h.block(vec![proposal(
        1,
        GovernanceAction::RemoveMember { member: member(3) },
        &[0, 1, 2],
    )]);
    assert_code(r[0].clone(), TxCode::Ok);
    let tx = signed(event(3, 1, "po-x", 1, Action::Create), 3);
    assert_code(h.check(&tx), TxCode::RemovedMember);
}

#[test]
fn governance_needs_more_than_two_thirds() {
    let mut h = Harness::new();
    let newcomer = test_keys::member_info(MEMBERS);
    // 2 of 4 is not more than 2/3; neither would 2 of 3 be after a removal.
    let too_few = proposal(1, GovernanceAction::AddMember(newcomer.clone()), &[0, 1]);
    assert_code(h.check(&too_few), TxCode::InsufficientApprovals);
    let r = h.block(vec![too_few]);
    assert_code(r[0].clone(), TxCode::InsufficientApprovals);
    // A non-member approval does not count.
    let with_outsider = {
        let mut tx = Transaction::decode(&proposal(
            1,
            GovernanceAction::AddMember(newcomer.clone()),
            &[0, 1],
        ))
        .expect("decodes");
        let message = tx.own_signing_bytes().expect("canonical");
        tx.signatures.push(dome_events::Approval {
            signer: MemberId::new("stranger").expect("id"),
            signature: MemberKeypair::from_seed([5; 32]).sign(&message),
        });
        tx.encode().expect("encodes")
    };
    assert_code(h.check(&with_outsider), TxCode::UnknownMember);
    // The newcomer cannot publish yet.
    let first = signed(event(MEMBERS, 1, "po-new", 1, Action::Create), MEMBERS);
    assert_code(h.check(&first), TxCode::UnknownMember);

    let enough = proposal(1, GovernanceAction::AddMember(newcomer.clone()), &[0, 1, 2]);
    let r = h.block(vec![enough.clone()]);
    assert_code(r[0].clone(), TxCode::Ok);
    // Approvals cannot be replayed.
    assert_code(h.check(&enough), TxCode::GovernanceNonce);
    let r = h.block(vec![first]);
    assert_code(r[0].clone(), TxCode::Ok);
    let (_, members) = h.query("/members");
    assert_eq!(members.as_array().map(Vec::len), Some(MEMBERS as usize + 1));
    // Adding the same member twice is a conflict.
    let again = proposal(2, GovernanceAction::AddMember(newcomer), &[0, 1, 2, 3]);
    assert_code(h.check(&again), TxCode::GovernanceConflict);
}

#[test]
fn key_rotation_takes_effect_and_validator_power_changes_are_emitted() {
    let mut h = Harness::new();
    let new_key = MemberKeypair::from_seed([77; 32]);
    let r = h.block(vec![proposal(
        1,
        GovernanceAction::RotateKey {
            member: member(0),
            new_public_key: new_key.public_key(),
        },
        &[0, 1, 2],
    )]);
    assert_code(r[0].clone(), TxCode::Ok);
    let old = signed(event(0, 1, "po-1", 1, Action::Create), 0);
    assert_code(h.check(&old), TxCode::BadSignature);
    let fresh = Transaction::signed_event(event(0, 1, "po-1", 1, Action::Create), &new_key)
        .expect("valid")
        .encode()
        .expect("encodes");
    assert_code(h.check(&fresh), TxCode::Ok);

    h.height += 1;
    let validator = MemberKeypair::from_seed([88; 32]).public_key();
    let response = h.app.finalize_block(RequestFinalizeBlock {
        txs: vec![proposal(
            2,
            GovernanceAction::SetValidatorPower {
                validator_public_key: validator,
                power: 5,
            },
            &[1, 2, 3],
        )
        .into()],
        height: h.height,
        ..Default::default()
    });
    h.app.commit();
    assert_eq!(
        response.tx_results[0].code, 0,
        "{}",
        response.tx_results[0].log
    );
    assert_eq!(response.validator_updates.len(), 1);
    assert_eq!(response.validator_updates[0].power, 5);
}

#[test]
fn a_byzantine_proposal_with_an_invalid_transaction_is_refused() {
    let mut h = Harness::new();
    h.block(vec![signed(event(0, 1, "po-1", 1, Action::Create), 0)]);
    let hash_before = h.app_hash();
    let good = signed(event(0, 2, "po-1", 2, Action::Update), 0);
    let forged = {
        let mut tx = Transaction::signed_event(event(1, 1, "po-7", 1, Action::Create), &key(2))
            .expect("valid shape");
        tx.signatures[0].signer = member(1);
        tx.encode().expect("encodes")
    };
    let response = h.app.process_proposal(RequestProcessProposal {
        txs: vec![good.clone().into(), forged.clone().into()],
        height: h.height + 1,
        hash: Bytes::from(vec![1; 32]),
        ..Default::default()
    });
    assert_eq!(response.status, ProposalStatus::Reject as i32);
    // Had it been decided anyway, execution refuses the transaction and keeps the good one.
    let results = h.block(vec![forged, good]);
    assert_code(results[0].clone(), TxCode::BadSignature);
    assert_code(results[1].clone(), TxCode::Ok);
    assert_ne!(h.app_hash(), hash_before);
    let (_, head) = h.query("/entity/productOffering/po-7");
    assert!(head.is_null());
    // An honest proposal passes.
    let response = h.app.process_proposal(RequestProcessProposal {
        txs: vec![signed(event(0, 3, "po-1", 3, Action::Update), 0).into()],
        height: h.height + 1,
        hash: Bytes::from(vec![2; 32]),
        ..Default::default()
    });
    assert_eq!(response.status, ProposalStatus::Accept as i32);
}

#[test]
fn state_and_app_hash_survive_a_restart() {
    let mut h = Harness::new();
    h.block(vec![signed(event(0, 1, "po-1", 1, Action::Create), 0)]);
    h.block(vec![signed(event(0, 2, "po-1", 2, Action::Update), 0)]);
    let hash = h.app_hash();
    let reopened = DomeApp::open(&h.path);
    // The store is single-writer: the first app must be gone before reopening.
    assert!(
        reopened.is_err(),
        "redb refuses a second writer while the first is open"
    );
    let path = h.path.clone();
    let dir = std::mem::replace(&mut h._dir, tempfile::tempdir().expect("tempdir"));
    drop(h);
    let app = DomeApp::open(&path).expect("reopen");
    let info = app.info(RequestInfo::default());
    assert_eq!(info.last_block_height, 2);
    assert_eq!(info.last_block_app_hash.to_vec(), hash);
    drop(dir);
}

#[test]
fn queries_answer_json_or_a_clear_error() {
    let h = Harness::new();
    let (code, members) = h.query("/members");
    assert_eq!(code, 0);
    assert_eq!(members.as_array().map(Vec::len), Some(MEMBERS as usize));
    assert_eq!(
        h.query("/nonsense").0,
        dome_events::QueryCode::UnknownPath as u32
    );
    assert_eq!(
        h.query("/events/5/1").0,
        dome_events::QueryCode::BadArgument as u32
    );
    assert_eq!(
        h.query("/events/x/1").0,
        dome_events::QueryCode::BadArgument as u32
    );
    assert_eq!(
        h.query("/events/1/5000").0,
        dome_events::QueryCode::RangeTooLarge as u32
    );
    assert_eq!(
        h.query("/member/nobody").0,
        dome_events::QueryCode::NotFound as u32
    );
    assert_eq!(h.query("/governance").0, 0);
}

fn signed_tx(e: CatalogueEvent, by: u32) -> Transaction {
    Transaction::signed_event(e, &key(by)).expect("valid")
}

fn bundle(txs: &[Transaction]) -> Vec<u8> {
    dome_events::encode_bundle(txs).expect("encodes")
}

#[test]
fn a_bundle_is_applied_in_order_and_each_event_keeps_its_own_id() {
    let mut h = Harness::new();
    let txs = vec![
        signed_tx(event(0, 1, "po-1", 1, Action::Create), 0),
        // Builds on the event before it in the same bundle.
        signed_tx(event(0, 2, "po-1", 2, Action::Update), 0),
        signed_tx(event(0, 3, "po-2", 1, Action::Create), 0),
    ];
    let bytes = bundle(&txs);
    assert_code(h.check(&bytes), TxCode::Ok);
    // The mempool now holds seqs 1-3: the next bundle must continue at 4.
    let next = bundle(&[signed_tx(event(0, 4, "po-2", 2, Action::Update), 0)]);
    assert_code(h.check(&next), TxCode::Ok);
    assert_code(h.check(&bundle(&txs[..1])), TxCode::SeqReplayed);

    h.height += 1;
    let response = h.app.finalize_block(RequestFinalizeBlock {
        txs: vec![bytes.into(), next.into()],
        height: h.height,
        hash: Bytes::from(vec![9; 32]),
        ..Default::default()
    });
    h.app.commit();
    assert_eq!(response.tx_results.len(), 2);
    assert_eq!(response.tx_results[0].code, 0);
    // One indexed catalogue event per event in the bundle.
    assert_eq!(response.tx_results[0].events.len(), 3);
    assert_eq!(response.tx_results[1].events.len(), 1);
    let (_, seq) = h.query(&format!("/origin/{}/seq", member(0)));
    assert_eq!(seq["last_seq"], 4);
    let (_, head) = h.query("/entity/productOffering/po-1");
    assert_eq!(head["version"], 2);
    let (_, events) = h.query("/events/1/1");
    let events = events.as_array().expect("list").clone();
    assert_eq!(events.len(), 4);
    for (stored, tx) in events.iter().zip(&txs) {
        let own_id = hex::encode_upper(dome_events::transaction_id(tx).expect("id"));
        assert_eq!(stored["tx_hash"], own_id.as_str());
        assert_eq!(stored["index"], 0);
    }
    assert_eq!(events[3]["index"], 1);
}

#[test]
fn a_bundle_with_one_bad_event_is_rejected_whole_and_changes_nothing() {
    let mut h = Harness::new();
    h.block(vec![signed(event(0, 1, "po-1", 1, Action::Create), 0)]);
    let good_2 = signed_tx(event(0, 2, "po-1", 2, Action::Update), 0);
    let good_3 = signed_tx(event(0, 3, "po-2", 1, Action::Create), 0);
    let forged_4 = {
        let mut tx = signed_tx(event(0, 4, "po-3", 1, Action::Create), 1);
        tx.signatures[0].signer = member(0);
        tx
    };
    let stale = signed_tx(event(0, 3, "po-1", 2, Action::Update), 0);
    let cases: Vec<(Vec<Transaction>, TxCode, &str)> = vec![
        (
            vec![good_2.clone(), good_3.clone(), forged_4],
            TxCode::BadSignature,
            "event 3 of 3",
        ),
        (
            vec![good_2.clone(), stale],
            TxCode::StaleVersion,
            "event 2 of 2",
        ),
        (
            vec![good_2.clone(), good_2.clone()],
            TxCode::SeqReplayed,
            "event 2 of 2",
        ),
        (vec![good_3.clone()], TxCode::SeqGap, "skips ahead"),
        (
            vec![signed_tx(event(1, 1, "po-1", 2, Action::Update), 1)],
            TxCode::NotEntityOrigin,
            "",
        ),
    ];
    for (txs, want, names) in &cases {
        let bytes = bundle(txs);
        let got = h.check(&bytes);
        assert!(got.1.contains(names), "{:?} should name {names}", got.1);
        assert_code(got, *want);
        // A block carrying it anyway refuses it the same way.
        let results = h.block(vec![bytes]);
        assert_code(results[0].clone(), *want);
    }
    // Nothing of the refused bundles was kept: neither in the mempool view nor in state.
    let (_, seq) = h.query(&format!("/origin/{}/seq", member(0)));
    assert_eq!(seq["last_seq"], 1);
    let (_, head) = h.query("/entity/productOffering/po-1");
    assert_eq!(head["version"], 1);
    assert!(h.query("/entity/productOffering/po-2").1.is_null());
    let ok = bundle(&[good_2, good_3]);
    assert_code(h.check(&ok), TxCode::Ok);
    assert_code(h.block(vec![ok])[0].clone(), TxCode::Ok);

    // A governance transaction cannot ride in a bundle, and garbage bundles are refused.
    let governance: serde_json::Value = serde_json::from_slice(&proposal(
        1,
        GovernanceAction::RemoveMember { member: member(3) },
        &[0, 1, 2],
    ))
    .expect("json");
    let smuggled = serde_json::json!({"v": 1, "bundle": [governance]}).to_string();
    let got = h.check(smuggled.as_bytes());
    assert!(got.1.contains("catalogue events only"), "{}", got.1);
    assert_code(got, TxCode::InvalidField);
    assert_code(h.check(br#"{"v":1,"bundle":[]}"#), TxCode::InvalidField);
    assert_code(h.check(br#"{"v":1,"bundle":[1,2]}"#), TxCode::Malformed);
    assert_code(h.check(br#"{"v":3,"bundle":[]}"#), TxCode::UnknownVersion);
    let oversize = vec![b' '; dome_events::MAX_BUNDLE_BYTES + 1];
    assert_code(h.check(&oversize), TxCode::TooLarge);
}

#[test]
fn a_byzantine_proposal_with_a_bad_bundle_is_refused() {
    let h = Harness::new();
    let forged = {
        let mut tx = signed_tx(event(1, 2, "po-8", 1, Action::Create), 2);
        tx.signatures[0].signer = member(1);
        tx
    };
    let bad = bundle(&[signed_tx(event(1, 1, "po-7", 1, Action::Create), 1), forged]);
    let response = h.app.process_proposal(RequestProcessProposal {
        txs: vec![bad.into()],
        height: h.height + 1,
        hash: Bytes::from(vec![3; 32]),
        ..Default::default()
    });
    assert_eq!(response.status, ProposalStatus::Reject as i32);
    let good = bundle(&[
        signed_tx(event(1, 1, "po-7", 1, Action::Create), 1),
        signed_tx(event(1, 2, "po-8", 1, Action::Create), 1),
    ]);
    let response = h.app.process_proposal(RequestProcessProposal {
        txs: vec![good.into()],
        height: h.height + 1,
        hash: Bytes::from(vec![4; 32]),
        ..Default::default()
    });
    assert_eq!(response.status, ProposalStatus::Accept as i32);
}
