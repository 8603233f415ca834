//! The claims of Morcos et al. 2018 that a sweep can check (`check = "..."` in the sweep
//! file): each reads the sweep's finished runs, draws the paper's figure and states its
//! check in numbers, with whether it agrees with the paper.

use super::spec::SweepFile;
use super::summary::{headline_curve, PointResult};
use crate::checkpoints::CheckpointSummary;
use crate::registry::AssayKind;
use crate::registry::Figure;
use anyhow::{bail, Result};
use insilico_assays::stats::{mean, spearman, std};
use insilico_report::{LinePlot, Scatter, Series};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A claim of Morcos et al. 2018 beyond the central one (ablation AUC falls with label
/// noise, which every sweep's summary reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Claim {
    /// Figure 3: across clean networks, test accuracy rises with the ablation AUC.
    Generalization,
    /// Figure 4: over training, the AUC peaks near the epoch of minimum test loss.
    TrainingTime,
    /// Figure 5: dropout p protects against ablating up to about a fraction p of units.
    Dropout,
    /// Figure 6: batch norm raises the AUC and lowers class selectivity.
    BatchNorm,
}

impl Claim {
    pub fn title(self) -> &'static str {
        match self {
            Claim::Generalization => {
                "Claim 1: reliance on single directions predicts generalization (Figure 3)"
            }
            Claim::TrainingTime => {
                "Claim 2: robustness peaks near the minimum of the test loss (Figure 4)"
            }
            Claim::Dropout => "Claim 3: dropout protects only up to its rate (Figure 5)",
            Claim::BatchNorm => "Claim 4: batch norm discourages single directions (Figure 6)",
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

impl Claim {
    /// What the claim needs of the sweep (assays, grid axes, snapshots), checked before
    /// anything is trained; errors say what to add.
    pub fn check_sweep(self, sweep: &SweepFile) -> Result<()> {
        let has = |k: AssayKind| sweep.assays.assays.contains_key(&k);
        let axis = |names: &[&str]| names.iter().any(|n| sweep.grid.contains_key(*n));
        let name = serde_json::to_value(self)?;
        let need = |ok: bool, what: &str| -> Result<()> {
            if !ok {
                bail!("check = {name}: {what}");
            }
            Ok(())
        };
        need(has(AssayKind::Ablation), "needs an [assays.ablation] table")?;
        match self {
            Claim::Generalization => Ok(()),
            // Snapshots at every point are checked with the checkpoints option itself.
            Claim::TrainingTime => need(
                sweep.assays.study.checkpoints.is_some(),
                "needs checkpoints = \"all\" (or \"every:N\") in [assays]",
            ),
            Claim::Dropout => need(
                axis(&["dropout", "model.dropout"]),
                "needs a dropout axis in [grid], e.g. dropout = [0.0, 0.2, 0.5]",
            ),
            Claim::BatchNorm => {
                need(
                    has(AssayKind::Selectivity),
                    "needs an [assays.selectivity] table",
                )?;
                need(
                    axis(&["batch_norm", "model.batch_norm"]),
                    "needs batch_norm = [false, true] in [grid]",
                )
            }
        }
    }
}

/// A claim checked on a sweep: the numbers, one sentence a line, and the verdict.
#[derive(Clone, Debug, Serialize)]
pub struct ClaimCheck {
    pub claim: Claim,
    pub lines: Vec<String>,
    /// `Some(true)` where the result agrees with the paper, `None` where there are too
    /// few finished runs to tell.
    pub agrees: Option<bool>,
}

/// Checks `claim` on the finished runs and draws its figure into `dir`.
pub fn check(
    claim: Claim,
    results: &[PointResult],
    dir: &Path,
) -> Result<(ClaimCheck, Vec<Figure>)> {
    let (lines, agrees, figures) = match claim {
        Claim::Generalization => generalization(results, dir)?,
        Claim::TrainingTime => training_time(results, dir)?,
        Claim::Dropout => dropout(results, dir)?,
        Claim::BatchNorm => batch_norm(results, dir)?,
    };
    Ok((
        ClaimCheck {
            claim,
            lines,
            agrees,
        },
        figures,
    ))
}

type Checked = (Vec<String>, Option<bool>, Vec<Figure>);

fn verdict(agrees: Option<bool>) -> &'static str {
    match agrees {
        Some(true) => "AGREES with the paper",
        Some(false) => "DISAGREES with the paper",
        None => "too few finished runs to tell",
    }
}

/// The value of the first of `axes` a point's grid sets (booleans as 0 and 1).
fn coord(r: &PointResult, axes: &[&str]) -> Option<f64> {
    axes.iter().find_map(|a| r.point.coord_f64(a))
}

fn generalization(results: &[PointResult], dir: &Path) -> Result<Checked> {
    let pairs: Vec<(f64, f64, &PointResult)> = results
        .iter()
        .filter_map(|r| Some((headline_curve(r)?.auc_mean, r.manifest.final_test_acc?, r)))
        .filter(|(a, t, _)| a.is_finite() && t.is_finite())
        .collect();
    let (aucs, accs): (Vec<f64>, Vec<f64>) = pairs.iter().map(|(a, t, _)| (*a, *t)).unzip();
    let rho = if pairs.len() > 2 {
        spearman(&accs, &aucs)
    } else {
        f64::NAN
    };
    let agrees = (pairs.len() >= 3 && rho.is_finite()).then_some(rho > 0.0);
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (a, t, r) in &pairs {
        let key = coord(r, &["train_limit", "data.train_limit"])
            .map(|n| format!("{n} training images"))
            .unwrap_or_else(|| "networks".into());
        groups.entry(key).or_default().push((*a, *t));
    }
    let mut plot = Scatter::new(
        "test accuracy against robustness to ablation",
        "normalized ablation AUC (all hidden units)",
        "test accuracy",
    );
    for (label, pts) in groups {
        plot = plot.group(&label, pts);
    }
    let stem = dir.join("claim_generalization");
    plot.note(&format!("Spearman ρ = {rho:.3}, {} networks", pairs.len()))
        .save(&stem)?;
    let lines = vec![
        format!(
            "Spearman correlation of test accuracy with ablation AUC over {} clean networks: ρ = {rho:.3} (paper: positive).",
            pairs.len()
        ),
        format!(
            "AUC range {:.3}–{:.3}; test accuracy range {:.4}–{:.4}. {}.",
            min(&aucs),
            max(&aucs),
            min(&accs),
            max(&accs),
            verdict(agrees)
        ),
    ];
    let figure = (
        stem.with_extension("png"),
        "Test accuracy of each clean network against the area under its ablation curve (the paper's Figure 3).".into(),
    );
    Ok((lines, agrees, vec![figure]))
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn training_time(results: &[PointResult], dir: &Path) -> Result<Checked> {
    let mut lines = Vec::new();
    let mut pts = Vec::new();
    for r in results {
        let Some(saved) = CheckpointSummary::read(&r.run)? else {
            continue;
        };
        // The optima by the current rule, whatever version of it wrote the file.
        let s = CheckpointSummary::new(saved.rows);
        s.save(&crate::checkpoints::summary_dir(&r.run))?;
        let (Some(peak), Some(low)) = (s.peak_auc_epoch, s.min_test_loss_epoch) else {
            continue;
        };
        lines.push(format!(
            "{}: AUC peaks at epoch {peak:.2}, test loss is lowest at epoch {low:.2}; distance {:.2} epochs (of {:.0}).",
            r.point.id,
            (peak - low).abs(),
            s.rows.last().map_or(f64::NAN, |row| row.epoch)
        ));
        pts.push((low, peak));
    }
    let distances: Vec<f64> = pts.iter().map(|(l, p)| (p - l).abs()).collect();
    let epochs = results
        .first()
        .map_or(f64::NAN, |r| r.point.config.training.epochs as f64);
    // The paper's claim is that the two optima are close; "close" here: within a tenth
    // of the run, which is stated with the result so a reader can judge.
    let tolerance = 0.1 * epochs;
    let agrees = (!pts.is_empty()).then(|| mean(&distances) <= tolerance);
    lines.push(format!(
        "Mean distance between the epoch of peak AUC and the epoch of minimum test loss over {} networks: {:.2} ± {:.2} epochs, against a tolerance of a tenth of the {epochs:.0}-epoch run ({tolerance:.1}). {}.",
        pts.len(),
        mean(&distances),
        std(&distances),
        verdict(agrees)
    ));
    let hi = pts.iter().flat_map(|(a, b)| [*a, *b]).fold(1.0, f64::max);
    let stem = dir.join("claim_training_time");
    LinePlot::new(
        "optima over training",
        "epoch of minimum test loss",
        "epoch of peak ablation AUC",
    )
    .x_range(0.0, hi * 1.05)
    .y_range(0.0, hi * 1.05)
    .series(Series::new("same epoch", vec![0.0, hi], vec![0.0, hi]).with_color(7))
    .series(
        Series::new(
            "networks",
            pts.iter().map(|p| p.0).collect(),
            pts.iter().map(|p| p.1).collect(),
        )
        .with_markers(true)
        .with_color(0),
    )
    .save(&stem)?;
    let mut figures = vec![(
        stem.with_extension("png"),
        "Epoch of peak ablation AUC against the epoch of minimum test loss, one point per network; on the diagonal they coincide (the paper's Figure 4).".into(),
    )];
    for r in results {
        let png = crate::checkpoints::summary_dir(&r.run).join("auc_loss.png");
        if png.exists() {
            figures.push((
                png,
                format!("{}: ablation AUC (left axis) and test loss (right axis, dashed) at every snapshot.", r.point.id),
            ));
        }
    }
    Ok((lines, agrees, figures))
}

/// The fraction ablated at which `accuracy` (one value per fraction, the first
/// unablated) first falls below `ratio` times its unablated value, interpolated linearly
/// between the two fractions around the crossing; `None` if it never does.
pub fn threshold_fraction(fractions: &[f64], accuracy: &[f64], ratio: f64) -> Option<f64> {
    let level = ratio * accuracy.first()?;
    let i = accuracy.iter().position(|a| *a < level)?;
    if i == 0 {
        return Some(fractions[0]);
    }
    let (a0, a1) = (accuracy[i - 1], accuracy[i]);
    let (f0, f1) = (fractions[i - 1], fractions[i]);
    Some(f0 + (f1 - f0) * (a0 - level) / (a0 - a1))
}

fn dropout(results: &[PointResult], dir: &Path) -> Result<Checked> {
    let mut by_p: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
    for r in results {
        let (Some(p), Some(c)) = (coord(r, &["dropout", "model.dropout"]), headline_curve(r))
        else {
            continue;
        };
        // A curve that never falls below 90 % is robust over the whole range.
        let t = threshold_fraction(&c.fractions, &c.mean, 0.9).unwrap_or(1.0);
        by_p.entry(p.to_bits()).or_insert((p, Vec::new())).1.push(t);
    }
    let rows: Vec<(f64, f64, f64, usize)> = by_p
        .values()
        .map(|(p, t)| (*p, mean(t), std(t), t.len()))
        .collect();
    let mut lines: Vec<String> = rows
        .iter()
        .map(|(p, m, s, n)| {
            format!("dropout {p}: accuracy falls below 90 % of unablated at a fraction {m:.3} ± {s:.3} ablated (n={n}); fraction − p = {:+.3}.", m - p)
        })
        .collect();
    let (ps, ts): (Vec<f64>, Vec<f64>) = rows.iter().map(|r| (r.0, r.1)).unzip();
    let rho = if rows.len() > 2 {
        spearman(&ps, &ts)
    } else {
        f64::NAN
    };
    // The paper: the protected fraction grows with p (and is about p).
    let agrees = (rows.len() > 2 && rho.is_finite()).then_some(rho > 0.0);
    lines.push(format!(
        "Spearman correlation of the dropout rate with that fraction over {} rates: ρ = {rho:.3} (paper: positive, the fraction about p). {}.",
        rows.len(),
        verdict(agrees)
    ));
    let stem = dir.join("claim_dropout");
    LinePlot::new(
        "where ablation starts to hurt",
        "dropout rate p",
        "fraction ablated at 90 % of unablated accuracy",
    )
    .x_range(0.0, ps.iter().copied().fold(0.1, f64::max) * 1.05)
    .y_range(0.0, 1.0)
    .series(Series::new("fraction = p", vec![0.0, 1.0], vec![0.0, 1.0]).with_color(7))
    .series(
        Series::new("measured", ps, ts)
            .with_err(rows.iter().map(|r| r.2).collect())
            .with_markers(true)
            .with_color(0),
    )
    .save(&stem)?;
    let figure = (
        stem.with_extension("png"),
        "The fraction of hidden units ablated (at random, all layers) at which training accuracy falls below 90 % of its unablated value, against the dropout rate; mean ± s.d. over seeds. The paper expects it near the diagonal (Figure 5).".into(),
    );
    Ok((lines, agrees, vec![figure]))
}

/// The mean class selectivity of all hidden units of a run (units with a finite index).
fn mean_selectivity(r: &PointResult) -> Option<f64> {
    crate::checkpoints::mean_selectivity(r.tuning.as_ref()?)
}

fn batch_norm(results: &[PointResult], dir: &Path) -> Result<Checked> {
    // [without, with]: (AUC, mean selectivity) per run.
    let mut groups: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for r in results {
        let (Some(bn), Some(c), Some(sel)) = (
            coord(r, &["batch_norm", "model.batch_norm"]),
            headline_curve(r),
            mean_selectivity(r),
        ) else {
            continue;
        };
        groups[usize::from(bn > 0.5)].push((c.auc_mean, sel));
    }
    let stat = |g: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        let v: Vec<f64> = g.iter().map(f).collect();
        (mean(&v), std(&v))
    };
    let (auc0, auc1) = (stat(&groups[0], |p| p.0), stat(&groups[1], |p| p.0));
    let (sel0, sel1) = (stat(&groups[0], |p| p.1), stat(&groups[1], |p| p.1));
    let (d_auc, d_sel) = (auc1.0 - auc0.0, sel1.0 - sel0.0);
    let agrees =
        (!groups[0].is_empty() && !groups[1].is_empty()).then_some(d_auc > 0.0 && d_sel < 0.0);
    let lines = vec![
        format!(
            "Ablation AUC: {:.3} ± {:.3} without batch norm (n={}), {:.3} ± {:.3} with (n={}); difference with − without = {d_auc:+.3} (paper: positive).",
            auc0.0, auc0.1, groups[0].len(), auc1.0, auc1.1, groups[1].len()
        ),
        format!(
            "Mean class selectivity: {:.3} ± {:.3} without, {:.3} ± {:.3} with; difference = {d_sel:+.3} (paper: negative). {}.",
            sel0.0, sel0.1, sel1.0, sel1.1, verdict(agrees)
        ),
    ];
    let stem = dir.join("claim_batch_norm");
    Scatter::new(
        "batch norm: robustness and selectivity",
        "normalized ablation AUC (all hidden units)",
        "mean class selectivity of hidden units",
    )
    .group("without batch norm", groups[0].clone())
    .group("with batch norm", groups[1].clone())
    .save(&stem)?;
    let figure = (
        stem.with_extension("png"),
        "Each network's ablation AUC and the mean class selectivity of its hidden units, with and without batch norm (the paper's Figure 6: with batch norm, right and lower).".into(),
    );
    Ok((lines, agrees, vec![figure]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_interpolated_between_the_fractions_around_the_crossing() {
        let f = [0.0, 0.1, 0.2, 0.3];
        // 90 % of 1.0 is 0.9, crossed between 0.95 (at 0.1) and 0.85 (at 0.2): halfway.
        let t = threshold_fraction(&f, &[1.0, 0.95, 0.85, 0.5], 0.9).unwrap();
        assert!((t - 0.15).abs() < 1e-12, "{t}");
        // Relative to the unablated value: 90 % of 0.5 is 0.45, crossed exactly at 0.3.
        let t = threshold_fraction(&f, &[0.5, 0.5, 0.5, 0.45 - 1e-9], 0.9).unwrap();
        assert!((t - 0.3).abs() < 1e-6, "{t}");
        assert_eq!(threshold_fraction(&f, &[1.0, 0.99, 0.98, 0.97], 0.9), None);
    }

    #[test]
    fn claims_read_from_their_names() {
        #[derive(Deserialize)]
        struct T {
            check: Claim,
        }
        let t: T = toml::from_str("check = \"batch-norm\"").unwrap();
        assert_eq!(t.check, Claim::BatchNorm);
        assert!(toml::from_str::<T>("check = \"dropuot\"").is_err());
    }
}
