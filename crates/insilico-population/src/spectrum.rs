//! Dimensionality: the PCA spectrum of a representation, its participation ratio, and the
//! 2-D PCA embedding.

use serde::{Deserialize, Serialize};

use crate::error::{degenerate, Result};
use crate::linalg::{centred, check_stimuli, ThinSvd};
use crate::Matrix;

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

/// The PCA spectrum. Needs 2 stimuli; a representation whose units are all constant is an
/// error (its spectrum is empty).
pub fn spectrum(x: &Matrix) -> Result<Spectrum> {
    const WHAT: &str = "PCA spectrum";
    check_stimuli(x, WHAT, 2, "a variance needs two stimuli")?;
    let svd = crate::linalg::RightBasis::of_centred(centred(x.as_faer()).as_ref(), WHAT)?;
    let dof = (x.stimuli() - 1) as f64;
    let eigenvalues: Vec<f64> = svd.s.iter().map(|s| s * s / dof).collect();
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
    Ok(Spectrum {
        components_90: components_for(&cumulative, 0.90),
        components_95: components_for(&cumulative, 0.95),
        components_99: components_for(&cumulative, 0.99),
        eigenvalues,
        explained,
        cumulative,
        participation_ratio,
    })
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

/// The scores of every stimulus on the first two principal components, `[n][2]`. Each
/// component's sign is fixed so that its largest-magnitude loading is positive (the
/// decomposition itself leaves the sign arbitrary). A representation of rank 1 gets a zero
/// second coordinate.
pub fn pca_embedding(x: &Matrix) -> Result<Vec<[f64; 2]>> {
    const WHAT: &str = "PCA embedding";
    check_stimuli(x, WHAT, 2, "a variance needs two stimuli")?;
    let xc = centred(x.as_faer());
    let svd = ThinSvd::of_centred(xc.as_ref(), WHAT)?;
    let sign = |k: usize| -> f64 {
        let v = svd.v.col(k);
        let big = v
            .iter()
            .copied()
            .fold(0.0f64, |b, c| if c.abs() > b.abs() { c } else { b });
        if big < 0.0 {
            -1.0
        } else {
            1.0
        }
    };
    let kept = svd.s.len().min(2);
    let signs: Vec<f64> = (0..kept).map(sign).collect();
    let score = |i: usize, k: usize| -> f64 {
        if k < kept {
            signs[k] * svd.u[(i, k)] * svd.s[k]
        } else {
            0.0
        }
    };
    Ok((0..x.stimuli())
        .map(|i| [score(i, 0), score(i, 1)])
        .collect())
}
