//! The generator's output: determinism, validity (docs/api.md section 3), session consistency,
//! load curve and proportions.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{Ev, ts, validate};
use jiff::{SignedDuration, Timestamp};
use ocp_metrics_sim::{ConfigError, SimConfig, SimEvent, Simulator};

fn sim(seed: u64) -> Simulator {
    Simulator::new(SimConfig {
        seed,
        ..SimConfig::default()
    })
    .unwrap()
}

fn lines(events: impl Iterator<Item = SimEvent>) -> Vec<SimEvent> {
    events.collect()
}

fn parsed(events: &[SimEvent]) -> Vec<Ev> {
    events
        .iter()
        .map(|e| validate(&e.json, e.emit_at).unwrap_or_else(|err| panic!("{err}: {}", e.json)))
        .collect()
}

/// A weekday with both peaks of all three default groups (Wednesday).
const DAY: &str = "2026-11-25T00:00:00Z";

/// The sessions started on [`DAY`] with seed 11, generated once for the tests that need a
/// day's worth of traffic.
fn day_events() -> &'static [SimEvent] {
    static EVENTS: std::sync::OnceLock<Vec<SimEvent>> = std::sync::OnceLock::new();
    EVENTS.get_or_init(|| {
        let from = ts(DAY);
        lines(sim(11).events_between(from, from + SignedDuration::from_hours(24)))
    })
}

#[test]
fn same_seed_same_events_and_different_seed_different_events() {
    let from = ts("2026-11-25T09:00:00Z");
    let to = ts("2026-11-25T11:00:00Z");
    let a = lines(sim(1).events_between(from, to));
    let b = lines(sim(1).events_between(from, to));
    assert!(a.len() > 1000, "{}", a.len());
    assert_eq!(a, b);
    let c = lines(sim(2).events_between(from, to));
    assert_ne!(a, c);
    // Different seeds share no session ids.
    let ids = |v: &[SimEvent]| -> std::collections::HashSet<String> {
        parsed(v)
            .iter()
            .map(|e| e.s("session_id").to_owned())
            .collect()
    };
    assert!(ids(&a).is_disjoint(&ids(&c)));
}

#[test]
fn ranges_split_without_loss_or_repeat() {
    let s = sim(5);
    let (a, b, c) = (
        ts("2026-11-25T10:00:00Z"),
        ts("2026-11-25T10:17:30.5Z"),
        ts("2026-11-25T10:45:00Z"),
    );
    // Sessions started: a partition of the range gives a partition of the sessions.
    let mut whole: Vec<String> = s.events_between(a, c).map(|e| e.json).collect();
    let mut parts: Vec<String> = s
        .events_between(a, b)
        .chain(s.events_between(b, c))
        .map(|e| e.json)
        .collect();
    whole.sort();
    parts.sort();
    assert_eq!(whole, parts);

    // Events emitted: splitting at any instant gives exactly the same sequence.
    let whole = lines(s.emitted_between(a, c));
    let parts = lines(s.emitted_between(a, b).chain(s.emitted_between(b, c)));
    assert_eq!(whole, parts);
    assert!(whole.iter().all(|e| e.emit_at >= a && e.emit_at < c));

    // And it is the same set as the sessions' events filtered by emission time.
    let mut by_emit: Vec<String> = s
        .events_between(a - SignedDuration::from_hours(1), c)
        .filter(|e| e.emit_at >= a && e.emit_at < c)
        .map(|e| e.json)
        .collect();
    let mut emitted: Vec<String> = whole.into_iter().map(|e| e.json).collect();
    by_emit.sort();
    emitted.sort();
    assert_eq!(by_emit, emitted);
}

#[test]
fn every_line_satisfies_the_contract_and_ids_are_unique_but_for_resends() {
    let from = ts(DAY);
    let to = from + SignedDuration::from_hours(24);
    let events = day_events();
    let evs = parsed(events);
    let mut last = Timestamp::MIN;
    let mut by_id: HashMap<(String, String), &str> = HashMap::new();
    let mut resent = 0usize;
    for e in &evs {
        assert!(e.emit_at >= last, "not in emission order");
        last = e.emit_at;
        let key = (e.s("group").to_owned(), e.s("id").to_owned());
        match by_id.get(&key) {
            Some(prev) => {
                assert_eq!(*prev, e.line, "id reused for a different event");
                resent += 1;
            }
            None => {
                by_id.insert(key, &e.line);
            }
        }
        // Sessions start in the range; their events may be emitted a little after it.
        assert!(e.time >= from);
        assert!(e.emit_at - SignedDuration::from_mins(30) < to);
    }
    let share = resent as f64 / evs.len() as f64;
    assert!((0.002..0.01).contains(&share), "re-sent share {share}");
}

#[test]
fn late_events_are_end_events_minutes_late() {
    let events = day_events();
    let evs = parsed(events);
    let mut seen = std::collections::HashSet::new();
    let (mut late, mut ends) = (0usize, 0usize);
    for e in &evs {
        let first = seen.insert(e.line.clone());
        let lag = e.emit_at.duration_since(e.time);
        if e.kind.ends_with("_end") {
            ends += 1;
        } else if first {
            assert_eq!(lag, SignedDuration::ZERO, "{}", e.line);
        }
        if first && lag > SignedDuration::ZERO {
            assert!(e.kind.ends_with("_end"));
            assert!(lag >= SignedDuration::from_mins(1) && lag <= SignedDuration::from_mins(15));
            late += 1;
        }
    }
    let share = late as f64 / ends as f64;
    assert!((0.005..0.02).contains(&share), "late share {share}");
}

#[test]
fn sessions_tell_a_consistent_story() {
    let from = ts("2026-11-25T08:00:00Z");
    let events = lines(sim(13).events_between(from, from + SignedDuration::from_hours(6)));
    let mut sessions: BTreeMap<(String, String), Vec<Ev>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for e in parsed(&events) {
        if seen.insert(e.line.clone()) {
            sessions
                .entry((e.s("group").to_owned(), e.s("session_id").to_owned()))
                .or_default()
                .push(e);
        }
    }
    assert!(sessions.len() > 500, "{}", sessions.len());
    let mut nested = 0;
    for ((group, sid), mut evs) in sessions {
        let ctx = format!("{group}/{sid}");
        // Story order is time order, with the event ordinal breaking ties.
        evs.sort_by_key(|e| (e.time, e.n()));
        let ns: Vec<u64> = evs.iter().map(Ev::n).collect();
        assert_eq!(
            ns,
            (0..evs.len() as u64).collect::<Vec<_>>(),
            "{ctx}: ordinals follow time"
        );
        let first = &evs[0];
        for e in &evs {
            for f in ["group", "channel", "region"] {
                assert_eq!(e.s(f), first.s(f), "{ctx}: {f}");
            }
            assert_eq!(e.b("test"), first.b("test"), "{ctx}: test");
            assert_eq!(e.s("id"), format!("{group}-{sid}-{}", e.n()));
        }
        let locales: std::collections::HashSet<&str> = evs
            .iter()
            .map(|e| e.s("locale"))
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(locales.len(), 1, "{ctx}: one locale");

        let last = evs.last().unwrap();
        assert_eq!(first.kind, "session_start", "{ctx}");
        assert_eq!(last.kind, "session_end", "{ctx}");
        assert_eq!(last.started_at, Some(first.time), "{ctx}");
        let secs = last.time.duration_since(first.time).as_secs_f64();
        assert!(
            (30.0..=600.0).contains(&secs),
            "{ctx}: session lasts {secs} s"
        );
        assert_eq!(evs[1].kind, "dialog_start");
        let root_end = &evs[evs.len() - 2];
        assert_eq!(root_end.kind, "dialog_end");
        assert_eq!(root_end.b("root"), Some(true));
        assert_eq!(root_end.started_at, Some(evs[1].time));

        // Dialogs and invocations open and close in a stack: nothing overlaps wrongly.
        let mut stack: Vec<&Ev> = Vec::new();
        let mut root_sum = [0u64; 5];
        let mut sub_sum = [0u64; 5];
        let counts = [
            "agent_requests",
            "no_inputs",
            "no_matches",
            "system_errors",
            "critical_errors",
        ];
        let mut any_error = false;
        for e in &evs[1..evs.len() - 2] {
            match e.kind.as_str() {
                "dialog_start" | "miniapp_start" => stack.push(e),
                "miniapp_end" => {
                    let s = stack.pop().expect("miniapp_end without a start");
                    assert_eq!(s.kind, "miniapp_start", "{ctx}");
                    assert_eq!(e.started_at, Some(s.time), "{ctx}");
                    for f in ["miniapp_name", "miniapp_id", "miniapp_type", "flow_name"] {
                        assert_eq!(e.s(f), s.s(f), "{ctx}: {f}");
                    }
                    let secs = e.time.duration_since(s.time).as_secs_f64();
                    assert!(
                        (5.0..=60.0).contains(&secs),
                        "{ctx}: invocation of {secs} s"
                    );
                    assert_eq!(
                        e.s("fail_reason").is_empty(),
                        e.s("result") != "fail",
                        "{ctx}"
                    );
                    let errs = e.u("system_errors") + e.u("critical_errors");
                    assert_eq!(errs > 0, e.s("result") == "error", "{ctx}");
                    any_error |= errs > 0;
                    for (i, f) in counts.iter().enumerate() {
                        root_sum[i] += e.u(f);
                        if stack.len() == 2 {
                            sub_sum[i] += e.u(f);
                        }
                    }
                }
                "dialog_end" => {
                    let s = stack.pop().expect("dialog_end without a start");
                    assert_eq!(s.kind, "dialog_start", "{ctx}");
                    assert_eq!(e.started_at, Some(s.time), "{ctx}");
                    assert_eq!(e.s("flow_name"), s.s("flow_name"), "{ctx}");
                    assert_eq!(e.b("root"), Some(false), "{ctx}: only one root dialog");
                    assert_eq!(stack.len(), 1, "{ctx}: nested one level");
                    for (i, f) in counts.iter().enumerate() {
                        assert_eq!(e.u(f), sub_sum[i], "{ctx}: subflow {f}");
                    }
                    nested += 1;
                }
                other => panic!("{ctx}: unexpected {other} inside the session"),
            }
        }
        assert_eq!(
            stack.len(),
            1,
            "{ctx}: only the root dialog is open at its end"
        );
        for (i, f) in counts.iter().enumerate() {
            assert_eq!(root_end.u(f), root_sum[i], "{ctx}: root {f} totals");
        }
        assert_eq!(
            root_end.s("outcome") == "error",
            any_error,
            "{ctx}: errors end the dialog"
        );
    }
    assert!(nested > 10, "some sessions have a nested dialog: {nested}");
}

#[test]
fn proportions_are_realistic() {
    let events = day_events();
    let mut seen = std::collections::HashSet::new();
    let mut results: HashMap<String, usize> = HashMap::new();
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut channels: HashMap<String, usize> = HashMap::new();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    let (mut sessions, mut tests, mut with_no_input, mut invocations) =
        (0usize, 0usize, 0usize, 0usize);
    for e in parsed(events) {
        if !seen.insert(e.line.clone()) {
            continue;
        }
        match e.kind.as_str() {
            "miniapp_end" => {
                invocations += 1;
                *results.entry(e.s("result").to_owned()).or_default() += 1;
                if e.s("result") == "fail" {
                    *reasons.entry(e.s("fail_reason").to_owned()).or_default() += 1;
                }
                with_no_input += usize::from(e.u("no_inputs") > 0);
            }
            "dialog_end" if e.b("root") == Some(true) => {
                *outcomes.entry(e.s("outcome").to_owned()).or_default() += 1;
            }
            "session_start" => {
                sessions += 1;
                tests += usize::from(e.b("test") == Some(true));
                *channels.entry(e.s("channel").to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
    let share = |m: &HashMap<String, usize>, k: &str, total: usize| {
        m.get(k).copied().unwrap_or(0) as f64 / total as f64
    };
    let within = |name: &str, x: f64, lo: f64, hi: f64| {
        assert!((lo..=hi).contains(&x), "{name}: {x:.4} not in [{lo}, {hi}]");
    };
    within(
        "success",
        share(&results, "success", invocations),
        0.74,
        0.86,
    );
    within("fail", share(&results, "fail", invocations), 0.04, 0.12);
    for r in ["hangup", "dtmf_escape", "error", "other"] {
        within(r, share(&results, r, invocations), 0.005, 0.06);
    }
    for r in ["max_attempts", "not_recognized", "validation_failed"] {
        assert!(reasons.get(r).copied().unwrap_or(0) > 0, "{r}");
    }
    within(
        "no_inputs > 0",
        with_no_input as f64 / invocations as f64,
        0.03,
        0.3,
    );
    within(
        "transferred",
        share(&outcomes, "transferred", sessions),
        0.2,
        0.5,
    );
    within(
        "terminated",
        share(&outcomes, "terminated", sessions),
        0.35,
        0.7,
    );
    within(
        "dialog error",
        share(&outcomes, "error", sessions),
        0.02,
        0.15,
    );
    within(
        "dialog other",
        share(&outcomes, "other", sessions),
        0.005,
        0.1,
    );
    within("IVR", share(&channels, "omIVR", sessions), 0.66, 0.74);
    within("test", tests as f64 / sessions as f64, 0.035, 0.065);
    let per_session = events.len() as f64 / sessions as f64;
    within("events per session", per_session, 8.0, 14.0);
    within(
        "EVENTS_PER_SESSION estimate",
        per_session / ocp_metrics_sim::EVENTS_PER_SESSION,
        0.9,
        1.1,
    );
}

#[test]
fn load_curve_follows_the_local_day_and_the_week() {
    let monday = ts("2026-11-23T00:00:00Z");
    // A whole local week for every group: start a day early, end a day late, count by local
    // time only the Monday-Sunday week.
    // Half the default volume keeps the test quick; the counts stay in the hundreds.
    let half = SimConfig {
        seed: 31,
        sessions_per_hour_peak: 150.0,
        ..SimConfig::default()
    };
    let events = lines(Simulator::new(half).unwrap().events_between(
        monday - SignedDuration::from_hours(24),
        monday + SignedDuration::from_hours(8 * 24),
    ));
    let zones = [
        ("ocp-qa", "Europe/Athens"),
        ("acme-bank", "America/New_York"),
        ("globex-telco", "Asia/Kolkata"),
    ];
    for (group, zone) in zones {
        let tz = jiff::tz::TimeZone::get(zone).unwrap();
        let mut by_hour = [0usize; 24];
        let mut by_weekday = [0usize; 7];
        for e in &events {
            if !e.json.contains("\"type\":\"session_start\"")
                || !e.json.contains(&format!("\"group\":\"{group}\""))
            {
                continue;
            }
            let ev = validate(&e.json, e.emit_at).unwrap();
            let local = ev.time.to_zoned(tz.clone());
            let date = local.date();
            if date < jiff::civil::date(2026, 11, 23) || date > jiff::civil::date(2026, 11, 29) {
                continue;
            }
            by_weekday[usize::from(local.weekday().to_monday_zero_offset() as u8)] += 1;
            if local.weekday().to_monday_zero_offset() < 5 {
                by_hour[local.hour() as usize] += 1;
            }
        }
        let night: usize = by_hour[1..5].iter().sum::<usize>() / 4;
        let peak: usize = (by_hour[10] + by_hour[11] + by_hour[14] + by_hour[15]) / 4;
        assert!(
            peak > 8 * night.max(1),
            "{group}: peak {peak}/h vs night {night}/h: {by_hour:?}"
        );
        assert!(
            by_hour[10] > by_hour[12] || by_hour[15] > by_hour[12],
            "{group}: two peaks {by_hour:?}"
        );
        let weekday = by_weekday[..5].iter().sum::<usize>() as f64 / 5.0;
        let weekend = by_weekday[5..].iter().sum::<usize>() as f64 / 2.0;
        let ratio = weekend / weekday;
        assert!(
            (0.28..0.55).contains(&ratio),
            "{group}: weekend/weekday {ratio}: {by_weekday:?}"
        );
        // Near the configured peak rate at the peak.
        let peak_rate = by_hour[10..12].iter().sum::<usize>() as f64 / 10.0;
        assert!(
            (90.0..=190.0).contains(&peak_rate),
            "{group}: {peak_rate} sessions/h at 10-12"
        );
    }

    let s = sim(31);
    let ny_morning = s.sessions_per_minute_mean("acme-bank", ts("2026-11-25T10:30:00-05:00"));
    let ny_night = s.sessions_per_minute_mean("acme-bank", ts("2026-11-25T03:30:00-05:00"));
    let ny_sunday = s.sessions_per_minute_mean("acme-bank", ts("2026-11-29T10:30:00-05:00"));
    assert!((3.0..7.0).contains(&ny_morning), "{ny_morning}");
    assert!(ny_night * 10.0 < ny_morning, "{ny_night} vs {ny_morning}");
    assert!(ny_sunday < 0.6 * ny_morning, "{ny_sunday}");
    assert_eq!(s.sessions_per_minute_mean("nobody", ts(DAY)), 0.0);
}

#[test]
fn flat_config_for_a_rate_emits_about_that_rate() {
    let cfg = SimConfig::for_event_rate(3, 200.0);
    assert!(!cfg.load_curve);
    let s = Simulator::new(cfg).unwrap();
    let from = ts("2026-11-29T03:00:00Z"); // A Sunday night: the curve must not matter.
    let n = s
        .emitted_between(from, from + SignedDuration::from_mins(30))
        .count();
    let per_sec = n as f64 / 1800.0;
    assert!((190.0..260.0).contains(&per_sec), "{per_sec} events/s");
}

#[test]
fn other_groups_and_odd_names_work() {
    let cfg = SimConfig {
        groups: vec!["initech".into(), "quote\"and\\slash".into()],
        sessions_per_hour_peak: 2000.0,
        ..SimConfig::default()
    };
    let s = Simulator::new(cfg).unwrap();
    let from = ts(DAY) + SignedDuration::from_hours(12);
    let events = lines(s.events_between(from, from + SignedDuration::from_mins(20)));
    assert!(!events.is_empty());
    let evs = parsed(&events);
    assert!(evs.iter().any(|e| e.s("group") == "quote\"and\\slash"));
    assert!(evs.iter().all(|e| e.s("id").starts_with(e.s("group"))));
}

#[test]
fn bad_configs_are_refused() {
    let bad = |f: fn(&mut SimConfig)| {
        let mut c = SimConfig::default();
        f(&mut c);
        Simulator::new(c).unwrap_err()
    };
    assert_eq!(bad(|c| c.groups.clear()), ConfigError::NoGroups);
    assert!(matches!(
        bad(|c| c.groups.push("x".repeat(65))),
        ConfigError::BadGroupName(_)
    ));
    assert!(matches!(
        bad(|c| c.groups.push(String::new())),
        ConfigError::BadGroupName(_)
    ));
    assert!(matches!(
        bad(|c| c.groups.push("ocp-qa".into())),
        ConfigError::DuplicateGroup(_)
    ));
    assert!(matches!(
        bad(|c| c.late_fraction = 1.5),
        ConfigError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad(|c| c.test_fraction = f64::NAN),
        ConfigError::OutOfRange { .. }
    ));
    assert!(matches!(
        bad(|c| c.sessions_per_hour_peak = -1.0),
        ConfigError::OutOfRange { .. }
    ));
}

#[test]
fn empty_and_reversed_ranges_yield_nothing() {
    let s = sim(1);
    let t = ts(DAY);
    assert_eq!(s.events_between(t, t).count(), 0);
    assert_eq!(
        s.events_between(t + SignedDuration::from_hours(1), t)
            .count(),
        0
    );
    assert_eq!(s.emitted_between(t, t).count(), 0);
}

#[test]
fn the_wire_format_is_stable() {
    let cfg = SimConfig {
        seed: 42,
        groups: vec!["acme-bank".into()],
        ..SimConfig::default()
    };
    let s = Simulator::new(cfg).unwrap();
    let from = ts("2026-11-25T15:00:00Z");
    let first = s
        .events_between(from, from + SignedDuration::from_mins(1))
        .next()
        .unwrap();
    let second_kind: Vec<String> = s
        .events_between(from, from + SignedDuration::from_mins(10))
        .map(|e| e.json)
        .filter(|j| j.contains("\"type\":\"miniapp_end\""))
        .take(1)
        .collect();
    expect_test::expect![[r#"
        2026-11-25T15:00:02.889Z
        {"id":"acme-bank-cdf1cff5-16e5-0cdb-da5b-a1c645b6b0e3-0","type":"session_start","time":"2026-11-25T15:00:02.889Z","group":"acme-bank","session_id":"cdf1cff5-16e5-0cdb-da5b-a1c645b6b0e3","channel":"omIVR","region":"us1","test":false}
        {"id":"acme-bank-879068dc-04eb-547c-bcd8-3ede06158aed-3","type":"miniapp_end","time":"2026-11-25T15:00:35.945Z","group":"acme-bank","session_id":"879068dc-04eb-547c-bcd8-3ede06158aed","channel":"omIVR","region":"us1","test":false,"started_at":"2026-11-25T15:00:25.085Z","miniapp_name":"Intent","miniapp_id":"080ad442-fa03-a6e2-4096-34aa196bc7f7","miniapp_type":"Intent","locale":"en-US","flow_name":"banking_main_flow","result":"fail","fail_reason":"max_attempts","agent_requests":0,"no_inputs":0,"no_matches":3,"system_errors":0,"critical_errors":0}"#]].assert_eq(&format!(
        "{}\n{}\n{}",
        first.emit_at, first.json, second_kind[0]
    ));
}
