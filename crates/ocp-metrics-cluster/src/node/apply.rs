//! The apply task: the stream, in order, into the node's replica.

use super::{Shared, VERDICTS_KEPT_MAX, Verdict};
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
/// message.
pub const STALLED_READER_MS: u64 = 3_000;
/// Pause after a consumer error before reading again, in milliseconds (the ordered consumer
/// recreates itself meanwhile; this keeps a dead connection from spinning the task).
const ERROR_PAUSE_MS: u64 = 200;

/// Reads and applies until the task is aborted, or stops for good at a message this build
/// cannot decode (skipping it would make this node's state differ from its peers').
pub(crate) async fn run(shared: Arc<Shared>, mut reader: EventReader) {
    loop {
        let waited = tokio::time::timeout(
            Duration::from_millis(STALLED_READER_MS),
            next_batch(&mut reader),
        )
        .await;
        let Ok((batch, error)) = waited else {
            let applied = *shared.applied.borrow();
            let end = shared.counters.stream_last_sequence.load(Ordering::Relaxed);
            if end > applied {
                tracing::warn!(
                    applied,
                    stream_last_sequence = end,
                    "cluster node: the stream consumer delivered nothing for {STALLED_READER_MS} ms while the stream holds more; replacing it"
                );
                reader = reopen(&shared, applied + 1).await;
            }
            continue;
        };
        if !batch.is_empty() {
            apply_batch(&shared, &batch);
        }
        match error {
            None => {}
            Some(ClusterError::Unavailable(why)) => {
                if reader.is_closed() {
                    tracing::warn!(error = %why, "cluster node: stream consumer ended; opening a new one");
                } else {
                    tracing::debug!(error = %why, "cluster node: stream consumer interrupted");
                }
                tokio::time::sleep(Duration::from_millis(ERROR_PAUSE_MS)).await;
                if reader.is_closed() {
                    reader = reopen(&shared, reader.next_sequence()).await;
                }
            }
            Some(other) => {
                let why = format!(
                    "this node stopped applying the event stream: {other}; upgrade this node to the build the other nodes run"
                );
                tracing::error!("{why}");
                *shared.halted.lock() = Some(why);
                return;
            }
        }
    }
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
        let mut verdicts = shared.verdicts.lock();
        verdicts.extend(refused);
        while verdicts.len() > VERDICTS_KEPT_MAX {
            verdicts.pop_first();
        }
    }
    shared
        .counters
        .applied_messages
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    shared.applied.send_replace(last);
    shared.changes.send_modify(|g| *g += 1);
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
