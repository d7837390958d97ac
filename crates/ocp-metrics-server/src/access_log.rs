//! One log line per request: a request id (also sent back as `X-Request-Id`), the method, the
//! route's path, the status and the latency. With `--log-format json` each line is one JSON
//! object, for log pipelines.
//!
//! What is never logged here: headers (they carry tokens), query strings and bodies (they carry
//! group names and tenant values). The path alone names only the endpoint, except for the few
//! paths with an id in them (admin deletes), which are operator data, not tenant data.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The response header carrying the request id, for matching a client's report to a log line.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Ids are this process's start (seconds, hex) and a counter, so they are unique across
/// restarts without a random source on the hot path.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Logs the request once its answer's head is ready, and tags the answer with the request id.
pub async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    // Microsecond resolution is plenty, and a rounded number reads better in a log line.
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    tracing::info!(
        target: "ocp_metrics::access",
        request_id = %id,
        method = %method,
        path = %path,
        status,
        latency_ms,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn request_id() -> String {
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    format!("{epoch:x}-{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}
