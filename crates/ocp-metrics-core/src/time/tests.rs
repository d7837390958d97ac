//! Bucket plans rendered as text: each bucket's label and the UTC spans of the slots it sums.

use super::*;
use expect_test::{Expect, expect};

/// Renders the plan of `[start, end)` (local times in `tz`) at `now` (UTC) for a granularity.
fn check(
    tz: &str,
    start: &str,
    end: &str,
    now: &str,
    granularity: &str,
    slot_seconds: i64,
    expect: Expect,
) {
    let zone = TimeZone::get(tz).unwrap();
    let start = parse_query_time(start, &zone).unwrap();
    let end = parse_query_time(end, &zone).unwrap();
    let now: Timestamp = now.parse().unwrap();
    let g = Granularity::parse(granularity).unwrap();
    let plan = BucketPlan::new(start, end, now, &zone, g, slot_seconds);
    expect.assert_eq(&render(&plan, slot_seconds));
}

fn render(plan: &BucketPlan, slot_seconds: i64) -> String {
    let mut spans: Vec<Vec<(i64, i64)>> = vec![Vec::new(); plan.labels.len()];
    for (i, &b) in plan.slot_bucket.iter().enumerate() {
        let utc = (plan.first_slot + i as i64) * slot_seconds;
        let runs = &mut spans[b as usize];
        match runs.last_mut() {
            Some(last) if last.1 == utc => last.1 = utc + slot_seconds,
            _ => runs.push((utc, utc + slot_seconds)),
        }
    }
    let fmt = |s: i64| {
        Timestamp::from_second(s)
            .unwrap()
            .strftime("%m-%dT%H:%M")
            .to_string()
    };
    let mut out = String::new();
    for (label, runs) in plan.labels.iter().zip(spans) {
        let runs: Vec<String> = runs
            .iter()
            .map(|(a, b)| format!("{}..{}", fmt(*a), fmt(*b)))
            .collect();
        out.push_str(&format!("{label} = {}\n", runs.join(" + ")));
    }
    out
}

const FAR: &str = "2030-01-01T00:00:00Z";

#[test]
fn five_min_utc_floors_start_and_stops_before_end() {
    check(
        "UTC",
        "2024/03/27 10:02:00",
        "2024/03/27 10:12:00.500",
        FAR,
        "five_min",
        300,
        expect![[r#"
        2024-03-27 10:00:00.0 = 03-27T10:00..03-27T10:05
        2024-03-27 10:05:00.0 = 03-27T10:05..03-27T10:10
        2024-03-27 10:10:00.0 = 03-27T10:10..03-27T10:15
    "#]],
    );
}

#[test]
fn buckets_after_now_are_left_out() {
    check(
        "UTC",
        "2024/03/27 10:00:00",
        "2024/03/27 12:00:00",
        "2024-03-27T10:07:00Z",
        "five_min",
        300,
        expect![[r#"
        2024-03-27 10:00:00.0 = 03-27T10:00..03-27T10:05
        2024-03-27 10:05:00.0 = 03-27T10:05..03-27T10:10
    "#]],
    );
}

#[test]
fn new_york_spring_forward_has_no_two_oclock() {
    check(
        "America/New_York",
        "2024/03/10 00:00:00",
        "2024/03/10 04:00:00",
        FAR,
        "hour",
        300,
        expect![[r#"
        2024-03-10 00:00:00.0 = 03-10T05:00..03-10T06:00
        2024-03-10 01:00:00.0 = 03-10T06:00..03-10T07:00
        2024-03-10 03:00:00.0 = 03-10T07:00..03-10T08:00
    "#]],
    );
}

#[test]
fn new_york_fall_back_sums_the_repeated_hour_under_one_label() {
    check(
        "America/New_York",
        "2024/11/03 00:00:00",
        "2024/11/03 03:00:00",
        FAR,
        "hour",
        300,
        expect![[r#"
        2024-11-03 00:00:00.0 = 11-03T04:00..11-03T05:00
        2024-11-03 01:00:00.0 = 11-03T05:00..11-03T07:00
        2024-11-03 02:00:00.0 = 11-03T07:00..11-03T08:00
    "#]],
    );
}

#[test]
fn new_york_days_across_both_changes_are_23_and_25_hours() {
    check(
        "America/New_York",
        "2024/03/09 00:00:00",
        "2024/03/11 00:00:00",
        FAR,
        "day",
        900,
        expect![[r#"
        2024-03-09 00:00:00.0 = 03-09T05:00..03-10T05:00
        2024-03-10 00:00:00.0 = 03-10T05:00..03-11T04:00
    "#]],
    );
    check(
        "America/New_York",
        "2024/11/03 00:00:00",
        "2024/11/04 00:00:00",
        FAR,
        "day",
        900,
        expect![[r#"
        2024-11-03 00:00:00.0 = 11-03T04:00..11-04T05:00
    "#]],
    );
}

#[test]
fn kolkata_and_kathmandu_days_start_on_utc_quarter_hours() {
    check(
        "Asia/Kolkata",
        "2024/03/27 05:00:00",
        "2024/03/29 00:00:00",
        FAR,
        "day",
        900,
        expect![[r#"
        2024-03-27 00:00:00.0 = 03-26T18:30..03-27T18:30
        2024-03-28 00:00:00.0 = 03-27T18:30..03-28T18:30
    "#]],
    );
    check(
        "Asia/Kathmandu",
        "2024/03/27 00:00:00",
        "2024/03/27 02:00:00",
        FAR,
        "hour",
        900,
        expect![[r#"
        2024-03-27 00:00:00.0 = 03-26T18:15..03-26T19:15
        2024-03-27 01:00:00.0 = 03-26T19:15..03-26T20:15
    "#]],
    );
}

#[test]
fn lord_howe_half_hour_fall_back_merges_ninety_minutes_into_one_hour() {
    // On 2024-04-07 at 02:00 LHDT (+11) clocks go back to 01:30 LHST (+10:30).
    check(
        "Australia/Lord_Howe",
        "2024/04/07 00:00:00",
        "2024/04/07 03:00:00",
        FAR,
        "hour",
        300,
        expect![[r#"
        2024-04-07 00:00:00.0 = 04-06T13:00..04-06T14:00
        2024-04-07 01:00:00.0 = 04-06T14:00..04-06T15:30
        2024-04-07 02:00:00.0 = 04-06T15:30..04-06T16:30
    "#]],
    );
}

#[test]
fn lord_howe_half_hour_spring_forward_shortens_one_hour() {
    // On 2024-10-06 at 02:00 LHST (+10:30) clocks go forward to 02:30 LHDT (+11).
    check(
        "Australia/Lord_Howe",
        "2024/10/06 01:00:00",
        "2024/10/06 04:00:00",
        FAR,
        "hour",
        300,
        expect![[r#"
        2024-10-06 01:00:00.0 = 10-05T14:30..10-05T15:30
        2024-10-06 02:00:00.0 = 10-05T15:30..10-05T16:00
        2024-10-06 03:00:00.0 = 10-05T16:00..10-05T17:00
    "#]],
    );
}

#[test]
fn weeks_start_on_monday_months_on_the_first_years_on_january_first() {
    check(
        "UTC",
        "2024/03/27 00:00:00",
        "2024/04/09 00:00:00",
        FAR,
        "week",
        900,
        expect![[r#"
        2024-03-25 00:00:00.0 = 03-25T00:00..04-01T00:00
        2024-04-01 00:00:00.0 = 04-01T00:00..04-08T00:00
        2024-04-08 00:00:00.0 = 04-08T00:00..04-15T00:00
    "#]],
    );
    check(
        "Europe/Athens",
        "2024/02/10 00:00:00",
        "2024/04/01 00:00:00",
        FAR,
        "month",
        900,
        expect![[r#"
        2024-02-01 00:00:00.0 = 01-31T22:00..02-29T22:00
        2024-03-01 00:00:00.0 = 02-29T22:00..03-31T21:00
    "#]],
    );
    check(
        "UTC",
        "2023/06/01 00:00:00",
        "2024/01/02 00:00:00",
        "2024-01-01T12:00:00Z",
        "year",
        900,
        expect![[r#"
        2023-01-01 00:00:00.0 = 01-01T00:00..01-01T00:00
        2024-01-01 00:00:00.0 = 01-01T00:00..01-01T12:15
    "#]],
    );
}

#[test]
fn query_times_parse_in_both_formats_and_reject_others() {
    let utc = TimeZone::UTC;
    let ok = |s: &str| parse_query_time(s, &utc).map(|t| t.to_string());
    assert_eq!(
        ok("2022/01/01 07:00:00").as_deref(),
        Some("2022-01-01T07:00:00Z")
    );
    assert_eq!(
        ok("2022/01/01 07:15:44.542").as_deref(),
        Some("2022-01-01T07:15:44.542Z")
    );
    for bad in [
        "2022-01-01 07:00:00",
        "2022/01/01",
        "2022/13/01 07:00:00",
        "2022/01/01 07:00:00.1234",
        "x",
    ] {
        assert_eq!(ok(bad), None, "{bad}");
    }
}

#[test]
fn civil_day_arithmetic_round_trips() {
    for days in -800_000..800_000i64 {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
}

/// From the `bucket_plan` fuzz target (`fuzz/`): the ends of jiff's time range, with every
/// granularity and zones with DST, half-hour, 45-minute and 30-minute-DST offsets, plan without
/// panicking or overflowing, with unique labels and every slot mapped into the plan.
#[test]
fn plans_at_the_ends_of_time_never_panic() {
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    let granularities = [
        Granularity::FiveMin,
        Granularity::Hour,
        Granularity::Day,
        Granularity::Week,
        Granularity::Month,
        Granularity::Year,
    ];
    for zone in [
        "UTC",
        "America/New_York",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Africa/Casablanca",
        "Pacific/Kiritimati",
    ] {
        let tz = TimeZone::get(zone).unwrap();
        for start in [
            min,
            min + 1,
            -9423,
            0,
            max - 400 * 86_400,
            max - 3 * 86_400,
            max,
        ] {
            for g in granularities {
                let slot_seconds = if g == Granularity::FiveMin {
                    RT_SLOT_SECONDS
                } else {
                    BATCH_SLOT_SECONDS
                };
                let s = Timestamp::from_second(start).unwrap();
                let e = Timestamp::from_second((start + 2 * 86_400).min(max)).unwrap();
                let now = Timestamp::from_second((start + 86_400).min(max)).unwrap();
                assert!(floor_to_bucket(s, &tz, g) <= s, "{zone} {start} {g:?}");
                let plan = BucketPlan::new(s, e, now, &tz, g, slot_seconds);
                let labels: std::collections::HashSet<_> = plan.labels.iter().collect();
                assert_eq!(labels.len(), plan.labels.len(), "{zone} {start} {g:?}");
                for i in 0..plan.slot_bucket.len() {
                    let b = plan.bucket_of(plan.first_slot + i as i64);
                    assert!(b == NO_BUCKET || (b as usize) < plan.labels.len());
                }
            }
        }
    }
}
