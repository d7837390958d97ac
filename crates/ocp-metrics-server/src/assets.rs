//! The Reporting web page, embedded in the binary so that it works in closed networks.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::App;
use crate::error::ApiError;

/// Every embedded file: its path under /assets, its content type and its bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/uPlot.min.css"),
    ),
    (
        "vendor/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/LICENSE"),
    ),
];

const INDEX: &str = include_str!("../assets/index.html");

pub fn routes(r: Router<App>) -> Router<App> {
    r.route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    let (_, ct, bytes) = FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .ok_or_else(|| ApiError::NotFound(format!("no asset `{path}`")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *ct),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        *bytes,
    )
        .into_response())
}
