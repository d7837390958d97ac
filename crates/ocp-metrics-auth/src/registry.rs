//! The registry of API clients and personal access tokens, the token endpoint's logic, and
//! authentication of bearer tokens.

use crate::domain::{ClientName, Grants, GroupGrant, ScopeSet, ts};
use crate::error::{AuthError, OAuthError, Reason};
use crate::failures::{FailureLimiter, FailureVerdict};
use crate::jwt::{self, Claims, SigningKey};
use crate::rate::RateLimiter;
use crate::secret::{SecretHash, new_id, new_secret};
use crate::store::{self, ClientRecord, State, TokenRecord};
use jiff::Timestamp;
use ocp_metrics_core::Clock;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Every client id starts with this.
pub const CLIENT_ID_PREFIX: &str = "ocpm_client_";
/// Every personal access token starts with this, then the token id, `_`, and the secret.
pub const PAT_PREFIX: &str = "ocpm_pat_";
/// Longest bearer token looked at, in bytes; anything longer is refused before any parsing or
/// hashing. An access token carries its groups, so the largest one this service issues (the
/// most groups, each of the longest name) is about 45 KiB; typical ones are under 1 KiB.
pub const MAX_BEARER_BYTES: usize = 64 * 1024;
/// Longest client id or client secret looked at, in bytes.
pub const MAX_CREDENTIAL_BYTES: usize = 1024;
/// Longest configurable access-token lifetime, in seconds (one year).
pub const MAX_ACCESS_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// Default access-token lifetime, in seconds.
const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 3600;
/// Default sustained request rate per client or token, in requests per second. A dashboard
/// page fires a handful of queries per refresh and a producer one ingest request per batch, so
/// 200 per second leaves a busy client ample room while one runaway loop on a token cannot
/// take the server for itself. It is what `serve` has always run with and what docs/api.md
/// documents.
const DEFAULT_RATE_PER_SECOND: f64 = 200.0;
/// Default burst per client or token, in requests: five seconds of the sustained rate, so a
/// client that was idle can refresh a wall of panels at once.
const DEFAULT_RATE_BURST: f64 = 1000.0;

/// Settings of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// Lifetime of access tokens from `/oauth2/token`; whole seconds, 1 s to one year.
    pub access_token_ttl: Duration,
    /// Sustained requests per second per client or token; finite and positive.
    pub rate_per_second: f64,
    /// Requests a client or token may make at once after being idle; finite and at least 1.
    pub rate_burst: f64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_token_ttl: Duration::from_secs(DEFAULT_ACCESS_TOKEN_TTL_SECS),
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            rate_burst: DEFAULT_RATE_BURST,
        }
    }
}

impl AuthConfig {
    fn validate(&self) -> Result<(), AuthError> {
        let ttl = self.access_token_ttl.as_secs();
        if !(1..=MAX_ACCESS_TOKEN_TTL_SECS).contains(&ttl) {
            return Err(AuthError::InvalidConfig(format!(
                "the access-token lifetime must be 1 to {MAX_ACCESS_TOKEN_TTL_SECS} seconds, \
                 got {ttl}"
            )));
        }
        if !(self.rate_per_second.is_finite() && self.rate_per_second > 0.0) {
            return Err(AuthError::InvalidConfig(format!(
                "the rate limit must be a positive number of requests per second, got {}",
                self.rate_per_second
            )));
        }
        if !(self.rate_burst.is_finite() && self.rate_burst >= 1.0) {
            return Err(AuthError::InvalidConfig(format!(
                "the rate-limit burst must be at least 1 request, got {}",
                self.rate_burst
            )));
        }
        Ok(())
    }
}

/// What the admin API shows of a client. Never holds the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    pub id: String,
    pub name: ClientName,
    pub groups: GroupGrant,
    pub scopes: ScopeSet,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
}

/// What the admin API shows of a personal access token. Never holds the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: ClientName,
    pub groups: GroupGrant,
    pub scopes: ScopeSet,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    /// `null` in JSON for a token that never expires.
    #[serde(with = "ts::option")]
    pub expires_at: Option<Timestamp>,
}

/// The successful answer of the token endpoint (RFC 6749 section 5.1); serializes to its body.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The granted scopes, space separated.
    pub scope: String,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// API clients and personal access tokens, persisted in the data directory.
///
/// Share it through an `Arc`. Reads (authentication) never wait for a disk write: a change is
/// made on a copy, written to disk, and only then published, so a reader sees either the state
/// before the change or the state after it, and a change that could not be saved never happens.
pub struct Registry {
    dir: PathBuf,
    config: AuthConfig,
    /// The source of "now", injected so that expiry and rate limits are testable.
    clock: Arc<dyn Clock>,
    key: SigningKey,
    state: RwLock<State>,
    /// Serializes changes, so that two concurrent changes cannot both start from the same copy.
    writer: Mutex<()>,
    limiter: RateLimiter,
    failures: FailureLimiter,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.read();
        f.debug_struct("Registry")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("clients", &state.clients.len())
            .field("tokens", &state.tokens.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the registry in `data_dir` (created if missing), generating the signing key on
    /// first start.
    pub fn open(
        data_dir: &Path,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Registry, AuthError> {
        config.validate()?;
        ocp_metrics_store::private::create_dir(data_dir)
            .map_err(|e| AuthError::storage(format!("creating {}", data_dir.display()), e))?;
        let key = store::load_or_create_key(data_dir)?;
        let state = store::load_state(data_dir)?;
        let limiter = RateLimiter::new(config.rate_per_second, config.rate_burst);
        Ok(Registry {
            dir: data_dir.to_owned(),
            config,
            clock,
            key,
            state: RwLock::new(state),
            writer: Mutex::new(()),
            limiter,
            failures: FailureLimiter::new(),
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Applies `change` to a copy of the state; if it reports a change, saves the copy and then
    /// publishes it.
    fn mutate<R>(&self, change: impl FnOnce(&mut State) -> (bool, R)) -> Result<R, AuthError> {
        let _writer = self.writer.lock();
        let mut next = self.state.read().clone();
        let (changed, result) = change(&mut next);
        if changed {
            store::save_state(&self.dir, &next)?;
            *self.state.write() = next;
        }
        Ok(result)
    }

    /// Registers an API client. Returns its description and its secret, which exists nowhere
    /// else afterwards: show it once.
    pub fn create_client(
        &self,
        name: ClientName,
        groups: GroupGrant,
        scopes: ScopeSet,
    ) -> Result<(ClientInfo, String), AuthError> {
        let secret = new_secret();
        let record = ClientRecord {
            id: format!("{CLIENT_ID_PREFIX}{}", new_id()),
            name,
            groups,
            scopes,
            created_at: self.now(),
            secret_sha256: SecretHash::of(&secret),
        };
        let info = client_info(&record);
        self.mutate(|st| (true, st.clients.insert(record.id.clone(), record)))?;
        tracing::info!(client_id = %info.id, name = %info.name, "created API client");
        Ok((info, secret))
    }

    /// All clients, oldest first.
    pub fn list_clients(&self) -> Vec<ClientInfo> {
        let mut v: Vec<_> = self
            .state
            .read()
            .clients
            .values()
            .map(client_info)
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// Deletes a client; its access tokens stop working at once. `Ok(false)` if there is no
    /// such client.
    pub fn delete_client(&self, id: &str) -> Result<bool, AuthError> {
        let deleted = self.mutate(|st| {
            let deleted = st.clients.remove(id).is_some();
            (deleted, deleted)
        })?;
        if deleted {
            tracing::info!(client_id = %id, "deleted API client");
        }
        Ok(deleted)
    }

    /// Creates a personal access token. Returns its description and the token, which exists
    /// nowhere else afterwards: show it once. `expires_at`, when given, must be in the future.
    pub fn create_token(
        &self,
        name: ClientName,
        groups: GroupGrant,
        scopes: ScopeSet,
        expires_at: Option<Timestamp>,
    ) -> Result<(TokenInfo, String), AuthError> {
        let now = self.now();
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(AuthError::invalid(format!(
                "expires_at: {at} is not in the future (now is {now}): give a later time, or \
                 null for a token that does not expire"
            )));
        }
        let id = new_id();
        let secret = new_secret();
        let token = format!("{PAT_PREFIX}{id}_{secret}");
        let record = TokenRecord {
            id,
            name,
            groups,
            scopes,
            created_at: now,
            expires_at,
            token_sha256: SecretHash::of(&secret),
        };
        let info = token_info(&record);
        self.mutate(|st| (true, st.tokens.insert(record.id.clone(), record)))?;
        tracing::info!(token_id = %info.id, name = %info.name, "created personal access token");
        Ok((info, token))
    }

    /// All personal access tokens, expired ones included, oldest first.
    pub fn list_tokens(&self) -> Vec<TokenInfo> {
        let mut v: Vec<_> = self.state.read().tokens.values().map(token_info).collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// Revokes a personal access token at once, forgetting it. `Ok(false)` if there is no such
    /// token.
    pub fn revoke_token(&self, id: &str) -> Result<bool, AuthError> {
        let revoked = self.mutate(|st| {
            let revoked = st.tokens.remove(id).is_some();
            (revoked, revoked)
        })?;
        if revoked {
            tracing::info!(token_id = %id, "revoked personal access token");
        }
        Ok(revoked)
    }

    /// The client-credentials grant (RFC 6749 section 4.4) once the caller has checked
    /// `grant_type` with [`check_grant_type`] and extracted the client's credentials from HTTP
    /// Basic or the form. `scope`, when given and not blank, narrows the client's scopes.
    pub fn issue_access_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<AccessToken, OAuthError> {
        let client = {
            let state = self.state.read();
            let record = state.clients.get(client_id);
            let hash = record.map_or(SecretHash::NONE, |r| r.secret_sha256);
            // Hash and compare even for an unknown id, so timing does not tell which ids exist.
            let secret_ok = client_secret.len() <= MAX_CREDENTIAL_BYTES
                && hash.matches(client_secret)
                && !client_secret.is_empty();
            match record {
                Some(r) if secret_ok && client_id.len() <= MAX_CREDENTIAL_BYTES => r.clone(),
                _ => {
                    return Err(OAuthError::InvalidClient(
                        "client authentication failed: check client_id and client_secret, or \
                         ask an administrator for a new client"
                            .to_owned(),
                    ));
                }
            }
        };
        let scopes = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => client.scopes.clone(),
            Some(s) => {
                let requested = ScopeSet::parse_space_separated(s)
                    .map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
                if !requested.is_subset(&client.scopes) {
                    return Err(OAuthError::InvalidScope(format!(
                        "this client may request only the scopes \"{}\"",
                        client.scopes.to_space_separated()
                    )));
                }
                requested
            }
        };
        let ttl = self.config.access_token_ttl.as_secs();
        let iat = self.now().as_second();
        // The configured lifetime is at most a year, so this cannot overflow.
        let exp = iat.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        let claims = Claims {
            sub: client.id,
            groups: client.groups,
            scope: scopes.to_space_separated(),
            exp,
            iat,
            jti: new_id(),
        };
        Ok(AccessToken {
            access_token: jwt::encode(&self.key, &claims),
            token_type: "Bearer",
            expires_in: ttl,
            scope: claims.scope,
        })
    }

    /// Checks a bearer token (an access token or a personal access token) and says what it may
    /// do. Only ever fails with [`AuthError::Unauthenticated`]. Scope and group checks are the
    /// caller's, with [`Grants::require_scope`] and [`Grants::require_group`].
    pub fn authenticate(&self, bearer_token: &str) -> Result<Grants, AuthError> {
        let result = if bearer_token.len() > MAX_BEARER_BYTES {
            Err(Reason::Malformed)
        } else if let Some(rest) = bearer_token.strip_prefix(PAT_PREFIX) {
            self.authenticate_pat(rest)
        } else if bearer_token.bytes().filter(|&b| b == b'.').count() == 2 {
            self.authenticate_jwt(bearer_token)
        } else {
            Err(Reason::Malformed)
        };
        result.map_err(AuthError::Unauthenticated)
    }

    fn authenticate_jwt(&self, token: &str) -> Result<Grants, Reason> {
        let claims = jwt::decode(&self.key, token)?;
        if self.now().as_second() >= claims.exp {
            return Err(Reason::Expired);
        }
        // Checked on every request so that deleting a client revokes its tokens at once.
        if !self.state.read().clients.contains_key(&claims.sub) {
            return Err(Reason::RevokedOrUnknown);
        }
        let scopes =
            ScopeSet::parse_space_separated(&claims.scope).map_err(|_| Reason::Malformed)?;
        Ok(Grants {
            subject: claims.sub,
            groups: claims.groups,
            scopes,
        })
    }

    fn authenticate_pat(&self, rest: &str) -> Result<Grants, Reason> {
        let (id, secret) = rest.split_once('_').ok_or(Reason::Malformed)?;
        let id_ok = !id.is_empty() && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let secret_ok = !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok || !secret_ok {
            return Err(Reason::Malformed);
        }
        let state = self.state.read();
        let record = state.tokens.get(id);
        let hash = record.map_or(SecretHash::NONE, |r| r.token_sha256);
        let record = match record {
            Some(r) if hash.matches(secret) => r,
            _ => return Err(Reason::RevokedOrUnknown),
        };
        if record.expires_at.is_some_and(|at| self.now() >= at) {
            return Err(Reason::Expired);
        }
        Ok(Grants {
            subject: record.id.clone(),
            groups: record.groups.clone(),
            scopes: record.scopes.clone(),
        })
    }

    /// Takes one request from `subject`'s token bucket ([`Grants::subject`]), or says how long
    /// to wait before the next request is allowed (for `Retry-After`, rounded up to seconds).
    pub fn check_rate(&self, subject: &str) -> Result<(), Duration> {
        self.limiter.check(subject, self.now())
    }

    /// Counts a failed authentication (a wrong admin or metrics token, a wrong client secret)
    /// from `source`, and says whether to answer it as usual or with 429. Call it only after
    /// the credentials were checked and found wrong: valid credentials are never refused, so a
    /// guessing attacker cannot lock the real operator or client out.
    pub fn record_auth_failure(&self, source: IpAddr) -> FailureVerdict {
        self.failures.record(source, self.now())
    }

    /// Failed authentications counted, and those answered 429, since start.
    pub fn auth_failure_counts(&self) -> (u64, u64) {
        (self.failures.failures(), self.failures.refused())
    }

    /// Same as the free function [`verify_admin`].
    pub fn verify_admin(expected: &str, presented: &str) -> bool {
        verify_admin(expected, presented)
    }
}

fn client_info(r: &ClientRecord) -> ClientInfo {
    ClientInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        groups: r.groups.clone(),
        scopes: r.scopes.clone(),
        created_at: r.created_at,
    }
}

fn token_info(r: &TokenRecord) -> TokenInfo {
    TokenInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        groups: r.groups.clone(),
        scopes: r.scopes.clone(),
        created_at: r.created_at,
        expires_at: r.expires_at,
    }
}

/// Compares the admin token in constant time. Both sides are hashed first so that not even the
/// length of the expected token leaks. An empty expected token matches nothing.
pub fn verify_admin(expected: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    if expected.is_empty() {
        return false;
    }
    let digest = |s: &str| -> [u8; 32] { <sha2::Sha256 as sha2::Digest>::digest(s).into() };
    digest(expected).ct_eq(&digest(presented)).into()
}

/// The token endpoint's `grant_type` check: only `client_credentials` is supported.
pub fn check_grant_type(grant_type: &str) -> Result<(), OAuthError> {
    match grant_type {
        "client_credentials" => Ok(()),
        "" => Err(OAuthError::InvalidRequest(
            "grant_type is missing: send grant_type=client_credentials".to_owned(),
        )),
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "grant_type {other:?} is not supported: only client_credentials is"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_type_table() {
        let cases = [
            ("client_credentials", None),
            ("", Some("invalid_request")),
            ("password", Some("unsupported_grant_type")),
            ("CLIENT_CREDENTIALS", Some("unsupported_grant_type")),
        ];
        for (input, want) in cases {
            assert_eq!(
                check_grant_type(input).err().map(|e| e.code()),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn admin_token_comparison() {
        let cases = [
            ("s3cret", "s3cret", true),
            ("s3cret", "s3cre", false),
            ("s3cret", "s3cret ", false),
            ("s3cret", "", false),
            ("", "", false),
        ];
        for (expected, presented, want) in cases {
            assert_eq!(
                verify_admin(expected, presented),
                want,
                "{expected:?} {presented:?}"
            );
            assert_eq!(Registry::verify_admin(expected, presented), want);
        }
    }

    #[test]
    fn config_validation_table() {
        let base = AuthConfig::default();
        let cases = [
            (base.clone(), true),
            (
                AuthConfig {
                    access_token_ttl: Duration::from_millis(999),
                    ..base.clone()
                },
                false,
            ),
            (
                AuthConfig {
                    access_token_ttl: Duration::from_secs(MAX_ACCESS_TOKEN_TTL_SECS + 1),
                    ..base.clone()
                },
                false,
            ),
            (
                AuthConfig {
                    rate_per_second: 0.0,
                    ..base.clone()
                },
                false,
            ),
            (
                AuthConfig {
                    rate_per_second: f64::NAN,
                    ..base.clone()
                },
                false,
            ),
            (
                AuthConfig {
                    rate_per_second: f64::INFINITY,
                    ..base.clone()
                },
                false,
            ),
            (
                AuthConfig {
                    rate_burst: 0.5,
                    ..base.clone()
                },
                false,
            ),
            (
                AuthConfig {
                    rate_burst: 1.0,
                    rate_per_second: 0.01,
                    ..base.clone()
                },
                true,
            ),
        ];
        for (config, ok) in cases {
            assert_eq!(config.validate().is_ok(), ok, "{config:?}");
        }
    }
}
