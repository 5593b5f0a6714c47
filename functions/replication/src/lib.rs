//! Replication of catalogue entities between the marketplaces of a federation.
//!
//! The flow, one stage per module:
//!
//! 1. [`publisher`]: takes the store's outbox rows in order, turns each into a signed
//!    [`CatalogueEvent`](dome_events::CatalogueEvent) ([`event`]) and submits it to the bus;
//!    its checkpoint advances only once the bus has committed the events.
//! 2. [`relay`]: follows the accepted events on the bus from its checkpoint, keeps those meant
//!    for this marketplace and hands them over ([`relay::Handoff`]); its checkpoint advances only
//!    once the hand-off is durable.
//! 3. [`replicator`]: fetches the exact version an event announces from its origin
//!    ([`fetch`]), checks it against the event's content hash, applies it to the store if it
//!    is newer, and records every decision in the audit trail; failures retry and end as dead
//!    letters.
//!
//! Nothing here knows about AWS: the store is a [`dome_catalog_store::CatalogStore`], the bus
//! a [`dome_bus_client::BusClient`], the queue whatever implements [`relay::Handoff`]. Locally
//! the hand-off calls the replicator in-process ([`relay::DirectHandoff`]); on AWS it is an
//! SQS FIFO queue (adapters in the function binaries).
//! [`lease`] keeps one active publisher and one active relay per marketplace.

pub mod event;
pub mod fetch;
pub mod lease;
pub mod publisher;
pub mod relay;
pub mod replicator;

/// Now as RFC 3339 UTC with milliseconds and a trailing `Z`.
pub fn now_rfc3339() -> String {
    dome_tmf::Timestamp::from_system_time(std::time::SystemTime::now()).to_string()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
