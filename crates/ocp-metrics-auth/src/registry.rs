//! The registry handle: API clients and personal access tokens kept in the data directory,
//! their persistence, and the per-subject rate limits and failed-authentication counts. What
//! the handle does lives in one file per job: `manage` (the admin API), `grant` (the token
//! endpoint), `authenticate` (bearer tokens and operator tokens).

mod authenticate;
mod config;
mod grant;
mod manage;

pub use authenticate::{MAX_BEARER_BYTES, verify_admin};
pub use config::{AuthConfig, MAX_ACCESS_TOKEN_TTL_SECS};
pub use grant::{AccessToken, MAX_CREDENTIAL_BYTES, check_grant_type};
pub use manage::{ClientInfo, TokenInfo};

use crate::credentials::{CredentialStore, Credentials, RecordChange};
use crate::error::AuthError;
use crate::failures::{FailureLimiter, FailureVerdict};
use crate::jwt::SigningKey;
use crate::rate::RateLimiter;
use crate::store::FileStore;
use jiff::Timestamp;
use ocp_metrics_core::Clock;
use parking_lot::RwLock;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Every client id starts with this.
pub const CLIENT_ID_PREFIX: &str = "ocpm_client_";
/// Every personal access token starts with this, then the token id, `_`, and the secret.
pub const PAT_PREFIX: &str = "ocpm_pat_";

/// API clients and personal access tokens, kept durable by a [`CredentialStore`]: files in the
/// data directory ([`Registry::open`]) or a store shared by the nodes of a cluster
/// ([`Registry::with_store`]).
///
/// Share it through an `Arc`. Reads (authentication) never wait for a write: a change is made
/// durable by the store first and only then published to the in-memory state, so a reader sees
/// either the state before the change or the state after it, and a change that could not be
/// saved never happens. Changes made by other nodes arrive through [`Registry::apply_change`]
/// and [`Registry::replace_credentials`].
///
/// Rate limits and failed-authentication counts are this registry's own: in a cluster each node
/// counts the requests it serves.
pub struct Registry {
    store: Box<dyn CredentialStore>,
    config: AuthConfig,
    /// The source of "now", injected so that expiry and rate limits are testable.
    clock: Arc<dyn Clock>,
    key: SigningKey,
    state: RwLock<Credentials>,
    /// Serializes changes, so that two concurrent changes cannot both start from the same copy
    /// (the file store writes the whole state). Async, because it is held across the store's
    /// write.
    writer: tokio::sync::Mutex<()>,
    limiter: RateLimiter,
    failures: FailureLimiter,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.read();
        f.debug_struct("Registry")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("clients", &state.clients.len())
            .field("tokens", &state.tokens.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the registry in `data_dir` (created if missing), generating the signing key on
    /// first start: the [`FileStore`] of a single node. Reads two small files; needs no async
    /// runtime, but changes (which fsync on tokio's blocking pool) need a tokio runtime.
    pub fn open(
        data_dir: &Path,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Registry, AuthError> {
        config.validate()?;
        let store = FileStore::open(data_dir)?;
        let key = store.signing_key_now()?;
        let state = store.load_now()?;
        Ok(Registry::assemble(
            Box::new(store),
            config,
            clock,
            key,
            state,
        ))
    }

    /// Opens the registry on `store`: loads (or creates) the signing key, then every client and
    /// token. Returns once both are loaded.
    pub async fn with_store(
        store: Box<dyn CredentialStore>,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Registry, AuthError> {
        config.validate()?;
        let key = store.signing_key().await?;
        let state = store.load().await?;
        Ok(Registry::assemble(store, config, clock, key, state))
    }

    fn assemble(
        store: Box<dyn CredentialStore>,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
        key: SigningKey,
        state: Credentials,
    ) -> Registry {
        let limiter = RateLimiter::new(config.rate_per_second, config.rate_burst);
        Registry {
            store,
            config,
            clock,
            key,
            state: RwLock::new(state),
            writer: tokio::sync::Mutex::new(()),
            limiter,
            failures: FailureLimiter::new(),
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Decides a change from the current state; if there is one, makes it durable in the store
    /// and then publishes it.
    ///
    /// Not cancel-safe: dropped after the store took the change but before it is published,
    /// the change is durable but this registry does not show it (a shared store's watch brings
    /// it back; the file store would overwrite it at the next change). A caller that may be
    /// cancelled, such as an HTTP handler, runs it on a task of its own.
    async fn mutate<R>(
        &self,
        decide: impl FnOnce(&Credentials) -> (Option<RecordChange>, R),
    ) -> Result<R, AuthError> {
        let _writer = self.writer.lock().await;
        let (change, after, result) = {
            let state = self.state.read();
            let (change, result) = decide(&state);
            let Some(change) = change else {
                return Ok(result);
            };
            let mut after = state.clone();
            after.apply(change.clone(), None);
            (change, after, result)
        };
        let revision = self.store.persist(&change, &after).await?;
        self.state.write().apply(change, revision);
        Ok(result)
    }

    /// Applies a change made elsewhere (by another node, through a shared store) and seen with
    /// `revision`. A change older than one already applied to the same record is ignored, so
    /// changes may arrive in any order and more than once. Says whether it applied.
    pub fn apply_change(&self, change: RecordChange, revision: u64) -> bool {
        let applied = self.state.write().apply(change.clone(), Some(revision));
        if applied {
            tracing::debug!(kind = ?change.kind(), id = %change.id(), revision, "applied a credential change from the cluster");
        }
        applied
    }

    /// Replaces the state with `fresh`, a full re-read of a shared store that covers every
    /// revision up to `watermark` (after its watch failed, so that deletions missed meanwhile
    /// take effect), keeping the records changed after `watermark`.
    pub fn replace_credentials(&self, fresh: Credentials, watermark: u64) {
        let mut state = self.state.write();
        let next = state.rebased(fresh, watermark);
        *state = next;
    }

    /// Takes one request from `subject`'s token bucket ([`crate::Grants::subject`]), or says how long
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
}
