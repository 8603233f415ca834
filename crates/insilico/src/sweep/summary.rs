//! The sweep's summary: figures across the grid, a table of every point, the headline
//! statistics, and one self-contained `report.html`.

use super::exec::{run_dir, AssayDone};
use super::spec::{Point, SweepFile};
use anyhow::{Context, Result};
use insilico_assays::ablation::Order;
use insilico_assays::stats::{mean, spearman, std};
use insilico_engine::Manifest;
use insilico_report::{write_csv, write_json, Histogram, HtmlReport, LinePlot, Scatter, Series};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Figures as (PNG path, caption), in the order the report shows them.
type Figures = Vec<(PathBuf, String)>;

/// A number as serde_json writes it: NaN (an undefined correlation, say) becomes `null`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(from = "Option<f64>")]
struct F(f64);

impl From<Option<f64>> for F {
    fn from(v: Option<f64>) -> Self {
        F(v.unwrap_or(f64::NAN))
    }
}

fn values(v: &[F]) -> Vec<f64> {
    v.iter().map(|f| f.0).collect()
}

/// The parts of `ablation.json` the summary reads.
#[derive(Deserialize)]
struct AblationView {
    curves: Vec<CurveView>,
}

#[derive(Deserialize)]
struct CurveView {
    site: String,
    order: Order,
    fractions: Vec<F>,
    accuracy: Vec<Vec<F>>,
    auc_mean: F,
}

/// The parts of `selectivity.json` the summary reads.
#[derive(Deserialize)]
struct TuningView {
    site: String,
    selectivity: Vec<F>,
    importance: ImportanceView,
    correlations: CorrelationView,
}

#[derive(Deserialize)]
struct ImportanceView {
    loss_increase: Vec<F>,
}

#[derive(Deserialize)]
struct CorrelationView {
    spearman_drop: F,
    spearman_loss_increase: F,
}

/// What one finished point contributes to the summary.
struct PointResult<'a> {
    point: &'a Point,
    x: f64,
    manifest: Manifest,
    ablation: Option<AblationView>,
    tuning: Option<Vec<TuningView>>,
    assay_seconds: f64,
    dir: PathBuf,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
    ))
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
    pub train_seconds: f64,
    pub assay_seconds: f64,
}

pub fn summarize(
    sweep: &SweepFile,
    sweep_text: &str,
    points: &[Point],
    out: &Path,
    wall_seconds: Option<f64>,
) -> Result<Summary> {
    let axis = x_axis(points);
    let mut results = Vec::new();
    for p in points {
        let run = run_dir(out, p);
        let Ok(manifest) = Manifest::read(&run) else {
            continue;
        };
        let mut assay_seconds = 0.0;
        for a in ["ablation", "selectivity", "noise", "receptive_fields"] {
            if let Some(d) = read_json::<AssayDone>(&run.assay_dir(a).join("done.json"))? {
                assay_seconds += d.seconds;
            }
        }
        results.push(PointResult {
            point: p,
            x: axis.as_deref().and_then(|a| p.coord_f64(a)).unwrap_or(0.0),
            ablation: read_json(&run.assay_dir("ablation").join("ablation.json"))?,
            tuning: read_json(&run.assay_dir("selectivity").join("selectivity.json"))?,
            manifest,
            assay_seconds,
            dir: run.root.clone(),
        });
    }
    let dir = out.join("summary");
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
    let summary = Summary {
        sweep: sweep.name.clone(),
        x_axis: axis.clone(),
        headlines,
        selectivity_importance: sel_imp,
        train_seconds: results.iter().map(|r| r.manifest.train_seconds).sum(),
        assay_seconds: results.iter().map(|r| r.assay_seconds).sum(),
    };
    write_table(&results, &dir, axis.as_deref())?;
    write_json(&dir.join("summary.json"), &summary)?;
    write_report(
        sweep,
        sweep_text,
        &summary,
        &results,
        &figures,
        out,
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
    LinePlot::new(&format!("{model}: memorization"), x_label, "accuracy")
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

fn curve<'a>(r: &'a PointResult, site: &str) -> Option<&'a CurveView> {
    r.ablation
        .as_ref()?
        .curves
        .iter()
        .find(|c| c.site == site && c.order == Order::Random)
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
    let groups = by_x(rs);
    let mut figs = Vec::new();
    // Robustness curves, one line per x value (mean over seeds), coloured along x.
    let mut plot = LinePlot::new(
        &format!("{model}: ablation curves ({main})"),
        "fraction of units ablated",
        "accuracy (labels as trained)",
    )
    .y_range(0.0, 1.02)
    .x_range(0.0, 1.0);
    if groups.len() > 1 {
        plot = plot.colorbar(x_label, groups[0].0, groups[groups.len() - 1].0);
    }
    for (x, g) in &groups {
        let curves: Vec<&CurveView> = g.iter().filter_map(|r| curve(r, main)).collect();
        let Some(first) = curves.first() else {
            continue;
        };
        let n = first.fractions.len();
        let (m, s): (Vec<f64>, Vec<f64>) = (0..n)
            .map(|i| {
                let v: Vec<f64> = curves
                    .iter()
                    .flat_map(|c| c.accuracy.iter().map(move |a| a[i].0))
                    .collect();
                (mean(&v), std(&v))
            })
            .unzip();
        let lo = m.iter().zip(&s).map(|(a, b)| a - b).collect();
        let hi = m.iter().zip(&s).map(|(a, b)| a + b).collect();
        plot = plot.series(
            Series::new(format!("{x_label} {x}"), values(&first.fractions), m).with_band(lo, hi),
        );
    }
    let stem = dir.join(format!("robustness_{model}"));
    plot.save(&stem)?;
    figs.push((
        stem.with_extension("png"),
        format!("{model}: accuracy as a growing random fraction of units is silenced ({main}); one line per {x_label}, mean ± s.d. over seeds and orders."),
    ));
    // AUC against x, one series per site.
    let mut auc_plot = LinePlot::new(
        &format!("{model}: robustness to ablation"),
        x_label,
        "normalized ablation AUC",
    );
    let mut heads = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let rows: Vec<(f64, f64, f64, usize)> = groups
            .iter()
            .map(|(x, g)| {
                let v: Vec<f64> = g
                    .iter()
                    .filter_map(|r| curve(r, site))
                    .map(|c| c.auc_mean.0)
                    .collect();
                (*x, mean(&v), std(&v), v.len())
            })
            .collect();
        let pairs: Vec<(f64, f64)> = rs
            .iter()
            .filter_map(|r| curve(r, site).map(|c| (r.x, c.auc_mean.0)))
            .collect();
        let (px, py): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        heads.push(Headline {
            model: model.to_string(),
            site: site.clone(),
            spearman_x_auc: if px.len() > 2 {
                spearman(&px, &py)
            } else {
                f64::NAN
            },
            runs: px.len(),
            auc_by_x: rows.clone(),
        });
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
    }
    let stem = dir.join(format!("auc_{model}"));
    auc_plot.save(&stem)?;
    figs.push((
        stem.with_extension("png"),
        format!("{model}: area under the ablation curve (normalized by unablated accuracy) against {x_label}; mean ± s.d. over seeds."),
    ));
    Ok((figs, heads))
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
            .flat_map(|t| t.iter().flat_map(|s| values(&s.selectivity)))
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
        rhos.push(t.correlations.spearman_loss_increase.0);
        drop_rhos.push(t.correlations.spearman_drop.0);
        let pts = by_site.entry(t.site.clone()).or_default();
        pts.extend(
            values(&t.selectivity)
                .into_iter()
                .zip(values(&t.importance.loss_increase))
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

fn write_table(results: &[PointResult], dir: &Path, axis: Option<&str>) -> Result<()> {
    let refs: Vec<&PointResult> = results.iter().collect();
    let sites = curve_sites(&refs);
    let mut header: Vec<String> = vec![
        "point".into(),
        "model".into(),
        axis.unwrap_or("x").into(),
        "seed".into(),
        "train_acc".into(),
        "test_acc".into(),
        "train_s".into(),
        "assays_s".into(),
    ];
    header.extend(sites.iter().map(|s| format!("auc_{s}")));
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
                    .map(|c| format!("{:.4}", c.auc_mean.0))
                    .unwrap_or_default()
            }));
            row
        })
        .collect();
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    write_csv(&dir.join("summary.csv"), &h, &rows)
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    sweep: &SweepFile,
    sweep_text: &str,
    summary: &Summary,
    results: &[PointResult],
    figures: &[(PathBuf, String)],
    out: &Path,
    wall_seconds: Option<f64>,
) -> Result<()> {
    let mut html = HtmlReport::new(&format!("insilico sweep: {}", sweep.name));
    if !sweep.description.is_empty() {
        html.paragraph(&sweep.description);
    }
    html.heading("Findings");
    for h in &summary.headlines {
        let levels: Vec<String> = h
            .auc_by_x
            .iter()
            .map(|(x, m, s, n)| format!("{x}: {m:.3} ± {s:.3} (n={n})"))
            .collect();
        html.paragraph(&format!(
            "{} — ablation AUC at {} by {}: {}. Spearman correlation between {} and AUC over {} runs: {:.3}.",
            h.model,
            h.site,
            summary.x_axis.as_deref().unwrap_or("grid point"),
            levels.join("; "),
            summary.x_axis.as_deref().unwrap_or("x"),
            h.runs,
            h.spearman_x_auc
        ));
    }
    for (model, (rho, rho_drop)) in &summary.selectivity_importance {
        html.paragraph(&format!(
            "{model} — in the least corrupted networks, class selectivity vs single-unit importance: mean Spearman ρ = {rho:.3} with the loss increase, {rho_drop:.3} with the accuracy drop (NaN: no single unit changes accuracy)."
        ));
    }
    let total = summary.train_seconds + summary.assay_seconds;
    html.paragraph(&format!(
        "Compute: {:.0} s training, {:.0} s assays ({:.0}% of the work in assays){}.",
        summary.train_seconds,
        summary.assay_seconds,
        100.0 * summary.assay_seconds / total.max(1e-9),
        wall_seconds
            .map(|w| format!("; wall time of this invocation {w:.0} s"))
            .unwrap_or_default()
    ));
    html.heading("Figures");
    for (png, caption) in figures {
        html.image(png, caption)?;
    }
    let montages: Vec<(PathBuf, String)> = results
        .iter()
        .filter(|r| r.point.config.training.seed == results[0].point.config.training.seed)
        .flat_map(|r| {
            ["conv1", "logits", "fc1"]
                .into_iter()
                .filter_map(move |site| {
                    let p = r
                        .dir
                        .join("assays/receptive_fields")
                        .join(format!("{site}.png"));
                    p.exists().then(|| {
                        (
                            p,
                            format!(
                                "{}: receptive fields at {site} (activation maximization)",
                                r.point.id
                            ),
                        )
                    })
                })
        })
        .collect();
    if !montages.is_empty() {
        html.heading("Receptive fields");
        for (png, caption) in &montages {
            html.image(png, caption)?;
        }
    }
    html.heading("Every grid point");
    let table = std::fs::read_to_string(out.join("summary/summary.csv"))?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    html.table(&header, &rows);
    html.heading("Sweep file");
    html.preformatted(sweep_text);
    html.save(&out.join("report.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_numbers_written_as_null_read_back_as_nan() {
        // serde_json writes NaN as null (an undefined correlation, say).
        let text = serde_json::to_string(&serde_json::json!({
            "spearman_drop": f64::NAN, "spearman_loss_increase": 0.25
        }))
        .unwrap();
        assert!(text.contains("null"));
        let c: CorrelationView = serde_json::from_str(&text).unwrap();
        assert!(c.spearman_drop.0.is_nan());
        assert_eq!(c.spearman_loss_increase.0, 0.25);
    }
}
