//! A deterministic, seeded generator of realistic OCP event traffic (docs/api.md section 3), and a
//! driver ([`send`]) that posts it to an ingest endpoint.
//!
//! The simulator is a *producer*: it yields NDJSON lines exactly as a real OCP platform would
//! send them, including what real producers get wrong on purpose: some end events arrive
//! minutes late, and some events are re-sent with the same id (a retrying producer).
//!
//! # Determinism
//!
//! Traffic is generated minute by minute and group by group; each (seed, group, minute) has its
//! own random stream, and each session its own stream drawn from it. So the sessions that start
//! in a given minute are the same whatever range is asked for: `events_between(a, b)` followed
//! by `events_between(b, c)` yields the same events as `events_between(a, c)` (in a different
//! interleaving at the seam), and [`Simulator::emitted_between`] splits a stream at any instant
//! with nothing lost or repeated, which is what a demo needs to backfill history and then go
//! live.
//!
//! # Example
//!
//! ```
//! use ocp_metrics_sim::{SimConfig, Simulator};
//! let sim = Simulator::new(SimConfig::default()).unwrap();
//! let from: jiff::Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
//! let to = from + jiff::SignedDuration::from_mins(5);
//! for ev in sim.events_between(from, to).take(3) {
//!     println!("{} {}", ev.emit_at, ev.json);
//! }
//! ```

mod catalog;
mod curve;
mod render;
pub use render::push_rfc3339_ms;
mod rng;
pub mod send;
mod story;

use std::sync::Arc;

use jiff::Timestamp;

use crate::catalog::GroupProfile;
use crate::curve::{Curve, LocalClock};
use crate::render::SessionKey;
use crate::rng::{Rng, seed_of};
use crate::story::Draft;

/// What to simulate. `Default` gives the demo's three groups at a realistic volume.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Everything generated is a pure function of this seed and the requested range.
    pub seed: u64,
    /// OCP groups (organizations). Three names have hand-made profiles (`ocp-qa` in Athens,
    /// `acme-bank` in New York, `globex-telco` in Kolkata); others get one picked by hashing
    /// the name. At most 64 bytes each.
    pub groups: Vec<String>,
    /// Sessions started per hour per group at the weekday daily peak (with `load_curve`), or
    /// at every hour (without).
    pub sessions_per_hour_peak: f64,
    /// Share of end events emitted 1-15 minutes after their `time`.
    pub late_fraction: f64,
    /// Share of events sent a second time (same line, same id) 1-60 s later.
    pub duplicate_fraction: f64,
    /// Share of sessions with `test: true`.
    pub test_fraction: f64,
    /// `true`: daily and weekly load curve in each group's time zone, with noise. `false`: a
    /// flat rate with light noise, for load tests.
    pub load_curve: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            groups: vec!["ocp-qa".into(), "acme-bank".into(), "globex-telco".into()],
            sessions_per_hour_peak: 300.0,
            late_fraction: 0.01,
            duplicate_fraction: 0.005,
            test_fraction: 0.05,
            load_curve: true,
        }
    }
}

impl SimConfig {
    /// The default groups at a flat load of about `events_per_sec` events per second; see
    /// [`SimConfig::with_event_rate`].
    pub fn for_event_rate(seed: u64, events_per_sec: f64) -> SimConfig {
        SimConfig {
            seed,
            ..SimConfig::default()
        }
        .with_event_rate(events_per_sec)
    }

    /// This configuration's groups at a flat load (no daily or weekly curve) that emits about
    /// `events_per_sec` events per second of simulated time in all, slightly more so that a
    /// paced sender never runs dry. This is how load tests get a high rate without re-stamping
    /// events.
    pub fn with_event_rate(self, events_per_sec: f64) -> SimConfig {
        let groups = self.groups.len().max(1) as f64;
        SimConfig {
            sessions_per_hour_peak: events_per_sec.max(0.0) * 3600.0 * RATE_HEADROOM
                / EVENTS_PER_SESSION
                / groups,
            load_curve: false,
            ..self
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("groups: at least one group is needed")]
    NoGroups,
    #[error("groups: {0:?} must be 1 to 64 bytes long")]
    BadGroupName(String),
    #[error("groups: {0:?} is listed twice")]
    DuplicateGroup(String),
    #[error("groups: at most 65535 groups")]
    TooManyGroups,
    #[error("{field}: {value} must be a finite number in {range}")]
    OutOfRange {
        field: &'static str,
        value: f64,
        range: &'static str,
    },
}

/// One event as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// When a producer sends it: its `time`, or later for late events and re-sent duplicates.
    pub emit_at: Timestamp,
    /// One NDJSON line, without the newline.
    pub json: String,
}

#[derive(Debug)]
struct Inner {
    config: SimConfig,
    groups: Vec<GroupProfile>,
    curves: Vec<Curve>,
}

/// The simulator. Cheap to clone (shared, immutable state).
#[derive(Debug, Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

fn check_fraction(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value,
            range: "[0, 1]",
        })
    }
}

impl Simulator {
    pub fn new(config: SimConfig) -> Result<Simulator, ConfigError> {
        if config.groups.is_empty() {
            return Err(ConfigError::NoGroups);
        }
        if config.groups.len() > usize::from(u16::MAX) {
            return Err(ConfigError::TooManyGroups);
        }
        for (i, g) in config.groups.iter().enumerate() {
            if g.is_empty() || g.len() > MAX_GROUP_NAME_BYTES {
                return Err(ConfigError::BadGroupName(g.clone()));
            }
            if config.groups[..i].contains(g) {
                return Err(ConfigError::DuplicateGroup(g.clone()));
            }
        }
        let peak = config.sessions_per_hour_peak;
        if !(peak.is_finite() && (0.0..=MAX_SESSIONS_PER_HOUR).contains(&peak)) {
            return Err(ConfigError::OutOfRange {
                field: "sessions_per_hour_peak",
                value: peak,
                range: "[0, 1e9]",
            });
        }
        check_fraction("late_fraction", config.late_fraction)?;
        check_fraction("duplicate_fraction", config.duplicate_fraction)?;
        check_fraction("test_fraction", config.test_fraction)?;

        let groups: Vec<GroupProfile> =
            config.groups.iter().map(|g| GroupProfile::new(g)).collect();
        let daily_max = curve::daily_max();
        let curves = groups
            .iter()
            .map(|g| Curve {
                clock: LocalClock::new(&g.zone),
                peak_per_minute: peak / 60.0,
                daily_max,
                shaped: config.load_curve,
                noise_seed: seed_of(&[config.seed, g.name_hash, CURVE_SALT]),
            })
            .collect();
        Ok(Simulator {
            inner: Arc::new(Inner {
                config,
                groups,
                curves,
            }),
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// The events of the sessions that *start* in `[from, to)`, in emission order (by
    /// `emit_at`). Late and duplicate events of those sessions come after `to` if that is when
    /// they are emitted.
    pub fn events_between(&self, from: Timestamp, to: Timestamp) -> EventStream {
        let (from, to) = (clamp_ms(from), clamp_ms(to));
        EventStream::new(self.inner.clone(), from, to, i64::MIN, i64::MAX)
    }

    /// The events *emitted* in `[from, to)` (by `emit_at`), whenever their session started, in
    /// emission order. Splitting a range at any instant loses and repeats nothing, so a demo
    /// can backfill with `emitted_between(now - 60 days, now)` and go on live from `now`.
    /// `to` may be far in the future: the stream is lazy.
    pub fn emitted_between(&self, from: Timestamp, to: Timestamp) -> EventStream {
        let (from, to) = (clamp_ms(from), clamp_ms(to));
        EventStream::new(self.inner.clone(), from - MAX_EMIT_LAG_MS, to, from, to)
    }

    /// The mean number of sessions `group` starts per minute at `at` (0 for an unknown group).
    pub fn sessions_per_minute_mean(&self, group: &str, at: Timestamp) -> f64 {
        self.inner
            .groups
            .iter()
            .position(|g| g.name == group)
            .map_or(0.0, |i| {
                self.inner.curves[i].mean_per_minute(at.as_millisecond())
            })
    }
}

fn clamp_ms(t: Timestamp) -> i64 {
    t.as_millisecond().clamp(0, MAX_TIME_MS)
}

/// An event waiting to be emitted.
#[derive(Debug)]
struct Pending {
    emit_at: i64,
    slot: u32,
    n: u16,
    draft: Draft,
}

#[derive(Debug)]
struct Slot {
    key: SessionKey,
    /// The session id, rendered once for all the session's events.
    sid: String,
    /// Events of the session still waiting; the slot is reused at zero.
    refs: u32,
}

/// The lazy event iterator returned by [`Simulator::events_between`] and
/// [`Simulator::emitted_between`].
///
/// It generates one minute of sessions at a time and files their events in a ring of
/// one-second buckets by emission time (a calendar queue: every event is emitted within
/// `MAX_EMIT_LAG_MS` of its session's start, so the ring never wraps onto live buckets).
/// A bucket is released, sorted, once the next minute to generate starts after it: every
/// later session starts, so emits, no earlier than that. Sorting is stable and buckets fill
/// in generation order, so ties keep a deterministic order. Memory is bounded by the events
/// in flight: about (events per second) x (mean remaining session time, ~1-2 min) x 48 bytes.
#[derive(Debug)]
pub struct EventStream {
    inner: Arc<Inner>,
    next_minute: i64,
    end_minute: i64,
    session_from: i64,
    session_to: i64,
    emit_from: i64,
    emit_to: i64,
    /// `buckets[s % len]` holds the events emitted in second `s`, for `s >= cur_sec`.
    buckets: Vec<Vec<Pending>>,
    cur_sec: i64,
    waiting: usize,
    /// The released bucket, sorted, and how far it has been yielded.
    ready: Vec<Pending>,
    ready_pos: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    drafts: Vec<Draft>,
}

impl EventStream {
    fn new(
        inner: Arc<Inner>,
        session_from: i64,
        session_to: i64,
        emit_from: i64,
        emit_to: i64,
    ) -> Self {
        let session_from = session_from.max(0);
        let first_minute = session_from.div_euclid(MS_PER_MINUTE);
        EventStream {
            inner,
            next_minute: first_minute,
            // The minute holding `session_to - 1`, plus one: the first minute not generated.
            end_minute: if session_to > session_from {
                (session_to - 1).div_euclid(MS_PER_MINUTE) + 1
            } else {
                first_minute
            },
            session_from,
            session_to,
            emit_from,
            emit_to,
            buckets: (0..RING_SECS).map(|_| Vec::new()).collect(),
            cur_sec: first_minute * 60,
            waiting: 0,
            ready: Vec::new(),
            ready_pos: 0,
            slots: Vec::new(),
            free: Vec::new(),
            drafts: Vec::with_capacity(32),
        }
    }

    fn file(&mut self, p: Pending) {
        let sec = p.emit_at.div_euclid(1000);
        debug_assert!(sec >= self.cur_sec && sec < self.cur_sec + RING_SECS as i64);
        self.buckets[sec.rem_euclid(RING_SECS as i64) as usize].push(p);
        self.waiting += 1;
    }

    fn generate_minute(&mut self, minute: i64) {
        let inner = self.inner.clone();
        let cfg = &inner.config;
        let minute_ms = minute * MS_PER_MINUTE;
        for (gi, group) in inner.groups.iter().enumerate() {
            let mut rng = Rng::new(seed_of(&[cfg.seed, group.name_hash, minute as u64]));
            let mean = inner.curves[gi].mean_per_minute(minute_ms);
            let count = rng.poisson(mean).min(MAX_SESSIONS_PER_MINUTE);
            for k in 0..count {
                let start = minute_ms + rng.range(0, MS_PER_MINUTE);
                let session_seed = rng.next_u64();
                // Sessions outside the range are skipped without generating them: their own
                // random stream means nothing after them depends on them.
                if start < self.session_from || start >= self.session_to {
                    continue;
                }
                self.session(group, gi, cfg, minute, k, start, session_seed);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        group: &GroupProfile,
        gi: usize,
        cfg: &SimConfig,
        minute: i64,
        k: u64,
        start: i64,
        session_seed: u64,
    ) {
        // Late end events draw from their own stream, so that a session started long before
        // `emit_from` can be ruled out without generating its story: only a late event could
        // reach the range.
        let late_seed = seed_of(&[session_seed, LATE_SALT]);
        if start + story::MAX_SESSION_MS + MAX_DUPLICATE_DELAY_MS < self.emit_from {
            let mut lr = Rng::new(late_seed);
            let reachable = (0..story::MAX_END_EVENTS).any(|_| {
                draw_late(&mut lr, cfg.late_fraction).is_some_and(|delay| {
                    start + story::MAX_SESSION_MS + delay + MAX_DUPLICATE_DELAY_MS >= self.emit_from
                })
            });
            if !reachable {
                return;
            }
        }
        let mut srng = Rng::new(session_seed);
        let id_hi = srng.next_u64();
        let attrs = story::session(&mut srng, group, cfg.test_fraction, start, &mut self.drafts);
        let key = SessionKey {
            group: gi as u16,
            attrs,
            id_hi,
            id_lo: (((minute as u64) << 24) | k) ^ rng::mix(id_hi),
        };
        let slot = match self.free.pop() {
            Some(s) => {
                let reused = &mut self.slots[s as usize];
                reused.key = key;
                reused.refs = 0;
                s
            }
            None => {
                self.slots.push(Slot {
                    key,
                    sid: String::with_capacity(36),
                    refs: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        render::session_id(&mut self.slots[slot as usize].sid, &key);
        let mut refs = 0;
        let mut lr = Rng::new(late_seed);
        let drafts = std::mem::take(&mut self.drafts);
        for (n, d) in drafts.iter().enumerate() {
            let mut emit = d.time;
            if d.kind.is_end() {
                emit += draw_late(&mut lr, cfg.late_fraction).unwrap_or(0);
            }
            let dup = srng.chance(cfg.duplicate_fraction);
            let dup_emit = emit + srng.range(MIN_DUPLICATE_DELAY_MS, MAX_DUPLICATE_DELAY_MS + 1);
            for (e, wanted) in [(emit, true), (dup_emit, dup)] {
                if wanted && e >= self.emit_from && e < self.emit_to {
                    self.file(Pending {
                        emit_at: e,
                        slot,
                        n: n as u16,
                        draft: *d,
                    });
                    refs += 1;
                }
            }
        }
        self.drafts = drafts;
        if refs == 0 {
            self.free.push(slot);
        } else {
            self.slots[slot as usize].refs = refs;
        }
    }
}

/// Whether the next end event of a session is late, and by how much (ms). Always draws twice,
/// so the k-th end event gets the k-th draw whatever came before.
fn draw_late(rng: &mut Rng, late_fraction: f64) -> Option<i64> {
    let late = rng.chance(late_fraction);
    let delay = rng.range(MIN_LATE_MS, MAX_LATE_MS + 1);
    late.then_some(delay)
}

impl Iterator for EventStream {
    type Item = SimEvent;

    fn next(&mut self) -> Option<SimEvent> {
        loop {
            if let Some(p) = self.ready.get(self.ready_pos) {
                self.ready_pos += 1;
                let slot = &mut self.slots[p.slot as usize];
                let mut json = String::with_capacity(LINE_CAPACITY);
                let group = &self.inner.groups[usize::from(slot.key.group)];
                render::render(&mut json, group, &slot.key, &slot.sid, p.n, &p.draft);
                slot.refs -= 1;
                if slot.refs == 0 {
                    self.free.push(p.slot);
                }
                let emit_at = Timestamp::from_millisecond(p.emit_at).unwrap_or(Timestamp::MAX);
                return Some(SimEvent { emit_at, json });
            }
            let generating = self.next_minute < self.end_minute;
            if !generating && self.waiting == 0 {
                return None;
            }
            // Release the next second if no session yet to be generated can emit in it.
            if !generating || self.cur_sec < self.next_minute * 60 {
                let i = self.cur_sec.rem_euclid(RING_SECS as i64) as usize;
                self.ready.clear();
                self.ready_pos = 0;
                std::mem::swap(&mut self.ready, &mut self.buckets[i]);
                self.ready.sort_by_key(|p| p.emit_at);
                self.waiting -= self.ready.len();
                self.cur_sec += 1;
                continue;
            }
            let minute = self.next_minute;
            self.next_minute += 1;
            self.generate_minute(minute);
        }
    }
}

impl std::iter::FusedIterator for EventStream {}

/// About how many events one session emits on average (measured; used to size load tests).
pub const EVENTS_PER_SESSION: f64 = 10.5;
/// The flat load of [`SimConfig::with_event_rate`] runs this much above the requested rate.
const RATE_HEADROOM: f64 = 1.1;
/// Longest group name, bytes: keeps event ids under the 128 characters of docs/api.md.
const MAX_GROUP_NAME_BYTES: usize = 64;
/// Upper bound of `sessions_per_hour_peak`.
const MAX_SESSIONS_PER_HOUR: f64 = 1e9;
/// Sessions per group per minute are capped here, since the ordinal takes 24 bits of the id.
const MAX_SESSIONS_PER_MINUTE: u64 = (1 << 24) - 1;
const MS_PER_MINUTE: i64 = 60_000;
/// Late end events are emitted this long after their `time`, ms.
const MIN_LATE_MS: i64 = 60_000;
const MAX_LATE_MS: i64 = 15 * 60_000;
/// A re-sent duplicate follows the original by this much, ms.
const MIN_DUPLICATE_DELAY_MS: i64 = 1_000;
const MAX_DUPLICATE_DELAY_MS: i64 = 60_000;
/// The latest any event of a session is emitted after the session starts, ms.
const MAX_EMIT_LAG_MS: i64 = story::MAX_SESSION_MS + MAX_LATE_MS + MAX_DUPLICATE_DELAY_MS;
/// Latest accepted range bound: 9999-12-30T00:00:00Z, leaving room for the emit lag before
/// year 10000, which RFC 3339 cannot write.
const MAX_TIME_MS: i64 = 253_402_128_000_000;
/// Seconds in the ring of emission buckets: the longest emit lag, plus the minute being
/// generated, plus slack.
const RING_SECS: usize = (MAX_EMIT_LAG_MS / 1000) as usize + 180;
/// Typical line length, bytes: one allocation per line.
const LINE_CAPACITY: usize = 640;
const CURVE_SALT: u64 = 0x0063_7572_7665;
const LATE_SALT: u64 = 0x6c61_7465;
