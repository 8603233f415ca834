//! The ablation assay: cumulative ablation curves (Morcos et al. 2018), per site and
//! across all hidden sites at once.

use crate::options::{at_least, Options};
use crate::registry::{Assay, AssayKind};
use crate::selectivity::{importance_and_selectivity, SiteTuning};
use crate::study::Study;
use anyhow::{bail, Result};
use clap::Args;
use insilico_assays::ablation::{
    all_sites_curve, cumulative_curve, fractions, replacement_values, unit_orders, AblationCurve,
    Order, Replacement,
};
use insilico_assays::masks::MaskEvaluator;
use insilico_report::{write_csv, write_json, LinePlot, Series};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Options of the ablation assay (`insilico ablate`, `[assays.ablation]` of a sweep).
#[derive(Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AblationOptions {
    /// Orders, comma-separated: random, selectivity-high, selectivity-low, importance.
    #[arg(long = "order", value_delimiter = ',', default_values_t = AblationOptions::default().orders)]
    pub orders: Vec<Order>,
    /// Replacement for silenced units: zero or mean.
    #[arg(long, default_value_t = AblationOptions::default().value)]
    pub value: Replacement,
    /// Random orders per curve.
    #[arg(long, default_value_t = AblationOptions::default().repeats)]
    pub repeats: usize,
    /// Fraction steps (20: 0, 0.05, ..., 1).
    #[arg(long, default_value_t = AblationOptions::default().steps)]
    pub steps: usize,
    /// Also silence the same fraction at every hidden site at once (true or false).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = AblationOptions::default().all_sites)]
    pub all_sites: bool,
}

impl Default for AblationOptions {
    fn default() -> Self {
        Self {
            orders: vec![Order::Random],
            value: Replacement::Zero,
            repeats: 10,
            steps: 20,
            all_sites: true,
        }
    }
}

impl Options for AblationOptions {
    const SECTION: &'static str = "ablation";
    fn validate(&self) -> Result<()> {
        at_least(Self::SECTION, "repeats", self.repeats, 1)?;
        at_least(Self::SECTION, "steps", self.steps, 1)?;
        if self.orders.is_empty() {
            bail!("ablation.orders is empty: give at least one of random, selectivity-high, selectivity-low, importance");
        }
        Ok(())
    }
}

/// The ablation assay's result (`ablation.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AblationResult {
    pub curves: Vec<AblationCurve>,
    #[serde(deserialize_with = "insilico_assays::stats::nullable")]
    pub seconds: f64,
}

/// The ablation assay in the registry.
pub struct Ablation;

impl Assay for Ablation {
    const KIND: AssayKind = AssayKind::Ablation;
    const COMMAND: &'static str = "ablate";
    const ABOUT: &'static str =
        "Cumulative ablation curves: silence units one after another, measure accuracy";
    const LONG_ABOUT: &'static str =
        "Cumulative ablation curves (Morcos et al. 2018). At each site, units are \
        silenced (x*(1-mask) + replacement*mask) in the chosen order and accuracy is measured \
        at fractions 0, 1/steps, ..., 1, over --repeats random orders. Writes \
        RUN/assays/ablation/: curves.csv (every point), summary.csv (normalized AUC per site \
        and order), ablation.json, and curves_<site>.png/.svg and curves.png/.svg.\n\n\
        The site's activation is recorded once; masks are applied to the cached activations, \
        many per forward pass, and where a conv or linear layer follows, each unit's \
        contribution to it is computed once so that a mask costs a few row additions (each \
        fraction's mask adds units to the previous one's).";
    const EXAMPLES: &'static str = "Examples:\n  insilico ablate --run runs/demo\n  insilico ablate --run runs/mlp --sites fc1.relu,fc2.relu --order random,selectivity-high --value mean --split test";
    const RESULT_FILE: &'static str = "ablation.json";
    type Options = AblationOptions;
    type Output = AblationResult;

    fn run(study: &Study, options: &AblationOptions) -> Result<AblationResult> {
        ablate(study, options)
    }

    fn describe(result: &AblationResult) -> Vec<String> {
        result
            .curves
            .iter()
            .map(|c| {
                format!(
                    "{:<12} {:<17} unablated {:.4}  AUC {:.4} ± {:.4}",
                    c.site,
                    c.order.to_string(),
                    c.unablated,
                    c.auc_mean,
                    c.auc_std
                )
            })
            .collect()
    }
}

/// Runs the ablation assay on a study and writes its outputs.
pub fn ablate(study: &Study, opts: &AblationOptions) -> Result<AblationResult> {
    opts.validate()?;
    let seed = study.seed();
    let started = Instant::now();
    let net = &study.run.network;
    let labels = study.examples.labels.clone();
    let fracs = fractions(opts.steps);
    let needs_tuning = opts.orders.iter().any(|o| *o != Order::Random);
    let tuning: Vec<SiteTuning> = if needs_tuning {
        importance_and_selectivity(study, opts.value)?
    } else {
        Vec::new()
    };
    let mut curves = Vec::new();
    // The all-sites curve resumes from the first site: only that cache is kept.
    let mut first_cache = None;
    let mut replacements = Vec::new();
    for (i, site) in study.sites.iter().enumerate() {
        let cache = study.record(site)?;
        let repl = replacement_values(&cache, opts.value);
        if first_cache.is_none() {
            first_cache = Some(cache.clone());
        }
        replacements.push(repl.clone());
        let eval = MaskEvaluator::new(
            net,
            site,
            cache,
            labels.clone(),
            &repl,
            &study.run.compute.device,
        )?;
        for &order in &opts.orders {
            let t = tuning.get(i);
            let score: Option<(&[f64], bool)> = match order {
                Order::Random => None,
                Order::SelectivityHigh => t.map(|t| (&t.selectivity[..], true)),
                Order::SelectivityLow => t.map(|t| (&t.selectivity[..], false)),
                Order::Importance => t.map(|t| (&t.importance.drop[..], true)),
            };
            let orders = unit_orders(
                eval.units(),
                opts.repeats,
                seed.wrapping_add(i as u64),
                score,
            );
            curves.push(cumulative_curve(
                &eval, site, order, opts.value, &orders, &fracs,
            )?);
        }
    }
    if let (true, Some(first)) = (opts.all_sites && study.sites.len() > 1, &first_cache) {
        curves.push(all_sites_curve(
            net,
            &study.sites,
            first,
            &replacements,
            &labels,
            opts.repeats,
            &fracs,
            opts.value,
            seed,
        )?);
    }
    let result = AblationResult {
        curves,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_outputs(study, &result)?;
    Ok(result)
}

fn write_outputs(study: &Study, result: &AblationResult) -> Result<()> {
    let dir = study.out_dir("ablation");
    let mut rows = Vec::new();
    let mut summary = Vec::new();
    for c in &result.curves {
        for (r, acc) in c.accuracy.iter().enumerate() {
            for (f, a) in c.fractions.iter().zip(acc) {
                rows.push(vec![
                    c.site.clone(),
                    c.order.to_string(),
                    format!("{:?}", c.replacement).to_lowercase(),
                    r.to_string(),
                    format!("{f:.4}"),
                    format!("{a:.6}"),
                ]);
            }
        }
        summary.push(vec![
            c.site.clone(),
            c.order.to_string(),
            format!("{:?}", c.replacement).to_lowercase(),
            c.units.to_string(),
            c.accuracy.len().to_string(),
            format!("{:.6}", c.unablated),
            format!("{:.6}", c.auc_mean),
            format!("{:.6}", c.auc_std),
        ]);
    }
    write_csv(
        &dir.join("curves.csv"),
        &["site", "order", "value", "repeat", "fraction", "accuracy"],
        &rows,
    )?;
    write_csv(
        &dir.join("summary.csv"),
        &[
            "site",
            "order",
            "value",
            "units",
            "repeats",
            "unablated",
            "auc_mean",
            "auc_std",
        ],
        &summary,
    )?;
    write_json(&dir.join("ablation.json"), result)?;
    draw(study, result)
}

/// One figure per site with one line per order, and one with every site (random order).
fn draw(study: &Study, result: &AblationResult) -> Result<()> {
    let dir = study.out_dir("ablation");
    let split = &study.split().to_string();
    let title = format!(
        "{} on {} ({split} split, {} images)",
        study.run.config.model.name,
        study.run.data.dataset.name,
        study.examples.len()
    );
    let mut sites: Vec<&str> = result.curves.iter().map(|c| c.site.as_str()).collect();
    sites.dedup();
    for site in &sites {
        let mut plot = curve_plot(&format!("{title}: {site}"), split);
        for (i, c) in result.curves.iter().filter(|c| c.site == *site).enumerate() {
            plot = plot.series(curve_series(c, &c.order.to_string(), i));
        }
        plot.save(&dir.join(format!("curves_{site}")))?;
    }
    let mut plot = curve_plot(&title, split);
    for (i, c) in result
        .curves
        .iter()
        .filter(|c| c.order == Order::Random)
        .enumerate()
    {
        plot = plot.series(curve_series(
            c,
            &format!("{} (AUC {:.3})", c.site, c.auc_mean),
            i,
        ));
    }
    plot.save(&dir.join("curves"))?;
    Ok(())
}

fn curve_plot(title: &str, split: &str) -> LinePlot {
    LinePlot::new(
        title,
        "fraction of units ablated",
        &format!("{split} accuracy"),
    )
    .y_range(0.0, 1.0)
    .x_range(0.0, 1.0)
}

/// A curve's mean with a band of ± one standard deviation across orders.
fn curve_series(c: &AblationCurve, label: &str, color: usize) -> Series {
    let lo: Vec<f64> = c.mean.iter().zip(&c.std).map(|(m, s)| m - s).collect();
    let hi: Vec<f64> = c.mean.iter().zip(&c.std).map(|(m, s)| m + s).collect();
    Series::new(label, c.fractions.clone(), c.mean.clone())
        .with_band(lo, hi)
        .with_color(color)
}
