//! The population assay: how many dimensions each site's representation uses, and how
//! well the class can be read out of its leading ones. For every site: the PCA spectrum
//! (explained and cumulative variance), the participation ratio, the components for
//! 90/95/99 % of the variance, cross-validated linear decodability of the class from the
//! top k components (k = 1, 2, 4, ..., all), and 2-D embeddings (PCA and t-SNE) coloured
//! by class.

use crate::options::{at_least, finite, Options};
use crate::registry::{existing_figures, Assay, AssayKind, Figure};
use crate::study::Study;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use insilico_data::fsx::EarlierOutputs;
use insilico_engine::memory::{available_memory, check_fits};
use insilico_engine::{Activation, RunDir};
use insilico_population::{
    decodability_of, pca_of, tsne, Decodability, Matrix, Pca, Prepared, Reduction, RidgeOptions,
    Spectrum, TsneOptions, MIN_PERPLEXITY,
};
use insilico_report::{write_csv, write_json, write_npy, LinePlot, Scatter, Series};
use serde::{Deserialize, Serialize};

/// How a feature map becomes one vector per stimulus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MapReduction {
    /// Each channel averaged over positions: one unit per channel.
    SpatialMean,
    /// Every (channel, position) a unit, channel-major (PyTorch's flatten).
    Flatten,
}

impl MapReduction {
    pub fn reduction(self) -> Reduction {
        match self {
            MapReduction::SpatialMean => Reduction::SpatialMean,
            MapReduction::Flatten => Reduction::Flatten,
        }
    }
}

impl std::fmt::Display for MapReduction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MapReduction::SpatialMean => "spatial-mean",
            MapReduction::Flatten => "flatten",
        })
    }
}

/// A recorded activation as a `[stimuli, units]` matrix (f64), feature maps reduced.
pub fn to_matrix(act: &Activation, reduction: MapReduction) -> Result<Matrix> {
    let dims = act.dims();
    let values = act.to_vec();
    Ok(match dims[..] {
        [n, c, h, w] => {
            let v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
            Matrix::from_conv_map([n, c, h, w], &v, reduction.reduction())?
        }
        [n, u] => Matrix::from_row_major_f32(n, u, &values)?,
        _ => anyhow::bail!("an activation of shape {dims:?} is neither a map nor a vector"),
    })
}

/// Options of the population assay (`insilico population`, `[assays.population]`).
#[derive(Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PopulationOptions {
    /// Feature maps: spatial-mean (a unit per channel) or flatten (a unit per channel and
    /// position; with more units than stimuli the algebra is on n x n Gram matrices, whose
    /// cost grows as n^3: half a minute for cnn-small at 2,000 images).
    #[arg(long, value_enum, default_value_t = PopulationOptions::default().reduction)]
    pub reduction: MapReduction,
    /// Cross-validation folds of the class decoder (stratified).
    #[arg(long, default_value_t = PopulationOptions::default().folds)]
    pub folds: usize,
    /// Stimuli embedded by t-SNE and shown in the PCA embedding (the first ones of the
    /// study; exact t-SNE costs n^2); 0 skips t-SNE and shows every stimulus.
    #[arg(long, default_value_t = PopulationOptions::default().tsne_stimuli)]
    pub tsne_stimuli: usize,
    /// t-SNE perplexity: at least 1 (e^entropy of a stimulus's distribution over its
    /// neighbours, never below 1), and below a third of the embedded stimuli.
    #[arg(long, default_value_t = PopulationOptions::default().perplexity)]
    pub perplexity: f64,
}

impl Default for PopulationOptions {
    fn default() -> Self {
        Self {
            reduction: MapReduction::SpatialMean,
            folds: 5,
            tsne_stimuli: 1000,
            perplexity: TsneOptions::default().perplexity,
        }
    }
}

impl Options for PopulationOptions {
    const SECTION: &'static str = "population";
    fn validate(&self) -> Result<()> {
        at_least(Self::SECTION, "folds", self.folds, 2)?;
        // A perplexity is e^entropy of a stimulus's distribution over its neighbours: never
        // below 1. `finite` first: NaN passes any comparison.
        finite(Self::SECTION, "perplexity", self.perplexity)?;
        at_least(Self::SECTION, "perplexity", self.perplexity, MIN_PERPLEXITY)?;
        if self.tsne_stimuli > 0 && (self.tsne_stimuli as f64 - 1.0) / 3.0 <= self.perplexity {
            anyhow::bail!(
                "population.tsne_stimuli = {}: t-SNE at perplexity {} needs more than {} stimuli",
                self.tsne_stimuli,
                self.perplexity,
                (3.0 * self.perplexity + 1.0).ceil()
            );
        }
        Ok(())
    }
}

/// One site's population measures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SitePopulation {
    pub site: String,
    pub units: usize,
    pub spectrum: Spectrum,
    pub decoding: Decodability,
    /// Stimuli in the embeddings (the first of the study's).
    pub embedded: usize,
}

/// The population assay's result (`population.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PopulationResult {
    pub options: PopulationOptions,
    pub stimuli: usize,
    pub sites: Vec<SitePopulation>,
}

/// The population assay in the registry.
pub struct Population;

impl Assay for Population {
    const KIND: AssayKind = AssayKind::Population;
    const COMMAND: &'static str = "population";
    const ABOUT: &'static str =
        "Dimensionality of each site: PCA spectrum, participation ratio, class decodability, embeddings";
    const LONG_ABOUT: &'static str = "For every site: the PCA spectrum of its responses to the \
        study's stimuli (explained and cumulative variance; covariances in f64), the \
        participation ratio (sum l)^2 / sum l^2, the number of components for 90, 95 and 99 % \
        of the variance, the cross-validated accuracy of a linear (ridge) classifier reading \
        the class from the top k principal components (k = 1, 2, 4, ..., all; PCA fitted on \
        each training fold), and 2-D embeddings by PCA and t-SNE coloured by class. Feature \
        maps are reduced by their spatial mean (--reduction flatten keeps every position). \
        The PCA embedding shows the first --tsne-stimuli stimuli on the first two principal \
        components of all of them (the spectrum's); t-SNE embeds those first stimuli. Writes \
        RUN/assays/population/: summary.csv, spectrum.csv, decoding.csv, population.json, \
        embedding_<site>.npy (a row per embedded stimulus: PC 1, PC 2, t-SNE 1, t-SNE 2 (NaN \
        without t-SNE), label) and spectrum.png, decoding.png (with chance), \
        eigenspectrum.png (log-log), embedding_pca_<site>.png, embedding_tsne_<site>.png \
        (+ .svg).";
    const EXAMPLES: &'static str =
        "Examples:\n  insilico population --run runs/demo --split test --images 2000\n  insilico population --run runs/cnn --reduction flatten --tsne-stimuli 0";
    const RESULT_FILE: &'static str = "population.json";
    type Options = PopulationOptions;
    type Output = PopulationResult;

    fn run(study: &Study, options: &PopulationOptions) -> Result<PopulationResult> {
        population(study, options)
    }

    fn describe(result: &PopulationResult) -> Vec<String> {
        result
            .sites
            .iter()
            .map(|s| {
                let best = s.decoding.accuracy.last().copied().unwrap_or(f64::NAN);
                format!(
                    "{:<12} {:>5} units  participation ratio {:.2}  components for 90/95/99 %: {}/{}/{}  decoding {:.3} (chance {:.3})",
                    s.site,
                    s.units,
                    s.spectrum.participation_ratio,
                    s.spectrum.components_90,
                    s.spectrum.components_95,
                    s.spectrum.components_99,
                    best,
                    s.decoding.chance
                )
            })
            .collect()
    }

    fn gallery(run: &RunDir) -> Vec<Figure> {
        existing_figures(
            run,
            Self::KIND,
            &[
                (
                    "spectrum.png",
                    "cumulative fraction of variance of the top k principal components, by site",
                ),
                (
                    "eigenspectrum.png",
                    "variance of each principal component, log-log (a power law is a line)",
                ),
                (
                    "decoding.png",
                    "cross-validated class decoding from the top k components",
                ),
            ],
        )
    }
}

/// Runs the population assay on a study and writes its outputs.
pub fn population(study: &Study, opts: &PopulationOptions) -> Result<PopulationResult> {
    opts.validate()?;
    let earlier = EarlierOutputs::default().note(&study.out_dir("population"), is_output)?;
    let labels: Vec<usize> = study.examples.labels.iter().map(|&l| l as usize).collect();
    let mut sites = Vec::new();
    // Seconds per site (the decoder's folds, t-SNE), minutes with flattened maps.
    let bar = crate::progress::bar(study.sites.len() as u64, "sites");
    for site in &study.sites {
        bar.set_message(site.clone());
        let x = to_matrix(&study.record(site)?, opts.reduction)
            .with_context(|| format!("site {site}"))?;
        let ridge = RidgeOptions {
            folds: opts.folds,
            ..RidgeOptions::default()
        };
        fits_in_memory(site, &x, available_memory())?;
        // One centred copy and one Gram matrix for both (dropped before t-SNE).
        let prepared = Prepared::new(&x);
        let pca = pca_of(&prepared).with_context(|| format!("site {site}"))?;
        let decoding =
            decodability_of(&prepared, &labels, &ridge).with_context(|| format!("site {site}"))?;
        drop(prepared);
        let embedded = embed(study, site, &x, &pca, &labels, opts)?;
        sites.push(SitePopulation {
            site: site.clone(),
            units: x.units(),
            spectrum: pca.spectrum,
            decoding,
            embedded,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let result = PopulationResult {
        options: opts.clone(),
        stimuli: labels.len(),
        sites,
    };
    write_outputs(study, &result)?;
    // A rerun with fewer sites, or without t-SNE, would leave the old embeddings.
    earlier.remove_unwritten()?;
    Ok(result)
}

/// Whether a file in the population folder is one this assay writes (not the registry's
/// `done.json` or lock, nor a `--checkpoints` step folder).
fn is_output(name: &str) -> bool {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    name.starts_with("embedding_")
        || [
            "summary",
            "spectrum",
            "eigenspectrum",
            "decoding",
            "population",
        ]
        .contains(&stem)
}

/// Refuses a site whose PCA cannot fit in `available` bytes (`None`: unknown, accept)
/// before it starts: the responses and their centred copy (f64), and the smaller Gram
/// matrix with its eigenvectors, `min(n, units)^2` each (a flattened conv map at 60,000
/// stimuli: 29 GB apiece). A lower bound, so that a refusal is certain.
fn fits_in_memory(site: &str, x: &Matrix, available: Option<u64>) -> Result<()> {
    let Some(available) = available else {
        return Ok(());
    };
    let (n, units) = (x.stimuli() as f64, x.units() as f64);
    let side = n.min(units);
    check_fits(
        &format!("the population of {site} ({n} stimuli x {units} units)"),
        (
            2.0 * 8.0 * n * units,
            "the responses and their centred copy",
        ),
        (
            2.0 * 8.0 * side * side,
            "the Gram matrix and its eigenvectors",
        ),
        "use fewer stimuli (--images), or --reduction spatial-mean for a conv map",
        available,
    )
}

/// PCA and t-SNE embeddings of the first stimuli: `embedding_<site>.npy` and a figure. The
/// PCA scores are on the principal components of all the study's stimuli (`pca`, those of the
/// spectrum), so that the axes are the spectrum's first two; t-SNE sees the first stimuli only
/// (its cost grows as n^2).
fn embed(
    study: &Study,
    site: &str,
    x: &Matrix,
    pca: &Pca,
    labels: &[usize],
    opts: &PopulationOptions,
) -> Result<usize> {
    let n = if opts.tsne_stimuli == 0 {
        x.stimuli()
    } else {
        opts.tsne_stimuli.min(x.stimuli())
    };
    let tsne_xy = if opts.tsne_stimuli > 0 {
        let head = x.first_stimuli(n);
        let o = TsneOptions {
            perplexity: opts.perplexity,
            ..TsneOptions::default()
        };
        Some(tsne(&head, &o).with_context(|| format!("site {site}"))?)
    } else {
        None
    };
    let pca_xy = &pca.scores[..n];
    let dir = study.out_dir("population");
    let mut table = Vec::with_capacity(n * 5);
    for i in 0..n {
        let t = tsne_xy.as_ref().map_or([f64::NAN; 2], |t| t[i]);
        table.extend([pca_xy[i][0], pca_xy[i][1], t[0], t[1], labels[i] as f64].map(|v| v as f32));
    }
    write_npy(&dir.join(format!("embedding_{site}.npy")), &[n, 5], &table)?;
    let pc = |k: usize| match pca.spectrum.explained.get(k) {
        Some(e) => format!("PC {} ({:.1} % of variance)", k + 1, 100.0 * e),
        None => format!("PC {} (no variance)", k + 1),
    };
    let scatter = Embedding {
        site,
        stimuli: x.stimuli(),
        labels: &labels[..n],
    };
    scatter.draw(study, ("PCA", "pca"), [pc(0), pc(1)], pca_xy)?;
    if let Some(t) = &tsne_xy {
        let axes = ["t-SNE 1".to_string(), "t-SNE 2".to_string()];
        scatter.draw(study, ("t-SNE", "tsne"), axes, t)?;
    }
    Ok(n)
}

/// A 2-D embedding's figure: the first stimuli of a site, coloured by class.
struct Embedding<'a> {
    site: &'a str,
    /// All the study's stimuli (the embedding shows the first `labels.len()`).
    stimuli: usize,
    labels: &'a [usize],
}

impl Embedding<'_> {
    /// `embedding_<stem>_<site>.png` (+ .svg) of the points `xy`.
    fn draw(
        &self,
        study: &Study,
        (what, stem): (&str, &str),
        [x_label, y_label]: [String; 2],
        xy: &[[f64; 2]],
    ) -> Result<()> {
        let (model, site, n) = (&study.run.config.model.name, self.site, self.labels.len());
        let title = if n == self.stimuli {
            format!("{model} {site}: {what} of {n} stimuli")
        } else {
            format!(
                "{model} {site}: {what}, first {n} of {} stimuli",
                self.stimuli
            )
        };
        let mut plot = Scatter::new(&title, &x_label, &y_label);
        for (c, name) in study.run.data.dataset.class_names.iter().enumerate() {
            let pts: Vec<(f64, f64)> = (0..n)
                .filter(|&i| self.labels[i] == c)
                .map(|i| (xy[i][0], xy[i][1]))
                .collect();
            plot = plot.group(name, pts);
        }
        let dir = study.out_dir("population");
        plot.save(&dir.join(format!("embedding_{stem}_{site}")))?;
        Ok(())
    }
}

fn write_outputs(study: &Study, result: &PopulationResult) -> Result<()> {
    let dir = study.out_dir("population");
    let mut summary = Vec::new();
    let mut spectra = Vec::new();
    let mut decoding = Vec::new();
    for s in &result.sites {
        let sp = &s.spectrum;
        summary.push(vec![
            s.site.clone(),
            s.units.to_string(),
            format!("{:.6}", sp.participation_ratio),
            sp.components_90.to_string(),
            sp.components_95.to_string(),
            sp.components_99.to_string(),
            format!(
                "{:.6}",
                s.decoding.accuracy.last().copied().unwrap_or(f64::NAN)
            ),
            format!("{:.6}", s.decoding.chance),
        ]);
        for (k, ((l, e), c)) in sp
            .eigenvalues
            .iter()
            .zip(&sp.explained)
            .zip(&sp.cumulative)
            .enumerate()
        {
            spectra.push(vec![
                s.site.clone(),
                (k + 1).to_string(),
                format!("{l:.9e}"),
                format!("{e:.9}"),
                format!("{c:.9}"),
            ]);
        }
        for (k, a) in s.decoding.components.iter().zip(&s.decoding.accuracy) {
            decoding.push(vec![s.site.clone(), k.to_string(), format!("{a:.6}")]);
        }
    }
    let header = [
        "site",
        "units",
        "participation_ratio",
        "components_90",
        "components_95",
        "components_99",
        "decoding_all",
        "chance",
    ];
    write_csv(&dir.join("summary.csv"), &header, &summary)?;
    let header = ["site", "component", "eigenvalue", "explained", "cumulative"];
    write_csv(&dir.join("spectrum.csv"), &header, &spectra)?;
    write_csv(
        &dir.join("decoding.csv"),
        &["site", "components", "accuracy"],
        &decoding,
    )?;
    write_json(&dir.join("population.json"), result)?;
    draw(study, result)
}

fn draw(study: &Study, result: &PopulationResult) -> Result<()> {
    let dir = study.out_dir("population");
    let who = study.who();
    let mut spectrum = LinePlot::new(
        &format!("{who}: PCA spectrum"),
        "principal component",
        "cumulative fraction of variance",
    )
    .log_x(true)
    .y_range(0.0, 1.0);
    let mut eigenspectrum = LinePlot::new(
        &format!("{who}: eigenspectrum"),
        "principal component",
        "fraction of variance",
    )
    .log_x(true)
    .log_y(true);
    let mut decoding = LinePlot::new(
        &format!("{who}: class decoding from the top components"),
        "principal components kept",
        &format!("{}-fold cross-validated accuracy", result.options.folds),
    )
    .log_x(true)
    .y_range(0.0, 1.0);
    // Chance is the same for every site (the same labels); drawn first, under the data.
    if let Some(first) = result.sites.first() {
        let widest = result
            .sites
            .iter()
            .flat_map(|s| s.decoding.components.last());
        let last = widest.copied().max().unwrap_or(1) as f64;
        let chance = first.decoding.chance;
        decoding = decoding.series(
            Series::new(
                format!("chance ({chance:.3})"),
                vec![1.0, last],
                vec![chance; 2],
            )
            .as_reference(),
        );
    }
    for (i, s) in result.sites.iter().enumerate() {
        let k: Vec<f64> = (1..=s.spectrum.cumulative.len())
            .map(|k| k as f64)
            .collect();
        spectrum = spectrum.series(
            Series::new(
                format!("{} (PR {:.1})", s.site, s.spectrum.participation_ratio),
                k.clone(),
                s.spectrum.cumulative.clone(),
            )
            .with_color(i),
        );
        eigenspectrum = eigenspectrum
            .series(Series::new(s.site.clone(), k, s.spectrum.explained.clone()).with_color(i));
        let ks = s.decoding.components.iter().map(|&k| k as f64).collect();
        decoding = decoding.series(
            Series::new(s.site.clone(), ks, s.decoding.accuracy.clone())
                .with_markers(true)
                .with_color(i),
        );
    }
    spectrum.save(&dir.join("spectrum"))?;
    eigenspectrum.save(&dir.join("eigenspectrum"))?;
    decoding.save(&dir.join("decoding"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_output, PopulationOptions};
    use crate::options::Options;
    use insilico_population::MIN_PERPLEXITY;

    #[test]
    fn only_the_assays_own_files_are_claimed_for_removal_on_a_rerun() {
        for name in [
            "summary.csv",
            "spectrum.csv",
            "spectrum.png",
            "eigenspectrum.svg",
            "decoding.csv",
            "population.json",
            "embedding_conv1.relu.npy",
            "embedding_tsne_fc1.png",
        ] {
            assert!(is_output(name), "{name}");
        }
        for name in [
            "done.json",
            ".lock",
            "notes.txt",
            "checkpoints",
            "summary_old.txt",
        ] {
            assert!(!is_output(name), "{name}");
        }
    }

    #[test]
    fn a_perplexity_below_one_is_refused_naming_it() {
        // e^entropy of any distribution is at least e^0 = 1.
        for perplexity in [1e-5, 0.5, 0.0, -2.0, f64::NAN] {
            let options = PopulationOptions {
                perplexity,
                ..Default::default()
            };
            let err = format!("{:#}", options.validate().unwrap_err());
            let named = format!("population.perplexity = {perplexity}");
            assert!(err.contains(&named), "{perplexity}: {err}");
        }
        let lowest = PopulationOptions {
            perplexity: MIN_PERPLEXITY,
            ..Default::default()
        };
        lowest.validate().unwrap();
    }

    /// 1,000 stimuli x 2,000 units: 2 x 8 x 2e6 = 32 MB of responses, and a 1,000 x 1,000
    /// Gram matrix with its eigenvectors, 2 x 8 x 1e6 = 16 MB: 48 MB in all.
    #[test]
    fn a_site_whose_pca_cannot_fit_is_refused_naming_it() {
        let x =
            insilico_population::Matrix::from_row_major(1000, 2000, &vec![0.0; 2_000_000]).unwrap();
        assert!(super::fits_in_memory("conv1.relu", &x, Some(48_000_000)).is_ok());
        let err = super::fits_in_memory("conv1.relu", &x, Some(47_999_999))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("conv1.relu") && err.contains("--images"),
            "{err}"
        );
        assert!(super::fits_in_memory("conv1.relu", &x, None).is_ok());
    }
}
