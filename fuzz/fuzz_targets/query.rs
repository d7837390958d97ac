//! The query path: any bytes as a query body to any endpoint, parsed and answered over a small
//! fixed state at an arbitrary "now". Never panics; an answer has one value per label in each
//! series and its labels are unique.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocp_metrics_core::event::EventDraft;
use ocp_metrics_core::rollup::Horizons;
use ocp_metrics_core::{Endpoint, Event, Query, Rollups};
use ocp_metrics_server::wire::{answer_json, query_draft};
use std::sync::OnceLock;

const NOW: &str = "2024-03-27T12:00:00Z";

fn state() -> &'static Rollups {
    static STATE: OnceLock<Rollups> = OnceLock::new();
    STATE.get_or_init(|| {
        let now: jiff::Timestamp = NOW.parse().unwrap();
        let mut r = Rollups::new();
        for i in 0..60i64 {
            let start = jiff::Timestamp::from_second(now.as_second() - 400 - i * 3000).unwrap();
            let end = jiff::Timestamp::from_second(start.as_second() + 400).unwrap();
            let (start, end) = (start.to_string(), end.to_string());
            let id = format!("e{i}");
            let session = format!("s{}", i / 3);
            let kind =
                ["miniapp_end", "dialog_end", "session_end", "session_start"][i as usize % 4];
            let d = EventDraft {
                id: Some(&id),
                kind: Some(kind),
                time: Some(&end),
                group: Some(if i % 2 == 0 { "acme" } else { "globex" }),
                session_id: Some(&session),
                channel: Some(if i % 3 == 0 { "chat" } else { "omIVR" }),
                region: Some("eu1"),
                test: Some(i % 5 == 0),
                started_at: Some(&start),
                flow_name: Some(["banking", "cards"][i as usize % 2]),
                flow_id: Some("f"),
                locale: Some("en-US"),
                outcome: Some(["transferred", "terminated", "error", "other"][i as usize % 4]),
                miniapp_name: Some(["Menu", "YesNo", "Account"][i as usize % 3]),
                miniapp_id: Some("m"),
                miniapp_type: Some("Intent"),
                result: Some(["success", "fail", "hangup"][i as usize % 3]),
                ..EventDraft::default()
            };
            r.apply(&Event::parse(&d, now).unwrap(), Horizons::at(now));
        }
        r
    })
}

fuzz_target!(|input: (u8, i32, &[u8])| {
    let (which, now_offset_seconds, body) = input;
    let endpoint = Endpoint::ALL[which as usize % Endpoint::ALL.len()];
    let base: jiff::Timestamp = NOW.parse().unwrap();
    // "now" within about 68 years of the data.
    let Ok(now) = jiff::Timestamp::from_second(base.as_second() + i64::from(now_offset_seconds))
    else {
        return;
    };
    let Ok(draft) = query_draft(body) else {
        return;
    };
    let Ok(q) = Query::parse(endpoint, draft, now) else {
        return;
    };
    let Ok(answer) = state().query(&q, now) else {
        return;
    };
    let mut labels = answer.labels.clone();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), answer.labels.len(), "labels repeat");
    for s in &answer.series {
        assert_eq!(s.values.len(), answer.labels.len());
    }
    let _ = answer_json(&answer);
});
