//! The column against the plain sorted arrays it replaced: for any insertion order and any
//! interleaving of retention, every read answers exactly as the old column did, and the
//! serialized bytes are the old ones.

use super::*;
use proptest::prelude::*;

/// The column as it was before the late B-tree: sorted arrays, new slots inserted in place.
#[derive(Debug, Clone, Serialize)]
struct OldColumn {
    stride: u8,
    slots: Vec<u32>,
    values: Vec<u64>,
}

impl OldColumn {
    fn new(stride: u8) -> OldColumn {
        OldColumn {
            stride,
            slots: Vec::new(),
            values: Vec::new(),
        }
    }

    fn add(&mut self, slot: u32, deltas: &[u64]) {
        let stride = usize::from(self.stride);
        let i = match self.slots.binary_search(&slot) {
            Ok(i) => i,
            Err(i) => {
                self.slots.insert(i, slot);
                let at = i * stride;
                self.values.splice(at..at, std::iter::repeat_n(0, stride));
                i
            }
        };
        for (v, d) in self.values[i * stride..(i + 1) * stride]
            .iter_mut()
            .zip(deltas)
        {
            *v += d;
        }
    }

    fn mark_latest(&mut self, slot: u32) {
        if self.slots.last().is_some_and(|&l| l >= slot) {
            return;
        }
        *self = OldColumn::new(self.stride);
        self.add(slot, &[]);
    }

    fn drop_before(&mut self, horizon: Slot) {
        let n = self.slots.partition_point(|&s| i64::from(s) < horizon);
        self.slots.drain(..n);
        self.values.drain(..n * usize::from(self.stride));
    }

    fn range(&self, lo: Slot, hi: Slot) -> Vec<(Slot, Vec<u64>)> {
        let stride = usize::from(self.stride);
        (0..self.slots.len())
            .filter(|&i| (lo..hi).contains(&i64::from(self.slots[i])))
            .map(|i| {
                (
                    i64::from(self.slots[i]),
                    self.values[i * stride..(i + 1) * stride].to_vec(),
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(u32, u64),
    DropBefore(Slot),
    MarkLatest(u32),
    Shrink,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0u32..400, 1u64..5).prop_map(|(s, d)| Op::Add(s, d)),
        1 => (-2i64..400).prop_map(Op::DropBefore),
        1 => (0u32..400).prop_map(Op::MarkLatest),
        1 => Just(Op::Shrink),
    ]
}

fn new_range(c: &SlotColumn, lo: Slot, hi: Slot) -> Vec<(Slot, Vec<u64>)> {
    c.range(lo, hi).map(|(s, v)| (s, v.to_vec())).collect()
}

/// Every read of `new` equals the same read of `old`, over ranges around every edge.
fn assert_same(new: &SlotColumn, old: &OldColumn) {
    assert_eq!(new.len(), old.slots.len());
    assert_eq!(new.is_empty(), old.slots.is_empty());
    assert_eq!(new.first(), old.slots.first().copied());
    for (lo, hi) in [
        (Slot::MIN, Slot::MAX),
        (-5, 0),
        (0, 1),
        (3, 3),
        (7, 2),
        (10, 50),
        (199, 201),
        (250, 400),
        (399, 10_000),
    ] {
        assert_eq!(new_range(new, lo, hi), old.range(lo, hi), "[{lo}, {hi})");
        assert_eq!(
            new.any_in(lo, hi),
            !old.range(lo, hi).is_empty(),
            "[{lo}, {hi})"
        );
        assert_same_sums(new, old, lo, hi);
    }
    assert_eq!(
        postcard::to_allocvec(new).unwrap(),
        postcard::to_allocvec(old).unwrap(),
        "serialized bytes"
    );
}

/// The query's scan (`for_each_sum`) sums, slot by slot, what the old column's rows hold, for
/// one counter, the last one, and all of them.
fn assert_same_sums(new: &SlotColumn, old: &OldColumn, lo: Slot, hi: Slot) {
    let stride = usize::from(old.stride);
    let all: Vec<usize> = (0..stride).collect();
    for columns in [&[0][..], &[stride - 1], &all] {
        let mut got = std::collections::BTreeMap::<Slot, u64>::new();
        new.for_each_sum(lo, hi, columns, &mut Vec::new(), |slot, v| {
            *got.entry(slot).or_default() += v
        });
        let want: std::collections::BTreeMap<Slot, u64> = old
            .range(lo, hi)
            .into_iter()
            .map(|(slot, row)| (slot, columns.iter().map(|&k| row[k]).sum()))
            .collect();
        assert_eq!(got, want, "[{lo}, {hi}) columns {columns:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn answers_exactly_as_the_sorted_arrays_for_any_insertion_order(
        stride in 1u8..=COLUMNS_MAX as u8,
        ops in prop::collection::vec(op(), 0..600),
    ) {
        let mut new = SlotColumn::new(stride);
        let mut old = OldColumn::new(stride);
        for op in &ops {
            match *op {
                Op::Add(slot, d) => {
                    // Different deltas per counter, so a misplaced stride shows.
                    let deltas: Vec<u64> = (0..u64::from(stride)).map(|k| d + k).collect();
                    new.add(slot, &deltas);
                    old.add(slot, &deltas);
                }
                Op::DropBefore(h) => {
                    new.drop_before(h);
                    old.drop_before(h);
                }
                Op::MarkLatest(slot) => {
                    new.mark_latest(slot);
                    old.mark_latest(slot);
                }
                Op::Shrink => new.shrink(),
            }
            new.debug_check();
        }
        assert_same(&new, &old);
        // A column loaded from the checkpoint bytes reads the same too.
        let loaded: SlotColumn = postcard::from_bytes(&postcard::to_allocvec(&new).unwrap()).unwrap();
        assert!(loaded.late.is_empty());
        assert_same(&loaded, &old);
    }
}

#[test]
fn history_newest_first_is_answered_like_in_order() {
    let n = 20_000u32;
    let mut reverse = SlotColumn::new(4);
    let mut old = OldColumn::new(4);
    for slot in (0..n).rev() {
        reverse.add(slot, &[1, 2, 3, 4]);
        old.add(slot, &[1, 2, 3, 4]);
    }
    assert_same(&reverse, &old);
    // Newest first keeps `late` within its bound: it is merged as it grows.
    assert!(reverse.late.len() <= LATE_ENTRIES_MIN.max(reverse.slots.len() / LATE_FOLD_DIVISOR));
}

#[test]
fn the_edges_of_the_slot_range_are_read_like_any_slot() {
    let top = u32::MAX;
    let mut new = SlotColumn::new(2);
    let mut old = OldColumn::new(2);
    // The last slot first, so that the others go to the late entries.
    for slot in [top, 0, top - 1, 1] {
        new.add(slot, &[1, 2]);
        old.add(slot, &[1, 2]);
    }
    assert!(!new.late.is_empty());
    let top = i64::from(top);
    for (lo, hi) in [
        (Slot::MIN, Slot::MAX),
        (top, Slot::MAX),
        (top - 1, top),
        (top + 1, Slot::MAX),
        (Slot::MIN, 1),
        (-1, 0),
    ] {
        assert_eq!(new_range(&new, lo, hi), old.range(lo, hi), "[{lo}, {hi})");
        assert_eq!(
            new.any_in(lo, hi),
            !old.range(lo, hi).is_empty(),
            "[{lo}, {hi})"
        );
    }
    new.shrink();
    assert_same(&new, &old);
}
