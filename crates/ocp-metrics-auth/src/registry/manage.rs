//! Management of API clients and personal access tokens: what the admin API does.

use super::{CLIENT_ID_PREFIX, PAT_PREFIX, Registry};
use crate::credentials::{ClientRecord, RecordChange, TokenRecord};
use crate::domain::{ClientName, GroupGrant, ScopeSet, ts};
use crate::error::AuthError;
use crate::secret::{SecretHash, new_id, new_secret};
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
    /// else afterwards: show it once. Returns once the store made the client durable.
    pub async fn create_client(
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
        self.put(RecordChange::PutClient(record)).await?;
        tracing::info!(client_id = %info.id, name = %info.name, "created API client");
        Ok((info, secret))
    }

    /// All clients, oldest first.
    pub fn list_clients(&self) -> Vec<ClientInfo> {
        let state = self.state.read();
        oldest_first(state.clients.values().map(|r| &r.info), |i| {
            (i.created_at, &i.id)
        })
    }

    /// Deletes a client; its access tokens stop working at once (on other nodes, once they
    /// see the change). `Ok(false)` if there is no such client.
    pub async fn delete_client(&self, id: &str) -> Result<bool, AuthError> {
        let deletion = RecordChange::DeleteClient(id.to_owned());
        let logged = || tracing::info!(client_id = %id, "deleted API client");
        self.remove(deletion, logged).await
    }

    /// Creates a personal access token. Returns its description and the token, which exists
    /// nowhere else afterwards: show it once. `expires_at`, when given, must be in the future.
    /// Returns once the store made the token durable.
    pub async fn create_token(
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
        self.put(RecordChange::PutToken(record)).await?;
        tracing::info!(token_id = %info.id, name = %info.name, "created personal access token");
        Ok((info, token))
    }

    /// All personal access tokens, expired ones included, oldest first.
    pub fn list_tokens(&self) -> Vec<TokenInfo> {
        let state = self.state.read();
        oldest_first(state.tokens.values().map(|r| &r.info), |i| {
            (i.created_at, &i.id)
        })
    }

    /// Revokes a personal access token at once, forgetting it. `Ok(false)` if there is no such
    /// token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, AuthError> {
        let deletion = RecordChange::DeleteToken(id.to_owned());
        let logged = || tracing::info!(token_id = %id, "revoked personal access token");
        self.remove(deletion, logged).await
    }

    /// Makes a new record durable and publishes it; nothing in the state can refuse it (its
    /// id is fresh).
    async fn put(&self, change: RecordChange) -> Result<(), AuthError> {
        self.mutate(|_| (Some(change), ())).await
    }

    /// Makes a deletion durable and publishes it if the record it names exists, so that
    /// deleting an unknown id writes nothing; `logged` runs once it took effect. Says whether
    /// there was such a record.
    async fn remove(
        &self,
        deletion: RecordChange,
        logged: impl FnOnce(),
    ) -> Result<bool, AuthError> {
        let removed = self
            .mutate(|st| match st.holds(deletion.kind(), deletion.id()) {
                true => (Some(deletion), true),
                false => (None, false),
            })
            .await?;
        if removed {
            logged();
        }
        Ok(removed)
    }
}

/// Copies the descriptions oldest first, by creation time and then id, so that listings are
/// stable.
fn oldest_first<'a, T: Clone + 'a>(
    infos: impl Iterator<Item = &'a T>,
    key: impl Fn(&T) -> (Timestamp, &String),
) -> Vec<T> {
    let mut out: Vec<T> = infos.cloned().collect();
    out.sort_by(|a, b| key(a).cmp(&key(b)));
    out
}
