//! The event parser and validator: any bytes as NDJSON lines. Never panics; a valid event
//! survives the log encoding unchanged; and admission agrees with `apply`: what it admits keeps
//! the group within its bounds once applied, and what it refuses would break the very bound it
//! names. The bounds are tiny and the events of one input share a state and are committed a
//! few at a time, so that both answers of admission, and its bookkeeping within a commit, are
//! reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocp_metrics_core::metrics::Family;
use ocp_metrics_core::rollup::{Admission, Horizons, LimitError, StateLimits};
use ocp_metrics_core::{Event, Rollups};
use ocp_metrics_server::wire::WireEvent;

/// Events admitted against one state before it is updated, as the engine's group commit does.
const COMMIT_EVENTS: usize = 3;

const LIMITS: StateLimits = StateLimits {
    dimension_values_max: 2,
    rt_sessions_per_group_max: 2,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now: jiff::Timestamp = "2024-03-27T12:00:00Z".parse().unwrap();
    let events: Vec<Event> = text
        .lines()
        .filter_map(|line| WireEvent::parse(line).ok())
        .filter_map(|wire| Event::parse(&wire.draft(), now).ok())
        .collect();
    for event in &events {
        let bytes = postcard::to_allocvec(event).unwrap();
        let back: Event = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(&back, event);
    }
    // One group, so that the tracked-session count of the state is the group's.
    let Some(group) = events.first().map(|e| e.group.clone()) else {
        return;
    };
    let h = Horizons::at(now);
    // `committed` is the state admission checks against; `applied` is it plus the events
    // admitted so far in the current commit.
    let mut committed = Rollups::new();
    for commit in events.chunks(COMMIT_EVENTS) {
        let mut admission = Admission::new();
        let mut applied = committed.clone();
        for event in commit.iter().filter(|e| e.group == group) {
            match committed.admit(event, h, &LIMITS, &mut admission) {
                Ok(()) => {
                    applied.apply(event, h);
                    let broken = broken_bounds(&applied, group.as_str());
                    assert!(
                        broken.is_empty(),
                        "admitted, but applying it breaks {broken:?}: {event:?}"
                    );
                }
                Err(refused) => {
                    let mut over = applied.clone();
                    over.apply(event, h);
                    let broken = broken_bounds(&over, group.as_str());
                    let named = match &refused {
                        LimitError::DimensionValues { dimension, .. } => dimension,
                        LimitError::RtSessions { .. } => "session_id",
                    };
                    assert!(
                        broken.iter().any(|b| b.ends_with(named)),
                        "refused ({refused}), but applying it breaks only {broken:?}: {event:?}"
                    );
                }
            }
        }
        committed = applied;
    }
    committed.evict(h);
    committed.compact();
});

/// The bounds of [`LIMITS`] the group's state is over: `Family dimension` for the values of
/// a dimension, `session_id` for the tracked sessions.
fn broken_bounds(r: &Rollups, group: &str) -> Vec<String> {
    let mut out = Vec::new();
    if r.stats().sessions_tracked > LIMITS.rt_sessions_per_group_max {
        out.push("session_id".to_string());
    }
    if let Some(g) = r.group(group) {
        for f in Family::ALL {
            for (d, name) in f.dims().iter().enumerate() {
                if g.family(f).interner(d).len() > LIMITS.dimension_values_max {
                    out.push(format!("{f:?} {name}"));
                }
            }
        }
    }
    out
}
