//! Noise robustness: Gaussian noise added at a site, each unit's noise scaled by that
//! unit's standard deviation over the data, swept on a log scale.
//!
//! At level `s`, unit `u`'s activation becomes `x + s * sigma_u * N(0, 1)` (independent
//! per example and position). The forward pass resumes from the cached activation, the noise added by the
//! hooks (`Hooks::apply`).

use crate::stats::{mean, std};
use anyhow::Result;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use insilico_engine::eval::correct_per_block;
use insilico_engine::hooks::EditFn;
use insilico_engine::{Activation, Hooks, Network};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Each unit's standard deviation over examples (and positions, for channels).
pub fn unit_std(cache: &Activation) -> Vec<f32> {
    let values = cache.to_vec();
    let dims = cache.dims();
    let (n, u) = (dims[0], dims[1]);
    let per: usize = dims[2..].iter().product();
    let mut out = Vec::with_capacity(u);
    for unit in 0..u {
        let (mut s, mut ss) = (0.0f64, 0.0f64);
        for i in 0..n {
            let base = (i * u + unit) * per;
            for &v in &values[base..base + per] {
                s += v as f64;
                ss += (v as f64) * (v as f64);
            }
        }
        let count = (n * per) as f64;
        let m = s / count;
        out.push(((ss / count - m * m).max(0.0)).sqrt() as f32);
    }
    out
}

/// `n` levels spaced evenly in log10 between `lo` and `hi`.
pub fn log_levels(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lo];
    }
    let (a, b) = (lo.log10(), hi.log10());
    (0..n)
        .map(|i| 10f64.powf(a + (b - a) * i as f64 / (n - 1) as f64))
        .collect()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NoiseCurve {
    pub site: String,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub levels: Vec<f64>,
    /// `accuracy[r][i]`: noise draw `r` at level `i`.
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub accuracy: Vec<Vec<f64>>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub mean: Vec<f64>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub std: Vec<f64>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub clean: f64,
}

/// The edit that adds `sd[u] * N(0, 1)` to every value of unit `u`, fresh noise per call
/// (drawn from the device's generator, so a seeded device repeats it).
pub fn gaussian_noise(sd: Vec<f32>, device: Device) -> EditFn {
    Arc::new(move |x: Activation| {
        let dims = x.dims();
        let u = sd.len();
        match x {
            Activation::Map(t) => {
                let s = Tensor::<4>::from_data(TensorData::new(sd.clone(), [1, u, 1, 1]), &device);
                let z = Tensor::<4>::random(
                    [dims[0], dims[1], dims[2], dims[3]],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                );
                Activation::Map(t + z * s)
            }
            Activation::Flat(t) => {
                let s = Tensor::<2>::from_data(TensorData::new(sd.clone(), [1, u]), &device);
                let z = Tensor::<2>::random([dims[0], u], Distribution::Normal(0.0, 1.0), &device);
                Activation::Flat(t + z * s)
            }
        }
    })
}

/// Accuracy with noise at `site`, for each level and `repeats` draws.
pub fn noise_curve(
    net: &Network,
    site: &str,
    cache: &Activation,
    labels: &[u8],
    levels: &[f64],
    repeats: usize,
    seed: u64,
) -> Result<NoiseCurve> {
    let device = cache.clone().flatten().device();
    let sigma = unit_std(cache);
    let chunk = 1000;
    let accuracy_at = |scale: f64, draw: u64| -> Result<f64> {
        device.seed(seed.wrapping_mul(31).wrapping_add(draw));
        let sd: Vec<f32> = sigma.iter().map(|v| v * scale as f32).collect();
        let hooks = if scale == 0.0 {
            Hooks::new()
        } else {
            Hooks::new().apply(site, gaussian_noise(sd, device.clone()))
        };
        let mut correct = 0usize;
        for start in (0..labels.len()).step_by(chunk) {
            let len = chunk.min(labels.len() - start);
            let rec = net.resume(site, cache.narrow(start, len), &hooks)?;
            correct += correct_per_block(rec.logits(), &labels[start..start + len])[0];
        }
        Ok(correct as f64 / labels.len() as f64)
    };
    let clean = accuracy_at(0.0, 0)?;
    let mut accuracy = Vec::with_capacity(repeats);
    for r in 0..repeats {
        let row = levels
            .iter()
            .enumerate()
            .map(|(i, &s)| accuracy_at(s, (r * levels.len() + i) as u64 + 1))
            .collect::<Result<Vec<f64>>>()?;
        accuracy.push(row);
    }
    let col = |i: usize| -> Vec<f64> { accuracy.iter().map(|r: &Vec<f64>| r[i]).collect() };
    Ok(NoiseCurve {
        site: site.into(),
        levels: levels.to_vec(),
        mean: (0..levels.len()).map(|i| mean(&col(i))).collect(),
        std: (0..levels.len()).map(|i| std(&col(i))).collect(),
        accuracy,
        clean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_are_geometric() {
        let l = log_levels(0.01, 10.0, 4);
        assert!((l[0] - 0.01).abs() < 1e-12 && (l[3] - 10.0).abs() < 1e-9);
        assert!((l[1] / l[0] - 10.0).abs() < 1e-9);
    }

    #[test]
    fn unit_std_matches_a_hand_computation() {
        // Unit 0 takes 0 and 2 (sd 1), unit 1 is constant (sd 0); population sd.
        let a = Activation::from_vec(
            vec![0.0, 5.0, 2.0, 5.0],
            &[2, 2],
            &burn::tensor::Device::flex(),
        );
        assert_eq!(unit_std(&a), vec![1.0, 0.0]);
    }
}
