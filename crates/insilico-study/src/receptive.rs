//! The receptive-field assay: what drives each unit, three ways. Activation
//! maximization (gradient ascent on the input, one unit per batch row), the top-k dataset
//! exemplars of each unit, and reverse correlation (the spike-triggered average of white
//! noise).

use crate::options::{at_least, distinct, finite, non_negative, positive, Options};
use crate::registry::{read, Assay, AssayKind, Figure};
use crate::study::{in_depth_order, Study, StudyOptions};
use anyhow::{bail, Context, Result};
use burn::tensor::{Tensor, TensorData};
use clap::{Args, ValueEnum};
use insilico_assays::receptive::{
    correlation, default_sites, exemplars, objective_values, spike_triggered_average, synthesize,
    top_patches, unit_objectives, Exemplars, ImageSpace, Objective, Param, Patch, Range,
    Regularizer, Settings, Sta, Transforms,
};
use insilico_engine::receptive_field::centre_position;
use insilico_engine::{receptive_field, Plan, ReceptiveField, RunDir, Shape, Window};
use insilico_report::{
    montage, overview, save_png, side_by_side, tile_to_image, write_csv, write_json, write_npy,
    Block, OverviewRow, Scaling, Tile,
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
    /// Random transforms (jitter, pad, scale, rotate) for vector sites and channel
    /// objectives. Off by default: measured by the criterion (README), they lower the
    /// untransformed objective without bringing the images closer to the units'
    /// reverse-correlation maps.
    #[arg(long, action = clap::ArgAction::Set, default_value_t = ReceptiveOptions::default().transforms)]
    pub transforms: bool,
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
    /// Regularizer for vector sites and channel objectives, on top of --l2 and --tv: none,
    /// tv (total variation relative to the objective, --tv-relative), blur (a Gaussian
    /// blur after every step, --blur-sigma) or decay (towards grey after every step,
    /// --decay). tv by the criterion measured in the README (fc1 of cnn-small: every
    /// unit still beats the dataset, roughness 0.85 instead of 3.85).
    #[arg(long, default_value_t = ReceptiveOptions::default().regularizer)]
    pub regularizer: Regularizer,
    /// Regularizer for neuron objectives on feature maps (as --regularizer). blur by the
    /// criterion measured in the README (conv2 of cnn-small: every unit still beats the
    /// dataset, roughness 0.75 instead of 2.09: strokes, not noise).
    #[arg(long, default_value_t = ReceptiveOptions::default().neuron_regularizer)]
    pub neuron_regularizer: Regularizer,
    /// Weight of the total variation relative to the objective (regularizer tv): the
    /// ascent climbs log(objective) - tv_relative * TV, TV the mean absolute difference
    /// of neighbouring pixels in [0, 1].
    #[arg(long, default_value_t = ReceptiveOptions::default().tv_relative)]
    pub tv_relative: f32,
    /// Standard deviation in pixels of the Gaussian blur after every step (regularizer
    /// blur).
    #[arg(long, default_value_t = ReceptiveOptions::default().blur_sigma)]
    pub blur_sigma: f32,
    /// Fraction of the image parameters removed after every step (regularizer decay).
    #[arg(long, default_value_t = ReceptiveOptions::default().decay)]
    pub decay: f32,
    /// Parameterization for neuron objectives on feature maps (pixel or fourier; fourier
    /// by the criterion measured in the README, by a small margin over pixels).
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
    /// Pixels of context drawn around each unit's theoretical receptive field in the
    /// cropped tiles.
    #[arg(long, default_value_t = ReceptiveOptions::default().margin)]
    pub margin: usize,
    /// Try every parameterization (pixel, fourier) with and without the random
    /// transforms, each under every regularizer (none, tv, blur, decay), at every site;
    /// keep the best by the criterion: among the candidates whose synthesized images beat
    /// the best dataset image for the most units (all of them, where any candidate
    /// manages), those no rougher than the data (roughness at most 1) compete on the mean
    /// correlation with the reverse-correlation map inside the receptive field; where none
    /// is, the least rough wins. Sixteen times the ascent; the scores go to criterion.csv.
    #[arg(long, action = clap::ArgAction::Set, default_value_t = ReceptiveOptions::default().select)]
    pub select: bool,
    /// Units per site in the overview figure (those whose best dataset patch drives them
    /// hardest).
    #[arg(long, default_value_t = ReceptiveOptions::default().overview_units)]
    pub overview_units: usize,
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
            transforms: false,
            lr: s.lr,
            jitter: s.transforms.jitter,
            pad: s.transforms.pad,
            scale: s.transforms.scale,
            rotate: s.transforms.rotate,
            l2: s.l2,
            tv: s.tv,
            blur: s.blur,
            regularizer: Regularizer::Tv,
            neuron_regularizer: Regularizer::Blur,
            tv_relative: 5.0,
            blur_sigma: 0.35,
            decay: 0.02,
            neuron_param: Param::Fourier,
            neuron_transforms: false,
            decorrelate: s.decorrelate,
            init_std: s.init_std,
            batch: 256,
            exemplars: 8,
            revcorr_samples: 20_000,
            margin: 2,
            select: false,
            overview_units: 4,
        }
    }
}

impl Options for ReceptiveOptions {
    const SECTION: &'static str = "receptive_fields";
    fn validate(&self) -> Result<()> {
        const S: &str = ReceptiveOptions::SECTION;
        at_least(S, "steps", self.steps, 1)?;
        if let Some(sites) = &self.sites {
            distinct(&format!("{S}.sites"), sites, String::clone)?;
        }
        positive(S, "lr", self.lr as f64)?;
        for (field, v) in [
            ("scale", self.scale),
            ("rotate", self.rotate),
            ("l2", self.l2),
            ("tv", self.tv),
            ("blur", self.blur),
            ("tv_relative", self.tv_relative),
            ("blur_sigma", self.blur_sigma),
            ("decay", self.decay),
            ("init_std", self.init_std),
        ] {
            non_negative(S, field, v as f64)?;
        }
        finite(S, "scale", self.scale as f64)?;
        if self.decay >= 1.0 {
            bail!(
                "{S}.decay = {}: must be below 1 (the image keeps 1 - decay of itself each step)",
                self.decay
            );
        }
        if self.scale >= 1.0 {
            bail!(
                "{S}.scale = {}: must be below 1 (images are scaled by 1 ± scale)",
                self.scale
            );
        }
        at_least(S, "batch", self.batch, 1)?;
        at_least(S, "exemplars", self.exemplars, 1)?;
        at_least(S, "overview_units", self.overview_units, 1)?;
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
    /// The parameterization and transforms a site gets without `select`: neuron objectives
    /// on feature maps take their own.
    pub fn candidate(&self, neuron_on_map: bool) -> Candidate {
        match neuron_on_map {
            false => Candidate {
                param: self.param,
                transforms: self.transforms,
                regularizer: self.regularizer,
            },
            true => Candidate {
                param: self.neuron_param,
                transforms: self.neuron_transforms,
                regularizer: self.neuron_regularizer,
            },
        }
    }

    /// What a site's ascent tries: the default candidate, or with `select` every
    /// parameterization with and without transforms, each under every regularizer.
    pub fn candidates(&self, neuron_on_map: bool) -> Vec<Candidate> {
        if !self.select {
            return vec![self.candidate(neuron_on_map)];
        }
        let mut out = Vec::new();
        for param in [Param::Pixel, Param::Fourier] {
            for transforms in [false, true] {
                for regularizer in Regularizer::ALL {
                    out.push(Candidate {
                        param,
                        transforms,
                        regularizer,
                    });
                }
            }
        }
        out
    }

    /// The synthesis settings of one candidate.
    pub fn settings(&self, candidate: Candidate) -> Settings {
        let transforms = match candidate.transforms {
            true => Transforms {
                jitter: self.jitter,
                pad: self.pad,
                scale: self.scale,
                rotate: self.rotate,
            },
            false => Transforms::none(),
        };
        Settings {
            steps: self.steps,
            lr: self.lr,
            param: candidate.param,
            range: Range::Sigmoid,
            decorrelate: self.decorrelate,
            init_std: self.init_std,
            transforms,
            l2: self.l2,
            tv: self.tv,
            blur: self.blur,
            tv_relative: match candidate.regularizer {
                Regularizer::Tv => self.tv_relative,
                _ => 0.0,
            },
            blur_sigma: match candidate.regularizer {
                Regularizer::Blur => self.blur_sigma,
                _ => 0.0,
            },
            decay: match candidate.regularizer {
                Regularizer::Decay => self.decay,
                _ => 0.0,
            },
            ..Settings::default()
        }
    }

    /// The sites mapped: these options' own, else the study's explicit sites, else every
    /// conv and linear output (the same rule on the command line, in a sweep and in the
    /// report), in depth order (see [`in_depth_order`]).
    pub fn resolve_sites(&self, plan: &Plan, study: &StudyOptions) -> Result<Vec<String>> {
        match &self.sites {
            Some(sites) => in_depth_order(plan, sites),
            None if !study.sites.is_empty() => in_depth_order(plan, &study.sites),
            None => Ok(default_sites(plan)),
        }
    }
}

/// A parameterization and transform choice for the ascent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub param: Param,
    /// The random jitter, pad, scale and rotation of the options, or none.
    pub transforms: bool,
    /// Older summaries have none: they read as [`Regularizer::None`].
    #[serde(default)]
    pub regularizer: Regularizer,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = if self.transforms {
            "transforms"
        } else {
            "no transforms"
        };
        write!(f, "{}, {t}, regularizer {}", self.param, self.regularizer)
    }
}

/// How one candidate scored at a site (the criterion of `select`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    pub candidate: Candidate,
    /// Fraction of units whose synthesized image beats their best dataset image.
    pub beats_fraction: f64,
    /// Mean over units of the correlation between the synthesized image and the unit's
    /// reverse-correlation map inside its theoretical receptive field (no margin);
    /// `None` without reverse correlation.
    pub mean_correlation: Option<f64>,
    /// How noisy the synthesized images are: their total variation inside the receptive
    /// field (mean absolute difference of neighbouring pixels, in [0, 1]) over that of
    /// each unit's best dataset image there, summed over units. Above 1: rougher than
    /// the data that drive the units. `None` where the dataset images are flat there.
    #[serde(default)]
    pub roughness: Option<f64>,
    pub seconds: f64,
    pub chosen: bool,
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
    /// Correlation of the synthesized image with the reverse-correlation map inside the
    /// receptive field.
    #[serde(default)]
    pub revcorr_correlation: Option<f64>,
    /// The top-k image patches of the unit's channel, at any position (feature maps).
    #[serde(default)]
    pub patches: Vec<Patch>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteResult {
    pub site: String,
    pub shape: String,
    /// The site's theoretical receptive field, from the plan.
    #[serde(default)]
    pub receptive_field: Option<ReceptiveField>,
    /// The pixels the tiles show: the mapped unit's field with the margin, clipped.
    #[serde(default)]
    pub window: Option<Window>,
    /// The field reaches past the image, so the tiles show less than its full size.
    #[serde(default)]
    pub clipped: bool,
    pub units: Vec<UnitResult>,
    /// Units whose synthesized image beats their best dataset image.
    pub beats_dataset: usize,
    /// The chosen candidate's scores, and every candidate tried (one without `select`).
    #[serde(default)]
    pub candidates: Vec<CandidateScore>,
    pub synthesis_seconds: f64,
    pub revcorr_seconds: f64,
}

impl SiteResult {
    pub fn chosen(&self) -> Option<&CandidateScore> {
        self.candidates.iter().find(|c| c.chosen)
    }
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
        and rotation; L2 and total-variation penalties, a Gaussian blur or a decay after every \
        step; pixels kept in [0, 1] by a sigmoid), \
        its top-k dataset exemplars by the same objective (by default the centre neuron of a \
        channel; --objective channel for its spatial mean), which the criterion compares \
        with, and the top-k dataset patches the figures show (each image's best position, one \
        patch per image, cropped to that position's field), and its reverse-correlation map \
        (spike-triggered average of white noise, for the centre neuron of a channel). Ties go \
        to the lower image index and the first position in row order. All units \
        of a site are optimized in one batch; with --select true every parameterization \
        (pixel, fourier) with and without transforms, under every regularizer (none, tv, \
        blur, decay), is tried and the best kept by the criterion (among the candidates \
        whose synthesized images beat the best dataset image for the most units, those no \
        rougher than the data compete on the correlation with the reverse-correlation map \
        inside the receptive field; where none is, the least rough wins). Every tile is \
        cropped to the unit's theoretical receptive field (from the plan) with a margin. \
        Writes RUN/assays/receptive_fields/: overview.png (one row per layer: synthesized \
        image, top dataset patch, reverse correlation), <site>.png (montage), \
        <site>/unit_NNN.png, <site>_exemplars.png (synthesized image and top patches), \
        <site>_revcorr.png and <site>_revcorr.npy (the maps), <site>.npy (whole synthesized \
        images), criterion.csv and summary.json.";
    const EXAMPLES: &'static str = "Example:\n  insilico receptive-fields --run runs/demo --sites conv1,conv2,logits --param fourier";
    const RESULT_FILE: &'static str = "summary.json";
    type Options = ReceptiveOptions;
    type Output = ReceptiveSummary;

    fn run(study: &Study, options: &ReceptiveOptions) -> Result<ReceptiveSummary> {
        receptive_fields(study, options)
    }

    fn describe(summary: &ReceptiveSummary) -> Vec<String> {
        summary.sites.iter().map(describe_site).collect()
    }

    fn check(options: &ReceptiveOptions, plan: &Plan, study: &StudyOptions) -> Result<()> {
        for site in options
            .resolve_sites(plan, study)
            .context("receptive_fields.sites")?
        {
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
        let overview = (
            dir.join("overview.png"),
            "overview: synthesized images, top patches and reverse correlation per layer, \
             cropped to the receptive field"
                .to_string(),
        );
        let sites = summary.sites.iter().map(|s| {
            (
                dir.join(format!("{}.png", s.site)),
                format!("{}: receptive fields (activation maximization)", s.site),
            )
        });
        std::iter::once(overview)
            .chain(sites)
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

/// How a receptive field reads in a printout: its side in pixels, or the whole image.
fn field_label(field: Option<ReceptiveField>, clipped: bool) -> String {
    match field {
        Some(ReceptiveField::Local { size, .. }) if clipped => format!("{size} px, clipped"),
        Some(ReceptiveField::Local { size, .. }) => format!("{size} px"),
        Some(ReceptiveField::Whole) => "whole image".into(),
        None => "-".into(),
    }
}

/// One printed line per site: field, criterion, timings.
fn describe_site(s: &SiteResult) -> String {
    let chosen = s.chosen();
    let r = chosen
        .and_then(|c| c.mean_correlation)
        .map_or("-".to_string(), |r| format!("{r:.2}"));
    let how = chosen.map_or("-".to_string(), |c| c.candidate.to_string());
    let rough = chosen
        .and_then(|c| c.roughness)
        .map_or("-".to_string(), |r| format!("{r:.2}"));
    format!(
        "{:<10} {:>4} units  rf {:<15} synthesized beats best dataset image {}/{}  r(synthesized, revcorr) {r}  roughness {rough}  [{how}]  ({:.1} s ascent, {:.1} s reverse correlation)",
        s.site,
        s.units.len(),
        field_label(s.receptive_field, s.clipped),
        s.beats_dataset,
        s.units.len(),
        s.synthesis_seconds,
        s.revcorr_seconds
    )
}

/// The pixels a tile of a unit of a site shows: the field of the position its objective
/// reads (the centre of the map for a neuron; everything for a channel mean or a vector
/// unit), widened by `margin` and clipped to the `[h, w]` image; and whether the clipping
/// cut into the field itself (not just its margin).
pub fn unit_window(
    field: ReceptiveField,
    shape: Shape,
    neuron: bool,
    margin: usize,
    image: [usize; 2],
) -> (Window, bool) {
    let field = match (shape, neuron) {
        (Shape::Map { .. }, true) => field,
        _ => ReceptiveField::Whole,
    };
    let position = centre_position(shape);
    let bare = field.window(position, 0, image);
    let size = field.size(image);
    let clipped =
        matches!(field, ReceptiveField::Local { .. }) && (bare.height < size || bare.width < size);
    (field.window(position, margin, image), clipped)
}

/// The values of a `[c, h, w]` image inside a window, channel by channel.
fn window_values(image: &[f32], shape: [usize; 3], win: Window) -> Vec<f32> {
    let [c, h, w] = shape;
    let tile = Tile::new(image.to_vec(), c, h, w, "");
    tile.crop(win.y0, win.x0, win.height, win.width).pixels
}

/// Per row, the correlation of two stacks of `[c, h, w]` images inside a window.
fn window_correlations(a: &[f32], b: &[f32], shape: [usize; 3], win: Window) -> Vec<f64> {
    let n: usize = shape.iter().product();
    a.chunks(n)
        .zip(b.chunks(n))
        .map(|(x, y)| correlation(&window_values(x, shape, win), &window_values(y, shape, win)))
        .collect()
}

/// Total variation of a `[c, h, w]` image inside a window: the mean absolute difference
/// of vertically neighbouring pixels plus that of horizontally neighbouring ones (as the
/// synthesis penalty, [`insilico_assays::receptive::regularize::total_variation`]).
fn window_variation(image: &[f32], shape: [usize; 3], win: Window) -> f64 {
    let v = window_values(image, shape, win);
    let (c, h, w) = (shape[0], win.height, win.width);
    let at = |ch: usize, y: usize, x: usize| v[(ch * h + y) * w + x] as f64;
    let (mut dy, mut dx) = ((0.0, 0usize), (0.0, 0usize));
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                if y + 1 < h {
                    dy = (dy.0 + (at(ch, y + 1, x) - at(ch, y, x)).abs(), dy.1 + 1);
                }
                if x + 1 < w {
                    dx = (dx.0 + (at(ch, y, x + 1) - at(ch, y, x)).abs(), dx.1 + 1);
                }
            }
        }
    }
    let mean = |(sum, n): (f64, usize)| if n == 0 { 0.0 } else { sum / n as f64 };
    mean(dy) + mean(dx)
}

/// The roughness of [`CandidateScore`]: the summed total variation of the synthesized
/// images inside the window over that of the reference (dataset) images.
fn roughness(
    synthesized: &[f32],
    reference: &[f32],
    shape: [usize; 3],
    win: Window,
) -> Option<f64> {
    let n: usize = shape.iter().product();
    let total = |images: &[f32]| -> f64 {
        images
            .chunks(n)
            .map(|img| window_variation(img, shape, win))
            .sum()
    };
    let data = total(reference);
    (data > 0.0).then(|| total(synthesized) / data)
}

/// One site's maps, before they are drawn.
struct SiteMaps {
    site: String,
    shape: Shape,
    units: Vec<usize>,
    labels: Vec<String>,
    neuron_on_map: bool,
    field: ReceptiveField,
    /// The tiles' window (the mapped unit's field and margin) and whether it is clipped.
    window: Window,
    clipped: bool,
    ascent: Ascent,
    scores: Vec<CandidateScore>,
    correlations: Vec<Option<f64>>,
    exemplars: Exemplars,
    patches: Vec<Vec<Patch>>,
    sta: Option<Sta>,
    revcorr_seconds: f64,
}

/// The images of one candidate's ascent.
struct Ascent {
    candidate: Candidate,
    /// Pixels `[units, c, h, w]` in [0, 1], the normalized inputs, and objective values.
    pixels: Vec<f32>,
    inputs: Vec<f32>,
    synthesized: Vec<f32>,
    seconds: f64,
}

/// Maps the receptive fields of the sites [`ReceptiveOptions::resolve_sites`] names and
/// writes them to `RUN/assays/receptive_fields/`.
pub fn receptive_fields(study: &Study, opts: &ReceptiveOptions) -> Result<ReceptiveSummary> {
    opts.validate()?;
    let sites = opts.resolve_sites(study.run.network.plan(), &study.options)?;
    let mut results = Vec::new();
    let mut rows = Vec::new();
    for site in &sites {
        let maps = map_site(study, opts, site)?;
        draw_site(study, opts, &maps)?;
        rows.push(overview_row(study, opts, &maps));
        results.push(site_result(&maps));
    }
    let dir = study.out_dir("receptive_fields");
    draw_overview(study, &rows, &dir.join("overview.png"))?;
    write_criterion(&results, &dir.join("criterion.csv"))?;
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
    write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Activation maximization of every objective with one candidate, `batch` at a time.
fn ascend(
    study: &Study,
    opts: &ReceptiveOptions,
    objectives: &[Objective],
    candidate: Candidate,
) -> Result<Ascent> {
    let space = ImageSpace::of(&study.run.data.dataset);
    let settings = opts.settings(candidate);
    let t0 = Instant::now();
    let (mut pixels, mut inputs, mut synthesized) = (Vec::new(), Vec::new(), Vec::new());
    for (i, chunk) in objectives.chunks(opts.batch).enumerate() {
        let seed = study.seed().wrapping_add(i as u64);
        let device = &study.run.compute.device;
        let s = synthesize(
            &study.run.network,
            &space,
            chunk,
            None,
            &settings,
            seed,
            device,
        )?;
        pixels.extend(s.pixels);
        inputs.extend(s.inputs);
        synthesized.extend(s.objective);
    }
    Ok(Ascent {
        candidate,
        pixels,
        inputs,
        synthesized,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// What an ascent is scored against: each unit's best dataset value and image (pixel
/// values), its reverse-correlation map, and the receptive field's pixels.
struct Reference<'a> {
    best: &'a [f32],
    images: &'a [f32],
    sta: Option<&'a Sta>,
    shape: [usize; 3],
    inner: Window,
}

/// Scores an ascent by the criterion; returns the score and each unit's correlation.
fn score(ascent: &Ascent, reference: &Reference) -> (CandidateScore, Vec<Option<f64>>) {
    let Reference {
        best,
        sta,
        shape,
        inner,
        ..
    } = *reference;
    let units = best.len().max(1) as f64;
    let beats = ascent
        .synthesized
        .iter()
        .zip(best)
        .filter(|(s, b)| s > b)
        .count();
    let correlations: Vec<Option<f64>> = match sta {
        Some(sta) => window_correlations(&ascent.inputs, &sta.maps, shape, inner)
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None; best.len()],
    };
    let defined: Vec<f64> = correlations.iter().flatten().copied().collect();
    let mean_correlation =
        (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
    let score = CandidateScore {
        candidate: ascent.candidate,
        beats_fraction: beats as f64 / units,
        mean_correlation,
        roughness: roughness(&ascent.pixels, reference.images, shape, inner),
        seconds: ascent.seconds,
        chosen: false,
    };
    (score, correlations)
}

/// The criterion's choice among the candidates of a site. Eligible are the candidates
/// whose synthesized images beat the best dataset image for the most units (all units,
/// wherever any candidate manages that). Among them, those no rougher than the data
/// (roughness at most 1: no more variation between neighbouring pixels inside the
/// receptive field than the units' best dataset images have) are compared by their mean
/// correlation with the reverse-correlation map, the highest winning; where none is that
/// smooth, the least rough wins. Ties go to the earlier candidate.
///
/// Roughness comes before the correlation because the correlation does not see noise
/// where the reverse-correlation map is a blob of luminance (conv2 of cnn-small on MNIST:
/// saturated noise correlates at -0.08, a smooth image of the unit's preferred stroke at
/// -0.33; README).
fn choose(scores: &[CandidateScore]) -> Option<usize> {
    let most = scores
        .iter()
        .map(|c| c.beats_fraction)
        .fold(f64::NAN, f64::max);
    let eligible: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i].beats_fraction == most)
        .collect();
    let rough = |i: usize| scores[i].roughness.unwrap_or(f64::INFINITY);
    let r = |i: usize| scores[i].mean_correlation.unwrap_or(f64::NEG_INFINITY);
    let smooth: Vec<usize> = eligible
        .iter()
        .copied()
        .filter(|&i| rough(i) <= 1.0)
        .collect();
    let mut best: Option<usize> = None;
    for i in if smooth.is_empty() {
        eligible
    } else {
        smooth.clone()
    } {
        let wins = |b: usize| match smooth.is_empty() {
            true => rough(i) < rough(b),
            false => r(i) > r(b),
        };
        if best.is_none_or(wins) {
            best = Some(i);
        }
    }
    best
}

/// Dataset exemplars and top patches, reverse correlation, then the ascent of every
/// candidate, keeping the best by the criterion.
fn map_site(study: &Study, opts: &ReceptiveOptions, site: &str) -> Result<SiteMaps> {
    let net = &study.run.network;
    let device = &study.run.compute.device;
    let dataset = &study.run.data.dataset;
    let shape = net.plan().shape_at(site)?;
    let units = opts.units.resolve(site, shape.units())?;
    let neuron = opts.objective == UnitObjective::Neuron;
    let objectives = unit_objectives(site, shape, &units, neuron);
    let neuron_on_map = neuron && matches!(shape, Shape::Map { .. });
    let field = receptive_field(net.plan(), site)?;
    let image_shape = ImageSpace::of(dataset).shape;
    let hw = [image_shape[1], image_shape[2]];
    let (window, clipped) = unit_window(field, shape, neuron, opts.margin, hw);
    let (inner, _) = unit_window(field, shape, neuron, 0, hw);
    let exemplars = exemplars(net, &study.examples, &objectives, opts.exemplars, device)?;
    let patches = top_patches(net, &study.examples, site, &units, opts.exemplars, device)?;
    let t1 = Instant::now();
    let sta = if opts.revcorr_samples > 0 {
        let centre = unit_objectives(site, shape, &units, true);
        Some(reverse_correlation(
            study,
            &centre,
            image_shape,
            opts.revcorr_samples,
        )?)
    } else {
        None
    };
    let revcorr_seconds = t1.elapsed().as_secs_f64();
    let best = exemplars.best();
    let images = best_images(study, &exemplars);
    let reference = Reference {
        best: &best,
        images: &images,
        sta: sta.as_ref(),
        shape: image_shape,
        inner,
    };
    let (mut scores, mut tried) = (Vec::new(), Vec::new());
    for candidate in opts.candidates(neuron_on_map) {
        let ascent = ascend(study, opts, &objectives, candidate)?;
        let (sc, correlations) = score(&ascent, &reference);
        scores.push(sc);
        tried.push((ascent, correlations));
    }
    let chosen = choose(&scores).context("no candidate parameterization")?;
    scores[chosen].chosen = true;
    let (ascent, correlations) = tried.swap_remove(chosen);
    Ok(SiteMaps {
        site: site.to_string(),
        shape,
        labels: units
            .iter()
            .map(|&u| unit_label(site, u, &dataset.class_names))
            .collect(),
        units,
        neuron_on_map,
        field,
        window,
        clipped,
        ascent,
        scores,
        correlations,
        exemplars,
        patches,
        sta,
        revcorr_seconds,
    })
}

/// Each unit's best dataset image in pixel values (zeros where a unit has none).
fn best_images(study: &Study, exemplars: &Exemplars) -> Vec<f32> {
    let space = ImageSpace::of(&study.run.data.dataset);
    let n = space.numel();
    let images = &study.examples.images;
    exemplars
        .index
        .iter()
        .flat_map(|top| match top.first() {
            Some(&e) => space.denormalize(&images[e * n..(e + 1) * n]),
            None => vec![0.0; n],
        })
        .collect()
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

/// The tiles of one site, cropped to the receptive fields: synthesized images, each
/// unit's top patches (each at its own position's field) and reverse-correlation maps.
struct SiteTiles {
    synthesized: Vec<Tile>,
    patches: Vec<Vec<Tile>>,
    revcorr: Vec<Tile>,
}

fn site_tiles(study: &Study, opts: &ReceptiveOptions, m: &SiteMaps) -> SiteTiles {
    let [c, h, w] = ImageSpace::of(&study.run.data.dataset).shape;
    let n = c * h * w;
    let win = m.window;
    let crop = |t: Tile| t.crop(win.y0, win.x0, win.height, win.width);
    let synthesized = (0..m.units.len())
        .map(|i| {
            let px = m.ascent.pixels[i * n..(i + 1) * n].to_vec();
            crop(Tile::new(px, c, h, w, m.labels[i].clone()))
        })
        .collect();
    let pixel_values = ImageSpace::of(&study.run.data.dataset).denormalize(&study.examples.images);
    let patch_field = match m.shape {
        Shape::Map { .. } => m.field,
        Shape::Flat(_) => ReceptiveField::Whole,
    };
    let patches = m
        .patches
        .iter()
        .map(|row| {
            row.iter()
                .map(|p| {
                    let e = p.example;
                    let px = pixel_values[e * n..(e + 1) * n].to_vec();
                    let pw = patch_field.window(p.position, opts.margin, [h, w]);
                    let t = Tile::new(px, c, h, w, format!("{:.2}", p.value));
                    t.crop(pw.y0, pw.x0, pw.height, pw.width)
                })
                .collect()
        })
        .collect();
    let revcorr = match &m.sta {
        Some(sta) => (0..m.units.len())
            .map(|i| crop(Tile::new(sta.map(i).to_vec(), c, h, w, m.labels[i].clone())))
            .collect(),
        None => Vec::new(),
    };
    SiteTiles {
        synthesized,
        patches,
        revcorr,
    }
}

/// Nearest-neighbour scale that draws a `side`-pixel crop about 112 pixels wide.
fn crop_scale(side: usize) -> u32 {
    (112 / side.max(1)).clamp(2, 24) as u32
}

/// The montage, one PNG per unit, the exemplar rows, the reverse-correlation montage
/// and the NPY arrays of one site, every tile cropped to the receptive field.
fn draw_site(study: &Study, opts: &ReceptiveOptions, m: &SiteMaps) -> Result<()> {
    let dir = study.out_dir("receptive_fields");
    let site = &m.site;
    let [c, h, w] = ImageSpace::of(&study.run.data.dataset).shape;
    let tiles = site_tiles(study, opts, m);
    let scale = crop_scale(m.window.height.max(m.window.width));
    let cols = ((m.units.len() as f64).sqrt().ceil() as usize).max(4);
    let field = field_label(Some(m.field), m.clipped);
    let title = format!(
        "{} {site}: activation maximization, {}, {}, {} steps; field {field}",
        study.run.config.model.name,
        if m.neuron_on_map {
            "centre neuron"
        } else {
            "unit"
        },
        m.ascent.candidate,
        opts.steps
    );
    let fixed = Scaling::Fixed(0.0, 1.0);
    let png = montage(&tiles.synthesized, cols, fixed, scale, Some(&title));
    save_png(&png, &dir.join(format!("{site}.png")))?;
    for (tile, &u) in tiles.synthesized.iter().zip(&m.units) {
        let path = dir.join(site).join(format!("unit_{u:03}.png"));
        save_png(&tile_to_image(tile, fixed, scale.max(8)), &path)?;
    }
    write_npy(
        &dir.join(format!("{site}.npy")),
        &[m.units.len(), c, h, w],
        &m.ascent.pixels,
    )?;
    let rows: Vec<(String, Vec<Tile>)> = (0..m.units.len())
        .map(|i| {
            let mut synth = tiles.synthesized[i].clone();
            synth.label = format!("{:.2}", m.ascent.synthesized[i]);
            let mut row = vec![synth];
            row.extend(tiles.patches[i].iter().cloned());
            (m.labels[i].clone(), row)
        })
        .collect();
    save_png(
        &side_by_side(&rows, fixed, scale),
        &dir.join(format!("{site}_exemplars.png")),
    )?;
    if let Some(sta) = &m.sta {
        let title = format!(
            "{site}: reverse correlation, {} noise images; field {field}",
            sta.samples
        );
        let png = montage(
            &tiles.revcorr,
            cols,
            Scaling::Symmetric,
            scale,
            Some(&title),
        );
        save_png(&png, &dir.join(format!("{site}_revcorr.png")))?;
        write_npy(
            &dir.join(format!("{site}_revcorr.npy")),
            &[m.units.len(), c, h, w],
            &sta.maps,
        )?;
    }
    Ok(())
}

/// The `k` units the dataset drives hardest (by their best patch; ties: lower index),
/// in unit order: a unit no image excites shows nothing worth a row.
fn strongest_units(patches: &[Vec<Patch>], k: usize) -> Vec<usize> {
    let best = |i: usize| patches[i].first().map_or(f32::NEG_INFINITY, |p| p.value);
    let mut order: Vec<usize> = (0..patches.len()).collect();
    order.sort_by(|&a, &b| best(b).total_cmp(&best(a)).then(a.cmp(&b)));
    order.truncate(k);
    order.sort_unstable();
    order
}

/// A site's row of the overview: its strongest few units, three ways.
fn overview_row(study: &Study, opts: &ReceptiveOptions, m: &SiteMaps) -> OverviewRow {
    let tiles = site_tiles(study, opts, m);
    let chosen = strongest_units(&m.patches, opts.overview_units);
    let pick =
        |v: &[Tile]| -> Vec<Tile> { chosen.iter().filter_map(|&i| v.get(i).cloned()).collect() };
    let top: Vec<Tile> = chosen
        .iter()
        .filter_map(|&i| tiles.patches[i].first().cloned())
        .collect();
    let mut revcorr = pick(&tiles.revcorr);
    for t in &mut revcorr {
        t.label.clear();
    }
    OverviewRow {
        label: format!(
            "{}\nfield {}",
            m.site,
            field_label(Some(m.field), m.clipped)
        ),
        blocks: vec![pick(&tiles.synthesized), top, revcorr],
    }
}

/// One figure per network: a row per site, one scale for every tile (a growing field
/// shows as a growing tile).
fn draw_overview(study: &Study, rows: &[OverviewRow], path: &std::path::Path) -> Result<()> {
    let [_, h, w] = ImageSpace::of(&study.run.data.dataset).shape;
    let blocks = [
        ("activation maximization", Scaling::Fixed(0.0, 1.0)),
        ("top dataset patch (activation)", Scaling::Fixed(0.0, 1.0)),
        ("reverse correlation", Scaling::Symmetric),
    ]
    .map(|(heading, scaling)| Block {
        heading: heading.into(),
        scaling,
    });
    let title = format!(
        "{}: receptive fields by layer, cropped to each unit's theoretical field",
        study.run.config.model.name
    );
    let scale = (120 / h.max(w).max(1)).max(1) as u32;
    save_png(&overview(&title, &blocks, rows, scale), path)
}

/// Every candidate's scores per site (`select` tries four; otherwise one row per site).
fn write_criterion(sites: &[SiteResult], path: &std::path::Path) -> Result<()> {
    let rows: Vec<Vec<String>> = sites
        .iter()
        .flat_map(|s| {
            s.candidates.iter().map(move |c| {
                vec![
                    s.site.clone(),
                    c.candidate.param.to_string(),
                    c.candidate.transforms.to_string(),
                    c.candidate.regularizer.to_string(),
                    format!("{:.4}", c.beats_fraction),
                    c.mean_correlation
                        .map_or(String::new(), |r| format!("{r:.4}")),
                    c.roughness.map_or(String::new(), |r| format!("{r:.4}")),
                    format!("{:.2}", c.seconds),
                    c.chosen.to_string(),
                ]
            })
        })
        .collect();
    let header = [
        "site",
        "param",
        "transforms",
        "regularizer",
        "beats_dataset_fraction",
        "mean_revcorr_correlation",
        "roughness",
        "seconds",
        "chosen",
    ];
    write_csv(path, &header, &rows)
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
            synthesized: m.ascent.synthesized[i],
            best_dataset: best[i],
            best_dataset_index: m.exemplars.index[i].first().copied(),
            exemplars: m.exemplars.index[i].clone(),
            revcorr_correlation: m.correlations[i],
            patches: m.patches[i].clone(),
        })
        .collect();
    SiteResult {
        site: m.site.clone(),
        shape: m.shape.to_string(),
        receptive_field: Some(m.field),
        window: Some(m.window),
        clipped: m.clipped,
        beats_dataset: units
            .iter()
            .filter(|u| u.synthesized > u.best_dataset)
            .count(),
        units,
        candidates: m.scores.clone(),
        synthesis_seconds: m.scores.iter().map(|s| s.seconds).sum(),
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
        let r: ReceptiveOptions =
            toml::from_str("regularizer = \"decay\"\nneuron_regularizer = \"none\"").unwrap();
        assert_eq!(r.regularizer, Regularizer::Decay);
        assert_eq!(r.neuron_regularizer, Regularizer::None);
        assert!(toml::from_str::<ReceptiveOptions>("regularizer = \"smooth\"").is_err());
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
                decay: 1.0,
                ..d.clone()
            },
            "decay",
        );
        bad(
            ReceptiveOptions {
                blur_sigma: -0.5,
                ..d.clone()
            },
            "blur_sigma",
        );
        bad(
            ReceptiveOptions {
                tv_relative: f32::NAN,
                ..d.clone()
            },
            "tv_relative",
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

    fn window_of(config: &str, input: [usize; 3], site: &str, margin: usize) -> (Window, bool) {
        let model = insilico_engine::load_config(config, &[]).unwrap().model;
        let plan = Plan::new(&model, input).unwrap();
        let field = receptive_field(&plan, site).unwrap();
        let shape = plan.shape_at(site).unwrap();
        unit_window(field, shape, true, margin, [input[1], input[2]])
    }

    /// The crops of cnn-small's centre neurons, from the plan arithmetic by hand (size r,
    /// jump j, first pixel f; the centre position p = map side / 2 sees f + p j ..= f + p j
    /// + r - 1), widened by the margin of 2.
    #[test]
    fn cropped_tiles_contain_the_whole_receptive_field() {
        let w = |y0, h| Window {
            y0,
            x0: y0,
            height: h,
            width: h,
        };
        // conv1: r 5, j 1, f -2, p 14: 12..=16, with the margin 10..=18.
        // pool1: r 6, j 2, f -2, p 7: 12..=17 -> 10..=19.
        // conv2: r 14, j 2, f -6, p 7: 8..=21 -> 6..=23.
        // pool2: r 16, j 4, f -6, p 3: 6..=21 -> 4..=23.
        for (site, want) in [
            ("conv1", w(10, 9)),
            ("pool1", w(10, 10)),
            ("conv2", w(6, 18)),
            ("pool2", w(4, 20)),
            ("fc1", w(0, 28)),
            ("logits", w(0, 28)),
        ] {
            assert_eq!(
                window_of("cnn-small", [1, 28, 28], site, 2),
                (want, false),
                "{site}"
            );
        }
        // On an 8x8 image conv2's map is 4x4; the centre (2, 2) sees -6 + 4 = -2 ..= 11,
        // which the image clips to 0..=7: all of it, and said to be clipped.
        assert_eq!(
            window_of("cnn-small", [1, 8, 8], "conv2", 1),
            (w(0, 8), true)
        );
        // Channel objectives read every position: the whole image.
        let model = insilico_engine::load_config("cnn-small", &[])
            .unwrap()
            .model;
        let plan = Plan::new(&model, [1, 28, 28]).unwrap();
        let field = receptive_field(&plan, "conv1").unwrap();
        let shape = plan.shape_at("conv1").unwrap();
        assert_eq!(
            unit_window(field, shape, false, 2, [28, 28]),
            (w(0, 28), false)
        );
    }

    /// Property: for every site of every shipped config, the crop holds every pixel of
    /// the field that lies in the image, and at most the margin more on each side.
    #[test]
    fn crops_hold_the_field_and_at_most_the_margin() {
        for (config, input) in [("cnn-small", [1, 28, 28]), ("cnn-bn", [3, 32, 32])] {
            let model = insilico_engine::load_config(config, &[]).unwrap().model;
            let plan = Plan::new(&model, input).unwrap();
            for (site, field) in insilico_engine::receptive_fields(&plan) {
                let shape = plan.shape_at(&site).unwrap();
                let (win, _) = unit_window(field, shape, true, 3, [input[1], input[2]]);
                let ReceptiveField::Local { size, jump, first } = field else {
                    assert_eq!((win.height, win.width), (input[1], input[2]), "{site}");
                    continue;
                };
                let (p, _) = centre_position(shape);
                let lo = (first + (p * jump) as i64).max(0) as usize;
                let hi = ((first + (p * jump + size) as i64) as usize).min(input[1]);
                assert!(win.y0 <= lo && win.y0 + win.height >= hi, "{config} {site}");
                assert!(
                    lo - win.y0 <= 3 && win.y0 + win.height - hi <= 3,
                    "{config} {site}"
                );
                assert_eq!((win.y0, win.height), (win.x0, win.width), "{config} {site}");
            }
        }
    }

    fn scored(beats: f64, r: Option<f64>, rough: Option<f64>) -> CandidateScore {
        CandidateScore {
            candidate: ReceptiveOptions::default().candidate(true),
            beats_fraction: beats,
            mean_correlation: r,
            roughness: rough,
            seconds: 0.0,
            chosen: false,
        }
    }

    /// A constructed table: noise that beats the dataset everywhere (rough 3.0, r 0.27), a
    /// smoother image that also does (rough 0.8, r 0.10), a smoother one still with a
    /// worse correlation (rough 0.5, r 0.05), one that loses a unit (rough 0.4, r 0.80).
    /// The rule takes the best correlation among the smooth images that beat the dataset
    /// for every unit: row 1.
    #[test]
    fn the_criterion_takes_a_smooth_image_that_beats_the_dataset() {
        let table = [
            scored(1.0, Some(0.27), Some(3.0)),
            scored(1.0, Some(0.10), Some(0.8)),
            scored(1.0, Some(0.05), Some(0.5)),
            scored(15.0 / 16.0, Some(0.80), Some(0.4)),
        ];
        assert_eq!(choose(&table), Some(1));
        // No smooth candidate among those that beat the dataset: the least rough wins,
        // whatever its correlation; a candidate without a roughness is the roughest.
        let rough = [
            scored(1.0, Some(0.9), Some(2.5)),
            scored(1.0, Some(0.1), Some(1.5)),
            scored(1.0, Some(0.9), None),
            scored(0.5, Some(0.9), Some(0.1)),
        ];
        assert_eq!(choose(&rough), Some(1));
        // Where no candidate beats the dataset for every unit, the most units count first.
        let partial = [
            scored(0.5, Some(0.9), Some(0.5)),
            scored(0.75, Some(0.1), Some(0.5)),
            scored(0.75, Some(0.3), Some(0.5)),
        ];
        assert_eq!(choose(&partial), Some(2));
        // Ties go to the earlier candidate; no correlation loses to any correlation.
        let tied = [
            scored(1.0, None, Some(0.5)),
            scored(1.0, Some(0.4), Some(0.5)),
            scored(1.0, Some(0.4), Some(0.5)),
        ];
        assert_eq!(choose(&tied), Some(1));
        assert_eq!(choose(&[]), None);
    }

    /// A 1x3x3 image [[0, 1, 0], [0, 1, 0], [2, 2, 2]] has vertical differences 0, 0, 0, 2,
    /// 1, 2 (mean 5/6) and horizontal ones 1, 1, 1, 1, 0, 0 (mean 4/6): 1.5 in all. Inside
    /// its top-left 2x2 window: vertical 0, 0 and horizontal 1, 1: 1.0.
    #[test]
    fn roughness_is_the_total_variation_ratio_inside_the_field() {
        let img = [0., 1., 0., 0., 1., 0., 2., 2., 2.];
        let all = Window {
            y0: 0,
            x0: 0,
            height: 3,
            width: 3,
        };
        let corner = Window {
            height: 2,
            width: 2,
            ..all
        };
        assert!((window_variation(&img, [1, 3, 3], all) - 1.5).abs() < 1e-12);
        assert!((window_variation(&img, [1, 3, 3], corner) - 1.0).abs() < 1e-12);
        // Two units: (1.5 + 1.5) / (1.5 + 0.0) against a flat second reference.
        let two: Vec<f32> = img.iter().chain(&img).copied().collect();
        let reference: Vec<f32> = img.iter().copied().chain([0.5; 9]).collect();
        assert_eq!(roughness(&two, &reference, [1, 3, 3], all), Some(2.0));
        assert_eq!(roughness(&two, &[0.5; 18], [1, 3, 3], all), None);
    }

    #[test]
    fn window_correlation_reads_only_the_window() {
        // Two 1x4x4 images equal inside rows/columns 1..=2 and opposite outside.
        let a: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..16)
            .map(|i| {
                let (y, x) = (i / 4, i % 4);
                if (1..=2).contains(&y) && (1..=2).contains(&x) {
                    i as f32
                } else {
                    -(i as f32)
                }
            })
            .collect();
        let inner = Window {
            y0: 1,
            x0: 1,
            height: 2,
            width: 2,
        };
        let r = window_correlations(&a, &b, [1, 4, 4], inner);
        assert!((r[0] - 1.0).abs() < 1e-12, "{r:?}");
        let all = Window {
            y0: 0,
            x0: 0,
            height: 4,
            width: 4,
        };
        assert!(window_correlations(&a, &b, [1, 4, 4], all)[0] < 0.0);
    }

    #[test]
    fn the_overview_shows_the_units_the_dataset_drives_hardest() {
        let p = |v: f32| Patch {
            example: 0,
            position: (0, 0),
            value: v,
        };
        let patches = vec![
            vec![p(0.5)],
            vec![p(3.0)],
            vec![],
            vec![p(2.0)],
            vec![p(3.0)],
        ];
        assert_eq!(strongest_units(&patches, 3), vec![1, 3, 4]);
        assert_eq!(strongest_units(&patches, 9), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn units_print_as_they_parse() {
        for text in ["all", "first:4", "0,3,7"] {
            assert_eq!(text.parse::<Units>().unwrap().to_string(), text);
        }
    }
}
