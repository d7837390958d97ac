//! The one error type of the HTTP boundary and its mapping to status codes. Every error answer
//! is `{"message": "..."}` (OAuth errors add the RFC 6749 `error` fields).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ocp_metrics_auth::{AuthError, OAuthError};
use ocp_metrics_core::QueryError;
use ocp_metrics_service::{IngestError, QueryFailure};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_seconds: u64,
    },
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_seconds: u64,
    },
    /// Something unexpected; the details go to the log, never to the caller.
    #[error("internal error")]
    Internal(String),
    /// An OAuth 2.0 token endpoint error (RFC 6749 section 5.2).
    #[error("{0:?}")]
    OAuth(OAuthError, bool),
}

/// The body of every error answer but the token endpoint's.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"message": "filter `flow_name` is not supported by /metrics-api/v3/realtime/metrics/sessions; supported filters: channel, test_flag, region"}))]
pub(crate) struct ErrorAnswer {
    /// What is wrong and how to fix it.
    message: String,
}

/// The body of a token-endpoint error: RFC 6749 section 5.2, plus `message` like every other
/// error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "error": "unsupported_grant_type",
    "error_description": "grant_type \"password\" is not supported: only client_credentials is",
    "message": "grant_type \"password\" is not supported: only client_credentials is"
}))]
pub(crate) struct OAuthErrorAnswer {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type` or `invalid_scope`.
    error: &'static str,
    error_description: String,
    /// The same as `error_description`.
    message: String,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::OAuth(OAuthError::InvalidClient(_), true) => StatusCode::UNAUTHORIZED,
            ApiError::OAuth(..) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                let message = "internal error: the server could not answer this request; retry, and report it if it persists";
                (
                    status,
                    axum::Json(ErrorAnswer {
                        message: message.into(),
                    }),
                )
                    .into_response()
            }
            ApiError::OAuth(e, _) => {
                let body = OAuthErrorAnswer {
                    error: e.code(),
                    error_description: e.description().to_string(),
                    message: e.description().to_string(),
                };
                (status, axum::Json(body)).into_response()
            }
            other => {
                let body = ErrorAnswer {
                    message: other.to_string(),
                };
                (status, axum::Json(body)).into_response()
            }
        };
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"ocp-metrics\""),
                );
            }
            ApiError::OAuth(OAuthError::InvalidClient(_), true) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"ocp-metrics\""),
                );
            }
            ApiError::RateLimited {
                retry_after_seconds,
                ..
            }
            | ApiError::Unavailable {
                retry_after_seconds,
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            _ => {}
        }
        // Many errors are answered before the request body is read (auth is checked first), and
        // the connection then cannot carry another request: say so, so that keep-alive clients
        // open a new one instead of failing on a dead socket. A 400 is produced after the body
        // was read, so its connection stays usable.
        if status != StatusCode::BAD_REQUEST {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if matches!(self, ApiError::OAuth(..)) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl From<QueryFailure> for ApiError {
    fn from(e: QueryFailure) -> Self {
        match e {
            QueryFailure::Invalid(e) => e.into(),
            QueryFailure::Unavailable {
                message,
                retry_after_seconds,
            } => ApiError::Unavailable {
                message,
                retry_after_seconds,
            },
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
            IngestError::Overloaded | IngestError::Unavailable(_) | IngestError::ShuttingDown => {
                ApiError::Unavailable {
                    message: e.to_string(),
                    retry_after_seconds: 1,
                }
            }
        }
    }
}

/// `Retry-After` of an admin change refused because the credential store did not answer: a
/// JetStream leader election takes a few seconds.
const CREDENTIAL_STORE_RETRY_AFTER_SECONDS: u64 = 2;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(r) => ApiError::Unauthorized(r.message().to_string()),
            AuthError::Forbidden(m) => ApiError::Forbidden(m),
            AuthError::InvalidInput(m) => ApiError::BadRequest(m),
            // A shared credential store without quorum comes back within an election: the
            // client retries the change, which was not made.
            AuthError::Unavailable(m) => {
                tracing::warn!(error = %m, "credential store unavailable");
                ApiError::Unavailable {
                    message: "the credential store is unavailable (a cluster election or a \
                              lost connection to NATS); nothing was changed: retry shortly"
                        .into(),
                    retry_after_seconds: CREDENTIAL_STORE_RETRY_AFTER_SECONDS,
                }
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}
