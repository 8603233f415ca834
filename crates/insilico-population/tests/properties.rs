//! Properties every measure must have, each derived from its definition.

mod common;

use common::{gaussian, matrix, orthogonal, related_pair};
use faer::Mat;
use insilico_population::*;

fn approx(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got}, want {want} (tolerance {tolerance})"
    );
}

#[test]
fn every_measure_is_one_for_identical_inputs() {
    let x = matrix(&gaussian(200, 10, 1));
    for measure in Measure::all() {
        let value = compare(measure, &x, &x).unwrap();
        // Ridge shrinks: with the smallest penalty 1e-3 x the mean squared singular value and
        // the smallest singular value of a 200 x 10 Gaussian matrix at about half the mean,
        // predictions keep at least 1 - 2e-3 of each direction, so R^2 > 0.99.
        let tolerance = if matches!(measure, Measure::Ridge { .. }) {
            1e-2
        } else {
            1e-9
        };
        approx(&measure.name(), value, 1.0, tolerance);
    }
}

#[test]
fn symmetric_measures_are_symmetric() {
    let (x, y) = related_pair(120, 6, 9, 2);
    let (x, y) = (matrix(&x), matrix(&y));
    for measure in Measure::all().into_iter().filter(Measure::is_symmetric) {
        let (a, b) = (
            compare(measure, &x, &y).unwrap(),
            compare(measure, &y, &x).unwrap(),
        );
        approx(&measure.name(), a, b, 1e-9);
        assert!(
            a > 0.0 && a < 1.0,
            "{}: {a} should be strictly between 0 and 1",
            measure.name()
        );
    }
}

fn cka_all(x: &Matrix, y: &Matrix) -> [f64; 3] {
    [
        cka_linear(x, y).unwrap(),
        cka_rbf(x, y, 0.8).unwrap(),
        cka_debiased(x, y).unwrap(),
    ]
}

#[test]
fn cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling_only() {
    let (x, y) = related_pair(150, 8, 8, 3);
    let base = cka_all(&matrix(&x), &matrix(&y));
    let q = orthogonal(8, 4);
    let rotated_scaled = &x * &q * faer::Scale(3.5);
    for (i, v) in cka_all(&matrix(&rotated_scaled), &matrix(&y))
        .iter()
        .enumerate()
    {
        approx(
            &format!("CKA {i} after rotation and scaling"),
            *v,
            base[i],
            1e-9,
        );
    }
    // An anisotropic scaling (unit j multiplied by 1 + 3j) is invertible but not orthogonal:
    // it reweights directions, so CKA must move.
    let stretch = Mat::from_fn(8, 8, |i, j| if i == j { 1.0 + 3.0 * j as f64 } else { 0.0 });
    let stretched = &x * &stretch;
    for (i, v) in cka_all(&matrix(&stretched), &matrix(&y)).iter().enumerate() {
        assert!(
            (v - base[i]).abs() > 1e-2,
            "CKA {i} should change under an anisotropic map: {v} vs {}",
            base[i]
        );
    }
}

#[test]
fn cca_is_invariant_to_invertible_linear_maps() {
    let (x, y) = related_pair(150, 6, 7, 5);
    let base = cca(&matrix(&x), &matrix(&y)).unwrap();
    // A random Gaussian matrix is invertible with probability 1; a translation is added too.
    let a = gaussian(6, 6, 6);
    let b = gaussian(7, 7, 7);
    let xa = Mat::from_fn(150, 6, |i, j| (&x * &a)[(i, j)] + 10.0);
    let mapped = cca(&matrix(&xa), &matrix(&(&y * &b))).unwrap();
    for (g, w) in mapped.correlations.iter().zip(&base.correlations) {
        approx("canonical correlation", *g, *w, 1e-8);
    }
    // SVCCA keeping everything is CCA, so it inherits the invariance.
    let full = svcca(&matrix(&xa), &matrix(&(&y * &b)), 1.0).unwrap();
    approx("SVCCA keeping all directions", full.mean, base.mean, 1e-8);
}

/// `exp(-d / 2s^2) = 1 - d / 2s^2 + O(s^-4)`, and centring removes the 1 and, of the
/// squared distances `|x_i|^2 + |x_j|^2 - 2 x_i.x_j`, all but the inner products: as the
/// bandwidth grows the centred RBF kernel tends to a multiple of the linear one, and RBF CKA
/// to linear CKA (the relative error falls as `1/s^2`).
#[test]
fn rbf_cka_tends_to_linear_cka_as_the_bandwidth_grows() {
    let (x, y) = related_pair(60, 5, 7, 31);
    let (x, y) = (matrix(&x), matrix(&y));
    let linear = cka_linear(&x, &y).unwrap();
    let gap = |bandwidth: f64| (cka_rbf(&x, &y, bandwidth).unwrap() - linear).abs();
    assert!(gap(1.0) > 1e-3, "the narrow kernel differs: {}", gap(1.0));
    for bandwidth in [1e3, 1e5, 1e7, 1e9] {
        assert!(
            gap(bandwidth) < 1e-5,
            "bandwidth {bandwidth}: off by {}",
            gap(bandwidth)
        );
    }
    // So wide that every distance over it underflows: said, not taken for constant units.
    let err = cka_rbf(&x, &y, 1e200).unwrap_err().to_string();
    assert!(err.contains("smaller bandwidth"), "{err}");
}

#[test]
fn debiased_cka_of_independent_data_is_near_zero_but_biased_is_not() {
    // For independent Gaussian X [n, p] and Y [n, q], E||X^T Y||^2 = n p q and
    // E||X^T X||^2 ~ n^2 p + n p^2, so biased CKA ~ sqrt(p q / ((n + p)(n + q))) = 1/3 for
    // n = 100, p = q = 50; the debiased estimator has expectation 0.
    let x = matrix(&gaussian(100, 50, 8));
    let y = matrix(&gaussian(100, 50, 9));
    let biased = cka_linear(&x, &y).unwrap();
    let debiased = cka_debiased(&x, &y).unwrap();
    assert!(
        (biased - 1.0 / 3.0).abs() < 0.05,
        "biased CKA {biased}, expected about 1/3"
    );
    assert!(
        debiased.abs() < 0.05,
        "debiased CKA {debiased}, expected about 0"
    );
}

/// Data whose sample covariance has exactly the eigenvalues `variances`: orthonormal
/// centred scores (QR of a centred Gaussian matrix) scaled by `sqrt((n - 1) l)`, rotated.
fn with_spectrum(n: usize, variances: &[f64], seed: u64) -> Matrix {
    let (scores, rotation) = spectrum_parts(n, variances, seed);
    matrix(&(&scores * rotation.transpose()))
}

/// [`with_spectrum`]'s principal scores `[n, d]` (the k-th column has variance
/// `variances[k]`) and its rotation, whose k-th column is the k-th principal direction.
fn spectrum_parts(n: usize, variances: &[f64], seed: u64) -> (Mat<f64>, Mat<f64>) {
    let d = variances.len();
    let z = gaussian(n, d, seed);
    let centred = Mat::from_fn(n, d, |i, j| {
        z[(i, j)] - (0..n).map(|k| z[(k, j)]).sum::<f64>() / n as f64
    });
    let q = centred.qr().compute_thin_Q();
    let scaled = Mat::from_fn(n, d, |i, j| {
        q[(i, j)] * ((n - 1) as f64 * variances[j]).sqrt()
    });
    (scaled, orthogonal(d, seed + 1))
}

#[test]
fn pca_recovers_a_known_spectrum() {
    let variances = [5.0, 3.0, 1.5, 0.4, 0.1];
    let s = spectrum(&with_spectrum(80, &variances, 10)).unwrap();
    for (g, w) in s.eigenvalues.iter().zip(variances) {
        approx("eigenvalue", *g, w, 1e-9);
    }
    // Total 10: explained 0.5, 0.3, 0.15, 0.04, 0.01; cumulative 0.5, 0.8, 0.95, 0.99, 1.
    approx("cumulative[2]", s.cumulative[2], 0.95, 1e-12);
    assert_eq!(
        (s.components_90, s.components_95, s.components_99),
        (3, 3, 4)
    );
    // (sum l)^2 / sum l^2 = 100 / (25 + 9 + 2.25 + 0.16 + 0.01).
    approx(
        "participation ratio",
        s.participation_ratio,
        100.0 / 36.42,
        1e-9,
    );
}

#[test]
fn participation_ratio_of_k_equal_variances_is_k() {
    for k in 1..=6 {
        approx(
            "list",
            participation_ratio(&vec![2.5; k]).unwrap(),
            k as f64,
            1e-12,
        );
        let s = spectrum(&with_spectrum(50, &vec![1.0; k], 20 + k as u64)).unwrap();
        approx("data", s.participation_ratio, k as f64, 1e-9);
    }
}

#[test]
fn tau_a_matches_counting_every_pair() {
    // RDMs of 12 stimuli (66 entries) with many ties (values rounded to one decimal);
    // tau-a counted pair by pair: (concordant - discordant) / all pairs, ties counting 0.
    let a: Vec<f64> = gaussian(66, 1, 30)
        .col(0)
        .iter()
        .map(|v| (v * 3.0).round() / 10.0)
        .collect();
    let noise = gaussian(66, 1, 31);
    let b: Vec<f64> = a
        .iter()
        .zip(noise.col(0).iter())
        .map(|(x, e)| ((x + 0.3 * e) * 10.0).round() / 10.0)
        .collect();
    let mut net = 0i64;
    for i in 0..66 {
        for j in i + 1..66 {
            let (da, db) = (a[i] - a[j], b[i] - b[j]);
            if da != 0.0 && db != 0.0 {
                net += (da.signum() * db.signum()) as i64;
            }
        }
    }
    let rdm_of = |v: &[f64]| Rdm {
        stimuli: 12,
        metric: RdmMetric::Euclidean,
        upper: v.to_vec(),
    };
    let got = compare_rdms(&rdm_of(&a), &rdm_of(&b), RdmComparison::KendallTauA).unwrap();
    approx("tau-a", got, net as f64 / (66.0 * 65.0 / 2.0), 1e-12);
    // With ties, identical RDMs give less than 1: the tied pairs count 0.
    let own = compare_rdms(&rdm_of(&a), &rdm_of(&a), RdmComparison::KendallTauA).unwrap();
    assert!(own < 1.0);
}

#[test]
fn euclidean_rdms_are_invariant_to_translation_far_from_zero() {
    // Responses around 1e5: the products a_i^2 reach 1e11, where f64's rounding (1e-5)
    // would be 1e-6 of the squared distances (about 20) without centring the units first.
    let x = gaussian(60, 10, 70);
    let far = Mat::from_fn(60, 10, |i, j| x[(i, j)] + 1e5);
    let (near, far) = (
        rdm(&matrix(&x), RdmMetric::Euclidean).unwrap(),
        rdm(&matrix(&far), RdmMetric::Euclidean).unwrap(),
    );
    for (a, b) in near.upper.iter().zip(&far.upper) {
        approx("distance", *b, *a, 1e-9 * a);
    }
}

/// The exact Pearson correlation of two integer patterns as `(numerator, denominator)` of
/// `r^2 sign(r)`: with `a = d x - sum(x)` (integers, `d` times the centred pattern),
/// `r = <a_i, a_j> / sqrt(|a_i|^2 |a_j|^2)`.
fn exact_signed_square(x: &[Vec<i64>], i: usize, j: usize) -> (i128, i128) {
    let d = x[i].len() as i64;
    let centred = |row: &[i64]| -> Vec<i128> {
        let sum: i64 = row.iter().sum();
        row.iter().map(|v| (d * v - sum) as i128).collect()
    };
    let (a, b) = (centred(&x[i]), centred(&x[j]));
    let dot = |p: &[i128], q: &[i128]| -> i128 { p.iter().zip(q).map(|(u, v)| u * v).sum() };
    let n = dot(&a, &b);
    (n * n.abs(), dot(&a, &a) * dot(&b, &b))
}

#[test]
fn correlation_distances_of_integer_responses_are_equal_exactly_where_the_correlations_are() {
    // Binary codes over 5 units: many pairs of stimuli have the same correlation, a ratio of
    // integers that floating point reaches through different roundings. No code is constant.
    let noise = gaussian(40, 5, 60);
    let codes: Vec<Vec<i64>> = (0..40)
        .map(|i| {
            let mut row: Vec<i64> = (0..5).map(|u| (noise[(i, u)] > 0.0) as i64).collect();
            if row.iter().all(|&v| v == row[0]) {
                row[i % 5] = 1 - row[0];
            }
            row
        })
        .collect();
    let x = Mat::from_fn(40, 5, |i, u| codes[i][u] as f64);
    let rdm = rdm(&matrix(&x), RdmMetric::Correlation).unwrap();
    let pairs: Vec<(usize, usize)> = (0..40)
        .flat_map(|i| (i + 1..40).map(move |j| (i, j)))
        .collect();
    let keys: Vec<(i128, i128)> = pairs
        .iter()
        .map(|&(i, j)| exact_signed_square(&codes, i, j))
        .collect();
    let mut ties = 0;
    for p in 0..pairs.len() {
        for q in p + 1..pairs.len() {
            let ((np, dp), (nq, dq)) = (keys[p], keys[q]);
            // Distance 1 - r runs opposite to r, and to sign(r) r^2.
            let want = (nq * dp).cmp(&(np * dq));
            ties += (want == std::cmp::Ordering::Equal) as usize;
            assert_eq!(
                rdm.upper[p].partial_cmp(&rdm.upper[q]),
                Some(want),
                "pairs {:?} and {:?}",
                pairs[p],
                pairs[q]
            );
        }
    }
    assert!(ties > 1000, "only {ties} tied pairs of entries");
    // The values stay the distances, within rounding.
    for (&(i, j), v) in pairs.iter().zip(&rdm.upper) {
        let (n, d) = exact_signed_square(&codes, i, j);
        let r = (n.signum() as f64) * (n.abs() as f64 / d as f64).sqrt();
        approx("distance", *v, 1.0 - r, 1e-14);
    }
}

#[test]
fn decoding_separable_classes_is_perfect_and_random_labels_are_near_chance() {
    // Four classes whose means differ by 20 standard deviations along the first two units.
    let noise = gaussian(200, 6, 40);
    let labels: Vec<usize> = (0..200).map(|i| i % 4).collect();
    let x = Mat::from_fn(200, 6, |i, j| {
        noise[(i, j)]
            + if j < 2 {
                20.0 * ((labels[i] >> j) & 1) as f64
            } else {
                0.0
            }
    });
    let d = decodability(&matrix(&x), &labels, &RidgeOptions::default()).unwrap();
    assert_eq!(d.components, vec![1, 2, 4, 6]);
    approx("chance", d.chance, 0.25, 1e-12);
    approx("accuracy from 2 components", d.accuracy[1], 1.0, 0.0);
    // Labels unrelated to the data: held-out accuracy of 200 stimuli has a standard deviation
    // of sqrt(0.25 * 0.75 / 200) ~ 0.03 around 0.25; allow four of them.
    let random = decodability(&matrix(&noise), &labels, &RidgeOptions::default()).unwrap();
    for a in random.accuracy {
        assert!((a - 0.25).abs() < 0.13, "accuracy {a} on unrelated labels");
    }
}

#[test]
fn tsne_is_deterministic_and_keeps_clusters_apart() {
    let noise = gaussian(90, 5, 50);
    let labels: Vec<usize> = (0..90).map(|i| i % 3).collect();
    let x = matrix(&Mat::from_fn(90, 5, |i, j| {
        noise[(i, j)] + if j == labels[i] { 15.0 } else { 0.0 }
    }));
    let options = TsneOptions {
        perplexity: 10.0,
        iterations: 400,
        ..TsneOptions::default()
    };
    let a = tsne(&x, &options).unwrap();
    assert_eq!(a, tsne(&x, &options).unwrap());
    for i in 0..90 {
        let nearest = (0..90)
            .filter(|&j| j != i)
            .min_by(|&j, &k| {
                let d = |m: usize| (a[i][0] - a[m][0]).powi(2) + (a[i][1] - a[m][1]).powi(2);
                d(j).total_cmp(&d(k))
            })
            .unwrap();
        assert_eq!(
            labels[nearest], labels[i],
            "stimulus {i}'s nearest embedded neighbour is in another class"
        );
    }
    let seeded = TsneOptions {
        init: TsneInit::Random { seed: 3 },
        iterations: 50,
        ..options
    };
    assert_eq!(tsne(&x, &seeded).unwrap(), tsne(&x, &seeded).unwrap());
}

#[test]
fn pca_embedding_scores_have_the_component_variances() {
    let variances = [4.0, 1.0, 0.25];
    let e = pca_embedding(&with_spectrum(60, &variances, 60)).unwrap();
    for (k, want) in variances.iter().take(2).enumerate() {
        let var = e.iter().map(|p| p[k] * p[k]).sum::<f64>() / 59.0;
        approx("score variance", var, *want, 1e-9);
    }
}

#[test]
fn pca_scores_are_the_projections_on_the_known_directions() {
    // X = S R^T with orthogonal centred columns in S (variances 4, 1, 0.25): the k-th principal
    // direction is R's k-th column and the k-th score column is S's, negated where that
    // column's largest-magnitude loading is negative (the sign convention). With 60 units
    // for 40 stimuli, PCA goes through the stimuli's kernel instead of the units' covariance.
    let (scores, _) = spectrum_parts(40, &[4.0, 1.0, 0.25], 61);
    for units in [3, 60] {
        let rotation = orthogonal(units, 62).subcols(0, 3).to_owned();
        let p = pca(&matrix(&(&scores * rotation.transpose()))).unwrap();
        for k in 0..2 {
            let r = rotation.col(k);
            let big = (0..units)
                .max_by(|&a, &b| r[a].abs().total_cmp(&r[b].abs()))
                .unwrap();
            let sign = r[big].signum();
            for i in 0..40 {
                approx("score", p.scores[i][k], sign * scores[(i, k)], 1e-9);
            }
        }
        approx("first variance", p.spectrum.eigenvalues[0], 4.0, 1e-9);
        assert_eq!(p.spectrum.eigenvalues.len(), 3, "{units} units");
    }
}

#[test]
fn results_serialize() {
    let json = serde_json::to_string(&Comparison {
        measure: Measure::Svcca { kept: 0.99 },
        value: 0.5,
    })
    .unwrap();
    assert_eq!(json, r#"{"measure":"svcca","kept":0.99,"value":0.5}"#);
    let back: Comparison = serde_json::from_str(&json).unwrap();
    assert_eq!(back.measure, Measure::Svcca { kept: 0.99 });
}

#[test]
fn measure_names_parse_back() {
    for measure in Measure::all() {
        assert_eq!(measure.name().parse::<Measure>().unwrap(), measure);
    }
    assert_eq!(
        "cka-rbf-0.4".parse::<Measure>().unwrap(),
        Measure::CkaRbf { bandwidth: 0.4 }
    );
    let err = "cka".parse::<Measure>().unwrap_err().to_string();
    assert!(err.contains("cka-linear"), "{err}");
    // Extreme parameters keep short names (they become file names) that parse back.
    for bandwidth in [1e-300, 2.5e-5, 1e10, 0.8, 123.25] {
        let m = Measure::CkaRbf { bandwidth };
        assert!(m.name().len() < 20, "{}", m.name());
        assert_eq!(m.name().parse::<Measure>().unwrap(), m);
    }
    assert_eq!(
        Measure::CkaRbf { bandwidth: 1e-300 }.name(),
        "cka-rbf-1e-300"
    );
    assert_eq!(Measure::Svcca { kept: 1e-20 }.name(), "svcca-1e-20");
}

#[test]
fn figures_name_measures_in_words() {
    let titles: Vec<String> = Measure::all().iter().map(Measure::title).collect();
    let unique: std::collections::BTreeSet<&String> = titles.iter().collect();
    assert_eq!(unique.len(), titles.len(), "{titles:?}");
    assert_eq!(Measure::title_of("svcca-0.57"), "SVCCA (57 % of variance)");
    assert_eq!(
        Measure::title_of("rsa-correlation-tau-a"),
        "RSA (1 - Pearson RDMs, Kendall's tau-a)"
    );
    assert_eq!(Measure::title_of("not-a-measure"), "not-a-measure");
}
