//! Running grid points: train (resuming an interrupted run, skipping a complete one), then
//! each assay (skipping those already done). Several points run at once as child
//! processes, each with its share of the cores: Burn's random generator is one per device
//! and process, so a process per point keeps every run reproducible.

use super::spec::{AssaySpec, Point};
use crate::registry::{done_marker, AssayKind};
use crate::study::Study;
use anyhow::{bail, Context, Result};
use insilico_data::fsx::write_atomic;
use insilico_data::Locator;
use insilico_engine::train::{train, TrainOptions};
use insilico_engine::{Compute, RunData, RunDir, TrainedRun};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Written as `assays/<name>/done.json` once an assay's outputs are all in place.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssayDone {
    pub assay: String,
    pub seconds: f64,
}

pub fn run_dir(out: &Path, point: &Point) -> RunDir {
    RunDir::new(out.join("runs").join(&point.id))
}

/// Removes temporary files a killed process may have left (never a finished file).
fn clean_partials(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let partial =
            name.starts_with('.') && (name.contains(".tmp-") || name.ends_with(".partial"));
        if partial {
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        } else if path.is_dir() {
            clean_partials(&path)?;
        }
    }
    Ok(())
}

/// How a grid point's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointRun {
    Finished,
    /// Told to stop (a signal): training checkpointed, finished assays kept.
    Stopped,
}

/// Trains one point (unless complete) and runs its assays (unless done); once `stop` is
/// set, training checkpoints at its next step and no further assay starts.
pub fn run_point(
    out: &Path,
    point: &Point,
    assays: &AssaySpec,
    compute: &Compute,
    locator: &Locator,
    progress: bool,
    stop: Option<Arc<AtomicBool>>,
) -> Result<PointRun> {
    let stopped = || stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    let run = run_dir(out, point);
    clean_partials(&run.root)?;
    if !run.is_complete() {
        let data = RunData::prepare(&point.config.data, point.config.training.seed, locator)?;
        let resume = run.config_path().exists();
        eprintln!(
            "[{}] training{}",
            point.id,
            if resume { " (resuming)" } else { "" }
        );
        let outcome = train(
            &point.config,
            &data,
            &run,
            &TrainOptions {
                compute: compute.clone(),
                resume,
                progress,
                halt_after_epoch: None,
                stop: stop.clone(),
            },
        )
        .with_context(|| format!("training grid point {}", point.id))?;
        if !outcome.completed {
            return Ok(PointRun::Stopped);
        }
    }
    let pending: Vec<AssayKind> = assays
        .kinds()
        .into_iter()
        .filter(|k| !k.done(&run))
        .collect();
    if pending.is_empty() {
        return Ok(PointRun::Finished);
    }
    let trained = TrainedRun::open(&run.root, compute.clone(), locator)?;
    let mut study = Study::new(trained, &assays.study)?;
    for kind in pending {
        if stopped() {
            return Ok(PointRun::Stopped);
        }
        eprintln!("[{}] {kind}", point.id);
        let started = Instant::now();
        kind.run(&mut study, &assays.assays[&kind])
            .with_context(|| format!("{kind} on grid point {}", point.id))?;
        let done = AssayDone {
            assay: kind.name().to_string(),
            seconds: started.elapsed().as_secs_f64(),
        };
        write_atomic(
            &done_marker(&run, kind),
            serde_json::to_string_pretty(&done)?.as_bytes(),
        )?;
    }
    Ok(PointRun::Finished)
}

/// Whether a point needs no more work.
pub fn point_done(out: &Path, point: &Point, assays: &AssaySpec) -> bool {
    let run = run_dir(out, point);
    run.is_complete() && assays.kinds().iter().all(|k| k.done(&run))
}

/// Runs points in `jobs` child processes (`insilico sweep FILE --point ID`).
pub fn run_parallel(
    exe: &Path,
    sweep_args: &[String],
    points: &[&Point],
    jobs: usize,
) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = (cores / jobs).max(1);
    let mut queue: Vec<&Point> = points.iter().rev().copied().collect();
    let mut running: Vec<(String, Child)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < jobs {
            let Some(p) = queue.pop() else { break };
            let child = Command::new(exe)
                .args(sweep_args)
                .arg("--point")
                .arg(&p.id)
                .env("RAYON_NUM_THREADS", threads.to_string())
                .spawn()
                .with_context(|| format!("cannot start {}", exe.display()))?;
            running.push((p.id.clone(), child));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut still = Vec::new();
        for (id, mut child) in running {
            match child.try_wait()? {
                Some(status) if !status.success() => failed.push(id),
                Some(_) => {}
                None => still.push((id, child)),
            }
        }
        running = still;
    }
    if !failed.is_empty() {
        bail!(
            "{} grid point(s) failed: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The command line that re-runs this sweep for one point in a child process.
pub fn child_args(
    file: &Path,
    scale: Option<&str>,
    out: &Path,
    device: &str,
    data_dir: Option<&Path>,
) -> Vec<String> {
    let mut a = vec![
        "sweep".to_string(),
        file.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--device".into(),
        device.to_string(),
        "--quiet".into(),
    ];
    if let Some(s) = scale {
        a.extend(["--scale".into(), s.to_string()]);
    }
    if let Some(d) = data_dir {
        a.extend(["--data-dir".into(), d.display().to_string()]);
    }
    a
}
