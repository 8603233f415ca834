//! Centred kernel alignment (Kornblith et al. 2019): linear, RBF and debiased.
//!
//! Linear CKA is `||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)` on centred columns. The three
//! squared norms are computed in feature space (products over stimuli, `d x d`) when the
//! units are fewer than the stimuli, and through the `n x n` Gram matrices otherwise
//! (`||X^T Y||_F^2 = <X X^T, Y Y^T>`), whichever needs fewer multiplications.

use faer::{Mat, MatRef};

use crate::error::{degenerate, invalid, Result};
use crate::linalg::{centred, check_pair, cross, frobenius_sq, gram_t, lower_gram, lower_inner};
use crate::Matrix;

/// `||X^T Y||^2`, `||X^T X||^2`, `||Y^T Y||^2` of the centred inputs, and (for the debiased
/// estimator only) their centred row norms.
pub(crate) struct Moments {
    pub xy: f64,
    pub xx: f64,
    pub yy: f64,
    pub rows_x: Vec<f64>,
    pub rows_y: Vec<f64>,
}

pub(crate) fn row_norms_sq(a: MatRef<'_, f64>) -> Vec<f64> {
    let mut out = vec![0.0; a.nrows()];
    for j in 0..a.ncols() {
        for (o, v) in out.iter_mut().zip(a.col(j).iter()) {
            *o += v * v;
        }
    }
    out
}

/// The three squared norms in one pass over each input: `X^T X` and `Y^T Y` as symmetric
/// products (one triangle each, half the multiplications of a general product), `Y^T X`
/// once; or, with more units than stimuli, the two `n x n` Gram matrices (one triangle
/// each) and their inner product. No norm needs the other triangle, so none is mirrored.
fn moments(x: &Matrix, y: &Matrix, with_rows: bool) -> Moments {
    let (n, dx, dy) = (x.stimuli(), x.units(), y.units());
    let (xc, yc) = (centred(x.as_faer()), centred(y.as_faer()));
    let (xy, xx, yy) = if dx + dy < n {
        let (k, l) = (lower_gram(xc.as_ref()), lower_gram(yc.as_ref()));
        (
            frobenius_sq(cross(yc.as_ref(), xc.as_ref()).as_ref()),
            lower_inner(k.as_ref(), k.as_ref()),
            lower_inner(l.as_ref(), l.as_ref()),
        )
    } else {
        let k = lower_gram(xc.transpose());
        let l = lower_gram(yc.transpose());
        stimulus_space(k.as_ref(), l.as_ref())
    };
    let rows = |c: &Mat<f64>| {
        if with_rows {
            row_norms_sq(c.as_ref())
        } else {
            Vec::new()
        }
    };
    Moments {
        xy,
        xx,
        yy,
        rows_x: rows(&xc),
        rows_y: rows(&yc),
    }
}

/// `||X^T Y||^2`, `||X^T X||^2`, `||Y^T Y||^2` from the lower triangles of the two `n x n`
/// Gram matrices `X X^T` and `Y Y^T` of the centred inputs.
pub(crate) fn stimulus_space(k: MatRef<'_, f64>, l: MatRef<'_, f64>) -> (f64, f64, f64) {
    (lower_inner(k, l), lower_inner(k, k), lower_inner(l, l))
}

/// Why CKA needs three stimuli.
pub(crate) const TWO_STIMULI: &str =
    "two centred stimuli span one dimension, where CKA is 1 for any inputs";

fn inner(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    let mut total = 0.0;
    for j in 0..a.ncols() {
        total += a
            .col(j)
            .iter()
            .zip(b.col(j).iter())
            .map(|(p, q)| p * q)
            .sum::<f64>();
    }
    total
}

pub(crate) fn ratio(what: &'static str, num: f64, den_x: f64, den_y: f64) -> Result<f64> {
    if den_x <= 0.0 || den_y <= 0.0 {
        return Err(degenerate(
            what,
            "a representation has no variance (every unit constant over the stimuli)",
        ));
    }
    Ok(num / (den_x.sqrt() * den_y.sqrt()))
}

/// Linear CKA. 1 for identical inputs, symmetric, invariant to orthogonal transforms and
/// isotropic scaling of either input. Needs 3 stimuli; an input whose units are all
/// constant is an error.
pub fn cka_linear(x: &Matrix, y: &Matrix) -> Result<f64> {
    check_pair(x, y, LINEAR, 3, TWO_STIMULI)?;
    let m = moments(x, y, false);
    ratio(LINEAR, m.xy, m.xx, m.yy)
}

pub(crate) const LINEAR: &str = "linear CKA";

/// Debiased linear CKA: the HSIC terms are replaced by the unbiased estimator of Song et al.
/// (2012), as in Kornblith et al.'s `feature_space_linear_cka(debiased=True)`. Near 0 for
/// independent inputs (where the biased estimate stays positive, of order `d/n`); can be
/// slightly negative. Needs 4 stimuli (the estimator divides by `n - 3`); an error where the
/// unbiased self-similarity of an input is not positive.
pub fn cka_debiased(x: &Matrix, y: &Matrix) -> Result<f64> {
    check_pair(x, y, DEBIASED, 4, DEBIASED_STIMULI)?;
    debiased_ratio(&moments(x, y, true), x.stimuli())
}

pub(crate) const DEBIASED: &str = "debiased CKA";
/// Why debiased CKA needs four stimuli.
pub(crate) const DEBIASED_STIMULI: &str = "the unbiased HSIC estimator divides by n - 3";

/// Debiased CKA from the moments of `n` centred stimuli (with their row norms).
pub(crate) fn debiased_ratio(m: &Moments, n: usize) -> Result<f64> {
    let n = n as f64;
    let (sx, sy): (f64, f64) = (m.rows_x.iter().sum(), m.rows_y.iter().sum());
    // Unbiased HSIC up to a factor that cancels in the ratio.
    let debias = |xty: f64, rx: &[f64], ry: &[f64], nx: f64, ny: f64| {
        let rows: f64 = rx.iter().zip(ry).map(|(a, b)| a * b).sum();
        xty - n / (n - 2.0) * rows + nx * ny / ((n - 1.0) * (n - 2.0))
    };
    let xy = debias(m.xy, &m.rows_x, &m.rows_y, sx, sy);
    let xx = debias(m.xx, &m.rows_x, &m.rows_x, sx, sx);
    let yy = debias(m.yy, &m.rows_y, &m.rows_y, sy, sy);
    ratio(DEBIASED, xy, xx, yy)
}

/// CKA with a Gaussian (RBF) kernel `exp(-|x_i - x_j|^2 / (2 sigma^2))`, where
/// `sigma = bandwidth * sqrt(median of the squared distances)`; the median is over all `n^2`
/// entries of the distance matrix, diagonal included, exactly as in Kornblith et al.'s
/// `gram_rbf(x, threshold)`. Their demo's default bandwidth is 1.0; the paper reports 0.2-0.8.
/// Costs `O(n^2 d)` time and `O(n^2)` memory.
pub fn cka_rbf(x: &Matrix, y: &Matrix, bandwidth: f64) -> Result<f64> {
    check_bandwidth(bandwidth)?;
    check_pair(x, y, RBF, 3, TWO_STIMULI)?;
    let k = centred_rbf(centred(x.as_faer()).as_ref(), bandwidth)?;
    let l = centred_rbf(centred(y.as_faer()).as_ref(), bandwidth)?;
    rbf_ratio(&k, &l)
}

pub(crate) const RBF: &str = "RBF CKA";

pub(crate) fn check_bandwidth(bandwidth: f64) -> Result<()> {
    if !(bandwidth.is_finite() && bandwidth > 0.0) {
        return Err(invalid(
            RBF,
            format!("bandwidth {bandwidth} must be positive"),
        ));
    }
    Ok(())
}

/// The centred RBF kernel matrix `H K H` of one input given by its centred columns.
pub(crate) fn centred_rbf(xc: MatRef<'_, f64>, bandwidth: f64) -> Result<Mat<f64>> {
    Ok(center_gram(rbf_gram(xc, bandwidth)?))
}

/// RBF CKA from the two centred kernel matrices.
pub(crate) fn rbf_ratio(k: &Mat<f64>, l: &Mat<f64>) -> Result<f64> {
    ratio(
        RBF,
        inner(k.as_ref(), l.as_ref()),
        frobenius_sq(k.as_ref()),
        frobenius_sq(l.as_ref()),
    )
}

fn rbf_gram(xc: MatRef<'_, f64>, bandwidth: f64) -> Result<Mat<f64>> {
    let dots = gram_t(xc.transpose());
    let n = dots.nrows();
    let sq = Mat::from_fn(n, n, |i, j| {
        (dots[(i, i)] + dots[(j, j)] - 2.0 * dots[(i, j)]).max(0.0)
    });
    let mut all: Vec<f64> = (0..n).flat_map(|j| sq.col_as_slice(j).to_vec()).collect();
    let median = median_in_place(&mut all);
    if median <= 0.0 {
        return Err(degenerate(
            RBF,
            "the median squared distance between stimuli is 0 (most responses identical), so the bandwidth is 0",
        ));
    }
    let scale = 2.0 * bandwidth * bandwidth * median;
    // `exp(-d) - 1` rather than `exp(-d)`: centring removes the constant, and at a large
    // bandwidth (kernel values near 1) `exp` would leave only the rounding of 1 to centre.
    // Then the kernel tends to the linear one, and RBF CKA to linear CKA, as it must.
    let k = Mat::from_fn(n, n, |i, j| (-sq[(i, j)] / scale).exp_m1());
    if (0..n).all(|j| k.col_as_slice(j).iter().all(|&v| v == 0.0)) {
        return Err(degenerate(
            RBF,
            format!("bandwidth {bandwidth} x the median distance makes every kernel value 1 to f64 precision; choose a smaller bandwidth"),
        ));
    }
    Ok(k)
}

/// numpy's median: the mean of the two middle values for an even count.
pub(crate) fn median_in_place(values: &mut [f64]) -> f64 {
    let n = values.len();
    let mid = n / 2;
    let (_, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return upper;
    }
    let lower = values[..mid]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    0.5 * (lower + upper)
}

/// `H K H` with `H = I - 11^T/n`.
fn center_gram(mut k: Mat<f64>) -> Mat<f64> {
    let n = k.nrows();
    let means: Vec<f64> = (0..n)
        .map(|j| k.col(j).iter().sum::<f64>() / n as f64)
        .collect();
    let grand = means.iter().sum::<f64>() / n as f64;
    for j in 0..n {
        for i in 0..n {
            k[(i, j)] += grand - means[i] - means[j];
        }
    }
    k
}
