//! The engine end to end on a real data dir: chunking (by the producer and by the writer's commit
//! chunks), duplication and restarts never change an answer nor an ingest outcome's counts, and
//! acknowledged events survive reopening.

use jiff::Timestamp;
use ocp_metrics_core::event::EventDraft;
use ocp_metrics_core::query::Query;
use ocp_metrics_core::{Answer, Clock, Endpoint, Event, ManualClock};
use ocp_metrics_store::{Engine, EngineConfig};
use proptest::prelude::*;
use std::sync::Arc;

mod common;

use common::now;

/// A small stream: per session a start, a miniApp end and a session end, spread over two days.
fn events(sessions: &[(u16, u16)]) -> Vec<Event> {
    let mut out = Vec::new();
    for (i, &(ago_minutes, dur_seconds)) in sessions.iter().enumerate() {
        let end = now().as_second() - i64::from(ago_minutes) * 60;
        let start = end - i64::from(dur_seconds);
        let ts = |s: i64| Timestamp::from_second(s).unwrap().to_string();
        let (start_s, end_s) = (ts(start), ts(end));
        let session = format!("s{i}");
        for (n, kind) in ["session_start", "miniapp_end", "session_end"]
            .iter()
            .enumerate()
        {
            let id = format!("{i}-{n}");
            let d = EventDraft {
                id: Some(&id),
                kind: Some(kind),
                time: Some(if n == 0 { &start_s } else { &end_s }),
                group: Some(if i % 3 == 0 { "acme" } else { "globex" }),
                session_id: Some(&session),
                channel: Some(if i % 2 == 0 { "chat" } else { "omIVR" }),
                region: Some("eu1"),
                started_at: Some(&start_s),
                miniapp_name: Some("Menu"),
                miniapp_id: Some("m"),
                miniapp_type: Some("Intent"),
                locale: Some("en-US"),
                result: Some(if i % 4 == 0 { "fail" } else { "success" }),
                ..EventDraft::default()
            };
            out.push(Event::parse(&d, now()).unwrap());
        }
    }
    out
}

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
        let mut accepted = 0;
        for (n, part) in all.chunks(chunk).enumerate() {
            // Every few chunks, the producer retries the previous chunk too (a lost answer).
            let mut batch = part.to_vec();
            if n % dup_every == 1 {
                batch.extend(all.chunks(chunk).nth(n - 1).unwrap().iter().cloned());
            }
            let len = batch.len();
            let outcome = rt.block_on(engine.ingest(batch)).unwrap();
            accepted += outcome.accepted;
            // Exact counts and indices, whichever commit chunk an event fell in.
            prop_assert_eq!(outcome.accepted, part.len());
            prop_assert_eq!(outcome.duplicates, (part.len()..len).collect::<Vec<_>>());
            if n == restart_after {
                rt.block_on(engine.shutdown());
                drop(engine);
                engine = open(dir.path(), commit_chunk);
            }
        }
        prop_assert_eq!(accepted, all.len());
        prop_assert_eq!(answers(&engine), want.clone());
        // A crash without a checkpoint: recovery replays the log alone.
        drop(engine);
        let engine = open(dir.path(), commit_chunk);
        prop_assert_eq!(answers(&engine), want);
        rt.block_on(engine.shutdown());
    }
}
