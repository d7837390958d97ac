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
    pub fn key(group: &str, id: &str) -> u128 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(group.as_bytes());
        h.update(&[0xff]);
        h.update(id.as_bytes());
        h.digest128()
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
