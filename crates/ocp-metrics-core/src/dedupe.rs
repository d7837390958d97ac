//! The dedupe set: which `(group, id)` pairs were accepted within the horizon.
//!
//! Keys are 128-bit hashes of the pair. An entry keeps 111 bits of the key (its
//! *fingerprint*: a collision is about as likely as a disk returning wrong bits and going
//! unnoticed) and the hour it arrived in, packed into one `u128`, in an **ordered hash
//! table** (Amble and Knuth's ordered linear probing): an entry's home slot is its fingerprint
//! scaled to the table's length, it sits at or after its home with only occupied slots
//! between, and the entries of the table are in fingerprint order. So a lookup reads from the
//! home slot on until it finds the fingerprint, a larger one or an empty slot (one cache miss,
//! about four slots at the highest occupancy), and an insert shifts the rest of its cluster
//! one slot on.
//!
//! The table is rebuilt, in one sequential pass, when it passes 85% occupancy (to 60%), and
//! when the oldest entries fall out of the horizon (at most once an hour; to 75%). So it costs
//! 19 to 27 bytes an entry (a hash map of keys to hours costs 32 to 64), and it is stored as its
//! slots and restored by placing them again in order (at 75%), without hashing an entry.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How long an accepted id is remembered, in hours. docs/api.md promises at least 48 hours;
/// one more hour means an id is never forgotten early because of hour rounding.
pub const DEDUPE_HORIZON_HOURS: i64 = 49;
/// Home slots per hundred entries when the table is built or restored: 75% occupancy, where
/// an insert shifts about five slots.
const SLOTS_PER_HUNDRED_ENTRIES: usize = 133;
/// The table is rebuilt larger when an insert would take it past this occupancy, in percent
/// (an insert then shifts about twenty slots, a lookup reads about four).
const OCCUPANCY_MAX_PERCENT: usize = 85;
/// Growth: a full table is rebuilt with room for this many times its entries, per hundred
/// (60% occupancy after it).
const GROWTH_PER_HUNDRED: usize = 125;
/// Slots past the home slots, for the clusters that run over the end, per thousand home slots
/// (plus [`OVERFLOW_SLOTS_MIN`]); the table grows further only if they fill.
const OVERFLOW_SLOTS_PER_THOUSAND: usize = 2;
const OVERFLOW_SLOTS_MIN: usize = 64;
/// Bits of a packed entry that hold its hour, relative to the table's base hour.
const HOUR_BITS: u32 = 16;
const HOUR_MASK: u128 = (1 << HOUR_BITS) - 1;
const FINGERPRINT_MASK: u128 = !HOUR_MASK;
/// Set in every fingerprint, so that no entry is zero, the empty slot.
const FINGERPRINT_FLAG: u128 = 1 << HOUR_BITS;
const EMPTY: u128 = 0;
/// The hour field of a removed entry; the next rebuild drops it.
const TOMBSTONE: u128 = HOUR_MASK;
/// The largest relative hour an entry can hold (about seven years after the base hour). A
/// later hour is stored as this one, which keeps the entry longer, never shorter.
const RELATIVE_HOUR_MAX: u32 = (HOUR_MASK - 1) as u32;

/// The `(group, id)` pairs accepted within the horizon; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct Dedupe {
    /// Packed entries (fingerprint | hour - `base_hour`), [`EMPTY`] where none is.
    slots: Vec<u128>,
    /// The slots entries' homes are scaled to; `slots` extends past them for the clusters
    /// that run over the end.
    homes: usize,
    /// Entries in `slots`, removed ones included.
    entries: usize,
    /// Entries marked removed.
    removed: usize,
    /// The hour relative hours count from.
    base_hour: u32,
    /// No entry arrived before this hour (exact after a rebuild; inserts only lower it).
    oldest_hour: u32,
}

impl Dedupe {
    /// The key of `(group, id)`. Keys are stored in checkpoints: changing this function needs a
    /// new checkpoint payload version (`ocp_metrics_store::snapshot`) whose reader rehashes or
    /// drops the old keys.
    pub fn key(group: &str, id: &str) -> u128 {
        // One-shot hashing of `group 0xff id` (0xff never occurs in UTF-8, so the pair is
        // unambiguous); a stack buffer covers every valid pair without allocating.
        let mut buf = [0u8; 2 * crate::limits::EVENT_STRING_BYTES_MAX + 1];
        let n = group.len() + 1 + id.len();
        if n > buf.len() {
            let mut v = Vec::with_capacity(n);
            v.extend_from_slice(group.as_bytes());
            v.push(0xff);
            v.extend_from_slice(id.as_bytes());
            return xxhash_rust::xxh3::xxh3_128(&v);
        }
        buf[..group.len()].copy_from_slice(group.as_bytes());
        buf[group.len()] = 0xff;
        buf[group.len() + 1..n].copy_from_slice(id.as_bytes());
        xxhash_rust::xxh3::xxh3_128(&buf[..n])
    }

    /// A set holding `(key, arrival hour since the epoch)` pairs, as an older format stored them.
    pub fn from_hours(entries: impl IntoIterator<Item = (u128, u32)>) -> Dedupe {
        let mut set = Dedupe::default();
        for (key, hour) in entries {
            set.insert_hour(fingerprint(key), hour);
        }
        set
    }

    pub fn contains(&self, key: u128) -> bool {
        match self.find(fingerprint(key)) {
            Ok(at) => self.slots[at] & HOUR_MASK != TOMBSTONE,
            Err(_) => false,
        }
    }

    /// Remembers `key` as accepted at `arrival_ms`. A key inserted twice is one entry, with
    /// its earlier hour.
    pub fn insert(&mut self, key: u128, arrival_ms: i64) {
        self.insert_hour(fingerprint(key), hour_of(arrival_ms));
    }

    /// Forgets `key` (a commit that failed after it was remembered).
    pub fn remove(&mut self, key: u128) {
        let f = fingerprint(key);
        if let Ok(at) = self.find(f)
            && self.slots[at] & HOUR_MASK != TOMBSTONE
        {
            self.slots[at] = f | TOMBSTONE;
            self.removed += 1;
        }
    }

    /// Forgets ids that arrived more than the horizon before `now_ms`: a rebuild at most once
    /// an hour.
    pub fn expire(&mut self, now_ms: i64) {
        let oldest_kept = hour_of(now_ms).saturating_sub(DEDUPE_HORIZON_HOURS as u32);
        if self.oldest_hour < oldest_kept && !self.is_empty() {
            self.rebuild(oldest_kept, self.len());
        }
    }

    pub fn len(&self) -> usize {
        self.entries - self.removed
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert_hour(&mut self, fingerprint: u128, hour: u32) {
        if self.entries == 0 {
            self.base_hour = hour;
        }
        if self.is_empty() || hour < self.oldest_hour {
            self.oldest_hour = hour;
        }
        if hour < self.base_hour {
            // Earlier than every relative hour can say (a clock set back by more than the
            // horizon): rebase the set on this hour first.
            self.rebuild(0, self.len());
        }
        if (self.entries + 1) * 100 > self.homes * OCCUPANCY_MAX_PERCENT {
            self.rebuild(0, (self.len() + 1).max(64) * GROWTH_PER_HUNDRED / 100);
        }
        let entry = pack(fingerprint, hour, self.base_hour);
        match self.find(fingerprint) {
            Ok(at) => {
                let kept = self.slots[at];
                if kept & HOUR_MASK == TOMBSTONE {
                    self.removed -= 1;
                    self.slots[at] = entry;
                } else {
                    self.slots[at] = kept.min(entry);
                }
            }
            Err(at) => self.insert_at(at, entry),
        }
    }

    /// The slot of `fingerprint` (removed or not), or where it belongs.
    fn find(&self, fingerprint: u128) -> Result<usize, usize> {
        let mut at = home(fingerprint, self.homes);
        while let Some(&e) = self.slots.get(at) {
            if e == EMPTY || e & FINGERPRINT_MASK > fingerprint {
                return Err(at);
            }
            if e & FINGERPRINT_MASK == fingerprint {
                return Ok(at);
            }
            at += 1;
        }
        Err(at)
    }

    /// Puts `entry` at `at`, shifting the rest of its cluster one slot on.
    fn insert_at(&mut self, at: usize, entry: u128) {
        let free = self.slots[at..]
            .iter()
            .position(|&e| e == EMPTY)
            .map(|i| at + i);
        let free = free.unwrap_or_else(|| push_empty(&mut self.slots));
        self.slots.copy_within(at..free, at + 1);
        self.slots[at] = entry;
        self.entries += 1;
    }

    /// Builds the table again with room for `room` entries, without the entries that arrived
    /// before `oldest_kept` and those marked removed.
    fn rebuild(&mut self, oldest_kept: u32, room: usize) {
        // Every entry kept arrived at or after both, so relative hours are never negative.
        let base = oldest_kept.max(self.oldest_hour);
        let mut placed = Placed::with_room_for(room.max(self.len()));
        for e in self.live(oldest_kept, base) {
            placed.push(e);
        }
        self.install(placed, base);
    }

    /// The entries kept by a rebuild, in order, packed relative to `base`.
    fn live(&self, oldest_kept: u32, base: u32) -> impl Iterator<Item = u128> + '_ {
        self.slots.iter().filter_map(move |&e| {
            let rel = e & HOUR_MASK;
            let hour = self.base_hour.saturating_add(rel as u32);
            (e != EMPTY && rel != TOMBSTONE && hour >= oldest_kept).then(|| pack(e, hour, base))
        })
    }

    fn install(&mut self, placed: Placed, base: u32) {
        self.oldest_hour = placed
            .oldest_rel
            .map_or(base, |rel| base.saturating_add(rel));
        self.slots = placed.slots;
        self.homes = placed.homes;
        self.entries = placed.entries;
        self.removed = 0;
        self.base_hour = base;
    }
}

/// A table being built: entries placed in ascending order, each at its home or just after the
/// one before.
struct Placed {
    slots: Vec<u128>,
    homes: usize,
    entries: usize,
    /// Where the last entry went.
    last: Option<usize>,
    /// The oldest relative hour placed.
    oldest_rel: Option<u32>,
}

impl Placed {
    /// Room for `entries` entries at 75% occupancy.
    fn with_room_for(entries: usize) -> Placed {
        let homes = (entries * SLOTS_PER_HUNDRED_ENTRIES / 100).max(1);
        let overflow = OVERFLOW_SLOTS_MIN + homes * OVERFLOW_SLOTS_PER_THOUSAND / 1000;
        let mut slots = Vec::with_capacity(homes + overflow);
        slots.resize(homes + overflow, EMPTY);
        Placed {
            slots,
            homes,
            entries: 0,
            last: None,
            oldest_rel: None,
        }
    }

    /// Places the next entry; entries come in ascending order of fingerprint.
    fn push(&mut self, e: u128) {
        let rel = (e & HOUR_MASK) as u32;
        self.oldest_rel = Some(self.oldest_rel.map_or(rel, |o| o.min(rel)));
        let at = home(e, self.homes).max(self.last.map_or(0, |l| l + 1));
        if at == self.slots.len() {
            push_empty(&mut self.slots);
        }
        self.slots[at] = e;
        self.last = Some(at);
        self.entries += 1;
    }
}

/// The stored form: the base hour, then the run's slots (empty ones included) as
/// little-endian `u128`s in one byte string. A reader needs only their order: it places the
/// entries again, so the table's shape may change between builds.
impl Serialize for Dedupe {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut rebuilt = None;
        let (base_hour, slots) = if self.removed == 0 {
            (self.base_hour, &self.slots)
        } else {
            // Without the removed entries, which a reader would refuse.
            let base = self.oldest_hour;
            let placed = rebuilt.insert(Placed::with_room_for(self.len()));
            self.live(0, base).for_each(|e| placed.push(e));
            (base, &placed.slots)
        };
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(&base_hour)?;
        t.serialize_element(&SlotBytes(slots))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Dedupe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Dedupe, D::Error> {
        let (base, StoredRun(placed)): (u32, StoredRun) = Deserialize::deserialize(deserializer)?;
        let mut set = Dedupe::default();
        set.install(placed, base);
        Ok(set)
    }
}

struct SlotBytes<'a>(&'a [u128]);

impl Serialize for SlotBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if cfg!(target_endian = "little") {
            serializer.serialize_bytes(bytemuck::cast_slice(self.0))
        } else {
            let bytes: Vec<u8> = self.0.iter().flat_map(|e| e.to_le_bytes()).collect();
            serializer.serialize_bytes(&bytes)
        }
    }
}

/// A stored run, placed again as it is read.
struct StoredRun(Placed);

impl<'de> Deserialize<'de> for StoredRun {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StoredRun, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = StoredRun;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string of 16-byte dedupe slots")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<StoredRun, E> {
                place_stored(bytes)
                    .map(StoredRun)
                    .map_err(|e| E::custom(format!("the dedupe set is corrupt: {e}")))
            }
        }
        deserializer.deserialize_bytes(Visit)
    }
}

/// Places stored slots, checking what lookups rely on: entries in strictly ascending
/// fingerprint order, none marked removed or without the fingerprint flag.
fn place_stored(bytes: &[u8]) -> Result<Placed, String> {
    let (slots, rest) = bytes.as_chunks::<16>();
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes of slots, not a multiple of 16",
            bytes.len()
        ));
    }
    let entries = slots
        .iter()
        .map(|s| u128::from_le_bytes(*s))
        .filter(|&e| e != EMPTY);
    let mut placed = Placed::with_room_for(entries.clone().count());
    let mut previous = None;
    for (i, e) in entries.enumerate() {
        if e & HOUR_MASK == TOMBSTONE || e & FINGERPRINT_FLAG == 0 {
            return Err(format!("entry {i} is not a stored entry ({e:#034x})"));
        }
        if previous.is_some_and(|p| p >= e & FINGERPRINT_MASK) {
            return Err(format!("entry {i} is out of order"));
        }
        previous = Some(e & FINGERPRINT_MASK);
        placed.push(e);
    }
    Ok(placed)
}

fn pack(fingerprint: u128, hour: u32, base: u32) -> u128 {
    let rel = hour.saturating_sub(base).min(RELATIVE_HOUR_MAX);
    (fingerprint & FINGERPRINT_MASK) | u128::from(rel)
}

/// One more empty slot at the end, when the overflow slots are full (rare; the next rebuild
/// makes room again); the index of the new slot. Grows the allocation by a few slots, not twice.
fn push_empty(slots: &mut Vec<u128>) -> usize {
    slots.reserve_exact(OVERFLOW_SLOTS_MIN);
    slots.push(EMPTY);
    slots.len() - 1
}

/// The fingerprint of a key: its upper 112 bits, with [`FINGERPRINT_FLAG`] set.
fn fingerprint(key: u128) -> u128 {
    (key & FINGERPRINT_MASK) | FINGERPRINT_FLAG
}

/// The home slot of an entry in a run whose entries' homes are scaled to `homes` slots:
/// monotonic in the entry, so that entries placed in order keep the table sorted.
fn home(entry: u128, homes: usize) -> usize {
    (((entry >> 64) * homes as u128) >> 64) as usize
}

fn hour_of(ms: i64) -> u32 {
    ms.div_euclid(3_600_000).clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests;
