//! The registry's settings and their bounds.

use crate::error::AuthError;
use std::time::Duration;

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
    pub(crate) fn validate(&self) -> Result<(), AuthError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
