//! Bad input at the command line never panics: each case of issue 12 exits with status 1
//! and an error naming the file, field or value, and loses nothing already written.

use flate2::{write::GzEncoder, Compression};
use insilico_engine::rundir::DirLock;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_insilico");

/// The binary with no dataset or cache outside `home`, and every download refused at
/// once (a proxy on a closed port), so that no test depends on the network.
fn insilico(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("INSILICO_DATA", "")
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HOME", home)
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .env("all_proxy", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9");
    c
}

/// Options every command takes, given after the subcommand's own.
const GLOBAL: [&str; 3] = ["--quiet", "--device", "cpu"];

fn run(home: &Path, args: &[&str]) -> Output {
    insilico(home).args(args).args(GLOBAL).output().unwrap()
}

/// Asserts exit status 1 (an error, not a panic's 101 or an abort's 134) and that stderr
/// holds every needle; returns stderr.
fn fails_with(o: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
    err
}

/// `train` of mlp-2x128 on the embedded shapes set into `out`, with extra arguments.
fn train(home: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--config",
        "mlp-2x128",
        "--dataset",
        "shapes",
        "--out",
        out.to_str().unwrap(),
        "--set",
        "data.train_limit=200",
    ];
    args.extend_from_slice(extra);
    run(home, &args)
}

/// `home/run`: mlp-2x128 trained for one epoch on the shapes set, for the assays to study.
fn one_epoch_run(home: &Path) -> PathBuf {
    let run_dir = home.join("run");
    let o = train(home, &run_dir, &["--epochs", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    run_dir
}

#[test]
fn huge_sizes_are_refused_naming_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let max = i64::MAX.to_string();
    for (set, needle) in [
        (
            format!("model.layers.1.out_features={max}"),
            "model.layers[1]",
        ),
        (
            format!("model.layers.0.out_channels={max}"),
            "model.layers[0]",
        ),
        (
            format!("model.layers.0.padding={max}"),
            "model.layers[0].padding",
        ),
        (
            format!("model.layers.0.padding={}", 1u64 << 62),
            "model.layers[0].padding",
        ),
    ] {
        let config = if set.contains("layers.0") {
            "cnn-small"
        } else {
            "mlp-2x128"
        };
        let o = run(
            tmp.path(),
            &[
                "train",
                "--config",
                config,
                "--dataset",
                "shapes",
                "--out",
                out.to_str().unwrap(),
                "--set",
                &set,
            ],
        );
        fails_with(&o, &[needle]);
        assert!(!out.exists(), "{set}: nothing may be written");
    }
}

#[test]
fn inspect_refuses_a_huge_input_and_accepts_its_documented_form() {
    let tmp = tempfile::tempdir().unwrap();
    let max = i64::MAX.to_string();
    let o = run(
        tmp.path(),
        &[
            "inspect",
            "--config",
            "cnn-small",
            "--input",
            "1",
            &max,
            &max,
        ],
    );
    fails_with(&o, &["input shape"]);
    for input in [&["3,32,32"][..], &["3", "32", "32"]] {
        let mut args = vec!["inspect", "--config", "cnn-bn", "--input"];
        args.extend_from_slice(input);
        let o = run(tmp.path(), &args);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(text.contains("input 3x32x32"), "{text}");
    }
    let o = run(
        tmp.path(),
        &["inspect", "--config", "cnn-bn", "--input", "3,32"],
    );
    fails_with(&o, &["three sizes"]);
}

#[test]
fn epochs_beyond_the_limit_are_refused_before_a_run_directory_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = train(tmp.path(), &out, &["--epochs", "9223372036854775807"]);
    fails_with(&o, &["training.epochs = 9223372036854775807"]);
    assert!(!out.exists());
}

#[test]
fn a_billion_channels_is_refused_with_the_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = run(
        tmp.path(),
        &[
            "train",
            "--config",
            "cnn-small",
            "--dataset",
            "shapes",
            "--out",
            out.to_str().unwrap(),
            "--set",
            "model.layers.0.out_channels=1000000000",
        ],
    );
    fails_with(&o, &["needs an estimated", "GB", "MemAvailable"]);
    assert!(!out.exists());
    let o = run(
        tmp.path(),
        &[
            "inspect",
            "--config",
            "cnn-small",
            "--input",
            "1000000000,28,28",
        ],
    );
    fails_with(&o, &["needs an estimated"]);
}

#[test]
fn an_output_narrower_than_the_classes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = train(
        tmp.path(),
        &out,
        &["--set", "model.layers.5.out_features=5"],
    );
    fails_with(&o, &["model.layers[5]", "5 class scores", "10 classes"]);
    assert!(!out.exists());
}

#[test]
fn a_network_without_parameters_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("flat.toml");
    std::fs::write(
        &file,
        "[model]\nname = \"flat\"\nlayers = [{ type = \"flatten\" }]\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = run(
        tmp.path(),
        &[
            "train",
            "--config",
            file.to_str().unwrap(),
            "--dataset",
            "shapes",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    fails_with(&o, &["no parameters"]);
    assert!(!out.exists());
}

#[test]
fn infinite_weight_decay_and_gamma_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for field in ["training.weight_decay", "training.gamma"] {
        let o = train(tmp.path(), &out, &["--set", &format!("{field}=inf")]);
        fails_with(&o, &[&format!("{field} = inf")]);
        let o = train(tmp.path(), &out, &["--set", &format!("{field}=nan")]);
        fails_with(&o, &[&format!("{field} = NaN")]);
    }
    assert!(!out.exists());
}

#[test]
fn a_wrong_type_inside_a_layer_names_its_index_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = train(
        tmp.path(),
        &out,
        &["--set", "model.layers.3.out_features=\"wide\""],
    );
    fails_with(
        &o,
        &[
            "model.layers[3].out_features",
            "non-negative integer",
            "wide",
        ],
    );
    let o = train(
        tmp.path(),
        &out,
        &["--set", "model.layers.3.out_features=-4"],
    );
    fails_with(&o, &["model.layers[3].out_features", "-4"]);
}

#[test]
fn a_nan_on_the_last_step_of_an_epoch_keeps_the_last_finite_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // 200 images in batches of 200: every epoch is one step, so the blow-up lands on an
    // epoch's last step, the case that used to commit NaN weights.
    let o = train(
        tmp.path(),
        &out,
        &[
            "--epochs",
            "4",
            "--set",
            "training.optimizer=\"sgd\"",
            "--set",
            "training.schedule=\"step\"",
            "--set",
            "training.step_every=1",
            "--set",
            "training.gamma=1e12",
            "--set",
            "training.batch_size=200",
        ],
    );
    fails_with(&o, &["diverged", "is not written"]);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let rows = metrics.as_array().unwrap();
    let latest = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), format!("epoch-{:04}", rows.len()));
    assert!(rows.len() < 4);
    for row in rows {
        assert!(
            row["train_loss"].is_f64() && row["test_loss"].is_f64(),
            "{row}"
        );
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A CIFAR-10 batch of `n` records, labels cycling through the classes, pixels zero.
fn cifar_batch(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 3073);
    for i in 0..n {
        out.push((i % 10) as u8);
        out.extend(std::iter::repeat_n(0u8, 3072));
    }
    out
}

#[test]
fn data_verify_names_each_broken_cifar_batch_and_its_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/cifar10/cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    // Full-size batches (10,000 records, as the manifest's 50,000 / 10,000 imply),
    // gzipped: zeros compress to almost nothing.
    let good = cifar_batch(10_000);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 100);
    let mut label_10 = good.clone();
    label_10[5 * 3073] = 10;
    let extra = cifar_batch(10_001);
    for (name, bytes) in [
        ("data_batch_1.bin", &good),
        ("data_batch_2.bin", &label_10),
        ("data_batch_3.bin", &Vec::new()),
        ("data_batch_4.bin", &extra),
        ("data_batch_5.bin", &good),
        ("test_batch.bin", &truncated),
    ] {
        std::fs::write(dir.join(format!("{name}.gz")), gzip(bytes)).unwrap();
    }
    let data = tmp.path().join("data");
    let o = run(
        tmp.path(),
        &[
            "data",
            "verify",
            "cifar10",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let err = fails_with(
        &o,
        &[
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "test_batch.bin",
        ],
    );
    assert!(
        !err.contains("data_batch_1") && !err.contains("data_batch_5"),
        "{err}"
    );
    for needle in [
        "data_batch_2.bin.gz: malformed: record 5 has label 10",
        "data_batch_3.bin.gz: malformed: length 0",
        "data_batch_4.bin.gz: holds 10001 examples",
        "test_batch.bin.gz: malformed: length 30729900",
    ] {
        assert!(text.contains(needle), "expected `{needle}` in: {text}");
    }
}

/// `$INSILICO_DATA`, else the project's shared folder, if it holds MNIST.
fn shared_mnist() -> Option<PathBuf> {
    let root = std::env::var_os("INSILICO_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/datasets"));
    let dir = root.join("mnist");
    if dir.join("t10k-labels-idx1-ubyte.gz").is_file() {
        Some(dir)
    } else {
        eprintln!("note: no MNIST under {}; skipping", root.display());
        None
    }
}

fn copy_mnist(from: &Path, to: &Path, skip: &str) {
    std::fs::create_dir_all(to).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        if name != skip {
            let file = format!("{name}.gz");
            std::fs::copy(from.join(&file), to.join(&file)).unwrap();
        }
    }
}

#[test]
fn data_verify_names_a_damaged_mnist_file_and_its_problem() {
    let Some(mnist) = shared_mnist() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/mnist");
    copy_mnist(&mnist, &dir, "");
    // The test labels lose their last 10 bytes (a truncated download, re-gzipped).
    let path = dir.join("t10k-labels-idx1-ubyte.gz");
    let raw = {
        use std::io::Read;
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut v)
            .unwrap();
        v
    };
    std::fs::write(&path, gzip(&raw[..raw.len() - 10])).unwrap();
    let data = tmp.path().join("data");
    let o = run(
        tmp.path(),
        &[
            "data",
            "verify",
            "mnist",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    fails_with(&o, &["mnist (t10k-labels-idx1-ubyte)"]);
    assert!(
        text.contains("t10k-labels-idx1-ubyte.gz: truncated: header says 10000 = 10000 bytes of data, found 9990"),
        "{text}"
    );
}

#[test]
fn a_file_missing_from_data_dir_is_named() {
    let Some(mnist) = shared_mnist() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_mnist(&mnist, &data.join("mnist"), "t10k-labels-idx1-ubyte");
    let out = tmp.path().join("run");
    let o = run(
        tmp.path(),
        &[
            "train",
            "--config",
            "mlp-2x128",
            "--dataset",
            "mnist",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    fails_with(&o, &["lacks t10k-labels-idx1-ubyte"]);
    assert!(!out.exists());
}

/// Waits until `dir/.lock` names a process (the writer has its lock).
fn wait_for_lock(dir: &Path, child: &mut std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(pid) = std::fs::read_to_string(dir.join(".lock")) {
            if !pid.trim().is_empty() {
                return pid.trim().to_string();
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first writer ended early"
        );
        assert!(Instant::now() < deadline, "no lock after 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_train_into_the_same_directory_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut first = insilico(tmp.path())
        .args([
            "train",
            "--config",
            "mlp-2x128",
            "--dataset",
            "shapes",
            "--seed",
            "3",
            "--epochs",
            "1000",
            "--out",
            out.to_str().unwrap(),
            "--set",
            "data.train_limit=2000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = wait_for_lock(&out, &mut first);
    assert_eq!(pid, first.id().to_string());
    for extra in [&["--seed", "4"][..], &["--seed", "3", "--resume"]] {
        let o = train(tmp.path(), &out, extra);
        fails_with(&o, &["being written by process", &pid]);
    }
    first.kill().unwrap(); // SIGKILL: the OS releases the lock
    first.wait().unwrap();
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("seed = 3"),
        "the first writer's config is intact"
    );
    DirLock::acquire(&out, "run directory").unwrap();
}

#[test]
fn a_second_sweep_on_the_same_directory_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sweep.toml");
    std::fs::write(
        &file,
        "name = \"lock\"\n[base.data]\ndataset = \"shapes\"\ntrain_limit = 2000\n\
         [base.training]\nepochs = 1000\n[grid]\nmodel = [\"mlp-2x128\"]\nseed = [0]\n\
         [assays]\nimages = 100\n[assays.selectivity]\nbins = 4\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let sweep = |c: &mut Command| {
        c.args([
            "sweep",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
    };
    let mut first = insilico(tmp.path());
    sweep(&mut first);
    let mut first = first
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = wait_for_lock(&out, &mut first);
    let mut second = insilico(tmp.path());
    sweep(&mut second);
    let o = second.output().unwrap();
    fails_with(&o, &["sweep directory", "being written by process", &pid]);
    first.kill().unwrap();
    first.wait().unwrap();
    DirLock::acquire(&out, "sweep directory").unwrap();
}

#[test]
fn a_second_writer_of_an_assay_or_a_comparison_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = one_epoch_run(tmp.path());
    let run_arg = run_dir.to_str().unwrap();
    let population = [
        "population",
        "--run",
        run_arg,
        "--images",
        "60",
        "--tsne-stimuli",
        "0",
    ];
    // This process stands for the first writer: another process holds the folder's lock.
    let pid = std::process::id().to_string();
    let held = DirLock::acquire(&run_dir.join("assays").join("population"), "test").unwrap();
    let o = run(tmp.path(), &population);
    fails_with(
        &o,
        &[
            "population assay directory",
            "being written by process",
            &pid,
        ],
    );
    drop(held);
    let o = run(tmp.path(), &population);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("compared");
    let _held = DirLock::acquire(&out, "test").unwrap();
    let o = compare_on_60_images(tmp.path(), &out, &[run_arg]);
    fails_with(
        &o,
        &["compare output directory", "being written by process", &pid],
    );
}

/// `compare` of `inputs` by linear CKA on 60 images, into `out`.
fn compare_on_60_images(home: &Path, out: &Path, inputs: &[&str]) -> Output {
    let mut args = vec!["compare"];
    args.extend_from_slice(inputs);
    args.extend(["--images", "60", "--measures", "cka-linear", "--out"]);
    args.push(out.to_str().unwrap());
    run(home, &args)
}

#[test]
fn a_recording_whose_rows_are_not_the_studys_images_is_refused_with_the_remedy() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = one_epoch_run(tmp.path());
    let recording = |rows: usize| {
        let path = tmp.path().join(format!("recording{rows}.csv"));
        let text: String = (0..rows)
            .map(|i| format!("{},{}\n", i % 7, (i * i) % 5))
            .collect();
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let out = tmp.path().join("compared");
    let run_arg = run_dir.to_str().unwrap();
    let compare =
        |file: &str| compare_on_60_images(tmp.path(), &out, &["--csv", file, "--run", run_arg]);
    // More rows than --images: refused before the run is recorded.
    let long = recording(61);
    let o = compare(&long);
    fails_with(
        &o,
        &[&long, "61 rows", "at most --images 60", "give --images 61"],
    );
    // Fewer: refused once the run's count is known.
    let short = recording(50);
    let o = compare(&short);
    fails_with(
        &o,
        &[
            &short,
            "50 rows",
            "first 60 train images",
            "give --images 50",
        ],
    );
    let o = compare(&recording(60));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn runs_that_show_different_images_are_refused_and_the_same_images_compared() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    // 200 of the shapes set's training images, drawn by data.data_seed (the seed unless
    // given): seeds 0 and 1 train on different subsets, and seed 1 with data_seed 0 on
    // seed 0's.
    let a = one_epoch_run(home);
    let trained = |name: &str, extra: &[&str]| {
        let dir = home.join(name);
        let mut args = vec!["--epochs", "1", "--seed", "1"];
        args.extend_from_slice(extra);
        let o = train(home, &dir, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dir.to_str().unwrap().to_owned()
    };
    let other_subset = trained("other", &[]);
    let same_subset = trained("same", &["--set", "data.data_seed=0"]);
    let a = a.to_str().unwrap();
    let out = home.join("compared");
    let compare = |b: &str, split: &str| {
        let args = ["--run", a, "--run", b, "--split", split];
        compare_on_60_images(home, &out, &args)
    };
    // Before the check, this compared responses to different images without a word.
    fails_with(
        &compare(&other_subset, "train"),
        &[
            "run and other show different images on the train split",
            "training subsets differ",
            "--split test",
        ],
    );
    assert!(!out.join("compare.json").exists());
    for (b, split) in [(&other_subset, "test"), (&same_subset, "train")] {
        let o = compare(b, split);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}
