//! The catalog the web page (and any client) uses to offer groups, metrics and filter values.

use crate::app::App;
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Query as UrlQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ocp_metrics_auth::Scope;
use ocp_metrics_core::Endpoint;
use serde::Deserialize;
use serde_json::json;

/// `GET /api/v1/catalog`: the endpoints, their metrics and dimensions, the caller's groups that
/// have data, and the server's clock.
pub async fn catalog(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let grants = app.authorize(&headers, Scope::MetricsRead)?;
    let engine = app.backend()?;
    let groups: Vec<String> = engine
        .groups()
        .into_iter()
        .filter(|g| grants.allows_group(g))
        .collect();
    let endpoints: Vec<_> = Endpoint::ALL
        .iter()
        .map(|e| {
            json!({
                "path": e.path(),
                "realtime": e.family().is_realtime(),
                "deprecated": e.is_deprecated(),
                "metrics": e.metrics().iter().map(|m| m.name).collect::<Vec<_>>(),
                "dimensions": e.family().dims(),
                "downsampling": e.granularities().iter().map(|g| g.name()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(
        Json(json!({"groups": groups, "now": engine.now().to_string(), "endpoints": endpoints}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
pub struct ValuesQuery {
    group: String,
    path: String,
}

/// `GET /api/v1/catalog/values?group=G&path=P`: distinct values of each dimension.
pub async fn catalog_values(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<UrlQuery<ValuesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let grants = app.authorize(&headers, Scope::MetricsRead)?;
    let UrlQuery(q) =
        q.map_err(|_| ApiError::BadRequest("give the query parameters `group` and `path`".into()))?;
    grants.require_group(&q.group)?;
    let Some(endpoint) = Endpoint::ALL.iter().find(|e| e.path() == q.path) else {
        return Err(ApiError::BadRequest(format!(
            "`path` must be one of the query endpoints, e.g. {}",
            Endpoint::V3RtDialogs.path()
        )));
    };
    let family = endpoint.family();
    let engine = app.backend()?;
    let mut out = serde_json::Map::new();
    for (i, dim) in family.dims().iter().enumerate() {
        out.insert(
            dim.to_string(),
            json!(engine.dimension_values(&q.group, family, i)),
        );
    }
    Ok(Json(out).into_response())
}
