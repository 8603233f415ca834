//! Receptive fields, three ways (split in small parts as in Lucid):
//!
//! * [`synth`]: activation maximization, gradient ascent on the input for an
//!   [`Objective`] (neuron, channel, logit, direction and their sums, scalings and
//!   negatives), through a [`param`]eterization (pixel or Fourier, decorrelated colour,
//!   sigmoid range), random [`transform`]s (jitter, pad, scale, rotate) and
//!   [`regularize`]rs (L2 / alpha-norm, total variation, blur), with an optional diversity
//!   term. One unit per batch row: a whole layer costs one optimization.
//! * [`exemplars`]: the top-k dataset images of each unit, by the same objective.
//! * [`revcorr`]: reverse correlation (the spike-triggered average) from white noise.

pub mod exemplars;
pub mod objective;
pub mod param;
pub mod regularize;
pub mod revcorr;
pub mod synth;
pub mod transform;

pub use exemplars::{exemplars, responses, top_k, top_patches, Exemplars, Patch};
pub use objective::{BatchObjective, Objective};
pub use param::{ImageParam, ImageSpace, Param, ParamBlur, Range};
pub use regularize::Regularizer;
pub use revcorr::{spike_triggered_average, Sta};
pub use synth::{objective_values, synthesize, Adam, Settings, Synthesis};
pub use transform::Transforms;

use insilico_engine::{Plan, Shape};

/// The sites receptive fields are mapped at by default: every conv and linear layer output
/// (before its nonlinearity), including `logits`.
pub fn default_sites(plan: &Plan) -> Vec<String> {
    plan.stages
        .iter()
        .filter(|s| s.kind.is_weighted())
        .map(|s| s.site.clone())
        .collect()
}

/// One objective per unit of a site: the channel mean for feature maps (the unit's value
/// for a vector), or with `neuron` the centre position of each channel.
pub fn unit_objectives(site: &str, shape: Shape, units: &[usize], neuron: bool) -> Vec<Objective> {
    units
        .iter()
        .map(|&u| match (shape, neuron) {
            (Shape::Map { .. }, true) => Objective::neuron(site, u),
            _ => Objective::channel(site, u),
        })
        .collect()
}

/// Pearson correlation of two equally long slices (0 when either is constant).
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let ma = a.iter().map(|v| *v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|v| *v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64 - ma, *y as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}
