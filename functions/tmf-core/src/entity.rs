//! Turning requests into entity representations: create and merge-patch with validation and
//! the server-managed attributes, and the URLs of entities and of their versions.

use serde_json::{Map, Value};

use crate::error::{ErrorCode, TmfError};
use crate::patch::merge_patch;
use crate::resource::{ApiSpec, ResourceDescriptor};
use crate::schema::{Mode, ValidationError};
use crate::time::{self, Timestamp};

/// A request body that cannot become an entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("{attribute} is set by the server and cannot be {action}")]
    ReadOnly {
        attribute: String,
        action: &'static str,
    },
    #[error("{attribute} cannot be changed after creation")]
    Immutable { attribute: String },
}

impl From<RequestError> for TmfError {
    fn from(e: RequestError) -> Self {
        let code = match e {
            RequestError::NotAnObject | RequestError::Invalid(_) => ErrorCode::InvalidBody,
            RequestError::ReadOnly { .. } | RequestError::Immutable { .. } => {
                ErrorCode::ReadOnlyField
            }
        };
        TmfError::new(code, e.to_string())
    }
}

/// What a change did, as notifications name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Create,
    AttributeValueChange,
    StateChange,
    Delete,
}

/// The result of applying a PATCH to the current representation.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOutcome {
    /// The patch changes nothing: no new version is written.
    Unchanged,
    Changed {
        /// The full representation of the next version.
        body: Value,
        /// `StateChange` if `lifecycleStatus` changed, `AttributeValueChange` if anything
        /// else changed (both when both did).
        events: Vec<EventKind>,
    },
}

impl PatchOutcome {
    /// Whether `lifecycleStatus` changed.
    pub fn is_state_change(&self) -> bool {
        matches!(self, Self::Changed { events, .. } if events.contains(&EventKind::StateChange))
    }
}

/// Formats 16 random bytes as a version 4 UUID (the id of new entities and events).
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The `lastUpdate` of a new version: now (millisecond precision), but always after the
/// previous version's, so that `lastUpdate.gt=` sees every change even if the clock steps back.
pub fn next_last_update(now: Timestamp, previous: Option<&str>) -> Timestamp {
    let now = now.truncate_to_millis();
    match previous.and_then(time::parse_rfc3339) {
        Some(prev) if prev >= now => prev.truncate_to_millis().plus_millis(1),
        _ => now,
    }
}

impl ApiSpec {
    /// `{base_url}{base_path}/{path}/{id}`: the entity's `href` and `Location`.
    pub fn href(&self, base_url: &str, resource: &ResourceDescriptor, id: &str) -> String {
        format!(
            "{}{}/{}/{}",
            base_url.trim_end_matches('/'),
            self.base_path,
            resource.path,
            id
        )
    }

    /// The stable URL of one version: `{href}/version/{n}`.
    pub fn version_url(
        &self,
        base_url: &str,
        resource: &ResourceDescriptor,
        id: &str,
        version: u64,
    ) -> String {
        format!("{}/version/{version}", self.href(base_url, resource, id))
    }

    /// Validates a POST body and returns version 1 of the entity: the body with `id`,
    /// `href`, `version` ("1"), `lastUpdate` and, when absent, `lifecycleStatus` and `@type`.
    pub fn prepare_create(
        &self,
        resource: &ResourceDescriptor,
        body: Value,
        id: &str,
        href: &str,
        now: Timestamp,
    ) -> Result<Value, RequestError> {
        let Some(members) = body.as_object() else {
            return Err(RequestError::NotAnObject);
        };
        if let Some(attribute) = resource
            .server_managed
            .iter()
            .find(|a| members.contains_key(**a))
        {
            return Err(RequestError::ReadOnly {
                attribute: attribute.to_string(),
                action: "sent on create",
            });
        }
        self.definitions()
            .validate(resource.create_schema, &body, Mode::Full)?;
        let Value::Object(mut members) = body else {
            return Err(RequestError::NotAnObject);
        };
        apply_defaults(resource, &mut members);
        set_server_fields(&mut members, id, href, 1, next_last_update(now, None));
        Ok(Value::Object(members))
    }

    /// Applies a merge-patch document to the current representation (version
    /// `current_version`) and returns the next version, or `Unchanged`.
    pub fn prepare_patch(
        &self,
        resource: &ResourceDescriptor,
        current: &Value,
        current_version: u64,
        patch: &Value,
        now: Timestamp,
    ) -> Result<PatchOutcome, RequestError> {
        let Some(patch_members) = patch.as_object() else {
            return Err(RequestError::NotAnObject);
        };
        if let Some(attribute) = resource
            .server_managed
            .iter()
            .find(|a| patch_members.contains_key(**a))
        {
            return Err(RequestError::ReadOnly {
                attribute: attribute.to_string(),
                action: "patched",
            });
        }
        if let Some(attribute) = resource
            .immutable
            .iter()
            .find(|a| patch_members.contains_key(**a))
        {
            return Err(RequestError::Immutable {
                attribute: attribute.to_string(),
            });
        }
        self.definitions()
            .validate(resource.update_schema, patch, Mode::MergePatch)?;

        let current_members = current.as_object().cloned().unwrap_or_default();
        let mut base = current_members.clone();
        for attribute in resource.server_managed {
            base.remove(*attribute);
        }
        let mut merged = Value::Object(base.clone());
        merge_patch(&mut merged, patch);
        if let Value::Object(members) = &mut merged {
            apply_defaults(resource, members);
        }
        self.definitions()
            .validate(resource.create_schema, &merged, Mode::Full)?;
        let Value::Object(mut merged) = merged else {
            return Err(RequestError::NotAnObject);
        };
        if merged == base {
            return Ok(PatchOutcome::Unchanged);
        }

        let mut events = Vec::new();
        if merged.get("lifecycleStatus") != base.get("lifecycleStatus") {
            events.push(EventKind::StateChange);
        }
        let others_changed = merged
            .iter()
            .filter(|(k, _)| *k != "lifecycleStatus")
            .any(|(k, v)| base.get(k) != Some(v))
            || base
                .keys()
                .any(|k| k != "lifecycleStatus" && !merged.contains_key(k));
        if others_changed {
            events.push(EventKind::AttributeValueChange);
        }

        let id = current_members
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let href = current_members
            .get("href")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let last_update = next_last_update(
            now,
            current_members.get("lastUpdate").and_then(Value::as_str),
        );
        set_server_fields(&mut merged, id, href, current_version + 1, last_update);
        Ok(PatchOutcome::Changed {
            body: Value::Object(merged),
            events,
        })
    }
}

fn apply_defaults(resource: &ResourceDescriptor, members: &mut Map<String, Value>) {
    if let Some(status) = resource.default_lifecycle_status {
        members
            .entry("lifecycleStatus")
            .or_insert_with(|| Value::String(status.to_string()));
    }
    members
        .entry("@type")
        .or_insert_with(|| Value::String(resource.schema.to_string()));
}

fn set_server_fields(
    members: &mut Map<String, Value>,
    id: &str,
    href: &str,
    version: u64,
    last_update: Timestamp,
) {
    members.insert("id".into(), Value::String(id.to_string()));
    members.insert("href".into(), Value::String(href.to_string()));
    members.insert("version".into(), Value::String(version.to_string()));
    members.insert(
        "lastUpdate".into(),
        Value::String(last_update.to_rfc3339_millis()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api() -> ApiSpec {
        ApiSpec::tmf620().unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::new(1_700_000_000, 123_456_789)
    }

    fn created(api: &ApiSpec, name: &str, body: Value) -> Value {
        let r = api.resource(name).unwrap();
        let href = api.href("https://m.example", r, "id-1");
        api.prepare_create(r, body, "id-1", &href, now()).unwrap()
    }

    #[test]
    fn create_sets_server_fields_and_defaults() {
        let api = api();
        let body = created(
            &api,
            "productOffering",
            json!({"name": "x", "myExt": {"a": 1}}),
        );
        assert_eq!(
            body,
            json!({
                "id": "id-1",
                "href": "https://m.example/tmf-api/productCatalogManagement/v4/productOffering/id-1",
                "name": "x",
                "myExt": {"a": 1},
                "version": "1",
                "lastUpdate": "2023-11-14T22:13:20.123Z",
                "lifecycleStatus": "In study",
                "@type": "ProductOffering"
            })
        );
        let own = created(
            &api,
            "catalog",
            json!({"name": "c", "lifecycleStatus": "Launched", "@type": "MyCatalog",
                   "@baseType": "Catalog", "@schemaLocation": "https://s.example/c.json"}),
        );
        assert_eq!(own["lifecycleStatus"], "Launched");
        assert_eq!(own["@type"], "MyCatalog");
        assert_eq!(own["@baseType"], "Catalog");
    }

    #[test]
    fn create_refuses_server_fields_and_invalid_bodies() {
        let api = api();
        let r = api.resource("category").unwrap();
        for attribute in ["id", "href", "lastUpdate", "version"] {
            let mut body = json!({"name": "x"});
            body[attribute] = json!("1");
            let e = api.prepare_create(r, body, "i", "h", now()).unwrap_err();
            assert_eq!(
                e,
                RequestError::ReadOnly {
                    attribute: attribute.into(),
                    action: "sent on create"
                }
            );
            assert_eq!(TmfError::from(e).code, "ReadOnlyField");
        }
        let e = api
            .prepare_create(r, json!([1]), "i", "h", now())
            .unwrap_err();
        assert_eq!(e, RequestError::NotAnObject);
        let e = api
            .prepare_create(r, json!({"isRoot": "yes"}), "i", "h", now())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "name: required attribute is missing; isRoot: must be a boolean, not a string"
        );
        let e = api
            .prepare_create(
                r,
                json!({"name": "x", "@schemaLocation": "not a uri"}),
                "i",
                "h",
                now(),
            )
            .unwrap_err();
        assert_eq!(TmfError::from(e).http_status(), 400);
    }

    #[test]
    fn patch_merges_and_versions() {
        let api = api();
        let r = api.resource("productOffering").unwrap();
        let current = created(
            &api,
            "productOffering",
            json!({"name": "x", "description": "d", "validFor": {"startDateTime": "2024-01-01T00:00:00Z"}}),
        );
        let later = Timestamp::new(1_700_000_100, 0);
        let patch = json!({"name": "y", "description": null,
                           "validFor": {"endDateTime": "2025-01-01T00:00:00Z"}});
        let PatchOutcome::Changed { body, events } =
            api.prepare_patch(r, &current, 1, &patch, later).unwrap()
        else {
            panic!("expected a change")
        };
        assert_eq!(events, [EventKind::AttributeValueChange]);
        assert_eq!(body["name"], "y");
        assert!(body.get("description").is_none());
        assert_eq!(
            body["validFor"],
            json!({"startDateTime": "2024-01-01T00:00:00Z", "endDateTime": "2025-01-01T00:00:00Z"})
        );
        assert_eq!(body["version"], "2");
        assert_eq!(body["id"], current["id"]);
        assert_eq!(body["href"], current["href"]);
        assert_eq!(body["lastUpdate"], "2023-11-14T22:15:00.000Z");
    }

    #[test]
    fn patch_event_kinds() {
        let api = api();
        let r = api.resource("productSpecification").unwrap();
        let current = created(&api, "productSpecification", json!({"name": "x"}));
        let kinds = |patch: Value| match api.prepare_patch(r, &current, 1, &patch, now()).unwrap() {
            PatchOutcome::Changed { events, .. } => events,
            PatchOutcome::Unchanged => vec![],
        };
        assert_eq!(
            kinds(json!({"lifecycleStatus": "Launched"})),
            [EventKind::StateChange]
        );
        assert_eq!(
            kinds(json!({"lifecycleStatus": "Launched", "brand": "b"})),
            [EventKind::StateChange, EventKind::AttributeValueChange]
        );
        assert_eq!(
            kinds(json!({"brand": "b"})),
            [EventKind::AttributeValueChange]
        );
        // no-ops: same value, removing an absent attribute, empty patch
        assert_eq!(kinds(json!({"name": "x"})), []);
        assert_eq!(kinds(json!({"brand": null})), []);
        assert_eq!(kinds(json!({})), []);
        // removing lifecycleStatus restores the default: no change
        assert_eq!(kinds(json!({"lifecycleStatus": null})), []);
        assert!(api
            .prepare_patch(r, &current, 1, &json!({"lifecycleStatus": "Active"}), now())
            .unwrap()
            .is_state_change());
    }

    #[test]
    fn patch_refuses_read_only_and_invalid_documents() {
        let api = api();
        let r = api.resource("productOfferingPrice").unwrap();
        let current = created(&api, "productOfferingPrice", json!({"name": "p"}));
        for attribute in ["id", "href", "lastUpdate", "version"] {
            let mut patch = json!({});
            patch[attribute] = json!(null);
            let e = api
                .prepare_patch(r, &current, 1, &patch, now())
                .unwrap_err();
            assert!(matches!(e, RequestError::ReadOnly { .. }), "{attribute}");
        }
        for attribute in ["@type", "@baseType"] {
            let mut patch = json!({});
            patch[attribute] = json!("Other");
            let e = api
                .prepare_patch(r, &current, 1, &patch, now())
                .unwrap_err();
            assert_eq!(
                e,
                RequestError::Immutable {
                    attribute: attribute.into()
                }
            );
        }
        let e = api
            .prepare_patch(r, &current, 1, &json!("x"), now())
            .unwrap_err();
        assert_eq!(e, RequestError::NotAnObject);
        let e = api
            .prepare_patch(r, &current, 1, &json!({"isBundle": "no"}), now())
            .unwrap_err();
        assert_eq!(e.to_string(), "isBundle: must be a boolean, not a string");
        // removing a required attribute
        let e = api
            .prepare_patch(r, &current, 1, &json!({"name": null}), now())
            .unwrap_err();
        assert_eq!(e.to_string(), "name: required attribute is missing");
        let e = api
            .prepare_patch(r, &current, 1, &json!({"price": {"value": "1"}}), now())
            .unwrap_err();
        assert_eq!(e.to_string(), "price.value: must be a number, not a string");
    }

    #[test]
    fn last_update_never_goes_back() {
        let t = Timestamp::new(100, 5_000_000);
        assert_eq!(next_last_update(t, None), t);
        assert_eq!(
            next_last_update(t, Some("1970-01-01T00:01:40.005Z")),
            Timestamp::new(100, 6_000_000)
        );
        assert_eq!(
            next_last_update(t, Some("1970-01-01T00:05:00.000Z")),
            Timestamp::new(300, 1_000_000)
        );
        assert_eq!(next_last_update(t, Some("1970-01-01T00:00:01Z")), t);
        assert_eq!(next_last_update(t, Some("garbage")), t);
    }

    #[test]
    fn uuids_and_urls() {
        let id = uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        let api = api();
        let r = api.resource("catalog").unwrap();
        assert_eq!(
            api.version_url("http://127.0.0.1:8080/", r, "abc", 3),
            "http://127.0.0.1:8080/tmf-api/productCatalogManagement/v4/catalog/abc/version/3"
        );
    }
}
