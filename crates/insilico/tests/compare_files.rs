//! `insilico compare` on matrices from files: without `--measures`, a measure undefined for
//! one pair leaves that cell null with its reason and the command succeeds; named with
//! `--measures`, the same measure is an error naming the pair; different stimulus counts
//! are refused naming both files.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_insilico");

/// Runs `insilico ARGS` and returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `stimuli x units` CSV of values from a fixed pseudo-random sequence.
fn write_csv(path: &Path, stimuli: usize, units: usize, seed: u64) {
    let mut state = seed;
    let mut text = String::new();
    for _ in 0..stimuli {
        let row: Vec<String> = (0..units)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("{}", (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
            })
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn saved_matrices_are_the_inputs_as_compared() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.csv"), tmp.path().join("b.csv"));
    write_csv(&a, 20, 3, 5);
    write_csv(&b, 20, 3, 6);
    let out = tmp.path().join("out");
    let (a_path, b_path, out) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let compare = |second: &str| {
        run(&[
            "compare",
            "--csv",
            a_path,
            "--csv",
            second,
            "-o",
            out,
            "--measures",
            "cka-linear",
            "--save-matrices",
        ])
    };
    // One file twice would be two copies under one name.
    let (code, stderr) = compare(a_path);
    assert_ne!(code, 0);
    assert!(stderr.contains("given twice"), "{stderr}");
    let (code, stderr) = compare(b_path);
    assert_eq!(code, 0, "{stderr}");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{out}/matrices.json")).unwrap())
            .unwrap();
    assert_eq!(index.as_array().unwrap().len(), 2);
    assert_eq!(index[1]["file"], "01_b.npy");
    assert_eq!(
        (index[1]["stimuli"].as_u64(), index[1]["units"].as_u64()),
        (Some(20), Some(3))
    );
    let saved =
        insilico_population::Matrix::load_npy(Path::new(&format!("{out}/matrices/01_b.npy")), None)
            .unwrap();
    let read = insilico_population::Matrix::load_csv(&b).unwrap();
    assert_eq!(saved.to_row_major(), read.to_row_major());
}

#[test]
fn an_undefined_cell_is_null_with_its_reason_unless_the_measure_was_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.csv"), tmp.path().join("b.csv"));
    // CCA needs more stimuli than the two inputs' units together: a (20) with b (29) fits
    // in 50 stimuli, b with itself (58) does not.
    write_csv(&a, 50, 20, 1);
    write_csv(&b, 50, 29, 2);
    let out = tmp.path().join("out");
    let (a, b, out) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let (code, stderr) = run(&["compare", "--csv", a, "--csv", b, "-o", out]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "undefined (NaN) for 1 of 4 pairs, listed in compare.json; the first: cca-mean between b and b: CCA: 50 stimuli"
        ),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{out}/compare.json")).unwrap())
            .unwrap();
    let measure = |name: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|m| m["measure"] == name)
            .unwrap()
            .clone()
    };
    let cca = measure("cca-mean");
    assert!(cca["values"][1][1].is_null());
    assert!(cca["values"][0][1].as_f64().unwrap() > 0.0);
    assert!(cca["undefined"][0]
        .as_str()
        .unwrap()
        .starts_with("cca-mean between b and b"));
    assert!(measure("cka-linear").get("undefined").is_none());
    let csv = std::fs::read_to_string(format!("{out}/similarity_cca-mean.csv")).unwrap();
    assert!(csv.contains("b,b,NaN"));
    // Nothing else is written unless asked for.
    assert!(!Path::new(&format!("{out}/matrices.json")).exists());

    let (code, stderr) = run(&[
        "compare",
        "--csv",
        a,
        "--csv",
        b,
        "-o",
        out,
        "--measures",
        "cka-linear,cca-mean",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cca-mean between b and b"), "{stderr}");

    let c = tmp.path().join("c.csv");
    write_csv(&c, 49, 3, 3);
    let (code, stderr) = run(&[
        "compare",
        "--csv",
        a,
        "--csv",
        c.to_str().unwrap(),
        "-o",
        out,
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("c has 49 stimuli but a has 50"), "{stderr}");
}

/// `--conditions class-means` compares each file's mean response per class: the same
/// values as comparing files that hold those means (computed here by hand), with the
/// classes of the rows in `compare.json`.
#[test]
fn class_means_compare_as_the_mean_responses_do() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();
    write_csv(Path::new(&path("a.csv")), 40, 4, 7);
    write_csv(Path::new(&path("b.csv")), 40, 3, 8);
    // Classes numbered with gaps, stimuli interleaved: stimulus i is of class 2 + 3 (i % 5).
    let class = |i: usize| 2 + 3 * (i % 5);
    let labels: String = (0..40).map(|i| format!("{}\n", class(i))).collect();
    std::fs::write(path("labels.csv"), labels).unwrap();
    for name in ["a", "b"] {
        let m = insilico_population::Matrix::load_csv(Path::new(&path(&format!("{name}.csv"))))
            .unwrap();
        let rows: Vec<String> = (0..5)
            .map(|c| {
                let members: Vec<usize> = (0..40).filter(|&i| i % 5 == c).collect();
                let mean = |u| members.iter().map(|&i| m.get(i, u)).sum::<f64>() / 8.0;
                let means: Vec<String> = (0..m.units()).map(|u| mean(u).to_string()).collect();
                means.join(",")
            })
            .collect();
        std::fs::write(path(&format!("{name}_means.csv")), rows.join("\n")).unwrap();
    }
    let measures = "cka-linear,rsa-correlation-spearman,rsa-euclidean-tau-a";
    let compare = |files: [&str; 2], out: &str, extra: &[&str]| {
        let mut args = vec!["compare", "--csv", files[0], "--csv", files[1], "-o", out];
        args.extend(["--measures", measures]);
        args.extend_from_slice(extra);
        let (code, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        let json = std::fs::read_to_string(format!("{out}/compare.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&json).unwrap()
    };
    let (a, b, labels) = (path("a.csv"), path("b.csv"), path("labels.csv"));
    let averaged = compare(
        [&a, &b],
        &path("averaged"),
        &["--conditions", "class-means", "--labels", &labels],
    );
    let means = compare(
        [&path("a_means.csv"), &path("b_means.csv")],
        &path("means"),
        &[],
    );
    for (got, want) in averaged
        .as_array()
        .unwrap()
        .iter()
        .zip(means.as_array().unwrap())
    {
        assert_eq!(got["measure"], want["measure"]);
        assert_eq!(got["conditions"], "class-means");
        assert_eq!(want["conditions"], "stimuli");
        assert_eq!(got["classes"], serde_json::json!([2, 5, 8, 11, 14]));
        let value = |v: &serde_json::Value| v["values"][0][1].as_f64().unwrap();
        let (g, w) = (value(got), value(want));
        assert!((g - w).abs() < 1e-12, "{}: {g} against {w}", got["measure"]);
    }
    // Without --labels and without a run, the classes are unknown.
    let out = path("unknown");
    let (code, stderr) = run(&[
        "compare",
        "--csv",
        &a,
        "--csv",
        &b,
        "--conditions",
        "class-means",
        "-o",
        &out,
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("give --labels FILE"), "{stderr}");
}

/// `--save-rdms` writes each input's RDM as a square NPY file (Euclidean distances as
/// worked out here, row by row), a heatmap where there are few conditions, and an index
/// in which an undefined RDM (a stimulus with the same response in every unit has no
/// correlation distance) gives its reason while the others are saved.
#[test]
fn saved_rdms_are_the_distances_and_an_undefined_one_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();
    // Stimulus 0 of `a` is the same (0) in every unit.
    let a: [[f64; 3]; 5] = [
        [0.0, 0.0, 0.0],
        [3.0, 4.0, 0.0],
        [1.0, 0.0, 2.0],
        [0.0, 2.0, 2.0],
        [4.0, 1.0, 1.0],
    ];
    let text: String = a
        .iter()
        .map(|r| format!("{},{},{}\n", r[0], r[1], r[2]))
        .collect();
    std::fs::write(path("a.csv"), text).unwrap();
    write_csv(Path::new(&path("b.csv")), 5, 2, 9);
    let out = path("out");
    let (code, stderr) = run(&[
        "compare",
        "--csv",
        &path("a.csv"),
        "--csv",
        &path("b.csv"),
        "--save-rdms",
        "-o",
        &out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{out}/rdms.json")).unwrap())
            .unwrap();
    let entry = |label: &str, metric: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["label"] == label && e["metric"] == metric)
            .unwrap_or_else(|| panic!("{label} {metric} in {index}"))
            .clone()
    };
    let undefined = entry("a", "correlation");
    assert!(undefined["file"].is_null());
    assert!(
        undefined["undefined"]
            .as_str()
            .unwrap()
            .contains("stimulus 0"),
        "{undefined}"
    );
    for (label, metric) in [("a", "euclidean"), ("b", "correlation"), ("b", "euclidean")] {
        let e = entry(label, metric);
        let figure = e["figure"].as_str().unwrap();
        assert!(Path::new(&format!("{out}/{figure}")).exists(), "{e}");
    }
    let file = entry("a", "euclidean")["file"].as_str().unwrap().to_owned();
    let saved =
        insilico_population::Matrix::load_npy(Path::new(&format!("{out}/{file}")), None).unwrap();
    assert_eq!((saved.stimuli(), saved.units()), (5, 5));
    for i in 0..5 {
        for j in 0..5 {
            let d: f64 = (0..3)
                .map(|u| (a[i][u] - a[j][u]).powi(2))
                .sum::<f64>()
                .sqrt();
            let got = saved.get(i, j);
            assert!((got - d).abs() < 1e-12, "({i}, {j}): {got} against {d}");
        }
    }
}
