//! Generation speed. Run `cargo test -p ocp-metrics-sim --release --test speed -- --nocapture`
//! for the real numbers; a debug build only checks that it runs.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use ocp_metrics_sim::{SimConfig, SimEvent, Simulator};

/// Pulls `target` events and reports the rate; returns the elapsed seconds.
fn measure(name: &str, events: impl Iterator<Item = SimEvent>, target: usize) -> f64 {
    let started = Instant::now();
    let (mut n, mut bytes, mut longest) = (0usize, 0usize, 0usize);
    for ev in events.take(target) {
        bytes += ev.json.len() + 1;
        longest = longest.max(ev.json.len());
        n += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(n, target, "{name}");
    println!(
        "{name}: {n} events ({:.1} MB of NDJSON, longest line {longest} B) in {secs:.3} s: \
         {:.0} events/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        n as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    secs
}

#[test]
fn one_million_events_are_fast() {
    let target: usize = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let from: Timestamp = "2026-09-01T00:00:00Z".parse().unwrap();

    // The demo's backfill: default volume, the emission-ordered stream of two months.
    let demo = Simulator::new(SimConfig::default()).unwrap();
    let demo_secs = measure(
        "demo backfill (default config, emitted_between)",
        demo.emitted_between(from, from + SignedDuration::from_hours(60 * 24)),
        target,
    );

    // A load test's high-volume flat config: far more sessions in flight at once.
    let load = Simulator::new(SimConfig::for_event_rate(9, 20_000.0)).unwrap();
    let load_secs = measure(
        "load test (flat 20k events/s config, events_between)",
        load.events_between(from, from + SignedDuration::from_hours(24)),
        target,
    );

    if !cfg!(debug_assertions) {
        assert!(demo_secs < 2.0, "1M demo events took {demo_secs} s");
        assert!(load_secs < 2.0, "1M load-test events took {load_secs} s");
    }
}
