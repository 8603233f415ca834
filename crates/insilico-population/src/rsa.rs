//! Representational similarity analysis (Kriegeskorte et al. 2008): a representational
//! dissimilarity matrix (RDM) per input, compared by rank correlation of their upper
//! triangles. For class-averaged RSA, pass [`Matrix::class_means`] of each input.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{degenerate, Result};
use crate::linalg::{centred, check_pair, check_stimuli, gram_t};
use crate::Matrix;
use faer::Mat;

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

impl RdmMetric {
    /// The metric's name in measure and file names.
    pub fn name(self) -> &'static str {
        match self {
            RdmMetric::Correlation => "correlation",
            RdmMetric::Euclidean => "euclidean",
        }
    }
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

impl Rdm {
    /// The full `n x n` matrix, row-major (`[i * n + j]`): symmetric, 0 on the diagonal.
    pub fn square(&self) -> Vec<f64> {
        let n = self.stimuli;
        let mut square = vec![0.0; n * n];
        let mut upper = self.upper.iter();
        for i in 0..n {
            for j in i + 1..n {
                let d = upper.next().copied().unwrap_or(f64::NAN);
                square[i * n + j] = d;
                square[j * n + i] = d;
            }
        }
        square
    }
}

/// The RDM of `x`. Correlation distance is undefined for a stimulus whose response is the
/// same in every unit (e.g. all units silent); that is an error naming the stimulus.
///
/// Where every response is an integer (spike counts, binary codes) and `units * max |x|` is
/// below 2^16, correlation distances are computed from exact integer moments and equal
/// distances are exactly equal: rounding would otherwise break their ties at random, and
/// the rank correlations would move with it (Spearman by 4.5e-4 on 80 binary codes of 20
/// units; rsatoolbox, which breaks them too, by 2.8e-4). Euclidean distances of such
/// responses are exact without this (their squares are integers, below 2^53).
pub fn rdm(x: &Matrix, metric: RdmMetric) -> Result<Rdm> {
    check_stimuli(x, WHAT, 2, "a dissimilarity needs two stimuli")?;
    let n = x.stimuli();
    let integers = integer_responses(x);
    let exact = metric == RdmMetric::Correlation && integers;
    // Rows become columns so that the Gram of the transposed matrix is the stimulus x stimulus
    // product. For correlation each stimulus's pattern is first centred across units; for
    // Euclidean distance each unit is centred across stimuli (a translation, which leaves
    // distances unchanged but keeps `a + b - 2 ab` from cancelling where the responses sit
    // far from 0). Integer responses keep their raw products, which are exact.
    let patterns = match metric {
        _ if integers => x.as_faer().transpose().to_owned(),
        RdmMetric::Correlation => centred(x.as_faer().transpose()),
        RdmMetric::Euclidean => centred(x.as_faer()).transpose().to_owned(),
    };
    let dots = gram_t(patterns.as_ref());
    if exact {
        return Ok(Rdm {
            stimuli: n,
            metric,
            upper: ExactCorrelations::new(x, &dots)?.distances(),
        });
    }
    if metric == RdmMetric::Correlation {
        if let Some(i) = (0..n).find(|&i| dots[(i, i)] <= 0.0) {
            return Err(constant_stimulus(i));
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

const WHAT: &str = "RDM";

fn constant_stimulus(i: usize) -> crate::Error {
    degenerate(
        WHAT,
        format!("stimulus {i} evokes the same response in every unit, so its correlation distance is undefined"),
    )
}

/// Whether every response is an integer and `units * max |x| < 2^16`: then the raw products
/// (at most `units * max^2 < 2^32`) are exact in f64, and so are the integer moments below
/// (their cross-multiplied comparisons stay under 2^128).
fn integer_responses(x: &Matrix) -> bool {
    let a = x.as_faer();
    let mut largest = 0.0f64;
    for j in 0..a.ncols() {
        for &v in a.col(j).iter() {
            if v.trunc() != v {
                return false; // a fraction, or not finite
            }
            largest = largest.max(v.abs());
        }
    }
    (a.ncols() as f64) * largest < 65536.0
}

/// Pearson correlations of integer response patterns as exact integer ratios:
/// `r_ij = N_ij / sqrt(N_ii N_jj)` with `N_ij = d <x_i, x_j> - s_i s_j` (`d` units, `s_i` the
/// sum of pattern `i`): `d^2` times the centred moments, from the exact raw products.
struct ExactCorrelations<'a> {
    units: i64,
    dots: &'a Mat<f64>,
    sums: Vec<i64>,
    variances: Vec<i64>,
}

impl<'a> ExactCorrelations<'a> {
    fn new(x: &Matrix, dots: &'a Mat<f64>) -> Result<Self> {
        let sums: Vec<i64> = (0..x.stimuli())
            .map(|i| (0..x.units()).map(|u| x.get(i, u) as i64).sum())
            .collect();
        let mut exact = Self {
            units: x.units() as i64,
            dots,
            sums,
            variances: Vec::new(),
        };
        exact.variances = (0..x.stimuli()).map(|i| exact.moment(i, i)).collect();
        if let Some(i) = exact.variances.iter().position(|&v| v <= 0) {
            return Err(constant_stimulus(i));
        }
        Ok(exact)
    }

    fn moment(&self, i: usize, j: usize) -> i64 {
        self.units * self.dots[(i, j)] as i64 - self.sums[i] * self.sums[j]
    }

    /// `(N_ij, N_ii N_jj)`.
    fn ratio(&self, (i, j): (u32, u32)) -> (i64, u128) {
        let (i, j) = (i as usize, j as usize);
        let product = self.variances[i] as u128 * self.variances[j] as u128;
        (self.moment(i, j), product)
    }

    /// `1 - r` for every pair, equal where the exact ratios are equal and in their exact order.
    fn distances(&self) -> Vec<f64> {
        let n = self.sums.len() as u32;
        let pairs: Vec<(u32, u32)> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect();
        let approximate: Vec<f64> = pairs
            .iter()
            .map(|&pair| {
                let (c, product) = self.ratio(pair);
                // r = +-1 exactly where N_ij^2 = N_ii N_jj; elsewhere three roundings.
                let r = if c.unsigned_abs() as u128 * c.unsigned_abs() as u128 == product {
                    c.signum() as f64
                } else {
                    c as f64 / (product as f64).sqrt()
                };
                1.0 - r
            })
            .collect();
        // Distances run opposite to the correlations.
        settle_ties(&approximate, |a, b| {
            compare_ratios(self.ratio(pairs[b]), self.ratio(pairs[a]))
        })
    }
}

/// Orders `n / sqrt(p)` exactly (`p > 0`, `n^2 <= p < 2^64`), by the signs and then by
/// `n_a^2 p_b` against `n_b^2 p_a`.
fn compare_ratios((na, pa): (i64, u128), (nb, pb): (i64, u128)) -> Ordering {
    let by_sign = na.signum().cmp(&nb.signum());
    if by_sign != Ordering::Equal || na == 0 {
        return by_sign;
    }
    let square = |v: i64| v.unsigned_abs() as u128 * v.unsigned_abs() as u128;
    let magnitude = (square(na) * pb).cmp(&(square(nb) * pa));
    if na > 0 {
        magnitude
    } else {
        magnitude.reverse()
    }
}

/// Values whose exact order (`exact`, on indices) is known but which carry a few units of
/// rounding: the same value for exactly equal entries, strictly increasing values across
/// distinct ones. Values more than `WINDOW` apart are already in their exact order (their
/// rounding is below half of it), so only runs of closer values are sorted exactly, and each
/// value moves by at most a few ulps.
fn settle_ties(values: &[f64], exact: impl Fn(usize, usize) -> Ordering) -> Vec<f64> {
    const WINDOW: f64 = 64.0 * f64::EPSILON;
    // (value, index) pairs sort within one array (see `ranks`).
    let mut order: Vec<(f64, usize)> = values.iter().copied().zip(0..).collect();
    order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let close = |a: f64, b: f64| (b - a).abs() <= WINDOW;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && close(order[end - 1].0, order[end].0) {
            end += 1;
        }
        if end - start > 1 {
            order[start..end].sort_unstable_by(|a, b| exact(a.1, b.1));
        }
        start = end;
    }
    let mut out = vec![0.0; values.len()];
    let mut previous: Option<(usize, f64)> = None;
    for &(approximate, k) in &order {
        let value = match previous {
            Some((p, v)) if close(values[p], approximate) && exact(p, k) == Ordering::Equal => v,
            Some((_, v)) if approximate <= v => v.next_up(),
            _ => approximate,
        };
        out[k] = value;
        previous = Some((k, value));
    }
    out
}

/// Compares two RDMs of the same stimuli. A constant RDM has no ranking and is an error.
pub fn compare_rdms(a: &Rdm, b: &Rdm, comparison: RdmComparison) -> Result<f64> {
    compare_ranked(&RankedRdm::of(a), &RankedRdm::of(b), comparison)
}

/// An RDM and its ranks and order, computed when first needed: compared by Spearman or
/// Kendall's tau with several others, an RDM is sorted once (the sort is nearly all of a
/// Spearman comparison, and half of a tau).
pub(crate) struct RankedRdm<'r> {
    pub rdm: Cow<'r, Rdm>,
    sorted: OnceCell<SortedRanks>,
}

impl<'r> RankedRdm<'r> {
    pub fn of(rdm: &'r Rdm) -> Self {
        Self::new(Cow::Borrowed(rdm))
    }

    pub fn new(rdm: Cow<'r, Rdm>) -> Self {
        Self {
            rdm,
            sorted: OnceCell::new(),
        }
    }

    fn sorted(&self) -> &SortedRanks {
        self.sorted.get_or_init(|| sorted_ranks(&self.rdm.upper))
    }

    fn ranks(&self) -> &[f64] {
        &self.sorted().ranks
    }
}

/// [`compare_rdms`] of ranked RDMs.
pub(crate) fn compare_ranked(
    a: &RankedRdm,
    b: &RankedRdm,
    comparison: RdmComparison,
) -> Result<f64> {
    const WHAT: &str = "RDM comparison";
    if a.rdm.stimuli != b.rdm.stimuli {
        return Err(crate::Error::StimulusMismatch {
            what: WHAT,
            x: a.rdm.stimuli,
            y: b.rdm.stimuli,
        });
    }
    for rdm in [a, b] {
        let first = rdm.rdm.upper[0];
        if rdm.rdm.upper.iter().all(|&v| v == first) {
            return Err(degenerate(
                WHAT,
                "an RDM has every dissimilarity equal, so it has no ranking",
            ));
        }
    }
    Ok(match comparison {
        RdmComparison::Spearman => pearson(a.ranks(), b.ranks()),
        RdmComparison::KendallTauA => kendall_tau_a_sorted(a.sorted(), b.ranks()),
    })
}

/// RSA between two inputs: their RDMs under `metric`, compared by `comparison`.
/// Symmetric; 1 for identical inputs (with no tied dissimilarities for tau-a).
pub fn rsa(x: &Matrix, y: &Matrix, metric: RdmMetric, comparison: RdmComparison) -> Result<f64> {
    check_rsa_pair(x, y)?;
    compare_rdms(&rdm(x, metric)?, &rdm(y, metric)?, comparison)
}

/// What RSA needs of a pair of inputs: the same stimuli, and 3 of them.
pub(crate) fn check_rsa_pair(x: &Matrix, y: &Matrix) -> Result<()> {
    check_pair(
        x,
        y,
        "RSA",
        3,
        "an RDM comparison needs at least 3 stimulus pairs",
    )
}

/// Values' average ranks from 1 (scipy's `rankdata(method="average")`), and the order that
/// sorts them (equal values in any order): what Spearman's correlation and Kendall's tau
/// read of one RDM, computed once for all its pairs.
pub(crate) struct SortedRanks {
    pub order: Vec<u32>,
    pub ranks: Vec<f64>,
}

pub(crate) fn sorted_ranks(values: &[f64]) -> SortedRanks {
    // Sorting (value, index) pairs keeps each comparison within one contiguous array (a
    // sort of indices that looks values up jumps through memory: slower on millions of
    // dissimilarities). Indices fit u32: an RDM of 2^16 stimuli has 2^31 pairs.
    // On rayon's threads: the order of equal values does not matter (ties share a rank, and
    // tau-a sorts each run of ties again).
    let mut order: Vec<(f64, u32)> = values.iter().copied().zip(0..).collect();
    order.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    // `==` (not total_cmp) closes a run, so that -0.0 and 0.0 are tied.
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && order[end].0 == order[start].0 {
            end += 1;
        }
        let average = (start + end + 1) as f64 / 2.0; // mean of ranks start+1 ..= end
        for &(_, k) in &order[start..end] {
            ranks[k as usize] = average;
        }
        start = end;
    }
    SortedRanks {
        order: order.into_iter().map(|(_, k)| k).collect(),
        ranks,
    }
}

/// Pearson correlation; the caller guarantees neither input is constant.
pub(crate) fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let mean = |v: &[f64]| crate::linalg::mean_of(v.iter().copied());
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    ab / (aa * bb).sqrt()
}

/// Kendall's tau-a in `O(N log N)` (Knight 1966), from `a`'s order and ranks and `b`'s
/// ranks (ranks tie exactly where the values do). In `a`'s order, with each run of ties in
/// `a` sorted by `b`, the discordant pairs are the swaps of a merge sort by `b`; with ties
/// corrected for,
/// `concordant - discordant = P - T_a - T_b + T_ab - 2 * swaps`, over `P = N (N - 1) / 2`.
/// No sort of the pairs is needed when `a`'s order is at hand (an RDM compared with many).
pub(crate) fn kendall_tau_a_sorted(a: &SortedRanks, b: &[f64]) -> f64 {
    let n = b.len();
    // A gather through millions of scattered indices: on rayon's threads (in order).
    let mut order: Vec<(f64, f64)> = a
        .order
        .par_iter()
        .map(|&k| (a.ranks[k as usize], b[k as usize]))
        .collect();
    let mut start = 0;
    while start < n {
        let end = start
            + order[start..]
                .iter()
                .take_while(|p| p.0 == order[start].0)
                .count();
        order[start..end].sort_unstable_by(|p, q| p.1.total_cmp(&q.1));
        start = end;
    }
    let ties_a = tied_pairs(order.iter().map(|p| p.0));
    let ties_ab = tied_pairs(order.iter().copied());
    let mut seq: Vec<f64> = order.iter().map(|p| p.1).collect();
    let swaps = merge_count(&mut seq);
    let ties_b = tied_pairs(seq.iter().copied()); // seq is now sorted by b
    let pairs = (n as u64) * (n as u64 - 1) / 2;
    let numerator =
        pairs as f64 - ties_a as f64 - ties_b as f64 + ties_ab as f64 - 2.0 * swaps as f64;
    numerator / pairs as f64
}

/// The pairs of equal neighbours counted over each run of equal items: `sum r (r - 1) / 2`.
fn tied_pairs<T: PartialEq>(items: impl Iterator<Item = T>) -> u64 {
    let (mut total, mut run, mut last) = (0u64, 0u64, None);
    for item in items {
        if last.as_ref() == Some(&item) {
            run += 1;
        } else {
            total += run * run.saturating_sub(1) / 2;
            run = 1;
            last = Some(item);
        }
    }
    total + run * run.saturating_sub(1) / 2
}

/// Below this many values a count runs on one thread: the halves of a split are counted
/// on rayon's threads, and only the merges above them are serial.
const PARALLEL_COUNT: usize = 1 << 16;

/// Sorts `v` ascending and returns the number of strictly inverted pairs (an exact count,
/// whatever the threads). Split into about two pieces per thread: each level of splits
/// costs a merge into a new buffer and a copy back.
fn merge_count(v: &mut [f64]) -> u64 {
    let pieces = 2 * rayon::current_num_threads();
    merge_count_above(v, PARALLEL_COUNT.max(v.len() / pieces))
}

/// [`merge_count`], splitting `v` into halves counted in parallel while it is at least
/// `parallel` long: the inversions are those within each half plus those across, which
/// the merge of the sorted halves counts.
fn merge_count_above(v: &mut [f64], parallel: usize) -> u64 {
    if v.len() < parallel.max(2) {
        return serial_merge_count(v);
    }
    let (left, right) = v.split_at_mut(v.len() / 2);
    let (within_left, within_right) = rayon::join(
        || merge_count_above(left, parallel),
        || merge_count_above(right, parallel),
    );
    let mut merged = vec![0.0; v.len()];
    let (left, right) = v.split_at(v.len() / 2);
    let across = merge(left, right, &mut merged);
    v.copy_from_slice(&merged);
    within_left + within_right + across
}

/// [`merge_count`] on one thread: insertion sort within blocks of 32 (each shift is one
/// inversion), then bottom-up merges between two buffers in turn (each element taken from
/// the right half passes the rest of the left).
fn serial_merge_count(v: &mut [f64]) -> u64 {
    const RUN: usize = 32;
    let n = v.len();
    let mut swaps = 0u64;
    for block in v.chunks_mut(RUN) {
        for i in 1..block.len() {
            let x = block[i];
            let mut j = i;
            while j > 0 && block[j - 1] > x {
                block[j] = block[j - 1];
                j -= 1;
            }
            swaps += (i - j) as u64;
            block[j] = x;
        }
    }
    let mut from = v.to_vec();
    let mut to = vec![0.0; n];
    let mut width = RUN;
    while width < n {
        for start in (0..n).step_by(2 * width) {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            swaps += merge(&from[start..mid], &from[mid..end], &mut to[start..end]);
        }
        std::mem::swap(&mut from, &mut to);
        width *= 2;
    }
    v.copy_from_slice(&from);
    swaps
}

/// Merges sorted `left` and `right` into `out`; returns the pairs (l, r) with `r < l`.
/// Branch-free while both halves last: on random ranks, which side comes next is a coin
/// flip that a branch would mispredict half the time.
fn merge(left: &[f64], right: &[f64], out: &mut [f64]) -> u64 {
    let (mut i, mut j, mut k, mut swaps) = (0, 0, 0, 0u64);
    while i < left.len() && j < right.len() {
        let (l, r) = (left[i], right[j]);
        let take_right = r < l;
        out[k] = if take_right { r } else { l };
        swaps += u64::from(take_right) * (left.len() - i) as u64;
        j += usize::from(take_right);
        i += usize::from(!take_right);
        k += 1;
    }
    out[k..k + left.len() - i].copy_from_slice(&left[i..]);
    k += left.len() - i;
    out[k..].copy_from_slice(&right[j..]);
    swaps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against counting every pair, at lengths around the block size and the merge widths,
    /// with ties (values on a coarse grid).
    #[test]
    fn merge_count_counts_every_strict_inversion() {
        let mut state = 7u64;
        for n in [0, 1, 2, 31, 32, 33, 64, 65, 200, 1000] {
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((state >> 33) % 17) as f64
                })
                .collect();
            let mut expected = 0u64;
            for i in 0..n {
                for j in i + 1..n {
                    expected += u64::from(values[j] < values[i]);
                }
            }
            // Serially, and split into halves counted in parallel down to 64 values (odd
            // halves among them: 65 = 32 + 33, 1000 down to 125 = 62 + 63).
            for parallel in [usize::MAX, 64] {
                let mut sorted = values.clone();
                assert_eq!(
                    merge_count_above(&mut sorted, parallel),
                    expected,
                    "n = {n}, parallel from {parallel}"
                );
                assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "n = {n}");
            }
        }
    }
}
