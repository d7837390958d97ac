//! The engine under faults: a log that refuses writes (disk full, I/O errors, an fsync that
//! fails after the bytes landed), corrupt checkpoints with the log segments they covered already
//! deleted, a corrupt last record that a checkpoint covers, and the state bounds. In every case
//! what was acknowledged is exactly what is counted.

use jiff::Timestamp;
use ocp_metrics_core::query::Query;
use ocp_metrics_core::{Answer, Clock, Endpoint, Event, ManualClock};
use ocp_metrics_store::{
    Engine, EngineConfig, EventLog, FileCheckpoints, FileLog, FileLogOptions, IngestError,
    LogError, LogPosition, StateLimits,
};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

mod common;

use common::{Times, now, session_event};

/// `n` miniApp invocations (with their session ends), ids prefixed by `tag`.
fn events(tag: &str, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    for i in 0..n {
        let start = Timestamp::from_second(now().as_second() - 3600 + (i as i64 % 50) * 60)
            .unwrap()
            .to_string();
        let end = Timestamp::from_second(now().as_second() - 600)
            .unwrap()
            .to_string();
        let session = format!("{tag}-s{}", i / 2);
        for (kind, id) in [("miniapp_end", "m"), ("session_end", "e")] {
            let id = format!("{tag}-{i}-{id}");
            let at = Times {
                time: &end,
                started_at: &start,
            };
            let name = ["Menu", "YesNo", "Account"][i % 3];
            out.push(session_event(i, &id, kind, at, &session, name));
        }
    }
    out
}

fn queries() -> Vec<Query> {
    common::queries(&[
        (Endpoint::V3RtSessions, "2024/03/27 10:00:00", "five_min"),
        (Endpoint::V3RtMiniapps, "2024/03/27 10:00:00", "five_min"),
        (Endpoint::V3BatchSessions, "2024/03/27 00:00:00", "hour"),
        (Endpoint::V3BatchMiniapps, "2024/03/27 00:00:00", "hour"),
    ])
}

fn expected(events: &[Event]) -> Vec<Answer> {
    common::recompute(events, &queries())
}

fn answers(engine: &Engine) -> Vec<Answer> {
    common::answers(engine, &queries())
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(now()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Small segments, so that checkpoints really delete log files.
fn small_segments() -> EngineConfig {
    EngineConfig {
        log: FileLogOptions {
            segment_bytes_max: 2048,
            ..FileLogOptions::default()
        },
        ..EngineConfig::default()
    }
}

fn open(dir: &Path, config: EngineConfig) -> Engine {
    Engine::open(dir, config, clock()).unwrap()
}

fn files(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn flip_byte(path: &Path, at_from_end: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() - at_from_end;
    bytes[i] ^= 0x5A;
    std::fs::write(path, bytes).unwrap();
}

/// How the faulty log behaves on the next append.
const OK: u8 = 0;
/// Fail before writing anything, as a full disk does.
const DISK_FULL: u8 = 1;
/// Write durably, then report failure, as an fsync error after the bytes reached the disk does.
const WRITE_THEN_FAIL: u8 = 2;
/// Succeed once, then behave as `DISK_FULL`: the disk fills up in the middle of a request.
const OK_THEN_DISK_FULL: u8 = 3;

/// A `FileLog` whose appends fail on command.
struct FaultyLog {
    inner: FileLog,
    mode: Arc<AtomicU8>,
}

impl EventLog for FaultyLog {
    fn append(&mut self, records: &[&[u8]]) -> Result<LogPosition, LogError> {
        match self.mode.load(Ordering::SeqCst) {
            DISK_FULL => Err(LogError::Io {
                context: "write records",
                source: std::io::Error::from(std::io::ErrorKind::StorageFull),
            }),
            WRITE_THEN_FAIL => {
                self.inner.append(records)?;
                Err(LogError::Io {
                    context: "fsync records",
                    source: std::io::Error::other("injected fsync failure"),
                })
            }
            OK_THEN_DISK_FULL => {
                self.mode.store(DISK_FULL, Ordering::SeqCst);
                self.inner.append(records)
            }
            _ => self.inner.append(records),
        }
    }
    fn replay(
        &mut self,
        from: LogPosition,
        f: &mut dyn FnMut(LogPosition, &[u8]),
    ) -> Result<(), LogError> {
        self.inner.replay(from, f)
    }
    fn truncate_before(&mut self, pos: LogPosition) -> Result<(), LogError> {
        self.inner.truncate_before(pos)
    }
    fn end(&self) -> LogPosition {
        self.inner.end()
    }
    fn move_end_past(&mut self, pos: LogPosition) -> Result<(), LogError> {
        self.inner.move_end_past(pos)
    }
}

fn open_faulty(dir: &Path, mode: Arc<AtomicU8>) -> Engine {
    open_faulty_with(dir, mode, EngineConfig::default())
}

fn open_faulty_with(dir: &Path, mode: Arc<AtomicU8>, config: EngineConfig) -> Engine {
    let (log, report) = FileLog::open(&dir.join("wal"), FileLogOptions::default()).unwrap();
    let checkpoints = FileCheckpoints::open(&dir.join("checkpoints")).unwrap();
    Engine::open_with(
        Box::new(FaultyLog { inner: log, mode }),
        report,
        Box::new(checkpoints),
        config,
        clock(),
    )
    .unwrap()
}

#[test]
fn a_full_disk_refuses_with_503_accepts_nothing_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mode = Arc::new(AtomicU8::new(OK));
    let engine = open_faulty(dir.path(), mode.clone());
    let (a, b) = (events("a", 20), events("b", 20));
    assert_eq!(
        rt.block_on(engine.ingest(a.clone())).unwrap().accepted,
        a.len()
    );

    mode.store(DISK_FULL, Ordering::SeqCst);
    for _ in 0..3 {
        let err = rt.block_on(engine.ingest(b.clone())).unwrap_err();
        assert!(matches!(err, IngestError::Unavailable(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("disk holding the event log is full"),
            "{err}"
        );
    }
    // Nothing of the refused batches is visible, and the counters say what happened.
    assert_eq!(answers(&engine), expected(&a));
    assert_eq!(engine.counters().failed_commits.load(Ordering::Relaxed), 3);

    // Space returns: the very same retry is accepted in full (not as duplicates).
    mode.store(OK, Ordering::SeqCst);
    let outcome = rt.block_on(engine.ingest(b.clone())).unwrap();
    assert_eq!((outcome.accepted, outcome.duplicates.len()), (b.len(), 0));
    let all: Vec<Event> = a.iter().chain(&b).cloned().collect();
    assert_eq!(answers(&engine), expected(&all));
    drop(engine);
    let engine = open(dir.path(), EngineConfig::default());
    assert_eq!(answers(&engine), expected(&all));
    rt.block_on(engine.shutdown());
}

#[test]
fn a_request_failing_after_its_first_commit_chunk_says_what_was_taken_and_a_retry_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mode = Arc::new(AtomicU8::new(OK_THEN_DISK_FULL));
    let config = EngineConfig {
        commit_chunk_events_max: 8,
        ..EngineConfig::default()
    };
    let engine = open_faulty_with(dir.path(), mode.clone(), config);
    let a = events("a", 10);
    let err = rt.block_on(engine.ingest(a.clone())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "events could not be made durable: the disk holding the event log is full; the request was committed in chunks and its first 8 events were taken (8 accepted, 0 duplicates, 0 rejected), the rest not: retry the whole request later (the accepted events are then answered as duplicates)"
    );
    assert_eq!(answers(&engine), expected(&a[..8]));
    // The retry of the whole request counts every event exactly once.
    mode.store(OK, Ordering::SeqCst);
    let outcome = rt.block_on(engine.ingest(a.clone())).unwrap();
    assert_eq!(outcome.accepted, a.len() - 8);
    assert_eq!(outcome.duplicates, (0..8).collect::<Vec<_>>());
    assert_eq!(answers(&engine), expected(&a));
    rt.block_on(engine.shutdown());
}

#[test]
fn an_append_that_failed_after_reaching_the_disk_is_not_counted_twice_after_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mode = Arc::new(AtomicU8::new(WRITE_THEN_FAIL));
    let engine = open_faulty(dir.path(), mode.clone());
    let a = events("a", 10);
    assert!(rt.block_on(engine.ingest(a.clone())).is_err());
    assert_eq!(answers(&engine), expected(&[]));
    // The producer retries: accepted (the failed attempt was never applied) and logged again.
    mode.store(OK, Ordering::SeqCst);
    assert_eq!(
        rt.block_on(engine.ingest(a.clone())).unwrap().accepted,
        a.len()
    );
    assert_eq!(answers(&engine), expected(&a));
    // The log now holds the events twice; replay counts them once.
    drop(engine);
    let engine = open(dir.path(), EngineConfig::default());
    assert_eq!(answers(&engine), expected(&a));
    assert_eq!(engine.recovery().replay_duplicates_skipped, a.len() as u64);
    assert_eq!(engine.recovery().replayed_events, a.len() as u64);
    rt.block_on(engine.shutdown());
}

#[test]
fn a_corrupt_newest_checkpoint_falls_back_to_the_older_one_after_log_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (a, b, c) = (events("a", 30), events("b", 30), events("c", 30));
    for batch in [&a, &b] {
        let engine = open(dir.path(), small_segments());
        for chunk in batch.chunks(6) {
            rt.block_on(engine.ingest(chunk.to_vec())).unwrap();
        }
        rt.block_on(engine.shutdown()); // writes a checkpoint, then truncates the log
    }
    let wal = dir.path().join("wal");
    let cps = dir.path().join("checkpoints");
    assert_eq!(files(&cps, "checkpoint-").len(), 2);
    let first_segment = files(&wal, "wal-")[0].clone();
    assert!(
        !first_segment.ends_with("wal-00000000000000000001.log"),
        "the log before the older checkpoint was deleted: {first_segment:?}"
    );
    // More events after the newest checkpoint, then a crash (no checkpoint).
    let engine = open(dir.path(), small_segments());
    rt.block_on(engine.ingest(c.clone())).unwrap();
    drop(engine);
    // The newest checkpoint rots.
    flip_byte(files(&cps, "checkpoint-").last().unwrap(), 100);
    let engine = open(dir.path(), small_segments());
    let all: Vec<Event> = a.iter().chain(&b).chain(&c).cloned().collect();
    assert_eq!(answers(&engine), expected(&all));
    assert_eq!(engine.recovery().checkpoints_skipped_corrupt, 1);
    rt.block_on(engine.shutdown());

    // Both rot: the log no longer starts at the beginning, so recovery refuses to guess.
    for cp in files(&cps, "checkpoint-") {
        flip_byte(&cp, 50);
    }
    let err = Engine::open(dir.path(), small_segments(), clock()).unwrap_err();
    assert!(err.to_string().contains("checkpoint"), "{err}");
}

#[test]
fn with_every_checkpoint_corrupt_a_complete_log_rebuilds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let a = events("a", 20);
    let engine = open(dir.path(), EngineConfig::default());
    rt.block_on(engine.ingest(a.clone())).unwrap();
    rt.block_on(engine.shutdown());
    let cps = dir.path().join("checkpoints");
    for cp in files(&cps, "checkpoint-") {
        flip_byte(&cp, 10);
    }
    let engine = open(dir.path(), EngineConfig::default());
    assert!(engine.recovery().rebuilt_from_log);
    assert_eq!(answers(&engine), expected(&a));
    rt.block_on(engine.shutdown());
}

#[test]
fn records_appended_after_a_corrupt_tail_that_a_checkpoint_covers_are_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (a, b) = (events("a", 10), events("b", 10));
    let engine = open(dir.path(), EngineConfig::default());
    rt.block_on(engine.ingest(a.clone())).unwrap();
    rt.block_on(engine.shutdown()); // the checkpoint covers the whole log
    // The last record rots: open cuts it as a torn tail, so the log ends before the checkpoint.
    let segment = files(&dir.path().join("wal"), "wal-").pop().unwrap();
    flip_byte(&segment, 3);
    let engine = open(dir.path(), EngineConfig::default());
    assert!(engine.recovery().log.torn_tail_bytes > 0);
    assert_eq!(
        answers(&engine),
        expected(&a),
        "the checkpoint still holds it"
    );
    rt.block_on(engine.ingest(b.clone())).unwrap();
    drop(engine); // crash: only the log holds b
    let engine = open(dir.path(), EngineConfig::default());
    let all: Vec<Event> = a.iter().chain(&b).cloned().collect();
    assert_eq!(answers(&engine), expected(&all));
    rt.block_on(engine.shutdown());
}

#[test]
fn state_bounds_reject_events_before_the_log_naming_the_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let config = EngineConfig {
        limits: StateLimits {
            dimension_values_max: 2,
            rt_sessions_per_group_max: 1_000,
            ..StateLimits::default()
        },
        ..EngineConfig::default()
    };
    let engine = open(dir.path(), config.clone());
    // Group acme only ever sees `Menu`; globex sees `YesNo` and `Account`: at the limit.
    let a = events("a", 12);
    let outcome = rt.block_on(engine.ingest(a.clone())).unwrap();
    assert_eq!(outcome.accepted, a.len());
    // A new name: acme has room for it, globex does not. Refused per event, naming the
    // dimension; everything else of the request goes through.
    let mut b = events("b", 2);
    for e in &mut b {
        if let ocp_metrics_core::EventKind::MiniappEnd(m) = &mut e.kind {
            m.miniapp_name = ocp_metrics_core::Label::parse("Transfer").unwrap();
        }
    }
    let outcome = rt.block_on(engine.ingest(b.clone())).unwrap();
    // b: acme invocation (index 0) and session end (1), globex invocation (2) and session end (3).
    let refused: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(refused, vec![2], "{:?}", outcome.rejected);
    assert!(
        outcome.rejected[0]
            .1
            .starts_with("`miniapp_name`: group `globex` already has 2 distinct values"),
        "{}",
        outcome.rejected[0].1
    );
    assert_eq!(outcome.accepted, 3);
    assert_eq!(
        engine
            .counters()
            .limit_rejected_events
            .load(Ordering::Relaxed),
        1
    );
    // Nothing refused was logged: a restart (replay, no limits applied) gives the same answers.
    let want = answers(&engine);
    drop(engine);
    let engine = open(dir.path(), config);
    assert_eq!(answers(&engine), want);
    rt.block_on(engine.shutdown());
}

#[test]
fn a_request_too_large_for_one_log_record_is_refused_alone_and_taints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let config = EngineConfig {
        log: FileLogOptions {
            record_bytes_max: 4096,
            ..FileLogOptions::default()
        },
        ..EngineConfig::default()
    };
    let engine = open(dir.path(), config);
    let big = events("big", 40);
    let err = rt.block_on(engine.ingest(big.clone())).unwrap_err();
    assert!(
        matches!(err, IngestError::TooLarge { max: 4096, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("send fewer events per request"),
        "{err}"
    );
    // Its events were not remembered: sent in smaller requests they are accepted, not duplicates.
    let mut accepted = 0;
    for chunk in big.chunks(8) {
        let outcome = rt.block_on(engine.ingest(chunk.to_vec())).unwrap();
        assert!(outcome.duplicates.is_empty());
        accepted += outcome.accepted;
    }
    assert_eq!(accepted, big.len());
    assert_eq!(answers(&engine), expected(&big));
    rt.block_on(engine.shutdown());
}
