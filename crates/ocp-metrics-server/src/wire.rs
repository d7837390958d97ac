//! The wire format: JSON events in, JSON answers out. Only this module and the handlers know
//! JSON; they hand the core plain drafts and get plain answers back.

use ocp_metrics_core::event::{EventDraft, FieldType, field_type};
use ocp_metrics_core::query::{Answer, FilterDraft, QueryDraft};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// One event as JSON, every field optional and borrowed where the JSON has no escapes.
///
/// The schema (for the OpenAPI document) says which fields a valid event needs; the parser
/// itself takes any subset and rejects the event, not the request, when one is missing.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = Event, description = "One event. Which fields are required depends on `type`; an event that \
    breaks a rule is rejected on its own (listed in the answer's `errors`), and the rest of the \
    request is accepted.", example = json!({
    "id": "s1-m2", "type": "miniapp_end", "time": "2026-11-25T10:06:00Z",
    "started_at": "2026-11-25T10:02:00Z", "group": "ocp-qa", "session_id": "s1",
    "channel": "omIVR", "region": "us1", "miniapp_name": "Balance", "miniapp_id": "ma-2",
    "miniapp_type": "Announcement", "locale": "en-US", "flow_name": "Banking",
    "result": "success", "no_inputs": 1
}))]
pub struct WireEvent<'a> {
    /// 1 to 128 characters (at most 256 bytes), unique within the group: the dedupe key.
    #[serde(borrow)]
    #[schema(value_type = String, required = true)]
    id: Option<Cow<'a, str>>,
    /// `session_start`, `session_end`, `dialog_start`, `dialog_end`, `miniapp_start` or
    /// `miniapp_end`.
    #[serde(rename = "type", borrow)]
    #[schema(value_type = String, required = true)]
    kind: Option<Cow<'a, str>>,
    /// When the event happened, RFC 3339 with an offset; at most 5 minutes ahead of the
    /// server's clock.
    #[serde(borrow)]
    #[schema(value_type = String, required = true)]
    time: Option<Cow<'a, str>>,
    /// The OCP group, 1 to 256 bytes, no control characters; the token must be granted it.
    #[serde(borrow)]
    #[schema(value_type = String, required = true)]
    pub group: Option<Cow<'a, str>>,
    /// The IVR call or chat session, at most 256 bytes.
    #[serde(borrow)]
    #[schema(value_type = String, required = true)]
    session_id: Option<Cow<'a, str>>,
    /// For example `omIVR` or `chat`, at most 256 bytes.
    #[serde(borrow)]
    #[schema(value_type = String, required = true)]
    channel: Option<Cow<'a, str>>,
    /// For example `us1`, at most 256 bytes.
    #[serde(borrow)]
    #[schema(value_type = String, required = true)]
    region: Option<Cow<'a, str>>,
    /// Test traffic (default false): the `test_flag` dimension of real-time metrics.
    test: Option<bool>,
    /// End events: when the session, dialog or invocation started (RFC 3339, not after `time`).
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    started_at: Option<Cow<'a, str>>,
    /// `dialog_end` (required): the flow's name; `miniapp_end`: the flow it ran in, if any.
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    flow_name: Option<Cow<'a, str>>,
    /// `dialog_end` (required): the flow's id.
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    flow_id: Option<Cow<'a, str>>,
    /// `dialog_end`: the flow's type, default `orchestrator`.
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    flow_type: Option<Cow<'a, str>>,
    /// `dialog_end` and `miniapp_end` (required): for example `en-US`.
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    locale: Option<Cow<'a, str>>,
    /// `dialog_end`: a root flow (default true); only root dialogs count in dialog metrics.
    root: Option<bool>,
    /// `dialog_end` (required): `transferred`, `terminated`, `error` or `other`.
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    outcome: Option<Cow<'a, str>>,
    /// `miniapp_end` (required).
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    miniapp_name: Option<Cow<'a, str>>,
    /// `miniapp_end` (required).
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    miniapp_id: Option<Cow<'a, str>>,
    /// `miniapp_end` (required).
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    miniapp_type: Option<Cow<'a, str>>,
    /// `miniapp_end` (required): `success`, `fail`, `hangup`, `dtmf_escape`, `error` or `other`.
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    result: Option<Cow<'a, str>>,
    /// `miniapp_end`: why it failed, default `""`.
    #[serde(borrow)]
    #[schema(value_type = Option<String>)]
    fail_reason: Option<Cow<'a, str>>,
    /// End events: total over the dialog or invocation, 0 to 1,000,000 (default 0).
    #[schema(minimum = 0, maximum = 1_000_000)]
    agent_requests: Option<i64>,
    /// As `agent_requests`.
    #[schema(minimum = 0, maximum = 1_000_000)]
    no_inputs: Option<i64>,
    /// As `agent_requests`.
    #[schema(minimum = 0, maximum = 1_000_000)]
    no_matches: Option<i64>,
    /// As `agent_requests`.
    #[schema(minimum = 0, maximum = 1_000_000)]
    system_errors: Option<i64>,
    /// As `agent_requests`.
    #[schema(minimum = 0, maximum = 1_000_000)]
    critical_errors: Option<i64>,
}

impl<'a> WireEvent<'a> {
    /// Parses one JSON event. A message names the first mistyped field, since serde's own
    /// message only gives a column.
    pub fn parse(json: &'a str) -> Result<WireEvent<'a>, String> {
        serde_json::from_str(json).map_err(|e| explain(json, e))
    }

    pub fn draft(&self) -> EventDraft<'_> {
        EventDraft {
            id: self.id.as_deref(),
            kind: self.kind.as_deref(),
            time: self.time.as_deref(),
            group: self.group.as_deref(),
            session_id: self.session_id.as_deref(),
            channel: self.channel.as_deref(),
            region: self.region.as_deref(),
            test: self.test,
            started_at: self.started_at.as_deref(),
            flow_name: self.flow_name.as_deref(),
            flow_id: self.flow_id.as_deref(),
            flow_type: self.flow_type.as_deref(),
            locale: self.locale.as_deref(),
            root: self.root,
            outcome: self.outcome.as_deref(),
            miniapp_name: self.miniapp_name.as_deref(),
            miniapp_id: self.miniapp_id.as_deref(),
            miniapp_type: self.miniapp_type.as_deref(),
            result: self.result.as_deref(),
            fail_reason: self.fail_reason.as_deref(),
            agent_requests: self.agent_requests,
            no_inputs: self.no_inputs,
            no_matches: self.no_matches,
            system_errors: self.system_errors,
            critical_errors: self.critical_errors,
        }
    }
}

fn explain(json: &str, e: serde_json::Error) -> String {
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(_) => return format!("not valid JSON ({e}); send one JSON object per line"),
    };
    let Some(obj) = value.as_object() else {
        return "an event must be a JSON object".to_string();
    };
    for (k, v) in obj {
        let k = k.as_str();
        let bad = match field_type(k) {
            Some(FieldType::Text) => (!v.is_string() && !v.is_null()).then_some("a string"),
            Some(FieldType::Flag) => {
                (!v.is_boolean() && !v.is_null()).then_some("a boolean (true or false)")
            }
            Some(FieldType::Count) => {
                let ok = v.is_null()
                    || v.is_i64()
                    || v.is_u64() && v.as_u64().is_some_and(|n| n <= i64::MAX as u64);
                (!ok).then_some("a whole number >= 0")
            }
            None => None,
        };
        if let Some(expected) = bad {
            return format!("`{k}`: must be {expected}, got {}", type_name(v));
        }
    }
    format!("invalid event: {e}")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(n) if n.is_u64() && n.as_u64() > Some(i64::MAX as u64) => {
            "a number out of range"
        }
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a query body into a draft, reporting mistyped fields by name.
pub fn query_draft(body: &[u8]) -> Result<QueryDraft, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not valid JSON ({e}); send a JSON object like {{\"metrics\": [...], \"filters\": {{}}, ...}}"))?;
    let Value::Object(mut obj) = value else {
        return Err("the body must be a JSON object with the fields metrics, filters, start, end, group, downsampling".into());
    };
    let mut d = QueryDraft::default();
    if let Some(v) = take(&mut obj, "metrics") {
        let items = v
            .as_array()
            .ok_or("`metrics` must be an array of strings")?;
        let names = items
            .iter()
            .map(|m| m.as_str().map(String::from))
            .collect::<Option<Vec<_>>>();
        d.metrics = Some(names.ok_or("`metrics` must be an array of strings")?);
    }
    if let Some(v) = take(&mut obj, "filters") {
        let Value::Object(f) = v else {
            return Err("`filters` must be an object mapping dimension names to arrays of values, e.g. {\"channel\": [\"chat\"]}".into());
        };
        d.filters = Some(
            f.into_iter()
                .map(|(k, v)| filter(k, v))
                .collect::<Result<_, _>>()?,
        );
    }
    d.start = string(&mut obj, "start")?;
    d.end = string(&mut obj, "end")?;
    d.group = string(&mut obj, "group")?;
    d.downsampling = string(&mut obj, "downsampling")?;
    d.timezone = string(&mut obj, "timezone")?;
    if let Some(v) = take(&mut obj, "drilldown") {
        d.drilldown = Some(v.as_bool().ok_or("`drilldown` must be true or false")?);
    }
    Ok(d)
}

fn filter(key: String, v: Value) -> Result<(String, FilterDraft), String> {
    let draft = match v {
        Value::Bool(b) => FilterDraft::Bool(b),
        Value::Array(items) => {
            let values = items.into_iter().map(|i| match i {
                Value::String(s) => Some(s),
                _ => None,
            });
            let values = values.collect::<Option<Vec<_>>>();
            FilterDraft::Values(
                values.ok_or_else(|| format!("filter `{key}` must be an array of strings"))?,
            )
        }
        _ => {
            return Err(format!(
                "filter `{key}` must be an array of strings (or a boolean for test_flag), e.g. \"{key}\": [\"value\"]"
            ));
        }
    };
    Ok((key, draft))
}

fn take(obj: &mut serde_json::Map<String, Value>, key: &str) -> Option<Value> {
    obj.remove(key).filter(|v| !v.is_null())
}

fn string(obj: &mut serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match take(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

/// Writes an answer as the API's JSON array of series, straight into one buffer.
pub fn answer_json(a: &Answer) -> String {
    let mut out = String::with_capacity(64 + a.series.len() * (64 + a.labels.len() * 32));
    let mut digits = itoa::Buffer::new();
    // Every label quoted once with the comma before it, and once more with a zero after it
    // (most points of a long drilldown are zero), reused by every series: a point is then one
    // or two copies into the buffer.
    let keys: Vec<String> = a.labels.iter().map(|l| format!(",\"{l}\":")).collect();
    let zeros: Vec<String> = keys.iter().map(|k| format!("{k}0")).collect();
    out.push('[');
    for (i, s) in a.series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        push_str(&mut out, s.metric);
        out.push_str(",\"tags\":{");
        for (j, (k, v)) in s.tags.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_str(&mut out, k);
            out.push(':');
            push_str(&mut out, v);
        }
        out.push_str("},\"dps\":{");
        let points = s.values.iter().zip(keys.iter().zip(&zeros));
        for (j, (value, (key, zero))) in points.enumerate() {
            // The first point has no comma before it.
            let from = usize::from(j == 0);
            if *value == 0 {
                out.push_str(&zero[from..]);
            } else {
                out.push_str(&key[from..]);
                out.push_str(digits.format(*value));
            }
        }
        out.push_str("}}");
    }
    out.push(']');
    out
}

fn push_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocp_metrics_core::event::FIELDS;

    /// A JSON value of the given type.
    fn sample(t: FieldType) -> &'static str {
        match t {
            FieldType::Text => "\"x\"",
            FieldType::Flag => "true",
            FieldType::Count => "7",
        }
    }

    /// Serde skips unknown keys, so a field of the core's list that `WireEvent` lacks (or does not
    /// pass on to the draft) would leave the draft empty.
    #[test]
    fn every_event_field_reaches_the_draft() {
        let empty = format!("{:?}", EventDraft::default());
        for (name, t) in FIELDS {
            let json = format!("{{\"{name}\":{}}}", sample(*t));
            let event = WireEvent::parse(&json).unwrap();
            assert_ne!(format!("{:?}", event.draft()), empty, "`{name}` is lost");
        }
    }

    #[test]
    fn a_mistyped_field_is_named_with_the_type_it_needs() {
        for (name, t) in FIELDS {
            let wrong = match t {
                FieldType::Text => ("7", "a string"),
                FieldType::Flag => ("\"x\"", "a boolean (true or false)"),
                FieldType::Count => ("\"x\"", "a whole number >= 0"),
            };
            let json = format!("{{\"{name}\":{}}}", wrong.0);
            let message = WireEvent::parse(&json).unwrap_err();
            let got = if *t == FieldType::Text {
                "a number"
            } else {
                "a string"
            };
            assert_eq!(message, format!("`{name}`: must be {}, got {got}", wrong.1));
        }
    }
}
