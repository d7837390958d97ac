//! The dedupe set: which `(group, id)` pairs were accepted within the horizon.
//!
//! Keys are 128-bit hashes (a collision is about as likely as a disk returning wrong bits and
//! going unnoticed); entries are grouped by the hour they arrived in so that expiry is a cheap
//! pop from the front, and memory is bounded by the arrival rate times the horizon.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How long an accepted id is remembered, in hours. The contract asks for at least 48 hours;
/// one more hour means an id is never forgotten early because of hour rounding.
pub const DEDUPE_HORIZON_HOURS: i64 = 49;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Dedupe {
    seen: FxHashMap<u128, i64>,
    by_hour: VecDeque<(i64, Vec<u128>)>,
}

impl Dedupe {
    /// The key of `(group, id)`. Keys are stored in checkpoints: changing this function needs a
    /// new checkpoint format version.
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

    pub fn contains(&self, key: u128) -> bool {
        self.seen.contains_key(&key)
    }

    /// Remembers `key` as accepted at `arrival_ms`.
    pub fn insert(&mut self, key: u128, arrival_ms: i64) {
        let hour = arrival_ms.div_euclid(3_600_000);
        if self.seen.insert(key, hour).is_some() {
            return;
        }
        match self.by_hour.back_mut() {
            Some((h, keys)) if *h >= hour => keys.push(key),
            _ => self.by_hour.push_back((hour, vec![key])),
        }
    }

    /// Forgets ids that arrived more than the horizon before `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        let oldest_kept = now_ms.div_euclid(3_600_000) - DEDUPE_HORIZON_HOURS;
        while let Some((hour, _)) = self.by_hour.front() {
            if *hour >= oldest_kept {
                break;
            }
            if let Some((_, keys)) = self.by_hour.pop_front() {
                for k in keys {
                    self.seen.remove(&k);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
