//! `insilico`: an in-silico neurophysiology lab. Train small networks, then record from
//! named sites, silence units, measure their tuning and map their receptive fields.

//!
//! The binary is the command line only: clap definitions and thin glue over the
//! libraries (`insilico-study` for the assays and sweeps, `insilico-engine` for
//! training). The assays' subcommands come from the study library's registry.

mod alloc_policy;
mod cmd_assay;
mod cmd_bench;
mod cmd_compare;
mod cmd_data;
mod cmd_inspect;
mod cmd_sweep;
mod cmd_train;
mod common;

use anyhow::Result;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use insilico_study::{with_assay, AssayKind};

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

/// The commands that are not assays (those come from the registry).
#[derive(Subcommand)]
enum Command {
    Train(cmd_train::TrainArgs),
    Inspect(cmd_inspect::InspectArgs),
    Data(cmd_data::DataArgs),
    Compare(cmd_compare::CompareArgs),
    Sweep(cmd_sweep::SweepArgs),
    Bench(cmd_bench::BenchArgs),
}

/// The whole command line: the commands above and one subcommand per registered assay.
fn command_line() -> clap::Command {
    // compare shares the study's flags but refuses --checkpoints (snapshots are its
    // --over-training): kept for that clear refusal, left out of its help.
    let mut cmd =
        Cli::command().mut_subcommand("compare", |c| c.mut_arg("checkpoints", |a| a.hide(true)));
    for kind in AssayKind::ALL {
        cmd = cmd.subcommand(with_assay!(kind, A => cmd_assay::command::<A>()));
    }
    cmd
}

fn dispatch(matches: &ArgMatches) -> Result<()> {
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(kind) = AssayKind::ALL.into_iter().find(|k| k.command() == name) {
            return with_assay!(kind, A => cmd_assay::run::<A>(sub));
        }
    }
    match Cli::from_arg_matches(matches)?.command {
        Command::Train(a) => cmd_train::run(a),
        Command::Inspect(a) => cmd_inspect::run(a),
        Command::Data(a) => cmd_data::run(a),
        Command::Compare(a) => cmd_compare::run(a),
        Command::Sweep(a) => cmd_sweep::run(a),
        Command::Bench(a) => cmd_bench::run(a),
    }
}

fn main() {
    alloc_policy::keep_freed_memory();
    let matches = command_line().get_matches();
    if let Err(e) = dispatch(&matches) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
