//! The log record of one commit (`LogBatch`: arrival time and events) and its size bound,
//! checked before a request is committed so that a record never exceeds the log's limit.

use super::*;

/// One log record: the accepted events of one request and when they arrived.
#[derive(Serialize, Deserialize)]
pub(super) struct LogBatch<E> {
    pub(super) arrival_ms: i64,
    pub(super) events: E,
}

/// Each event's encoded size is at most its strings (each with a length prefix of at most 5
/// bytes) plus this much for its numbers, flags and enum tags.
const EVENT_FIXED_BYTES_MAX: usize = 160;

/// The encoded size of `events` as one log record, if it exceeds `max` bytes. Cheap for the
/// usual request: an upper bound decides, and only a request near the limit is encoded.
pub(super) fn too_large(events: &[Event], max: u32) -> Option<u64> {
    let max = u64::from(max);
    let bound: u64 = events.iter().map(|e| size_bound(e) as u64).sum::<u64>() + 32;
    if bound <= max {
        return None;
    }
    let bytes = postcard::to_allocvec(&LogBatch {
        arrival_ms: i64::MAX,
        events,
    })
    .map_or(u64::MAX, |b| b.len() as u64);
    (bytes > max).then_some(bytes)
}

/// An upper bound of one event's encoded size.
fn size_bound(e: &Event) -> usize {
    use ocp_metrics_core::EventKind;
    let s = |x: &str| x.len() + 5;
    let mut n = EVENT_FIXED_BYTES_MAX
        + s(&e.id)
        + s(e.group.as_str())
        + s(e.session_id.as_str())
        + s(e.channel.as_str())
        + s(e.region.as_str());
    match &e.kind {
        EventKind::DialogEnd(d) => {
            n += s(d.flow_name.as_str())
                + s(d.flow_id.as_str())
                + s(d.flow_type.as_str())
                + s(d.locale.as_str());
        }
        EventKind::MiniappEnd(m) => {
            n += s(m.miniapp_name.as_str())
                + s(m.miniapp_id.as_str())
                + s(m.miniapp_type.as_str())
                + s(m.locale.as_str())
                + m.flow_name.as_ref().map_or(0, |f| s(f.as_str()))
                + s(m.fail_reason.as_str());
        }
        EventKind::SessionStart
        | EventKind::DialogStart
        | EventKind::MiniappStart
        | EventKind::SessionEnd { .. } => {}
    }
    n
}
