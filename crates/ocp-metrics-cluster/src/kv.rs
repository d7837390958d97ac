//! The cluster's credentials: a JetStream key-value bucket of opaque values (API clients,
//! personal access tokens, the signing key), each already hashed or sealed by the auth layer,
//! watched by every node so that a creation or revocation applies everywhere within
//! milliseconds.
//!
//! One caveat, seen in `tests/buckets.rs`: the watch is an ordered consumer living on one
//! server. If that server dies, the watch only notices after missed idle heartbeats
//! (async-nats sends them every 5 s and gives up after two) and then recreates itself, so
//! changes made meanwhile can arrive seconds late on that node (one run here missed the 1 s
//! bound; others saw the change 1-3 ms after the stop, when the consumer lived elsewhere; and
//! in one CI run on a loaded machine the watch had not recovered 30 s after the stop, so a
//! cluster backend must not rely on this watch alone across a server loss: recreate it, or
//! re-read with `get`, when it stalls). In
//! steady state changes arrive in milliseconds. A put or delete made while the bucket's leader
//! is being re-elected fails with `Unavailable` and is retried by the caller.
//! A node that needs a hard bound on revocation during a failover can re-read revoked keys
//! with [`CredentialsKv::get`] (a direct request to the bucket) when its watch reports an
//! error.

use crate::stream::check_same;
use crate::{ClusterError, js_error};
use async_nats::jetstream::Context;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use bytes::Bytes;
use futures_util::StreamExt;

/// The bucket's name (its stream is `KV_OCPM_CREDENTIALS`).
pub const CREDENTIALS_BUCKET: &str = "OCPM_CREDENTIALS";
/// The largest value the bucket accepts. A client record, a token hash or the signing key is a
/// few hundred bytes; the bound keeps a bug from filling every server's memory and disk.
pub const CREDENTIAL_VALUE_BYTES_MAX: i32 = 64 * 1024;

/// One change seen by a [`CredentialsWatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialChange {
    Put {
        key: String,
        value: Bytes,
        revision: u64,
    },
    /// The key was deleted (or purged): forget it.
    Delete { key: String, revision: u64 },
}

impl CredentialChange {
    pub fn key(&self) -> &str {
        match self {
            CredentialChange::Put { key, .. } | CredentialChange::Delete { key, .. } => key,
        }
    }

    /// The bucket's revision of this change: its stream sequence, increasing with every change
    /// to any key.
    pub fn revision(&self) -> u64 {
        match self {
            CredentialChange::Put { revision, .. } | CredentialChange::Delete { revision, .. } => {
                *revision
            }
        }
    }
}

/// Whether `key` is a valid NATS KV key: non-empty, letters, digits and `-_=./`, not starting or
/// ending with a dot.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.' | b'/'))
}

/// The header that marks a KV entry as a deletion (NATS ADR-8).
const KV_OPERATION_HEADER: &str = "KV-Operation";
const KV_OPERATION_DELETE: &str = "DEL";

/// The credentials bucket.
#[derive(Debug, Clone)]
pub struct CredentialsKv {
    store: kv::Store,
    /// For what `kv::Store` does not offer: deletes that answer their revision, and the
    /// bucket's last revision.
    js: Context,
}

/// Creates a key-value bucket (history 1, file storage, `replicas` copies), or checks that the
/// existing one has as many replicas, and opens it.
pub async fn open_bucket(
    js: &Context,
    bucket: &str,
    description: &str,
    value_bytes_max: i32,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    let stream_name = format!("KV_{bucket}");
    let what = format!("open the bucket {bucket}");
    if let Some(info) = crate::existing_stream(js, &stream_name).await? {
        check_same(&stream_name, "replicas", info.config.num_replicas, replicas)?;
        return js
            .get_key_value(bucket)
            .await
            .map_err(|e| js_error(&what, e));
    }
    // async-nats 0.46's `create_key_value` first asks for the account's info, and its parser
    // requires fields nats-server 2.9 does not send (`reserved_memory`), so the bucket's
    // stream is created here as the KV specification (NATS ADR-8) lays it out and then
    // opened as a bucket.
    js.create_stream(stream::Config {
        name: stream_name,
        description: Some(description.into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_message_size: value_bytes_max,
        storage: StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| js_error(&format!("create the bucket {bucket}"), e))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| js_error(&what, e))
}

impl CredentialsKv {
    /// Creates the bucket (history 1, file storage, `replicas` copies), or checks that the
    /// existing one has as many replicas.
    pub async fn open(
        client: async_nats::Client,
        replicas: usize,
    ) -> Result<CredentialsKv, ClusterError> {
        let js = crate::jetstream_context(client);
        let store = open_bucket(
            &js,
            CREDENTIALS_BUCKET,
            "ocp-metrics clients, tokens and signing key",
            CREDENTIAL_VALUE_BYTES_MAX,
            replicas,
        )
        .await?;
        Ok(CredentialsKv { store, js })
    }

    /// Stores `value` under `key` and answers the new revision. Keys are NATS KV keys: letters,
    /// digits and `-_=./`, not starting or ending with a dot.
    pub async fn put(&self, key: &str, value: Bytes) -> Result<u64, ClusterError> {
        self.store
            .put(key, value)
            .await
            .map_err(|e| js_error(&format!("store credential `{key}`"), e))
    }

    /// Stores `value` under `key` only if the key holds no value (never written, or deleted),
    /// answering the new revision; `None` when the key already holds one. Of several nodes
    /// creating one key at once, exactly one succeeds.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<Option<u64>, ClusterError> {
        match self.store.create(key, value).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(js_error(&format!("create credential `{key}`"), e)),
        }
    }

    /// The current value of `key`, `None` when absent or deleted.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ClusterError> {
        self.store
            .get(key)
            .await
            .map_err(|e| js_error(&format!("read credential `{key}`"), e))
    }

    /// Deletes `key` and answers the deletion's revision; watchers see a
    /// [`CredentialChange::Delete`]. Written as `kv::Store::delete` does (a message with the
    /// `KV-Operation: DEL` header), which throws the revision away.
    pub async fn delete(&self, key: &str) -> Result<u64, ClusterError> {
        if !is_valid_key(key) {
            return Err(ClusterError::Config(format!(
                "`{key}` is not a valid credentials key: use letters, digits and -_=./"
            )));
        }
        let subject = format!(
            "{}{key}",
            self.store.put_prefix.as_ref().unwrap_or(&self.store.prefix)
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(KV_OPERATION_HEADER, KV_OPERATION_DELETE);
        let what = format!("delete credential `{key}`");
        let ack = self
            .js
            .publish_with_headers(subject, headers, Bytes::new())
            .await
            .map_err(|e| js_error(&what, e))?
            .await
            .map_err(|e| js_error(&what, e))?;
        Ok(ack.sequence)
    }

    /// The revision of the bucket's newest change, `None` while the bucket holds nothing. A
    /// watch that has seen this revision has seen every change made before the call.
    pub async fn last_revision(&self) -> Result<Option<u64>, ClusterError> {
        let name = format!("KV_{CREDENTIALS_BUCKET}");
        let info = crate::existing_stream(&self.js, &name)
            .await?
            .ok_or_else(|| {
                ClusterError::Unavailable(format!(
                    "the credentials bucket's stream `{name}` is gone; restart the node to \
                     create it again"
                ))
            })?;
        Ok((info.state.messages > 0).then_some(info.state.last_sequence))
    }

    /// Watches the whole bucket: first the current value of every key (deleted keys as
    /// deletes), then every change as it is stored. A node builds its registry from the first
    /// part and keeps it current from the second, without a gap between the two.
    pub async fn watch(&self) -> Result<CredentialsWatch, ClusterError> {
        let inner = self
            .store
            .watch_with_history(">")
            .await
            .map_err(|e| js_error("watch the credentials bucket", e))?;
        Ok(CredentialsWatch { inner })
    }
}

/// Changes to the credentials bucket, in revision order.
pub struct CredentialsWatch {
    inner: kv::Watch,
}

impl std::fmt::Debug for CredentialsWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsWatch").finish_non_exhaustive()
    }
}

impl CredentialsWatch {
    /// The next change, waiting for one. `Err(Unavailable)` is transient (the watch is an
    /// ordered consumer that recreates itself after a failover): call `next` again.
    pub async fn next(&mut self) -> Result<CredentialChange, ClusterError> {
        match self.inner.next().await {
            Some(Ok(entry)) => Ok(match entry.operation {
                Operation::Put => CredentialChange::Put {
                    key: entry.key,
                    value: entry.value,
                    revision: entry.revision,
                },
                Operation::Delete | Operation::Purge => CredentialChange::Delete {
                    key: entry.key,
                    revision: entry.revision,
                },
            }),
            Some(Err(e)) => Err(js_error("follow the credentials bucket", e)),
            None => Err(ClusterError::Unavailable(
                "credentials watch closed: the NATS connection was closed".into(),
            )),
        }
    }
}
