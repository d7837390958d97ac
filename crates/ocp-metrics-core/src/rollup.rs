//! The in-memory rollups: per group, per family, one sparse slot column of counters per series
//! (a distinct tuple of interned dimension values), plus the real-time session spans.
//!
//! Invariant: the rollups are a deterministic function of the sequence of accepted events and
//! of the retention horizon at which they were applied; slots behind the horizon are never read.
//!
//! Cost: applying one event costs O(log n) in the data already held whatever the traffic shape
//! (reverse time order, many slots, many series): columns take slots in any order in amortised
//! O(log n) (see [`column`]), interning and series lookup are hash lookups, and a session span
//! counts only the slots it newly covers. Retention skips families and span tables that hold
//! nothing behind the horizon, so an idle second costs nothing per series.

use crate::event::{Event, UnixMs};
use crate::limits::{BATCH_RETENTION_SECONDS, RT_RETENTION_MARGIN_SECONDS, RT_RETENTION_SECONDS};
use crate::metrics::{COLUMNS_MAX, Contribution, DIMS_MAX, Family, contributions, session_dims};
use crate::time::{RT_SLOT_SECONDS, Slot, slot_of};
use jiff::Timestamp;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

pub use column::{Counters, Entries, SlotColumn};

/// A series key: interned dimension values in family order; unused entries are 0.
pub type DimTuple = [u32; DIMS_MAX];

/// All rollups of all groups.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Rollups {
    groups: FxHashMap<Box<str>, GroupState>,
}

/// The rollups of one group: its families and its live real-time session spans.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupState {
    families: Vec<FamilyStore>,
    sessions: FxHashMap<u128, Span>,
    /// A lower bound of every span's `last`: retention scans the spans only when the real-time
    /// horizon passes it. Not serialized (0 after loading, a valid bound).
    #[serde(skip)]
    sessions_last_min: u32,
}

/// The real-time span counted so far for one session: every RT slot in `[first, last]` has
/// counted it once, in series `series` of `RtSessions`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Span {
    first: u32,
    last: u32,
    series: u32,
}

/// One family of one group: its interners and its series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FamilyStore {
    family: Family,
    interners: Vec<Interner>,
    index: FxHashMap<DimTuple, u32>,
    series: Vec<Series>,
    /// The sum of every series: answers an unfiltered, not drilled-down query (the commonest
    /// dashboard query) by reading one column instead of summing thousands.
    total: SlotColumn,
    /// A lower bound of every slot held: retention visits the series only when the horizon
    /// passes it. Not serialized (0 after loading, a valid bound).
    #[serde(skip)]
    oldest: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    pub dims: DimTuple,
    pub column: SlotColumn,
}

/// Maps the values of one dimension to small integers and back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Interner {
    values: Vec<Box<str>>,
    #[serde(skip)]
    ids: FxHashMap<Box<str>, u32>,
}

/// Window bounds for one application of events, in slots.
#[derive(Debug, Clone, Copy)]
pub struct Horizons {
    /// The first real-time slot still kept.
    pub rt: Slot,
    /// The first batch slot still kept.
    pub batch: Slot,
}

impl Horizons {
    pub fn at(now: Timestamp) -> Horizons {
        let now_ms = now.as_millisecond();
        let rt_ms = now_ms - (RT_RETENTION_SECONDS + RT_RETENTION_MARGIN_SECONDS) * 1000;
        let batch_ms = now_ms - BATCH_RETENTION_SECONDS * 1000;
        Horizons {
            rt: slot_of(rt_ms, RT_SLOT_SECONDS),
            batch: slot_of(batch_ms, Family::BatchDialogs.slot_seconds()),
        }
    }

    fn of(&self, family: Family) -> Slot {
        if family.is_realtime() {
            self.rt
        } else {
            self.batch
        }
    }
}

impl Rollups {
    pub fn new() -> Rollups {
        Rollups::default()
    }

    /// Adds one accepted event to every rollup it counts in.
    pub fn apply(&mut self, e: &Event, h: Horizons) {
        let group = self
            .groups
            .entry(e.group.as_str().into())
            .or_insert_with(GroupState::new);
        contributions(e, |c| group.add(&c, h));
        group.widen_session(e, h);
    }

    pub fn group(&self, name: &str) -> Option<&GroupState> {
        self.groups.get(name)
    }

    pub fn groups(&self) -> impl Iterator<Item = (&str, &GroupState)> {
        self.groups.iter().map(|(k, v)| (&**k, v))
    }

    /// The names of the groups that have any data, sorted.
    pub fn group_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.groups.keys().map(|g| g.to_string()).collect();
        v.sort();
        v
    }

    /// The distinct values seen for dimension `dim` of `family` in `group`, sorted (for the
    /// pickers of a UI); empty for a group without data.
    pub fn dimension_values(&self, group: &str, family: Family, dim: usize) -> Vec<String> {
        let Some(g) = self.group(group) else {
            return Vec::new();
        };
        let interner = g.family(family).interner(dim);
        let mut v: Vec<String> = (0..interner.len() as u32)
            .map(|i| interner.value(i).to_string())
            .collect();
        v.sort();
        v
    }

    /// Drops slots behind the horizons and session spans that ended behind the real-time one.
    /// Families and span tables with nothing behind the horizon are skipped without a scan.
    pub fn evict(&mut self, h: Horizons) {
        for g in self.groups.values_mut() {
            for f in &mut g.families {
                f.drop_before(h.of(f.family));
            }
            if i64::from(g.sessions_last_min) < h.rt {
                g.sessions.retain(|_, span| i64::from(span.last) >= h.rt);
                g.sessions_last_min = g
                    .sessions
                    .values()
                    .map(|s| s.last)
                    .min()
                    .unwrap_or(u32::MAX);
            }
        }
    }

    /// Rebuilds lookup tables that checkpoints do not carry.
    pub fn after_load(&mut self) {
        for g in self.groups.values_mut() {
            for f in &mut g.families {
                f.interners.iter_mut().for_each(Interner::rebuild);
            }
        }
    }

    /// The number of series and of stored slots, for metrics and benchmarks.
    pub fn stats(&self) -> RollupStats {
        let mut s = RollupStats::default();
        for g in self.groups.values() {
            s.groups += 1;
            s.sessions_tracked += g.sessions.len();
            for f in &g.families {
                s.series += f.series.len();
                s.interned_values += f.interners.iter().map(Interner::len).sum::<usize>();
                s.slots += f.series.iter().map(|x| x.column.len()).sum::<usize>();
            }
        }
        s
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RollupStats {
    pub groups: usize,
    pub series: usize,
    pub slots: usize,
    pub sessions_tracked: usize,
    /// Distinct dimension values held, summed over groups, families and dimensions.
    pub interned_values: usize,
}

impl GroupState {
    fn new() -> GroupState {
        GroupState {
            families: Family::ALL.iter().map(|f| FamilyStore::new(*f)).collect(),
            sessions: FxHashMap::default(),
            sessions_last_min: u32::MAX,
        }
    }

    pub fn family(&self, f: Family) -> &FamilyStore {
        &self.families[f.index()]
    }

    fn add(&mut self, c: &Contribution<'_>, h: Horizons) {
        let slot = slot_of(c.at, c.family.slot_seconds());
        if slot < h.of(c.family) {
            return;
        }
        let store = &mut self.families[c.family.index()];
        let series = store.series_for(&c.dims);
        store.add(series, slot as u32, &c.deltas[..c.family.columns()]);
    }

    /// Real-time sessions: the session is active in every RT slot from its earliest to its
    /// latest known instant. An event that widens the span counts the session once in each
    /// newly covered slot, so each (session, slot) pair is counted exactly once whatever the
    /// order in which events arrive.
    fn widen_session(&mut self, e: &Event, h: Horizons) {
        let (lo, hi) = known_instants(e);
        let (lo, hi) = (slot_of(lo, RT_SLOT_SECONDS), slot_of(hi, RT_SLOT_SECONDS));
        if hi < h.rt {
            return;
        }
        let key = session_key(e);
        let store = &mut self.families[Family::RtSessions.index()];
        let (old, series) = match self.sessions.get(&key) {
            Some(span) => (
                Some((i64::from(span.first), i64::from(span.last))),
                span.series,
            ),
            None => {
                let dims = session_dims(e);
                let mut all = [""; DIMS_MAX];
                all[..3].copy_from_slice(&dims);
                (None, store.series_for(&all))
            }
        };
        let (first, last) = match old {
            Some((f, l)) => (f.min(lo), l.max(hi)),
            None => (lo, hi),
        };
        debug_assert!(
            first <= last && old.is_none_or(|(f, l)| first <= f && l <= last),
            "spans are ordered and only widen"
        );
        // Only the newly covered slots count: before the old span and after it (or the whole
        // span when new), never behind the horizon.
        let newly_covered = match old {
            Some((f, l)) => [(first, f - 1), (l + 1, last)],
            None => [(first, last), (1, 0)],
        };
        let mut one = [0u64; COLUMNS_MAX];
        one[0] = 1;
        for (lo, hi) in newly_covered {
            for slot in lo.max(h.rt)..=hi {
                store.add(series, slot as u32, &one[..1]);
            }
        }
        self.sessions_last_min = self.sessions_last_min.min(last as u32);
        self.sessions.insert(
            key,
            Span {
                first: first as u32,
                last: last as u32,
                series,
            },
        );
    }
}

/// The key of an event's session in its group's span table.
fn session_key(e: &Event) -> u128 {
    xxhash_rust::xxh3::xxh3_128(e.session_id.as_str().as_bytes())
}

/// The earliest and latest instants an event tells about its session.
fn known_instants(e: &Event) -> (UnixMs, UnixMs) {
    match e.started_at() {
        Some(s) => (s.min(e.time), s.max(e.time)),
        None => (e.time, e.time),
    }
}

impl FamilyStore {
    fn new(family: Family) -> FamilyStore {
        FamilyStore {
            family,
            interners: family.dims().iter().map(|_| Interner::default()).collect(),
            index: FxHashMap::default(),
            series: Vec::new(),
            total: SlotColumn::new(family.columns() as u8),
            oldest: u32::MAX,
        }
    }

    /// Adds `deltas` at `slot` to one series and to the running total.
    fn add(&mut self, series: u32, slot: u32, deltas: &[u64]) {
        debug_assert_eq!(
            deltas.len(),
            self.family.columns(),
            "every slot of a family has one counter per column"
        );
        self.series[series as usize].column.add(slot, deltas);
        self.total.add(slot, deltas);
        self.oldest = self.oldest.min(slot);
    }

    /// Drops the slots before `horizon` from every series, unless none is that old.
    fn drop_before(&mut self, horizon: Slot) {
        if i64::from(self.oldest) >= horizon {
            return;
        }
        let mut oldest = u32::MAX;
        for s in &mut self.series {
            s.column.drop_before(horizon);
            oldest = oldest.min(s.column.first().unwrap_or(u32::MAX));
        }
        self.total.drop_before(horizon);
        // Computed from the series, not the total: a family whose counters live in a warehouse
        // holds markers in its series and nothing in its total (see `split`).
        self.oldest = oldest;
    }

    /// The sum of every series of this family.
    pub fn total(&self) -> &SlotColumn {
        &self.total
    }

    fn series_for(&mut self, dims: &[&str; DIMS_MAX]) -> u32 {
        let mut key = [0u32; DIMS_MAX];
        for (i, interner) in self.interners.iter_mut().enumerate() {
            key[i] = interner.intern(dims[i]);
        }
        let next = self.series.len() as u32;
        let stride = self.family.columns() as u8;
        *self.index.entry(key).or_insert_with(|| {
            self.series.push(Series {
                dims: key,
                column: SlotColumn::new(stride),
            });
            next
        })
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }

    pub fn interner(&self, dim: usize) -> &Interner {
        &self.interners[dim]
    }
}

impl Interner {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    pub fn get(&self, value: &str) -> Option<u32> {
        self.ids.get(value).copied()
    }

    pub fn value(&self, id: u32) -> &str {
        &self.values[id as usize]
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn rebuild(&mut self) {
        self.ids = self
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), i as u32))
            .collect();
    }
}

mod admission;
mod column;
mod compact;
mod split;

pub use admission::{Admission, LimitError, StateLimits};
pub use compact::CompactStats;
pub use split::Cell;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
