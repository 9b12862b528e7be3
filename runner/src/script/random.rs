//! Each user's own random stream, behind `random`, `uuid`, `randomString`, `zipf` and
//! `gaussian`: wyrand on a `Cell`, seeded from the run's seed and the user's `{{ vu.id }}`, so
//! a run given the same `--seed` draws the same values for the same user whatever the thread
//! or runner it lands on. A `Cell` rather than `fastrand`'s thread-local generator: templates
//! render through a shared `&RenderCtx`, and a user's draws must not depend on which other
//! users share its thread.

use std::cell::Cell;

/// One user's random stream.
#[derive(Debug)]
pub struct Rng(Cell<u64>);

impl Rng {
    /// The stream of user `vu_id` in a run seeded `seed`.
    pub fn for_user(seed: u64, vu_id: u64) -> Rng {
        // splitmix64 of the pair: neighbouring ids get unrelated streams.
        let mut z = seed ^ vu_id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng(Cell::new(z ^ (z >> 31)))
    }

    /// wyrand: 64 random bits.
    pub fn u64(&self) -> u64 {
        let s = self.0.get().wrapping_add(0xa076_1d64_78bd_642f);
        self.0.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ ((t >> 64) as u64)
    }

    /// Uniform in [0, 1).
    pub fn f64(&self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `a..=b` (`a <= b`), without modulo bias (Lemire's method).
    pub fn range(&self, a: i64, b: i64) -> i64 {
        let span = b.wrapping_sub(a) as u64;
        if span == u64::MAX {
            return self.u64() as i64;
        }
        let n = span + 1;
        loop {
            let m = u128::from(self.u64()) * u128::from(n);
            if (m as u64) >= n.wrapping_neg() % n {
                return a.wrapping_add((m >> 64) as i64);
            }
        }
    }

    /// A normally distributed number (Box–Muller).
    pub fn gaussian(&self, mean: f64, sd: f64) -> f64 {
        let u1 = 1.0 - self.f64(); // in (0, 1]: ln is finite
        let u2 = self.f64();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Appends `n` random letters and digits.
    pub fn string_into(&self, out: &mut Vec<u8>, n: usize) {
        const ALPHABET: &[u8; 62] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        out.reserve(n);
        let mut left = n;
        while left > 0 {
            // Ten characters of 6 bits from one draw; 62 of 64 values used, redrawing the rest.
            let mut bits = self.u64();
            for _ in 0..10.min(left) {
                let i = (bits & 63) as usize;
                bits >>= 6;
                if i < 62 {
                    out.push(ALPHABET[i]);
                    left -= 1;
                }
            }
        }
    }
}

/// Ranks 1..=n with P(k) ∝ 1/k^s, drawn in constant time by rejection-inversion (Hörmann and
/// Derflinger, "Rejection-inversion to generate variates from monotone discrete
/// distributions", 1996): no table, so `zipf(10000000, 1.1)` costs what `zipf(10, 1.1)` does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}

impl Zipf {
    /// `n >= 1`, `s > 0` (the template parser checks both).
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut z = Zipf {
            n: n as f64,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            cut: 0.0,
        };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(z.n + 0.5);
        z.cut = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        z
    }

    pub fn sample(&self, rng: &Rng) -> u64 {
        loop {
            let u = self.h_n + rng.f64() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.cut || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let lx = x.ln();
        helper2((1.0 - self.s) * lx) * lx
    }

    fn h_integral_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// ln(1 + x) / x, exact near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (e^x − 1) / x, exact near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_draws_the_same_stream_for_the_same_seed_and_another_for_another() {
        let a: Vec<u64> = (0..5)
            .map(|_| 0)
            .scan(Rng::for_user(7, 3), |r, _| Some(r.u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .map(|_| 0)
            .scan(Rng::for_user(7, 3), |r, _| Some(r.u64()))
            .collect();
        let c: Vec<u64> = (0..5)
            .map(|_| 0)
            .scan(Rng::for_user(7, 4), |r, _| Some(r.u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn ranges_strings_and_gaussians_stay_in_their_bounds() {
        let r = Rng::for_user(1, 1);
        let mut seen = [false; 7];
        for _ in 0..10_000 {
            let v = r.range(-3, 3);
            assert!((-3..=3).contains(&v));
            seen[(v + 3) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "every value of -3..=3 drawn");
        // The whole i64 range is one span too many for `b - a + 1`: both signs still come.
        let full: Vec<i64> = (0..64).map(|_| r.range(i64::MIN, i64::MAX)).collect();
        assert!(full.iter().any(|v| *v < 0) && full.iter().any(|v| *v > 0));
        assert_eq!(r.range(5, 5), 5);
        let mut s = Vec::new();
        r.string_into(&mut s, 1000);
        assert_eq!(s.len(), 1000);
        assert!(s.iter().all(u8::is_ascii_alphanumeric));
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| r.gaussian(50.0, 10.0)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(
            (mean - 50.0).abs() < 0.2 && (sd - 10.0).abs() < 0.2,
            "{mean} {sd}"
        );
    }

    #[test]
    fn zipf_ranks_follow_their_power_law() {
        for s in [0.5, 1.0, 1.1, 2.0] {
            let n = 20u64;
            let z = Zipf::new(n, s);
            let r = Rng::for_user(42, 0);
            let draws = 200_000;
            let mut counts = vec![0u64; n as usize + 1];
            for _ in 0..draws {
                let k = z.sample(&r);
                assert!((1..=n).contains(&k));
                counts[k as usize] += 1;
            }
            let norm: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
            for k in 1..=n {
                let want = draws as f64 * (k as f64).powf(-s) / norm;
                let got = counts[k as usize] as f64;
                // Five standard deviations of a binomial count: a fixed seed, so no flakes.
                assert!(
                    (got - want).abs() < 5.0 * want.sqrt() + 1.0,
                    "s={s} k={k}: {got} vs {want}"
                );
            }
        }
        assert_eq!(Zipf::new(1, 1.1).sample(&Rng::for_user(0, 0)), 1);
    }
}
