//! Assays over a run's snapshots (model states saved through training): `--checkpoints
//! all|every:N` on every assay command, `checkpoints = "all"` in a sweep's `[assays]`.
//! Each selected snapshot's results go to `RUN/assays/<assay>/checkpoints/step-NNNNNNNN/`;
//! `RUN/assays/checkpoints/` holds the test score of each snapshot and the summary over
//! training (step, epoch, ablation AUC, test loss and accuracy, mean selectivity) with
//! the epochs of the optima and the figure of AUC and test loss against epoch.

use crate::ablation::{Ablation, AblationResult};
use crate::registry::{read_in, Assay, AssayKind};
use crate::selectivity::{Selectivity, SiteTuning};
use crate::study::Study;
use anyhow::{bail, Context, Result};
use insilico_assays::ablation::{AblationCurve, Order};
use insilico_assays::stats::mean;
use insilico_engine::eval::evaluate;
use insilico_engine::rundir::{DirLock, Snapshot};
use insilico_engine::RunDir;
use insilico_report::{write_csv, write_json, LinePlot, Series};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which of a run's snapshots an assay runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointSelection {
    /// Every snapshot the run saved.
    All,
    /// Every N-th snapshot in order of step (the first and the last always).
    Every(usize),
}

impl FromStr for CheckpointSelection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("checkpoints = `{s}`: expected `all` or `every:N` with N >= 1");
        match s.trim() {
            "all" => Ok(Self::All),
            other => {
                let n: usize = other
                    .strip_prefix("every:")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(bad)?;
                if n == 0 {
                    return Err(bad());
                }
                Ok(Self::Every(n))
            }
        }
    }
}

impl fmt::Display for CheckpointSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Every(n) => write!(f, "every:{n}"),
        }
    }
}

impl Serialize for CheckpointSelection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CheckpointSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl CheckpointSelection {
    /// The selected snapshots, in order of step.
    pub fn select(self, snapshots: &[Snapshot]) -> Vec<Snapshot> {
        let n = match self {
            Self::All => 1,
            Self::Every(n) => n,
        };
        let last = snapshots.len().saturating_sub(1);
        snapshots
            .iter()
            .enumerate()
            .filter(|(i, _)| i % n == 0 || *i == last)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

/// The directory of one snapshot's results of an assay whose directory is `base`
/// (`base/checkpoints/step-NNNNNNNN`).
pub fn step_dir(base: &Path, step: usize) -> PathBuf {
    base.join("checkpoints").join(step_name(step))
}

fn step_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// A snapshot's score on the test set: `RUN/assays/checkpoints/step-NNNNNNNN/eval.json`.
fn eval_path(run: &RunDir, step: usize) -> PathBuf {
    summary_dir(run).join(step_name(step)).join("eval.json")
}

/// Where the summary over training is written: `RUN/assays/checkpoints/`.
pub fn summary_dir(run: &RunDir) -> PathBuf {
    run.assay_dir("checkpoints")
}

/// Runs assay `A` on the study's network, first on each selected snapshot when the
/// study asks for checkpoints (results a snapshot already holds are kept, so an
/// interrupted run resumes), then rewrites the summary over training.
pub fn run_assay<A: Assay>(study: &mut Study, options: &A::Options) -> Result<A::Output> {
    // One writer per assay folder: two processes running this assay on this run (with
    // different options, say) would interleave their files.
    let _lock = DirLock::acquire(
        &study.run.dir.assay_dir(A::KIND.name()),
        &format!("{} assay directory", A::KIND.name()),
    )?;
    if let Some(selection) = study.options.checkpoints {
        let all = study.run.dir.snapshots()?;
        if all.is_empty() {
            bail!(
                "checkpoints = {selection}: {} has no snapshots; train it with training.snapshots = \"epochs\" (or every:N, log:N)",
                study.run.dir.root.display()
            );
        }
        let snapshots = selection.select(&all);
        let final_net = study.run.load_weights(&snapshots[0].weights)?;
        let final_net = std::mem::replace(&mut study.run.network, final_net);
        let outcome = over_snapshots::<A>(study, options, &snapshots);
        // The final network goes back whatever happened, for the assays that follow.
        study.run.network = final_net;
        study.snapshot_step = None;
        outcome?;
        CheckpointSummary::write(&study.run.dir, &all)?;
    }
    A::run(study, options)
}

fn over_snapshots<A: Assay>(
    study: &mut Study,
    options: &A::Options,
    snapshots: &[Snapshot],
) -> Result<()> {
    let bar = insilico_engine::train::progress_bar(true, snapshots.len() as u64);
    bar.set_message(format!("{} over snapshots", A::KIND));
    for s in snapshots {
        study.snapshot_step = Some(s.step);
        let result = study.out_dir(A::KIND.name()).join(A::RESULT_FILE);
        let eval = eval_path(&study.run.dir, s.step);
        if !result.exists() || !eval.exists() {
            study.run.network = study.run.load_weights(&s.weights)?;
        }
        if !eval.exists() {
            let score = evaluate(
                &study.run.network,
                &study.run.data.test,
                1000,
                &study.run.compute.device,
            );
            write_json(
                &eval,
                &TestScore {
                    step: s.step,
                    epoch: s.epoch,
                    test_loss: score.loss,
                    test_acc: score.accuracy,
                },
            )?;
        }
        if !result.exists() {
            A::run(study, options).with_context(|| format!("at snapshot step {}", s.step))?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// A snapshot's score on the whole test set (`eval.json`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TestScore {
    pub step: usize,
    pub epoch: f64,
    pub test_loss: f64,
    pub test_acc: f64,
}

/// One row of the summary over training: a snapshot with the assays run on it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointRow {
    pub step: usize,
    pub epoch: f64,
    /// Normalized area under the random ablation curve of all hidden units (else of the
    /// first site), where the ablation assay ran on this snapshot.
    pub auc: Option<f64>,
    pub test_loss: f64,
    pub test_acc: f64,
    /// Mean class selectivity of all hidden units, where the selectivity assay ran.
    pub mean_selectivity: Option<f64>,
}

/// Optima are sought from the end of the first epoch on: a network near chance has a
/// normalized AUC above 1 (ablating units of a network at chance cannot lower its
/// accuracy much and often raises it), so the initialization would otherwise always be
/// the "most robust" snapshot.
pub const FIRST_EPOCH: f64 = 1.0;

/// The summary over training (`RUN/assays/checkpoints/summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointSummary {
    pub rows: Vec<CheckpointRow>,
    /// The epoch of the snapshot with the highest AUC (the earliest of ties).
    pub peak_auc_epoch: Option<f64>,
    /// The epoch of the snapshot with the lowest test loss (the earliest of ties).
    pub min_test_loss_epoch: Option<f64>,
    /// The epoch of the snapshot with the highest test accuracy.
    pub peak_test_acc_epoch: Option<f64>,
}

/// The random curve of all hidden units, else of the first site.
pub fn headline(curves: &[AblationCurve]) -> Option<&AblationCurve> {
    let random = || curves.iter().filter(|c| c.order == Order::Random);
    random()
        .find(|c| c.site == "all-hidden")
        .or_else(|| random().next())
}

/// The mean selectivity of every hidden unit with a finite index.
pub fn mean_selectivity(sites: &[SiteTuning]) -> Option<f64> {
    let v: Vec<f64> = sites
        .iter()
        .flat_map(|s| s.selectivity.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    (!v.is_empty()).then(|| mean(&v))
}

/// The epoch of the row where `key` is extreme (`better(a, b)`: a beats b), the
/// earliest of ties; rows without a value are skipped.
fn arg_best(
    rows: &[CheckpointRow],
    key: impl Fn(&CheckpointRow) -> Option<f64>,
    better: impl Fn(f64, f64) -> bool,
) -> Option<f64> {
    let mut best: Option<(f64, f64)> = None;
    for r in rows {
        let Some(v) = key(r).filter(|v| v.is_finite()) else {
            continue;
        };
        if best.is_none_or(|(b, _)| better(v, b)) {
            best = Some((v, r.epoch));
        }
    }
    best.map(|(_, e)| e)
}

impl CheckpointSummary {
    /// The summary of the rows, with the epochs of the optima.
    pub fn new(rows: Vec<CheckpointRow>) -> Self {
        let trained: Vec<CheckpointRow> = rows
            .iter()
            .filter(|r| r.epoch >= FIRST_EPOCH)
            .cloned()
            .collect();
        Self {
            peak_auc_epoch: arg_best(&trained, |r| r.auc, |a, b| a > b),
            min_test_loss_epoch: arg_best(&trained, |r| Some(r.test_loss), |a, b| a < b),
            peak_test_acc_epoch: arg_best(&trained, |r| Some(r.test_acc), |a, b| a > b),
            rows,
        }
    }

    /// Reads every snapshot's results back and writes the summary (CSV, JSON, figure).
    pub fn write(run: &RunDir, snapshots: &[Snapshot]) -> Result<Self> {
        let mut rows = Vec::new();
        for s in snapshots {
            let eval = eval_path(run, s.step);
            let Some(score) = crate::registry::read_json::<TestScore>(&eval)? else {
                continue;
            };
            let at = |kind: AssayKind| step_dir(&run.assay_dir(kind.name()), s.step);
            let ablation: Option<AblationResult> = read_in::<Ablation>(&at(AssayKind::Ablation))?;
            let tuning: Option<Vec<SiteTuning>> =
                read_in::<Selectivity>(&at(AssayKind::Selectivity))?;
            rows.push(CheckpointRow {
                step: s.step,
                epoch: s.epoch,
                auc: ablation
                    .as_ref()
                    .and_then(|a| headline(&a.curves))
                    .map(|c| c.auc_mean),
                test_loss: score.test_loss,
                test_acc: score.test_acc,
                mean_selectivity: tuning.as_deref().and_then(mean_selectivity),
            });
        }
        let summary = Self::new(rows);
        let dir = summary_dir(run);
        summary.save(&dir)?;
        Ok(summary)
    }

    /// Writes the table (CSV, JSON) and the figure into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.step.to_string(),
                    format!("{:.4}", r.epoch),
                    opt(r.auc),
                    format!("{:.6}", r.test_loss),
                    format!("{:.6}", r.test_acc),
                    opt(r.mean_selectivity),
                ]
            })
            .collect();
        write_csv(
            &dir.join("summary.csv"),
            &[
                "step",
                "epoch",
                "auc",
                "test_loss",
                "test_acc",
                "mean_selectivity",
            ],
            &rows,
        )?;
        write_json(&dir.join("summary.json"), self)?;
        self.figure(dir)
    }

    /// AUC (left axis) and test loss (right axis) against epoch from the end of the
    /// first epoch (the initialization's values would squash the rest), the optima
    /// marked in the legend.
    fn figure(&self, dir: &Path) -> Result<()> {
        let rows: Vec<&CheckpointRow> = self
            .rows
            .iter()
            .filter(|r| r.epoch >= FIRST_EPOCH)
            .collect();
        let epochs: Vec<f64> = rows.iter().map(|r| r.epoch).collect();
        let fmt = |e: Option<f64>| e.map_or("none".into(), |e| format!("{e:.2}"));
        LinePlot::new(
            "robustness and test loss over training",
            "epoch",
            "normalized ablation AUC",
        )
        .y2_label("test loss (cross-entropy)")
        .series(
            Series::new(
                format!("ablation AUC (peak at epoch {})", fmt(self.peak_auc_epoch)),
                epochs.clone(),
                rows.iter().map(|r| r.auc.unwrap_or(f64::NAN)).collect(),
            )
            .with_markers(true)
            .with_color(0),
        )
        .series(
            Series::new(
                format!(
                    "test loss (minimum at epoch {})",
                    fmt(self.min_test_loss_epoch)
                ),
                epochs,
                rows.iter().map(|r| r.test_loss).collect(),
            )
            .with_markers(true)
            .with_color(1)
            .on_right(),
        )
        .save(&dir.join("auc_loss"))?;
        Ok(())
    }

    /// The summary a run holds, if any.
    pub fn read(run: &RunDir) -> Result<Option<Self>> {
        crate::registry::read_json(&summary_dir(run).join("summary.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snaps(steps: &[usize]) -> Vec<Snapshot> {
        steps
            .iter()
            .map(|&step| Snapshot {
                step,
                epoch: step as f64 / 10.0,
                weights: PathBuf::from(format!("step-{step}")),
            })
            .collect()
    }

    #[test]
    fn selections_parse_and_keep_first_and_last() {
        assert_eq!("all".parse(), Ok(CheckpointSelection::All));
        assert_eq!("every:3".parse(), Ok(CheckpointSelection::Every(3)));
        for bad in ["every:0", "every:", "some", "every:x"] {
            let err = bad.parse::<CheckpointSelection>().unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        let s = snaps(&[0, 10, 20, 30, 40, 50, 60]);
        let steps = |sel: CheckpointSelection| -> Vec<usize> {
            sel.select(&s).iter().map(|x| x.step).collect()
        };
        assert_eq!(steps(CheckpointSelection::All).len(), 7);
        // Indices 0, 3, 6: every third, the last included by the rule itself.
        assert_eq!(steps(CheckpointSelection::Every(3)), [0, 30, 60]);
        // Indices 0, 4, and the last (6) although 6 is not a multiple of 4.
        assert_eq!(steps(CheckpointSelection::Every(4)), [0, 40, 60]);
        assert_eq!(steps(CheckpointSelection::Every(100)), [0, 60]);
    }

    fn row(epoch: f64, auc: Option<f64>, loss: f64) -> CheckpointRow {
        CheckpointRow {
            step: (epoch * 10.0) as usize,
            epoch,
            auc,
            test_loss: loss,
            test_acc: 1.0 - loss,
            mean_selectivity: None,
        }
    }

    #[test]
    fn optima_are_the_earliest_extreme_rows() {
        let s = CheckpointSummary::new(vec![
            // The initialization: above every later AUC, and excluded from the optima.
            row(0.0, Some(1.2), 2.3),
            row(0.5, Some(1.1), 2.0),
            row(1.0, Some(0.6), 0.4),
            row(2.0, Some(0.7), 0.3),
            row(3.0, Some(0.7), 0.35),
            row(4.0, None, 0.5),
        ]);
        assert_eq!(s.peak_auc_epoch, Some(2.0), "ties go to the earliest");
        assert_eq!(s.rows.len(), 6, "every row is kept in the table");
        assert_eq!(s.min_test_loss_epoch, Some(2.0));
        assert_eq!(s.peak_test_acc_epoch, Some(2.0));
        assert_eq!(CheckpointSummary::new(vec![]).peak_auc_epoch, None);
    }
}
