//! Authentication: a bearer token (an access token or a personal access token) into the
//! [`Grants`] it carries, and the operators' tokens compared in constant time.

use super::{PAT_PREFIX, Registry};
use crate::domain::{Grants, ScopeSet};
use crate::error::{AuthError, Reason};
use crate::jwt;
use crate::secret::SecretHash;

/// Longest bearer token looked at, in bytes; anything longer is refused before any parsing or
/// hashing. An access token carries its groups, so the largest one this service issues (the
/// most groups, each of the longest name) is about 45 KiB; typical ones are under 1 KiB.
pub const MAX_BEARER_BYTES: usize = 64 * 1024;

impl Registry {
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
        if record.info.expires_at.is_some_and(|at| self.now() >= at) {
            return Err(Reason::Expired);
        }
        Ok(Grants {
            subject: record.info.id.clone(),
            groups: record.info.groups.clone(),
            scopes: record.info.scopes.clone(),
        })
    }

    /// Same as the free function [`verify_admin`].
    pub fn verify_admin(expected: &str, presented: &str) -> bool {
        verify_admin(expected, presented)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
