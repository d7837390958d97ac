//! The batch warehouse: where a cluster keeps its batch history (the 15-minute slot counters of
//! the batch families, 720 days of them) instead of every node's memory.
//!
//! A node applies the shared event stream in order and cuts its batch counters into **blocks**:
//! consecutive stream sequences, closed at points that depend only on the stream (see the
//! cluster crate), so every node cuts the same blocks with the same cells. A block is named by
//! the stream sequence of its last message. One node at a time writes blocks, in order, then
//! records the highest block written (the watermark); every node answers a batch query as
//! "the warehouse's cells of blocks up to the watermark" plus "its own blocks after it".
//!
//! The semantics every [`Warehouse`] keeps:
//! - **Idempotent writes.** Writing a block (the same id and the same cells) any number of
//!   times, from one node or several, one after another or at the same time, partly or wholly,
//!   leaves the warehouse exactly as one complete write would. So a retry after a timeout, a
//!   crash between writing and recording the watermark, and two nodes that both believe they
//!   are the writer never count a cell twice.
//! - **Durable on `Ok`.** [`Warehouse::write_block`] returns `Ok` only when every cell of the
//!   block is stored and will be read by every later [`Warehouse::read`].
//! - **Reads see whole blocks up to a cut.** [`Warehouse::read`] sums the cells of the blocks
//!   with id at most `cut`, never a part of one (given that those blocks were written with
//!   `Ok`), and nothing of a later block.
//! - **Retention drops whole partitions.** [`Warehouse::maintain`] drops only partitions whose
//!   every slot is before the horizon; reads filter by slot anyway, so a partition kept a
//!   little longer changes no answer.

use ocp_metrics_core::Family;
use ocp_metrics_core::metrics::{COLUMNS_MAX, DIMS_MAX};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

mod clickhouse;
#[cfg(feature = "testing")]
pub mod testing;

pub use clickhouse::{ClickHouseConfig, ClickHouseWarehouse};

/// A boxed, sendable future: what the object-safe async methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// 15-minute slots per warehouse partition (28 days: 26 partitions hold 720 days). Retention
/// drops whole partitions, so the warehouse holds at most this much beyond 720 days; reads
/// filter by slot, so that changes no answer. Fewer, larger partitions make a long read cheaper
/// (ClickHouse 18.16 pays about half a millisecond per part read); the partition being written
/// is read with FINAL, so larger ones make that part of a read dearer.
pub const PARTITION_SLOTS: u32 = 28 * 96;

/// One stored cell: the counters of one series of one batch family at one slot, in one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCell {
    pub group: String,
    pub family: Family,
    /// Dimension values in family order; unused entries are empty.
    pub dims: [String; DIMS_MAX],
    pub slot: u32,
    /// One counter per column; the columns a family does not have are 0.
    pub counters: [u64; COLUMNS_MAX],
}

/// What a batch query needs from the warehouse: the cell sums of one group and family over a
/// slot range, in blocks up to `cut`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub group: String,
    pub family: Family,
    /// Slots in `[lo, hi)`.
    pub lo: u32,
    pub hi: u32,
    /// The highest block id to read.
    pub cut: u64,
    /// For each dimension with a filter, the values it admits (any of them).
    pub filters: Vec<(usize, Vec<String>)>,
    /// The dimensions the answer needs (filtered or drilled down); the others come back empty
    /// and are summed over.
    pub keep: [bool; DIMS_MAX],
    /// The counter columns the answer needs; the others come back 0 (and are not read).
    pub counters: [bool; COLUMNS_MAX],
    /// How far the warehouse may sum slots together before answering.
    pub fold: Fold,
}

/// Slots the warehouse may sum together: those with the same `(slot + offset(slot)) / unit`,
/// where `offset(slot)` is the `offset` of the last period starting at or before the slot. The
/// caller chooses it so that slots summed together always fall in the same answer bucket (local
/// hours or days of the query's time zone); each summed row comes back at the smallest slot it
/// holds. `unit == 1` sums nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub unit: u32,
    /// `(first slot, offset in slots)`, ascending by first slot; the first period applies to
    /// every slot before the second.
    pub periods: Vec<(u32, i32)>,
}

impl Fold {
    /// Sums nothing: one row per slot.
    pub fn none() -> Fold {
        Fold {
            unit: 1,
            periods: vec![(0, 0)],
        }
    }
}

/// One summed row of a read: the kept dimensions (others empty), the smallest slot it holds,
/// and the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRow {
    pub dims: [String; DIMS_MAX],
    pub slot: u32,
    pub counters: [u64; COLUMNS_MAX],
}

/// Why the warehouse could not do what was asked. Either way nothing is lost: a block not
/// written stays in every node's memory, and a read is retried by the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WarehouseError {
    /// Not reachable, timed out, or overloaded: worth retrying later.
    #[error("the batch warehouse is unavailable: {0}")]
    Unavailable(String),
    /// It answered with an error that a retry will not fix (a schema or permission problem).
    #[error("the batch warehouse refused the request: {0}")]
    Refused(String),
}

/// Where the batch history lives; see the crate documentation for the semantics.
pub trait Warehouse: Send + Sync + Debug {
    /// Creates the database and tables if missing, and checks that existing ones fit.
    fn prepare(&self) -> BoxFuture<'_, Result<(), WarehouseError>>;
    /// Stores the cells of block `block`; idempotent (see the crate documentation).
    fn write_block(
        &self,
        block: u64,
        cells: Vec<BlockCell>,
    ) -> BoxFuture<'_, Result<(), WarehouseError>>;
    /// Sums the cells of blocks up to `request.cut`; see [`ReadRequest`] and [`Fold`].
    fn read(&self, request: &ReadRequest) -> BoxFuture<'_, Result<Vec<ReadRow>, WarehouseError>>;
    /// Housekeeping, called now and then by the writing node: drops the partitions whose every
    /// slot is before `horizon` (retention), and compacts what is read often.
    fn maintain(&self, horizon: u32) -> BoxFuture<'_, Result<Maintenance, WarehouseError>>;
}

/// What one [`Warehouse::maintain`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Maintenance {
    /// Partitions dropped by retention.
    pub dropped: usize,
    /// Partitions merged into one part.
    pub merged: usize,
}

/// The retention horizon, as a slot, at `now` (a node passes its injected clock's time): batch
/// slots before it are no longer answered, so [`Warehouse::maintain`] may drop them.
pub fn retention_horizon(now: jiff::Timestamp) -> u32 {
    ocp_metrics_core::rollup::Horizons::at(now)
        .batch
        .clamp(0, i64::from(u32::MAX)) as u32
}

/// The code a family is stored under. Stored data outlives builds, so the codes are explicit and
/// never reused; real-time families are never stored.
pub fn family_code(f: Family) -> Option<u8> {
    match f {
        Family::BatchDialogs => Some(1),
        Family::BatchSessions => Some(2),
        Family::BatchMiniapps => Some(3),
        Family::RtDialogs | Family::RtSessions | Family::RtMiniapps | Family::RtV2Dialogs => None,
    }
}
