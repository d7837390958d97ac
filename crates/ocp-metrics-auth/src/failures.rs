//! Failed authentications per source address: a token bucket of failures, so that guessing
//! credentials (the admin token, the metrics token, a client secret) is slowed down and logged,
//! while a caller that presents valid credentials is never refused.

use jiff::Timestamp;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Failed authentications one source may make in a row before it is answered 429. Generous
/// enough for an operator mistyping a token or a client retrying with a stale secret a few
/// times; small enough that a guessing loop is refused within its first second.
pub const AUTH_FAILURES_BURST: u32 = 20;
/// One more failed authentication is allowed per this many milliseconds once the burst is
/// spent (20 a minute): online guessing of a 32-character token stays hopeless, and a source
/// that stops failing gets its whole burst back within a minute.
pub const AUTH_FAILURE_REFILL_MS: u64 = 3_000;
/// Most source addresses remembered. An attacker with many addresses cannot grow the table
/// past this; when it is full, sources back to a full allowance are dropped first (they behave
/// like unknown ones), then the one that failed longest ago.
pub const AUTH_FAILURE_SOURCES_MAX: usize = 4_096;

/// What a failed authentication from a source leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureVerdict {
    /// Counted; answer as usual (401).
    Counted,
    /// The source spent its allowance: answer 429 with `Retry-After: retry_after`. `first` is
    /// true for the first refusal since the source was last allowed, so that a guessing loop
    /// is logged once rather than once per guess.
    Refused { retry_after: Duration, first: bool },
}

/// Failed authentications per source address, bounded in memory.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    table: Mutex<HashMap<IpAddr, Allowance>>,
    failures: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Allowance {
    /// Failures still allowed now, fractional while refilling.
    left: f64,
    last: Timestamp,
    refusing: bool,
}

impl FailureLimiter {
    pub fn new() -> FailureLimiter {
        FailureLimiter {
            table: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Counts a failed authentication from `source` at `now`.
    pub fn record(&self, source: IpAddr, now: Timestamp) -> FailureVerdict {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let key = source_key(source);
        let mut table = self.table.lock();
        if !table.contains_key(&key) && table.len() >= AUTH_FAILURE_SOURCES_MAX {
            make_room(&mut table, now);
        }
        let full = Allowance {
            left: f64::from(AUTH_FAILURES_BURST),
            last: now,
            refusing: false,
        };
        let entry = table.entry(key).or_insert(full);
        *entry = refilled(*entry, now);
        if entry.left >= 1.0 {
            entry.left -= 1.0;
            entry.refusing = false;
            return FailureVerdict::Counted;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        let first = !entry.refusing;
        entry.refusing = true;
        let refill_secs = AUTH_FAILURE_REFILL_MS as f64 / 1000.0;
        FailureVerdict::Refused {
            retry_after: Duration::from_secs_f64((1.0 - entry.left) * refill_secs),
            first,
        }
    }

    /// Failed authentications counted since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Failed authentications answered 429 since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn sources(&self) -> usize {
        self.table.lock().len()
    }
}

/// The key a source is counted under: an IPv4 address, or the /64 network of an IPv6 address
/// (one host usually owns a whole /64, so counting single IPv6 addresses would give it 2^64
/// allowances). An IPv4-mapped IPv6 address counts as its IPv4 address.
fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// The allowance topped up for the time since the last failure. A clock stepping backwards
/// adds nothing.
fn refilled(a: Allowance, now: Timestamp) -> Allowance {
    if now <= a.last {
        return a;
    }
    let elapsed_ms = now.duration_since(a.last).as_secs_f64() * 1000.0;
    Allowance {
        left: (a.left + elapsed_ms / AUTH_FAILURE_REFILL_MS as f64)
            .min(f64::from(AUTH_FAILURES_BURST)),
        last: now,
        refusing: a.refusing,
    }
}

/// Frees at least one place in a full table.
fn make_room(table: &mut HashMap<IpAddr, Allowance>, now: Timestamp) {
    let burst = f64::from(AUTH_FAILURES_BURST);
    table.retain(|_, a| refilled(*a, now).left < burst);
    if table.len() >= AUTH_FAILURE_SOURCES_MAX
        && let Some(oldest) = table.iter().min_by_key(|(_, a)| a.last).map(|(k, _)| *k)
    {
        table.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use std::net::Ipv4Addr;

    fn t0() -> Timestamp {
        "2024-03-27T12:00:00Z".parse().unwrap()
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn the_burst_is_counted_then_refused_until_one_refills() {
        let l = FailureLimiter::new();
        for _ in 0..AUTH_FAILURES_BURST {
            assert_eq!(l.record(v4(1), t0()), FailureVerdict::Counted);
        }
        let wait = Duration::from_millis(AUTH_FAILURE_REFILL_MS);
        assert_eq!(
            l.record(v4(1), t0()),
            FailureVerdict::Refused {
                retry_after: wait,
                first: true
            }
        );
        assert_eq!(
            l.record(v4(1), t0()),
            FailureVerdict::Refused {
                retry_after: wait,
                first: false
            }
        );
        // Another source has its own allowance.
        assert_eq!(l.record(v4(2), t0()), FailureVerdict::Counted);
        let later = t0() + SignedDuration::from_millis(AUTH_FAILURE_REFILL_MS as i64);
        assert_eq!(l.record(v4(1), later), FailureVerdict::Counted);
        assert!(matches!(
            l.record(v4(1), later),
            FailureVerdict::Refused { first: true, .. }
        ));
        assert_eq!(l.failures(), u64::from(AUTH_FAILURES_BURST) + 5);
        assert_eq!(l.refused(), 3);
    }

    #[test]
    fn an_ipv6_network_shares_one_allowance() {
        let l = FailureLimiter::new();
        for i in 0..AUTH_FAILURES_BURST {
            let a = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i as u16);
            assert_eq!(l.record(IpAddr::V6(a), t0()), FailureVerdict::Counted);
        }
        let other_host = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 1, 2, 3);
        assert!(matches!(
            l.record(IpAddr::V6(other_host), t0()),
            FailureVerdict::Refused { .. }
        ));
        let other_network = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1);
        assert_eq!(
            l.record(IpAddr::V6(other_network), t0()),
            FailureVerdict::Counted
        );
        assert_eq!(
            source_key(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped())),
            v4(1)
        );
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_source() {
        let l = FailureLimiter::new();
        for i in 0..AUTH_FAILURE_SOURCES_MAX as u32 {
            let at = t0() + SignedDuration::from_millis(i64::from(i));
            let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(l.record(source, at), FailureVerdict::Counted);
        }
        assert_eq!(l.sources(), AUTH_FAILURE_SOURCES_MAX);
        let at = t0() + SignedDuration::from_secs(1);
        assert_eq!(l.record(v4(9), at), FailureVerdict::Counted);
        assert_eq!(l.sources(), AUTH_FAILURE_SOURCES_MAX);
        // The first source (10.0.0.0) was evicted: it starts again from a full allowance.
        assert!(
            !l.table
                .lock()
                .contains_key(&IpAddr::V4(Ipv4Addr::from(0x0a00_0000)))
        );
    }
}
