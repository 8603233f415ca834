//! `insilico bench`: throughput, side by side with the PyTorch reference scripts.
//!
//! Each benchmark mirrors one script of `../shared/bench` (same model, batch sizes, step
//! counts and timing rule: median of 5 after one warm-up) and, given `--torch PYTHON`,
//! runs that script right after itself and prints the ratio.

use crate::common::Env;
use anyhow::Result;
use clap::{Args, ValueEnum};
use insilico_study::bench::{
    bench_ablation, bench_actmax, bench_train, population_ours, population_reference, ratios,
    round1, run_torch, set_population_threads, speedups, PopulationSizes,
};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Which {
    /// cnn-small training (batch 128) and inference (batch 1000) images/s.
    Train,
    /// Ablation sweep: conv1, conv2, fc1 x 11 fractions x 5 orders on 10,000 images.
    Ablation,
    /// Activation maximization: conv2's 32 channels, 256 steps, one batch.
    Actmax,
    /// Population measures: linear CKA, SVCCA, PWCCA, ridge on 10,000 x 512 pairs, RSA on
    /// 2,000 stimuli, the 4-layer x 20-checkpoint heatmap; with --python and --svcca, side
    /// by side with the numpy/scipy/scikit-learn/google-svcca reference script.
    Population,
}

#[derive(Args)]
#[command(
    about = "Measure throughput, optionally side by side with PyTorch",
    after_help = "Examples:\n  insilico bench train\n  insilico bench train --torch ~/torch-bench/bin/python --bench-dir ../shared/bench"
)]
pub struct BenchArgs {
    pub which: Which,
    /// Python with torch installed: also run the reference script and print ratios.
    #[arg(long)]
    pub torch: Option<PathBuf>,
    /// Folder of the PyTorch reference scripts.
    #[arg(long, default_value = "../shared/bench")]
    pub bench_dir: PathBuf,
    /// Write the result JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Timed repetitions after the warm-up (the median is reported; population: the best).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// population: a Python with numpy, scipy and scikit-learn; runs the reference script
    /// after ours, with its BLAS on as many threads as ours, and prints the speed-ups.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// population: the numpy/scipy reference script.
    #[arg(
        long,
        default_value = "crates/insilico-population/bench/population_reference.py"
    )]
    pub reference: PathBuf,
    /// population: a checkout of google/svcca (the reference's CCA, SVCCA and PWCCA).
    #[arg(long)]
    pub svcca: Option<PathBuf>,
    /// population: rounds of (ours, then the reference), for a range of ratios on a
    /// machine whose load varies.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// population: stimuli x units of the CKA, CCA and ridge inputs.
    #[arg(long, default_value_t = 10_000)]
    pub stimuli: usize,
    #[arg(long, default_value_t = 512)]
    pub units: usize,
    /// population: threads for ours and for the reference's BLAS (0: every core). On a
    /// shared machine OpenBLAS's spinning threads measure the load more than the library.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// population: stimuli of the RSA and of each heatmap matrix.
    #[arg(long, default_value_t = 2_000)]
    pub rsa_stimuli: usize,
    #[command(flatten)]
    pub env: Env,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let Which::Population = args.which {
        return population(&args);
    }
    let (ours, script, keys): (Value, &str, &[&str]) = match args.which {
        Which::Train => (
            bench_train(&args.env.compute()?, args.repeats.max(1))?,
            "torch_cnn.py",
            &["train_images_per_s", "infer_images_per_s"],
        ),
        Which::Ablation => (
            bench_ablation(&args.env.compute()?)?,
            "torch_ablation.py",
            &[],
        ),
        Which::Population => unreachable!("handled above"),
        Which::Actmax => {
            let compute = args.env.compute()?;
            let (seconds, steps) = bench_actmax(&compute.device)?;
            (
                json!({
                    "bench": "actmax-conv2",
                    "engine": "insilico",
                    "backend": compute.description,
                    "units": 32,
                    "steps": steps,
                    "seconds": (seconds * 1000.0).round() / 1000.0,
                    "steps_per_s": round1(steps as f64 / seconds),
                }),
                "torch_actmax.py",
                &["steps_per_s"],
            )
        }
    };
    println!("{ours}");
    let mut result = json!({ "insilico": ours });
    if let Some(python) = &args.torch {
        let torch = run_torch(python, &args.bench_dir, script)?;
        println!("{torch}");
        let mut r = ratios(&result["insilico"], &torch, keys);
        if let Which::Ablation = args.which {
            // Speed-ups: how many times faster than each PyTorch sweep.
            let ours = result["insilico"]["insilico_s"]
                .as_f64()
                .unwrap_or(f64::NAN);
            for k in ["naive_s", "cached_s"] {
                if let Some(t) = torch[k].as_f64() {
                    r[format!("speedup_vs_torch_{k}")] = json!((t / ours * 100.0).round() / 100.0);
                }
            }
        }
        println!("ratio insilico/torch: {r}");
        result["torch"] = torch;
        result["ratio"] = r;
    }
    if let Some(path) = &args.json {
        insilico_data::fsx::write_atomic(path, serde_json::to_string_pretty(&result)?.as_bytes())?;
    }
    Ok(())
}

/// `insilico bench population`: `rounds` x (ours, then the reference), speed-ups per
/// round and their range.
fn population(args: &BenchArgs) -> Result<()> {
    let sizes = PopulationSizes {
        stimuli: args.stimuli,
        units: args.units,
        rsa_stimuli: args.rsa_stimuli,
    };
    let repeats = args.repeats.clamp(1, 3);
    let threads = set_population_threads(args.threads);
    println!(
        "population measures, {} x {} (RSA and heatmap {} stimuli), best of {repeats}, {threads} thread(s)",
        sizes.stimuli, sizes.units, sizes.rsa_stimuli
    );
    let mut rounds = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let ours = population_ours(sizes, repeats)?;
        println!("round {round} insilico: {ours}");
        let mut r = json!({ "insilico": ours });
        if let Some(python) = &args.python {
            let Some(svcca) = &args.svcca else {
                anyhow::bail!(
                    "--python needs --svcca PATH, a checkout of google/svcca (the reference's CCA)"
                );
            };
            let reference =
                population_reference(python, &args.reference, svcca, sizes, repeats, threads)?;
            println!("round {round} numpy/scipy: {reference}");
            let s = speedups(&r["insilico"], &reference);
            println!("round {round} speed-up (reference s / insilico s): {s}");
            r["reference"] = reference;
            r["speedup"] = s;
        }
        rounds.push(r);
    }
    if args.python.is_some() {
        let tasks: Vec<String> = rounds[0]["speedup"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        for t in tasks {
            let v: Vec<f64> = rounds
                .iter()
                .filter_map(|r| r["speedup"][&t].as_f64())
                .collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            println!("{t:<26} speed-up {lo:.2}x .. {hi:.2}x");
        }
    }
    if let Some(path) = &args.json {
        let result = json!({ "threads": threads, "rounds": rounds });
        insilico_data::fsx::write_atomic(path, serde_json::to_string_pretty(&result)?.as_bytes())?;
    }
    Ok(())
}
