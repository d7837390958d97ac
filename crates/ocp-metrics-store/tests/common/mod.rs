//! What the engine tests share: the test clock, the dashboard queries they compare, and the
//! from-scratch recomputation the engine's answers must equal.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use jiff::Timestamp;
use ocp_metrics_core::event::EventDraft;
use ocp_metrics_core::query::{Query, QueryDraft};
use ocp_metrics_core::rollup::Horizons;
use ocp_metrics_core::{Answer, Endpoint, Event, Rollups};
use ocp_metrics_store::Engine;

pub const NOW: &str = "2024-03-27T12:00:00Z";

pub fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// Every metric of each `(endpoint, start, downsampling)`, for groups acme and globex, up to
/// 2024/03/27 12:05.
pub fn queries(ranges: &[(Endpoint, &str, &str)]) -> Vec<Query> {
    let mut out = Vec::new();
    for group in ["acme", "globex"] {
        for &(endpoint, start, gran) in ranges {
            let draft = QueryDraft {
                metrics: Some(
                    endpoint
                        .metrics()
                        .iter()
                        .map(|m| m.name.to_string())
                        .collect(),
                ),
                start: Some(start.into()),
                end: Some("2024/03/27 12:05:00".into()),
                group: Some(group.into()),
                downsampling: Some(gran.into()),
                ..QueryDraft::default()
            };
            out.push(Query::parse(endpoint, draft, now()).unwrap());
        }
    }
    out
}

/// The answers a from-scratch recomputation over `events` gives.
pub fn recompute(events: &[Event], queries: &[Query]) -> Vec<Answer> {
    let mut r = Rollups::new();
    for e in events {
        r.apply(e, Horizons::at(now()));
    }
    queries.iter().map(|q| r.query(q, now()).unwrap()).collect()
}

/// The engine's answers.
pub fn answers(engine: &Engine, queries: &[Query]) -> Vec<Answer> {
    queries.iter().map(|q| engine.query(q).unwrap()).collect()
}

/// A small stream: per session a start, a miniApp end and a session end, spread over two days.
pub fn events(sessions: &[(u16, u16)]) -> Vec<Event> {
    let mut out = Vec::new();
    for (i, &(ago_minutes, dur_seconds)) in sessions.iter().enumerate() {
        let end = now().as_second() - i64::from(ago_minutes) * 60;
        let start = end - i64::from(dur_seconds);
        let ts = |s: i64| Timestamp::from_second(s).unwrap().to_string();
        let (start_s, end_s) = (ts(start), ts(end));
        let session = format!("s{i}");
        for (n, kind) in ["session_start", "miniapp_end", "session_end"]
            .iter()
            .enumerate()
        {
            let id = format!("{i}-{n}");
            let time = if n == 0 { &start_s } else { &end_s };
            let at = Times {
                time,
                started_at: &start_s,
            };
            out.push(session_event(i, &id, kind, at, &session, "Menu"));
        }
    }
    out
}

/// When an event happened and when its session started.
#[derive(Debug, Clone, Copy)]
pub struct Times<'a> {
    pub time: &'a str,
    pub started_at: &'a str,
}

/// An event of the `i`th session of a test stream. Its group, channel and result follow from
/// `i`, so that a stream spreads over both groups, both channels and both results.
pub fn session_event(
    i: usize,
    id: &str,
    kind: &str,
    at: Times,
    session: &str,
    miniapp_name: &str,
) -> Event {
    let d = EventDraft {
        id: Some(id),
        kind: Some(kind),
        time: Some(at.time),
        group: Some(if i.is_multiple_of(3) {
            "acme"
        } else {
            "globex"
        }),
        session_id: Some(session),
        channel: Some(if i.is_multiple_of(2) { "chat" } else { "omIVR" }),
        region: Some("eu1"),
        started_at: Some(at.started_at),
        miniapp_name: Some(miniapp_name),
        miniapp_id: Some("m"),
        miniapp_type: Some("Intent"),
        locale: Some("en-US"),
        result: Some(if i.is_multiple_of(4) {
            "fail"
        } else {
            "success"
        }),
        ..EventDraft::default()
    };
    Event::parse(&d, now()).unwrap()
}
