//! Freshness: whether this node's answers are complete up to about now.
//!
//! A node cannot know what it has not received, so it checks: twice a second it asks the
//! stream for its last sequence and waits (briefly) for its replica to have applied it. When
//! that succeeds, the node was current as of the moment it asked. A node cut off from NATS,
//! or too far behind, stops confirming; after [`STALE_AFTER_MS`] its answers carry the time
//! of its data, and after [`NOT_READY_AFTER_MS`] `/readyz` answers 503 so that a load
//! balancer routes to current nodes.

use super::Shared;
use jiff::Timestamp;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often a node checks that it is current, in milliseconds.
pub const CHECK_INTERVAL_MS: u64 = 500;
/// A node that has not confirmed it is current for this long marks its answers stale, in
/// milliseconds. Above the check interval plus the apply delay the contract allows (1 s).
pub const STALE_AFTER_MS: u64 = 2_000;
/// A node that has not confirmed it is current for this long is not ready, in milliseconds.
pub const NOT_READY_AFTER_MS: u64 = 5_000;

/// When the node last confirmed it had applied the whole stream.
#[derive(Debug)]
pub(crate) struct Freshness {
    last: Mutex<Confirmed>,
}

#[derive(Debug, Clone, Copy)]
struct Confirmed {
    /// When (monotonic) the stream's end was read.
    at: Instant,
    /// The same moment on the node's clock: the time of its data.
    as_of: Timestamp,
}

impl Freshness {
    pub(crate) fn new(as_of: Timestamp) -> Freshness {
        Freshness {
            last: Mutex::new(Confirmed {
                at: Instant::now(),
                as_of,
            }),
        }
    }

    /// Notes that the stream's end, read at `at` (`as_of` on the node's clock), is applied.
    pub(crate) fn confirm(&self, at: Instant, as_of: Timestamp) {
        let mut last = self.last.lock();
        if at > last.at {
            *last = Confirmed { at, as_of };
        }
    }

    fn since(&self) -> (Duration, Timestamp) {
        let last = *self.last.lock();
        (last.at.elapsed(), last.as_of)
    }

    pub(crate) fn stale_since(&self) -> Option<Timestamp> {
        let (elapsed, as_of) = self.since();
        (elapsed > Duration::from_millis(STALE_AFTER_MS)).then_some(as_of)
    }

    pub(crate) fn not_ready(&self) -> Option<String> {
        let (elapsed, as_of) = self.since();
        (elapsed > Duration::from_millis(NOT_READY_AFTER_MS)).then(|| {
            format!(
                "this node has not confirmed for {} s that it has applied the whole event stream (its data is complete up to {as_of}): NATS is unreachable from it, or it is behind; send requests to another node",
                elapsed.as_secs()
            )
        })
    }

    pub(crate) fn seconds_since_current(&self) -> f64 {
        self.since().0.as_secs_f64()
    }
}

/// Checks freshness until the task is aborted.
pub(crate) async fn run(shared: Arc<Shared>) {
    let wait = Duration::from_millis(STALE_AFTER_MS);
    loop {
        let at = Instant::now();
        let as_of = shared.clock.now();
        if let Ok(Ok((first, last))) = tokio::time::timeout(wait, shared.stream.bounds()).await {
            let c = &shared.counters;
            c.stream_first_sequence.store(first, Ordering::Relaxed);
            c.stream_last_sequence.store(last, Ordering::Relaxed);
            let mut applied = shared.applied.subscribe();
            let caught_up = tokio::time::timeout(wait, applied.wait_for(|a| *a >= last)).await;
            if matches!(caught_up, Ok(Ok(_))) {
                shared.freshness.confirm(at, as_of);
            }
        }
        tokio::time::sleep_until((at + Duration::from_millis(CHECK_INTERVAL_MS)).into()).await;
    }
}
