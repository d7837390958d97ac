//! Snapshots: the replica, stored where every node can read it, and the stream purged behind
//! them.
//!
//! Any node may write one: every node's replica at sequence `s` is the same state (see
//! [`super::replica`]), so it does not matter which. Each node, every interval (with jitter so
//! that nodes started together do not all write at once), stores its replica if the newest
//! stored snapshot covers less than it has applied. The bucket keeps the two newest
//! ([`crate::snapshot::SNAPSHOTS_KEPT`]); after storing, the node verifies the older kept one
//! (checksum) and purges the stream below it (but keeps at least [`PURGE_KEEP_MESSAGES_MIN`]
//! messages), so the stream always holds everything after either kept snapshot, and a damaged
//! newest snapshot can be skipped for the older one.

use super::Shared;
use crate::ClusterError;
use crate::snapshot::SNAPSHOTS_KEPT;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::oneshot;

/// The fewest messages the stream keeps before its end, whatever the snapshots cover (about a
/// hundred or two MB of stream): a node less than this far behind never has to reload a
/// snapshot to catch up.
pub const PURGE_KEEP_MESSAGES_MIN: u64 = 1_000_000;

/// Writes snapshots until the task is aborted.
pub(crate) async fn run(shared: Arc<Shared>, interval: Duration, keep_messages_min: u64) {
    loop {
        tokio::time::sleep(jittered(interval)).await;
        // Each attempt on a task of its own, so that a panic in the NATS client (seen in its
        // object store) costs one attempt, not every later snapshot.
        let attempt = tokio::spawn({
            let shared = shared.clone();
            async move { snapshot_once(&shared, keep_messages_min).await }
        });
        let outcome = attempt.await.unwrap_or_else(|failed| {
            Err(ClusterError::Unavailable(format!(
                "the snapshot attempt failed: {failed}"
            )))
        });
        match outcome {
            Ok(Some(sequence)) => tracing::info!(sequence, "cluster node: snapshot stored"),
            Ok(None) => {}
            Err(e) => {
                shared
                    .counters
                    .snapshots_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cluster node: snapshot not stored; trying again next interval");
            }
        }
    }
}

/// A snapshot asked of the apply task: it answers the covered sequence and the payload.
pub(crate) type Request = oneshot::Sender<Result<(u64, Vec<u8>), String>>;

/// How long the snapshot task waits for the apply task to encode a snapshot, in milliseconds:
/// the apply task serves the request between batches (at least every
/// [`super::apply::STALLED_READER_MS`]), and encoding takes about a second per few hundred MB.
const ENCODE_WAIT_MS: u64 = 600_000;

/// Stores a snapshot if the newest stored one is behind this node, then purges the stream.
/// Answers the sequence stored, if any.
pub(crate) async fn snapshot_once(
    shared: &Arc<Shared>,
    keep_messages_min: u64,
) -> Result<Option<u64>, ClusterError> {
    let listing = tokio::time::timeout(
        Duration::from_millis(crate::snapshot::SNAPSHOT_SMALL_OPERATION_TIMEOUT_MS),
        shared.snapshots.list(),
    )
    .await
    .map_err(|_| ClusterError::Unavailable("listing the snapshots stalled".into()))??;
    let newest = listing.first().copied().unwrap_or(0);
    if *shared.applied.borrow() <= newest {
        return Ok(None);
    }
    let (tx, rx) = oneshot::channel();
    *shared.snapshot_request.lock() = Some(tx);
    let encoded = tokio::time::timeout(Duration::from_millis(ENCODE_WAIT_MS), rx)
        .await
        .map_err(|_| ClusterError::Unavailable("the apply task did not encode a snapshot".into()))?
        .map_err(|_| ClusterError::Unavailable("the apply task stopped".into()))?;
    let (sequence, payload) = encoded.map_err(|reason| ClusterError::Snapshot {
        covers_sequence: *shared.applied.borrow(),
        reason,
    })?;
    shared.snapshots.put(sequence, &payload).await?;
    shared
        .counters
        .snapshots_written
        .fetch_add(1, Ordering::Relaxed);
    // Bounded like the put: verifying the older snapshot reads it whole, through a consumer
    // that can stall when a server has just died, and a stalled purge must not stop the
    // snapshots that follow (the purge is simply tried again after the next one).
    let purge_ms = crate::snapshot::SNAPSHOT_SMALL_OPERATION_TIMEOUT_MS
        + payload.len() as u64 / crate::snapshot::SNAPSHOT_TRANSFER_BYTES_PER_MS_MIN;
    tokio::time::timeout(
        Duration::from_millis(purge_ms),
        purge_behind_snapshots(shared, keep_messages_min),
    )
    .await
    .map_err(|_| {
        ClusterError::Unavailable(format!("the purge made no progress in {purge_ms} ms"))
    })??;
    Ok(Some(sequence))
}

/// Called by the apply task between batches: encodes the replica if a snapshot was asked for.
/// The apply task is the replica's only writer, so while it encodes (under a read lock, on a
/// blocking thread) no writer waits and queries go on; applying pauses meanwhile.
pub(crate) async fn serve_request(shared: &Arc<Shared>) {
    let Some(request) = shared.snapshot_request.lock().take() else {
        return;
    };
    let reading = shared.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let replica = reading.replica.read();
        replica
            .encode()
            .map(|payload| (replica.applied_sequence, payload))
            .map_err(|e| format!("encoding: {e}"))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the encoding task failed: {e}")));
    let _ = request.send(encoded);
}

/// Purges the stream below the older kept snapshot, once that one passes its checksum.
async fn purge_behind_snapshots(
    shared: &Shared,
    keep_messages_min: u64,
) -> Result<(), ClusterError> {
    let kept = shared.snapshots.list().await?;
    if kept.len() < SNAPSHOTS_KEPT {
        return Ok(());
    }
    let Some(&older) = kept.last() else {
        return Ok(());
    };
    shared.snapshots.get(older).await?;
    // Never closer than `keep_messages_min` to the stream's end: a node a little behind (a
    // loaded machine, a short cut-off) reads on from the stream instead of having to load a
    // whole snapshot.
    let (_, last) = shared.stream.bounds().await?;
    let below = (older + 1).min(last.saturating_sub(keep_messages_min) + 1);
    if below <= 1 {
        return Ok(());
    }
    let purged = shared.stream.purge_below(below).await?;
    if purged > 0 {
        tracing::info!(
            purged,
            below,
            "cluster node: stream purged behind the kept snapshots"
        );
    }
    Ok(())
}

/// `interval` give or take a fifth, so that nodes started together spread their snapshots.
fn jittered(interval: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.8 + 0.4 * f64::from(nanos % 1000) / 1000.0;
    interval.mul_f64(fraction)
}
