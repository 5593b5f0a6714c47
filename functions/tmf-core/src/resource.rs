//! Resource descriptors and the API specifications built from them.
//!
//! A TM Forum API is, for this engine, a base path, a swagger `definitions` set and a list
//! of [`ResourceDescriptor`]s. Adding TMF633, TMF634, TMF632 or TMF669 means embedding their
//! swagger (build.rs) and writing descriptors, not new code.

use crate::schema::{Definitions, SchemaLoadError};

/// Attributes the server sets on every TMF620 resource: a client may neither send them on
/// create nor patch them. `version` is the entity's version number (1, 2, 3...) as a string,
/// the same number as in the stable URL of that version.
pub const SERVER_MANAGED: &[&str] = &["id", "href", "lastUpdate", "version"];

/// Attributes a client may set on create but not change afterwards (the `_Update` schemas
/// of the TMF v4 APIs omit them).
pub const IMMUTABLE_AFTER_CREATE: &[&str] = &["@type", "@baseType"];

/// The notification event type names of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTypes {
    pub create: &'static str,
    pub attribute_value_change: &'static str,
    pub state_change: &'static str,
    pub delete: &'static str,
}

/// Everything the engine needs to know about one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDescriptor {
    /// The resource name, e.g. `productOffering`: the key of the entity inside notification
    /// events and the `resource` column of the store.
    pub name: &'static str,
    /// The collection path segment below the API base path.
    pub path: &'static str,
    /// Swagger definition of the full representation, e.g. `ProductOffering`; also the
    /// default `@type`.
    pub schema: &'static str,
    /// Swagger definition a POST body must satisfy.
    pub create_schema: &'static str,
    /// Swagger definition a PATCH document must satisfy.
    pub update_schema: &'static str,
    /// `lifecycleStatus` given to a new entity that does not state one.
    pub default_lifecycle_status: Option<&'static str>,
    /// Attributes only the server sets.
    pub server_managed: &'static [&'static str],
    /// Attributes fixed at creation.
    pub immutable: &'static [&'static str],
    pub events: EventTypes,
}

/// One TM Forum API: where it is mounted, its schemas and its resources.
#[derive(Debug, Clone)]
pub struct ApiSpec {
    /// e.g. `TMF620`.
    pub id: &'static str,
    /// e.g. `/tmf-api/productCatalogManagement/v4`, without a trailing slash.
    pub base_path: &'static str,
    pub resources: Vec<ResourceDescriptor>,
    definitions: Definitions,
}

/// The compacted TMF620 v4.1.0 swagger definitions (see build.rs).
const TMF620_DEFINITIONS: &str = include_str!(concat!(env!("OUT_DIR"), "/tmf620_v4.1.0.json"));

/// The default lifecycle state of TMF620 catalogue entities (the first state of the TMF620
/// lifecycle).
pub const TMF620_INITIAL_LIFECYCLE_STATUS: &str = "In study";

const fn tmf620_resource(
    name: &'static str,
    schema: &'static str,
    create_schema: &'static str,
    update_schema: &'static str,
    events: EventTypes,
) -> ResourceDescriptor {
    ResourceDescriptor {
        name,
        path: name,
        schema,
        create_schema,
        update_schema,
        default_lifecycle_status: Some(TMF620_INITIAL_LIFECYCLE_STATUS),
        server_managed: SERVER_MANAGED,
        immutable: IMMUTABLE_AFTER_CREATE,
        events,
    }
}

/// The TMF620 Product Catalog Management v4.1.0 resources.
pub fn tmf620_resources() -> Vec<ResourceDescriptor> {
    vec![
        tmf620_resource(
            "catalog",
            "Catalog",
            "Catalog_Create",
            "Catalog_Update",
            EventTypes {
                create: "CatalogCreateEvent",
                attribute_value_change: "CatalogAttributeValueChangeEvent",
                state_change: "CatalogStateChangeEvent",
                delete: "CatalogDeleteEvent",
            },
        ),
        tmf620_resource(
            "category",
            "Category",
            "Category_Create",
            "Category_Update",
            EventTypes {
                create: "CategoryCreateEvent",
                attribute_value_change: "CategoryAttributeValueChangeEvent",
                state_change: "CategoryStateChangeEvent",
                delete: "CategoryDeleteEvent",
            },
        ),
        tmf620_resource(
            "productOffering",
            "ProductOffering",
            "ProductOffering_Create",
            "ProductOffering_Update",
            EventTypes {
                create: "ProductOfferingCreateEvent",
                attribute_value_change: "ProductOfferingAttributeValueChangeEvent",
                state_change: "ProductOfferingStateChangeEvent",
                delete: "ProductOfferingDeleteEvent",
            },
        ),
        tmf620_resource(
            "productOfferingPrice",
            "ProductOfferingPrice",
            "ProductOfferingPrice_Create",
            "ProductOfferingPrice_Update",
            EventTypes {
                create: "ProductOfferingPriceCreateEvent",
                attribute_value_change: "ProductOfferingPriceAttributeValueChangeEvent",
                state_change: "ProductOfferingPriceStateChangeEvent",
                delete: "ProductOfferingPriceDeleteEvent",
            },
        ),
        tmf620_resource(
            "productSpecification",
            "ProductSpecification",
            "ProductSpecification_Create",
            "ProductSpecification_Update",
            EventTypes {
                create: "ProductSpecificationCreateEvent",
                attribute_value_change: "ProductSpecificationAttributeValueChangeEvent",
                state_change: "ProductSpecificationStateChangeEvent",
                delete: "ProductSpecificationDeleteEvent",
            },
        ),
    ]
}

impl ApiSpec {
    /// Builds a specification and checks that every descriptor names definitions that exist.
    pub fn new(
        id: &'static str,
        base_path: &'static str,
        definitions: Definitions,
        resources: Vec<ResourceDescriptor>,
    ) -> Result<Self, SchemaLoadError> {
        for r in &resources {
            for def in [r.schema, r.create_schema, r.update_schema] {
                if !definitions.contains(def) {
                    return Err(SchemaLoadError::Definition {
                        definition: def.to_string(),
                        problem: format!("named by resource {} but not defined", r.name),
                    });
                }
            }
        }
        Ok(Self {
            id,
            base_path: base_path.trim_end_matches('/'),
            resources,
            definitions,
        })
    }

    /// TMF620 Product Catalog Management v4.1.0 with catalog, category, productOffering,
    /// productOfferingPrice and productSpecification.
    pub fn tmf620() -> Result<Self, SchemaLoadError> {
        Self::new(
            "TMF620",
            "/tmf-api/productCatalogManagement/v4",
            Definitions::from_swagger_json(TMF620_DEFINITIONS)?,
            tmf620_resources(),
        )
    }

    /// The resource served at collection path `segment`.
    pub fn resource(&self, segment: &str) -> Option<&ResourceDescriptor> {
        self.resources.iter().find(|r| r.path == segment)
    }

    /// The resource called `name` (the store's `resource` column).
    pub fn resource_by_name(&self, name: &str) -> Option<&ResourceDescriptor> {
        self.resources.iter().find(|r| r.name == name)
    }

    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Mode;
    use serde_json::json;

    #[test]
    fn tmf620_loads_from_the_official_swagger() {
        let api = ApiSpec::tmf620().unwrap();
        assert_eq!(api.resources.len(), 5);
        for r in &api.resources {
            assert_eq!(api.resource(r.path), Some(r));
            assert_eq!(api.resource_by_name(r.name), Some(r));
            assert!(r.events.create.ends_with("CreateEvent"));
            assert!(r.events.create.starts_with(r.schema));
            // the event payload key is the resource name
            let event_def = format!("{}Payload", r.events.create);
            let payload = api.definitions().get(&event_def).unwrap();
            let crate::schema::Schema::Object { properties, .. } = payload else {
                panic!("{event_def} is not an object")
            };
            assert!(properties.contains_key(r.name), "{event_def}");
        }
        assert!(api.resource("importJob").is_none());
        // required: name, from the swagger itself
        let defs = api.definitions();
        let e = defs
            .validate("ProductOffering_Create", &json!({}), Mode::Full)
            .unwrap_err();
        assert_eq!(e.to_string(), "name: required attribute is missing");
        // the CTK's create bodies are valid
        for (def, body) in [
            (
                "ProductSpecification_Create",
                json!({"name": "Cisco Firepower NGFW"}),
            ),
            (
                "ProductOffering_Create",
                json!({"name": "aProductOffering", "productSpecification": {
                    "id": "9881",
                    "href": "https://mycsp.com:8080/tmf-api/productCatalogManagement/v4/productSpecification/9881",
                    "version": "1.1", "name": "Robotics999", "@referredType": "DeviceSpecification"}}),
            ),
            (
                "ProductOfferingPrice_Create",
                json!({"name": "Recurring Charge for Business Firewall", "isBundle": false,
                       "priceType": "recurring"}),
            ),
        ] {
            defs.validate(def, &body, Mode::Full).unwrap();
        }
        // nested references require their id
        let e = defs
            .validate(
                "ProductOffering_Create",
                &json!({"name": "x", "category": [{"name": "no id"}]}),
                Mode::Full,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "category[0].id: required attribute is missing"
        );
    }

    #[test]
    fn descriptors_must_name_existing_definitions() {
        let defs = Definitions::from_swagger_json(r#"{"definitions": {"A": {}}}"#).unwrap();
        let err = ApiSpec::new("X", "/x/", defs, tmf620_resources()).unwrap_err();
        assert!(matches!(err, SchemaLoadError::Definition { .. }));
    }
}
