//! The event model (docs/api.md section 3): an [`EventDraft`] is what a producer sent, with every
//! field optional; [`Event::parse`] turns it into a normalised [`Event`] or says which field is
//! wrong and how. Only normalised events reach the log and the rollups.

use crate::domain::{DomainError, GroupName, Label};
use crate::echo::clip;
use crate::limits::{
    BATCH_RETENTION_SECONDS, EVENT_COUNT_MAX, EVENT_FUTURE_SKEW_SECONDS_MAX, EVENT_ID_CHARS_MAX,
    EVENT_STRING_BYTES_MAX,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMs = i64;

/// An event as the producer sent it: every field optional, strings borrowed from the request.
/// The HTTP layer fills it from JSON (and reports mistyped fields itself, since only it knows
/// JSON types); [`Event::parse`] checks everything else.
#[derive(Debug, Default, Clone)]
pub struct EventDraft<'a> {
    pub id: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub time: Option<&'a str>,
    pub group: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub region: Option<&'a str>,
    pub test: Option<bool>,
    pub started_at: Option<&'a str>,
    pub flow_name: Option<&'a str>,
    pub flow_id: Option<&'a str>,
    pub flow_type: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub root: Option<bool>,
    pub outcome: Option<&'a str>,
    pub miniapp_name: Option<&'a str>,
    pub miniapp_id: Option<&'a str>,
    pub miniapp_type: Option<&'a str>,
    pub result: Option<&'a str>,
    pub fail_reason: Option<&'a str>,
    pub agent_requests: Option<i64>,
    pub no_inputs: Option<i64>,
    pub no_matches: Option<i64>,
    pub system_errors: Option<i64>,
    pub critical_errors: Option<i64>,
}

/// What a field of an event holds (docs/api.md section 3.3): the type a producer must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string (timestamps and enumerations included).
    Text,
    /// `true` or `false`.
    Flag,
    /// A whole number in `0..=EVENT_COUNT_MAX`.
    Count,
}

/// Every field of an event as producers name it, with its type, in [`EventDraft`]'s order. It is
/// the one list of the event's fields: the wire parser names mistyped fields from it, and the
/// tests check the wire struct, the draft and the simulator's events against it.
pub const FIELDS: &[(&str, FieldType)] = &[
    ("id", FieldType::Text),
    ("type", FieldType::Text),
    ("time", FieldType::Text),
    ("group", FieldType::Text),
    ("session_id", FieldType::Text),
    ("channel", FieldType::Text),
    ("region", FieldType::Text),
    ("test", FieldType::Flag),
    ("started_at", FieldType::Text),
    ("flow_name", FieldType::Text),
    ("flow_id", FieldType::Text),
    ("flow_type", FieldType::Text),
    ("locale", FieldType::Text),
    ("root", FieldType::Flag),
    ("outcome", FieldType::Text),
    ("miniapp_name", FieldType::Text),
    ("miniapp_id", FieldType::Text),
    ("miniapp_type", FieldType::Text),
    ("result", FieldType::Text),
    ("fail_reason", FieldType::Text),
    ("agent_requests", FieldType::Count),
    ("no_inputs", FieldType::Count),
    ("no_matches", FieldType::Count),
    ("system_errors", FieldType::Count),
    ("critical_errors", FieldType::Count),
];

/// The type of the event field `name`, or `None` when events have no such field.
pub fn field_type(name: &str) -> Option<FieldType> {
    FIELDS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Why one event was rejected. `field` names the offending field; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct EventError {
    pub field: &'static str,
    pub message: String,
}

impl EventError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        EventError {
            field,
            message: message.into(),
        }
    }
}

/// A validated, normalised event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: Box<str>,
    pub group: GroupName,
    pub session_id: Label,
    pub channel: Label,
    pub region: Label,
    pub test: bool,
    pub time: UnixMs,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    SessionStart,
    DialogStart,
    MiniappStart,
    SessionEnd { started_at: UnixMs },
    DialogEnd(Box<DialogEnd>),
    MiniappEnd(Box<MiniappEnd>),
}

/// The end of one run of an Orchestrator flow application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogEnd {
    pub started_at: UnixMs,
    pub flow_name: Label,
    pub flow_id: Label,
    pub flow_type: Label,
    pub locale: Label,
    pub root: bool,
    pub outcome: Outcome,
    pub counts: Counts,
}

/// The end of one miniApp invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiniappEnd {
    pub started_at: UnixMs,
    pub miniapp_name: Label,
    pub miniapp_id: Label,
    pub miniapp_type: Label,
    pub locale: Label,
    pub flow_name: Option<Label>,
    pub result: MiniappResult,
    pub fail_reason: Label,
    pub counts: Counts,
}

/// Per-dialog or per-invocation totals, each in `0..=EVENT_COUNT_MAX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub agent_requests: u32,
    pub no_inputs: u32,
    pub no_matches: u32,
    pub system_errors: u32,
    pub critical_errors: u32,
}

impl Counts {
    /// The "had at least one system error" test of the batch classes (docs/api.md section 6).
    pub fn has_errors(&self) -> bool {
        self.system_errors > 0 || self.critical_errors > 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Transferred,
    Terminated,
    Error,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MiniappResult {
    Success,
    Fail,
    Hangup,
    DtmfEscape,
    Error,
    Other,
}

impl MiniappResult {
    /// Every result, in the order the API documentation lists them.
    pub const ALL: [MiniappResult; 6] = [
        MiniappResult::Success,
        MiniappResult::Fail,
        MiniappResult::Hangup,
        MiniappResult::DtmfEscape,
        MiniappResult::Error,
        MiniappResult::Other,
    ];

    /// The wire name (`result` of a `miniapp_end` event).
    pub fn as_str(self) -> &'static str {
        match self {
            MiniappResult::Success => "success",
            MiniappResult::Fail => "fail",
            MiniappResult::Hangup => "hangup",
            MiniappResult::DtmfEscape => "dtmf_escape",
            MiniappResult::Error => "error",
            MiniappResult::Other => "other",
        }
    }
}

const EVENT_TYPES: &str =
    "session_start, session_end, dialog_start, dialog_end, miniapp_start, miniapp_end";

impl Event {
    /// Validates a draft against docs/api.md section 3.4, reading "now" for the future-skew and
    /// retention rules.
    pub fn parse(d: &EventDraft<'_>, now: Timestamp) -> Result<Event, EventError> {
        let kind_name = required(d.kind, "type", "every event")?;
        let id = parse_id(d.id)?;
        let time = timestamp(required(d.time, "time", kind_name)?, "time")?;
        let group = GroupName::parse(required(d.group, "group", kind_name)?)
            .map_err(|e| domain_error("group", e))?;
        let session_id = label(d.session_id, "session_id", kind_name)?;
        let channel = label(d.channel, "channel", kind_name)?;
        let region = label(d.region, "region", kind_name)?;
        let kind = match kind_name {
            "session_start" => EventKind::SessionStart,
            "dialog_start" => EventKind::DialogStart,
            "miniapp_start" => EventKind::MiniappStart,
            "session_end" => EventKind::SessionEnd {
                started_at: started_at(d, time, kind_name)?,
            },
            "dialog_end" => EventKind::DialogEnd(Box::new(dialog_end(d, time)?)),
            "miniapp_end" => EventKind::MiniappEnd(Box::new(miniapp_end(d, time)?)),
            other => {
                return Err(EventError::new(
                    "type",
                    format!(
                        "unknown event type `{}`; use one of {EVENT_TYPES}",
                        clip(other)
                    ),
                ));
            }
        };
        let event = Event {
            id,
            group,
            session_id,
            channel,
            region,
            test: d.test.unwrap_or(false),
            time,
            kind,
        };
        check_time_window(&event, now)?;
        Ok(event)
    }

    /// The instant the event counts at in batch and dialog metrics: `started_at` for end events,
    /// `time` otherwise.
    pub fn anchor(&self) -> UnixMs {
        self.started_at().unwrap_or(self.time)
    }

    pub fn started_at(&self) -> Option<UnixMs> {
        match &self.kind {
            EventKind::SessionEnd { started_at } => Some(*started_at),
            EventKind::DialogEnd(d) => Some(d.started_at),
            EventKind::MiniappEnd(m) => Some(m.started_at),
            _ => None,
        }
    }
}

fn dialog_end(d: &EventDraft<'_>, time: UnixMs) -> Result<DialogEnd, EventError> {
    const K: &str = "dialog_end";
    Ok(DialogEnd {
        started_at: started_at(d, time, K)?,
        flow_name: label(d.flow_name, "flow_name", K)?,
        flow_id: label(d.flow_id, "flow_id", K)?,
        flow_type: optional_label(d.flow_type, "flow_type")?
            .unwrap_or_else(|| label_lit("orchestrator")),
        locale: label(d.locale, "locale", K)?,
        root: d.root.unwrap_or(true),
        outcome: parse_outcome(required(d.outcome, "outcome", K)?)?,
        counts: counts(d)?,
    })
}

fn miniapp_end(d: &EventDraft<'_>, time: UnixMs) -> Result<MiniappEnd, EventError> {
    const K: &str = "miniapp_end";
    Ok(MiniappEnd {
        started_at: started_at(d, time, K)?,
        miniapp_name: label(d.miniapp_name, "miniapp_name", K)?,
        miniapp_id: label(d.miniapp_id, "miniapp_id", K)?,
        miniapp_type: label(d.miniapp_type, "miniapp_type", K)?,
        locale: label(d.locale, "locale", K)?,
        flow_name: optional_label(d.flow_name, "flow_name")?,
        result: parse_result(required(d.result, "result", K)?)?,
        fail_reason: optional_label(d.fail_reason, "fail_reason")?.unwrap_or_else(|| label_lit("")),
        counts: counts(d)?,
    })
}

fn parse_outcome(s: &str) -> Result<Outcome, EventError> {
    Ok(match s {
        "transferred" => Outcome::Transferred,
        "terminated" => Outcome::Terminated,
        "error" => Outcome::Error,
        "other" => Outcome::Other,
        _ => {
            return Err(EventError::new(
                "outcome",
                format!(
                    "unknown outcome `{}`; use one of transferred, terminated, error, other",
                    clip(s)
                ),
            ));
        }
    })
}

fn parse_result(s: &str) -> Result<MiniappResult, EventError> {
    Ok(
        match MiniappResult::ALL.into_iter().find(|r| r.as_str() == s) {
            Some(r) => r,
            None => {
                return Err(EventError::new(
                    "result",
                    format!(
                        "unknown result `{}`; use one of success, fail, hangup, dtmf_escape, error, other",
                        clip(s)
                    ),
                ));
            }
        },
    )
}

fn counts(d: &EventDraft<'_>) -> Result<Counts, EventError> {
    Ok(Counts {
        agent_requests: count(d.agent_requests, "agent_requests")?,
        no_inputs: count(d.no_inputs, "no_inputs")?,
        no_matches: count(d.no_matches, "no_matches")?,
        system_errors: count(d.system_errors, "system_errors")?,
        critical_errors: count(d.critical_errors, "critical_errors")?,
    })
}

fn count(v: Option<i64>, field: &'static str) -> Result<u32, EventError> {
    let v = v.unwrap_or(0);
    if v < 0 {
        return Err(EventError::new(
            field,
            format!("is {v}; counts must be 0 or more"),
        ));
    }
    if v as u64 > EVENT_COUNT_MAX {
        return Err(EventError::new(
            field,
            format!("is {v}; the largest accepted count is {EVENT_COUNT_MAX}"),
        ));
    }
    Ok(v as u32)
}

fn started_at(d: &EventDraft<'_>, time: UnixMs, kind: &str) -> Result<UnixMs, EventError> {
    let s = timestamp(required(d.started_at, "started_at", kind)?, "started_at")?;
    if s > time {
        return Err(EventError::new(
            "started_at",
            "is after `time`; an end event must start no later than it ends",
        ));
    }
    Ok(s)
}

fn check_time_window(e: &Event, now: Timestamp) -> Result<(), EventError> {
    let now_ms = now.as_millisecond();
    if e.time > now_ms + EVENT_FUTURE_SKEW_SECONDS_MAX * 1000 {
        return Err(EventError::new(
            "time",
            "is more than 5 minutes ahead of the server clock; send events when they happen, with a correct clock",
        ));
    }
    if e.anchor() < now_ms - BATCH_RETENTION_SECONDS * 1000 {
        let field = if e.started_at().is_some() {
            "started_at"
        } else {
            "time"
        };
        return Err(EventError::new(
            field,
            "is older than the 720-day batch retention; such events can no longer be counted",
        ));
    }
    Ok(())
}

fn parse_id(v: Option<&str>) -> Result<Box<str>, EventError> {
    let s = required(v, "id", "every event")?;
    let chars = s.chars().count();
    if s.len() > EVENT_STRING_BYTES_MAX {
        return Err(EventError::new(
            "id",
            format!(
                "is {} bytes long; the limit is {EVENT_STRING_BYTES_MAX} bytes",
                s.len()
            ),
        ));
    }
    if chars == 0 || chars > EVENT_ID_CHARS_MAX {
        return Err(EventError::new(
            "id",
            format!("must be 1 to {EVENT_ID_CHARS_MAX} characters long; it is {chars}"),
        ));
    }
    Ok(s.into())
}

fn timestamp(s: &str, field: &'static str) -> Result<UnixMs, EventError> {
    let ts: Timestamp = s.parse().map_err(|_| {
        EventError::new(
            field,
            format!(
                "`{}` is not an RFC 3339 timestamp with an offset, e.g. 2024-03-27T12:00:00Z",
                clip(s)
            ),
        )
    })?;
    Ok(ts.as_millisecond())
}

fn required<'a>(
    v: Option<&'a str>,
    field: &'static str,
    kind: &str,
) -> Result<&'a str, EventError> {
    v.ok_or_else(|| EventError::new(field, format!("is required for {kind} and missing")))
}

fn label(v: Option<&str>, field: &'static str, kind: &str) -> Result<Label, EventError> {
    Label::parse(required(v, field, kind)?).map_err(|e| domain_error(field, e))
}

fn optional_label(v: Option<&str>, field: &'static str) -> Result<Option<Label>, EventError> {
    v.map(|s| Label::parse(s).map_err(|e| domain_error(field, e)))
        .transpose()
}

fn label_lit(s: &str) -> Label {
    Label::parse(s).expect("literal labels are short")
}

fn domain_error(field: &'static str, e: DomainError) -> EventError {
    EventError::new(field, e.to_string())
}

#[cfg(test)]
mod tests;
