//! `insilico sweep`: the command line of the sweep library.

use crate::common::Env;
use anyhow::Result;
use clap::Args;
use insilico_study::sweep::{PointState, Sweep};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
#[command(
    about = "Run a whole study from a sweep file: train every grid point, run the assays, draw the summary",
    long_about = "Expands the sweep file's grid into runs (one directory per grid point under \
        OUT/runs/), validates everything first, then trains each point and runs the assays on \
        it. Complete runs and finished assays are skipped; an interrupted run resumes from its \
        last complete epoch. Then writes OUT/summary/ (figures, summary.csv, summary.json) and \
        OUT/report.html, a self-contained page with the sweep file, the figures and the numbers.",
    after_help = "Examples:\n  insilico sweep experiments/ablation-vs-generalization.toml --dry-run\n  insilico sweep experiments/ablation-vs-generalization.toml --jobs 2\n  insilico sweep experiments/ablation-vs-generalization.toml --scale full   # the paper's scale, for a GPU"
)]
pub struct SweepArgs {
    /// The sweep file.
    pub file: PathBuf,
    /// Print the expanded grid and what is already done, then stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Grid points to run at once (each a process with its share of the cores).
    #[arg(long, short, default_value_t = 1)]
    pub jobs: usize,
    /// A scale defined in the file's [scales] (e.g. `full`).
    #[arg(long)]
    pub scale: Option<String>,
    /// Output directory (default: the file's `out`, else runs/<name>).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Only redraw the summary and report from what is on disk.
    #[arg(long)]
    pub summary_only: bool,
    /// Run one grid point (used by --jobs for its child processes).
    #[arg(long, hide = true)]
    pub point: Option<String>,
    #[command(flatten)]
    pub env: Env,
}

pub fn run(args: SweepArgs) -> Result<()> {
    let started = Instant::now();
    let sweep = Sweep::load(&args.file, args.scale.as_deref(), args.out.as_deref())?;
    let locator = args.env.locator();
    if let Some(id) = &args.point {
        return sweep.run_point(id, &args.env.compute()?, &locator, false);
    }
    if args.dry_run {
        return dry_run(&sweep);
    }
    if !args.summary_only {
        sweep.validate(&locator)?;
    }
    // One process writes a sweep directory at a time (its --jobs children write only
    // their own run directories, each locked by training).
    let _lock = sweep.lock()?;
    if !args.summary_only {
        eprintln!(
            "sweep {}: {} grid points, {} to run, {} job(s) -> {}",
            sweep.spec.name,
            sweep.points.len(),
            sweep.todo().len(),
            args.jobs,
            sweep.out.display()
        );
        if args.jobs <= 1 {
            sweep.run_serial(&args.env.compute()?, &locator, args.env.progress())?;
        } else {
            let exe = std::env::current_exe()?;
            sweep.run_parallel(
                &exe,
                &args.env.device,
                args.env.data_dir.as_deref(),
                args.jobs,
            )?;
        }
    }
    if !args.summary_only {
        sweep.compare(&args.env.compute()?, &locator)?;
    }
    // The wall time of a run that only redraws the summary says nothing of the study.
    let wall = (!args.summary_only).then(|| started.elapsed().as_secs_f64());
    let s = sweep.summarize(wall)?;
    let axis = s.x_axis.as_deref().unwrap_or("x");
    for h in &s.headlines {
        let levels: Vec<String> = h
            .auc_by_x
            .iter()
            .map(|(x, m, sd, _)| format!("{x}: {m:.3}±{sd:.3}"))
            .collect();
        println!(
            "{} {}: AUC by {axis} [{}]; Spearman({axis}, AUC) = {:.3}",
            h.model,
            h.site,
            levels.join(", "),
            h.spearman_x_auc
        );
    }
    for (m, (rho, rho_drop)) in &s.selectivity_importance {
        println!("{m}: selectivity vs importance, mean Spearman {rho:.3} (loss increase), {rho_drop:.3} (accuracy drop)");
    }
    for check in &s.compare_checks {
        println!("{check}");
    }
    println!(
        "train {:.0}s, assays {:.0}s{}; report: {}",
        s.train_seconds,
        s.assay_seconds,
        wall.map(|w| format!(", wall {w:.0}s")).unwrap_or_default(),
        sweep.out.join("report.html").display()
    );
    Ok(())
}

fn dry_run(sweep: &Sweep) -> Result<()> {
    println!(
        "{} grid points -> {}/runs/",
        sweep.points.len(),
        sweep.out.display()
    );
    for p in &sweep.points {
        let state = match sweep.state(p) {
            PointState::Done => "done",
            PointState::Partial => "partial",
            PointState::Todo => "todo",
        };
        println!("  [{state:>7}] {}", p.id);
    }
    let names: Vec<&str> = sweep.spec.assays.kinds().iter().map(|k| k.name()).collect();
    println!("assays: {}", names.join(", "));
    Ok(())
}
