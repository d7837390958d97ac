//! Ingest on a cluster node: durable in the stream before answered, counted as every node
//! applies it.
//!
//! The steps, and why each is safe:
//! 1. Events whose `(group, id)` the replica already knows are answered as duplicates without
//!    publishing: they were applied, so every node has them.
//! 2. The rest are published, one message per event with `Nats-Msg-Id` = the dedupe key, all
//!    in flight, and every acknowledgement is awaited. Any failure answers 503 and keeps what
//!    was acknowledged: a retry of the whole request (on any node) republishes, which the
//!    stream's duplicate window or, later, every node's dedupe set answers as duplicates.
//! 3. The node waits until its replica has applied the highest acknowledged sequence, so the
//!    caller reads its writes here at once, and the answer's counts come from the apply: the
//!    same decision every node made for the same message.

use super::{Shared, Verdict};
use crate::stream::Published;
use async_nats::connection::State;
use ocp_metrics_core::{Dedupe, Event};
use ocp_metrics_service::{IngestError, IngestOutcome};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Events published (and awaited) at once: bounds the acknowledgements in flight for one
/// request, while keeping a request of thousands of events to a few round trips.
pub const PUBLISH_CHUNK_EVENTS_MAX: usize = 4_096;
/// How long ingest waits for the node to apply what it published, in milliseconds. Applying
/// is far faster than publishing; this only runs out when the node's consumer is cut off.
pub const APPLY_WAIT_MS: u64 = 10_000;

pub(crate) async fn ingest(
    shared: &Shared,
    events: Vec<Event>,
) -> Result<IngestOutcome, IngestError> {
    if shared.client.connection_state() != State::Connected {
        return Err(failed(
            shared,
            "this node cannot reach NATS; nothing of the request was accepted: retry on another node, or here after Retry-After".into(),
        ));
    }
    let waiting = shared
        .replica
        .read()
        .batch
        .as_ref()
        .map_or(0, |b| b.pending_events());
    if waiting >= super::warehouse::PENDING_EVENTS_MAX {
        // Backpressure, not a drop: the batch counters of these events would have to wait in
        // memory too, beyond the bound.
        return Err(IngestError::Overloaded);
    }
    let arrival_ms = shared.clock.now().as_millisecond();
    let mut outcome = IngestOutcome::default();
    let fresh = known_duplicates(shared, &events, &mut outcome);
    let acks = publish(shared, arrival_ms, &events, &fresh).await?;
    if let Some(highest) = acks.iter().map(|(_, p)| p.sequence).max() {
        wait_applied(shared, highest).await?;
    }
    answer_from_verdicts(shared, &events, &acks, &mut outcome)?;
    outcome.duplicates.sort_unstable();
    outcome.rejected.sort_unstable_by_key(|(i, _)| *i);
    let c = &shared.counters;
    c.accepted
        .fetch_add(outcome.accepted as u64, Ordering::Relaxed);
    c.duplicates
        .fetch_add(outcome.duplicates.len() as u64, Ordering::Relaxed);
    c.rejected
        .fetch_add(outcome.rejected.len() as u64, Ordering::Relaxed);
    Ok(outcome)
}

/// Records the events the replica already holds as duplicates; answers the indices of the rest.
fn known_duplicates(shared: &Shared, events: &[Event], outcome: &mut IngestOutcome) -> Vec<usize> {
    let replica = shared.replica.read();
    let mut fresh = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if replica
            .dedupe
            .contains(Dedupe::key(e.group.as_str(), &e.id))
        {
            outcome.duplicates.push(i);
        } else {
            fresh.push(i);
        }
    }
    fresh
}

/// Publishes `events[i]` for every `i` of `fresh`, chunk by chunk; answers each index with its
/// acknowledgement, or the error of the first failed chunk.
async fn publish(
    shared: &Shared,
    arrival_ms: i64,
    events: &[Event],
    fresh: &[usize],
) -> Result<Vec<(usize, Published)>, IngestError> {
    let mut acks = Vec::with_capacity(fresh.len());
    for chunk in fresh.chunks(PUBLISH_CHUNK_EVENTS_MAX) {
        // Collected before the await: a closure held across it would make the future
        // lifetime-generic in a way `Send` checking cannot prove.
        let batch: Vec<&Event> = chunk.iter().map(|&i| &events[i]).collect();
        let results = shared.stream.publish(arrival_ms, batch).await;
        let mut first_error = None;
        let mut unacknowledged = 0usize;
        for (&i, result) in chunk.iter().zip(results) {
            match result {
                Ok(p) => acks.push((i, p)),
                Err(e) => {
                    unacknowledged += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(failed(
                shared,
                format!(
                    "{unacknowledged} of this request's events were not acknowledged by the event stream ({e}); {} were, and are kept: retry the whole request, here or on another node, and those are answered as duplicates",
                    acks.len()
                ),
            ));
        }
    }
    Ok(acks)
}

/// Waits until the replica has applied `sequence`.
async fn wait_applied(shared: &Shared, sequence: u64) -> Result<(), IngestError> {
    let mut applied = shared.applied.subscribe();
    let wait = applied.wait_for(|a| *a >= sequence);
    match tokio::time::timeout(Duration::from_millis(APPLY_WAIT_MS), wait).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(failed(
            shared,
            format!(
                "the events are in the event stream, but this node has not applied them within {APPLY_WAIT_MS} ms (it is cut off from the stream or behind); retry the request on another node: the events are answered as duplicates there, and counted once"
            ),
        )),
    }
}

/// Fills `outcome` from what the apply decided for each published event.
///
/// A message JetStream answered as a repeat (of one inside its window, by then applied here)
/// counts exactly when the event's key is in the dedupe set: answered as a duplicate if so,
/// and otherwise as refused like the original (a state limit). Any other message has its own
/// verdict; if that is no longer known (a flood of refusals pushed it out), the request is
/// answered 503, and a retry is answered from the dedupe set.
fn answer_from_verdicts(
    shared: &Shared,
    events: &[Event],
    acks: &[(usize, Published)],
    outcome: &mut IngestOutcome,
) -> Result<(), IngestError> {
    let replica = shared.replica.read();
    let verdicts = shared.verdicts.lock();
    for &(i, p) in acks {
        if p.duplicate {
            let e = &events[i];
            if replica
                .dedupe
                .contains(Dedupe::key(e.group.as_str(), &e.id))
            {
                outcome.duplicates.push(i);
            } else {
                let why = match verdicts.get(p.sequence) {
                    Some(Verdict::Rejected(why)) => why,
                    _ => format!(
                        "refused by a state limit of group `{}` when it was first sent (stream sequence {}); the group is still at that limit",
                        e.group.as_str(),
                        p.sequence
                    ),
                };
                outcome.rejected.push((i, why));
            }
            continue;
        }
        match verdicts.get(p.sequence) {
            Some(Verdict::Accepted) => outcome.accepted += 1,
            Some(Verdict::Duplicate) => outcome.duplicates.push(i),
            Some(Verdict::Rejected(why)) => outcome.rejected.push((i, why)),
            None => {
                drop((replica, verdicts));
                return Err(failed(
                    shared,
                    "the events are in the event stream, but this node no longer knows what became of one of them (too many refused events since); retry the whole request: it is answered from the dedupe set".into(),
                ));
            }
        }
    }
    Ok(())
}

fn failed(shared: &Shared, message: String) -> IngestError {
    shared
        .counters
        .publish_failures
        .fetch_add(1, Ordering::Relaxed);
    IngestError::Unavailable(message)
}
