//! Bucket maths. Rollups are kept in UTC slots (5 minutes for real-time, 15 minutes for batch);
//! an answer's buckets are unions of slots, labelled on the local clock of the query's time zone.
//!
//! Why slots this small: every IANA offset in use is a multiple of 15 minutes, so a local day in
//! Asia/Kolkata (+05:30) or Asia/Kathmandu (+05:45) starts on a UTC quarter hour and is an exact
//! union of 15-minute slots. Walking slots and mapping each to its local label makes DST fall-back
//! (two slots runs with one label: summed) and spring-forward (a label that never occurs) come out
//! right without special cases.

use crate::event::UnixMs;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use std::collections::HashMap;

/// Width of a real-time slot, in seconds.
pub const RT_SLOT_SECONDS: i64 = 300;
/// Width of a batch slot, in seconds.
pub const BATCH_SLOT_SECONDS: i64 = 900;
/// Slots later than this past "now" hold no data (events may be at most 5 minutes ahead), so the
/// bucket walk stops there, in seconds.
const WALK_PAST_NOW_SECONDS: i64 = 600;
/// Marks a slot that belongs to no bucket of the answer.
pub const NO_BUCKET: u32 = u32::MAX;

/// A slot index: seconds since the epoch divided by the slot width.
pub type Slot = i64;

pub fn slot_of(ms: UnixMs, slot_seconds: i64) -> Slot {
    ms.div_euclid(slot_seconds * 1000)
}

/// The downsampling of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    FiveMin,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Granularity> {
        Some(match s {
            "five_min" => Granularity::FiveMin,
            "hour" => Granularity::Hour,
            "day" => Granularity::Day,
            "week" => Granularity::Week,
            "month" => Granularity::Month,
            "year" => Granularity::Year,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Granularity::FiveMin => "five_min",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Year => "year",
        }
    }

    /// The local-clock start of the bucket holding `local`, both in seconds of the local
    /// wall clock counted from 1970-01-01T00:00 (as if the local clock were UTC).
    pub fn bucket_key(self, local: i64) -> i64 {
        let days = local.div_euclid(86_400);
        match self {
            Granularity::FiveMin => local - local.rem_euclid(300),
            Granularity::Hour => local - local.rem_euclid(3_600),
            Granularity::Day => days * 86_400,
            // 1970-01-01 was a Thursday: (days + 3) mod 7 counts days since Monday.
            Granularity::Week => (days - (days + 3).rem_euclid(7)) * 86_400,
            Granularity::Month => {
                let (y, m, _) = civil_from_days(days);
                days_from_civil(y, m, 1) * 86_400
            }
            Granularity::Year => {
                let (y, _, _) = civil_from_days(days);
                days_from_civil(y, 1, 1) * 86_400
            }
        }
    }
}

/// The buckets of one answer and the map from slots to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPlan {
    /// Bucket labels in ascending time order, `yyyy-MM-dd HH:mm:ss.S`.
    pub labels: Vec<String>,
    /// The first slot the plan covers.
    pub first_slot: Slot,
    /// For slot `first_slot + i`, the index of its bucket in `labels`, or [`NO_BUCKET`].
    pub slot_bucket: Vec<u32>,
}

impl BucketPlan {
    pub fn end_slot(&self) -> Slot {
        self.first_slot + self.slot_bucket.len() as Slot
    }

    pub fn bucket_of(&self, slot: Slot) -> u32 {
        let i = slot - self.first_slot;
        if i < 0 {
            return NO_BUCKET;
        }
        self.slot_bucket
            .get(i as usize)
            .copied()
            .unwrap_or(NO_BUCKET)
    }

    /// Plans the buckets whose start lies in `[floor(start), end)` and not after `now`, where
    /// floor rounds down to the granularity on the local clock of `tz`.
    pub fn new(
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
        tz: &TimeZone,
        granularity: Granularity,
        slot_seconds: i64,
    ) -> BucketPlan {
        let floor = floor_to_bucket(start, tz, granularity);
        let first_slot = slot_of(floor.as_millisecond(), slot_seconds);
        let end_s = end.as_second();
        let now_s = now.as_second();
        let mut walk = Walk::new(tz.clone(), granularity);
        let mut plan = BucketPlan {
            labels: Vec::new(),
            first_slot,
            slot_bucket: Vec::new(),
        };
        let mut index_of_key: HashMap<i64, u32> = HashMap::new();
        let mut current: Option<(i64, u32)> = None;
        let mut slot = first_slot;
        loop {
            let utc = slot * slot_seconds;
            if utc > now_s + WALK_PAST_NOW_SECONDS {
                break;
            }
            let key = walk.key_at(utc);
            let bucket = match current {
                Some((k, b)) if k == key => b,
                _ => match index_of_key.get(&key) {
                    Some(&b) => b,
                    None => {
                        // A new bucket starts here; it belongs to the answer only if it starts
                        // before `end` and not after now, and every later one starts later still.
                        if utc >= end_s || utc > now_s {
                            break;
                        }
                        let b = plan.labels.len() as u32;
                        plan.labels.push(format_label(key));
                        index_of_key.insert(key, b);
                        b
                    }
                },
            };
            current = Some((key, bucket));
            plan.slot_bucket.push(bucket);
            slot += 1;
        }
        plan
    }
}

/// Rounds `t` down to the start of its bucket on the local clock; a local start that does not
/// exist (a DST gap) resolves forward, and an ambiguous one to its earlier instant.
pub fn floor_to_bucket(t: Timestamp, tz: &TimeZone, granularity: Granularity) -> Timestamp {
    let offset = tz.to_offset(t).seconds() as i64;
    let key = granularity.bucket_key(t.as_second() + offset);
    let local = local_datetime(key);
    match tz.to_ambiguous_zoned(local).compatible() {
        Ok(z) => z.timestamp().min(t),
        Err(_) => t,
    }
}

/// Parses the query date formats `yyyy/MM/dd HH:mm:ss` and `yyyy/MM/dd HH:mm:ss.SSS` as a
/// wall-clock time in `tz`. A time in a DST gap moves forward by the gap; an ambiguous one takes
/// its earlier instant.
pub fn parse_query_time(s: &str, tz: &TimeZone) -> Option<Timestamp> {
    let dt = parse_query_datetime(s)?;
    tz.to_ambiguous_zoned(dt)
        .compatible()
        .ok()
        .map(|z| z.timestamp())
}

fn parse_query_datetime(s: &str) -> Option<DateTime> {
    let b = s.as_bytes();
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if main.len() != 19
        || b[4] != b'/'
        || b[7] != b'/'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        let part = &main[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let nanos = match frac {
        None => 0,
        Some(f) if (1..=3).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<i32>().ok()? * 10i32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    DateTime::new(
        num(0..4)? as i16,
        num(5..7)? as i8,
        num(8..10)? as i8,
        num(11..13)? as i8,
        num(14..16)? as i8,
        num(17..19)? as i8,
        nanos,
    )
    .ok()
}

/// Formats local wall-clock seconds as an answer label, `yyyy-MM-dd HH:mm:ss.S`.
pub fn format_label(local: i64) -> String {
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.0",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

fn local_datetime(local: i64) -> DateTime {
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    DateTime::new(
        y as i16,
        m as i8,
        d as i8,
        (sod / 3600) as i8,
        (sod / 60 % 60) as i8,
        (sod % 60) as i8,
        0,
    )
    .unwrap_or_default()
}

/// Maps UTC seconds to local bucket keys, caching the zone's offset between transitions so that
/// a 720-day walk does one tz lookup per DST change, not one per slot.
struct Walk {
    tz: TimeZone,
    granularity: Granularity,
    offset: i64,
    valid_from: i64,
    valid_until: i64,
}

impl Walk {
    fn new(tz: TimeZone, granularity: Granularity) -> Walk {
        Walk {
            tz,
            granularity,
            offset: 0,
            valid_from: i64::MAX,
            valid_until: i64::MIN,
        }
    }

    fn key_at(&mut self, utc: i64) -> i64 {
        if utc < self.valid_from || utc >= self.valid_until {
            self.refresh(utc);
        }
        self.granularity.bucket_key(utc + self.offset)
    }

    fn refresh(&mut self, utc: i64) {
        let ts = Timestamp::from_second(utc).unwrap_or(Timestamp::UNIX_EPOCH);
        self.offset = self.tz.to_offset(ts).seconds() as i64;
        self.valid_from = utc;
        self.valid_until = self
            .tz
            .following(ts)
            .next()
            .map_or(i64::MAX, |t| t.timestamp().as_second());
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests;
