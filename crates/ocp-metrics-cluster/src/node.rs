//! A cluster node as the server's [`Backend`]: ingest publishes to the shared event stream,
//! and every node applies the whole stream, in order, to its own [`Replica`], so that every
//! node answers every query alike.
//!
//! The parts, one task each:
//! - **apply** ([`apply`]): reads the stream with an ordered consumer from the replica's
//!   sequence + 1 and applies it; publishes the applied sequence, and the verdict of every
//!   message that was not simply accepted, for ingest to answer from.
//! - **ingest** ([`ingest`]): answers duplicates the replica already knows, publishes the rest
//!   (one message per event), awaits every acknowledgement, then waits until the replica has
//!   applied them and answers from the verdicts: durable before answered, read-your-writes on
//!   this node, and counts that agree with what every node applied.
//! - **freshness** ([`freshness`]): twice a second asks the stream for its last sequence and
//!   notes when the replica had applied it; a node that has not confirmed this for a few
//!   seconds marks its answers stale and reports not ready.
//! - **snapshots** ([`snapshots`]): now and then stores the replica in the snapshot bucket, so
//!   that a node (even one with an empty data dir) starts from it instead of replaying the
//!   stream, and purges the stream below the older kept snapshot.

pub mod apply;
pub mod blocks;
pub mod freshness;
pub mod ingest;
pub mod replica;
pub mod snapshots;
pub mod warehouse;

use crate::stream::StreamSettings;
use crate::{ClusterError, EventStream, NatsOptions, SnapshotStore};
use freshness::Freshness;
use ocp_metrics_core::rollup::StateLimits;
use ocp_metrics_core::{Answer, Clock, Family, Query};
use ocp_metrics_service::{
    Backend, BoxFuture, Ingest, IngestError, IngestOutcome, OpenBackend, Queries, QueryFailure,
    Sample,
};
use parking_lot::{Mutex, RwLock};
pub use replica::{Replica, Verdict};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub nats: NatsOptions,
    /// The stream's and the buckets' replicas.
    pub replicas: usize,
    /// Bounds on one group's state, decided in stream order (see [`Replica::apply`]).
    pub limits: StateLimits,
    /// How often a node considers storing a snapshot, in seconds.
    pub snapshot_interval_seconds: u64,
    /// The fewest messages a purge leaves before the stream's end (see
    /// [`snapshots::PURGE_KEEP_MESSAGES_MIN`], the default).
    pub stream_keep_messages_min: u64,
    /// Where the batch history lives, when not in memory (see [`warehouse`]). Every node of a
    /// cluster must agree: a cluster started with one keeps it.
    pub warehouse: Option<Arc<dyn ocp_metrics_warehouse::Warehouse>>,
}

/// Default of [`NodeConfig::snapshot_interval_seconds`]: a node that starts replays at most
/// this long a stretch of the stream after the newest snapshot (about a million events at a
/// few thousand events a second, a few seconds of apply).
pub const SNAPSHOT_INTERVAL_SECONDS_DEFAULT: u64 = 300;
/// Verdicts of messages that were not accepted, kept for ingest to answer from; the oldest are
/// dropped past this many. Ingest reads a verdict within moments of its message being applied,
/// so only a flood of refused events could push one out before it is read (ingest then answers
/// 503: a retry is answered from the dedupe set).
pub const VERDICTS_KEPT_MAX: usize = 100_000;
/// Between retries of a start-up step while NATS is unreachable, in milliseconds.
const START_RETRY_MS: u64 = 1_000;

/// Opens a node when the server asks for it: connects, loads the newest good snapshot, applies
/// the stream up to its end as of now, and only then hands the server its backend (so
/// `/readyz` answers 503 until the node's answers are complete up to the moment it started).
pub fn open_node(config: NodeConfig, clock: Arc<dyn Clock>) -> OpenBackend {
    Box::new(move || {
        Box::pin(async move {
            let node = Node::start(config, clock)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(node) as Arc<dyn Backend>)
        })
    })
}

/// A running node; see the module docs.
#[derive(Debug)]
pub struct Node {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the node's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub replica: RwLock<Replica>,
    /// The last sequence applied to `replica`.
    pub applied: watch::Sender<u64>,
    /// Bumped after every applied batch, for live updates.
    pub changes: watch::Sender<u64>,
    /// Verdicts of applied messages that were not simply accepted.
    pub verdicts: Mutex<Verdicts>,
    pub stream: EventStream,
    pub snapshots: SnapshotStore,
    pub client: async_nats::Client,
    pub clock: Arc<dyn Clock>,
    pub limits: StateLimits,
    pub freshness: Freshness,
    pub counters: NodeCounters,
    /// Set when the node stopped applying (a message this build cannot read, a stream purged
    /// past every snapshot): the node then reports not ready, and says why.
    pub halted: watch::Sender<Option<String>>,
    /// A snapshot the snapshot task asked for; the apply task encodes it between batches (see
    /// [`snapshots`]).
    pub snapshot_request: Mutex<Option<snapshots::Request>>,
    /// The batch warehouse, when the batch history lives there.
    pub warehouse: Option<Arc<warehouse::WarehouseLink>>,
}

/// Counters the node keeps about itself, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct NodeCounters {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub publish_failures: AtomicU64,
    pub applied_messages: AtomicU64,
    pub snapshots_written: AtomicU64,
    pub snapshots_failed: AtomicU64,
    /// Times this node replaced its replica with the newest snapshot because the stream had
    /// been purged past its position.
    pub snapshot_reloads: AtomicU64,
    /// The stream's last sequence as last seen by the freshness task.
    pub stream_last_sequence: AtomicU64,
    /// The stream's first sequence (purges move it up) as last seen by the freshness task.
    pub stream_first_sequence: AtomicU64,
    /// Sequence the node started from (its snapshot's) and how long the catch-up took.
    pub started_from_sequence: AtomicU64,
    pub catch_up_ms: AtomicU64,
}

impl Node {
    /// Connects and catches up; see [`open_node`].
    pub async fn start(config: NodeConfig, clock: Arc<dyn Clock>) -> Result<Node, ClusterError> {
        let started = std::time::Instant::now();
        let client = config.nats.connect().await?;
        let settings = StreamSettings {
            replicas: config.replicas,
        };
        let stream = retrying("open the event stream", || {
            EventStream::open(client.clone(), &settings)
        })
        .await?;
        let snapshots = retrying("open the snapshot bucket", || {
            SnapshotStore::open(client.clone(), config.replicas)
        })
        .await?;
        // Taken before the stream's end is read: the node is current as of this moment once it
        // has applied that end, not as of when it finished.
        let checked_at = (std::time::Instant::now(), clock.now());
        let (mut replica, target) = start_point(&stream, &snapshots).await?;
        let warehouse = match config.warehouse {
            Some(w) => {
                let link = retrying("open the warehouse bucket", || {
                    warehouse::WarehouseLink::open(client.clone(), config.replicas, w.clone())
                })
                .await?;
                let watermark =
                    retrying("read the warehouse watermark", || link.watermark()).await?;
                tracing::info!(watermark, "cluster node: batch history in the warehouse");
                Some((Arc::new(link), watermark))
            }
            None => None,
        };
        set_batch_mode(&mut replica, warehouse.as_ref().map(|(_, w)| *w))?;
        let warehouse = warehouse.map(|(link, _)| link);
        let from = replica.applied_sequence;
        tracing::info!(
            snapshot_sequence = from,
            stream_last_sequence = target,
            "cluster node: catching up from the snapshot"
        );
        let reader = retrying("start reading the stream", || stream.read_from(from + 1)).await?;
        let shared = Arc::new(Shared {
            applied: watch::Sender::new(from),
            changes: watch::Sender::new(0),
            replica: RwLock::new(replica),
            verdicts: Mutex::new(Verdicts::starting_at(from)),
            stream,
            snapshots,
            client,
            freshness: Freshness::new(checked_at.1),
            clock,
            limits: config.limits,
            counters: NodeCounters::default(),
            halted: watch::Sender::new(None),
            snapshot_request: Mutex::new(None),
            warehouse,
        });
        let c = &shared.counters;
        c.started_from_sequence.store(from, Ordering::Relaxed);
        // Known before the freshness task runs, so that a consumer that stalls during the
        // catch-up is replaced too.
        c.stream_last_sequence.store(target, Ordering::Relaxed);
        let mut tasks = vec![tokio::spawn(apply::run(shared.clone(), reader))];
        if let Some(link) = &shared.warehouse {
            // Before the catch-up: it forgets the blocks already written as they close.
            tasks.push(tokio::spawn(warehouse::run(shared.clone(), link.clone())));
        }
        let mut applied = shared.applied.subscribe();
        let mut halted = shared.halted.subscribe();
        tokio::select! {
            caught_up = applied.wait_for(|a| *a >= target) => {
                caught_up.map_err(|_| ClusterError::Unavailable("the apply task stopped".into()))?;
            }
            why = halted.wait_for(Option::is_some) => {
                let why = why.ok().and_then(|w| w.clone()).unwrap_or_default();
                return Err(ClusterError::Unavailable(why));
            }
        }
        let catch_up_ms = started.elapsed().as_millis() as u64;
        c.catch_up_ms.store(catch_up_ms, Ordering::Relaxed);
        shared.freshness.confirm(checked_at.0, checked_at.1);
        tracing::info!(
            applied = target - from,
            catch_up_ms,
            "cluster node: caught up with the stream; ready"
        );
        tasks.push(tokio::spawn(freshness::run(shared.clone())));
        tasks.push(tokio::spawn(snapshots::run(
            shared.clone(),
            Duration::from_secs(config.snapshot_interval_seconds.max(1)),
            config.stream_keep_messages_min,
        )));
        Ok(Node {
            shared,
            tasks: Mutex::new(tasks),
        })
    }
}

/// Attempts at finding a snapshot that the stream continues, at start: the newest snapshot may
/// be replaced (and the stream purged behind it) while a large one is being read.
const START_POINT_ATTEMPTS_MAX: u32 = 3;

/// The replica to start from (the newest good snapshot, or empty) and the stream's last
/// sequence, checked to continue each other: the stream must still hold everything after the
/// snapshot.
async fn start_point(
    stream: &EventStream,
    snapshots: &SnapshotStore,
) -> Result<(Replica, u64), ClusterError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let replica = match retrying("read the newest snapshot", || snapshots.latest()).await? {
            Some(s) => decode_snapshot(&s)?,
            None => Replica::default(),
        };
        let from = replica.applied_sequence;
        let (first, last) = retrying("read the stream's bounds", || stream.bounds()).await?;
        if first <= from + 1 {
            return Ok((replica, last));
        }
        if attempt >= START_POINT_ATTEMPTS_MAX {
            return Err(ClusterError::Mismatch(format!(
                "the event stream starts at sequence {first}, but the newest readable snapshot covers only up to {from}: events {}..{} are gone; restore a snapshot from backup, or if this is a new cluster on an old stream, delete the stream `{}`",
                from + 1,
                first - 1,
                crate::stream::STREAM_NAME
            )));
        }
        tracing::info!(
            first,
            from,
            "cluster node: the stream was purged past the snapshot just read; reading the newest again"
        );
    }
}

/// Puts a replica in the batch mode the node runs in: `Some(watermark)` when the batch history
/// lives in a warehouse. A replica that already holds state in the other mode is refused: its
/// batch history is where the other mode put it.
fn set_batch_mode(replica: &mut Replica, warehouse: Option<u64>) -> Result<(), ClusterError> {
    let fresh = replica.applied_sequence == 0;
    match (warehouse, &mut replica.batch) {
        (Some(w), Some(blocks)) => blocks.written_through(w),
        (Some(w), None) if fresh => {
            let mut blocks = blocks::BatchBlocks::default();
            blocks.written_through(w);
            replica.batch = Some(blocks);
        }
        (None, None) => {}
        (None, Some(_)) if fresh => replica.batch = None,
        (Some(_), None) => {
            return Err(ClusterError::Mismatch(format!(
                "this cluster keeps its batch history in memory (its snapshot at sequence {} says so), so it cannot move it to ClickHouse by a restart; run the nodes without --clickhouse-url, or start a new cluster (a new stream) with it",
                replica.applied_sequence
            )));
        }
        (None, Some(_)) => {
            return Err(ClusterError::Mismatch(format!(
                "this cluster keeps its batch history in ClickHouse (its snapshot at sequence {} says so); start the node with the same --clickhouse-url and --clickhouse-database as the others",
                replica.applied_sequence
            )));
        }
    }
    Ok(())
}

/// A stored snapshot as a replica.
pub(crate) fn decode_snapshot(s: &crate::Snapshot) -> Result<Replica, ClusterError> {
    Replica::decode(&s.payload).map_err(|e| ClusterError::Snapshot {
        covers_sequence: s.covers_sequence,
        reason: e.to_string(),
    })
}

/// Verdicts of applied messages that were not simply accepted, by sequence, for ingest to
/// answer from; bounded by [`VERDICTS_KEPT_MAX`].
#[derive(Debug)]
pub(crate) struct Verdicts {
    by_sequence: BTreeMap<u64, Verdict>,
    /// Verdicts at or below this sequence are unknown: dropped by the bound, or before the
    /// replica this node started from.
    unknown_through: u64,
}

impl Verdicts {
    pub(crate) fn starting_at(sequence: u64) -> Verdicts {
        Verdicts {
            by_sequence: BTreeMap::new(),
            unknown_through: sequence,
        }
    }

    pub(crate) fn record(&mut self, refused: impl IntoIterator<Item = (u64, Verdict)>) {
        self.by_sequence.extend(refused);
        while self.by_sequence.len() > VERDICTS_KEPT_MAX {
            if let Some((dropped, _)) = self.by_sequence.pop_first() {
                self.unknown_through = self.unknown_through.max(dropped);
            }
        }
    }

    /// The verdict of message `sequence`; `None` when it is no longer known.
    pub(crate) fn get(&self, sequence: u64) -> Option<Verdict> {
        match self.by_sequence.get(&sequence) {
            Some(v) => Some(v.clone()),
            None if sequence <= self.unknown_through => None,
            None => Some(Verdict::Accepted),
        }
    }
}

/// Runs a start-up step until it succeeds, retrying while NATS is unavailable (a node may start
/// before its servers); any other error is final. Each step is logged as it begins, so that a
/// node that never gets ready shows in its log the step it is stuck in.
pub async fn retrying<T, F, Fut>(what: &str, mut step: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    tracing::info!("cluster node: starting to {what}");
    let mut attempts = 0u32;
    loop {
        match step().await {
            Err(ClusterError::Unavailable(why)) => {
                attempts += 1;
                if attempts == 1 || attempts.is_multiple_of(30) {
                    tracing::warn!(attempts, error = %why, "cluster node: cannot {what} yet; retrying");
                }
                tokio::time::sleep(Duration::from_millis(START_RETRY_MS)).await;
            }
            other => return other,
        }
    }
}

impl Ingest for Node {
    fn ingest(
        &self,
        events: Vec<ocp_metrics_core::Event>,
    ) -> BoxFuture<'_, Result<IngestOutcome, IngestError>> {
        Box::pin(ingest::ingest(&self.shared, events))
    }
}

impl Queries for Node {
    fn now(&self) -> jiff::Timestamp {
        self.shared.clock.now()
    }

    fn query(&self, q: &Query) -> Result<Answer, QueryFailure> {
        match &self.shared.warehouse {
            Some(link) if !q.endpoint.family().is_realtime() => {
                warehouse::query(&self.shared, link, q)
            }
            _ => {
                let now = self.shared.clock.now();
                Ok(self.shared.replica.read().rollups.query(q, now)?)
            }
        }
    }

    fn dimension_values(&self, group: &str, family: Family, dim: usize) -> Vec<String> {
        let replica = self.shared.replica.read();
        replica.rollups.dimension_values(group, family, dim)
    }

    fn groups(&self) -> Vec<String> {
        self.shared.replica.read().rollups.group_names()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    fn stale_since(&self) -> Option<jiff::Timestamp> {
        self.shared.freshness.stale_since()
    }
}

impl Backend for Node {
    fn samples(&self) -> Vec<Sample> {
        samples(&self.shared)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for task in self.tasks.lock().drain(..) {
                task.abort();
            }
            // Whatever the client still buffers (nothing acknowledged depends on it).
            let _ = self.shared.client.flush().await;
        })
    }

    fn not_ready(&self) -> Option<String> {
        if let Some(why) = self.shared.halted.borrow().clone() {
            return Some(why);
        }
        self.shared.freshness.not_ready()
    }
}

fn samples(s: &Shared) -> Vec<Sample> {
    let c = &s.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let applied = *s.applied.borrow();
    let end = load(&c.stream_last_sequence).max(applied);
    let (stats, dedupe) = {
        let replica = s.replica.read();
        (replica.rollups.stats(), replica.dedupe.len())
    };
    let mut out = vec![
        Sample::counter(
            "ingest_events_accepted_total",
            "Events this node accepted (published, acknowledged and applied as new).",
            load(&c.accepted),
        ),
        Sample::counter(
            "ingest_events_duplicate_total",
            "Events this node answered as duplicates.",
            load(&c.duplicates),
        ),
        Sample::counter(
            "ingest_events_limit_rejected_total",
            "Events this node answered as refused by a state bound (decided in stream order).",
            load(&c.rejected),
        ),
        Sample::counter(
            "cluster_publish_failures_total",
            "Ingest requests answered 503 because a publish was not acknowledged.",
            load(&c.publish_failures),
        ),
        Sample::counter(
            "cluster_applied_messages_total",
            "Stream messages this node applied since it started.",
            load(&c.applied_messages),
        ),
        Sample::gauge(
            "cluster_applied_sequence",
            "The last stream sequence applied to this node's rollups.",
            applied as f64,
        ),
        Sample::gauge(
            "cluster_stream_first_sequence",
            "The stream's first sequence (everything below was purged behind snapshots), as of this node's last check.",
            load(&c.stream_first_sequence) as f64,
        ),
        Sample::gauge(
            "cluster_stream_last_sequence",
            "The stream's last sequence, as of this node's last check.",
            end as f64,
        ),
        Sample::gauge(
            "cluster_consumer_lag",
            "Stream messages published but not yet applied by this node, as of the last check.",
            (end - applied) as f64,
        ),
        Sample::gauge(
            "cluster_seconds_since_current",
            "Seconds since this node last confirmed it had applied the whole stream.",
            s.freshness.seconds_since_current(),
        ),
        Sample::counter(
            "cluster_snapshots_written_total",
            "Snapshots this node stored in the snapshot bucket.",
            load(&c.snapshots_written),
        ),
        Sample::counter(
            "cluster_snapshots_failed_total",
            "Snapshots this node could not store.",
            load(&c.snapshots_failed),
        ),
        Sample::counter(
            "cluster_snapshot_reloads_total",
            "Times this node took the newest snapshot because the stream had been purged past its position.",
            load(&c.snapshot_reloads),
        ),
        Sample::gauge(
            "cluster_start_sequence",
            "The snapshot sequence this node started from.",
            load(&c.started_from_sequence) as f64,
        ),
        Sample::gauge(
            "cluster_catch_up_seconds",
            "How long this node took from start to having applied the stream's end as of its start.",
            load(&c.catch_up_ms) as f64 / 1000.0,
        ),
        Sample::gauge(
            "dedupe_entries",
            "Event ids remembered for deduplication.",
            dedupe as f64,
        ),
    ];
    out.extend(ocp_metrics_service::rollup_samples(&stats));
    if let Some(link) = &s.warehouse {
        out.extend(warehouse_samples(s, link));
    }
    out
}

fn warehouse_samples(s: &Shared, link: &warehouse::WarehouseLink) -> Vec<Sample> {
    let c = &link.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (pending_events, written, held_cells) = {
        let replica = s.replica.read();
        replica.batch.as_ref().map_or((0, 0, 0), |b| {
            (
                b.pending_events(),
                b.written(),
                b.held()
                    .map(|x| x.cells().batch_cell_count())
                    .sum::<usize>(),
            )
        })
    };
    vec![
        Sample::counter(
            "warehouse_blocks_written_total",
            "Batch blocks this node wrote to the warehouse (as the writer).",
            load(&c.blocks_written),
        ),
        Sample::counter(
            "warehouse_write_failures_total",
            "Batch block writes that failed and were retried.",
            load(&c.write_failures),
        ),
        Sample::counter(
            "warehouse_read_failures_total",
            "Batch queries answered 503 because the warehouse could not be read.",
            load(&c.read_failures),
        ),
        Sample::counter(
            "warehouse_partitions_dropped_total",
            "Warehouse partitions dropped by retention (by this node, as the writer).",
            load(&c.partitions_dropped),
        ),
        Sample::gauge(
            "warehouse_writer",
            "1 while this node holds the warehouse writer's lease.",
            load(&c.writer) as f64,
        ),
        Sample::gauge(
            "warehouse_watermark",
            "The last block known written to the warehouse, as a stream sequence.",
            written.max(load(&c.watermark)) as f64,
        ),
        Sample::gauge(
            "warehouse_pending_events",
            "Events whose batch counters wait in closed blocks not yet written.",
            pending_events as f64,
        ),
        Sample::gauge(
            "warehouse_held_cells",
            "Batch cells held in memory (open and pending blocks).",
            held_cells as f64,
        ),
    ]
}
