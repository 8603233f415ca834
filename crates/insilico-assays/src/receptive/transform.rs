//! Random transforms applied to the image at every step (Lucid's transformation
//! robustness): jitter (a roll of up to `jitter` pixels), pad-and-crop (a shift of up to
//! `pad` pixels that fills uncovered pixels with the dataset's mean), scale and rotation.
//! One transform is drawn per step for the whole batch.
//!
//! Jitter is a `roll`. Pad, scale and rotation are one affine map, sampled bilinearly: at
//! 28x28 its matrix (`[h w, h w]`, built here per step) costs one small matmul, which is
//! differentiable and avoids a gather.

use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transforms {
    /// Roll by up to this many pixels (each axis, uniform).
    pub jitter: usize,
    /// Shift by up to this many pixels, filling with the mean (pad then random crop).
    pub pad: usize,
    /// Scale by a factor uniform in `[1 - scale, 1 + scale]`.
    pub scale: f32,
    /// Rotate by an angle uniform in `[-rotate, rotate]` degrees.
    pub rotate: f32,
}

impl Default for Transforms {
    fn default() -> Self {
        Self {
            jitter: 2,
            pad: 2,
            scale: 0.1,
            rotate: 10.0,
        }
    }
}

impl Transforms {
    pub fn none() -> Self {
        Self {
            jitter: 0,
            pad: 0,
            scale: 0.0,
            rotate: 0.0,
        }
    }

    pub fn jitter_only(jitter: usize) -> Self {
        Self {
            jitter,
            ..Self::none()
        }
    }

    fn resamples(&self) -> bool {
        self.pad > 0 || self.scale > 0.0 || self.rotate > 0.0
    }

    /// Draws this step's transform.
    pub fn sample(
        &self,
        rng: &mut impl Rng,
        shape: [usize; 3],
        fill: &[f32],
        device: &Device,
    ) -> StepTransform {
        let j = self.jitter as i64;
        let roll = if j > 0 {
            (rng.random_range(-j..=j), rng.random_range(-j..=j))
        } else {
            (0, 0)
        };
        let resample = if self.resamples() {
            let p = self.pad as i64;
            let shift = if p > 0 {
                (
                    rng.random_range(-p..=p) as f32,
                    rng.random_range(-p..=p) as f32,
                )
            } else {
                (0.0, 0.0)
            };
            let scale = if self.scale > 0.0 {
                rng.random_range(1.0 - self.scale..=1.0 + self.scale)
            } else {
                1.0
            };
            let angle = if self.rotate > 0.0 {
                rng.random_range(-self.rotate..=self.rotate).to_radians()
            } else {
                0.0
            };
            Some(Resample::new(shape, scale, angle, shift, fill, device))
        } else {
            None
        };
        StepTransform { roll, resample }
    }
}

/// One step's transform.
#[derive(Clone, Debug)]
pub struct StepTransform {
    /// (rows, columns) to roll by.
    pub roll: (i64, i64),
    pub resample: Option<Resample>,
}

impl StepTransform {
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match self.roll {
            (0, 0) => x,
            (dy, dx) => x.roll(&[dy, dx], &[2, 3]),
        };
        match &self.resample {
            Some(r) => r.apply(x),
            None => x,
        }
    }
}

/// An affine resampling as a matrix: `out = x @ matrix + fill_term`.
#[derive(Clone, Debug)]
pub struct Resample {
    /// `[h w (source), h w (output)]`.
    matrix: Tensor<2>,
    /// `[1, c, h w]`: the fill value times the weight that fell outside the image.
    fill: Tensor<3>,
}

impl Resample {
    /// Output pixel `q` samples the input at `c + A^-1 (q - c) - shift`, where `A` scales
    /// by `scale` and rotates by `angle` about the centre `c`.
    pub fn new(
        shape: [usize; 3],
        scale: f32,
        angle: f32,
        shift: (f32, f32),
        fill: &[f32],
        device: &Device,
    ) -> Self {
        let [c, h, w] = shape;
        let n = h * w;
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        let (sin, cos) = angle.sin_cos();
        let mut m = vec![0.0f32; n * n];
        let mut outside = vec![0.0f32; n];
        for oy in 0..h {
            for ox in 0..w {
                let (dy, dx) = (oy as f32 - cy - shift.0, ox as f32 - cx - shift.1);
                let sy = cy + (cos * dy - sin * dx) / scale;
                let sx = cx + (sin * dy + cos * dx) / scale;
                let (y0, x0) = (sy.floor(), sx.floor());
                let (fy, fx) = (sy - y0, sx - x0);
                let out = oy * w + ox;
                let mut covered = 0.0;
                for (yy, wy) in [(y0, 1.0 - fy), (y0 + 1.0, fy)] {
                    for (xx, wx) in [(x0, 1.0 - fx), (x0 + 1.0, fx)] {
                        let wgt = wy * wx;
                        if wgt > 0.0
                            && yy >= 0.0
                            && xx >= 0.0
                            && (yy as usize) < h
                            && (xx as usize) < w
                        {
                            m[(yy as usize * w + xx as usize) * n + out] += wgt;
                            covered += wgt;
                        }
                    }
                }
                outside[out] = 1.0 - covered;
            }
        }
        let fill_term: Vec<f32> = (0..c)
            .flat_map(|ch| outside.iter().map(move |o| o * fill[ch]))
            .collect();
        Self {
            matrix: Tensor::from_data(TensorData::new(m, [n, n]), device),
            fill: Tensor::from_data(TensorData::new(fill_term, [1, c, n]), device),
        }
    }

    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let y = x.reshape([b * c, h * w]).matmul(self.matrix.clone());
        (y.reshape([b, c, h * w]) + self.fill.clone()).reshape([b, c, h, w])
    }
}
