//! A small, fixed pseudo-random generator and the hashes that seed it.
//!
//! The simulator's output must be identical across machines and across dependency upgrades,
//! so it does not use `rand` (whose `StdRng` algorithm may change between releases). SplitMix64
//! is tiny, fast and statistically good enough for traffic shapes.

/// FNV-1a over bytes: a stable, dependency-free hash for names (groups, flows, miniApps).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The SplitMix64 finaliser: turns any 64-bit value into a well-mixed one.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Combines several keys into one seed, order-sensitive.
pub(crate) fn seed_of(keys: &[u64]) -> u64 {
    keys.iter()
        .fold(0x6a09_e667_f3bc_c909, |acc, &k| mix(acc ^ mix(k)))
}

#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in [0, 1), with 53 bits of precision.
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform integer in [lo, hi) (or `lo` when the range is empty).
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64;
        // Multiply-shift maps 64 random bits onto the span with negligible bias for the small
        // spans used here, and without a division.
        lo + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as i64
    }

    /// Standard normal variate (Box-Muller; one of the pair is discarded for simplicity).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64(); // (0, 1], so ln is finite.
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Poisson variate with mean `lambda`: exact (Knuth) for small means, a rounded normal
    /// approximation for large ones, where the exact method would be slow and the difference
    /// is invisible.
    pub(crate) fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda < POISSON_EXACT_MAX_MEAN {
            let limit = (-lambda).exp();
            let mut k = 0u64;
            let mut p = self.f64();
            while p > limit {
                k += 1;
                p *= self.f64();
            }
            k
        } else {
            let x = lambda + lambda.sqrt() * self.normal();
            x.round().max(0.0) as u64
        }
    }

    /// Picks an index by weight. The weights need not sum to one.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// Above this mean, Knuth's method (cost proportional to the mean) gives way to a normal
/// approximation.
const POISSON_EXACT_MAX_MEAN: f64 = 30.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_mean_is_close() {
        let mut rng = Rng::new(7);
        for lambda in [0.3, 4.0, 25.0, 200.0] {
            let n = 20_000;
            let sum: u64 = (0..n).map(|_| rng.poisson(lambda)).sum();
            let mean = sum as f64 / f64::from(n);
            assert!(
                (mean - lambda).abs() < 0.05 * lambda + 0.02,
                "{lambda}: {mean}"
            );
        }
    }

    #[test]
    fn range_stays_in_bounds() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let x = rng.range(-5, 17);
            assert!((-5..17).contains(&x));
        }
        assert_eq!(rng.range(3, 3), 3);
    }
}
