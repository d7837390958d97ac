//! Checkpoints written by earlier builds stay readable. The log behind a checkpoint is already
//! truncated, so an unreadable old checkpoint would lose data: each fixture here is a real
//! checkpoint file written by the build of its format, and the engine must recover from it
//! alone (no log) with the answers a from-scratch recomputation of its events gives.

use ocp_metrics_core::query::Query;
use ocp_metrics_core::{Clock, Endpoint, ManualClock};
use ocp_metrics_store::snapshot::{self, SNAPSHOT_FORMAT_VERSION};
use ocp_metrics_store::{Engine, EngineConfig};
use std::path::Path;
use std::sync::Arc;

mod common;

use common::{events, now};

/// The sessions of `tests/fixtures/checkpoint-v*.bin`: `(minutes before NOW, duration in seconds)`,
/// spread over both groups, both channels and two days so that every family has data.
const FIXTURE_SESSIONS: [(u16, u16); 8] = [
    (3, 40),
    (17, 300),
    (62, 90),
    (400, 1200),
    (1500, 30),
    (2000, 600),
    (2700, 75),
    (2790, 15),
];

fn queries() -> Vec<Query> {
    common::queries(&[
        (Endpoint::V3RtSessions, "2024/03/25 13:00:00", "hour"),
        (Endpoint::V3RtDialogs, "2024/03/27 00:00:00", "five_min"),
        (Endpoint::V3BatchSessions, "2024/03/20 00:00:00", "day"),
        (Endpoint::V3BatchMiniapps, "2024/03/20 00:00:00", "hour"),
    ])
}

/// Opens an engine on a data dir holding only `fixture` as its checkpoint, and checks that it
/// recovered from the checkpoint with the expected answers, and that the dedupe set came back.
fn check_fixture(fixture: &str) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    std::fs::copy(
        &source,
        checkpoints.join("checkpoint-00000000000000000001.bin"),
    )
    .unwrap();

    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    let engine = Engine::open(dir.path(), EngineConfig::default(), clock).unwrap();
    let recovery = engine.recovery();
    assert!(
        recovery.checkpoint_position.is_some(),
        "{fixture}: no checkpoint loaded"
    );
    assert_eq!(
        recovery.replayed_events, 0,
        "{fixture}: there is no log to replay"
    );

    let all = events(&FIXTURE_SESSIONS);
    let want = common::recompute(&all, &queries());
    assert_eq!(
        common::answers(&engine, &queries()),
        want,
        "{fixture}: answers differ"
    );

    // Every event of the fixture is still known to the dedupe set.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let again = rt.block_on(engine.ingest(all.clone())).unwrap();
    assert_eq!((again.accepted, again.duplicates.len()), (0, all.len()));
    rt.block_on(engine.shutdown());
}

#[test]
fn a_format_1_checkpoint_is_read() {
    check_fixture("checkpoint-v1.bin");
}

/// Format 2 stores the dedupe set as one sorted byte string instead of a map.
#[test]
fn a_format_2_checkpoint_is_read() {
    check_fixture("checkpoint-v2.bin");
}

#[test]
fn a_checkpoint_written_now_round_trips_through_an_engine_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default(), clock.clone()).unwrap();
    let all = events(&FIXTURE_SESSIONS);
    rt.block_on(engine.ingest(all.clone())).unwrap();
    rt.block_on(engine.shutdown());
    drop(engine);
    // Recover from the checkpoint alone, as after the log was truncated behind it.
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default(), clock).unwrap();
    assert_eq!(engine.recovery().replayed_events, 0);
    let want = common::recompute(&all, &queries());
    assert_eq!(common::answers(&engine, &queries()), want);
    rt.block_on(engine.shutdown());
}

#[test]
fn payload_versions_are_checked() {
    let payload = snapshot::encode(&Default::default(), &Default::default()).unwrap();
    assert_eq!(payload[..4], SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    assert!(snapshot::decode(&payload).is_ok());

    let mut newer = payload.clone();
    newer[..4].copy_from_slice(&(SNAPSHOT_FORMAT_VERSION + 1).to_le_bytes());
    let message = snapshot::decode(&newer).unwrap_err().to_string();
    assert!(message.contains("newer than this build reads"), "{message}");

    assert_eq!(
        snapshot::decode(&payload[..3]).unwrap_err().to_string(),
        "the checkpoint payload is shorter than its version prefix"
    );
}
