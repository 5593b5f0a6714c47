//! The ABCI 2.0 application every dome validator runs beside CometBFT v0.38.
//!
//! - [`state`]: the pure, deterministic rules of the bus and its change sets;
//! - [`store`]: crash-safe persistence (redb), one atomic write per block;
//! - [`app`]: the ABCI calls (CheckTx, Prepare/ProcessProposal, FinalizeBlock, Commit...);
//! - [`query`]: the `abci_query` paths;
//! - [`server`]: the ABCI socket server CometBFT connects to.

pub mod app;
pub mod query;
pub mod server;
pub mod state;
pub mod store;

pub use app::DomeApp;
