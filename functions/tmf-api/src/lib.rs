//! The TMF620 Product Catalog Management API of a dome marketplace.
//!
//! One axum [`Router`](axum::Router) ([`app::router`]) serves both runtimes: the plain HTTP
//! server (tokio) and AWS Lambda behind a function URL (`lambda_http`, payload v2). Entities
//! live in a [`dome_catalog_store::CatalogStore`]; validation, queries, patching and events
//! come from the pure engine `dome-tmf`.

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod notify;

pub use app::{router, AppState};
pub use auth::{StaticTokens, TokenVerifier};
pub use cache::HeadCache;
pub use config::Config;
pub use notify::{InProcessNotifier, NotificationSink};
