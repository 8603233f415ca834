//! The study layer of insilico: what a researcher runs on a trained network.
//!
//! Each assay is one module with one options struct (serde defaults, clap flags, one
//! `validate`), a run function on a [`Study`], a result type that serializes itself, and
//! its files and figures under `RUN/assays/<name>/`. The [`registry`] lists them for the
//! command line, the sweep and the report. From Rust, an assay is a few lines:
//!
//! ```no_run
//! use insilico_study::{ablation, Study, StudyOptions};
//! # fn main() -> anyhow::Result<()> {
//! let locator = insilico_data::Locator::from_env(None);
//! let study = Study::open(
//!     "runs/demo".as_ref(),
//!     insilico_engine::Compute::flex(),
//!     &locator,
//!     &StudyOptions { images: 2000, ..Default::default() },
//! )?;
//! let result = ablation::ablate(&study, &ablation::AblationOptions::default())?;
//! println!("{}", result.curves[0].auc_mean);
//! # Ok(())
//! # }
//! ```

pub mod ablation;
pub mod bench;
pub mod checkpoints;
pub mod compare;
pub mod erf;
pub mod noise;
pub mod options;
pub mod over_training;
pub mod population;
pub mod progress;
pub mod receptive;
pub mod registry;
pub mod selectivity;
pub mod study;
pub mod sweep;
pub mod tuning;

pub use options::{merge_with_file, Options};
pub use registry::{Assay, AssayKind};
pub use study::{Study, StudyOptions, Subset};
