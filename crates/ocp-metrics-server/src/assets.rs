//! The Reporting web page, embedded in the binary so that it works in closed networks.
//!
//! The page and every asset are served with [`PAGE_SECURITY_HEADERS`]: a Content-Security-Policy
//! that allows only this server's own scripts, styles and API (no inline script or style, no
//! `eval`, no framing), `nosniff`, and no referrer. The page holds a bearer token, so script
//! injection and clickjacking are what these close.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::App;
use crate::error::ApiError;

/// Every embedded file: its path under /assets, its content type and its bytes. The page's
/// script is the ES module `main.js` and the modules it imports, one file each.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "main.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/main.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/api.js"),
    ),
    (
        "cards.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/cards.js"),
    ),
    (
        "catalog.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/catalog.js"),
    ),
    (
        "config.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/config.js"),
    ),
    (
        "csv.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/csv.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dom.js"),
    ),
    (
        "format.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/format.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/live.js"),
    ),
    (
        "plot.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/plot.js"),
    ),
    (
        "request.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/request.js"),
    ),
    (
        "shape.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/shape.js"),
    ),
    (
        "state.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/state.js"),
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

/// The page's Content-Security-Policy. `default-src 'none'` refuses anything not listed; the
/// page needs only its own scripts and styles (files under /assets, never inline), its own API
/// (`fetch` to the same origin) and images it draws. `frame-ancestors 'none'` forbids framing
/// (clickjacking); `base-uri` and `form-action` stop a `<base>` or `<form>` injection from
/// redirecting requests.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Headers of the page and of every asset.
pub const PAGE_SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    // For browsers that predate `frame-ancestors`.
    (header::X_FRAME_OPTIONS, "DENY"),
];

pub fn routes(r: Router<App>) -> Router<App> {
    r.route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index() -> Response {
    (
        PAGE_SECURITY_HEADERS,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    let (_, ct, bytes) = FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .ok_or_else(|| ApiError::NotFound(format!("no asset `{path}`")))?;
    Ok((
        PAGE_SECURITY_HEADERS,
        [
            (header::CONTENT_TYPE, *ct),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        *bytes,
    )
        .into_response())
}
