//! Representations over training (Raghu et al. 2017, the review's Figure 3a): every site
//! at every snapshot of a run compared with its final state, and the check that learning
//! converges bottom-up (the step at which each layer first reaches a similarity of 0.95
//! to its final state does not decrease with depth).

use crate::compare::MatrixArchive;
use crate::population::{to_matrix, MapReduction};
use crate::study::Study;
use anyhow::{bail, Context, Result};
use insilico_engine::eval::record_site;
use insilico_engine::memory::available_memory;
use insilico_engine::Network;
use insilico_population::{Matrix, Measure, Prepared, PreparedPair};
use insilico_report::{write_csv, write_json, Heatmap};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The similarity a layer must reach to count as converged (Raghu et al. 2017).
pub const CONVERGED: f64 = 0.95;

/// One measure over training: `values[site][snapshot]` compares the site at that
/// snapshot with the site at the last snapshot (the final weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasureOverTraining {
    pub measure: String,
    pub values: Vec<Vec<f64>>,
    /// Per site, the first snapshot step whose value reaches [`CONVERGED`].
    pub first_converged: Vec<Option<usize>>,
    /// Whether `first_converged` does not decrease with depth.
    pub bottom_up: bool,
}

/// Every site of a run at every snapshot against its final state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverTraining {
    pub run: String,
    pub sites: Vec<String>,
    /// Optimizer steps of the snapshots (the x axis), increasing.
    pub steps: Vec<usize>,
    /// The same snapshots in epochs (1.0 = the end of the first epoch).
    pub epochs: Vec<f64>,
    pub reduction: MapReduction,
    pub measures: Vec<MeasureOverTraining>,
    pub seconds: f64,
}

/// The first step whose value reaches `threshold`, per site.
pub fn first_reaching(values: &[Vec<f64>], steps: &[usize], threshold: f64) -> Vec<Option<usize>> {
    values
        .iter()
        .map(|row| {
            row.iter()
                .zip(steps)
                .find(|(v, _)| **v >= threshold)
                .map(|(_, &s)| s)
        })
        .collect()
}

/// Whether the steps do not decrease with depth (a layer that never converges counts
/// as converging after every step, so it may only be followed by layers that never do).
pub fn non_decreasing(first: &[Option<usize>]) -> bool {
    let key = |s: &Option<usize>| s.unwrap_or(usize::MAX);
    first.windows(2).all(|w| key(&w[0]) <= key(&w[1]))
}

fn record_all(net: &Network, study: &Study, reduction: MapReduction) -> Result<Vec<Matrix>> {
    study
        .sites
        .iter()
        .map(|site| {
            let act = record_site(net, &study.examples, site, 1000, &study.run.compute.device)?;
            to_matrix(&act, reduction).with_context(|| format!("site {site}"))
        })
        .collect()
}

/// Compares every snapshot of the study's run with its last snapshot, for each measure;
/// saves every snapshot's sites as compared in `archive` where one is given.
pub fn over_training(
    study: &Study,
    measures: &[Measure],
    reduction: MapReduction,
    mut archive: Option<&mut MatrixArchive>,
) -> Result<OverTraining> {
    let started = std::time::Instant::now();
    let snapshots = study.run.dir.snapshots()?;
    if snapshots.len() < 2 {
        bail!(
            "{} has {} snapshot(s): train it with snapshots through training \
             (training.snapshots = \"log:20\", or \"epochs\") to compare over training",
            study.run.dir.root.display(),
            snapshots.len()
        );
    }
    if let Some(archive) = archive.as_deref_mut() {
        archive.expect(snapshots.len() * study.sites.len());
    }
    let bar = crate::progress::bar(snapshots.len() as u64, "snapshots");
    let last = snapshots.last().expect("two snapshots at least");
    let final_net = study.run.load_weights(&last.weights)?;
    let finals = record_all(&final_net, study, reduction)?;
    // The finals and one snapshot's sites are held at a time.
    let held: Vec<&Matrix> = finals.iter().chain(&finals).collect();
    crate::compare::check_memory(&held, measures, available_memory())?;
    // Each final state is prepared once for every snapshot, each snapshot once for every
    // measure (the shared Gram and cross-products; see insilico_population::Prepared).
    let finals_prepared: Vec<Prepared> = finals.iter().map(Prepared::new).collect();
    let mut values = vec![vec![Vec::with_capacity(snapshots.len()); finals.len()]; measures.len()];
    for s in &snapshots {
        // The last snapshot's sites are the finals, recorded above.
        let recorded;
        let reps: &[Matrix] = if std::ptr::eq(s, last) {
            &finals
        } else {
            let net = study
                .run
                .load_weights(&s.weights)
                .with_context(|| format!("snapshot at step {}", s.step))?;
            recorded = record_all(&net, study, reduction)?;
            &recorded
        };
        if let Some(archive) = archive.as_deref_mut() {
            for (site, rep) in study.sites.iter().zip(reps) {
                let label = format!("step-{:08}:{site}", s.step);
                archive.save(&label, &study.run.dir.root, Some(s.step), rep)?;
            }
        }
        let row = against_finals(study, s.step, reps, &finals_prepared, measures)?;
        for (m, sites) in row.into_iter().enumerate() {
            for (site, v) in sites.into_iter().enumerate() {
                values[m][site].push(v);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let steps: Vec<usize> = snapshots.iter().map(|s| s.step).collect();
    Ok(OverTraining {
        run: study.run.dir.root.display().to_string(),
        sites: study.sites.clone(),
        epochs: snapshots.iter().map(|s| s.epoch).collect(),
        reduction,
        measures: measures
            .iter()
            .zip(values)
            .map(|(m, values)| {
                let first_converged = first_reaching(&values, &steps, CONVERGED);
                MeasureOverTraining {
                    measure: m.name(),
                    bottom_up: non_decreasing(&first_converged),
                    first_converged,
                    values,
                }
            })
            .collect(),
        steps,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One snapshot's sites against their final states: `[measure][site]`.
fn against_finals(
    study: &Study,
    step: usize,
    reps: &[Matrix],
    finals: &[Prepared],
    measures: &[Measure],
) -> Result<Vec<Vec<f64>>> {
    let reps: Vec<Prepared> = reps.iter().map(Prepared::new).collect();
    let pairs: Vec<PreparedPair> = reps
        .iter()
        .zip(finals)
        .map(|(rep, fin)| PreparedPair::new(rep, fin))
        .collect();
    measures
        .iter()
        .map(|measure| {
            pairs
                .iter()
                .zip(&study.sites)
                .map(|(pair, site)| {
                    pair.compare(*measure)
                        .with_context(|| format!("{site} at step {step}, {}", measure.name()))
                })
                .collect()
        })
        .collect()
}

/// The check, one line per measure, as printed and in the report.
pub fn checks(o: &OverTraining) -> Vec<String> {
    o.measures
        .iter()
        .map(|m| {
            let firsts: Vec<String> = o
                .sites
                .iter()
                .zip(&m.first_converged)
                .map(|(site, s)| match s {
                    Some(step) => format!("{site} {step}"),
                    None => format!("{site} never"),
                })
                .collect();
            format!(
                "Bottom-up convergence (Raghu et al. 2017), {}: the step at which each layer's {} \
                 with its final state first reaches {CONVERGED}: {}; non-decreasing with depth: {}.",
                o.run,
                Measure::title_of(&m.measure),
                firsts.join(", "),
                if m.bottom_up { "HOLDS" } else { "DOES NOT HOLD" }
            )
        })
        .collect()
}

/// A snapshot's column label: its step and epoch.
fn column(step: usize, epoch: f64) -> String {
    if epoch < 1.0 {
        format!("{step} ({epoch:.2} ep)")
    } else {
        format!("{step} ({epoch:.1} ep)")
    }
}

/// `over_training_<measure>.csv` (site, step, epoch, value), a layer x snapshot heatmap
/// per measure and `over_training.json` in `out`; returns the figures with captions.
pub fn write_over_training(
    out: &Path,
    o: &OverTraining,
) -> Result<Vec<(std::path::PathBuf, String)>> {
    let columns: Vec<String> = o
        .steps
        .iter()
        .zip(&o.epochs)
        .map(|(&s, &e)| column(s, e))
        .collect();
    let mut figures = Vec::new();
    for m in &o.measures {
        let mut table = Vec::new();
        for (site, row) in o.sites.iter().zip(&m.values) {
            for ((step, epoch), v) in o.steps.iter().zip(&o.epochs).zip(row) {
                table.push(vec![
                    site.clone(),
                    step.to_string(),
                    format!("{epoch:.4}"),
                    format!("{v:.6}"),
                ]);
            }
        }
        let stem = out.join(format!("over_training_{}", m.measure));
        write_csv(
            &crate::compare::with_ext(&stem, "csv"),
            &["site", "step", "epoch", "value"],
            &table,
        )?;
        Heatmap {
            title: format!(
                "{} of each layer with its final state",
                Measure::title_of(&m.measure)
            ),
            x_label: "snapshot: optimizer step (epoch), as saved".into(),
            y_label: "site".into(),
            rows: o.sites.clone(),
            columns: columns.clone(),
            values: m.values.clone(),
            scale: (Measure::title_of(&m.measure), 0.0, 1.0),
        }
        .save(&stem)?;
        figures.push((
            crate::compare::with_ext(&stem, "png"),
            format!(
                "{}: {} of every site at every snapshot with the same site at the end of \
                 training (rows: input to output); columns are the snapshots as saved.",
                o.run, m.measure
            ),
        ));
    }
    write_json(&out.join("over_training.json"), o)?;
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reaching_and_the_bottom_up_order() {
        let steps = [0, 10, 100, 1000];
        let values = vec![
            vec![0.2, 0.96, 0.97, 1.0],
            vec![0.1, 0.5, 0.95, 1.0],
            vec![0.1, 0.2, 0.3, 1.0],
        ];
        let first = first_reaching(&values, &steps, CONVERGED);
        assert_eq!(first, vec![Some(10), Some(100), Some(1000)]);
        assert!(non_decreasing(&first));
        assert!(!non_decreasing(&[Some(100), Some(10)]));
        assert!(non_decreasing(&[Some(10), None, None]));
        assert!(!non_decreasing(&[None, Some(10)]));
        // Equal steps are allowed: "non-decreasing".
        assert!(non_decreasing(&[Some(10), Some(10)]));
    }
}
