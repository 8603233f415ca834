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
    /// Equal-count bins for the mutual information (bits, plug-in estimate): responses are
    /// binned by rank, and tied responses share a bin, so a unit silent on most images
    /// fills fewer bins. The plug-in estimate is biased upwards by about (bins - 1)
    /// (classes - 1) / (2 n ln 2) bits (0.05 at 16 bins, 10 classes and 2,000 images).
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
        correlations between selectivity and importance: over every unit whose selectivity is \
        defined (silent units count, at 0 and 0, which pulls a rank correlation towards \
        agreement where many are silent), and over the active units only (active_* columns). \
        Writes RUN/assays/selectivity/: \
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
                let (c, a) = (&t.correlations, &t.active_correlations);
                format!(
                    "{:<12} mean selectivity {:.3}  selectivity vs importance: Spearman {:.3} (accuracy drop), {:.3} (max class drop), {:.3} (loss increase), n={}; active units only: {:.3}, {:.3}, {:.3}, n={}",
                    t.site,
                    insilico_assays::stats::mean(&t.selectivity),
                    c.spearman_drop,
                    c.spearman_max_class_drop,
                    c.spearman_loss_increase,
                    c.units,
                    a.spearman_drop,
                    a.spearman_max_class_drop,
                    a.spearman_loss_increase,
                    a.units
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
    /// Over every unit whose selectivity is defined; silent units count, at selectivity 0
    /// and importance 0.
    pub correlations: Correlations,
    /// Over the active units only. Silent units sit together at (0, 0) and pull a rank
    /// correlation towards agreement: at conv2.relu of cnn-small, where 21 of 32 units are
    /// silent, Spearman (accuracy drop) is 0.59 with them and -0.59 without.
    #[serde(default)]
    pub active_correlations: Correlations,
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

/// Undefined (a result written before the field existed).
impl Default for Correlations {
    fn default() -> Self {
        Self {
            units: 0,
            spearman_drop: f64::NAN,
            pearson_drop: f64::NAN,
            spearman_max_class_drop: f64::NAN,
            pearson_max_class_drop: f64::NAN,
            spearman_loss_increase: f64::NAN,
            pearson_loss_increase: f64::NAN,
        }
    }
}

impl Correlations {
    /// The six correlations, in `correlations.csv`'s column order.
    fn values(&self) -> [f64; 6] {
        [
            self.spearman_drop,
            self.pearson_drop,
            self.spearman_max_class_drop,
            self.pearson_max_class_drop,
            self.spearman_loss_increase,
            self.pearson_loss_increase,
        ]
    }
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
        let defined = |u: usize| selectivity[u].is_finite();
        let correlations = correlate(&selectivity, &importance, defined);
        let active_correlations = correlate(&selectivity, &importance, |u| {
            defined(u) && !tuning.selectivity[u].silent
        });
        out.push(SiteTuning {
            site: site.clone(),
            selectivity,
            tuning,
            importance,
            correlations,
            active_correlations,
        });
    }
    Ok(out)
}

/// Correlations over the units `keep` admits.
fn correlate(
    selectivity: &[f64],
    imp: &UnitImportance,
    keep: impl Fn(usize) -> bool,
) -> Correlations {
    let keep: Vec<usize> = (0..selectivity.len()).filter(|&u| keep(u)).collect();
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
        let mut row = vec![t.site.clone()];
        for c in [&t.correlations, &t.active_correlations] {
            row.push(c.units.to_string());
            row.extend(c.values().iter().map(|v| format!("{v:.6}")));
        }
        corr.push(row);
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
        "active_units",
        "active_spearman_drop",
        "active_pearson_drop",
        "active_spearman_max_class_drop",
        "active_pearson_max_class_drop",
        "active_spearman_loss_increase",
        "active_pearson_loss_increase",
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
                // Every digit: a loss increase can be 1e-10, and six decimals would tie it
                // with the silent units' zeros, so that the file would give another
                // Spearman correlation than correlations.csv.
                t.importance.drop[u].to_string(),
                t.importance.max_class_drop[u].to_string(),
                t.importance.loss_increase[u].to_string(),
            ]
        })
        .collect()
}

/// The selectivity histogram and the selectivity-importance scatters of one site.
fn draw_site(study: &Study, t: &SiteTuning) -> Result<()> {
    let dir = study.out_dir("selectivity");
    let (c, a) = (&t.correlations, &t.active_correlations);
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
        "Spearman ρ = {:.2} (overall), {:.2} (max class); n = {}\nactive units only: {:.2}, {:.2}; n = {}",
        c.spearman_drop, c.spearman_max_class_drop, c.units,
        a.spearman_drop, a.spearman_max_class_drop, a.units
    ))
    .save(&dir.join(format!("scatter_{}", t.site)))?;
    Scatter::new(
        &format!("{who}: selectivity vs importance (loss)"),
        "class selectivity index",
        "increase of cross-entropy when ablated",
    )
    .group(&t.site, pts(&t.importance.loss_increase))
    .note(&format!(
        "Spearman ρ = {:.2}; n = {}\nactive units only: {:.2}; n = {}",
        c.spearman_loss_increase, c.units, a.spearman_loss_increase, a.units
    ))
    .save(&dir.join(format!("scatter_loss_{}", t.site)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_units_at_the_origin_can_reverse_the_rank_correlation() {
        // Three active units whose importance falls as selectivity rises (Spearman -1),
        // and four silent ones at (0, 0), below every active unit on both axes: with them
        // the ranks mostly agree. Over all seven units the ranks (ties averaged) are 5, 6,
        // 7, 2.5 x 4 for selectivity and 7, 6, 5, 2.5 x 4 for importance, both of mean 4:
        // the centred products sum to 3 + 4 + 3 + 4 * 2.25 = 19 and each side's squares to
        // 1 + 4 + 9 + 4 * 2.25 = 23, so Spearman (Pearson on ranks) is 19 / 23.
        let selectivity = [0.2, 0.5, 0.8, 0.0, 0.0, 0.0, 0.0];
        let drop = vec![0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0];
        let importance = UnitImportance {
            site: "s".into(),
            unablated: 1.0,
            unablated_per_class: vec![1.0],
            drop: drop.clone(),
            class_drop: vec![vec![0.0]; 7],
            max_class_drop: drop.clone(),
            loss_increase: drop,
        };
        let all = correlate(&selectivity, &importance, |_| true);
        let active = correlate(&selectivity, &importance, |u| u < 3);
        assert_eq!((all.units, active.units), (7, 3));
        assert!((all.spearman_drop - 19.0 / 23.0).abs() < 1e-12);
        assert!((active.spearman_drop + 1.0).abs() < 1e-12);
    }
}
