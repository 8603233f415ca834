//! Tuning curves and effective receptive fields of a network, with every figure.
//!
//! ```sh
//! cargo run --release -p insilico --example tuning_figures -- [RUN_DIR] [OUT_DIR]
//! ```
//!
//! With a run directory (as written by `insilico train`) the trained network is measured
//! and compared with a fresh initialization of the same config; without one, a randomly
//! initialized cnn-small stands in for both. Prints the wall time of the tuning protocol.

use anyhow::Result;
use burn::tensor::{Tensor, TensorData};
use insilico_assays::erf::{effective_receptive_fields, Erf, ErfOptions};
use insilico_assays::receptive::ImageSpace;
use insilico_assays::tuning::{tuning, Protocol, Tuning, TuningOptions};
use insilico_data::Locator;
use insilico_engine::{load_config, Compute, Network, TrainedRun};
use insilico_report::tuning::{
    erf_montage, erf_size_figure, preferred_orientation_figure, tuning_gallery, tuning_histograms,
    CurvePanel, ErfRow,
};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "target/tuning-figures".into()),
    );
    let compute = Compute::flex();
    let device = compute.device.clone();
    let (trained, config, space, images) = match args.first() {
        Some(run) => {
            let run =
                TrainedRun::open(std::path::Path::new(run), compute, &Locator::from_env(None))?;
            let space = ImageSpace::of(&run.data.dataset);
            let images = run.data.test.range(0, 64, &device);
            (run.network, run.config, space, images)
        }
        None => {
            let config = load_config("cnn-small", &[])?;
            device.seed(1);
            let net = Network::new(&config.model, [1, 28, 28], &device)?;
            let noise: Vec<f32> = (0..64 * 784)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
                .collect();
            let images = Tensor::<4>::from_data(TensorData::new(noise, [64, 1, 28, 28]), &device);
            (net, config, ImageSpace::standard([1, 28, 28]), images)
        }
    };
    device.seed(2);
    let [c, h, w] = space.shape;
    let untrained = Network::new(&config.model, [c, h, w], &device)?;
    let sites = trained.plan().hidden_sites();

    for protocols in [vec![Protocol::Grating], Protocol::ALL.to_vec()] {
        let opts = TuningOptions {
            protocols,
            ..Default::default()
        };
        let start = Instant::now();
        let t = tuning(&trained, &sites, &space, &opts, &device)?;
        println!(
            "tuning {:?}: {} sites, {} stimuli per protocol, {:.2} s",
            opts.protocols,
            sites.len(),
            t.grid.len(),
            start.elapsed().as_secs_f64()
        );
        if opts.protocols.len() == 2 {
            tuning_outputs(&t, &out)?;
        }
    }
    let opts = ErfOptions::default();
    let start = Instant::now();
    let erf_t = effective_receptive_fields(&trained, &sites, &images, &opts)?;
    let erf_u = effective_receptive_fields(&untrained, &sites, &images, &opts)?;
    println!(
        "effective receptive fields: {:.2} s",
        start.elapsed().as_secs_f64()
    );
    erf_outputs(&erf_t, &erf_u, &out)?;
    println!("figures in {}/", out.display());
    Ok(())
}

fn tuning_outputs(t: &Tuning, out: &std::path::Path) -> Result<()> {
    let mut hist = Vec::new();
    let mut prefs = Vec::new();
    for s in &t.sites {
        let panels: Vec<CurvePanel> = s
            .units
            .iter()
            .take(32)
            .map(|u| {
                let fine: Vec<f64> = (0..=180).map(f64::from).collect();
                let fit = fine.iter().map(|&x| u.von_mises.eval(x)).collect();
                CurvePanel {
                    caption: if u.silent {
                        format!("unit {}  silent", u.unit)
                    } else {
                        format!("unit {}  OSI {:.2}", u.unit, u.osi)
                    },
                    orientations: t.grid.orientations.clone(),
                    responses: u.orientation_curve.clone(),
                    fit: (!u.silent).then_some((fine, fit)),
                }
            })
            .collect();
        let name = format!("{} ({})", s.site, s.protocol.name());
        let file = out.join(format!("gallery_{}_{}.png", s.site, s.protocol.name()));
        tuning_gallery(&format!("{name}: orientation tuning"), &panels, 8, &file)?;
        let live = s.units.iter().filter(|u| !u.silent);
        hist.push((
            name.clone(),
            live.clone().map(|u| u.osi).collect(),
            live.clone().map(|u| u.bandwidth).collect(),
        ));
        prefs.push((name, live.map(|u| u.preferred_orientation).collect()));
        println!(
            "{:<12} {:<8} responsive {:>3}/{:<3} median OSI {:.2}  median bandwidth {:.1}  cardinal {:.2}",
            s.site,
            s.protocol.name(),
            s.summary.responsive_units,
            s.units.len(),
            s.summary.median_osi,
            s.summary.median_bandwidth,
            s.summary.cardinal_fraction
        );
    }
    tuning_histograms(&hist, &out.join("tuning"))?;
    preferred_orientation_figure(
        &prefs,
        t.grid.orientations.len(),
        &out.join("preferred_orientation"),
    )?;
    Ok(())
}

fn erf_outputs(trained: &[Erf], untrained: &[Erf], out: &std::path::Path) -> Result<()> {
    let rows: Vec<ErfRow> = trained
        .iter()
        .zip(untrained)
        .map(|(a, b)| ErfRow {
            site: a.site.clone(),
            shape: a.shape,
            maps: vec![
                ("trained".into(), a.map.clone()),
                ("untrained".into(), b.map.clone()),
            ],
        })
        .collect();
    erf_montage(&rows, 6, &out.join("erf.png"))?;
    let points = |e: &[Erf]| {
        e.iter()
            .map(|e| (e.theoretical_size as f64, e.size))
            .collect()
    };
    erf_size_figure(
        &[
            ("trained".into(), points(trained)),
            ("untrained".into(), points(untrained)),
        ],
        &out.join("erf_size"),
    )?;
    for (a, b) in trained.iter().zip(untrained) {
        println!(
            "{:<12} theoretical {:>3}  effective size trained {:>5.1} untrained {:>5.1}  radius {:.1} / {:.1}",
            a.site, a.theoretical_size, a.size, b.size, a.radius, b.radius
        );
    }
    Ok(())
}
