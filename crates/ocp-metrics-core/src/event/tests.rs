//! Validation, table-driven: each row is a draft (as key=value pairs over a valid base event)
//! and the expected outcome rendered as text.

use super::*;
use expect_test::{Expect, expect};

const NOW: &str = "2024-03-27T12:00:00Z";

/// Builds a draft from `key=value` pairs; `-key` removes a field of the base event.
fn draft<'a>(kind: &'a str, pairs: &[(&'a str, &'a str)]) -> EventDraft<'a> {
    let mut d = EventDraft {
        id: Some("e1"),
        kind: Some(kind),
        time: Some("2024-03-27T10:08:00Z"),
        group: Some("ocp-qa"),
        session_id: Some("s1"),
        channel: Some("omIVR"),
        region: Some("us1"),
        started_at: Some("2024-03-27T10:01:00+00:00"),
        flow_name: Some("banking"),
        flow_id: Some("f1"),
        locale: Some("en-US"),
        outcome: Some("transferred"),
        miniapp_name: Some("AccountNumber"),
        miniapp_id: Some("m1"),
        miniapp_type: Some("Digits"),
        result: Some("success"),
        ..EventDraft::default()
    };
    for &(k, v) in pairs {
        let v = if k.starts_with('-') { None } else { Some(v) };
        match k.trim_start_matches('-') {
            "id" => d.id = v,
            "time" => d.time = v,
            "group" => d.group = v,
            "started_at" => d.started_at = v,
            "outcome" => d.outcome = v,
            "result" => d.result = v,
            "flow_name" => d.flow_name = v,
            "flow_id" => d.flow_id = v,
            "flow_type" => d.flow_type = v,
            "locale" => d.locale = v,
            "channel" => d.channel = v,
            "region" => d.region = v,
            "session_id" => d.session_id = v,
            "miniapp_name" => d.miniapp_name = v,
            "miniapp_id" => d.miniapp_id = v,
            "miniapp_type" => d.miniapp_type = v,
            "fail_reason" => d.fail_reason = v,
            "no_inputs" => d.no_inputs = v.map(|s| s.parse().unwrap()),
            other => panic!("unknown test key {other}"),
        }
    }
    d
}

fn check(kind: &str, pairs: &[(&str, &str)], expect: Expect) {
    let now: Timestamp = NOW.parse().unwrap();
    let got = match Event::parse(&draft(kind, pairs), now) {
        Ok(e) => format!(
            "ok anchor={}",
            Timestamp::from_millisecond(e.anchor()).unwrap()
        ),
        Err(e) => format!("rejected {e}"),
    };
    expect.assert_eq(&got);
}

#[test]
fn valid_events_of_every_type() {
    check(
        "session_start",
        &[],
        expect!["ok anchor=2024-03-27T10:08:00Z"],
    );
    check(
        "dialog_start",
        &[],
        expect!["ok anchor=2024-03-27T10:08:00Z"],
    );
    check(
        "miniapp_start",
        &[],
        expect!["ok anchor=2024-03-27T10:08:00Z"],
    );
    check(
        "session_end",
        &[],
        expect!["ok anchor=2024-03-27T10:01:00Z"],
    );
    check("dialog_end", &[], expect!["ok anchor=2024-03-27T10:01:00Z"]);
    check(
        "miniapp_end",
        &[("time", "2024-03-27T12:08:00+02:00")],
        expect!["ok anchor=2024-03-27T10:01:00Z"],
    );
}

#[test]
fn each_rule_rejects_with_a_message_naming_the_field() {
    check(
        "session_stop",
        &[],
        expect![
            "rejected `type`: unknown event type `session_stop`; use one of session_start, session_end, dialog_start, dialog_end, miniapp_start, miniapp_end"
        ],
    );
    check(
        "dialog_end",
        &[("-id", "")],
        expect!["rejected `id`: is required for every event and missing"],
    );
    check(
        "dialog_end",
        &[("id", "")],
        expect!["rejected `id`: must be 1 to 128 characters long; it is 0"],
    );
    check(
        "dialog_end",
        &[("-group", "")],
        expect!["rejected `group`: is required for dialog_end and missing"],
    );
    check(
        "dialog_end",
        &[("-flow_name", "")],
        expect!["rejected `flow_name`: is required for dialog_end and missing"],
    );
    check(
        "dialog_end",
        &[("-started_at", "")],
        expect!["rejected `started_at`: is required for dialog_end and missing"],
    );
    check(
        "dialog_end",
        &[("time", "2024-03-27 10:08:00")],
        expect![
            "rejected `time`: `2024-03-27 10:08:00` is not an RFC 3339 timestamp with an offset, e.g. 2024-03-27T12:00:00Z"
        ],
    );
    check(
        "dialog_end",
        &[("time", "2024-03-27T10:08:00")],
        expect![
            "rejected `time`: `2024-03-27T10:08:00` is not an RFC 3339 timestamp with an offset, e.g. 2024-03-27T12:00:00Z"
        ],
    );
    check(
        "dialog_end",
        &[("started_at", "2024-03-27T10:09:00Z")],
        expect![
            "rejected `started_at`: is after `time`; an end event must start no later than it ends"
        ],
    );
    check(
        "dialog_end",
        &[("no_inputs", "-1")],
        expect!["rejected `no_inputs`: is -1; counts must be 0 or more"],
    );
    check(
        "dialog_end",
        &[("outcome", "abandoned")],
        expect![
            "rejected `outcome`: unknown outcome `abandoned`; use one of transferred, terminated, error, other"
        ],
    );
    check(
        "miniapp_end",
        &[("result", "ok")],
        expect![
            "rejected `result`: unknown result `ok`; use one of success, fail, hangup, dtmf_escape, error, other"
        ],
    );
    check(
        "session_start",
        &[("time", "2024-03-27T12:05:01Z")],
        expect![
            "rejected `time`: is more than 5 minutes ahead of the server clock; send events when they happen, with a correct clock"
        ],
    );
    check(
        "session_start",
        &[("time", "2024-03-27T12:05:00Z")],
        expect!["ok anchor=2024-03-27T12:05:00Z"],
    );
    check(
        "session_start",
        &[("time", "2022-04-06T11:59:59Z")],
        expect![
            "rejected `time`: is older than the 720-day batch retention; such events can no longer be counted"
        ],
    );
    check(
        "session_end",
        &[("started_at", "2022-04-01T00:00:00Z")],
        expect![
            "rejected `started_at`: is older than the 720-day batch retention; such events can no longer be counted"
        ],
    );
}

#[test]
fn strings_over_256_bytes_are_rejected() {
    let long = "x".repeat(257);
    check(
        "dialog_end",
        &[("channel", &long)],
        expect!["rejected `channel`: is 257 bytes long; the limit is 256 bytes"],
    );
    let ok = "x".repeat(256);
    check(
        "dialog_end",
        &[("channel", &ok)],
        expect!["ok anchor=2024-03-27T10:01:00Z"],
    );
}

/// A terminal escape, a line break and a forged header: what a catalog or a log would echo.
const ESCAPE: &str = "x\u{1b}[31m\r\nX: y";

#[test]
fn control_characters_are_rejected_in_every_dimension_value() {
    for (kind, field, expect) in [
        (
            "dialog_end",
            "group",
            expect![
                "rejected `group`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "dialog_end",
            "session_id",
            expect![
                "rejected `session_id`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "dialog_end",
            "channel",
            expect![
                "rejected `channel`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "dialog_end",
            "region",
            expect![
                "rejected `region`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "dialog_end",
            "flow_name",
            expect![
                "rejected `flow_name`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "dialog_end",
            "flow_id",
            expect![
                "rejected `flow_id`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "dialog_end",
            "flow_type",
            expect![
                "rejected `flow_type`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "dialog_end",
            "locale",
            expect![
                "rejected `locale`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "miniapp_end",
            "flow_name",
            expect![
                "rejected `flow_name`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "miniapp_end",
            "miniapp_name",
            expect![
                "rejected `miniapp_name`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "miniapp_end",
            "miniapp_id",
            expect![
                "rejected `miniapp_id`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "miniapp_end",
            "miniapp_type",
            expect![
                "rejected `miniapp_type`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
        (
            "miniapp_end",
            "fail_reason",
            expect![
                "rejected `fail_reason`: must not contain control characters; found U+001B at character 1: send printable text"
            ],
        ),
    ] {
        check(kind, &[(field, ESCAPE)], expect);
    }
}

#[test]
fn every_kind_of_control_character_is_named_and_printable_text_passes() {
    for (value, expect) in [
        (
            "\0",
            expect![
                "rejected `flow_name`: must not contain control characters; found U+0000 at character 0: send printable text"
            ],
        ),
        (
            "tab\there",
            expect![
                "rejected `flow_name`: must not contain control characters; found U+0009 at character 3: send printable text"
            ],
        ),
        (
            "del\u{7f}",
            expect![
                "rejected `flow_name`: must not contain control characters; found U+007F at character 3: send printable text"
            ],
        ),
        (
            "next line\u{85}",
            expect![
                "rejected `flow_name`: must not contain control characters; found U+0085 at character 9: send printable text"
            ],
        ),
        ("Zürich ☎ 東京", expect!["ok anchor=2024-03-27T10:01:00Z"]),
        ("", expect!["ok anchor=2024-03-27T10:01:00Z"]),
    ] {
        check("dialog_end", &[("flow_name", value)], expect);
    }
}

#[test]
fn fields_name_every_draft_field_once() {
    let mut names: Vec<_> = FIELDS.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), FIELDS.len(), "a field is listed twice");
    // The draft's Debug form has one `None` per field, so a field added to the draft but not to
    // the list (or the reverse) changes the count.
    let draft = format!("{:?}", EventDraft::default());
    assert_eq!(draft.matches("None").count(), FIELDS.len(), "{draft}");
    assert_eq!(field_type("no_inputs"), Some(FieldType::Count));
    assert_eq!(field_type("root"), Some(FieldType::Flag));
    assert_eq!(field_type("type"), Some(FieldType::Text));
    assert_eq!(field_type("kind"), None);
}
