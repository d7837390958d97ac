//! [`SlotColumn`]: the sparse counters of one series by slot.
//!
//! Most events arrive in time order, so the bulk of a column is two flat sorted arrays (slots,
//! and `stride` counters for each), compact and fast to scan. An entry for a new slot *before*
//! the last one (a late event, or a producer sending history newest first) would have to move
//! every later entry; it goes to `late`, a B-tree, instead: O(log n). Once `late` holds a fixed
//! fraction of the arrays' length it is merged into them in one O(n) pass, so the cost per
//! insert stays amortised O(log n) whatever the insertion order, instead of O(n).
//!
//! Invariants (checked by `debug_assert!`): `slots` strictly ascending, `values` exactly
//! `stride` counters per slot, every `late` slot absent from `slots` and below the last of them
//! (so an empty `slots` means an empty `late`).
//!
//! The serialized form (checkpoints) is that of the plain sorted arrays, `{stride, slots,
//! values}`, exactly as before `late` existed: a column with late entries is merged for
//! serialization, and a loaded column starts with none.

use crate::metrics::COLUMNS_MAX;
use crate::time::Slot;
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

/// Sparse counters by slot; see the module documentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "SlotColumnData")]
pub struct SlotColumn {
    stride: u8,
    slots: Vec<u32>,
    values: Vec<u64>,
    late: BTreeMap<u32, [u64; COLUMNS_MAX]>,
}

/// The serialized form of a column, owned (for loading).
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
    values: &'a [u64],
}

impl From<SlotColumnData> for SlotColumn {
    fn from(d: SlotColumnData) -> SlotColumn {
        let c = SlotColumn {
            stride: d.stride,
            slots: d.slots,
            values: d.values,
            late: BTreeMap::new(),
        };
        c.debug_check();
        c
    }
}

impl Serialize for SlotColumn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.late.is_empty() {
            return SlotColumnRef {
                stride: self.stride,
                slots: &self.slots,
                values: &self.values,
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
        let stride = usize::from(self.stride);
        debug_assert!(deltas.len() <= stride);
        let i = match self.slots.last() {
            Some(&last) if last == slot => self.slots.len() - 1,
            Some(&last) if last < slot => self.push(slot),
            None => self.push(slot),
            Some(_) => match self.slots.binary_search(&slot) {
                Ok(i) => i,
                Err(_) => return self.add_late(slot, deltas),
            },
        };
        for (v, d) in self.values[i * stride..(i + 1) * stride]
            .iter_mut()
            .zip(deltas)
        {
            *v += d;
        }
    }

    fn push(&mut self, slot: u32) -> usize {
        debug_assert!(self.slots.last().is_none_or(|&l| l < slot));
        self.slots.push(slot);
        self.values
            .extend(std::iter::repeat_n(0, usize::from(self.stride)));
        debug_assert_eq!(
            self.values.len(),
            self.slots.len() * usize::from(self.stride)
        );
        self.slots.len() - 1
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
        let mut values = Vec::with_capacity(n * stride);
        for (slot, counters) in self.range(Slot::MIN, Slot::MAX) {
            slots.push(slot as u32);
            values.extend_from_slice(counters);
        }
        self.slots = slots;
        self.values = values;
        self.late.clear();
        self.debug_check();
    }

    /// Makes the column hold `slot` alone, with zero counters, unless it already holds a later
    /// slot: the marker a batch series keeps in memory when its counters live in a warehouse
    /// (see `rollup::split`). It keeps the series alive exactly as long as its slots would.
    pub(crate) fn mark_latest(&mut self, slot: u32) {
        if self.slots.last().is_some_and(|&l| l >= slot) {
            return;
        }
        self.slots.clear();
        self.values.clear();
        self.late.clear();
        self.push(slot);
    }

    /// Drops the slots before `horizon`.
    pub(crate) fn drop_before(&mut self, horizon: Slot) {
        let n = self.slots.partition_point(|&s| i64::from(s) < horizon);
        if n > 0 {
            self.slots.drain(..n);
            self.values.drain(..n * usize::from(self.stride));
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
        if self.slots.capacity() > SHRINK_FACTOR * self.slots.len().max(4) {
            self.slots.shrink_to_fit();
            self.values.shrink_to_fit();
        }
    }

    /// The entries with slot in `[lo, hi)`, in slot order: each slot and its counters.
    pub fn range(&self, lo: Slot, hi: Slot) -> Entries<'_> {
        let a = self.slots.partition_point(|&s| i64::from(s) < lo);
        let b = self.slots.partition_point(|&s| i64::from(s) < hi).max(a);
        let stride = usize::from(self.stride);
        Entries {
            slots: &self.slots[a..b],
            values: &self.values[a * stride..b * stride],
            stride,
            late: self.late.range(u32_bounds(lo, hi)).peekable(),
        }
    }

    /// Whether any entry has its slot in `[lo, hi)`.
    pub fn any_in(&self, lo: Slot, hi: Slot) -> bool {
        let a = self.slots.partition_point(|&s| i64::from(s) < lo);
        self.slots.get(a).is_some_and(|&s| i64::from(s) < hi)
            || self.late.range(u32_bounds(lo, hi)).next().is_some()
    }

    /// Checks the invariants in debug builds; the cost is linear, so only after whole-column
    /// operations.
    fn debug_check(&self) {
        debug_assert!(
            self.slots.windows(2).all(|w| w[0] < w[1]),
            "slots strictly ascending"
        );
        debug_assert_eq!(
            self.values.len(),
            self.slots.len() * usize::from(self.stride),
            "one stride of counters per slot"
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
/// late B-tree.
#[derive(Debug)]
pub struct Entries<'a> {
    slots: &'a [u32],
    values: &'a [u64],
    stride: usize,
    late: Peekable<btree_map::Range<'a, u32, [u64; COLUMNS_MAX]>>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (Slot, &'a [u64]);

    fn next(&mut self) -> Option<Self::Item> {
        let main = self.slots.first().copied();
        let late = self.late.peek().map(|(s, _)| **s);
        let take_main = match (main, late) {
            (Some(m), Some(l)) => m < l,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_main {
            let values = &self.values[..self.stride];
            self.slots = &self.slots[1..];
            self.values = &self.values[self.stride..];
            return main.map(|m| (i64::from(m), values));
        }
        let (&s, counters) = self.late.next()?;
        Some((i64::from(s), &counters[..self.stride]))
    }
}

#[cfg(test)]
mod tests;
