//! The engine end to end on a real data dir: chunking (by the producer and by the writer's commit
//! chunks), duplication and restarts never change an answer nor an ingest outcome's counts, and
//! acknowledged events survive reopening.

use ocp_metrics_core::query::Query;
use ocp_metrics_core::{Answer, Clock, Endpoint, Event, ManualClock};
use ocp_metrics_store::{Engine, EngineConfig};
use proptest::prelude::*;
use std::sync::Arc;

mod common;

use common::{events, now};

fn queries() -> Vec<Query> {
    common::queries(&[
        (Endpoint::V3RtSessions, "2024/03/25 13:00:00", "hour"),
        (Endpoint::V3RtMiniapps, "2024/03/27 00:00:00", "five_min"),
        (Endpoint::V3BatchSessions, "2024/03/20 00:00:00", "day"),
        (Endpoint::V3BatchMiniapps, "2024/03/20 00:00:00", "hour"),
    ])
}

fn expected(events: &[Event]) -> Vec<Answer> {
    common::recompute(events, &queries())
}

/// Opens the engine committing requests in chunks of `commit_chunk` events.
fn open(dir: &std::path::Path, commit_chunk: usize) -> Engine {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    let config = EngineConfig {
        commit_chunk_events_max: commit_chunk,
        ..EngineConfig::default()
    };
    Engine::open(dir, config, clock).unwrap()
}

fn answers(engine: &Engine) -> Vec<Answer> {
    common::answers(engine, &queries())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn chunking_duplication_and_restarts_never_change_an_answer(
        sessions in prop::collection::vec((0u16..2800, 0u16..900), 1..40),
        chunk in 1usize..20,
        dup_every in 2usize..6,
        restart_after in 0usize..4,
        commit_chunk in 1usize..8,
    ) {
        let all = events(&sessions);
        let want = expected(&all);
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut engine = open(dir.path(), commit_chunk);
        let chunks: Vec<&[Event]> = all.chunks(chunk).collect();
        let (mut accepted, mut duplicates, mut retried) = (0, 0, 0);
        // Events accepted since the last checkpoint (the graceful shutdown of the restart
        // writes one; nothing else does within the default bounds).
        let (mut since_checkpoint, mut checkpointed) = (0, false);
        for (n, part) in chunks.iter().enumerate() {
            // Every few chunks, the producer retries the previous chunk too (a lost answer):
            // each retried event is a duplicate, nothing else is.
            let mut batch = part.to_vec();
            if n % dup_every == 1 {
                batch.extend_from_slice(chunks[n - 1]);
                retried += chunks[n - 1].len();
            }
            let len = batch.len();
            let outcome = rt.block_on(engine.ingest(batch)).unwrap();
            prop_assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
            accepted += outcome.accepted;
            // Exact counts and indices, whichever commit chunk an event fell in.
            prop_assert_eq!(outcome.accepted, part.len());
            prop_assert_eq!(&outcome.duplicates, &(part.len()..len).collect::<Vec<_>>());
            since_checkpoint += outcome.accepted;
            duplicates += outcome.duplicates.len();
            if n == restart_after {
                rt.block_on(engine.shutdown());
                drop(engine);
                engine = open(dir.path(), commit_chunk);
                (since_checkpoint, checkpointed) = (0, true);
            }
        }
        prop_assert_eq!(accepted, all.len());
        prop_assert_eq!(duplicates, retried);
        prop_assert_eq!(answers(&engine), want.clone());
        // A crash (no shutdown, so no new checkpoint): recovery loads the restart's checkpoint,
        // if there was a restart, and replays the log after it; without one it replays the
        // whole log.
        drop(engine);
        let engine = open(dir.path(), commit_chunk);
        prop_assert_eq!(engine.recovery().checkpoint_position.is_some(), checkpointed);
        prop_assert_eq!(engine.recovery().replayed_events, since_checkpoint as u64);
        prop_assert_eq!(answers(&engine), want);
        rt.block_on(engine.shutdown());
    }
}

/// Once ingest has been quiet for a couple of seconds, the writer checkpoints what the log holds
/// beyond the last checkpoint, so that a crash in a quiet time replays nothing.
#[test]
fn a_quiet_spell_after_ingest_writes_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    let config = EngineConfig {
        checkpoint_quiet_log_bytes: 1,
        ..EngineConfig::default()
    };
    let engine = Engine::open(dir.path(), config.clone(), clock.clone()).unwrap();
    let all = events(&[(0, 300), (100, 500), (2000, 60)]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(engine.ingest(all.clone())).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while engine
        .counters()
        .checkpoints
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint 20 s after ingest went quiet"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A crash now: recovery starts from that checkpoint and replays nothing.
    drop(engine);
    let engine = Engine::open(dir.path(), config, clock).unwrap();
    assert!(engine.recovery().checkpoint_position.is_some());
    assert_eq!(engine.recovery().replayed_events, 0);
    assert_eq!(answers(&engine), expected(&all));
}
