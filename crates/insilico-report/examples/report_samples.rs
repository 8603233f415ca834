//! Renders sample figures and montages: `cargo run -p insilico-report --example report_samples [out_dir]`.
use insilico_report::*;
use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/report-samples".into()),
    );
    line_plots(&out)?;
    more_plots(&out)?;
    distributions(&out)?;
    montages(&out)?;
    let mut r = HtmlReport::new("insilico sample report");
    r.heading("Ablation");
    r.paragraph("Accuracy as units are removed <in order>.");
    r.image(
        &out.join("ablation.png"),
        "Ablation curves; bands are ± s.d. over seeds.",
    )?;
    r.table(
        &["unit", "selectivity"],
        &[
            vec!["3".into(), "0.41".into()],
            vec!["7".into(), "0.12".into()],
        ],
    );
    r.preformatted("[model]\nchannels = [16, 32]\n");
    r.save(&out.join("report.html"))?;
    Ok(())
}

fn line_plots(out: &Path) -> anyhow::Result<()> {
    let x: Vec<f64> = (0..=20).map(|i| i as f64 / 20.0).collect();
    let mut plot = LinePlot::new(
        "Ablation curves (mean ± s.d., 5 seeds)",
        "fraction of units ablated",
        "test accuracy (%)",
    );
    for (k, name) in ["random order", "by selectivity", "by L1 norm"]
        .iter()
        .enumerate()
    {
        let y: Vec<f64> = x
            .iter()
            .map(|&v| 10.0 + 82.0 * (1.0 - v.powf(0.6 + k as f64 * 0.9)))
            .collect();
        let sd: Vec<f64> = x
            .iter()
            .map(|&v| 1.0 + 5.0 * v * (1.0 - v) * (k + 1) as f64)
            .collect();
        let lo = y.iter().zip(&sd).map(|(a, b)| a - b).collect();
        let hi = y.iter().zip(&sd).map(|(a, b)| a + b).collect();
        plot = plot.series(
            Series::new(*name, x.clone(), y)
                .with_band(lo, hi)
                .with_markers(k == 2),
        );
    }
    let mut chance = Series::new("chance", vec![0.0, 1.0], vec![10.0, 10.0]);
    chance.color = Some(7);
    plot = plot.series(chance);
    println!("{:?}", plot.save(&out.join("ablation"))?);
    Ok(())
}

fn more_plots(out: &Path) -> anyhow::Result<()> {
    let lr: Vec<f64> = (0..9).map(|i| 10f64.powf(-5.0 + i as f64 * 0.5)).collect();
    let acc: Vec<f64> = lr
        .iter()
        .map(|l| 90.0 - 8.0 * (l.log10() + 2.5).powi(2))
        .collect();
    let e = vec![2.5; lr.len()];
    let p = LinePlot::new(
        "Learning-rate sweep",
        "learning rate",
        "validation accuracy (%)",
    )
    .log_x(true)
    .series(
        Series::new("CNN-small", lr, acc)
            .with_err(e)
            .with_markers(true),
    );
    println!("{:?}", p.save(&out.join("lr_sweep"))?);

    let mut sweep = LinePlot::new("Label noise", "epoch", "train accuracy").colorbar(
        "label-noise fraction",
        0.0,
        0.8,
    );
    let ep: Vec<f64> = (0..40).map(|i| i as f64).collect();
    for k in 0..12 {
        let n = k as f64 * 0.8 / 11.0;
        let y = ep
            .iter()
            .map(|&t| 1.0 - (1.0 - 0.1) * (-(t / (4.0 + 20.0 * n))).exp())
            .collect();
        sweep = sweep.series(Series::new(format!("noise {n:.2}"), ep.clone(), y));
    }
    println!("{:?}", sweep.save(&out.join("noise_sweep"))?);
    Ok(())
}

fn distributions(out: &Path) -> anyhow::Result<()> {
    let a: Vec<f64> = (0..400)
        .map(|i| ((i * 37 % 101) as f64 / 101.0).powi(2))
        .collect();
    let b: Vec<f64> = (0..250)
        .map(|i| 0.2 + (i * 53 % 97) as f64 / 160.0)
        .collect();
    let h = Histogram {
        density: true,
        ..Histogram::new(
            "Class selectivity",
            "selectivity index",
            "fraction of units",
        )
    }
    .group("conv1 (n=400)", a.clone())
    .group("conv2 (n=250)", b.clone());
    println!("{:?}", h.save(&out.join("selectivity_hist"))?);
    let sc = Scatter::new(
        "Selectivity vs. ablation impact",
        "selectivity index",
        "accuracy drop (%)",
    )
    .group(
        "conv1",
        a.iter().zip(&b).map(|(&x, &y)| (x, 3.0 * y + x)).collect(),
    )
    .group(
        "conv2",
        b.iter().zip(&a).map(|(&x, &y)| (x, 2.0 * y)).collect(),
    )
    .note("Spearman ρ = 0.12 (n=128)\np = 0.18");
    println!("{:?}", sc.save(&out.join("scatter"))?);
    Ok(())
}

fn montages(out: &Path) -> anyhow::Result<()> {
    // Gabor-like filters (symmetric) and RGB exemplars
    let tiles: Vec<Tile> = (0..16)
        .map(|u| {
            let (h, w) = (11, 11);
            let th = u as f32 * 0.4;
            let mut px = vec![];
            for c in 0..3 {
                for y in 0..h {
                    for x in 0..w {
                        let (dx, dy) = (x as f32 - 5.0, y as f32 - 5.0);
                        let r = dx * th.cos() + dy * th.sin();
                        let g =
                            (-(dx * dx + dy * dy) / 18.0).exp() * (r * 0.9 + c as f32 * 0.5).cos();
                        px.push(g * (1.0 + u as f32 * 0.1));
                    }
                }
            }
            Tile::new(px, 3, h, w, format!("unit {u}"))
        })
        .collect();
    let m = montage(
        &tiles,
        8,
        Scaling::Symmetric,
        6,
        Some("conv1 filters (symmetric scaling)"),
    );
    save_png(&m, &out.join("filters_montage.png"))?;
    let rows: Vec<(String, Vec<Tile>)> = (0..3)
        .map(|u| {
            let mut t = vec![Tile {
                label: "synthesized".into(),
                ..tiles[u * 5].clone()
            }];
            t.extend((0..4).map(|k| Tile {
                label: format!("act {:.1}", 12.3 - k as f32),
                ..tiles[(u * 3 + k) % 16].clone()
            }));
            (format!("unit {}", u * 5), t)
        })
        .collect();
    save_png(
        &side_by_side(&rows, Scaling::PerTile, 6),
        &out.join("exemplars.png"),
    )?;

    Ok(())
}
