//! The load curve: how many sessions a group starts per minute at a given instant.
//!
//! The mean is `peak per hour / 60 x daily(local hour) x weekly(local weekday) x noise`. The
//! daily shape is a sum of Gaussians (a mid-morning and a mid-afternoon peak over a low night
//! floor), normalised so that its maximum is 1. The noise is a smooth random walk (values drawn
//! at knots and interpolated), so neighbouring minutes look alike, as real traffic does.

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

use crate::catalog::ZoneDef;
use crate::rng::{Rng, seed_of};

/// The unnormalised daily shape at local hour `h` in [0, 24).
fn daily_raw(h: f64) -> f64 {
    let bump = |centre: f64, width: f64, height: f64| {
        let z = (h - centre) / width;
        height * (-0.5 * z * z).exp()
    };
    NIGHT_FLOOR
        + bump(MORNING_PEAK_HOUR, 1.7, 1.0)
        + bump(AFTERNOON_PEAK_HOUR, 1.9, 0.85)
        + bump(EVENING_HOUR, 2.2, 0.2)
}

/// The maximum of [`daily_raw`], found on a fine grid once per simulator.
pub(crate) fn daily_max() -> f64 {
    (0..24 * 60)
        .map(|m| daily_raw(f64::from(m) / 60.0))
        .fold(0.0, f64::max)
}

/// The relative load of each local weekday, Monday first.
const WEEKLY: [f64; 7] = [1.0, 1.0, 1.0, 1.0, 0.95, 0.45, 0.35];

/// A group's time zone, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct LocalClock {
    tz: TimeZone,
}

impl LocalClock {
    pub(crate) fn new(zone: &ZoneDef) -> LocalClock {
        let tz = match jiff::tz::db().get(zone.name) {
            Ok(tz) => tz,
            Err(err) => {
                // Without a zone database (a bare container) the simulator keeps working on
                // standard time; the curve is then off by an hour in summer, which is harmless.
                tracing::warn!(zone = zone.name, %err, "time zone not found, using a fixed offset");
                let offset = Offset::from_seconds(zone.fallback_offset_secs).unwrap_or(Offset::UTC);
                TimeZone::fixed(offset)
            }
        };
        LocalClock { tz }
    }

    /// Local seconds since the Unix epoch (as if the local wall clock were UTC).
    fn local_seconds(&self, at_ms: i64) -> i64 {
        let secs = at_ms.div_euclid(1000);
        let offset = Timestamp::from_second(secs)
            .map(|ts| self.tz.to_offset(ts).seconds())
            .unwrap_or(0);
        secs + i64::from(offset)
    }
}

/// Parameters of one group's curve.
#[derive(Debug, Clone)]
pub(crate) struct Curve {
    pub(crate) clock: LocalClock,
    pub(crate) peak_per_minute: f64,
    pub(crate) daily_max: f64,
    pub(crate) shaped: bool,
    pub(crate) noise_seed: u64,
}

impl Curve {
    /// Mean sessions started per minute at instant `at_ms` (milliseconds since the epoch).
    pub(crate) fn mean_per_minute(&self, at_ms: i64) -> f64 {
        if !self.shaped {
            // A flat curve (load tests) still gets the noise, so batches are not all alike,
            // but a smaller one, so the requested rate holds.
            return self.peak_per_minute * self.noise(at_ms, FLAT_NOISE_SIGMA);
        }
        let local = self.clock.local_seconds(at_ms);
        let hour = local.rem_euclid(SECS_PER_DAY) as f64 / 3600.0;
        // 1970-01-01 was a Thursday: index 3 counting from Monday.
        let weekday = (local.div_euclid(SECS_PER_DAY) + 3).rem_euclid(7) as usize;
        self.peak_per_minute * daily_raw(hour) / self.daily_max
            * WEEKLY[weekday]
            * self.noise(at_ms, NOISE_SIGMA)
            * self.day_factor(local.div_euclid(SECS_PER_DAY))
    }

    /// A log-normal factor with mean about 1, varying smoothly between knots.
    fn noise(&self, at_ms: i64, sigma: f64) -> f64 {
        let knot_ms = NOISE_KNOT_MINUTES * 60_000;
        let k = at_ms.div_euclid(knot_ms);
        let frac = at_ms.rem_euclid(knot_ms) as f64 / knot_ms as f64;
        let z0 = self.knot(k);
        let z1 = self.knot(k + 1);
        // Smoothstep interpolation avoids kinks at the knots.
        let w = frac * frac * (3.0 - 2.0 * frac);
        let z = z0 + (z1 - z0) * w;
        (sigma * z - 0.5 * sigma * sigma).exp()
    }

    fn knot(&self, k: i64) -> f64 {
        Rng::new(seed_of(&[self.noise_seed, NOISE_SALT, k as u64])).normal()
    }

    /// Some days are busier than others, independently of the weekday.
    fn day_factor(&self, local_day: i64) -> f64 {
        let z = Rng::new(seed_of(&[self.noise_seed, DAY_SALT, local_day as u64])).normal();
        (DAY_SIGMA * z - 0.5 * DAY_SIGMA * DAY_SIGMA).exp()
    }
}

const SECS_PER_DAY: i64 = 86_400;
/// Night load relative to the morning peak (before normalisation).
const NIGHT_FLOOR: f64 = 0.04;
/// Local hours of the daily peaks.
const MORNING_PEAK_HOUR: f64 = 10.5;
const AFTERNOON_PEAK_HOUR: f64 = 15.0;
const EVENING_HOUR: f64 = 19.5;
/// Spacing of the noise knots, minutes.
const NOISE_KNOT_MINUTES: i64 = 20;
/// Standard deviation of the log of the noise factor (shaped and flat curves).
const NOISE_SIGMA: f64 = 0.15;
const FLAT_NOISE_SIGMA: f64 = 0.05;
/// Standard deviation of the log of the per-day factor.
const DAY_SIGMA: f64 = 0.08;
const NOISE_SALT: u64 = 0x006e_6f69_7365;
const DAY_SALT: u64 = 0x0064_6179;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_shape_has_peaks_and_a_low_night() {
        let max = daily_max();
        let at = |h: f64| daily_raw(h) / max;
        assert!(at(10.5) > 0.95);
        assert!(at(15.0) > 0.8);
        assert!(at(12.75) < at(10.5) && at(12.75) < at(15.0));
        assert!(at(3.0) < 0.06);
        assert!(at(3.0) * 10.0 < at(10.5));
    }
}
