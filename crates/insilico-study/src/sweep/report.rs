//! The sweep's `report.html`: findings, the summary figures, each assay's per-run
//! figures (from the registry), the table of every grid point and the sweep file. One
//! self-contained page with the images inlined.

use super::compare_report::CompareSection;
use super::summary::{PointResult, Summary, Table};
use super::Sweep;
use crate::registry::{AssayKind, Figure};
use anyhow::Result;
use insilico_report::HtmlReport;

pub fn write_report(
    sweep: &Sweep,
    summary: &Summary,
    results: &[PointResult],
    figures: &[Figure],
    compare: &CompareSection,
    table: &Table,
    wall_seconds: Option<f64>,
) -> Result<()> {
    let mut html = HtmlReport::new(&format!("insilico sweep: {}", sweep.spec.name));
    if !sweep.spec.description.is_empty() {
        html.paragraph(&sweep.spec.description);
    }
    html.heading("Findings");
    findings(&mut html, summary, wall_seconds);
    if !figures.is_empty() {
        html.heading("Figures");
        for (png, caption) in figures {
            html.image(png, caption)?;
        }
    }
    comparison(&mut html, compare)?;
    galleries(&mut html, results)?;
    html.heading("Every grid point");
    html.table(&table.header(), &table.rows);
    html.heading("Sweep file");
    html.preformatted(&sweep.text);
    html.save(&sweep.out.join("report.html"))
}

fn findings(html: &mut HtmlReport, summary: &Summary, wall_seconds: Option<f64>) {
    if let Some(c) = &summary.claim {
        html.paragraph(&format!("{}:", c.claim.title()));
        for line in &c.lines {
            html.paragraph(line);
        }
    }
    let axis = summary.x_axis.as_deref();
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
            axis.unwrap_or("grid point"),
            levels.join("; "),
            axis.unwrap_or("x"),
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
}

/// The `[compare]` step: its checks, tables and figures.
fn comparison(html: &mut HtmlReport, c: &CompareSection) -> Result<()> {
    if c.checks.is_empty() && c.figures.is_empty() {
        return Ok(());
    }
    html.heading("Representation comparison across runs");
    for check in &c.checks {
        html.paragraph(check);
    }
    for (title, (header, rows)) in &c.tables {
        html.paragraph(title);
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        html.table(&header, rows);
    }
    for (png, caption) in &c.figures {
        html.image(png, caption)?;
    }
    Ok(())
}

/// Each assay's per-run figures, for the runs of the first seed: one section per
/// assay that has any.
fn galleries(html: &mut HtmlReport, results: &[PointResult]) -> Result<()> {
    let Some(first) = results.first() else {
        return Ok(());
    };
    let seed = first.point.config.training.seed;
    for kind in AssayKind::ALL {
        let mut figures = Vec::new();
        for r in results
            .iter()
            .filter(|r| r.point.config.training.seed == seed)
        {
            for (png, caption) in kind.gallery(&r.run) {
                figures.push((png, format!("{}: {caption}", r.point.id)));
            }
        }
        if figures.is_empty() {
            continue;
        }
        html.heading(kind.title());
        for (png, caption) in &figures {
            html.image(png, caption)?;
        }
    }
    Ok(())
}
