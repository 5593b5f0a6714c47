//! TMF notification events and hub (listener registration) queries.

use serde_json::{json, Value};

use crate::entity::EventKind;
use crate::query::{FilterSet, QueryError, QueryLimits};
use crate::resource::ResourceDescriptor;
use crate::time::Timestamp;

impl ResourceDescriptor {
    /// The `eventType` of a change of this resource, e.g. `ProductOfferingStateChangeEvent`.
    pub fn event_type(&self, kind: EventKind) -> &'static str {
        match kind {
            EventKind::Create => self.events.create,
            EventKind::AttributeValueChange => self.events.attribute_value_change,
            EventKind::StateChange => self.events.state_change,
            EventKind::Delete => self.events.delete,
        }
    }
}

/// The body POSTed to a listener:
/// `{eventId, eventTime, eventType, event: {<resource name>: <entity>}}`.
/// For a delete, `entity` is the last representation before the delete.
pub fn notification(
    resource: &ResourceDescriptor,
    kind: EventKind,
    entity: &Value,
    event_id: &str,
    event_time: Timestamp,
) -> Value {
    let mut payload = serde_json::Map::new();
    payload.insert(resource.name.to_string(), entity.clone());
    json!({
        "eventId": event_id,
        "eventTime": event_time.to_rfc3339_millis(),
        "eventType": resource.event_type(kind),
        "event": Value::Object(payload),
    })
}

/// Attributes of the notification itself; a hub filter on any other attribute applies to
/// the entity inside the event.
const NOTIFICATION_ATTRIBUTES: &[&str] = &["eventId", "eventTime", "eventType", "event"];

/// The `query` of a hub registration: TMF630 filters over the notification, e.g.
/// `eventType=ProductOfferingStateChangeEvent&event.productOffering.lifecycleStatus=Launched`.
/// A filter whose first segment is not `eventId`, `eventTime`, `eventType` or `event` applies
/// to the entity, so `lifecycleStatus=Launched` is short for the long form above. An empty
/// query matches every event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HubQuery {
    filters: FilterSet,
}

impl HubQuery {
    pub fn parse(raw: &str, limits: &QueryLimits) -> Result<Self, QueryError> {
        Ok(Self {
            filters: FilterSet::parse(raw, limits)?,
        })
    }

    /// Whether `notification` (built by [`notification`]) is wanted by this registration.
    pub fn matches(&self, notification: &Value) -> bool {
        let entity = notification
            .get("event")
            .and_then(Value::as_object)
            .and_then(|payload| payload.values().next());
        self.filters.filters.iter().all(|filter| {
            let on_notification = filter
                .path
                .first()
                .is_some_and(|head| NOTIFICATION_ATTRIBUTES.contains(&head.as_str()));
            if on_notification {
                filter.matches(notification)
            } else {
                entity.is_some_and(|e| filter.matches(e))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ApiSpec;

    fn event(kind: EventKind) -> Value {
        let api = ApiSpec::tmf620().unwrap();
        let r = api.resource("productOffering").unwrap();
        let entity = json!({"id": "1", "name": "Fibre", "lifecycleStatus": "Launched"});
        notification(r, kind, &entity, "e-1", Timestamp::new(0, 0))
    }

    #[test]
    fn notification_shape() {
        assert_eq!(
            event(EventKind::StateChange),
            json!({
                "eventId": "e-1",
                "eventTime": "1970-01-01T00:00:00.000Z",
                "eventType": "ProductOfferingStateChangeEvent",
                "event": {"productOffering": {"id": "1", "name": "Fibre", "lifecycleStatus": "Launched"}}
            })
        );
        let api = ApiSpec::tmf620().unwrap();
        let cat = api.resource("category").unwrap();
        assert_eq!(cat.event_type(EventKind::Create), "CategoryCreateEvent");
        assert_eq!(
            cat.event_type(EventKind::AttributeValueChange),
            "CategoryAttributeValueChangeEvent"
        );
        assert_eq!(cat.event_type(EventKind::Delete), "CategoryDeleteEvent");
    }

    #[test]
    fn hub_queries() {
        let limits = QueryLimits::default();
        let created = event(EventKind::Create);
        let deleted = event(EventKind::Delete);
        let check = |raw: &str, e: &Value| HubQuery::parse(raw, &limits).unwrap().matches(e);
        assert!(check("", &created));
        assert!(check("eventType=ProductOfferingCreateEvent", &created));
        assert!(!check("eventType=ProductOfferingCreateEvent", &deleted));
        assert!(check(
            "eventType=ProductOfferingCreateEvent,ProductOfferingDeleteEvent",
            &deleted
        ));
        assert!(check(
            "event.productOffering.lifecycleStatus=Launched",
            &created
        ));
        assert!(check(
            "lifecycleStatus=Launched&eventType=ProductOfferingDeleteEvent",
            &deleted
        ));
        assert!(!check("lifecycleStatus=Retired", &created));
        assert!(check("name.regex=^Fib", &created));
        assert!(!check("eventType=CategoryCreateEvent", &created));
        assert!(HubQuery::parse("limit=3", &limits).is_err());
        assert!(HubQuery::parse("name.regex=(", &limits).is_err());
    }
}
