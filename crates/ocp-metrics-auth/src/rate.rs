//! A token bucket per subject.

use jiff::Timestamp;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

/// When the table holds more subjects than this, buckets that have refilled completely are
/// dropped: a full bucket behaves exactly like a missing one, so nothing changes for callers and
/// the table stays bounded by the subjects active within one refill period. After a prune the
/// next one waits until the table has doubled, so the scans cost O(1) per check amortized.
const PRUNE_ABOVE_SUBJECTS: usize = 10_000;

#[derive(Debug)]
struct Table {
    buckets: HashMap<String, Bucket>,
    prune_above: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Timestamp,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate_per_second: f64,
    burst: f64,
    table: Mutex<Table>,
}

impl RateLimiter {
    /// `rate_per_second` and `burst` must be finite with `rate_per_second > 0` and `burst >= 1`;
    /// the registry checks that before building one.
    pub fn new(rate_per_second: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate_per_second,
            burst,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                prune_above: PRUNE_ABOVE_SUBJECTS,
            }),
        }
    }

    /// Takes one token from `subject`'s bucket, or says how long until one is available.
    pub fn check(&self, subject: &str, now: Timestamp) -> Result<(), Duration> {
        let mut table = self.table.lock();
        if table.buckets.len() > table.prune_above {
            table
                .buckets
                .retain(|_, b| self.refilled(*b, now).tokens < self.burst);
            table.prune_above = PRUNE_ABOVE_SUBJECTS.max(2 * table.buckets.len());
        }
        let buckets = &mut table.buckets;
        let bucket = match buckets.get(subject) {
            Some(b) => self.refilled(*b, now),
            None => Bucket {
                tokens: self.burst,
                last: now,
            },
        };
        if bucket.tokens >= 1.0 {
            let taken = Bucket {
                tokens: bucket.tokens - 1.0,
                ..bucket
            };
            buckets.insert(subject.to_owned(), taken);
            Ok(())
        } else {
            buckets.insert(subject.to_owned(), bucket);
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.rate_per_second,
            ))
        }
    }

    /// The bucket topped up for the time since it was last seen. A clock that steps backwards
    /// adds nothing and does not move `last` back, so it cannot be used to mint tokens.
    fn refilled(&self, b: Bucket, now: Timestamp) -> Bucket {
        if now <= b.last {
            return b;
        }
        let elapsed = now.duration_since(b.last).as_secs_f64();
        Bucket {
            tokens: (b.tokens + elapsed * self.rate_per_second).min(self.burst),
            last: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    #[test]
    fn exhausts_then_refills_with_the_clock() {
        let t0: Timestamp = "2024-03-27T12:00:00Z".parse().unwrap();
        let rl = RateLimiter::new(2.0, 3.0);
        for _ in 0..3 {
            assert_eq!(rl.check("a", t0), Ok(()));
        }
        assert_eq!(rl.check("a", t0), Err(Duration::from_millis(500)));
        // Another subject has its own bucket.
        assert_eq!(rl.check("b", t0), Ok(()));
        // A quarter second refills half a token: still short, by a quarter second.
        let t1 = t0 + SignedDuration::from_millis(250);
        assert_eq!(rl.check("a", t1), Err(Duration::from_millis(250)));
        let t2 = t0 + SignedDuration::from_millis(500);
        assert_eq!(rl.check("a", t2), Ok(()));
        assert!(rl.check("a", t2).is_err());
        // A long pause refills only up to the burst.
        let t3 = t2 + SignedDuration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(rl.check("a", t3), Ok(()));
        }
        assert!(rl.check("a", t3).is_err());
    }

    #[test]
    fn clock_stepping_back_mints_nothing() {
        let t0: Timestamp = "2024-03-27T12:00:00Z".parse().unwrap();
        let rl = RateLimiter::new(1.0, 1.0);
        assert!(rl.check("a", t0).is_ok());
        let back = t0 - SignedDuration::from_secs(10);
        assert!(rl.check("a", back).is_err());
        assert!(rl.check("a", t0).is_err());
        assert!(rl.check("a", t0 + SignedDuration::from_secs(1)).is_ok());
    }

    #[test]
    fn pruning_keeps_partial_buckets() {
        let t0: Timestamp = "2024-03-27T12:00:00Z".parse().unwrap();
        let rl = RateLimiter::new(1.0, 2.0);
        assert!(rl.check("busy", t0).is_ok());
        assert!(rl.check("busy", t0).is_ok());
        for i in 0..PRUNE_ABOVE_SUBJECTS {
            assert!(rl.check(&format!("s{i}"), t0).is_ok());
        }
        // One second later every `s*` bucket is full again and pruned; `busy` is not.
        let t1 = t0 + SignedDuration::from_secs(1);
        assert!(rl.check("new", t1).is_ok());
        assert!(rl.table.lock().buckets.len() < 10);
        assert!(rl.check("busy", t1).is_ok());
        assert!(rl.check("busy", t1).is_err());
    }
}
