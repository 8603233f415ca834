//! The effective-receptive-field assay (Luo et al. 2016): the gradient of each site's
//! centre unit with respect to the input, averaged over images and units, for the trained
//! network and for its initialization; its size against the theoretical receptive field.
//! The computation is `insilico_assays::erf`.

use crate::options::Options;
use crate::registry::{existing_figures, Assay, AssayKind, Figure};
use crate::study::Study;
use anyhow::Result;
use insilico_assays::erf::{effective_receptive_fields, Erf, ErfOptions};
use insilico_engine::{Network, RunDir};
use insilico_report::tuning::{erf_montage, erf_size_figure, ErfRow};
use insilico_report::{write_csv, write_json};
use serde::Serialize;

impl Options for ErfOptions {
    const SECTION: &'static str = "erf";
    fn validate(&self) -> Result<()> {
        ErfOptions::validate(self)
    }
}

/// Effective receptive fields of the trained and the untrained network (`erf.json`).
#[derive(Clone, Debug, Serialize)]
pub struct ErfResult {
    pub trained: Vec<Erf>,
    /// The same config initialized with the run's seed: the network before training.
    pub untrained: Vec<Erf>,
}

/// The effective-receptive-field assay in the registry.
pub struct EffectiveReceptiveFields;

impl Assay for EffectiveReceptiveFields {
    const KIND: AssayKind = AssayKind::Erf;
    const COMMAND: &'static str = "erf";
    const ABOUT: &'static str =
        "Effective receptive fields: input gradients of each site's centre units, trained vs untrained";
    const LONG_ABOUT: &'static str =
        "The gradient of a site's centre unit (the centre position of a \
        feature map, or each unit of a vector) with respect to the input, its magnitude averaged \
        over images and over the site's units (Luo et al. 2016), for the trained network and for \
        the same config initialized with the run's seed. Its size (the radius and the square \
        around the centre holding --mass, 95 %, of the gradient mass) is set against the \
        theoretical receptive field computed from the plan. The gradient follows PyTorch's \
        conventions: a ReLU at 0 passes none, and a max pool whose window holds tied maxima \
        passes it to the first in row order; on images with a flat background (MNIST's) many \
        windows tie, which can lay a faint grid over the maps. Where no gradient reaches the \
        input on any of the images (the site's units inactive at the centre, or a silent \
        layer below), the size and radius are NaN (null in erf.json) and the map is labelled \
        so. Writes RUN/assays/erf/: erf.csv, erf.json, \
        erf.png (maps per layer, trained and untrained) and erf_size.png/.svg.";
    const EXAMPLES: &'static str = "Example:\n  insilico erf --run runs/cnn --gradient-images 64";
    const RESULT_FILE: &'static str = "erf.json";
    type Options = ErfOptions;
    type Output = ErfResult;

    fn run(study: &Study, options: &ErfOptions) -> Result<ErfResult> {
        options.validate()?;
        let device = &study.run.compute.device;
        let n = options.gradient_images.min(study.examples.len());
        let images = study.examples.range(0, n, device);
        let config = &study.run.config;
        device.seed(config.training.seed);
        let untrained = Network::new(&config.model, study.examples.shape, device)?;
        let net = &study.run.network;
        let result = ErfResult {
            trained: effective_receptive_fields(net, &study.sites, &images, options)?,
            untrained: effective_receptive_fields(&untrained, &study.sites, &images, options)?,
        };
        write_outputs(study, &result, options.mass)?;
        Ok(result)
    }

    fn describe(r: &ErfResult) -> Vec<String> {
        r.trained
            .iter()
            .zip(&r.untrained)
            .flat_map(|(a, b)| {
                let line = format!(
                    "{:<12} theoretical {:>3} px  effective size trained {:>5.1}, untrained {:>5.1}  radius {:.1} / {:.1}",
                    a.site, a.theoretical_size, a.size, b.size, a.radius, b.radius
                );
                let silent = [("trained", a), ("untrained", b)]
                    .into_iter()
                    .filter(|(_, e)| e.silent())
                    .map(|(net, e)| {
                        format!(
                            "  {}, {net}: no gradient reaches the input on any of the {} images (its units are inactive at the centre, or a layer below passes none)",
                            e.site, e.images
                        )
                    });
                std::iter::once(line).chain(silent)
            })
            .collect()
    }

    fn gallery(run: &RunDir) -> Vec<Figure> {
        existing_figures(
            run,
            Self::KIND,
            &[
                (
                    "erf.png",
                    "effective receptive fields per layer, trained and untrained",
                ),
                (
                    "erf_size.png",
                    "effective against theoretical receptive-field size",
                ),
            ],
        )
    }
}

fn write_outputs(study: &Study, r: &ErfResult, mass: f64) -> Result<()> {
    let dir = study.out_dir("erf");
    let mut rows = Vec::new();
    for (net, erfs) in [("trained", &r.trained), ("untrained", &r.untrained)] {
        for e in erfs.iter() {
            rows.push(vec![
                e.site.clone(),
                net.to_string(),
                e.theoretical_size.to_string(),
                format!("{:.4}", e.size),
                format!("{:.4}", e.radius),
                format!("{}", e.mass),
                e.images.to_string(),
                e.units.to_string(),
            ]);
        }
    }
    let header = [
        "site",
        "network",
        "theoretical_size_px",
        "effective_size_px",
        "effective_radius_px",
        "mass",
        "images",
        "units",
    ];
    write_csv(&dir.join("erf.csv"), &header, &rows)?;
    write_json(&dir.join("erf.json"), r)?;
    let montage: Vec<ErfRow> = r
        .trained
        .iter()
        .zip(&r.untrained)
        .map(|(a, b)| ErfRow {
            site: a.site.clone(),
            shape: a.shape,
            maps: [("trained", a), ("untrained", b)]
                .map(|(net, e)| {
                    let label = match e.silent() {
                        true => format!("{net}: no gradient"),
                        false => net.to_string(),
                    };
                    (label, e.map.clone())
                })
                .into(),
        })
        .collect();
    erf_montage(&montage, 6, &dir.join("erf.png"))?;
    let points = |e: &[Erf]| {
        e.iter()
            .map(|e| (e.theoretical_size as f64, e.size))
            .collect()
    };
    erf_size_figure(
        &[
            ("trained".into(), points(&r.trained)),
            ("untrained".into(), points(&r.untrained)),
        ],
        mass,
        &dir.join("erf_size"),
    )?;
    Ok(())
}
