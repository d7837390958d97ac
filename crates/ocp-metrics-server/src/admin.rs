//! The admin API (clients and personal access tokens) and the operator-token checks it shares
//! with `/metrics` and the token endpoint.

use crate::app::App;
use crate::credentials::bearer_token;
use crate::error::ApiError;
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ocp_metrics_auth::{
    AuthError, ClientName, FailureVerdict, GroupGrant, OperatorToken, Registry, ScopeSet,
};
use serde::Deserialize;
use serde_json::{Value, json};
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

/// An admin API request whose admin token checked out. Every admin handler takes it first, so
/// that none can skip the check.
pub struct Admin(App);

impl FromRequestParts<App> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Admin, ApiError> {
        admin(app, peer(parts)?, &parts.headers)?;
        Ok(Admin(app.clone()))
    }
}

/// The address of the request's peer, which the server records on every connection.
pub(crate) fn peer(parts: &Parts) -> Result<SocketAddr, ApiError> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
        .ok_or_else(|| ApiError::Internal("the connection's address is missing".into()))
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
    Admin(app): Admin,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: NewClient = json_body(&body)?;
    let (name, groups, scopes) = grant(&req.name, &req.groups, &req.scopes)?;
    let (info, secret) = persisting(&app, move |auth| async move {
        auth.create_client(name, groups, scopes).await
    })
    .await?;
    created(
        &info,
        &[
            ("client_id", json!(info.id)),
            ("client_secret", json!(secret)),
        ],
    )
}

pub async fn list_clients(Admin(app): Admin) -> Result<Response, ApiError> {
    Ok(Json(app.auth()?.list_clients()).into_response())
}

pub async fn delete_client(
    Admin(app): Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    removing(&app, "client", id, |auth, id| async move {
        auth.delete_client(&id).await
    })
    .await
}

pub async fn create_token(
    Admin(app): Admin,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: NewToken = json_body(&body)?;
    let expires_at = expiry(req.expires_at.as_deref())?;
    let (name, groups, scopes) = grant(&req.name, &req.groups, &req.scopes)?;
    let (info, token) = persisting(&app, move |auth| async move {
        auth.create_token(name, groups, scopes, expires_at).await
    })
    .await?;
    created(&info, &[("token", json!(token))])
}

pub async fn list_tokens(Admin(app): Admin) -> Result<Response, ApiError> {
    Ok(Json(app.auth()?.list_tokens()).into_response())
}

pub async fn revoke_token(Admin(app): Admin, Path(id): Path<String>) -> Result<Response, ApiError> {
    removing(&app, "token", id, |auth, id| async move {
        auth.revoke_token(&id).await
    })
    .await
}

/// Parses what a client and a token are granted alike, naming the first field that is wrong.
fn grant(
    name: &str,
    groups: &[String],
    scopes: &[String],
) -> Result<(ClientName, GroupGrant, ScopeSet), ApiError> {
    Ok((
        ClientName::parse(name)?,
        GroupGrant::parse(groups)?,
        ScopeSet::parse(scopes)?,
    ))
}

/// A token's expiry: absent or null for a token that does not expire.
fn expiry(expires_at: Option<&str>) -> Result<Option<jiff::Timestamp>, ApiError> {
    expires_at
        .map(|s| {
            s.parse::<jiff::Timestamp>().map_err(|_| {
                ApiError::BadRequest(
                    "`expires_at` must be an RFC 3339 timestamp such as 2027-01-01T00:00:00Z, or null"
                        .into(),
                )
            })
        })
        .transpose()
}

/// The 201 answer to a creation: the description of what was created, plus the credentials
/// shown this once (`shown_once`, each a field name and its value).
fn created(
    info: &impl serde::Serialize,
    shown_once: &[(&str, Value)],
) -> Result<Response, ApiError> {
    let mut body = serde_json::to_value(info).map_err(|e| ApiError::Internal(e.to_string()))?;
    for (field, value) in shown_once {
        body[*field] = value.clone();
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Removes the `kind` (client or token) with this id through `change` (see [`persisting`]):
/// 204 if it existed, else 404 naming the listing to look in.
async fn removing<F>(
    app: &App,
    kind: &str,
    id: String,
    change: impl FnOnce(Arc<Registry>, String) -> F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<bool, AuthError>> + Send + 'static,
{
    let key = id.clone();
    match persisting(app, move |auth| change(auth, key)).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::NotFound(format!(
            "no {kind} with id `{id}`; list them with GET /admin/v1/{kind}s"
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
