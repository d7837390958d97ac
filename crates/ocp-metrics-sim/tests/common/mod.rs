//! Shared test helpers: an independent reading of the validation rules of docs/api.md
//! section 3.

#![allow(dead_code)]

use jiff::Timestamp;
use ocp_metrics_core::event::{FieldType, field_type};
use ocp_metrics_core::limits::EVENT_COUNT_MAX;
use serde_json::{Map, Value};

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The parsed fields of one event that the tests look at.
#[derive(Debug, Clone)]
pub struct Ev {
    pub line: String,
    pub emit_at: Timestamp,
    pub obj: Map<String, Value>,
    pub kind: String,
    pub time: Timestamp,
    pub started_at: Option<Timestamp>,
}

impl Ev {
    pub fn s(&self, field: &str) -> &str {
        self.obj.get(field).and_then(Value::as_str).unwrap_or("")
    }
    pub fn u(&self, field: &str) -> u64 {
        self.obj.get(field).and_then(Value::as_u64).unwrap_or(0)
    }
    pub fn b(&self, field: &str) -> Option<bool> {
        self.obj.get(field).and_then(Value::as_bool)
    }
    /// The ordinal the simulator puts at the end of the id (`{group}-{session}-{n}`).
    pub fn n(&self) -> u64 {
        self.s("id").rsplit('-').next().unwrap().parse().unwrap()
    }
}

fn req_str<'a>(o: &'a Map<String, Value>, f: &str) -> Result<&'a str, String> {
    o.get(f)
        .ok_or_else(|| format!("missing {f}"))?
        .as_str()
        .ok_or_else(|| format!("{f} is not a string"))
}

fn req_time(o: &Map<String, Value>, f: &str) -> Result<Timestamp, String> {
    let s = req_str(o, f)?;
    // RFC 3339 with a mandatory offset: jiff's Timestamp parser requires one.
    if !s.contains('T') {
        return Err(format!("{f}: {s} is not RFC 3339"));
    }
    s.parse::<Timestamp>().map_err(|e| format!("{f}: {s}: {e}"))
}

fn check_strings(v: &Value, path: &str) -> Result<(), String> {
    match v {
        Value::String(s) if s.len() > 256 => Err(format!("{path} longer than 256 bytes")),
        Value::Object(m) => m.iter().try_for_each(|(k, v)| check_strings(v, k)),
        Value::Array(a) => a.iter().try_for_each(|v| check_strings(v, path)),
        _ => Ok(()),
    }
}

/// Validates one line against docs/api.md section 3 and returns its parsed form.
pub fn validate(line: &str, emit_at: Timestamp) -> Result<Ev, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    check_strings(&v, "")?;
    let Value::Object(o) = v else {
        return Err("not an object".into());
    };
    // The simulator writes the wire format itself; every key it writes must be a field of the
    // core's list, with that field's type.
    for (k, v) in &o {
        let fits = match field_type(k) {
            Some(FieldType::Text) => v.is_string(),
            Some(FieldType::Flag) => v.is_boolean(),
            Some(FieldType::Count) => v.as_u64().is_some_and(|n| n <= EVENT_COUNT_MAX),
            None => return Err(format!("{k} is not an event field")),
        };
        if !fits {
            return Err(format!("{k} is not {:?}", field_type(k)));
        }
    }
    let id = req_str(&o, "id")?;
    if id.is_empty() || id.chars().count() > 128 {
        return Err("id must be 1-128 chars".into());
    }
    let kind = req_str(&o, "type")?.to_owned();
    let time = req_time(&o, "time")?;
    for f in ["group", "session_id", "channel", "region"] {
        req_str(&o, f)?;
    }
    let mut started_at = None;
    match kind.as_str() {
        "session_start" | "dialog_start" | "miniapp_start" => {}
        "session_end" => started_at = Some(req_time(&o, "started_at")?),
        "dialog_end" => {
            started_at = Some(req_time(&o, "started_at")?);
            for f in ["flow_name", "flow_id", "locale", "outcome"] {
                req_str(&o, f)?;
            }
            if let Some(t) = o.get("flow_type") {
                t.as_str().ok_or("flow_type is not a string")?;
            }
            if let Some(r) = o.get("root") {
                r.as_bool().ok_or("root is not a bool")?;
            }
            let outcome = req_str(&o, "outcome")?;
            if !["transferred", "terminated", "error", "other"].contains(&outcome) {
                return Err(format!("outcome {outcome}"));
            }
        }
        "miniapp_end" => {
            started_at = Some(req_time(&o, "started_at")?);
            for f in [
                "miniapp_name",
                "miniapp_id",
                "miniapp_type",
                "locale",
                "result",
            ] {
                req_str(&o, f)?;
            }
            for f in ["flow_name", "fail_reason"] {
                if let Some(x) = o.get(f) {
                    x.as_str().ok_or_else(|| format!("{f} is not a string"))?;
                }
            }
            let result = req_str(&o, "result")?;
            if !["success", "fail", "hangup", "dtmf_escape", "error", "other"].contains(&result) {
                return Err(format!("result {result}"));
            }
        }
        other => return Err(format!("unknown type {other}")),
    }
    if let Some(s) = started_at
        && s > time
    {
        return Err("started_at > time".into());
    }
    if emit_at < time {
        return Err("emitted before it happened".into());
    }
    Ok(Ev {
        line: line.to_owned(),
        emit_at,
        obj: o,
        kind,
        time,
        started_at,
    })
}
