//! Where the registry's clients, tokens and signing key live: the [`CredentialStore`] seam.
//!
//! The registry keeps every credential in memory, so that authenticating a request never waits
//! for a disk or a network. What changes is where a change is made durable: a single node keeps
//! them in files in its data directory ([`crate::FileStore`]); the nodes of a cluster share
//! them through a replicated key-value bucket (in the cluster crate, which implements this trait
//! and feeds the changes other nodes make back with [`crate::Registry::apply_change`]). The
//! trait holds no network type, so this crate stays free of NATS.

use crate::error::AuthError;
use crate::jwt::SigningKey;
use crate::registry::{ClientInfo, TokenInfo};
use crate::secret::SecretHash;
use ocp_metrics_service::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Keeps the signing key and the records of clients and tokens durable.
///
/// **Durable** means what the implementation says: for the file store, written and fsynced
/// (file and directory) with the store crate's `private::write_atomically`; for the cluster's
/// key-value bucket, acknowledged by the bucket's replicas (see the cluster crate for what a
/// JetStream acknowledgement means on disk). The registry publishes a change to its readers only
/// after [`CredentialStore::persist`] returned `Ok`, so a change that could not be made durable
/// never takes effect, and a reader never waits for a write.
///
/// The methods return boxed futures so that the trait stays object-safe: the registry holds a
/// `Box<dyn CredentialStore>` chosen at start-up.
pub trait CredentialStore: Send + Sync + fmt::Debug {
    /// The HS256 signing key, made and stored when the store has none. Stores shared by several
    /// nodes must create it atomically (create-if-absent, then read back), so that nodes starting
    /// at once all end up with the one key that won.
    fn signing_key(&self) -> BoxFuture<'_, Result<SigningKey, AuthError>>;

    /// Every client and token in the store, as the registry starts from. A shared store also
    /// starts following changes made elsewhere from this point, without a gap.
    fn load(&self) -> BoxFuture<'_, Result<Credentials, AuthError>>;

    /// Makes one change durable. `after` is the whole state once the change is applied, for a
    /// store that writes everything at once (the file); a store of one entry per record needs
    /// only `change`. Answers the change's revision in a store shared with other nodes (the
    /// order in which the store took it, the same number other nodes see it with), or `None`
    /// for a store only this registry writes.
    fn persist<'a>(
        &'a self,
        change: &'a RecordChange,
        after: &'a Credentials,
    ) -> BoxFuture<'a, Result<Option<u64>, AuthError>>;
}

/// A client as stored: what the admin API shows of it, and the hash of its secret (never the
/// secret). Flattened, so the JSON holds one object per client with the hash as its last field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    #[serde(flatten)]
    pub info: ClientInfo,
    pub(crate) secret_sha256: SecretHash,
}

/// A personal access token as stored: what the admin API shows of it, and the hash of its
/// secret part (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub(crate) token_sha256: SecretHash,
}

/// Which kind of record a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    Client,
    Token,
}

/// One change to one record: what [`CredentialStore::persist`] makes durable, and what
/// [`crate::Registry::apply_change`] applies when another node made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    PutClient(ClientRecord),
    /// Deletes the client with this id.
    DeleteClient(String),
    PutToken(TokenRecord),
    /// Deletes (revokes) the token with this id.
    DeleteToken(String),
}

impl RecordChange {
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordChange::PutClient(_) | RecordChange::DeleteClient(_) => RecordKind::Client,
            RecordChange::PutToken(_) | RecordChange::DeleteToken(_) => RecordKind::Token,
        }
    }

    /// The id of the client or token changed.
    pub fn id(&self) -> &str {
        match self {
            RecordChange::PutClient(r) => &r.info.id,
            RecordChange::PutToken(r) => &r.info.id,
            RecordChange::DeleteClient(id) | RecordChange::DeleteToken(id) => id,
        }
    }
}

/// Everything the registry knows, keyed by id, with the revision of each record's latest change
/// when the store is shared.
///
/// The revisions make applying changes order-proof: a node sees its own change twice (once when
/// it publishes it, once more when the bucket's watch echoes it), and a change from elsewhere
/// can arrive before or after a local one. A change older than the one already applied to the
/// same record is ignored, so a late echo of a creation cannot bring back a record deleted since.
/// Deletions keep their revision (a tombstone without a record) for the same reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub(crate) clients: BTreeMap<String, ClientRecord>,
    pub(crate) tokens: BTreeMap<String, TokenRecord>,
    pub(crate) revisions: HashMap<(RecordKind, String), u64>,
}

impl Credentials {
    /// Whether a record of `kind` with this id exists (a tombstone is no record).
    pub(crate) fn holds(&self, kind: RecordKind, id: &str) -> bool {
        match kind {
            RecordKind::Client => self.clients.contains_key(id),
            RecordKind::Token => self.tokens.contains_key(id),
        }
    }

    /// Applies `change` unless a change of the same record with a revision at least as new was
    /// applied already. `revision` is `None` for a store only this registry writes: then every
    /// change applies. Says whether it applied.
    pub fn apply(&mut self, change: RecordChange, revision: Option<u64>) -> bool {
        if let Some(rev) = revision {
            let key = (change.kind(), change.id().to_owned());
            if self.revisions.get(&key).is_some_and(|&known| known >= rev) {
                return false;
            }
            self.revisions.insert(key, rev);
        }
        match change {
            RecordChange::PutClient(r) => {
                self.clients.insert(r.info.id.clone(), r);
            }
            RecordChange::DeleteClient(id) => {
                self.clients.remove(&id);
            }
            RecordChange::PutToken(r) => {
                self.tokens.insert(r.info.id.clone(), r);
            }
            RecordChange::DeleteToken(id) => {
                self.tokens.remove(&id);
            }
        }
        true
    }

    /// Clients and tokens held (deleted ones not counted).
    pub fn len(&self) -> (usize, usize) {
        (self.clients.len(), self.tokens.len())
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.tokens.is_empty()
    }

    /// `fresh`, a full re-read of a shared store covering every revision up to `watermark`,
    /// with the records of `self` changed after it: those are newer than what `fresh` knows.
    pub(crate) fn rebased(&self, mut fresh: Credentials, watermark: u64) -> Credentials {
        for ((kind, id), &rev) in &self.revisions {
            if rev <= watermark {
                continue;
            }
            match kind {
                RecordKind::Client => match self.clients.get(id) {
                    Some(r) => {
                        fresh.clients.insert(id.clone(), r.clone());
                    }
                    None => {
                        fresh.clients.remove(id);
                    }
                },
                RecordKind::Token => match self.tokens.get(id) {
                    Some(r) => {
                        fresh.tokens.insert(id.clone(), r.clone());
                    }
                    None => {
                        fresh.tokens.remove(id);
                    }
                },
            }
            fresh.revisions.insert((*kind, id.clone()), rev);
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientName, GroupGrant, ScopeSet};

    fn client(id: &str) -> ClientRecord {
        ClientRecord {
            info: ClientInfo {
                id: id.to_owned(),
                name: ClientName::parse("c").unwrap(),
                groups: GroupGrant::parse(&["*"]).unwrap(),
                scopes: ScopeSet::parse(&["metrics:read"]).unwrap(),
                created_at: "2024-03-27T12:00:00Z".parse().unwrap(),
            },
            secret_sha256: SecretHash::of("s"),
        }
    }

    /// Changes to one client in various orders, with revisions: the state ends as the newest
    /// change says, whatever order they arrived in.
    #[test]
    fn changes_apply_in_revision_order_whatever_their_arrival_order() {
        let put = |rev| (RecordChange::PutClient(client("a")), Some(rev));
        let delete = |rev| (RecordChange::DeleteClient("a".into()), Some(rev));
        /// What, the changes in arrival order with their revisions, and whether the client
        /// exists at the end.
        type Case = (&'static str, Vec<(RecordChange, Option<u64>)>, bool);
        let cases: Vec<Case> = vec![
            ("put", vec![put(1)], true),
            ("put, delete", vec![put(1), delete(2)], false),
            (
                "delete, late echo of the put",
                vec![delete(2), put(1)],
                false,
            ),
            ("put twice (echo)", vec![put(1), put(1)], true),
            ("delete, put again later", vec![delete(2), put(3)], true),
            (
                "file store: no revisions",
                vec![
                    (RecordChange::PutClient(client("a")), None),
                    (RecordChange::DeleteClient("a".into()), None),
                ],
                false,
            ),
        ];
        for (what, changes, present) in cases {
            let mut c = Credentials::default();
            for (change, rev) in changes {
                c.apply(change, rev);
            }
            assert_eq!(c.clients.contains_key("a"), present, "{what}");
        }
    }

    #[test]
    fn rebasing_keeps_changes_newer_than_the_reread() {
        let mut live = Credentials::default();
        live.apply(RecordChange::PutClient(client("old")), Some(1));
        live.apply(RecordChange::PutClient(client("new")), Some(5));
        live.apply(RecordChange::PutClient(client("gone")), Some(2));
        live.apply(RecordChange::DeleteClient("gone".into()), Some(6));
        // The re-read covers revisions up to 4: it saw "old" deleted at 3 and "gone" created.
        let mut fresh = Credentials::default();
        fresh.apply(RecordChange::DeleteClient("old".into()), Some(3));
        fresh.apply(RecordChange::PutClient(client("gone")), Some(2));
        let next = live.rebased(fresh, 4);
        let ids: Vec<&str> = next.clients.keys().map(String::as_str).collect();
        assert_eq!(ids, ["new"]);
    }
}
