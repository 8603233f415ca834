//! `insilico sweep`: one file describes a whole study; one command runs it, resumes it
//! after an interruption, and writes the figures and the report.

pub mod exec;
pub mod spec;
pub mod summary;

use crate::common::Env;
use anyhow::{bail, Result};
use clap::Args;
use spec::SweepFile;
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
    let sweep = SweepFile::load(&args.file, args.scale.as_deref())?;
    let text = std::fs::read_to_string(&args.file)?;
    let points = sweep.expand()?;
    let out = sweep.out_dir(args.out.as_deref());
    let locator = args.env.locator();
    if let Some(id) = &args.point {
        let Some(p) = points.iter().find(|p| &p.id == id) else {
            bail!("no grid point `{id}` in {}", args.file.display());
        };
        return exec::run_point(
            &out,
            p,
            &sweep.assays,
            &args.env.compute()?,
            &locator,
            false,
        );
    }
    if args.dry_run {
        println!("{} grid points -> {}/runs/", points.len(), out.display());
        for p in &points {
            let state = if exec::point_done(&out, p, &sweep.assays) {
                "done"
            } else if exec::run_dir(&out, p).config_path().exists() {
                "partial"
            } else {
                "todo"
            };
            println!("  [{state:>7}] {}", p.id);
        }
        println!("assays: {}", exec::assay_names(&sweep.assays).join(", "));
        return Ok(());
    }
    if !args.summary_only {
        sweep.validate(&points, &locator)?;
    }
    // One process writes a sweep directory at a time (its --jobs children write only
    // their own run directories, each locked by training).
    let _lock = insilico_engine::rundir::DirLock::acquire(&out, "sweep directory")?;
    if !args.summary_only {
        let todo: Vec<&spec::Point> = points
            .iter()
            .filter(|p| !exec::point_done(&out, p, &sweep.assays))
            .collect();
        eprintln!(
            "sweep {}: {} grid points, {} to run, {} job(s) -> {}",
            sweep.name,
            points.len(),
            todo.len(),
            args.jobs,
            out.display()
        );
        std::fs::create_dir_all(&out)?;
        insilico_data::fsx::write_atomic(&out.join("sweep.toml"), text.as_bytes())?;
        if args.jobs <= 1 {
            let compute = args.env.compute()?;
            for p in &todo {
                exec::run_point(
                    &out,
                    p,
                    &sweep.assays,
                    &compute,
                    &locator,
                    args.env.progress(),
                )?;
            }
        } else {
            let exe = std::env::current_exe()?;
            let child = exec::child_args(&args.file, args.scale.as_deref(), &out, &args.env);
            exec::run_parallel(&exe, &child, &todo, args.jobs)?;
        }
    }
    // The wall time of a run that only redraws the summary says nothing of the study.
    let wall = (!args.summary_only).then(|| started.elapsed().as_secs_f64());
    let s = summary::summarize(&sweep, &text, &points, &out, wall)?;
    for h in &s.headlines {
        let levels: Vec<String> = h
            .auc_by_x
            .iter()
            .map(|(x, m, sd, _)| format!("{x}: {m:.3}±{sd:.3}"))
            .collect();
        println!(
            "{} {}: AUC by {} [{}]; Spearman({}, AUC) = {:.3}",
            h.model,
            h.site,
            s.x_axis.as_deref().unwrap_or("x"),
            levels.join(", "),
            s.x_axis.as_deref().unwrap_or("x"),
            h.spearman_x_auc
        );
    }
    for (m, (rho, rho_drop)) in &s.selectivity_importance {
        println!("{m}: selectivity vs importance, mean Spearman {rho:.3} (loss increase), {rho_drop:.3} (accuracy drop)");
    }
    println!(
        "train {:.0}s, assays {:.0}s{}; report: {}",
        s.train_seconds,
        s.assay_seconds,
        wall.map(|w| format!(", wall {w:.0}s")).unwrap_or_default(),
        out.join("report.html").display()
    );
    Ok(())
}
