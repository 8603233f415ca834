//! Orientation tuning statistics of one curve: selectivity (1 - circular variance),
//! preferred orientation, bandwidth and a von Mises fit (Ringach, Shapley and Hawken
//! 2002). Orientations are in degrees and the curve is periodic over 180 degrees, so the
//! statistics work on doubled angles.

use serde::{Deserialize, Serialize};
use std::f64::consts::{FRAC_1_SQRT_2, LN_2};

/// The orientation selectivity index, `1 - circular variance` on doubled angles:
/// `|sum_k r_k exp(2 i theta_k)| / sum_k r_k`. 1 for a unit that answers one orientation
/// only, 0 for one that answers all alike. Defined for non-negative responses: NaN where
/// a response is negative (a pre-ReLU site) or all are 0.
pub fn orientation_selectivity(orientations: &[f64], responses: &[f64]) -> f64 {
    let total: f64 = responses.iter().sum();
    if responses.iter().any(|&r| r < 0.0) || total <= 0.0 {
        return f64::NAN;
    }
    let (c, s) = doubled_sum(orientations, responses);
    c.hypot(s) / total
}

/// The preferred orientation (degrees in `[0, 180)`): half the angle of the doubled-angle
/// vector sum, the direction [`orientation_selectivity`] measures the length of. NaN for
/// a flat curve: one whose vector sum is below 1e-5 of the summed magnitudes, since the
/// responses come from float32 activations (about 7 digits) and a curve flat but for
/// their rounding would otherwise point anywhere.
pub fn preferred_orientation(orientations: &[f64], responses: &[f64]) -> f64 {
    let (c, s) = doubled_sum(orientations, responses);
    if c.hypot(s) <= 1e-5 * responses.iter().map(|r| r.abs()).sum::<f64>() {
        return f64::NAN;
    }
    (s.atan2(c).to_degrees() / 2.0).rem_euclid(180.0)
}

fn doubled_sum(orientations: &[f64], responses: &[f64]) -> (f64, f64) {
    orientations
        .iter()
        .zip(responses)
        .fold((0.0, 0.0), |(c, s), (&t, &r)| {
            let a = 2.0 * t.to_radians();
            (c + r * a.cos(), s + r * a.sin())
        })
}

/// Orientation difference folded into `[0, 90]`.
pub fn orientation_distance(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(180.0);
    d.min(180.0 - d)
}

/// `f(theta) = baseline + amplitude * exp(kappa * (cos 2 (theta - mu) - 1))`: a bump of
/// height `amplitude` above `baseline` at `mu` (degrees), narrower for larger `kappa`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VonMises {
    pub baseline: f64,
    pub amplitude: f64,
    pub kappa: f64,
    pub mu: f64,
    /// Fraction of the curve's variance the fit explains (NaN for a flat curve).
    pub r_squared: f64,
}

impl VonMises {
    pub fn eval(&self, theta: f64) -> f64 {
        self.baseline + self.amplitude * shape(self.kappa, theta - self.mu)
    }

    /// Half width (degrees) at which the fitted curve falls to `1/sqrt 2` of its peak
    /// value `baseline + amplitude`, as Ringach et al. 2002 measure it (from zero, not from
    /// the baseline: a value of the curve, so that fits of the same curve with different
    /// baselines agree). Solving `b + a exp(kappa (cos 2d - 1)) = (b + a) / sqrt 2` gives
    /// `cos 2d = 1 + ln g / kappa` with `g = ((b + a) / sqrt 2 - b) / a`; 90 (untuned) where
    /// the curve never falls that low. NaN without a bump (`amplitude` 0) or without a
    /// positive peak.
    pub fn bandwidth(&self) -> f64 {
        let peak = self.baseline + self.amplitude;
        if self.amplitude <= 0.0 || peak <= 0.0 || !self.kappa.is_finite() {
            return f64::NAN;
        }
        let g = (peak * FRAC_1_SQRT_2 - self.baseline) / self.amplitude;
        let c = 1.0 + g.ln() / self.kappa;
        if g <= 0.0 || c <= -1.0 {
            90.0
        } else {
            c.acos().to_degrees() / 2.0
        }
    }
}

fn shape(kappa: f64, delta_degrees: f64) -> f64 {
    (kappa * ((2.0 * delta_degrees.to_radians()).cos() - 1.0)).exp()
}

/// Least-squares von Mises fit. For a given `(mu, kappa)` the best baseline and amplitude
/// are a linear regression (amplitude held at 0 or above); `(mu, kappa)` are found on a
/// grid (5 degrees x 48 log-spaced concentrations in [0.02, kappa_max]) and refined by a
/// pattern search with halving steps. Samples `step = 180 / n` degrees apart cannot
/// resolve a bump narrower than the step: `kappa_max` holds the fitted bump's half width
/// above its baseline at `step / 2` or more (at most 200), so that a single high sample
/// does not fit a spike of any height between the samples. `ln kappa` is at least -8.
pub fn fit_von_mises(orientations: &[f64], responses: &[f64]) -> VonMises {
    let step = 180.0 / orientations.len().max(1) as f64;
    let max_ln_k = (LN_2 / (2.0 * (1.0 - step.to_radians().cos())))
        .min(200.0)
        .ln();
    let sse = |mu: f64, kappa: f64| -> (f64, f64, f64) {
        let g: Vec<f64> = orientations.iter().map(|&t| shape(kappa, t - mu)).collect();
        let (b, a) = linear_fit(&g, responses);
        let e = g
            .iter()
            .zip(responses)
            .map(|(gi, r)| (b + a * gi - r).powi(2))
            .sum();
        (e, b, a)
    };
    let kappas: Vec<f64> = (0..48)
        .map(|i| (0.02f64.ln() + i as f64 / 47.0 * (max_ln_k - 0.02f64.ln())).exp())
        .collect();
    let mut best = (f64::INFINITY, 0.0, 1.0);
    for mu in (0..36).map(|i| 5.0 * i as f64) {
        for &k in &kappas {
            let e = sse(mu, k).0;
            if e < best.0 {
                best = (e, mu, k);
            }
        }
    }
    let (mut e, mut mu, mut ln_k) = (best.0, best.1, best.2.ln());
    let (mut step_mu, mut step_k) = (2.5, 0.2);
    for _ in 0..60 {
        let mut moved = false;
        for (dm, dk) in [
            (step_mu, 0.0),
            (-step_mu, 0.0),
            (0.0, step_k),
            (0.0, -step_k),
        ] {
            let cand = sse(mu + dm, (ln_k + dk).clamp(-8.0, max_ln_k).exp()).0;
            if cand < e {
                (e, mu, ln_k) = (cand, mu + dm, (ln_k + dk).clamp(-8.0, max_ln_k));
                moved = true;
            }
        }
        if !moved {
            step_mu /= 2.0;
            step_k /= 2.0;
        }
    }
    let kappa = ln_k.exp();
    let (_, baseline, amplitude) = sse(mu, kappa);
    let mean = responses.iter().sum::<f64>() / responses.len().max(1) as f64;
    let sst: f64 = responses.iter().map(|r| (r - mean).powi(2)).sum();
    VonMises {
        baseline,
        amplitude,
        kappa,
        mu: mu.rem_euclid(180.0),
        r_squared: if sst > 0.0 { 1.0 - e / sst } else { f64::NAN },
    }
}

/// Least squares `r ~ b + a g` with `a >= 0`: `(b, a)`.
fn linear_fit(g: &[f64], r: &[f64]) -> (f64, f64) {
    let n = g.len() as f64;
    let (mg, mr) = (g.iter().sum::<f64>() / n, r.iter().sum::<f64>() / n);
    let (mut sgg, mut sgr) = (0.0, 0.0);
    for (gi, ri) in g.iter().zip(r) {
        sgg += (gi - mg) * (gi - mg);
        sgr += (gi - mg) * (ri - mr);
    }
    let a = if sgg > 0.0 { (sgr / sgg).max(0.0) } else { 0.0 };
    (mr - a * mg, a)
}

/// Half width (degrees) at which the sampled curve (evenly spaced over 180 degrees;
/// `responses[k]` is the response at `180 k / n` degrees) falls to `1/sqrt 2` of its peak,
/// as Ringach et al. 2002 read it, by linear interpolation on each side of the peak,
/// averaged. 90 where the curve never falls that low (a flat curve among them); NaN
/// where a response is negative (a site before its ReLU) or all are 0.
pub fn sampled_bandwidth(responses: &[f64]) -> f64 {
    let n = responses.len();
    let hi = responses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if n < 2 || hi <= 0.0 || responses.iter().any(|&r| r < 0.0) {
        return f64::NAN;
    }
    let peak = responses.iter().position(|&r| r == hi).unwrap_or(0);
    let level = hi * FRAC_1_SQRT_2;
    let step = 180.0 / n as f64;
    let side = |dir: isize| -> f64 {
        let at = |k: usize| {
            responses[(peak as isize + dir * k as isize).rem_euclid(n as isize) as usize]
        };
        for k in 1..=n / 2 {
            let (prev, cur) = (at(k - 1), at(k));
            if cur < level {
                return step * ((k - 1) as f64 + (prev - level) / (prev - cur));
            }
        }
        90.0
    };
    ((side(1) + side(-1)) / 2.0).min(90.0)
}

/// Equal-width bins over `[lo, hi]` (the last one closed) and the count in each; values
/// outside and NaN are not counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    pub edges: Vec<f64>,
    pub counts: Vec<usize>,
}

impl Bins {
    pub fn new(values: impl IntoIterator<Item = f64>, lo: f64, hi: f64, bins: usize) -> Self {
        let width = (hi - lo) / bins as f64;
        let mut counts = vec![0; bins];
        for v in values {
            if v.is_finite() && v >= lo && v <= hi {
                counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
            }
        }
        Self {
            edges: (0..=bins).map(|i| lo + width * i as f64).collect(),
            counts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn angles(n: usize) -> Vec<f64> {
        (0..n).map(|i| 180.0 * i as f64 / n as f64).collect()
    }

    #[test]
    fn selectivity_of_a_single_orientation_is_one_and_of_a_flat_curve_zero() {
        let t = angles(16);
        let mut one = vec![0.0; 16];
        one[5] = 2.0;
        assert!((orientation_selectivity(&t, &one) - 1.0).abs() < 1e-12);
        assert!((preferred_orientation(&t, &one) - t[5]).abs() < 1e-9);
        assert!(orientation_selectivity(&t, &[3.0; 16]).abs() < 1e-12);
        assert!(orientation_selectivity(&t, &[0.0; 16]).is_nan());
        let mut neg = vec![1.0; 16];
        neg[0] = -0.1;
        assert!(orientation_selectivity(&t, &neg).is_nan());
    }

    #[test]
    fn selectivity_of_a_cosine_curve_is_half_its_modulation() {
        // r = 1 + m cos 2(theta - 30): sum r e^{2i theta} = N m / 2 e^{2i 30}, sum r = N,
        // so OSI = m / 2 and the preference is 30 degrees.
        let t = angles(16);
        let r: Vec<f64> = t
            .iter()
            .map(|&a| 1.0 + 0.6 * (2.0 * (a - 30.0_f64).to_radians()).cos())
            .collect();
        assert!((orientation_selectivity(&t, &r) - 0.3).abs() < 1e-12);
        assert!((preferred_orientation(&t, &r) - 30.0).abs() < 1e-9);
    }

    #[test]
    fn the_bandwidth_of_a_von_mises_curve_of_known_width_is_recovered() {
        // Choose the half width first: at mu +- d the curve b + a e^{kappa (cos 2d - 1)}
        // stands at (b + a) / sqrt 2, so kappa = ln g / (cos 2d - 1) with
        // g = ((b + a) / sqrt 2 - b) / a.
        let (d, b, a) = (20.0f64, 0.3, 2.0);
        let g = ((b + a) * FRAC_1_SQRT_2 - b) / a;
        let kappa = g.ln() / ((2.0 * d).to_radians().cos() - 1.0);
        let truth = VonMises {
            baseline: b,
            amplitude: a,
            kappa,
            mu: 100.0,
            r_squared: 1.0,
        };
        assert!((truth.bandwidth() - d).abs() < 1e-9);
        assert!((truth.eval(100.0 + d) - (b + a) * FRAC_1_SQRT_2).abs() < 1e-12);

        let t = angles(16);
        let r: Vec<f64> = t.iter().map(|&a| truth.eval(a)).collect();
        let fit = fit_von_mises(&t, &r);
        assert!((fit.bandwidth() - d).abs() < 0.05, "{fit:?}");
        assert!((fit.mu - 100.0).abs() < 0.05 && (fit.kappa / kappa - 1.0).abs() < 0.01);
        assert!(fit.r_squared > 0.9999);
        // Read off 180 samples (1 degree apart), the same level gives the same width, up
        // to the linear interpolation between samples.
        let fine = angles(180);
        let r: Vec<f64> = fine.iter().map(|&a| truth.eval(a)).collect();
        assert!((sampled_bandwidth(&r) - d).abs() < 0.1);
    }

    #[test]
    fn the_bandwidth_is_a_value_of_the_curve_not_of_its_parameters() {
        // A broad bump on a large negative baseline is nearly a cosine: b + a (1 + kappa
        // (cos 2t - 1)) for small kappa. Shifting the baseline by -s and the amplitude by
        // +s, with kappa scaled by a / (a + s), leaves the curve (to first order in kappa)
        // and its width unchanged; for the cosine p + m (cos 2t - 1) with peak p = 1 and
        // m = 0.49 (minimum 0.02), 1/sqrt 2 of the peak is reached at
        // cos 2d = 1 - (1 - 1/sqrt 2) / m.
        let (p, m) = (1.0f64, 0.49);
        let d = (1.0 - (1.0 - FRAC_1_SQRT_2) / m).acos().to_degrees() / 2.0;
        for s in [1e3, 1e5] {
            let amplitude = 1.0 + s;
            let curve = VonMises {
                baseline: p - amplitude,
                amplitude,
                kappa: m / amplitude,
                mu: 0.0,
                r_squared: 1.0,
            };
            assert!((curve.bandwidth() - d).abs() < 0.05 * 1e3 / s + 1e-3, "{s}");
        }
    }

    #[test]
    fn sampled_bandwidth_of_a_triangle_is_exact() {
        // A triangle peaking at 90 that falls by 1 per 11.25-degree step from 8: the
        // 1/sqrt 2 level of the peak is 8/sqrt 2 = 5.657, reached after
        // (8 - 5.657) steps = 2.343 * 11.25 degrees on both sides.
        let r: Vec<f64> = (0..16)
            .map(|k| (8.0 - (k as f64 - 8.0).abs()).max(0.0))
            .collect();
        let want = (8.0 - 8.0 * FRAC_1_SQRT_2) * 11.25;
        assert!((sampled_bandwidth(&r) - want).abs() < 1e-9);
        // On a baseline of 4 (12 down to 4), the level is 12 / sqrt 2 = 8.49 of the peak
        // itself, not of its height above the minimum: reached after 12 - 8.49 steps.
        let lifted: Vec<f64> = r.iter().map(|v| v + 4.0).collect();
        let want = (12.0 - 12.0 * FRAC_1_SQRT_2) * 11.25;
        assert!((sampled_bandwidth(&lifted) - want).abs() < 1e-9);
        // Flat: never falls, untuned. Silent or negative: undefined.
        assert_eq!(sampled_bandwidth(&[1.0; 16]), 90.0);
        assert!(sampled_bandwidth(&[0.0; 16]).is_nan());
        let mut negative = r.clone();
        negative[0] = -0.5;
        assert!(sampled_bandwidth(&negative).is_nan());
    }

    #[test]
    fn a_single_sample_peak_fits_no_narrower_than_half_the_step() {
        // 16 samples are 11.25 degrees apart: the fit's concentration stays at most the
        // one whose half width above the baseline is 5.625, ln 2 / (2 (1 - cos 11.25)).
        let t = angles(16);
        let mut r = vec![0.0; 16];
        r[3] = 1.0;
        let fit = fit_von_mises(&t, &r);
        let cap = LN_2 / (2.0 * (1.0 - 11.25f64.to_radians().cos()));
        assert!(fit.kappa <= cap * (1.0 + 1e-9), "{fit:?}");
        // The half width at 1/sqrt 2 of the peak itself is a little narrower where the
        // fitted baseline dips below 0 (here to -0.025: 5.53 degrees), never a spike.
        assert!(fit.bandwidth() >= 5.4, "{fit:?}");
        assert!(
            fit.amplitude < 1.5 && (fit.mu - t[3]).abs() < 1.0,
            "{fit:?}"
        );
    }

    #[test]
    fn very_broad_curves_have_a_bandwidth_of_ninety() {
        let broad = VonMises {
            baseline: 0.0,
            amplitude: 1.0,
            kappa: 0.1,
            mu: 0.0,
            r_squared: 1.0,
        };
        assert_eq!(broad.bandwidth(), 90.0);
    }

    #[test]
    fn bins_count_values_with_the_last_edge_closed() {
        let b = Bins::new([0.0, 0.1, 0.5, 1.0, f64::NAN, 1.5], 0.0, 1.0, 4);
        assert_eq!(b.counts, vec![2, 0, 1, 1]);
        assert_eq!(b.edges, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(orientation_distance(170.0, 10.0), 20.0);
    }
}
