//! Paper-style figures: line plots with error bands / bars, overlaid
//! histograms and scatter plots. Each figure is saved as `stem.png`
//! (1200×800, rendered at 2× and downsampled, so edges are anti-aliased) and
//! `stem.svg` (vector, same layout).

use crate::color::{categorical, palette, sequential, PALETTE_LEN};
use crate::montage::encode_png;
use crate::text::ensure_plotters_font;
use crate::write_atomic;
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use std::ops::Range;
use std::path::{Path, PathBuf};

mod heatmap;
pub use heatmap::Heatmap;

/// Width in pixels of saved PNG figures (the SVG uses the same user units).
pub const FIGURE_WIDTH: u32 = 1200;
/// Height in pixels of saved PNG figures.
pub const FIGURE_HEIGHT: u32 = 800;
/// Supersampling factor of the PNG rendering.
const SS: u32 = 2;

const FONT: &str = "sans-serif";
const TITLE_SIZE: f64 = 35.0;
const AXIS_LABEL_SIZE: f64 = 31.0;
const TICK_SIZE: f64 = 27.0;
const LEGEND_SIZE: f64 = 24.0;
const LINE_WIDTH: f64 = 3.0;
const MAX_INSIDE_LEGEND: usize = 8;
/// Fraction of the viridis range used when colouring series by value (the
/// last, bright-yellow tenth is unreadable on white).
const SEQ_SPAN: f64 = 0.9;

trait PlotResult<T> {
    fn plot(self) -> Result<T>;
}
impl<T, E: std::fmt::Display> PlotResult<T> for std::result::Result<T, E> {
    fn plot(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing figure: {e}"))
    }
}

fn px(s: f64, v: f64) -> i32 {
    (v * s).round() as i32
}

fn font(size: f64, s: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size * s).into_font()).color(&BLACK)
}

// ---------------------------------------------------------------- axes ----

/// One axis in plotting space (log10 of the value for log axes) with
/// precomputed ticks and tick labels.
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

fn superscript(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            '9' => '⁹',
            '-' => '⁻',
            c => c,
        })
        .collect()
}

/// Use a typographic minus sign in tick labels.
fn minus(s: String) -> String {
    match s.strip_prefix('-') {
        Some(rest) => format!("−{rest}"),
        None => s,
    }
}

/// Scientific notation with `p` mantissa decimals, trailing zeros trimmed.
fn fmt_sci(v: f64, p: usize) -> String {
    let s = format!("{v:.p$e}");
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            let m = m.trim_end_matches('0').trim_end_matches('.');
            format!("{m}e{e}")
        }
        _ => s,
    }
}

/// Compact number with about 4 significant digits.
fn fmt_general(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return minus(fmt_sci(v, 3));
    }
    let d = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.d$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    minus(s)
}

fn nice_step(span: f64, max_ticks: usize) -> f64 {
    let raw = span / max_ticks.max(2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= raw * (1.0 - 1e-9) {
            return m * mag;
        }
    }
    10.0 * mag
}

fn linear_ticks(lo: f64, hi: f64, max_ticks: usize) -> (Vec<f64>, f64) {
    let step = nice_step(hi - lo, max_ticks);
    let k0 = (lo / step - 1e-9).ceil() as i64;
    let mut ticks = vec![];
    for k in k0.. {
        let t = k as f64 * step;
        if t > hi + step * 1e-9 || ticks.len() > 100 {
            break;
        }
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
    }
    (ticks, step)
}

fn linear_labels(ticks: &[f64], step: f64) -> Vec<String> {
    let amax = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    let step_exp = step.log10().floor();
    let mantissa = step / 10f64.powf(step_exp);
    if amax >= 1e5 || (amax > 0.0 && amax < 1e-3) {
        let p = (amax.log10().floor() - step_exp).max(0.0) as usize
            + usize::from((mantissa - 2.5).abs() < 1e-6);
        return ticks
            .iter()
            .map(|&t| {
                if t == 0.0 {
                    "0".into()
                } else {
                    minus(fmt_sci(t, p))
                }
            })
            .collect();
    }
    let mut d = (-step_exp).max(0.0) as usize;
    if (mantissa - 2.5).abs() < 1e-6 && step < 10.0 {
        d += 1;
    }
    ticks.iter().map(|&t| minus(format!("{t:.d$}"))).collect()
}

impl Axis {
    /// Linear axis over [lo, hi].
    fn linear(lo: f64, hi: f64, max_ticks: usize) -> Self {
        let (ticks, step) = linear_ticks(lo, hi, max_ticks);
        let labels = linear_labels(&ticks, step);
        Self {
            lo,
            hi,
            ticks,
            labels,
        }
    }

    /// Log axis; `lo`, `hi` are log10 of the value range.
    fn log(lo: f64, hi: f64, max_ticks: usize) -> Self {
        let eps = 1e-9;
        let (d0, d1) = ((lo - eps).ceil() as i64, (hi + eps).floor() as i64);
        let decades: Vec<i64> = (d0..=d1).collect();
        let mut ticks: Vec<f64>;
        let mut labels: Vec<String>;
        if decades.len() >= 3 {
            let stride = decades.len().div_ceil(max_ticks.max(2));
            ticks = decades.iter().step_by(stride).map(|&d| d as f64).collect();
            let sup = ticks.iter().any(|&t| !(-2.0..=3.0).contains(&t));
            labels = ticks
                .iter()
                .map(|&t| {
                    if sup {
                        format!("10{}", superscript(&format!("{}", t as i64)))
                    } else {
                        fmt_general(10f64.powf(t))
                    }
                })
                .collect();
        } else {
            // Narrow range: 1-2-5 ticks, or plain linear ticks if even those are too sparse.
            ticks = vec![];
            for d in (lo.floor() as i64 - 1)..=(hi.ceil() as i64) {
                for m in [1.0f64, 2.0, 5.0] {
                    let t = d as f64 + m.log10();
                    if t >= lo - eps && t <= hi + eps {
                        ticks.push(t);
                    }
                }
            }
            if ticks.len() < 3 {
                let (vt, _) = linear_ticks(10f64.powf(lo), 10f64.powf(hi), max_ticks.min(6));
                ticks = vt
                    .into_iter()
                    .filter(|&v| v > 0.0)
                    .map(f64::log10)
                    .collect();
            }
            labels = ticks.iter().map(|&t| fmt_general(10f64.powf(t))).collect();
        }
        if ticks.is_empty() {
            ticks = vec![lo, hi];
            labels = ticks.iter().map(|&t| fmt_general(10f64.powf(t))).collect();
        }
        Self {
            lo,
            hi,
            ticks,
            labels,
        }
    }

    fn label(&self, v: f64) -> String {
        let tol = (self.hi - self.lo).abs() * 1e-9;
        self.ticks
            .iter()
            .position(|t| (t - v).abs() <= tol)
            .map(|i| self.labels[i].clone())
            .unwrap_or_else(|| fmt_general(v))
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        let t = if t.is_nan() {
            0.0
        } else {
            t.clamp(-10.0, 10.0)
        };
        (limit.0 as f64 + t * (limit.1 - limit.0) as f64).round() as i32
    }
    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.ticks.clone()
    }
    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format(v: &f64) -> String {
        fmt_general(*v)
    }
    fn format_ext(&self, v: &f64) -> String {
        self.label(*v)
    }
}

/// Axis limits in plotting space: `fixed` (value units) when valid, else the
/// finite data range padded by `pad` of its span on both sides.
fn limits(
    data: impl Iterator<Item = f64>,
    pad: f64,
    fixed: Option<(f64, f64)>,
    log: bool,
) -> (f64, f64) {
    if let Some((a, b)) = fixed {
        let (a, b) = if log { (a.log10(), b.log10()) } else { (a, b) };
        if a.is_finite() && b.is_finite() && a != b {
            return (a.min(b), a.max(b));
        }
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in data.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}

// ------------------------------------------------------------- clipping ----

#[derive(Clone, Copy, Debug)]
struct Rect {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Rect {
    fn of(x: &Axis, y: &Axis) -> Self {
        Self {
            x0: x.lo,
            x1: x.hi,
            y0: y.lo,
            y1: y.hi,
        }
    }
    fn contains(&self, (x, y): (f64, f64)) -> bool {
        x >= self.x0 && x <= self.x1 && y >= self.y0 && y <= self.y1
    }
    /// Liang–Barsky: the part of segment a→b inside the rectangle.
    fn clip_segment(&self, a: (f64, f64), b: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [
            (-dx, a.0 - self.x0),
            (dx, self.x1 - a.0),
            (-dy, a.1 - self.y0),
            (dy, self.y1 - a.1),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        (t0 <= t1).then_some({
            (
                (a.0 + t0 * dx, a.1 + t0 * dy),
                (a.0 + t1 * dx, a.1 + t1 * dy),
            )
        })
    }
    /// Clip a polyline into the pieces that lie inside.
    fn clip_polyline(&self, pts: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
        let mut out: Vec<Vec<(f64, f64)>> = vec![];
        if pts.len() == 1 && self.contains(pts[0]) {
            return vec![pts.to_vec()];
        }
        let mut cur: Vec<(f64, f64)> = vec![];
        for w in pts.windows(2) {
            match self.clip_segment(w[0], w[1]) {
                Some((a, b)) => {
                    if cur.last() != Some(&a) {
                        if cur.len() > 1 {
                            out.push(std::mem::take(&mut cur));
                        }
                        cur = vec![a];
                    }
                    cur.push(b);
                }
                None => {
                    if cur.len() > 1 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                }
            }
        }
        if cur.len() > 1 {
            out.push(cur);
        }
        out
    }
    /// Sutherland–Hodgman polygon clipping.
    fn clip_polygon(&self, poly: &[(f64, f64)]) -> Vec<(f64, f64)> {
        type Edge = (
            fn(&Rect, (f64, f64)) -> bool,
            fn(&Rect, (f64, f64), (f64, f64)) -> (f64, f64),
        );
        fn at_x(x: f64, a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
            (x, a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0))
        }
        fn at_y(y: f64, a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
            (a.0 + (b.0 - a.0) * (y - a.1) / (b.1 - a.1), y)
        }
        let edges: [Edge; 4] = [
            (|r, p| p.0 >= r.x0, |r, a, b| at_x(r.x0, a, b)),
            (|r, p| p.0 <= r.x1, |r, a, b| at_x(r.x1, a, b)),
            (|r, p| p.1 >= r.y0, |r, a, b| at_y(r.y0, a, b)),
            (|r, p| p.1 <= r.y1, |r, a, b| at_y(r.y1, a, b)),
        ];
        let mut cur = poly.to_vec();
        for (inside, cross) in edges {
            if cur.is_empty() {
                break;
            }
            let input = std::mem::take(&mut cur);
            let mut prev = *input.last().unwrap();
            for &p in &input {
                match (inside(self, p), inside(self, prev)) {
                    (true, true) => cur.push(p),
                    (true, false) => {
                        cur.push(cross(self, prev, p));
                        cur.push(p);
                    }
                    (false, true) => cur.push(cross(self, prev, p)),
                    (false, false) => {}
                }
                prev = p;
            }
        }
        cur
    }
}

/// Split `(x, y)` samples into runs of consecutive finite points.
fn runs<T: Copy>(items: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut out = vec![];
    let mut cur = vec![];
    for it in items {
        match it {
            Some(v) => cur.push(v),
            None => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

// -------------------------------------------------------- chart + legend ----

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

struct Frame<'t> {
    title: &'t str,
    x_label: &'t str,
    y_label: &'t str,
}

impl<'t> Frame<'t> {
    fn of(title: &'t str, x_label: &'t str, y_label: &'t str) -> Self {
        Self {
            title,
            x_label,
            y_label,
        }
    }
}

fn build_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    s: f64,
    f: &Frame,
    x: &Axis,
    y: &Axis,
) -> Result<Chart<'a, DB>> {
    let tick_font = font(TICK_SIZE, s);
    let mut ytick_w = 0;
    for l in &y.labels {
        ytick_w = ytick_w.max(area.estimate_text_size(l, &tick_font).plot()?.0 as i32);
    }
    let y_area = ytick_w + px(s, 18.0 + AXIS_LABEL_SIZE * 1.25 + 14.0);
    let mut b = ChartBuilder::on(area);
    b.margin_top(px(s, if f.title.is_empty() { 30.0 } else { 14.0 }))
        .margin_right(px(s, 40.0))
        .margin_left(px(s, 12.0))
        .margin_bottom(px(s, 12.0))
        .x_label_area_size(px(s, 12.0 + TICK_SIZE + 10.0 + AXIS_LABEL_SIZE + 6.0))
        .y_label_area_size(y_area);
    if !f.title.is_empty() {
        b.caption(f.title, font(TITLE_SIZE, s));
    }
    let mut chart = b.build_cartesian_2d(x.clone(), y.clone()).plot()?;
    let xf = |v: &f64| x.label(*v);
    let yf = |v: &f64| y.label(*v);
    chart
        .configure_mesh()
        .x_desc(f.x_label)
        .y_desc(f.y_label)
        .axis_desc_style(font(AXIS_LABEL_SIZE, s))
        .label_style(tick_font)
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .x_labels(x.ticks.len().max(2))
        .y_labels(y.ticks.len().max(2))
        .bold_line_style(RGBColor(232, 232, 232).stroke_width(px(s, 1.0) as u32))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(px(s, 1.6) as u32))
        .set_all_tick_mark_size(px(s, 8.0))
        .draw()
        .plot()?;
    Ok(chart)
}

#[derive(Clone)]
enum Swatch {
    /// Line with dash pattern (0 solid, 1 dashed, 2 dotted), optional marker
    /// and optional translucent band behind it.
    Line { dash: u8, marker: bool, band: bool },
    /// Filled translucent box with a solid outline (histograms).
    Patch,
    /// A single marker (scatter plots).
    Point,
}

struct LegendEntry {
    label: String,
    color: RGBColor,
    swatch: Swatch,
}

fn legend_size<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    s: f64,
) -> Result<(i32, i32)> {
    let f = font(LEGEND_SIZE, s);
    let mut tw = 0;
    for e in entries {
        tw = tw.max(area.estimate_text_size(&e.label, &f).plot()?.0 as i32);
    }
    let row = px(s, LEGEND_SIZE * 1.55);
    Ok((
        px(s, 12.0 + 44.0 + 10.0 + 14.0) + tw,
        row * entries.len() as i32 + px(s, 14.0),
    ))
}

fn dash_path<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    a: (i32, i32),
    b: (i32, i32),
    style: ShapeStyle,
    dash: u8,
    s: f64,
) -> Result<()> {
    if dash == 0 {
        area.draw(&PathElement::new(vec![a, b], style)).plot()?;
        return Ok(());
    }
    let (on, off) = if dash == 1 {
        (px(s, 12.0), px(s, 7.0))
    } else {
        (px(s, 3.0), px(s, 5.0))
    };
    let mut x = a.0;
    while x < b.0 {
        let e = (x + on).min(b.0);
        area.draw(&PathElement::new(vec![(x, a.1), (e, a.1)], style))
            .plot()?;
        x = e + off;
    }
    Ok(())
}

/// Draw a framed legend with its top-left corner at `at` (pixels of `area`).
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    at: (i32, i32),
    s: f64,
) -> Result<()> {
    let (w, h) = legend_size(area, entries, s)?;
    let (x0, y0) = at;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        WHITE.mix(0.88).filled(),
    ))
    .plot()?;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        RGBColor(90, 90, 90).stroke_width(px(s, 1.0) as u32),
    ))
    .plot()?;
    let row = px(s, LEGEND_SIZE * 1.55);
    let f = font(LEGEND_SIZE, s).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().enumerate() {
        let cy = y0 + px(s, 7.0) + row * i as i32 + row / 2;
        let (sx0, sx1) = (x0 + px(s, 12.0), x0 + px(s, 56.0));
        match e.swatch {
            Swatch::Line { dash, marker, band } => {
                if band {
                    area.draw(&Rectangle::new(
                        [(sx0, cy - px(s, 8.0)), (sx1, cy + px(s, 8.0))],
                        e.color.mix(0.2).filled(),
                    ))
                    .plot()?;
                }
                dash_path(
                    area,
                    (sx0, cy),
                    (sx1, cy),
                    e.color.stroke_width(px(s, LINE_WIDTH) as u32),
                    dash,
                    s,
                )?;
                if marker {
                    area.draw(&Circle::new(
                        ((sx0 + sx1) / 2, cy),
                        px(s, 5.5),
                        e.color.filled(),
                    ))
                    .plot()?;
                }
            }
            Swatch::Patch => {
                let r = [
                    (sx0 + px(s, 8.0), cy - px(s, 9.0)),
                    (sx1 - px(s, 8.0), cy + px(s, 9.0)),
                ];
                area.draw(&Rectangle::new(r, e.color.mix(0.35).filled()))
                    .plot()?;
                area.draw(&Rectangle::new(r, e.color.stroke_width(px(s, 2.0) as u32)))
                    .plot()?;
            }
            Swatch::Point => {
                area.draw(&Circle::new(
                    ((sx0 + sx1) / 2, cy),
                    px(s, 6.0),
                    e.color.mix(0.75).filled(),
                ))
                .plot()?;
            }
        }
        area.draw(&Text::new(
            e.label.clone(),
            (sx1 + px(s, 10.0), cy),
            f.clone(),
        ))
        .plot()?;
    }
    Ok(())
}

/// What a chart has drawn, in data coordinates, for legend placement: markers, line
/// segments and filled areas (bands, bars).
#[derive(Default)]
struct Marks {
    points: Vec<(f64, f64)>,
    segments: Vec<((f64, f64), (f64, f64))>,
    areas: Vec<Vec<(f64, f64)>>,
}

impl Marks {
    /// A drawn polyline: its segments (a lone point is a point).
    fn polyline(&mut self, pts: &[(f64, f64)]) {
        match pts {
            [p] => self.points.push(*p),
            _ => self.segments.extend(pts.windows(2).map(|w| (w[0], w[1]))),
        }
    }

    /// Whether any mark touches `bx` (pixel coordinates of the chart's backend). A polygon
    /// touches a box when one of its edges crosses it or it holds the box's centre (the
    /// two ways a polygon and a box can overlap).
    fn touch<DB: DrawingBackend>(&self, chart: &Chart<DB>, bx: &Rect) -> bool {
        let p = |q: &(f64, f64)| {
            let (x, y) = chart.backend_coord(q);
            (x as f64, y as f64)
        };
        let crosses = |a, b| bx.clip_segment(p(a), p(b)).is_some();
        let centre = ((bx.x0 + bx.x1) / 2.0, (bx.y0 + bx.y1) / 2.0);
        self.points.iter().any(|q| bx.contains(p(q)))
            || self.segments.iter().any(|(a, b)| crosses(a, b))
            || self.areas.iter().any(|poly| {
                let pix: Vec<(f64, f64)> = poly.iter().map(p).collect();
                let mut edges = poly.iter().zip(poly.iter().cycle().skip(1));
                edges.any(|(a, b)| crosses(a, b)) || inside_polygon(centre, &pix)
            })
    }
}

/// Even-odd rule: whether `q` lies inside the polygon.
fn inside_polygon(q: (f64, f64), poly: &[(f64, f64)]) -> bool {
    let mut inside = false;
    for (a, b) in poly.iter().zip(poly.iter().cycle().skip(1)) {
        if (a.1 > q.1) != (b.1 > q.1) && q.0 < a.0 + (q.1 - a.1) * (b.0 - a.0) / (b.1 - a.1) {
            inside = !inside;
        }
    }
    inside
}

/// The first plot-area corner (upper right, upper left, lower right, lower left) where a
/// `w`x`h` legend, widened by a few pixels, touches no mark; `None` when every corner
/// holds data. Returns the box's top-left.
fn free_corner<DB: DrawingBackend>(
    chart: &Chart<DB>,
    marks: &Marks,
    (w, h): (i32, i32),
    s: f64,
) -> Option<(i32, i32)> {
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let inset = px(s, 14.0);
    let corners = [
        (xr.end - inset - w, yr.start + inset),
        (xr.start + inset, yr.start + inset),
        (xr.end - inset - w, yr.end - inset - h),
        (xr.start + inset, yr.end - inset - h),
    ];
    let margin = px(s, 8.0);
    corners.into_iter().find(|&(x, y)| {
        let bx = Rect {
            x0: (x - margin) as f64,
            x1: (x + w + margin) as f64,
            y0: (y - margin) as f64,
            y1: (y + h + margin) as f64,
        };
        !marks.touch(chart, &bx)
    })
}

/// Where a figure's legend goes: inside the axes, in a corner free of data, or in a
/// panel at the right of the axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegendAt {
    Inside,
    Outside,
}

/// Where a legend goes in the figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// No legend.
    Hidden,
    /// In a corner of the axes free of data.
    Inside,
    /// In a panel at the right: more entries than the axes hold.
    Panel,
    /// In a strip under the axes, the plot keeping its width: no corner was free.
    Strip,
}

impl Placement {
    fn of(entries: &[LegendEntry], shown: bool, at: LegendAt) -> Self {
        match (shown && !entries.is_empty(), at) {
            (false, _) => Placement::Hidden,
            _ if entries.len() > MAX_INSIDE_LEGEND => Placement::Panel,
            (true, LegendAt::Inside) => Placement::Inside,
            (true, LegendAt::Outside) => Placement::Strip,
        }
    }

    /// The room the legend takes out of the figure: the width of a panel at the right
    /// and the height of a strip under the axes (0 where it has none).
    fn room<DB: DrawingBackend>(
        self,
        root: &DrawingArea<DB, Shift>,
        entries: &[LegendEntry],
        s: f64,
    ) -> Result<(i32, i32)> {
        Ok(match self {
            Placement::Panel => (panel_width(root, entries, s)?, 0),
            Placement::Strip => (0, legend_size(root, entries, s)?.1 + px(s, 14.0)),
            Placement::Inside | Placement::Hidden => (0, 0),
        })
    }
}

/// The areas a legend may be drawn in, in order: the axes' (with their chart), a panel
/// at the right (and the legend's top-left there) and a strip under the axes.
struct LegendAreas<'a, 'c, DB: DrawingBackend>(
    &'a DrawingArea<DB, Shift>,
    &'a Chart<'c, DB>,
    &'a DrawingArea<DB, Shift>,
    (i32, i32),
    &'a DrawingArea<DB, Shift>,
);

/// Draws the legend where `place` says (in the strip: from the plot's left edge). False
/// when it was to go inside the axes and no corner is free of `marks`.
fn place_legend<DB: DrawingBackend>(
    place: Placement,
    areas: LegendAreas<DB>,
    entries: &[LegendEntry],
    marks: &Marks,
    s: f64,
) -> Result<bool> {
    let LegendAreas(axes, chart, panel, panel_at, strip) = areas;
    let plot_x = chart.plotting_area().get_pixel_range().0.start;
    match place {
        Placement::Panel => draw_legend(panel, entries, panel_at, s)?,
        Placement::Strip => draw_legend(strip, entries, (plot_x, 0), s)?,
        Placement::Inside => return legend_inside(axes, chart, entries, marks, s),
        Placement::Hidden => {}
    }
    Ok(true)
}

/// Place entries inside the plot in a corner free of data. Returns false, drawing
/// nothing, when there is none: the figure is then drawn again with the legend outside.
fn legend_inside<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart<DB>,
    entries: &[LegendEntry],
    marks: &Marks,
    s: f64,
) -> Result<bool> {
    if entries.is_empty() {
        return Ok(true);
    }
    let size = legend_size(root, entries, s)?;
    match free_corner(chart, marks, size, s) {
        Some(at) => {
            draw_legend(root, entries, at, s)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Width of the right-hand panel holding an external legend (0 if none).
fn panel_width<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    s: f64,
) -> Result<i32> {
    Ok(legend_size(root, entries, s)?.0 + px(s, 24.0))
}

fn stem_paths(stem: &Path) -> (PathBuf, PathBuf) {
    let base = match stem.extension().and_then(|e| e.to_str()) {
        Some("png" | "svg") => stem.with_extension(""),
        _ => stem.to_path_buf(),
    };
    let mut png = base.clone().into_os_string();
    png.push(".png");
    let mut svg = base.into_os_string();
    svg.push(".svg");
    (png.into(), svg.into())
}

trait Figure {
    /// Draws the figure with its legend (if any) `at` the place asked; returns false when
    /// the legend was to go inside but no corner of the axes is free of data (the caller
    /// then draws the figure again with it outside).
    fn render<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        s: f64,
        at: LegendAt,
    ) -> Result<bool>;
}

fn downsample(img: &image::RgbImage, f: u32) -> image::RgbImage {
    let (w, h) = (img.width() / f, img.height() / f);
    image::RgbImage::from_fn(w, h, |x, y| {
        let mut acc = [0u32; 3];
        for dy in 0..f {
            for dx in 0..f {
                let p = img.get_pixel(x * f + dx, y * f + dy).0;
                for k in 0..3 {
                    acc[k] += p[k] as u32;
                }
            }
        }
        let n = f * f;
        image::Rgb([0, 1, 2].map(|k| ((acc[k] + n / 2) / n) as u8))
    })
}

/// The supersampled bitmap of a figure, and whether its legend found room.
fn render_bitmap<F: Figure>(fig: &F, at: LegendAt) -> Result<(Vec<u8>, bool)> {
    let (w, h) = (FIGURE_WIDTH * SS, FIGURE_HEIGHT * SS);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let fits = {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).plot()?;
        let fits = fig.render(&root, SS as f64, at)?;
        root.present().plot()?;
        fits
    };
    Ok((buf, fits))
}

/// The SVG text of a figure, and whether its legend found room.
fn render_svg<F: Figure>(fig: &F, at: LegendAt) -> Result<(String, bool)> {
    let mut svg = String::new();
    let fits = {
        let root =
            SVGBackend::with_string(&mut svg, (FIGURE_WIDTH, FIGURE_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).plot()?;
        let fits = fig.render(&root, 1.0, at)?;
        root.present().plot()?;
        fits
    };
    Ok((svg, fits))
}

/// Renders with the legend inside the axes, and again with it outside where no corner
/// was free of data (each backend decides on its own pixels).
fn render_fitting<T, F: Figure>(
    fig: &F,
    render: fn(&F, LegendAt) -> Result<(T, bool)>,
) -> Result<T> {
    match render(fig, LegendAt::Inside)? {
        (out, true) => Ok(out),
        (_, false) => Ok(render(fig, LegendAt::Outside)?.0),
    }
}

/// Render to PNG (supersampled) and SVG and write both atomically.
fn save_figure<F: Figure>(fig: &F, stem: &Path) -> Result<Vec<PathBuf>> {
    ensure_plotters_font();
    let (png_path, svg_path) = stem_paths(stem);
    let (w, h) = (FIGURE_WIDTH * SS, FIGURE_HEIGHT * SS);
    let buf = render_fitting(fig, render_bitmap)?;
    let big = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("bitmap buffer size"))?;
    let png = encode_png(&downsample(&big, SS))?;
    let svg = render_fitting(fig, render_svg)?;
    write_atomic(&png_path, &png)?;
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

// ------------------------------------------------------------ line plot ----

/// One curve of a [`LinePlot`]. Points where x or y is NaN/infinite (or
/// x <= 0 on a log axis) are skipped and break the line; band and error
/// values are matched to points by index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// (lower, upper), drawn as a translucent error band.
    pub band: Option<(Vec<f64>, Vec<f64>)>,
    /// Symmetric error bars (± err) drawn at the points.
    pub err: Option<Vec<f64>>,
    /// Palette index; defaults to the series' position in the plot.
    pub color: Option<usize>,
    /// Draw a marker at every point.
    pub markers: bool,
    /// Plot against the second y axis, at the right (see [`LinePlot::y2_label`]).
    pub right: bool,
}

impl Series {
    /// A plain line.
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self {
            label: label.into(),
            x,
            y,
            ..Self::default()
        }
    }
    /// Add a translucent band between `lower` and `upper` (e.g. mean ± s.e.m.).
    pub fn with_band(mut self, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        self.band = Some((lower, upper));
        self
    }
    /// Add symmetric error bars.
    pub fn with_err(mut self, err: Vec<f64>) -> Self {
        self.err = Some(err);
        self
    }
    /// Use palette colour `i`.
    pub fn with_color(mut self, i: usize) -> Self {
        self.color = Some(i);
        self
    }
    /// Draw as a reference (chance level, the line y = x): the palette's grey, dashed, so
    /// that it reads as a guide rather than data. Add it first for the data to lie on top.
    pub fn as_reference(mut self) -> Self {
        self.color = Some(2 * PALETTE_LEN - 1);
        self
    }
    /// Draw point markers.
    pub fn with_markers(mut self, on: bool) -> Self {
        self.markers = on;
        self
    }
    /// Plot against the second y axis (dashed, so the two axes' lines differ in print).
    pub fn on_right(mut self) -> Self {
        self.right = true;
        self
    }
}

/// A line plot with optional error bands / bars, log-x axis and legend.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    pub title: String,
    /// Axis label, with units, e.g. "fraction of units ablated".
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Logarithmic x axis (non-positive x values are skipped).
    pub log_x: bool,
    /// Logarithmic y axis, the first one (non-positive y values are skipped, and error
    /// bars are not drawn).
    pub log_y: bool,
    /// Fixed y limits (default: data range plus 5%).
    pub y_range: Option<(f64, f64)>,
    /// Fixed x limits (default: data range plus 3%).
    pub x_range: Option<(f64, f64)>,
    /// Draw a legend of the labelled series (inside the plot at the emptiest
    /// corner for up to 8 entries, else in a panel at the right).
    pub legend: bool,
    /// `(label, min, max)`: colour the series by a continuous value with the
    /// viridis map instead of the palette, and draw a colour bar. Series `i`
    /// of `n` gets the colour of value `min + i/(n-1) * (max - min)`, so add
    /// series in order of that value (e.g. label-noise level).
    pub colorbar: Option<(String, f64, f64)>,
    /// Label of a second y axis at the right, for the series marked `right` (two
    /// quantities of different units against the same x, e.g. AUC and loss by epoch).
    pub y2_label: Option<String>,
    /// Named x ticks `(position, name)` in place of numbers, for a categorical axis
    /// (layers by their site names).
    pub x_ticks: Option<Vec<(f64, String)>>,
}

impl LinePlot {
    /// Empty plot with a legend and linear axes.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            series: vec![],
            log_x: false,
            log_y: false,
            y_range: None,
            x_range: None,
            legend: true,
            colorbar: None,
            y2_label: None,
            x_ticks: None,
        }
    }
    /// Name the x ticks (see the `x_ticks` field).
    pub fn x_ticks(mut self, ticks: Vec<(f64, String)>) -> Self {
        self.x_ticks = Some(ticks);
        self
    }
    /// Append a series.
    pub fn series(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }
    /// Logarithmic x axis.
    pub fn log_x(mut self, on: bool) -> Self {
        self.log_x = on;
        self
    }
    /// Logarithmic (first) y axis.
    pub fn log_y(mut self, on: bool) -> Self {
        self.log_y = on;
        self
    }
    /// Fixed y limits.
    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }
    /// Fixed x limits.
    pub fn x_range(mut self, lo: f64, hi: f64) -> Self {
        self.x_range = Some((lo, hi));
        self
    }
    /// Show or hide the legend.
    pub fn legend(mut self, on: bool) -> Self {
        self.legend = on;
        self
    }
    /// Colour series by value (see the `colorbar` field).
    pub fn colorbar(mut self, label: &str, min: f64, max: f64) -> Self {
        self.colorbar = Some((label.to_string(), min, max));
        self
    }
    /// A second y axis at the right with this label, for the series marked `right`.
    pub fn y2_label(mut self, label: &str) -> Self {
        self.y2_label = Some(label.to_string());
        self
    }
    /// Write `stem.png` (1200×800) and `stem.svg`; returns both paths.
    pub fn save(&self, stem: &Path) -> Result<Vec<PathBuf>> {
        save_figure(self, stem)
    }

    fn style_of(&self, i: usize) -> (RGBColor, u8) {
        let n = self.series.len();
        if self.colorbar.is_some() {
            let t = if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                0.0
            };
            (sequential(t * SEQ_SPAN), 0)
        } else {
            let idx = self.series[i].color.unwrap_or(i);
            let dash = ((idx / PALETTE_LEN) % 3) as u8;
            (palette(idx), if self.series[i].right { 1 } else { dash })
        }
    }
}

/// Every y a prepared series occupies: its lines, bands and error bars.
fn y_extent(p: &Prepared) -> impl Iterator<Item = f64> + '_ {
    p.lines
        .iter()
        .flatten()
        .map(|q| q.1)
        .chain(p.bands.iter().flatten().flat_map(|q| [q.1, q.2]))
        .chain(p.errs.iter().flat_map(|q| [q.1 - q.2, q.1 + q.2]))
}

/// Maps a series on the second axis `from` into the coordinates of the first, `to`.
fn rescale(p: &mut Prepared, from: &Axis, to: &Axis) {
    let k = (to.hi - to.lo) / (from.hi - from.lo);
    let y = |v: f64| to.lo + (v - from.lo) * k;
    p.lines.iter_mut().flatten().for_each(|q| q.1 = y(q.1));
    p.bands
        .iter_mut()
        .flatten()
        .for_each(|q| (q.1, q.2) = (y(q.1), y(q.2)));
    p.errs
        .iter_mut()
        .for_each(|q| (q.1, q.2) = (y(q.1), q.2 * k));
}

/// A series converted to plotting space.
struct Prepared {
    lines: Vec<Vec<(f64, f64)>>,
    bands: Vec<Vec<(f64, f64, f64)>>,
    errs: Vec<(f64, f64, f64)>,
}

/// A value in plotting space: its logarithm on a log axis, `None` where not finite there.
fn to_axis(v: f64, log: bool) -> Option<f64> {
    let v = match log {
        true if v > 0.0 => v.log10(),
        true => f64::NAN,
        false => v,
    };
    v.is_finite().then_some(v)
}

fn prepare(s: &Series, log_x: bool, log_y: bool) -> Prepared {
    let tx = |x: f64| to_axis(x, log_x);
    let fin = |v: Option<&f64>| to_axis(*v?, log_y);
    let n = s.x.len().min(s.y.len());
    let lines = runs((0..n).map(|i| Some((tx(s.x[i])?, fin(s.y.get(i))?))));
    let bands = match &s.band {
        Some((lo, hi)) => {
            runs((0..s.x.len()).map(|i| Some((tx(s.x[i])?, fin(lo.get(i))?, fin(hi.get(i))?))))
        }
        None => vec![],
    };
    // A symmetric error bar is not symmetric on a log axis: none are drawn there.
    let errs = match &s.err {
        Some(e) if !log_y => (0..n)
            .filter_map(|i| Some((tx(s.x[i])?, fin(s.y.get(i))?, fin(e.get(i))?.abs())))
            .collect(),
        _ => vec![],
    };
    Prepared { lines, bands, errs }
}

fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (label, vmin, vmax): (&str, f64, f64),
    y0: i32,
    y1: i32,
    x0: i32,
    s: f64,
) -> Result<()> {
    let bw = px(s, 24.0);
    let steps = 120;
    for k in 0..steps {
        let t0 = k as f64 / steps as f64;
        let t1 = (k + 1) as f64 / steps as f64;
        let ya = y1 - ((y1 - y0) as f64 * t0).round() as i32;
        let yb = y1 - ((y1 - y0) as f64 * t1).round() as i32;
        let c = sequential((t0 + t1) / 2.0 * SEQ_SPAN);
        area.draw(&Rectangle::new([(x0, yb), (x0 + bw, ya)], c.filled()))
            .plot()?;
    }
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + bw, y1)],
        BLACK.stroke_width(px(s, 1.0) as u32),
    ))
    .plot()?;
    draw_scale(area, (label, vmin, vmax), y0, y1, x0 + bw, s)
}

/// A vertical scale: ticks to the right of `x0` for values `vmin` (at `y1`) to `vmax`
/// (at `y0`), their labels, and the rotated label beyond them (the colour bar's, and the
/// second y axis of a line plot).
fn draw_scale<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (label, vmin, vmax): (&str, f64, f64),
    y0: i32,
    y1: i32,
    x0: i32,
    s: f64,
) -> Result<()> {
    let (lo, hi) = if vmin < vmax {
        (vmin, vmax)
    } else if vmin > vmax {
        (vmax, vmin)
    } else {
        (vmin - 0.5, vmin + 0.5)
    };
    let ax = Axis::linear(lo, hi, 6);
    let f = font(TICK_SIZE, s).pos(Pos::new(HPos::Left, VPos::Center));
    let mut max_w = 0;
    for (t, l) in ax.ticks.iter().zip(&ax.labels) {
        let frac = (t - vmin) / (vmax - vmin);
        let frac = if frac.is_finite() { frac } else { 0.5 };
        let y = y1 - ((y1 - y0) as f64 * frac).round() as i32;
        area.draw(&PathElement::new(
            vec![(x0, y), (x0 + px(s, 7.0), y)],
            BLACK.stroke_width(px(s, 1.5) as u32),
        ))
        .plot()?;
        area.draw(&Text::new(l.clone(), (x0 + px(s, 11.0), y), f.clone()))
            .plot()?;
        max_w = max_w.max(area.estimate_text_size(l, &f).plot()?.0 as i32);
    }
    if !label.is_empty() {
        let lf = font(AXIS_LABEL_SIZE, s)
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Center, VPos::Top));
        let x = x0 + px(s, 20.0) + max_w;
        area.draw(&Text::new(
            label.to_string(),
            (x + px(s, AXIS_LABEL_SIZE * 1.2), (y0 + y1) / 2),
            lf,
        ))
        .plot()?;
    }
    Ok(())
}

fn colorbar_width<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    cb: (&str, f64, f64),
    s: f64,
) -> Result<i32> {
    Ok(px(s, 24.0) + scale_width(root, cb.1, cb.2, s)?)
}

/// The width [`draw_scale`] takes, with the margin before it.
fn scale_width<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    a: f64,
    b: f64,
    s: f64,
) -> Result<i32> {
    let (lo, hi) = (a.min(b), a.max(b));
    let ax = Axis::linear(lo, if hi > lo { hi } else { lo + 1.0 }, 6);
    let f = font(TICK_SIZE, s);
    let mut w = 0;
    for l in &ax.labels {
        w = w.max(root.estimate_text_size(l, &f).plot()?.0 as i32);
    }
    Ok(px(s, 24.0 + 11.0 + 20.0 + AXIS_LABEL_SIZE * 1.4 + 16.0) + w)
}

impl LinePlot {
    /// The second y axis, from the series marked `right`, where there is one.
    fn right_axis(&self, prepared: &[Prepared]) -> Option<Axis> {
        self.y2_label.as_ref()?;
        let ys = prepared
            .iter()
            .zip(&self.series)
            .filter(|(_, s)| s.right)
            .flat_map(|(p, _)| y_extent(p));
        let (y0, y1) = limits(ys, 0.05, None, false);
        Some(Axis::linear(y0, y1, 7))
    }

    /// The axes that hold every line, band and error bar (or the fixed ranges); y of the
    /// series on the first axis only.
    fn axes(&self, prepared: &[Prepared]) -> (Axis, Axis) {
        let xs = prepared.iter().flat_map(|p| {
            p.lines
                .iter()
                .flatten()
                .map(|q| q.0)
                .chain(p.bands.iter().flatten().map(|q| q.0))
        });
        let (x0, x1) = limits(xs, 0.03, self.x_range, self.log_x);
        let two_axes = self.y2_label.is_some();
        let ys = prepared
            .iter()
            .zip(&self.series)
            .filter(|(_, s)| !(two_axes && s.right))
            .flat_map(|(p, _)| y_extent(p));
        let (y0, y1) = limits(ys, 0.05, self.y_range, self.log_y);
        let xa = match &self.x_ticks {
            Some(named) if !named.is_empty() && !self.log_x => Axis {
                lo: x0,
                hi: x1,
                ticks: named.iter().map(|t| t.0).collect(),
                labels: named.iter().map(|t| t.1.clone()).collect(),
            },
            _ if self.log_x => Axis::log(x0, x1, 8),
            _ => Axis::linear(x0, x1, 8),
        };
        let ya = if self.log_y {
            Axis::log(y0, y1, 7)
        } else {
            Axis::linear(y0, y1, 7)
        };
        (xa, ya)
    }

    fn legend_entries(&self) -> Vec<LegendEntry> {
        if !self.legend {
            return vec![];
        }
        self.series
            .iter()
            .enumerate()
            .filter(|(_, se)| !se.label.is_empty())
            .map(|(i, se)| {
                let (color, dash) = self.style_of(i);
                LegendEntry {
                    label: se.label.clone(),
                    color,
                    swatch: Swatch::Line {
                        dash,
                        marker: se.markers,
                        band: se.band.is_some(),
                    },
                }
            })
            .collect()
    }

    /// The translucent bands, all before any line so that every line lies on top.
    fn draw_bands<DB: DrawingBackend>(
        &self,
        chart: &mut Chart<'_, DB>,
        prepared: &[Prepared],
        clip: &Rect,
        marks: &mut Marks,
    ) -> Result<()> {
        for (i, p) in prepared.iter().enumerate() {
            let (color, _) = self.style_of(i);
            for run in &p.bands {
                let mut poly: Vec<(f64, f64)> = run.iter().map(|q| (q.0, q.2)).collect();
                poly.extend(run.iter().rev().map(|q| (q.0, q.1)));
                let poly = clip.clip_polygon(&poly);
                if poly.len() >= 3 {
                    marks.areas.push(poly.clone());
                }
                if poly.len() >= 3 {
                    chart
                        .draw_series(std::iter::once(Polygon::new(
                            poly,
                            color.mix(0.18).filled(),
                        )))
                        .plot()?;
                }
            }
        }
        Ok(())
    }

    /// One series' line (solid or dashed), error bars and markers.
    fn draw_line<DB: DrawingBackend>(
        &self,
        chart: &mut Chart<'_, DB>,
        i: usize,
        p: &Prepared,
        view: &View,
        marks: &mut Marks,
    ) -> Result<()> {
        let (s, clip) = (view.scale, &view.clip);
        let (color, dash) = self.style_of(i);
        let style = color.stroke_width(px(s, LINE_WIDTH) as u32);
        for run in &p.lines {
            for piece in clip.clip_polyline(run) {
                marks.polyline(&piece);
                if dash == 0 {
                    chart
                        .draw_series(std::iter::once(PathElement::new(piece, style)))
                        .plot()?;
                } else {
                    let (on, off) = if dash == 1 { (12.0, 7.0) } else { (3.0, 5.0) };
                    chart
                        .draw_series(DashedLineSeries::new(piece, px(s, on), px(s, off), style))
                        .plot()?;
                }
            }
        }
        draw_error_bars(chart, p, color, view, marks)?;
        if self.series[i].markers {
            let pts: Vec<(f64, f64)> = p
                .lines
                .iter()
                .flatten()
                .copied()
                .filter(|&q| clip.contains(q))
                .collect();
            marks.points.extend(&pts);
            chart
                .draw_series(
                    pts.iter()
                        .map(|&q| Circle::new(q, px(s, 5.5), color.filled())),
                )
                .plot()?;
        }
        Ok(())
    }
}

/// What drawing inside a chart needs to know of it: the pixel scale, the data rectangle
/// and how much data one pixel spans along x.
struct View {
    scale: f64,
    clip: Rect,
    data_per_px: f64,
}

/// Vertical error bars with caps, clipped to the data rectangle.
fn draw_error_bars<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    p: &Prepared,
    color: RGBColor,
    view: &View,
    marks: &mut Marks,
) -> Result<()> {
    let clip = &view.clip;
    let bar = color.stroke_width(px(view.scale, 2.0) as u32);
    let cap = view.data_per_px * 6.0 * view.scale;
    for &(x, y, e) in &p.errs {
        if x < clip.x0 || x > clip.x1 {
            continue;
        }
        if let Some((a, b)) = clip.clip_segment((x, y - e), (x, y + e)) {
            chart
                .draw_series(std::iter::once(PathElement::new(vec![a, b], bar)))
                .plot()?;
            marks.segments.push((a, b));
        }
        for yc in [y - e, y + e] {
            if let Some((a, b)) = clip.clip_segment((x - cap, yc), (x + cap, yc)) {
                chart
                    .draw_series(std::iter::once(PathElement::new(vec![a, b], bar)))
                    .plot()?;
            }
        }
    }
    Ok(())
}

impl Figure for LinePlot {
    fn render<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        s: f64,
        at: LegendAt,
    ) -> Result<bool> {
        let mut prepared: Vec<Prepared> = self
            .series
            .iter()
            .map(|se| prepare(se, self.log_x, self.log_y && !se.right))
            .collect();
        let (xa, ya) = self.axes(&prepared);
        let y2 = self.right_axis(&prepared);
        if let Some(y2) = &y2 {
            for (p, _) in prepared
                .iter_mut()
                .zip(&self.series)
                .filter(|(_, s)| s.right)
            {
                rescale(p, y2, &ya);
            }
        }
        let y2_w = match &y2 {
            Some(a) => scale_width(root, a.lo, a.hi, s)?,
            None => 0,
        };
        let entries = self.legend_entries();
        let place = Placement::of(&entries, true, at);
        let cb = self.colorbar.as_ref().map(|(l, a, b)| (l.as_str(), *a, *b));
        let (legend_w, strip_h) = place.room(root, &entries, s)?;
        let cb_w = match cb {
            Some(c) => colorbar_width(root, c, s)?,
            None => 0,
        };
        let (w, h) = root.dim_in_pixel();
        let (upper, strip) = root.split_vertically(h as i32 - strip_h);
        let (left, right) = upper.split_horizontally(w as i32 - legend_w - cb_w - y2_w);
        let frame = Frame::of(&self.title, &self.x_label, &self.y_label);
        let mut chart = build_chart(&left, s, &frame, &xa, &ya)?;
        let (plot_x, plot_y) = chart.plotting_area().get_pixel_range();
        let view = View {
            scale: s,
            clip: Rect::of(&xa, &ya),
            data_per_px: (xa.hi - xa.lo) / (plot_x.end - plot_x.start).max(1) as f64,
        };
        let mut marks = Marks::default();
        self.draw_bands(&mut chart, &prepared, &view.clip, &mut marks)?;
        for (i, p) in prepared.iter().enumerate() {
            self.draw_line(&mut chart, i, p, &view, &mut marks)?;
        }
        let top = plot_y
            .start
            .min(h as i32 - legend_size(root, &entries, s)?.1);
        // Past the second axis' scale, which runs from the plot's right edge.
        let areas = LegendAreas(
            &left,
            &chart,
            &right,
            (y2_w + px(s, 10.0), top.max(0)),
            &strip,
        );
        if !place_legend(place, areas, &entries, &marks, s)? {
            return Ok(false);
        }
        if let Some(c) = cb {
            let offset = legend_w + y2_w + px(s, 24.0);
            draw_colorbar(&right, c, plot_y.start, plot_y.end, offset, s)?;
        }
        if let (Some(a), Some(label)) = (&y2, &self.y2_label) {
            // The second axis runs along the plot's right edge, on the whole figure.
            let x = plot_x.end;
            root.draw(&PathElement::new(
                vec![(x, plot_y.start), (x, plot_y.end)],
                BLACK.stroke_width(px(s, 1.5) as u32),
            ))
            .plot()?;
            draw_scale(root, (label, a.lo, a.hi), plot_y.start, plot_y.end, x, s)?;
        }
        Ok(true)
    }
}

// ------------------------------------------------------------ histogram ----

/// Overlaid, translucent histograms, one colour per group, with a legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub title: String,
    pub x_label: String,
    /// "units", or "fraction of units" with `density`.
    pub y_label: String,
    /// (label, values); NaN/infinite values are ignored.
    pub groups: Vec<(String, Vec<f64>)>,
    /// Number of equal-width bins over the range.
    pub bins: usize,
    /// Bin range (default: finite data range of all groups); values outside
    /// are not counted.
    pub range: Option<(f64, f64)>,
    /// Plot each group's fraction of its finite values per bin (bars of a
    /// group sum to 1) instead of counts, so groups of different size compare.
    pub density: bool,
}

impl Histogram {
    /// Empty histogram with 30 bins, counts on the y axis.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            groups: vec![],
            bins: 30,
            range: None,
            density: false,
        }
    }
    /// Append a group.
    pub fn group(mut self, label: &str, values: Vec<f64>) -> Self {
        self.groups.push((label.to_string(), values));
        self
    }
    /// Write `stem.png` and `stem.svg`; returns both paths.
    pub fn save(&self, stem: &Path) -> Result<Vec<PathBuf>> {
        save_figure(self, stem)
    }

    /// Bin edges (lo, hi) and per-group heights.
    fn binned(&self) -> ((f64, f64), Vec<Vec<f64>>) {
        let bins = self.bins.max(1);
        let finite = || {
            self.groups
                .iter()
                .flat_map(|g| g.1.iter().copied())
                .filter(|v| v.is_finite())
        };
        let (lo, hi) = match self.range {
            Some((a, b)) if a.is_finite() && b.is_finite() && a != b => (a.min(b), a.max(b)),
            _ => {
                let lo = finite().fold(f64::INFINITY, f64::min);
                let hi = finite().fold(f64::NEG_INFINITY, f64::max);
                if lo > hi {
                    (0.0, 1.0)
                } else if lo == hi {
                    (lo - 0.5, hi + 0.5)
                } else {
                    (lo, hi)
                }
            }
        };
        let width = (hi - lo) / bins as f64;
        let heights = self
            .groups
            .iter()
            .map(|(_, vals)| {
                let mut c = vec![0.0; bins];
                let mut n = 0usize;
                for &v in vals.iter().filter(|v| v.is_finite()) {
                    n += 1;
                    if v < lo || v > hi {
                        continue;
                    }
                    let b = (((v - lo) / width) as usize).min(bins - 1);
                    c[b] += 1.0;
                }
                if self.density && n > 0 {
                    c.iter_mut().for_each(|x| *x /= n as f64);
                }
                c
            })
            .collect();
        ((lo, hi), heights)
    }
}

impl Figure for Histogram {
    fn render<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        s: f64,
        at: LegendAt,
    ) -> Result<bool> {
        let ((lo, hi), heights) = self.binned();
        let bins = self.bins.max(1);
        let width = (hi - lo) / bins as f64;
        let ymax = heights.iter().flatten().fold(0.0f64, |m, &v| m.max(v));
        let ymax = if ymax > 0.0 { ymax * 1.08 } else { 1.0 };
        let pad = (hi - lo) * 0.02;
        let xa = Axis::linear(lo - pad, hi + pad, 8);
        let ya = Axis::linear(0.0, ymax, 7);
        let entries: Vec<LegendEntry> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.0.is_empty())
            .map(|(i, g)| LegendEntry {
                label: g.0.clone(),
                color: palette(i),
                swatch: Swatch::Patch,
            })
            .collect();
        // One group needs no legend, unless there are too many entries for the axes.
        let shown = self.groups.len() > 1 || entries.len() > MAX_INSIDE_LEGEND;
        let place = Placement::of(&entries, shown, at);
        let (legend_w, strip_h) = place.room(root, &entries, s)?;
        let (w, h) = root.dim_in_pixel();
        let (upper, strip) = root.split_vertically(h as i32 - strip_h);
        let (left, right) = upper.split_horizontally(w as i32 - legend_w);
        let frame = Frame::of(&self.title, &self.x_label, &self.y_label);
        let mut chart = build_chart(&left, s, &frame, &xa, &ya)?;
        let mut marks = Marks::default();
        for (i, h) in heights.iter().enumerate() {
            let color = palette(i);
            chart
                .draw_series(
                    h.iter()
                        .enumerate()
                        .filter(|(_, &v)| v > 0.0)
                        .map(|(b, &v)| {
                            let x = lo + b as f64 * width;
                            Rectangle::new([(x, 0.0), (x + width, v)], color.mix(0.3).filled())
                        }),
                )
                .plot()?;
            // step outline in full colour
            let mut step = vec![(lo, 0.0)];
            for (b, &v) in h.iter().enumerate() {
                let x = lo + b as f64 * width;
                step.push((x, v));
                step.push((x + width, v));
                if v > 0.0 {
                    marks
                        .areas
                        .push(vec![(x, 0.0), (x + width, 0.0), (x + width, v), (x, v)]);
                }
            }
            step.push((hi, 0.0));
            marks.polyline(&step);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    step,
                    color.stroke_width(px(s, 2.5) as u32),
                )))
                .plot()?;
        }
        let areas = LegendAreas(
            &left,
            &chart,
            &right,
            (px(s, 10.0), chart.plotting_area().get_pixel_range().1.start),
            &strip,
        );
        place_legend(place, areas, &entries, &marks, s)
    }
}

// -------------------------------------------------------------- scatter ----

/// Scatter plot, one colour per group, with an optional note (e.g.
/// "Spearman ρ = 0.12 (n=128)") in the emptiest corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// (label, points); points with a NaN/infinite coordinate are skipped.
    pub groups: Vec<(String, Vec<(f64, f64)>)>,
    /// Text printed in a corner; may contain several lines.
    pub note: Option<String>,
}

impl Scatter {
    /// Empty scatter plot.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            groups: vec![],
            note: None,
        }
    }
    /// Append a group of points.
    pub fn group(mut self, label: &str, points: Vec<(f64, f64)>) -> Self {
        self.groups.push((label.to_string(), points));
        self
    }
    /// Set the corner note.
    pub fn note(mut self, text: &str) -> Self {
        self.note = Some(text.to_string());
        self
    }
    /// Write `stem.png` and `stem.svg`; returns both paths.
    pub fn save(&self, stem: &Path) -> Result<Vec<PathBuf>> {
        save_figure(self, stem)
    }
}

/// Height of the strip under a figure that holds a note of `lines` lines.
fn note_height(lines: usize, s: f64) -> i32 {
    if lines == 0 {
        0
    } else {
        px(s, LEGEND_SIZE * 1.4) * lines as i32 + px(s, 10.0)
    }
}

/// A note in its own strip under the axes, aligned with the plot's left edge: outside
/// the data whatever the data are (a corner box inside the axes covers points whenever
/// every corner holds some).
fn draw_note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    note: &str,
    left: i32,
    s: f64,
) -> Result<()> {
    let f = font(LEGEND_SIZE, s).pos(Pos::new(HPos::Left, VPos::Top));
    let line_h = px(s, LEGEND_SIZE * 1.4);
    for (k, l) in note.lines().enumerate() {
        let pos = (left, px(s, 2.0) + line_h * k as i32);
        area.draw(&Text::new(l.to_string(), pos, f.clone()))
            .plot()?;
    }
    Ok(())
}

impl Figure for Scatter {
    fn render<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        s: f64,
        at: LegendAt,
    ) -> Result<bool> {
        let pts: Vec<Vec<(f64, f64)>> = self
            .groups
            .iter()
            .map(|g| {
                g.1.iter()
                    .copied()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect()
            })
            .collect();
        let (x0, x1) = limits(pts.iter().flatten().map(|p| p.0), 0.05, None, false);
        let (y0, y1) = limits(pts.iter().flatten().map(|p| p.1), 0.05, None, false);
        let xa = Axis::linear(x0, x1, 8);
        let ya = Axis::linear(y0, y1, 7);
        let frame = Frame::of(&self.title, &self.x_label, &self.y_label);
        let entries: Vec<LegendEntry> = if self.groups.len() > 1 {
            self.groups
                .iter()
                .enumerate()
                .filter(|(_, g)| !g.0.is_empty())
                .map(|(i, g)| LegendEntry {
                    label: g.0.clone(),
                    color: categorical(i, self.groups.len()),
                    swatch: Swatch::Point,
                })
                .collect()
        } else {
            vec![]
        };
        let place = Placement::of(&entries, true, at);
        let (legend_w, strip_h) = place.room(root, &entries, s)?;
        let note = self.note.as_deref().filter(|n| !n.is_empty());
        let (w, h) = root.dim_in_pixel();
        let note_h = note_height(note.map_or(0, |n| n.lines().count()), s);
        // Under the axes: the legend (if no corner is free), then the note.
        let (upper, below) = root.split_vertically(h as i32 - note_h - strip_h);
        let (legend_strip, strip) = below.split_vertically(strip_h);
        let (left, right) = upper.split_horizontally(w as i32 - legend_w);
        let mut chart = build_chart(&left, s, &frame, &xa, &ya)?;
        let r = px(
            s,
            if pts.iter().map(Vec::len).sum::<usize>() > 2000 {
                3.0
            } else {
                5.0
            },
        );
        for (i, g) in pts.iter().enumerate() {
            let c = categorical(i, pts.len());
            chart
                .draw_series(g.iter().map(|&p| Circle::new(p, r, c.mix(0.6).filled())))
                .plot()?;
        }
        let marks = Marks {
            points: pts.iter().flatten().copied().collect(),
            ..Marks::default()
        };
        let plot = chart.plotting_area().get_pixel_range();
        let areas = LegendAreas(
            &left,
            &chart,
            &right,
            (px(s, 10.0), plot.1.start),
            &legend_strip,
        );
        if !place_legend(place, areas, &entries, &marks, s)? {
            return Ok(false);
        }
        if let Some(note) = note {
            draw_note(&strip, note, plot.0.start, s)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_outputs(paths: &[PathBuf], must_contain: &[&str]) {
        assert_eq!(paths.len(), 2);
        assert!(paths[0].extension().unwrap() == "png");
        let img = image::open(&paths[0]).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (FIGURE_WIDTH, FIGURE_HEIGHT));
        // white background with some ink
        assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255]);
        let dark = img
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 100))
            .count();
        assert!(dark > 500, "figure looks empty ({dark} dark pixels)");
        let svg = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{}",
            &svg[..50]
        );
        for s in must_contain {
            assert!(svg.contains(s), "SVG lacks {s:?}");
        }
        crate::assert_no_temp_files(paths[0].parent().unwrap());
    }

    fn curve(n: usize, f: impl Fn(f64) -> f64) -> (Vec<f64>, Vec<f64>) {
        let x: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        let y = x.iter().map(|&v| f(v)).collect();
        (x, y)
    }

    #[test]
    fn line_plot_png_svg_with_bands_nan_and_errbars() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = LinePlot::new("Ablation", "fraction of units ablated", "test accuracy (%)");
        for k in 0..3 {
            let (x, mut y) = curve(11, |v| 90.0 - 60.0 * v.powf(1.0 + k as f64));
            y[4] = f64::NAN;
            let lo = y.iter().map(|v| v - 3.0).collect();
            let hi = y.iter().map(|v| v + 3.0).collect();
            let s = Series::new(format!("seed {k}"), x, y)
                .with_band(lo, hi)
                .with_markers(k == 1);
            let s = if k == 2 { s.with_err(vec![2.0; 11]) } else { s };
            p = p.series(s);
        }
        let paths = p.save(&dir.path().join("ablation")).unwrap();
        assert_eq!(paths[0], dir.path().join("ablation.png"));
        check_outputs(
            &paths,
            &[
                "fraction of units ablated",
                "test accuracy (%)",
                "seed 2",
                "Ablation",
            ],
        );
    }

    /// A categorical axis shows its names at their positions and no numbers between
    /// them (a layer axis of 1..7 would otherwise be ticked 1, 1.5, 2, ...).
    #[test]
    fn named_x_ticks_replace_the_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["conv1.relu", "conv2.relu", "fc1.relu"];
        let ticks = names
            .iter()
            .enumerate()
            .map(|(i, n)| ((i + 1) as f64, n.to_string()))
            .collect();
        let p = LinePlot::new("corresponding layers", "layer", "cka-linear")
            .x_ticks(ticks)
            .series(Series::new(
                "net",
                vec![1.0, 2.0, 3.0],
                vec![0.99, 0.95, 0.9],
            ));
        let paths = p.save(&dir.path().join("layers")).unwrap();
        check_outputs(&paths, &names);
        let svg = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(
            !svg.contains(">1.5<") && !svg.contains(">2.5<"),
            "numeric ticks drawn"
        );
    }

    #[test]
    fn log_x_and_degenerate_inputs_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let x = vec![-1.0, 0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0];
        let y = vec![1.0, 2.0, 0.9, f64::NAN, 0.7, 0.5, f64::INFINITY];
        let p = LinePlot::new("", "learning rate", "loss")
            .log_x(true)
            .series(Series::new("run", x, y));
        check_outputs(
            &p.save(&dir.path().join("log")).unwrap(),
            &["learning rate", "loss"],
        );
        // all-NaN, empty, single point, and narrow log range
        let p = LinePlot::new("t", "x (a.u.)", "y (a.u.)")
            .series(Series::new("nan", vec![f64::NAN; 3], vec![f64::NAN; 3]))
            .series(Series::new("empty", vec![], vec![]))
            .series(Series::new("one", vec![1.0], vec![1.0]).with_markers(true));
        p.save(&dir.path().join("degenerate")).unwrap();
        let p = LinePlot::new("t", "x", "y").log_x(true).series(Series::new(
            "a",
            vec![2.0, 3.0],
            vec![1.0, 2.0],
        ));
        p.save(&dir.path().join("narrowlog")).unwrap();
        let p = LinePlot::new("t", "x", "y")
            .log_x(true)
            .x_range(0.0, 1.0)
            .series(Series::new("a", vec![], vec![]));
        p.save(&dir.path().join("emptylog")).unwrap();
    }

    #[test]
    fn a_log_y_axis_has_decade_ticks_and_skips_non_positive_values() {
        // y = 1 / x^2 over x = 1..100: a straight line from 1 down to 1e-4 on log-log axes,
        // with a zero and a negative value that have no place there.
        let x: Vec<f64> = (1..=100).map(f64::from).collect();
        let mut y: Vec<f64> = x.iter().map(|x| x.powi(-2)).collect();
        (y[10], y[20]) = (0.0, -1.0);
        let series = Series::new("power law", x, y).with_err(vec![0.5; 100]);
        let prepared = prepare(&series, true, true);
        let points: Vec<(f64, f64)> = prepared.lines.iter().flatten().copied().collect();
        assert_eq!(points.len(), 98);
        assert!(points.iter().all(|&(lx, ly)| (ly + 2.0 * lx).abs() < 1e-12));
        assert!(
            prepared.errs.is_empty(),
            "no symmetric error bars on a log axis"
        );
        let p = LinePlot::new("spectrum", "component", "explained variance")
            .log_x(true)
            .log_y(true)
            .series(series);
        let (_, ya) = p.axes(&[prepare(&p.series[0], true, true)]);
        assert!(
            (ya.lo - -4.2).abs() < 1e-9 && (ya.hi - 0.2).abs() < 1e-9,
            "{ya:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        check_outputs(
            &p.save(&dir.path().join("loglog")).unwrap(),
            &["explained variance", "10⁻⁴"],
        );
    }

    #[test]
    fn a_second_axis_is_labelled_and_holds_its_series() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let p = LinePlot::new("Over training", "epoch", "AUC")
            .y2_label("test loss")
            .series(Series::new(
                "AUC",
                x.clone(),
                x.iter().map(|e| e / 20.0).collect(),
            ))
            .series(
                Series::new("loss", x.clone(), x.iter().map(|e| 100.0 + e).collect()).on_right(),
            );
        let prepared: Vec<Prepared> = p.series.iter().map(|s| prepare(s, false, false)).collect();
        // The first axis is sized by the AUC alone (0 to 0.95), the second by the loss.
        let (_, ya) = p.axes(&prepared);
        assert!(ya.hi < 2.0, "{}", ya.hi);
        let y2 = p.right_axis(&prepared).unwrap();
        assert!(y2.lo <= 100.0 && y2.hi >= 119.0 && y2.lo > 50.0);
        // Rescaled, the loss spans the first axis as it spans the second.
        let mut loss = prepare(&p.series[1], false, false);
        rescale(&mut loss, &y2, &ya);
        let first = loss.lines[0][0].1;
        let expected = ya.lo + (100.0 - y2.lo) / (y2.hi - y2.lo) * (ya.hi - ya.lo);
        assert!((first - expected).abs() < 1e-9);
        check_outputs(
            &p.save(&dir.path().join("two")).unwrap(),
            &["test loss", "AUC"],
        );
    }

    #[test]
    fn many_series_with_colorbar_and_clipping() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = LinePlot::new("Noise sweep", "epoch", "accuracy")
            .colorbar("label noise", 0.0, 0.8)
            .y_range(0.0, 1.0);
        for k in 0..20 {
            let (x, y) = curve(30, |v| (0.3 + v * (1.2 - k as f64 * 0.04)).min(1.3));
            p = p.series(Series::new(format!("noise {:.2}", k as f64 * 0.04), x, y));
        }
        check_outputs(
            &p.save(&dir.path().join("sweep")).unwrap(),
            &["label noise", "noise 0.76"],
        );
    }

    #[test]
    fn histogram_and_scatter() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<f64> = (0..500)
            .map(|i| ((i * 37 % 101) as f64 / 101.0).powi(2))
            .collect();
        let mut b: Vec<f64> = (0..300)
            .map(|i| 0.3 + (i * 53 % 97) as f64 / 200.0)
            .collect();
        b.push(f64::NAN);
        let h = Histogram::new(
            "Class selectivity",
            "selectivity index",
            "fraction of units",
        )
        .group("conv1", a.clone())
        .group("conv2", b.clone());
        let h = Histogram {
            density: true,
            bins: 25,
            ..h
        };
        check_outputs(
            &h.save(&dir.path().join("hist")).unwrap(),
            &["selectivity index", "fraction of units", "conv2"],
        );
        let (lo, heights) = h.binned();
        assert_eq!(
            lo,
            (
                0.0,
                a.iter()
                    .chain(&b)
                    .copied()
                    .filter(|v| v.is_finite())
                    .fold(0.0, f64::max)
            )
        );
        for hs in &heights {
            assert!((hs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        let empty = Histogram::new("e", "x", "units").group("nan", vec![f64::NAN]);
        empty.save(&dir.path().join("hist_empty")).unwrap();

        let pts: Vec<(f64, f64)> = a.iter().zip(&b).map(|(&x, &y)| (x, y)).collect();
        let sc = Scatter::new(
            "Selectivity vs. importance",
            "selectivity index",
            "accuracy drop (%)",
        )
        .group("conv1", pts.clone())
        .group(
            "conv2",
            pts.iter()
                .map(|p| (p.1, p.0))
                .chain([(f64::NAN, 1.0)])
                .collect(),
        )
        .note("Spearman ρ = 0.12 (n=128)");
        check_outputs(
            &sc.save(&dir.path().join("scatter")).unwrap(),
            &[
                "accuracy drop (%)",
                "selectivity index",
                "Spearman ρ = 0.12 (n=128)",
            ],
        );
    }

    /// Numbers of an SVG attribute `name="..."` in order of appearance.
    fn svg_attr(svg: &str, element: &str, name: &str) -> Vec<f64> {
        svg.split(&format!("<{element}"))
            .skip(1)
            .filter_map(|e| {
                let rest = e.split(&format!(" {name}=\"")).nth(1)?;
                rest.split('"').next()?.parse().ok()
            })
            .collect()
    }

    /// Points in every corner and along the top edge: a note inside the axes would cover
    /// some. It must lie below every point (its own strip under the axes).
    #[test]
    fn a_scatter_note_stays_off_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let grid: Vec<(f64, f64)> = (0..21)
            .flat_map(|i| (0..21).map(move |j| (i as f64, j as f64)))
            .collect();
        let paths = Scatter::new("full", "x", "y")
            .group("grid", grid)
            .note("NOTE line one\nNOTE line two")
            .save(&dir.path().join("full"))
            .unwrap();
        let svg = std::fs::read_to_string(&paths[1]).unwrap();
        let lowest_point = svg_attr(&svg, "circle", "cy")
            .into_iter()
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(lowest_point.is_finite(), "no points drawn");
        let note_tops: Vec<f64> = svg
            .split("<text")
            .skip(1)
            .filter(|t| t.contains("NOTE line"))
            .filter_map(|t| t.split(" y=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect();
        assert_eq!(note_tops.len(), 2, "both note lines drawn");
        for y in note_tops {
            assert!(
                y > lowest_point + 5.0,
                "note at y {y}, a point at {lowest_point}"
            );
        }
    }

    /// The `points` of every `<polyline>` drawn in `color` (an SVG of plotters).
    fn svg_polylines(svg: &str, color: RGBColor) -> Vec<Vec<(f64, f64)>> {
        let stroke = format!("stroke=\"#{:02X}{:02X}{:02X}\"", color.0, color.1, color.2);
        svg.split("<polyline")
            .skip(1)
            .filter(|e| e.split("/>").next().is_some_and(|e| e.contains(&stroke)))
            .filter_map(|e| e.split(" points=\"").nth(1)?.split('"').next())
            .map(|pts| {
                pts.split_whitespace()
                    .filter_map(|p| {
                        let (x, y) = p.split_once(',')?;
                        Some((x.parse().ok()?, y.parse().ok()?))
                    })
                    .collect()
            })
            .collect()
    }

    /// The legend's frame: the one rectangle stroked in the frame's grey.
    fn svg_legend_box(svg: &str) -> Rect {
        let frame = svg
            .split("<rect")
            .skip(1)
            .map(|e| e.split("/>").next().unwrap())
            .find(|e| e.contains("stroke=\"#5A5A5A\""))
            .expect("a legend frame");
        let attr = |name: &str| -> f64 {
            let rest = frame.split(&format!(" {name}=\"")).nth(1).unwrap();
            rest.split('"').next().unwrap().parse().unwrap()
        };
        let (x, y) = (attr("x"), attr("y"));
        Rect {
            x0: x,
            x1: x + attr("width"),
            y0: y,
            y1: y + attr("height"),
        }
    }

    /// Two diagonals through the whole plot, one of them on a dashed second axis (as the
    /// loss of the checkpoint figure), and markers along the top and bottom: every corner
    /// holds data, so the legend must leave the axes; it then crosses no line of the data.
    /// With one diagonal only, the two free corners off it take the legend inside.
    #[test]
    fn a_legend_never_covers_data() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<f64> = (0..=20).map(f64::from).collect();
        let up: Vec<f64> = x.iter().map(|v| v / 20.0).collect();
        let down: Vec<f64> = x.iter().map(|v| 2.0 - v / 10.0).collect();
        let full = LinePlot::new("corners", "x", "y")
            .series(Series::new("rising", x.clone(), up.clone()).with_markers(true))
            .series(Series::new("falling (right axis)", x.clone(), down).on_right())
            .y2_label("loss");
        let svg =
            std::fs::read_to_string(&full.save(&dir.path().join("full")).unwrap()[1]).unwrap();
        let legend = svg_legend_box(&svg);
        let mut lines = 0;
        for colour in [palette(0), palette(1)] {
            for line in svg_polylines(&svg, colour) {
                // The legend's own swatches lie inside it.
                if line.iter().all(|&p| legend.contains(p)) {
                    continue;
                }
                for w in line.windows(2) {
                    lines += 1;
                    assert!(
                        legend.clip_segment(w[0], w[1]).is_none(),
                        "segment {:?} crosses the legend {legend:?}",
                        (w[0], w[1])
                    );
                }
            }
        }
        assert!(lines > 20, "the data lines were found: {lines}");
        // Of the markers, only the rising line's swatch lies in the legend.
        let in_legend = svg_attr(&svg, "circle", "cx")
            .into_iter()
            .zip(svg_attr(&svg, "circle", "cy"))
            .filter(|&q| legend.contains(q))
            .count();
        assert_eq!(in_legend, 1, "markers in the legend {legend:?}");
        let one = LinePlot::new("one diagonal", "x", "y")
            .series(Series::new("rising", x.clone(), up.clone()))
            .series(Series::new("level", vec![0.0, 20.0], vec![0.0, 0.0]));
        let svg = std::fs::read_to_string(&one.save(&dir.path().join("one")).unwrap()[1]).unwrap();
        let legend = svg_legend_box(&svg);
        // Upper left: the first free corner (upper right holds the rising line's end).
        assert!(legend.x1 < FIGURE_WIDTH as f64 / 2.0, "{legend:?}");
        assert!(legend.y1 < FIGURE_HEIGHT as f64 / 2.0, "{legend:?}");
    }

    #[test]
    fn ticks_are_nice() {
        let a = Axis::linear(-0.03, 1.03, 8);
        assert_eq!(a.labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let a = Axis::linear(-1.0, 1.0, 8);
        assert_eq!(
            a.labels,
            ["−1.00", "−0.75", "−0.50", "−0.25", "0.00", "0.25", "0.50", "0.75", "1.00"]
        );
        let a = Axis::log(-4.1, 0.2, 8);
        assert_eq!(a.labels, ["10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰"]);
        let a = Axis::log(0.0, 2.0, 8);
        assert_eq!(a.labels, ["1", "10", "100"]);
        let a = Axis::log(0.0, 1.0, 8);
        assert_eq!(a.labels, ["1", "2", "5", "10"]);
        let a = Axis::linear(0.0, 3e5, 6);
        assert_eq!(a.labels[1], "5e4");
    }

    #[test]
    fn clipping() {
        let r = Rect {
            x0: 0.0,
            x1: 1.0,
            y0: 0.0,
            y1: 1.0,
        };
        let pieces = r.clip_polyline(&[(-1.0, 0.5), (0.5, 0.5), (0.5, 2.0), (0.7, 0.5)]);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0], vec![(0.0, 0.5), (0.5, 0.5), (0.5, 1.0)]);
        let poly = r.clip_polygon(&[(-1.0, -1.0), (2.0, -1.0), (2.0, 2.0), (-1.0, 2.0)]);
        assert_eq!(poly.len(), 4);
        assert!(poly.iter().all(|&p| r.contains(p)));
    }
}
