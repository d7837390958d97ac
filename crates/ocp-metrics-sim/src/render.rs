//! Writing events as NDJSON lines (docs/api.md section 3), by hand.
//!
//! Every string written here is either from the fixed catalogue (known to need no escaping) or
//! a group name escaped once when the simulator is built, so a line is a sequence of
//! `push_str`s and digit writes: several times faster than building a `serde_json::Value`.

use crate::catalog::{CHANNELS, FAIL_REASONS, GroupProfile, LOCALES, MINIAPPS, REGIONS};
use crate::story::{Draft, Kind, NO_FAIL_REASON, SUBFLOW, SessionAttrs};

/// What a rendered line needs to know about its session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionKey {
    pub(crate) group: u16,
    pub(crate) attrs: SessionAttrs,
    /// The session id's 128 bits: `hi` random, `lo` = (minute << 24 | ordinal in the minute)
    /// XOR a hash of `hi`. Distinct sessions of a group differ in the first part, and XOR with
    /// a function of `hi` keeps distinct pairs distinct, so ids are unique by construction yet
    /// look random.
    pub(crate) id_hi: u64,
    pub(crate) id_lo: u64,
}

/// Writes `value`'s lowest `out.len()` hex digits into `out`, zero-padded.
fn hex_into(out: &mut [u8], value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let len = out.len();
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((value >> (4 * (len - 1 - i))) & 0xf) as usize];
    }
}

/// The session id, `8-4-4-4-12` lowercase hex, written into `out` (cleared first).
pub(crate) fn session_id(out: &mut String, k: &SessionKey) {
    let mut b = [b'-'; 36];
    hex_into(&mut b[0..8], k.id_hi >> 32);
    hex_into(&mut b[9..13], k.id_hi >> 16);
    hex_into(&mut b[14..18], k.id_hi);
    hex_into(&mut b[19..23], k.id_lo >> 48);
    hex_into(&mut b[24..36], k.id_lo);
    out.clear();
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

fn push_uint(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

fn digits_into(out: &mut [u8], mut v: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Appends `ms` (milliseconds since the epoch, years 0000-9999) as RFC 3339 in UTC with
/// milliseconds, e.g. `2026-11-25T10:01:02.345Z`.
pub fn push_rfc3339_ms(out: &mut String, ms: i64) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u32;
    let (y, mo, d) = ocp_metrics_core::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    let mut b = *b"0000-00-00T00:00:00.000Z";
    digits_into(&mut b[0..4], y.clamp(0, 9999) as u32);
    digits_into(&mut b[5..7], mo as u32);
    digits_into(&mut b[8..10], d as u32);
    digits_into(&mut b[11..13], sod / 3600);
    digits_into(&mut b[14..16], sod / 60 % 60);
    digits_into(&mut b[17..19], sod % 60);
    digits_into(&mut b[20..23], milli);
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

fn field_str(out: &mut String, name: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":\"");
    out.push_str(value);
    out.push('"');
}

fn field_time(out: &mut String, name: &str, ms: i64) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":\"");
    push_rfc3339_ms(out, ms);
    out.push('"');
}

fn field_uint(out: &mut String, name: &str, v: u8) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    push_uint(out, u64::from(v));
}

fn field_bool(out: &mut String, name: &str, v: bool) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    out.push_str(if v { "true" } else { "false" });
}

/// Writes one event as a JSON object (no newline) into `out`, which is cleared first. `sid`
/// is the session id as made by [`session_id`].
pub(crate) fn render(
    out: &mut String,
    group: &GroupProfile,
    key: &SessionKey,
    sid: &str,
    n: u16,
    d: &Draft,
) {
    out.clear();
    out.push_str("{\"id\":\"");
    out.push_str(&group.name_json);
    out.push('-');
    out.push_str(sid);
    out.push('-');
    push_uint(out, u64::from(n));
    out.push('"');
    field_str(out, "type", d.kind.as_str());
    field_time(out, "time", d.time);
    field_str(out, "group", &group.name_json);
    field_str(out, "session_id", sid);
    field_str(out, "channel", CHANNELS[usize::from(key.attrs.channel)]);
    field_str(out, "region", REGIONS[usize::from(key.attrs.region)]);
    field_bool(out, "test", key.attrs.test);

    let locale = LOCALES[usize::from(key.attrs.locale)];
    let flow = if d.flow == SUBFLOW {
        &group.subflow
    } else {
        &group.flows[usize::from(d.flow)]
    };
    if d.kind.is_end() {
        field_time(out, "started_at", d.started_at);
    }
    match d.kind {
        Kind::SessionStart | Kind::SessionEnd => {}
        Kind::DialogStart | Kind::DialogEnd => {
            field_str(out, "flow_name", flow.name);
            field_str(out, "flow_id", &flow.id);
            field_str(out, "flow_type", "orchestrator");
            field_str(out, "locale", locale);
            field_bool(out, "root", d.root);
            if d.kind == Kind::DialogEnd {
                field_str(out, "outcome", d.outcome.as_str());
            }
        }
        Kind::MiniappStart | Kind::MiniappEnd => {
            let app = &MINIAPPS[usize::from(d.miniapp)];
            field_str(out, "miniapp_name", app.name);
            field_str(
                out,
                "miniapp_id",
                &group.miniapp_ids[usize::from(d.miniapp)],
            );
            field_str(out, "miniapp_type", app.kind);
            field_str(out, "locale", locale);
            field_str(out, "flow_name", flow.name);
            if d.kind == Kind::MiniappEnd {
                field_str(out, "result", d.result.as_str());
                let reason = if d.fail == NO_FAIL_REASON {
                    ""
                } else {
                    FAIL_REASONS[usize::from(d.fail)]
                };
                field_str(out, "fail_reason", reason);
            }
        }
    }
    if matches!(d.kind, Kind::DialogEnd | Kind::MiniappEnd) {
        let c = &d.counts;
        field_uint(out, "agent_requests", c.agent_requests);
        field_uint(out, "no_inputs", c.no_inputs);
        field_uint(out, "no_matches", c.no_matches);
        field_uint(out, "system_errors", c.system_errors);
        field_uint(out, "critical_errors", c.critical_errors);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use jiff::Timestamp;

    #[test]
    fn timestamps_match_jiff() {
        let mut rng = Rng::new(3);
        let max = Timestamp::MAX.as_millisecond();
        let mut cases: Vec<i64> = vec![0, 951_782_400_000, 4_107_542_399_999, max];
        cases.extend((0..5000).map(|_| rng.range(0, max)));
        let mut s = String::new();
        for ms in cases {
            s.clear();
            push_rfc3339_ms(&mut s, ms);
            let parsed: Timestamp = s.parse().unwrap();
            assert_eq!(parsed.as_millisecond(), ms, "{s}");
            assert_eq!(s.len(), 24, "{s}");
        }
        s.clear();
        push_rfc3339_ms(&mut s, 1_795_600_862_345);
        assert_eq!(s, "2026-11-25T10:01:02.345Z");
    }

    #[test]
    fn integers() {
        for v in [0u64, 7, 10, 99, 100, 12345, u64::MAX] {
            let mut s = String::new();
            push_uint(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }
}
