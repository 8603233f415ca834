//! The command line refuses every degenerate assay option before any work, with the
//! field named and exit status 1, exactly as a sweep file refuses it; and `--options
//! FILE` merges under the flags.

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

#[test]
fn degenerate_assay_options_are_refused_naming_the_field() {
    let cases: &[(&[&str], &str)] = &[
        (&["ablate", "--repeats", "0"], "ablation.repeats = 0"),
        (&["ablate", "--steps", "0"], "ablation.steps = 0"),
        (&["ablate", "--images", "0"], "assays.images = 0"),
        (&["selectivity", "--images", "0"], "assays.images = 0"),
        (&["selectivity", "--bins", "1"], "selectivity.bins = 1"),
        (&["noise", "--repeats", "0"], "noise.repeats = 0"),
        (&["noise", "--max-level", "inf"], "noise.max_level = inf"),
        (&["noise", "--images", "0"], "assays.images = 0"),
        (
            &["receptive-fields", "--lr", "NaN"],
            "receptive_fields.lr = NaN",
        ),
        (&["receptive-fields", "--images", "0"], "assays.images = 0"),
        (&["population", "--folds", "1"], "population.folds = 1"),
        (
            &["population", "--perplexity", "inf"],
            "population.perplexity = inf",
        ),
        (
            &["population", "--perplexity", "1e-5"],
            "population.perplexity = 0.00001: must be at least 1",
        ),
        (
            &["selectivity", "--sites", "fc1.relu,fc2.relu,fc1.relu"],
            "assays.sites: `fc1.relu` is given twice",
        ),
        (&["tuning", "--orientations", "8"], "tuning.orientations"),
        (&["tuning", "--contrasts", "0"], "tuning.contrasts"),
        (
            &["erf", "--gradient-images", "0"],
            "erf.gradient_images = 0",
        ),
        (&["erf", "--mass", "1.5"], "erf.mass"),
        (
            &["receptive-fields", "--steps", "0"],
            "receptive_fields.steps = 0",
        ),
    ];
    for (args, field) in cases {
        let mut full = args.to_vec();
        full.extend(["--run", "no-such-run", "--quiet"]);
        let (code, err) = run(&full);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(field), "{args:?} should name {field}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn the_sweep_refuses_the_same_values_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "name = \"t\"\n[grid]\nmodel = [\"mlp-2x128\"]\n[assays.noise]\nmax_level = inf\n",
    )
    .unwrap();
    let (code, err) = run(&["sweep", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("noise.max_level = inf"), "{err}");
}

/// Runs `insilico COMMAND --run no-such-run --options FILE EXTRA...`, `FILE` (called
/// `name`) holding `text`; returns (exit code, stderr).
fn with_options_file(command: &str, name: &str, text: &str, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    let mut args = vec![command, "--run", "no-such-run", "--options"];
    args.push(file.to_str().unwrap());
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn an_options_file_is_checked_and_merged_under_the_flags() {
    let ablate =
        |extra: &[&str]| with_options_file("ablate", "ablation.toml", "repeats = 0\n", extra);
    // The file's bad value is refused, naming the file and the field...
    let (code, err) = ablate(&[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("ablation.toml") && err.contains("ablation.repeats"),
        "{err}"
    );
    // ...unless a flag overrides it; then the run directory is what is missing.
    let (code, err) = ablate(&["--repeats", "2"]);
    assert_eq!(code, 1);
    assert!(
        !err.contains("repeats") && err.contains("no-such-run"),
        "{err}"
    );
    assert!(!Path::new("no-such-run").exists());
}

#[test]
fn an_options_file_perplexity_below_one_is_refused_naming_the_file() {
    let text = "perplexity = 1e-5\n";
    let (code, err) = with_options_file("population", "population.toml", text, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("population.toml") && err.contains("population.perplexity = 0.00001"),
        "{err}"
    );
}

#[test]
fn a_measure_given_twice_is_refused_naming_it() {
    // `cka-rbf-1.0` is the same measure as `cka-rbf-1` (the bandwidth 1).
    for (measures, says) in [
        ("cka-linear,cka-linear", "`cka-linear` is given twice"),
        (
            "cka-rbf-1,pwcca,cka-rbf-1.0",
            "`cka-rbf-1.0` is the same as `cka-rbf-1`",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let o = out.to_str().unwrap();
        let (code, err) = run(&["compare", "--measures", measures, "--out", o]);
        assert_eq!(code, 1, "{measures}: {err}");
        assert!(err.contains(&format!("--measures: {says}")), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "{measures}: nothing is written");
    }
}
