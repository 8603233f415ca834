//! Exact t-SNE (van der Maaten & Hinton 2008) for 2-D embeddings of a few thousand stimuli.
//!
//! Affinities come from Gaussian kernels whose widths are set by bisection so that each
//! stimulus's conditional distribution has the requested perplexity (default 30), symmetrized;
//! the embedding minimizes KL(P || Q) with a Student-t Q by gradient descent with momentum and
//! per-coordinate gains, with scikit-learn's defaults: early exaggeration 12 for the first 250
//! of 1000 iterations, momentum 0.5 then 0.8, learning rate `max(n / 12 / 4, 50)`. The start is
//! the PCA embedding scaled to a standard deviation of 1e-4 (deterministic), or seeded Gaussian
//! noise. Exact means `O(n^2)` time per iteration and `O(n^2)` memory: about 2,000 stimuli
//! take seconds; for tens of thousands use a subset. The same input and options always give
//! the same embedding (the parallel sums are reduced in a fixed order).

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::linalg::{centred, check_stimuli, gram_t};
use crate::Matrix;

/// How the embedding starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsneInit {
    /// The first two principal components, scaled (scikit-learn's default).
    Pca,
    /// Independent Gaussian coordinates with standard deviation 1e-4 from a seeded generator.
    Random { seed: u64 },
}

/// t-SNE settings; the defaults are scikit-learn's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TsneOptions {
    pub perplexity: f64,
    pub iterations: usize,
    pub early_exaggeration: f64,
    pub exaggeration_iterations: usize,
    /// `None`: `max(n / early_exaggeration / 4, 50)`.
    pub learning_rate: Option<f64>,
    pub init: TsneInit,
}

impl Default for TsneOptions {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 1000,
            early_exaggeration: 12.0,
            exaggeration_iterations: 250,
            learning_rate: None,
            init: TsneInit::Pca,
        }
    }
}

/// The smallest perplexity there is: a perplexity is `e^entropy` of a stimulus's
/// distribution over its neighbours, and an entropy is never negative, so the bisection
/// of [`row_with_entropy`] could never reach a target below 1.
pub const MIN_PERPLEXITY: f64 = 1.0;

/// The 2-D t-SNE embedding of the stimuli, `[n][2]`. The perplexity must be at least
/// [`MIN_PERPLEXITY`] and below `(n - 1) / 3` (each stimulus needs about
/// `3 * perplexity` neighbours).
pub fn tsne(x: &Matrix, options: &TsneOptions) -> Result<Vec<[f64; 2]>> {
    const WHAT: &str = "t-SNE";
    check_stimuli(x, WHAT, 4, "an embedding needs a few stimuli")?;
    let n = x.stimuli();
    if !(options.perplexity >= MIN_PERPLEXITY && 3.0 * options.perplexity < (n - 1) as f64) {
        return Err(invalid(
            WHAT,
            format!(
                "perplexity {} must be at least {MIN_PERPLEXITY} and below (n - 1) / 3 = {:.1}",
                options.perplexity,
                (n - 1) as f64 / 3.0
            ),
        ));
    }
    let p = affinities(x, options.perplexity);
    let mut y = initial(x, options.init)?;
    let rate = options
        .learning_rate
        .unwrap_or_else(|| (n as f64 / options.early_exaggeration / 4.0).max(50.0));
    let mut update = vec![0.0; 2 * n];
    let mut gains = vec![1.0f64; 2 * n];
    for iteration in 0..options.iterations {
        let early = iteration < options.exaggeration_iterations;
        let exaggeration = if early {
            options.early_exaggeration
        } else {
            1.0
        };
        let momentum = if early { 0.5 } else { 0.8 };
        let grad = gradient(&p, &y, exaggeration);
        for k in 0..2 * n {
            gains[k] = if grad[k] * update[k] > 0.0 {
                gains[k] * 0.8
            } else {
                gains[k] + 0.2
            };
            gains[k] = gains[k].max(0.01);
            update[k] = momentum * update[k] - rate * gains[k] * grad[k];
            y[k] += update[k];
        }
    }
    Ok((0..n).map(|i| [y[2 * i], y[2 * i + 1]]).collect())
}

/// Symmetrized affinities `p_ij = (p_j|i + p_i|j) / 2n`, row-major `n x n`.
fn affinities(x: &Matrix, perplexity: f64) -> Vec<f64> {
    let n = x.stimuli();
    let xc = centred(x.as_faer());
    let dots = gram_t(xc.transpose());
    let target = perplexity.ln();
    let conditional: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let d: Vec<f64> = (0..n)
                .map(|j| (dots[(i, i)] + dots[(j, j)] - 2.0 * dots[(i, j)]).max(0.0))
                .collect();
            row_with_entropy(&d, i, target)
        })
        .collect();
    let mut p = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            p[i * n + j] = ((conditional[i][j] + conditional[j][i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    p
}

/// `p_j|i` proportional to `exp(-beta d_ij)` with `beta` bisected until the entropy (nats)
/// is `target` within 1e-5, or 100 steps.
fn row_with_entropy(d: &[f64], i: usize, target: f64) -> Vec<f64> {
    let (mut lo, mut hi, mut beta) = (0.0f64, f64::INFINITY, 1.0f64);
    // Distances are shifted by the nearest neighbour's so that exp() cannot underflow to 0.
    let nearest = d
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, &v)| v)
        .fold(f64::INFINITY, f64::min);
    let mut row = vec![0.0; d.len()];
    for _ in 0..100 {
        let mut sum = 0.0;
        let mut weighted = 0.0;
        for (j, &dj) in d.iter().enumerate() {
            row[j] = if j == i {
                0.0
            } else {
                (-(dj - nearest) * beta).exp()
            };
            sum += row[j];
            weighted += row[j] * (dj - nearest);
        }
        let entropy = sum.ln() + beta * weighted / sum;
        row.iter_mut().for_each(|v| *v /= sum);
        if (entropy - target).abs() < 1e-5 {
            break;
        }
        if entropy > target {
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = (beta + lo) / 2.0;
        }
    }
    row
}

fn initial(x: &Matrix, init: TsneInit) -> Result<Vec<f64>> {
    let n = x.stimuli();
    let mut y: Vec<f64> = match init {
        TsneInit::Pca => crate::spectrum::pca_embedding(x)?
            .into_iter()
            .flatten()
            .collect(),
        TsneInit::Random { seed } => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let normal = Normal::new(0.0, 1.0).expect("unit normal");
            (0..2 * n).map(|_| normal.sample(&mut rng)).collect()
        }
    };
    let mean = y.iter().step_by(2).sum::<f64>() / n as f64;
    let sd = (y.iter().step_by(2).map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let scale = if sd > 0.0 { 1e-4 / sd } else { 1.0 };
    y.iter_mut().for_each(|v| *v *= scale);
    Ok(y)
}

/// The KL gradient `4 sum_j (e p_ij - q_ij) w_ij (y_i - y_j)`, with `w_ij = 1 / (1 + |y_i -
/// y_j|^2)` and `q_ij = w_ij / Z`, in one pass over the pairs: each row accumulates its
/// attraction `sum_j p_ij w_ij (y_i - y_j)`, its repulsion `sum_j w_ij^2 (y_i - y_j)` and its
/// share of `Z`; the repulsion is divided by `Z` once every row is done.
fn gradient(p: &[f64], y: &[f64], exaggeration: f64) -> Vec<f64> {
    let n = y.len() / 2;
    let rows: Vec<[f64; 5]> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (yi0, yi1) = (y[2 * i], y[2 * i + 1]);
            let mut acc = [0.0; 5]; // attraction x, y; repulsion x, y; sum of w
            for j in (0..n).filter(|&j| j != i) {
                let (dx, dy) = (yi0 - y[2 * j], yi1 - y[2 * j + 1]);
                let w = 1.0 / (1.0 + dx * dx + dy * dy);
                let pull = p[i * n + j] * w;
                let push = w * w;
                acc[0] += pull * dx;
                acc[1] += pull * dy;
                acc[2] += push * dx;
                acc[3] += push * dy;
                acc[4] += w;
            }
            acc
        })
        .collect();
    // Summed in row order: the same total on every run.
    let z: f64 = rows.iter().map(|r| r[4]).sum();
    rows.iter()
        .flat_map(|r| {
            [
                4.0 * (exaggeration * r[0] - r[2] / z),
                4.0 * (exaggeration * r[1] - r[3] / z),
            ]
        })
        .collect()
}
