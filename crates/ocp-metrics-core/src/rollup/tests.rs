//! Rollups and queries together: events in, answers out, rendered as text.

use crate::event::Event;
use crate::metrics::Endpoint;
use crate::query::{FilterDraft, Query, QueryDraft};
use crate::rollup::{Horizons, Rollups};
use crate::testkit::*;
use expect_test::{Expect, expect};
use jiff::Timestamp;

/// Applies `events` at `now`, runs the query on `endpoint`, and renders the answer.
fn check(events: &[Event], endpoint: Endpoint, q: QueryDraft, now: &str, expect: Expect) {
    let now: Timestamp = now.parse().unwrap();
    let mut r = Rollups::new();
    for e in events {
        r.apply(e, Horizons::at(now));
    }
    expect.assert_eq(&answer_text(&r, endpoint, q, now));
}

fn answer_text(r: &Rollups, endpoint: Endpoint, q: QueryDraft, now: Timestamp) -> String {
    let q = match Query::parse(endpoint, q, now) {
        Ok(q) => q,
        Err(e) => return format!("400 {e}\n"),
    };
    match r.query(&q, now) {
        Ok(a) => render_answer(&a),
        Err(e) => format!("400 {e}\n"),
    }
}

/// Seed Example 3: a call 10:01-10:08 with three miniApps.
fn example3() -> Vec<Event> {
    vec![
        ev(&[("type", "session_start"), ("id", "s"), ("time", "10:01")]),
        ev(&[("type", "dialog_start"), ("id", "d"), ("time", "10:01")]),
        ev(&[
            ("type", "miniapp_end"),
            ("id", "m1"),
            ("started_at", "10:01"),
            ("time", "10:02"),
            ("miniapp_name", "Menu"),
        ]),
        ev(&[
            ("type", "miniapp_end"),
            ("id", "m2"),
            ("started_at", "10:02"),
            ("time", "10:06"),
            ("miniapp_name", "AccountNumber"),
        ]),
        ev(&[
            ("type", "miniapp_end"),
            ("id", "m3"),
            ("started_at", "10:06"),
            ("time", "10:08"),
            ("miniapp_name", "YesNo"),
            ("result", "hangup"),
        ]),
        ev(&[
            ("type", "dialog_end"),
            ("id", "de"),
            ("started_at", "10:01"),
            ("time", "10:08"),
            ("outcome", "terminated"),
        ]),
        ev(&[
            ("type", "session_end"),
            ("id", "se"),
            ("started_at", "10:01"),
            ("time", "10:08"),
        ]),
    ]
}

#[test]
fn example_3_realtime_intervals() {
    let q = || {
        query(
            &["miniapps_invocations"],
            "2024/03/27 10:00:00",
            "2024/03/27 10:15:00",
            "five_min",
        )
    };
    check(
        &example3(),
        Endpoint::V3RtMiniapps,
        q(),
        NOW,
        expect![[r#"
        miniapps_invocations {group=ocp-qa} 10:00=2 10:05=1 10:10=0
    "#]],
    );
    let q = query(
        &["session.initiated"],
        "2024/03/27 10:00:00",
        "2024/03/27 10:15:00",
        "five_min",
    );
    check(
        &example3(),
        Endpoint::V3RtSessions,
        q,
        NOW,
        expect![[r#"
        session.initiated {group=ocp-qa} 10:00=1 10:05=1 10:10=0
    "#]],
    );
    let q = query(
        &[
            "dialogs_completed",
            "dialogs_terminated",
            "dialogs_transferred",
        ],
        "2024/03/27 10:00:00",
        "2024/03/27 10:15:00",
        "five_min",
    );
    check(
        &example3(),
        Endpoint::V3RtDialogs,
        q,
        NOW,
        expect![[r#"
        dialogs_completed {group=ocp-qa} 10:00=1 10:05=0 10:10=0
        dialogs_terminated {group=ocp-qa} 10:00=1 10:05=0 10:10=0
        dialogs_transferred {group=ocp-qa} 10:00=0 10:05=0 10:10=0
    "#]],
    );
}

#[test]
fn example_3_as_it_unfolds_past_intervals_keep_changing() {
    let events = example3();
    let q = || {
        query(
            &["miniapps_invocations"],
            "2024/03/27 10:00:00",
            "2024/03/27 10:10:00",
            "five_min",
        )
    };
    // At 10:03 only miniApp 1 has ended.
    check(
        &events[..3],
        Endpoint::V3RtMiniapps,
        q(),
        "2024-03-27T10:03:00Z",
        expect![[r#"
        miniapps_invocations {group=ocp-qa} 10:00=1
    "#]],
    );
    // At 10:07 miniApp 2 has been added to interval A (10:00), which is in the past.
    check(
        &events[..4],
        Endpoint::V3RtMiniapps,
        q(),
        "2024-03-27T10:07:00Z",
        expect![[r#"
        miniapps_invocations {group=ocp-qa} 10:00=2 10:05=0
    "#]],
    );
}

#[test]
fn example_3_hour_rollup_counts_sessions_once_per_five_minutes() {
    let q = query(
        &["session.initiated"],
        "2024/03/27 10:00:00",
        "2024/03/27 11:00:00",
        "hour",
    );
    check(
        &example3(),
        Endpoint::V3RtSessions,
        q,
        NOW,
        expect![[r#"
        session.initiated {group=ocp-qa} 10:00=2
    "#]],
    );
}

#[test]
fn example_3_batch_and_v2() {
    let q = query(
        &["sessions", "invocations", "duration10sec"],
        "2024/03/27 00:00:00",
        "2024/03/28 00:00:00",
        "day",
    );
    check(
        &example3(),
        Endpoint::V3BatchSessions,
        q,
        NOW,
        expect![[r#"
        sessions {group=ocp-qa} 27 00:00=1
        invocations {group=ocp-qa} 27 00:00=3
        duration10sec {group=ocp-qa} 27 00:00=42
    "#]],
    );
    let q = query(
        &["totalinvocations", "successfultasks", "hangeduptasks"],
        "2024/03/27 10:00:00",
        "2024/03/27 11:00:00",
        "hour",
    );
    check(
        &example3(),
        Endpoint::V2BatchMiniapps,
        q,
        NOW,
        expect![[r#"
        totalinvocations {group=ocp-qa} 10:00=3
        successfultasks {group=ocp-qa} 10:00=2
        hangeduptasks {group=ocp-qa} 10:00=1
    "#]],
    );
    let q = query(
        &["miniapps_invocations", "dialogs_completed"],
        "2024/03/27 10:00:00",
        "2024/03/27 10:10:00",
        "five_min",
    );
    check(
        &example3(),
        Endpoint::V2RtDialogs,
        q,
        NOW,
        expect![[r#"
        miniapps_invocations {group=ocp-qa} 10:00=2 10:05=1
        dialogs_completed {group=ocp-qa} 10:00=1 10:05=0
    "#]],
    );
}

#[test]
fn batch_dialog_classes_first_match_wins() {
    let events = vec![
        ev(&[
            ("type", "dialog_end"),
            ("id", "1"),
            ("outcome", "transferred"),
            ("system_errors", "1"),
        ]),
        ev(&[
            ("type", "dialog_end"),
            ("id", "2"),
            ("outcome", "transferred"),
        ]),
        ev(&[
            ("type", "dialog_end"),
            ("id", "3"),
            ("outcome", "terminated"),
            ("critical_errors", "2"),
        ]),
        ev(&[
            ("type", "dialog_end"),
            ("id", "4"),
            ("outcome", "terminated"),
        ]),
        ev(&[("type", "dialog_end"), ("id", "5"), ("outcome", "other")]),
        ev(&[("type", "dialog_end"), ("id", "6"), ("outcome", "error")]),
        ev(&[
            ("type", "dialog_end"),
            ("id", "7"),
            ("outcome", "other"),
            ("root", "false"),
        ]),
    ];
    let q = query(
        &["dialogs", "error", "transferred", "terminated", "other"],
        "2024/03/27 10:00:00",
        "2024/03/27 11:00:00",
        "hour",
    );
    check(
        &events,
        Endpoint::V3BatchDialogs,
        q,
        NOW,
        expect![[r#"
        dialogs {group=ocp-qa} 10:00=6
        error {group=ocp-qa} 10:00=3
        transferred {group=ocp-qa} 10:00=1
        terminated {group=ocp-qa} 10:00=1
        other {group=ocp-qa} 10:00=1
    "#]],
    );
    let q = query(
        &[
            "root_system_errors",
            "root_critical_error",
            "dialogs_transferred",
        ],
        "2024/03/27 10:00:00",
        "2024/03/27 11:00:00",
        "hour",
    );
    check(
        &events,
        Endpoint::V3RtDialogs,
        q,
        NOW,
        expect![[r#"
        root_system_errors {group=ocp-qa} 10:00=1
        root_critical_error {group=ocp-qa} 10:00=2
        dialogs_transferred {group=ocp-qa} 10:00=2
    "#]],
    );
}

#[test]
fn batch_miniapp_classes_first_match_wins() {
    let events: Vec<Event> = [
        ("success", "0"),
        ("success", "1"),
        ("fail", "0"),
        ("hangup", "0"),
        ("dtmf_escape", "0"),
        ("error", "0"),
        ("other", "0"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (result, errors))| {
        let id = i.to_string();
        ev(&[
            ("type", "miniapp_end"),
            ("id", &id),
            ("result", result),
            ("system_errors", errors),
        ])
    })
    .collect();
    let q = query(
        &[
            "totalinvocations",
            "successfultasks",
            "failedtasks",
            "errortasks",
            "hangeduptasks",
            "dtmfescapekeytasks",
            "othertasks",
        ],
        "2024/03/27 10:00:00",
        "2024/03/27 11:00:00",
        "hour",
    );
    check(
        &events,
        Endpoint::V3BatchMiniapps,
        q,
        NOW,
        expect![[r#"
        totalinvocations {group=ocp-qa} 10:00=7
        successfultasks {group=ocp-qa} 10:00=1
        failedtasks {group=ocp-qa} 10:00=1
        errortasks {group=ocp-qa} 10:00=2
        hangeduptasks {group=ocp-qa} 10:00=1
        dtmfescapekeytasks {group=ocp-qa} 10:00=1
        othertasks {group=ocp-qa} 10:00=1
    "#]],
    );
}

#[test]
fn filters_and_drilldown() {
    let events = vec![
        ev(&[
            ("type", "miniapp_end"),
            ("id", "1"),
            ("miniapp_name", "A"),
            ("channel", "chat"),
        ]),
        ev(&[
            ("type", "miniapp_end"),
            ("id", "2"),
            ("miniapp_name", "A"),
            ("channel", "omIVR"),
        ]),
        ev(&[
            ("type", "miniapp_end"),
            ("id", "3"),
            ("miniapp_name", "B"),
            ("channel", "omIVR"),
        ]),
        ev(&[
            ("type", "miniapp_end"),
            ("id", "4"),
            ("miniapp_name", "B"),
            ("channel", "omIVR"),
            ("test", "true"),
        ]),
    ];
    let base = || {
        query(
            &["miniapps_invocations"],
            "2024/03/27 10:00:00",
            "2024/03/27 11:00:00",
            "hour",
        )
    };
    let with = |filters: Vec<(&str, FilterDraft)>, drilldown: bool| QueryDraft {
        filters: Some(
            filters
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
        drilldown: Some(drilldown),
        ..base()
    };
    check(
        &events,
        Endpoint::V3RtMiniapps,
        with(vec![("channel", vals(&["omIVR"]))], false),
        NOW,
        expect![[r#"
        miniapps_invocations {group=ocp-qa channel=omIVR} 10:00=3
    "#]],
    );
    check(
        &events,
        Endpoint::V3RtMiniapps,
        with(
            vec![
                ("channel", vals(&["omIVR", "chat"])),
                ("test_flag", FilterDraft::Bool(false)),
            ],
            false,
        ),
        NOW,
        expect![[r#"
        miniapps_invocations {group=ocp-qa test_flag=false} 10:00=3
    "#]],
    );
    check(
        &events,
        Endpoint::V3RtMiniapps,
        with(
            vec![("channel", vals(&[])), ("miniapp_name", vals(&[]))],
            true,
        ),
        NOW,
        expect![[r#"
        miniapps_invocations {group=ocp-qa miniapp_name=A channel=chat} 10:00=1
        miniapps_invocations {group=ocp-qa miniapp_name=A channel=omIVR} 10:00=1
        miniapps_invocations {group=ocp-qa miniapp_name=B channel=omIVR} 10:00=2
    "#]],
    );
    check(
        &events,
        Endpoint::V3RtMiniapps,
        with(vec![("channel", vals(&["nope"]))], true),
        NOW,
        expect![""],
    );
    check(
        &events,
        Endpoint::V3RtMiniapps,
        with(vec![("channel", vals(&["nope"]))], false),
        NOW,
        expect![[r#"
        miniapps_invocations {group=ocp-qa channel=nope} 10:00=0
    "#]],
    );
    check(
        &events,
        Endpoint::V3RtMiniapps,
        with(vec![("flow_name", vals(&["x"]))], false),
        NOW,
        expect![[r#"
        400 filter `flow_name` is not supported by /metrics-api/v3/realtime/metrics/miniapps; supported filters: miniapp_name, miniapp_type, locale, channel, test_flag, region
    "#]],
    );
}

#[test]
fn unknown_group_answers_zeros_and_limits_are_enforced() {
    let q = QueryDraft {
        group: Some("globex".into()),
        ..query(
            &["sessions"],
            "2024/03/27 10:00:00",
            "2024/03/27 12:00:00",
            "hour",
        )
    };
    check(
        &example3(),
        Endpoint::V3BatchSessions,
        q,
        NOW,
        expect![[r#"
        sessions {group=globex} 10:00=0 11:00=0
    "#]],
    );
    let q = query(
        &["session.initiated"],
        "2024/03/25 10:00:00",
        "2024/03/27 12:00:00",
        "hour",
    );
    check(
        &[],
        Endpoint::V3RtSessions,
        q,
        NOW,
        expect![[r#"
        400 `start` is too far in the past: real-time metrics are kept for 48 hours; use the batch endpoints for older data; move `start` later
    "#]],
    );
    let q = query(
        &["sessions"],
        "2024/03/27 12:00:00",
        "2024/03/27 10:00:00",
        "hour",
    );
    check(
        &[],
        Endpoint::V3BatchSessions,
        q,
        NOW,
        expect!["400 `end` must be after `start`; swap them or widen the range\n"],
    );
    let q = query(
        &["sessions"],
        "2024/03/27 10:00:00",
        "2024/03/27 12:00:00",
        "five_min",
    );
    check(
        &[],
        Endpoint::V3BatchSessions,
        q,
        NOW,
        expect![
            "400 `downsampling` `five_min` is not valid for /metrics-api/v3/batch/metrics/sessions; use one of hour, day, week, month, year\n"
        ],
    );
}

#[test]
fn late_end_events_land_in_the_interval_of_their_start() {
    let events = vec![ev(&[
        ("type", "dialog_end"),
        ("id", "late"),
        ("started_at", "09:58"),
        ("time", "11:30"),
    ])];
    let q = query(
        &["dialogs_completed"],
        "2024/03/27 09:55:00",
        "2024/03/27 10:05:00",
        "five_min",
    );
    check(
        &events,
        Endpoint::V3RtDialogs,
        q,
        NOW,
        expect![[r#"
        dialogs_completed {group=ocp-qa} 09:55=1 10:00=0
    "#]],
    );
}

#[test]
fn sessions_spanning_hours_count_in_every_five_minutes_once() {
    // Events arrive out of order: the end first, then a start that widens the span backwards.
    let events = vec![
        ev(&[
            ("type", "session_end"),
            ("id", "e"),
            ("started_at", "10:50"),
            ("time", "11:12"),
        ]),
        ev(&[("type", "session_start"), ("id", "s"), ("time", "10:50")]),
        ev(&[("type", "miniapp_start"), ("id", "m"), ("time", "10:42")]),
    ];
    let q = query(
        &["session.initiated"],
        "2024/03/27 10:30:00",
        "2024/03/27 11:30:00",
        "hour",
    );
    check(
        &events,
        Endpoint::V3RtSessions,
        q,
        NOW,
        expect![[r#"
        session.initiated {group=ocp-qa} 10:00=4 11:00=3
    "#]],
    );
}
