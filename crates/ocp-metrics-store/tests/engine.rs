//! The engine end to end on a real data dir: chunking, duplication and restarts never change an
//! answer, and acknowledged events survive reopening.

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

fn open(dir: &std::path::Path) -> Engine {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    Engine::open(dir, EngineConfig::default(), clock).unwrap()
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
    ) {
        let all = events(&sessions);
        let want = expected(&all);
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut engine = open(dir.path());
        let (mut accepted, mut duplicates) = (0, 0);
        for (n, part) in all.chunks(chunk).enumerate() {
            // Every few chunks, the producer retries the previous chunk too (a lost answer).
            let mut batch = part.to_vec();
            if n % dup_every == 1 {
                batch.extend(all.chunks(chunk).nth(n - 1).unwrap().iter().cloned());
            }
            let outcome = rt.block_on(engine.ingest(batch)).unwrap();
            accepted += outcome.accepted;
            duplicates += outcome.duplicates.len();
            if n == restart_after {
                rt.block_on(engine.shutdown());
                drop(engine);
                engine = open(dir.path());
            }
        }
        prop_assert_eq!(accepted, all.len());
        prop_assert_eq!(answers(&engine), want.clone());
        let _ = duplicates;
        // A crash without a checkpoint: recovery replays the log alone.
        drop(engine);
        let engine = open(dir.path());
        prop_assert_eq!(answers(&engine), want);
        rt.block_on(engine.shutdown());
    }
}
