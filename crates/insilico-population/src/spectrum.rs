//! Dimensionality: the PCA spectrum of a representation, its participation ratio, and the
//! 2-D PCA embedding.

use faer::{ColRef, Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::error::{degenerate, Result};
use crate::linalg::{check_stimuli, cross, kept_eigen, product};
use crate::{Matrix, Prepared};

/// The PCA spectrum of a `[stimuli, units]` matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spectrum {
    /// Variances along the principal components (eigenvalues of the covariance, divisor
    /// `n - 1`), decreasing; `min(n - 1, units)` of them at most, numerically zero ones dropped.
    pub eigenvalues: Vec<f64>,
    /// Each eigenvalue over their sum.
    pub explained: Vec<f64>,
    /// Running sum of `explained`.
    pub cumulative: Vec<f64>,
    /// `(sum l)^2 / sum l^2`: k for k equal variances, 1 for a single direction.
    pub participation_ratio: f64,
    /// The fewest components whose cumulative explained variance reaches 90 %, 95 %, 99 %.
    pub components_90: usize,
    pub components_95: usize,
    pub components_99: usize,
}

/// The fewest leading entries of `cumulative` reaching `fraction` (with a relative slack of
/// 1e-12 so that exactly-reached thresholds are not missed by rounding).
fn components_for(cumulative: &[f64], fraction: f64) -> usize {
    cumulative
        .iter()
        .position(|&c| c >= fraction - 1e-12)
        .map_or(cumulative.len(), |k| k + 1)
}

/// A representation's principal components from one decomposition: its spectrum, and every
/// stimulus's scores on the first two components (the 2-D PCA embedding, on the same axes
/// whose variances the spectrum lists).
#[derive(Clone, Debug, PartialEq)]
pub struct Pca {
    pub spectrum: Spectrum,
    /// `[stimuli][2]`. Each component's sign is fixed so that its largest-magnitude loading
    /// is positive (the decomposition itself leaves the sign arbitrary); a representation of
    /// rank 1 gets a zero second coordinate.
    pub scores: Vec<[f64; 2]>,
}

/// The principal components. Needs 2 stimuli; a representation whose units are all constant
/// is an error (its spectrum is empty).
pub fn pca(x: &Matrix) -> Result<Pca> {
    pca_of(&Prepared::new(x))
}

/// [`pca`] of a prepared input, whose centred values and Gram matrix other measures of it
/// share (class decodability: [`crate::decodability_of`]).
pub fn pca_of(p: &Prepared<'_>) -> Result<Pca> {
    const WHAT: &str = "PCA";
    let x = p.matrix();
    check_stimuli(x, WHAT, 2, "a variance needs two stimuli")?;
    let xc = p.centred();
    let (s, scores) = if xc.ncols() > xc.nrows() {
        wide_scores(xc, p.stimulus_gram().as_ref())?
    } else {
        let basis = p.basis(WHAT)?;
        let v = basis.v.as_ref().subcols(0, basis.s.len().min(2));
        let scores = product(xc, signed(v.to_owned()).as_ref());
        (basis.s.clone(), scores)
    };
    let score = |i: usize, k: usize| {
        if k < scores.ncols() {
            scores[(i, k)]
        } else {
            0.0
        }
    };
    Ok(Pca {
        spectrum: spectrum_of(&s, x.stimuli()),
        scores: (0..xc.nrows())
            .map(|i| [score(i, 0), score(i, 1)])
            .collect(),
    })
}

/// More units than stimuli: the eigenvectors `u_k` of the `n x n` kernel `X X^T` give the
/// scores `X v_k = s_k u_k` directly. Of the loadings `v_k = X^T u_k / s_k` only the first
/// two are formed, for their signs (all of `V` is `units x n`).
/// `kernel`: the lower triangle of `X X^T`.
fn wide_scores(xc: MatRef<'_, f64>, kernel: MatRef<'_, f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let (s, u) = kept_eigen(kernel, "PCA")?;
    let kept = s.len().min(2);
    let loadings = cross(xc, u.as_ref().subcols(0, kept));
    let signs: Vec<f64> = (0..kept)
        .map(|k| sign_of_largest(loadings.col(k)))
        .collect();
    let scores = Mat::from_fn(xc.nrows(), kept, |i, k| signs[k] * s[k] * u[(i, k)]);
    Ok((s, scores))
}

/// The PCA spectrum (see [`pca`]).
pub fn spectrum(x: &Matrix) -> Result<Spectrum> {
    pca(x).map(|p| p.spectrum)
}

/// The scores of every stimulus on the first two principal components, `[n][2]` (see [`Pca::scores`]).
pub fn pca_embedding(x: &Matrix) -> Result<Vec<[f64; 2]>> {
    pca(x).map(|p| p.scores)
}

/// The spectrum of `n` stimuli whose centred responses have singular values `s`.
fn spectrum_of(s: &[f64], n: usize) -> Spectrum {
    let dof = (n - 1) as f64;
    let eigenvalues: Vec<f64> = s.iter().map(|s| s * s / dof).collect();
    let total: f64 = eigenvalues.iter().sum();
    let explained: Vec<f64> = eigenvalues.iter().map(|l| l / total).collect();
    let cumulative: Vec<f64> = explained
        .iter()
        .scan(0.0, |acc, e| {
            *acc += e;
            Some(*acc)
        })
        .collect();
    let participation_ratio = total * total / eigenvalues.iter().map(|l| l * l).sum::<f64>();
    Spectrum {
        components_90: components_for(&cumulative, 0.90),
        components_95: components_for(&cumulative, 0.95),
        components_99: components_for(&cumulative, 0.99),
        eigenvalues,
        explained,
        cumulative,
        participation_ratio,
    }
}

/// The columns of `v` (loadings), each signed so that its largest-magnitude entry is positive.
fn signed(mut v: Mat<f64>) -> Mat<f64> {
    for k in 0..v.ncols() {
        let sign = sign_of_largest(v.col(k));
        v.col_mut(k).iter_mut().for_each(|c| *c *= sign);
    }
    v
}

/// -1 where a vector's largest-magnitude entry (the first of equal ones) is negative, else 1.
fn sign_of_largest(v: ColRef<'_, f64>) -> f64 {
    let big = v
        .iter()
        .copied()
        .fold(0.0f64, |b, c| if c.abs() > b.abs() { c } else { b });
    if big < 0.0 {
        -1.0
    } else {
        1.0
    }
}

/// The participation ratio `(sum l)^2 / sum l^2` of a list of variances (an error if they
/// are all zero or any is negative).
pub fn participation_ratio(variances: &[f64]) -> Result<f64> {
    let total: f64 = variances.iter().sum();
    if variances.iter().any(|&v| v < 0.0) || total <= 0.0 {
        return Err(degenerate(
            "participation ratio",
            "variances must be non-negative and not all zero",
        ));
    }
    Ok(total * total / variances.iter().map(|l| l * l).sum::<f64>())
}
