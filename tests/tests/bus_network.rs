//! A real 4-validator CometBFT v0.38.25 network, each validator with its own dome-abci:
//! agreement, rejections over RPC, governance, and following the accepted events.

mod common;

use std::time::{Duration, Instant};

use common::{app_hashes_after, assert_all_equal, client, publish_all, start_net, Origin};
use dome_bus_client::{EventFollower, FollowFilter, SubmitError};
use dome_events::{
    test_keys, Action, ContentHash, GovernanceAction, GovernanceProposal, MemberId, MemberKeypair,
    Transaction, TxCode,
};

fn proposal(nonce: u64, action: GovernanceAction, approvers: &[u32]) -> Transaction {
    let keys: Vec<MemberKeypair> = approvers
        .iter()
        .map(|i| test_keys::member_keypair(*i))
        .collect();
    let pairs: Vec<(MemberId, &MemberKeypair)> = approvers
        .iter()
        .zip(keys.iter())
        .map(|(i, k)| (test_keys::member_id(*i), k))
        .collect();
    let proposal = GovernanceProposal {
        nonce,
        action,
        issued_at: "2026-11-29T12:00:00Z".into(),
    };
    match Transaction::approved_proposal(proposal, &pairs) {
        Ok(tx) => tx,
        Err(e) => panic!("test proposal is invalid: {e}"),
    }
}

fn expect_rejected(
    result: Result<dome_bus_client::Submitted, SubmitError>,
    want: TxCode,
    what: &str,
) {
    match result {
        Err(SubmitError::Rejected { code, log, .. }) => {
            assert_eq!(
                code,
                want.as_u32(),
                "{what}: expected {want:?}, got code {code} ({log})"
            );
            assert!(!log.is_empty(), "{what}: a rejection must say why");
        }
        other => panic!("{what}: expected rejection {want:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_refuse_bad_input_and_govern() -> anyhow::Result<()> {
    let tn = start_net(4, Duration::from_millis(200))?;
    let net = &tn.net;
    let urls = net.rpc_urls();

    // Three origins publish through different validators.
    let mut origins: Vec<Origin> = (0..3).map(Origin::new).collect();
    let mut last_height = 0;
    for (n, origin) in origins.iter_mut().enumerate() {
        let through = client(vec![urls[n % urls.len()].clone()])?;
        let mut txs = Vec::new();
        for i in 0..5 {
            txs.push(origin.publish(&format!("po-{}-{i}", origin.index)));
        }
        txs.push(origin.publish(&format!("po-{}-0", origin.index)));
        let delete = origin.next_event(&format!("po-{}-1", origin.index), Some(Action::Delete));
        txs.push(origin.sign_and_advance(delete));
        last_height = last_height.max(publish_all(&through, &txs).await?);
    }
    let accepted_events = 3 * 7;

    // Every validator reaches the same app hash and answers the same state.
    let hashes = app_hashes_after(net, &[0, 1, 2, 3], last_height)?;
    assert_all_equal(&hashes, "app hashes");
    for url in &urls {
        let node = client(vec![url.clone()])?;
        assert_eq!(node.origin_last_seq(&test_keys::member_id(1)).await?, 7);
        let head = node.entity_head("productOffering", "po-2-1").await?;
        assert_eq!(head["deleted"], true);
        assert_eq!(head["version"], 2);
    }

    // Bad input over RPC: each refused with its own code, nothing stored.
    let bus = client(urls.clone())?;
    let a = &origins[0];
    let forged = {
        let event = a.next_event("po-forged", None);
        let mut tx = Transaction::signed_event(event, &test_keys::member_keypair(3))?;
        tx.signatures[0].signer = test_keys::member_id(0);
        tx
    };
    expect_rejected(
        bus.submit(&forged).await,
        TxCode::BadSignature,
        "forged signature",
    );
    let replay = {
        let mut event = a.next_event("po-replay", None);
        event.origin_seq = 3;
        a.sign(event)
    };
    expect_rejected(
        bus.submit(&replay).await,
        TxCode::SeqReplayed,
        "replayed origin_seq",
    );
    let skip = {
        let mut event = a.next_event("po-skip", None);
        event.origin_seq += 1;
        a.sign(event)
    };
    expect_rejected(
        bus.submit(&skip).await,
        TxCode::SeqGap,
        "skipped origin_seq",
    );
    let outsider = {
        let mut event = a.next_event("po-out", None);
        event.origin = MemberId::new("outsider")?;
        Transaction::signed_event(event, &MemberKeypair::from_seed([3; 32]))?
    };
    expect_rejected(
        bus.submit(&outsider).await,
        TxCode::UnknownMember,
        "non-member",
    );
    let foreign = {
        // Member 3 tries to change member 0's entity.
        let b = Origin::new(3);
        let mut event = b.next_event("po-0-2", Some(Action::Update));
        event.entity.version = 2;
        event.previous_hash = Some(ContentHash::of_bytes(b"po-0-2@1"));
        b.sign(event)
    };
    expect_rejected(
        bus.submit(&foreign).await,
        TxCode::NotEntityOrigin,
        "other origin's entity",
    );
    let stale = {
        let mut event = a.next_event("po-0-0", None);
        event.entity.version = 2;
        event.previous_hash = Some(ContentHash::of_bytes(b"po-0-0@1"));
        a.sign(event)
    };
    expect_rejected(
        bus.submit(&stale).await,
        TxCode::StaleVersion,
        "stale version",
    );
    let gap = {
        let mut event = a.next_event("po-0-0", None);
        event.entity.version = 5;
        a.sign(event)
    };
    expect_rejected(
        bus.submit(&gap).await,
        TxCode::VersionGap,
        "skipped version",
    );
    let wrong_previous = {
        let mut event = a.next_event("po-0-2", None);
        event.previous_hash = Some(ContentHash::of_bytes(b"something else"));
        a.sign(event)
    };
    expect_rejected(
        bus.submit(&wrong_previous).await,
        TxCode::PreviousHashMismatch,
        "wrong previous_hash",
    );
    let oversize = vec![b'x'; dome_events::MAX_TX_BYTES + 10];
    expect_rejected(
        bus.submit_bytes(oversize).await,
        TxCode::TooLarge,
        "oversize",
    );
    let garbage: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    expect_rejected(
        bus.submit_bytes(garbage).await,
        TxCode::Malformed,
        "garbage bytes",
    );

    assert_eq!(
        bus.origin_last_seq(&test_keys::member_id(0)).await?,
        origins[0].seq
    );
    for id in ["po-forged", "po-out", "po-skip"] {
        assert!(
            bus.entity_head("productOffering", id).await.is_err(),
            "{id} was stored"
        );
    }

    // Governance: 2 of 4 approvals is refused, 3 of 4 adds the member, who can then publish.
    let newcomer = test_keys::member_info(4);
    let too_few = proposal(1, GovernanceAction::AddMember(newcomer.clone()), &[0, 1]);
    expect_rejected(
        bus.submit(&too_few).await,
        TxCode::InsufficientApprovals,
        "2 of 4 approvals",
    );
    let before = Origin::new(4).publish("po-newcomer");
    expect_rejected(
        bus.submit(&before).await,
        TxCode::UnknownMember,
        "newcomer before admission",
    );
    let enough = proposal(1, GovernanceAction::AddMember(newcomer), &[0, 1, 3]);
    let committed = bus
        .submit_and_wait(&enough, Duration::from_secs(30))
        .await?;
    assert!(committed.accepted(), "add member: {}", committed.log);
    let mut newcomer_origin = Origin::new(4);
    let first = newcomer_origin.publish("po-newcomer");
    publish_all(&bus, &[first]).await?;
    assert_eq!(bus.members().await?.len(), 5);

    // A bundle with one forged event is refused whole, naming the event; nothing is stored.
    let c = &mut origins[2];
    let seq_before = c.seq;
    let mut bad = Vec::new();
    let mut scratch = Origin::new(2);
    scratch.seq = c.seq;
    for i in 0..2 {
        bad.push(scratch.publish(&format!("po-bad-{i}")));
    }
    let mut forged = Transaction::signed_event(
        scratch.next_event("po-bad-2", None),
        &test_keys::member_keypair(0),
    )?;
    forged.signatures[0].signer = test_keys::member_id(2);
    bad.push(forged);
    match bus.submit_bundle(&bad).await {
        Err(SubmitError::Rejected { code, log, .. }) => {
            assert_eq!(code, TxCode::BadSignature.as_u32(), "{log}");
            assert!(log.contains("event 3 of 3"), "{log}");
        }
        other => panic!("forged bundle: expected a rejection, got {other:?}"),
    }
    assert_eq!(
        bus.origin_last_seq(&test_keys::member_id(2)).await?,
        seq_before
    );
    assert!(bus
        .entity_head("productOffering", "po-bad-0")
        .await
        .is_err());

    // A bundle: three events of one origin in one transaction, accepted together, the
    // second building on the first.
    let bundled = vec![
        c.publish("po-bundle-0"),
        c.publish("po-bundle-0"),
        c.publish("po-bundle-1"),
    ];
    let submitted = bus.submit_bundle(&bundled).await?;
    let committed = bus
        .wait_committed(&submitted.tx_hash, Duration::from_secs(30))
        .await?;
    assert!(committed.accepted(), "bundle: {}", committed.log);
    let h = committed.height;
    let hashes = app_hashes_after(net, &[0, 1, 2, 3], h)?;
    assert_all_equal(&hashes, "app hashes after the bundle");
    assert_eq!(
        bus.entity_head("productOffering", "po-bundle-0").await?["version"],
        2
    );
    let bundled_ids: Vec<String> = bundled
        .iter()
        .map(|tx| dome_events::transaction_id(tx).map(hex::encode_upper))
        .collect::<Result<_, _>>()?;

    // The follower sees every accepted catalogue event exactly once, in commit order...
    let mut follower = EventFollower::new(bus.clone(), 0);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while follower.checkpoint() < h {
        assert!(
            Instant::now() < deadline,
            "follower stuck at {}",
            follower.checkpoint()
        );
        if let Some(batch) = follower.next_height().await? {
            for e in &batch.events {
                // Each event of the bundle comes with its own transaction id.
                if e.height == h && e.index == committed.index {
                    assert!(bundled_ids.contains(&e.tx_hash), "{}", e.tx_hash);
                    assert!(bundled.contains(&e.tx));
                }
                seen.push((
                    e.height,
                    e.index,
                    e.event.origin.clone(),
                    e.event.origin_seq,
                ));
            }
            follower.ack(batch.height)?;
        }
    }
    assert_eq!(seen.len(), accepted_events + 1 + bundled.len());
    // Commit order: by height, position in the block, then (inside a bundle) origin_seq.
    assert!(
        seen.windows(2)
            .all(|w| (w[0].0, w[0].1, w[0].3) < (w[1].0, w[1].1, w[1].3)),
        "out of order"
    );
    // ...and a follower resumed from a checkpoint sees exactly the tail.
    let mid = seen[seen.len() / 2].0;
    let mut resumed = EventFollower::new(client(urls.iter().rev().cloned().collect())?, mid)
        .with_filter(FollowFilter::default());
    let mut tail = Vec::new();
    while resumed.checkpoint() < h {
        if let Some(batch) = resumed.next_height().await? {
            tail.extend(batch.events.iter().map(|e| {
                (
                    e.height,
                    e.index,
                    e.event.origin.clone(),
                    e.event.origin_seq,
                )
            }));
            resumed.ack(batch.height)?;
        }
    }
    let expected_tail: Vec<_> = seen.iter().filter(|e| e.0 > mid).cloned().collect();
    assert_eq!(tail, expected_tail);

    // The app's own record of accepted events agrees with the chain.
    let recorded = bus.events_in_range(1, h).await?;
    assert_eq!(recorded.len(), seen.len());
    let recorded_bundle: Vec<String> = recorded
        .iter()
        .filter(|e| e["height"] == h)
        .filter_map(|e| e["tx_hash"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(recorded_bundle, bundled_ids);

    // Indexed events: tx_search finds the newcomer's event by its attributes.
    let found = net.rpc_get(
        0,
        "/tx_search?query=%22catalogue.origin%3D%27member-e%27%22",
    )?;
    assert_eq!(found["total_count"], "1", "tx_search answer: {found}");
    Ok(())
}
