//! The benchmark's events: realistic traffic from `ocp-metrics-sim` plus a long tail of miniApp
//! invocations over many (miniApp, locale) pairs, written once to an NDJSON file that every
//! system under test loads.
//!
//! The simulator's catalogue has a dozen miniApps and a few locales per group, so a drilldown
//! by `miniapp_name` and `locale` over its traffic alone has a few dozen series. Dashboards of a
//! large tenant see far more, so the bench adds sessions that invoke miniApps drawn from
//! [`TAIL_NAMES`] x [`TAIL_LOCALES`] (1,000 pairs), written in the same wire format
//! (docs/api.md section 3), including re-sent duplicates.
//!
//! The data set has two parts, each a merge of both generators: *history* (from
//! `HISTORY_DAYS` ago to 48 hours ago, at a low flat rate) and *recent* (the last 48 hours, at a
//! high flat rate), so that the 720-day batch queries and the 48-hour real-time queries both
//! run over realistic volumes. The file is in emission order within each part, so that
//! ingesting it in order looks like producers catching up on history, then sending live data.

use crate::stats::Rng;
use anyhow::Context;
use jiff::Timestamp;
use ocp_metrics_sim::{SimConfig, Simulator};
use rustc_hash::FxHashSet;
use serde::Serialize;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

/// The group every benchmark event belongs to (the simulator's hand-made telco profile in
/// Asia/Kolkata, whose dashboards are read in that zone).
pub const GROUP: &str = "globex-telco";
/// History starts this many days before the generation instant: inside the 720-day batch
/// retention with a margin for a long run.
pub const HISTORY_DAYS: i64 = 715;
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// The long tail's miniApps: 50 names.
pub const TAIL_NAMES: usize = 50;
/// The long tail's locales: 20.
pub const TAIL_LOCALES: [&str; 20] = [
    "en-US", "en-GB", "en-IN", "hi-IN", "ta-IN", "te-IN", "bn-IN", "mr-IN", "kn-IN", "ml-IN",
    "gu-IN", "pa-IN", "ur-IN", "es-US", "fr-FR", "de-DE", "ar-AE", "zh-CN", "ja-JP", "pt-BR",
];
const TAIL_TYPES: [&str; 8] = [
    "Intent",
    "YesNo",
    "Date",
    "Amount",
    "Alphanumeric",
    "PhoneNumber",
    "Menu",
    "Name",
];
const TAIL_FAIL_REASONS: [&str; 3] = ["max_attempts", "not_recognized", "validation_failed"];
/// MiniApp invocations per long-tail session; a session emits `2 + 2 * this` events.
const TAIL_INVOCATIONS: usize = 4;
const TAIL_EVENTS_PER_SESSION: f64 = 2.0 + 2.0 * TAIL_INVOCATIONS as f64;
/// Share of long-tail events re-sent with the same id (a retrying producer).
const TAIL_DUPLICATE_FRACTION: f64 = 0.005;
/// Generated sessions end this long before the generation instant at the latest, so that no
/// event is in the future.
const TAIL_SESSION_MAX_MS: i64 = 4 * 60_000;

/// How many events of each kind to generate (approximately for the simulator, whose rate is a
/// mean).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DataSize {
    pub history_sim: u64,
    pub history_tail: u64,
    pub recent_sim: u64,
    pub recent_tail: u64,
    /// Names of the long tail's miniApps ([`TAIL_NAMES`] normally): a drilldown by name x
    /// locale has about this times 20 series.
    pub tail_names: usize,
}

/// What was generated.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataStats {
    /// Lines in the file (events sent), duplicates included.
    pub lines: u64,
    /// Distinct `(group, id)`: what a deduplicating store accepts.
    pub unique: u64,
    pub history_lines: u64,
    pub recent_lines: u64,
    pub bytes: u64,
    pub generated_at: String,
    pub generate_seconds: f64,
}

/// Generates the data set anchored at `now` into `path`.
pub fn generate(
    path: &Path,
    size: DataSize,
    now: Timestamp,
    seed: u64,
) -> anyhow::Result<DataStats> {
    let started = std::time::Instant::now();
    let now_ms = now.as_millisecond();
    let recent_from = now_ms - 48 * MS_PER_HOUR;
    let history_from = now_ms - HISTORY_DAYS * MS_PER_DAY;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(8 << 20, file);
    let mut seen = FxHashSet::default();
    let mut stats = DataStats {
        generated_at: now.to_string(),
        ..DataStats::default()
    };

    let hist = merged(
        sim_stream(seed, size.history_sim, history_from, recent_from)?,
        TailStream::new(
            seed ^ 0x4849_5354,
            history_from,
            recent_from,
            size.history_tail,
        )
        .with_names(size.tail_names),
    );
    stats.history_lines = write_all(hist, &mut out, &mut seen, &mut stats)?;
    let recent = merged(
        sim_stream(seed ^ 1, size.recent_sim, recent_from, now_ms)?,
        TailStream::new(
            seed ^ 0x5245_4345,
            recent_from,
            now_ms - TAIL_SESSION_MAX_MS,
            size.recent_tail,
        )
        .with_names(size.tail_names),
    );
    stats.recent_lines = write_all(recent, &mut out, &mut seen, &mut stats)?;
    out.flush()?;
    stats.unique = seen.len() as u64;
    stats.generate_seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

fn write_all(
    events: impl Iterator<Item = (i64, String)>,
    out: &mut impl Write,
    seen: &mut FxHashSet<u64>,
    stats: &mut DataStats,
) -> anyhow::Result<u64> {
    let mut n = 0;
    for (_, line) in events {
        seen.insert(id_hash(&line));
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        stats.bytes += line.len() as u64 + 1;
        stats.lines += 1;
        n += 1;
    }
    Ok(n)
}

/// A hash of the event's id (the group is the same for every line). Both generators write
/// `{"id":"...` first, with ids that need no escaping.
fn id_hash(line: &str) -> u64 {
    let rest = line.strip_prefix("{\"id\":\"").unwrap_or(line);
    let id = rest.split('"').next().unwrap_or(rest);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

fn sim_stream(
    seed: u64,
    events: u64,
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<Box<dyn Iterator<Item = (i64, String)>>> {
    if events == 0 || to_ms <= from_ms {
        return Ok(Box::new(std::iter::empty()));
    }
    let secs = (to_ms - from_ms) as f64 / 1000.0;
    // `with_event_rate` runs 10% above the asked rate so that paced senders never run dry.
    let rate = events as f64 / secs / 1.1;
    let config = SimConfig {
        seed,
        groups: vec![GROUP.to_string()],
        ..SimConfig::default()
    }
    .with_event_rate(rate);
    let sim = Simulator::new(config).map_err(|e| anyhow::anyhow!("simulator: {e}"))?;
    let from = Timestamp::from_millisecond(from_ms)?;
    let to = Timestamp::from_millisecond(to_ms)?;
    Ok(Box::new(
        sim.emitted_between(from, to)
            .map(|e| (e.emit_at.as_millisecond(), e.json)),
    ))
}

/// Merges two streams by emission time (each is in emission order, or nearly).
fn merged(
    a: impl Iterator<Item = (i64, String)>,
    b: impl Iterator<Item = (i64, String)>,
) -> impl Iterator<Item = (i64, String)> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => {
            if x.0 <= y.0 {
                a.next()
            } else {
                b.next()
            }
        }
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// The long tail: sessions that each invoke four miniApps drawn from 50 names, in one of 20
/// locales, generated an hour at a time and yielded in emission order within each hour.
#[derive(Debug)]
pub struct TailStream {
    rng: Rng,
    seed: u64,
    next_ms: i64,
    to_ms: i64,
    sessions_per_ms: f64,
    carry: f64,
    counter: u64,
    names: usize,
    buf: VecDeque<(i64, String)>,
}

impl TailStream {
    pub fn new(seed: u64, from_ms: i64, to_ms: i64, events: u64) -> TailStream {
        let span = (to_ms - from_ms).max(1) as f64;
        let sessions = events as f64 / (TAIL_EVENTS_PER_SESSION * (1.0 + TAIL_DUPLICATE_FRACTION));
        TailStream {
            rng: Rng::new(seed),
            seed,
            next_ms: from_ms,
            to_ms,
            sessions_per_ms: sessions / span,
            carry: 0.0,
            counter: 0,
            names: TAIL_NAMES,
            buf: VecDeque::new(),
        }
    }

    /// Draws the miniApp names from `names` instead of [`TAIL_NAMES`].
    pub fn with_names(mut self, names: usize) -> TailStream {
        self.names = names.max(1);
        self
    }

    fn chunk(&mut self, from: i64, to: i64) {
        let want = self.carry + self.sessions_per_ms * (to - from) as f64;
        let n = want.floor() as u64;
        self.carry = want - n as f64;
        let mut events: Vec<(i64, String)> = Vec::new();
        for _ in 0..n {
            let start = self.rng.range(from, to);
            self.session(start, &mut events);
        }
        events.sort_by_key(|e| e.0);
        self.buf.extend(events);
    }

    fn session(&mut self, start: i64, out: &mut Vec<(i64, String)>) {
        let rng = &mut self.rng;
        self.counter += 1;
        let sid = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            (self.seed >> 32) as u32,
            self.seed as u16,
            (self.counter >> 48) & 0xfff,
            (self.counter >> 36) & 0xfff,
            self.counter & 0xf_ffff_ffff
        );
        let channel = if rng.chance(0.7) { "omIVR" } else { "chat" };
        let region = if rng.chance(0.5) { "us1" } else { "eu1" };
        let test = rng.chance(0.05);
        let locale = TAIL_LOCALES[rng.below(TAIL_LOCALES.len())];
        let common = |kind: &str, n: usize, time: i64| {
            format!(
                "{{\"id\":\"tail-{sid}-{n}\",\"type\":\"{kind}\",\"time\":\"{}\",\"group\":\"{GROUP}\",\"session_id\":\"{sid}\",\"channel\":\"{channel}\",\"region\":\"{region}\",\"test\":{test}",
                rfc3339_ms(time)
            )
        };
        let mut lines: Vec<(i64, String)> = Vec::with_capacity(2 + 2 * TAIL_INVOCATIONS);
        lines.push((start, common("session_start", 0, start) + "}"));
        let mut t = start + rng.range(500, 2000);
        for k in 0..TAIL_INVOCATIONS {
            let name = rng.below(self.names);
            let app = format!(
                ",\"miniapp_name\":\"LongTail{name:02}\",\"miniapp_id\":\"lt-{name:04}\",\"miniapp_type\":\"{}\",\"locale\":\"{locale}\",\"flow_name\":\"long_tail_flow\"",
                TAIL_TYPES[name % TAIL_TYPES.len()]
            );
            lines.push((t, common("miniapp_start", 1 + 2 * k, t) + &app + "}"));
            let dur = rng.range(3_000, 40_000);
            let roll = rng.f64();
            let (result, reason) = match roll {
                r if r < 0.78 => ("success", ""),
                r if r < 0.88 => ("fail", TAIL_FAIL_REASONS[rng.below(3)]),
                r if r < 0.92 => ("hangup", ""),
                r if r < 0.95 => ("error", ""),
                r if r < 0.97 => ("dtmf_escape", ""),
                _ => ("other", ""),
            };
            let (system, critical) = match result {
                "error" if rng.chance(0.7) => (1, 0),
                "error" => (0, 1),
                // Errors inside an otherwise successful invocation happen too, and batch counts
                // them as errors (docs/api.md section 6).
                _ if rng.chance(0.01) => (1, 0),
                _ => (0, 0),
            };
            let end = t + dur;
            let counts = format!(
                ",\"agent_requests\":{},\"no_inputs\":{},\"no_matches\":{},\"system_errors\":{system},\"critical_errors\":{critical}",
                u8::from(rng.chance(0.05)),
                rng.below(3),
                rng.below(3)
            );
            lines.push((
                end,
                format!(
                    "{},\"started_at\":\"{}\"{app},\"result\":\"{result}\",\"fail_reason\":\"{reason}\"{counts}}}",
                    common("miniapp_end", 2 + 2 * k, end),
                    rfc3339_ms(t)
                ),
            ));
            t = end + rng.range(500, 2000);
        }
        lines.push((
            t,
            format!(
                "{},\"started_at\":\"{}\"}}",
                common("session_end", 1 + 2 * TAIL_INVOCATIONS, t),
                rfc3339_ms(start)
            ),
        ));
        for (emit, line) in lines {
            if rng.chance(TAIL_DUPLICATE_FRACTION) {
                out.push((emit + rng.range(1_000, 30_000), line.clone()));
            }
            out.push((emit, line));
        }
    }
}

impl Iterator for TailStream {
    type Item = (i64, String);

    fn next(&mut self) -> Option<(i64, String)> {
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Some(e);
            }
            if self.next_ms >= self.to_ms {
                return None;
            }
            let from = self.next_ms;
            let to = (from + MS_PER_HOUR).min(self.to_ms);
            self.next_ms = to;
            self.chunk(from, to);
        }
    }
}

/// `ms` (milliseconds since the epoch) as RFC 3339 in UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let mut s = String::with_capacity(24);
    ocp_metrics_sim::push_rfc3339_ms(&mut s, ms);
    s
}

/// One ingest request's body: NDJSON lines.
#[derive(Debug, Clone)]
pub struct Batch {
    pub body: Vec<u8>,
    pub events: usize,
}

/// Reads the next `events` lines of `reader` into bodies of `batch_size` lines.
pub fn read_batches(
    reader: &mut impl BufRead,
    events: u64,
    batch_size: usize,
) -> anyhow::Result<Vec<Batch>> {
    let mut batches = Vec::new();
    let mut current = Batch {
        body: Vec::new(),
        events: 0,
    };
    let mut line = String::new();
    let mut read = 0u64;
    while read < events {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        read += 1;
        current.body.extend_from_slice(line.as_bytes());
        current.events += 1;
        if current.events == batch_size {
            batches.push(std::mem::replace(
                &mut current,
                Batch {
                    body: Vec::with_capacity(batch_size * 512),
                    events: 0,
                },
            ));
        }
    }
    if current.events > 0 {
        batches.push(current);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_jiff() {
        for ms in [0i64, 1_795_600_862_345, 951_782_400_000, 1_709_251_199_999] {
            let s = rfc3339_ms(ms);
            let t: Timestamp = s.parse().unwrap();
            assert_eq!(t.as_millisecond(), ms, "{s}");
        }
        assert_eq!(rfc3339_ms(1_795_600_862_345), "2026-11-25T10:01:02.345Z");
    }

    #[test]
    fn tail_events_are_valid_json_with_unique_ids_per_line_and_in_range() {
        let from = 1_795_600_000_000;
        let to = from + 6 * MS_PER_HOUR;
        let events: Vec<(i64, String)> = TailStream::new(7, from, to, 5_000).collect();
        assert!(
            events.len() > 4_000 && events.len() < 6_000,
            "{}",
            events.len()
        );
        let mut ids = std::collections::HashMap::new();
        for (emit, line) in &events {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let t: Timestamp = v["time"].as_str().unwrap().parse().unwrap();
            assert!(t.as_millisecond() <= *emit);
            assert!(t.as_millisecond() < to + TAIL_SESSION_MAX_MS);
            if let Some(s) = v["started_at"].as_str() {
                assert!(s.parse::<Timestamp>().unwrap() <= t);
            }
            // A repeated id is a re-sent duplicate: the very same line.
            let id = v["id"].as_str().unwrap().to_string();
            if let Some(prev) = ids.insert(id, line.clone()) {
                assert_eq!(&prev, line);
            }
        }
        // Same seed, same events.
        let again: Vec<(i64, String)> = TailStream::new(7, from, to, 5_000).collect();
        assert_eq!(events, again);
    }

    #[test]
    fn batches_split_lines() {
        let text = "a\nb\nc\nd\ne\n";
        let mut r = std::io::BufReader::new(text.as_bytes());
        let b = read_batches(&mut r, 3, 2).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].body, b"a\nb\n");
        assert_eq!(b[1].events, 1);
        let rest = read_batches(&mut r, 100, 2).unwrap();
        assert_eq!(rest.iter().map(|b| b.events).sum::<usize>(), 2);
    }
}
