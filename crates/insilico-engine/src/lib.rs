//! The model engine of insilico. It builds networks from TOML configs, names every layer
//! output as a *site* (`conv1`, `conv1.relu`, `fc1.relu`, `logits`), and runs them through
//! one hook mechanism that records, ablates (`x * (1 - mask) + replacement * mask`),
//! patches, stops early and resumes from a cached site, for a batch of interventions at a
//! time and under autodiff. It also trains them (SGD or Adam, schedules, atomic
//! checkpoints, exact resume) and writes each run into a self-describing directory.
//!
//! Dependency direction: `insilico-data` → this crate → `insilico-assays` → report → CLI.

pub mod backend;
pub mod config;
pub mod eval;
pub mod examples;
pub mod export;
pub mod hooks;
pub mod kernels;
pub mod layer;
pub mod linearize;
pub mod memory;
pub mod models;
pub mod network;
pub mod plan;
pub mod receptive_field;
pub mod rundir;
pub mod snapshot;
pub mod train;

pub use backend::{Backend, Compute};
pub use config::{DataConfig, LayerSpec, ModelConfig, RunConfig, TrainConfig};
pub use examples::{Examples, RunData};
pub use hooks::{Ablation, Activation, Edit, Hooks, Recording};
pub use layer::LayerKind;
pub use network::Network;
pub use plan::{Plan, Shape};
pub use receptive_field::{receptive_field, receptive_fields, ReceptiveField, Window};
pub use rundir::{Manifest, RunDir, Snapshot, TrainedRun};
pub use snapshot::SnapshotSchedule;

/// The Burn version this engine is built and pinned against.
pub const BURN_VERSION: &str = "0.22.1";

/// Reads a config by path, or by the name of a built-in one (`cnn-small`, `mlp-2x512`...).
pub fn load_config(name_or_path: &str, overrides: &[String]) -> anyhow::Result<RunConfig> {
    let path = std::path::Path::new(name_or_path);
    if path.exists() {
        return RunConfig::load(path, overrides);
    }
    match models::builtin(name_or_path) {
        Some(text) => RunConfig::from_toml(text, overrides)
            .map_err(|e| e.context(format!("in built-in config `{name_or_path}`"))),
        None => anyhow::bail!(
            "no config file `{name_or_path}` and no built-in config of that name (built-in: {})",
            models::BUILTIN.join(", ")
        ),
    }
}
