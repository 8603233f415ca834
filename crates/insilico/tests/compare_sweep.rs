//! The sweep-level `[compare]` step end to end, on the embedded shapes set: runs compared
//! within groups with the memorization check, and runs compared with themselves over
//! training with the bottom-up check; both checks printed and in the report.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_insilico");

const BASE: &str = r#"
name = "tiny-compare"
[base.data]
dataset = "shapes"
train_limit = 400
data_seed = 0
[base.training]
epochs = 2
eval_train_limit = 100
lr = 0.003
"#;

fn run_sweep(dir: &Path, text: &str) -> (bool, String, String) {
    let file = dir.join("sweep.toml");
    std::fs::write(&file, text).unwrap();
    let o = Command::new(BIN)
        .args(["sweep", file.to_str().unwrap(), "--out"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn groups_of_runs_are_compared_and_the_memorization_check_is_printed_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "{BASE}[grid]\nmodel = [\"mlp-2x128\"]\nshuffle_labels = [false, true]\nseed = [0, 1]\n\
         [compare]\nmeasures = [\"cka-linear\", \"pwcca\"]\nimages = 600\nchecks = [\"memorization\"]\n"
    );
    let (ok, out, err) = run_sweep(tmp.path(), &text);
    assert!(ok, "{err}");
    assert_eq!(out.matches("Memorization (Morcos").count(), 2, "{out}");
    let c: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("out/summary/compare/comparison.json")).unwrap(),
    )
    .unwrap();
    let groups = c["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    // Two runs per group: the two ordered pairs, each a 2 x 2 site matrix.
    assert_eq!(
        groups[0]["measures"][0]["values"].as_array().unwrap().len(),
        2
    );
    let report = std::fs::read_to_string(tmp.path().join("out/report.html")).unwrap();
    assert!(report.contains("Representation comparison across runs"));
    assert!(report.contains("Memorization (Morcos"));
    class_means_are_compared_as_the_command_compares_them(tmp.path());
}

/// The same sweep with `conditions = "class-means"` (the runs trained, only the comparison
/// redone): each pair of runs gets the values that `insilico compare --conditions
/// class-means` gives those two runs.
fn class_means_are_compared_as_the_command_compares_them(tmp: &Path) {
    let text = format!(
        "{BASE}[grid]\nmodel = [\"mlp-2x128\"]\nshuffle_labels = [false, true]\nseed = [0, 1]\n\
         [compare]\nmeasures = [\"cka-linear\"]\nimages = 600\nconditions = \"class-means\"\n"
    );
    let (ok, _, err) = run_sweep(tmp, &text);
    assert!(ok, "{err}");
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let c = read(&tmp.join("out/summary/compare/comparison.json"));
    assert_eq!(c["spec"]["conditions"], "class-means");
    let group = &c["groups"][0];
    let runs: Vec<String> = group["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            tmp.join("out/runs")
                .join(r.as_str().unwrap())
                .display()
                .to_string()
        })
        .collect();
    let out = tmp.join("compared");
    let o = Command::new(BIN)
        .args([
            "compare", &runs[0], &runs[1], "--split", "test", "--images", "600",
        ])
        .args([
            "--conditions",
            "class-means",
            "--measures",
            "cka-linear",
            "-q",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Rows and columns: run 0's two sites, then run 1's; the sweep's first pair is run 0
    // (rows) against run 1 (columns).
    let command = &read(&out.join("compare.json"))[0]["values"];
    let sweep = &group["measures"][0]["values"][0];
    for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let (got, want) = (
            sweep[i][j].as_f64().unwrap(),
            command[i][2 + j].as_f64().unwrap(),
        );
        assert!(
            (got - want).abs() < 1e-12,
            "({i}, {j}): {got} against {want}"
        );
    }
}

#[test]
fn runs_are_compared_with_themselves_over_training() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "{BASE}snapshots = \"every:3\"\n[grid]\nmodel = [\"mlp-2x128\"]\nseed = [0]\n\
         [compare]\nover_training = true\nmeasures = [\"svcca-0.99\", \"cka-linear\"]\nimages = 600\nchecks = [\"bottom-up\"]\n"
    );
    let (ok, out, err) = run_sweep(tmp.path(), &text);
    assert!(ok, "{err}");
    assert_eq!(out.matches("Bottom-up convergence").count(), 2, "{out}");
    let dir = tmp.path().join("out/summary/compare/run0");
    let csv = std::fs::read_to_string(dir.join("over_training_svcca-0.99.csv")).unwrap();
    // One row per snapshot and hidden site (mlp-2x128 has two).
    let index = std::fs::read_to_string(
        tmp.path()
            .join("out/runs/mlp-2x128_seed=0/snapshots/index.csv"),
    )
    .unwrap();
    let steps: Vec<&str> = index
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert!(steps.len() >= 4, "{index}");
    assert_eq!(csv.lines().count(), 1 + steps.len() * 2, "{csv}");
    // The last snapshot is the final network: similarity 1 with itself.
    let last = format!(",{},", steps[steps.len() - 1]);
    for line in csv.lines().filter(|l| l.contains(&last)) {
        let v: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((v - 1.0).abs() < 1e-6, "{line}");
    }
    let run = tmp.path().join("out/runs/mlp-2x128_seed=0");
    saved_snapshots_give_the_heatmap(&run, &tmp.path().join("saved"), steps.len());
    sites_typed_out_of_order_are_compared_in_depth_order(&run, tmp.path());
}

/// `--sites fc2.relu,fc1.relu` is the default (every hidden site, input to output): the
/// same rows, values and bottom-up check; the order typed is not taken as depth. The
/// second call names the run as the other assays do, `--run RUN`: the same comparison.
fn sites_typed_out_of_order_are_compared_in_depth_order(run: &Path, tmp: &Path) {
    let over = |sites: &[&str], out: &Path| {
        let mut c = Command::new(BIN);
        c.args(["compare", "--over-training", "--measures", "cka-linear"])
            .args(["--images", "300", "-q", "-o"])
            .arg(out);
        if sites.is_empty() {
            c.arg(run);
        } else {
            c.args(["--sites", &sites.join(",")]).arg("--run").arg(run);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let json = std::fs::read_to_string(out.join("over_training.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["seconds"] = serde_json::Value::Null;
        (v, String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let (default, _) = over(&[], &tmp.join("default-order"));
    let (typed, printed) = over(&["fc2.relu", "fc1.relu"], &tmp.join("typed-order"));
    assert_eq!(typed["sites"], serde_json::json!(["fc1.relu", "fc2.relu"]));
    assert_eq!(typed, default);
    assert!(printed.contains("non-decreasing with depth"), "{printed}");
}

/// `compare --over-training --save-matrices`: every site at every snapshot is saved, and
/// linear CKA recomputed from the saved files is the heatmap's value.
fn saved_snapshots_give_the_heatmap(run: &Path, out: &Path, snapshots: usize) {
    let o = Command::new(BIN)
        .args([
            "compare",
            "--over-training",
            "--save-matrices",
            "--measures",
        ])
        .args(["cka-linear", "--images", "300", "-q", "-o"])
        .args([out, run])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("matrices.json")).unwrap()).unwrap();
    let index = index.as_array().unwrap();
    assert_eq!(index.len(), snapshots * 2);
    let load = |entry: &serde_json::Value| {
        let file = out.join("matrices").join(entry["file"].as_str().unwrap());
        insilico_population::Matrix::load_npy(&file, None).unwrap()
    };
    // The index lists snapshots in order, the sites of each together; the last are the finals.
    let finals = [&index[index.len() - 2], &index[index.len() - 1]];
    let csv = std::fs::read_to_string(out.join("over_training_cka-linear.csv")).unwrap();
    for entry in index {
        let site = usize::from(entry["label"].as_str().unwrap().ends_with("fc2.relu"));
        let value = insilico_population::cka_linear(&load(entry), &load(finals[site])).unwrap();
        let step = entry["step"].as_u64().unwrap();
        let name = ["fc1.relu", "fc2.relu"][site];
        let row = csv
            .lines()
            .find(|l| l.starts_with(&format!("{name},{step},")))
            .unwrap_or_else(|| panic!("no row for {name} at {step}: {csv}"));
        let listed: f64 = row.rsplit(',').next().unwrap().parse().unwrap();
        assert!((listed - value).abs() < 1e-5, "{row}: recomputed {value}");
    }
}

#[test]
fn a_bad_compare_table_is_refused_before_any_run() {
    let tmp = tempfile::tempdir().unwrap();
    for (compare, needle) in [
        ("across = \"lr\"", "compare.across"),
        ("checks = [\"bottom-up\"]", "over_training"),
        ("measures = [\"cka-lin\"]", "cka-lin"),
        ("images = 1", "compare.images"),
        ("over_training = true", "training.snapshots"),
    ] {
        let text =
            format!("{BASE}[grid]\nmodel = [\"mlp-2x128\"]\nseed = [0, 1]\n[compare]\n{compare}\n");
        let (ok, _, err) = run_sweep(tmp.path(), &text);
        assert!(!ok && err.contains(needle), "{needle}: {err}");
        assert!(
            !tmp.path().join("out/runs").exists(),
            "{needle}: nothing ran"
        );
    }
}
