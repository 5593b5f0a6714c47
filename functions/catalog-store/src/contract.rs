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
    AuditRecord, CatalogStore, ChangeKind, DeadLetter, Decision, EntityVersion, OutboxEntry,
    Provenance, ReplicaOutcome, StoreError, Subscription, MAX_RECORD_VALUE_BYTES,
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
    replica_applied_on_empty(store).await;
    replica_newer_with_gap(store).await;
    replica_stale_changes_nothing(store).await;
    replica_tombstone(store).await;
    replica_over_local_conflicts(store).await;
    replica_from_other_origin_conflicts(store).await;
    replica_bad_requests_refused(store).await;
    concurrent_replicas_newest_wins(store).await;
    records_conditional_writes(store).await;
    concurrent_record_writes_one_wins(store).await;
    audit_ordered_and_paged(store).await;
    dead_letters_replace_count_page(store).await;
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

/// A version of an entity replicated from `origin`, as the replicator hands it to the store.
pub fn replica(resource: &str, id: &str, version: u64, origin: &str) -> EntityVersion {
    EntityVersion {
        provenance: Some(Provenance {
            origin: origin.to_owned(),
            height: 100 + version,
            tx_hash: format!("{origin}-{id}-{version}"),
            content_hash: format!("{version:064x}"),
        }),
        ..sample(resource, id, version, origin)
    }
}

fn expect_stale(result: Result<ReplicaOutcome, StoreError>, held: u64, step: &str) {
    match result {
        Ok(ReplicaOutcome::Stale { held_version }) if held_version == held => {}
        other => panic!("{step}: expected Stale {{ held_version: {held} }}, got {other:?}"),
    }
}

fn expect_applied(result: Result<ReplicaOutcome, StoreError>, step: &str) {
    match result {
        Ok(ReplicaOutcome::Applied) => {}
        other => panic!("{step}: expected Applied, got {other:?}"),
    }
}

/// A replica of an entity the store never saw is applied as is: same version number, its
/// provenance kept, served by `head`, `version` and `list_heads`, and no outbox entry.
pub async fn replica_applied_on_empty(store: &dyn CatalogStore) {
    let outbox = whole_outbox(store).await;
    // Version 4: catch-up may bring an entity's newest version only.
    let v4 = replica("contractReplica", "r1", 4, "member-b");
    expect_applied(store.apply_replica(v4.clone()).await, "first replica");
    let head = ok(store.head("contractReplica", "r1").await, "head");
    assert_eq!(head.as_ref(), Some(&v4), "head with its provenance");
    assert_eq!(
        head.and_then(|h| h.provenance).map(|p| p.origin),
        Some("member-b".to_owned())
    );
    assert_eq!(
        ok(store.version("contractReplica", "r1", 4).await, "v4"),
        Some(v4.clone())
    );
    assert_eq!(
        ok(store.version("contractReplica", "r1", 1).await, "v1"),
        None
    );
    assert_eq!(list_all(store, "contractReplica", 10).await, vec![v4]);
    assert_eq!(
        whole_outbox(store).await,
        outbox,
        "a replica is not announced again"
    );
}

/// A newer replica replaces the head even with a gap in the version numbers; the older
/// version stays readable and the missing ones stay missing.
pub async fn replica_newer_with_gap(store: &dyn CatalogStore) {
    let outbox = whole_outbox(store).await;
    let v3 = replica("contractReplicaGap", "g1", 3, "member-b");
    let v7 = replica("contractReplicaGap", "g1", 7, "member-b");
    expect_applied(store.apply_replica(v3.clone()).await, "v3");
    expect_applied(store.apply_replica(v7.clone()).await, "v7 after v3");
    assert_eq!(
        ok(store.head("contractReplicaGap", "g1").await, "head"),
        Some(v7.clone())
    );
    assert_eq!(
        ok(store.version("contractReplicaGap", "g1", 3).await, "v3"),
        Some(v3)
    );
    for missing in 4..=6 {
        assert_eq!(
            ok(
                store.version("contractReplicaGap", "g1", missing).await,
                "gap"
            ),
            None,
            "version {missing} was never written"
        );
    }
    assert_eq!(list_all(store, "contractReplicaGap", 10).await, vec![v7]);
    assert_eq!(whole_outbox(store).await, outbox);
}

/// A replica of the version held, or of an older one, is `Stale` and changes nothing, even
/// if its content differs (a redelivered event is harmless).
pub async fn replica_stale_changes_nothing(store: &dyn CatalogStore) {
    let v5 = replica("contractReplicaStale", "s1", 5, "member-b");
    expect_applied(store.apply_replica(v5.clone()).await, "v5");
    let outbox = whole_outbox(store).await;
    let mut again = v5.clone();
    again.body["name"] = "changed".into();
    expect_stale(store.apply_replica(again).await, 5, "v5 again");
    expect_stale(
        store
            .apply_replica(replica("contractReplicaStale", "s1", 3, "member-b"))
            .await,
        5,
        "v3 after v5",
    );
    assert_eq!(
        ok(store.head("contractReplicaStale", "s1").await, "head"),
        Some(v5.clone())
    );
    assert_eq!(
        ok(store.version("contractReplicaStale", "s1", 3).await, "v3"),
        None,
        "a stale replica writes no version"
    );
    assert_eq!(list_all(store, "contractReplicaStale", 10).await, vec![v5]);
    assert_eq!(whole_outbox(store).await, outbox);
}

/// A tombstone replica deletes: the head is the tombstone and the listing leaves it out.
/// Redelivered older versions are stale; a newer live version after it is refused.
pub async fn replica_tombstone(store: &dyn CatalogStore) {
    let outbox = whole_outbox(store).await;
    let v1 = replica("contractReplicaDelete", "d1", 1, "member-b");
    let kept = replica("contractReplicaDelete", "d2", 1, "member-b");
    expect_applied(store.apply_replica(v1.clone()).await, "v1");
    expect_applied(store.apply_replica(kept.clone()).await, "kept");
    let gone = EntityVersion {
        provenance: replica("contractReplicaDelete", "d1", 2, "member-b").provenance,
        ..tombstone(&v1)
    };
    expect_applied(store.apply_replica(gone.clone()).await, "tombstone");
    let head = ok(store.head("contractReplicaDelete", "d1").await, "head");
    assert_eq!(head.as_ref(), Some(&gone));
    assert!(head.is_some_and(|h| h.deleted), "head is a tombstone");
    assert_eq!(
        list_all(store, "contractReplicaDelete", 10).await,
        vec![kept],
        "the listing leaves the deleted replica out"
    );
    expect_stale(store.apply_replica(v1).await, 2, "v1 after the delete");
    expect_stale(
        store.apply_replica(gone.clone()).await,
        2,
        "the tombstone again",
    );
    expect_conflict(
        store
            .apply_replica(replica("contractReplicaDelete", "d1", 3, "member-b"))
            .await,
        "a live version after the delete",
    );
    assert_eq!(
        ok(store.head("contractReplicaDelete", "d1").await, "head"),
        Some(gone)
    );
    assert_eq!(whole_outbox(store).await, outbox);
}

/// A replica never overwrites an entity created locally, whatever its version.
pub async fn replica_over_local_conflicts(store: &dyn CatalogStore) {
    let local = sample("contractReplicaLocal", "l1", 1, "mine");
    ok(
        store.create(local.clone(), ChangeKind::Create).await,
        "create",
    );
    let outbox = whole_outbox(store).await;
    for version in [1, 2, 9] {
        expect_conflict(
            store
                .apply_replica(replica("contractReplicaLocal", "l1", version, "member-b"))
                .await,
            "replica over a local entity",
        );
    }
    assert_eq!(
        ok(store.head("contractReplicaLocal", "l1").await, "head"),
        Some(local)
    );
    assert_eq!(
        ok(store.version("contractReplicaLocal", "l1", 2).await, "v2"),
        None
    );
    assert_eq!(whole_outbox(store).await, outbox);
}

/// An origin never overwrites another origin's entity.
pub async fn replica_from_other_origin_conflicts(store: &dyn CatalogStore) {
    let theirs = replica("contractReplicaOrigin", "o1", 2, "member-b");
    expect_applied(store.apply_replica(theirs.clone()).await, "from b");
    let outbox = whole_outbox(store).await;
    for version in [1, 2, 3] {
        expect_conflict(
            store
                .apply_replica(replica("contractReplicaOrigin", "o1", version, "member-c"))
                .await,
            "replica from c over b's entity",
        );
    }
    assert_eq!(
        ok(store.head("contractReplicaOrigin", "o1").await, "head"),
        Some(theirs)
    );
    assert_eq!(
        ok(store.version("contractReplicaOrigin", "o1", 3).await, "v3"),
        None
    );
    assert_eq!(whole_outbox(store).await, outbox);
}

/// Malformed replicas are refused before anything is written.
pub async fn replica_bad_requests_refused(store: &dyn CatalogStore) {
    let outbox = whole_outbox(store).await;
    expect_bad_request(
        store
            .apply_replica(sample("contractReplicaBad", "b1", 1, "no provenance"))
            .await,
        "replica without provenance",
    );
    expect_bad_request(
        store
            .apply_replica(replica("contractReplicaBad", "b1", 0, "member-b"))
            .await,
        "replica at version 0",
    );
    expect_bad_request(
        store
            .apply_replica(replica("bad#resource", "b1", 1, "member-b"))
            .await,
        "'#' in a resource name",
    );
    expect_bad_request(
        store
            .apply_replica(replica("contractReplicaBad", "", 1, "member-b"))
            .await,
        "empty id",
    );
    let over = sized(
        replica("contractReplicaBad", "b1", 1, "member-b"),
        MAX_VERSION_BYTES + 1,
    );
    expect_bad_request(
        store.apply_replica(over).await,
        "replica over the size limit",
    );
    assert_eq!(
        ok(store.head("contractReplicaBad", "b1").await, "head"),
        None
    );
    assert_eq!(whole_outbox(store).await, outbox);
}

/// Versions 5 and 6 of one entity applied at once end with head 6, whichever lands first;
/// 5 is either applied before 6 or found stale. Repeated so that the writes overlap.
pub async fn concurrent_replicas_newest_wins(store: &dyn CatalogStore) {
    let outbox = whole_outbox(store).await;
    for round in 0..6 {
        let id = format!("c{round}");
        let v5 = replica("contractReplicaRace", &id, 5, "member-b");
        let v6 = replica("contractReplicaRace", &id, 6, "member-b");
        // Alternate which one is started first.
        let (r5, r6) = if round % 2 == 0 {
            tokio::join!(
                store.apply_replica(v5.clone()),
                store.apply_replica(v6.clone())
            )
        } else {
            let (r6, r5) = tokio::join!(
                store.apply_replica(v6.clone()),
                store.apply_replica(v5.clone())
            );
            (r5, r6)
        };
        expect_applied(r6, "version 6");
        match r5 {
            Ok(ReplicaOutcome::Applied) | Ok(ReplicaOutcome::Stale { held_version: 6 }) => {}
            other => panic!("round {round}: version 5 gave {other:?}"),
        }
        assert_eq!(
            ok(store.head("contractReplicaRace", &id).await, "head"),
            Some(v6),
            "round {round}: the head is version 6"
        );
    }
    assert_eq!(whole_outbox(store).await, outbox);
}

/// Records: created once, then updated only from the revision read; size rules.
pub async fn records_conditional_writes(store: &dyn CatalogStore) {
    let name = "contract/record";
    assert_eq!(ok(store.get_record(name).await, "get unknown"), None);
    assert_eq!(ok(store.put_record(name, "7", None).await, "create"), 1);
    expect_conflict(store.put_record(name, "8", None).await, "second create");
    assert_eq!(ok(store.put_record(name, "9", Some(1)).await, "update"), 2);
    expect_conflict(
        store.put_record(name, "10", Some(1)).await,
        "update from a stale revision",
    );
    expect_conflict(
        store.put_record(name, "10", Some(5)).await,
        "update from a future revision",
    );
    expect_conflict(
        store.put_record("contract/never", "x", Some(1)).await,
        "update of a record that does not exist",
    );
    assert_eq!(ok(store.get_record("contract/never").await, "get"), None);
    assert_eq!(
        ok(store.get_record(name).await, "get"),
        Some(crate::Record {
            value: "9".into(),
            revision: 2
        })
    );
    assert_eq!(
        ok(
            store.get_record(crate::records::RELAY_CHECKPOINT).await,
            "other name"
        ),
        None,
        "records are per name"
    );

    let largest = "x".repeat(MAX_RECORD_VALUE_BYTES);
    assert_eq!(
        ok(
            store.put_record(name, &largest, Some(2)).await,
            "largest value"
        ),
        3
    );
    expect_bad_request(
        store
            .put_record(name, &"x".repeat(MAX_RECORD_VALUE_BYTES + 1), Some(3))
            .await,
        "value over the limit",
    );
    expect_bad_request(store.put_record("", "x", None).await, "empty name");
    expect_bad_request(
        store
            .put_record(&"n".repeat(crate::MAX_ID_LEN + 1), "x", None)
            .await,
        "name over the limit",
    );
    assert_eq!(
        ok(store.get_record(name).await, "get"),
        Some(crate::Record {
            value: largest,
            revision: 3
        })
    );
}

/// Writers that read the same revision race: exactly one write wins each round.
pub async fn concurrent_record_writes_one_wins(store: &dyn CatalogStore) {
    let name = "contract/lease";
    let mut expected = None;
    for round in 0..5u64 {
        let values: Vec<String> = (0..4)
            .map(|w| format!("round {round} writer {w}"))
            .collect();
        let results = join_all(
            values
                .iter()
                .map(|value| store.put_record(name, value, expected)),
        )
        .await;
        let mut winners = Vec::new();
        for (value, result) in values.iter().zip(results) {
            match result {
                Ok(revision) => winners.push((value.clone(), revision)),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one writer wins");
        let (value, revision) = winners.remove(0);
        assert_eq!(revision, round + 1);
        assert_eq!(
            ok(store.get_record(name).await, "get"),
            Some(crate::Record { value, revision })
        );
        expected = Some(revision);
    }
}

fn audit_line(at: &str, version: u64) -> AuditRecord {
    AuditRecord {
        at: at.to_owned(),
        origin: "member-b".into(),
        height: 40 + version,
        tx_hash: format!("tx-{version}"),
        resource: "productOffering".into(),
        id: "po-1".into(),
        version,
        decision: if version % 2 == 0 {
            Decision::Applied
        } else {
            Decision::Retrying
        },
        reason: (version % 2 == 1).then(|| format!("attempt {version} failed")),
    }
}

/// Every audit line read in pages of `limit`; returns the pages' sizes too.
async fn whole_audit(store: &dyn CatalogStore, limit: usize) -> (Vec<AuditRecord>, Vec<usize>) {
    let (mut items, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None);
    for _ in 0..1000 {
        let page = ok(store.audit(cursor.take(), limit).await, "audit page");
        sizes.push(page.items.len());
        items.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (items, sizes),
        }
    }
    panic!("reading the audit trail with limit {limit} did not end");
}

/// The audit trail is ordered by `at` (not by when lines were appended), keeps lines with
/// the same `at` in the order they came, and pages through every line exactly once.
pub async fn audit_ordered_and_paged(store: &dyn CatalogStore) {
    let first = ok(store.audit(None, 10).await, "empty trail");
    assert_eq!(
        first,
        crate::Page {
            items: Vec::new(),
            next: None
        }
    );
    let lines = [
        audit_line("2025-03-01T10:00:00.300Z", 3),
        audit_line("2025-03-01T10:00:00.100Z", 1),
        audit_line("2025-03-01T10:00:00.200Z", 2),
        audit_line("2025-03-01T10:00:00.200Z", 4),
        audit_line("2025-03-01T10:00:01.000Z", 5),
        audit_line("2025-03-01T10:00:00.050Z", 6),
        audit_line("2025-03-01T10:00:00.200Z", 7),
    ];
    for line in &lines {
        ok(store.append_audit(line.clone()).await, "append audit");
    }
    let versions = |items: &[AuditRecord]| items.iter().map(|r| r.version).collect::<Vec<_>>();
    let (items, sizes) = whole_audit(store, 3).await;
    assert_eq!(sizes, vec![3, 3, 1], "three pages");
    assert_eq!(
        versions(&items),
        vec![6, 1, 2, 4, 7, 3, 5],
        "ordered by at, same at in append order"
    );
    assert_eq!(items[2], lines[2], "lines come back whole");
    for limit in [1, 2, 7, 100] {
        let (all, _) = whole_audit(store, limit).await;
        assert_eq!(all, items, "reading with limit {limit}");
    }
    let full = ok(store.audit(None, 7).await, "one full page");
    assert!(
        full.next.is_none(),
        "no cursor when the page holds the rest"
    );

    expect_bad_request(store.audit(None, 0).await, "limit 0");
    expect_bad_request(store.audit(Some("%%%".into()), 3).await, "garbage cursor");
    ok(
        store.put_dead_letter(dead_letter("tx-cursor", "x")).await,
        "dead letter",
    );
    ok(
        store.put_dead_letter(dead_letter("tx-cursor-2", "x")).await,
        "dead letter",
    );
    let dead_page = ok(store.dead_letters(None, 1).await, "dead letters");
    let foreign = dead_page
        .next
        .unwrap_or_else(|| panic!("two letters make two pages"));
    expect_bad_request(store.audit(Some(foreign), 3).await, "a dead-letter cursor");
    let audit_page = ok(store.audit(None, 1).await, "audit");
    let foreign = audit_page
        .next
        .unwrap_or_else(|| panic!("seven lines make pages"));
    expect_bad_request(
        store.dead_letters(Some(foreign), 3).await,
        "an audit cursor",
    );
    expect_bad_request(
        store.append_audit(audit_line("", 8)).await,
        "audit line without at",
    );
    expect_bad_request(
        store
            .append_audit(audit_line(&"9".repeat(crate::MAX_AT_LEN + 1), 8))
            .await,
        "audit line with an overlong at",
    );
    assert_eq!(
        whole_audit(store, 100).await.0,
        items,
        "refused lines left no trace"
    );
}

fn dead_letter(tx_hash: &str, reason: &str) -> DeadLetter {
    DeadLetter {
        tx_hash: tx_hash.to_owned(),
        height: 77,
        event: json!({"origin": "member-b", "entity": {"type": "productOffering", "id": "po-1", "version": 2}}),
        reason: reason.to_owned(),
        attempts: 5,
        at: "2025-03-01T10:00:00Z".into(),
    }
}

/// Dead letters: keyed by tx_hash (a second put replaces), counted, paged in tx_hash order.
pub async fn dead_letters_replace_count_page(store: &dyn CatalogStore) {
    let before = ok(store.dead_letter_count().await, "count");
    let mine = |items: Vec<DeadLetter>| {
        items
            .into_iter()
            .filter(|l| l.tx_hash.starts_with("dl-"))
            .collect::<Vec<_>>()
    };
    for tx in ["dl-c", "dl-a", "dl-e", "dl-b", "dl-d"] {
        ok(
            store
                .put_dead_letter(dead_letter(tx, "origin unreachable"))
                .await,
            "put",
        );
    }
    assert_eq!(ok(store.dead_letter_count().await, "count"), before + 5);
    let mut replaced = dead_letter("dl-b", "content hash mismatch");
    replaced.attempts = 9;
    ok(store.put_dead_letter(replaced.clone()).await, "replace");
    assert_eq!(
        ok(store.dead_letter_count().await, "count"),
        before + 5,
        "a replaced letter is counted once"
    );

    let (mut items, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None);
    for _ in 0..100 {
        let page = ok(store.dead_letters(cursor.take(), 2).await, "page");
        assert!(page.items.len() <= 2);
        sizes.push(page.items.len());
        items.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(cursor.is_none(), "paging ended");
    let items = mine(items);
    let order: Vec<&str> = items.iter().map(|l| l.tx_hash.as_str()).collect();
    assert_eq!(order, vec!["dl-a", "dl-b", "dl-c", "dl-d", "dl-e"]);
    assert_eq!(items[1], replaced, "the replacement is what is kept");
    if before == 0 {
        assert_eq!(sizes, vec![2, 2, 1], "three pages");
    }
    let all = mine(ok(store.dead_letters(None, 100).await, "one page").items);
    assert_eq!(all, items);

    expect_bad_request(store.dead_letters(None, 0).await, "limit 0");
    expect_bad_request(
        store.put_dead_letter(dead_letter("", "no hash")).await,
        "dead letter without tx_hash",
    );
    let mut huge = dead_letter("dl-huge", "too big");
    huge.event = json!({"padding": "x".repeat(crate::MAX_LOG_BYTES)});
    expect_bad_request(
        store.put_dead_letter(huge).await,
        "dead letter over the limit",
    );
    assert_eq!(ok(store.dead_letter_count().await, "count"), before + 5);
}
