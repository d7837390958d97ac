//! The embedded engine as the server's [`Backend`]: a file log and in-memory rollups in this
//! process. The binary chooses it (the default) by handing the server [`open_embedded`].

use crate::engine::{Engine, EngineConfig};
use ocp_metrics_core::{Answer, Clock, Event, Family, Query};
use ocp_metrics_service::{
    Backend, BoxFuture, Ingest, IngestError, IngestOutcome, OpenBackend, Queries, QueryFailure,
    Sample,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Opens (recovers) the engine in `dir` on a blocking thread when the server asks for it, and
/// logs what recovery found.
pub fn open_embedded(dir: PathBuf, config: EngineConfig, clock: Arc<dyn Clock>) -> OpenBackend {
    Box::new(move || {
        Box::pin(async move {
            let opened = tokio::task::spawn_blocking(move || Engine::open(&dir, config, clock))
                .await
                .map_err(|e| format!("the recovery task failed: {e}"))?;
            let engine = opened.map_err(|e| e.to_string())?;
            log_recovery(&engine);
            Ok(Arc::new(engine) as Arc<dyn Backend>)
        })
    })
}

/// Says what recovery did, and warns when it dropped damaged data.
fn log_recovery(engine: &Engine) {
    let r = engine.recovery();
    tracing::info!(
        checkpoint = ?r.checkpoint_position,
        replayed_events = r.replayed_events,
        elapsed_ms = r.elapsed_ms,
        "store recovered; ready"
    );
    let dropped = !r.log.is_clean()
        || r.undecodable_batches > 0
        || r.checkpoints_skipped_corrupt > 0
        || r.replay_duplicates_skipped > 0;
    if dropped {
        tracing::warn!(
            torn_tail_bytes = r.log.torn_tail_bytes,
            corrupt_records_skipped = r.log.corrupt_records_skipped,
            corrupt_bytes_skipped = r.log.corrupt_bytes_skipped,
            undecodable_batches = r.undecodable_batches,
            checkpoints_skipped_corrupt = r.checkpoints_skipped_corrupt,
            rebuilt_from_log = r.rebuilt_from_log,
            replay_duplicates_skipped = r.replay_duplicates_skipped,
            "recovery dropped damaged data (see /metrics, ocp_metrics_recovery_*): a torn tail is an unacknowledged append cut short by a crash; corrupt records are damage to acknowledged data"
        );
    }
}

impl Ingest for Engine {
    fn ingest(&self, events: Vec<Event>) -> BoxFuture<'_, Result<IngestOutcome, IngestError>> {
        Box::pin(Engine::ingest(self, events))
    }
}

impl Queries for Engine {
    fn now(&self) -> jiff::Timestamp {
        Engine::now(self)
    }

    fn query(&self, q: &Query) -> Result<Answer, QueryFailure> {
        Ok(Engine::query(self, q)?)
    }

    fn dimension_values(&self, group: &str, family: Family, dim: usize) -> Vec<String> {
        Engine::dimension_values(self, group, family, dim)
    }

    fn groups(&self) -> Vec<String> {
        Engine::groups(self)
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commit_generation()
    }
}

impl Backend for Engine {
    fn samples(&self) -> Vec<Sample> {
        let mut out = counter_samples(self);
        out.extend(ocp_metrics_service::rollup_samples(&self.stats()));
        out.extend(recovery_samples(self));
        out
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(Engine::shutdown(self))
    }
}

fn counter_samples(engine: &Engine) -> Vec<Sample> {
    let c = engine.counters();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    vec![
        Sample::counter(
            "ingest_events_accepted_total",
            "Events accepted (durable and applied).",
            load(&c.accepted_events),
        ),
        Sample::counter(
            "ingest_events_duplicate_total",
            "Events answered as duplicates of an event accepted within the dedupe horizon.",
            load(&c.duplicate_events),
        ),
        Sample::counter(
            "ingest_events_limit_rejected_total",
            "Events refused by a state bound (distinct dimension values, series or real-time sessions per group).",
            load(&c.limit_rejected_events),
        ),
        Sample::counter(
            "commits_total",
            "Group commits written to the event log (one fsync each).",
            load(&c.commits),
        ),
        Sample::counter(
            "commits_failed_total",
            "Group commits whose log append failed (disk full, I/O error); nothing of them was accepted.",
            load(&c.failed_commits),
        ),
        Sample::counter(
            "checkpoints_total",
            "Checkpoints written.",
            load(&c.checkpoints),
        ),
        Sample::counter(
            "checkpoints_failed_total",
            "Checkpoints that could not be written (the log is kept instead).",
            load(&c.failed_checkpoints),
        ),
        Sample::counter(
            "compacted_series_total",
            "Empty series dropped by compaction at checkpoints.",
            load(&c.compacted_series),
        ),
        Sample::counter(
            "compacted_values_total",
            "Unused dimension values dropped by compaction at checkpoints.",
            load(&c.compacted_values),
        ),
        Sample::gauge(
            "dedupe_entries",
            "Event ids remembered for deduplication.",
            load(&c.dedupe_entries) as f64,
        ),
    ]
}

fn recovery_samples(engine: &Engine) -> Vec<Sample> {
    let r = engine.recovery();
    vec![
        Sample::gauge(
            "recovery_seconds",
            "How long the last recovery took.",
            r.elapsed_ms as f64 / 1000.0,
        ),
        Sample::gauge(
            "recovery_replayed_events",
            "Events replayed from the log after the checkpoint at the last recovery.",
            r.replayed_events as f64,
        ),
        Sample::gauge(
            "recovery_torn_tail_bytes",
            "Bytes cut from the end of the log at the last recovery: an append cut short by a crash (never acknowledged).",
            r.log.torn_tail_bytes as f64,
        ),
        Sample::gauge(
            "recovery_corrupt_records_skipped",
            "Corrupt spans of the log skipped at the last recovery: damage to acknowledged data.",
            r.log.corrupt_records_skipped as f64,
        ),
        Sample::gauge(
            "recovery_corrupt_bytes_skipped",
            "Bytes in the corrupt spans skipped at the last recovery.",
            r.log.corrupt_bytes_skipped as f64,
        ),
        Sample::gauge(
            "recovery_undecodable_batches",
            "Log records that passed their checksum but could not be decoded, skipped at the last recovery.",
            r.undecodable_batches as f64,
        ),
        Sample::gauge(
            "recovery_checkpoints_skipped_corrupt",
            "Corrupt checkpoint files skipped for an older one (or for the whole log) at the last recovery.",
            f64::from(r.checkpoints_skipped_corrupt),
        ),
        Sample::gauge(
            "recovery_rebuilt_from_log",
            "1 when every checkpoint was corrupt and the state was rebuilt from the whole log.",
            f64::from(u8::from(r.rebuilt_from_log)),
        ),
        Sample::gauge(
            "recovery_replay_duplicates_skipped",
            "Logged events skipped at the last recovery because their id was already seen (a failed append that reached the disk and was retried).",
            r.replay_duplicates_skipped as f64,
        ),
    ]
}
