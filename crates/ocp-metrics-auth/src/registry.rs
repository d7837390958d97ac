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

use crate::error::AuthError;
use crate::failures::{FailureLimiter, FailureVerdict};
use crate::jwt::SigningKey;
use crate::rate::RateLimiter;
use crate::store::{self, State};
use jiff::Timestamp;
use ocp_metrics_core::Clock;
use parking_lot::{Mutex, RwLock};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Every client id starts with this.
pub const CLIENT_ID_PREFIX: &str = "ocpm_client_";
/// Every personal access token starts with this, then the token id, `_`, and the secret.
pub const PAT_PREFIX: &str = "ocpm_pat_";

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
