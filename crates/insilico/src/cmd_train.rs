//! `insilico train`.

use crate::common::Env;
use anyhow::Result;
use clap::Args;
use insilico_engine::train::{train, TrainOptions};
use insilico_engine::{load_config, RunConfig, RunData, RunDir};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    about = "Train a network from a config",
    long_about = "Train a network from a config and write a run directory: config.toml (as \
        resolved), metrics.csv/json, checkpoints/ (one per epoch, atomic), model.bpk, \
        weights.safetensors (PyTorch layout) and manifest.json.\n\n\
        A config is a TOML file or the name of a built-in one: cnn-small, cnn-bn, cnn-plain8, \
        mlp-2x128, mlp-2x512, mlp-6x128.",
    after_help = "Examples:\n  \
        insilico train --config cnn-small --dataset mnist\n  \
        insilico train --config configs/mlp-2x512.toml --dataset mnist --set data.train_limit=10000 --set data.label_noise=1.0\n  \
        insilico train --config cnn-small --out runs/x --resume     # continue after a kill"
)]
pub struct TrainArgs {
    /// Config file or built-in config name.
    #[arg(long, short)]
    pub config: String,
    /// Dataset: mnist, fashion-mnist, cifar10 or shapes (overrides data.dataset).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Override any config field: --set training.lr=0.01 --set model.layers.0.out_channels=32
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Epochs (overrides training.epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed (overrides training.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run directory (default: runs/<model>-<dataset>-s<seed>).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run in --out from its last complete checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub env: Env,
}

pub fn resolve_config(args: &TrainArgs) -> Result<RunConfig> {
    let mut overrides = args.overrides.clone();
    if let Some(d) = &args.dataset {
        overrides.push(format!("data.dataset=\"{d}\""));
    }
    if let Some(e) = args.epochs {
        overrides.push(format!("training.epochs={e}"));
    }
    if let Some(s) = args.seed {
        overrides.push(format!("training.seed={s}"));
    }
    load_config(&args.config, &overrides)
}

pub fn default_run_dir(config: &RunConfig) -> PathBuf {
    let mut name = format!(
        "{}-{}-s{}",
        config.model.name, config.data.dataset, config.training.seed
    );
    if config.data.label_noise > 0.0 {
        name.push_str(&format!("-noise{}", config.data.label_noise));
    }
    if config.data.shuffle_labels {
        name.push_str("-shuffled");
    }
    if let Some(n) = config.data.train_limit {
        name.push_str(&format!("-n{n}"));
    }
    PathBuf::from("runs").join(name)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let config = resolve_config(&args)?;
    let compute = args.env.compute()?;
    let out = args.out.clone().unwrap_or_else(|| default_run_dir(&config));
    let data = RunData::prepare(&config.data, config.training.seed, &args.env.locator())?;
    // Shapes, classes and memory are checked before anything is written.
    insilico_engine::train::preflight(&config, &data)?;
    eprintln!(
        "training {} on {} ({} train / {} test images, {}) with {} -> {}",
        config.model.name,
        data.dataset.name,
        data.train.len(),
        data.test.len(),
        data.dataset.source,
        compute.description,
        out.display()
    );
    let run = RunDir::new(&out);
    let outcome = train(
        &config,
        &data,
        &run,
        &TrainOptions {
            compute,
            resume: args.resume,
            progress: args.env.progress(),
            halt_after_epoch: None,
            stop: None,
        },
    )?;
    // The last epoch is always evaluated.
    let last = outcome.metrics.last().expect("at least one epoch");
    println!(
        "done: train acc {:.4}, test acc {:.4} after {} epochs ({:.1}s)\noutputs in {}/ (metrics.csv, model.bpk, weights.safetensors, manifest.json)",
        last.train_acc.unwrap_or(f64::NAN),
        last.test_acc.unwrap_or(f64::NAN),
        outcome.metrics.len(),
        outcome.metrics.iter().map(|m| m.seconds).sum::<f64>(),
        out.display()
    );
    Ok(())
}
