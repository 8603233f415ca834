//! Image parameterizations: what the optimizer actually changes.
//!
//! * `pixel`: one value per pixel.
//! * `fourier`: the coefficients of a real 2D Fourier basis, each frequency scaled by
//!   `1 / max(f, 1/max(h, w))` (f in cycles per pixel), so that a step of the optimizer
//!   changes every frequency by the same energy and the image is not dominated by the
//!   high frequencies that pixel ascent produces (Lucid's `fft_image`). The inverse DFT is
//!   a product with a precomputed cos/sin basis: at 28x28 or 32x32 a dense matmul is cheap
//!   and differentiable.
//!
//! RGB images can be *decorrelated*: the optimizer works in a colour space whose axes are
//! uncorrelated in natural images (Lucid's fixed square root of the colour covariance).
//!
//! The values either go through a sigmoid into `[0, 1]`, the valid pixel range of every
//! dataset here, and are then normalized with the dataset's mean and std
//! ([`Range::Sigmoid`]), or are used directly as normalized network inputs
//! ([`Range::Free`], unbounded; the linear-site analysis and the benchmark use it).

use super::regularize::{blur_gain, gaussian_blur, gaussian_kernel};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use insilico_data::Dataset;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::f32::consts::PI;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Param {
    Pixel,
    Fourier,
}

impl std::str::FromStr for Param {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "pixel" => Ok(Param::Pixel),
            "fourier" | "fft" => Ok(Param::Fourier),
            o => anyhow::bail!("unknown parameterization `{o}`: use pixel or fourier"),
        }
    }
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Param::Pixel => "pixel",
            Param::Fourier => "fourier",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Range {
    /// `sigmoid` into [0, 1], then the dataset's normalization.
    Sigmoid,
    /// The parameter is the normalized input itself (unbounded).
    Free,
}

/// The input space of a network: image shape and per-channel normalization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageSpace {
    pub shape: [usize; 3],
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ImageSpace {
    pub fn of(dataset: &Dataset) -> Self {
        Self {
            shape: dataset.shape,
            mean: dataset.mean.clone(),
            std: dataset.std.clone(),
        }
    }

    /// Mean 0, std 1 (inputs used as they are).
    pub fn standard(shape: [usize; 3]) -> Self {
        Self {
            shape,
            mean: vec![0.0; shape[0]],
            std: vec![1.0; shape[0]],
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Normalized values `[.., c, h, w]` to pixel values (`x * std + mean`).
    pub fn denormalize(&self, values: &[f32]) -> Vec<f32> {
        let plane = self.shape[1] * self.shape[2];
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = (i / plane) % self.shape[0];
                v * self.std[c] + self.mean[c]
            })
            .collect()
    }

    /// `[1, c, 1, 1]` tensors of the mean and std.
    fn stats(&self, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let c = self.shape[0];
        let t = |v: &[f32]| Tensor::from_data(TensorData::new(v.to_vec(), [1, c, 1, 1]), device);
        (t(&self.mean), t(&self.std))
    }
}

/// Lucid's square root of the colour correlation of natural images (ImageNet).
const COLOR_CORRELATION_SQRT: [[f32; 3]; 3] =
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// The colour matrix scaled so that its largest column has unit norm.
pub fn color_matrix() -> [[f32; 3]; 3] {
    let m = COLOR_CORRELATION_SQRT;
    let max_norm = (0..3)
        .map(|j| (0..3).map(|i| m[i][j] * m[i][j]).sum::<f32>().sqrt())
        .fold(0.0f32, f32::max);
    m.map(|row| row.map(|v| v / max_norm))
}

/// The frequency scaling of coefficient `(ky, kx)` on an `h x w` grid.
pub fn frequency_scale(ky: usize, kx: usize, h: usize, w: usize) -> f32 {
    let fy = if ky <= h / 2 {
        ky as f32
    } else {
        ky as f32 - h as f32
    } / h as f32;
    let fx = kx as f32 / w as f32;
    let f = (fy * fy + fx * fx).sqrt();
    1.0 / f.max(1.0 / h.max(w) as f32)
}

/// The scaled real Fourier basis `[2 * h * (w/2 + 1), h * w]`: for each frequency of the
/// half spectrum a cosine row and a sine row, times `frequency_scale / (4 sqrt(h w))`
/// (Lucid's scaling, so that small coefficients give a mid-grey image).
pub fn fourier_basis(h: usize, w: usize) -> Vec<f32> {
    let kw = w / 2 + 1;
    let norm = 4.0 * ((h * w) as f32).sqrt();
    let mut out = Vec::with_capacity(2 * h * kw * h * w);
    for ky in 0..h {
        for kx in 0..kw {
            let s = frequency_scale(ky, kx, h, w) / norm;
            for trig in [f32::cos, f32::sin] {
                for y in 0..h {
                    for x in 0..w {
                        let phase = 2.0
                            * PI
                            * (((ky * y) % h) as f32 / h as f32 + ((kx * x) % w) as f32 / w as f32);
                        out.push(s * trig(phase));
                    }
                }
            }
        }
    }
    out
}

/// A Gaussian blur of the image in parameter space ([`ImageParam::blur_op`]).
#[derive(Clone, Debug)]
pub enum ParamBlur {
    /// The kernel, applied along both axes of the pixels.
    Pixels(Vec<f32>),
    /// `[1, coefficients]`: each Fourier coefficient's gain (boxed: a tensor handle is
    /// far larger than a kernel's vector).
    Gains(Box<Tensor<2>>),
}

/// A batch of `rows` images under one parameterization.
#[derive(Clone, Debug)]
pub struct ImageParam {
    pub kind: Param,
    pub range: Range,
    pub decorrelate: bool,
    pub space: ImageSpace,
    pub rows: usize,
    basis: Option<Tensor<2>>,
    mean: Tensor<4>,
    std: Tensor<4>,
}

impl ImageParam {
    pub fn new(
        kind: Param,
        range: Range,
        decorrelate: bool,
        space: &ImageSpace,
        rows: usize,
        device: &Device,
    ) -> Self {
        let [_, h, w] = space.shape;
        let basis = match kind {
            Param::Pixel => None,
            Param::Fourier => Some(Tensor::from_data(
                TensorData::new(fourier_basis(h, w), [2 * h * (w / 2 + 1), h * w]),
                device,
            )),
        };
        let (mean, std) = space.stats(device);
        Self {
            kind,
            range,
            decorrelate: decorrelate && space.shape[0] == 3,
            space: space.clone(),
            rows,
            basis,
            mean,
            std,
        }
    }

    /// Parameters per channel of one image.
    pub fn coefficients(&self) -> usize {
        let [_, h, w] = self.space.shape;
        match self.kind {
            Param::Pixel => h * w,
            Param::Fourier => 2 * h * (w / 2 + 1),
        }
    }

    /// Initial parameters `[rows * c, coefficients]`, N(0, std); row `r` draws from its
    /// own stream of `seed`, so a row's start does not depend on the batch around it.
    pub fn init(&self, seed: u64, std: f32, device: &Device) -> Tensor<2> {
        let per_row = self.space.shape[0] * self.coefficients();
        let normal = Normal::new(0.0f32, std.max(0.0)).expect("valid std");
        let mut values = Vec::with_capacity(self.rows * per_row);
        for r in 0..self.rows {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(r as u64 + 1);
            values.extend((0..per_row).map(|_| normal.sample(&mut rng)));
        }
        Tensor::from_data(
            TensorData::new(
                values,
                [self.rows * self.space.shape[0], self.coefficients()],
            ),
            device,
        )
    }

    /// The image in *visible* space `[rows, c, h, w]`: pixel values in [0, 1] for
    /// [`Range::Sigmoid`], normalized inputs for [`Range::Free`]. Transforms act here.
    pub fn visible(&self, raw: Tensor<2>) -> Tensor<4> {
        let [c, h, w] = self.space.shape;
        let spatial = match &self.basis {
            Some(b) => raw.matmul(b.clone()),
            None => raw,
        };
        let mut img = spatial.reshape([self.rows, c, h, w]);
        if self.decorrelate {
            let m = color_matrix();
            let ch: Vec<Tensor<4>> = (0..3).map(|j| img.clone().narrow(1, j, 1)).collect();
            let mixed = (0..3)
                .map(|i| {
                    ch[0].clone() * m[i][0] + ch[1].clone() * m[i][1] + ch[2].clone() * m[i][2]
                })
                .collect();
            img = Tensor::cat(mixed, 1);
        }
        match self.range {
            Range::Sigmoid => sigmoid(img),
            Range::Free => img,
        }
    }

    /// The blur of [`ImageParam::blur`], built once per ascent: `None` for `sigma` 0.
    pub fn blur_op(&self, sigma: f32, device: &Device) -> Option<ParamBlur> {
        if sigma <= 0.0 {
            return None;
        }
        let [_, h, w] = self.space.shape;
        let kernel = gaussian_kernel(sigma, h.min(w));
        Some(match self.kind {
            Param::Pixel => ParamBlur::Pixels(kernel),
            Param::Fourier => {
                // Coefficient order of `fourier_basis`: (ky, kx), then cos, sin.
                let gains: Vec<f32> = (0..h)
                    .flat_map(|ky| (0..w / 2 + 1).map(move |kx| (ky, kx)))
                    .flat_map(|(ky, kx)| {
                        let g = blur_gain(&kernel, ky, h) * blur_gain(&kernel, kx, w);
                        [g, g]
                    })
                    .collect();
                let n = gains.len();
                ParamBlur::Gains(Box::new(Tensor::from_data(
                    TensorData::new(gains, [1, n]),
                    device,
                )))
            }
        })
    }

    /// The parameters of the same image blurred, before its colour mixing and sigmoid
    /// (both act pixel by pixel, so the blur commutes with the colour mixing): the pixels
    /// themselves, or each Fourier coefficient times its frequency's gain (the circular
    /// blur is diagonal in that basis: the same image either way).
    pub fn blur(&self, raw: Tensor<2>, op: &ParamBlur) -> Tensor<2> {
        match op {
            ParamBlur::Pixels(kernel) => {
                let [rows, n] = raw.dims();
                let [_, h, w] = self.space.shape;
                gaussian_blur(raw.reshape([rows, 1, h, w]), kernel).reshape([rows, n])
            }
            ParamBlur::Gains(g) => raw * (**g).clone(),
        }
    }

    /// Visible values to normalized network inputs.
    pub fn to_input(&self, visible: Tensor<4>) -> Tensor<4> {
        match self.range {
            Range::Free => visible,
            Range::Sigmoid => {
                if self.space.shape[0] == 1 {
                    (visible - self.space.mean[0]) / self.space.std[0]
                } else {
                    (visible - self.mean.clone()) / self.std.clone()
                }
            }
        }
    }

    /// The value transforms fill uncovered pixels with, per channel, in visible space
    /// (the dataset's mean pixel).
    pub fn fill(&self) -> Vec<f32> {
        match self.range {
            Range::Sigmoid => self.space.mean.clone(),
            Range::Free => vec![0.0; self.space.shape[0]],
        }
    }
}
