//! A generic TM Forum resource engine. Pure: no I/O, no AWS, no HTTP server.
//!
//! - [`resource`]: [`ResourceDescriptor`]s and [`ApiSpec`] (TMF620 v4.1.0 built in; other
//!   TMF APIs are more descriptors over their own swagger);
//! - [`schema`]: validation of request bodies against the swagger `_Create` / `_Update`
//!   definitions, with precise messages;
//! - [`entity`]: create and merge-patch with the server-managed attributes (`id`, `href`,
//!   `version`, `lastUpdate`, default `lifecycleStatus` and `@type`);
//! - [`query`]: the TMF630 query language (`fields`, filters and operators, `sort`,
//!   `offset`/`limit`);
//! - [`event`]: notification bodies and hub queries;
//! - [`error`]: the TMF630 `Error` body;
//! - [`time`]: RFC 3339 parsing and UTC formatting.

pub mod entity;
pub mod error;
pub mod event;
pub mod patch;
pub mod query;
pub mod resource;
pub mod schema;
pub mod time;

pub use entity::{uuid_v4, EventKind, PatchOutcome, RequestError};
pub use error::{ErrorCode, TmfError};
pub use event::{notification, HubQuery};
pub use patch::merge_patch;
pub use query::{PageCollector, Query, QueryError, QueryLimits};
pub use resource::{ApiSpec, EventTypes, ResourceDescriptor};
pub use schema::{Definitions, Mode, SchemaLoadError, ValidationError};
pub use time::Timestamp;
