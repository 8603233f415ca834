//! The sweep's summary: figures across the grid, a table of every point, the headline
//! statistics, and one self-contained `report.html`.

use super::exec::{run_dir, AssayDone};
use super::spec::Point;
use super::Sweep;
use crate::ablation::{Ablation, AblationResult};
use crate::registry::{done_marker, read, read_json, AssayKind, Figure};
use crate::selectivity::{Selectivity, SiteTuning};
use anyhow::Result;
use insilico_assays::ablation::{AblationCurve, Order};
use insilico_assays::stats::{mean, spearman, std};
use insilico_engine::{Manifest, RunDir};
use insilico_report::{write_csv, write_json, Histogram, LinePlot, Scatter, Series};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Figures in the order the report shows them.
type Figures = Vec<Figure>;

/// What one finished point contributes to the summary: its manifest and the results of
/// its assays, read through each assay's own result type.
pub struct PointResult<'a> {
    pub point: &'a Point,
    pub x: f64,
    pub manifest: Manifest,
    pub ablation: Option<AblationResult>,
    pub tuning: Option<Vec<SiteTuning>>,
    pub assay_seconds: f64,
    pub run: RunDir,
}

impl<'a> PointResult<'a> {
    fn read(out: &Path, point: &'a Point, x: f64) -> Result<Option<Self>> {
        let run = run_dir(out, point);
        let Ok(manifest) = Manifest::read(&run) else {
            return Ok(None);
        };
        let mut assay_seconds = 0.0;
        for kind in AssayKind::ALL {
            if let Some(d) = read_json::<AssayDone>(&done_marker(&run, kind))? {
                assay_seconds += d.seconds;
            }
        }
        Ok(Some(Self {
            point,
            x,
            ablation: read::<Ablation>(&run)?,
            tuning: read::<Selectivity>(&run)?,
            manifest,
            assay_seconds,
            run,
        }))
    }
}

/// The axis the figures put on x: label noise where the grid varies it.
fn x_axis(points: &[Point]) -> Option<String> {
    let axes: Vec<&String> = points.first()?.coords.iter().map(|(a, _)| a).collect();
    ["label_noise", "data.label_noise"]
        .iter()
        .find(|a| axes.iter().any(|x| x == *a))
        .map(|a| a.to_string())
        .or_else(|| {
            axes.iter()
                .find(|a| !a.contains("seed"))
                .map(|a| a.to_string())
        })
}

/// Headline numbers per model and curve site.
#[derive(Clone, Debug, Serialize)]
pub struct Headline {
    pub model: String,
    pub site: String,
    /// (x, mean AUC, std AUC, runs) per x value.
    pub auc_by_x: Vec<(f64, f64, f64, usize)>,
    pub spearman_x_auc: f64,
    pub runs: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub sweep: String,
    pub x_axis: Option<String>,
    pub headlines: Vec<Headline>,
    /// Spearman of selectivity vs importance in the least-corrupted networks, per model,
    /// mean over runs and sites: (loss increase, accuracy drop). NaN where no single unit
    /// changes accuracy.
    pub selectivity_importance: BTreeMap<String, (f64, f64)>,
    /// The claim of Morcos et al. 2018 the sweep file asks to check, checked.
    pub claim: Option<super::claims::ClaimCheck>,
    pub train_seconds: f64,
    pub assay_seconds: f64,
    /// The checks of the `[compare]` step, as printed (empty without one).
    pub compare_checks: Vec<String>,
}

pub fn summarize(sweep: &Sweep, wall_seconds: Option<f64>) -> Result<Summary> {
    let points = &sweep.points;
    let axis = x_axis(points);
    let mut results = Vec::new();
    for p in points {
        let x = axis.as_deref().and_then(|a| p.coord_f64(a)).unwrap_or(0.0);
        results.extend(PointResult::read(&sweep.out, p, x)?);
    }
    let dir = sweep.out.join("summary");
    let x_label = axis
        .clone()
        .unwrap_or_else(|| "grid point".into())
        .replace("data.", "")
        .replace('_', " ");
    let mut models: Vec<String> = results.iter().map(|r| r.point.model.clone()).collect();
    models.dedup();
    let mut figures: Figures = Vec::new();
    let mut headlines = Vec::new();
    let mut sel_imp = BTreeMap::new();
    let mut claim = None;
    if let Some(c) = sweep.spec.check {
        // The claim's figure first: it is what the sweep was run for.
        let (checked, figs) = super::claims::check(c, &results, &dir)?;
        figures.extend(figs);
        claim = Some(checked);
    }
    for model in &models {
        let rs: Vec<&PointResult> = results.iter().filter(|r| &r.point.model == model).collect();
        let label = super::spec::model_label(model);
        figures.extend(accuracy_figure(&rs, &dir, &label, &x_label)?);
        let (figs, heads) = ablation_figures(&rs, &dir, &label, &x_label)?;
        figures.extend(figs);
        headlines.extend(heads);
        if let Some((figs, rho)) = selectivity_figures(&rs, &dir, &label, &x_label)? {
            figures.extend(figs);
            sel_imp.insert(label.clone(), rho);
        }
    }
    let compare = match &sweep.spec.compare {
        Some(spec) => match super::compare::read_comparison(&sweep.out, spec)? {
            Some(c) => super::compare_report::section(&c, &dir.join("compare"))?,
            None => Default::default(),
        },
        None => Default::default(),
    };
    let summary = Summary {
        sweep: sweep.spec.name.clone(),
        x_axis: axis.clone(),
        headlines,
        selectivity_importance: sel_imp,
        claim,
        train_seconds: results.iter().map(|r| r.manifest.train_seconds).sum(),
        assay_seconds: results.iter().map(|r| r.assay_seconds).sum(),
        compare_checks: compare.checks.clone(),
    };
    let table = summary_table(&results, axis.as_deref());
    write_csv(&dir.join("summary.csv"), &table.header(), &table.rows)?;
    write_json(&dir.join("summary.json"), &summary)?;
    super::report::write_report(
        sweep,
        &summary,
        &results,
        &figures,
        &compare,
        &table,
        wall_seconds,
    )?;
    Ok(summary)
}

/// Values grouped by x, in increasing x.
fn by_x<'a>(rs: &[&'a PointResult<'a>]) -> Vec<(f64, Vec<&'a PointResult<'a>>)> {
    let mut xs: Vec<f64> = rs.iter().map(|r| r.x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs.into_iter()
        .map(|x| (x, rs.iter().filter(|r| r.x == x).copied().collect()))
        .collect()
}

fn accuracy_figure(rs: &[&PointResult], dir: &Path, model: &str, x_label: &str) -> Result<Figures> {
    let groups = by_x(rs);
    if groups.len() < 2 {
        // One x value (a sweep over seeds alone): a single point on an empty axis says
        // nothing the summary table does not; no figure.
        return Ok(Vec::new());
    }
    let xs: Vec<f64> = groups.iter().map(|(x, _)| *x).collect();
    let stat = |f: &dyn Fn(&Manifest) -> Option<f64>| -> (Vec<f64>, Vec<f64>) {
        groups
            .iter()
            .map(|(_, g)| {
                let v: Vec<f64> = g.iter().filter_map(|r| f(&r.manifest)).collect();
                (mean(&v), std(&v))
            })
            .unzip()
    };
    let (train_m, train_s) = stat(&|m| m.final_train_acc);
    let (test_m, test_s) = stat(&|m| m.final_test_acc);
    let stem = dir.join(format!("accuracy_{model}"));
    LinePlot::new(&format!("{model}: accuracy"), x_label, "accuracy")
        .y_range(0.0, 1.02)
        .series(
            Series::new("train (labels as trained)", xs.clone(), train_m)
                .with_err(train_s)
                .with_markers(true)
                .with_color(0),
        )
        .series(
            Series::new("test", xs, test_m)
                .with_err(test_s)
                .with_markers(true)
                .with_color(1),
        )
        .save(&stem)?;
    Ok(vec![(
        stem.with_extension("png"),
        format!("{model}: final training accuracy (on the labels it was trained on) and test accuracy against {x_label}; mean ± s.d. over seeds."),
    )])
}

/// The curve that summarizes a run's robustness: all hidden sites at once if present,
/// else each site's random-order curve.
fn curve_sites(rs: &[&PointResult]) -> Vec<String> {
    let mut sites: Vec<String> = rs
        .iter()
        .filter_map(|r| r.ablation.as_ref())
        .flat_map(|a| {
            a.curves
                .iter()
                .filter(|c| c.order == Order::Random)
                .map(|c| c.site.clone())
        })
        .collect();
    sites.sort();
    sites.dedup();
    // "all-hidden" first: it is the headline.
    sites.sort_by_key(|s| s != "all-hidden");
    sites
}

fn curve<'a>(r: &'a PointResult, site: &str) -> Option<&'a AblationCurve> {
    r.ablation
        .as_ref()?
        .curves
        .iter()
        .find(|c| c.site == site && c.order == Order::Random)
}

/// The curve that stands for a run's robustness in the claims: random ablation of all
/// hidden sites at once where measured, else of the first site.
pub(super) fn headline_curve<'a>(r: &'a PointResult) -> Option<&'a AblationCurve> {
    crate::checkpoints::headline(&r.ablation.as_ref()?.curves)
}

fn ablation_figures(
    rs: &[&PointResult],
    dir: &Path,
    model: &str,
    x_label: &str,
) -> Result<(Figures, Vec<Headline>)> {
    let sites = curve_sites(rs);
    let Some(main) = sites.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut figs = vec![robustness_figure(rs, dir, model, x_label, main)?];
    // AUC against x, one series per site.
    let mut auc_plot = LinePlot::new(
        &format!("{model}: robustness to ablation"),
        x_label,
        "normalized ablation AUC",
    );
    let mut heads = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let h = headline(rs, model, site);
        let rows = &h.auc_by_x;
        auc_plot = auc_plot.series(
            Series::new(
                site.clone(),
                rows.iter().map(|r| r.0).collect(),
                rows.iter().map(|r| r.1).collect(),
            )
            .with_err(rows.iter().map(|r| r.2).collect())
            .with_markers(true)
            .with_color(i),
        );
        heads.push(h);
    }
    let stem = dir.join(format!("auc_{model}"));
    auc_plot.save(&stem)?;
    figs.push((
        stem.with_extension("png"),
        format!("{model}: area under the ablation curve (normalized by unablated accuracy) against {x_label}; mean ± s.d. over seeds."),
    ));
    Ok((figs, heads))
}

/// Robustness curves at `site`, one line per x value (mean over seeds), coloured along x.
fn robustness_figure(
    rs: &[&PointResult],
    dir: &Path,
    model: &str,
    x_label: &str,
    site: &str,
) -> Result<Figure> {
    let groups = by_x(rs);
    let mut plot = LinePlot::new(
        &format!("{model}: ablation curves ({site})"),
        "fraction of units ablated",
        "accuracy (labels as trained)",
    )
    .y_range(0.0, 1.02)
    .x_range(0.0, 1.0);
    if groups.len() > 1 {
        plot = plot.colorbar(x_label, groups[0].0, groups[groups.len() - 1].0);
    }
    for (x, g) in &groups {
        let curves: Vec<&AblationCurve> = g.iter().filter_map(|r| curve(r, site)).collect();
        let Some(first) = curves.first() else {
            continue;
        };
        let (m, s): (Vec<f64>, Vec<f64>) = (0..first.fractions.len())
            .map(|i| {
                let v: Vec<f64> = curves
                    .iter()
                    .flat_map(|c| c.accuracy.iter().map(move |a| a[i]))
                    .collect();
                (mean(&v), std(&v))
            })
            .unzip();
        let lo = m.iter().zip(&s).map(|(a, b)| a - b).collect();
        let hi = m.iter().zip(&s).map(|(a, b)| a + b).collect();
        plot = plot.series(
            Series::new(format!("{x_label} {x}"), first.fractions.clone(), m).with_band(lo, hi),
        );
    }
    let stem = dir.join(format!("robustness_{model}"));
    plot.save(&stem)?;
    Ok((
        stem.with_extension("png"),
        format!("{model}: accuracy as a growing random fraction of units is silenced ({site}); one line per {x_label}, mean ± s.d. over seeds and orders."),
    ))
}

/// The AUC at `site` by x (mean, s.d., runs) and its Spearman correlation with x.
fn headline(rs: &[&PointResult], model: &str, site: &str) -> Headline {
    let auc_by_x: Vec<(f64, f64, f64, usize)> = by_x(rs)
        .iter()
        .map(|(x, g)| {
            let v: Vec<f64> = g
                .iter()
                .filter_map(|r| curve(r, site))
                .map(|c| c.auc_mean)
                .collect();
            (*x, mean(&v), std(&v), v.len())
        })
        .collect();
    let (px, py): (Vec<f64>, Vec<f64>) = rs
        .iter()
        .filter_map(|r| curve(r, site).map(|c| (r.x, c.auc_mean)))
        .unzip();
    Headline {
        model: model.to_string(),
        site: site.to_string(),
        spearman_x_auc: if px.len() > 2 {
            spearman(&px, &py)
        } else {
            f64::NAN
        },
        runs: px.len(),
        auc_by_x,
    }
}

/// Figures, and the mean Spearman correlations of selectivity with importance (loss
/// increase, accuracy drop) in the least corrupted networks.
fn selectivity_figures(
    rs: &[&PointResult],
    dir: &Path,
    model: &str,
    x_label: &str,
) -> Result<Option<(Figures, (f64, f64))>> {
    if rs.iter().all(|r| r.tuning.is_none()) {
        return Ok(None);
    }
    let groups = by_x(rs);
    let mut hist = Histogram::new(
        &format!("{model}: class selectivity by {x_label}"),
        "class selectivity index",
        "fraction of units",
    );
    hist.density = true;
    hist.range = Some((0.0, 1.0));
    for (x, g) in &groups {
        let v: Vec<f64> = g
            .iter()
            .filter_map(|r| r.tuning.as_ref())
            .flat_map(|t| t.iter().flat_map(|s| s.selectivity.iter().copied()))
            .filter(|v| v.is_finite())
            .collect();
        hist = hist.group(&format!("{x_label} {x}"), v);
    }
    let stem = dir.join(format!("selectivity_{model}"));
    hist.save(&stem)?;
    let mut figs = vec![(
        stem.with_extension("png"),
        format!("{model}: distribution of class selectivity over all hidden units, by {x_label} (pooled over seeds)."),
    )];
    // Selectivity against importance in the least corrupted networks.
    let (x0, clean) = &groups[0];
    let mut scatter = Scatter::new(
        &format!("{model}: selectivity vs importance ({x_label} {x0})"),
        "class selectivity index",
        "increase of cross-entropy when the unit alone is ablated",
    );
    let mut rhos = Vec::new();
    let mut drop_rhos = Vec::new();
    let mut by_site: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for t in clean.iter().filter_map(|r| r.tuning.as_ref()).flatten() {
        rhos.push(t.correlations.spearman_loss_increase);
        drop_rhos.push(t.correlations.spearman_drop);
        let pts = by_site.entry(t.site.clone()).or_default();
        pts.extend(
            t.selectivity
                .iter()
                .copied()
                .zip(t.importance.loss_increase.iter().copied())
                .filter(|(s, _)| s.is_finite()),
        );
    }
    for (site, pts) in by_site {
        scatter = scatter.group(&site, pts);
    }
    let rho = mean(&rhos);
    let rho_drop = mean(&drop_rhos);
    scatter = scatter.note(&format!(
        "mean Spearman ρ = {rho:.2} (loss), {rho_drop:.2} (accuracy drop); {} site-runs",
        rhos.len()
    ));
    let stem = dir.join(format!("selectivity_importance_{model}"));
    scatter.save(&stem)?;
    figs.push((
        stem.with_extension("png"),
        format!("{model}: each unit's class selectivity against the accuracy lost when it alone is silenced, in the networks with {x_label} {x0}."),
    ));
    Ok(Some((figs, (rho, rho_drop))))
}

/// The table of every grid point (`summary/summary.csv` and the report's last table).
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn header(&self) -> Vec<&str> {
        self.columns.iter().map(String::as_str).collect()
    }
}

fn summary_table(results: &[PointResult], axis: Option<&str>) -> Table {
    let refs: Vec<&PointResult> = results.iter().collect();
    let sites = curve_sites(&refs);
    let mut columns: Vec<String> = [
        "point",
        "model",
        axis.unwrap_or("x"),
        "seed",
        "train_acc",
        "test_acc",
        "train_s",
        "assays_s",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(sites.iter().map(|s| format!("auc_{s}")));
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![
                r.point.id.clone(),
                r.point.model.clone(),
                r.x.to_string(),
                r.point.config.training.seed.to_string(),
                format!("{:.4}", r.manifest.final_train_acc.unwrap_or(f64::NAN)),
                format!("{:.4}", r.manifest.final_test_acc.unwrap_or(f64::NAN)),
                format!("{:.1}", r.manifest.train_seconds),
                format!("{:.1}", r.assay_seconds),
            ];
            row.extend(sites.iter().map(|s| {
                curve(r, s)
                    .map(|c| format!("{:.4}", c.auc_mean))
                    .unwrap_or_default()
            }));
            row
        })
        .collect();
    Table { columns, rows }
}
