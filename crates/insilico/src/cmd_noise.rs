//! `insilico noise`: accuracy under Gaussian noise at a site.

use crate::study::{Study, StudyArgs};
use anyhow::Result;
use clap::Args;
use insilico_assays::noise::{log_levels, noise_curve, NoiseCurve};
use insilico_report::{write_csv, write_json, LinePlot, Series};
use serde::{Deserialize, Serialize};

/// Options of the noise assay (also `[assays.noise]` in a sweep file).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseOptions {
    /// Smallest and largest noise level, in units of each unit's standard deviation.
    pub min_level: f64,
    pub max_level: f64,
    pub levels: usize,
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

#[derive(Args)]
#[command(
    about = "Accuracy under Gaussian noise at each site, on a log scale of noise levels",
    long_about = "At level s, unit u's activation becomes x + s * sigma_u * N(0, 1), sigma_u being \
        the unit's standard deviation over the data, so that every unit is perturbed in \
        proportion to its own range. Levels are spaced evenly on a log scale. Writes \
        RUN/assays/noise/: noise.csv, noise.json and noise.png/.svg.",
    after_help = "Example:\n  insilico noise --run runs/demo --levels 13 --repeats 3"
)]
pub struct NoiseArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    #[arg(long, default_value_t = 0.01)]
    pub min_level: f64,
    #[arg(long, default_value_t = 10.0)]
    pub max_level: f64,
    #[arg(long, default_value_t = 13)]
    pub levels: usize,
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

pub fn run(args: NoiseArgs) -> Result<()> {
    let study = Study::open(&args.study)?;
    let opts = NoiseOptions {
        min_level: args.min_level,
        max_level: args.max_level,
        levels: args.levels,
        repeats: args.repeats,
    };
    let curves = noise(&study, &opts, args.study.seed)?;
    for c in &curves {
        let half = c.mean.iter().position(|&a| a < c.clean / 2.0);
        println!(
            "{:<12} clean {:.4}; accuracy halves at noise level {}",
            c.site,
            c.clean,
            half.map(|i| format!("{:.3}", c.levels[i]))
                .unwrap_or_else(|| format!("> {}", opts.max_level))
        );
    }
    println!("outputs in {}/", study.out_dir("noise").display());
    Ok(())
}

pub fn noise(study: &Study, opts: &NoiseOptions, seed: u64) -> Result<Vec<NoiseCurve>> {
    anyhow::ensure!(
        opts.min_level > 0.0 && opts.max_level > opts.min_level && opts.levels >= 2,
        "noise levels need 0 < min_level < max_level and at least 2 levels"
    );
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
            study.run.config.model.name, study.run.data.dataset.name, study.split
        ),
        "noise level (× unit standard deviation)",
        &format!("{} accuracy", study.split),
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
