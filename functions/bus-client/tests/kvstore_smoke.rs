//! Smoke test of the RPC plumbing against a real CometBFT v0.38 node running its built-in
//! `kvstore` app (not the dome app): error texts, idempotent resubmission, commit lookup,
//! block fetching and failover past a dead endpoint.
//!
//! Ignored by default. To run it:
//!
//! ```text
//! cometbft init --home /tmp/smoke
//! cometbft start --proxy_app=kvstore --home /tmp/smoke &
//! DOME_BUS_SMOKE_RPC=http://127.0.0.1:26657 cargo test -p dome-bus-client --test kvstore_smoke -- --ignored
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dome_bus_client::{tx_hash, BlockSource, BusClient, EventFollower, SubmitError, WaitError};
use tokio::time::Instant;

fn endpoint() -> Option<String> {
    std::env::var("DOME_BUS_SMOKE_RPC").ok()
}

#[tokio::test]
#[ignore = "needs a CometBFT node with the kvstore app; set DOME_BUS_SMOKE_RPC"]
async fn kvstore_node_round_trip() {
    let Some(live) = endpoint() else {
        eprintln!("DOME_BUS_SMOKE_RPC not set; skipping");
        return;
    };
    // A dead endpoint first: every operation must fail over to the live one.
    let client = BusClient::new(
        vec!["http://127.0.0.1:9".into(), live.clone()],
        Duration::from_secs(3),
    )
    .expect("valid config");

    let tip = client.latest_height().await.expect("status");
    assert!(tip > 0);
    assert_eq!(client.preferred_endpoint(), live);

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let bytes = format!("smoke{nanos}=1").into_bytes();
    let submitted = client.submit_bytes(bytes.clone()).await.expect("accepted");
    assert_eq!(submitted.tx_hash, tx_hash(&bytes));
    assert_eq!(submitted.endpoint, live);
    assert!(!submitted.already_known);
    let again = client
        .submit_bytes(bytes.clone())
        .await
        .expect("idempotent");
    assert!(again.already_known);
    assert_eq!(again.tx_hash, submitted.tx_hash);

    // kvstore refuses a transaction without '=' in CheckTx.
    match client
        .submit_bytes(format!("nonsense{nanos}").into_bytes())
        .await
    {
        Err(SubmitError::Rejected { code, .. }) => assert_ne!(code, 0),
        other => panic!("expected a CheckTx rejection, got {other:?}"),
    }

    let committed = client
        .wait_committed(&submitted.tx_hash, Duration::from_secs(20))
        .await
        .expect("committed");
    assert!(committed.accepted());
    assert_eq!(committed.tx_hash, submitted.tx_hash);
    assert!(committed.height >= tip);

    let missing = tx_hash(b"never submitted");
    match client
        .wait_committed(&missing, Duration::from_millis(600))
        .await
    {
        Err(WaitError::Timeout { last_failure, .. }) => assert!(last_failure.is_none()),
        other => panic!("expected a timeout, got {other:?}"),
    }

    let answer = client
        .abci_query("/store", format!("smoke{nanos}").as_bytes())
        .await
        .expect("query");
    assert_eq!(answer.code, 0);
    assert_eq!(answer.value, b"1");

    // The block of the transaction: the kvstore transaction is accepted but is not a dome
    // transaction, so it is reported as undecodable, not as an event.
    let block = client.fetch_block(committed.height).await.expect("block");
    assert_eq!(block.txs()[committed.index as usize], bytes);
    let mut follower = EventFollower::new(client.clone(), committed.height - 1);
    let batch = follower
        .next_height()
        .await
        .expect("ok")
        .expect("the block");
    assert_eq!(batch.height, committed.height);
    assert!(batch.events.is_empty());
    assert!(batch
        .undecodable
        .iter()
        .any(|u| u.index == committed.index && u.tx_hash == submitted.tx_hash));
    follower.ack(batch.height).expect("delivered");

    // Catch up, then wait for a fresh block (CometBFT makes empty blocks).
    let mut heights = vec![batch.height];
    while let Some(batch) = follower.next_height().await.expect("ok") {
        heights.push(batch.height);
        follower.ack(batch.height).expect("delivered");
    }
    let caught_up = follower.checkpoint();
    let next = follower
        .wait_next(
            Duration::from_millis(100),
            Instant::now() + Duration::from_secs(10),
        )
        .await
        .expect("ok")
        .expect("a new block within 10 s");
    assert_eq!(next.height, caught_up + 1);
    heights.push(next.height);
    follower.ack(next.height).expect("delivered");

    // Poll in a tight loop for a while: blocks appear in the store before their results,
    // and that window must read as "caught up", never as an error or a skipped height.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let Some(batch) = follower.next_height().await.expect("no error at the tip") {
            heights.push(batch.height);
            follower.ack(batch.height).expect("delivered");
        }
    }
    assert!(heights.len() > 4, "{heights:?}");
    assert!(heights.windows(2).all(|w| w[1] == w[0] + 1), "{heights:?}");
}
