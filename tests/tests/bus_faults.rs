//! Faults on a real 4-validator network: a validator down and back, an ABCI app killed
//! mid-run and restarted. The survivors keep committing; the restarted ones catch up and
//! agree on the app hash.

mod common;

use std::time::Duration;

use common::{app_hashes_after, assert_all_equal, client, publish_all, start_net, Origin};
use dome_events::test_keys;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_down_then_an_app_crash_and_all_agree_again() -> anyhow::Result<()> {
    let mut tn = start_net(4, Duration::from_millis(200))?;
    let urls = tn.net.rpc_urls();
    let mut origin = Origin::new(0);

    let batch: Vec<_> = (0..10)
        .map(|i| origin.publish(&format!("po-{i}")))
        .collect();
    publish_all(&client(urls.clone())?, &batch).await?;

    // Validator 3 goes down: the other three (more than 2/3 of the power) keep committing.
    tn.net.stop_validator(3)?;
    let before = tn.net.height(0)?;
    // The stopped validator is listed first: the client must fail over.
    let failover = client(vec![urls[3].clone(), urls[1].clone(), urls[2].clone()])?;
    let batch: Vec<_> = (0..10)
        .map(|i| origin.publish(&format!("po-{i}")))
        .collect();
    let committed_at = publish_all(&failover, &batch).await?;
    assert!(committed_at > before, "no progress without validator 3");
    tn.net
        .wait_for_height(1, committed_at + 2, Duration::from_secs(30))?;

    // It comes back, catches up and agrees.
    tn.net.start_validator(3)?;
    let hashes = app_hashes_after(&tn.net, &[0, 1, 2, 3], committed_at)?;
    assert_all_equal(&hashes, "app hashes after validator 3 rejoined");

    // Validator 2's app is killed while events are being published; its node stops with it.
    let publisher = {
        let urls = vec![urls[0].clone(), urls[1].clone()];
        let batch: Vec<_> = (0..30)
            .map(|i| origin.publish(&format!("po-late-{i}")))
            .collect();
        tokio::spawn(async move { publish_all(&client(urls)?, &batch).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    tn.net.kill_app(2)?;
    let last = publisher.await??;
    // CometBFT exits once its app connection breaks; make sure it is gone before restarting.
    tn.net.stop_node(2)?;
    tn.net.start_validator(2)?;
    let hashes = app_hashes_after(&tn.net, &[0, 1, 2, 3], last)?;
    assert_all_equal(&hashes, "app hashes after app 2 was killed and restarted");
    let restarted = client(vec![urls[2].clone()])?;
    assert_eq!(
        restarted.origin_last_seq(&test_keys::member_id(0)).await?,
        origin.seq
    );
    let events = restarted.events_in_range(1, last).await?;
    assert_eq!(events.len() as u64, origin.seq);
    Ok(())
}
