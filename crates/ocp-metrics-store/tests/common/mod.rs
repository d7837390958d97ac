//! What the engine tests share: the test clock, the dashboard queries they compare, and the
//! from-scratch recomputation the engine's answers must equal.

use jiff::Timestamp;
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
