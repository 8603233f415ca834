//! The Slurm executor on a real Slurm (`scripts/slurm/start.sh` starts a single-node
//! cluster; `.ci/run` does so and sets INSILICO_SLURM=1). Without `sbatch` on the PATH
//! the cluster tests say so and pass, unless INSILICO_SLURM=1 asks for them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_insilico");

/// Two points, a few seconds each; the second diverges (lr 1e12) when `FAIL` is set.
const SWEEP: &str = r#"
name = "tiny-slurm"
[base.data]
dataset = "shapes"
train_limit = 400
[base.training]
epochs = 2
eval_train_limit = 100
lr = 0.003
[grid]
model = ["mlp-2x128"]
label_noise = [0.0, 1.0]
seed = [0]
[assays]
images = 200
[assays.ablation]
repeats = 2
steps = 4
"#;

/// One point training long enough (12 epochs of about 0.4 s on 2 cores) to be signalled
/// well before it ends.
const LONG: &str = r#"
name = "long-slurm"
[base.data]
dataset = "shapes"
train_limit = 4000
[base.training]
epochs = 12
eval_train_limit = 100
lr = 0.003
[grid]
model = ["mlp-2x128"]
seed = [1]
"#;

/// Whether the cluster tests can run: false (with the reason printed) without sbatch,
/// a failure when INSILICO_SLURM=1 says a cluster must be there.
fn cluster() -> bool {
    let sbatch = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sbatch").is_file()));
    if !sbatch {
        assert!(
            std::env::var("INSILICO_SLURM").as_deref() != Ok("1"),
            "INSILICO_SLURM=1 but sbatch is not on the PATH (scripts/slurm/start.sh --install)"
        );
        // Written to stderr itself, past the test harness's capture, so that a skip shows.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: sbatch is not on the PATH (start a cluster: scripts/slurm/start.sh)"
        );
    }
    sbatch
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep(file: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.args([
        "sweep",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(["--device", "cpu", "--quiet"])
    .args(extra);
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

fn jobs(out: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(out.join("slurm/jobs.json")).unwrap();
    serde_json::from_str(&t).unwrap()
}

/// Waits until none of this sweep's jobs is queued or running.
fn wait_for(out: &Path, limit: Duration) {
    let started = Instant::now();
    let ids: Vec<String> = jobs(out)
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| [s["array_job"].as_str(), s["summary_job"].as_str()])
        .flatten()
        .map(String::from)
        .collect();
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-o", "%i", "-j", &ids.join(",")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "jobs {ids:?} still queued after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn digest(path: &Path) -> String {
    insilico_data::fsx::sha256_hex(&std::fs::read(path).unwrap())
}

/// summary.csv without its timing columns (train_s, assays_s).
fn summary_table(out: &Path) -> Vec<Vec<String>> {
    let t = std::fs::read_to_string(out.join("summary/summary.csv")).unwrap();
    let rows: Vec<Vec<String>> = t
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let skip: Vec<usize> = rows[0]
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ends_with("_s"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(skip.len(), 2, "{:?}", rows[0]);
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .map(|(_, c)| c)
                .collect()
        })
        .collect()
}

#[test]
fn a_sweep_through_slurm_gives_the_same_tables_as_the_local_executor() {
    if !cluster() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "sweep.toml", SWEEP);
    let (local, remote) = (tmp.path().join("local"), tmp.path().join("slurm"));
    let submitted = ok(sweep(&file, &remote, &["--executor", "slurm"]));
    assert!(submitted.contains("submitted job array"), "{submitted}");
    // The test's sweep directory is under /tmp: fine on one node, and said so.
    assert!(submitted.contains("local to each node"), "{submitted}");
    ok(sweep(&file, &local, &[]));
    wait_for(&remote, Duration::from_secs(300));
    assert!(
        remote.join("report.html").exists(),
        "the summary job wrote the report"
    );
    assert_eq!(summary_table(&remote), summary_table(&local));
    for p in [
        "mlp-2x128_label_noise=0.0_seed=0",
        "mlp-2x128_label_noise=1.0_seed=0",
    ] {
        let w = |o: &Path| digest(&o.join("runs").join(p).join("weights.safetensors"));
        assert_eq!(w(&remote), w(&local), "{p}");
    }
    let status = ok(sweep(&file, &remote, &["--status"]));
    assert!(
        status.contains("2 done, 0 running, 0 pending, 0 failed"),
        "{status}"
    );
    // A finished sweep submits nothing again.
    let again = ok(sweep(&file, &remote, &["--executor", "slurm"]));
    assert!(again.contains("nothing submitted"), "{again}");
    assert_eq!(jobs(&remote).as_array().unwrap().len(), 1);
}

#[test]
fn a_task_signalled_to_stop_is_requeued_and_ends_with_the_same_weights() {
    if !cluster() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "long.toml", LONG);
    let (local, remote) = (tmp.path().join("local"), tmp.path().join("slurm"));
    ok(sweep(&file, &remote, &["--executor", "slurm"]));
    let task = format!("{}_0", jobs(&remote)[0]["array_job"].as_str().unwrap());
    // The handlers are in place once training has written its config; the checkpoint
    // after the first epoch says that training is well under way.
    let run = remote.join("runs/mlp-2x128_seed=1");
    let started = Instant::now();
    while !run.join("checkpoints/latest").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let signal = Command::new("scancel")
        .args(["--batch", "--signal=USR2", &task])
        .output()
        .unwrap();
    assert!(signal.status.success(), "{}", text(&signal));
    ok(sweep(&file, &local, &[]));
    wait_for(&remote, Duration::from_secs(300));
    let log =
        std::fs::read_to_string(remote.join("slurm/logs").join(format!("{task}.log"))).unwrap();
    assert!(log.contains("stopped by a signal"), "{log}");
    assert!(log.contains("(resuming)"), "{log}");
    let w = |o: &Path| digest(&o.join("runs/mlp-2x128_seed=1/weights.safetensors"));
    assert_eq!(w(&remote), w(&local));
    assert_eq!(summary_table(&remote), summary_table(&local));
    let status = ok(sweep(&file, &remote, &["--status"]));
    assert!(status.contains("1 done"), "{status}");
}

#[test]
fn a_failing_point_shows_in_status_with_its_log() {
    if !cluster() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // SGD at lr 1e12 diverges on its first steps: validation passes, training fails.
    let text = SWEEP.replace("lr = 0.003", "lr = 1e12\noptimizer = \"sgd\"");
    let file = write(tmp.path(), "fail.toml", &text);
    let out = tmp.path().join("slurm");
    ok(sweep(
        &file,
        &out,
        &["--executor", "slurm", "--array-parallelism", "1"],
    ));
    wait_for(&out, Duration::from_secs(300));
    let status = ok(sweep(&file, &out, &["--status"]));
    assert!(status.contains("2 failed"), "{status}");
    assert!(status.contains("FAILED"), "{status}");
    assert!(
        status.contains("training diverged"),
        "the log's tail: {status}"
    );
    assert!(!out.join("report.html").exists());
}

#[test]
fn refused_submissions_say_why_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "sweep.toml", SWEEP);
    let out = tmp.path().join("out");
    // No sbatch: a clear error (needs no cluster).
    let o = Command::new(BIN)
        .args([
            "sweep",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--executor", "slurm", "--device", "cpu"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("`sbatch` is not on the PATH"),
        "{}",
        text(&o)
    );
    // A bad [slurm] table is refused when the file is read, naming the field.
    let bad = write(
        tmp.path(),
        "bad.toml",
        &format!("{SWEEP}\n[slurm]\ntime = \"2h\"\n"),
    );
    let o = sweep(&bad, &out, &["--dry-run"]);
    assert!(
        !o.status.success() && text(&o).contains("slurm.time"),
        "{}",
        text(&o)
    );
    if !cluster() {
        return;
    }
    let o = sweep(
        &file,
        &out,
        &["--executor", "slurm", "--partition", "nowhere"],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no such partition") && text(&o).contains("debug"),
        "{}",
        text(&o)
    );
    // Slurm's own refusal is passed on: more memory than the node has.
    let o = sweep(&file, &out, &["--executor", "slurm", "--mem", "100000G"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("Slurm refused the job array") && t.contains("sbatch: error"),
        "{t}"
    );
    assert!(
        !out.join("slurm/jobs.json").exists(),
        "nothing recorded as submitted"
    );
}

#[test]
fn held_tasks_show_as_pending_and_cancel_removes_them() {
    if !cluster() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Held jobs stay pending: nothing runs, so the test costs no training. The hold
    // comes from the file's [slurm] table.
    let held = format!("{SWEEP}\n[slurm]\nsbatch_args = [\"--hold\"]\n");
    let file = write(tmp.path(), "sweep.toml", &held);
    let out = tmp.path().join("slurm");
    ok(sweep(&file, &out, &["--executor", "slurm"]));
    let status = ok(sweep(&file, &out, &["--status"]));
    assert!(status.contains("0 done, 0 running, 2 pending"), "{status}");
    // Queued points are not submitted twice.
    let again = ok(sweep(&file, &out, &["--executor", "slurm"]));
    assert!(again.contains("2 grid point(s) already queued"), "{again}");
    let cancelled = ok(sweep(&file, &out, &["--cancel"]));
    assert!(
        cancelled.contains("cancelled 2 Slurm job(s)"),
        "{cancelled}"
    );
    let status = ok(sweep(&file, &out, &["--status"]));
    assert!(
        status.contains("0 pending") && status.contains("CANCELLED"),
        "{status}"
    );
    // A cancelled sweep is submitted again (its points are neither done nor queued).
    let resubmitted = ok(sweep(&file, &out, &["--executor", "slurm"]));
    assert!(resubmitted.contains("submitted job array"), "{resubmitted}");
    ok(sweep(&file, &out, &["--cancel"]));
}
