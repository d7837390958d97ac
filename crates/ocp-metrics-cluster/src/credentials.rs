//! The cluster's credentials: the auth crate's [`CredentialStore`] on the credentials bucket
//! ([`CredentialsKv`]), and the task that keeps every node's registry current with it.
//!
//! Credentials are the cluster's, not a node's: a client or token created through any node's
//! admin API must work on every node within a second, and a revocation or deletion must take
//! effect everywhere as fast. So every change goes to the bucket first (the admin API answers
//! once the bucket's replicas acknowledged it), and every node follows the bucket with a watch
//! and applies each change to its in-memory registry, which is what authentication reads.
//!
//! **Keys and values.** `client.<client id>` and `token.<token id>` hold the same JSON record a
//! single node's registry file holds for it (the description and the SHA-256 of the secret,
//! never the secret); a deletion is a KV delete of the key. Ids are `ocpm_client_` plus 32 hex
//! digits and 32 hex digits, which are valid KV keys. `signing-key` holds the 32 raw bytes of
//! the HS256 key: it is created with a create-if-absent, so nodes starting at once agree on one
//! key, and it never leaves the cluster (only tokens signed with it reach clients).
//!
//! **Order.** Each change carries the bucket's revision, and the registry ignores a change older
//! than the one it already applied to the same record: a node sees its own changes twice (when
//! it makes them and when the watch echoes them), in either order.
//!
//! **A watch that fails or stalls.** `kv.rs` documents that a watch may end, fail or silently
//! stall when the server hosting it dies. The follower then re-creates the watch and re-reads
//! the whole bucket, replacing the registry's state (keeping only changes newer than the
//! re-read), so deletions missed meanwhile take effect. A stall is detected by comparing the
//! bucket's last revision with the last one the watch delivered, every
//! [`WATCH_CHECK_INTERVAL_MS`].
//!
//! Rate limits and failed-authentication counts stay per node.

use crate::ClusterError;
use crate::kv::{CREDENTIALS_BUCKET, CredentialChange, CredentialsKv, CredentialsWatch};
use bytes::Bytes;
use ocp_metrics_auth::{
    AuthConfig, AuthError, ClientRecord, CredentialStore, Credentials, RecordChange, RecordKind,
    Registry, SigningKey, TokenRecord,
};
use ocp_metrics_core::Clock;
use ocp_metrics_service::BoxFuture;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The key holding the HS256 signing key's raw bytes.
pub const SIGNING_KEY: &str = "signing-key";
/// Keys of clients: this, then the client id.
pub const CLIENT_KEY_PREFIX: &str = "client.";
/// Keys of personal access tokens: this, then the token id.
pub const TOKEN_KEY_PREFIX: &str = "token.";
/// How often the follower checks that its watch keeps up with the bucket. A stall is declared
/// when the bucket stayed ahead of the watch over one whole interval, so a stalled watch is
/// replaced within two intervals; each check is one JetStream API request.
pub const WATCH_CHECK_INTERVAL_MS: u64 = 1_000;
/// Longest wait for a full read of the bucket (a few thousand small records in practice, read
/// in milliseconds); past it the read is abandoned and retried.
pub const SNAPSHOT_TIMEOUT_MS: u64 = 10_000;
/// Pause between attempts to re-read the bucket after a watch failed, so that a NATS outage is
/// not hammered.
const RESYNC_RETRY_MS: u64 = 500;
/// Attempts at reading back the signing key when creating it lost a race with a deletion.
const SIGNING_KEY_ATTEMPTS: usize = 5;

/// The bucket key of a record.
pub fn record_key(kind: RecordKind, id: &str) -> String {
    match kind {
        RecordKind::Client => format!("{CLIENT_KEY_PREFIX}{id}"),
        RecordKind::Token => format!("{TOKEN_KEY_PREFIX}{id}"),
    }
}

/// Opens the registry of a cluster node on the credentials bucket (created with `replicas`
/// copies when missing) and starts following the bucket. Returns once the signing key and every
/// client and token are loaded; from then on, changes made through any node reach this registry
/// in milliseconds. The follower task stops once the registry is dropped.
pub async fn open_cluster_registry(
    client: async_nats::Client,
    replicas: usize,
    config: AuthConfig,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Registry>, ClusterError> {
    let kv = CredentialsKv::open(client, replicas).await?;
    let started = Arc::new(Mutex::new(None));
    let store = KvCredentialStore {
        kv: kv.clone(),
        started: started.clone(),
    };
    let registry = Registry::with_store(Box::new(store), config, clock)
        .await
        .map_err(cluster_error)?;
    let registry = Arc::new(registry);
    let (watch, seen) = started
        .lock()
        .expect("the started-watch lock is never poisoned")
        .take()
        .expect("Registry::with_store loads the state, which starts the watch");
    tokio::spawn(follow(kv, Arc::downgrade(&registry), watch, seen));
    Ok(registry)
}

/// The credentials bucket as a [`CredentialStore`]. A change is durable once the bucket's
/// stream acknowledged it: written by its leader and, for R3, by a majority of its replicas.
#[derive(Debug)]
pub struct KvCredentialStore {
    kv: CredentialsKv,
    /// The watch [`CredentialStore::load`] read the bucket with, and the last revision it
    /// delivered, for the follower to carry on from without a gap.
    started: Arc<Mutex<Option<(CredentialsWatch, u64)>>>,
}

impl CredentialStore for KvCredentialStore {
    fn signing_key(&self) -> BoxFuture<'_, Result<SigningKey, AuthError>> {
        Box::pin(async move {
            for _ in 0..SIGNING_KEY_ATTEMPTS {
                let fresh = SigningKey::generate();
                let created = self
                    .kv
                    .create(SIGNING_KEY, Bytes::copy_from_slice(&fresh.to_bytes()))
                    .await
                    .map_err(auth_error)?;
                if created.is_some() {
                    tracing::info!(
                        bucket = CREDENTIALS_BUCKET,
                        "generated the cluster's access-token signing key"
                    );
                    return Ok(fresh);
                }
                // Another node made it first: everyone uses the one that won.
                if let Some(bytes) = self.kv.get(SIGNING_KEY).await.map_err(auth_error)? {
                    return SigningKey::from_bytes(&bytes)
                        .map_err(|message| corrupt(SIGNING_KEY, message));
                }
            }
            Err(AuthError::Unavailable(format!(
                "the signing key `{SIGNING_KEY}` in bucket {CREDENTIALS_BUCKET} kept being \
                 deleted while this node read it; stop whatever deletes it"
            )))
        })
    }

    fn load(&self) -> BoxFuture<'_, Result<Credentials, AuthError>> {
        Box::pin(async move {
            let snapshot = read_bucket(&self.kv, Strictness::RefuseCorrupt).await?;
            *self
                .started
                .lock()
                .expect("the started-watch lock is never poisoned") =
                Some((snapshot.watch, snapshot.watermark));
            Ok(snapshot.credentials)
        })
    }

    fn persist<'a>(
        &'a self,
        change: &'a RecordChange,
        _after: &'a Credentials,
    ) -> BoxFuture<'a, Result<Option<u64>, AuthError>> {
        Box::pin(async move {
            let key = record_key(change.kind(), change.id());
            if !crate::kv::is_valid_key(&key) {
                return Err(AuthError::InvalidInput(format!(
                    "`{}` is not a valid id: ids are letters, digits and -_",
                    change.id()
                )));
            }
            let revision = match change {
                RecordChange::PutClient(r) => self.kv.put(&key, encode(r)).await,
                RecordChange::PutToken(r) => self.kv.put(&key, encode(r)).await,
                RecordChange::DeleteClient(_) | RecordChange::DeleteToken(_) => {
                    self.kv.delete(&key).await
                }
            }
            .map_err(auth_error)?;
            Ok(Some(revision))
        })
    }
}

fn encode(record: &impl serde::Serialize) -> Bytes {
    // Records of validated strings, hashes and timestamps always serialize.
    Bytes::from(serde_json::to_vec(record).expect("credential records serialize"))
}

/// What one bucket entry means.
enum Entry {
    Record(RecordChange),
    SigningKey,
    /// A key this build does not know (a newer build's): left alone.
    Unknown,
}

/// Reads one bucket change as a record change, checking that the record's id is its key's.
fn decode(change: &CredentialChange) -> Result<Entry, String> {
    let key = change.key();
    if key == SIGNING_KEY {
        return Ok(Entry::SigningKey);
    }
    let (kind, id) = if let Some(id) = key.strip_prefix(CLIENT_KEY_PREFIX) {
        (RecordKind::Client, id)
    } else if let Some(id) = key.strip_prefix(TOKEN_KEY_PREFIX) {
        (RecordKind::Token, id)
    } else {
        return Ok(Entry::Unknown);
    };
    let value = match change {
        CredentialChange::Delete { .. } => {
            return Ok(Entry::Record(match kind {
                RecordKind::Client => RecordChange::DeleteClient(id.to_owned()),
                RecordKind::Token => RecordChange::DeleteToken(id.to_owned()),
            }));
        }
        CredentialChange::Put { value, .. } => value,
    };
    let record = match kind {
        RecordKind::Client => serde_json::from_slice::<ClientRecord>(value)
            .map(RecordChange::PutClient)
            .map_err(|e| e.to_string())?,
        RecordKind::Token => serde_json::from_slice::<TokenRecord>(value)
            .map(RecordChange::PutToken)
            .map_err(|e| e.to_string())?,
    };
    if record.id() != id {
        return Err(format!("holds the record of id `{}`", record.id()));
    }
    Ok(Entry::Record(record))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// At start-up: a record that cannot be read stops the node, as a corrupt registry file
    /// does, rather than silently dropping a client.
    RefuseCorrupt,
    /// While running: such a record is logged and skipped, so one bad write elsewhere cannot
    /// stop every node from following the others.
    SkipCorrupt,
}

/// A full read of the bucket, and the watch it was read with, positioned after `watermark`.
struct Snapshot {
    credentials: Credentials,
    watch: CredentialsWatch,
    /// Every change up to this revision is in `credentials`.
    watermark: u64,
}

/// Reads every key of the bucket through a new watch, until the watch has delivered the
/// bucket's last revision as read after the watch was created: then every change made before
/// is in, and the watch carries on with the later ones.
async fn read_bucket(kv: &CredentialsKv, strictness: Strictness) -> Result<Snapshot, AuthError> {
    let mut watch = kv.watch().await.map_err(auth_error)?;
    let target = kv.last_revision().await.map_err(auth_error)?;
    let mut credentials = Credentials::default();
    let mut watermark = 0;
    if let Some(target) = target {
        let read = async {
            while watermark < target {
                let change = watch.next().await.map_err(auth_error)?;
                watermark = change.revision();
                match decode(&change) {
                    Ok(Entry::Record(record)) => {
                        credentials.apply(record, Some(change.revision()));
                    }
                    Ok(Entry::SigningKey | Entry::Unknown) => {}
                    Err(message) if strictness == Strictness::RefuseCorrupt => {
                        return Err(corrupt(change.key(), message));
                    }
                    Err(message) => skip_corrupt(&change, &message),
                }
            }
            Ok(())
        };
        tokio::time::timeout(Duration::from_millis(SNAPSHOT_TIMEOUT_MS), read)
            .await
            .map_err(|_| {
                AuthError::Unavailable(format!(
                    "reading bucket {CREDENTIALS_BUCKET} took over {SNAPSHOT_TIMEOUT_MS} ms \
                     (revision {watermark} of {target})"
                ))
            })??;
    }
    Ok(Snapshot {
        credentials,
        watch,
        watermark,
    })
}

/// Applies every change of the bucket to `registry` until the registry is dropped, replacing
/// the watch (and re-reading the bucket) when it fails or stalls.
async fn follow(
    kv: CredentialsKv,
    registry: Weak<Registry>,
    mut watch: CredentialsWatch,
    mut seen: u64,
) {
    let mut check = tokio::time::interval(Duration::from_millis(WATCH_CHECK_INTERVAL_MS));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // `seen` at the last check that found the bucket ahead of the watch.
    let mut behind_at: Option<u64> = None;
    loop {
        let resync = tokio::select! {
            change = watch.next() => match change {
                Ok(change) => {
                    let Some(registry) = registry.upgrade() else { return };
                    seen = seen.max(change.revision());
                    apply(&registry, &change);
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the credentials watch failed; re-reading the bucket");
                    true
                }
            },
            _ = check.tick() => {
                if registry.strong_count() == 0 {
                    return;
                }
                match kv.last_revision().await {
                    Ok(Some(last)) if last > seen => {
                        if behind_at == Some(seen) {
                            tracing::warn!(
                                last, seen,
                                "the credentials watch stalled; re-creating it and re-reading the bucket"
                            );
                            true
                        } else {
                            behind_at = Some(seen);
                            false
                        }
                    }
                    Ok(_) => {
                        behind_at = None;
                        false
                    }
                    // NATS unreachable: the watch cannot do better either; checked again later.
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot check the credentials watch");
                        false
                    }
                }
            }
        };
        if resync {
            let Some(snapshot) = reread(&kv, &registry).await else {
                return;
            };
            let Some(registry) = registry.upgrade() else {
                return;
            };
            registry.replace_credentials(snapshot.credentials, snapshot.watermark);
            watch = snapshot.watch;
            seen = snapshot.watermark;
            behind_at = None;
            tracing::info!(revision = seen, "re-read the credentials bucket");
        }
    }
}

/// Re-reads the bucket until it works, or `None` once the registry is gone.
async fn reread(kv: &CredentialsKv, registry: &Weak<Registry>) -> Option<Snapshot> {
    loop {
        if registry.strong_count() == 0 {
            return None;
        }
        match read_bucket(kv, Strictness::SkipCorrupt).await {
            Ok(snapshot) => return Some(snapshot),
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the credentials bucket; retrying");
                tokio::time::sleep(Duration::from_millis(RESYNC_RETRY_MS)).await;
            }
        }
    }
}

fn apply(registry: &Registry, change: &CredentialChange) {
    match decode(change) {
        Ok(Entry::Record(record)) => {
            registry.apply_change(record, change.revision());
        }
        Ok(Entry::SigningKey) => tracing::warn!(
            bucket = CREDENTIALS_BUCKET,
            "the signing key in the bucket changed; this node keeps signing and checking with the \
             key it loaded at start: restart every node so that they all use the same key"
        ),
        Ok(Entry::Unknown) => {
            tracing::debug!(
                key = change.key(),
                "ignored a credentials key this build does not know"
            );
        }
        Err(message) => skip_corrupt(change, &message),
    }
}

fn skip_corrupt(change: &CredentialChange, message: &str) {
    tracing::error!(
        bucket = CREDENTIALS_BUCKET,
        key = change.key(),
        revision = change.revision(),
        error = message,
        "skipped a credentials record this node cannot read; fix or delete the key"
    );
}

fn corrupt(key: &str, message: String) -> AuthError {
    AuthError::CorruptRecord {
        location: format!("key `{key}` of NATS KV bucket {CREDENTIALS_BUCKET}"),
        message: format!("{message}; fix the value or delete the key"),
    }
}

fn auth_error(e: ClusterError) -> AuthError {
    match e {
        ClusterError::Unavailable(m) => AuthError::Unavailable(m),
        other => AuthError::Unavailable(other.to_string()),
    }
}

fn cluster_error(e: AuthError) -> ClusterError {
    match e {
        AuthError::Unavailable(m) => ClusterError::Unavailable(m),
        AuthError::InvalidConfig(m) => ClusterError::Config(m),
        other => ClusterError::Mismatch(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_make_valid_keys_and_odd_ones_do_not() {
        let cases = [
            (
                RecordKind::Client,
                "ocpm_client_0123456789abcdef0123456789abcdef",
                true,
            ),
            (RecordKind::Token, "0123456789abcdef0123456789abcdef", true),
            (RecordKind::Token, "", false),
            (RecordKind::Client, "a b", false),
            (RecordKind::Client, "a*", false),
            (RecordKind::Token, "x.", false),
        ];
        for (kind, id, valid) in cases {
            assert_eq!(
                crate::kv::is_valid_key(&record_key(kind, id)),
                valid,
                "{id:?}"
            );
        }
    }

    #[test]
    fn entries_decode_by_key_and_a_mismatched_id_is_refused() {
        let client = br#"{"id":"ocpm_client_ab","name":"ingest bot","groups":["ocp-qa"],"scopes":["events:write"],"created_at":"2024-03-27T11:00:00Z","secret_sha256":"83aeb0c6678c4184dfad301844e867c0e1a756e674c66f1e8eb217b585eaf3b6"}"#;
        let put = |key: &str, value: &'static [u8]| CredentialChange::Put {
            key: key.into(),
            value: Bytes::from_static(value),
            revision: 1,
        };
        let delete = |key: &str| CredentialChange::Delete {
            key: key.into(),
            revision: 2,
        };
        let cases: Vec<(CredentialChange, Result<&str, &str>)> = vec![
            (
                put("client.ocpm_client_ab", client),
                Ok("put client ocpm_client_ab"),
            ),
            (
                put("client.ocpm_client_cd", client),
                Err("holds the record of id"),
            ),
            (put("token.ab", client), Err("missing field")),
            (put("client.ocpm_client_ab", b"{"), Err("EOF")),
            (
                delete("client.ocpm_client_ab"),
                Ok("delete client ocpm_client_ab"),
            ),
            (delete("token.ab"), Ok("delete token ab")),
            (put(SIGNING_KEY, b"k"), Ok("signing key")),
            (put("other.thing", b"x"), Ok("unknown")),
        ];
        for (change, want) in cases {
            let got = decode(&change).map(|e| match e {
                Entry::Record(RecordChange::PutClient(r)) => format!("put client {}", r.info.id),
                Entry::Record(RecordChange::PutToken(r)) => format!("put token {}", r.info.id),
                Entry::Record(RecordChange::DeleteClient(id)) => format!("delete client {id}"),
                Entry::Record(RecordChange::DeleteToken(id)) => format!("delete token {id}"),
                Entry::SigningKey => "signing key".into(),
                Entry::Unknown => "unknown".into(),
            });
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{change:?}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{change:?}: {g}"),
                (g, w) => panic!("{change:?}: got {g:?}, want {w:?}"),
            }
        }
    }
}
