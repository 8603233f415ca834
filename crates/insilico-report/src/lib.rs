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

pub use color::{palette, sequential, PALETTE_LEN};
pub use html::HtmlReport;
pub use io::{write_csv, write_json, write_npy};
pub use montage::{
    montage, save_png, side_by_side, tile_to_image, Scaling, Tile, LABEL_HEIGHT, MONTAGE_GAP,
    TITLE_HEIGHT,
};
pub use plot::{Histogram, LinePlot, Scatter, Series, FIGURE_HEIGHT, FIGURE_WIDTH};
/// Re-exported so callers can name the colour type returned by [`palette`].
pub use plotters::style::RGBColor;

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// DejaVu Sans (see `assets/fonts/DejaVuSans-LICENSE.txt`), used for all text.
pub(crate) static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Write `bytes` to `path` atomically: write a temp file in the same
/// directory, flush it to disk, then rename it over `path`. Creates the parent
/// directory if needed. On failure the temp file is removed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating directory {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("not a file path: {}", path.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> Result<()> {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Test helper: no temp files may remain next to written files.
#[cfg(test)]
pub(crate) fn assert_no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "leftover temp file {name}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_no_temp_files(&dir.path().join("sub"));
        let n = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(n, 1);
    }
}
