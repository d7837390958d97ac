use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

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

#[test]
fn a_large_set_grows_and_is_restored_at_75_percent_occupancy() {
    let mut d = Dedupe::default();
    let t0 = 500_000 * HOUR_MS;
    let n = 200_000;
    for i in 0..n {
        let key = Dedupe::key("g", &i.to_string());
        assert!(!d.contains(key));
        d.insert(key, t0);
        d.expire(t0);
    }
    assert_eq!(d.len(), n);
    assert!((0..n).all(|i| d.contains(Dedupe::key("g", &i.to_string()))));
    assert!(!(n..2 * n).any(|i| d.contains(Dedupe::key("g", &i.to_string()))));
    let occupancy = |d: &Dedupe| d.len() as f64 / d.homes as f64;
    assert!((0.59..=0.85).contains(&occupancy(&d)), "{}", occupancy(&d));
    let restored: Dedupe = postcard::from_bytes(&postcard::to_allocvec(&d).unwrap()).unwrap();
    assert_eq!(restored.len(), n);
    assert!((0..n).all(|i| restored.contains(Dedupe::key("g", &i.to_string()))));
    assert!(
        (0.74..=0.76).contains(&occupancy(&restored)),
        "{}",
        occupancy(&restored)
    );
}

#[test]
fn a_removed_entry_is_forgotten_in_either_place() {
    let mut d = Dedupe::default();
    let (a, b) = (Dedupe::key("g", "a"), Dedupe::key("g", "b"));
    d.insert(a, 0);
    d.insert(b, 0);
    d.remove(a);
    d.remove(b);
    assert!(!d.contains(a) && !d.contains(b));
    assert!(d.is_empty());
    let restored: Dedupe = postcard::from_bytes(&postcard::to_allocvec(&d).unwrap()).unwrap();
    assert!(restored.is_empty());
}

#[test]
fn a_stored_run_out_of_order_or_with_a_removed_entry_is_refused() {
    let (a, b) = (fingerprint(1 << 100), fingerprint(2 << 100));
    let stored = |slots: &[u128]| postcard::to_allocvec(&(7u32, SlotBytes(slots))).unwrap();
    let read = |bytes: Vec<u8>| postcard::from_bytes::<Dedupe>(&bytes).map(|d| d.len());
    assert_eq!(read(stored(&[a, EMPTY, b])).unwrap(), 2);
    for bad in [
        [b, EMPTY, a],
        [a, EMPTY, a],
        [a, EMPTY, b | TOMBSTONE],
        [a, EMPTY, 1 << 100],
    ] {
        let err = read(stored(&bad)).unwrap_err();
        assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Insert id `n` (after a `contains`, as callers do) at the current time.
    Insert(u16),
    Remove(u16),
    /// Advance the clock by this many minutes and expire.
    Advance(u16),
    /// Store and restore the set.
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u16..400).prop_map(Op::Insert),
        1 => (0u16..400).prop_map(Op::Remove),
        2 => (0u16..1_500).prop_map(Op::Advance),
        1 => Just(Op::Restore),
    ]
}

proptest! {
    /// The set answers like a plain map of key to arrival hour with the same expiry rule,
    /// whatever the rebuilds, removals and restores in between.
    #[test]
    fn the_set_answers_like_a_map_of_arrival_hours(ops in prop::collection::vec(op(), 1..300)) {
        let mut d = Dedupe::default();
        let mut model: HashMap<u128, i64> = HashMap::new();
        let mut now = 400_000 * HOUR_MS;
        for op in ops {
            match op {
                Op::Insert(n) => {
                    let key = Dedupe::key("g", &n.to_string());
                    prop_assert_eq!(d.contains(key), model.contains_key(&key));
                    model.entry(key).or_insert_with(|| {
                        d.insert(key, now);
                        now.div_euclid(HOUR_MS)
                    });
                }
                Op::Remove(n) => {
                    let key = Dedupe::key("g", &n.to_string());
                    d.remove(key);
                    model.remove(&key);
                }
                Op::Advance(minutes) => {
                    now += i64::from(minutes) * 60_000;
                    d.expire(now);
                    let oldest_kept = now.div_euclid(HOUR_MS) - DEDUPE_HORIZON_HOURS;
                    let oldest = model.values().copied().min();
                    if oldest.is_some_and(|h| h < oldest_kept) {
                        model.retain(|_, h| *h >= oldest_kept);
                    }
                    // Rebuilt at other moments too, as a growing set is.
                    if minutes % 2 == 0 {
                        d.rebuild(oldest_kept as u32, d.len());
                    }
                }
                Op::Restore => {
                    d = postcard::from_bytes(&postcard::to_allocvec(&d).unwrap()).unwrap();
                }
            }
            prop_assert_eq!(d.len(), model.len());
        }
        for n in 0..400u16 {
            let key = Dedupe::key("g", &n.to_string());
            prop_assert_eq!(d.contains(key), model.contains_key(&key));
        }
    }
}
