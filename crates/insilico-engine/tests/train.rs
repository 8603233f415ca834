//! Training: determinism, exact resume after a stop, divergence handling, exports.

use insilico_data::Locator;
use insilico_engine::train::{train, TrainOptions};
use insilico_engine::{Compute, RunConfig, RunData, RunDir, TrainedRun};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const TINY: &str = r#"
[model]
name = "tiny"
layers = [
  { type = "flatten" },
  { type = "linear", out_features = 32 },
  { type = "relu" },
  { type = "dropout", p = 0.2 },
  { type = "linear", out_features = 10 },
]
[training]
epochs = 3
batch_size = 64
lr = 0.05
seed = 3
eval_train_limit = 200
[data]
dataset = "shapes"
train_limit = 640
"#;

fn config(overrides: &[&str]) -> RunConfig {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    RunConfig::from_toml(TINY, &o).unwrap()
}

fn data(config: &RunConfig) -> RunData {
    RunData::prepare(&config.data, config.training.seed, &Locator::from_env(None)).unwrap()
}

/// Burn's random generator is one per device and process: training runs that must be
/// reproducible cannot overlap in one process (the sweep runs jobs as processes), so the
/// tests here take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn opts(halt: Option<usize>, resume: bool) -> TrainOptions {
    TrainOptions {
        compute: Compute::flex(),
        resume,
        progress: false,
        halt_after_epoch: halt,
        stop: None,
    }
}

/// A digest of the exported weights (comparing digests keeps failure messages short).
fn weights(dir: &Path) -> String {
    insilico_data::fsx::sha256_hex(&std::fs::read(dir.join("weights.safetensors")).unwrap())
}

#[test]
fn a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one() {
    resume_matches(&[]);
}

#[test]
fn a_resumed_adam_run_with_a_schedule_matches_too() {
    resume_matches(&[
        "training.optimizer=\"adam\"",
        "training.lr=0.003",
        "training.schedule=\"cosine\"",
    ]);
}

fn resume_matches(overrides: &[&str]) {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(overrides);
    let d = data(&c);
    let whole = RunDir::new(tmp.path().join("whole"));
    let full = train(&c, &d, &whole, &opts(None, false)).unwrap();
    assert!(full.completed && full.metrics.len() == 3);

    let split = RunDir::new(tmp.path().join("split"));
    let first = train(&c, &d, &split, &opts(Some(1), false)).unwrap();
    assert!(!first.completed);
    assert!(!split.is_complete());
    // Without --resume the directory is refused rather than overwritten.
    let err = train(&c, &d, &split, &opts(None, false)).err().unwrap();
    assert!(err.to_string().contains("--resume"), "{err}");
    let rest = train(&c, &d, &split, &opts(None, true)).unwrap();
    assert!(rest.completed && split.is_complete());
    assert_eq!(rest.metrics.len(), 3);
    assert_eq!(weights(&whole.root), weights(&split.root));
    // The epochs' accuracies agree too (timings differ).
    for (a, b) in full.metrics.iter().zip(&rest.metrics) {
        assert_eq!((a.train_acc, a.test_acc), (b.train_acc, b.test_acc));
    }
}

/// Evaluating every few epochs leaves the other epochs' scores empty (in `metrics.csv`
/// too), always evaluates the last, and trains exactly as evaluating every epoch does:
/// the evaluation draws nothing from the generator that training uses.
#[test]
fn evaluating_every_other_epoch_trains_the_same_network() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let every = config(&[]);
    let d = data(&every);
    let every_dir = RunDir::new(tmp.path().join("every"));
    let a = train(&every, &d, &every_dir, &opts(None, false)).unwrap();
    let sparse = config(&["training.eval_every=2"]);
    let sparse_dir = RunDir::new(tmp.path().join("sparse"));
    let b = train(&sparse, &d, &sparse_dir, &opts(None, false)).unwrap();
    assert_eq!(weights(&every_dir.root), weights(&sparse_dir.root));
    let evaluated: Vec<bool> = b.metrics.iter().map(|m| m.test_acc.is_some()).collect();
    assert_eq!(evaluated, [false, true, true]);
    for (x, y) in a.metrics.iter().zip(&b.metrics).skip(1) {
        assert_eq!((x.train_acc, x.test_acc), (y.train_acc, y.test_acc));
    }
    let csv = std::fs::read_to_string(sparse_dir.root.join("metrics.csv")).unwrap();
    let first = csv.lines().nth(1).unwrap();
    assert!(first.starts_with("1,,,,,"), "{first}");
}

/// A preemption signal sets the stop flag: training checkpoints at the next step, in the
/// middle of an epoch, and the resumed run (skipping the epoch's first batches, drawing
/// the same dropout masks) ends exactly where an uninterrupted run ends.
#[test]
fn a_run_stopped_mid_epoch_resumes_to_the_same_weights() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    // TINY has dropout, so the resumed steps must also draw the same masks; a cosine
    // schedule makes the learning rate depend on the step within the epoch.
    let c = config(&["training.schedule=\"cosine\""]);
    let d = data(&c);
    let whole = RunDir::new(tmp.path().join("whole"));
    let full = train(&c, &d, &whole, &opts(None, false)).unwrap();

    let split = RunDir::new(tmp.path().join("split"));
    let stopped = || TrainOptions {
        stop: Some(Arc::new(AtomicBool::new(true))),
        ..opts(None, true)
    };
    // Stopped after the first step of epoch 1, then of epoch 2 (after a resume that
    // halts at the epoch's end and removes the mid-epoch checkpoint).
    let a = train(&c, &d, &split, &stopped()).unwrap();
    assert!(!a.completed && a.metrics.is_empty());
    let at = split.latest_checkpoint().unwrap().unwrap();
    assert!(at.ends_with("epoch-0000-step-000001"), "{}", at.display());
    train(&c, &d, &split, &opts(Some(1), true)).unwrap();
    assert!(!at.exists(), "the mid-epoch checkpoint is pruned");
    let b = train(&c, &d, &split, &stopped()).unwrap();
    assert!(!b.completed && b.metrics.len() == 1);
    let at = split.latest_checkpoint().unwrap().unwrap();
    assert!(at.ends_with("epoch-0001-step-000001"), "{}", at.display());
    let rest = train(&c, &d, &split, &opts(None, true)).unwrap();
    assert!(rest.completed && split.is_complete());
    assert_eq!(weights(&whole.root), weights(&split.root));
    for (a, b) in full.metrics.iter().zip(&rest.metrics) {
        assert_eq!((a.train_acc, a.test_acc), (b.train_acc, b.test_acc));
    }
}

#[test]
fn the_same_seed_gives_the_same_network_and_another_seed_does_not() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&["training.epochs=1"]);
    let d = data(&c);
    let run = |name: &str, c: &RunConfig| {
        let dir = RunDir::new(tmp.path().join(name));
        train(c, &d, &dir, &opts(None, false)).unwrap();
        weights(&dir.root)
    };
    let a = run("a", &c);
    assert_eq!(a, run("b", &c));
    assert_ne!(
        a,
        run("c", &config(&["training.epochs=1", "training.seed=4"]))
    );
}

#[test]
fn a_diverging_run_stops_with_a_clear_message_and_keeps_its_last_checkpoint() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    // Epoch 1 trains at lr 0.05; epoch 2 at 0.05 * 1e12, which overflows the loss.
    let c = config(&["training.schedule=\"step\"", "training.gamma=1e12"]);
    let d = data(&c);
    let dir = RunDir::new(tmp.path().join("nan"));
    let err = train(&c, &d, &dir, &opts(None, false))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("diverged") && err.contains("epoch 2"), "{err}");
    let ckpt = dir.latest_checkpoint().unwrap().unwrap();
    assert!(ckpt.ends_with("epoch-0001"), "{}", ckpt.display());
    assert_eq!(dir.read_metrics().unwrap().len(), 1);
    // The kept checkpoint opens for study.
    let run = TrainedRun::open(&dir.root, Compute::flex(), &Locator::from_env(None)).unwrap();
    assert_eq!(run.network.plan().num_classes(), 10);
}

#[test]
fn training_learns_the_shapes_and_exports_pytorch_layout_safetensors() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&["data.train_limit=2000", "training.epochs=2"]);
    let d = data(&c);
    let dir = RunDir::new(tmp.path().join("learn"));
    let out = train(&c, &d, &dir, &opts(None, false)).unwrap();
    // Chance is 0.1 on ten balanced classes.
    assert!(out.metrics[1].test_acc.unwrap() > 0.5, "{:?}", out.metrics);
    let bytes = std::fs::read(dir.root.join("weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let w = st.tensor("fc1.weight").unwrap();
    assert_eq!(w.shape(), &[32, 784]); // [out, in], as torch.nn.Linear
    assert_eq!(st.tensor("logits.bias").unwrap().shape(), &[10]);
    for file in ["config.toml", "manifest.json", "metrics.csv", "model.bpk"] {
        assert!(dir.root.join(file).exists(), "{file}");
    }
    let manifest = insilico_engine::Manifest::read(&dir).unwrap();
    assert_eq!(manifest.status, "complete");
    assert_eq!(manifest.seed, 3);
    assert!(manifest.dataset_checksum.contains("shapes"));
    let csv = std::fs::read_to_string(dir.root.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
}

/// Reproduction 3 (Morcos, Raghu & Bengio 2018) compares networks trained on one fixed
/// random relabelling: with `data.data_seed` set, the subset and the shuffled labels do
/// not depend on the training seed; without it, they do.
#[test]
fn a_fixed_data_seed_gives_every_training_seed_the_same_relabelling() {
    let labels = |overrides: &[&str]| {
        let d = data(&config(overrides));
        (d.train.labels.clone(), d.train_clean_labels.clone())
    };
    let a = labels(&[
        "data.shuffle_labels=true",
        "data.data_seed=7",
        "training.seed=1",
    ]);
    let b = labels(&[
        "data.shuffle_labels=true",
        "data.data_seed=7",
        "training.seed=2",
    ]);
    assert_eq!(a, b);
    assert_ne!(a.0, a.1, "the labels are shuffled");
    let c = labels(&["data.shuffle_labels=true", "training.seed=1"]);
    let d = labels(&["data.shuffle_labels=true", "training.seed=2"]);
    assert_ne!(
        c.0, d.0,
        "without data_seed, the training seed picks the relabelling"
    );
}

/// The weights of a network, by parameter name.
fn tensors(net: &insilico_engine::Network) -> Vec<(String, Vec<f32>)> {
    net.named_tensors()
        .into_iter()
        .map(|(name, _, values)| (name, values))
        .collect()
}

#[test]
fn snapshots_follow_their_schedule_survive_a_resume_and_end_at_the_final_network() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    // 640 images in batches of 64: 10 steps per epoch, 3 epochs.
    let c = config(&["training.snapshots=\"every:4\""]);
    let d = data(&c);
    let whole = RunDir::new(tmp.path().join("whole"));
    train(&c, &d, &whole, &opts(None, false)).unwrap();
    let kept = whole.snapshots().unwrap();
    let steps: Vec<usize> = kept.iter().map(|s| s.step).collect();
    // Step 0, every 4th step, and the epoch ends 10, 20, 30.
    assert_eq!(steps, [0, 4, 8, 10, 12, 16, 20, 24, 28, 30]);
    let epochs: Vec<f64> = kept.iter().map(|s| s.epoch).collect();
    assert_eq!(epochs[3], 1.0);
    assert_eq!(epochs[9], 3.0);

    let run = TrainedRun::open(&whole.root, Compute::flex(), &Locator::from_env(None)).unwrap();
    let last = run.load_weights(&kept[9].weights).unwrap();
    assert_eq!(tensors(&last), tensors(&run.network));
    let first = run.load_weights(&kept[0].weights).unwrap();
    assert_ne!(tensors(&first), tensors(&run.network));

    // Interrupted after epoch 1 and resumed: the same snapshots, the same weights in each.
    let split = RunDir::new(tmp.path().join("split"));
    train(&c, &d, &split, &opts(Some(1), false)).unwrap();
    assert_eq!(split.snapshots().unwrap().len(), 4);
    train(&c, &d, &split, &opts(None, true)).unwrap();
    let again = split.snapshots().unwrap();
    assert_eq!(again.len(), kept.len());
    for (a, b) in kept.iter().zip(&again) {
        assert_eq!(a.step, b.step);
        let (x, y) = (run.load_weights(&a.weights), run.load_weights(&b.weights));
        assert_eq!(
            tensors(&x.unwrap()),
            tensors(&y.unwrap()),
            "step {}",
            a.step
        );
    }
}

#[test]
fn a_run_without_snapshots_lists_none_and_a_bad_schedule_names_the_field() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&["training.epochs=1"]);
    let run = RunDir::new(tmp.path().join("plain"));
    train(&c, &data(&c), &run, &opts(None, false)).unwrap();
    assert!(run.snapshots().unwrap().is_empty());
    assert!(!run.snapshots_dir().exists());
    let o = vec!["training.snapshots=\"every:0\"".to_string()];
    let err = format!("{:#}", RunConfig::from_toml(TINY, &o).unwrap_err());
    assert!(err.contains("training.snapshots = \"every:0\""), "{err}");
}
