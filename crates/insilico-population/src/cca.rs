//! Canonical correlation analysis and its two network variants, SVCCA (Raghu et al. 2017)
//! and PWCCA (Morcos, Raghu & Bengio 2018), following google/svcca (`cca_core.py`,
//! `pwcca.py`).
//!
//! Everything is computed in feature space: with `X = U_x S_x V_x^T` (centred), the canonical
//! correlations are the singular values of `U_x^T U_y = S_x^-1 V_x^T (X^T Y) V_y S_y^-1`, so
//! the only products over stimuli are `X^T X`, `Y^T Y` and `X^T Y`. Units with no variance
//! (dead ReLUs) and linearly dependent units are dropped first (directions with a squared
//! singular value below 1e-10 of the largest), so the canonical correlations are the
//! `min(rank X, rank Y)` nonzero ones; `cca_core.py` instead keeps them and uses a
//! pseudo-inverse, which gives the same nonzero correlations plus trailing zeros.
//! CCA needs more stimuli than `rank X + rank Y`: with fewer, the centred responses span at
//! most `n - 1` dimensions, so the two subspaces intersect and some correlations are 1 by
//! construction; that is an error, not a value.

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::linalg::{centred, check_pair, cross, lower_gram, product, sym_eigenvalues, RightBasis};
use crate::Matrix;

/// Canonical correlations, decreasing, and their summaries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CcaResult {
    /// The `min(rank X, rank Y)` canonical correlations, decreasing, in `[0, 1]`.
    pub correlations: Vec<f64>,
    /// Their mean (`rho-bar` in Kornblith et al. 2019).
    pub mean: f64,
    /// The mean of their squares (Yanai's `R^2_CCA`).
    pub mean_squared: f64,
    /// Directions kept in each input (its numerical rank, or the SVCCA truncation).
    pub kept_x: usize,
    pub kept_y: usize,
}

/// Which input's canonical directions weight PWCCA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightedSide {
    X,
    Y,
}

/// Projection-weighted CCA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PwccaResult {
    /// `sum_i w_i rho_i` with the weights summing to 1.
    pub value: f64,
    /// The weights `w_i`, one per canonical correlation.
    pub weights: Vec<f64>,
    pub correlations: Vec<f64>,
    /// The input whose neurons define the weights (the one with fewer units; X on a tie).
    pub weighted_side: WeightedSide,
}

/// The pieces every CCA variant shares: each side's kept right singular vectors and singular
/// values, the centred inputs and the cross-product `X^T Y`.
struct Prepared {
    bx: RightBasis,
    by: RightBasis,
    cross_xy: Mat<f64>,
}

/// Why CCA needs three stimuli at least (and, checked later, more than the summed ranks).
pub(crate) const SUMMED_RANKS: &str = "CCA needs more stimuli than the summed ranks";

fn prepare(x: &Matrix, y: &Matrix, what: &'static str) -> Result<Prepared> {
    check_pair(x, y, what, 3, SUMMED_RANKS)?;
    let xc = centred(x.as_faer());
    let yc = centred(y.as_faer());
    let bx = RightBasis::of_centred(xc.as_ref(), what)?;
    let by = RightBasis::of_centred(yc.as_ref(), what)?;
    let cross_xy = cross(xc.as_ref(), yc.as_ref());
    Ok(Prepared { bx, by, cross_xy })
}

/// `S_x^-1 V_x^T (X^T Y) V_y S_y^-1` restricted to the first `kx`, `ky` directions: the
/// cross-covariance of the whitened inputs, whose singular values are the canonical
/// correlations.
fn whitened_cross(
    bx: &RightBasis,
    by: &RightBasis,
    cross_xy: MatRef<'_, f64>,
    kx: usize,
    ky: usize,
) -> Mat<f64> {
    let vx = bx.v.as_ref().subcols(0, kx);
    let vy = by.v.as_ref().subcols(0, ky);
    let inner = product(cross(vx, cross_xy).as_ref(), vy);
    Mat::from_fn(kx, ky, |i, j| inner[(i, j)] / (bx.s[i] * by.s[j]))
}

fn check_stimuli_for_ranks(what: &'static str, n: usize, kx: usize, ky: usize) -> Result<()> {
    if kx + ky >= n {
        return Err(Error::TooFewStimuli {
            what,
            stimuli: n,
            needed: kx + ky + 1,
            why:
                "with n <= rank X + rank Y the subspaces intersect and correlations of 1 are forced",
        });
    }
    Ok(())
}

/// Singular values and vectors of a small matrix, correlations clamped to `[0, 1]`
/// (rounding can push a perfect correlation a hair above 1).
fn small_svd(m: MatRef<'_, f64>, what: &'static str) -> Result<(Vec<f64>, Mat<f64>, Mat<f64>)> {
    let svd = m.thin_svd().map_err(|_| Error::NoConvergence {
        what,
        decomposition: "SVD",
    })?;
    let k = m.nrows().min(m.ncols());
    let s = (0..k).map(|i| svd.S()[i].clamp(0.0, 1.0)).collect();
    Ok((s, svd.U().to_owned(), svd.V().to_owned()))
}

/// The canonical correlations alone, decreasing and clamped to `[0, 1]` as in
/// [`small_svd`]: the square roots of the eigenvalues of the smaller of `W^T W` and `W W^T`.
/// CCA and SVCCA need no canonical directions, and the eigenvalues alone of a symmetric
/// matrix cost a fraction of an SVD: a heatmap cell (2,000 x 512, linear CKA and SVCCA)
/// took 0.38 s with the full SVD, 0.32 s with its values alone, and 0.20-0.26 s this way.
///
/// The squares carry an absolute error of about `k 2^-53` (the largest is at most 1), so a
/// correlation is exact to about `k 2^-53 / r`: to 1e-13 at `r = 1e-3`, and a correlation of
/// 0 comes out below `sqrt(k 2^-53)` (7e-7 at `k = 4096`), where an SVD gives about
/// `2^-53`. Summaries over hundreds of correlations do not see the difference.
fn correlations_of(m: MatRef<'_, f64>, what: &'static str) -> Result<Vec<f64>> {
    let m = if m.nrows() < m.ncols() {
        m.transpose()
    } else {
        m
    };
    let squares = sym_eigenvalues(lower_gram(m).as_ref(), what)?;
    Ok(squares
        .into_iter()
        .map(|v| v.max(0.0).sqrt().min(1.0))
        .collect())
}

fn summarize(correlations: Vec<f64>, kept_x: usize, kept_y: usize) -> CcaResult {
    let k = correlations.len().max(1) as f64;
    CcaResult {
        mean: correlations.iter().sum::<f64>() / k,
        mean_squared: correlations.iter().map(|r| r * r).sum::<f64>() / k,
        correlations,
        kept_x,
        kept_y,
    }
}

/// Plain CCA between the two inputs (every direction of nonzero variance).
/// Symmetric, 1 for identical inputs, invariant to invertible linear maps of either input.
pub fn cca(x: &Matrix, y: &Matrix) -> Result<CcaResult> {
    let p = prepare(x, y, CCA)?;
    cca_of(&p.bx, &p.by, p.cross_xy.as_ref(), x.stimuli())
}

const CCA: &str = "CCA";
const SVCCA: &str = "SVCCA";

/// [`cca`] from each input's basis and their cross-product `X^T Y` over `n` stimuli.
pub(crate) fn cca_of(
    bx: &RightBasis,
    by: &RightBasis,
    cross_xy: MatRef<'_, f64>,
    n: usize,
) -> Result<CcaResult> {
    let (kx, ky) = (bx.s.len(), by.s.len());
    check_stimuli_for_ranks(CCA, n, kx, ky)?;
    let s = correlations_of(whitened_cross(bx, by, cross_xy, kx, ky).as_ref(), CCA)?;
    Ok(summarize(s, kx, ky))
}

/// The number of leading singular values whose sum reaches `fraction` of the total.
fn kept_for(s: &[f64], fraction: f64) -> usize {
    let total: f64 = s.iter().sum();
    let mut running = 0.0;
    for (k, v) in s.iter().enumerate() {
        running += v;
        if running >= fraction * total {
            return k + 1;
        }
    }
    s.len()
}

/// SVCCA (Raghu et al. 2017): each input is first reduced to its top singular directions,
/// keeping the fewest whose singular values `s` (not `s^2`) sum to `variance_kept` of the
/// total, as google/svcca measures "variance explained" (`np.sum(s[:k]) / np.sum(s)`); the
/// paper's choice is 0.99. The value ([`CcaResult::mean`]) is the mean canonical correlation
/// of the reduced inputs. Symmetric, 1 for identical inputs.
pub fn svcca(x: &Matrix, y: &Matrix, variance_kept: f64) -> Result<CcaResult> {
    check_variance_kept(variance_kept)?;
    let p = prepare(x, y, SVCCA)?;
    svcca_of(
        &p.bx,
        &p.by,
        p.cross_xy.as_ref(),
        x.stimuli(),
        variance_kept,
    )
}

pub(crate) fn check_variance_kept(variance_kept: f64) -> Result<()> {
    if !(variance_kept > 0.0 && variance_kept <= 1.0) {
        return Err(invalid(
            SVCCA,
            format!("variance_kept {variance_kept} must be in (0, 1]"),
        ));
    }
    Ok(())
}

/// [`svcca`] from each input's basis and their cross-product `X^T Y` over `n` stimuli.
pub(crate) fn svcca_of(
    bx: &RightBasis,
    by: &RightBasis,
    cross_xy: MatRef<'_, f64>,
    n: usize,
    variance_kept: f64,
) -> Result<CcaResult> {
    let kx = kept_for(&bx.s, variance_kept);
    let ky = kept_for(&by.s, variance_kept);
    check_stimuli_for_ranks(SVCCA, n, kx, ky)?;
    let s = correlations_of(whitened_cross(bx, by, cross_xy, kx, ky).as_ref(), SVCCA)?;
    Ok(summarize(s, kx, ky))
}

/// PWCCA (Morcos et al. 2018): the canonical correlations weighted by how much of the
/// weighted input's neurons each canonical direction accounts for,
/// `w_i ~ sum_j |<q_i, x_j>|`, where the `q_i` are the canonical directions orthonormalized
/// in order (QR) and `x_j` the centred neurons, as in google/svcca's `pwcca.py`.
///
/// Asymmetric by design: the weights come from the input with fewer units (X on a tie), as in
/// `pwcca.py`, so swapping the arguments changes the value only when both have the same
/// number of units. Two deliberate departures from `pwcca.py`: (1) its `else` branch (Y has
/// fewer units) projects `acts1` instead of `acts2`; here Y's own neurons are used; (2) it adds
/// each neuron's mean back to the mixed canonical directions before the QR, which makes the
/// weights depend on the arbitrary sign of each singular vector; here the directions stay
/// centred. On centred inputs with X the smaller, the two agree exactly.
pub fn pwcca(x: &Matrix, y: &Matrix) -> Result<PwccaResult> {
    const WHAT: &str = "PWCCA";
    let p = prepare(x, y, WHAT)?;
    let (kx, ky) = (p.bx.s.len(), p.by.s.len());
    check_stimuli_for_ranks(WHAT, x.stimuli(), kx, ky)?;
    let (s, a, b) = small_svd(
        whitened_cross(&p.bx, &p.by, p.cross_xy.as_ref(), kx, ky).as_ref(),
        WHAT,
    )?;
    let weighted_side = if x.units() <= y.units() {
        WeightedSide::X
    } else {
        WeightedSide::Y
    };
    let (basis, coefficients) = match weighted_side {
        WeightedSide::X => (&p.bx, a),
        WeightedSide::Y => (&p.by, b),
    };
    let weights = projection_weights(basis, coefficients.as_ref());
    let value = weights.iter().zip(&s).map(|(w, r)| w * r).sum();
    Ok(PwccaResult {
        value,
        weights,
        correlations: s,
        weighted_side,
    })
}

/// `w_i = sum_j |<q_i, x_j>| / total`, with `q` the thin-QR basis of the canonical directions
/// `X V A` (the neuron-space directions `V A` of `pwcca.py`'s `coef_x`, applied to the data).
///
/// Computed without touching the stimuli again: with `X = U S V^T`, the directions are
/// `U (S A)`; if `S A = Q' R` then `U Q'` is their QR basis (U has orthonormal columns), and
/// `(U Q')^T X = Q'^T S V^T`, a `k x units` product of small matrices.
fn projection_weights(basis: &RightBasis, coefficients: MatRef<'_, f64>) -> Vec<f64> {
    let k = coefficients.ncols();
    let s = &basis.s;
    let scaled = Mat::from_fn(coefficients.nrows(), k, |i, j| s[i] * coefficients[(i, j)]);
    let q = scaled.qr().compute_thin_Q();
    let s_vt = Mat::from_fn(s.len(), basis.v.nrows(), |i, j| s[i] * basis.v[(j, i)]);
    let projections = cross(q.as_ref(), s_vt.as_ref());
    let raw: Vec<f64> = (0..k)
        .map(|i| {
            (0..projections.ncols())
                .map(|j| projections[(i, j)].abs())
                .sum()
        })
        .collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|w| w / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// An orthonormal `rows x cols` basis (`cols <= rows`) from the QR of a random matrix.
    fn orthonormal(rows: usize, cols: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Mat<f64> {
        let a = Mat::from_fn(rows, cols, |_, _| rng.random_range(-1.0..1.0));
        a.qr().compute_thin_Q()
    }

    /// `W = P diag(r) Q^T` with orthonormal `P`, `Q` has singular values `r` by construction:
    /// the eigenvalue route recovers them in either orientation, to `k 2^-53 / r` where they
    /// are away from 0 and to `sqrt(k 2^-53)` at 0, and clamps rounding above 1.
    #[test]
    fn the_correlations_are_the_singular_values_of_the_whitened_cross() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let r = [1.0, 0.9, 0.5, 0.3, 1e-3, 0.0];
        for (rows, cols) in [(6, 9), (9, 6), (6, 6)] {
            let (p, q) = (
                orthonormal(rows, 6, &mut rng),
                orthonormal(cols, 6, &mut rng),
            );
            let w = Mat::from_fn(rows, cols, |i, j| {
                (0..6).map(|k| p[(i, k)] * r[k] * q[(j, k)]).sum::<f64>()
            });
            let got = correlations_of(w.as_ref(), "test").unwrap();
            assert_eq!(got.len(), 6);
            for (g, want) in got.iter().zip(r) {
                let tolerance = if want > 0.0 { 1e-12 } else { 1e-7 };
                assert!((g - want).abs() < tolerance, "{rows}x{cols}: {got:?}");
                assert!((0.0..=1.0).contains(g));
            }
        }
    }
}
