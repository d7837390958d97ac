//! The OAuth 2.0 client-credentials grant: what the token endpoint does.

use super::Registry;
use crate::domain::ScopeSet;
use crate::error::OAuthError;
use crate::jwt::{self, Claims};
use crate::secret::{SecretHash, new_id};
use serde::Serialize;
use std::fmt;

/// Longest client id or client secret looked at, in bytes.
pub const MAX_CREDENTIAL_BYTES: usize = 1024;

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

impl Registry {
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
                Some(r) if secret_ok && client_id.len() <= MAX_CREDENTIAL_BYTES => r.info.clone(),
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
}
