//! An accelerated soak: the engine under steady load for days of simulated time (a manual clock
//! advanced one minute per step), sampling what it holds. Real-time data (49 h), session spans
//! and the dedupe set (49 h) must level off once the clock passes their horizons; the log must
//! stay bounded by checkpoints; batch data grows by one day's worth per day (720-day retention).
//!
//! It runs in every `cargo test` (so in CI) at its defaults; `scripts/soak.sh --accelerated`
//! runs it longer in release. `SOAK_DAYS` (default 4) and `SOAK_EVENTS_PER_MINUTE` (default
//! 100) tune it.

use jiff::{SignedDuration, Timestamp};
use ocp_metrics_core::event::EventDraft;
use ocp_metrics_core::{Clock, Event, ManualClock};
use ocp_metrics_store::{Engine, EngineConfig};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One minute of traffic at `now`: sessions of a miniApp invocation and an end, with a churning
/// flow name (a new one each day) among steady ones.
fn minute(now: Timestamp, step: u64, per_minute: u64) -> Vec<Event> {
    let mut out = Vec::with_capacity(per_minute as usize);
    let day = now.as_second() / 86_400;
    for i in 0..per_minute / 2 {
        let n = step * per_minute + i;
        let start = Timestamp::from_second(now.as_second() - 50 - (n % 7) as i64 * 20)
            .unwrap()
            .to_string();
        let end = Timestamp::from_second(now.as_second() - 10)
            .unwrap()
            .to_string();
        let session = format!("s{n}");
        let churn = format!("promo-{day}");
        let name = if n.is_multiple_of(10) {
            churn.as_str()
        } else {
            ["Menu", "YesNo", "Account", "Amount"][(n % 4) as usize]
        };
        for (kind, tag) in [("miniapp_end", "m"), ("session_end", "e")] {
            let id = format!("{n}-{tag}");
            let d = EventDraft {
                id: Some(&id),
                kind: Some(kind),
                time: Some(&end),
                group: Some(["acme", "globex", "initech"][(n % 3) as usize]),
                session_id: Some(&session),
                channel: Some(if n.is_multiple_of(2) { "chat" } else { "omIVR" }),
                region: Some("eu1"),
                started_at: Some(&start),
                miniapp_name: Some(name),
                miniapp_id: Some("m"),
                miniapp_type: Some("Intent"),
                locale: Some("en-US"),
                result: Some(if n.is_multiple_of(4) {
                    "fail"
                } else {
                    "success"
                }),
                ..EventDraft::default()
            };
            out.push(Event::parse(&d, now).unwrap());
        }
    }
    out
}

#[test]
fn steady_load_for_days_levels_off_after_the_horizons() {
    let days = env_or("SOAK_DAYS", 4);
    let per_minute = env_or("SOAK_EVENTS_PER_MINUTE", 10);
    let dir = tempfile::tempdir().unwrap();
    let start: Timestamp = "2024-03-01T00:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    // Checkpoints every 4 MiB of log and 4 MiB segments, so truncation shows within hours.
    let config = EngineConfig {
        checkpoint_log_bytes: 4 << 20,
        log: ocp_metrics_store::FileLogOptions {
            segment_bytes_max: 4 << 20,
            ..Default::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::open(dir.path(), config, clock.clone() as Arc<dyn Clock>).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "\n=== accelerated soak: {days} days, {per_minute} events per simulated minute ({:.1} per second)",
        per_minute as f64 / 60.0
    );
    println!(
        "{:>6} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>7} {:>9} {:>9}",
        "hour",
        "events",
        "dedupe",
        "series",
        "slots",
        "sessions",
        "values",
        "ckpts",
        "disk_KiB",
        "rss_KiB"
    );
    let mut accepted = 0usize;
    let steps = days * 24 * 60;
    let mut rows = Vec::new();
    for step in 0..steps {
        clock.advance(SignedDuration::from_mins(1));
        let outcome = rt
            .block_on(engine.ingest(minute(clock.now(), step, per_minute)))
            .unwrap();
        accepted += outcome.accepted;
        // The writer runs retention about once a (real) second; give it a tick now and then.
        if step % 360 == 359 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
            rt.block_on(engine.ingest(Vec::new())).unwrap();
            let s = engine.stats();
            let c = engine.counters();
            let row = (
                (step + 1) / 60,
                accepted,
                c.dedupe_entries.load(Ordering::Relaxed),
                s.series,
                s.slots,
                s.sessions_tracked,
                s.interned_values,
                c.checkpoints.load(Ordering::Relaxed),
                dir_bytes(dir.path()) / 1024,
                rss_kib(),
            );
            println!(
                "{:>6} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>7} {:>9} {:>9}",
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9
            );
            rows.push(row);
        }
    }
    rt.block_on(engine.shutdown());
    // Past 49 hours the dedupe set and the session spans stop growing: compare the last sample
    // with the one a day earlier.
    if days >= 3 {
        let last = rows.last().unwrap();
        let day_before = rows[rows.len() - 5];
        // The load curve and its noise move a 49-hour window by some percent from one day to the
        // next; unbounded growth would add a whole day (about half of it). Shrinking is fine.
        let within = |a: u64, b: u64| a * 100 <= b.max(1) * 125;
        assert!(
            last.2 * 4 < last.1 as u64 * 3,
            "the dedupe set holds nearly every id ever accepted: {last:?}"
        );
        assert!(
            within(last.2, day_before.2),
            "dedupe kept growing: {day_before:?} -> {last:?}"
        );
        assert!(
            within(last.5 as u64, day_before.5 as u64),
            "session spans kept growing: {day_before:?} -> {last:?}"
        );
    }
}
