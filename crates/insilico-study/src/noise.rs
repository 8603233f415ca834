//! The noise assay: accuracy under Gaussian noise at a site, on a log scale of levels.

use crate::options::{at_least, positive, Options};
use crate::registry::{Assay, AssayKind};
use crate::study::Study;
use anyhow::{bail, Result};
use clap::Args;
use insilico_assays::noise::{log_levels, noise_curve, NoiseCurve};
use insilico_report::{write_csv, write_json, LinePlot, Series};
use serde::{Deserialize, Serialize};

/// Options of the noise assay (`insilico noise`, `[assays.noise]` of a sweep).
#[derive(Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseOptions {
    /// Smallest noise level, in units of each unit's standard deviation.
    #[arg(long, default_value_t = NoiseOptions::default().min_level)]
    pub min_level: f64,
    /// Largest noise level.
    #[arg(long, default_value_t = NoiseOptions::default().max_level)]
    pub max_level: f64,
    /// Levels, spaced evenly on a log scale.
    #[arg(long, default_value_t = NoiseOptions::default().levels)]
    pub levels: usize,
    /// Noise draws per level.
    #[arg(long, default_value_t = NoiseOptions::default().repeats)]
    pub repeats: usize,
}

impl Default for NoiseOptions {
    fn default() -> Self {
        Self {
            min_level: 0.01,
            max_level: 10.0,
            levels: 13,
            repeats: 3,
        }
    }
}

impl Options for NoiseOptions {
    const SECTION: &'static str = "noise";
    fn validate(&self) -> Result<()> {
        positive(Self::SECTION, "min_level", self.min_level)?;
        positive(Self::SECTION, "max_level", self.max_level)?;
        if self.max_level <= self.min_level {
            bail!(
                "noise.max_level = {} must be greater than noise.min_level = {}",
                self.max_level,
                self.min_level
            );
        }
        at_least(Self::SECTION, "levels", self.levels, 2)?;
        at_least(Self::SECTION, "repeats", self.repeats, 1)
    }
}

/// The noise assay in the registry.
pub struct Noise;

impl Assay for Noise {
    const KIND: AssayKind = AssayKind::Noise;
    const COMMAND: &'static str = "noise";
    const ABOUT: &'static str =
        "Accuracy under Gaussian noise at each site, on a log scale of noise levels";
    const LONG_ABOUT: &'static str =
        "At level s, unit u's activation becomes x + s * sigma_u * N(0, 1), sigma_u being \
        the unit's standard deviation over the data, so that every unit is perturbed in \
        proportion to its own range. A unit of a feature map is a channel: its sigma is the \
        population standard deviation over images and positions together, and the noise is \
        drawn independently at every position; a silent channel (sigma 0) gets none. Levels \
        are spaced evenly on a log scale. Writes \
        RUN/assays/noise/: noise.csv, noise.json and noise.png/.svg.";
    const EXAMPLES: &'static str =
        "Example:\n  insilico noise --run runs/demo --levels 13 --repeats 3";
    const RESULT_FILE: &'static str = "noise.json";
    type Options = NoiseOptions;
    type Output = Vec<NoiseCurve>;

    fn run(study: &Study, options: &NoiseOptions) -> Result<Vec<NoiseCurve>> {
        noise(study, options)
    }

    fn describe(curves: &Vec<NoiseCurve>) -> Vec<String> {
        curves
            .iter()
            .map(|c| {
                let half = c.mean.iter().position(|&a| a < c.clean / 2.0);
                format!(
                    "{:<12} clean {:.4}; accuracy halves at noise level {}",
                    c.site,
                    c.clean,
                    half.map(|i| format!("{:.3}", c.levels[i]))
                        .unwrap_or_else(|| format!(
                            "> {}",
                            c.levels.last().copied().unwrap_or(0.0)
                        ))
                )
            })
            .collect()
    }
}

/// Runs the noise assay on a study and writes its outputs.
pub fn noise(study: &Study, opts: &NoiseOptions) -> Result<Vec<NoiseCurve>> {
    opts.validate()?;
    let seed = study.seed();
    let levels = log_levels(opts.min_level, opts.max_level, opts.levels);
    let mut curves = Vec::new();
    for (i, site) in study.sites.iter().enumerate() {
        let cache = study.record(site)?;
        curves.push(noise_curve(
            &study.run.network,
            site,
            &cache,
            &study.examples.labels,
            &levels,
            opts.repeats,
            seed.wrapping_add(i as u64),
        )?);
    }
    let dir = study.out_dir("noise");
    let mut rows = Vec::new();
    let mut plot = LinePlot::new(
        &format!(
            "{} on {}: noise robustness ({} split)",
            study.run.config.model.name,
            study.run.data.dataset.name,
            study.split()
        ),
        "noise level (× unit standard deviation)",
        &format!("{} accuracy", study.split()),
    )
    .log_x(true)
    .y_range(0.0, 1.0);
    for (i, c) in curves.iter().enumerate() {
        for (r, acc) in c.accuracy.iter().enumerate() {
            for (l, a) in c.levels.iter().zip(acc) {
                rows.push(vec![
                    c.site.clone(),
                    r.to_string(),
                    format!("{l:.6}"),
                    format!("{a:.6}"),
                ]);
            }
        }
        let lo = c.mean.iter().zip(&c.std).map(|(m, s)| m - s).collect();
        let hi = c.mean.iter().zip(&c.std).map(|(m, s)| m + s).collect();
        plot = plot.series(
            Series::new(&c.site, c.levels.clone(), c.mean.clone())
                .with_band(lo, hi)
                .with_color(i)
                .with_markers(true),
        );
    }
    write_csv(
        &dir.join("noise.csv"),
        &["site", "repeat", "level", "accuracy"],
        &rows,
    )?;
    write_json(&dir.join("noise.json"), &curves)?;
    plot.save(&dir.join("noise"))?;
    Ok(curves)
}
