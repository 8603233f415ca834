//! The receptive-field assay: what drives each unit, three ways. Activation
//! maximization (gradient ascent on the input, one unit per batch row), the top-k dataset
//! exemplars of each unit, and reverse correlation (the spike-triggered average of white
//! noise).

use crate::options::{at_least, finite, non_negative, positive, Options};
use crate::registry::{read, Assay, AssayKind, Figure};
use crate::study::{Study, StudyOptions};
use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use clap::{Args, ValueEnum};
use insilico_assays::receptive::{
    default_sites, exemplars, objective_values, spike_triggered_average, synthesize,
    unit_objectives, Exemplars, ImageSpace, Objective, Param, Range, Settings, Sta, Transforms,
};
use insilico_engine::{Plan, RunDir, Shape};
use insilico_report::{
    montage, save_png, side_by_side, tile_to_image, write_json, write_npy, Scaling, Tile,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

/// What a unit of a feature map is, for the objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UnitObjective {
    /// The centre position of a channel: its receptive field.
    Neuron,
    /// The spatial mean of a channel: its feature as a texture (for a linear site such as
    /// conv1 that is only the filter's sum times the image mean).
    Channel,
}

/// Which units of a site: `"all"` or a list of indices (TOML: `units = "all"` or
/// `units = [0, 3, 7]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Units {
    Named(String),
    List(Vec<usize>),
}

impl Default for Units {
    fn default() -> Self {
        Units::Named("all".into())
    }
}

impl FromStr for Units {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.trim() == "all" || s.trim().starts_with("first:") {
            return Ok(Units::Named(s.trim().into()));
        }
        let list = s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--units `{s}`: use all or indices such as 0,3,7"))?;
        Ok(Units::List(list))
    }
}

impl fmt::Display for Units {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Units::Named(n) => f.write_str(n),
            Units::List(list) => {
                let parts: Vec<String> = list.iter().map(usize::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl Units {
    pub fn resolve(&self, site: &str, count: usize) -> Result<Vec<usize>> {
        match self {
            Units::Named(n) if n == "all" => Ok((0..count).collect()),
            Units::Named(n) => match n.strip_prefix("first:").map(str::parse::<usize>) {
                // The first N units, or all of them where a site has fewer.
                Some(Ok(k)) => Ok((0..k.min(count)).collect()),
                _ => bail!("units = `{n}`: use \"all\", \"first:N\" or a list of indices"),
            },
            Units::List(list) => {
                if let Some(bad) = list.iter().find(|&&u| u >= count) {
                    bail!("unit {bad} does not exist: `{site}` has {count} units");
                }
                Ok(list.clone())
            }
        }
    }
}

/// Options of the receptive-field assay (`insilico receptive-fields`,
/// `[assays.receptive_fields]` of a sweep). The synthesis defaults are the engine's
/// (`Settings::default()`), written once.
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceptiveOptions {
    /// Sites to map (a sweep's; on the command line --sites). Default: the study's
    /// explicit sites, else every conv and linear output before its nonlinearity.
    #[arg(skip)]
    pub sites: Option<Vec<String>>,
    /// Units: all, first:N, or a comma-separated list of indices.
    #[arg(long, default_value_t = ReceptiveOptions::default().units)]
    pub units: Units,
    /// Objective for feature maps: neuron (the centre position of a channel) or channel
    /// (its spatial mean).
    #[arg(long, value_enum, default_value_t = ReceptiveOptions::default().objective)]
    pub objective: UnitObjective,
    /// Optimization steps.
    #[arg(long, default_value_t = ReceptiveOptions::default().steps)]
    pub steps: usize,
    /// Image parameterization for vectors and channel objectives: pixel or fourier.
    #[arg(long, default_value_t = ReceptiveOptions::default().param)]
    pub param: Param,
    /// Adam learning rate.
    #[arg(long, default_value_t = ReceptiveOptions::default().lr)]
    pub lr: f32,
    /// Roll by up to this many pixels each step.
    #[arg(long, default_value_t = ReceptiveOptions::default().jitter)]
    pub jitter: usize,
    /// Shift with mean fill by up to this many pixels each step.
    #[arg(long, default_value_t = ReceptiveOptions::default().pad)]
    pub pad: usize,
    /// Random scale in [1 - scale, 1 + scale].
    #[arg(long, default_value_t = ReceptiveOptions::default().scale)]
    pub scale: f32,
    /// Random rotation in [-rotate, rotate] degrees.
    #[arg(long, default_value_t = ReceptiveOptions::default().rotate)]
    pub rotate: f32,
    /// Weight of the mean square of the normalized image.
    #[arg(long, default_value_t = ReceptiveOptions::default().l2)]
    pub l2: f32,
    /// Weight of the total variation.
    #[arg(long, default_value_t = ReceptiveOptions::default().tv)]
    pub tv: f32,
    /// Weight of the pull towards the blurred image.
    #[arg(long, default_value_t = ReceptiveOptions::default().blur)]
    pub blur: f32,
    /// Parameterization for neuron objectives on feature maps. A neuron's receptive field
    /// is small and fixed in place (5x5 pixels at conv1): the Fourier basis spreads energy
    /// over pixels it never sees, so pixels are the default there.
    #[arg(long, default_value_t = ReceptiveOptions::default().neuron_param)]
    pub neuron_param: Param,
    /// Random transforms for neuron objectives on feature maps (off by default: a shift
    /// of a few pixels smears a 5x5 receptive field).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = ReceptiveOptions::default().neuron_transforms)]
    pub neuron_transforms: bool,
    /// Decorrelated colour for RGB datasets.
    #[arg(long, action = clap::ArgAction::Set, default_value_t = ReceptiveOptions::default().decorrelate)]
    pub decorrelate: bool,
    /// Standard deviation of the random initial parameters.
    #[arg(long, default_value_t = ReceptiveOptions::default().init_std)]
    pub init_std: f32,
    /// Most rows optimized in one batch.
    #[arg(long, default_value_t = ReceptiveOptions::default().batch)]
    pub batch: usize,
    /// Dataset exemplars shown per unit.
    #[arg(long, default_value_t = ReceptiveOptions::default().exemplars)]
    pub exemplars: usize,
    /// White-noise images for reverse correlation (0 skips it).
    #[arg(long, default_value_t = ReceptiveOptions::default().revcorr_samples)]
    pub revcorr_samples: usize,
}

impl Default for ReceptiveOptions {
    fn default() -> Self {
        let s = Settings::default();
        Self {
            sites: None,
            units: Units::default(),
            objective: UnitObjective::Neuron,
            steps: s.steps,
            param: s.param,
            lr: s.lr,
            jitter: s.transforms.jitter,
            pad: s.transforms.pad,
            scale: s.transforms.scale,
            rotate: s.transforms.rotate,
            l2: s.l2,
            tv: s.tv,
            blur: s.blur,
            neuron_param: Param::Pixel,
            neuron_transforms: false,
            decorrelate: s.decorrelate,
            init_std: s.init_std,
            batch: 256,
            exemplars: 8,
            revcorr_samples: 20_000,
        }
    }
}

impl Options for ReceptiveOptions {
    const SECTION: &'static str = "receptive_fields";
    fn validate(&self) -> Result<()> {
        const S: &str = ReceptiveOptions::SECTION;
        at_least(S, "steps", self.steps, 1)?;
        positive(S, "lr", self.lr as f64)?;
        for (field, v) in [
            ("scale", self.scale),
            ("rotate", self.rotate),
            ("l2", self.l2),
            ("tv", self.tv),
            ("blur", self.blur),
            ("init_std", self.init_std),
        ] {
            non_negative(S, field, v as f64)?;
        }
        finite(S, "scale", self.scale as f64)?;
        if self.scale >= 1.0 {
            bail!(
                "{S}.scale = {}: must be below 1 (images are scaled by 1 ± scale)",
                self.scale
            );
        }
        at_least(S, "batch", self.batch, 1)?;
        at_least(S, "exemplars", self.exemplars, 1)?;
        if let Units::Named(n) = &self.units {
            if n != "all"
                && n.strip_prefix("first:")
                    .map(str::parse::<usize>)
                    .is_none_or(|k| k.is_err())
            {
                bail!("{S}.units = `{n}`: use \"all\", \"first:N\" or a list of indices");
            }
        }
        Ok(())
    }
}

impl ReceptiveOptions {
    /// The synthesis settings for a site: neuron objectives on feature maps take their
    /// own parameterization and transforms.
    pub fn settings(&self, neuron_on_map: bool) -> Settings {
        let transforms = Transforms {
            jitter: self.jitter,
            pad: self.pad,
            scale: self.scale,
            rotate: self.rotate,
        };
        let (param, transforms) = match (neuron_on_map, self.neuron_transforms) {
            (false, _) => (self.param, transforms),
            (true, true) => (self.neuron_param, transforms),
            (true, false) => (self.neuron_param, Transforms::none()),
        };
        Settings {
            steps: self.steps,
            lr: self.lr,
            param,
            range: Range::Sigmoid,
            decorrelate: self.decorrelate,
            init_std: self.init_std,
            transforms,
            l2: self.l2,
            tv: self.tv,
            blur: self.blur,
            ..Settings::default()
        }
    }

    /// The sites mapped: these options' own, else the study's explicit sites, else every
    /// conv and linear output (the same rule on the command line, in a sweep and in the
    /// report).
    pub fn resolve_sites(&self, plan: &Plan, study: &StudyOptions) -> Vec<String> {
        match &self.sites {
            Some(sites) => sites.clone(),
            None if !study.sites.is_empty() => study.sites.clone(),
            None => default_sites(plan),
        }
    }
}

/// One unit's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnitResult {
    pub unit: usize,
    pub label: String,
    /// The objective on the unit's synthesized image (no transform).
    pub synthesized: f32,
    /// The objective on its best dataset image.
    pub best_dataset: f32,
    pub best_dataset_index: Option<usize>,
    /// Top-k dataset examples (indices into the study's examples), best first.
    pub exemplars: Vec<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteResult {
    pub site: String,
    pub shape: String,
    pub units: Vec<UnitResult>,
    /// Units whose synthesized image beats their best dataset image.
    pub beats_dataset: usize,
    pub synthesis_seconds: f64,
    pub revcorr_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceptiveSummary {
    pub options: ReceptiveOptions,
    pub seed: u64,
    pub split: String,
    pub examples: usize,
    pub sites: Vec<SiteResult>,
}

/// The receptive-field assay in the registry.
pub struct ReceptiveFields;

impl Assay for ReceptiveFields {
    const KIND: AssayKind = AssayKind::ReceptiveFields;
    const COMMAND: &'static str = "receptive-fields";
    const ABOUT: &'static str =
        "Receptive fields: activation maximization, dataset exemplars and reverse correlation";
    const LONG_ABOUT: &'static str =
        "For every unit of the chosen sites (default: every conv and linear layer \
        output, before its relu, including logits): an image synthesized by gradient ascent \
        on the input (Adam; pixel or 1/f Fourier parameterization; random jitter, pad, scale \
        and rotation; L2 and total-variation penalties; pixels kept in [0, 1] by a sigmoid), \
        its top-k dataset exemplars by the same objective (by default the centre neuron of a \
        channel; --objective channel for its spatial mean), and its reverse-correlation map \
        (spike-triggered average of white noise, for the centre neuron of a channel). All units \
        of a site are optimized in one batch. Writes RUN/assays/receptive_fields/: <site>.png \
        (montage), <site>/unit_NNN.png, <site>_exemplars.png, <site>_revcorr.png, <site>.npy \
        (images) and summary.json.";
    const EXAMPLES: &'static str = "Example:\n  insilico receptive-fields --run runs/demo --sites conv1,conv2,logits --param fourier";
    const RESULT_FILE: &'static str = "summary.json";
    type Options = ReceptiveOptions;
    type Output = ReceptiveSummary;

    fn run(study: &Study, options: &ReceptiveOptions) -> Result<ReceptiveSummary> {
        receptive_fields(study, options)
    }

    fn describe(summary: &ReceptiveSummary) -> Vec<String> {
        summary
            .sites
            .iter()
            .map(|s| {
                format!(
                    "{:<10} {:>4} units  synthesized beats best dataset image for {}/{}  ({:.1} s ascent, {:.1} s reverse correlation)",
                    s.site,
                    s.units.len(),
                    s.beats_dataset,
                    s.units.len(),
                    s.synthesis_seconds,
                    s.revcorr_seconds
                )
            })
            .collect()
    }

    fn check(options: &ReceptiveOptions, plan: &Plan, study: &StudyOptions) -> Result<()> {
        for site in options.resolve_sites(plan, study) {
            let shape = plan.shape_at(&site).context("receptive_fields.sites")?;
            options
                .units
                .resolve(&site, shape.units())
                .context("receptive_fields.units")?;
        }
        Ok(())
    }

    fn gallery(run: &RunDir) -> Vec<Figure> {
        let Ok(Some(summary)) = read::<Self>(run) else {
            return Vec::new();
        };
        let dir = run.assay_dir(Self::KIND.name());
        summary
            .sites
            .iter()
            .map(|s| {
                (
                    dir.join(format!("{}.png", s.site)),
                    format!("{}: receptive fields (activation maximization)", s.site),
                )
            })
            .filter(|(p, _)| p.exists())
            .collect()
    }
}

fn unit_label(site: &str, unit: usize, class_names: &[String]) -> String {
    if site == "logits" {
        // MNIST's class names are the digits themselves: "3", not "3 3".
        match class_names.get(unit) {
            Some(name) if *name == unit.to_string() => return format!("class {name}"),
            Some(name) => return format!("{unit} {name}"),
            None => {}
        }
    }
    format!("unit {unit}")
}

/// One site's three maps, before they are drawn.
struct SiteMaps {
    site: String,
    shape: Shape,
    units: Vec<usize>,
    labels: Vec<String>,
    neuron_on_map: bool,
    settings: Settings,
    /// Synthesized images `[units, c, h, w]` in [0, 1], and their objective values.
    pixels: Vec<f32>,
    synthesized: Vec<f32>,
    exemplars: Exemplars,
    sta: Option<Sta>,
    synthesis_seconds: f64,
    revcorr_seconds: f64,
}

/// Maps the receptive fields of the sites [`ReceptiveOptions::resolve_sites`] names and
/// writes them to `RUN/assays/receptive_fields/`.
pub fn receptive_fields(study: &Study, opts: &ReceptiveOptions) -> Result<ReceptiveSummary> {
    opts.validate()?;
    let sites = opts.resolve_sites(study.run.network.plan(), &study.options);
    let mut results = Vec::new();
    for site in &sites {
        let maps = map_site(study, opts, site)?;
        draw_site(study, opts, &maps)?;
        results.push(site_result(&maps));
    }
    let summary = ReceptiveSummary {
        options: ReceptiveOptions {
            sites: Some(sites),
            ..opts.clone()
        },
        seed: study.seed(),
        split: study.split().to_string(),
        examples: study.examples.len(),
        sites: results,
    };
    write_json(
        &study.out_dir("receptive_fields").join("summary.json"),
        &summary,
    )?;
    Ok(summary)
}

/// Activation maximization, `batch` units at a time; dataset exemplars by the same
/// objective; reverse correlation of the centre neuron (the unit itself for a vector).
fn map_site(study: &Study, opts: &ReceptiveOptions, site: &str) -> Result<SiteMaps> {
    let net = &study.run.network;
    let device = &study.run.compute.device;
    let dataset = &study.run.data.dataset;
    let space = ImageSpace::of(dataset);
    let seed = study.seed();
    let shape = net.plan().shape_at(site)?;
    let units = opts.units.resolve(site, shape.units())?;
    let neuron = opts.objective == UnitObjective::Neuron;
    let objectives = unit_objectives(site, shape, &units, neuron);
    let neuron_on_map = neuron && matches!(shape, Shape::Map { .. });
    let settings = opts.settings(neuron_on_map);
    let t0 = Instant::now();
    let (mut pixels, mut synthesized) = (Vec::new(), Vec::new());
    for (i, chunk) in objectives.chunks(opts.batch).enumerate() {
        let s = synthesize(
            net,
            &space,
            chunk,
            None,
            &settings,
            seed.wrapping_add(i as u64),
            device,
        )?;
        pixels.extend(s.pixels);
        synthesized.extend(s.objective);
    }
    let synthesis_seconds = t0.elapsed().as_secs_f64();
    let exemplars = exemplars(net, &study.examples, &objectives, opts.exemplars, device)?;
    let t1 = Instant::now();
    let sta = if opts.revcorr_samples > 0 {
        let centre = unit_objectives(site, shape, &units, true);
        Some(reverse_correlation(
            study,
            &centre,
            space.shape,
            opts.revcorr_samples,
        )?)
    } else {
        None
    };
    Ok(SiteMaps {
        site: site.to_string(),
        shape,
        labels: units
            .iter()
            .map(|&u| unit_label(site, u, &dataset.class_names))
            .collect(),
        units,
        neuron_on_map,
        settings,
        pixels,
        synthesized,
        exemplars,
        sta,
        synthesis_seconds,
        revcorr_seconds: t1.elapsed().as_secs_f64(),
    })
}

/// The spike-triggered average of white noise for each objective.
fn reverse_correlation(
    study: &Study,
    objectives: &[Objective],
    shape: [usize; 3],
    samples: usize,
) -> Result<Sta> {
    let net = &study.run.network;
    let device = &study.run.compute.device;
    // The sites were checked when the objectives were built; an error here is kept and
    // returned after the average rather than unwinding through it.
    let mut failure = None;
    let respond = |x: &Tensor<4>| {
        let b = x.dims()[0];
        let v = objective_values(net, objectives, x.clone(), device).unwrap_or_else(|e| {
            failure.get_or_insert(e);
            vec![0.0; b * objectives.len()]
        });
        Tensor::<2>::from_data(TensorData::new(v, [b, objectives.len()]), device)
    };
    let sta = spike_triggered_average(respond, shape, samples, 1000, 1.0, study.seed(), device);
    match failure {
        Some(e) => Err(e),
        None => Ok(sta),
    }
}

/// The montage, one PNG per unit, the exemplar rows, the reverse-correlation montage
/// and the NPY arrays of one site.
fn draw_site(study: &Study, opts: &ReceptiveOptions, m: &SiteMaps) -> Result<()> {
    let dir = study.out_dir("receptive_fields");
    let site = &m.site;
    let [c, h, w] = ImageSpace::of(&study.run.data.dataset).shape;
    let n = c * h * w;
    let image = |i: usize| m.pixels[i * n..(i + 1) * n].to_vec();
    let tiles: Vec<Tile> = (0..m.units.len())
        .map(|i| Tile::new(image(i), c, h, w, m.labels[i].clone()))
        .collect();
    let cols = ((m.units.len() as f64).sqrt().ceil() as usize).max(4);
    let title = format!(
        "{} {site}: activation maximization ({}, {:?}, {} steps)",
        study.run.config.model.name,
        if m.neuron_on_map {
            "centre neuron"
        } else {
            "unit"
        },
        m.settings.param,
        opts.steps
    )
    .to_lowercase();
    let fixed = Scaling::Fixed(0.0, 1.0);
    save_png(
        &montage(&tiles, cols, fixed, 4, Some(&title)),
        &dir.join(format!("{site}.png")),
    )?;
    for (tile, &u) in tiles.iter().zip(&m.units) {
        save_png(
            &tile_to_image(tile, fixed, 8),
            &dir.join(site).join(format!("unit_{u:03}.png")),
        )?;
    }
    write_npy(
        &dir.join(format!("{site}.npy")),
        &[m.units.len(), c, h, w],
        &m.pixels,
    )?;
    let pixel_values = ImageSpace::of(&study.run.data.dataset).denormalize(&study.examples.images);
    let rows: Vec<(String, Vec<Tile>)> = (0..m.units.len())
        .map(|i| {
            let mut row = vec![Tile::new(
                image(i),
                c,
                h,
                w,
                format!("{:.2}", m.synthesized[i]),
            )];
            for (k, &e) in m.exemplars.index[i].iter().enumerate() {
                let px = pixel_values[e * n..(e + 1) * n].to_vec();
                row.push(Tile::new(
                    px,
                    c,
                    h,
                    w,
                    format!("{:.2}", m.exemplars.value[i][k]),
                ));
            }
            (m.labels[i].clone(), row)
        })
        .collect();
    save_png(
        &side_by_side(&rows, fixed, 3),
        &dir.join(format!("{site}_exemplars.png")),
    )?;
    if let Some(sta) = &m.sta {
        let maps: Vec<Tile> = (0..m.units.len())
            .map(|i| Tile::new(sta.map(i).to_vec(), c, h, w, m.labels[i].clone()))
            .collect();
        let title = format!("{site}: reverse correlation ({} noise images)", sta.samples);
        let png = montage(&maps, cols, Scaling::Symmetric, 4, Some(&title));
        save_png(&png, &dir.join(format!("{site}_revcorr.png")))?;
        write_npy(
            &dir.join(format!("{site}_revcorr.npy")),
            &[m.units.len(), c, h, w],
            &sta.maps,
        )?;
    }
    Ok(())
}

fn site_result(m: &SiteMaps) -> SiteResult {
    let best = m.exemplars.best();
    let units: Vec<UnitResult> = m
        .units
        .iter()
        .enumerate()
        .map(|(i, &u)| UnitResult {
            unit: u,
            label: m.labels[i].clone(),
            synthesized: m.synthesized[i],
            best_dataset: best[i],
            best_dataset_index: m.exemplars.index[i].first().copied(),
            exemplars: m.exemplars.index[i].clone(),
        })
        .collect();
    SiteResult {
        site: m.site.clone(),
        shape: m.shape.to_string(),
        beats_dataset: units
            .iter()
            .filter(|u| u.synthesized > u.best_dataset)
            .count(),
        units,
        synthesis_seconds: m.synthesis_seconds,
        revcorr_seconds: m.revcorr_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_from_toml_and_reject_unknown_keys() {
        let o: ReceptiveOptions =
            toml::from_str("steps = 64\nparam = \"pixel\"\nunits = [0, 3]\n").unwrap();
        assert_eq!(o.steps, 64);
        assert_eq!(o.param, Param::Pixel);
        assert_eq!(o.units.resolve("conv1", 16).unwrap(), vec![0, 3]);
        assert_eq!(o.lr, Settings::default().lr);
        let all: ReceptiveOptions = toml::from_str("units = \"all\"").unwrap();
        assert_eq!(all.units.resolve("conv1", 3).unwrap(), vec![0, 1, 2]);
        assert!(toml::from_str::<ReceptiveOptions>("stepz = 3").is_err());
        assert!(Units::List(vec![20]).resolve("conv1", 16).is_err());
    }

    #[test]
    fn degenerate_options_are_refused_naming_the_field() {
        let bad = |o: ReceptiveOptions, field: &str| {
            let msg = format!("{:#}", o.validate().unwrap_err());
            assert!(msg.contains(&format!("receptive_fields.{field}")), "{msg}");
        };
        let d = ReceptiveOptions::default();
        bad(
            ReceptiveOptions {
                lr: f32::NAN,
                ..d.clone()
            },
            "lr",
        );
        bad(
            ReceptiveOptions {
                lr: 0.0,
                ..d.clone()
            },
            "lr",
        );
        bad(
            ReceptiveOptions {
                steps: 0,
                ..d.clone()
            },
            "steps",
        );
        bad(
            ReceptiveOptions {
                tv: f32::INFINITY,
                ..d.clone()
            },
            "tv",
        );
        bad(
            ReceptiveOptions {
                scale: 1.5,
                ..d.clone()
            },
            "scale",
        );
        bad(
            ReceptiveOptions {
                units: Units::Named("some".into()),
                ..d.clone()
            },
            "units",
        );
        d.validate().unwrap();
    }

    #[test]
    fn units_print_as_they_parse() {
        for text in ["all", "first:4", "0,3,7"] {
            assert_eq!(text.parse::<Units>().unwrap().to_string(), text);
        }
    }
}
