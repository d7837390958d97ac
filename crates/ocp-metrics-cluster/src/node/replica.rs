//! A node's replica of the service's state: the rollups and the dedupe set, built by applying
//! the event stream in order. No IO.
//!
//! Every node must come out with the same state from the same sequence of messages, or two
//! nodes would answer the same query differently and decide the same admission limit
//! differently. So nothing here reads a clock: "now" for apply is the **stream time**, the
//! largest `arrival_ms` applied so far, which is the same on every node at the same sequence.
//! Retention (evicting slots and session spans behind the horizons) runs whenever the stream
//! time enters a new second, dedupe expiry likewise, and compaction (dropping empty series and
//! unused dimension values, which the admission limits count) whenever it enters a new hour:
//! at the same sequences on every node, whether it applied the stream from the start or from a
//! snapshot.

use super::blocks::BatchBlocks;
use crate::record::EventRecord;
use jiff::Timestamp;
use ocp_metrics_core::rollup::{Admission, Horizons, StateLimits};
use ocp_metrics_core::{Dedupe, Rollups};
use serde::{Deserialize, Serialize};

/// The node snapshot's payload version; see [`Replica::encode`]. Version 2 added the batch
/// blocks of a node whose batch history lives in a warehouse.
pub const REPLICA_FORMAT_VERSION: u32 = 2;
/// Stream milliseconds per eviction step.
const EVICT_EVERY_MS: i64 = 1_000;
/// Stream milliseconds per compaction step.
const COMPACT_EVERY_MS: i64 = 3_600_000;

/// What applying one message decided; the same on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Its `(group, id)` was accepted earlier within the dedupe horizon.
    Duplicate,
    /// A state bound refused it; the message says which and what to do.
    Rejected(String),
}

/// The rollups and dedupe set up to and including `applied_sequence`.
#[derive(Debug, Default)]
pub struct Replica {
    pub rollups: Rollups,
    pub dedupe: Dedupe,
    /// The last stream sequence applied (0: none).
    pub applied_sequence: u64,
    /// The largest `arrival_ms` applied: the replica's "now".
    pub stream_ms: i64,
    /// `Some` when the batch history lives in a warehouse: the batch counters not yet written
    /// there (see [`BatchBlocks`]); `rollups` then holds only a marker per batch series.
    pub batch: Option<BatchBlocks>,
}

/// Why a snapshot payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaDecodeError {
    #[error("the node snapshot payload is shorter than its header")]
    Short,
    #[error(
        "the node snapshot was written in format {0}, newer than this build reads (up to {REPLICA_FORMAT_VERSION}); run the newer build"
    )]
    Newer(u32),
    #[error("the node snapshot's header does not decode: {0}")]
    Header(postcard::Error),
    #[error("the node snapshot's state: {0}")]
    State(#[from] ocp_metrics_store::snapshot::SnapshotError),
}

/// The fields of a snapshot besides the state, after the version (format 1).
#[derive(Serialize, Deserialize)]
struct HeaderV1 {
    applied_sequence: u64,
    stream_ms: i64,
}

/// The fields of a snapshot besides the state, after the version (format 2).
#[derive(Serialize, Deserialize)]
struct Header {
    applied_sequence: u64,
    stream_ms: i64,
    batch: Option<BatchBlocks>,
}

impl Replica {
    /// Applies message `sequence` (which must follow `applied_sequence`) and says what became
    /// of it. Dedupe first, then the state bounds (checked against exactly what apply does),
    /// then apply.
    pub fn apply(&mut self, sequence: u64, record: &EventRecord, limits: &StateLimits) -> Verdict {
        debug_assert!(
            sequence > self.applied_sequence,
            "messages are applied once, in order"
        );
        self.applied_sequence = sequence;
        self.advance_time(record.arrival_ms);
        if let Some(blocks) = &mut self.batch {
            blocks.before_message(self.stream_ms);
        }
        let e = &record.event;
        let key = Dedupe::key(e.group.as_str(), &e.id);
        if self.dedupe.contains(key) {
            return Verdict::Duplicate;
        }
        let horizons = self.horizons();
        if let Err(refused) = self
            .rollups
            .admit(e, horizons, limits, &mut Admission::new())
        {
            return Verdict::Rejected(refused.to_string());
        }
        // Remembered at the stream time, not at the publishing node's clock: a node whose clock
        // ran behind must not shorten the dedupe horizon of its events.
        self.dedupe.insert(key, self.stream_ms);
        match &mut self.batch {
            Some(blocks) => blocks.apply(&mut self.rollups, sequence, e, horizons),
            None => self.rollups.apply(e, horizons),
        }
        Verdict::Accepted
    }

    /// The retention horizons at the stream time.
    pub fn horizons(&self) -> Horizons {
        Horizons::at(Timestamp::from_millisecond(self.stream_ms).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    /// Moves the stream time forward to `arrival_ms` (never back: nodes' clocks differ, and a
    /// message published later may carry an earlier arrival), running retention and compaction
    /// when it enters a new second or hour.
    fn advance_time(&mut self, arrival_ms: i64) {
        let before = self.stream_ms;
        if arrival_ms <= before {
            return;
        }
        self.stream_ms = arrival_ms;
        if arrival_ms.div_euclid(EVICT_EVERY_MS) != before.div_euclid(EVICT_EVERY_MS) {
            self.rollups.evict(self.horizons());
            self.dedupe.expire(arrival_ms);
        }
        if arrival_ms.div_euclid(COMPACT_EVERY_MS) != before.div_euclid(COMPACT_EVERY_MS) {
            self.rollups.compact();
        }
    }

    /// The snapshot payload: `version u32 LE | postcard(Header) | store checkpoint payload`.
    /// The state part is the embedded engine's versioned checkpoint payload, so both modes
    /// share one reader for every state format ever written.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut out = REPLICA_FORMAT_VERSION.to_le_bytes().to_vec();
        out = postcard::to_extend(
            &Header {
                applied_sequence: self.applied_sequence,
                stream_ms: self.stream_ms,
                batch: self.batch.clone(),
            },
            out,
        )?;
        out.extend(ocp_metrics_store::snapshot::encode(
            &self.rollups,
            &self.dedupe,
        )?);
        Ok(out)
    }

    /// Reads a payload written by [`Replica::encode`] of this or an older build.
    pub fn decode(payload: &[u8]) -> Result<Replica, ReplicaDecodeError> {
        let Some((version, rest)) = payload.split_first_chunk::<4>() else {
            return Err(ReplicaDecodeError::Short);
        };
        let (header, state): (Header, &[u8]) = match u32::from_le_bytes(*version) {
            1 => {
                let (h, state): (HeaderV1, &[u8]) =
                    postcard::take_from_bytes(rest).map_err(ReplicaDecodeError::Header)?;
                let header = Header {
                    applied_sequence: h.applied_sequence,
                    stream_ms: h.stream_ms,
                    batch: None,
                };
                (header, state)
            }
            2 => postcard::take_from_bytes(rest).map_err(ReplicaDecodeError::Header)?,
            newer => return Err(ReplicaDecodeError::Newer(newer)),
        };
        let (mut rollups, dedupe) = ocp_metrics_store::snapshot::decode(state)?;
        rollups.after_load();
        Ok(Replica {
            rollups,
            dedupe,
            applied_sequence: header.applied_sequence,
            stream_ms: header.stream_ms,
            batch: header.batch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocp_metrics_core::{
        Endpoint, Event, EventKind, GroupName, Label, Query, QueryDraft, Rollups,
    };
    use proptest::prelude::*;

    /// 2024-03-27T12:00:00Z.
    const T0_MS: i64 = 1_711_540_800_000;

    fn record(i: usize, arrival_ms: i64, id: &str) -> EventRecord {
        let label = |s: &str| Label::parse(s).unwrap();
        let event = Event {
            id: id.into(),
            group: GroupName::parse(if i.is_multiple_of(3) {
                "acme"
            } else {
                "globex"
            })
            .unwrap(),
            session_id: label(&format!("s{}", i % 7)),
            channel: label(if i.is_multiple_of(2) { "ivr" } else { "chat" }),
            region: label("eu"),
            test: false,
            time: arrival_ms - 30_000,
            kind: EventKind::SessionStart,
        };
        EventRecord { arrival_ms, event }
    }

    /// Every group's answer to one real-time and one batch query, as text.
    fn answers(r: &Replica) -> String {
        answers_of(&r.rollups, r.stream_ms)
    }

    fn answers_of(rollups: &Rollups, stream_ms: i64) -> String {
        let now = Timestamp::from_millisecond(stream_ms.max(T0_MS) + 60_000).unwrap();
        let mut out = String::new();
        for group in ["acme", "globex"] {
            for (endpoint, metric, downsampling) in [
                (Endpoint::V3RtSessions, "session.initiated", "five_min"),
                (Endpoint::V3BatchSessions, "sessions", "hour"),
            ] {
                let draft = QueryDraft {
                    metrics: Some(vec![metric.into()]),
                    start: Some("2024/03/26 13:00:00".into()),
                    end: Some("2024/03/28 12:00:00".into()),
                    group: Some(group.into()),
                    downsampling: Some(downsampling.into()),
                    ..QueryDraft::default()
                };
                let q = Query::parse(endpoint, draft, now).unwrap();
                out += &format!("{:?}\n", rollups.query(&q, now).unwrap());
            }
        }
        out
    }

    /// Records from the generated gaps and ids: arrivals mostly move forward, sometimes back
    /// (another node's clock).
    fn records(gaps: &[i64], ids: &[usize]) -> Vec<EventRecord> {
        let mut at = T0_MS;
        gaps.iter()
            .zip(ids)
            .enumerate()
            .map(|(i, (gap, id))| {
                at += gap - 60_000;
                record(i, at, &format!("e{id}"))
            })
            .collect()
    }

    /// Applies `records` whole, and again as a snapshot after `cut` records plus the rest;
    /// both must decide every message alike and end up answering alike.
    fn check_resume(
        records: &[EventRecord],
        cut: usize,
        limits: &StateLimits,
    ) -> Result<(), TestCaseError> {
        let cut = cut.min(records.len());
        let mut whole = Replica::default();
        let verdicts: Vec<Verdict> = records
            .iter()
            .enumerate()
            .map(|(i, r)| whole.apply(i as u64 + 1, r, limits))
            .collect();
        let mut first = Replica::default();
        for (i, r) in records[..cut].iter().enumerate() {
            first.apply(i as u64 + 1, r, limits);
        }
        let mut resumed = Replica::decode(&first.encode().unwrap()).unwrap();
        prop_assert_eq!(resumed.applied_sequence, cut as u64);
        let later: Vec<Verdict> = records[cut..]
            .iter()
            .enumerate()
            .map(|(i, r)| resumed.apply((cut + i) as u64 + 1, r, limits))
            .collect();
        prop_assert_eq!(&verdicts[cut..], &later[..]);
        prop_assert_eq!(answers(&whole), answers(&resumed));
        prop_assert_eq!(whole.dedupe.len(), resumed.dedupe.len());
        Ok(())
    }

    /// A warehouse-mode replica's answers: its rollups plus the cells of the blocks written to
    /// the (simulated) warehouse and of the blocks it holds.
    fn answers_with_warehouse(r: &Replica, warehouse: &[Rollups]) -> String {
        let blocks = r.batch.as_ref().expect("warehouse mode");
        let mut all = r.rollups.clone();
        for cells in warehouse.iter().chain(blocks.held().map(|b| b.cells())) {
            cells.batch_cells(|c| all.add_cell(c.group, c.family, &c.dims, c.slot, c.counters));
        }
        answers_of(&all, r.stream_ms)
    }

    /// Applies `records[from..to]` to a warehouse-mode replica, writing every pending block to
    /// `warehouse` after every `write_every` messages, as the writer task would.
    fn apply_writing(
        r: &mut Replica,
        records: &[EventRecord],
        (from, to): (usize, usize),
        write_every: usize,
        warehouse: &mut Vec<Rollups>,
        limits: &StateLimits,
    ) -> Vec<Verdict> {
        let mut out = Vec::new();
        for (i, rec) in records.iter().enumerate().take(to).skip(from) {
            out.push(r.apply(i as u64 + 1, rec, limits));
            if (i + 1) % write_every == 0 {
                let blocks = r.batch.as_mut().expect("warehouse mode");
                let written: Vec<(u64, Rollups)> = blocks
                    .pending()
                    .map(|b| (b.name(), b.cells().clone()))
                    .collect();
                if let Some((last, _)) = written.last() {
                    let last = *last;
                    warehouse.extend(written.into_iter().map(|(_, cells)| cells));
                    blocks.written_through(last);
                }
            }
        }
        out
    }

    proptest! {
        /// A node whose batch history goes to a warehouse, started from a snapshot taken at any
        /// point, with blocks written at any pace, decides every message and answers every
        /// query exactly like a node that keeps everything in memory: the blocks it holds plus
        /// the blocks written add up to the whole, and none is counted twice.
        #[test]
        fn warehouse_mode_answers_and_decides_like_memory_mode(
            gaps in proptest::collection::vec(0i64..400_000, 1..60),
            ids in proptest::collection::vec(0usize..40, 1..60),
            cut in 0usize..60,
            write_every in 1usize..20,
            tight in any::<bool>(),
        ) {
            let records = records(&gaps, &ids);
            let cut = cut.min(records.len());
            let limits = if tight {
                StateLimits { dimension_values_max: 2, rt_sessions_per_group_max: 3, series_per_group_max: 4 }
            } else {
                StateLimits::default()
            };
            let mut memory = Replica::default();
            let want: Vec<Verdict> = records.iter().enumerate().map(|(i, r)| memory.apply(i as u64 + 1, r, &limits)).collect();
            let mut warehouse = Vec::new();
            let mut first = Replica { batch: Some(BatchBlocks::default()), ..Replica::default() };
            let mut got = apply_writing(&mut first, &records, (0, cut), write_every, &mut warehouse, &limits);
            let mut resumed = Replica::decode(&first.encode().unwrap()).unwrap();
            prop_assert_eq!(answers_with_warehouse(&resumed, &warehouse), answers_with_warehouse(&first, &warehouse));
            got.extend(apply_writing(&mut resumed, &records, (cut, records.len()), write_every, &mut warehouse, &limits));
            prop_assert_eq!(want, got);
            prop_assert_eq!(answers(&memory), answers_with_warehouse(&resumed, &warehouse));
            prop_assert_eq!(memory.rollups.stats().series, resumed.rollups.stats().series);
        }

        /// A node that starts from a snapshot taken at any point and applies the rest ends up
        /// answering exactly like a node that applied everything: the property that makes
        /// snapshots, and nodes joining late, safe.
        #[test]
        fn a_snapshot_at_any_point_then_the_rest_equals_applying_everything(
            gaps in proptest::collection::vec(0i64..400_000, 1..60),
            ids in proptest::collection::vec(0usize..40, 1..60),
            cut in 0usize..60,
        ) {
            check_resume(&records(&gaps, &ids), cut, &StateLimits::default())?;
        }

        /// The same under limits so tight that many events are refused, so that refusals,
        /// eviction and hourly compaction (which frees room under the limits) interact.
        #[test]
        fn the_same_holds_when_limits_refuse_events(
            gaps in proptest::collection::vec(0i64..2_000_000, 1..60),
            ids in proptest::collection::vec(0usize..40, 1..60),
            cut in 0usize..60,
        ) {
            let tight = StateLimits {
                dimension_values_max: 2,
                rt_sessions_per_group_max: 3,
                series_per_group_max: 4,
            };
            check_resume(&records(&gaps, &ids), cut, &tight)?;
        }
    }

    #[test]
    fn a_repeated_id_is_a_duplicate_and_a_limit_refuses_in_stream_order() {
        let limits = StateLimits {
            dimension_values_max: 1,
            ..StateLimits::default()
        };
        let mut r = Replica::default();
        let a = record(0, T0_MS, "a");
        let mut b = record(1, T0_MS + 10, "b");
        b.event.group = a.event.group.clone();
        assert_eq!(r.apply(1, &a, &limits), Verdict::Accepted);
        assert_eq!(r.apply(2, &a, &limits), Verdict::Duplicate);
        // Same group, a second channel: over the one-value limit.
        match r.apply(3, &b, &limits) {
            Verdict::Rejected(m) => assert!(m.contains("distinct values"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(r.applied_sequence, 3);
        assert_eq!(r.dedupe.len(), 1, "a refused event is not remembered");
    }

    #[test]
    fn a_format_1_payload_still_reads_as_a_memory_mode_replica() {
        let mut r = Replica::default();
        r.apply(1, &record(0, T0_MS, "a"), &StateLimits::default());
        let mut v1 = 1u32.to_le_bytes().to_vec();
        v1 = postcard::to_extend(
            &HeaderV1 {
                applied_sequence: r.applied_sequence,
                stream_ms: r.stream_ms,
            },
            v1,
        )
        .unwrap();
        v1.extend(ocp_metrics_store::snapshot::encode(&r.rollups, &r.dedupe).unwrap());
        let back = Replica::decode(&v1).unwrap();
        assert_eq!((back.applied_sequence, back.stream_ms), (1, r.stream_ms));
        assert!(back.batch.is_none());
        assert_eq!(answers(&back), answers(&r));
    }

    #[test]
    fn a_payload_from_a_newer_build_is_refused_with_a_reason() {
        let mut payload = Replica::default().encode().unwrap();
        payload[..4].copy_from_slice(&(REPLICA_FORMAT_VERSION + 1).to_le_bytes());
        let err = Replica::decode(&payload).unwrap_err().to_string();
        assert!(err.contains("newer than this build"), "{err}");
        assert!(matches!(
            Replica::decode(&[1, 0]),
            Err(ReplicaDecodeError::Short)
        ));
    }
}
