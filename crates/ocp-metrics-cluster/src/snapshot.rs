//! Snapshots of a node's state in a JetStream object store, so that any node, including one
//! with an empty data dir, starts from the newest snapshot and replays only the stream after
//! it. Once the stream is purged below a snapshot, the snapshots are the only copy of what came
//! before: they are treated as data (versioned framing, SHA-256 checked on every read,
//! replicated like the stream, two kept).
//!
//! # Blob format, version 1
//!
//! ```text
//! bytes 0..8    magic "OCPMSNAP"
//! byte  8       framing version, 1
//! bytes 9..17   covered stream sequence, u64 little-endian
//! bytes 17..25  payload length, u64 little-endian
//! bytes 25..57  SHA-256 of bytes 0..25 followed by the payload
//! bytes 57..    payload (opaque here: the node's own versioned state encoding)
//! ```
//!
//! Each snapshot is the object `snapshot-<covered sequence, 20 digits>`, so names sort by
//! sequence and a node can list what exists without reading any blob.

use crate::stream::check_same;
use crate::{ClusterError, js_error};
use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// The object store bucket's name (its stream is `OBJ_OCPM_SNAPSHOTS`).
pub const SNAPSHOT_BUCKET: &str = "OCPM_SNAPSHOTS";
/// How many snapshots are kept: the newest, and one older to fall back to if the newest fails
/// its checksum. The stream must not be purged past the older one's sequence.
pub const SNAPSHOTS_KEPT: usize = 2;
/// The current framing version.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 1;

const MAGIC: &[u8; 8] = b"OCPMSNAP";
const HEADER_BYTES: usize = 8 + 1 + 8 + 8;
const DIGEST_BYTES: usize = 32;
const NAME_PREFIX: &str = "snapshot-";

/// A verified snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The last stream sequence the state includes: resume reading at this + 1.
    pub covers_sequence: u64,
    pub payload: Vec<u8>,
}

/// The longest a raw blob write (tests only) may take, in milliseconds.
#[cfg(feature = "testing")]
const SNAPSHOT_RAW_PUT_TIMEOUT_MS: u64 = 600_000;
/// The longest a snapshot read may go without progress (opening the object, or any one chunk
/// arriving) before it fails with `Unavailable` and the node retries it, in milliseconds. The
/// object store reads through a consumer that was seen to stall for good when a server of an
/// R3 stream had just been killed (a node then sat "recovering" until a test gave up); a fresh
/// read makes a fresh consumer. A bound on progress rather than on the whole read lets a large
/// snapshot take as long as it needs while it moves.
pub const SNAPSHOT_READ_STALL_MS: u64 = 10_000;
/// The longest a small operation (metadata, a delete) or the fixed part of a put may take, in
/// milliseconds. A put to a stream whose leader was just killed was seen to stall without
/// failing; a node must not stop snapshotting for ten minutes because of it.
pub const SNAPSHOT_SMALL_OPERATION_TIMEOUT_MS: u64 = 30_000;
/// The slowest transfer a put is given time for, in bytes per millisecond (10 MB/s).
pub const SNAPSHOT_TRANSFER_BYTES_PER_MS_MIN: u64 = 10_000;

/// The snapshot bucket.
#[derive(Clone)]
pub struct SnapshotStore {
    store: ObjectStore,
    /// The bucket's underlying stream, for listing object names with one request.
    stream: async_nats::jetstream::stream::Stream,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("bucket", &SNAPSHOT_BUCKET)
            .finish()
    }
}

impl SnapshotStore {
    /// Creates the bucket with `replicas` copies (the stream's), or checks the existing one's.
    pub async fn open(
        client: async_nats::Client,
        replicas: usize,
    ) -> Result<SnapshotStore, ClusterError> {
        let js = crate::jetstream_context(client);
        let stream_name = format!("OBJ_{SNAPSHOT_BUCKET}");
        let store = if let Some(info) = crate::existing_stream(&js, &stream_name).await? {
            check_same(&stream_name, "replicas", info.config.num_replicas, replicas)?;
            js.get_object_store(SNAPSHOT_BUCKET)
                .await
                .map_err(|e| js_error("open the snapshot bucket", e))?
        } else {
            js.create_object_store(object_store::Config {
                bucket: SNAPSHOT_BUCKET.into(),
                description: Some("ocp-metrics state snapshots".into()),
                storage: StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| js_error("create the snapshot bucket", e))?
        };
        let stream = js
            .get_stream(&stream_name)
            .await
            .map_err(|e| js_error("open the snapshot bucket's stream", e))?;
        Ok(SnapshotStore { store, stream })
    }

    /// Stores a snapshot of the state up to and including `covers_sequence`, then deletes all
    /// but the newest [`SNAPSHOTS_KEPT`].
    pub async fn put(&self, covers_sequence: u64, payload: &[u8]) -> Result<(), ClusterError> {
        let blob = frame(covers_sequence, payload);
        let timeout_ms = SNAPSHOT_SMALL_OPERATION_TIMEOUT_MS
            + blob.len() as u64 / SNAPSHOT_TRANSFER_BYTES_PER_MS_MIN;
        bounded(
            timeout_ms,
            "store a snapshot",
            self.store
                .put(object_name(covers_sequence).as_str(), &mut blob.as_slice()),
        )
        .await?;
        for old in self.list().await?.into_iter().skip(SNAPSHOTS_KEPT) {
            bounded(
                SNAPSHOT_SMALL_OPERATION_TIMEOUT_MS,
                "delete an old snapshot",
                self.store.delete(object_name(old)),
            )
            .await?;
        }
        Ok(())
    }

    /// The covered sequences of the stored snapshots, newest first.
    ///
    /// Read from the bucket's stream (one request for the metadata subjects, one per object
    /// for its current metadata) rather than the object store's own listing, which follows a
    /// consumer until a pending count reaches zero and was seen to hang here on an R3 bucket.
    pub async fn list(&self) -> Result<Vec<u64>, ClusterError> {
        let mut subjects = self
            .stream
            .info_with_subjects(format!("$O.{SNAPSHOT_BUCKET}.M.>"))
            .await
            .map_err(|e| js_error("list snapshots", e))?;
        let mut sequences = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| js_error("list snapshots", e))?;
            let Some(name) = subject
                .rsplit('.')
                .next()
                .and_then(|encoded| URL_SAFE.decode(encoded).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
            else {
                continue;
            };
            let Some(seq) = name
                .strip_prefix(NAME_PREFIX)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let info = bounded(
                SNAPSHOT_READ_STALL_MS,
                "read a snapshot's metadata",
                self.store.info(&name),
            )
            .await?;
            if !info.deleted {
                sequences.push(seq);
            }
        }
        sequences.sort_unstable_by(|a, b| b.cmp(a));
        Ok(sequences)
    }

    /// The snapshot covering `covers_sequence`, verified: `Err(Snapshot)` when its framing or
    /// checksum is wrong.
    pub async fn get(&self, covers_sequence: u64) -> Result<Snapshot, ClusterError> {
        let blob = self.get_blob(covers_sequence).await?;
        unframe(covers_sequence, &blob)
    }

    /// The newest snapshot that passes its checksum, falling back to older ones (each failure
    /// is logged), or `None` when there is no good snapshot (start from sequence 1).
    pub async fn latest(&self) -> Result<Option<Snapshot>, ClusterError> {
        for seq in self.list().await? {
            match self.get(seq).await {
                Ok(s) => return Ok(Some(s)),
                Err(e @ ClusterError::Snapshot { .. }) => {
                    tracing::error!(error = %e, "skipping a damaged snapshot, trying an older one");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    async fn get_blob(&self, covers_sequence: u64) -> Result<Vec<u8>, ClusterError> {
        let store = self.store.clone();
        let name = object_name(covers_sequence);
        let what = format!("read snapshot {covers_sequence}");
        // On a task of its own: async-nats 0.46's object reader unwraps the creation of the
        // consumer it reads chunks through (`object_store/mod.rs`), which times out when a
        // server has just died; the panic ends that task, and becomes an error here that the
        // caller retries, instead of ending the caller.
        let task_what = what.clone();
        let read = tokio::spawn(async move { read_object(&store, &name, &task_what).await });
        match read.await {
            Ok(read) => read,
            Err(failed) => Err(ClusterError::Unavailable(format!(
                "cannot {what}: the object store reader failed ({failed}); retry"
            ))),
        }
    }
}

/// Reads one object whole, failing with `Unavailable` whenever a step makes no progress within
/// [`SNAPSHOT_READ_STALL_MS`] (dropping the reader, and with it its consumer).
async fn read_object(store: &ObjectStore, name: &str, what: &str) -> Result<Vec<u8>, ClusterError> {
    let mut object = bounded(SNAPSHOT_READ_STALL_MS, what, store.get(name)).await?;
    let mut blob = Vec::with_capacity(object.info().size);
    loop {
        let read = bounded(SNAPSHOT_READ_STALL_MS, what, object.read_buf(&mut blob)).await?;
        if read == 0 {
            return Ok(blob);
        }
    }
}

/// Runs one object-store operation within `timeout_ms`.
async fn bounded<T, E: std::fmt::Display>(
    timeout_ms: u64,
    what: &str,
    op: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), op)
        .await
        .map_err(|_| {
            ClusterError::Unavailable(format!("cannot {what}: no progress within {timeout_ms} ms"))
        })?
        .map_err(|e| js_error(what, e))
}

fn object_name(covers_sequence: u64) -> String {
    format!("{NAME_PREFIX}{covers_sequence:020}")
}

fn frame(covers_sequence: u64, payload: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(HEADER_BYTES + DIGEST_BYTES + payload.len());
    blob.extend_from_slice(MAGIC);
    blob.push(SNAPSHOT_FORMAT_VERSION);
    blob.extend_from_slice(&covers_sequence.to_le_bytes());
    blob.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let digest = digest(&blob, payload);
    blob.extend_from_slice(&digest);
    blob.extend_from_slice(payload);
    blob
}

fn unframe(covers_sequence: u64, blob: &[u8]) -> Result<Snapshot, ClusterError> {
    let bad = |reason: String| ClusterError::Snapshot {
        covers_sequence,
        reason,
    };
    if blob.len() < HEADER_BYTES + DIGEST_BYTES || &blob[..8] != MAGIC {
        return Err(bad(format!(
            "not a snapshot blob ({} bytes, no OCPMSNAP header)",
            blob.len()
        )));
    }
    if blob[8] != SNAPSHOT_FORMAT_VERSION {
        return Err(bad(format!(
            "framing version {} is not known to this build (it reads {SNAPSHOT_FORMAT_VERSION})",
            blob[8]
        )));
    }
    let u64_at = |at: usize| u64::from_le_bytes(blob[at..at + 8].try_into().expect("8 bytes"));
    let (header, rest) = blob.split_at(HEADER_BYTES);
    let (stored_digest, payload) = rest.split_at(DIGEST_BYTES);
    if u64_at(17) != payload.len() as u64 {
        return Err(bad(format!(
            "truncated: header says {} payload bytes, blob has {}",
            u64_at(17),
            payload.len()
        )));
    }
    if digest(header, payload).as_slice() != stored_digest {
        return Err(bad("SHA-256 checksum mismatch: the blob is damaged".into()));
    }
    if u64_at(9) != covers_sequence {
        return Err(bad(format!(
            "blob says it covers sequence {}, its name says {covers_sequence}",
            u64_at(9)
        )));
    }
    Ok(Snapshot {
        covers_sequence,
        payload: payload.to_vec(),
    })
}

fn digest(header: &[u8], payload: &[u8]) -> [u8; DIGEST_BYTES] {
    let mut h = Sha256::new();
    h.update(header);
    h.update(payload);
    h.finalize().into()
}

/// The raw object of a snapshot, for tests that damage one on purpose.
#[cfg(feature = "testing")]
impl SnapshotStore {
    pub async fn raw_blob(&self, covers_sequence: u64) -> Result<Vec<u8>, ClusterError> {
        self.get_blob(covers_sequence).await
    }

    /// Replaces a snapshot's object with `blob` as is, bypassing the framing.
    pub async fn put_raw_blob(
        &self,
        covers_sequence: u64,
        blob: &[u8],
    ) -> Result<(), ClusterError> {
        bounded(
            SNAPSHOT_RAW_PUT_TIMEOUT_MS,
            "store a raw snapshot blob",
            self.store
                .put(object_name(covers_sequence).as_str(), &mut &blob[..]),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_every_damage_is_caught() {
        let payload = b"rollups and dedupe set".to_vec();
        let blob = frame(42, &payload);
        assert_eq!(
            unframe(42, &blob).unwrap(),
            Snapshot {
                covers_sequence: 42,
                payload: payload.clone()
            }
        );
        // Flipping any single bit anywhere in the blob is detected.
        for i in 0..blob.len() {
            let mut damaged = blob.clone();
            damaged[i] ^= 0x10;
            assert!(
                matches!(unframe(42, &damaged), Err(ClusterError::Snapshot { .. })),
                "byte {i}"
            );
        }
        let msg = |r: Result<Snapshot, ClusterError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(unframe(42, &blob[..blob.len() - 1])),
            "snapshot covering sequence 42: truncated: header says 22 payload bytes, blob has 21"
        );
        assert_eq!(
            msg(unframe(43, &blob)),
            "snapshot covering sequence 43: blob says it covers sequence 42, its name says 43"
        );
    }

    #[test]
    fn names_sort_by_sequence() {
        assert_eq!(object_name(7), "snapshot-00000000000000000007");
        assert!(object_name(10) > object_name(9));
    }
}
