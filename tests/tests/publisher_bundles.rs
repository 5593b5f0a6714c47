//! The publisher on a real 4-validator bus: a backlog goes out in bundles, and a bundle the
//! bus refuses is sent again row by row so that the refusal names the one row at fault.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, publish_all, start_net, Origin};
use dome_catalog_store::{CatalogStore, ChangeKind, EmbeddedStore, EntityVersion};
use dome_events::{test_keys, TxCode};
use dome_replication::publisher::{PublishError, PublishState, Publisher, PublisherConfig};
use serde_json::json;

fn offering(id: &str) -> EntityVersion {
    EntityVersion {
        resource: "productOffering".into(),
        id: id.into(),
        version: 1,
        body: json!({
            "id": id,
            "href": format!("http://127.0.0.1:18080/tmf-api/productCatalogManagement/v4/productOffering/{id}"),
            "name": id,
        }),
        last_update: "2026-11-30T10:00:00Z".into(),
        deleted: false,
        provenance: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_goes_out_in_bundles_and_a_refused_row_is_isolated() -> anyhow::Result<()> {
    let tn = start_net(4, Duration::from_millis(200))?;
    let bus = client(tn.net.rpc_urls())?;
    let me = test_keys::member_id(0);
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(dir.path().join("catalog.redb"))?);
    for i in 0..20 {
        store
            .create(offering(&format!("po-{i}")), ChangeKind::Create)
            .await?;
    }
    let mut config = PublisherConfig::new(me.clone());
    config.bundle = 8;
    let publisher = Publisher::new(
        store.clone(),
        bus.clone(),
        Arc::new(test_keys::member_keypair(0)),
        config,
    );
    let state = publisher
        .run(Some(Instant::now() + Duration::from_secs(60)), true)
        .await?;
    assert_eq!(state.checkpoint, 20);
    assert_eq!(bus.origin_last_seq(&me).await?, 20);
    // Twenty events in three bus transactions: 8 + 8 + 4.
    let tip = bus.latest_height().await?;
    let events = bus.events_in_range(1, tip).await?;
    assert_eq!(events.len(), 20);
    let transactions: BTreeSet<(u64, u64)> = events
        .iter()
        .filter_map(|e| Some((e["height"].as_u64()?, e["index"].as_u64()?)))
        .collect();
    assert_eq!(transactions.len(), 3, "{events:?}");
    let own_ids: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["tx_hash"].as_str())
        .collect();
    assert_eq!(own_ids.len(), 20, "each event keeps its own id");

    // Another member already created po-taken: this member's row 23 (a create of the same
    // id) is refused. The bundle of rows 21-24 is refused whole, then sent row by row: 21
    // and 22 go in, 23 is reported, 24 waits behind it.
    let mut other = Origin::new(1);
    publish_all(&bus, &[other.publish("po-taken")]).await?;
    for id in ["po-20", "po-21", "po-taken", "po-23"] {
        store.create(offering(id), ChangeKind::Create).await?;
    }
    let mut state = PublishState::default();
    match publisher.step(&mut state).await {
        Err(PublishError::Refused { seq, code, log }) => {
            assert_eq!(seq, 23, "{log}");
            assert_eq!(code, TxCode::EntityExists.as_u32(), "{log}");
        }
        other => panic!("expected row 23 to be refused, got {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while bus.origin_last_seq(&me).await? < 22 {
        assert!(
            Instant::now() < deadline,
            "rows 21 and 22 were not committed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(bus.origin_last_seq(&me).await?, 22);
    assert!(bus.entity_head("productOffering", "po-23").await.is_err());
    assert_eq!(
        bus.entity_head("productOffering", "po-taken").await?["origin"],
        test_keys::member_id(1).as_str()
    );
    Ok(())
}
