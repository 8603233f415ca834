//! Representational similarity analysis (Kriegeskorte et al. 2008): a representational
//! dissimilarity matrix (RDM) per input, compared by rank correlation of their upper
//! triangles. For class-averaged RSA, pass [`Matrix::class_means`] of each input.

use serde::{Deserialize, Serialize};

use crate::error::{degenerate, Result};
use crate::linalg::{centred, check_pair, check_stimuli, gram_t};
use crate::Matrix;

/// How dissimilarity between two stimuli's responses is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RdmMetric {
    /// `1 - Pearson correlation` of the two response patterns (across units).
    Correlation,
    /// Euclidean distance. rsatoolbox's "euclidean" is the squared distance divided by the
    /// number of units, a monotone transform, so RSA values (rank-based) are the same.
    Euclidean,
}

/// How two RDMs are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RdmComparison {
    /// Spearman correlation (Pearson correlation of ranks, ties given their average rank).
    Spearman,
    /// Kendall's tau-a: (concordant - discordant) / pairs, with tied pairs counting 0, as
    /// recommended for RDMs by Nili et al. (2014). Identical RDMs with tied entries give less
    /// than 1.
    KendallTauA,
}

/// The upper triangle (`i < j`, row by row) of a stimulus x stimulus dissimilarity matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rdm {
    pub stimuli: usize,
    pub metric: RdmMetric,
    /// `n (n - 1) / 2` dissimilarities: (0,1), (0,2), ..., (0,n-1), (1,2), ...
    pub upper: Vec<f64>,
}

/// The RDM of `x`. Correlation distance is undefined for a stimulus whose response is the
/// same in every unit (e.g. all units silent); that is an error naming the stimulus.
pub fn rdm(x: &Matrix, metric: RdmMetric) -> Result<Rdm> {
    const WHAT: &str = "RDM";
    check_stimuli(x, WHAT, 2, "a dissimilarity needs two stimuli")?;
    let n = x.stimuli();
    // Rows become columns so that the Gram of the transposed matrix is the stimulus x stimulus
    // product; for correlation each stimulus's pattern is first centred across units.
    let patterns = match metric {
        RdmMetric::Correlation => centred(x.as_faer().transpose()),
        RdmMetric::Euclidean => x.as_faer().transpose().to_owned(),
    };
    let dots = gram_t(patterns.as_ref());
    if metric == RdmMetric::Correlation {
        if let Some(i) = (0..n).find(|&i| dots[(i, i)] <= 0.0) {
            return Err(degenerate(
                WHAT,
                format!("stimulus {i} evokes the same response in every unit, so its correlation distance is undefined"),
            ));
        }
    }
    let mut upper = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let (a, b, ab) = (dots[(i, i)], dots[(j, j)], dots[(i, j)]);
            upper.push(match metric {
                RdmMetric::Correlation => 1.0 - ab / (a * b).sqrt(),
                RdmMetric::Euclidean => (a + b - 2.0 * ab).max(0.0).sqrt(),
            });
        }
    }
    Ok(Rdm {
        stimuli: n,
        metric,
        upper,
    })
}

/// Compares two RDMs of the same stimuli. A constant RDM has no ranking and is an error.
pub fn compare_rdms(a: &Rdm, b: &Rdm, comparison: RdmComparison) -> Result<f64> {
    const WHAT: &str = "RDM comparison";
    if a.stimuli != b.stimuli {
        return Err(crate::Error::StimulusMismatch {
            what: WHAT,
            x: a.stimuli,
            y: b.stimuli,
        });
    }
    for rdm in [a, b] {
        let first = rdm.upper[0];
        if rdm.upper.iter().all(|&v| v == first) {
            return Err(degenerate(
                WHAT,
                "an RDM has every dissimilarity equal, so it has no ranking",
            ));
        }
    }
    Ok(match comparison {
        RdmComparison::Spearman => pearson(&ranks(&a.upper), &ranks(&b.upper)),
        RdmComparison::KendallTauA => kendall_tau_a(&a.upper, &b.upper),
    })
}

/// RSA between two inputs: their RDMs under `metric`, compared by `comparison`.
/// Symmetric; 1 for identical inputs (with no tied dissimilarities for tau-a).
pub fn rsa(x: &Matrix, y: &Matrix, metric: RdmMetric, comparison: RdmComparison) -> Result<f64> {
    check_pair(
        x,
        y,
        "RSA",
        3,
        "an RDM comparison needs at least 3 stimulus pairs",
    )?;
    compare_rdms(&rdm(x, metric)?, &rdm(y, metric)?, comparison)
}

/// Ranks from 1, ties given their average rank (scipy's `rankdata(method="average")`).
pub(crate) fn ranks(values: &[f64]) -> Vec<f64> {
    // Sorting (value, index) pairs keeps each comparison within one contiguous array (a
    // sort of indices that looks values up jumps through memory: slower on millions of
    // dissimilarities).
    let mut order: Vec<(f64, usize)> = values.iter().copied().zip(0..).collect();
    order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && order[end].0 == order[start].0 {
            end += 1;
        }
        let average = (start + end + 1) as f64 / 2.0; // mean of ranks start+1 ..= end
        for &(_, k) in &order[start..end] {
            out[k] = average;
        }
        start = end;
    }
    out
}

/// Pearson correlation; the caller guarantees neither input is constant.
pub(crate) fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    ab / (aa * bb).sqrt()
}

/// Kendall's tau-a in `O(N log N)` (Knight 1966): sort by `a` (then `b`), count the
/// discordant pairs as the swaps of a merge sort by `b`, and correct for ties:
/// `concordant - discordant = P - T_a - T_b + T_ab - 2 * swaps`, over `P = N (N - 1) / 2`.
pub(crate) fn kendall_tau_a(a: &[f64], b: &[f64]) -> f64 {
    // -0.0 and 0.0 are equal but sort apart under total_cmp, which would split a run of
    // ties in `a` and count its pairs as inversions: adding 0.0 turns -0.0 into 0.0.
    let a: Vec<f64> = a.iter().map(|v| v + 0.0).collect();
    let b: Vec<f64> = b.iter().map(|v| v + 0.0).collect();
    let n = a.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&i, &j| a[i].total_cmp(&a[j]).then(b[i].total_cmp(&b[j])));
    let tied_pairs = |same: &dyn Fn(usize, usize) -> bool| -> u64 {
        let (mut total, mut run) = (0u64, 1u64);
        for w in 1..n {
            if same(order[w - 1], order[w]) {
                run += 1;
            } else {
                total += run * (run - 1) / 2;
                run = 1;
            }
        }
        total + run * (run - 1) / 2
    };
    let ties_a = tied_pairs(&|i, j| a[i] == a[j]);
    let ties_ab = tied_pairs(&|i, j| a[i] == a[j] && b[i] == b[j]);
    let mut seq: Vec<f64> = order.iter().map(|&i| b[i]).collect();
    let swaps = merge_count(&mut seq);
    // seq is now sorted by b: count its ties.
    let (mut ties_b, mut run) = (0u64, 1u64);
    for w in 1..n {
        if seq[w] == seq[w - 1] {
            run += 1;
        } else {
            ties_b += run * (run - 1) / 2;
            run = 1;
        }
    }
    ties_b += run * (run - 1) / 2;
    let pairs = (n as u64) * (n as u64 - 1) / 2;
    let numerator =
        pairs as f64 - ties_a as f64 - ties_b as f64 + ties_ab as f64 - 2.0 * swaps as f64;
    numerator / pairs as f64
}

/// Sorts `v` ascending (merge sort) and returns the number of strictly inverted pairs.
fn merge_count(v: &mut [f64]) -> u64 {
    let mut buffer = v.to_vec();
    let mut swaps = 0u64;
    let n = v.len();
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                if v[j] < v[i] {
                    swaps += (mid - i) as u64;
                    buffer[k] = v[j];
                    j += 1;
                } else {
                    buffer[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            buffer[k..k + mid - i].copy_from_slice(&v[i..mid]);
            k += mid - i;
            buffer[k..k + end - j].copy_from_slice(&v[j..end]);
            start = end;
        }
        v.copy_from_slice(&buffer);
        width *= 2;
    }
    swaps
}
