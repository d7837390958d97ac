//! A node whose batch history lives in a warehouse (ClickHouse): the writer task, the
//! watermark, and batch queries answered from the warehouse plus the blocks held in memory.
//!
//! **Write path.** Every node cuts the same blocks (see [`super::blocks`]). One node, the
//! holder of a lease in the `OCPM_WAREHOUSE` bucket, writes the pending blocks in order, and
//! after each one raises the bucket's watermark to the block's name (compare-and-set, never
//! down). Every node polls the watermark and forgets the blocks at or below it.
//!
//! **Why exactly once.**
//! - *Nothing lost*: a block leaves a node's memory only when the watermark passed it, and the
//!   watermark passes a block only after a write of it returned `Ok` (durable). Until then the
//!   block is in every node's memory and in their snapshots, so a writer that dies before or
//!   during a write leaves the block to the next writer, which writes it again.
//! - *Nothing counted twice*: writes are idempotent (the warehouse keeps one copy of each
//!   block's cells, however often and by however many nodes it is written), and a query reads
//!   the warehouse only up to the node's own `written` mark while adding only its blocks after
//!   it, both taken under one lock.
//! - The lease only saves work: two writers at once (a paused holder that wakes up after its
//!   lease was taken) write identical blocks, which the warehouse collapses, and the watermark
//!   only moves up.
//!
//! **Faults.** While the warehouse is unreachable, blocks pile up in memory (ingest answers
//! 503 once [`PENDING_EVENTS_MAX`] events wait) and batch queries answer 503 with
//! `Retry-After`; nothing acknowledged is lost, and the writer catches up when it returns.

use super::Shared;
use crate::ClusterError;
use async_nats::jetstream::kv;
use bytes::Bytes;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ocp_metrics_core::metrics::COLUMNS_MAX;
use ocp_metrics_core::time::{BucketPlan, Granularity};
use ocp_metrics_core::{Answer, Query, Rollups};
use ocp_metrics_service::QueryFailure;
use ocp_metrics_warehouse::{BlockCell, Fold, ReadRequest, Warehouse};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bucket holding the writer's lease and the watermark.
pub const WAREHOUSE_BUCKET: &str = "OCPM_WAREHOUSE";
/// Ingest answers 503 while this many events wait in blocks not yet written: a warehouse outage
/// holds the batch counters in memory, and this bounds that memory.
pub const PENDING_EVENTS_MAX: u64 = 2_000_000;
/// How often the writer task runs: polls the watermark, renews the lease, writes.
const TICK_MS: u64 = 200;
/// The lease holder renews this often...
const LEASE_RENEW_MS: u64 = 2_000;
/// ...and another node takes the lease over when it saw no renewal for this long.
const LEASE_EXPIRY_MS: u64 = 10_000;
/// Blocks written per tick at most, so the watermark and lease stay current while catching up.
const BLOCKS_PER_TICK_MAX: usize = 16;
/// How often the lease holder runs the warehouse's housekeeping (retention, merges of cold
/// split partitions).
const MAINTAIN_EVERY_MS: u64 = 10_000;
/// What a batch query's 503 asks the client to wait.
const READ_RETRY_AFTER_SECONDS: u64 = 5;
const WATERMARK_KEY: &str = "written";
/// The bucket's values are a node id or a sequence number.
const BUCKET_VALUE_BYTES_MAX: i32 = 1024;
const LEASE_KEY: &str = "writer";

/// The warehouse and its bucket, shared by the node's tasks.
#[derive(Debug)]
pub(crate) struct WarehouseLink {
    pub warehouse: Arc<dyn Warehouse>,
    pub bucket: kv::Store,
    /// This node's name in the lease.
    pub node_id: String,
    /// For batch queries, which run on blocking threads.
    pub runtime: tokio::runtime::Handle,
    pub counters: WarehouseCounters,
}

#[derive(Debug, Default)]
pub(crate) struct WarehouseCounters {
    pub blocks_written: AtomicU64,
    pub write_failures: AtomicU64,
    pub read_failures: AtomicU64,
    pub partitions_dropped: AtomicU64,
    /// 1 while this node holds the writer's lease.
    pub writer: AtomicU64,
    pub watermark: AtomicU64,
}

impl WarehouseLink {
    /// Opens (or creates) the bucket. The warehouse itself is prepared by the writer task, so a
    /// node starts and answers real-time queries while ClickHouse is still away.
    pub async fn open(
        client: async_nats::Client,
        replicas: usize,
        warehouse: Arc<dyn Warehouse>,
    ) -> Result<WarehouseLink, ClusterError> {
        let js = crate::jetstream_context(client);
        let bucket = crate::kv::open_bucket(
            &js,
            WAREHOUSE_BUCKET,
            "ocp-metrics batch warehouse: the writer's lease and the watermark",
            BUCKET_VALUE_BYTES_MAX,
            replicas,
        )
        .await?;
        Ok(WarehouseLink {
            warehouse,
            bucket,
            node_id: format!("{:016x}", rand_id()),
            runtime: tokio::runtime::Handle::current(),
            counters: WarehouseCounters::default(),
        })
    }

    /// The watermark as stored (0 when none yet).
    pub async fn watermark(&self) -> Result<u64, ClusterError> {
        Ok(self.watermark_entry().await?.map_or(0, |(w, _)| w))
    }

    async fn watermark_entry(&self) -> Result<Option<(u64, u64)>, ClusterError> {
        let entry = self
            .bucket
            .entry(WATERMARK_KEY)
            .await
            .map_err(|e| ClusterError::Unavailable(format!("read the watermark: {e}")))?;
        Ok(entry.and_then(|e| {
            let text = std::str::from_utf8(&e.value).ok()?;
            Some((text.parse().ok()?, e.revision))
        }))
    }

    /// Raises the watermark to `name` unless it is already there (compare-and-set).
    async fn raise_watermark(&self, name: u64) -> Result<(), ClusterError> {
        loop {
            let value = Bytes::from(name.to_string());
            let done = match self.watermark_entry().await? {
                Some((w, _)) if w >= name => return Ok(()),
                Some((_, revision)) => self
                    .bucket
                    .update(WATERMARK_KEY, value, revision)
                    .await
                    .is_ok(),
                None => self.bucket.create(WATERMARK_KEY, value).await.is_ok(),
            };
            if done {
                return Ok(());
            }
        }
    }
}

/// A random node id: only used to tell lease holders apart.
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The writer's lease, as this node sees it.
struct Lease {
    held: bool,
    /// The revision of the lease key last seen, and when it was first seen.
    seen: Option<(u64, Instant)>,
    renewed: Instant,
}

impl Lease {
    fn new() -> Lease {
        Lease {
            held: false,
            seen: None,
            renewed: Instant::now(),
        }
    }

    /// Takes, keeps or renews the lease; whether this node holds it now.
    async fn tick(&mut self, link: &WarehouseLink) -> bool {
        let me = Bytes::from(link.node_id.clone());
        let entry = match link.bucket.entry(LEASE_KEY).await {
            Ok(e) => e,
            Err(_) => {
                self.held = false;
                return false;
            }
        };
        let now = Instant::now();
        let acquired = match entry {
            None => link.bucket.create(LEASE_KEY, me).await.is_ok(),
            Some(e) if e.value == me && e.operation == kv::Operation::Put => {
                if now.duration_since(self.renewed) < Duration::from_millis(LEASE_RENEW_MS) {
                    self.held = true;
                    return true;
                }
                link.bucket.update(LEASE_KEY, me, e.revision).await.is_ok()
            }
            Some(e) => {
                // Another holder: take over only once its key has not changed for the expiry,
                // measured on this node's monotonic clock (no clock agreement needed).
                let first_seen = match self.seen {
                    Some((revision, at)) if revision == e.revision => at,
                    _ => now,
                };
                self.seen = Some((e.revision, first_seen));
                now.duration_since(first_seen) >= Duration::from_millis(LEASE_EXPIRY_MS)
                    && link.bucket.update(LEASE_KEY, me, e.revision).await.is_ok()
            }
        };
        if acquired {
            self.renewed = now;
        }
        self.held = acquired;
        link.counters
            .writer
            .store(u64::from(self.held), Ordering::Relaxed);
        self.held
    }
}

/// The writer task: follows the watermark on every node; on the lease holder, also prepares the
/// warehouse, writes pending blocks in order, and runs housekeeping.
pub(crate) async fn run(shared: Arc<Shared>, link: Arc<WarehouseLink>) {
    let mut lease = Lease::new();
    let mut prepared = false;
    let mut maintained: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
        if let Ok(w) = link.watermark().await {
            follow(&shared, &link, w);
        }
        if !lease.tick(&link).await {
            continue;
        }
        if !prepared {
            match link.warehouse.prepare().await {
                Ok(()) => prepared = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster node: cannot prepare the batch warehouse yet");
                    continue;
                }
            }
        }
        write_pending(&shared, &link).await;
        if maintained.is_none_or(|t| t.elapsed() >= Duration::from_millis(MAINTAIN_EVERY_MS)) {
            maintained = Some(Instant::now());
            maintain(&shared, &link).await;
        }
    }
}

/// Forgets the blocks at or below watermark `w`.
fn follow(shared: &Shared, link: &WarehouseLink, w: u64) {
    link.counters.watermark.fetch_max(w, Ordering::Relaxed);
    if let Some(blocks) = shared.replica.write().batch.as_mut() {
        blocks.written_through(w);
    }
}

/// Writes the oldest pending blocks, each then recorded in the watermark; stops at the first
/// failure (the block stays pending and is written again on a later tick).
async fn write_pending(shared: &Shared, link: &WarehouseLink) {
    for _ in 0..BLOCKS_PER_TICK_MAX {
        // One block's rows at a time: a catch-up after an outage holds many blocks, and their
        // rows (strings per cell) would otherwise all be built at once.
        let Some((name, cells)) = ({
            let replica = shared.replica.read();
            replica
                .batch
                .as_ref()
                .and_then(|held| held.pending().next())
                .map(|b| (b.name(), block_cells(b.cells())))
        }) else {
            return;
        };
        if let Err(e) = link.warehouse.write_block(name, cells).await {
            link.counters.write_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(block = name, error = %e, "cluster node: a batch block was not written; retrying");
            return;
        }
        link.counters.blocks_written.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = link.raise_watermark(name).await {
            tracing::warn!(block = name, error = %e, "cluster node: the watermark was not raised; retrying");
            return;
        }
        follow(shared, link, name);
    }
}

/// Retention at the node's clock (not the stream time: retention has no effect on answers,
/// which read by slot), and the warehouse's merges.
async fn maintain(shared: &Shared, link: &WarehouseLink) {
    let horizon = ocp_metrics_warehouse::retention_horizon(shared.clock.now());
    match link.warehouse.maintain(horizon).await {
        Ok(done) => {
            link.counters
                .partitions_dropped
                .fetch_add(done.dropped as u64, Ordering::Relaxed);
            if done.dropped > 0 || done.merged > 0 {
                tracing::info!(
                    dropped = done.dropped,
                    merged = done.merged,
                    "cluster node: batch warehouse housekeeping"
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cluster node: batch warehouse housekeeping failed; retrying later")
        }
    }
}

/// A block's cells as warehouse rows.
pub(crate) fn block_cells(cells: &Rollups) -> Vec<BlockCell> {
    let mut out = Vec::new();
    cells.batch_cells(|c| {
        let mut counters = [0; COLUMNS_MAX];
        counters[..c.counters.len()].copy_from_slice(c.counters);
        out.push(BlockCell {
            group: c.group.to_string(),
            family: c.family,
            dims: c.dims.map(str::to_string),
            slot: c.slot,
            counters,
        });
    });
    out
}

/// Answers a batch query: the warehouse's cells up to the node's `written` mark plus the blocks
/// the node holds, summed into a throwaway `Rollups` that answers with the usual code. Runs on
/// a blocking thread (it waits for ClickHouse).
pub(crate) fn query(
    shared: &Shared,
    link: &WarehouseLink,
    q: &Query,
) -> Result<Answer, QueryFailure> {
    let now = shared.clock.now();
    let family = q.endpoint.family();
    let group = q.group.as_str();
    let plan = q.plan(now);
    let hi = plan.end_slot().min(i64::from(u32::MAX));
    let (cut, lo, mut cells) = {
        let replica = shared.replica.read();
        let Some(held) = replica.batch.as_ref() else {
            return Ok(replica.rollups.query(q, now)?);
        };
        // What the in-memory mode would have evicted is not read, from either side.
        let lo = plan.first_slot.max(replica.horizons().batch).max(0);
        let mut cells = Rollups::new();
        for b in held.held() {
            cells.add_cells_of(b.cells(), group, family, lo, hi);
        }
        (held.written(), lo, cells)
    };
    if cut > 0 && lo < hi {
        let request = ReadRequest {
            group: group.to_string(),
            family,
            lo: lo as u32,
            hi: hi as u32,
            cut,
            filters: q
                .filters
                .iter()
                .filter(|f| !f.values.is_empty())
                .map(|f| (f.dim, f.values.clone()))
                .collect(),
            keep: kept_dims(q),
            counters: needed_counters(q),
            fold: fold_for(&plan, &q.timezone, q.granularity, family.slot_seconds()),
        };
        let rows = link
            .runtime
            .block_on(link.warehouse.read(&request))
            .map_err(|e| {
                link.counters.read_failures.fetch_add(1, Ordering::Relaxed);
                QueryFailure::Unavailable {
                    message: format!(
                        "the batch history is in ClickHouse, which cannot be read now ({e}); nothing is lost: retry in a few seconds"
                    ),
                    retry_after_seconds: READ_RETRY_AFTER_SECONDS,
                }
            })?;
        for row in &rows {
            let dims = row.dims.each_ref().map(String::as_str);
            cells.add_cell(group, family, &dims, row.slot, &row.counters);
        }
    }
    Ok(cells.query_planned(q, plan)?)
}

/// The dimensions an answer tells apart: those filtered by value, and every filter dimension of
/// a drilldown.
fn kept_dims(q: &Query) -> [bool; ocp_metrics_core::metrics::DIMS_MAX] {
    let mut keep = [false; ocp_metrics_core::metrics::DIMS_MAX];
    for f in &q.filters {
        if q.drilldown || !f.values.is_empty() {
            keep[f.dim] = true;
        }
    }
    keep
}

/// The counter columns the query's metrics read.
fn needed_counters(q: &Query) -> [bool; COLUMNS_MAX] {
    let mut needed = [false; COLUMNS_MAX];
    for m in &q.metrics {
        for &c in m.columns {
            needed[c] = true;
        }
    }
    needed
}

/// How far the warehouse may sum slots before answering: local hours (4 slots) for an hourly
/// answer, local days (96) for daily and coarser ones, when the zone's offsets in the range are
/// whole slots and every slot so summed lies in one bucket of `plan` (checked slot by slot, so
/// a transition at local midnight or an odd offset falls back to no folding rather than to a
/// wrong sum).
pub(crate) fn fold_for(
    plan: &BucketPlan,
    tz: &TimeZone,
    granularity: Granularity,
    slot_seconds: i64,
) -> Fold {
    let unit: i64 = match granularity {
        Granularity::Hour => 3_600 / slot_seconds,
        Granularity::Day | Granularity::Week | Granularity::Month | Granularity::Year => {
            86_400 / slot_seconds
        }
        _ => return Fold::none(),
    };
    let (lo, hi) = (plan.first_slot, plan.end_slot());
    if hi <= lo || lo < 0 || unit <= 1 {
        return Fold::none();
    }
    let Some(periods) = offset_periods(tz, lo, hi, slot_seconds) else {
        return Fold::none();
    };
    let mut period = 0;
    let mut previous: Option<(i64, u32)> = None;
    for (i, &bucket) in plan.slot_bucket.iter().enumerate() {
        let slot = lo + i as i64;
        while period + 1 < periods.len() && i64::from(periods[period + 1].0) <= slot {
            period += 1;
        }
        let u = (slot + i64::from(periods[period].1)).div_euclid(unit);
        if let Some((pu, pb)) = previous
            && (u < pu || (u == pu && bucket != pb))
        {
            return Fold::none();
        }
        previous = Some((u, bucket));
    }
    Fold {
        unit: unit as u32,
        periods,
    }
}

/// The zone's offset, in slots, from `lo` and at each transition before `hi` (a transition
/// inside a slot applies from the next slot, as the slot's start decides its bucket); `None`
/// when an offset is not a whole number of slots.
fn offset_periods(tz: &TimeZone, lo: i64, hi: i64, slot_seconds: i64) -> Option<Vec<(u32, i32)>> {
    let at = |slot: i64| Timestamp::from_second(slot * slot_seconds).ok();
    let whole = |seconds: i32| {
        (i64::from(seconds) % slot_seconds == 0).then(|| (i64::from(seconds) / slot_seconds) as i32)
    };
    let start = at(lo)?;
    let mut periods = vec![(0u32, whole(tz.to_offset(start).seconds())?)];
    for t in tz.following(start) {
        let s = t.timestamp().as_second();
        if s >= hi * slot_seconds {
            break;
        }
        let first = s.div_euclid(slot_seconds) + i64::from(s.rem_euclid(slot_seconds) != 0);
        periods.push((u32::try_from(first).ok()?, whole(t.offset().seconds())?));
    }
    Some(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folds for a year of daily and hourly buckets in zones with whole-hour, half-hour and
    /// 45-minute offsets, with and without DST: every fold groups only slots of one bucket
    /// (checked independently here), and each zone folds as far as it can.
    #[test]
    fn folds_group_only_slots_of_one_bucket() {
        let start: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let end: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut seen = Vec::new();
        for zone in [
            "UTC",
            "Europe/Athens",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
            "America/Havana",
            "America/Asuncion",
        ] {
            let tz = TimeZone::get(zone).unwrap();
            for g in [
                Granularity::Hour,
                Granularity::Day,
                Granularity::Week,
                Granularity::Month,
            ] {
                let plan = BucketPlan::new(start, end, end, &tz, g, 900);
                let fold = fold_for(&plan, &tz, g, 900);
                let offset = |slot: i64| {
                    fold.periods
                        .iter()
                        .rev()
                        .find(|(s, _)| i64::from(*s) <= slot)
                        .map_or(fold.periods[0].1, |p| p.1)
                };
                let mut bucket_of_unit = std::collections::HashMap::new();
                for (i, &b) in plan.slot_bucket.iter().enumerate() {
                    let slot = plan.first_slot + i as i64;
                    let u = (slot + i64::from(offset(slot))).div_euclid(i64::from(fold.unit));
                    assert_eq!(
                        *bucket_of_unit.entry(u).or_insert(b),
                        b,
                        "{zone} {g:?} slot {slot}"
                    );
                }
                seen.push(format!("{zone} {}: {}", g.name(), fold.unit));
            }
        }
        expect_test::expect![[r#"
            UTC hour: 4
            UTC day: 96
            UTC week: 96
            UTC month: 96
            Europe/Athens hour: 4
            Europe/Athens day: 96
            Europe/Athens week: 96
            Europe/Athens month: 96
            Asia/Kolkata hour: 4
            Asia/Kolkata day: 96
            Asia/Kolkata week: 96
            Asia/Kolkata month: 96
            Asia/Kathmandu hour: 4
            Asia/Kathmandu day: 96
            Asia/Kathmandu week: 96
            Asia/Kathmandu month: 96
            Australia/Lord_Howe hour: 4
            Australia/Lord_Howe day: 96
            Australia/Lord_Howe week: 96
            Australia/Lord_Howe month: 96
            America/Havana hour: 4
            America/Havana day: 96
            America/Havana week: 96
            America/Havana month: 96
            America/Asuncion hour: 4
            America/Asuncion day: 96
            America/Asuncion week: 96
            America/Asuncion month: 96"#]]
        .assert_eq(&seen.join("\n"));
    }
}
