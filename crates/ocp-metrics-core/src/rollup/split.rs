//! Batch counters kept elsewhere: when the batch history lives in a warehouse (cluster mode
//! with ClickHouse), a node must not hold 720 days of 15-minute slots. [`Rollups::apply_split`]
//! applies an event like [`Rollups::apply`] except that its batch counters go to another
//! `Rollups` (a block, written to the warehouse later), while `self` keeps, for each batch
//! series, only a marker: its latest slot with zero counters.
//!
//! Why a marker and not nothing: the admission limits count series and dimension values of
//! every family, the dimension pickers list them, and compaction drops a series once retention
//! emptied its column. A marker keeps every one of those decisions exactly what it would be with
//! the counters in memory: a column with its latest slot at or after the horizon is non-empty
//! exactly when the full column would be. So verdicts, pickers and series counts stay the same
//! in both modes, and memory holds one slot per batch series instead of its history.
//!
//! The other half: [`Rollups::add_cell`] and [`Rollups::add_cells_of`] build a throwaway
//! `Rollups` from warehouse rows and pending blocks, which then answers the query with the same
//! code as always (filters, drilldown, limits, buckets).

use super::{GroupState, Horizons, Rollups};
use crate::event::Event;
use crate::metrics::{DIMS_MAX, Family, contributions};
use crate::time::{Slot, slot_of};

/// One batch cell: the counters of one series of one family at one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell<'a> {
    pub group: &'a str,
    pub family: Family,
    /// The series' dimension values in family order; unused entries are empty.
    pub dims: [&'a str; DIMS_MAX],
    pub slot: u32,
    /// One counter per column of the family.
    pub counters: &'a [u64],
}

impl Rollups {
    /// Applies an accepted event: real-time counters and session spans into `self`, batch
    /// counters into `batch`, and a marker for each batch series into `self` (see the module
    /// documentation). Slots behind the horizons are skipped, as in [`Rollups::apply`].
    pub fn apply_split(&mut self, e: &Event, h: Horizons, batch: &mut Rollups) {
        let group = self
            .groups
            .entry(e.group.as_str().into())
            .or_insert_with(GroupState::new);
        let elsewhere = batch
            .groups
            .entry(e.group.as_str().into())
            .or_insert_with(GroupState::new);
        contributions(e, |c| {
            if c.family.is_realtime() {
                group.add(&c, h);
            } else if group.mark(&c, h) {
                elsewhere.add(&c, h);
            }
        });
        group.widen_session(e, h);
    }

    /// Calls `f` for every cell of every batch family held, group by group.
    pub fn batch_cells(&self, mut f: impl FnMut(Cell<'_>)) {
        for (group, g) in self.groups() {
            for family in Family::ALL.iter().filter(|f| !f.is_realtime()) {
                let store = g.family(*family);
                for s in store.series() {
                    let dims = store.dim_values(&s.dims);
                    for (slot, counters) in s.column.range(0, Slot::MAX) {
                        f(Cell {
                            group,
                            family: *family,
                            dims,
                            // Columns store u32 slots, so the conversion is exact.
                            slot: slot as u32,
                            counters: &counters,
                        });
                    }
                }
            }
        }
    }

    /// The number of batch cells held: what a block costs in memory and in rows.
    pub fn batch_cell_count(&self) -> usize {
        self.groups()
            .flat_map(|(_, g)| {
                Family::ALL
                    .iter()
                    .filter(|f| !f.is_realtime())
                    .map(|f| g.family(*f).total().len())
            })
            .sum()
    }

    /// Adds `counters` to one cell, creating its group and series as needed. No horizon applies:
    /// the caller reads only what is in range.
    pub fn add_cell(
        &mut self,
        group: &str,
        family: Family,
        dims: &[&str; DIMS_MAX],
        slot: u32,
        counters: &[u64],
    ) {
        let g = self
            .groups
            .entry(group.into())
            .or_insert_with(GroupState::new);
        let store = &mut g.families[family.index()];
        let series = store.series_for(dims);
        let n = family.columns().min(counters.len());
        store.add(series, slot, &counters[..n]);
    }

    /// Adds every cell of `other` in `group` and `family` with slot in `[lo, hi)`.
    pub fn add_cells_of(
        &mut self,
        other: &Rollups,
        group: &str,
        family: Family,
        lo: Slot,
        hi: Slot,
    ) {
        let Some(g) = other.group(group) else {
            return;
        };
        let store = g.family(family);
        for s in store.series() {
            let dims = store.dim_values(&s.dims);
            for (slot, counters) in s.column.range(lo, hi) {
                self.add_cell(group, family, &dims, slot as u32, &counters);
            }
        }
    }
}

impl GroupState {
    /// Records that a batch series has a slot at `c.at` without counting it; false when the slot
    /// is behind the horizon (nothing is recorded, as `add` would record nothing).
    fn mark(&mut self, c: &crate::metrics::Contribution<'_>, h: Horizons) -> bool {
        let slot = slot_of(c.at, c.family.slot_seconds());
        if slot < h.of(c.family) {
            return false;
        }
        let store = &mut self.families[c.family.index()];
        let series = store.series_for(&c.dims);
        store.series[series as usize]
            .column
            .mark_latest(slot as u32);
        store.oldest = store.oldest.min(slot as u32);
        true
    }
}

impl super::FamilyStore {
    /// A series' dimension values, in family order.
    fn dim_values(&self, dims: &super::DimTuple) -> [&str; DIMS_MAX] {
        let mut out = [""; DIMS_MAX];
        for (i, interner) in self.interners.iter().enumerate() {
            out[i] = interner.value(dims[i]);
        }
        out
    }
}
