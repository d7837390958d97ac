//! The admin API (clients and personal access tokens) and the operator-token checks it shares
//! with `/metrics` and the token endpoint.

use crate::app::App;
use crate::credentials::bearer_token;
use crate::error::ApiError;
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ocp_metrics_auth::{
    AuthError, ClientName, FailureVerdict, GroupGrant, OperatorToken, Registry, ScopeSet,
};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// An API client to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewClient {
    /// 1 to 128 characters, no control characters.
    name: String,
    /// 1 to 64 group names (each 1 to 256 bytes), or `["*"]` alone for every group.
    groups: Vec<String>,
    /// `metrics:read` and/or `events:write`.
    scopes: Vec<String>,
}

/// A personal access token to create; `name`, `groups` and `scopes` as for a client.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    name: String,
    groups: Vec<String>,
    scopes: Vec<String>,
    /// An RFC 3339 time in the future, or null (or absent) for a token that does not expire.
    #[serde(default)]
    expires_at: Option<String>,
}

/// Checks the admin token; also run by the router before an admin request's body is read.
pub(crate) fn admin(app: &App, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &app.admin_token else {
        return Err(ApiError::NotFound("no such endpoint: the admin API is disabled (set OCP_METRICS_ADMIN_TOKEN or --admin-token-file to enable it)".into()));
    };
    require_operator_token(
        app,
        peer,
        headers,
        &[expected],
        "admin API",
        "the admin API needs `Authorization: Bearer <admin token>` (the server's OCP_METRICS_ADMIN_TOKEN)",
    )
}

/// Checks that the request's bearer token is one of `accepted` (operator tokens such as the
/// admin token). A missing or wrong token is a failed authentication from `peer`: 401, or 429
/// once that address has failed too often. A right token is never refused.
pub(crate) fn require_operator_token(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
    accepted: &[&OperatorToken],
    endpoint: &'static str,
    hint: &str,
) -> Result<(), ApiError> {
    let presented = bearer_token(headers).unwrap_or("");
    // Every accepted token is compared, so that the time taken does not say which one matched.
    let matched = accepted
        .iter()
        .fold(false, |any, t| t.matches(presented) | any);
    if matched {
        return Ok(());
    }
    Err(failed_authentication(
        app,
        peer,
        endpoint,
        ApiError::Unauthorized(hint.to_owned()),
    ))
}

/// Counts a failed authentication from `peer` and logs it (never the credentials presented).
/// Answers `unauthorized` while the address is within its allowance, then 429 with
/// Retry-After; the first refusal of a run is logged, not every one.
pub(crate) fn failed_authentication(
    app: &App,
    peer: SocketAddr,
    endpoint: &'static str,
    unauthorized: ApiError,
) -> ApiError {
    let source = peer.ip();
    let verdict = app.auth().map_or(FailureVerdict::Counted, |auth| {
        auth.record_auth_failure(source)
    });
    match verdict {
        FailureVerdict::Counted => {
            tracing::warn!(%source, endpoint, "failed authentication");
            unauthorized
        }
        FailureVerdict::Refused { retry_after, first } => {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            if first {
                tracing::warn!(
                    %source,
                    endpoint,
                    "too many failed authentications from this address: answering 429 until it slows down (valid credentials are still accepted)"
                );
            }
            ApiError::RateLimited {
                message: format!(
                    "too many failed authentications from this address; retry after {secs} s with valid credentials"
                ),
                retry_after_seconds: secs.max(1),
            }
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

pub async fn create_client(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    admin(&app, peer, &headers)?;
    let req: NewClient = json_body(&body)?;
    let (name, groups, scopes) = (
        ClientName::parse(&req.name)?,
        GroupGrant::parse(&req.groups)?,
        ScopeSet::parse(&req.scopes)?,
    );
    let (info, secret) = persisting(&app, move |auth| async move {
        auth.create_client(name, groups, scopes).await
    })
    .await?;
    let mut body = serde_json::to_value(&info).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["client_id"] = json!(info.id);
    body["client_secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn list_clients(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&app, peer, &headers)?;
    Ok(Json(app.auth()?.list_clients()).into_response())
}

pub async fn delete_client(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&app, peer, &headers)?;
    let key = id.clone();
    match persisting(
        &app,
        move |auth| async move { auth.delete_client(&key).await },
    )
    .await?
    {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::NotFound(format!(
            "no client with id `{id}`; list them with GET /admin/v1/clients"
        ))),
    }
}

pub async fn create_token(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    admin(&app, peer, &headers)?;
    let req: NewToken = json_body(&body)?;
    let expires_at = match req.expires_at.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<jiff::Timestamp>().map_err(|_| {
            ApiError::BadRequest(
                "`expires_at` must be an RFC 3339 timestamp such as 2027-01-01T00:00:00Z, or null"
                    .into(),
            )
        })?),
    };
    let (name, groups, scopes) = (
        ClientName::parse(&req.name)?,
        GroupGrant::parse(&req.groups)?,
        ScopeSet::parse(&req.scopes)?,
    );
    let (info, token) = persisting(&app, move |auth| async move {
        auth.create_token(name, groups, scopes, expires_at).await
    })
    .await?;
    let mut body = serde_json::to_value(&info).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn list_tokens(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&app, peer, &headers)?;
    Ok(Json(app.auth()?.list_tokens()).into_response())
}

pub async fn revoke_token(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&app, peer, &headers)?;
    let key = id.clone();
    match persisting(
        &app,
        move |auth| async move { auth.revoke_token(&key).await },
    )
    .await?
    {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::NotFound(format!(
            "no token with id `{id}`; list them with GET /admin/v1/tokens"
        ))),
    }
}

/// Runs a registry change on a task of its own, so that it completes even if the client goes
/// away: a change dropped between the store's write and its publication would be durable but
/// not visible on this node (see `Registry`'s `mutate`). The file store fsyncs on the blocking
/// pool, a cluster store awaits the bucket's acknowledgement; neither holds up the threads
/// serving other requests.
async fn persisting<T, F>(app: &App, change: impl FnOnce(Arc<Registry>) -> F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, AuthError>> + Send + 'static,
{
    tokio::spawn(change(app.auth()?.clone()))
        .await
        .map_err(|e| ApiError::Internal(format!("registry task: {e}")))?
        .map_err(ApiError::from)
}
