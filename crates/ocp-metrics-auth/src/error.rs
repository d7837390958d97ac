//! Errors. Every message here may be shown to the caller of the HTTP API, except those of
//! [`AuthError::Storage`], [`AuthError::Corrupt`], [`AuthError::CorruptRecord`] and
//! [`AuthError::Unavailable`], which name files or servers and belong in the server's log
//! behind a generic 500 or 503.

use std::fmt;
use std::path::PathBuf;

/// Why a bearer token was not accepted. The messages are safe to show to anyone: they never say
/// whether a client, a token id or a group exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No `Authorization` header, or not of the `Bearer` scheme.
    Missing,
    /// Not shaped like an access token or a personal access token.
    Malformed,
    /// Past its expiry time.
    Expired,
    /// Well formed but not known to this server: revoked, deleted, or never issued here.
    RevokedOrUnknown,
    /// An access token whose signature does not match (tampered, or signed with another key).
    BadSignature,
}

impl Reason {
    /// A message that says what is wrong and what to do about it.
    pub fn message(self) -> &'static str {
        match self {
            Reason::Missing => {
                "missing credentials: send the header `Authorization: Bearer <token>` with an \
                 access token from /oauth2/token or a personal access token"
            }
            Reason::Malformed => {
                "the bearer token is malformed: send an access token from /oauth2/token or a \
                 personal access token (it starts with `ocpm_pat_`) exactly as issued"
            }
            Reason::Expired => {
                "the token has expired: request a new access token from /oauth2/token, or ask an \
                 administrator for a new personal access token"
            }
            Reason::RevokedOrUnknown => {
                "the token is not valid here (revoked, its client deleted, or never issued by this \
                 server): request a new one"
            }
            Reason::BadSignature => {
                "the access token's signature is invalid: send the token exactly as /oauth2/token \
                 issued it, or request a new one"
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Errors of the registry and of authentication and authorization.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The bearer token is missing or not acceptable: HTTP 401.
    #[error("{0}")]
    Unauthenticated(Reason),
    /// The token is valid but lacks a scope or a group: HTTP 403.
    #[error("{0}")]
    Forbidden(String),
    /// An admin request carries an invalid field; the message names the field: HTTP 400.
    #[error("{0}")]
    InvalidInput(String),
    /// The [`crate::AuthConfig`] is unusable; a start-up error.
    #[error("invalid authentication settings: {0}")]
    InvalidConfig(String),
    /// Reading or writing the data directory failed: HTTP 500, details to the log only.
    #[error("auth storage: {context}: {source}")]
    Storage {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A file in the data directory cannot be understood; a start-up error.
    #[error("auth storage: {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// A record in a shared credential store (where `location` says) cannot be understood; a
    /// start-up error.
    #[error("auth storage: {location} is corrupt: {message}")]
    CorruptRecord { location: String, message: String },
    /// A shared credential store did not answer (no quorum, no connection): HTTP 503, retry
    /// the change shortly. Nothing was changed.
    #[error("the credential store is unavailable: {0}; retry in a few seconds")]
    Unavailable(String),
}

impl AuthError {
    pub(crate) fn invalid(message: impl Into<String>) -> AuthError {
        AuthError::InvalidInput(message.into())
    }

    pub(crate) fn storage(context: impl Into<String>, source: std::io::Error) -> AuthError {
        AuthError::Storage {
            context: context.into(),
            source,
        }
    }
}

/// The error codes of RFC 6749 section 5.2, each with a description for `error_description`.
///
/// HTTP status: `invalid_client` is 401 when the client authenticated with HTTP Basic (with a
/// `WWW-Authenticate: Basic` header), otherwise every code is 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
}

impl OAuthError {
    /// The `error` value of the token endpoint's error answer.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
        }
    }

    /// The `error_description` value: what is wrong and how to fix it.
    pub fn description(&self) -> &str {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidClient(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d) => d,
        }
    }
}
