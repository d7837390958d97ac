//! Property tests of the rollups: invariants that must hold for any event stream.

use crate::event::{Event, EventDraft, EventKind};
use crate::metrics::Endpoint;
use crate::query::{Answer, FilterDraft, Query, QueryDraft};
use crate::rollup::{Horizons, Rollups};
use jiff::Timestamp;
use proptest::prelude::*;

const NOW: &str = "2024-03-27T12:00:00Z";

/// One generated session: its dimensions and a story of events, as (kind, start, end offsets in
/// seconds before NOW, plus a variant number that picks outcomes, results and counts).
#[derive(Debug, Clone)]
struct SessionSpec {
    channel: usize,
    region: usize,
    test: bool,
    events: Vec<(u8, i64, i64, u8)>,
}

fn session_spec() -> impl Strategy<Value = SessionSpec> {
    let event = (0u8..6, 0i64..40 * 3600, 0i64..1800, any::<u8>());
    (
        0usize..2,
        0usize..2,
        any::<bool>(),
        prop::collection::vec(event, 1..6),
    )
        .prop_map(|(channel, region, test, events)| SessionSpec {
            channel,
            region,
            test,
            events,
        })
}

fn build(sessions: &[SessionSpec]) -> Vec<Event> {
    let now: Timestamp = NOW.parse().unwrap();
    let mut out = Vec::new();
    for (si, s) in sessions.iter().enumerate() {
        for (ei, &(kind, ago, dur, v)) in s.events.iter().enumerate() {
            let time = now.as_second() - ago;
            let started = time - dur;
            let ts = |s: i64| Timestamp::from_second(s).unwrap().to_string();
            let (time_s, started_s) = (ts(time), ts(started));
            let id = format!("{si}-{ei}");
            let session = format!("s{si}");
            let counts = i64::from(v % 3);
            let d = EventDraft {
                id: Some(&id),
                kind: Some(
                    [
                        "session_start",
                        "session_end",
                        "dialog_start",
                        "dialog_end",
                        "miniapp_start",
                        "miniapp_end",
                    ][kind as usize],
                ),
                time: Some(&time_s),
                group: Some("g"),
                session_id: Some(&session),
                channel: Some(["omIVR", "chat"][s.channel]),
                region: Some(["us1", "eu1"][s.region]),
                test: Some(s.test),
                started_at: Some(&started_s),
                flow_name: Some(["f1", "f2"][usize::from(v % 2)]),
                flow_id: Some("fid"),
                locale: Some(["en-US", "el-GR"][usize::from(v / 2 % 2)]),
                root: Some(v % 7 != 0),
                outcome: Some(
                    ["transferred", "terminated", "error", "other"][usize::from(v / 4 % 4)],
                ),
                miniapp_name: Some(["A", "B", "C"][usize::from(v % 3)]),
                miniapp_id: Some("mid"),
                miniapp_type: Some("T"),
                result: Some(
                    ["success", "fail", "hangup", "dtmf_escape", "error", "other"]
                        [usize::from(v / 3 % 6)],
                ),
                fail_reason: Some(["", "max_attempts"][usize::from(v / 5 % 2)]),
                agent_requests: Some(counts),
                no_inputs: Some(counts),
                no_matches: Some(i64::from(v / 16 % 2)),
                system_errors: Some(i64::from(v / 64 % 2)),
                critical_errors: Some(i64::from(v / 128 % 2)),
                ..EventDraft::default()
            };
            out.push(Event::parse(&d, now).unwrap());
        }
    }
    out
}

fn rollups_of(events: &[Event]) -> Rollups {
    let now: Timestamp = NOW.parse().unwrap();
    let mut r = Rollups::new();
    for e in events {
        r.apply(e, Horizons::at(now));
    }
    r
}

/// Every endpoint, every metric, drilled down by every dimension, at a given downsampling, of
/// the live sessions (`test_flag` false) where the family has that dimension.
fn answers(r: &Rollups, rt: &str, batch: &str) -> Vec<Answer> {
    answers_of(r, rt, batch, false)
}

/// Like [`answers`], for the test sessions (`test` true) or the live ones.
fn answers_of(r: &Rollups, rt: &str, batch: &str, test: bool) -> Vec<Answer> {
    let now: Timestamp = NOW.parse().unwrap();
    Endpoint::ALL
        .iter()
        .map(|&e| {
            let family = e.family();
            let filters = family
                .dims()
                .iter()
                .map(|d| {
                    (
                        d.to_string(),
                        if *d == "test_flag" {
                            FilterDraft::Bool(test)
                        } else {
                            FilterDraft::Values(vec![])
                        },
                    )
                })
                .collect();
            let draft = QueryDraft {
                metrics: Some(e.metrics().iter().map(|m| m.name.to_string()).collect()),
                filters: Some(filters),
                start: Some("2024/03/25 18:00:00".into()),
                end: Some("2024/03/27 18:00:00".into()),
                group: Some("g".into()),
                downsampling: Some(if family.is_realtime() { rt } else { batch }.into()),
                drilldown: Some(true),
                timezone: Some("Asia/Kathmandu".into()),
            };
            r.query(&Query::parse(e, draft, now).unwrap(), now).unwrap()
        })
        .collect()
}

/// Every endpoint, every metric, no filters, not drilled down.
fn totals(r: &Rollups) -> Vec<Answer> {
    let now: Timestamp = NOW.parse().unwrap();
    Endpoint::ALL
        .iter()
        .map(|&e| {
            let rt = e.family().is_realtime();
            let draft = QueryDraft {
                metrics: Some(e.metrics().iter().map(|m| m.name.to_string()).collect()),
                filters: Some(Vec::new()),
                start: Some("2024/03/25 18:00:00".into()),
                end: Some("2024/03/27 18:00:00".into()),
                group: Some("g".into()),
                downsampling: Some(if rt { "five_min" } else { "hour" }.into()),
                drilldown: Some(false),
                timezone: Some("Asia/Kathmandu".into()),
            };
            r.query(&Query::parse(e, draft, now).unwrap(), now).unwrap()
        })
        .collect()
}

fn value(a: &Answer, metric: &str) -> Vec<Vec<u64>> {
    a.series
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| s.values.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reordering_the_stream_never_changes_an_answer(
        sessions in prop::collection::vec(session_spec(), 1..12),
        seed in any::<u64>(),
    ) {
        let events = build(&sessions);
        let mut shuffled = events.clone();
        // A deterministic Fisher-Yates shuffle driven by the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(answers(&rollups_of(&events), "five_min", "hour"), answers(&rollups_of(&shuffled), "five_min", "hour"));
    }

    #[test]
    fn batch_classes_sum_to_their_totals(sessions in prop::collection::vec(session_spec(), 1..12)) {
        let r = rollups_of(&build(&sessions));
        for gran in ["hour", "day", "week"] {
            let all = answers(&r, "five_min", gran);
            let dialogs = &all[3];
            let total = value(dialogs, "dialogs");
            let parts = ["error", "transferred", "terminated", "other"].map(|m| value(dialogs, m));
            for (i, t) in total.iter().enumerate() {
                for (b, v) in t.iter().enumerate() {
                    prop_assert_eq!(*v, parts.iter().map(|p| p[i][b]).sum::<u64>());
                }
            }
            let miniapps = &all[5];
            let total = value(miniapps, "totalinvocations");
            let parts = ["successfultasks", "failedtasks", "errortasks", "hangeduptasks", "dtmfescapekeytasks", "othertasks"]
                .map(|m| value(miniapps, m));
            for (i, t) in total.iter().enumerate() {
                for (b, v) in t.iter().enumerate() {
                    prop_assert_eq!(*v, parts.iter().map(|p| p[i][b]).sum::<u64>());
                }
            }
        }
    }

    #[test]
    fn the_running_total_equals_the_sum_of_every_series(sessions in prop::collection::vec(session_spec(), 1..12)) {
        let r = rollups_of(&build(&sessions));
        // The drilled-down answers are filtered on test_flag where the family has it, so the
        // unfiltered total is the sum over the live and the test answers there, and over
        // either of them (which are then the same) elsewhere.
        let live = answers_of(&r, "five_min", "hour", false);
        let test = answers_of(&r, "five_min", "hour", true);
        let total = totals(&r);
        for (i, t) in total.iter().enumerate() {
            let has_test_flag = Endpoint::ALL[i].family().dims().contains(&"test_flag");
            let parts: Vec<&Answer> = if has_test_flag { vec![&live[i], &test[i]] } else { vec![&live[i]] };
            for ts in &t.series {
                let mut sum = vec![0u64; t.labels.len()];
                for d in &parts {
                    prop_assert_eq!(&d.labels, &t.labels);
                    for ds in d.series.iter().filter(|s| s.metric == ts.metric) {
                        for (a, b) in sum.iter_mut().zip(&ds.values) { *a += b; }
                    }
                }
                prop_assert_eq!(&ts.values, &sum, "{} {}", Endpoint::ALL[i].path(), ts.metric);
            }
        }
    }

    #[test]
    fn a_coarse_bucket_is_the_sum_of_its_fine_buckets(sessions in prop::collection::vec(session_spec(), 1..12)) {
        let r = rollups_of(&build(&sessions));
        // Real-time: an hour is the sum of its five-minute buckets. Batch: a day is the sum of
        // its hours (local days of a +05:45 zone, so not whole UTC days). Labels are
        // `yyyy-MM-dd HH:mm:ss.S` on the local clock: a bucket's fine buckets share its prefix.
        let fine = answers(&r, "five_min", "hour");
        let coarse = answers(&r, "hour", "day");
        for (i, (f, c)) in fine.iter().zip(&coarse).enumerate() {
            let path = Endpoint::ALL[i].path();
            let prefix = if Endpoint::ALL[i].family().is_realtime() { "yyyy-MM-dd HH".len() } else { "yyyy-MM-dd".len() };
            prop_assert!(c.labels.len() < f.labels.len(), "{}: {:?} vs {:?}", path, c.labels, f.labels);
            prop_assert_eq!(f.series.len(), c.series.len());
            for (fs, cs) in f.series.iter().zip(&c.series) {
                prop_assert_eq!((fs.metric, &fs.tags), (cs.metric, &cs.tags));
                for (label, v) in c.labels.iter().zip(&cs.values) {
                    let sum: u64 = f.labels.iter().zip(&fs.values).filter(|(l, _)| l[..prefix] == label[..prefix]).map(|(_, v)| *v).sum();
                    prop_assert_eq!(*v, sum, "{} {} {}", path, cs.metric, label);
                }
            }
        }
    }

    #[test]
    fn batch_hours_add_up_to_the_events_counted_by_kind(sessions in prop::collection::vec(session_spec(), 1..12)) {
        let events = build(&sessions);
        let r = rollups_of(&events);
        // Every batch contribution is dated by its start, which lies inside the queried range:
        // over all hours, each session end, root dialog end and miniApp end counts once.
        let count = |f: fn(&EventKind) -> bool| events.iter().filter(|e| f(&e.kind)).count() as u64;
        let want = [
            (Endpoint::V3BatchSessions, "sessions", count(|k| matches!(k, EventKind::SessionEnd { .. }))),
            (Endpoint::V3BatchDialogs, "dialogs", count(|k| matches!(k, EventKind::DialogEnd(d) if d.root))),
            (Endpoint::V3BatchMiniapps, "totalinvocations", count(|k| matches!(k, EventKind::MiniappEnd(_)))),
        ];
        let total = totals(&r);
        for (endpoint, metric, n) in want {
            let i = Endpoint::ALL.iter().position(|e| *e == endpoint).unwrap();
            let got: u64 = value(&total[i], metric).iter().flatten().sum();
            prop_assert_eq!(got, n, "{} {}", endpoint.path(), metric);
        }
    }
}

/// Applies `events` with their batch counters split into blocks ending before each index of
/// `cuts`, as a cluster node keeping its batch history in a warehouse does: the node's own
/// rollups and the blocks.
fn split_at(events: &[Event], cuts: &[usize]) -> (Rollups, Vec<Rollups>) {
    let now: Timestamp = NOW.parse().unwrap();
    let mut main = Rollups::new();
    let mut blocks = vec![Rollups::new()];
    for (i, e) in events.iter().enumerate() {
        if cuts.contains(&i) {
            blocks.push(Rollups::new());
        }
        let block = blocks.last_mut().expect("one block at least");
        main.apply_split(e, Horizons::at(now), block);
    }
    (main, blocks)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The node's rollups plus every block's cells answer every query exactly like rollups that
    /// kept everything, and the node's rollups alone hold the same series and dimension values
    /// (so admission limits, pickers and compaction decide the same), also after retention
    /// dropped part of the history.
    #[test]
    fn batch_counters_split_into_blocks_add_up_to_the_whole(
        sessions in prop::collection::vec(session_spec(), 1..12),
        cuts in prop::collection::vec(0usize..60, 0..4),
    ) {
        let events = build(&sessions);
        let full = rollups_of(&events);
        let (mut main, blocks) = split_at(&events, &cuts);
        let mut combined = main.clone();
        for b in &blocks {
            b.batch_cells(|c| combined.add_cell(c.group, c.family, &c.dims, c.slot, c.counters));
        }
        prop_assert_eq!(answers(&combined, "five_min", "hour"), answers(&full, "five_min", "hour"));
        prop_assert_eq!(totals(&combined), totals(&full));
        let cells: usize = blocks.iter().map(Rollups::batch_cell_count).sum();
        prop_assert!(cells >= full.batch_cell_count(), "every cell is in some block");
        let mut full = full;
        let later: Timestamp = "2026-03-16T00:00:00Z".parse().unwrap();
        for stage in [Horizons::at(NOW.parse().unwrap()), Horizons::at(later)] {
            main.evict(stage);
            full.evict(stage);
            main.compact();
            full.compact();
            prop_assert_eq!(main.stats().series, full.stats().series);
            for family in crate::metrics::Family::ALL {
                for dim in 0..family.dims().len() {
                    prop_assert_eq!(main.dimension_values("g", family, dim), full.dimension_values("g", family, dim));
                }
            }
        }
    }
}
