//! The dedupe set: which `(group, id)` pairs were accepted within the horizon.
//!
//! Keys are 128-bit hashes of the pair. An entry keeps the key's upper 112 bits (its
//! *fingerprint*: a collision is about as likely as a disk returning wrong bits and going
//! unnoticed) and the hour it arrived in, packed into one `u128`. Entries live in two places:
//!
//! - the **run**: one sorted array of packed entries, 16 bytes each, with a small index of
//!   where each range of fingerprints starts (about half a byte an entry), so that a lookup is
//!   an index read and a scan of about eight neighbouring entries;
//! - the **recent table**: a hash map of the entries inserted since the last merge.
//!
//! [`Dedupe::expire`] merges the recent table into the run once it holds more than a sixteenth
//! of the run, and once an hour drops the entries that fell out of the horizon in the same
//! pass. So the set costs about 17 bytes an entry (a hash map of the same keys costs 32 to 64),
//! and it is stored and restored as one sorted array, without a per-entry insert.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How long an accepted id is remembered, in hours. docs/api.md promises at least 48 hours;
/// one more hour means an id is never forgotten early because of hour rounding.
pub const DEDUPE_HORIZON_HOURS: i64 = 49;
/// The recent table is merged into the run once it holds more than this many entries and
/// more than [`RECENT_SHARE_OF_RUN_DIVISOR`]-th of the run: small enough that it adds about a
/// byte an entry, large enough that a merge (a pass over the run) is rare.
pub const RECENT_ENTRIES_MIN: usize = 1 << 16;
/// See [`RECENT_ENTRIES_MIN`].
pub const RECENT_SHARE_OF_RUN_DIVISOR: usize = 16;
/// Entries per index bucket of the run, on average: a lookup scans about this many.
const INDEX_BUCKET_ENTRIES: usize = 8;
/// Bits of a packed entry that hold its hour, relative to the run's base hour.
const HOUR_BITS: u32 = 16;
const HOUR_MASK: u128 = (1 << HOUR_BITS) - 1;
const FINGERPRINT_MASK: u128 = !HOUR_MASK;
/// The hour field of an entry removed from the run; the next merge drops it.
const TOMBSTONE: u128 = HOUR_MASK;
/// The largest relative hour an entry can hold (about seven years after the base hour). A
/// later hour is stored as this one, which keeps the entry longer, never shorter.
const RELATIVE_HOUR_MAX: u32 = (HOUR_MASK - 1) as u32;

/// The `(group, id)` pairs accepted within the horizon; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct Dedupe {
    /// Packed entries (fingerprint | hour - `base_hour`), sorted, one per fingerprint.
    run: Vec<u128>,
    /// `index[b]..index[b + 1]` holds the entries of `run` whose fingerprints start with the
    /// `index_bits` bits of `b`. Empty while `run` is.
    index: Vec<u32>,
    index_bits: u32,
    /// The hour the run's relative hours count from.
    base_hour: u32,
    /// Entries of the run marked removed.
    removed: usize,
    /// Fingerprint to arrival hour, for entries inserted since the last merge.
    recent: FxHashMap<u128, u32>,
    /// No entry arrived before this hour (exact after a merge; inserts only lower it).
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
            set.insert_hour(key & FINGERPRINT_MASK, hour);
        }
        set.merge(0);
        set
    }

    pub fn contains(&self, key: u128) -> bool {
        let f = key & FINGERPRINT_MASK;
        self.recent.contains_key(&f) || self.run_position(f).is_some()
    }

    /// Remembers `key` as accepted at `arrival_ms`. Callers check [`Dedupe::contains`] first;
    /// a key inserted twice is still one entry, with its earlier hour.
    pub fn insert(&mut self, key: u128, arrival_ms: i64) {
        self.insert_hour(key & FINGERPRINT_MASK, hour_of(arrival_ms));
    }

    /// Forgets `key` (a commit that failed after it was remembered).
    pub fn remove(&mut self, key: u128) {
        let f = key & FINGERPRINT_MASK;
        if self.recent.remove(&f).is_none()
            && let Some(p) = self.run_position(f)
        {
            self.run[p] = f | TOMBSTONE;
            self.removed += 1;
        }
    }

    /// Forgets ids that arrived more than the horizon before `now_ms` (a pass over the set at
    /// most once an hour), and merges the recent table into the run when it has grown.
    pub fn expire(&mut self, now_ms: i64) {
        let oldest_kept = hour_of(now_ms).saturating_sub(DEDUPE_HORIZON_HOURS as u32);
        let expiring = self.oldest_hour < oldest_kept && !self.is_empty();
        let recent_max = RECENT_ENTRIES_MIN.max(self.run.len() / RECENT_SHARE_OF_RUN_DIVISOR);
        if expiring || self.recent.len() > recent_max {
            self.merge(oldest_kept);
        }
    }

    pub fn len(&self) -> usize {
        self.run.len() - self.removed + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert_hour(&mut self, fingerprint: u128, hour: u32) {
        if self.is_empty() || hour < self.oldest_hour {
            self.oldest_hour = hour;
        }
        let kept = self.recent.entry(fingerprint).or_insert(hour);
        *kept = (*kept).min(hour);
    }

    /// Where the live entry of `fingerprint` is in the run.
    fn run_position(&self, fingerprint: u128) -> Option<usize> {
        let b = self.bucket(fingerprint)?;
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        let at = self.run[lo..hi]
            .iter()
            .position(|e| e & FINGERPRINT_MASK >= fingerprint)?;
        let e = self.run[lo + at];
        (e & FINGERPRINT_MASK == fingerprint && e & HOUR_MASK != TOMBSTONE).then_some(lo + at)
    }

    fn bucket(&self, fingerprint: u128) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        Some(bucket_of(fingerprint, self.index_bits))
    }

    /// Moves the recent table into the run and drops the entries that arrived before
    /// `oldest_kept` (and those marked removed).
    fn merge(&mut self, oldest_kept: u32) {
        let recent = std::mem::take(&mut self.recent);
        let (run, base_hour, oldest) = self.merged(recent.into_iter(), oldest_kept);
        self.run = run;
        self.base_hour = base_hour;
        self.oldest_hour = oldest;
        self.removed = 0;
        self.rebuild_index();
    }

    /// The run merged with `recent`, without the entries before `oldest_kept` or removed: the
    /// sorted entries relative to the returned base hour, and the oldest hour among them.
    fn merged(
        &self,
        recent: impl Iterator<Item = (u128, u32)>,
        oldest_kept: u32,
    ) -> (Vec<u128>, u32, u32) {
        // Every entry kept arrived at or after both, so relative hours are never negative.
        let base = oldest_kept.max(self.oldest_hour);
        let mut fresh: Vec<u128> = recent
            .filter(|&(_, hour)| hour >= oldest_kept)
            .map(|(f, hour)| pack(f, hour, base))
            .collect();
        fresh.sort_unstable();
        let old = self.run.iter().filter_map(|&e| {
            let rel = e & HOUR_MASK;
            let hour = self.base_hour.saturating_add(rel as u32);
            (rel != TOMBSTONE && hour >= oldest_kept).then(|| pack(e, hour, base))
        });
        let mut out: Vec<u128> = Vec::with_capacity(self.run.len() - self.removed + fresh.len());
        let mut oldest = u32::MAX;
        let mut push = |e: u128| {
            oldest = oldest.min(base.saturating_add((e & HOUR_MASK) as u32));
            match out.last_mut() {
                // The same fingerprint in both: keep the earlier hour.
                Some(last) if *last & FINGERPRINT_MASK == e & FINGERPRINT_MASK => {
                    *last = (*last).min(e);
                }
                _ => out.push(e),
            }
        };
        let mut old = old.peekable();
        let mut fresh = fresh.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), fresh.peek()) {
                (Some(a), Some(b)) => a <= b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_old { old.next() } else { fresh.next() };
            push(next.expect("peeked"));
        }
        let oldest = if out.is_empty() { oldest_kept } else { oldest };
        (out, base, oldest)
    }

    fn rebuild_index(&mut self) {
        self.index.clear();
        if self.run.is_empty() {
            self.index_bits = 0;
            return;
        }
        let buckets = (self.run.len() / INDEX_BUCKET_ENTRIES)
            .max(1)
            .next_power_of_two();
        self.index_bits = buckets.trailing_zeros();
        self.index.reserve(buckets + 1);
        let mut at = 0usize;
        for b in 0..buckets {
            while at < self.run.len() && bucket_of(self.run[at], self.index_bits) < b {
                at += 1;
            }
            self.index.push(position_u32(at));
        }
        self.index.push(position_u32(self.run.len()));
    }

    /// Rebuilds a set from its stored form, checking what the index relies on.
    fn from_stored(base_hour: u32, run: Vec<u128>) -> Result<Dedupe, String> {
        let mut oldest = u32::MAX;
        for (i, e) in run.iter().enumerate() {
            if e & HOUR_MASK == TOMBSTONE {
                return Err(format!("entry {i} is marked removed"));
            }
            if i > 0 && run[i - 1] & FINGERPRINT_MASK >= e & FINGERPRINT_MASK {
                return Err(format!("entry {i} is out of order"));
            }
            oldest = oldest.min(base_hour.saturating_add((e & HOUR_MASK) as u32));
        }
        let mut set = Dedupe {
            oldest_hour: if run.is_empty() { base_hour } else { oldest },
            run,
            base_hour,
            ..Dedupe::default()
        };
        set.rebuild_index();
        Ok(set)
    }
}

/// The stored form: the base hour, then the run merged with the recent table as little-endian
/// `u128`s in one byte string (restored with a copy and an order check, no per-entry insert).
impl Serialize for Dedupe {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let merged;
        let (base_hour, run) = if self.recent.is_empty() && self.removed == 0 {
            (self.base_hour, &self.run)
        } else {
            let recent = self.recent.iter().map(|(&f, &h)| (f, h));
            let (run, base, _) = self.merged(recent, 0);
            merged = run;
            (base, &merged)
        };
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(&base_hour)?;
        t.serialize_element(&RunBytes(run))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Dedupe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Dedupe, D::Error> {
        let (base_hour, run): (u32, StoredRun) = Deserialize::deserialize(deserializer)?;
        Dedupe::from_stored(base_hour, run.0)
            .map_err(|e| serde::de::Error::custom(format!("the dedupe set is corrupt: {e}")))
    }
}

struct RunBytes<'a>(&'a [u128]);

impl Serialize for RunBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if cfg!(target_endian = "little") {
            serializer.serialize_bytes(bytemuck::cast_slice(self.0))
        } else {
            let bytes: Vec<u8> = self.0.iter().flat_map(|e| e.to_le_bytes()).collect();
            serializer.serialize_bytes(&bytes)
        }
    }
}

struct StoredRun(Vec<u128>);

impl<'de> Deserialize<'de> for StoredRun {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StoredRun, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = StoredRun;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string of 16-byte dedupe entries")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<StoredRun, E> {
                let (entries, rest) = bytes.as_chunks::<16>();
                if !rest.is_empty() {
                    return Err(E::custom(format!(
                        "the dedupe run has {} bytes, not a multiple of 16",
                        bytes.len()
                    )));
                }
                Ok(StoredRun(
                    entries.iter().map(|e| u128::from_le_bytes(*e)).collect(),
                ))
            }
        }
        deserializer.deserialize_bytes(Visit)
    }
}

fn pack(fingerprint: u128, hour: u32, base: u32) -> u128 {
    let rel = hour.saturating_sub(base).min(RELATIVE_HOUR_MAX);
    (fingerprint & FINGERPRINT_MASK) | u128::from(rel)
}

fn bucket_of(entry: u128, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (entry >> (128 - bits)) as usize
    }
}

/// A run position as stored in the index. A run of four billion entries (64 GiB) is far past
/// what any machine this runs on holds.
fn position_u32(at: usize) -> u32 {
    u32::try_from(at).expect("the dedupe run holds fewer than 2^32 entries")
}

fn hour_of(ms: i64) -> u32 {
    ms.div_euclid(3_600_000).clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests;
