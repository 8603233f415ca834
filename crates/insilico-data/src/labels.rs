//! Label manipulation for memorization experiments (Zhang et al. 2017,
//! "Understanding deep learning requires rethinking generalization") and
//! seeded, class-stratified subsets for quick runs.
//!
//! Everything is a pure function of its inputs and a seed, so a run's labels
//! can be reproduced from its config alone.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How training labels are corrupted.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum LabelCorruption {
    /// True labels.
    None,
    /// Each label independently, with probability `p`, is replaced by a
    /// class drawn uniformly from all classes (which may be the true one, so
    /// the expected fraction actually changed is `p * (1 - 1/K)`).
    Random { p: f64 },
    /// A seeded permutation of the labels: class counts are kept, the
    /// image-label relation is destroyed.
    Shuffled,
}

/// Applies `c` to `labels`. Deterministic in `seed`.
///
/// # Panics
/// If `p` is outside [0, 1] or `num_classes` is not in 1..=256: both are
/// configuration bugs the caller should have rejected.
pub fn corrupt_labels(labels: &[u8], num_classes: usize, c: LabelCorruption, seed: u64) -> Vec<u8> {
    assert!(
        (1..=256).contains(&num_classes),
        "num_classes must be in 1..=256, got {num_classes}"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match c {
        LabelCorruption::None => labels.to_vec(),
        LabelCorruption::Random { p } => {
            assert!(
                (0.0..=1.0).contains(&p),
                "corruption probability must be in [0, 1], got {p}"
            );
            labels
                .iter()
                .map(|&l| {
                    if rng.random_bool(p) {
                        rng.random_range(0..num_classes) as u8
                    } else {
                        l
                    }
                })
                .collect()
        }
        LabelCorruption::Shuffled => {
            let mut out = labels.to_vec();
            out.shuffle(&mut rng);
            out
        }
    }
}

/// A seeded, class-stratified choice of `limit` indices into `labels`,
/// returned sorted. Each class gets a quota proportional to its frequency
/// (floor), and the remaining slots go to the classes with the largest
/// fractional parts (ties to the lower class index). If `limit >= labels.len()`
/// every index is returned.
///
/// # Panics
/// If a label is `>= num_classes`.
pub fn stratified_subset(labels: &[u8], num_classes: usize, limit: usize, seed: u64) -> Vec<usize> {
    let n = labels.len();
    if limit >= n {
        return (0..n).collect();
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        assert!(
            (l as usize) < num_classes,
            "label {l} at index {i} >= num_classes {num_classes}"
        );
        by_class[l as usize].push(i);
    }
    let counts: Vec<usize> = by_class.iter().map(Vec::len).collect();
    let quotas = proportional_quotas(&counts, limit);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen: Vec<usize> = by_class
        .iter_mut()
        .zip(&quotas)
        .flat_map(|(idx, &q)| {
            let (picked, _) = idx.partial_shuffle(&mut rng, q);
            picked.to_vec()
        })
        .collect();
    chosen.sort_unstable();
    chosen
}

/// Largest-remainder apportionment of `limit` slots over classes of sizes
/// `counts` (`limit` < total). A class never gets more than it has: with
/// `limit < total`, `floor(limit*c/total) + 1 <= c` whenever the fraction is
/// non-zero.
fn proportional_quotas(counts: &[usize], limit: usize) -> Vec<usize> {
    let total: u128 = counts.iter().map(|&c| c as u128).sum();
    let exact: Vec<u128> = counts.iter().map(|&c| limit as u128 * c as u128).collect();
    let mut quotas: Vec<usize> = exact.iter().map(|&e| (e / total) as usize).collect();
    let assigned: usize = quotas.iter().sum();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    // Stable sort: equal remainders keep class order.
    order.sort_by_key(|&k| std::cmp::Reverse(exact[k] % total));
    for &k in order.iter().take(limit - assigned) {
        quotas[k] += 1;
    }
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balanced(n: usize, k: usize) -> Vec<u8> {
        (0..n).map(|i| (i % k) as u8).collect()
    }

    fn changed(a: &[u8], b: &[u8]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    fn counts(labels: &[u8], k: usize) -> Vec<usize> {
        let mut c = vec![0; k];
        for &l in labels {
            c[l as usize] += 1;
        }
        c
    }

    /// The number changed is Binomial(n, q) with q = p(1 - 1/K): a label
    /// changes iff it is resampled (p) and the draw differs (1 - 1/K). So the
    /// observed fraction has standard deviation sqrt(q(1-q)/n); 4 of them
    /// bound a false failure at about 6e-5.
    #[test]
    fn random_changes_expected_fraction() {
        let (n, k) = (100_000, 10);
        let labels = balanced(n, k);
        for p in [0.2, 0.5, 1.0] {
            let out = corrupt_labels(&labels, k, LabelCorruption::Random { p }, 7);
            let q = p * (1.0 - 1.0 / k as f64);
            let sd = (q * (1.0 - q) / n as f64).sqrt();
            let frac = changed(&labels, &out) as f64 / n as f64;
            assert!(
                (frac - q).abs() < 4.0 * sd,
                "p={p}: changed {frac}, expected {q} ± {}",
                4.0 * sd
            );
            assert!(out.iter().all(|&l| (l as usize) < k));
        }
    }

    #[test]
    fn p_zero_and_none_change_nothing() {
        let labels = balanced(1000, 10);
        assert_eq!(
            corrupt_labels(&labels, 10, LabelCorruption::Random { p: 0.0 }, 1),
            labels
        );
        assert_eq!(
            corrupt_labels(&labels, 10, LabelCorruption::None, 1),
            labels
        );
    }

    #[test]
    fn shuffled_preserves_counts_and_moves_labels() {
        let labels: Vec<u8> = (0..5000).map(|i| ((i * i) % 7) as u8).collect();
        let out = corrupt_labels(&labels, 7, LabelCorruption::Shuffled, 3);
        assert_eq!(counts(&out, 7), counts(&labels, 7));
        assert!(changed(&labels, &out) > 2500);
    }

    #[test]
    fn seeds_are_deterministic_and_distinct() {
        let labels = balanced(2000, 10);
        for c in [
            LabelCorruption::Random { p: 0.5 },
            LabelCorruption::Shuffled,
        ] {
            assert_eq!(
                corrupt_labels(&labels, 10, c, 42),
                corrupt_labels(&labels, 10, c, 42)
            );
            assert_ne!(
                corrupt_labels(&labels, 10, c, 42),
                corrupt_labels(&labels, 10, c, 43)
            );
        }
        let a = stratified_subset(&labels, 10, 100, 1);
        assert_eq!(a, stratified_subset(&labels, 10, 100, 1));
        assert_ne!(a, stratified_subset(&labels, 10, 100, 2));
    }

    #[test]
    #[should_panic(expected = "probability")]
    fn p_out_of_range_panics() {
        corrupt_labels(&[0, 1], 2, LabelCorruption::Random { p: 1.5 }, 0);
    }

    #[test]
    fn stratified_subset_keeps_proportions() {
        // Unbalanced classes: class k has 100 + 37k members, shuffled order.
        let mut labels: Vec<u8> = (0..10u8)
            .flat_map(|k| std::iter::repeat_n(k, 100 + 37 * k as usize))
            .collect();
        labels = corrupt_labels(&labels, 10, LabelCorruption::Shuffled, 9);
        let n = labels.len();
        let full = counts(&labels, 10);
        for limit in [1, 7, 100, 333, n - 1] {
            let idx = stratified_subset(&labels, 10, limit, 5);
            assert_eq!(idx.len(), limit);
            assert!(idx.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
            let sub: Vec<u8> = idx.iter().map(|&i| labels[i]).collect();
            for (k, (&got, &all)) in counts(&sub, 10).iter().zip(&full).enumerate() {
                let ideal = limit as f64 * all as f64 / n as f64;
                assert!(
                    (got as f64 - ideal).abs() <= 1.0,
                    "limit {limit} class {k}: {got} vs {ideal}"
                );
            }
        }
        assert_eq!(
            stratified_subset(&labels, 10, n + 5, 5),
            (0..n).collect::<Vec<_>>()
        );
    }
}
