//! Test helpers shared by the core's tests: compact event builders and answer rendering.

use crate::event::{Event, EventDraft};
use crate::query::{Answer, FilterDraft, QueryDraft};
use jiff::Timestamp;

/// The clock of most tests.
pub const NOW: &str = "2024-03-27T12:00:00Z";

/// Builds an event from `key=value` pairs over defaults (group ocp-qa, session s1, omIVR,
/// us1, en-US, flow banking, outcome terminated, result success). Times written `HH:MM` are on
/// 2024-03-27 UTC.
pub fn ev(pairs: &[(&str, &str)]) -> Event {
    let get = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let time_of = |v: &str| {
        if v.len() == 5 {
            format!("2024-03-27T{v}:00Z")
        } else {
            v.to_string()
        }
    };
    let time = time_of(get("time").unwrap_or("10:30"));
    let started = time_of(get("started_at").unwrap_or(&time));
    let num = |k: &str| get(k).map(|v| v.parse::<i64>().unwrap());
    let d = EventDraft {
        id: Some(get("id").unwrap_or("e")),
        kind: get("type"),
        time: Some(&time),
        group: Some(get("group").unwrap_or("ocp-qa")),
        session_id: Some(get("session_id").unwrap_or("s1")),
        channel: Some(get("channel").unwrap_or("omIVR")),
        region: Some(get("region").unwrap_or("us1")),
        test: get("test").map(|v| v == "true"),
        started_at: Some(&started),
        flow_name: Some(get("flow_name").unwrap_or("banking")),
        flow_id: Some(get("flow_id").unwrap_or("f1")),
        flow_type: get("flow_type"),
        locale: Some(get("locale").unwrap_or("en-US")),
        root: get("root").map(|v| v == "true"),
        outcome: Some(get("outcome").unwrap_or("terminated")),
        miniapp_name: Some(get("miniapp_name").unwrap_or("Menu")),
        miniapp_id: Some(get("miniapp_id").unwrap_or("m1")),
        miniapp_type: Some(get("miniapp_type").unwrap_or("Intent")),
        result: Some(get("result").unwrap_or("success")),
        fail_reason: get("fail_reason"),
        agent_requests: num("agent_requests"),
        no_inputs: num("no_inputs"),
        no_matches: num("no_matches"),
        system_errors: num("system_errors"),
        critical_errors: num("critical_errors"),
    };
    Event::parse(&d, NOW.parse::<Timestamp>().unwrap()).unwrap()
}

pub fn query(metrics: &[&str], start: &str, end: &str, downsampling: &str) -> QueryDraft {
    QueryDraft {
        metrics: Some(metrics.iter().map(|m| m.to_string()).collect()),
        filters: Some(Vec::new()),
        start: Some(start.into()),
        end: Some(end.into()),
        group: Some("ocp-qa".into()),
        downsampling: Some(downsampling.into()),
        drilldown: None,
        timezone: None,
    }
}

pub fn vals(v: &[&str]) -> FilterDraft {
    FilterDraft::Values(v.iter().map(|s| s.to_string()).collect())
}

/// One line per series: metric, tags, and `label=value` with the label shortened to what
/// varies (`HH:MM` within a day, `DD HH:MM` across days).
pub fn render_answer(a: &Answer) -> String {
    let days: std::collections::BTreeSet<&str> = a.labels.iter().map(|l| &l[..10]).collect();
    // Within one day the time alone identifies a bucket; a lone midnight label is a day bucket.
    let one_day = days.len() == 1 && !(a.labels.len() == 1 && a.labels[0].ends_with("00:00:00.0"));
    let short = |l: &str| {
        if one_day {
            l[11..16].to_string()
        } else {
            format!("{} {}", &l[8..10], &l[11..16])
        }
    };
    let mut out = String::new();
    for s in &a.series {
        let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let dps: Vec<String> = a
            .labels
            .iter()
            .zip(&s.values)
            .map(|(l, v)| format!("{}={v}", short(l)))
            .collect();
        out.push_str(&format!(
            "{} {{{}}} {}\n",
            s.metric,
            tags.join(" "),
            dps.join(" ")
        ));
    }
    out
}
