//! The sweep runner end to end: validation, dry run, and kill -9 at arbitrary moments.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_insilico");

const SWEEP: &str = r#"
name = "tiny"
description = "a two-point memorization study on the embedded shapes set"
[base.data]
dataset = "shapes"
train_limit = 600
[base.training]
epochs = 4
eval_train_limit = 200
lr = 0.003
[grid]
model = ["mlp-2x128"]
label_noise = [0.0, 1.0]
seed = [0]
[assays]
images = 300
[assays.ablation]
repeats = 2
steps = 4
[assays.selectivity]
bins = 8
"#;

fn write_sweep(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("sweep.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep(file: &Path, out: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "sweep",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

fn digest(path: &Path) -> String {
    insilico_data::fsx::sha256_hex(&std::fs::read(path).unwrap())
}

/// The results that must not depend on interruptions: weights and ablation numbers.
fn results(out: &Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for point in [
        "mlp-2x128_label_noise=0.0_seed=0",
        "mlp-2x128_label_noise=1.0_seed=0",
    ] {
        let run = out.join("runs").join(point);
        v.push((
            format!("{point} weights"),
            digest(&run.join("weights.safetensors")),
        ));
        v.push((
            format!("{point} ablation"),
            digest(&run.join("assays/ablation/summary.csv")),
        ));
        v.push((
            format!("{point} selectivity"),
            digest(&run.join("assays/selectivity/units.csv")),
        ));
    }
    v
}

/// No finished-looking file is ever half-written: every JSON file parses, every CSV has
/// a header and whole lines.
fn check_no_torn_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // temporary files and directories, never read as results
        }
        if path.is_dir() {
            check_no_torn_files(&path);
        } else if name.ends_with(".json") {
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{} is torn: {e}", path.display()));
        } else if name.ends_with(".csv") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.ends_with('\n') && text.lines().count() >= 1,
                "{} is torn",
                path.display()
            );
        }
    }
}

#[test]
fn a_sweep_killed_at_any_moment_resumes_to_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_sweep(tmp.path(), SWEEP);
    let reference = tmp.path().join("reference");
    assert!(sweep(&file, &reference).status().unwrap().success());
    assert!(reference.join("report.html").exists());
    assert!(reference.join("summary/summary.csv").exists());
    let expected = results(&reference);

    let out = tmp.path().join("killed");
    let mut kills = 0;
    for attempt in 1..=40 {
        let mut child = sweep(&file, &out).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(150 * attempt));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "sweep failed on attempt {attempt}");
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                check_no_torn_files(&out);
            }
        }
    }
    assert!(
        kills >= 2,
        "the sweep was never interrupted ({kills} kills)"
    );
    assert!(out.join("report.html").exists());
    assert_eq!(results(&out), expected, "after {kills} kills");
    // A second invocation finds everything done and only redraws the summary.
    assert!(sweep(&file, &out).status().unwrap().success());
    assert_eq!(results(&out), expected);
}

#[test]
fn dry_run_lists_the_grid_and_invalid_files_are_rejected_before_any_run() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_sweep(tmp.path(), SWEEP);
    let out = tmp.path().join("out");
    let o = Command::new(BIN)
        .args([
            "sweep",
            file.to_str().unwrap(),
            "--dry-run",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        text.contains("2 grid points") && text.contains("mlp-2x128_label_noise=1.0_seed=0"),
        "{text}"
    );
    assert!(!out.exists(), "a dry run writes nothing");

    for (bad, needle) in [
        (SWEEP.replace("[0.0, 1.0]", "[0.0, 1.5]"), "label_noise"),
        (SWEEP.replace("bins = 8", "bins = 8\nbogus = 1"), "bogus"),
        (
            SWEEP.replace("images = 300", "images = 300\nsites = [\"fc9.relu\"]"),
            "fc9.relu",
        ),
        (
            SWEEP.replace("\"mlp-2x128\"", "\"no-such-model\""),
            "no-such-model",
        ),
    ] {
        let file = write_sweep(tmp.path(), &bad);
        let o = Command::new(BIN)
            .args([
                "sweep",
                file.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{needle}: {err}"
        );
        assert!(
            !out.join("runs").exists(),
            "{needle}: nothing may run before validation passes"
        );
    }
}
