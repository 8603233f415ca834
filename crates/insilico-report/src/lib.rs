//! Paper-ready outputs for insilico experiments.
//!
//! Every assay (ablation curves, class selectivity, receptive fields, ...)
//! ends in this crate: it turns numbers into figures a researcher can put in a
//! paper (PNG + SVG line plots, histograms and scatter plots with labelled
//! axes, legends and translucent error bands), image montages for receptive
//! fields and exemplars, tables and arrays a Python user loads in one line
//! (CSV, pretty JSON, NPY) and a single self-contained HTML report that reads
//! offline. All text uses the bundled DejaVu Sans font, so output looks the
//! same on every machine, and every file is written atomically (temp file in
//! the same directory, then rename), so an interrupted run never leaves a
//! half-written figure or table behind.

mod color;
mod html;
mod io;
mod montage;
mod plot;
mod text;
pub mod tuning;

pub use color::{categorical, palette, sequential, PALETTE_LEN};
pub use html::HtmlReport;
pub use io::{write_csv, write_json, write_npy, NpyElement};
pub use montage::{
    montage, overview, save_png, side_by_side, tile_to_image, Block, OverviewRow, Scaling, Tile,
    LABEL_HEIGHT, MONTAGE_GAP, TITLE_HEIGHT,
};
pub use plot::{Heatmap, Histogram, LinePlot, Scatter, Series, FIGURE_HEIGHT, FIGURE_WIDTH};
/// Re-exported so callers can name the colour type returned by [`palette`].
pub use plotters::style::RGBColor;

#[cfg(test)]
use std::path::Path;

/// DejaVu Sans (see `assets/fonts/DejaVuSans-LICENSE.txt`), used for all text.
pub(crate) static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Every file is written through the workspace's one atomic-write helper.
pub(crate) use insilico_data::fsx::write_atomic;

/// Test helper: no temp files may remain next to written files.
#[cfg(test)]
pub(crate) fn assert_no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "leftover temp file {name}");
    }
}
