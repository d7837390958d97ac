//! Cluster mode on NATS JetStream: the replicated event stream every node publishes to and
//! applies in order ([`EventStream`], [`EventReader`]), the credentials bucket every node
//! watches ([`CredentialsKv`], and on it [`open_cluster_registry`]), the snapshot store any node
//! starts from ([`SnapshotStore`]), and the node itself ([`node`]: the server's `Backend` in
//! cluster mode, a replica of the rollups applied from the stream). Nothing here knows HTTP.
//!
//! # The event stream
//!
//! One message per accepted event on subject `ocpm.ev.<group token>`
//! ([`EventStream::subject`]), payload in the versioned format of [`record`], `Nats-Msg-Id` the
//! hex of the event's 128-bit dedupe key over `(group, id)`. A node answers an ingest request
//! only after every accepted event's publish acknowledgement ([`EventStream::publish`] sends
//! them all, then awaits each ack), and reports duplicates from its own in-order apply (which
//! it waits for anyway, for read-your-writes).
//!
//! **Dedupe.** JetStream's duplicate window is short ([`stream::DUPLICATE_WINDOW_SECONDS`],
//! five minutes): it keeps every id of the window in each server's memory, about 260 bytes per
//! id on nats-server 2.9, so the contract's 48 hours would cost tens of GB. The window only
//! absorbs a producer's retries and a node's republish after a failover; a duplicate arriving
//! later is stored a second time and dropped by every node's own dedupe set when applied,
//! which gives the same answer on every node because all of them apply the same sequence.
//!
//! **Retention.** Limits retention with no age, count or size limit, and `deny_delete`: the
//! stream keeps every event until a node purges it explicitly. Without a warehouse, the stream
//! plus the snapshots are the only copy of up to 720 days of rollups, so the stream may only be
//! purged below the sequence covered by the *older* of the two kept snapshots (each is verified
//! by its checksum before it counts), never past the newest good one.
//!
//! **Partitioning later.** Today one stream and one ordered consumer per node carry every
//! group. If one consumer can no longer keep up, the token after `ocpm.ev.` becomes
//! `<partition>.<group token>` with `partition = xxh3((group, session_id)) mod P`, chosen by the
//! publishing node; each node then runs P ordered consumers, one per filter subject
//! `ocpm.ev.<p>.>`, each applying to its own share of the rollups. All events of one session
//! land in one partition, in order, so real-time session spans stay exact; a cross-partition
//! limit (per-group cardinality) is then checked per partition with a share of the limit, or
//! decided by a single partition that owns the group. Moving to partitions means a new stream
//! (subjects cannot be renamed in place) started from a snapshot of the old one.
//!
//! # What a publish acknowledgement means on disk (nats-server 2.9)
//!
//! A JetStream publish ack means the message was written into the stream's file store (the
//! operating system's page cache) on the stream leader and, for R3, appended to the Raft log
//! of a majority (two of three) of the replicas; the third catches up afterwards. It does
//! **not** mean fsynced: nats-server 2.9 fsyncs file-store blocks from a background timer every
//! 2 minutes (`defaultSyncInterval` in its `filestore.go`), and has no setting to change that:
//! `sync_interval` and `sync: always` arrived in 2.10 (nats-server pull request 4483), and
//! Debian's 2.9.10 refuses a config holding `sync_interval` ("unknown field"). Measured here
//! with `strace -f -tt -e trace=fsync,fdatasync -p <pid>` on a single 2.9.10 server: a stream
//! created at 09:53:26 acknowledged ten publishes at 09:53:31 at once, and the first fsync of
//! its files came at 09:55:26, two minutes after the store was opened. nats-server issue 7564
//! (Jepsen, 2025) shows acknowledged writes lost when servers lose power together within
//! that window. So:
//!
//! * **R1** (one server) survives `kill -9` of the server and of every ocp-metrics node (the
//!   page cache outlives the process), but not a power loss or kernel crash of its machine
//!   within two minutes of the ack.
//! * **R3** (three servers) survives the loss of any one server, including its disk or power,
//!   because two others hold every acknowledged message; it can lose recent acknowledged
//!   messages only if a majority of the servers lose power within the same two minutes.
//!
//! # Reading in order
//!
//! [`EventStream::read_from`] is an ordered pull consumer (see its docs); a node resumes from
//! its snapshot's sequence + 1 and reports ready once it has applied
//! [`EventStream::last_sequence`] as read at its start.

pub mod connect;
pub mod credentials;
pub mod kv;
pub mod node;
pub mod record;
pub mod snapshot;
pub mod stream;
#[cfg(feature = "testing")]
pub mod testing;

pub use connect::{NatsAuth, NatsOptions};
pub use credentials::{KvCredentialStore, open_cluster_registry};
pub use kv::{CredentialChange, CredentialsKv, CredentialsWatch};
pub use node::{Node, NodeConfig, open_node};
pub use record::EventRecord;
pub use snapshot::{Snapshot, SnapshotStore};
pub use stream::{EventReader, EventStream, Published, StreamEvent, StreamSettings};

use async_nats::jetstream::{self, Context};
use std::time::Duration;

/// Everything that can go wrong talking to the cluster. The variants say what a caller does
/// about it: `Unavailable` is transient (answer 503 with `Retry-After`, retry later), the others
/// need a person.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The node's own settings are wrong (credentials, URLs).
    #[error("configuration: {0}")]
    Config(String),
    /// NATS or JetStream did not answer (no servers, no stream leader, timeout).
    #[error("NATS unavailable: {0}")]
    Unavailable(String),
    /// A stream or bucket exists with settings this node does not accept.
    #[error("{0}")]
    Mismatch(String),
    /// A stream message this build cannot decode.
    #[error("stream message {sequence}: {reason}")]
    Decode {
        sequence: u64,
        reason: record::RecordError,
    },
    /// A snapshot failed its integrity check.
    #[error("snapshot covering sequence {covers_sequence}: {reason}")]
    Snapshot {
        covers_sequence: u64,
        reason: String,
    },
}

/// A JetStream context with this crate's request timeout.
pub(crate) fn jetstream_context(client: async_nats::Client) -> Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(connect::JETSTREAM_REQUEST_TIMEOUT_MS))
        .build(client)
}

pub(crate) fn js_error(what: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable(format!("cannot {what}: {e}"))
}

/// The info of stream `name`, or `None` when it does not exist.
pub(crate) async fn existing_stream(
    js: &Context,
    name: &str,
) -> Result<Option<jetstream::stream::Info>, ClusterError> {
    match js.get_stream(name).await {
        Ok(s) => Ok(Some(s.cached_info().clone())),
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(js_error(&format!("look up stream `{name}`"), e)),
    }
}
