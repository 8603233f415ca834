//! The assays of insilico: the measurements a physiologist makes on a brain, made on a
//! trained network through the engine's hook mechanism. Ablation curves and single-unit
//! importance (silencing units), class selectivity and class information (tuning), noise
//! robustness, and receptive fields (activation maximization, dataset exemplars and
//! reverse correlation). Each assay returns plain data (serde-serializable); drawing and
//! writing files is the report crate's job.

pub mod ablation;
pub mod combine;
pub mod erf;
pub mod masks;
pub mod noise;
pub mod receptive;
pub mod selectivity;
pub mod stats;
pub mod tuning;
