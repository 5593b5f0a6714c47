//! The TMF620 Product Catalog Management API of a dome marketplace.
//!
//! One axum [`Router`](axum::Router) ([`app::router`]) serves both runtimes: the plain HTTP
//! server (tokio) and AWS Lambda behind a function URL (`lambda_http`, payload v2). Entities
//! live in a [`dome_catalog_store::CatalogStore`]; validation, queries, patching and events
//! come from the pure engine `dome-tmf`. Replication support: entity audiences and signed
//! fetches ([`audience`], [`members`]) and the replication API ([`replication`]).

pub mod app;
pub mod audience;
pub mod auth;
pub mod cache;
pub mod config;
pub mod jwt;
pub mod members;
pub mod notify;
pub mod replication;
pub mod startup;

pub use app::{router, AppState};
pub use auth::{StaticTokens, TokenVerifier};
pub use cache::HeadCache;
pub use config::Config;
pub use members::{BusMemberDirectory, DirectoryError, MemberDirectory};
pub use notify::{InProcessNotifier, NotificationSink};
