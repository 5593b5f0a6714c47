//! From a stored version to the event that announces it, and the form in which an accepted
//! event travels from the relay to the replicator. Pure: no I/O.

use dome_catalog_store::{ChangeKind, EntityVersion, OutboxEntry};
use dome_events::model::InvalidField;
use dome_events::{Action, Audience, CatalogueEvent, ContentHash, EntityRef, MemberId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The extension attribute with which an entity names the members entitled to it
/// (absent: every member). Validated by `tmf-api` on every write.
pub const AUDIENCE_ATTRIBUTE: &str = "@audience";

/// Why an outbox row cannot become an event. The row cannot be published until the cause
/// is fixed, so these are reported loudly (they mean stored data breaks an invariant).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{resource}/{id} version {version}: {reason}")]
    Invalid {
        resource: String,
        id: String,
        version: u64,
        reason: String,
    },
}

fn invalid(version: &EntityVersion, reason: impl Into<String>) -> BuildError {
    BuildError::Invalid {
        resource: version.resource.clone(),
        id: version.id.clone(),
        version: version.version,
        reason: reason.into(),
    }
}

/// The audience an entity body declares.
pub fn audience_of(body: &Value) -> Result<Audience, String> {
    let Some(value) = body.get(AUDIENCE_ATTRIBUTE) else {
        return Ok(Audience::All);
    };
    let list = value
        .as_array()
        .ok_or_else(|| format!("{AUDIENCE_ATTRIBUTE} must be an array of member ids"))?;
    let mut members = Vec::with_capacity(list.len());
    for item in list {
        let text = item
            .as_str()
            .ok_or_else(|| format!("{AUDIENCE_ATTRIBUTE} must be an array of member ids"))?;
        members.push(MemberId::new(text).map_err(|e| e.to_string())?);
    }
    Ok(Audience::Members(members))
}

/// sha256 of the RFC 8785 canonical JSON of a version's body: what events carry and what
/// replicators check fetched content against.
pub fn content_hash(body: &Value) -> Result<ContentHash, String> {
    ContentHash::of_json(body).map_err(|e| e.to_string())
}

/// The immutable URL of one version: the entity's absolute `href` plus `/version/{n}`
/// (the route `tmf-api` serves exact versions at).
pub fn version_location(body: &Value, version: u64) -> Result<String, String> {
    let href = body
        .get("href")
        .and_then(Value::as_str)
        .ok_or("the stored body has no href")?;
    Ok(format!("{}/version/{version}", href.trim_end_matches('/')))
}

fn action_of(change: ChangeKind) -> Action {
    match change {
        ChangeKind::Create => Action::Create,
        ChangeKind::Update => Action::Update,
        ChangeKind::StateChange => Action::StateChange,
        ChangeKind::Delete => Action::Delete,
    }
}

/// The event announcing outbox row `entry`, whose version is `version`; `previous` is the
/// version before it (required for every change but a create). The origin's sequence number
/// is the outbox position: both count this marketplace's changes 1, 2, 3... without gaps, so
/// a row published twice is recognised by the bus as a replay.
pub fn build_event(
    origin: &MemberId,
    entry: &OutboxEntry,
    version: &EntityVersion,
    previous: Option<&EntityVersion>,
    issued_at: String,
) -> Result<CatalogueEvent, BuildError> {
    if version.resource != entry.resource
        || version.id != entry.id
        || version.version != entry.version
    {
        return Err(invalid(
            version,
            "the version does not belong to the outbox row",
        ));
    }
    let action = action_of(entry.change);
    let announced_hash = if action == Action::Delete {
        None
    } else {
        Some(content_hash(&version.body).map_err(|e| invalid(version, e))?)
    };
    let previous_hash = match (action, previous) {
        (Action::Create, _) => None,
        (_, Some(previous)) => Some(content_hash(&previous.body).map_err(|e| invalid(version, e))?),
        (_, None) => return Err(invalid(version, "the previous version is missing")),
    };
    // A tombstone keeps the last representation, hence the audience the entity had.
    let audience = audience_of(&version.body).map_err(|e| invalid(version, e))?;
    let location =
        version_location(&version.body, version.version).map_err(|e| invalid(version, e))?;
    let event = CatalogueEvent {
        origin: origin.clone(),
        origin_seq: entry.seq,
        entity: EntityRef {
            entity_type: version.resource.clone(),
            id: version.id.clone(),
            version: version.version,
        },
        action,
        content_hash: announced_hash,
        previous_hash,
        location,
        audience,
        issued_at,
    };
    event
        .validate()
        .map_err(|e: InvalidField| invalid(version, e.to_string()))?;
    Ok(event)
}

/// An accepted event on its way from the relay to the replicator, with its place on the
/// bus (the provenance a replica records). This is the body of a replication queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub height: u64,
    pub index: u32,
    /// Uppercase hex sha256 of the event's own signed transaction (the CometBFT hash when it
    /// travelled alone; inside a bundle, the hash of its canonical bytes).
    pub tx_hash: String,
    pub event: CatalogueEvent,
}

impl Delivery {
    /// The key that orders deliveries: one entity's events are applied in bus order.
    pub fn entity_key(&self) -> String {
        self.event.entity.key()
    }
}

impl From<dome_bus_client::AcceptedEvent> for Delivery {
    fn from(accepted: dome_bus_client::AcceptedEvent) -> Self {
        Delivery {
            height: accepted.height,
            index: accepted.index,
            tx_hash: accepted.tx_hash,
            event: accepted.event,
        }
    }
}

/// Splits deliveries into the newest per entity (to fetch) and the older ones it makes
/// unnecessary (superseded), keeping bus order within each list. During catch-up many
/// versions of one entity are pending; only the newest needs fetching.
pub fn coalesce(deliveries: Vec<Delivery>) -> (Vec<Delivery>, Vec<Delivery>) {
    let mut newest: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for d in &deliveries {
        let entry = newest.entry(d.entity_key()).or_insert(0);
        *entry = (*entry).max(d.event.entity.version);
    }
    deliveries
        .into_iter()
        .partition(|d| newest.get(&d.entity_key()) == Some(&d.event.entity.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(n: u64, body: Value, deleted: bool) -> EntityVersion {
        EntityVersion {
            resource: "productOffering".into(),
            id: "po-1".into(),
            version: n,
            body,
            last_update: "2026-11-29T10:00:00.000Z".into(),
            deleted,
            provenance: None,
        }
    }

    fn body(name: &str) -> Value {
        json!({"id": "po-1", "href": "http://127.0.0.1:8080/tmf-api/productCatalogManagement/v4/productOffering/po-1", "name": name})
    }

    fn entry(seq: u64, n: u64, change: ChangeKind) -> OutboxEntry {
        OutboxEntry {
            seq,
            resource: "productOffering".into(),
            id: "po-1".into(),
            version: n,
            change,
        }
    }

    fn origin() -> MemberId {
        MemberId::new("market-a").expect("valid id")
    }

    #[test]
    fn create_carries_the_hash_of_the_canonical_body_and_the_version_url() {
        let v1 = version(1, body("x"), false);
        let event = build_event(
            &origin(),
            &entry(7, 1, ChangeKind::Create),
            &v1,
            None,
            "2026-11-29T10:00:00.000Z".into(),
        )
        .expect("builds");
        assert_eq!(event.origin_seq, 7);
        assert_eq!(event.action, Action::Create);
        assert_eq!(
            event.content_hash,
            Some(ContentHash::of_json(&body("x")).expect("hash"))
        );
        assert_eq!(event.previous_hash, None);
        assert!(event.location.ends_with("/productOffering/po-1/version/1"));
        assert_eq!(event.audience, Audience::All);
    }

    #[test]
    fn update_chains_to_the_previous_body_and_delete_has_no_content() {
        let v1 = version(1, body("x"), false);
        let v2 = version(2, body("y"), false);
        let update = build_event(
            &origin(),
            &entry(2, 2, ChangeKind::Update),
            &v2,
            Some(&v1),
            "2026-11-29T10:00:00.000Z".into(),
        )
        .expect("builds");
        assert_eq!(update.previous_hash, update_hash(&v1));
        let v3 = version(3, body("y"), true);
        let delete = build_event(
            &origin(),
            &entry(3, 3, ChangeKind::Delete),
            &v3,
            Some(&v2),
            "2026-11-29T10:00:00.000Z".into(),
        )
        .expect("builds");
        assert_eq!(delete.action, Action::Delete);
        assert_eq!(delete.content_hash, None);
        assert_eq!(delete.previous_hash, update.content_hash);
    }

    fn update_hash(v: &EntityVersion) -> Option<ContentHash> {
        Some(ContentHash::of_json(&v.body).expect("hash"))
    }

    #[test]
    fn a_change_without_its_previous_version_or_href_is_refused() {
        let v2 = version(2, body("y"), false);
        assert!(build_event(
            &origin(),
            &entry(2, 2, ChangeKind::Update),
            &v2,
            None,
            "2026-11-29T10:00:00.000Z".into()
        )
        .is_err());
        let no_href = version(1, json!({"id": "po-1"}), false);
        assert!(build_event(
            &origin(),
            &entry(1, 1, ChangeKind::Create),
            &no_href,
            None,
            "2026-11-29T10:00:00.000Z".into()
        )
        .is_err());
        // The row and the version disagree.
        let v1 = version(1, body("x"), false);
        assert!(build_event(
            &origin(),
            &entry(1, 2, ChangeKind::Create),
            &v1,
            None,
            "2026-11-29T10:00:00.000Z".into()
        )
        .is_err());
    }

    #[test]
    fn audience_comes_from_the_body() {
        let mut b = body("x");
        b[AUDIENCE_ATTRIBUTE] = json!(["market-b"]);
        let v1 = version(1, b, false);
        let event = build_event(
            &origin(),
            &entry(1, 1, ChangeKind::Create),
            &v1,
            None,
            "2026-11-29T10:00:00.000Z".into(),
        )
        .expect("builds");
        assert_eq!(
            event.audience,
            Audience::Members(vec![MemberId::new("market-b").expect("id")])
        );
        assert!(audience_of(&json!({"@audience": "market-b"})).is_err());
        assert!(audience_of(&json!({"@audience": ["Not Valid"]})).is_err());
        assert!(audience_of(&json!({"@audience": [1]})).is_err());
    }

    #[test]
    fn coalesce_keeps_the_newest_version_per_entity() {
        let mut deliveries = Vec::new();
        for (i, (id, n)) in [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2), ("c", 1)]
            .iter()
            .enumerate()
        {
            let mut event = dome_events::test_keys::sample_create(0, i as u64 + 1, id);
            event.entity.version = *n;
            deliveries.push(Delivery {
                height: 5,
                index: i as u32,
                tx_hash: format!("{i:064}"),
                event,
            });
        }
        let (fetch, superseded) = coalesce(deliveries);
        let keep: Vec<(String, u64)> = fetch
            .iter()
            .map(|d| (d.event.entity.id.clone(), d.event.entity.version))
            .collect();
        assert_eq!(
            keep,
            vec![("a".into(), 3), ("b".into(), 2), ("c".into(), 1)]
        );
        assert_eq!(superseded.len(), 3);
    }
}
