//! The selectivity assay: class selectivity, class information and single-unit
//! importance per unit, and how well selectivity predicts importance.

use crate::options::{at_least, Options};
use crate::registry::{Assay, AssayKind};
use crate::study::Study;
use anyhow::Result;
use clap::Args;
use insilico_assays::ablation::{
    replacement_values, single_unit_importance, Replacement, UnitImportance,
};
use insilico_assays::masks::MaskEvaluator;
use insilico_assays::selectivity::{site_selectivity, Responses, SiteSelectivity};
use insilico_assays::stats::{nullable, pearson, spearman};
use insilico_engine::eval::to_vec;
use insilico_report::{write_csv, write_json, Histogram, Scatter};
use serde::{Deserialize, Serialize};

/// Options of the selectivity assay (`insilico selectivity`, `[assays.selectivity]`).
#[derive(Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelectivityOptions {
    /// Replacement used for single-unit importance: zero or mean.
    #[arg(long, default_value_t = SelectivityOptions::default().value)]
    pub value: Replacement,
    /// Equal-count bins for the mutual information.
    #[arg(long, default_value_t = SelectivityOptions::default().bins)]
    pub bins: usize,
}

impl Default for SelectivityOptions {
    fn default() -> Self {
        Self {
            value: Replacement::Zero,
            bins: 16,
        }
    }
}

impl Options for SelectivityOptions {
    const SECTION: &'static str = "selectivity";
    fn validate(&self) -> Result<()> {
        at_least(Self::SECTION, "bins", self.bins, 2)
    }
}

/// The selectivity assay in the registry.
pub struct Selectivity;

impl Assay for Selectivity {
    const KIND: AssayKind = AssayKind::Selectivity;
    const COMMAND: &'static str = "selectivity";
    const ABOUT: &'static str =
        "Class selectivity, class information and single-unit importance of every unit";
    const LONG_ABOUT: &'static str =
        "For every unit of the chosen sites: the class selectivity index \
        (mu_max - mu_-max)/(mu_max + mu_-max) of Morcos et al. 2018 (channels averaged over \
        space; 0 for silent units, NaN for negative responses), the mutual information between \
        its binned response and the class, and its importance (Zhou et al. 2018): the drop in \
        overall and per-class accuracy when it alone is silenced. Then the Spearman and Pearson \
        correlations between selectivity and importance. Writes RUN/assays/selectivity/: \
        units.csv, correlations.csv, selectivity.json, hist_<site>.png/.svg and \
        scatter_<site>.png/.svg.";
    const EXAMPLES: &'static str = "Example:\n  insilico selectivity --run runs/demo --split test";
    const RESULT_FILE: &'static str = "selectivity.json";
    type Options = SelectivityOptions;
    type Output = Vec<SiteTuning>;

    fn run(study: &Study, options: &SelectivityOptions) -> Result<Vec<SiteTuning>> {
        selectivity(study, options)
    }

    fn describe(tuned: &Vec<SiteTuning>) -> Vec<String> {
        tuned
            .iter()
            .map(|t| {
                let c = &t.correlations;
                format!(
                    "{:<12} mean selectivity {:.3}  selectivity vs importance: Spearman {:.3} (accuracy drop), {:.3} (max class drop), {:.3} (loss increase), n={}",
                    t.site,
                    insilico_assays::stats::mean(&t.selectivity),
                    c.spearman_drop,
                    c.spearman_max_class_drop,
                    c.spearman_loss_increase,
                    c.units
                )
            })
            .collect()
    }
}

/// Runs the selectivity assay on a study and writes its outputs.
pub fn selectivity(study: &Study, opts: &SelectivityOptions) -> Result<Vec<SiteTuning>> {
    opts.validate()?;
    let tuned = tune(study, opts.value, opts.bins)?;
    write_outputs(study, &tuned)?;
    Ok(tuned)
}

/// Selectivity and importance of one site's units.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteTuning {
    pub site: String,
    #[serde(deserialize_with = "nullable")]
    pub selectivity: Vec<f64>,
    pub tuning: SiteSelectivity,
    pub importance: UnitImportance,
    pub correlations: Correlations,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Correlations {
    pub units: usize,
    #[serde(deserialize_with = "nullable")]
    pub spearman_drop: f64,
    #[serde(deserialize_with = "nullable")]
    pub pearson_drop: f64,
    #[serde(deserialize_with = "nullable")]
    pub spearman_max_class_drop: f64,
    #[serde(deserialize_with = "nullable")]
    pub pearson_max_class_drop: f64,
    #[serde(deserialize_with = "nullable")]
    pub spearman_loss_increase: f64,
    #[serde(deserialize_with = "nullable")]
    pub pearson_loss_increase: f64,
}

/// Selectivity (default MI bins) and importance for every site of the study.
pub fn importance_and_selectivity(study: &Study, value: Replacement) -> Result<Vec<SiteTuning>> {
    tune(study, value, SelectivityOptions::default().bins)
}

fn tune(study: &Study, value: Replacement, bins: usize) -> Result<Vec<SiteTuning>> {
    let labels = &study.examples.labels;
    let k = study.num_classes();
    let mut out = Vec::new();
    for site in &study.sites {
        let cache = study.record(site)?;
        let means = to_vec(cache.unit_means());
        let responses = Responses {
            values: &means,
            units: cache.units(),
            labels,
            num_classes: k,
        };
        let tuning = site_selectivity(site, &responses, bins);
        let repl = replacement_values(&cache, value);
        let eval = MaskEvaluator::new(
            &study.run.network,
            site,
            cache,
            labels.clone(),
            &repl,
            &study.run.compute.device,
        )?;
        let importance = single_unit_importance(&eval, site, labels, k)?;
        let selectivity: Vec<f64> = tuning.selectivity.iter().map(|s| s.index).collect();
        let correlations = correlate(&selectivity, &importance);
        out.push(SiteTuning {
            site: site.clone(),
            selectivity,
            tuning,
            importance,
            correlations,
        });
    }
    Ok(out)
}

/// Correlations over the units whose selectivity is defined.
fn correlate(selectivity: &[f64], imp: &UnitImportance) -> Correlations {
    let keep: Vec<usize> = (0..selectivity.len())
        .filter(|&u| selectivity[u].is_finite())
        .collect();
    let s: Vec<f64> = keep.iter().map(|&u| selectivity[u]).collect();
    let d: Vec<f64> = keep.iter().map(|&u| imp.drop[u]).collect();
    let c: Vec<f64> = keep.iter().map(|&u| imp.max_class_drop[u]).collect();
    let l: Vec<f64> = keep.iter().map(|&u| imp.loss_increase[u]).collect();
    Correlations {
        units: keep.len(),
        spearman_drop: spearman(&s, &d),
        pearson_drop: pearson(&s, &d),
        spearman_max_class_drop: spearman(&s, &c),
        pearson_max_class_drop: pearson(&s, &c),
        spearman_loss_increase: spearman(&s, &l),
        pearson_loss_increase: pearson(&s, &l),
    }
}

/// `units.csv`, `correlations.csv`, `selectivity.json` and each site's figures.
pub fn write_outputs(study: &Study, tuned: &[SiteTuning]) -> Result<()> {
    let dir = study.out_dir("selectivity");
    let mut rows = Vec::new();
    let mut corr = Vec::new();
    for t in tuned {
        rows.extend(unit_rows(t));
        let c = &t.correlations;
        corr.push(vec![
            t.site.clone(),
            c.units.to_string(),
            format!("{:.6}", c.spearman_drop),
            format!("{:.6}", c.pearson_drop),
            format!("{:.6}", c.spearman_max_class_drop),
            format!("{:.6}", c.pearson_max_class_drop),
            format!("{:.6}", c.spearman_loss_increase),
            format!("{:.6}", c.pearson_loss_increase),
        ]);
        draw_site(study, t)?;
    }
    let units_header = [
        "site",
        "unit",
        "selectivity",
        "preferred_class",
        "silent",
        "mutual_information_bits",
        "importance_drop",
        "importance_max_class_drop",
        "importance_loss_increase",
    ];
    write_csv(&dir.join("units.csv"), &units_header, &rows)?;
    let corr_header = [
        "site",
        "units",
        "spearman_drop",
        "pearson_drop",
        "spearman_max_class_drop",
        "pearson_max_class_drop",
        "spearman_loss_increase",
        "pearson_loss_increase",
    ];
    write_csv(&dir.join("correlations.csv"), &corr_header, &corr)?;
    write_json(&dir.join("selectivity.json"), &tuned)?;
    Ok(())
}

/// One row per unit of a site for `units.csv`.
fn unit_rows(t: &SiteTuning) -> Vec<Vec<String>> {
    (0..t.selectivity.len())
        .map(|u| {
            let s = &t.tuning.selectivity[u];
            vec![
                t.site.clone(),
                u.to_string(),
                format!("{:.6}", s.index),
                s.preferred_class.to_string(),
                s.silent.to_string(),
                format!("{:.6}", t.tuning.mutual_information[u]),
                format!("{:.6}", t.importance.drop[u]),
                format!("{:.6}", t.importance.max_class_drop[u]),
                format!("{:.6}", t.importance.loss_increase[u]),
            ]
        })
        .collect()
}

/// The selectivity histogram and the selectivity-importance scatters of one site.
fn draw_site(study: &Study, t: &SiteTuning) -> Result<()> {
    let dir = study.out_dir("selectivity");
    let c = &t.correlations;
    let who = format!("{} {}", study.run.config.model.name, t.site);
    let defined: Vec<f64> = t
        .selectivity
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    Histogram::new(
        &format!("{who}: class selectivity"),
        "class selectivity index",
        "units",
    )
    .group(&t.site, defined)
    .save(&dir.join(format!("hist_{}", t.site)))?;
    let pts = |imp: &[f64]| -> Vec<(f64, f64)> {
        t.selectivity
            .iter()
            .zip(imp)
            .filter(|(s, _)| s.is_finite())
            .map(|(s, d)| (*s, *d))
            .collect()
    };
    Scatter::new(
        &format!("{who}: selectivity vs importance"),
        "class selectivity index",
        "accuracy drop when ablated",
    )
    .group("overall drop", pts(&t.importance.drop))
    .group("max class drop", pts(&t.importance.max_class_drop))
    .note(&format!(
        "Spearman ρ = {:.2} (overall), {:.2} (max class); n = {}",
        c.spearman_drop, c.spearman_max_class_drop, c.units
    ))
    .save(&dir.join(format!("scatter_{}", t.site)))?;
    Scatter::new(
        &format!("{who}: selectivity vs importance (loss)"),
        "class selectivity index",
        "increase of cross-entropy when ablated",
    )
    .group(&t.site, pts(&t.importance.loss_increase))
    .note(&format!(
        "Spearman ρ = {:.2}; n = {}",
        c.spearman_loss_increase, c.units
    ))
    .save(&dir.join(format!("scatter_loss_{}", t.site)))?;
    Ok(())
}
