//! `insilico sweep`: the command line of the sweep library.

use crate::common::Env;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use insilico_data::Locator;
use insilico_study::sweep::exec::{child_args, PointRun};
use insilico_study::sweep::slurm::{self, PointStatus, SlurmOptions, Submitted, REQUEUE_EXIT};
use insilico_study::sweep::{PointState, Sweep};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// Where the grid points run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// On this machine, `--jobs` points at once.
    #[default]
    Local,
    /// On a Slurm cluster: one job array (a task per point) and a summary job after it.
    Slurm,
}

#[derive(Args)]
#[command(
    about = "Run a whole study from a sweep file: train every grid point, run the assays, draw the summary",
    long_about = "Expands the sweep file's grid into runs (one directory per grid point under \
        OUT/runs/), validates everything first, then trains each point and runs the assays on \
        it. Complete runs and finished assays are skipped; an interrupted run resumes from its \
        last checkpoint. Then writes OUT/summary/ (figures, summary.csv, summary.json) and \
        OUT/report.html, a self-contained page with the sweep file, the figures and the numbers. \
        With --executor slurm the points run as a Slurm job array (a task per point) and a job \
        after it writes the summary; --status and --cancel follow them.",
    after_help = "Examples:\n  insilico sweep experiments/ablation-vs-generalization.toml --dry-run\n  insilico sweep experiments/ablation-vs-generalization.toml --jobs 2\n  insilico sweep experiments/ablation-vs-generalization.toml --scale full   # the paper's scale, for a GPU\n  insilico sweep experiments/ablation-vs-generalization.toml --executor slurm --partition gpu --gres gpu:1 --device wgpu --time 4:00:00\n  insilico sweep experiments/ablation-vs-generalization.toml --status"
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
    /// Where the grid points run: this machine, or a Slurm cluster (submitted from a
    /// login node; the sweep directory must be on a filesystem every node sees).
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// Show every grid point's state (done, running, pending, failed with the end of its
    /// log) from the sweep directory and Slurm, then stop.
    #[arg(long, conflicts_with_all = ["dry_run", "cancel", "summary_only"])]
    pub status: bool,
    /// Cancel this sweep's Slurm jobs that are still queued or running (finished points
    /// are kept; a later run resumes the others).
    #[arg(long, conflicts_with_all = ["dry_run", "summary_only"])]
    pub cancel: bool,
    /// With --summary-only: refuse unless every grid point is done (the Slurm summary
    /// job, which runs after the array's tasks end, however they end).
    #[arg(long, hide = true, requires = "summary_only")]
    pub when_done: bool,
    /// Run one grid point (used by --jobs for its child processes).
    #[arg(long, hide = true)]
    pub point: Option<String>,
    #[command(flatten)]
    pub env: Env,
    /// Slurm options (also settable in the sweep file's [slurm] table; a flag wins).
    #[command(flatten, next_help_heading = "Slurm executor")]
    pub slurm: SlurmOptions,
}

pub fn run(args: SweepArgs) -> Result<()> {
    let started = Instant::now();
    let sweep = Sweep::load(&args.file, args.scale.as_deref(), args.out.as_deref())?;
    let locator = args.env.locator();
    if let Some(id) = &args.point {
        return run_point(&sweep, id, &args.env, &locator);
    }
    if args.dry_run {
        return dry_run(&sweep);
    }
    if args.status {
        return status(&sweep);
    }
    if args.cancel {
        let ids = sweep.slurm_cancel()?;
        println!("cancelled {} Slurm job(s): {}", ids.len(), ids.join(" "));
        return Ok(());
    }
    if !args.summary_only {
        sweep.validate(&locator)?;
    }
    // One process writes a sweep directory at a time (its --jobs children write only
    // their own run directories, each locked by training).
    let _lock = sweep.lock()?;
    if !args.summary_only {
        eprintln!(
            "sweep {}: {} grid points, {} to run, {} -> {}",
            sweep.spec.name,
            sweep.points.len(),
            sweep.todo().len(),
            match args.executor {
                Executor::Local => format!("{} job(s)", args.jobs),
                Executor::Slurm => "Slurm".to_string(),
            },
            sweep.out.display()
        );
        match args.executor {
            Executor::Local if args.jobs <= 1 => {
                sweep.run_serial(&args.env.compute()?, &locator, args.env.progress())?
            }
            Executor::Local => {
                let exe = std::env::current_exe()?;
                let data = args.env.data_dir.as_deref();
                sweep.run_parallel(&exe, &args.env.device, data, args.jobs)?;
            }
            // The summary job writes the summary once the points are done.
            Executor::Slurm if submit(&sweep, &args)? => return Ok(()),
            Executor::Slurm => {}
        }
    }
    if args.when_done && !sweep.todo().is_empty() {
        let todo: Vec<&str> = sweep.todo().iter().map(|p| p.id.as_str()).collect();
        bail!(
            "summary not written: {} grid point(s) not done ({}); `--status` shows why, \
             and running the sweep again resumes them",
            todo.len(),
            todo.join(", ")
        );
    }
    // The [compare] step needs every run trained: after the points here, or in the Slurm
    // summary job (`--summary-only --when-done`).
    if !args.summary_only || args.when_done {
        sweep.compare(&args.env.compute()?, &locator)?;
    }
    // The wall time of a run that only redraws the summary says nothing of the study.
    let wall = (!args.summary_only).then(|| started.elapsed().as_secs_f64());
    print_summary(&sweep, wall)
}

/// One grid point, in a child process or a Slurm task: a preemption or time-limit
/// signal (USR2, or TERM) checkpoints training at its next step and exits with
/// [`REQUEUE_EXIT`], which Slurm turns into a requeue.
fn run_point(sweep: &Sweep, id: &str, env: &Env, locator: &Locator) -> Result<()> {
    use signal_hook::consts::{SIGTERM, SIGUSR2};
    let stop = Arc::new(AtomicBool::new(false));
    // A second TERM ends the process at once (the first asked for a checkpoint).
    signal_hook::flag::register_conditional_shutdown(SIGTERM, 143, Arc::clone(&stop))?;
    for signal in [SIGUSR2, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    match sweep.run_point(id, &env.compute()?, locator, Some(stop))? {
        PointRun::Finished => Ok(()),
        PointRun::Stopped => {
            eprintln!("[{id}] stopped by a signal: checkpoint written, exiting with {REQUEUE_EXIT} to be requeued");
            std::process::exit(REQUEUE_EXIT)
        }
    }
}

/// Submits the unfinished points to Slurm; false when every point is already done
/// (then the summary is written here and now).
fn submit(sweep: &Sweep, args: &SweepArgs) -> Result<bool> {
    let options = args.slurm.over(&sweep.spec.slurm);
    let exe = std::env::current_exe()?;
    // The tasks run elsewhere, from another directory: every path absolute.
    let (file, out) = (slurm::absolute(&sweep.file)?, slurm::absolute(&sweep.out)?);
    let data = args
        .env
        .data_dir
        .as_deref()
        .map(slurm::absolute)
        .transpose()?;
    let child = child_args(
        &file,
        sweep.scale.as_deref(),
        &out,
        &args.env.device,
        data.as_deref(),
    );
    let follow = format!("insilico sweep {} --status", args.file.display());
    match sweep.submit_slurm(&options, &exe, &child)? {
        Submitted::AllDone => {
            eprintln!("every grid point is done: nothing submitted");
            Ok(false)
        }
        Submitted::AlreadyQueued(n) => {
            println!("{n} grid point(s) already queued or running; nothing new submitted. Follow with: {follow}");
            Ok(true)
        }
        Submitted::Jobs(s) => {
            println!(
                "submitted job array {} ({} grid points) and summary job {}; logs in {}. Follow with: {follow}",
                s.array_job,
                s.points.len(),
                s.summary_job.as_deref().unwrap_or("-"),
                slurm::slurm_dir(&sweep.out).join("logs").display()
            );
            Ok(true)
        }
    }
}

/// The `--status` table, then the end of each failed point's log.
fn status(sweep: &Sweep) -> Result<()> {
    let rows = sweep.slurm_status()?;
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(5).max(5);
    println!(
        "{:<width$}  {:<8}  {:<10}  {:>8}  log",
        "point", "status", "task", "restarts"
    );
    for r in &rows {
        println!(
            "{:<width$}  {:<8}  {:<10}  {:>8}  {}",
            r.id,
            r.status.name(),
            r.task.as_deref().unwrap_or("-"),
            r.slurm
                .as_ref()
                .map_or("-".into(), |t| t.restarts.to_string()),
            r.log
                .as_ref()
                .map_or("-".into(), |l| l.display().to_string())
        );
    }
    for r in rows.iter().filter(|r| r.status == PointStatus::Failed) {
        let (Some(t), Some(log)) = (&r.slurm, &r.log) else {
            continue;
        };
        println!(
            "\n{} failed ({} {}, exit code {}); last lines of {}:",
            r.id,
            t.state,
            t.reason,
            t.exit_code,
            log.display()
        );
        for line in slurm::log_tail(log, 15) {
            println!("  {line}");
        }
    }
    let count = |s: PointStatus| rows.iter().filter(|r| r.status == s).count();
    let all = [
        PointStatus::Done,
        PointStatus::Running,
        PointStatus::Pending,
        PointStatus::Failed,
        PointStatus::NotDone,
    ];
    let counts: Vec<String> = all
        .iter()
        .map(|s| format!("{} {}", count(*s), s.name()))
        .collect();
    println!("\n{}", counts.join(", "));
    if !slurm::on_path("scontrol") && rows.iter().any(|r| r.task.is_some()) {
        println!("(scontrol is not on the PATH: states from the sweep directory only)");
    }
    Ok(())
}

/// The summary and report from what is on disk, and its headline numbers.
fn print_summary(sweep: &Sweep, wall: Option<f64>) -> Result<()> {
    let s = sweep.summarize(wall)?;
    let axis = s.x_axis.as_deref().unwrap_or("x");
    for h in &s.headlines {
        let levels: Vec<String> = h
            .auc_by_x
            .iter()
            .map(|(x, m, sd, _)| format!("{x}: {m:.3}±{sd:.3}"))
            .collect();
        // A rank correlation needs two distinct levels and AUCs that vary.
        let rho = match h.spearman_x_auc {
            r if r.is_finite() => format!("{r:.3}"),
            _ => "undefined (fewer than two levels, or constant values)".to_string(),
        };
        println!(
            "{} {}: AUC by {axis} [{}]; Spearman({axis}, AUC) = {rho}",
            h.model,
            h.site,
            levels.join(", "),
        );
    }
    if let Some(c) = &s.claim {
        println!("{}", c.claim.title());
        for line in &c.lines {
            println!("  {line}");
        }
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
