//! Bad input and bad luck during training: a blow-up on the last step of an epoch, a run
//! directory another writer holds, shapes that cannot train, sizes that cannot fit.

use insilico_data::Locator;
use insilico_engine::rundir::DirLock;
use insilico_engine::train::{preflight, train, TrainOptions};
use insilico_engine::{Compute, RunConfig, RunData, RunDir, TrainedRun};

/// One training step per epoch (train_limit = batch_size), so that the step schedule's
/// jump in lr lands on the last step of an epoch: the loss of that step is computed
/// before the update and is finite; only the weights and the evaluation show the blow-up.
const ONE_STEP_EPOCHS: &str = r#"
[model]
name = "tiny"
layers = [
  { type = "flatten" },
  { type = "linear", out_features = 16 },
  { type = "relu" },
  { type = "linear", out_features = 10 },
]
[training]
optimizer = "sgd"
schedule = "step"
step_every = 1
gamma = 1e12
epochs = 4
batch_size = 100
lr = 0.05
eval_train_limit = 100
[data]
dataset = "shapes"
train_limit = 100
"#;

fn config(overrides: &[&str]) -> RunConfig {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    RunConfig::from_toml(ONE_STEP_EPOCHS, &o).unwrap()
}

fn data(config: &RunConfig) -> RunData {
    RunData::prepare(&config.data, config.training.seed, &Locator::from_env(None)).unwrap()
}

fn opts() -> TrainOptions {
    TrainOptions {
        compute: Compute::flex(),
        resume: false,
        progress: false,
        halt_after_epoch: None,
        stop: None,
    }
}

#[test]
fn a_blow_up_on_the_last_step_of_an_epoch_never_becomes_the_latest_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&[]);
    let dir = RunDir::new(tmp.path().join("nan"));
    let err = train(&c, &data(&c), &dir, &opts())
        .err()
        .expect("lr 0.05 * 1e12^3 on the fourth epoch diverges")
        .to_string();
    assert!(err.contains("diverged"), "{err}");
    // Whatever epoch the blow-up showed in, `latest` names a checkpoint whose weights
    // and metrics are all finite.
    let metrics = dir.read_metrics().unwrap();
    assert!(metrics.len() < 4, "{metrics:?}");
    assert!(metrics
        .iter()
        .all(|m| m.train_loss.unwrap().is_finite() && m.test_loss.unwrap().is_finite()));
    if metrics.is_empty() {
        return;
    }
    let run = TrainedRun::open(&dir.root, Compute::flex(), &Locator::from_env(None)).unwrap();
    for (name, _, values) in run.network.named_tensors() {
        assert!(values.iter().all(|v| v.is_finite()), "{name} is not finite");
    }
}

#[test]
fn a_second_writer_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&["training.gamma=0.5", "training.epochs=1"]);
    let dir = RunDir::new(tmp.path().join("run"));
    let held = dir.lock().unwrap();
    // flock locks belong to an open file, so a second open in this process conflicts
    // like another process would.
    let err = train(&c, &data(&c), &dir, &opts())
        .err()
        .unwrap()
        .to_string();
    let pid = std::process::id().to_string();
    assert!(
        err.contains("being written by process") && err.contains(&pid),
        "{err}"
    );
    assert!(
        !dir.config_path().exists(),
        "the refused writer wrote nothing"
    );
    drop(held);
    train(&c, &data(&c), &dir, &opts()).unwrap();
    // Released when the writer returns.
    DirLock::acquire(&dir.root, "run directory").unwrap();
}

#[test]
fn outputs_narrower_than_the_classes_and_networks_without_parameters_are_refused() {
    let c = config(&["model.layers.3.out_features=5"]);
    let err = preflight(&c, &data(&c)).unwrap_err().to_string();
    assert!(
        err.contains("model.layers[3]")
            && err.contains("5 class scores")
            && err.contains("10 classes"),
        "{err}"
    );
    let text = ONE_STEP_EPOCHS.replace(
        "layers = [\n  { type = \"flatten\" },\n  { type = \"linear\", out_features = 16 },\n  { type = \"relu\" },\n  { type = \"linear\", out_features = 10 },\n]",
        "layers = [{ type = \"flatten\" }]",
    );
    let c = RunConfig::from_toml(&text, &[]).unwrap();
    assert_eq!(c.model.layers.len(), 1);
    // 1x28x28 flattened is 784 "class scores": wide enough, but nothing to train.
    let err = preflight(&c, &data(&c)).unwrap_err().to_string();
    assert!(err.contains("no parameters"), "{err}");
}

#[test]
fn a_billion_channels_is_refused_before_any_allocation() {
    let mut c = config(&[]);
    c.model = RunConfig::from_toml(
        insilico_engine::models::builtin("cnn-small").unwrap(),
        &["model.layers.0.out_channels=1000000000".into()],
    )
    .unwrap()
    .model;
    let err = preflight(&c, &data(&c)).unwrap_err().to_string();
    assert!(
        err.contains("needs an estimated") && err.contains("GB"),
        "{err}"
    );
}
