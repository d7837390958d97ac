//! The dedupe set: which `(group, id)` pairs were accepted within the horizon.
//!
//! Keys are 128-bit hashes (a collision is about as likely as a disk returning wrong bits and
//! going unnoticed), each with the hour it arrived in; once an hour a single pass forgets the
//! entries that fell out of the horizon. Memory is bounded by the arrival rate times the horizon,
//! at about 32 bytes an entry (a key and its hour, in an open-addressing table).

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// How long an accepted id is remembered, in hours. docs/api.md promises at least 48 hours;
/// one more hour means an id is never forgotten early because of hour rounding.
pub const DEDUPE_HORIZON_HOURS: i64 = 49;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Dedupe {
    /// Key to arrival hour (hours since the epoch).
    seen: FxHashMap<u128, u32>,
    /// The oldest arrival hour that may still be in `seen`; expiry does nothing before it ages.
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

    pub fn contains(&self, key: u128) -> bool {
        self.seen.contains_key(&key)
    }

    /// Remembers `key` as accepted at `arrival_ms`.
    pub fn insert(&mut self, key: u128, arrival_ms: i64) {
        let hour = hour_of(arrival_ms);
        if self.seen.is_empty() || hour < self.oldest_hour {
            self.oldest_hour = hour;
        }
        self.seen.entry(key).or_insert(hour);
    }

    /// Forgets `key` (a commit that failed after it was remembered).
    pub fn remove(&mut self, key: u128) {
        self.seen.remove(&key);
    }

    /// Forgets ids that arrived more than the horizon before `now_ms`: one pass over the set at
    /// most once per hour.
    pub fn expire(&mut self, now_ms: i64) {
        let oldest_kept = hour_of(now_ms).saturating_sub(DEDUPE_HORIZON_HOURS as u32);
        if self.oldest_hour >= oldest_kept {
            return;
        }
        self.seen.retain(|_, hour| *hour >= oldest_kept);
        self.oldest_hour = self.seen.values().copied().min().unwrap_or(oldest_kept);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

fn hour_of(ms: i64) -> u32 {
    ms.div_euclid(3_600_000).clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn ids_are_remembered_for_the_horizon_then_forgotten() {
        let mut d = Dedupe::default();
        let t0 = 1_000 * HOUR_MS;
        d.insert(Dedupe::key("g", "a"), t0);
        d.insert(Dedupe::key("g", "b"), t0 + 10 * HOUR_MS);
        d.expire(t0 + 49 * HOUR_MS);
        assert!(d.contains(Dedupe::key("g", "a")), "kept for 49 hours");
        d.expire(t0 + 50 * HOUR_MS);
        assert!(
            !d.contains(Dedupe::key("g", "a")),
            "forgotten after the horizon"
        );
        assert!(d.contains(Dedupe::key("g", "b")));
        assert!(
            !d.contains(Dedupe::key("h", "b")),
            "the group is part of the key"
        );
        d.expire(t0 + 60 * HOUR_MS);
        assert!(d.is_empty());
    }
}
