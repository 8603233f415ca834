//! Reverse correlation (the spike-triggered average): white-noise images go through the
//! system without gradients, and each unit's map is the average image weighted by its
//! response minus its mean response, `sum_i (r_i - mean r) x_i / N`.
//!
//! For a linear-nonlinear unit `r = f(w . x)` under Gaussian white noise the map is
//! proportional to `w` (Bussgang's theorem); for a deeper unit it is the linear part of
//! its receptive field.

use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::eval::to_vec;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sta {
    pub units: usize,
    pub shape: [usize; 3],
    pub samples: usize,
    /// `[units, c, h, w]`, in the units of the (normalized) input.
    pub maps: Vec<f32>,
    pub mean_response: Vec<f32>,
}

impl Sta {
    pub fn map(&self, unit: usize) -> &[f32] {
        let n = self.shape.iter().product::<usize>();
        &self.maps[unit * n..(unit + 1) * n]
    }
}

/// The spike-triggered average of the units `respond` reports (`[B, units]` for a batch
/// `[B, c, h, w]`), from `samples` images of N(0, `noise_std`) white noise presented
/// `batch` at a time. The noise is drawn from `seed` on the CPU (reproducible on every
/// device).
pub fn spike_triggered_average<F>(
    mut respond: F,
    shape: [usize; 3],
    samples: usize,
    batch: usize,
    noise_std: f32,
    seed: u64,
    device: &Device,
) -> Sta
where
    F: FnMut(&Tensor<4>) -> Tensor<2>,
{
    let [c, h, w] = shape;
    let d = c * h * w;
    let batch = batch.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sum_rx: Option<Tensor<2>> = None;
    let mut sum_r: Option<Tensor<2>> = None;
    let mut sum_x: Option<Tensor<2>> = None;
    let mut done = 0;
    while done < samples {
        let len = batch.min(samples - done);
        let noise: Vec<f32> = (0..len * d)
            .map(|_| {
                noise_std * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)
            })
            .collect();
        let x = Tensor::<2>::from_data(TensorData::new(noise, [len, d]), device);
        let r = respond(&x.clone().reshape([len, c, h, w])).detach();
        let rx = r.clone().transpose().matmul(x.clone());
        let add = |acc: Option<Tensor<2>>, t: Tensor<2>| Some(acc.map_or(t.clone(), |a| a + t));
        sum_rx = add(sum_rx, rx);
        sum_r = add(sum_r, r.sum_dim(0));
        sum_x = add(sum_x, x.sum_dim(0));
        done += len;
    }
    let n = samples.max(1) as f64;
    let (Some(rx), Some(r), Some(x)) = (sum_rx, sum_r, sum_x) else {
        return Sta {
            units: 0,
            shape,
            samples,
            maps: Vec::new(),
            mean_response: Vec::new(),
        };
    };
    let (rx, r, x) = (to_vec(rx), to_vec(r), to_vec(x));
    let units = r.len();
    let mean_r: Vec<f64> = r.iter().map(|v| *v as f64 / n).collect();
    let mut maps = Vec::with_capacity(units * d);
    for u in 0..units {
        for i in 0..d {
            maps.push(((rx[u * d + i] as f64 - mean_r[u] * x[i] as f64) / n) as f32);
        }
    }
    Sta {
        units,
        shape,
        samples,
        maps,
        mean_response: mean_r.iter().map(|v| *v as f32).collect(),
    }
}
