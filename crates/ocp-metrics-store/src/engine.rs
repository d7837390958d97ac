//! The engine: one writer thread that owns the event log, the dedupe set and every mutation of
//! the rollups, and answers queries from a shared read view.
//!
//! Ingest is group-committed: the writer takes every batch waiting in its bounded queue,
//! dedupes them against the set and against each other, appends all accepted events to the log
//! with one fsync, then applies them to the rollups and only then answers every caller. So a
//! success means durable (the log holds it) and visible (a query right after sees it), and a
//! failure means nothing of that batch was applied or logged, so a retry cannot double count.
//!
//! Fairness: a request larger than [`EngineConfig::commit_chunk_events_max`] is committed in
//! chunks, one group commit each, and requests queued meanwhile join the next commit, so one
//! tenant's large request delays another's small one by at most one chunk. Each chunk is durable
//! on its own; when a later chunk fails, the request answers an error saying how many of its
//! events were accepted, and a retry of the whole request is safe (dedupe answers the accepted
//! ones as duplicates).

use crate::checkpoint::{CheckpointError, CheckpointStore, FileCheckpoints};
use crate::log::{EventLog, FileLog, FileLogOptions, LogPosition, RecoveryReport};
use crate::snapshot;
use ocp_metrics_core::dedupe::Dedupe;
use ocp_metrics_core::rollup::{Admission, Horizons, RollupStats, StateLimits};
use ocp_metrics_core::{Answer, Clock, Event, Query, QueryError, Rollups};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The default of [`EngineConfig::commit_chunk_events_max`]. Admitting and applying an event
/// costs a few microseconds, so a chunk keeps the writer on one request for about 10-20 ms (a
/// hundred or two in a debug build) while still amortising each fsync over thousands of events.
pub const COMMIT_CHUNK_EVENTS_MAX: usize = 4_096;

/// Ingest counts as quiet, for [`EngineConfig::checkpoint_quiet_log_bytes`], while it appends
/// at most this many log bytes per second (about 7,000 events per second): a wallboard probe
/// or a trickle of events, not a load.
pub const CHECKPOINT_QUIET_LOG_BYTES_PER_SECOND_MAX: u64 = 1 << 20;
/// How long ingest must have been quiet before a quiet checkpoint, in seconds.
pub const CHECKPOINT_QUIET_SECONDS_MIN: u64 = 2;

/// Tunables of the engine, each a bound.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Batches waiting for the writer; a full queue makes ingest wait, then answer 503.
    pub queue_batches_max: usize,
    /// Events the writer takes into one group commit.
    pub commit_events_max: usize,
    /// Events of one request committed at once; a larger request is committed in chunks of this
    /// many, so that other requests interleave (see the module documentation).
    pub commit_chunk_events_max: usize,
    /// How long an ingest call waits for room in the queue before giving up, in milliseconds.
    pub enqueue_wait_ms: u64,
    /// Write a checkpoint after this many log bytes since the last one.
    pub checkpoint_log_bytes: u64,
    /// Write a checkpoint at least this often while the log grows, in seconds.
    pub checkpoint_interval_seconds: u64,
    /// Once ingest has been quiet for [`CHECKPOINT_QUIET_SECONDS_MIN`] (under
    /// [`CHECKPOINT_QUIET_LOG_BYTES_PER_SECOND_MAX`]), write a checkpoint as soon as this many
    /// log bytes wait since the last one. A checkpoint stalls the writer for about a second per
    /// 5 million events of state; in a quiet time few requests wait for it, and a crash
    /// afterwards replays little. `u64::MAX` turns it off.
    pub checkpoint_quiet_log_bytes: u64,
    /// After a checkpoint failed (a full disk, say), wait this long before trying again, in
    /// seconds: each attempt serializes the whole state.
    pub checkpoint_retry_seconds: u64,
    pub log: FileLogOptions,
    /// Bounds on the state of one group, checked before events are logged.
    pub limits: StateLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queue_batches_max: 1024,
            commit_events_max: 200_000,
            commit_chunk_events_max: COMMIT_CHUNK_EVENTS_MAX,
            enqueue_wait_ms: 5_000,
            checkpoint_log_bytes: 1 << 30,
            checkpoint_interval_seconds: 300,
            checkpoint_quiet_log_bytes: 16 << 20,
            checkpoint_retry_seconds: 30,
            log: FileLogOptions::default(),
            limits: StateLimits::default(),
        }
    }
}

pub use ocp_metrics_service::{IngestError, IngestOutcome};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("event log: {0}")]
    Log(#[from] crate::log::LogError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("checkpoint could not be decoded: {0}")]
    Decode(#[from] crate::snapshot::SnapshotError),
    #[error("writer thread: {0}")]
    Thread(std::io::Error),
}

/// What recovery found, for the log and `/metrics`-style reporting.
#[derive(Debug, Clone, Default)]
pub struct RecoveryStats {
    pub checkpoint_position: Option<LogPosition>,
    /// Newer checkpoint files that were torn or corrupt and skipped for an older one.
    pub checkpoints_skipped_corrupt: u32,
    /// Every checkpoint was corrupt, but the log still held everything, so the state was
    /// rebuilt from the whole log.
    pub rebuilt_from_log: bool,
    pub replayed_events: u64,
    /// Logged events whose `(group, id)` was already seen within the dedupe horizon, skipped:
    /// only a failed append whose records reached the disk anyway (and were retried) leaves
    /// such a second copy.
    pub replay_duplicates_skipped: u64,
    /// Records that passed their checksum but could not be decoded, skipped.
    pub undecodable_batches: u64,
    pub log: RecoveryReport,
    pub elapsed_ms: u64,
}

/// Decoded log batches waiting for the applying thread during recovery: enough to keep both
/// threads busy, few enough that a slow apply holds at most a few megabytes of events.
pub const REPLAY_BATCHES_QUEUED_MAX: usize = 64;

/// Applies the log after `from` to the state, in log order, and returns the bytes replayed.
/// Two threads share the work: this one reads and decodes the records (the allocation of every
/// event's strings), a second one applies them (dedupe and rollups) and frees them, so that a
/// restart after a crash uses both cores.
fn replay(
    log: &mut dyn EventLog,
    from: LogPosition,
    rollups: &mut Rollups,
    dedupe: &mut Dedupe,
    horizons: Horizons,
    recovery: &mut RecoveryStats,
) -> Result<u64, EngineError> {
    let mut replayed_bytes = 0u64;
    let mut undecodable = 0u64;
    let (read, (replayed, duplicates)) = std::thread::scope(|scope| {
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<LogBatch<Vec<Event>>>(REPLAY_BATCHES_QUEUED_MAX);
        // Applied batches come back to be freed where they were allocated: freeing a few
        // million small strings is a fifth of the applier's time, and the reader has time to
        // spare (and frees into its own malloc arena, without contention).
        let (back_tx, back_rx) =
            std::sync::mpsc::sync_channel::<LogBatch<Vec<Event>>>(REPLAY_BATCHES_QUEUED_MAX);
        let applier = std::thread::Builder::new()
            .name("ocp-replay".into())
            .spawn_scoped(scope, move || {
                apply_replayed(rx, back_tx, rollups, dedupe, horizons)
            })
            .expect("a thread can be started at recovery");
        let read = log.replay(from, &mut |_, bytes| {
            back_rx.try_iter().for_each(drop);
            match postcard::from_bytes::<LogBatch<Vec<Event>>>(bytes) {
                Ok(batch) => {
                    replayed_bytes += bytes.len() as u64;
                    // Fails only if the applier stopped, which it does only after the sender
                    // is dropped.
                    let _ = tx.send(batch);
                }
                Err(e) => {
                    undecodable += 1;
                    tracing::error!(error = %e, "a log record passed its checksum but could not be decoded; skipped");
                }
            }
        });
        drop(tx);
        let applied = applier
            .join()
            .expect("applying replayed events does not panic");
        (read, applied)
    });
    read?;
    recovery.replayed_events += replayed;
    recovery.replay_duplicates_skipped += duplicates;
    recovery.undecodable_batches += undecodable;
    Ok(replayed_bytes)
}

/// The applying side of [`replay`]: `(events applied, duplicates skipped)`.
fn apply_replayed(
    batches: std::sync::mpsc::Receiver<LogBatch<Vec<Event>>>,
    applied: std::sync::mpsc::SyncSender<LogBatch<Vec<Event>>>,
    rollups: &mut Rollups,
    dedupe: &mut Dedupe,
    horizons: Horizons,
) -> (u64, u64) {
    let (mut replayed, mut duplicates) = (0, 0);
    for batch in batches {
        // Forget what the writer had forgotten when it accepted this batch, so that an id
        // legitimately accepted again after the horizon still counts.
        dedupe.expire(batch.arrival_ms);
        for e in &batch.events {
            let key = Dedupe::key(e.group.as_str(), &e.id);
            if dedupe.contains(key) {
                duplicates += 1;
                continue;
            }
            replayed += 1;
            dedupe.insert(key, batch.arrival_ms);
            rollups.apply(e, horizons);
        }
        // Never waits: when the reader is behind on freeing, the batch is freed here.
        let _ = applied.try_send(batch);
    }
    (replayed, duplicates)
}

/// Counters the engine keeps about itself.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub accepted_events: AtomicU64,
    pub duplicate_events: AtomicU64,
    /// Events refused by a state bound ([`StateLimits`]).
    pub limit_rejected_events: AtomicU64,
    pub commits: AtomicU64,
    /// Group commits whose log append failed (nothing of them was accepted).
    pub failed_commits: AtomicU64,
    pub checkpoints: AtomicU64,
    pub failed_checkpoints: AtomicU64,
    /// Series and dimension values dropped by compaction at checkpoints.
    pub compacted_series: AtomicU64,
    pub compacted_values: AtomicU64,
    /// Entries in the dedupe set (a gauge, updated by the writer).
    pub dedupe_entries: AtomicU64,
    /// Bumped after every applied group commit, so that live streams wake on change instead
    /// of polling ([`Engine::commit_generation`]).
    pub commit_generation: tokio::sync::watch::Sender<u64>,
}

/// A handle to the engine; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Arc<RwLock<Rollups>>,
    tx: mpsc::Sender<Job>,
    clock: Arc<dyn Clock>,
    enqueue_wait: Duration,
    recovery: RecoveryStats,
    counters: Arc<EngineCounters>,
    writer: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug)]
enum Job {
    Ingest {
        events: Vec<Event>,
        reply: oneshot::Sender<Result<IngestOutcome, IngestError>>,
    },
    Tick,
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

impl Engine {
    /// Opens (or creates) the store in `dir`, recovers the state, and starts the writer.
    pub fn open(
        dir: &Path,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        let started = Instant::now();
        let (log, log_report) = FileLog::open(&dir.join("wal"), config.log)?;
        let checkpoints = FileCheckpoints::open(&dir.join("checkpoints"))?;
        Engine::recover(
            Box::new(log),
            log_report,
            Box::new(checkpoints),
            config,
            clock,
            started,
        )
    }

    /// Recovers from any log and checkpoint store (`log_report` is what opening the log found)
    /// and starts the writer. The seam for tests that inject faults.
    pub fn open_with(
        log: Box<dyn EventLog>,
        log_report: RecoveryReport,
        checkpoints: Box<dyn CheckpointStore>,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        Engine::recover(log, log_report, checkpoints, config, clock, Instant::now())
    }

    fn recover(
        mut log: Box<dyn EventLog>,
        log_report: RecoveryReport,
        checkpoints: Box<dyn CheckpointStore>,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        started: Instant,
    ) -> Result<Engine, EngineError> {
        let mut recovery = RecoveryStats {
            log: log_report,
            ..RecoveryStats::default()
        };
        let latest = match checkpoints.load_latest() {
            Err(CheckpointError::AllCorrupt { files }) if log.complete_from_start() => {
                tracing::error!(
                    files,
                    "every checkpoint is corrupt; the log still holds everything, rebuilding the state from it"
                );
                recovery.rebuilt_from_log = true;
                recovery.checkpoints_skipped_corrupt = files;
                None
            }
            other => other?,
        };
        let (mut rollups, mut dedupe, from) = match latest {
            Some(cp) => {
                let (rollups, dedupe) = snapshot::decode(&cp.bytes)?;
                recovery.checkpoint_position = Some(cp.pos);
                recovery.checkpoints_skipped_corrupt = cp.skipped_corrupt;
                (rollups, dedupe, cp.pos)
            }
            None => (Rollups::new(), Dedupe::default(), LogPosition::default()),
        };
        rollups.after_load();
        let horizons = Horizons::at(clock.now());
        let replayed_bytes = replay(
            log.as_mut(),
            from,
            &mut rollups,
            &mut dedupe,
            horizons,
            &mut recovery,
        )?;
        log.move_end_past(from)?;
        let now = clock.now();
        rollups.evict(Horizons::at(now));
        dedupe.expire(now.as_millisecond());
        recovery.elapsed_ms = started.elapsed().as_millis() as u64;

        let state = Arc::new(RwLock::new(rollups));
        let counters = Arc::new(EngineCounters::default());
        counters
            .dedupe_entries
            .store(dedupe.len() as u64, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(config.queue_batches_max);
        let writer = Writer {
            dropper: spawn_dropper(),
            log,
            checkpoints,
            dedupe,
            state: state.clone(),
            clock: clock.clone(),
            counters: counters.clone(),
            // What was replayed counts as not yet checkpointed, so that a server that keeps
            // crashing before its first checkpoint still checkpoints soon after each restart
            // and its recovery time stays bounded.
            bytes_since_checkpoint: replayed_bytes,
            last_checkpoint: Instant::now(),
            checkpoint_failed_at: None,
            last_maintenance: Instant::now(),
            bytes_since_maintenance: 0,
            quiet_since: None,
            config: config.clone(),
            position: LogPosition::default(),
        };
        let handle = std::thread::Builder::new()
            .name("ocp-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(EngineError::Thread)?;
        spawn_ticker(tx.downgrade());
        Ok(Engine {
            inner: Arc::new(Inner {
                state,
                tx,
                clock,
                enqueue_wait: Duration::from_millis(config.enqueue_wait_ms),
                recovery,
                counters,
                writer: parking_lot::Mutex::new(Some(handle)),
            }),
        })
    }

    /// Dedupes, logs durably and applies `events`. On `Ok` the accepted ones survive a crash and
    /// are visible to queries; on `Err` none of them was logged or applied.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, IngestError> {
        let (reply, rx) = oneshot::channel();
        let job = Job::Ingest { events, reply };
        match tokio::time::timeout(self.inner.enqueue_wait, self.inner.tx.send(job)).await {
            Err(_) => return Err(IngestError::Overloaded),
            Ok(Err(_)) => return Err(IngestError::ShuttingDown),
            Ok(Ok(())) => {}
        }
        rx.await.unwrap_or(Err(IngestError::ShuttingDown))
    }

    /// Answers a query against everything acknowledged so far.
    pub fn query(&self, q: &Query) -> Result<Answer, QueryError> {
        let now = self.inner.clock.now();
        self.inner.state.read().query(q, now)
    }

    pub fn now(&self) -> jiff::Timestamp {
        self.inner.clock.now()
    }

    pub fn recovery(&self) -> &RecoveryStats {
        &self.inner.recovery
    }

    pub fn counters(&self) -> &EngineCounters {
        &self.inner.counters
    }

    /// A receiver that sees a change after every group commit applied to the rollups.
    pub fn commit_generation(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.counters.commit_generation.subscribe()
    }

    pub fn stats(&self) -> RollupStats {
        self.inner.state.read().stats()
    }

    /// Distinct values seen for one dimension of one endpoint's family in a group (for UIs).
    pub fn dimension_values(
        &self,
        group: &str,
        family: ocp_metrics_core::Family,
        dim: usize,
    ) -> Vec<String> {
        self.inner.state.read().dimension_values(group, family, dim)
    }

    /// Groups that have any data, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.inner.state.read().group_names()
    }

    /// Finishes queued work, writes a final checkpoint and stops the writer.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.inner.tx.send(Job::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.inner.writer.lock().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

mod record;
mod writer;

use record::LogBatch;
use writer::{Writer, spawn_dropper, spawn_ticker};
