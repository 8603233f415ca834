//! `insilico inspect`: sites, shapes and parameter counts.

use crate::common::Env;
use anyhow::Result;
use burn::module::Module;
use clap::Args;
use insilico_engine::memory::{available_memory, MemoryEstimate};
use insilico_engine::{load_config, Network, Plan, RunConfig, RunDir};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    about = "List a network's sites, their shapes and parameter counts",
    after_help = "Examples:\n  insilico inspect --config cnn-small\n  insilico inspect --run runs/demo"
)]
pub struct InspectArgs {
    /// Config file or built-in name.
    #[arg(long, short, conflicts_with = "run")]
    pub config: Option<String>,
    /// A run directory (reads its config.toml).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Input shape C,H,W (default: the config's dataset's; 1,28,28 for MNIST-like sets).
    /// `--input 3,32,32` or `--input 3 32 32`.
    #[arg(long, value_delimiter = ',', num_args = 1..=3)]
    pub input: Option<Vec<usize>>,
    #[command(flatten)]
    pub env: Env,
}

fn default_input(config: &RunConfig) -> [usize; 3] {
    match config.data.dataset.as_str() {
        "cifar10" => [3, 32, 32],
        _ => [1, 28, 28],
    }
}

pub fn run(args: InspectArgs) -> Result<()> {
    let config = match (&args.config, &args.run) {
        (Some(c), _) => load_config(c, &[])?,
        (None, Some(r)) => RunConfig::load(&RunDir::new(r).config_path(), &[])?,
        (None, None) => anyhow::bail!("give --config NAME|FILE or --run DIR"),
    };
    let input = match args.input.as_deref() {
        Some(&[c, h, w]) => [c, h, w],
        Some(other) => anyhow::bail!(
            "--input needs three sizes C,H,W (e.g. 3,32,32), got {}",
            other.len()
        ),
        None => default_input(&config),
    };
    // Sizes that overflow or do not fit in memory are refused before any weight exists.
    let plan = Plan::new(&config.model, input)?;
    MemoryEstimate::weights(&plan).check_fits(
        &format!("model `{}`", config.model.name),
        available_memory(),
    )?;
    let net = Network::new(&config.model, input, &burn::tensor::Device::flex())?;
    println!(
        "{} — {}\ninput {}x{}x{}\n",
        config.model.name, config.model.description, input[0], input[1], input[2]
    );
    println!(
        "{:<14} {:<10} {:>12} {:>7} {:>10}",
        "site", "layer", "shape", "units", "params"
    );
    for (stage, layer_params) in net.plan().stages.iter().zip(layer_params(&net)) {
        println!(
            "{:<14} {:<10} {:>12} {:>7} {:>10}",
            stage.site,
            stage.kind,
            stage.output.to_string(),
            stage.output.units(),
            layer_params
        );
    }
    println!("\ntotal parameters: {}", net.num_params());
    println!(
        "hidden sites (ablation default): {}",
        net.plan().hidden_sites().join(", ")
    );
    Ok(())
}

fn layer_params(net: &Network) -> Vec<usize> {
    let names = net.plan().site_names();
    names
        .iter()
        .map(|s| net.layer(s).map(|l| l.num_params()).unwrap_or(0))
        .collect()
}
