//! Figures of the tuning and effective-receptive-field assays: a gallery of orientation
//! tuning curves per site, OSI / bandwidth / preferred-orientation histograms across
//! sites, effective receptive fields per layer and their size against the theoretical
//! size. Plain numbers in, files out: the assay types live in `insilico-assays`.
//!
//! Every label sits outside the plotted data: gallery captions above each panel, axis
//! names in the margins, legends where the line plots put them (the emptiest corner).

use crate::color::palette;
use crate::montage::{encode_png, side_by_side, Scaling, Tile};
use crate::plot::{Histogram, LinePlot, Series};
use crate::text::ensure_plotters_font;
use crate::write_atomic;
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// One unit's orientation tuning curve for [`tuning_gallery`].
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePanel {
    /// Caption above the panel, e.g. `unit 3  OSI 0.71`.
    pub caption: String,
    /// Degrees, over [0, 180).
    pub orientations: Vec<f64>,
    pub responses: Vec<f64>,
    /// A fitted curve `(degrees, value)` drawn under the data (e.g. the von Mises fit on a
    /// fine grid).
    pub fit: Option<(Vec<f64>, Vec<f64>)>,
}

/// Panel size of the gallery at 1x, in pixels.
const PANEL: (u32, u32) = (230, 170);
const SS: u32 = 2;
const GALLERY_TITLE: u32 = 44;
const GALLERY_FOOT: u32 = 36;

/// A grid of small tuning-curve panels (`cols` per row), each with its own response axis,
/// the curve repeated at 180 degrees so that it closes, and the fit under the data.
/// Writes `path` (PNG).
pub fn tuning_gallery(
    title: &str,
    panels: &[CurvePanel],
    cols: usize,
    path: &Path,
) -> Result<PathBuf> {
    ensure_plotters_font();
    let cols = cols.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(cols).max(1);
    let (w, h) = (
        cols as u32 * PANEL.0,
        GALLERY_TITLE + rows as u32 * PANEL.1 + GALLERY_FOOT,
    );
    let mut buf = vec![255u8; (w * SS * h * SS * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w * SS, h * SS)).into_drawing_area();
        let s = SS as f64;
        let (top, rest) = root.split_vertically((GALLERY_TITLE * SS) as i32);
        let (grid, foot) = rest.split_vertically((rows as u32 * PANEL.1 * SS) as i32);
        top.titled(title, font(22.0, s)).map_err(draw_err)?;
        foot.draw(&Text::new(
            "orientation (degrees); response at the preferred spatial frequency",
            ((w * SS / 2) as i32, (8.0 * s) as i32),
            font(16.0, s).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(draw_err)?;
        for (panel, area) in panels.iter().zip(grid.split_evenly((rows, cols))) {
            draw_panel(&area, panel, s)?;
        }
        root.present().map_err(draw_err)?;
    }
    let big = image::RgbImage::from_raw(w * SS, h * SS, buf)
        .ok_or_else(|| anyhow!("bitmap buffer size"))?;
    let small = image::imageops::resize(&big, w, h, image::imageops::FilterType::Triangle);
    write_atomic(path, &encode_png(&small)?)?;
    Ok(path.to_path_buf())
}

fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing figure: {e}")
}

fn font(size: f64, s: f64) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size * s).into_font()).color(&BLACK)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &CurvePanel,
    s: f64,
) -> Result<()> {
    let px = |v: f64| (v * s).round() as i32;
    // The axis follows the data; the fit is clamped into it rather than rescaling it.
    let finite = p.responses.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let lo = if lo > hi { 0.0 } else { lo.min(0.0) };
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let pad = (hi - lo) * 0.08;
    let mut chart = ChartBuilder::on(area)
        .caption(&p.caption, font(14.0, s))
        .margin(px(6.0))
        .margin_right(px(14.0))
        .x_label_area_size(px(20.0))
        .y_label_area_size(px(40.0))
        .build_cartesian_2d(0.0..180.0, lo..hi + pad)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_labels(0)
        .y_labels(3)
        .y_label_formatter(&|v: &f64| short(*v))
        .label_style(font(11.0, s))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(235, 235, 235).stroke_width(px(1.0) as u32))
        .axis_style(BLACK.stroke_width(px(1.0) as u32))
        .draw()
        .map_err(draw_err)?;
    // Orientation ticks at 0, 90 and 180 degrees (plotters would pick 0, 50, 100, 150).
    let grid_line = RGBColor(235, 235, 235).stroke_width(px(1.0) as u32);
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(90.0, lo), (90.0, hi + pad)],
            grid_line,
        )))
        .map_err(draw_err)?;
    let tick = font(11.0, s).pos(Pos::new(HPos::Center, VPos::Top));
    for x in [0.0, 90.0, 180.0] {
        let (bx, by) = chart.backend_coord(&(x, lo));
        let at = area.get_base_pixel();
        area.draw(&Text::new(
            format!("{x:.0}"),
            (bx - at.0, by - at.1 + px(4.0)),
            tick.clone(),
        ))
        .map_err(draw_err)?;
    }
    draw_curve(&mut chart, p, (lo, hi + pad), s)
}

/// The fitted curve (clamped into the axis) under the measured one, its points marked.
fn draw_curve<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    p: &CurvePanel,
    (lo, hi): (f64, f64),
    s: f64,
) -> Result<()> {
    let px = |v: f64| (v * s).round() as i32;
    if let Some((fx, fy)) = &p.fit {
        let pts: Vec<(f64, f64)> = fx
            .iter()
            .zip(fy)
            .filter(|q| q.1.is_finite())
            .map(|(&x, &y)| (x, y.clamp(lo, hi)))
            .collect();
        chart
            .draw_series(std::iter::once(PathElement::new(
                pts,
                palette(1).stroke_width(px(1.6) as u32),
            )))
            .map_err(draw_err)?;
    }
    let mut pts: Vec<(f64, f64)> = p
        .orientations
        .iter()
        .zip(&p.responses)
        .map(|(&x, &y)| (x, y))
        .collect();
    // The curve is periodic: repeat its first point at 180 degrees.
    if let Some(&(x0, y0)) = pts.first() {
        if x0 == 0.0 {
            pts.push((180.0, y0));
        }
    }
    let color = palette(0);
    chart
        .draw_series(std::iter::once(PathElement::new(
            pts.clone(),
            color.stroke_width(px(1.4) as u32),
        )))
        .map_err(draw_err)?;
    chart
        .draw_series(pts.iter().map(|&q| Circle::new(q, px(2.2), color.filled())))
        .map_err(draw_err)?;
    Ok(())
}

/// Compact tick label: 3 significant digits, no trailing zeros.
fn short(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let t = format!("{v:.digits$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

/// Per-site histograms of the orientation selectivity index (`stem_osi`) and of the
/// orientation bandwidth (`stem_bandwidth`), as fractions of each site's units so that
/// sites of different size compare. `sites`: (site, OSI per unit, bandwidth per unit).
pub fn tuning_histograms(
    sites: &[(String, Vec<f64>, Vec<f64>)],
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let mut osi = Histogram::new(
        "Orientation selectivity",
        "OSI (1 - circular variance)",
        "fraction of units",
    );
    let mut bw = Histogram::new(
        "Orientation bandwidth",
        "half width at 1/\u{221a}2 of the peak (degrees)",
        "fraction of units",
    );
    for (site, o, b) in sites {
        osi = osi.group(site, o.clone());
        bw = bw.group(site, b.clone());
    }
    (osi.bins, osi.range, osi.density) = (20, Some((0.0, 1.0)), true);
    (bw.bins, bw.range, bw.density) = (18, Some((0.0, 90.0)), true);
    let mut out = osi.save(&suffixed(stem, "_osi"))?;
    out.extend(bw.save(&suffixed(stem, "_bandwidth"))?);
    Ok(out)
}

/// Histogram of preferred orientations per site, one bin centred on each of the
/// `orientations` sampled angles. `sites`: (site, preferred orientation per unit, degrees).
pub fn preferred_orientation_figure(
    sites: &[(String, Vec<f64>)],
    orientations: usize,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let step = 180.0 / orientations.max(1) as f64;
    let mut fig = Histogram::new(
        "Preferred orientations",
        "preferred orientation (degrees; 0 horizontal, 90 vertical)",
        "fraction of units",
    );
    for (site, pref) in sites {
        // Fold the top half-bin onto 0 so that bins centre on the sampled angles.
        let folded = pref
            .iter()
            .map(|&p| {
                if p >= 180.0 - step / 2.0 {
                    p - 180.0
                } else {
                    p
                }
            })
            .collect();
        fig = fig.group(site, folded);
    }
    (fig.bins, fig.range, fig.density) = (
        orientations.max(1),
        Some((-step / 2.0, 180.0 - step / 2.0)),
        true,
    );
    fig.save(stem)
}

/// One layer's effective receptive fields for [`erf_montage`]: maps `[h, w]` row-major
/// under a label each (e.g. `trained`, `untrained`).
#[derive(Debug, Clone, PartialEq)]
pub struct ErfRow {
    pub site: String,
    pub shape: [usize; 2],
    pub maps: Vec<(String, Vec<f32>)>,
}

/// One row per layer, one image per network, each scaled from its minimum (black) to its
/// maximum (white) so that the shapes compare across depth. Writes `path` (PNG).
pub fn erf_montage(rows: &[ErfRow], scale: u32, path: &Path) -> Result<PathBuf> {
    let rows: Vec<(String, Vec<Tile>)> = rows
        .iter()
        .map(|r| {
            let tiles = r
                .maps
                .iter()
                .map(|(label, m)| Tile::new(m.clone(), 1, r.shape[0], r.shape[1], label.clone()))
                .collect();
            (r.site.clone(), tiles)
        })
        .collect();
    crate::montage::save_png(&side_by_side(&rows, Scaling::PerTile, scale), path)?;
    Ok(path.to_path_buf())
}

/// Effective receptive field size against the theoretical size, one line per network
/// (`(label, [(theoretical side, effective side)])`, sites in order of depth), with the
/// identity for reference. `mass` is the fraction of the gradient the effective size holds.
pub fn erf_size_figure(
    networks: &[(String, Vec<(f64, f64)>)],
    mass: f64,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let max = networks
        .iter()
        .flat_map(|n| n.1.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    // Rounded so that 0.57 reads 57, not 57.00000000000001.
    let percent = (100.0 * mass * 1e6).round() / 1e6;
    let y_label = format!("effective size, {percent}% of gradient mass (pixels)");
    let mut fig = LinePlot::new(
        "Effective vs theoretical receptive field",
        "theoretical size (pixels)",
        &y_label,
    );
    // The reference first, so that the data are drawn over it.
    fig = fig
        .series(Series::new("theoretical (y = x)", vec![0.0, max], vec![0.0, max]).as_reference());
    for (i, (label, pts)) in networks.iter().enumerate() {
        let (x, y) = pts.iter().copied().unzip();
        fig = fig.series(
            Series::new(label.clone(), x, y)
                .with_color(i)
                .with_markers(true),
        );
    }
    fig.save(stem)
}

fn suffixed(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(i: usize) -> CurvePanel {
        let orientations: Vec<f64> = (0..16).map(|k| 11.25 * k as f64).collect();
        let responses = orientations
            .iter()
            .map(|t| 1.0 + (2.0 * (t - 10.0 * i as f64).to_radians()).cos())
            .collect();
        CurvePanel {
            caption: format!("unit {i}  OSI 0.50"),
            orientations,
            responses,
            fit: None,
        }
    }

    #[test]
    fn gallery_size_follows_the_grid_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let panels: Vec<CurvePanel> = (0..5).map(panel).collect();
        let path = tuning_gallery("conv1.relu", &panels, 3, &dir.path().join("g.png")).unwrap();
        let img = image::open(&path).unwrap();
        // 3 columns x 2 rows of panels, plus the title and foot strips.
        assert_eq!(img.width(), 3 * PANEL.0);
        assert_eq!(img.height(), GALLERY_TITLE + 2 * PANEL.1 + GALLERY_FOOT);
        crate::assert_no_temp_files(dir.path());
    }

    #[test]
    fn every_figure_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sites = vec![(
            "conv1.relu".to_string(),
            vec![0.1, 0.5, 0.9],
            vec![10.0, 20.0, 90.0],
        )];
        assert_eq!(tuning_histograms(&sites, &d.join("t")).unwrap().len(), 4);
        let prefs = vec![("conv1.relu".to_string(), vec![0.0, 45.0, 179.0])];
        assert_eq!(
            preferred_orientation_figure(&prefs, 16, &d.join("p"))
                .unwrap()
                .len(),
            2
        );
        let row = ErfRow {
            site: "conv1".into(),
            shape: [3, 3],
            maps: vec![(
                "trained".into(),
                vec![0.0, 1.0, 0.0, 1.0, 4.0, 1.0, 0.0, 1.0, 0.0],
            )],
        };
        assert!(erf_montage(&[row], 4, &d.join("erf.png")).unwrap().exists());
        let pts = vec![("trained".to_string(), vec![(5.0, 3.0), (14.0, 7.0)])];
        assert_eq!(erf_size_figure(&pts, 0.95, &d.join("s")).unwrap().len(), 2);
        // The axis names the mass asked for (it said 95 % whatever --mass was).
        erf_size_figure(&pts, 0.57, &d.join("m")).unwrap();
        let svg = std::fs::read_to_string(d.join("m.svg")).unwrap();
        assert!(svg.contains("57% of gradient mass"), "{svg}");
        assert_eq!(short(0.01234), "0.0123");
        assert_eq!(short(1250.0), "1250");
    }
}
