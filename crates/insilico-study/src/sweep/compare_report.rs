//! What the sweep-level comparison puts in the report: the checks of the reproductions
//! (printed by `insilico sweep` too), tables and figures.

use super::compare::{
    corresponding, identification, mean_matrix, CompareCheck, Comparison, GroupComparison,
    PairMatrices,
};
use crate::compare::Conditions;
use crate::registry::Figure;
use anyhow::Result;
use insilico_population::Measure;
use insilico_report::{Heatmap, LinePlot, Series};
use std::path::Path;

/// How far apart the first layers of the two groups may be and still count as "equally
/// similar" (Morcos et al. 2018 show them overlapping), in the measure's units.
pub const EARLY_TOLERANCE: f64 = 0.05;
/// The accuracy linear CKA must reach to count as "near 100 %".
pub const NEAR_PERFECT: f64 = 0.9;

/// A table for the report: header and rows.
pub type Table = (Vec<String>, Vec<Vec<String>>);

/// The comparison's section of the report.
#[derive(Default)]
pub struct CompareSection {
    /// One paragraph per check, as printed.
    pub checks: Vec<String>,
    pub tables: Vec<(String, Table)>,
    pub figures: Vec<Figure>,
}

/// Whether a measure is one of the CCA family (mean CCA, SVCCA, PWCCA).
fn is_cca(name: &str) -> bool {
    matches!(
        name.parse::<Measure>(),
        Ok(Measure::CcaMean | Measure::CcaMeanSquared | Measure::Svcca { .. } | Measure::Pwcca)
    )
}

/// The verdict on linear CKA's accuracy `k` and the CCA family's accuracies `cca`. Without a
/// CCA-based measure (flattened conv maps have more units than stimuli, which CCA cannot
/// take) only the first half is checked, and the verdict says so.
fn cka_verdict(k: f64, cca: &[f64]) -> String {
    let near = k >= NEAR_PERFECT;
    let lower = cca.iter().all(|&c| c < k);
    let yes_no = |b: bool| if b { "yes" } else { "NO" };
    let (cca_clause, holds) = if cca.is_empty() {
        (
            "not checked (no CCA-based measure among the measures)",
            near,
        )
    } else {
        (yes_no(lower), near && lower)
    };
    format!(
        "linear CKA near 100 % (≥ {:.0} %): {}; every CCA-based measure below it: {cca_clause} => {}",
        100.0 * NEAR_PERFECT,
        yes_no(near),
        match (holds, cca.is_empty()) {
            (true, true) => "HOLDS for linear CKA",
            (true, false) => "HOLDS",
            (false, _) => "DOES NOT HOLD",
        }
    )
}

/// Kornblith et al. 2019's check for one group: the accuracy of every measure, and
/// whether linear CKA is near 100 % with every CCA-based measure below it.
pub fn corresponding_layers_check(g: &GroupComparison) -> String {
    let acc: Vec<(String, f64, usize, usize)> = g
        .measures
        .iter()
        .map(|m| {
            let (c, t) = identification(&m.values);
            (m.measure.clone(), c as f64 / t.max(1) as f64, c, t)
        })
        .collect();
    let listed: Vec<String> = acc
        .iter()
        .map(|(m, a, c, t)| format!("{m} {:.1} % ({c}/{t})", 100.0 * a))
        .collect();
    let cka = acc.iter().find(|(m, ..)| m == "cka-linear").map(|a| a.1);
    let cca: Vec<f64> = acc
        .iter()
        .filter(|(m, ..)| is_cca(m))
        .map(|a| a.1)
        .collect();
    let verdict = match cka {
        None => "not checked: cka-linear is not among the measures".to_string(),
        Some(k) => cka_verdict(k, &cca),
    };
    format!(
        "Corresponding layers (Kornblith et al. 2019), {}: {} runs, {} sites, {} ordered pairs; \
         accuracy of identifying the same layer of the other run by maximum similarity: {}. \
         Expected linear CKA near 100 %, CCA-based measures lower: {verdict}.",
        g.group,
        g.runs.len(),
        g.sites.len(),
        g.measures.first().map_or(0, |m| m.pairs.len()),
        listed.join(", ")
    )
}

/// Every pair matrix of one measure over the groups trained on true (or random) labels.
fn pooled(groups: &[GroupComparison], measure: &str, truth: bool) -> Vec<Vec<Vec<f64>>> {
    groups
        .iter()
        .filter(|g| g.true_labels == truth)
        .flat_map(|g| g.measures.iter().filter(|m| m.measure == measure))
        .flat_map(|m| m.values.iter().cloned())
        .collect()
}

/// Morcos, Raghu & Bengio 2018's check for one measure: per layer, the similarity of
/// corresponding layers among networks on true labels and among networks on random ones.
pub fn memorization_check(groups: &[GroupComparison], measure: &str) -> (String, Table) {
    let t = corresponding(&pooled(groups, measure, true));
    let r = corresponding(&pooled(groups, measure, false));
    let sites = groups.first().map(|g| g.sites.clone()).unwrap_or_default();
    let header = ["site", "true labels", "random labels", "difference"]
        .map(String::from)
        .to_vec();
    let rows: Vec<Vec<String>> = sites
        .iter()
        .zip(t.iter().zip(&r))
        .map(|(s, (a, b))| {
            vec![
                s.clone(),
                format!("{:.3} ± {:.3}", a.0, a.1),
                format!("{:.3} ± {:.3}", b.0, b.1),
                format!("{:+.3}", a.0 - b.0),
            ]
        })
        .collect();
    let diffs: Vec<f64> = t.iter().zip(&r).map(|(a, b)| a.0 - b.0).collect();
    let (Some(first), Some(last)) = (diffs.first(), diffs.last()) else {
        return (
            format!("Memorization, {measure}: no layers compared."),
            (header, rows),
        );
    };
    let early = first.abs() <= EARLY_TOLERANCE;
    let late = *last > EARLY_TOLERANCE;
    let per_layer: Vec<String> = diffs.iter().map(|d| format!("{d:+.3}")).collect();
    let text = format!(
        "Memorization (Morcos, Raghu & Bengio 2018), {measure}: similarity of corresponding layers \
         among networks on true labels minus among networks on one fixed random relabelling, \
         layer by layer: [{}]. Expected the first layer equally similar (|difference| ≤ {EARLY_TOLERANCE}): {} \
         ({}: {:.3} vs {:.3}); the last layer more similar among generalizing networks (difference > {EARLY_TOLERANCE}): {} \
         ({}: {:.3} vs {:.3}) => {}.",
        per_layer.join(", "),
        if early { "yes" } else { "NO" },
        sites[0],
        t[0].0,
        r[0].0,
        if late { "yes" } else { "NO" },
        sites[sites.len() - 1],
        t[t.len() - 1].0,
        r[r.len() - 1].0,
        if early && late { "HOLDS" } else { "DOES NOT HOLD" }
    );
    (text, (header, rows))
}

/// The mean layer x layer matrix of a measure over a group's ordered pairs, of responses
/// to each stimulus or of class means (`conditions`).
fn heatmap(
    dir: &Path,
    g: &GroupComparison,
    m: &PairMatrices,
    conditions: Conditions,
) -> Result<Figure> {
    let of = conditions.in_title();
    let stem = dir.join(format!("{}_{}", g.group, m.measure));
    // The range from the measure (JSON has no infinity to keep ridge R^2's lower bound).
    let (lo, hi) = m
        .measure
        .parse::<Measure>()
        .map_or((0.0, 1.0), |m| m.range());
    Heatmap {
        title: format!(
            "{}: {}{of} (mean of {} pairs)",
            g.group,
            Measure::title_of(&m.measure),
            m.pairs.len()
        ),
        x_label: "site of the second run".into(),
        y_label: "site of the first run".into(),
        rows: g.sites.clone(),
        columns: g.sites.clone(),
        values: mean_matrix(&m.values),
        scale: (
            Measure::title_of(&m.measure),
            if lo.is_finite() { lo } else { -1.0 },
            hi,
        ),
    }
    .save(&stem)?;
    Ok((
        crate::compare::with_ext(&stem, "png"),
        format!(
            "{}: {}{of} between every site of one run (rows) and every site of another \
             (columns), mean over {} ordered pairs of runs; a bright diagonal means \
             corresponding layers are the most similar.",
            g.group,
            m.measure,
            m.pairs.len()
        ),
    ))
}

/// Per measure, the similarity of corresponding layers (mean ± s.d. over pairs), one
/// line per group.
fn layer_plot(dir: &Path, c: &Comparison, measure: &str) -> Result<Figure> {
    let stem = dir.join(format!("corresponding_{measure}"));
    // Layer i (from 1) at x = i, named by the first group's site.
    let ticks = c.groups.first().map_or_else(Vec::new, |g| {
        let named = g.sites.iter().enumerate();
        named
            .map(|(i, site)| ((i + 1) as f64, site.clone()))
            .collect()
    });
    let mut plot = LinePlot::new(
        &format!("{measure} of corresponding layers across runs"),
        "layer",
        measure,
    )
    .x_ticks(ticks)
    .y_range(0.0, 1.02);
    for (k, g) in c.groups.iter().enumerate() {
        let Some(m) = g.measures.iter().find(|m| m.measure == measure) else {
            continue;
        };
        let stats = corresponding(&m.values);
        let x: Vec<f64> = (1..=stats.len()).map(|i| i as f64).collect();
        plot = plot.series(
            Series::new(g.group.clone(), x, stats.iter().map(|s| s.0).collect())
                .with_err(stats.iter().map(|s| s.1).collect())
                .with_markers(true)
                .with_color(k),
        );
    }
    plot.save(&stem)?;
    Ok((
        crate::compare::with_ext(&stem, "png"),
        format!("{measure} between the same layer of two runs, mean ± s.d. over ordered pairs, per group."),
    ))
}

/// The checks, tables and figures of a comparison, drawn into `dir`.
pub fn section(c: &Comparison, dir: &Path) -> Result<CompareSection> {
    let mut s = CompareSection::default();
    for check in &c.spec.checks {
        match check {
            CompareCheck::CorrespondingLayers => s
                .checks
                .extend(c.groups.iter().map(corresponding_layers_check)),
            CompareCheck::BottomUp => s.checks.extend(
                c.over_training
                    .iter()
                    .flat_map(crate::over_training::checks),
            ),
            CompareCheck::Memorization => {
                for m in &c.spec.measures {
                    let (text, table) = memorization_check(&c.groups, &m.name());
                    s.checks.push(text);
                    s.tables
                        .push((format!("{}: corresponding layers", m.name()), table));
                }
            }
        }
    }
    for (k, o) in c.over_training.iter().enumerate() {
        let figures = crate::over_training::write_over_training(&dir.join(format!("run{k}")), o)?;
        s.figures.extend(figures);
    }
    if c.groups.is_empty() {
        return Ok(s);
    }
    for m in &c.spec.measures {
        s.figures.push(layer_plot(dir, c, &m.name())?);
    }
    for g in &c.groups {
        for m in &g.measures {
            s.figures.push(heatmap(dir, g, m, c.spec.conditions)?);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(truth: bool, diagonal: [f64; 3], measures: &[&str]) -> GroupComparison {
        let m = |i: usize, j: usize| if i == j { diagonal[i] } else { 0.1 };
        let matrix: Vec<Vec<f64>> = (0..3).map(|i| (0..3).map(|j| m(i, j)).collect()).collect();
        GroupComparison {
            group: format!("g{truth}"),
            runs: vec!["a".into(), "b".into()],
            true_labels: truth,
            sites: vec!["fc1".into(), "fc2".into(), "fc3".into()],
            measures: measures
                .iter()
                .map(|name| PairMatrices {
                    measure: name.to_string(),
                    pairs: vec![(0, 1), (1, 0)],
                    values: vec![matrix.clone(), matrix.clone()],
                })
                .collect(),
        }
    }

    #[test]
    fn memorization_holds_when_only_late_layers_differ() {
        let groups = [
            group(true, [0.9, 0.8, 0.7], &["cka-linear"]),
            group(false, [0.88, 0.6, 0.3], &["cka-linear"]),
        ];
        let (text, (_, rows)) = memorization_check(&groups, "cka-linear");
        assert!(
            text.contains("HOLDS") && !text.contains("DOES NOT"),
            "{text}"
        );
        assert_eq!(rows[2][3], "+0.400");
        let flipped = [
            group(true, [0.9, 0.6, 0.3], &["cka-linear"]),
            group(false, [0.9, 0.8, 0.7], &["cka-linear"]),
        ];
        assert!(memorization_check(&flipped, "cka-linear")
            .0
            .contains("DOES NOT HOLD"));
    }

    #[test]
    fn corresponding_layers_needs_cka_near_perfect_and_cca_below() {
        // Every row's maximum is its diagonal for both measures: CCA is not below CKA.
        let g = group(true, [0.9, 0.8, 0.7], &["cka-linear", "pwcca"]);
        let text = corresponding_layers_check(&g);
        assert!(text.contains("cka-linear 100.0 % (6/6)"), "{text}");
        assert!(text.contains("DOES NOT HOLD"), "{text}");
        let mut g = g;
        g.measures[1].values[0][2][2] = 0.05;
        let text = corresponding_layers_check(&g);
        assert!(
            text.contains("pwcca 83.3 % (5/6)") && text.contains("HOLDS"),
            "{text}"
        );
        assert!(!text.contains("DOES NOT"), "{text}");
    }

    #[test]
    fn corresponding_layers_without_cca_checks_only_cka() {
        let g = group(true, [0.9, 0.8, 0.7], &["cka-linear", "cka-debiased"]);
        let text = corresponding_layers_check(&g);
        assert!(
            text.contains("not checked (no CCA-based measure")
                && text.contains("=> HOLDS for linear CKA"),
            "{text}"
        );
        let mut g = g;
        // Row 0's maximum moves off the diagonal in both ordered pairs: 4/6 < 90 %.
        for pair in &mut g.measures[0].values {
            pair[0][1] = 2.0;
        }
        let text = corresponding_layers_check(&g);
        assert!(
            text.contains("cka-linear 66.7 % (4/6)") && text.contains("DOES NOT HOLD"),
            "{text}"
        );
    }
}
