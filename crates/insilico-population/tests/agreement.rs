//! Agreement with the reference implementations on fixed random data: the expected values
//! are computed by `fixtures/make_fixtures.py` (google/svcca, Kornblith et al.'s CKA,
//! rsatoolbox, scikit-learn) and committed as `fixtures/reference.json`.

use std::path::PathBuf;

use insilico_population::*;
use serde_json::Value;

const TOLERANCE: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn matrix(v: &Value) -> Matrix {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(numbers).collect();
    let flat: Vec<f64> = rows.concat();
    Matrix::from_row_major(rows.len(), rows[0].len(), &flat).unwrap()
}

fn close(what: &str, got: f64, want: &Value) {
    let want = want.as_f64().unwrap();
    assert!(
        (got - want).abs() < TOLERANCE,
        "{what}: got {got}, reference {want}"
    );
}

fn close_all(what: &str, got: &[f64], want: &Value) {
    let want = numbers(want);
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() < TOLERANCE,
            "{what}[{i}]: got {g}, reference {w}"
        );
    }
}

fn inputs(r: &Value) -> (Matrix, Matrix, Vec<usize>) {
    let labels = r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    (matrix(&r["x"]), matrix(&r["y"]), labels)
}

#[test]
fn cka_matches_kornblith() {
    let r = reference();
    let (x, y, _) = inputs(&r);
    close("linear CKA", cka_linear(&x, &y).unwrap(), &r["cka_linear"]);
    close(
        "debiased CKA",
        cka_debiased(&x, &y).unwrap(),
        &r["cka_debiased"],
    );
    for bandwidth in ["0.5", "1.0"] {
        let got = cka_rbf(&x, &y, bandwidth.parse().unwrap()).unwrap();
        close(
            &format!("RBF CKA {bandwidth}"),
            got,
            &r["cka_rbf"][bandwidth],
        );
    }
}

#[test]
fn cca_svcca_pwcca_match_google_svcca() {
    let r = reference();
    let (x, y, _) = inputs(&r);
    let c = cca(&x, &y).unwrap();
    close_all(
        "CCA correlations",
        &c.correlations,
        &r["cca"]["correlations"],
    );
    close("CCA mean", c.mean, &r["cca"]["mean"]);
    close(
        "CCA mean squared",
        c.mean_squared,
        &r["cca"]["mean_squared"],
    );
    for kept in ["0.99", "0.6"] {
        let s = svcca(&x, &y, kept.parse().unwrap()).unwrap();
        let want = &r["svcca"][kept];
        assert_eq!(
            s.kept_x as u64,
            want["kept_x"].as_u64().unwrap(),
            "SVCCA {kept} kept x"
        );
        assert_eq!(
            s.kept_y as u64,
            want["kept_y"].as_u64().unwrap(),
            "SVCCA {kept} kept y"
        );
        close(&format!("SVCCA {kept}"), s.mean, &want["mean"]);
    }
    let p = pwcca(&x, &y).unwrap();
    assert_eq!(p.weighted_side, WeightedSide::X);
    close("PWCCA", p.value, &r["pwcca"]["value"]);
    close_all("PWCCA weights", &p.weights, &r["pwcca"]["weights"]);
    // Weights always come from the smaller input (X here), so swapping the arguments gives
    // the same value through the Y branch.
    let swapped = pwcca(&y, &x).unwrap();
    assert_eq!(swapped.weighted_side, WeightedSide::Y);
    close("PWCCA swapped", swapped.value, &r["pwcca"]["value"]);
}

#[test]
fn rsa_matches_rsatoolbox() {
    let r = reference();
    let (x, y, labels) = inputs(&r);
    for (name, metric) in [
        ("correlation", RdmMetric::Correlation),
        ("euclidean", RdmMetric::Euclidean),
    ] {
        let want = &r["rsa"][name];
        let got = rdm(&x, metric).unwrap();
        // rsatoolbox's euclidean RDM is the squared distance over the number of units.
        let comparable: Vec<f64> = match metric {
            RdmMetric::Correlation => got.upper.clone(),
            RdmMetric::Euclidean => got.upper.iter().map(|d| d * d / x.units() as f64).collect(),
        };
        close_all(&format!("{name} RDM"), &comparable, &want["rdm_x"]);
        close(
            &format!("{name} Spearman"),
            rsa(&x, &y, metric, RdmComparison::Spearman).unwrap(),
            &want["spearman"],
        );
        close(
            &format!("{name} tau-a"),
            rsa(&x, &y, metric, RdmComparison::KendallTauA).unwrap(),
            &want["tau_a"],
        );
        let (cx, cy) = (
            x.class_means(&labels).unwrap(),
            y.class_means(&labels).unwrap(),
        );
        close(
            &format!("{name} class-averaged Spearman"),
            rsa(&cx, &cy, metric, RdmComparison::Spearman).unwrap(),
            &want["class_spearman"],
        );
    }
    let model = Rdm {
        stimuli: x.stimuli(),
        metric: RdmMetric::Euclidean,
        upper: numbers(&r["rsa"]["model"]["upper"]),
    };
    let data = rdm(&x, RdmMetric::Correlation).unwrap();
    close(
        "tied model tau-a",
        compare_rdms(&data, &model, RdmComparison::KendallTauA).unwrap(),
        &r["rsa"]["model"]["tau_a"],
    );
    close(
        "tied model Spearman",
        compare_rdms(&data, &model, RdmComparison::Spearman).unwrap(),
        &r["rsa"]["model"]["spearman"],
    );
}

#[test]
fn ridge_matches_sklearn_ridgecv() {
    let r = reference();
    let (x, y, _) = inputs(&r);
    let result = ridge_predictivity(&x, &y, &RidgeOptions::default()).unwrap();
    close_all("alphas", &result.alphas, &r["ridge"]["alphas"]);
    close_all("R2", &result.r2, &r["ridge"]["r2"]);
    close_all("Pearson", &result.pearson, &r["ridge"]["pearson"]);
    close("median R2", result.median_r2, &r["ridge"]["median_r2"]);
    close(
        "median Pearson",
        result.median_pearson,
        &r["ridge"]["median_pearson"],
    );
    assert!(result.constant_targets.is_empty());
}

#[test]
fn spectrum_matches_sklearn_pca() {
    let r = reference();
    let (x, _, _) = inputs(&r);
    let s = spectrum(&x).unwrap();
    close_all("eigenvalues", &s.eigenvalues, &r["spectrum"]["eigenvalues"]);
    close(
        "participation ratio",
        s.participation_ratio,
        &r["spectrum"]["participation_ratio"],
    );
}

#[test]
fn decodability_matches_sklearn_pca_then_ridge_classifier() {
    // Accuracies are counts over 60 stimuli, so exact agreement means the same prediction for
    // every held-out stimulus at every k (PCA refitted per training set, the penalty chosen
    // by leave-one-out over all classes together).
    let r = reference();
    let (x, _, labels) = inputs(&r);
    let d = decodability(&x, &labels, &RidgeOptions::default()).unwrap();
    let want = &r["decoding"];
    let ks: Vec<usize> = numbers(&want["components"])
        .iter()
        .map(|&k| k as usize)
        .collect();
    assert_eq!(d.components, ks);
    // Within 1e-4, far below one stimulus (1/60).
    close_all("accuracy", &d.accuracy, &want["accuracy"]);
    close("chance", d.chance, &want["chance"]);
}

#[test]
fn loaders_read_numpy_and_csv_files() {
    let r = reference();
    let dir = fixture_dir();
    // serde_json's float parsing is not always correctly rounded: compare within 1e-12.
    let same = |what: &str, got: Matrix, want: Matrix| {
        assert_eq!(
            (got.stimuli(), got.units()),
            (want.stimuli(), want.units()),
            "{what}"
        );
        for (g, w) in got.to_row_major().iter().zip(want.to_row_major()) {
            assert!((g - w).abs() < 1e-12, "{what}: {g} vs {w}");
        }
    };
    same(
        "f32 NPY",
        Matrix::load_npy(&dir.join("x_f32.npy"), None).unwrap(),
        matrix(&r["x_f32"]),
    );
    same(
        "CSV with header",
        Matrix::load_csv(&dir.join("x.csv")).unwrap(),
        matrix(&r["x"]),
    );
    let flat = Matrix::load_npy(&dir.join("conv.npy"), Some(Reduction::Flatten)).unwrap();
    same("conv flattened", flat, matrix(&r["conv"]["flatten"]));
    let mean = Matrix::load_npy(&dir.join("conv.npy"), Some(Reduction::SpatialMean)).unwrap();
    same(
        "conv spatial mean",
        mean,
        matrix(&r["conv"]["spatial_mean"]),
    );
    let err = Matrix::load_npy(&dir.join("conv.npy"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv.npy") && err.contains("reduction"),
        "{err}"
    );
}
