//! [`SlotColumn`]: the sparse counters of one series by slot.
//!
//! Most events arrive in time order, so the bulk of a column is flat sorted arrays: the slots,
//! and for each of the `stride` counters one array of its values by slot. A query reads one or
//! two counters of a family that has up to nine, so the counters are stored **by counter**
//! (column-major), not by slot: a scan then reads 12 bytes an entry (slot and value) instead of
//! a whole row of up to 72, which made the drilldowns memory-bound. The counter arrays share one
//! allocation and one capacity (`cap`), grown like a `Vec`: counter `c` of entry `i` is at
//! `values[c * cap + i]`, and every position at or after `slots.len()` holds zero.
//!
//! An entry for a new slot *before* the last one (a late event, or a producer sending history
//! newest first) would have to move every later entry; it goes to `late`, a B-tree, instead:
//! O(log n). Once `late` holds a fixed fraction of the arrays' length it is merged into them in
//! one O(n) pass, so the cost per insert stays amortised O(log n) whatever the insertion order,
//! instead of O(n).
//!
//! Invariants (checked by `debug_assert!`): `slots` strictly ascending, `values` exactly
//! `stride * cap` long with `cap >= slots.len()` and zeros past the entries, every `late` slot
//! absent from `slots` and below the last of them (so an empty `slots` means an empty `late`).
//!
//! The serialized form (checkpoints) is that of the plain sorted arrays by slot, `{stride,
//! slots, values}` with `stride` counters per slot, exactly as before `late` and the by-counter
//! layout existed: a column is written row by row, merged with its late entries, and a loaded
//! column starts with none.

use crate::metrics::COLUMNS_MAX;
use crate::time::Slot;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::iter::Peekable;
use std::ops::Bound;

/// `late` is merged into the arrays once it has more than this many entries or more than
/// `1 / LATE_FOLD_DIVISOR` of the arrays' length, whichever is more. The divisor makes the merge
/// amortised O(1) per late insert (a merge of n entries follows at least n / 4 inserts); the
/// floor keeps short columns from merging on every other insert.
const LATE_ENTRIES_MIN: usize = 32;
const LATE_FOLD_DIVISOR: usize = 4;

/// A column whose capacity is more than this many times its length is shrunk.
const SHRINK_FACTOR: usize = 2;

/// The capacity, in entries, of a column's first allocation.
const ENTRIES_CAP_MIN: usize = 4;

/// Sparse counters by slot; see the module documentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "SlotColumnData")]
pub struct SlotColumn {
    stride: u8,
    slots: Vec<u32>,
    /// By counter: counter `c` of entry `i` at `c * cap + i`, where `cap = len / stride`.
    values: Vec<u64>,
    late: BTreeMap<u32, [u64; COLUMNS_MAX]>,
}

/// The serialized form of a column, owned (for loading): counters by slot.
#[derive(Deserialize)]
#[serde(rename = "SlotColumn")]
struct SlotColumnData {
    stride: u8,
    slots: Vec<u32>,
    values: Vec<u64>,
}

/// The serialized form of a column, borrowed (for saving without a copy).
#[derive(Serialize)]
#[serde(rename = "SlotColumn")]
struct SlotColumnRef<'a> {
    stride: u8,
    slots: &'a [u32],
    values: ByRow<'a>,
}

/// A folded column's counters written by slot, as the serialized form has them.
struct ByRow<'a>(&'a SlotColumn);

impl Serialize for ByRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let (n, stride, cap) = (c.slots.len(), usize::from(c.stride), c.cap());
        let mut seq = s.serialize_seq(Some(n * stride))?;
        for i in 0..n {
            for k in 0..stride {
                seq.serialize_element(&c.values[k * cap + i])?;
            }
        }
        seq.end()
    }
}

impl From<SlotColumnData> for SlotColumn {
    fn from(d: SlotColumnData) -> SlotColumn {
        let stride = usize::from(d.stride);
        let n = d.slots.len();
        let values = by_counter(stride, n, d.values.chunks_exact(stride.max(1)).take(n));
        let c = SlotColumn {
            stride: d.stride,
            slots: d.slots,
            values,
            late: BTreeMap::new(),
        };
        c.debug_check();
        c
    }
}

/// Lays `n` rows of `stride` counters out by counter, as a column stores them: counter `k` of
/// row `i` at `k * n + i`. Loading a checkpoint (rows) and folding late entries both need it.
fn by_counter<R: std::ops::Deref<Target = [u64]>>(
    stride: usize,
    n: usize,
    rows: impl Iterator<Item = R>,
) -> Vec<u64> {
    let mut values = vec![0; stride * n];
    for (i, row) in rows.enumerate() {
        for (k, v) in row.iter().enumerate() {
            values[k * n + i] = *v;
        }
    }
    values
}

impl Serialize for SlotColumn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.late.is_empty() {
            return SlotColumnRef {
                stride: self.stride,
                slots: &self.slots,
                values: ByRow(self),
            }
            .serialize(s);
        }
        // Checkpoints fold every column first (see `shrink`), so this copy is rare.
        let mut folded = self.clone();
        folded.fold();
        folded.serialize(s)
    }
}

impl SlotColumn {
    pub(crate) fn new(stride: u8) -> SlotColumn {
        debug_assert!(usize::from(stride) <= COLUMNS_MAX);
        SlotColumn {
            stride,
            slots: Vec::new(),
            values: Vec::new(),
            late: BTreeMap::new(),
        }
    }

    /// The number of slots held.
    pub fn len(&self) -> usize {
        self.slots.len() + self.late.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.late.is_empty()
    }

    /// The entries with slot in `[lo, hi)`, in slot order: each slot and its counters.
    pub fn range(&self, lo: Slot, hi: Slot) -> Entries<'_> {
        let (a, b) = self.bounds(lo, hi);
        Entries {
            column: self,
            next: a,
            end: b,
            late: self.late.range(u32_bounds(lo, hi)).peekable(),
        }
    }

    /// Calls `f(slot, value)` once for every slot in `[lo, hi)`, with the sum of the counters
    /// `columns` at that slot; slots come in order, except that late entries (not yet merged
    /// into the arrays) come last. This is the query's scan: it reads only the counters asked
    /// for, each as one contiguous run, and adds them up run by run in `scratch` (which the
    /// compiler vectorises) before calling `f`, so a metric that sums six counters costs one
    /// call per slot, not six.
    pub fn for_each_sum(
        &self,
        lo: Slot,
        hi: Slot,
        columns: &[usize],
        scratch: &mut Vec<u64>,
        mut f: impl FnMut(Slot, u64),
    ) {
        let (a, b) = self.bounds(lo, hi);
        let slots = &self.slots[a..b];
        let cap = self.cap();
        let run = |k: usize| &self.values[k * cap + a..k * cap + b];
        match columns {
            [] => {}
            [k] => {
                for (&slot, &v) in slots.iter().zip(run(*k)) {
                    f(i64::from(slot), v);
                }
            }
            [first, rest @ ..] => {
                scratch.clear();
                scratch.extend_from_slice(run(*first));
                for &k in rest {
                    for (sum, v) in scratch.iter_mut().zip(run(k)) {
                        *sum += v;
                    }
                }
                for (&slot, &v) in slots.iter().zip(scratch.iter()) {
                    f(i64::from(slot), v);
                }
            }
        }
        for (&slot, counters) in self.late.range(u32_bounds(lo, hi)) {
            f(i64::from(slot), columns.iter().map(|&k| counters[k]).sum());
        }
    }

    /// Whether any entry has its slot in `[lo, hi)`.
    pub fn any_in(&self, lo: Slot, hi: Slot) -> bool {
        let (a, b) = self.bounds(lo, hi);
        a < b || self.late.range(u32_bounds(lo, hi)).next().is_some()
    }

    /// The earliest slot held.
    pub(crate) fn first(&self) -> Option<u32> {
        let main = self.slots.first().copied();
        let late = self.late.keys().next().copied();
        match (main, late) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Adds `deltas` to the counters of `slot` (creating them at zero).
    pub(crate) fn add(&mut self, slot: u32, deltas: &[u64]) {
        debug_assert!(deltas.len() <= usize::from(self.stride));
        let i = match self.slots.last() {
            Some(&last) if last == slot => self.slots.len() - 1,
            Some(&last) if last < slot => self.push(slot),
            None => self.push(slot),
            Some(_) => match self.slots.binary_search(&slot) {
                Ok(i) => i,
                Err(_) => return self.add_late(slot, deltas),
            },
        };
        let cap = self.cap();
        for (k, d) in deltas.iter().enumerate() {
            self.values[k * cap + i] += d;
        }
    }

    /// Makes the column hold `slot` alone, with zero counters, unless it already holds a later
    /// slot: the marker a batch series keeps in memory when its counters live in a warehouse
    /// (see `rollup::split`). It keeps the series alive exactly as long as its slots would.
    pub(crate) fn mark_latest(&mut self, slot: u32) {
        if self.slots.last().is_some_and(|&l| l >= slot) {
            return;
        }
        self.slots.clear();
        self.values.fill(0);
        self.late.clear();
        self.push(slot);
    }

    /// Drops the slots before `horizon`.
    pub(crate) fn drop_before(&mut self, horizon: Slot) {
        let n = self.slots.partition_point(|&s| i64::from(s) < horizon);
        if n > 0 {
            let (len, cap) = (self.slots.len(), self.cap());
            for k in 0..usize::from(self.stride) {
                let counters = &mut self.values[k * cap..k * cap + len];
                counters.copy_within(n.., 0);
                counters[len - n..].fill(0);
            }
            self.slots.drain(..n);
        }
        if self
            .late
            .keys()
            .next()
            .is_some_and(|&s| i64::from(s) < horizon)
        {
            self.late.retain(|&s, _| i64::from(s) >= horizon);
        }
        self.debug_check();
    }

    /// Gives back memory that retention freed; leaves no late entries (so that a checkpoint
    /// serializes without copying).
    pub(crate) fn shrink(&mut self) {
        self.fold();
        let len = self.slots.len();
        if self.cap() > SHRINK_FACTOR * len.max(ENTRIES_CAP_MIN) {
            self.slots.shrink_to_fit();
            self.set_cap(len);
        }
    }

    /// The number of entries the counter arrays have room for.
    fn cap(&self) -> usize {
        match self.stride {
            0 => usize::MAX,
            s => self.values.len() / usize::from(s),
        }
    }

    /// Lays the counters out again with room for `cap` entries (at least the entries held).
    fn set_cap(&mut self, cap: usize) {
        let (len, old, stride) = (self.slots.len(), self.cap(), usize::from(self.stride));
        debug_assert!(cap >= len);
        let mut values = vec![0; stride * cap];
        for k in 0..stride {
            values[k * cap..k * cap + len].copy_from_slice(&self.values[k * old..k * old + len]);
        }
        self.values = values;
    }

    /// The index range of the arrays' entries with slot in `[lo, hi)`.
    ///
    /// A long query range usually holds the whole column, so the first and the last slot are
    /// checked before any binary search: a search over a column not in the cache is a chain of
    /// dependent cache misses, and a drilldown over thousands of short series paid two of
    /// them per series (most of its time).
    fn bounds(&self, lo: Slot, hi: Slot) -> (usize, usize) {
        let (Some(&first), Some(&last)) = (self.slots.first(), self.slots.last()) else {
            return (0, 0);
        };
        let a = if i64::from(first) >= lo {
            0
        } else {
            self.slots.partition_point(|&s| i64::from(s) < lo)
        };
        let b = if i64::from(last) < hi {
            self.slots.len()
        } else {
            self.slots.partition_point(|&s| i64::from(s) < hi)
        };
        (a, b.max(a))
    }

    fn push(&mut self, slot: u32) -> usize {
        debug_assert!(self.slots.last().is_none_or(|&l| l < slot));
        let len = self.slots.len();
        if len == self.cap() {
            self.set_cap((2 * len).max(ENTRIES_CAP_MIN));
        }
        self.slots.push(slot);
        len
    }

    /// A new slot before the last one: into the B-tree, merged into the arrays when it grows.
    fn add_late(&mut self, slot: u32, deltas: &[u64]) {
        let counters = self.late.entry(slot).or_insert([0; COLUMNS_MAX]);
        for (v, d) in counters.iter_mut().zip(deltas) {
            *v += d;
        }
        if self.late.len() > LATE_ENTRIES_MIN.max(self.slots.len() / LATE_FOLD_DIVISOR) {
            self.fold();
        }
    }

    /// Merges `late` into the sorted arrays: one pass over both.
    fn fold(&mut self) {
        if self.late.is_empty() {
            return;
        }
        let stride = usize::from(self.stride);
        let n = self.len();
        let mut slots = Vec::with_capacity(n);
        let rows = self.range(Slot::MIN, Slot::MAX).map(|(slot, counters)| {
            slots.push(slot as u32);
            counters
        });
        let values = by_counter(stride, n, rows);
        self.slots = slots;
        self.values = values;
        self.late.clear();
        self.debug_check();
    }

    /// Checks the invariants in debug builds; the cost is linear, so only after whole-column
    /// operations.
    fn debug_check(&self) {
        debug_assert!(
            self.slots.windows(2).all(|w| w[0] < w[1]),
            "slots strictly ascending"
        );
        let (len, cap) = (self.slots.len(), self.cap());
        debug_assert!(
            self.stride == 0
                || (self.values.len().is_multiple_of(usize::from(self.stride)) && cap >= len),
            "room for every entry's counters"
        );
        debug_assert!(
            (0..usize::from(self.stride)).all(|k| self.values[k * cap + len..(k + 1) * cap]
                .iter()
                .all(|&v| v == 0)),
            "zeros past the entries"
        );
        debug_assert!(
            self.late
                .keys()
                .all(|s| self.slots.binary_search(s).is_err()
                    && self.slots.last().is_some_and(|l| s < l)),
            "late slots are new and before the last slot"
        );
    }
}

/// The counters of one entry, as many as the column's stride.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    values: [u64; COLUMNS_MAX],
    len: u8,
}

impl std::ops::Deref for Counters {
    type Target = [u64];

    fn deref(&self) -> &[u64] {
        &self.values[..usize::from(self.len)]
    }
}

/// `[lo, hi)` in slots as bounds over `u32` keys (empty when `hi <= lo`).
fn u32_bounds(lo: Slot, hi: Slot) -> (Bound<u32>, Bound<u32>) {
    let lo_key = lo.clamp(0, i64::from(u32::MAX)) as u32;
    if lo > i64::from(u32::MAX) {
        return (Bound::Included(lo_key), Bound::Excluded(lo_key));
    }
    if hi > i64::from(u32::MAX) {
        return (Bound::Included(lo_key), Bound::Unbounded);
    }
    let hi_key = hi.max(0) as u32;
    if hi_key <= lo_key || hi <= lo {
        return (Bound::Included(lo_key), Bound::Excluded(lo_key));
    }
    (Bound::Included(lo_key), Bound::Excluded(hi_key))
}

/// The entries of a column in a slot range, in slot order: the sorted arrays merged with the
/// late B-tree, each entry's counters gathered from the counter arrays.
#[derive(Debug)]
pub struct Entries<'a> {
    column: &'a SlotColumn,
    /// The next and the end index into the arrays.
    next: usize,
    end: usize,
    late: Peekable<btree_map::Range<'a, u32, [u64; COLUMNS_MAX]>>,
}

impl Iterator for Entries<'_> {
    type Item = (Slot, Counters);

    fn next(&mut self) -> Option<Self::Item> {
        let c = self.column;
        let len = c.stride;
        let main = (self.next < self.end).then(|| c.slots[self.next]);
        let late = self.late.peek().map(|(s, _)| **s);
        let take_main = match (main, late) {
            (Some(m), Some(l)) => m < l,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_main {
            let (i, cap) = (self.next, c.cap());
            let mut values = [0; COLUMNS_MAX];
            for (k, v) in values.iter_mut().take(usize::from(len)).enumerate() {
                *v = c.values[k * cap + i];
            }
            self.next += 1;
            return main.map(|m| (i64::from(m), Counters { values, len }));
        }
        let (&s, values) = self.late.next()?;
        let mut values = *values;
        values[usize::from(len)..].fill(0);
        Some((i64::from(s), Counters { values, len }))
    }
}

#[cfg(test)]
mod tests;
