//! Regularizers of a synthesized image, each per row `[rows, 1]` (rows are optimized
//! independently, so the batch loss is their sum).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Mean square of each image (a mean, not a sum, so that weights do not depend on the
/// image size; multiply by `c h w` for the sum).
pub fn l2(x: Tensor<4>) -> Tensor<2> {
    (x.clone() * x).flatten(1, 3).mean_dim(1)
}

/// Mean of `|x|^alpha` of each image (the alpha-norm of Mahendran & Vedaldi, to the power
/// alpha, per pixel).
pub fn alpha_norm(x: Tensor<4>, alpha: f32) -> Tensor<2> {
    x.abs().powf_scalar(alpha).flatten(1, 3).mean_dim(1)
}

/// Total variation of each image: mean absolute difference between vertical neighbours
/// plus the same between horizontal neighbours (as in the PyTorch reference benchmark).
pub fn total_variation(x: Tensor<4>) -> Tensor<2> {
    let [_, _, h, w] = x.dims();
    let dy = x.clone().narrow(2, 1, h - 1) - x.clone().narrow(2, 0, h - 1);
    let dx = x.clone().narrow(3, 1, w - 1) - x.narrow(3, 0, w - 1);
    dy.abs().flatten(1, 3).mean_dim(1) + dx.abs().flatten(1, 3).mean_dim(1)
}

/// A 3x3 box blur (wrapping at the borders) of values without gradient.
pub fn box_blur(x: Tensor<4>) -> Tensor<4> {
    let x = x.detach();
    let mut acc = x.clone();
    for (dy, dx) in [
        (-1i64, -1i64),
        (-1, 0),
        (-1, 1),
        (0, -1),
        (0, 1),
        (1, -1),
        (1, 0),
        (1, 1),
    ] {
        acc = acc + x.clone().roll(&[dy, dx], &[2, 3]);
    }
    acc / 9.0
}

/// Lucid's `blur_input_each_step`: a term whose gradient is `x - blur(x)`, so that each
/// step of the optimizer also moves the image towards its blurred self. Per row.
pub fn blur_pull(x: Tensor<4>) -> Tensor<2> {
    let target = x.clone().detach() - box_blur(x.clone());
    (x * target).flatten(1, 3).mean_dim(1)
}

/// What keeps a synthesized image from turning into high-frequency noise, as one named
/// choice (the strengths are [`Settings`](super::Settings) fields): the weak default
/// penalties only, a total-variation penalty relative to the objective, a Gaussian blur
/// of the image after every step, or a decay of the image towards grey after every step
/// (the last two are Yosinski et al. 2015's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regularizer {
    /// Only the always-on penalties (`l2`, `tv`, `blur`).
    #[default]
    None,
    /// Adds `tv_relative`: the ascent climbs `log(objective) - tv_relative * TV`.
    Tv,
    /// Blurs the image (before its sigmoid) with a Gaussian of `blur_sigma` pixels after
    /// every step.
    Blur,
    /// Multiplies the parameters by `1 - decay` after every step (towards mid-grey).
    Decay,
}

impl Regularizer {
    pub const ALL: [Regularizer; 4] = [
        Regularizer::None,
        Regularizer::Tv,
        Regularizer::Blur,
        Regularizer::Decay,
    ];
}

impl std::str::FromStr for Regularizer {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Regularizer::ALL
            .into_iter()
            .find(|r| r.to_string() == s)
            .ok_or_else(|| {
                anyhow::anyhow!("unknown regularizer `{s}`: use none, tv, blur or decay")
            })
    }
}

impl std::fmt::Display for Regularizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Regularizer::None => "none",
            Regularizer::Tv => "tv",
            Regularizer::Blur => "blur",
            Regularizer::Decay => "decay",
        })
    }
}

/// The sampled Gaussian of standard deviation `sigma` pixels on the offsets `-r..=r`,
/// `r = ceil(3 sigma)`, normalized to sum 1. `r` is at most `(n - 1) / 2` on an axis of
/// `n` pixels, so that the circular blur never wraps the kernel onto itself.
pub fn gaussian_kernel(sigma: f32, n: usize) -> Vec<f32> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let r = ((3.0 * sigma).ceil() as usize).min(n.saturating_sub(1) / 2) as i64;
    let k: Vec<f32> = (-r..=r)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    k.into_iter().map(|v| v / sum).collect()
}

/// The gain of the circular blur with a symmetric `kernel` (offsets `-r..=r`) on the
/// frequency `k` of an `n`-periodic axis: `sum_d kernel(d) cos(2 pi k d / n)`. A cosine or
/// sine of that frequency comes out of the blur multiplied by it (the sine parts of the
/// sum cancel between `d` and `-d`).
pub fn blur_gain(kernel: &[f32], k: usize, n: usize) -> f32 {
    let r = (kernel.len() / 2) as i64;
    kernel
        .iter()
        .zip(-r..=r)
        .map(|(w, d)| {
            let phase = 2.0 * std::f64::consts::PI * (k as i64 * d).rem_euclid(n as i64) as f64;
            w * (phase / n as f64).cos() as f32
        })
        .sum()
}

/// Circular blur of `[rows, c, h, w]` with the separable `kernel` along both axes (a sum
/// of weighted rolls: the same wrap-around as the Fourier basis, so that the pixel and
/// Fourier parameterizations blur alike).
pub fn gaussian_blur(x: Tensor<4>, kernel: &[f32]) -> Tensor<4> {
    let r = (kernel.len() / 2) as i64;
    let along = |x: Tensor<4>, dim: usize| {
        let mut acc = x.clone() * kernel[r as usize];
        for (w, d) in kernel.iter().zip(-r..=r) {
            if d != 0 {
                acc = acc + x.clone().roll(&[d], &[dim]) * *w;
            }
        }
        acc
    };
    along(along(x, 2), 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use insilico_engine::eval::to_vec;

    fn image(values: Vec<f32>, h: usize, w: usize) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, [1, 1, h, w]), &Device::flex())
    }

    /// A 3x3 image [[0, 1, 0], [0, 1, 0], [2, 2, 2]]: vertical neighbour differences
    /// 0, 0, 0 (rows 1-2) and 2, 1, 2 (rows 2-3) have mean 5/6; horizontal ones 1, 1, 1, 1
    /// (rows 1, 2) and 0, 0 (row 3) have mean 4/6. TV = 9/6 = 1.5.
    #[test]
    fn total_variation_of_a_hand_worked_image() {
        let x = image(vec![0., 1., 0., 0., 1., 0., 2., 2., 2.], 3, 3);
        let tv = to_vec(total_variation(x));
        assert!((tv[0] - 1.5).abs() < 1e-6, "{tv:?}");
        // A constant image has none.
        assert_eq!(to_vec(total_variation(image(vec![0.7; 9], 3, 3))), [0.0]);
    }

    /// sigma 1: r = 3, weights exp(-d^2/2) for d = 0..3 are 1, 0.60653, 0.13534, 0.01111;
    /// their sum over -3..=3 is 2.50597.
    #[test]
    fn the_gaussian_kernel_is_sampled_and_normalized() {
        let k = gaussian_kernel(1.0, 28);
        let want = [0.01111f32, 0.13534, 0.60653, 1.0, 0.60653, 0.13534, 0.01111];
        assert_eq!(k.len(), 7);
        for (a, b) in k.iter().zip(want) {
            assert!((a - b / 2.50597).abs() < 1e-5, "{k:?}");
        }
        // A wide kernel on a small axis stops at (n - 1) / 2.
        assert_eq!(gaussian_kernel(5.0, 8).len(), 7);
        assert_eq!(gaussian_kernel(0.0, 8), vec![1.0]);
    }

    /// The blur of an impulse is the kernel's outer product, centred on the impulse,
    /// wrapping around the border.
    #[test]
    fn the_blur_of_an_impulse_is_the_kernel() {
        let (h, w) = (9, 8);
        let k = gaussian_kernel(0.8, 8);
        let r = k.len() / 2;
        for (iy, ix) in [(4usize, 3usize), (0, 7)] {
            let mut x = vec![0.0f32; h * w];
            x[iy * w + ix] = 1.0;
            let out = to_vec(gaussian_blur(image(x, h, w), &k));
            for y in 0..h {
                for x in 0..w {
                    let dy = (y + h + r - iy) % h;
                    let dx = (x + w + r - ix) % w;
                    let want = if dy < k.len() && dx < k.len() {
                        k[dy] * k[dx]
                    } else {
                        0.0
                    };
                    assert!((out[y * w + x] - want).abs() < 1e-6, "({y}, {x})");
                }
            }
        }
    }

    /// A cosine of frequency (ky, kx) comes out of the blur scaled by the product of the
    /// two axes' gains, as the Fourier parameterization's blur assumes.
    #[test]
    fn a_cosine_is_scaled_by_the_blur_gain() {
        let (h, w) = (10, 12);
        let k = gaussian_kernel(1.3, 10);
        for (ky, kx) in [(0, 0), (1, 0), (2, 5), (5, 6), (7, 3)] {
            let wave = |y: usize, x: usize| {
                let p = ky as f32 * y as f32 / h as f32 + kx as f32 * x as f32 / w as f32;
                (2.0 * std::f32::consts::PI * p).cos()
            };
            let x: Vec<f32> = (0..h * w).map(|i| wave(i / w, i % w)).collect();
            let out = to_vec(gaussian_blur(image(x, h, w), &k));
            let gain = blur_gain(&k, ky, h) * blur_gain(&k, kx, w);
            for (i, v) in out.iter().enumerate() {
                assert!((v - gain * wave(i / w, i % w)).abs() < 1e-5, "({ky}, {kx})");
            }
        }
        // The DC gain is the kernel's sum.
        assert!((blur_gain(&k, 0, h) - 1.0).abs() < 1e-6);
    }
}
