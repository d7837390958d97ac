//! The apply task: the stream, in order, into the node's replica. It is the replica's only
//! writer, and it also encodes snapshots (between batches, see [`super::snapshots`]), so that
//! no writer ever waits on a long read lock while queries queue behind it.

use super::{Shared, Verdict, Verdicts, decode_snapshot};
use crate::ClusterError;
use crate::stream::{EventReader, StreamEvent};
use futures_util::FutureExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Messages applied under one write lock: enough to amortise the lock at 100k messages a
/// second, few enough that a query waits at most a millisecond or two for the lock.
pub const APPLY_BATCH_MESSAGES_MAX: usize = 1_024;
/// A reader that delivers nothing for this long while the stream is known to hold messages it
/// has not delivered is replaced, in milliseconds. The ordered consumer recreates itself after
/// missed heartbeats, but was seen here to stay silent after the server it was placed on was
/// killed; a new consumer from the applied sequence + 1 costs nothing and cannot skip a
/// message. Also the longest a requested snapshot waits for the task.
pub const STALLED_READER_MS: u64 = 3_000;
/// Pause after a consumer error before reading again, in milliseconds (the ordered consumer
/// recreates itself meanwhile; this keeps a dead connection from spinning the task).
const ERROR_PAUSE_MS: u64 = 200;

/// Reads and applies until the task is aborted, or stops for good (and says why through
/// `halted`) at a message this build cannot decode, or when the stream was purged past every
/// snapshot: skipping anything would make this node's state differ from its peers'.
pub(crate) async fn run(shared: Arc<Shared>, mut reader: EventReader) {
    loop {
        let waited = tokio::time::timeout(
            Duration::from_millis(STALLED_READER_MS),
            next_batch(&mut reader),
        )
        .await;
        // The error of this round, and whether the reader must be replaced.
        let (error, replace) = match waited {
            Ok((batch, error)) => {
                if !batch.is_empty() {
                    apply_batch(&shared, &batch);
                }
                (error, reader.is_closed())
            }
            Err(_) if stalled(&shared) => (
                Some(ClusterError::Unavailable(format!(
                    "the stream consumer delivered nothing for {STALLED_READER_MS} ms while the stream holds more"
                ))),
                true,
            ),
            Err(_) => (None, false),
        };
        super::snapshots::serve_request(&shared).await;
        match error {
            None => {}
            Some(ClusterError::Unavailable(why)) => {
                if replace {
                    tracing::warn!(error = %why, "cluster node: replacing the stream consumer");
                } else {
                    tracing::debug!(error = %why, "cluster node: stream consumer interrupted");
                }
                tokio::time::sleep(Duration::from_millis(ERROR_PAUSE_MS)).await;
            }
            Some(other) => {
                return halt(
                    &shared,
                    format!(
                        "this node stopped applying the event stream: {other}; upgrade this node to the build the other nodes run"
                    ),
                );
            }
        }
        if replace {
            match resume_point(&shared, reader.next_sequence()).await {
                Ok(next) => reader = reopen(&shared, next).await,
                Err(why) => return halt(&shared, why),
            }
        }
    }
}

/// Whether the reader is behind a stream that has more: the stream's end as last seen is past
/// what was applied.
fn stalled(shared: &Shared) -> bool {
    let applied = *shared.applied.borrow();
    shared.counters.stream_last_sequence.load(Ordering::Relaxed) > applied
}

fn halt(shared: &Shared, why: String) {
    tracing::error!("{why}");
    shared.halted.send_replace(Some(why));
}

/// Waits for one message, then takes whatever else is already there, up to the batch bound.
/// An error ends the batch and is returned after it, so nothing read before it is lost.
/// Cancel-safe while it waits for the first message (nothing has been taken yet).
async fn next_batch(reader: &mut EventReader) -> (Vec<StreamEvent>, Option<ClusterError>) {
    let mut batch = Vec::new();
    match reader.next().await {
        Ok(e) => batch.push(e),
        Err(e) => return (batch, Some(e)),
    }
    while batch.len() < APPLY_BATCH_MESSAGES_MAX {
        // `next` awaits nothing after it has a message, so dropping it while pending loses
        // nothing.
        match reader.next().now_or_never() {
            None => break,
            Some(Ok(e)) => batch.push(e),
            Some(Err(e)) => return (batch, Some(e)),
        }
    }
    (batch, None)
}

/// Applies a batch under one write lock, then publishes the verdicts and the new sequence.
fn apply_batch(shared: &Shared, batch: &[StreamEvent]) {
    let mut refused = Vec::new();
    let last = {
        let mut replica = shared.replica.write();
        for m in batch {
            if m.sequence <= replica.applied_sequence {
                continue;
            }
            let verdict = replica.apply(m.sequence, &m.record, &shared.limits);
            if verdict != Verdict::Accepted {
                refused.push((m.sequence, verdict));
            }
        }
        replica.applied_sequence
    };
    if !refused.is_empty() {
        shared.verdicts.lock().record(refused);
    }
    shared
        .counters
        .applied_messages
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    shared.applied.send_replace(last);
    shared.changes.send_modify(|g| *g += 1);
}

/// Where reading goes on after the reader ended at `next_sequence`: there, if the stream still
/// holds it; otherwise the stream was purged past this node (it was cut off while two newer
/// snapshots were stored), and the node takes the newest snapshot as its replica and goes on
/// after it. `Err` when no snapshot reaches the stream's start.
async fn resume_point(shared: &Shared, next_sequence: u64) -> Result<u64, String> {
    let Ok((first, _)) = shared.stream.bounds().await else {
        // NATS unreachable: nothing to decide yet; the new reader retries.
        return Ok(next_sequence);
    };
    if first <= next_sequence {
        return Ok(next_sequence);
    }
    let snapshot = match shared.snapshots.latest().await {
        Ok(Some(s)) if s.covers_sequence + 1 >= first => s,
        Ok(_) => {
            return Err(format!(
                "the event stream starts at sequence {first}, past this node's {next_sequence}, and no snapshot reaches it: restore a snapshot from backup"
            ));
        }
        Err(e) => {
            return Err(format!(
                "the stream was purged past this node and the newest snapshot cannot be read: {e}; restart the node"
            ));
        }
    };
    let replica = decode_snapshot(&snapshot).map_err(|e| e.to_string())?;
    let covers = replica.applied_sequence;
    *shared.replica.write() = replica;
    *shared.verdicts.lock() = Verdicts::starting_at(covers);
    shared.applied.send_replace(covers);
    shared.changes.send_modify(|g| *g += 1);
    shared
        .counters
        .snapshot_reloads
        .fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        from = next_sequence,
        to = covers,
        "cluster node: the stream was purged past this node while it was cut off; took the newest snapshot instead"
    );
    Ok(covers + 1)
}

/// A new reader from `next_sequence`, retrying until NATS answers.
async fn reopen(shared: &Shared, next_sequence: u64) -> EventReader {
    loop {
        match shared.stream.read_from(next_sequence).await {
            Ok(reader) => {
                tracing::info!(next_sequence, "cluster node: stream consumer reopened");
                return reader;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster node: cannot reopen the stream consumer yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
