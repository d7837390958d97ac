//! The eleven query endpoints.

use crate::app::App;
use crate::error::ApiError;
use crate::wire;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ocp_metrics_auth::Scope;
use ocp_metrics_core::{Endpoint, Query};

/// Largest query body, in bytes: a query is a few hundred bytes; filters of a thousand values
/// still fit easily.
pub const QUERY_BODY_BYTES_MAX: usize = 1 << 20;

/// v2's deprecation date (RFC 9745 structured date: 2024-01-01T00:00:00Z) and its sunset at the
/// end of Q4 2024 as the public API documents (RFC 8594 HTTP-date; docs/api.md section 5.5).
const DEPRECATION: &str = "@1704067200";
const SUNSET: &str = "Tue, 31 Dec 2024 23:59:59 GMT";
/// Set on an answer whose data may be incomplete: its value is the time up to which the
/// answering node's data is known to be complete (a cluster node cut off from the event
/// stream answers from what it has). Absent on a current answer.
pub const STALE_DATA_HEADER: &str = "x-stale-data-as-of";

/// Marks `response` stale when `backend` says its data is not current.
pub fn mark_if_stale(response: &mut Response, backend: &dyn ocp_metrics_service::Backend) {
    if let Some(as_of) = backend.stale_since()
        && let Ok(v) = HeaderValue::from_str(&as_of.to_string())
    {
        response.headers_mut().insert(STALE_DATA_HEADER, v);
    }
}

pub async fn query(
    app: App,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let grants = app.authorize(&headers, Scope::MetricsRead)?;
    let bytes = crate::app::read_body(body, QUERY_BODY_BYTES_MAX, || {
        format!("the query body is over {QUERY_BODY_BYTES_MAX} bytes; send fewer filter values")
    })
    .await?;
    let draft = wire::query_draft(&bytes).map_err(ApiError::BadRequest)?;
    // A malformed group is the user's mistake (400, from Query::parse); a well-formed one the
    // token was not granted is refused before anything else is looked at.
    if let Some(group) = draft.group.as_deref()
        && ocp_metrics_core::GroupName::parse(group).is_ok()
    {
        grants.require_group(group)?;
    }
    let engine = app.backend()?.clone();
    let q = Query::parse(endpoint, draft, engine.now())?;
    let querying = engine.clone();
    let answer =
        tokio::task::spawn_blocking(move || querying.query(&q).map(|a| wire::answer_json(&a)))
            .await
            .map_err(|e| ApiError::Internal(format!("query task: {e}")))??;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
    mark_if_stale(&mut response, engine.as_ref());
    if endpoint.is_deprecated() {
        let h = response.headers_mut();
        h.insert("deprecation", HeaderValue::from_static(DEPRECATION));
        h.insert("sunset", HeaderValue::from_static(SUNSET));
        let successor = endpoint.path().replace("/v2/", "/v3/");
        if let Ok(link) =
            HeaderValue::from_str(&format!("<{successor}>; rel=\"successor-version\""))
        {
            h.insert(header::LINK, link);
        }
    }
    Ok(response)
}
