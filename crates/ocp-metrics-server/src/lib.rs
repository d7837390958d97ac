//! The HTTP layer of ocp-metrics: ingest, the query API, the admin and OAuth endpoints, health
//! and the embedded web page.
//!
//! Invariant: this is the only crate that knows the wire format (JSON, NDJSON, gzip, HTTP
//! statuses). Errors become HTTP answers in exactly one place, `ApiError`'s `IntoResponse`.

mod admin;
mod app;
mod assets;
mod connections;
mod error;
mod ingest;
mod openapi;
mod prometheus;
mod query;
pub mod wire;

pub use app::{
    App, CONNECTIONS_MAX_DEFAULT, InflightBytes, Limits, Phase, RECOVERY_REQUEST_WAIT_MS_DEFAULT,
    Readiness, Server, ServerConfig, router,
};
pub use connections::ConnectionStats;
pub use error::ApiError;
