//! The single writer: group commits (admission, dedupe, one append and fsync, apply, answer),
//! chunked requests, retention, checkpoints, and the helper threads that wake and unburden it.

use super::record::{LogBatch, too_large};
use super::*;

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
pub(super) fn spawn_ticker(weak: mpsc::WeakSender<Job>) {
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

pub(super) struct Writer {
    pub(super) log: Box<dyn EventLog>,
    pub(super) checkpoints: Box<dyn CheckpointStore>,
    pub(super) dedupe: Dedupe,
    pub(super) state: Arc<RwLock<Rollups>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) counters: Arc<EngineCounters>,
    pub(super) bytes_since_checkpoint: u64,
    pub(super) last_checkpoint: Instant,
    /// When the last checkpoint attempt failed, if it did; retries wait.
    pub(super) checkpoint_failed_at: Option<Instant>,
    pub(super) last_maintenance: Instant,
    /// Log bytes appended since the last maintenance: whether ingest is quiet.
    pub(super) bytes_since_maintenance: u64,
    /// Since when ingest has been quiet, if it is.
    pub(super) quiet_since: Option<Instant>,
    pub(super) config: EngineConfig,
    pub(super) position: LogPosition,
    /// Where applied events go to be freed off the writer thread.
    pub(super) dropper: std::sync::mpsc::SyncSender<Vec<Vec<Event>>>,
}

/// Commits whose events may wait to be freed.
const DROP_QUEUE_COMMITS_MAX: usize = 16;

/// A thread that frees what it is sent; it ends when the writer drops its sender.
pub(super) fn spawn_dropper() -> std::sync::mpsc::SyncSender<Vec<Vec<Event>>> {
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
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Job>) {
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
            let appended = records.iter().map(|r| r.len() as u64).sum::<u64>();
            self.bytes_since_checkpoint += appended;
            self.bytes_since_maintenance += appended;
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
    /// bytes, else by time or by a quiet spell).
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
        let since_last = self.last_maintenance.elapsed();
        self.last_maintenance = Instant::now();
        let quiet = self.quiet_for(since_last);
        let now = self.clock.now();
        self.dedupe.expire(now.as_millisecond());
        self.counters
            .dedupe_entries
            .store(self.dedupe.len() as u64, Ordering::Relaxed);
        self.state.write().evict(Horizons::at(now));
        let due_time = self.bytes_since_checkpoint > 0
            && self.last_checkpoint.elapsed()
                >= Duration::from_secs(self.config.checkpoint_interval_seconds);
        let due_quiet = quiet >= Duration::from_secs(CHECKPOINT_QUIET_SECONDS_MIN)
            && self.bytes_since_checkpoint >= self.config.checkpoint_quiet_log_bytes;
        if (due_bytes || due_time || due_quiet) && !backing_off {
            self.checkpoint();
        }
    }

    /// How long ingest has been quiet, given the time since the last maintenance: quiet means
    /// under [`CHECKPOINT_QUIET_LOG_BYTES_PER_SECOND_MAX`] over that time.
    fn quiet_for(&mut self, since_last: Duration) -> Duration {
        let appended = std::mem::take(&mut self.bytes_since_maintenance);
        let allowed = CHECKPOINT_QUIET_LOG_BYTES_PER_SECOND_MAX as f64 * since_last.as_secs_f64();
        if appended as f64 > allowed {
            self.quiet_since = None;
            return Duration::ZERO;
        }
        let now = Instant::now();
        let since = *self
            .quiet_since
            .get_or_insert_with(|| now.checked_sub(since_last).unwrap_or(now));
        now - since
    }

    /// Writes a checkpoint of the state at the current log position, then lets the log drop
    /// what no kept checkpoint needs.
    fn checkpoint(&mut self) {
        if self.bytes_since_checkpoint == 0 {
            return;
        }
        let started = Instant::now();
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
        let encoded_ms = started.elapsed().as_millis() as u64;
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
        tracing::info!(
            bytes = bytes.len(),
            position = ?self.position,
            encoded_ms,
            written_ms = started.elapsed().as_millis() as u64 - encoded_ms,
            "checkpoint written"
        );
    }
}
