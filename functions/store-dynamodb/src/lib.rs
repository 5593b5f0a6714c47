//! The DynamoDB adapter of [`CatalogStore`]: one table, single-table design (see
//! `docs/storage.md` for the full layout and the reasons behind it).
//!
//! | item | PK | SK | attributes |
//! | --- | --- | --- | --- |
//! | version | `E#<resource>#<id>` | `V#<version, 20 digits>` | `item`: JSON of the [`EntityVersion`] |
//! | head | `E#<resource>#<id>` | `HEAD` | `ver` (N), `del` (BOOL) |
//! | listing | `R#<resource>` | `<id>` | `item`: JSON of the head version; absent once deleted |
//! | outbox counter | `OUTBOX` | `COUNTER` | `seq` (N): the last seq handed out |
//! | outbox entry | `OUTBOX` | `<seq, 20 digits>` | `item`: JSON of the [`OutboxEntry`] |
//! | subscription | `HUB` | `<subscription id>` | `item`: JSON of the [`Subscription`] |
//! | record | `REC` | `<name>` | `value` (S), `rev` (N) |
//! | audit line | `AUDIT` | `<at>#<tick, 20 digits>#<8 hex>` | `item`: JSON of the [`AuditRecord`] |
//! | dead letter | `DEAD` | `<tx_hash>` | `item`: JSON of the [`DeadLetter`] |
//!
//! The head of a replicated entity also has `origin` (S), the member it came from.
//!
//! Every create or append is one `TransactWriteItems` of five items: head (conditional on the
//! expected version), version (conditional on not existing), listing (put, or delete for a
//! tombstone), outbox counter (conditional on the value read just before) and outbox entry.
//! A replica is one `TransactWriteItems` of three: head (conditional on being absent, or
//! older, live and of the same origin), version and listing; no outbox.
//! Every read is strongly consistent, so a reader sees its own and others' committed writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
    ReturnValue, ScalarAttributeType, Select, TableStatus, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dome_catalog_store::{
    check_append, check_audit, check_create, check_dead_letter, check_id, check_key, check_limit,
    check_record, check_record_name, check_replica, check_resource, judge_replica, AuditRecord,
    CatalogStore, ChangeKind, DeadLetter, EntityVersion, HeadPage, HeldHead, OutboxEntry, Page,
    Record, ReplicaOutcome, StoreError, Subscription,
};
use serde::{Deserialize, Serialize};

#[cfg(feature = "testing")]
pub mod testing;

/// Environment variable naming the table.
pub const TABLE_ENV: &str = "DOME_TABLE";

/// Largest accepted serialised entity version, a rule of the interface that every adapter
/// enforces (`check_create`/`check_append`). DynamoDB refuses items over 400 KB; this leaves
/// room for the keys and attribute names, and keeps a transaction (which holds the version
/// twice, as version and as listing item) far below the 4 MB transaction limit.
pub use dome_catalog_store::MAX_VERSION_BYTES;

/// How many times a write is tried when it loses only the race for the outbox counter (or
/// hits a transaction conflict). Each round at least one contending writer succeeds, so this
/// bounds the wait under contention from up to this many concurrent writers.
const MAX_WRITE_ATTEMPTS: u32 = 32;

/// Longest wait between two attempts; waits grow from 2 ms, doubled each time, with jitter.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

const PK: &str = "PK";
const SK: &str = "SK";
const ITEM: &str = "item";
const HEAD_SK: &str = "HEAD";
const OUTBOX_PK: &str = "OUTBOX";
const COUNTER_SK: &str = "COUNTER";
const HUB_PK: &str = "HUB";
const RECORD_PK: &str = "REC";
const AUDIT_PK: &str = "AUDIT";
const DEAD_PK: &str = "DEAD";
const ORIGIN: &str = "origin";

/// Position of each item in the write transaction: DynamoDB reports cancellation reasons in
/// this order.
const TX_HEAD: usize = 0;
const TX_VERSION: usize = 1;
const TX_COUNTER: usize = 3;
const TX_OUTBOX: usize = 4;

type Item = HashMap<String, AttributeValue>;

/// A [`CatalogStore`] in one DynamoDB table. Cheap to clone (the SDK client is shared).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// A listing cursor: DynamoDB's `LastEvaluatedKey` of the page's last item.
#[derive(Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
}

/// Builds an SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for a local endpoint such as moto), with an HTTPS client on rustls and
/// ring: the SDK's default client would bring aws-lc-rs, a long C build, for no gain here.
pub async fn sdk_config_from_env() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The HTTP(S) client the adapter's SDK clients use (rustls with ring; plain HTTP works too,
/// for local endpoints).
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The store for the table named by `DOME_TABLE`, with the SDK configured from the
    /// environment (see [`sdk_config_from_env`]).
    pub async fn from_env() -> Result<Self, StoreError> {
        let table = std::env::var(TABLE_ENV).map_err(|_| {
            StoreError::BadRequest(format!("{TABLE_ENV} must name the DynamoDB table"))
        })?;
        let config = sdk_config_from_env().await;
        Ok(Self::new(Client::new(&config), table))
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table (string `PK` and `SK`, on-demand billing) and waits until it is
    /// active. Succeeds if the table already exists. For tests and local runs; in AWS the
    /// infrastructure code creates it.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build_error)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        if let Err(error) = created {
            let exists = error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception());
            if !exists {
                return Err(sdk_error("create table", error));
            }
        }
        // A new table takes a few seconds to become usable in AWS (moto: none).
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| sdk_error("describe table", e))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable(format!(
            "table {} did not become active within a minute",
            self.table
        )))
    }

    /// Writes a version and its outbox entry in one transaction; `create` tells which head
    /// condition applies.
    async fn write(
        &self,
        version: EntityVersion,
        change: ChangeKind,
        create: bool,
    ) -> Result<u64, StoreError> {
        // Its size was checked (MAX_VERSION_BYTES) with the other arguments.
        let body = serde_json::to_string(&version)
            .map_err(|e| StoreError::BadRequest(format!("version not serialisable: {e}")))?;
        let mut backoff = Duration::from_millis(2);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let last = self.outbox_counter().await?;
            let seq = last
                .checked_add(1)
                .ok_or_else(|| StoreError::Corrupt("outbox seq overflow".into()))?;
            let items = self.write_items(&version, &body, change, create, last, seq)?;
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                // Fresh per attempt: if the SDK retries this request after a lost response,
                // DynamoDB recognises the token and does not apply the transaction twice (a
                // second application would fail its conditions and look like a Conflict).
                .client_request_token(request_token()?)
                .send()
                .await;
            let error = match sent {
                Ok(_) => return Ok(seq),
                Err(error) => error,
            };
            match classify(&error) {
                Outcome::Conflict => {
                    return Err(StoreError::Conflict(if create {
                        format!("{}/{} already exists", version.resource, version.id)
                    } else {
                        format!(
                            "{}/{} is not at version {} (or is deleted, or unknown)",
                            version.resource,
                            version.id,
                            version.version - 1
                        )
                    }))
                }
                Outcome::Retry => {
                    tracing::debug!(
                        resource = %version.resource,
                        id = %version.id,
                        seq,
                        "outbox counter or transaction conflict; retrying"
                    );
                    tokio::time::sleep(jitter(backoff)?).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Outcome::Fail => return Err(sdk_error("write transaction", error)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "gave up writing {}/{} after {MAX_WRITE_ATTEMPTS} attempts lost to concurrent writers",
            version.resource, version.id
        )))
    }

    /// The five items of a write transaction, in the `TX_*` order.
    fn write_items(
        &self,
        version: &EntityVersion,
        body: &str,
        change: ChangeKind,
        create: bool,
        last_seq: u64,
        seq: u64,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let entity_pk = entity_pk(&version.resource, &version.id);

        let head = Put::builder()
            .table_name(&self.table)
            .item(PK, s(&entity_pk))
            .item(SK, s(HEAD_SK))
            .item("ver", n(version.version))
            .item("del", AttributeValue::Bool(version.deleted));
        // DynamoDB refuses expression attribute names that the expression does not use.
        let head = if create {
            head.condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        } else {
            head.condition_expression("#ver = :prev AND #del = :live")
                .expression_attribute_names("#ver", "ver")
                .expression_attribute_names("#del", "del")
                .expression_attribute_values(":prev", n(version.version - 1))
                .expression_attribute_values(":live", AttributeValue::Bool(false))
        };

        let version_item = Put::builder()
            .table_name(&self.table)
            .item(PK, s(&entity_pk))
            .item(SK, s(version_sk(version.version)))
            .item(ITEM, s(body))
            // Versions are immutable: never overwrite one.
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK);

        let listing_pk = listing_pk(&version.resource);
        let listing = if version.deleted {
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .key(PK, s(&listing_pk))
                        .key(SK, s(&version.id))
                        .build()
                        .map_err(build_error)?,
                )
                .build()
        } else {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .item(PK, s(&listing_pk))
                        .item(SK, s(&version.id))
                        .item(ITEM, s(body))
                        .build()
                        .map_err(build_error)?,
                )
                .build()
        };

        let counter = Put::builder()
            .table_name(&self.table)
            .item(PK, s(OUTBOX_PK))
            .item(SK, s(COUNTER_SK))
            .item("seq", n(seq));
        let counter = if last_seq == 0 {
            counter
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        } else {
            counter
                .condition_expression("#seq = :last")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_values(":last", n(last_seq))
        };

        let entry = OutboxEntry {
            seq,
            resource: version.resource.clone(),
            id: version.id.clone(),
            version: version.version,
            change,
        };
        let entry = serde_json::to_string(&entry)
            .map_err(|e| StoreError::BadRequest(format!("outbox entry not serialisable: {e}")))?;
        let outbox = Put::builder()
            .table_name(&self.table)
            .item(PK, s(OUTBOX_PK))
            .item(SK, s(seq_sk(seq)))
            .item(ITEM, s(entry))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK);

        let put = |p: aws_sdk_dynamodb::types::builders::PutBuilder| {
            Ok::<_, StoreError>(
                TransactWriteItem::builder()
                    .put(p.build().map_err(build_error)?)
                    .build(),
            )
        };
        Ok(vec![
            put(head)?,
            put(version_item)?,
            listing,
            put(counter)?,
            put(outbox)?,
        ])
    }

    /// The three items of a replica's write transaction (head, version, listing: the
    /// `TX_HEAD`, `TX_VERSION` order), no outbox. The head condition is [`judge_replica`]'s
    /// `Applied` case in DynamoDB's terms: no head yet, or a live, older head of the same
    /// origin (a local entity's head has no `origin` attribute, so it never matches).
    fn replica_items(
        &self,
        replica: &EntityVersion,
        body: &str,
        origin: &str,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let entity_pk = entity_pk(&replica.resource, &replica.id);
        let head = Put::builder()
            .table_name(&self.table)
            .item(PK, s(&entity_pk))
            .item(SK, s(HEAD_SK))
            .item("ver", n(replica.version))
            .item("del", AttributeValue::Bool(replica.deleted))
            .item(ORIGIN, s(origin))
            .condition_expression(
                "attribute_not_exists(#pk) OR (#origin = :origin AND #ver < :ver AND #del = :live)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#origin", ORIGIN)
            .expression_attribute_names("#ver", "ver")
            .expression_attribute_names("#del", "del")
            .expression_attribute_values(":origin", s(origin))
            .expression_attribute_values(":ver", n(replica.version))
            .expression_attribute_values(":live", AttributeValue::Bool(false))
            .build()
            .map_err(build_error)?;
        let version_item = Put::builder()
            .table_name(&self.table)
            .item(PK, s(&entity_pk))
            .item(SK, s(version_sk(replica.version)))
            .item(ITEM, s(body))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(build_error)?;
        let listing_pk = listing_pk(&replica.resource);
        let listing = if replica.deleted {
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .key(PK, s(&listing_pk))
                        .key(SK, s(&replica.id))
                        .build()
                        .map_err(build_error)?,
                )
                .build()
        } else {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .item(PK, s(&listing_pk))
                        .item(SK, s(&replica.id))
                        .item(ITEM, s(body))
                        .build()
                        .map_err(build_error)?,
                )
                .build()
        };
        Ok(vec![
            TransactWriteItem::builder().put(head).build(),
            TransactWriteItem::builder().put(version_item).build(),
            listing,
        ])
    }

    /// The head item of an entity: (version, deleted, origin); `None` if it has none.
    async fn held_head(
        &self,
        resource: &str,
        id: &str,
    ) -> Result<Option<(u64, bool, Option<String>)>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(entity_pk(resource, id)))
            .key(SK, s(HEAD_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("read head", e))?;
        let Some(item) = found.item() else {
            return Ok(None);
        };
        let deleted = match item.get("del") {
            Some(AttributeValue::Bool(deleted)) => *deleted,
            _ => {
                return Err(StoreError::Corrupt(
                    "head item lacks the boolean attribute del".into(),
                ))
            }
        };
        let origin = match item.get(ORIGIN) {
            Some(AttributeValue::S(origin)) => Some(origin.clone()),
            _ => None,
        };
        Ok(Some((number(item, "ver")?, deleted, origin)))
    }

    /// One page of a log partition (audit trail or dead letters), in sort key order.
    async fn log_page<T: for<'de> Deserialize<'de>>(
        &self,
        pk: &str,
        cursor: Option<String>,
        limit: usize,
        what: &str,
    ) -> Result<Page<T>, StoreError> {
        check_limit(limit)?;
        // The cursor names its partition: one of the other log is refused.
        let start = cursor
            .map(|c| decode_cursor(pk, &c))
            .transpose()?
            .map(|sk| HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))]));
        // One item more than the page tells whether another page follows.
        let mut items = self
            .query(
                "#pk = :pk",
                &[(":pk", s(pk))],
                start,
                limit.saturating_add(1),
                true,
            )
            .await?;
        let next = if items.len() > limit {
            items.truncate(limit);
            match items.last() {
                Some(last) => Some(encode_cursor(pk, string(last, SK)?)?),
                None => None,
            }
        } else {
            None
        };
        let items = items
            .iter()
            .map(|item| json(item, what))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    /// The last outbox seq handed out (0 before the first change).
    async fn outbox_counter(&self) -> Result<u64, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(OUTBOX_PK))
            .key(SK, s(COUNTER_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("read outbox counter", e))?;
        match found.item() {
            Some(item) => number(item, "seq"),
            None => Ok(0),
        }
    }

    /// Runs a strongly consistent query on one partition from `start`, following DynamoDB's
    /// pages until `want` items are read or the partition ends.
    async fn query(
        &self,
        key_condition: &str,
        values: &[(&str, AttributeValue)],
        start: Option<Item>,
        want: usize,
        forward: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = start;
        while items.len() < want {
            let limit = i32::try_from(want - items.len()).unwrap_or(i32::MAX);
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition)
                .expression_attribute_names("#pk", PK)
                .consistent_read(true)
                .scan_index_forward(forward)
                .limit(limit)
                .set_exclusive_start_key(start.take());
            if key_condition.contains("#sk") {
                request = request.expression_attribute_names("#sk", SK);
            }
            for (name, value) in values {
                request = request.expression_attribute_values(*name, value.clone());
            }
            let page = request.send().await.map_err(|e| sdk_error("query", e))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => break,
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl CatalogStore for DynamoStore {
    async fn create(&self, first: EntityVersion, change: ChangeKind) -> Result<u64, StoreError> {
        check_create(&first, change)?;
        self.write(first, change, true).await
    }

    async fn append(&self, next: EntityVersion, change: ChangeKind) -> Result<u64, StoreError> {
        check_append(&next, change)?;
        self.write(next, change, false).await
    }

    async fn head(&self, resource: &str, id: &str) -> Result<Option<EntityVersion>, StoreError> {
        check_key(resource, id)?;
        // The newest version item is the head: one query, newest first, instead of reading
        // the head item and then the version it names.
        let items = self
            .query(
                "#pk = :pk AND begins_with(#sk, :v)",
                &[(":pk", s(entity_pk(resource, id))), (":v", s("V#"))],
                None,
                1,
                false,
            )
            .await?;
        items.first().map(entity_version).transpose()
    }

    async fn version(
        &self,
        resource: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<EntityVersion>, StoreError> {
        check_key(resource, id)?;
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(entity_pk(resource, id)))
            .key(SK, s(version_sk(version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("read version", e))?;
        found.item().map(entity_version).transpose()
    }

    async fn list_heads(
        &self,
        resource: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<HeadPage, StoreError> {
        check_resource(resource)?;
        check_limit(limit)?;
        let pk = listing_pk(resource);
        let start = cursor
            .map(|c| decode_cursor(&pk, &c))
            .transpose()?
            .map(|sk| HashMap::from([(PK.to_owned(), s(&pk)), (SK.to_owned(), s(sk))]));
        // One item more than the page tells whether another page follows, so the last page
        // never carries a cursor that leads to an empty page.
        let mut items = self
            .query(
                "#pk = :pk",
                &[(":pk", s(&pk))],
                start,
                limit.saturating_add(1),
                true,
            )
            .await?;
        let next = if items.len() > limit {
            items.truncate(limit);
            match items.last() {
                Some(last) => Some(encode_cursor(&pk, string(last, SK)?)?),
                None => None,
            }
        } else {
            None
        };
        let items = items.iter().map(entity_version).collect::<Result<_, _>>()?;
        Ok(HeadPage { items, next })
    }

    async fn outbox_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        check_limit(limit)?;
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        // Entry keys are fixed-width digits, so this range holds exactly the entries after
        // `after`; the counter's key (`COUNTER`) sorts after every digit and is outside it.
        let items = self
            .query(
                "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                &[
                    (":pk", s(OUTBOX_PK)),
                    (":lo", s(seq_sk(first))),
                    (":hi", s(seq_sk(u64::MAX))),
                ],
                None,
                limit,
                true,
            )
            .await?;
        items
            .iter()
            .map(|item| json(item, "outbox entry"))
            .collect()
    }

    async fn put_subscription(&self, subscription: Subscription) -> Result<(), StoreError> {
        check_id(&subscription.id)?;
        let body = serde_json::to_string(&subscription)
            .map_err(|e| StoreError::BadRequest(format!("subscription not serialisable: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(HUB_PK))
            .item(SK, s(&subscription.id))
            .item(ITEM, s(body))
            .send()
            .await
            .map_err(|e| sdk_error("put subscription", e))?;
        Ok(())
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(HUB_PK))
            .key(SK, s(id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("delete subscription", e))?;
        Ok(deleted.attributes().is_some_and(|a| !a.is_empty()))
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let items = self
            .query("#pk = :pk", &[(":pk", s(HUB_PK))], None, usize::MAX, true)
            .await?;
        items
            .iter()
            .map(|item| json(item, "subscription"))
            .collect()
    }

    async fn apply_replica(&self, replica: EntityVersion) -> Result<ReplicaOutcome, StoreError> {
        check_replica(&replica)?;
        let origin = replica
            .provenance
            .as_ref()
            .map(|p| p.origin.clone())
            .unwrap_or_default();
        let body = serde_json::to_string(&replica)
            .map_err(|e| StoreError::BadRequest(format!("version not serialisable: {e}")))?;
        let items = self.replica_items(&replica, &body, &origin)?;
        let mut backoff = Duration::from_millis(2);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                // See `write`: a retried request must not fail its own conditions.
                .client_request_token(request_token()?)
                .send()
                .await;
            let error = match sent {
                Ok(_) => return Ok(ReplicaOutcome::Applied),
                Err(error) => error,
            };
            match classify_replica(&error) {
                ReplicaFailure::Condition => {
                    // The head is not what the write needs: read what is held and say why.
                    let held = self.held_head(&replica.resource, &replica.id).await?;
                    let held = held.as_ref().map(|(version, deleted, origin)| HeldHead {
                        version: *version,
                        deleted: *deleted,
                        origin: origin.as_deref(),
                    });
                    match judge_replica(&replica, held)? {
                        // It moved between the write and the read (versions only grow,
                        // so this ends): try again.
                        ReplicaOutcome::Applied => {}
                        stale => return Ok(stale),
                    }
                }
                ReplicaFailure::Retry => {}
                ReplicaFailure::Fail => return Err(sdk_error("replica transaction", error)),
            }
            tracing::debug!(
                resource = %replica.resource,
                id = %replica.id,
                version = replica.version,
                "replica write lost a race; retrying"
            );
            tokio::time::sleep(jitter(backoff)?).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Err(StoreError::Unavailable(format!(
            "gave up writing replica {}/{} v{} after {MAX_WRITE_ATTEMPTS} attempts",
            replica.resource, replica.id, replica.version
        )))
    }

    async fn get_record(&self, name: &str) -> Result<Option<Record>, StoreError> {
        check_record_name(name)?;
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(RECORD_PK))
            .key(SK, s(name))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("read record", e))?;
        found
            .item()
            .map(|item| {
                Ok(Record {
                    value: string(item, "value")?.to_owned(),
                    revision: number(item, "rev")?,
                })
            })
            .transpose()
    }

    async fn put_record(
        &self,
        name: &str,
        value: &str,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        check_record(name, value)?;
        let revision = expected
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| StoreError::Conflict(format!("record {name}: revision overflow")))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(RECORD_PK))
            .item(SK, s(name))
            .item("value", s(value))
            .item("rev", n(revision));
        let put = match expected {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Some(expected) => put
                .condition_expression("#rev = :expected")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":expected", n(expected)),
        };
        match put.send().await {
            Ok(_) => Ok(revision),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict(format!(
                    "record {name} is not at revision {expected:?}"
                )))
            }
            Err(error) => Err(sdk_error("put record", error)),
        }
    }

    async fn append_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        check_audit(&record)?;
        let body = serde_json::to_string(&record)
            .map_err(|e| StoreError::BadRequest(format!("audit line not serialisable: {e}")))?;
        let sk = format!("{}#{:020}#{}", record.at, audit_tick(), random_hex::<4>()?);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(AUDIT_PK))
            .item(SK, s(sk))
            .item(ITEM, s(body))
            // A (vanishingly unlikely) key collision must not erase a line.
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await
            .map_err(|e| sdk_error("append audit line", e))?;
        Ok(())
    }

    async fn audit(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<AuditRecord>, StoreError> {
        self.log_page(AUDIT_PK, cursor, limit, "audit line").await
    }

    async fn put_dead_letter(&self, letter: DeadLetter) -> Result<(), StoreError> {
        check_dead_letter(&letter)?;
        let body = serde_json::to_string(&letter)
            .map_err(|e| StoreError::BadRequest(format!("dead letter not serialisable: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(DEAD_PK))
            .item(SK, s(&letter.tx_hash))
            .item(ITEM, s(body))
            .send()
            .await
            .map_err(|e| sdk_error("put dead letter", e))?;
        Ok(())
    }

    async fn dead_letters(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<DeadLetter>, StoreError> {
        self.log_page(DEAD_PK, cursor, limit, "dead letter").await
    }

    /// A `Select=COUNT` query of the `DEAD` partition, following its pages: always exact and
    /// needs no counter kept in step with puts that may or may not replace. It reads (and
    /// is billed for) the whole partition, which stays small: dead letters are rare and
    /// each holds only an event's metadata.
    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let mut total: u64 = 0;
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(DEAD_PK))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("count dead letters", e))?;
            let count = u64::try_from(page.count())
                .map_err(|_| StoreError::Corrupt("negative count from DynamoDB".into()))?;
            total = total.saturating_add(count);
            match page.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(total),
            }
        }
    }
}

/// What to do about a failed replica transaction.
enum ReplicaFailure {
    /// A condition failed: read the head to tell `Stale` from `Conflict`.
    Condition,
    /// DynamoDB cancelled it because a concurrent transaction touched the same items.
    Retry,
    Fail,
}

fn classify_replica(error: &SdkError<TransactWriteItemsError>) -> ReplicaFailure {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        return ReplicaFailure::Fail;
    };
    let codes: Vec<&str> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or("None"))
        .collect();
    if codes.contains(&"ConditionalCheckFailed") {
        ReplicaFailure::Condition
    } else if codes.contains(&"TransactionConflict")
        && codes
            .iter()
            .all(|c| matches!(*c, "None" | "TransactionConflict"))
    {
        ReplicaFailure::Retry
    } else {
        ReplicaFailure::Fail
    }
}

/// The tie breaker of audit sort keys: the wall clock in nanoseconds, but strictly
/// increasing within this process, so that lines with the same `at` appended by one process
/// keep their order (and across processes roughly follow time; the random suffix of the key
/// keeps two processes' lines apart).
fn audit_tick() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// `N` random bytes as hex.
fn random_hex<const N: usize>() -> Result<String, StoreError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| StoreError::Unavailable(format!("no randomness for a key: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What to do about a failed write transaction.
enum Outcome {
    /// The head condition failed: the id exists, or the head moved on.
    Conflict,
    /// Only the outbox counter was stale, or DynamoDB cancelled the transaction because a
    /// concurrent one touched the same items: read the counter again and retry.
    Retry,
    Fail,
}

fn classify(error: &SdkError<TransactWriteItemsError>) -> Outcome {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        return Outcome::Fail;
    };
    let reasons: Vec<&str> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or("None"))
        .collect();
    let code = |index: usize| reasons.get(index).copied().unwrap_or("None");
    // The head decides first: if it failed its condition, the write can never succeed,
    // whatever happened to the counter.
    if code(TX_HEAD) == "ConditionalCheckFailed" || code(TX_VERSION) == "ConditionalCheckFailed" {
        return Outcome::Conflict;
    }
    let retriable = |c: &str| matches!(c, "None" | "TransactionConflict");
    let counter_lost =
        code(TX_COUNTER) == "ConditionalCheckFailed" || code(TX_OUTBOX) == "ConditionalCheckFailed";
    let others_retriable = reasons
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != TX_COUNTER && *i != TX_OUTBOX)
        .all(|(_, c)| retriable(c));
    let conflicted = reasons.contains(&"TransactionConflict");
    if (counter_lost || conflicted) && others_retriable {
        Outcome::Retry
    } else {
        Outcome::Fail
    }
}

fn sdk_error<E, R>(what: &str, error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    // A service error's code and message say what went wrong; the full context (raw
    // response included) is only worth its length for transport failures.
    let detail = match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(&error).to_string(),
    };
    StoreError::Unavailable(format!("DynamoDB {what}: {detail}"))
}

/// A request builder refused its input: only possible if this adapter left out a required
/// field, which no retry fixes, but which says nothing about the stored data either.
fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("building a DynamoDB request: {error}"))
}

/// A random idempotency token (32 hex digits; DynamoDB accepts up to 36 characters).
fn request_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| StoreError::Unavailable(format!("no randomness for a request token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A random wait between half of `backoff` and `backoff`, so that writers that lost the
/// same race do not all come back at the same moment.
fn jitter(backoff: Duration) -> Result<Duration, StoreError> {
    let mut bytes = [0u8; 2];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| StoreError::Unavailable(format!("no randomness for a backoff: {e}")))?;
    let fraction = f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX);
    Ok(backoff.mul_f64(0.5 + fraction / 2.0))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn entity_pk(resource: &str, id: &str) -> String {
    format!("E#{resource}#{id}")
}

fn listing_pk(resource: &str) -> String {
    format!("R#{resource}")
}

/// Fixed width, so that the sort key order is the numeric order.
fn version_sk(version: u64) -> String {
    format!("V#{version:020}")
}

fn seq_sk(seq: u64) -> String {
    format!("{seq:020}")
}

fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::Corrupt(format!(
            "item lacks the string attribute {name}"
        ))),
    }
}

fn number(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a u64: {value}"))),
        _ => Err(StoreError::Corrupt(format!(
            "item lacks the number attribute {name}"
        ))),
    }
}

fn json<T: for<'de> Deserialize<'de>>(item: &Item, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(string(item, ITEM)?)
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn entity_version(item: &Item) -> Result<EntityVersion, StoreError> {
    json(item, "entity version")
}

fn encode_cursor(pk: &str, sk: &str) -> Result<String, StoreError> {
    let cursor = Cursor {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
    };
    let bytes = serde_json::to_vec(&cursor)
        .map_err(|e| StoreError::BadRequest(format!("cursor not serialisable: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The id to continue after; refuses cursors of other resources.
fn decode_cursor(pk: &str, cursor: &str) -> Result<String, StoreError> {
    let bad = || StoreError::BadRequest("invalid cursor".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor.pk != pk {
        return Err(StoreError::BadRequest(
            "cursor belongs to another resource".into(),
        ));
    }
    check_id(&cursor.sk)?;
    Ok(cursor.sk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_sort_numerically() {
        assert!(version_sk(9) < version_sk(10));
        assert!(seq_sk(99) < seq_sk(100));
        assert!(seq_sk(u64::MAX).as_str() < COUNTER_SK);
        assert_eq!(seq_sk(u64::MAX).len(), 20);
    }

    #[test]
    fn cursor_round_trip_and_binding() {
        let cursor = encode_cursor("R#productOffering", "po-7").expect("encode");
        assert_eq!(
            decode_cursor("R#productOffering", &cursor),
            Ok("po-7".to_owned())
        );
        assert!(matches!(
            decode_cursor("R#category", &cursor),
            Err(StoreError::BadRequest(_))
        ));
        assert!(matches!(
            decode_cursor("R#category", "%%%"),
            Err(StoreError::BadRequest(_))
        ));
    }

    #[test]
    fn audit_ticks_strictly_increase() {
        let ticks: Vec<u64> = (0..1000).map(|_| audit_tick()).collect();
        assert!(ticks.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(format!("{:020}", ticks[0]).len(), 20);
    }

    #[test]
    fn tokens_are_distinct_hex() {
        let a = request_token().expect("token");
        let b = request_token().expect("token");
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..100 {
            let wait = jitter(Duration::from_millis(10)).expect("jitter");
            assert!(wait >= Duration::from_millis(5) && wait <= Duration::from_millis(10));
        }
    }
}
