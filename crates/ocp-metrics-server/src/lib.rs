//! The HTTP layer of ocp-metrics: ingest, the query API, the admin and OAuth endpoints, health
//! and the embedded web page.
//!
//! Invariant: this is the only crate that knows the wire format (JSON, NDJSON, gzip, HTTP
//! statuses). Errors become HTTP answers in exactly one place, `ApiError`'s `IntoResponse`.

mod access_log;
mod admin;
mod app;
mod assets;
mod catalog;
mod connections;
mod credentials;
mod error;
mod ingest;
mod live;
mod oauth;
mod openapi;
mod prometheus;
mod query;
mod readiness;
pub mod wire;

pub use app::{
    ADMIN_BODY_BYTES_MAX, App, BODY_READ_TIMEOUT_MS_DEFAULT, BackendOpener,
    CONNECTIONS_MAX_DEFAULT, Credentials, HEADER_READ_TIMEOUT_MS_DEFAULT, InflightBytes, Limits,
    OpenRegistry, Phase, RECOVERY_REQUEST_WAIT_MS_DEFAULT, RESPONSE_WRITE_STALL_TIMEOUT_MS,
    Readiness, Server, ServerConfig, TOKEN_BODY_BYTES_MAX, UNREAD_BODY_BYTES_MAX,
    open_file_registry, router,
};
pub use connections::ConnectionStats;
pub use error::ApiError;
