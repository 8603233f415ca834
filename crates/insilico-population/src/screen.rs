//! Each target's ridge penalty chosen from leave-one-out errors computed in f32, with the
//! same choices as computing them in f64.
//!
//! Choosing a penalty costs one `n x k x targets` product per penalty: nearly all of ridge
//! predictivity's time. Only the argmin over penalties is kept, so the products run in f32
//! (twice the multiply-adds per second) under a rigorous bound on their rounding: where the
//! bounds of a target's best penalty and every other penalty do not overlap, the f32 choice
//! is the exact one; the other targets are recomputed in f64 ([`Fit::loo_errors_of`]).
//!
//! The residual of penalty `a` is split as `y - U W C = p + U D C`, with `p = y - U C` (the
//! part of the targets no direction reaches, computed once in f64), `C = U^T y` and
//! `D = diag(a / (s^2 + a))`. The f32 product then only carries `U D C`, which is small for
//! the small penalties where the errors are close (so are its rounding errors).
//!
//! The bound, in the weighted norm `||r||_g = sqrt(sum_i (g_i r_i)^2)` whose square is the
//! leave-one-out error (`g_i = 1 / (1 - h_ii)`): rounding `p`, `U` and `D C` to f32 and the
//! `k + 1` additions of each entry of the product (any order) change the residual by at most
//! `gamma_{k+4} (|p| + |U| |D C|)` entrywise (Higham, Accuracy and Stability, eq. 3.13,
//! with `gamma_m = m u / (1 - m u)`, `u = 2^-24`), and `sum_j |U_ij| |E_jt| <=
//! ||U_i|| ||E_t||` (Cauchy-Schwarz), so the f32 residual is within
//! `gamma (||p_t||_g + ||E_t|| rho)` of `p + U D C`, with `rho = ||(||U_i||)_i||_g`. The f64
//! `p` carries `gamma64_{k+2} (|y| + |U| |C|)`, and `|y| <= |p| + |U| |C|`. Values below
//! f32's normal range lose up to `2^-149` each, absolutely, in the `k + 3` conversions and
//! products behind an entry: `(k + 3) 2^-149 ||1||_g` more. The f64 sum of squares adds a
//! relative `n u64`. The bound used is twice the sum, a margin for the rounding of its own
//! arithmetic. An overflow shows as an infinite or NaN estimate, which decides nothing.

use faer::linalg::matmul::matmul;
use faer::{get_global_parallelism, Accum, Mat, MatRef};

use crate::ridge::{argmin, squares, weighted_norm_sq, Fit};

/// The spacing of f32's subnormal numbers, `2^-149`: the most a value below the normal range
/// loses in a rounding.
const SMALLEST_F32: f64 = 1.401_298_464_324_817e-45;

/// `m u / (1 - m u)`: the relative error bound of `m` rounded operations with unit `u`.
fn gamma(m: usize, unit: f64) -> f64 {
    let mu = m as f64 * unit;
    mu / (1.0 - mu)
}

/// The index into `alphas` of each target's penalty: the smallest leave-one-out error
/// (the first on ties), as [`Fit::loo_errors`] in f64 would choose it.
pub(crate) fn best_penalties(fit: &Fit, alphas: &[f64]) -> Vec<usize> {
    let bounded = bounded_errors(fit, alphas);
    let mut chosen: Vec<Option<usize>> = (0..fit.yc.ncols())
        .map(|t| certain_best(&bounded, t))
        .collect();
    let unsure: Vec<usize> = (0..chosen.len()).filter(|&t| chosen[t].is_none()).collect();
    if !unsure.is_empty() {
        let c = columns(fit.uty.as_ref(), &unsure);
        let y = columns(fit.yc.as_ref(), &unsure);
        let errors = fit.loo_errors_of(fit.s.len(), alphas, c.as_ref(), y.as_ref());
        for (i, &t) in unsure.iter().enumerate() {
            chosen[t] = Some(argmin(errors.iter().map(|e| e[i])));
        }
    }
    chosen.into_iter().flatten().collect()
}

/// Target `t`'s penalty of smallest error where its interval lies strictly below every
/// other's (strictly, so that a tie, where the first penalty wins, is recomputed); `None`
/// where the bounds overlap or an error is not finite.
fn certain_best(bounded: &[Vec<(f64, f64)>], t: usize) -> Option<usize> {
    let best = argmin(bounded.iter().map(|e| e[t].0));
    let highest = bounded[best][t].0 + bounded[best][t].1;
    bounded
        .iter()
        .enumerate()
        .all(|(a, e)| a == best || e[t].0 - e[t].1 > highest)
        .then_some(best)
}

/// For each penalty (outer) and target (inner), the square root of the leave-one-out error
/// computed in f32 and a bound on its distance from the exact one.
fn bounded_errors(fit: &Fit, alphas: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let (u, c, s) = (fit.u.as_ref(), fit.uty.as_ref(), &fit.s);
    let (n, k, targets) = (u.nrows(), s.len(), c.ncols());
    let scales = fit.loo_scales(k, alphas);
    let mut p = fit.yc.clone();
    matmul(p.as_mut(), Accum::Add, u, c, -1.0, get_global_parallelism());
    let mut row_norms = vec![0.0f64; n];
    for j in 0..k {
        let column = u.col(j);
        for (r, i) in row_norms.iter_mut().zip(0..n) {
            *r += column[i] * column[i];
        }
    }
    row_norms.iter_mut().for_each(|r| *r = r.sqrt());
    let (u32, p32) = (narrow(u), narrow(p.as_ref()));
    let c_norm = column_norms(c);
    let g32 = gamma(k + 4, f64::from(f32::EPSILON) / 2.0);
    let g64 = gamma(k + 2, f64::EPSILON / 2.0);
    let sum64 = gamma(n + 2, f64::EPSILON / 2.0);
    let ones = vec![1.0f64; n];
    let mut residual = Mat::<f32>::zeros(n, targets);
    alphas
        .iter()
        .enumerate()
        .map(|(a, &alpha)| {
            let g = scales.col_as_slice(a);
            let e = Mat::from_fn(k, targets, |j, t| alpha / (s[j] * s[j] + alpha) * c[(j, t)]);
            let e_norm = column_norms(e.as_ref());
            residual.copy_from(&p32);
            let e32 = narrow(e.as_ref());
            matmul(
                residual.as_mut(),
                Accum::Add,
                u32.as_ref(),
                e32.as_ref(),
                1.0f32,
                get_global_parallelism(),
            );
            let rho = weighted_norm_sq(&row_norms, g).sqrt();
            let underflow = (k + 3) as f64 * SMALLEST_F32 * weighted_norm_sq(&ones, g).sqrt();
            (0..targets)
                .map(|t| {
                    let estimate = weighted_norm_sq(residual.col_as_slice(t), g).sqrt();
                    let reached = weighted_norm_sq(p.col_as_slice(t), g).sqrt();
                    let bound = 2.0
                        * (g32 * (reached + e_norm[t] * rho)
                            + g64 * (reached + 2.0 * c_norm[t] * rho)
                            + underflow
                            + sum64 * estimate);
                    (estimate, bound)
                })
                .collect()
        })
        .collect()
}

fn narrow(a: MatRef<'_, f64>) -> Mat<f32> {
    let mut out = Mat::<f32>::zeros(a.nrows(), a.ncols());
    for j in 0..a.ncols() {
        let column = a.col(j);
        for (o, i) in out.col_as_slice_mut(j).iter_mut().zip(0..a.nrows()) {
            *o = column[i] as f32;
        }
    }
    out
}

fn column_norms(a: MatRef<'_, f64>) -> Vec<f64> {
    squares(a).into_iter().map(f64::sqrt).collect()
}

fn columns(a: MatRef<'_, f64>, which: &[usize]) -> Mat<f64> {
    Mat::from_fn(a.nrows(), which.len(), |i, j| a[(i, which[j])])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::synthetic_pair;
    use crate::ridge::{contiguous_folds, Pooled, RidgeOptions};
    use crate::{Matrix, Prepared};

    fn fits(x: &Matrix, y: MatRef<'_, f64>) -> Vec<Fit> {
        let folds = contiguous_folds(x.stimuli(), 3);
        let px = Prepared::new(x);
        let pooled = Pooled::new(&px, y, folds[0].len());
        folds
            .iter()
            .map(|t| pooled.fit(t, "test").unwrap())
            .collect()
    }

    fn f64_choices(fit: &Fit, alphas: &[f64]) -> Vec<usize> {
        let errors = fit.loo_errors(fit.s.len(), alphas);
        (0..fit.yc.ncols())
            .map(|t| argmin(errors.iter().map(|e| e[t])))
            .collect()
    }

    /// The f32 intervals, after checking that each holds its f64 error.
    fn checked_bounds(fit: &Fit, alphas: &[f64]) -> Vec<Vec<(f64, f64)>> {
        let bounded = bounded_errors(fit, alphas);
        let exact = fit.loo_errors(fit.s.len(), alphas);
        for (a, row) in bounded.iter().enumerate() {
            for (t, &(estimate, bound)) in row.iter().enumerate() {
                let truth = exact[a][t].sqrt();
                assert!(
                    (truth - estimate).abs() <= bound,
                    "{a} {t}: {truth} {estimate} {bound}"
                );
            }
        }
        bounded
    }

    #[test]
    fn every_f64_error_lies_in_its_bound_and_the_bounds_decide_related_data() {
        // The benchmark's construction (y = x W / sqrt(d) + 0.5 noise) at 400 x 24.
        let (x, y) = synthetic_pair(400, 24, 3).unwrap();
        let alphas = RidgeOptions::default().alphas(&x);
        for fit in fits(&x, y.as_faer()) {
            let bounded = checked_bounds(&fit, &alphas);
            // Useful: far tighter than the tenfold steps of the penalty grid.
            for &(estimate, bound) in bounded.iter().flatten() {
                assert!(bound > 0.0 && bound < 1e-3 * estimate, "{estimate} {bound}");
            }
            assert!((0..y.units()).all(|t| certain_best(&bounded, t).is_some()));
            assert_eq!(best_penalties(&fit, &alphas), f64_choices(&fit, &alphas));
        }
    }

    #[test]
    fn targets_below_f32s_normal_range_keep_their_bound() {
        // Targets of order 1e-40 are subnormal in f32, whose relative rounding bound fails
        // there; the absolute term keeps every f64 error inside its interval.
        let (x, y) = synthetic_pair(200, 8, 5).unwrap();
        let tiny: Vec<f64> = y.to_row_major().iter().map(|v| v * 1e-40).collect();
        let tiny = Matrix::from_row_major(200, 8, &tiny).unwrap();
        let alphas = RidgeOptions::default().alphas(&x);
        for fit in fits(&x, tiny.as_faer()) {
            checked_bounds(&fit, &alphas);
            assert_eq!(best_penalties(&fit, &alphas), f64_choices(&fit, &alphas));
        }
    }

    #[test]
    fn ties_and_constant_targets_are_recomputed_in_f64() {
        // Targets: two related units, a constant one (zero error at every penalty) and a copy of
        // an input unit; the grid repeats its first penalty, which ties every target's first
        // two errors exactly. f64 (like RidgeCV) keeps the first of tied penalties.
        let (x, y) = synthetic_pair(120, 6, 4).unwrap();
        let (xf, yf) = (x.as_faer(), y.as_faer());
        let targets = Matrix::from_row_major(
            120,
            4,
            &(0..120)
                .flat_map(|i| [yf[(i, 0)], yf[(i, 1)], 3.0, xf[(i, 2)]])
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let grid = RidgeOptions::default().alphas(&x);
        let alphas = [grid[0], grid[0], grid[3], grid[6]];
        for fit in fits(&x, targets.as_faer()) {
            let bounded = bounded_errors(&fit, &alphas);
            assert_eq!(certain_best(&bounded, 2), None, "the constant target");
            let chosen = best_penalties(&fit, &alphas);
            assert_eq!(chosen, f64_choices(&fit, &alphas));
            assert_eq!(chosen[2], 0);
            assert!(
                chosen.iter().all(|&a| a != 1),
                "a tie goes to the first: {chosen:?}"
            );
        }
    }
}
