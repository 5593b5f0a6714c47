//! Client of the dome bus.
//!
//! * [`BusClient`] talks to several validators' CometBFT RPC endpoints (v0.38) with
//!   failover: [`BusClient::submit`] hands a signed [`Transaction`] to a mempool,
//!   [`BusClient::wait_committed`] waits for it to be in a block, and the ABCI query
//!   wrappers ([`BusClient::members`], [`BusClient::entity_head`],
//!   [`BusClient::origin_last_seq`], [`BusClient::events_in_range`]...) read the app's
//!   state.
//! * [`EventFollower`] yields the accepted catalogue events height by height in commit
//!   order from a checkpoint, resumable without gaps or duplicates.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use dome_bus_client::{BusClient, EventFollower, FollowFilter};
//! use dome_events::{test_keys, Transaction};
//!
//! let client = BusClient::new(vec!["http://127.0.0.1:26657".into()], Duration::from_secs(3))?;
//! # let event: dome_events::CatalogueEvent = unimplemented!();
//! let tx = Transaction::signed_event(event, &test_keys::member_keypair(0))?;
//! let committed = client.submit_and_wait(&tx, Duration::from_secs(20)).await?;
//! println!("accepted: {} at height {}", committed.accepted(), committed.height);
//!
//! let mut follower = EventFollower::new(client.clone(), 0)
//!     .with_filter(FollowFilter::for_member(test_keys::member_id(1)));
//! while let Some(batch) = follower.next_height().await? {
//!     for accepted in &batch.events {
//!         println!("{} #{}: {:?}", accepted.height, accepted.index, accepted.event.entity);
//!     }
//!     follower.ack(batch.height)?;
//! }
//! # Ok(()) }
//! ```
//!
//! [`Transaction`]: dome_events::Transaction

#![warn(missing_docs)]

mod client;
mod failover;
mod follower;
mod hash;
mod query;

pub use client::{
    BusClient, BusClientConfig, Committed, ConfigError, QueryAnswer, SubmitAndWaitError,
    SubmitError, Submitted, WaitError, DEFAULT_POLL_INTERVAL, DEFAULT_REQUEST_TIMEOUT,
};
pub use failover::{attempt_order, AllEndpointsFailed, EndpointFailure, FailureKind};
pub use follower::{
    extract_accepted, AcceptedEvent, AckError, BlockSource, EventFollower, FollowError,
    FollowFilter, HeightBatch, LengthMismatch, RawBlock, SourceError, UndecodableTx,
};
pub use hash::tx_hash;
pub use query::{known_query_code, QueryError};
