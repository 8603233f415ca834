//! `insilico receptive-fields`: what drives each unit, three ways. Activation
//! maximization (gradient ascent on the input, one unit per batch row), the top-k dataset
//! exemplars of each unit, and reverse correlation (the spike-triggered average of white
//! noise).

use crate::study::{Study, StudyArgs};
use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Tensor, TensorData};
use clap::Args;
use insilico_assays::receptive::{
    default_sites, exemplars, objective_values, spike_triggered_average, synthesize,
    unit_objectives, ImageSpace, Objective, Param, Range, Settings, Transforms,
};
use insilico_engine::{load_config, Network, Shape};
use insilico_report::{
    montage, save_png, side_by_side, tile_to_image, write_json, write_npy, Scaling, Tile,
};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::Instant;

#[derive(Args)]
#[command(
    about = "Receptive fields: activation maximization, dataset exemplars and reverse correlation",
    long_about = "For every unit of the chosen sites (default: every conv and linear layer \
        output, before its relu, including logits): an image synthesized by gradient ascent \
        on the input (Adam; pixel or 1/f Fourier parameterization; random jitter, pad, scale \
        and rotation; L2 and total-variation penalties; pixels kept in [0, 1] by a sigmoid), \
        its top-k dataset exemplars by the same objective (by default the centre neuron of a \
        channel; --objective channel for its spatial mean), and its reverse-correlation map \
        (spike-triggered average of white noise, for the centre neuron of a channel). All units of a site are optimized in one batch. Writes \
        RUN/assays/receptive_fields/: <site>.png (montage), <site>/unit_NNN.png, \
        <site>_exemplars.png, <site>_revcorr.png, <site>.npy (images) and summary.json.",
    after_help = "Example:\n  insilico receptive-fields --run runs/demo --sites conv1,conv2,logits --param fourier"
)]
pub struct ReceptiveArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Units: all, first:N, or a comma-separated list of indices.
    #[arg(long, default_value = "all")]
    pub units: String,
    /// Optimization steps.
    #[arg(long, default_value_t = 512)]
    pub steps: usize,
    /// Image parameterization: pixel or fourier.
    #[arg(long, default_value = "fourier")]
    pub param: String,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f32,
    /// Objective for feature maps: neuron (the centre position of a channel: its
    /// receptive field) or channel (the spatial mean: its feature as a texture; for a
    /// linear site such as conv1 that is only the filter's sum times the image mean).
    #[arg(long, default_value = "neuron")]
    pub objective: String,
    /// Dataset exemplars shown per unit.
    #[arg(long, default_value_t = 8)]
    pub exemplars: usize,
    /// White-noise images for reverse correlation (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    pub revcorr_samples: usize,
    /// Options as a TOML file (a `ReceptiveOptions` table); flags above are ignored then.
    #[arg(long)]
    pub options: Option<std::path::PathBuf>,
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

/// Options of the receptive-field assay, as a sweep's TOML table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceptiveOptions {
    /// Sites to map (`None`: the study's sites).
    pub sites: Option<Vec<String>>,
    pub units: Units,
    /// `neuron` (the centre position of a feature map) or `channel` (its spatial mean).
    pub objective: String,
    pub steps: usize,
    pub param: Param,
    pub lr: f32,
    /// Roll by up to this many pixels each step.
    pub jitter: usize,
    /// Shift with mean fill by up to this many pixels each step.
    pub pad: usize,
    /// Random scale in [1 - scale, 1 + scale].
    pub scale: f32,
    /// Random rotation in [-rotate, rotate] degrees.
    pub rotate: f32,
    /// Weight of the mean square of the normalized image.
    pub l2: f32,
    /// Weight of the total variation.
    pub tv: f32,
    /// Weight of the pull towards the blurred image.
    pub blur: f32,
    /// Parameterization for neuron objectives on feature maps. A neuron's receptive field
    /// is small and fixed in place (5x5 pixels at conv1): the Fourier basis spreads energy
    /// over pixels it never sees, so pixels are the default there.
    pub neuron_param: Param,
    /// Random transforms for neuron objectives on feature maps (off by default: a shift
    /// of a few pixels smears a 5x5 receptive field).
    pub neuron_transforms: bool,
    /// Decorrelated colour for RGB datasets.
    pub decorrelate: bool,
    /// Standard deviation of the random initial parameters.
    pub init_std: f32,
    /// Most rows optimized in one batch.
    pub batch: usize,
    pub exemplars: usize,
    pub revcorr_samples: usize,
}

impl Default for ReceptiveOptions {
    fn default() -> Self {
        let t = Transforms::default();
        Self {
            sites: None,
            units: Units::default(),
            objective: "neuron".into(),
            steps: 512,
            param: Param::Fourier,
            lr: 0.05,
            jitter: t.jitter,
            pad: t.pad,
            scale: t.scale,
            rotate: t.rotate,
            l2: 1e-3,
            tv: 1e-2,
            blur: 0.0,
            neuron_param: Param::Pixel,
            neuron_transforms: false,
            decorrelate: true,
            init_std: 0.01,
            batch: 256,
            exemplars: 8,
            revcorr_samples: 20_000,
        }
    }
}

impl ReceptiveOptions {
    pub fn settings(&self) -> Settings {
        Settings {
            steps: self.steps,
            lr: self.lr,
            param: self.param,
            range: Range::Sigmoid,
            decorrelate: self.decorrelate,
            init_std: self.init_std,
            transforms: Transforms {
                jitter: self.jitter,
                pad: self.pad,
                scale: self.scale,
                rotate: self.rotate,
            },
            l2: self.l2,
            tv: self.tv,
            blur: self.blur,
            ..Settings::default()
        }
    }

    fn neuron(&self) -> Result<bool> {
        match self.objective.as_str() {
            "channel" => Ok(false),
            "neuron" => Ok(true),
            o => bail!("objective `{o}`: use channel or neuron"),
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

fn unit_label(site: &str, unit: usize, class_names: &[String]) -> String {
    if site == "logits" {
        if let Some(name) = class_names.get(unit) {
            return format!("{unit} {name}");
        }
    }
    format!("unit {unit}")
}

/// Maps the receptive fields of the study's sites (or `opts.sites`) and writes them to
/// `RUN/assays/receptive_fields/`.
pub fn receptive_fields(
    study: &Study,
    opts: &ReceptiveOptions,
    seed: u64,
) -> Result<ReceptiveSummary> {
    let net = &study.run.network;
    let device = &study.run.compute.device;
    let dataset = &study.run.data.dataset;
    let space = ImageSpace::of(dataset);
    let [c, h, w] = space.shape;
    let settings = opts.settings();
    let neuron = opts.neuron()?;
    let sites = opts.sites.clone().unwrap_or_else(|| study.sites.clone());
    let dir = study.out_dir("receptive_fields");
    let mut results = Vec::new();
    for site in &sites {
        let shape = net.plan().shape_at(site)?;
        let units = opts.units.resolve(site, shape.units())?;
        let objectives = unit_objectives(site, shape, &units, neuron);
        let is_neuron = neuron && matches!(shape, Shape::Map { .. });
        let settings = if is_neuron {
            Settings {
                param: opts.neuron_param,
                transforms: if opts.neuron_transforms {
                    settings.transforms.clone()
                } else {
                    Transforms::none()
                },
                ..settings.clone()
            }
        } else {
            settings.clone()
        };
        let labels: Vec<String> = units
            .iter()
            .map(|&u| unit_label(site, u, &dataset.class_names))
            .collect();

        // 1. Activation maximization, `batch` units at a time.
        let t0 = Instant::now();
        let mut pixels = Vec::new();
        let mut synthesized = Vec::new();
        for (i, chunk) in objectives.chunks(opts.batch.max(1)).enumerate() {
            let chunk_seed = seed.wrapping_add(i as u64);
            let s = synthesize(net, &space, chunk, None, &settings, chunk_seed, device)?;
            pixels.extend(s.pixels);
            synthesized.extend(s.objective);
        }
        let synthesis_seconds = t0.elapsed().as_secs_f64();

        // 2. Dataset exemplars by the same objective.
        let ex = exemplars(
            net,
            &study.examples,
            &objectives,
            opts.exemplars.max(1),
            device,
        )?;
        let best = ex.best();

        // 3. Reverse correlation of the centre neuron (the unit itself for a vector).
        let t1 = Instant::now();
        let sta = if opts.revcorr_samples > 0 {
            let rc = unit_objectives(site, shape, &units, true);
            let respond = |x: &Tensor<4>| {
                let b = x.dims()[0];
                let v = objective_values(net, &rc, x.clone(), device).expect("sites checked");
                Tensor::<2>::from_data(TensorData::new(v, [b, rc.len()]), device)
            };
            Some(spike_triggered_average(
                respond,
                space.shape,
                opts.revcorr_samples,
                1000,
                1.0,
                seed,
                device,
            ))
        } else {
            None
        };
        let revcorr_seconds = t1.elapsed().as_secs_f64();

        // Figures.
        let n = c * h * w;
        let image = |i: usize| pixels[i * n..(i + 1) * n].to_vec();
        let tiles: Vec<Tile> = (0..units.len())
            .map(|i| Tile::new(image(i), c, h, w, labels[i].clone()))
            .collect();
        let cols = (units.len() as f64).sqrt().ceil() as usize;
        let title = format!(
            "{} {site}: activation maximization ({}, {:?}, {} steps)",
            study.run.config.model.name,
            if is_neuron { "centre neuron" } else { "unit" },
            settings.param,
            opts.steps
        )
        .to_lowercase();
        save_png(
            &montage(
                &tiles,
                cols.max(4),
                Scaling::Fixed(0.0, 1.0),
                4,
                Some(&title),
            ),
            &dir.join(format!("{site}.png")),
        )?;
        for (i, &u) in units.iter().enumerate() {
            save_png(
                &tile_to_image(&tiles[i], Scaling::Fixed(0.0, 1.0), 8),
                &dir.join(site).join(format!("unit_{u:03}.png")),
            )?;
        }
        write_npy(
            &dir.join(format!("{site}.npy")),
            &[units.len(), c, h, w],
            &pixels,
        )?;
        let pixel_values = space.denormalize(&study.examples.images);
        let rows: Vec<(String, Vec<Tile>)> = (0..units.len())
            .map(|i| {
                let mut row = vec![Tile::new(
                    image(i),
                    c,
                    h,
                    w,
                    format!("{:.2}", synthesized[i]),
                )];
                for (k, &e) in ex.index[i].iter().enumerate() {
                    row.push(Tile::new(
                        pixel_values[e * n..(e + 1) * n].to_vec(),
                        c,
                        h,
                        w,
                        format!("{:.2}", ex.value[i][k]),
                    ));
                }
                (labels[i].clone(), row)
            })
            .collect();
        save_png(
            &side_by_side(&rows, Scaling::Fixed(0.0, 1.0), 3),
            &dir.join(format!("{site}_exemplars.png")),
        )?;
        if let Some(sta) = &sta {
            let maps: Vec<Tile> = (0..units.len())
                .map(|i| Tile::new(sta.map(i).to_vec(), c, h, w, labels[i].clone()))
                .collect();
            let title = format!("{site}: reverse correlation ({} noise images)", sta.samples);
            save_png(
                &montage(&maps, cols.max(4), Scaling::Symmetric, 4, Some(&title)),
                &dir.join(format!("{site}_revcorr.png")),
            )?;
            write_npy(
                &dir.join(format!("{site}_revcorr.npy")),
                &[units.len(), c, h, w],
                &sta.maps,
            )?;
        }
        let unit_results: Vec<UnitResult> = units
            .iter()
            .enumerate()
            .map(|(i, &u)| UnitResult {
                unit: u,
                label: labels[i].clone(),
                synthesized: synthesized[i],
                best_dataset: best[i],
                best_dataset_index: ex.index[i].first().copied(),
                exemplars: ex.index[i].clone(),
            })
            .collect();
        let beats_dataset = unit_results
            .iter()
            .filter(|u| u.synthesized > u.best_dataset)
            .count();
        results.push(SiteResult {
            site: site.clone(),
            shape: shape.to_string(),
            units: unit_results,
            beats_dataset,
            synthesis_seconds,
            revcorr_seconds,
        });
    }
    let summary = ReceptiveSummary {
        options: ReceptiveOptions {
            sites: Some(sites),
            ..opts.clone()
        },
        seed,
        split: study.split.clone(),
        examples: study.examples.len(),
        sites: results,
    };
    write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
}

pub fn run(args: ReceptiveArgs) -> Result<()> {
    let mut study = Study::open(&args.study)?;
    if args.study.sites.is_empty() {
        study.sites = default_sites(study.run.network.plan());
    }
    let opts = match &args.options {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{} is not a ReceptiveOptions table", path.display()))?
        }
        None => ReceptiveOptions {
            units: args.units.parse()?,
            steps: args.steps,
            param: args.param.parse()?,
            lr: args.lr,
            objective: args.objective.clone(),
            exemplars: args.exemplars,
            revcorr_samples: args.revcorr_samples,
            ..ReceptiveOptions::default()
        },
    };
    let summary = receptive_fields(&study, &opts, args.study.seed)?;
    for s in &summary.sites {
        println!(
            "{:<10} {:>4} units  synthesized beats best dataset image for {}/{}  ({:.1} s ascent, {:.1} s reverse correlation)",
            s.site,
            s.units.len(),
            s.beats_dataset,
            s.units.len(),
            s.synthesis_seconds,
            s.revcorr_seconds
        );
    }
    println!(
        "outputs in {}/",
        study.out_dir("receptive_fields").display()
    );
    Ok(())
}

/// The activation-maximization benchmark, mirroring `../shared/bench/torch_actmax.py`:
/// all 32 conv2 channels of a randomly initialised cnn-small, one 1x28x28 image per
/// channel in one batch, Adam lr 0.05, 256 steps, objective the channel's spatial mean
/// after the relu minus `1e-3 * sum(img^2)` minus `1e-2 * TV` (TV averaged over the whole
/// batch), a random roll of up to 2 pixels per step. Returns the median seconds of 3 runs
/// after a warm-up, and the steps per run (`insilico bench actmax`).
pub fn bench_actmax(device: &Device) -> Result<(f64, usize)> {
    const CHANNELS: usize = 32;
    const STEPS: usize = 256;
    let cfg = load_config("cnn-small", &[])?;
    device.seed(0);
    let net = Network::new(&cfg.model, [1, 28, 28], device)?;
    let objectives: Vec<Objective> = (0..CHANNELS)
        .map(|u| Objective::channel("conv2.relu", u))
        .collect();
    let space = ImageSpace::standard([1, 28, 28]);
    let pixels = (28 * 28) as f32;
    let settings = Settings {
        steps: STEPS,
        lr: 0.05,
        param: Param::Pixel,
        range: Range::Free,
        decorrelate: false,
        init_std: 0.01,
        transforms: Transforms::jitter_only(2),
        // Ours are per-image means; the reference sums the squares over the batch and
        // averages TV over the batch: the same loss.
        l2: 1e-3 * pixels,
        tv: 1e-2 / CHANNELS as f32,
        ..Settings::default()
    };
    let once = || synthesize(&net, &space, &objectives, None, &settings, 0, device).map(|_| ());
    once()?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        once()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((times[1], STEPS))
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
        assert_eq!(o.lr, 0.05);
        let all: ReceptiveOptions = toml::from_str("units = \"all\"").unwrap();
        assert_eq!(all.units.resolve("conv1", 3).unwrap(), vec![0, 1, 2]);
        assert!(toml::from_str::<ReceptiveOptions>("stepz = 3").is_err());
        assert!(Units::List(vec![20]).resolve("conv1", 16).is_err());
    }

    /// Timing only, not an assertion: `cargo test -p insilico --release bench_actmax -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_actmax_prints_its_time() {
        let (s, steps) = bench_actmax(&Device::flex()).unwrap();
        println!(
            "{{\"bench\": \"actmax-conv2\", \"seconds\": {s:.3}, \"steps_per_s\": {:.1}}}",
            steps as f64 / s
        );
    }
}
