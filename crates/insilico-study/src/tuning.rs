//! The tuning assay (Hubel and Wiesel's, in silico): drifting sinusoidal gratings and
//! bars over orientation x spatial frequency x phase at each unit's receptive-field
//! centre; per unit the tuning curve, preferred orientation and frequency, orientation
//! selectivity index, bandwidth and a von Mises fit; per site histograms and a
//! preferred-orientation summary. The computation is `insilico_assays::tuning`.

use crate::options::Options;
use crate::registry::{existing_figures, Assay, AssayKind, Figure};
use crate::study::Study;
use anyhow::Result;
use insilico_assays::receptive::ImageSpace;
use insilico_assays::tuning::{tuning, Tuning, TuningOptions};
use insilico_engine::RunDir;
use insilico_report::tuning::{
    preferred_orientation_figure, tuning_gallery, tuning_histograms, CurvePanel,
};
use insilico_report::{write_csv, write_json};

impl Options for TuningOptions {
    const SECTION: &'static str = "tuning";
    fn validate(&self) -> Result<()> {
        TuningOptions::validate(self)
    }
}

/// The tuning assay in the registry.
pub struct TuningCurves;

impl Assay for TuningCurves {
    const KIND: AssayKind = AssayKind::Tuning;
    const COMMAND: &'static str = "tuning";
    const ABOUT: &'static str =
        "Orientation and frequency tuning to gratings and bars at each unit's receptive-field centre";
    const LONG_ABOUT: &'static str =
        "Drifting-phase sinusoidal gratings and bars over orientation \
        (16 angles over 180 degrees by default) x spatial frequency x phase, centred on each \
        site's receptive-field centre (computed from the network's plan), all as batches \
        through the hooks. A unit's response is its value at the centre position of its map, \
        averaged over phases. Per unit: the orientation tuning curve, preferred orientation \
        (doubled-angle vector sum; none for a curve flat within float32 rounding) and \
        frequency, orientation selectivity index (1 - circular variance), bandwidth (the half \
        width at which the curve falls to 1/sqrt(2) of its peak, as Ringach et al. 2002: of a \
        fitted von Mises curve, and read off the samples; 90 where it never falls that low), \
        F1/F0. The OSI, bandwidths and F1/F0 are defined for non-negative responses: NaN at \
        a site before its ReLU. Writes RUN/assays/tuning/: units.csv, \
        sites.csv, tuning.json, gallery_<site>_<protocol>.png, tuning_osi.png, \
        tuning_bandwidth.png and preferred_orientation.png (+ .svg).";
    const EXAMPLES: &'static str = "Examples:\n  insilico tuning --run runs/cnn\n  insilico tuning --run runs/cnn --protocols grating --orientations 32 --contrasts 0.25,0.5,1";
    const RESULT_FILE: &'static str = "tuning.json";
    type Options = TuningOptions;
    type Output = Tuning;

    fn run(study: &Study, options: &TuningOptions) -> Result<Tuning> {
        options.validate()?;
        let space = ImageSpace::of(&study.run.data.dataset);
        let device = &study.run.compute.device;
        let t = tuning(&study.run.network, &study.sites, &space, options, device)?;
        write_outputs(study, &t)?;
        Ok(t)
    }

    fn describe(t: &Tuning) -> Vec<String> {
        t.sites
            .iter()
            .map(|s| {
                format!(
                    "{:<12} {:<8} responsive {:>3}/{:<3} median OSI {:.2}  median bandwidth {:.1} deg  cardinal {:.2}",
                    s.site,
                    s.protocol.name(),
                    s.summary.responsive_units,
                    s.units.len(),
                    s.summary.median_osi,
                    s.summary.median_bandwidth,
                    s.summary.cardinal_fraction
                )
            })
            .collect()
    }

    fn gallery(run: &RunDir) -> Vec<Figure> {
        existing_figures(
            run,
            Self::KIND,
            &[
                ("tuning_osi.png", "orientation selectivity index per site"),
                (
                    "preferred_orientation.png",
                    "preferred orientations per site",
                ),
            ],
        )
    }
}

fn write_outputs(study: &Study, t: &Tuning) -> Result<()> {
    let dir = study.out_dir("tuning");
    let mut units = Vec::new();
    let mut sites = Vec::new();
    for s in &t.sites {
        for u in &s.units {
            units.push(vec![
                s.site.clone(),
                s.protocol.name().to_string(),
                u.unit.to_string(),
                u.silent.to_string(),
                format!("{:.6}", u.osi),
                format!("{:.4}", u.preferred_orientation),
                format!("{:.6}", u.preferred_frequency),
                format!("{:.4}", u.bandwidth),
                format!("{:.4}", u.sampled_bandwidth),
                format!("{:.6}", u.modulation_ratio),
            ]);
        }
        sites.push(vec![
            s.site.clone(),
            s.protocol.name().to_string(),
            s.units.len().to_string(),
            s.summary.responsive_units.to_string(),
            format!("{:.6}", s.summary.median_osi),
            format!("{:.4}", s.summary.median_bandwidth),
            format!("{:.4}", s.summary.cardinal_fraction),
        ]);
    }
    let header = [
        "site",
        "protocol",
        "unit",
        "silent",
        "osi",
        "preferred_orientation_deg",
        "preferred_frequency_cycles_per_px",
        "bandwidth_deg",
        "sampled_bandwidth_deg",
        "f1_f0",
    ];
    write_csv(&dir.join("units.csv"), &header, &units)?;
    let header = [
        "site",
        "protocol",
        "units",
        "responsive",
        "median_osi",
        "median_bandwidth_deg",
        "cardinal_fraction",
    ];
    write_csv(&dir.join("sites.csv"), &header, &sites)?;
    write_json(&dir.join("tuning.json"), t)?;
    draw(study, t)
}

/// A gallery of (at most 32) tuning curves per site and protocol, the OSI and bandwidth
/// histograms and the preferred orientations.
fn draw(study: &Study, t: &Tuning) -> Result<()> {
    let dir = study.out_dir("tuning");
    let model = &study.run.config.model.name;
    let (mut hist, mut prefs) = (Vec::new(), Vec::new());
    for s in &t.sites {
        let fine: Vec<f64> = (0..=180).map(f64::from).collect();
        let panels: Vec<CurvePanel> = s
            .units
            .iter()
            .take(32)
            .map(|u| CurvePanel {
                caption: if u.silent {
                    format!("unit {}  silent", u.unit)
                } else {
                    format!("unit {}  OSI {:.2}", u.unit, u.osi)
                },
                orientations: t.grid.orientations.clone(),
                responses: u.orientation_curve.clone(),
                fit: (!u.silent).then(|| {
                    (
                        fine.clone(),
                        fine.iter().map(|&x| u.von_mises.eval(x)).collect(),
                    )
                }),
            })
            .collect();
        let name = format!("{} ({})", s.site, s.protocol.name());
        let file = dir.join(format!("gallery_{}_{}.png", s.site, s.protocol.name()));
        tuning_gallery(
            &format!("{model} {name}: orientation tuning"),
            &panels,
            8,
            &file,
        )?;
        let live = s.units.iter().filter(|u| !u.silent);
        hist.push((
            name.clone(),
            live.clone().map(|u| u.osi).collect(),
            live.clone().map(|u| u.bandwidth).collect(),
        ));
        prefs.push((name, live.map(|u| u.preferred_orientation).collect()));
    }
    tuning_histograms(&hist, &dir.join("tuning"))?;
    preferred_orientation_figure(
        &prefs,
        t.grid.orientations.len(),
        &dir.join("preferred_orientation"),
    )?;
    Ok(())
}
