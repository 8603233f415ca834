//! Training: SGD (PyTorch-style momentum) or Adam, learning-rate schedules, evaluation
//! each epoch, atomic checkpoints every epoch (and at the step where a stop is asked
//! for, e.g. by a cluster's preemption signal), exact resume, snapshots of the weights at
//! chosen steps (`training.snapshots`), and a stop on a non-finite loss that keeps the last
//! good checkpoint.

use crate::backend::Compute;
use crate::config::{OptimizerKind, RunConfig, Schedule};
use crate::eval::{cross_entropy, evaluate, Score};
use crate::examples::{label_tensor, RunData};
use crate::kernels::adam::FusedAdam;
use crate::memory::{available_memory, MemoryEstimate, EVAL_BATCH};
use crate::network::Network;
use crate::plan::Plan;
use crate::rundir::{Manifest, Position, RunDir};
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One row of `metrics.csv`. The losses and accuracies (on at most `eval_train_limit`
/// training images and on the test set) are `None` for an epoch not evaluated
/// (`training.eval_every`); the last epoch always is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: Option<f64>,
    pub train_acc: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_acc: Option<f64>,
    /// Wall seconds of this epoch (training and evaluation).
    pub seconds: f64,
    pub lr: f64,
}

/// How to run a training job (the what is in [`RunConfig`]).
pub struct TrainOptions {
    pub compute: Compute,
    pub resume: bool,
    pub progress: bool,
    /// Stop (as if killed) after this many epochs: used by tests of resume.
    pub halt_after_epoch: Option<usize>,
    /// Checked after every optimizer step (set by a signal handler): once set, training
    /// writes a checkpoint at that step and returns uncompleted; a resume continues from
    /// the same step and ends with the same weights.
    pub stop: Option<Arc<AtomicBool>>,
}

pub struct TrainOutcome {
    pub metrics: Vec<EpochMetrics>,
    pub network: Network,
    pub completed: bool,
}

/// Where and when training keeps snapshots of its weights.
struct Snapshots<'a> {
    run: &'a RunDir,
    steps: BTreeSet<usize>,
    steps_per_epoch: usize,
}

impl<'a> Snapshots<'a> {
    fn new(run: &'a RunDir, t: &crate::config::TrainConfig, steps_per_epoch: usize) -> Self {
        Self {
            run,
            steps: t.snapshots.steps(t.epochs, steps_per_epoch),
            steps_per_epoch,
        }
    }

    /// Keeps the network if `step` (optimizer steps taken) is on the schedule.
    fn keep(&self, step: usize, net: &Network) -> Result<()> {
        if self.steps.contains(&step) {
            self.run.write_snapshot(step, self.steps_per_epoch, net)?;
        }
        Ok(())
    }
}

/// The learning rate at a step, for the configured schedule.
pub fn learning_rate(config: &RunConfig, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
    let t = &config.training;
    match t.schedule {
        Schedule::Constant => t.lr,
        Schedule::Step => t.lr * t.gamma.powi((epoch / t.step_every) as i32),
        Schedule::Cosine => {
            let total = (t.epochs * steps_per_epoch).max(1) as f64;
            let done = (epoch * steps_per_epoch + step) as f64;
            0.5 * t.lr * (1.0 + (std::f64::consts::PI * done / total).cos())
        }
    }
}

fn optimizer(config: &RunConfig) -> ModuleOptimizer {
    let t = &config.training;
    let penalty = (t.weight_decay > 0.0).then_some(t.weight_decay as f32);
    match t.optimizer {
        OptimizerKind::Sgd => {
            // PyTorch's SGD has no dampening; Burn's default is 0.1.
            let momentum = (t.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(t.momentum)
                    .with_dampening(0.0)
            });
            SgdConfig::new()
                .with_momentum(momentum)
                .with_weight_decay(penalty.map(WeightDecayConfig::new))
                .init()
        }
        // Burn's Adam, fused into one pass per parameter on the CPU (the same bits).
        OptimizerKind::Adam => ModuleOptimizer::from(FusedAdam::new(1e-8, penalty)),
    }
}

/// A seed for one epoch's shuffling and dropout, so that a resumed run draws the same.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// A seed for one step's dropout: reseeding at every step lets a run resumed in the
/// middle of an epoch draw the same masks as one that never stopped.
fn step_seed(epoch_seed: u64, step: usize) -> u64 {
    epoch_seed ^ (step as u64 + 1).wrapping_mul(0x94D0_49BB_1331_11EB)
}

/// Everything that can be refused before a run directory is touched: shapes, an output
/// narrower than the classes, nothing to train, the step count, and memory. Returns the
/// total number of training steps.
pub fn preflight(config: &RunConfig, data: &RunData) -> Result<usize> {
    let t = &config.training;
    let plan = Plan::new(&config.model, data.dataset.shape)?;
    plan.check_trainable(data.dataset.num_classes, &data.dataset.name)?;
    let n = data.train.len();
    if n == 0 {
        bail!("dataset {} has no training examples", data.dataset.name);
    }
    let total_steps = n
        .div_ceil(t.batch_size)
        .checked_mul(t.epochs)
        .with_context(|| format!("training.epochs = {}: too many steps", t.epochs))?;
    MemoryEstimate::training(&plan, t, n).check_fits(
        &format!("training model `{}`", config.model.name),
        available_memory(),
    )?;
    Ok(total_steps)
}

/// Trains the network of `config` on `data`, writing everything into `run`.
pub fn train(
    config: &RunConfig,
    data: &RunData,
    run: &RunDir,
    opts: &TrainOptions,
) -> Result<TrainOutcome> {
    let t = &config.training;
    let device = opts.compute.device.clone();
    let train_device = device.clone().autodiff();
    let shape = data.dataset.shape;

    let total_steps = preflight(config, data)?;
    // Held until training returns; released by the OS if the process dies.
    let _lock = run.lock()?;
    run.prepare(config, opts.resume)?;
    let mut manifest = Manifest::begin(config, &data.dataset, &opts.compute, run)?;

    train_device.seed(t.seed);
    let mut net = Network::new(&config.model, shape, &train_device)?;
    let mut optim = optimizer(config);
    let (mut metrics, mut start) = (Vec::new(), Position::default());
    if let Some(ckpt) = run.latest_checkpoint()?.filter(|_| opts.resume) {
        (net, optim) = load_checkpoint(&ckpt, net, optim)?;
        (metrics, start) = (run.read_metrics()?, run.latest_position()?);
        manifest.resumed_from = Some(metrics.len());
    }

    let n = data.train.len();
    let steps_per_epoch = n.div_ceil(t.batch_size);
    let eval_train = data.train.head(t.eval_train_limit);
    let bar = progress_bar(opts.progress, total_steps as u64);
    bar.set_position((metrics.len() * steps_per_epoch + start.step) as u64);
    let snapshots = Snapshots::new(run, t, steps_per_epoch);
    snapshots.keep(metrics.len() * steps_per_epoch + start.step, &net)?;

    for epoch in metrics.len()..t.epochs {
        let started = Instant::now();
        let at = Position::new(epoch, if epoch == start.epochs { start.step } else { 0 });
        let step = (net, &train_device);
        let stop = opts.stop.as_deref();
        let (trained, lr, stopped) = train_epoch(
            config, data, at, step, &mut optim, &bar, &metrics, &snapshots, stop,
        )?;
        net = trained;
        if let Some(step) = stopped {
            let at = Position::new(epoch, step);
            run.write_checkpoint_at(at, &net, &optim, &metrics)?;
            return Ok(halted(&bar, &net, metrics));
        }
        let valid = net.valid();
        let evaluated = (epoch + 1) % t.eval_every == 0 || epoch + 1 == t.epochs;
        let scores = evaluated.then(|| {
            let train = evaluate(&valid, &eval_train, EVAL_BATCH, &device);
            (train, evaluate(&valid, &data.test, EVAL_BATCH, &device))
        });
        let row = epoch_row(epoch, scores, started, lr);
        if let Err(e) = check_finite(&row, &valid, metrics.len(), run) {
            bar.abandon();
            return Err(e);
        }
        print_epoch(&bar, &row);
        metrics.push(row);
        snapshots.keep((epoch + 1) * steps_per_epoch, &net)?;
        run.write_checkpoint(epoch + 1, &net, &optim, &metrics)?;
        let stop_asked = opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
        let halt = opts.halt_after_epoch == Some(epoch + 1) || stop_asked;
        if halt && epoch + 1 < t.epochs {
            return Ok(halted(&bar, &net, metrics));
        }
    }
    bar.finish_and_clear();

    let final_net = net.valid();
    run.write_final(&final_net)?;
    manifest.finish(&metrics, run)?;
    Ok(TrainOutcome {
        metrics,
        network: final_net,
        completed: true,
    })
}

/// One line per epoch, above the progress bar (or on stderr without one).
fn print_epoch(bar: &ProgressBar, row: &EpochMetrics) {
    let line = match (row.train_loss, row.train_acc, row.test_loss, row.test_acc) {
        (Some(a), Some(b), Some(c), Some(d)) => format!(
            "epoch {:>3}  train loss {a:.4} acc {b:.4}  test loss {c:.4} acc {d:.4}  ({:.1}s)",
            row.epoch, row.seconds
        ),
        _ => format!("epoch {:>3}  ({:.1}s)", row.epoch, row.seconds),
    };
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// The outcome of a run stopped before its last epoch (its checkpoint is written).
fn halted(bar: &ProgressBar, net: &Network, metrics: Vec<EpochMetrics>) -> TrainOutcome {
    bar.abandon();
    TrainOutcome {
        metrics,
        network: net.valid(),
        completed: false,
    }
}

/// The network and optimizer state of a checkpoint directory.
fn load_checkpoint(
    ckpt: &std::path::Path,
    net: Network,
    optim: ModuleOptimizer,
) -> Result<(Network, ModuleOptimizer)> {
    let net = net
        .try_load_file(ckpt.join("model.bpk"))
        .with_context(|| format!("loading {}", ckpt.join("model.bpk").display()))?;
    let optim = optim
        .load(ckpt.join("optim.bpk"))
        .with_context(|| format!("loading {}", ckpt.join("optim.bpk").display()))?;
    Ok((net, optim))
}

/// One epoch of optimizer steps over the training set in the epoch's seeded order,
/// from step `at.step` (of epoch `at.epochs`); returns the network, the last learning
/// rate, and the number of steps done if `stop` was set before the epoch's last step.
/// A non-finite loss stops training with the epoch and step, keeping the last good
/// checkpoint.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    config: &RunConfig,
    data: &RunData,
    at: Position,
    (mut net, device): (Network, &Device),
    optim: &mut ModuleOptimizer,
    bar: &ProgressBar,
    done: &[EpochMetrics],
    snapshots: &Snapshots,
    stop: Option<&AtomicBool>,
) -> Result<(Network, f64, Option<usize>)> {
    let t = &config.training;
    let epoch = at.epochs;
    let n = data.train.len();
    let steps_per_epoch = n.div_ceil(t.batch_size);
    let seed = epoch_seed(t.seed, epoch);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut lr = t.lr;
    for (step, idx) in order.chunks(t.batch_size).enumerate().skip(at.step) {
        device.seed(step_seed(seed, step));
        lr = learning_rate(config, epoch, step, steps_per_epoch);
        let (x, labels) = data.train.batch(idx, device);
        let loss = cross_entropy(net.forward(x), label_tensor(&labels, device)).mean();
        let value = loss.clone().into_scalar::<f32>();
        if !value.is_finite() {
            bar.abandon();
            bail!(
                "training diverged: loss is {value} at epoch {}, step {} (lr {lr:.3e}); \
                 the last good checkpoint ({} complete epochs) is kept in {}. \
                 Lower training.lr or add weight decay.",
                epoch + 1,
                step + 1,
                done.len(),
                snapshots.run.checkpoints().display()
            );
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(lr, net, grads);
        // The epoch's end is kept by the caller once its weights are checked finite.
        if step + 1 < steps_per_epoch {
            snapshots.keep(epoch * steps_per_epoch + step + 1, &net)?;
        }
        bar.inc(1);
        if step + 1 < steps_per_epoch && stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Ok((net, lr, Some(step + 1)));
        }
    }
    Ok((net, lr, None))
}

/// Refuses to commit an epoch whose losses or weights are not finite (a blow-up on an
/// epoch's last step shows only in the weights and the evaluation), so that `latest`
/// always names finite weights.
fn check_finite(row: &EpochMetrics, net: &Network, done: usize, run: &RunDir) -> Result<()> {
    let losses = row.train_loss.zip(row.test_loss);
    let what = match losses.filter(|(train, test)| !train.is_finite() || !test.is_finite()) {
        Some((train, test)) => format!("the loss is {train} (train) and {test} (test)"),
        None => match net
            .named_tensors()
            .into_iter()
            .find(|(_, _, values)| values.iter().any(|v| !v.is_finite()))
        {
            Some((name, _, _)) => format!("the weights of {name} are not finite"),
            None => return Ok(()),
        },
    };
    bail!(
        "training diverged: {what} after epoch {} (lr {:.3e}); its checkpoint is not written, \
         and the last good checkpoint ({done} complete epochs) is kept in {}. \
         Lower training.lr or add weight decay.",
        row.epoch,
        row.lr,
        run.checkpoints().display()
    )
}

fn epoch_row(
    epoch: usize,
    scores: Option<(Score, Score)>,
    started: Instant,
    lr: f64,
) -> EpochMetrics {
    let (train, test) = scores.unzip();
    EpochMetrics {
        epoch: epoch + 1,
        train_loss: train.map(|s| s.loss),
        train_acc: train.map(|s| s.accuracy),
        test_loss: test.map(|s| s.loss),
        test_acc: test.map(|s| s.accuracy),
        seconds: started.elapsed().as_secs_f64(),
        lr,
    }
}

/// A progress bar on stderr, hidden when asked or when stderr is not a terminal.
pub fn progress_bar(show: bool, len: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps ({per_sec}, eta {eta})",
        )
        .expect("static template"),
    );
    bar
}
