//! Ridge regression with the regularization chosen by efficient leave-one-out
//! cross-validation, and the cross-validated predictivity of one representation from another
//! (Yamins et al. 2014).
//!
//! With the centred training inputs `X = U S V^T`, ridge with penalty `a` fits
//! `U diag(s^2 / (s^2 + a)) U^T y` plus an unpenalized intercept, and its leave-one-out
//! residuals are `(y_i - yhat_i) / (1 - h_ii)` with `h_ii = 1/n + sum_k U_ik^2 s_k^2/(s_k^2+a)`:
//! one SVD serves every penalty. This is scikit-learn's `RidgeCV` (generalized/leave-one-out
//! cross-validation, `fit_intercept=True`).

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::error::{degenerate, invalid, Result};
use crate::linalg::{check_pair, column_means, cross, product, ThinSvd};
use crate::Matrix;

/// Settings for [`ridge_predictivity`] and [`crate::decodability`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RidgeOptions {
    /// Outer cross-validation folds.
    pub folds: usize,
    /// The penalty grid, as multiples of the mean squared singular value of the centred
    /// inputs over all stimuli (`||X - mean||_F^2 / units`), so that the grid follows the
    /// scale of the activations (the scale only; no target is looked at).
    pub alpha_factors: Vec<f64>,
}

impl Default for RidgeOptions {
    fn default() -> Self {
        Self {
            folds: 5,
            alpha_factors: (-3..=3).map(|e| 10f64.powi(e)).collect(),
        }
    }
}

impl RidgeOptions {
    /// The absolute penalties for input `x`.
    pub fn alphas(&self, x: &Matrix) -> Vec<f64> {
        // Column by column, without a centred copy of the whole input.
        let a = x.as_faer();
        let means = column_means(a);
        let total: f64 = (0..a.ncols())
            .map(|j| a.col(j).iter().map(|v| (v - means[j]).powi(2)).sum::<f64>())
            .sum();
        let scale = total / x.units().max(1) as f64;
        self.alpha_factors.iter().map(|f| f * scale).collect()
    }

    pub(crate) fn check(&self, what: &'static str, n: usize) -> Result<()> {
        if self.folds < 2 {
            return Err(invalid(
                what,
                format!("{} folds: at least 2 needed", self.folds),
            ));
        }
        if self.alpha_factors.is_empty()
            || self
                .alpha_factors
                .iter()
                .any(|a| !(*a > 0.0 && a.is_finite()))
        {
            return Err(invalid(
                what,
                "alpha factors must be positive and finite (and at least one)",
            ));
        }
        if n < 3 * self.folds {
            return Err(crate::Error::TooFewStimuli {
                what,
                stimuli: n,
                needed: 3 * self.folds,
                why: "every cross-validation fold needs at least 3 stimuli",
            });
        }
        Ok(())
    }
}

/// Per-target predictivity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RidgeResult {
    /// Cross-validated `R^2 = 1 - SS_res / SS_tot` of each target unit, from the out-of-fold
    /// predictions of all stimuli (NaN for constant targets, which are listed below).
    pub r2: Vec<f64>,
    /// Pearson correlation of each target unit with its out-of-fold prediction (0 where the
    /// prediction is constant; NaN for constant targets).
    pub pearson: Vec<f64>,
    /// Median over the non-constant targets: the scores.
    pub median_r2: f64,
    pub median_pearson: f64,
    /// Target units with no variance over the stimuli (dead units): excluded from the medians.
    pub constant_targets: Vec<usize>,
    /// The penalty grid searched.
    pub alphas: Vec<f64>,
}

/// The training half of one fold: the SVD of the centred inputs and the projections of the
/// centred targets on its left vectors.
pub(crate) struct Fit {
    pub svd: ThinSvd,
    pub x_mean: Vec<f64>,
    pub y_mean: Vec<f64>,
    pub uty: Mat<f64>,
    pub yc: Mat<f64>,
}

impl Fit {
    /// Takes the training rows by value and centres them in place (no second copy).
    pub fn new(mut xc: Mat<f64>, mut yc: Mat<f64>, what: &'static str) -> Result<Self> {
        let x_mean = centre_in_place(&mut xc);
        let y_mean = centre_in_place(&mut yc);
        let svd = ThinSvd::of_centred(xc.as_ref(), what)?;
        let uty = cross(svd.u.as_ref(), yc.as_ref());
        Ok(Self {
            svd,
            x_mean,
            y_mean,
            uty,
            yc,
        })
    }

    /// Leave-one-out squared error of each target, using the first `k` directions.
    pub fn loo_errors(&self, k: usize, alpha: f64) -> Vec<f64> {
        let u = self.svd.u.as_ref().subcols(0, k);
        let n = u.nrows();
        let shrink: Vec<f64> = self.svd.s[..k]
            .iter()
            .map(|s| s * s / (s * s + alpha))
            .collect();
        let mut leverage = vec![1.0 / n as f64; n];
        for (j, w) in shrink.iter().enumerate() {
            for (h, v) in leverage.iter_mut().zip(u.col(j).iter()) {
                *h += v * v * w;
            }
        }
        let scaled = Mat::from_fn(k, self.uty.ncols(), |j, t| shrink[j] * self.uty[(j, t)]);
        let fitted = product(u, scaled.as_ref());
        let inverse: Vec<f64> = leverage.iter().map(|h| 1.0 / (1.0 - h)).collect();
        (0..self.yc.ncols())
            .map(|t| {
                let (truth, fit) = (self.yc.col_as_slice(t), fitted.col_as_slice(t));
                truth
                    .iter()
                    .zip(fit)
                    .zip(&inverse)
                    .map(|((y, f), g)| ((y - f) * g).powi(2))
                    .sum()
            })
            .collect()
    }

    /// Predictions for new inputs with the first `k` directions and one penalty per target.
    pub fn predict(&self, x: MatRef<'_, f64>, k: usize, alphas: &[f64]) -> Mat<f64> {
        let xc = minus_means(x, &self.x_mean);
        let z = product(xc.as_ref(), self.svd.v.as_ref().subcols(0, k));
        let s = &self.svd.s;
        let coef = Mat::from_fn(k, self.uty.ncols(), |j, t| {
            s[j] / (s[j] * s[j] + alphas[t]) * self.uty[(j, t)]
        });
        let mut out = product(z.as_ref(), coef.as_ref());
        for (t, m) in self.y_mean.iter().enumerate() {
            out.col_mut(t).iter_mut().for_each(|v| *v += m);
        }
        out
    }
}

/// Subtracts each column's mean from it; returns the means.
fn centre_in_place(a: &mut Mat<f64>) -> Vec<f64> {
    let means = column_means(a.as_ref());
    for (j, m) in means.iter().enumerate() {
        a.col_as_slice_mut(j).iter_mut().for_each(|v| *v -= m);
    }
    means
}

pub(crate) fn minus_means(x: MatRef<'_, f64>, means: &[f64]) -> Mat<f64> {
    Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - means[j])
}

pub(crate) fn select_rows(x: MatRef<'_, f64>, rows: &[usize]) -> Mat<f64> {
    Mat::from_fn(rows.len(), x.ncols(), |i, j| x[(rows[i], j)])
}

/// scikit-learn's `KFold(n_splits=folds)` without shuffling: contiguous test blocks, the
/// first `n % folds` one stimulus larger. Returns each fold's test indices.
pub(crate) fn contiguous_folds(n: usize, folds: usize) -> Vec<Vec<usize>> {
    let mut start = 0;
    (0..folds)
        .map(|f| {
            let size = n / folds + usize::from(f < n % folds);
            let fold = (start..start + size).collect();
            start += size;
            fold
        })
        .collect()
}

pub(crate) fn complement(n: usize, test: &[usize]) -> Vec<usize> {
    let mut is_test = vec![false; n];
    test.iter().for_each(|&i| is_test[i] = true);
    (0..n).filter(|&i| !is_test[i]).collect()
}

/// Index of the smallest value, the first on ties (as `RidgeCV` keeps the first best alpha).
pub(crate) fn argmin(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, v) in values.enumerate() {
        if v < best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Cross-validated ridge predictivity of every unit of `y` from all units of `x`
/// (asymmetric: `x` predicts `y`). Outer folds are contiguous blocks of stimuli (shuffle the
/// stimuli first if they are ordered, e.g. by class); inside each training set the penalty of
/// each target unit is chosen from the grid by leave-one-out error. Equivalent to
/// `cross_val_predict(RidgeCV(alphas, alpha_per_target=True), X, Y, cv=KFold(folds))`.
pub fn ridge_predictivity(x: &Matrix, y: &Matrix, options: &RidgeOptions) -> Result<RidgeResult> {
    const WHAT: &str = "ridge predictivity";
    check_pair(x, y, WHAT, 2, "cross-validation needs stimuli")?;
    options.check(WHAT, x.stimuli())?;
    let alphas = options.alphas(x);
    let n = x.stimuli();
    let mut predicted = Mat::<f64>::zeros(n, y.units());
    for test in contiguous_folds(n, options.folds) {
        let train = complement(n, &test);
        let fit = Fit::new(
            select_rows(x.as_faer(), &train),
            select_rows(y.as_faer(), &train),
            WHAT,
        )?;
        let k = fit.svd.s.len();
        let errors: Vec<Vec<f64>> = alphas.iter().map(|&a| fit.loo_errors(k, a)).collect();
        let chosen: Vec<f64> = (0..y.units())
            .map(|t| alphas[argmin(errors.iter().map(|e| e[t]))])
            .collect();
        let p = fit.predict(select_rows(x.as_faer(), &test).as_ref(), k, &chosen);
        for (r, &i) in test.iter().enumerate() {
            for t in 0..y.units() {
                predicted[(i, t)] = p[(r, t)];
            }
        }
    }
    score(y, predicted.as_ref(), alphas)
}

fn score(y: &Matrix, predicted: MatRef<'_, f64>, alphas: Vec<f64>) -> Result<RidgeResult> {
    let (mut r2, mut pearson, mut constant_targets) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..y.units() {
        let truth: Vec<f64> = y.as_faer().col(t).iter().copied().collect();
        let guess: Vec<f64> = predicted.col(t).iter().copied().collect();
        let mean = truth.iter().sum::<f64>() / truth.len() as f64;
        let total: f64 = truth.iter().map(|v| (v - mean).powi(2)).sum();
        if total <= 0.0 {
            constant_targets.push(t);
            r2.push(f64::NAN);
            pearson.push(f64::NAN);
            continue;
        }
        let residual: f64 = truth.iter().zip(&guess).map(|(a, b)| (a - b).powi(2)).sum();
        r2.push(1.0 - residual / total);
        let first = guess[0];
        let constant_guess = guess.iter().all(|&g| g == first);
        pearson.push(if constant_guess {
            0.0
        } else {
            crate::rsa::pearson(&truth, &guess)
        });
    }
    let finite = |v: &[f64]| -> Vec<f64> { v.iter().copied().filter(|x| !x.is_nan()).collect() };
    let (mut good_r2, mut good_r) = (finite(&r2), finite(&pearson));
    if good_r2.is_empty() {
        return Err(degenerate(
            "ridge predictivity",
            "every target unit is constant over the stimuli",
        ));
    }
    Ok(RidgeResult {
        median_r2: crate::cka::median_in_place(&mut good_r2),
        median_pearson: crate::cka::median_in_place(&mut good_r),
        r2,
        pearson,
        constant_targets,
        alphas,
    })
}
