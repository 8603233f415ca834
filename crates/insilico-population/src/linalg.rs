//! Shared linear algebra on top of faer: centring, symmetric products, sorted eigen
//! decompositions, and the thin SVD of a centred matrix through its smaller Gram matrix.

use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{get_global_parallelism, Accum, Mat, MatRef, Side};

use crate::error::{degenerate, Error, Result};
use crate::Matrix;

/// Eigenvalues below this fraction of the largest are treated as zero (rank truncation).
/// A Gram matrix's eigenvalues carry an absolute error of about `1e-16 * max`, so this keeps
/// every direction whose singular value is above `1e-5` of the largest.
pub(crate) const RANK_TOLERANCE: f64 = 1e-10;

/// The mean of `values`, exactly their common value where they are all equal. The sum of
/// `n` copies of `v` over `n` is not always `v` in floating point (0.1 ten times sums to
/// 0.9999999999999999), and a constant unit centred on such a mean would keep a variance of
/// about 1e-32: enough for a measure to take it for a direction, where it must be the dead
/// unit that it is (an error, or left out). `values` must not be empty.
pub(crate) fn mean_of(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n, mut first, mut constant) = (0.0, 0usize, None, true);
    for v in values {
        let f = *first.get_or_insert(v);
        constant &= v == f;
        sum += v;
        n += 1;
    }
    match first {
        Some(f) if constant => f,
        _ => sum / n as f64,
    }
}

/// The columns of `x` minus their means ([`mean_of`]: a constant column becomes exactly 0).
pub(crate) fn centred(x: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = x.to_owned();
    for j in 0..out.ncols() {
        let col = out.col_as_slice_mut(j);
        let mean = mean_of(col.iter().copied());
        col.iter_mut().for_each(|v| *v -= mean);
    }
    out
}

/// The column means of `x` (see [`mean_of`]).
pub(crate) fn column_means(x: MatRef<'_, f64>) -> Vec<f64> {
    (0..x.ncols())
        .map(|j| mean_of(x.col(j).iter().copied()))
        .collect()
}

/// `a^T a`, computing one triangle (half the multiplications of a general product) and
/// mirroring it.
pub(crate) fn gram_t(a: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = lower_gram(a);
    for j in 0..out.ncols() {
        for i in 0..j {
            out[(i, j)] = out[(j, i)];
        }
    }
    out
}

/// The lower triangle (diagonal included) of `a^T a`; the strict upper triangle is zero.
pub(crate) fn lower_gram(a: MatRef<'_, f64>) -> Mat<f64> {
    let d = a.ncols();
    let mut out = Mat::<f64>::zeros(d, d);
    triangular::matmul(
        out.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        a.transpose(),
        BlockStructure::Rectangular,
        a,
        BlockStructure::Rectangular,
        1.0,
        get_global_parallelism(),
    );
    out
}

/// `<A, B>_F` of two symmetric matrices given by their lower triangles (as from
/// [`lower_gram`]): the diagonal once, every off-diagonal product twice.
pub(crate) fn lower_inner(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    let mut total = 0.0;
    for j in 0..a.ncols() {
        let (ca, cb) = (a.col(j), b.col(j));
        let below: f64 = (j + 1..a.nrows()).map(|i| ca[i] * cb[i]).sum();
        total += ca[j] * cb[j] + 2.0 * below;
    }
    total
}

/// `a^T b`.
pub(crate) fn cross(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.ncols(), b.ncols());
    faer::linalg::matmul::matmul(
        out.as_mut(),
        Accum::Replace,
        a.transpose(),
        b,
        1.0,
        get_global_parallelism(),
    );
    out
}

/// `a b`.
pub(crate) fn product(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    faer::linalg::matmul::matmul(
        out.as_mut(),
        Accum::Replace,
        a,
        b,
        1.0,
        get_global_parallelism(),
    );
    out
}

/// Squared Frobenius norm.
pub(crate) fn frobenius_sq(a: MatRef<'_, f64>) -> f64 {
    let mut total = 0.0;
    for j in 0..a.ncols() {
        total += a.col(j).iter().map(|v| v * v).sum::<f64>();
    }
    total
}

/// A symmetric eigendecomposition with eigenvalues in decreasing order.
pub(crate) struct Eigen {
    pub values: Vec<f64>,
    pub vectors: Mat<f64>,
}

pub(crate) fn sym_eigen(a: MatRef<'_, f64>, what: &'static str) -> Result<Eigen> {
    let evd = a
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| no_eigen(what))?;
    let d = a.nrows();
    let values: Vec<f64> = (0..d).rev().map(|k| evd.S()[k]).collect();
    let vectors = Mat::from_fn(d, d, |i, k| evd.U()[(i, d - 1 - k)]);
    Ok(Eigen { values, vectors })
}

/// The eigenvalues alone of a symmetric matrix (its lower triangle read), decreasing: a
/// fraction of the cost of [`sym_eigen`], which also forms the vectors.
pub(crate) fn sym_eigenvalues(a: MatRef<'_, f64>, what: &'static str) -> Result<Vec<f64>> {
    let mut values = a
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|_| no_eigen(what))?;
    values.reverse();
    Ok(values)
}

fn no_eigen(what: &'static str) -> Error {
    Error::NoConvergence {
        what,
        decomposition: "symmetric eigendecomposition",
    }
}

/// The thin SVD `X = U diag(s) V^T` of a centred matrix, keeping the `r` directions whose
/// squared singular value is above [`RANK_TOLERANCE`] of the largest, singular values decreasing.
pub(crate) struct ThinSvd {
    pub u: Mat<f64>,
    pub s: Vec<f64>,
    pub v: Mat<f64>,
}

/// The right singular vectors and singular values of a centred matrix (no `U`), from the
/// eigendecomposition of the smaller of `X^T X` (d x d, when d <= n) and `X X^T` (n x n):
/// a 10,000 x 512 layer costs one 512 x 512 product and eigendecomposition, not a full SVD.
/// Keeps the directions whose squared singular value is above [`RANK_TOLERANCE`] of the largest.
pub(crate) struct RightBasis {
    pub s: Vec<f64>,
    pub v: Mat<f64>,
}

impl RightBasis {
    pub fn of_centred(xc: MatRef<'_, f64>, what: &'static str) -> Result<Self> {
        if xc.ncols() <= xc.nrows() {
            return Self::of_gram(lower_gram(xc).as_ref(), what);
        }
        let (s, u) = kept_eigen(lower_gram(xc.transpose()).as_ref(), what)?;
        let v = scale_columns(cross(xc, u.as_ref()), &s); // V = X^T U / s
        Ok(Self { s, v })
    }

    /// From the Gram matrix `X^T X` of the centred input, where it is already at hand (see
    /// [`crate::prepared`]). Only its lower triangle is read (the eigendecomposition is
    /// `Side::Lower`), so a `lower_gram` serves.
    pub fn of_gram(gram: MatRef<'_, f64>, what: &'static str) -> Result<Self> {
        let (s, v) = kept_eigen(gram, what)?;
        Ok(Self { s, v })
    }
}

/// The square roots of a Gram matrix's eigenvalues above [`RANK_TOLERANCE`] of the largest
/// (the singular values), decreasing, and their eigenvectors.
pub(crate) fn kept_eigen(
    gram: MatRef<'_, f64>,
    what: &'static str,
) -> Result<(Vec<f64>, Mat<f64>)> {
    let eig = sym_eigen(gram, what)?;
    let top = eig.values.first().copied().unwrap_or(0.0);
    if top <= 0.0 {
        return Err(degenerate(what, "every unit is constant over the stimuli"));
    }
    let r = eig
        .values
        .iter()
        .take_while(|&&l| l > top * RANK_TOLERANCE)
        .count();
    let s: Vec<f64> = eig.values[..r].iter().map(|l| l.sqrt()).collect();
    Ok((s, eig.vectors.as_ref().subcols(0, r).to_owned()))
}

/// Divides column `k` of `a` by `s[k]`.
pub(crate) fn scale_columns(mut a: Mat<f64>, s: &[f64]) -> Mat<f64> {
    for (k, &sk) in s.iter().enumerate() {
        a.col_mut(k).iter_mut().for_each(|v| *v /= sk);
    }
    a
}

impl ThinSvd {
    pub fn of_centred(xc: MatRef<'_, f64>, what: &'static str) -> Result<Self> {
        let RightBasis { s, v } = RightBasis::of_centred(xc, what)?;
        let u = scale_columns(product(xc, v.as_ref()), &s); // U = X V / s
        Ok(Self { u, s, v })
    }
}

/// Checks that two representations describe the same number of stimuli, and at least `needed`.
pub(crate) fn check_pair(
    x: &Matrix,
    y: &Matrix,
    what: &'static str,
    needed: usize,
    why: &'static str,
) -> Result<()> {
    if x.stimuli() != y.stimuli() {
        return Err(Error::StimulusMismatch {
            what,
            x: x.stimuli(),
            y: y.stimuli(),
        });
    }
    check_stimuli(y, what, needed, why)?;
    check_stimuli(x, what, needed, why)
}

pub(crate) fn check_stimuli(
    x: &Matrix,
    what: &'static str,
    needed: usize,
    why: &'static str,
) -> Result<()> {
    if x.stimuli() < needed {
        return Err(Error::TooFewStimuli {
            what,
            stimuli: x.stimuli(),
            needed,
            why,
        });
    }
    if x.units() == 0 {
        return Err(degenerate(what, "a representation has no units"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_gram_and_its_inner_product_match_the_full_ones() {
        // a = [[1, 2], [3, 4], [0, 1]]: a^T a = [[10, 14], [14, 21]] by hand; <G, G> =
        // 100 + 2 * 196 + 441 = 933.
        let a = Mat::from_fn(3, 2, |i, j| [[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]][i][j]);
        let lower = lower_gram(a.as_ref());
        assert_eq!(
            (lower[(0, 0)], lower[(1, 0)], lower[(1, 1)]),
            (10.0, 14.0, 21.0)
        );
        assert_eq!(lower[(0, 1)], 0.0, "the upper triangle is not computed");
        assert_eq!(lower_inner(lower.as_ref(), lower.as_ref()), 933.0);
        assert_eq!(frobenius_sq(gram_t(a.as_ref()).as_ref()), 933.0);
    }
}
