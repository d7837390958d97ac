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

/// One log record: the accepted events of one request and when they arrived.
#[derive(Serialize, Deserialize)]
struct LogBatch<E> {
    arrival_ms: i64,
    events: E,
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
        let mut replayed_bytes = 0u64;
        log.replay(from, &mut |_, bytes| match postcard::from_bytes::<LogBatch<Vec<Event>>>(bytes) {
            Ok(batch) => {
                replayed_bytes += bytes.len() as u64;
                // Forget what the writer had forgotten when it accepted this batch, so that an
                // id legitimately accepted again after the horizon still counts.
                dedupe.expire(batch.arrival_ms);
                for e in &batch.events {
                    let key = Dedupe::key(e.group.as_str(), &e.id);
                    if dedupe.contains(key) {
                        recovery.replay_duplicates_skipped += 1;
                        continue;
                    }
                    recovery.replayed_events += 1;
                    dedupe.insert(key, batch.arrival_ms);
                    rollups.apply(e, horizons);
                }
            }
            Err(e) => {
                recovery.undecodable_batches += 1;
                tracing::error!(error = %e, "a log record passed its checksum but could not be decoded; skipped");
            }
        })?;
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
        let state = self.inner.state.read();
        let Some(g) = state.group(group) else {
            return Vec::new();
        };
        let interner = g.family(family).interner(dim);
        let mut v: Vec<String> = (0..interner.len() as u32)
            .map(|i| interner.value(i).to_string())
            .collect();
        v.sort();
        v
    }

    /// Groups that have any data.
    pub fn groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .state
            .read()
            .groups()
            .map(|(g, _)| g.to_string())
            .collect();
        v.sort();
        v
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

/// Each event's encoded size is at most its strings (each with a length prefix of at most 5
/// bytes) plus this much for its numbers, flags and enum tags.
const EVENT_FIXED_BYTES_MAX: usize = 160;

/// The encoded size of `events` as one log record, if it exceeds `max` bytes. Cheap for the
/// usual request: an upper bound decides, and only a request near the limit is encoded.
fn too_large(events: &[Event], max: u32) -> Option<u64> {
    let max = u64::from(max);
    let bound: u64 = events.iter().map(|e| size_bound(e) as u64).sum::<u64>() + 32;
    if bound <= max {
        return None;
    }
    let bytes = postcard::to_allocvec(&LogBatch {
        arrival_ms: i64::MAX,
        events,
    })
    .map_or(u64::MAX, |b| b.len() as u64);
    (bytes > max).then_some(bytes)
}

/// An upper bound of one event's encoded size.
fn size_bound(e: &Event) -> usize {
    use ocp_metrics_core::EventKind;
    let s = |x: &str| x.len() + 5;
    let mut n = EVENT_FIXED_BYTES_MAX
        + s(&e.id)
        + s(e.group.as_str())
        + s(e.session_id.as_str())
        + s(e.channel.as_str())
        + s(e.region.as_str());
    match &e.kind {
        EventKind::DialogEnd(d) => {
            n += s(d.flow_name.as_str())
                + s(d.flow_id.as_str())
                + s(d.flow_type.as_str())
                + s(d.locale.as_str());
        }
        EventKind::MiniappEnd(m) => {
            n += s(m.miniapp_name.as_str())
                + s(m.miniapp_id.as_str())
                + s(m.miniapp_type.as_str())
                + s(m.locale.as_str())
                + m.flow_name.as_ref().map_or(0, |f| s(f.as_str()))
                + s(m.fail_reason.as_str());
        }
        EventKind::SessionStart
        | EventKind::DialogStart
        | EventKind::MiniappStart
        | EventKind::SessionEnd { .. } => {}
    }
    n
}

/// What a caller whose request could not be made durable is told: what failed, and how much of
/// the request earlier chunks had accepted.
fn unavailable_message(reason: &str, request: &Request) -> String {
    if request.done == 0 {
        return format!("{reason}; nothing of this request was accepted, retry later");
    }
    format!(
        "{reason}; the request was committed in chunks and its first {} events were taken ({} accepted, {} duplicates, {} rejected), the rest not: retry the whole request later (the accepted events are then answered as duplicates)",
        request.done,
        request.outcome.accepted,
        request.outcome.duplicates.len(),
        request.outcome.rejected.len()
    )
}

/// Wakes the writer once a second so that it expires, evicts and checkpoints when idle. It holds
/// only a weak sender, so dropping the last `Engine` closes the queue and stops the writer.
fn spawn_ticker(weak: mpsc::WeakSender<Job>) {
    let tick = move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(tx) = weak.upgrade() else { return };
            if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Job::Tick) {
                return;
            }
        }
    };
    let _ = std::thread::Builder::new()
        .name("ocp-ticker".into())
        .spawn(tick);
}

struct Writer {
    log: Box<dyn EventLog>,
    checkpoints: Box<dyn CheckpointStore>,
    dedupe: Dedupe,
    state: Arc<RwLock<Rollups>>,
    clock: Arc<dyn Clock>,
    counters: Arc<EngineCounters>,
    bytes_since_checkpoint: u64,
    last_checkpoint: Instant,
    /// When the last checkpoint attempt failed, if it did; retries wait.
    checkpoint_failed_at: Option<Instant>,
    last_maintenance: Instant,
    config: EngineConfig,
    position: LogPosition,
    /// Where applied events go to be freed off the writer thread.
    dropper: std::sync::mpsc::SyncSender<Vec<Vec<Event>>>,
}

/// Commits whose events may wait to be freed.
const DROP_QUEUE_COMMITS_MAX: usize = 16;

/// A thread that frees what it is sent; it ends when the writer drops its sender.
fn spawn_dropper() -> std::sync::mpsc::SyncSender<Vec<Vec<Event>>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<Event>>>(DROP_QUEUE_COMMITS_MAX);
    let _ = std::thread::Builder::new()
        .name("ocp-dropper".into())
        .spawn(move || rx.into_iter().for_each(drop));
    tx
}

type Reply = oneshot::Sender<Result<IngestOutcome, IngestError>>;

/// An ingest request in the writer: its events not committed yet, and what became of the
/// others.
struct Request {
    rest: std::vec::IntoIter<Event>,
    /// Events of the request already committed: the request index of the first of `rest`.
    done: usize,
    outcome: IngestOutcome,
    reply: Reply,
}

/// One request's chunk in a group commit.
struct Part {
    request: Request,
    events: Vec<Event>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        self.position = self.log.end();
        // Requests with chunks still to commit, oldest first.
        let mut carried: VecDeque<Request> = VecDeque::new();
        loop {
            let mut parts: Vec<Part> = Vec::new();
            let mut events = 0usize;
            // Chunks of requests already started go first: they arrived earlier.
            while events < self.config.commit_events_max
                && let Some(request) = carried.pop_front()
            {
                let part = self.chunk(request);
                events += part.events.len();
                parts.push(part);
            }
            // Then whatever waits; block only when there is nothing else to do.
            let mut next = if parts.is_empty() && carried.is_empty() {
                match rx.blocking_recv() {
                    Some(job) => Some(job),
                    None => return,
                }
            } else {
                rx.try_recv().ok()
            };
            let mut shutdown = None;
            while let Some(job) = next.take() {
                match job {
                    Job::Ingest { events: e, reply } => {
                        if let Some(part) = self.intake(e, reply) {
                            events += part.events.len();
                            parts.push(part);
                        }
                    }
                    Job::Tick => {}
                    Job::Shutdown { reply } => shutdown = Some(reply),
                }
                if events < self.config.commit_events_max && shutdown.is_none() {
                    next = rx.try_recv().ok();
                }
            }
            if !parts.is_empty() {
                self.commit(parts, &mut carried);
            }
            self.maintain();
            if let Some(reply) = shutdown {
                rx.close();
                while let Ok(Job::Ingest { reply, .. }) = rx.try_recv() {
                    let _ = reply.send(Err(IngestError::ShuttingDown));
                }
                // Requests already started are finished: their callers wait for an answer.
                while let Some(request) = carried.pop_front() {
                    let part = self.chunk(request);
                    self.commit(vec![part], &mut carried);
                }
                self.checkpoint();
                let _ = reply.send(());
                return;
            }
        }
    }

    /// Takes a new request: refuses it whole when it cannot fit one log record, else returns
    /// its first chunk.
    fn intake(&mut self, events: Vec<Event>, reply: Reply) -> Option<Part> {
        // Refused whole, before its events are deduped against the others of this commit: it
        // must not make another request's copy of one of its events look like a duplicate.
        let max = self.config.log.record_bytes_max;
        if let Some(bytes) = too_large(&events, max) {
            tracing::warn!(
                bytes,
                max,
                "an ingest request is too large for one log record; refused"
            );
            let _ = reply.send(Err(IngestError::TooLarge { bytes, max }));
            return None;
        }
        Some(self.chunk(Request {
            rest: events.into_iter(),
            done: 0,
            outcome: IngestOutcome::default(),
            reply,
        }))
    }

    /// The next chunk of a request.
    fn chunk(&self, mut request: Request) -> Part {
        let n = self.config.commit_chunk_events_max.max(1);
        let events: Vec<Event> = if request.rest.len() <= n {
            // The whole rest: collecting an untouched `IntoIter` reuses its buffer.
            std::mem::replace(&mut request.rest, Vec::new().into_iter()).collect()
        } else {
            request.rest.by_ref().take(n).collect()
        };
        Part { request, events }
    }

    /// One group commit: dedupe, admission (state bounds), one log append (one fsync), apply,
    /// answer. Requests with events left go back to `carried`.
    fn commit(&mut self, parts: Vec<Part>, carried: &mut VecDeque<Request>) {
        let now = self.clock.now();
        let arrival_ms = now.as_millisecond();
        // One horizon for admission and apply, so that admission checks exactly what apply does.
        let horizons = Horizons::at(now);
        let mut admission = Admission::new();
        // Each request, its accepted events, and how many of its events this commit took.
        let mut kept: Vec<(Request, Vec<Event>, usize)> = Vec::with_capacity(parts.len());
        // The dedupe keys of the accepted events, computed once for the check and the insert.
        let mut keys: Vec<u128> = Vec::new();
        {
            let state = self.state.read();
            for Part {
                mut request,
                events,
            } in parts
            {
                let outcome = &mut request.outcome;
                let taken = events.len();
                let mut accepted = Vec::with_capacity(taken);
                for (i, e) in events.into_iter().enumerate() {
                    let index = request.done + i;
                    let key = Dedupe::key(e.group.as_str(), &e.id);
                    // The set is updated as events are accepted, so a second copy in this same
                    // commit is a duplicate too; a failed append takes the keys out again.
                    if self.dedupe.contains(key) {
                        outcome.duplicates.push(index);
                    } else if let Err(refused) =
                        state.admit(&e, horizons, &self.config.limits, &mut admission)
                    {
                        outcome.rejected.push((index, refused.to_string()));
                    } else {
                        self.dedupe.insert(key, arrival_ms);
                        keys.push(key);
                        accepted.push(e);
                    }
                }
                kept.push((request, accepted, taken));
            }
        }
        // One record per request chunk (within the record limit: its request was).
        let records: Vec<Vec<u8>> = kept
            .iter()
            .filter(|(_, events, _)| !events.is_empty())
            .map(|(_, events, _)| {
                postcard::to_allocvec(&LogBatch { arrival_ms, events })
                    .expect("events always encode")
            })
            .collect();
        if !records.is_empty() {
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            match self.log.append(&refs) {
                Ok(pos) => self.position = pos,
                Err(e) => {
                    self.counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "log append failed; the batch was refused");
                    let reason = if e.is_disk_full() {
                        "the disk holding the event log is full"
                    } else {
                        "the event log could not be written"
                    };
                    for key in &keys {
                        self.dedupe.remove(*key);
                    }
                    for (request, _, _) in kept {
                        let message = unavailable_message(reason, &request);
                        let _ = request.reply.send(Err(IngestError::Unavailable(message)));
                    }
                    return;
                }
            }
            self.bytes_since_checkpoint += records.iter().map(|r| r.len() as u64).sum::<u64>();
        }
        {
            let mut state = self.state.write();
            for (_, events, _) in &kept {
                for e in events {
                    state.apply(e, horizons);
                }
            }
        }
        self.counters
            .dedupe_entries
            .store(self.dedupe.len() as u64, Ordering::Relaxed);
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.counters.commit_generation.send_modify(|g| *g += 1);
        let mut garbage = Vec::with_capacity(kept.len());
        for (mut request, events, taken) in kept {
            request.outcome.accepted += events.len();
            request.done += taken;
            debug_assert_eq!(
                request.done,
                request.outcome.accepted
                    + request.outcome.duplicates.len()
                    + request.outcome.rejected.len(),
                "every event of a request is accepted, a duplicate or rejected, once"
            );
            self.counters
                .accepted_events
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            garbage.push(events);
            if request.rest.len() > 0 {
                carried.push_back(request);
                continue;
            }
            let outcome = request.outcome;
            self.counters
                .duplicate_events
                .fetch_add(outcome.duplicates.len() as u64, Ordering::Relaxed);
            self.counters
                .limit_rejected_events
                .fetch_add(outcome.rejected.len() as u64, Ordering::Relaxed);
            let _ = request.reply.send(Ok(outcome));
        }
        // Freeing millions of small strings is a tenth of the writer's time: hand the events to
        // a helper thread, or free them here when it is behind (never an unbounded backlog).
        if let Err(
            std::sync::mpsc::TrySendError::Full(g) | std::sync::mpsc::TrySendError::Disconnected(g),
        ) = self.dropper.try_send(garbage)
        {
            drop(g);
        }
    }

    /// Retention (at most about once a second) and checkpoints (as soon as one is due by log
    /// bytes, else by time).
    fn maintain(&mut self) {
        let backing_off = self.checkpoint_failed_at.is_some_and(|at| {
            at.elapsed() < Duration::from_secs(self.config.checkpoint_retry_seconds)
        });
        let due_bytes = self.bytes_since_checkpoint >= self.config.checkpoint_log_bytes;
        if self.last_maintenance.elapsed() < Duration::from_secs(1) {
            if due_bytes && !backing_off {
                self.checkpoint();
            }
            return;
        }
        self.last_maintenance = Instant::now();
        let now = self.clock.now();
        self.dedupe.expire(now.as_millisecond());
        self.counters
            .dedupe_entries
            .store(self.dedupe.len() as u64, Ordering::Relaxed);
        self.state.write().evict(Horizons::at(now));
        let due_time = self.bytes_since_checkpoint > 0
            && self.last_checkpoint.elapsed()
                >= Duration::from_secs(self.config.checkpoint_interval_seconds);
        if (due_bytes || due_time) && !backing_off {
            self.checkpoint();
        }
    }

    /// Writes a checkpoint of the state at the current log position, then lets the log drop
    /// what no kept checkpoint needs.
    fn checkpoint(&mut self) {
        if self.bytes_since_checkpoint == 0 {
            return;
        }
        let compacted = self.state.write().compact();
        self.counters
            .compacted_series
            .fetch_add(compacted.series_dropped as u64, Ordering::Relaxed);
        self.counters
            .compacted_values
            .fetch_add(compacted.values_dropped as u64, Ordering::Relaxed);
        let bytes = {
            let state = self.state.read();
            snapshot::encode(&state, &self.dedupe)
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                self.checkpoint_failed_at = Some(Instant::now());
                self.counters
                    .failed_checkpoints
                    .fetch_add(1, Ordering::Relaxed);
                return tracing::error!(error = %e, "checkpoint encoding failed");
            }
        };
        if let Err(e) = self.checkpoints.save(self.position, &bytes) {
            self.checkpoint_failed_at = Some(Instant::now());
            self.counters
                .failed_checkpoints
                .fetch_add(1, Ordering::Relaxed);
            return tracing::warn!(error = %e, disk_full = e.is_disk_full(), "checkpoint failed; the log is kept and recovery replays it");
        }
        self.checkpoint_failed_at = None;
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.bytes_since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        if let Err(e) = self.log.truncate_before(self.checkpoints.retain_from()) {
            tracing::warn!(error = %e, "could not drop log segments covered by checkpoints");
        }
        tracing::info!(bytes = bytes.len(), position = ?self.position, "checkpoint written");
    }
}
