//! Datasets for insilico: everything between "a dataset name" and "a tensor of
//! pixels with trustworthy labels". It finds the files (an explicit directory,
//! `$INSILICO_DATA`, the per-user cache, the Debian install location, or a
//! download), parses the IDX and CIFAR-10 binary formats, checks every file
//! against the SHA-256 digest recorded in `datasets/manifest.toml` so that an
//! experiment can name exactly which data it saw, generates the embedded
//! `shapes` set for offline work, and corrupts labels on purpose for
//! memorization experiments. The `fsx` helpers (atomic writes, hashing) are
//! shared by the other crates of the workspace.

pub mod cifar;
pub mod content;
pub mod dataset;
mod download;
pub mod error;
pub mod fsx;
pub mod idx;
pub mod labels;
pub mod manifest;
#[cfg(test)]
mod props;
pub mod resolve;
pub mod shapes;
#[cfg(test)]
mod testutil;

pub use dataset::{load, load_entry, load_shapes_with, Dataset, Split};
pub use error::{DataError, Result};
pub use labels::{corrupt_labels, stratified_subset, LabelCorruption};
pub use manifest::{DatasetEntry, FileEntry, Manifest};
pub use resolve::{DatasetStatus, FileReport, FoundFile, Location, Locator, Source, Verdict};
pub use shapes::ShapesConfig;
