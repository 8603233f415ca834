//! Ridge regression with the regularization chosen by efficient leave-one-out
//! cross-validation, and the cross-validated predictivity of one representation from another
//! (Yamins et al. 2014).
//!
//! With the centred training inputs `X = U S V^T`, ridge with penalty `a` fits
//! `U diag(s^2 / (s^2 + a)) U^T y` plus an unpenalized intercept, and its leave-one-out
//! residuals are `(y_i - yhat_i) / (1 - h_ii)` with `h_ii = 1/n + sum_k U_ik^2 s_k^2/(s_k^2+a)`:
//! one SVD serves every penalty. This is scikit-learn's `RidgeCV` (generalized/leave-one-out
//! cross-validation, `fit_intercept=True`).
//!
//! Two things keep the cross-validation cheap without changing its result: the folds share
//! the products of all stimuli ([`Pooled`]), and each target's penalty is chosen from
//! leave-one-out errors computed in f32 under a rounding bound, recomputed in f64 where the
//! bound cannot decide (`crate::screen`).

use faer::linalg::matmul::matmul;
use faer::{get_global_parallelism, Accum, Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::error::{degenerate, invalid, Result};
use crate::linalg::{
    check_pair, column_means, cross, kept_eigen, lower_gram, mean_of, product, scale_columns,
    RightBasis, ThinSvd,
};
use crate::prepared::Prepared;
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

/// The training half of one fold: the left singular vectors `u` and singular values `s` of the
/// centred training inputs, the projections of the centred targets on `u`, and what the
/// held-out stimuli's predictions need.
pub(crate) struct Fit {
    pub u: Mat<f64>,
    pub s: Vec<f64>,
    pub y_mean: Vec<f64>,
    pub uty: Mat<f64>,
    pub yc: Mat<f64>,
    held_out: HeldOut,
}

/// How a fit reaches its held-out stimuli's coordinates `(x - m) V` on its directions.
enum HeldOut {
    /// The held-out inputs centred on the training means, and the right singular vectors `V`.
    Inputs { x: Mat<f64>, v: Mat<f64> },
    /// The coordinates themselves, from the stimuli's kernel: `V` (units x directions, the
    /// large side of a wide input) is never formed.
    Coordinates(Mat<f64>),
}

/// The inputs and targets centred once, for the fits of every fold, with the products over
/// all stimuli that each training set takes its own from (see [`Pool`]), so that the folds
/// together multiply each stimulus once instead of `folds - 1` times.
pub(crate) struct Pooled<'p> {
    /// The inputs centred over all stimuli, and their Gram matrices, from a [`Prepared`]
    /// input that other measures of it share (PCA in a population run, CKA and CCA in a
    /// comparison).
    x: MatRef<'p, f64>,
    y: Mat<f64>,
    y_mean: Vec<f64>,
    pool: Option<Pool<'p>>,
}

/// Products over all stimuli (centred), shared by the folds.
enum Pool<'p> {
    /// Every training set has at least as many stimuli as units: `X^T X` and `X^T Y`; a
    /// training set's are these minus its test rows' (and a mean correction).
    Features(Products<'p>),
    /// Some training set has fewer stimuli than units: the lower triangle of the `n x n`
    /// kernel `X X^T`; a training set's is its rows and columns, centred on its own means
    /// algebraically, and the held-out rows against them give the test coordinates.
    Stimuli(MatRef<'p, f64>),
}

/// Centred products over all stimuli.
struct Products<'p> {
    /// The lower triangle of `X^T X`.
    gram: MatRef<'p, f64>,
    /// `X^T Y`.
    cross: Mat<f64>,
    /// Each target's sum of squares (the inputs' are the Gram diagonal).
    y_squares: Vec<f64>,
}

/// A training set's pooled products carry the rounding of the whole data's: about `2^-53`
/// times `whole / training` of each unit's own scale. They serve only where no unit's sum of
/// squares over all stimuli exceeds this multiple of its training one (a unit nearly silent
/// except in the held-out block); elsewhere the training rows are multiplied directly.
const MAX_POOLING_RATIO: f64 = 1e4;

/// A fold's solution: `u`, `s`, `U^T Y` and the held-out side.
type Solved = (Mat<f64>, Vec<f64>, Mat<f64>, HeldOut);

impl<'p> Pooled<'p> {
    /// `largest_test`: the most stimuli any fold holds out.
    pub fn new(x: &'p Prepared<'_>, y: MatRef<'_, f64>, largest_test: usize) -> Self {
        let xc = x.centred();
        let mut yc = y.to_owned();
        let y_mean = centre_in_place(&mut yc);
        // As `RightBasis::of_centred` chooses: the smaller Gram matrix of the smallest
        // training set.
        let pool = if xc.ncols() + largest_test <= xc.nrows() {
            Pool::Features(Products {
                gram: x.gram().as_ref(),
                cross: cross(xc, yc.as_ref()),
                y_squares: squares(yc.as_ref()),
            })
        } else {
            Pool::Stimuli(x.stimulus_gram().as_ref())
        };
        Self {
            x: xc,
            y: yc,
            y_mean,
            pool: Some(pool),
        }
    }

    /// The fit on every stimulus but `test`.
    pub fn fit(&self, test: &[usize], what: &'static str) -> Result<Fit> {
        let train = complement(self.x.nrows(), test);
        let mut yt = select_rows(self.y.as_ref(), &train);
        // The training means, in the coordinates of the data centred over all stimuli.
        let my = centre_in_place(&mut yt);
        let kernel_fit = match &self.pool {
            Some(Pool::Stimuli(kernel)) => fit_from_kernel(*kernel, &train, test, &yt, what)?,
            _ => None,
        };
        let (u, s, uty, held_out) = match kernel_fit {
            Some(solved) => solved,
            None => self.fit_from_rows(&train, test, &yt, &my, what)?,
        };
        let add =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(p, q)| p + q).collect() };
        Ok(Fit {
            u,
            s,
            y_mean: add(&self.y_mean, &my),
            uty,
            yc: yt,
            held_out,
        })
    }

    /// A fold from its training inputs: through the pooled `X^T X` and `X^T Y` where they
    /// serve, else by the SVD of the training rows.
    fn fit_from_rows(
        &self,
        train: &[usize],
        test: &[usize],
        yt: &Mat<f64>,
        my: &[f64],
        what: &'static str,
    ) -> Result<Solved> {
        let mut xt = select_rows(self.x, train);
        let mx = centre_in_place(&mut xt);
        let products = match &self.pool {
            Some(Pool::Features(p))
                if poolable((0..p.gram.ncols()).map(|j| p.gram[(j, j)]), xt.as_ref())
                    && poolable(p.y_squares.iter().copied(), yt.as_ref()) =>
            {
                Some(p)
            }
            _ => None,
        };
        let (svd, uty) = match products {
            Some(p) => self.fit_from_products(p, test, &xt, (&mx, my), what)?,
            None => {
                let svd = ThinSvd::of_centred(xt.as_ref(), what)?;
                let uty = cross(svd.u.as_ref(), yt.as_ref());
                (svd, uty)
            }
        };
        let held = HeldOut::Inputs {
            x: minus_means(select_rows(self.x, test).as_ref(), &mx),
            v: svd.v,
        };
        Ok((svd.u, svd.s, uty, held))
    }

    /// With `m` the training means and `n` the training count (the whole data being centred):
    /// `sum_train (x - m)(y - m')^T = sum_all x y^T - sum_test x y^T - n m m'^T`. The SVD's
    /// `U = X V / s` and `U^T Y = diag(1/s) V^T (X^T Y)` follow.
    fn fit_from_products(
        &self,
        Products {
            gram, cross: xty, ..
        }: &Products<'_>,
        test: &[usize],
        xt: &Mat<f64>,
        (mx, my): (&[f64], &[f64]),
        what: &'static str,
    ) -> Result<(ThinSvd, Mat<f64>)> {
        let xs = select_rows(self.x, test);
        let ys = select_rows(self.y.as_ref(), test);
        let n = xt.nrows() as f64;
        let held_gram = lower_gram(xs.as_ref());
        let held_cross = cross(xs.as_ref(), ys.as_ref());
        // The lower triangle only: the eigendecomposition reads no other.
        let train_gram = Mat::from_fn(gram.nrows(), gram.ncols(), |i, j| {
            if i >= j {
                gram[(i, j)] - held_gram[(i, j)] - n * mx[i] * mx[j]
            } else {
                0.0
            }
        });
        let train_cross = Mat::from_fn(xty.nrows(), xty.ncols(), |i, j| {
            xty[(i, j)] - held_cross[(i, j)] - n * mx[i] * my[j]
        });
        let RightBasis { s, v } = RightBasis::of_gram(train_gram.as_ref(), what)?;
        let u = scale_columns(product(xt.as_ref(), v.as_ref()), &s);
        let mut uty = cross(v.as_ref(), train_cross.as_ref());
        for (j, sj) in s.iter().enumerate() {
            uty.row_mut(j).iter_mut().for_each(|c| *c /= sj);
        }
        Ok((ThinSvd { u, s, v }, uty))
    }
}

/// A fold from the kernel `G = X X^T` of the centred stimuli (lower triangle). With `a_i` the
/// mean of row `i` of `G` over the training stimuli and `g` their mean, stimuli `i` and `j`
/// centred on the training means have the inner product `G_ij - a_i - a_j + g`. The training
/// block's eigenvectors are `U` and its eigenvalues `s^2`; a held-out stimulus's coordinates
/// `(x - m) V = (x - m) X_t^T U / s` are its row of the centred cross block times `U / s`.
///
/// The centred block carries the rounding of `G`, about `2^-53` of the training stimuli's
/// squared norms about the overall means. `None` (multiply the training rows instead) where
/// their sum exceeds [`MAX_POOLING_RATIO`] times the one about the training means (the
/// block's trace): a training set far from the whole data's mean.
fn fit_from_kernel(
    kernel: MatRef<'_, f64>,
    train: &[usize],
    test: &[usize],
    yt: &Mat<f64>,
    what: &'static str,
) -> Result<Option<Solved>> {
    let g = |i: usize, j: usize| kernel[(i.max(j), i.min(j))];
    let n = kernel.nrows();
    let mut a = vec![0.0; n];
    for (i, ai) in a.iter_mut().enumerate() {
        *ai = train.iter().map(|&j| g(i, j)).sum::<f64>() / train.len() as f64;
    }
    let grand = train.iter().map(|&i| a[i]).sum::<f64>() / train.len() as f64;
    let centred = |i: usize, j: usize| g(i, j) - a[i] - a[j] + grand;
    let about_overall: f64 = train.iter().map(|&i| g(i, i)).sum();
    let about_training: f64 = train.iter().map(|&i| centred(i, i)).sum();
    if about_overall > MAX_POOLING_RATIO * about_training {
        return Ok(None);
    }
    // The lower triangle only: the eigendecomposition reads no other.
    let block = Mat::from_fn(train.len(), train.len(), |p, q| {
        if p >= q {
            centred(train[p], train[q])
        } else {
            0.0
        }
    });
    let (s, u) = kept_eigen(block.as_ref(), what)?;
    let across = Mat::from_fn(test.len(), train.len(), |p, q| centred(test[p], train[q]));
    let coordinates = scale_columns(product(across.as_ref(), u.as_ref()), &s);
    let uty = cross(u.as_ref(), yt.as_ref());
    Ok(Some((u, s, uty, HeldOut::Coordinates(coordinates))))
}

impl Fit {
    /// Leave-one-out squared error of each target (inner) for each penalty (outer), using the
    /// first `k` directions.
    pub fn loo_errors(&self, k: usize, alphas: &[f64]) -> Vec<Vec<f64>> {
        self.loo_errors_of(k, alphas, self.uty.as_ref().subrows(0, k), self.yc.as_ref())
    }

    /// [`Fit::loo_errors`] of the targets whose projections on the first `k` directions are
    /// the columns of `c` and whose centred values are the columns of `y` (some of all).
    pub fn loo_errors_of(
        &self,
        k: usize,
        alphas: &[f64],
        c: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
    ) -> Vec<Vec<f64>> {
        let u = self.u.as_ref().subcols(0, k);
        let scales = self.loo_scales(k, alphas);
        let mut residual = Mat::<f64>::zeros(u.nrows(), c.ncols());
        alphas
            .iter()
            .enumerate()
            .map(|(a, &alpha)| {
                let s = &self.s;
                let fitted = Mat::from_fn(k, c.ncols(), |j, t| {
                    s[j] * s[j] / (s[j] * s[j] + alpha) * c[(j, t)]
                });
                residual.copy_from(y);
                matmul(
                    residual.as_mut(),
                    Accum::Add,
                    u,
                    fitted.as_ref(),
                    -1.0,
                    get_global_parallelism(),
                );
                let scale = scales.col_as_slice(a);
                (0..c.ncols())
                    .map(|t| weighted_norm_sq(residual.col_as_slice(t), scale))
                    .collect()
            })
            .collect()
    }

    /// `1 / (1 - h_ii)` for each training stimulus (row) and penalty (column), with the
    /// leverages `h_ii = 1/n + sum_j U_ij^2 s_j^2 / (s_j^2 + alpha)` of the ridge fit on the
    /// first `k` directions (the intercept's `1/n` included): one product of the squared `U`
    /// with the shrinkage of every penalty.
    pub fn loo_scales(&self, k: usize, alphas: &[f64]) -> Mat<f64> {
        let u = self.u.as_ref().subcols(0, k);
        let n = u.nrows();
        let mut squares = Mat::<f64>::zeros(n, k);
        for j in 0..k {
            let column = u.col(j);
            for (q, i) in squares.col_as_slice_mut(j).iter_mut().zip(0..n) {
                *q = column[i] * column[i];
            }
        }
        let shrink = Mat::from_fn(k, alphas.len(), |j, a| {
            let s2 = self.s[j] * self.s[j];
            s2 / (s2 + alphas[a])
        });
        let mut scales = product(squares.as_ref(), shrink.as_ref());
        for a in 0..scales.ncols() {
            scales
                .col_as_slice_mut(a)
                .iter_mut()
                .for_each(|h| *h = 1.0 / (1.0 - (*h + 1.0 / n as f64)));
        }
        scales
    }

    /// Predictions for the held-out stimuli with the first `k` directions and one penalty per
    /// target.
    pub fn predict(&self, k: usize, alphas: &[f64]) -> Mat<f64> {
        let s = &self.s;
        let coef = Mat::from_fn(k, self.uty.ncols(), |j, t| {
            s[j] / (s[j] * s[j] + alphas[t]) * self.uty[(j, t)]
        });
        let mut out = match &self.held_out {
            HeldOut::Coordinates(z) => product(z.as_ref().subcols(0, k), coef.as_ref()),
            HeldOut::Inputs { x, v } => {
                let v = v.as_ref().subcols(0, k);
                // (X V) C or X (V C), whichever multiplies less: the first when the units
                // outnumber the stimuli and targets, the second otherwise (it maps C back to
                // the units once).
                let (rows, units, targets) = (x.nrows(), x.ncols(), coef.ncols());
                if rows * k * (units + targets) < units * targets * (k + rows) {
                    product(product(x.as_ref(), v).as_ref(), coef.as_ref())
                } else {
                    product(x.as_ref(), product(v, coef.as_ref()).as_ref())
                }
            }
        };
        for (t, m) in self.y_mean.iter().enumerate() {
            out.col_mut(t).iter_mut().for_each(|v| *v += m);
        }
        out
    }
}

/// `sum_i (r_i w_i)^2`, in four running sums so that it vectorizes.
pub(crate) fn weighted_norm_sq<T: Copy + Into<f64>>(r: &[T], w: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let (r4, w4) = (r.chunks_exact(4), w.chunks_exact(4));
    let tail: f64 = r4
        .remainder()
        .iter()
        .zip(w4.remainder())
        .map(|(&x, g)| (x.into() * g).powi(2))
        .sum();
    for (x, g) in r4.zip(w4) {
        for l in 0..4 {
            let v = x[l].into() * g[l];
            lanes[l] += v * v;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Each column's sum of squares.
pub(crate) fn squares(a: MatRef<'_, f64>) -> Vec<f64> {
    (0..a.ncols())
        .map(|j| a.col(j).iter().map(|v| v * v).sum())
        .collect()
}

/// Whether no column's sum of squares in `whole` exceeds [`MAX_POOLING_RATIO`] times the
/// one of `training` (centred).
fn poolable(whole: impl Iterator<Item = f64>, training: MatRef<'_, f64>) -> bool {
    whole
        .zip(squares(training))
        .all(|(w, t)| w <= MAX_POOLING_RATIO * t)
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
    let mut out = Mat::<f64>::zeros(rows.len(), x.ncols());
    for j in 0..x.ncols() {
        let column = x.col(j);
        for (o, &i) in out.col_as_slice_mut(j).iter_mut().zip(rows) {
            *o = column[i];
        }
    }
    out
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
    predictivity(&Prepared::new(x), y, options)
}

/// [`ridge_predictivity`] from a prepared input, whose centred values and Gram matrices the
/// fits share with the other measures of it.
pub(crate) fn predictivity(
    px: &Prepared<'_>,
    y: &Matrix,
    options: &RidgeOptions,
) -> Result<RidgeResult> {
    const WHAT: &str = "ridge predictivity";
    let x = px.matrix();
    check_pair(x, y, WHAT, 2, "cross-validation needs stimuli")?;
    options.check(WHAT, x.stimuli())?;
    let alphas = options.alphas(x);
    let n = x.stimuli();
    let folds = contiguous_folds(n, options.folds);
    let largest = folds.iter().map(Vec::len).max().unwrap_or(0);
    let pooled = Pooled::new(px, y.as_faer(), largest);
    let mut predicted = Mat::<f64>::zeros(n, y.units());
    for test in &folds {
        let fit = pooled.fit(test, WHAT)?;
        let k = fit.s.len();
        let chosen: Vec<f64> = crate::screen::best_penalties(&fit, &alphas)
            .into_iter()
            .map(|a| alphas[a])
            .collect();
        let p = fit.predict(k, &chosen);
        for t in 0..y.units() {
            let column = predicted.col_as_slice_mut(t);
            for (&i, v) in test.iter().zip(p.col_as_slice(t)) {
                column[i] = *v;
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
        let mean = mean_of(truth.iter().copied());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::synthetic_pair;

    fn close(a: f64, b: f64, what: &str) {
        assert!(
            (a - b).abs() <= 1e-9 * (1.0 + a.abs()),
            "{what}: {a} against {b}"
        );
    }

    /// `x` with `f(stimulus, unit, value)` applied to every value.
    fn mapped(x: &Matrix, f: impl Fn(usize, usize, f64) -> f64) -> Matrix {
        let m = x.as_faer();
        Matrix::from_faer(Mat::from_fn(m.nrows(), m.ncols(), |i, j| {
            f(i, j, m[(i, j)])
        }))
        .unwrap()
    }

    #[test]
    fn pooled_products_give_the_fits_of_each_training_set() {
        // Offset inputs, so that the training means differ from the overall ones.
        let (x, y) = synthetic_pair(200, 12, 5).unwrap();
        let x = mapped(&x, |_, _, v| v + 2.0);
        let alphas = RidgeOptions::default().alphas(&x);
        let folds = contiguous_folds(200, 5);
        let px = Prepared::new(&x);
        let pooled = Pooled::new(&px, y.as_faer(), 40);
        assert!(matches!(pooled.pool, Some(Pool::Features(_))));
        same_fits(&x, &y, &folds);
        // A unit silent but in the last fold, and loud there: its training sum of squares would
        // be lost in the rounding of the whole one's, so that fold multiplies directly.
        let loud = mapped(&x, |i, j, v| match (i >= 160, j) {
            (false, 0) => 0.0,
            (true, 0) => 1e5 * v,
            _ => v,
        });
        let loud = Prepared::new(&loud);
        let pooled = Pooled::new(&loud, y.as_faer(), 40);
        let direct = Pooled {
            pool: None,
            ..Pooled::new(&loud, y.as_faer(), 40)
        };
        let last = &folds[4];
        let (a, b) = (
            pooled.fit(last, "a").unwrap(),
            direct.fit(last, "b").unwrap(),
        );
        assert_eq!(a.s.len(), 11, "the silent unit is no direction");
        assert_eq!(a.s.len(), b.s.len());
        let (ea, eb) = (a.loo_errors(11, &alphas), b.loo_errors(11, &alphas));
        ea.iter()
            .flatten()
            .zip(eb.iter().flatten())
            .for_each(|(p, q)| close(*p, *q, "error"));
    }

    /// Every fold's fit from the pooled products equals the one from its own rows: the same
    /// singular values, leave-one-out errors and held-out predictions.
    fn same_fits(x: &Matrix, y: &Matrix, folds: &[Vec<usize>]) {
        let largest = folds.iter().map(Vec::len).max().unwrap();
        let alphas = RidgeOptions::default().alphas(x);
        let px = Prepared::new(x);
        let pooled = Pooled::new(&px, y.as_faer(), largest);
        let direct = Pooled {
            pool: None,
            ..Pooled::new(&px, y.as_faer(), largest)
        };
        for test in folds {
            let (a, b) = (
                pooled.fit(test, "a").unwrap(),
                direct.fit(test, "b").unwrap(),
            );
            let k = a.s.len();
            assert_eq!(k, b.s.len());
            a.s.iter().zip(&b.s).for_each(|(p, q)| close(*p, *q, "s"));
            let (ea, eb) = (a.loo_errors(k, &alphas), b.loo_errors(k, &alphas));
            for (ra, rb) in ea.iter().zip(&eb) {
                ra.iter().zip(rb).for_each(|(p, q)| close(*p, *q, "error"));
            }
            let chosen = vec![alphas[2]; y.units()];
            for k in [1, k / 2, k] {
                let (pa, pb) = (a.predict(k, &chosen), b.predict(k, &chosen));
                for j in 0..y.units() {
                    for i in 0..test.len() {
                        close(pa[(i, j)], pb[(i, j)], "prediction");
                    }
                }
            }
        }
    }

    /// Wider than a training set (flattened maps): the folds share the stimuli's kernel, and
    /// the fits equal those from each training set's own rows.
    #[test]
    fn the_pooled_kernel_gives_the_fits_of_each_training_set() {
        let (x, y) = synthetic_pair(30, 40, 6).unwrap();
        let x = mapped(&x, |_, _, v| v + 2.0);
        let y = Matrix::from_faer(y.as_faer().subcols(0, 7).to_owned()).unwrap();
        let folds = contiguous_folds(30, 4);
        let px = Prepared::new(&x);
        let pooled = Pooled::new(&px, y.as_faer(), 8);
        assert!(matches!(pooled.pool, Some(Pool::Stimuli(_))));
        same_fits(&x, &y, &folds);
        let fit = pooled.fit(&folds[3], "a").unwrap();
        assert!(matches!(fit.held_out, HeldOut::Coordinates(_)));
        // The last block far from the rest: its training set lies far from the overall mean,
        // whose kernel would carry too much rounding, so it multiplies its own rows.
        let far = mapped(&x, |i, _, v| if i >= 23 { v + 1e3 } else { v });
        let far = Prepared::new(&far);
        let pooled = Pooled::new(&far, y.as_faer(), 8);
        let fit = pooled.fit(&folds[3], "a").unwrap();
        assert!(matches!(fit.held_out, HeldOut::Inputs { .. }));
        let fit = pooled.fit(&folds[0], "a").unwrap();
        assert!(matches!(fit.held_out, HeldOut::Coordinates(_)));
        // Between the two: wider than the smallest training set only.
        let (x, y) = synthetic_pair(50, 38, 7).unwrap();
        let folds = contiguous_folds(50, 4);
        assert!(matches!(
            Pooled::new(&Prepared::new(&x), y.as_faer(), 13).pool,
            Some(Pool::Stimuli(_))
        ));
        same_fits(&x, &y, &folds);
    }
}
