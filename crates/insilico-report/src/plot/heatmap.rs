//! Heatmaps: a matrix of values (layer x layer similarity, layer x checkpoint), one
//! coloured cell each, with row and column labels, the value printed in each cell where it
//! fits, and a colour bar naming the quantity and its range.

use super::{
    draw_colorbar, font, px, save_figure, Figure, LegendAt, PlotResult, AXIS_LABEL_SIZE, SEQ_SPAN,
    TICK_SIZE, TITLE_SIZE,
};
use crate::color::sequential;
use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use std::path::{Path, PathBuf};

/// `values[r][c]` drawn as a grid, row 0 at the top.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub values: Vec<Vec<f64>>,
    /// The quantity and the value range the colours span (e.g. "linear CKA", 0, 1).
    pub scale: (String, f64, f64),
}

impl Heatmap {
    /// Checks that the matrix matches its labels, then writes `stem.png` and `stem.svg`.
    pub fn save(&self, stem: &Path) -> Result<Vec<PathBuf>> {
        if self.values.len() != self.rows.len()
            || self.values.iter().any(|r| r.len() != self.columns.len())
        {
            bail!(
                "heatmap `{}`: {} row labels and {} column labels for a {}-row matrix",
                self.title,
                self.rows.len(),
                self.columns.len(),
                self.values.len()
            );
        }
        save_figure(self, stem)
    }

    fn colour(&self, v: f64) -> RGBColor {
        let (_, lo, hi) = self.scale;
        if !v.is_finite() {
            return RGBColor(215, 215, 215);
        }
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        sequential(t.clamp(0.0, 1.0) * SEQ_SPAN)
    }

    /// Widest label of `labels` in pixels.
    fn label_width<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        labels: &[String],
        s: f64,
    ) -> Result<i32> {
        let f = font(TICK_SIZE, s);
        let mut w = 0;
        for l in labels {
            w = w.max(root.estimate_text_size(l, &f).plot()?.0 as i32);
        }
        Ok(w)
    }
}

impl Figure for Heatmap {
    /// No legend (a colour bar): `at` changes nothing.
    fn render<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        s: f64,
        _at: LegendAt,
    ) -> Result<bool> {
        let (w, h) = root.dim_in_pixel();
        let (w, h) = (w as i32, h as i32);
        let left = Self::label_width(root, &self.rows, s)? + px(s, 24.0 + AXIS_LABEL_SIZE * 1.5);
        let bottom =
            Self::label_width(root, &self.columns, s)? + px(s, 24.0 + AXIS_LABEL_SIZE * 1.5);
        let top = px(s, TITLE_SIZE * 2.0);
        let right = px(s, 190.0);
        let (x0, y0, x1, y1) = (left, top, w - right, h - bottom);
        let (nr, nc) = (
            self.rows.len().max(1) as i32,
            self.columns.len().max(1) as i32,
        );
        let (cw, ch) = ((x1 - x0) / nc, (y1 - y0) / nr);
        let title = font(TITLE_SIZE, s).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(self.title.clone(), (w / 2, px(s, 12.0)), title))
            .plot()?;
        self.draw_cells(root, (x0, y0), (cw, ch), s)?;
        self.draw_labels(root, (x0, y0), (cw, ch), s)?;
        let (label, lo, hi) = &self.scale;
        draw_colorbar(
            root,
            (label, *lo, *hi),
            y0,
            y0 + ch * nr,
            x0 + cw * nc + px(s, 24.0),
            s,
        )?;
        Ok(true)
    }
}

impl Heatmap {
    fn draw_cells<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x0, y0): (i32, i32),
        (cw, ch): (i32, i32),
        s: f64,
    ) -> Result<()> {
        // Values are printed only where a cell holds "0.00" comfortably.
        let annotate = cw >= px(s, 64.0) && ch >= px(s, 32.0);
        let f = font(TICK_SIZE * 0.85, s).pos(Pos::new(HPos::Center, VPos::Center));
        for (r, row) in self.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let (a, b) = (x0 + cw * c as i32, y0 + ch * r as i32);
                let colour = self.colour(v);
                root.draw(&Rectangle::new([(a, b), (a + cw, b + ch)], colour.filled()))
                    .plot()?;
                if annotate {
                    let light = colour.0 as u32 + colour.1 as u32 + colour.2 as u32 > 380;
                    let ink = if light { BLACK } else { WHITE };
                    // Non-finite cells (a measure undefined for the pair) are grey: say so.
                    let label = if v.is_finite() {
                        format!("{v:.2}")
                    } else {
                        "n/a".to_string()
                    };
                    let text = Text::new(label, (a + cw / 2, b + ch / 2), f.clone().color(&ink));
                    root.draw(&text).plot()?;
                }
            }
        }
        Ok(())
    }

    fn draw_labels<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x0, y0): (i32, i32),
        (cw, ch): (i32, i32),
        s: f64,
    ) -> Result<()> {
        let rows = font(TICK_SIZE, s).pos(Pos::new(HPos::Right, VPos::Center));
        for (r, l) in self.rows.iter().enumerate().step_by(label_step(ch, s)) {
            let at = (x0 - px(s, 8.0), y0 + ch * r as i32 + ch / 2);
            root.draw(&Text::new(l.clone(), at, rows.clone())).plot()?;
        }
        let y_end = y0 + ch * self.rows.len() as i32;
        // Column labels read top to bottom, starting just under the grid.
        let cols = font(TICK_SIZE, s)
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (c, l) in self.columns.iter().enumerate().step_by(label_step(cw, s)) {
            let at = (x0 + cw * c as i32 + cw / 2, y_end + px(s, 8.0));
            root.draw(&Text::new(l.clone(), at, cols.clone())).plot()?;
        }
        let axis = font(AXIS_LABEL_SIZE, s).pos(Pos::new(HPos::Center, VPos::Bottom));
        let x_mid = x0 + cw * self.columns.len() as i32 / 2;
        let (_, h) = root.dim_in_pixel();
        root.draw(&Text::new(
            self.x_label.clone(),
            (x_mid, h as i32 - px(s, 8.0)),
            axis,
        ))
        .plot()?;
        let y_axis = font(AXIS_LABEL_SIZE, s)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Top));
        let y_mid = (y0 + y_end) / 2;
        root.draw(&Text::new(
            self.y_label.clone(),
            (px(s, 8.0), y_mid),
            y_axis,
        ))
        .plot()?;
        Ok(())
    }
}

/// Every how many cells a label is drawn: each where a cell is as tall as a label's text,
/// else every k-th (a 40 x 40 RDM's stimuli labelled 0, 2, 4, ...), so that labels never
/// overlap into an unreadable block.
fn label_step(cell: i32, s: f64) -> usize {
    let text = px(s, TICK_SIZE * 1.2).max(1);
    if cell >= text {
        1
    } else {
        ((text + cell.max(1) - 1) / cell.max(1)) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heatmap_is_drawn_and_a_mismatched_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Heatmap {
            title: "linear CKA between layers".into(),
            x_label: "network B".into(),
            y_label: "network A".into(),
            rows: vec!["conv1".into(), "conv2".into(), "fc1".into()],
            columns: vec!["conv1".into(), "conv2".into(), "fc1".into()],
            values: vec![
                vec![1.0, 0.6, 0.2],
                vec![0.6, 1.0, 0.5],
                vec![0.2, 0.5, f64::NAN],
            ],
            scale: ("linear CKA".into(), 0.0, 1.0),
        };
        let files = h.save(&dir.path().join("cka")).unwrap();
        assert!(files.iter().all(|f| f.exists()));
        let png = image::open(&files[0]).unwrap().to_rgb8();
        // The top-left cell (1.0) is the bright end of the map, the bottom-right (NaN) grey.
        let (w, ht) = png.dimensions();
        assert!(w > 0 && ht > 0);
        h.values.pop();
        assert!(h.save(&dir.path().join("bad")).is_err());
    }

    /// Labels are thinned only where cells are shorter than their text, and then just
    /// enough that consecutive labels are a text's height apart.
    #[test]
    fn labels_are_thinned_only_as_much_as_they_would_overlap() {
        let text = px(1.0, TICK_SIZE * 1.2);
        assert_eq!(label_step(text, 1.0), 1);
        assert_eq!(label_step(3 * text, 1.0), 1);
        for cell in 1..text {
            let step = label_step(cell, 1.0);
            assert!(step as i32 * cell >= text, "cell {cell}: step {step}");
            assert!(
                (step as i32 - 1) * cell < text,
                "cell {cell}: step {step} thins too much"
            );
        }
    }
}
