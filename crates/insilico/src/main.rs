//! `insilico`: an in-silico neurophysiology lab. Train small networks, then record from
//! named sites, silence units, measure their tuning and map their receptive fields.

mod cmd_ablate;
mod cmd_bench;
mod cmd_data;
mod cmd_inspect;
mod cmd_noise;
mod cmd_receptive;
mod cmd_selectivity;
mod cmd_train;
mod common;
mod study;
mod sweep;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "insilico",
    version,
    about = "An in-silico neurophysiology lab: train small CNNs, then record, ablate, tune and map them",
    long_about = "An in-silico neurophysiology lab.\n\n\
        Train small networks on MNIST, Fashion-MNIST, CIFAR-10 or the embedded `shapes` set, \
        then study them as a physiologist studies a brain: record from named sites \
        (`insilico inspect` lists them), silence units, measure class selectivity and map \
        receptive fields. Every command writes into a run directory: config, metrics, \
        curves (CSV/JSON), figures (PNG/SVG) and a manifest.\n\n\
        Quick start:\n  insilico train --config cnn-small --dataset shapes --out runs/demo\n  \
        insilico inspect --run runs/demo",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Train(cmd_train::TrainArgs),
    Inspect(cmd_inspect::InspectArgs),
    Data(cmd_data::DataArgs),
    Ablate(cmd_ablate::AblateArgs),
    Selectivity(cmd_selectivity::SelectivityArgs),
    Noise(cmd_noise::NoiseArgs),
    ReceptiveFields(cmd_receptive::ReceptiveArgs),
    Sweep(sweep::SweepArgs),
    Bench(cmd_bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd_train::run(a),
        Command::Inspect(a) => cmd_inspect::run(a),
        Command::Data(a) => cmd_data::run(a),
        Command::Ablate(a) => cmd_ablate::run(a),
        Command::Selectivity(a) => cmd_selectivity::run(a),
        Command::Noise(a) => cmd_noise::run(a),
        Command::ReceptiveFields(a) => cmd_receptive::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Bench(a) => cmd_bench::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
