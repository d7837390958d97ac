//! Management of API clients and personal access tokens: what the admin API does.

use super::{CLIENT_ID_PREFIX, PAT_PREFIX, Registry};
use crate::domain::{ClientName, GroupGrant, ScopeSet, ts};
use crate::error::AuthError;
use crate::secret::{SecretHash, new_id, new_secret};
use crate::store::{ClientRecord, State, TokenRecord};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What the admin API shows of a client. Never holds the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub id: String,
    pub name: ClientName,
    pub groups: GroupGrant,
    pub scopes: ScopeSet,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
}

/// What the admin API shows of a personal access token. Never holds the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl Registry {
    /// Registers an API client. Returns its description and its secret, which exists nowhere
    /// else afterwards: show it once.
    pub fn create_client(
        &self,
        name: ClientName,
        groups: GroupGrant,
        scopes: ScopeSet,
    ) -> Result<(ClientInfo, String), AuthError> {
        let secret = new_secret();
        let info = ClientInfo {
            id: format!("{CLIENT_ID_PREFIX}{}", new_id()),
            name,
            groups,
            scopes,
            created_at: self.now(),
        };
        let record = ClientRecord {
            info: info.clone(),
            secret_sha256: SecretHash::of(&secret),
        };
        self.mutate(|st| (true, st.clients.insert(info.id.clone(), record)))?;
        tracing::info!(client_id = %info.id, name = %info.name, "created API client");
        Ok((info, secret))
    }

    /// All clients, oldest first.
    pub fn list_clients(&self) -> Vec<ClientInfo> {
        let v = self
            .state
            .read()
            .clients
            .values()
            .map(|r| r.info.clone())
            .collect();
        oldest_first(v, |i: &ClientInfo| (i.created_at, &i.id))
    }

    /// Deletes a client; its access tokens stop working at once. `Ok(false)` if there is no
    /// such client.
    pub fn delete_client(&self, id: &str) -> Result<bool, AuthError> {
        let deleted = self.remove_record(|st| st.clients.remove(id).is_some())?;
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
        let info = TokenInfo {
            id,
            name,
            groups,
            scopes,
            created_at: now,
            expires_at,
        };
        let record = TokenRecord {
            info: info.clone(),
            token_sha256: SecretHash::of(&secret),
        };
        self.mutate(|st| (true, st.tokens.insert(info.id.clone(), record)))?;
        tracing::info!(token_id = %info.id, name = %info.name, "created personal access token");
        Ok((info, token))
    }

    /// All personal access tokens, expired ones included, oldest first.
    pub fn list_tokens(&self) -> Vec<TokenInfo> {
        let v = self
            .state
            .read()
            .tokens
            .values()
            .map(|r| r.info.clone())
            .collect();
        oldest_first(v, |i: &TokenInfo| (i.created_at, &i.id))
    }

    /// Revokes a personal access token at once, forgetting it. `Ok(false)` if there is no such
    /// token.
    pub fn revoke_token(&self, id: &str) -> Result<bool, AuthError> {
        let revoked = self.remove_record(|st| st.tokens.remove(id).is_some())?;
        if revoked {
            tracing::info!(token_id = %id, "revoked personal access token");
        }
        Ok(revoked)
    }

    /// Runs `remove` on a copy of the state, saving and publishing it only when it removed a
    /// record. Says whether it did.
    fn remove_record(&self, remove: impl FnOnce(&mut State) -> bool) -> Result<bool, AuthError> {
        self.mutate(|st| {
            let removed = remove(st);
            (removed, removed)
        })
    }
}

/// Sorts records oldest first, by creation time and then id, so that listings are stable.
fn oldest_first<T>(mut records: Vec<T>, key: impl Fn(&T) -> (Timestamp, &String)) -> Vec<T> {
    records.sort_by(|a, b| key(a).cmp(&key(b)));
    records
}
