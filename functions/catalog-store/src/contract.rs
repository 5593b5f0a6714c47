//! The contract every [`CatalogStore`] adapter passes: the semantics the trait documents,
//! checked against a real store.
//!
//! Each case is a public async fn that panics on a violation, so an adapter's tests can run
//! them one by one (one test per case, clearer failures) or all at once with [`run_all`].
//! Cases use their own resource names and measure the outbox relative to where it stood when
//! they began, so they can share one store and run in any order; they do not tolerate other
//! writers on the same store while they run (they count outbox entries).

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::json;

use crate::{
    CatalogStore, ChangeKind, EntityVersion, OutboxEntry, StoreError, Subscription,
    MAX_VERSION_BYTES,
};

/// Runs every case in turn on `store`, which should start empty.
pub async fn run_all(store: &dyn CatalogStore) {
    create_then_read(store).await;
    duplicate_create_conflicts(store).await;
    append_versions(store).await;
    stale_append_conflicts(store).await;
    append_to_unknown_conflicts(store).await;
    tombstone_is_final(store).await;
    versions_stay_readable(store).await;
    list_heads_pages(store).await;
    list_heads_rejects_foreign_cursor(store).await;
    outbox_in_order(store).await;
    subscriptions(store).await;
    concurrent_appends_one_wins(store).await;
    concurrent_creates_same_id_one_wins(store).await;
    concurrent_creates_all_succeed(store).await;
    bad_requests_refused(store).await;
    oversized_version_refused(store).await;
}

/// A version with a recognisable body: `tag` tells writers of the same version apart.
pub fn sample(resource: &str, id: &str, version: u64, tag: &str) -> EntityVersion {
    EntityVersion {
        resource: resource.to_owned(),
        id: id.to_owned(),
        version,
        body: json!({
            "id": id,
            "href": format!("/productCatalogManagement/v4/{resource}/{id}"),
            "name": tag,
            "version": version.to_string(),
            "price": 12.5,
        }),
        last_update: format!("2025-01-01T00:00:{:02}Z", version % 60),
        deleted: false,
        provenance: None,
    }
}

/// The tombstone that deletes an entity whose last version is `before`.
pub fn tombstone(before: &EntityVersion) -> EntityVersion {
    EntityVersion {
        version: before.version + 1,
        deleted: true,
        ..before.clone()
    }
}

/// Unwraps a store result, naming the step that failed.
fn ok<T>(result: Result<T, StoreError>, step: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{step}: unexpected error {e:?}"),
    }
}

fn expect_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, step: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{step}: expected Conflict, got {other:?}"),
    }
}

fn expect_bad_request<T: std::fmt::Debug>(result: Result<T, StoreError>, step: &str) {
    match result {
        Err(StoreError::BadRequest(_)) => {}
        other => panic!("{step}: expected BadRequest, got {other:?}"),
    }
}

/// The whole outbox, read in small pages.
async fn whole_outbox(store: &dyn CatalogStore) -> Vec<OutboxEntry> {
    let mut all: Vec<OutboxEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let page = ok(store.outbox_after(after, 50).await, "read outbox");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

async fn last_seq(store: &dyn CatalogStore) -> u64 {
    whole_outbox(store).await.last().map_or(0, |e| e.seq)
}

/// Every live head of `resource`, read `limit` at a time; checks that only the last page
/// has no cursor.
async fn list_all(store: &dyn CatalogStore, resource: &str, limit: usize) -> Vec<EntityVersion> {
    let mut items = Vec::new();
    let mut cursor = None;
    // More pages than items would mean the cursor does not advance.
    for _ in 0..1000 {
        let page = ok(
            store.list_heads(resource, cursor.take(), limit).await,
            "list heads",
        );
        assert!(
            page.items.len() <= limit,
            "page of {} items over limit {limit}",
            page.items.len()
        );
        items.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return items,
        }
    }
    panic!("listing {resource} with limit {limit} did not end");
}

/// Creates then reads back: head and version 1 are what was written.
pub async fn create_then_read(store: &dyn CatalogStore) {
    let before = last_seq(store).await;
    let first = sample("contractRead", "e1", 1, "first");
    let seq = ok(
        store.create(first.clone(), ChangeKind::Create).await,
        "create",
    );
    assert_eq!(seq, before + 1, "seq of the first change");
    let head = ok(store.head("contractRead", "e1").await, "head");
    assert_eq!(head.as_ref(), Some(&first));
    let v1 = ok(store.version("contractRead", "e1", 1).await, "version 1");
    assert_eq!(v1.as_ref(), Some(&first));
    assert_eq!(
        ok(store.version("contractRead", "e1", 2).await, "version 2"),
        None
    );
    assert_eq!(
        ok(store.version("contractRead", "e1", 0).await, "version 0"),
        None
    );
    assert_eq!(ok(store.head("contractRead", "nope").await, "head"), None);
    assert_eq!(
        ok(store.head("contractOther", "e1").await, "head"),
        None,
        "ids are per resource"
    );
    let outbox = ok(store.outbox_after(before, 10).await, "outbox");
    assert_eq!(
        outbox,
        vec![OutboxEntry {
            seq,
            resource: "contractRead".into(),
            id: "e1".into(),
            version: 1,
            change: ChangeKind::Create,
        }]
    );
}

/// A second create of the same id is refused and changes nothing.
pub async fn duplicate_create_conflicts(store: &dyn CatalogStore) {
    let first = sample("contractDup", "d1", 1, "original");
    ok(
        store.create(first.clone(), ChangeKind::Create).await,
        "create",
    );
    let outbox = whole_outbox(store).await;
    expect_conflict(
        store
            .create(
                sample("contractDup", "d1", 1, "impostor"),
                ChangeKind::Create,
            )
            .await,
        "second create",
    );
    assert_eq!(
        ok(store.head("contractDup", "d1").await, "head"),
        Some(first)
    );
    assert_eq!(
        whole_outbox(store).await,
        outbox,
        "outbox after a refused create"
    );
}

/// Appends versions 2 and 3; the head follows and each change is in the outbox.
pub async fn append_versions(store: &dyn CatalogStore) {
    let before = last_seq(store).await;
    let v1 = sample("contractAppend", "a1", 1, "one");
    let v2 = sample("contractAppend", "a1", 2, "two");
    let v3 = sample("contractAppend", "a1", 3, "three");
    let s1 = ok(store.create(v1, ChangeKind::Create).await, "create");
    let s2 = ok(store.append(v2.clone(), ChangeKind::Update).await, "v2");
    assert_eq!(
        ok(store.head("contractAppend", "a1").await, "head"),
        Some(v2)
    );
    let s3 = ok(
        store.append(v3.clone(), ChangeKind::StateChange).await,
        "v3",
    );
    assert_eq!(
        ok(store.head("contractAppend", "a1").await, "head"),
        Some(v3.clone())
    );
    assert_eq!((s1, s2, s3), (before + 1, before + 2, before + 3));
    let changes: Vec<(u64, u64, ChangeKind)> = ok(store.outbox_after(before, 10).await, "outbox")
        .into_iter()
        .map(|e| (e.seq, e.version, e.change))
        .collect();
    assert_eq!(
        changes,
        vec![
            (s1, 1, ChangeKind::Create),
            (s2, 2, ChangeKind::Update),
            (s3, 3, ChangeKind::StateChange),
        ]
    );
    let page = ok(store.list_heads("contractAppend", None, 10).await, "list");
    assert_eq!(page.items, vec![v3], "the listing shows the head");
}

/// An append based on an old head, or skipping a version, is refused and writes nothing.
pub async fn stale_append_conflicts(store: &dyn CatalogStore) {
    let v1 = sample("contractStale", "s1", 1, "one");
    let v2 = sample("contractStale", "s1", 2, "two");
    ok(store.create(v1.clone(), ChangeKind::Create).await, "create");
    ok(store.append(v2.clone(), ChangeKind::Update).await, "v2");
    let outbox = whole_outbox(store).await;
    expect_conflict(
        store
            .append(sample("contractStale", "s1", 2, "late"), ChangeKind::Update)
            .await,
        "stale v2",
    );
    expect_conflict(
        store
            .append(sample("contractStale", "s1", 4, "gap"), ChangeKind::Update)
            .await,
        "v4 over v2",
    );
    assert_eq!(
        ok(store.head("contractStale", "s1").await, "head"),
        Some(v2.clone())
    );
    assert_eq!(
        ok(store.version("contractStale", "s1", 2).await, "v2"),
        Some(v2)
    );
    assert_eq!(
        ok(store.version("contractStale", "s1", 1).await, "v1"),
        Some(v1)
    );
    assert_eq!(
        ok(store.version("contractStale", "s1", 4).await, "v4"),
        None
    );
    assert_eq!(
        whole_outbox(store).await,
        outbox,
        "outbox after refused appends"
    );
}

/// Appending to an id that was never created is a conflict, not an implicit create.
pub async fn append_to_unknown_conflicts(store: &dyn CatalogStore) {
    let outbox = whole_outbox(store).await;
    expect_conflict(
        store
            .append(
                sample("contractUnknown", "ghost", 2, "x"),
                ChangeKind::Update,
            )
            .await,
        "append to unknown",
    );
    assert_eq!(
        ok(store.head("contractUnknown", "ghost").await, "head"),
        None
    );
    assert_eq!(
        ok(store.version("contractUnknown", "ghost", 2).await, "v2"),
        None
    );
    assert_eq!(whole_outbox(store).await, outbox);
}

/// A delete writes a tombstone head; earlier versions stay readable; nothing follows it.
pub async fn tombstone_is_final(store: &dyn CatalogStore) {
    let before = last_seq(store).await;
    let v1 = sample("contractDelete", "t1", 1, "alive");
    let keep = sample("contractDelete", "t2", 1, "kept");
    ok(
        store.create(v1.clone(), ChangeKind::Create).await,
        "create t1",
    );
    ok(
        store.create(keep.clone(), ChangeKind::Create).await,
        "create t2",
    );
    let gone = tombstone(&v1);
    let seq = ok(
        store.append(gone.clone(), ChangeKind::Delete).await,
        "delete",
    );
    let head = ok(store.head("contractDelete", "t1").await, "head");
    assert_eq!(head.as_ref(), Some(&gone));
    assert!(head.is_some_and(|h| h.deleted), "head is a tombstone");
    assert_eq!(
        ok(store.version("contractDelete", "t1", 1).await, "v1"),
        Some(v1)
    );
    let listed = list_all(store, "contractDelete", 10).await;
    assert_eq!(
        listed,
        vec![keep],
        "the listing leaves deleted entities out"
    );
    let entry = ok(store.outbox_after(seq - 1, 1).await, "outbox");
    assert_eq!(
        entry.first().map(|e| (e.seq, e.version, e.change)),
        Some((seq, 2, ChangeKind::Delete))
    );
    assert_eq!(seq, before + 3);

    let outbox = whole_outbox(store).await;
    expect_conflict(
        store
            .append(
                sample("contractDelete", "t1", 3, "undead"),
                ChangeKind::Update,
            )
            .await,
        "append after delete",
    );
    expect_conflict(
        store
            .create(
                sample("contractDelete", "t1", 1, "reborn"),
                ChangeKind::Create,
            )
            .await,
        "create after delete",
    );
    assert_eq!(
        ok(store.head("contractDelete", "t1").await, "head"),
        Some(gone)
    );
    assert_eq!(whole_outbox(store).await, outbox);
}

/// Every version stays readable, unchanged, after later ones are written.
pub async fn versions_stay_readable(store: &dyn CatalogStore) {
    let versions: Vec<EntityVersion> = (1..=5)
        .map(|v| sample("contractHistory", "h1", v, &format!("rev-{v}")))
        .collect();
    for v in &versions {
        let change = if v.version == 1 {
            ChangeKind::Create
        } else {
            ChangeKind::Update
        };
        let result = if v.version == 1 {
            store.create(v.clone(), change).await
        } else {
            store.append(v.clone(), change).await
        };
        ok(result, "write version");
    }
    for v in &versions {
        assert_eq!(
            ok(
                store.version("contractHistory", "h1", v.version).await,
                "read"
            ),
            Some(v.clone()),
            "version {}",
            v.version
        );
    }
    assert_eq!(
        ok(store.head("contractHistory", "h1").await, "head"),
        versions.last().cloned()
    );
}

/// Listing: sorted by id, deleted ones left out, other resources never mixed in, and paging
/// with any limit visits every item exactly once.
pub async fn list_heads_pages(store: &dyn CatalogStore) {
    let resource = "contractList";
    // Created out of order, with ids that sort differently as numbers and as bytes.
    let ids = ["m", "b", "z9", "a", "z10", "c-1", "c", "q", "e"];
    for id in ids {
        ok(
            store
                .create(sample(resource, id, 1, "v1"), ChangeKind::Create)
                .await,
            "create",
        );
    }
    // Neighbouring resources whose names share a prefix with this one.
    for (other, id) in [
        ("contractLis", "zz"),
        ("contractListX", "0"),
        ("contractLisu", "a"),
    ] {
        ok(
            store
                .create(sample(other, id, 1, "other"), ChangeKind::Create)
                .await,
            "create other",
        );
    }
    let q2 = sample(resource, "q", 2, "v2");
    ok(
        store.append(q2.clone(), ChangeKind::Update).await,
        "update q",
    );
    let c1 = sample(resource, "c", 1, "v1");
    ok(
        store.append(tombstone(&c1), ChangeKind::Delete).await,
        "delete c",
    );

    let mut expected: Vec<EntityVersion> = ids
        .iter()
        .filter(|id| **id != "c")
        .map(|id| {
            if *id == "q" {
                q2.clone()
            } else {
                sample(resource, id, 1, "v1")
            }
        })
        .collect();
    expected.sort_by(|a, b| a.id.cmp(&b.id));

    for limit in [1, 2, 3, 7, 8, 9, 100] {
        let listed = list_all(store, resource, limit).await;
        assert_eq!(listed, expected, "listing with limit {limit}");
    }
    let first = ok(store.list_heads(resource, None, 8).await, "one full page");
    assert_eq!(first.items.len(), 8);
    assert!(
        first.next.is_none(),
        "no cursor when the page holds the rest"
    );

    let empty = ok(store.list_heads("contractNothing", None, 5).await, "empty");
    assert!(empty.items.is_empty() && empty.next.is_none());
    let other = list_all(store, "contractListX", 1).await;
    assert_eq!(other.len(), 1, "resource types are isolated");
}

/// Cursors are opaque and bound to their resource.
pub async fn list_heads_rejects_foreign_cursor(store: &dyn CatalogStore) {
    for id in ["a", "b", "c"] {
        ok(
            store
                .create(sample("contractCursor", id, 1, "v"), ChangeKind::Create)
                .await,
            "create",
        );
    }
    let page = ok(store.list_heads("contractCursor", None, 1).await, "page");
    let Some(cursor) = page.next else {
        panic!("a page of 1 of 3 items must have a cursor");
    };
    expect_bad_request(
        store
            .list_heads("contractCursorOther", Some(cursor), 1)
            .await,
        "cursor of another resource",
    );
    expect_bad_request(
        store
            .list_heads("contractCursor", Some("not a cursor!".into()), 1)
            .await,
        "garbage cursor",
    );
}

/// The outbox lists changes in the order the store accepted them, without gaps, and pages.
pub async fn outbox_in_order(store: &dyn CatalogStore) {
    let before = last_seq(store).await;
    let mut written = Vec::new();
    for i in 0..5u64 {
        let id = format!("o{i}");
        let v1 = sample("contractOutbox", &id, 1, "v1");
        let seq = ok(store.create(v1.clone(), ChangeKind::Create).await, "create");
        written.push(OutboxEntry {
            seq,
            resource: "contractOutbox".into(),
            id: id.clone(),
            version: 1,
            change: ChangeKind::Create,
        });
        if i % 2 == 0 {
            let seq = ok(
                store
                    .append(sample("contractOutbox", &id, 2, "v2"), ChangeKind::Update)
                    .await,
                "update",
            );
            written.push(OutboxEntry {
                seq,
                resource: "contractOutbox".into(),
                id,
                version: 2,
                change: ChangeKind::Update,
            });
        }
    }
    let seqs: Vec<u64> = written.iter().map(|e| e.seq).collect();
    let expected_seqs: Vec<u64> = (before + 1..=before + written.len() as u64).collect();
    assert_eq!(seqs, expected_seqs, "seqs are consecutive");

    let all = ok(store.outbox_after(before, 100).await, "outbox");
    assert_eq!(all, written);
    for limit in [1, 2, 3] {
        let mut paged = Vec::new();
        let mut after = before;
        loop {
            let page = ok(store.outbox_after(after, limit).await, "outbox page");
            assert!(page.len() <= limit);
            let Some(last) = page.last() else { break };
            after = last.seq;
            paged.extend(page);
        }
        assert_eq!(paged, written, "outbox paged by {limit}");
    }
    let middle = ok(store.outbox_after(before + 2, 2).await, "middle");
    assert_eq!(middle.as_slice(), &written[2..4]);
    let end = written.last().map_or(before, |e| e.seq);
    assert!(ok(store.outbox_after(end, 10).await, "past the end").is_empty());
    assert!(ok(store.outbox_after(u64::MAX, 10).await, "far past the end").is_empty());
}

/// Hub subscriptions: put (insert or replace), list, delete.
pub async fn subscriptions(store: &dyn CatalogStore) {
    let mine = |all: Vec<Subscription>| -> Vec<Subscription> {
        all.into_iter()
            .filter(|s| s.id.starts_with("contract-sub-"))
            .collect()
    };
    let a = Subscription {
        id: "contract-sub-a".into(),
        callback: "http://127.0.0.1:9/a".into(),
        query: Some("eventType=ProductOfferingCreateEvent".into()),
    };
    let b = Subscription {
        id: "contract-sub-b".into(),
        callback: "http://127.0.0.1:9/b".into(),
        query: None,
    };
    ok(store.put_subscription(b.clone()).await, "put b");
    ok(store.put_subscription(a.clone()).await, "put a");
    assert_eq!(
        mine(ok(store.subscriptions().await, "list")),
        vec![a.clone(), b.clone()],
        "ordered by id"
    );
    let a2 = Subscription {
        callback: "http://127.0.0.1:9/a2".into(),
        query: Some(String::new()),
        ..a
    };
    ok(store.put_subscription(a2.clone()).await, "replace a");
    assert_eq!(
        mine(ok(store.subscriptions().await, "list")),
        vec![a2, b.clone()]
    );
    assert!(ok(
        store.delete_subscription("contract-sub-a").await,
        "delete a"
    ));
    assert!(!ok(
        store.delete_subscription("contract-sub-a").await,
        "delete a again"
    ));
    assert!(!ok(
        store.delete_subscription("contract-sub-none").await,
        "delete unknown"
    ));
    assert_eq!(mine(ok(store.subscriptions().await, "list")), vec![b]);
}

/// Two writers append the same next version at once: one wins, the other gets `Conflict`,
/// and the head is the winner's. Repeated so that the writes really overlap in some rounds.
pub async fn concurrent_appends_one_wins(store: &dyn CatalogStore) {
    let (resource, id) = ("contractRace", "r1");
    ok(
        store
            .create(sample(resource, id, 1, "start"), ChangeKind::Create)
            .await,
        "create",
    );
    for version in 2..=6u64 {
        let before = whole_outbox(store).await;
        let left = sample(resource, id, version, "left");
        let right = sample(resource, id, version, "right");
        let (l, r) = tokio::join!(
            store.append(left.clone(), ChangeKind::Update),
            store.append(right.clone(), ChangeKind::Update)
        );
        let (winner, seq) = match (l, r) {
            (Ok(seq), Err(StoreError::Conflict(_))) => (left, seq),
            (Err(StoreError::Conflict(_)), Ok(seq)) => (right, seq),
            other => panic!("version {version}: expected one Ok and one Conflict, got {other:?}"),
        };
        assert_eq!(
            ok(store.head(resource, id).await, "head"),
            Some(winner.clone()),
            "version {version}: the head is the winner's"
        );
        assert_eq!(
            ok(store.version(resource, id, version).await, "version"),
            Some(winner)
        );
        let after = whole_outbox(store).await;
        assert_eq!(after.len(), before.len() + 1, "exactly one outbox entry");
        assert_eq!(
            after.last().map(|e| (e.seq, e.version)),
            Some((seq, version))
        );
    }
}

/// Many writers create the same id at once: exactly one succeeds.
pub async fn concurrent_creates_same_id_one_wins(store: &dyn CatalogStore) {
    let before = whole_outbox(store).await.len();
    let attempts: Vec<EntityVersion> = (0..6)
        .map(|i| sample("contractRaceCreate", "same", 1, &format!("writer-{i}")))
        .collect();
    let results = join_all(
        attempts
            .iter()
            .map(|v| store.create(v.clone(), ChangeKind::Create)),
    )
    .await;
    let mut winners = Vec::new();
    for (attempt, result) in attempts.iter().zip(results) {
        match result {
            Ok(_) => winners.push(attempt.clone()),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("concurrent create: unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    assert_eq!(
        ok(store.head("contractRaceCreate", "same").await, "head"),
        winners.pop()
    );
    assert_eq!(whole_outbox(store).await.len(), before + 1);
}

/// Many writers create different ids at once: all succeed, with distinct, gap-free seqs.
pub async fn concurrent_creates_all_succeed(store: &dyn CatalogStore) {
    const WRITERS: u64 = 12;
    let before = last_seq(store).await;
    let versions: Vec<EntityVersion> = (0..WRITERS)
        .map(|i| sample("contractParallel", &format!("p{i:02}"), 1, "v1"))
        .collect();
    let results = join_all(
        versions
            .iter()
            .map(|v| store.create(v.clone(), ChangeKind::Create)),
    )
    .await;
    let seqs: BTreeSet<u64> = results
        .into_iter()
        .map(|r| ok(r, "concurrent create"))
        .collect();
    let expected: BTreeSet<u64> = (before + 1..=before + WRITERS).collect();
    assert_eq!(seqs, expected, "distinct seqs without gaps");

    let outbox = ok(store.outbox_after(before, 100).await, "outbox");
    let listed: Vec<u64> = outbox.iter().map(|e| e.seq).collect();
    assert_eq!(listed, expected.into_iter().collect::<Vec<_>>());
    let ids: BTreeSet<&str> = outbox.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len() as u64, WRITERS, "one entry per entity");
    for v in &versions {
        assert_eq!(
            ok(store.head(&v.resource, &v.id).await, "head"),
            Some(v.clone())
        );
    }
    assert_eq!(list_all(store, "contractParallel", 5).await, versions);
}

/// Malformed requests are refused before anything is written.
pub async fn bad_requests_refused(store: &dyn CatalogStore) {
    let outbox = whole_outbox(store).await;
    let v1 = sample("contractBad", "b1", 1, "v1");
    expect_bad_request(
        store
            .create(sample("contractBad", "b1", 2, "v2"), ChangeKind::Create)
            .await,
        "create at version 2",
    );
    expect_bad_request(
        store.create(v1.clone(), ChangeKind::Update).await,
        "create announced as update",
    );
    expect_bad_request(
        store.create(tombstone(&v1), ChangeKind::Create).await,
        "create a tombstone",
    );
    expect_bad_request(
        store
            .create(sample("bad#resource", "b1", 1, "v1"), ChangeKind::Create)
            .await,
        "'#' in a resource name",
    );
    expect_bad_request(
        store
            .create(sample("contractBad", "", 1, "v1"), ChangeKind::Create)
            .await,
        "empty id",
    );
    expect_bad_request(
        store.append(v1.clone(), ChangeKind::Update).await,
        "append version 1",
    );
    expect_bad_request(
        store
            .append(sample("contractBad", "b1", 2, "v2"), ChangeKind::Delete)
            .await,
        "delete that is not a tombstone",
    );
    expect_bad_request(
        store
            .append(sample("contractBad", "b1", 2, "v2"), ChangeKind::Create)
            .await,
        "append announced as create",
    );
    expect_bad_request(store.list_heads("contractBad", None, 0).await, "limit 0");
    expect_bad_request(store.outbox_after(0, 0).await, "outbox limit 0");
    assert_eq!(ok(store.head("contractBad", "b1").await, "head"), None);
    assert_eq!(whole_outbox(store).await, outbox);
}

/// `v` with its description padded so that its JSON is exactly `bytes` long.
fn sized(mut v: EntityVersion, bytes: usize) -> EntityVersion {
    v.body["description"] = "".into();
    let bare = serde_json::to_vec(&v).map_or(0, |json| json.len());
    assert!(bare <= bytes, "a sample version is already {bare} bytes");
    v.body["description"] = "x".repeat(bytes - bare).into();
    assert_eq!(serde_json::to_vec(&v).map_or(0, |json| json.len()), bytes);
    v
}

/// A version whose JSON is over [`MAX_VERSION_BYTES`] is refused by `create` and `append`
/// alike, before anything is written, by every adapter (not only by those that could not
/// hold it); one of exactly that size is kept whole.
pub async fn oversized_version_refused(store: &dyn CatalogStore) {
    let before = last_seq(store).await;
    let over = sized(sample("contractSize", "s1", 1, "v1"), MAX_VERSION_BYTES + 1);
    expect_bad_request(
        store.create(over, ChangeKind::Create).await,
        "create a version over the size limit",
    );
    assert_eq!(ok(store.head("contractSize", "s1").await, "head"), None);
    assert_eq!(last_seq(store).await, before);

    let v1 = sized(sample("contractSize", "s1", 1, "v1"), MAX_VERSION_BYTES);
    let seq = ok(
        store.create(v1.clone(), ChangeKind::Create).await,
        "create a version of exactly the size limit",
    );
    assert_eq!(seq, before + 1);
    assert_eq!(
        ok(store.head("contractSize", "s1").await, "head"),
        Some(v1.clone())
    );

    let over = sized(sample("contractSize", "s1", 2, "v2"), MAX_VERSION_BYTES + 1);
    expect_bad_request(
        store.append(over, ChangeKind::Update).await,
        "append a version over the size limit",
    );
    assert_eq!(
        ok(store.head("contractSize", "s1").await, "head"),
        Some(v1.clone())
    );
    assert_eq!(
        list_all(store, "contractSize", 10).await,
        vec![v1],
        "listing after a refused append"
    );
    assert_eq!(last_seq(store).await, before + 1);
}
