//! The payload of one stream message: one event and the time the accepting node received it.
//!
//! # Format, version 1
//!
//! ```text
//! byte 0      format version, 1
//! bytes 1..   postcard encoding of { arrival_ms: i64 (zigzag varint), event: Event }
//! ```
//!
//! `Event` is `ocp_metrics_core::Event` as its serde derive lays it out: fields in declaration
//! order, enums as a varint variant index, strings as a varint length and UTF-8 bytes, integers
//! as (zigzag) varints. That layout is therefore part of this format: reordering, adding or
//! removing a field or a variant of `Event` (or of a type inside it) changes the bytes, and the
//! `format_v1_bytes_are_stable` test below fails. When it does, keep a decoder for version 1
//! (messages stay in the stream for as long as it retains them, and snapshots name the stream
//! sequence they cover, so old messages are read again after a restart) and write version 2.
//!
//! `arrival_ms` travels with the event, rather than being taken from the reading node's clock,
//! so that every node applies the same message with the same "now" (the dedupe horizon and the
//! retention check depend on it) and so reaches the same state.

use ocp_metrics_core::Event;
use serde::{Deserialize, Serialize};

/// The format version written by [`encode`]. Readers reject versions they do not know rather
/// than guess, so a node running older code stops at the first newer message instead of
/// applying it wrongly.
pub const RECORD_FORMAT_VERSION: u8 = 1;

/// One event as read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// When the node that accepted the event received it, in milliseconds since the Unix epoch.
    pub arrival_ms: i64,
    pub event: Event,
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("empty message: an event record has at least a version byte")]
    Empty,
    #[error(
        "record format version {0} is not known to this build (it reads version {RECORD_FORMAT_VERSION}); upgrade this node"
    )]
    UnknownVersion(u8),
    #[error("record body does not decode: {0}")]
    Body(String),
}

#[derive(Serialize)]
struct RecordV1Ref<'a> {
    arrival_ms: i64,
    event: &'a Event,
}

#[derive(Deserialize)]
struct RecordV1 {
    arrival_ms: i64,
    event: Event,
}

/// Encodes `event`, received at `arrival_ms`, in the current format.
pub fn encode(arrival_ms: i64, event: &Event) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail: postcard only errors on writer failure or
    // on types serde cannot describe, and `Event` is neither.
    postcard::to_extend(
        &RecordV1Ref { arrival_ms, event },
        vec![RECORD_FORMAT_VERSION],
    )
    .expect("postcard encodes an Event into a Vec")
}

/// Decodes a message written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<EventRecord, RecordError> {
    let (&version, body) = bytes.split_first().ok_or(RecordError::Empty)?;
    match version {
        1 => {
            let (record, rest): (RecordV1, &[u8]) =
                postcard::take_from_bytes(body).map_err(|e| RecordError::Body(e.to_string()))?;
            if !rest.is_empty() {
                return Err(RecordError::Body(format!(
                    "{} trailing bytes after the event",
                    rest.len()
                )));
            }
            Ok(EventRecord {
                arrival_ms: record.arrival_ms,
                event: record.event,
            })
        }
        other => Err(RecordError::UnknownVersion(other)),
    }
}

/// The `Nats-Msg-Id` of the event `(group, id)`: the 128-bit dedupe key of the node's own dedupe
/// set ([`ocp_metrics_core::Dedupe::key`]) as 32 lowercase hex digits. Using the same key means
/// JetStream's short duplicate window and the nodes' 48-hour set agree on what "the same event"
/// is.
pub fn message_id(group: &str, id: &str) -> String {
    format!("{:032x}", ocp_metrics_core::Dedupe::key(group, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocp_metrics_core::event::{
        Counts, DialogEnd, EventKind, MiniappEnd, MiniappResult, Outcome,
    };
    use ocp_metrics_core::{GroupName, Label};

    fn label(s: &str) -> Label {
        Label::parse(s).unwrap()
    }

    fn event(kind: EventKind) -> Event {
        Event {
            id: "ev-1".into(),
            group: GroupName::parse("acme.eu").unwrap(),
            session_id: label("s-1"),
            channel: label("ivr"),
            region: label("eu-west"),
            test: false,
            time: 1_764_000_000_123,
            kind,
        }
    }

    fn every_kind() -> Vec<Event> {
        let counts = Counts {
            agent_requests: 1,
            no_inputs: 2,
            no_matches: 3,
            system_errors: 4,
            critical_errors: 5,
        };
        vec![
            event(EventKind::SessionStart),
            event(EventKind::DialogStart),
            event(EventKind::MiniappStart),
            event(EventKind::SessionEnd {
                started_at: 1_763_999_999_000,
            }),
            event(EventKind::DialogEnd(Box::new(DialogEnd {
                started_at: 1_763_999_000_000,
                flow_name: label("billing"),
                flow_id: label("f-9"),
                flow_type: label("voice"),
                locale: label("de-DE"),
                root: true,
                outcome: Outcome::Transferred,
                counts,
            }))),
            event(EventKind::MiniappEnd(Box::new(MiniappEnd {
                started_at: 1_763_999_500_000,
                miniapp_name: label("pin"),
                miniapp_id: label("m-2"),
                miniapp_type: label("dtmf"),
                locale: label("de-DE"),
                flow_name: Some(label("billing")),
                result: MiniappResult::DtmfEscape,
                fail_reason: label(""),
                counts,
            }))),
        ]
    }

    #[test]
    fn every_event_kind_round_trips() {
        for (i, e) in every_kind().into_iter().enumerate() {
            let arrival_ms = 1_764_000_001_000 + i as i64;
            let bytes = encode(arrival_ms, &e);
            assert_eq!(bytes[0], RECORD_FORMAT_VERSION);
            assert_eq!(
                decode(&bytes),
                Ok(EventRecord {
                    arrival_ms,
                    event: e
                })
            );
        }
    }

    /// The bytes of version 1 are a contract with every message already in a stream: if this
    /// fails, the layout of `Event` changed and the format needs a new version (module docs).
    #[test]
    fn format_v1_bytes_are_stable() {
        let e = event(EventKind::SessionEnd {
            started_at: 1_763_999_999_000,
        });
        expect_test::expect!["01d0afbfe9d6660465762d310761636d652e657503732d31036976720765752d7765737400f6a1bfe9d66603b090bfe9d666"]
            .assert_eq(&hex::encode(encode(1_764_000_001_000, &e)));
    }

    #[test]
    fn unknown_versions_and_damage_are_refused() {
        let mut bytes = encode(1, &every_kind()[0]);
        assert_eq!(decode(&[]), Err(RecordError::Empty));
        bytes[0] = 2;
        assert_eq!(decode(&bytes), Err(RecordError::UnknownVersion(2)));
        bytes[0] = RECORD_FORMAT_VERSION;
        bytes.push(0);
        assert_eq!(
            decode(&bytes),
            Err(RecordError::Body("1 trailing bytes after the event".into()))
        );
        assert!(matches!(
            decode(&bytes[..bytes.len() - 4]),
            Err(RecordError::Body(_))
        ));
    }

    #[test]
    fn message_id_is_the_dedupe_key_in_hex() {
        let id = message_id("acme", "ev-1");
        assert_eq!(id.len(), 32);
        assert_eq!(
            u128::from_str_radix(&id, 16).unwrap(),
            ocp_metrics_core::Dedupe::key("acme", "ev-1")
        );
        assert_ne!(id, message_id("acm", "eev-1"));
    }
}
