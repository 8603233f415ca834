//! Activation maximization: gradient ascent on the input, one objective per batch row, so
//! that all units of a site are optimized together in one batch.
//!
//! Each step: parameters → image (parameterization, colour, range) → random transform →
//! normalization → network (stopping after the deepest site read) → per-row objective
//! plus an optional diversity term, minus L2 / total variation / blur penalties. The
//! optimizer is Adam, written out on the raw parameter tensor (PyTorch's update); after
//! each step the parameters may decay towards grey and the image be blurred.

use super::objective::{BatchObjective, Objective};
use super::param::{ImageParam, ImageSpace, Param, ParamBlur, Range};
use super::regularize::{blur_pull, l2, total_variation};
use super::transform::Transforms;
use anyhow::{bail, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::eval::to_vec;
use insilico_engine::{Activation, Network};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How to synthesize images. Defaults follow Lucid, scaled down to 28x28.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub steps: usize,
    pub lr: f32,
    pub param: Param,
    pub range: Range,
    /// Decorrelated colour (RGB only).
    pub decorrelate: bool,
    /// Standard deviation of the initial parameters.
    pub init_std: f32,
    pub transforms: Transforms,
    /// Weight of the mean square of the normalized image (per pixel, see [`l2`]).
    pub l2: f32,
    /// Weight of the total variation of the visible image (mean absolute difference of
    /// neighbours, see [`total_variation`]).
    pub tv: f32,
    /// Weight of the pull towards the image's own 3x3 blur (per pixel, see [`blur_pull`]).
    pub blur: f32,
    /// Weight of the total variation relative to each row's objective: the penalty is
    /// `tv_relative * |objective| * TV` with the objective held constant, whose gradient is
    /// `|objective|` times that of `log(objective) - tv_relative * TV`. The same weight thus
    /// means the same trade-off at every site, whatever the scale of its units.
    pub tv_relative: f32,
    /// Standard deviation in pixels of the Gaussian blur applied to the image (before its
    /// sigmoid) after every step; 0: none (see [`ImageParam::blur`]).
    pub blur_sigma: f32,
    /// Fraction of the parameters removed after every step (a decay towards mid-grey).
    pub decay: f32,
    /// Weight of the diversity term (negative cosine similarity of Gram matrices between
    /// images of the same group); 0 disables it.
    pub diversity: f32,
    /// Site whose activations the diversity term compares (default: the objective's
    /// deepest site).
    pub diversity_site: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            steps: 512,
            lr: 0.05,
            param: Param::Fourier,
            range: Range::Sigmoid,
            decorrelate: true,
            init_std: 0.01,
            transforms: Transforms::default(),
            l2: 1e-3,
            tv: 1e-2,
            blur: 0.0,
            tv_relative: 0.0,
            blur_sigma: 0.0,
            decay: 0.0,
            diversity: 0.0,
            diversity_site: None,
        }
    }
}

/// Synthesized images, one per row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Synthesis {
    pub rows: usize,
    pub shape: [usize; 3],
    /// Normalized network inputs `[rows, c, h, w]` (no transform applied).
    pub inputs: Vec<f32>,
    /// Pixel values `[rows, c, h, w]` (in [0, 1] under the sigmoid range).
    pub pixels: Vec<f32>,
    /// Each row's objective on its final image, without transforms.
    pub objective: Vec<f32>,
    /// Mean objective over rows (under the step's transform) every step.
    pub trace: Vec<f32>,
}

impl Synthesis {
    pub fn image(&self, row: usize) -> &[f32] {
        let n = self.shape.iter().product::<usize>();
        &self.pixels[row * n..(row + 1) * n]
    }
}

/// Adam on a plain tensor (PyTorch's update, no weight decay).
#[derive(Clone, Debug)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    m: Option<Tensor<2>>,
    v: Option<Tensor<2>>,
    t: i32,
}

impl Adam {
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            m: None,
            v: None,
            t: 0,
        }
    }

    /// One descent step on `x` with gradient `g`.
    pub fn step(&mut self, x: Tensor<2>, g: Tensor<2>) -> Tensor<2> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let m = match self.m.take() {
            Some(m) => m * b1 + g.clone() * (1.0 - b1),
            None => g.clone() * (1.0 - b1),
        };
        let v = match self.v.take() {
            Some(v) => v * b2 + g.clone() * g * (1.0 - b2),
            None => g.clone() * g * (1.0 - b2),
        };
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2 = 1.0 - b2.powi(self.t);
        let denom = (v.clone() / bc2).sqrt() + self.eps;
        let x = x - (m.clone() / denom) * (self.lr / bc1);
        self.m = Some(m);
        self.v = Some(v);
        x
    }
}

/// Gram-matrix features of an activation, one row per example (a vector site: itself).
fn gram_features(act: Activation) -> Tensor<2> {
    match act {
        Activation::Map(t) => {
            let [b, c, h, w] = t.dims();
            let f = t.reshape([b, c, h * w]);
            let g = f.clone().matmul(f.swap_dims(1, 2));
            g.reshape([b, c * c])
        }
        Activation::Flat(t) => t,
    }
}

/// Per row: minus the sum of cosine similarities to the other rows of its group.
fn diversity(act: Activation, mask: Tensor<2>) -> Tensor<2> {
    let g = gram_features(act);
    let norm = (g.clone() * g.clone()).sum_dim(1).sqrt() + 1e-8;
    let g = g / norm;
    let sim = g.clone().matmul(g.transpose());
    -(sim * mask).sum_dim(1)
}

/// The site the diversity term compares, where it is on.
fn diversity_site(
    net: &Network,
    batch: &BatchObjective,
    settings: &Settings,
    rows: usize,
) -> Result<Option<String>> {
    if settings.diversity == 0.0 || rows < 2 {
        return Ok(None);
    }
    let plan = net.plan();
    let s = settings
        .diversity_site
        .clone()
        .unwrap_or_else(|| batch.last_site.clone());
    if plan.site_index(&s)? > plan.site_index(&batch.last_site)? {
        bail!(
            "the diversity site `{s}` lies after the objective's last site `{}`",
            batch.last_site
        );
    }
    Ok(Some(s))
}

/// `[rows, rows]`: 1 where two different rows belong to the same group.
fn same_group_mask(rows: usize, groups: Option<&[usize]>, device: &Device) -> Tensor<2> {
    let mut m = vec![0.0f32; rows * rows];
    for i in 0..rows {
        for j in 0..rows {
            let same = groups.map(|g| g[i] == g[j]).unwrap_or(true);
            if i != j && same {
                m[i * rows + j] = 1.0;
            }
        }
    }
    Tensor::<2>::from_data(TensorData::new(m, [rows, rows]), device)
}

/// The loss per row `[rows, 1]` with the regularizers added; `objective` (per row,
/// without gradient) scales the relative total variation.
fn add_penalties(
    mut loss: Tensor<2>,
    objective: Tensor<2>,
    param: &ImageParam,
    visible: Tensor<4>,
    settings: &Settings,
) -> Tensor<2> {
    if settings.tv_relative != 0.0 {
        let weight = objective.detach().abs() * settings.tv_relative;
        loss = loss + total_variation(visible.clone()) * weight;
    }
    if settings.l2 != 0.0 {
        loss = loss + l2(param.to_input(visible.clone())) * settings.l2;
    }
    if settings.tv != 0.0 {
        loss = loss + total_variation(visible.clone()) * settings.tv;
    }
    if settings.blur != 0.0 {
        loss = loss + blur_pull(visible) * settings.blur;
    }
    loss
}

/// What the step-wise regularizers leave of the parameters after a step: the decay
/// towards mid-grey, then the Gaussian blur.
fn shrink(raw: Tensor<2>, param: &ImageParam, blur: Option<&ParamBlur>, decay: f32) -> Tensor<2> {
    let raw = if decay > 0.0 {
        raw * (1.0 - decay)
    } else {
        raw
    };
    match blur {
        Some(op) => param.blur(raw, op),
        None => raw,
    }
}

/// Optimizes one image per objective, all in one batch. `groups` (one id per row) says
/// which rows the diversity term keeps apart; `None`: all rows in one group.
/// `net` may live on a plain device: its parameters act as constants and gradients reach
/// only the image. It runs in eval mode whatever mode it comes in: the image is an
/// autodiff tensor, and Burn's batch norm and dropout take their training path for any
/// autodiff input of a layer whose training flag is on (batch statistics of the
/// synthesized images, random units dropped), which is not the unit being visualized.
pub fn synthesize(
    net: &Network,
    space: &ImageSpace,
    objectives: &[Objective],
    groups: Option<&[usize]>,
    settings: &Settings,
    seed: u64,
    device: &Device,
) -> Result<Synthesis> {
    let net = &net.valid();
    let rows = objectives.len();
    if let Some(g) = groups {
        if g.len() != rows {
            bail!("{} group ids for {rows} objectives", g.len());
        }
    }
    let batch = BatchObjective::new(objectives, net.plan(), device)?;
    let div_site = diversity_site(net, &batch, settings, rows)?;
    let hooks = batch.hooks(div_site.as_slice());
    let div_mask = div_site
        .as_ref()
        .map(|_| same_group_mask(rows, groups, device));
    let param = ImageParam::new(
        settings.param,
        settings.range,
        settings.decorrelate,
        space,
        rows,
        device,
    );
    let fill = param.fill();
    let mut raw = param.init(seed, settings.init_std, device);
    let mut adam = Adam::new(settings.lr);
    let blur = param.blur_op(settings.blur_sigma, device);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut trace_parts = Vec::with_capacity(settings.steps);
    for _ in 0..settings.steps {
        let p = raw.clone().autodiff().require_grad();
        let visible = param.visible(p.clone());
        let step = settings
            .transforms
            .sample(&mut rng, space.shape, &fill, device);
        let input = param.to_input(step.apply(visible.clone()));
        let rec = net.run(input, &hooks);
        let mut per_row = batch.evaluate(&rec).reshape([rows, 1]);
        trace_parts.push(per_row.clone().detach().inner().mean());
        if let (Some(site), Some(mask)) = (&div_site, &div_mask) {
            per_row = per_row + diversity(rec.get(site).clone(), mask.clone()) * settings.diversity;
        }
        let objective = per_row.clone();
        let loss = add_penalties(-per_row, objective, &param, visible, settings);
        let grads = loss.sum().backward();
        let Some(g) = p.grad(&grads) else {
            bail!("the objective does not depend on the image: no gradient reaches it");
        };
        raw = shrink(adam.step(raw, g), &param, blur.as_ref(), settings.decay);
    }
    let trace = if trace_parts.is_empty() {
        Vec::new()
    } else {
        to_vec(Tensor::cat(trace_parts, 0))
    };
    let visible = param.visible(raw);
    let input = param.to_input(visible.clone());
    let objective = to_vec(batch.evaluate(&net.run(input.clone(), &batch.hooks(&[]))));
    let inputs = to_vec(input);
    let pixels = match settings.range {
        Range::Sigmoid => to_vec(visible),
        Range::Free => space.denormalize(&inputs),
    };
    Ok(Synthesis {
        rows,
        shape: space.shape,
        inputs,
        pixels,
        objective,
        trace,
    })
}

/// Each objective's value on given normalized inputs `[n, c, h, w]`: `[n, rows]`, row-major.
pub fn objective_values(
    net: &Network,
    objectives: &[Objective],
    inputs: Tensor<4>,
    device: &Device,
) -> Result<Vec<f32>> {
    let batch = BatchObjective::new(objectives, net.plan(), device)?;
    let rec = net.run(inputs, &batch.hooks(&[]));
    let mut total: Option<Tensor<2>> = None;
    for (site, w) in &batch.weights {
        let act = rec.get(site).clone().flatten();
        let term = act.matmul(w.clone().transpose());
        total = Some(match total {
            Some(t) => t + term,
            None => term,
        });
    }
    Ok(to_vec(total.expect("a site")))
}
