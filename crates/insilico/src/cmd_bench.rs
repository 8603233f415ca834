//! `insilico bench`: throughput, side by side with the PyTorch reference scripts.
//!
//! Each benchmark mirrors one script of `../shared/bench` (same model, batch sizes, step
//! counts and timing rule: median of 5 after one warm-up) and, given `--torch PYTHON`,
//! runs that script right after itself and prints the ratio.

use crate::common::Env;
use anyhow::Result;
use clap::{Args, ValueEnum};
use insilico_study::bench::{bench_ablation, bench_actmax, bench_train, ratios, round1, run_torch};
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
    /// Timed repetitions after the warm-up (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    #[command(flatten)]
    pub env: Env,
}

pub fn run(args: BenchArgs) -> Result<()> {
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
