//! Authentication and tenancy for ocp-metrics: API clients and personal access tokens kept in
//! a [`CredentialStore`] (files in the data directory, or a store the nodes of a cluster
//! share), the OAuth 2.0 client-credentials grant issuing HS256 access tokens, authentication
//! of bearer tokens into [`Grants`], per-subject rate limits, and the count of failed
//! authentications per source address.
//!
//! No HTTP here: the server crate maps [`AuthError`] and [`OAuthError`] to answers.
//! Secrets never reach a log: nothing in this crate prints a secret, a token or a hash, and the
//! types that hold one redact it in `Debug`.

mod credentials;
mod domain;
mod error;
mod failures;
mod jwt;
mod operator;
mod rate;
mod registry;
mod secret;
mod store;

pub use credentials::{
    ClientRecord, CredentialStore, Credentials, RecordChange, RecordKind, TokenRecord,
};
pub use domain::{
    ClientName, Grants, GroupGrant, MAX_GROUP_NAME_BYTES, MAX_GROUPS, MAX_NAME_CHARS, Scope,
    ScopeSet,
};
pub use error::{AuthError, OAuthError, Reason};
pub use failures::{
    AUTH_FAILURE_REFILL_MS, AUTH_FAILURE_SOURCES_MAX, AUTH_FAILURES_BURST, FailureVerdict,
};
pub use jwt::{KEY_BYTES as SIGNING_KEY_BYTES, SigningKey};
pub use operator::{OPERATOR_TOKEN_BYTES_MAX, OPERATOR_TOKEN_CHARS_MIN, OperatorToken};
pub use registry::{
    AccessToken, AuthConfig, CLIENT_ID_PREFIX, ClientInfo, MAX_ACCESS_TOKEN_TTL_SECS,
    MAX_BEARER_BYTES, MAX_CREDENTIAL_BYTES, PAT_PREFIX, Registry, TokenInfo, check_grant_type,
    verify_admin,
};
pub use store::{FileStore, KEY_FILE, REGISTRY_FILE};
