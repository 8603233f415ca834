//! The unit algebra of the layers, for assays that silence units by the thousand.
//!
//! A binary per-unit mask `m` with replacement `r` at a site commutes with every layer
//! after it that [`LayerKind::commutes_with_unit_mask`] (relu, pooling, batch norm and
//! dropout in evaluation, flatten), up to the first layer that
//! [`LayerKind::is_linear_in_units`] (conv, linear). That layer's output is then
//! `bias + sum_u (1 - m_u) L(x_u) + m_u L(r_u)`: each unit's contribution `L(x_u)` can be
//! computed once per image and every mask becomes one row of a matmul. This module says
//! where that holds ([`linearization`]) and computes the pieces; the ablation assay
//! combines them.

use crate::config::LayerSpec;
use crate::eval::to_vec;
use crate::hooks::Activation;
use crate::kernels::conv::{self, ConvDims};
use crate::kernels::matmul::{matmul, Mat};
use crate::network::{Layer, Network};
use crate::plan::Plan;
use anyhow::{bail, ensure, Result};
use burn::tensor::module::unfold4d;
use burn::tensor::ops::UnfoldOptions;
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

/// The stretch of the network after a masked site that the algebra replaces.
#[derive(Clone, Debug)]
pub struct Linearization {
    /// The last site before the linear layer (the masked site itself where the linear
    /// layer follows it directly).
    pub pre_site: String,
    /// The layer linear in the units; the forward pass resumes after it.
    pub linear_site: String,
    /// Its output shape, without the batch axis.
    pub out_dims: Vec<usize>,
    /// Multiply-adds per output value when the layer runs on its input: input features,
    /// or input channels x kernel size.
    pub fan_in: usize,
}

/// Where a unit mask at `site` can be pushed through to a layer linear in the units, or
/// `None` (then the layers must run on the masked activation).
pub fn linearization(plan: &Plan, site: &str) -> Result<Option<Linearization>> {
    let stages = &plan.stages;
    let mut j = plan.site_index(site)? + 1;
    while j < stages.len() && stages[j].kind.commutes_with_unit_mask() {
        j += 1;
    }
    if j >= stages.len() || !stages[j].kind.is_linear_in_units() {
        return Ok(None);
    }
    let stage = &stages[j];
    let fan_in = match &stage.spec {
        LayerSpec::Conv2d { kernel, .. } => stage.input.units() * kernel * kernel,
        _ => stage.input.numel(),
    };
    Ok(Some(Linearization {
        pre_site: stages[j - 1].site.clone(),
        linear_site: stage.site.clone(),
        out_dims: stage.output.dims(),
        fan_in,
    }))
}

/// Patches of `x` `[B, C, H, W]` for a `kh x kw` kernel, as `[C, K, B * L]` (K kernel
/// offsets, L output positions). Stride 1 is built from shifted views of the padded input
/// (cheaper than a general unfold); other strides use Burn's `unfold4d`.
fn im2col(x: Tensor<4>, [kh, kw]: [usize; 2], stride: usize, padding: usize) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    if stride != 1 {
        let patches = unfold4d(
            x,
            [kh, kw],
            UnfoldOptions::new([stride, stride], [padding, padding], [1, 1]),
        );
        let l = patches.dims()[2];
        return patches
            .reshape([b, c, kh * kw, l])
            .permute([1, 2, 0, 3])
            .reshape([c, kh * kw, b * l]);
    }
    let (oh, ow) = (h + 2 * padding + 1 - kh, w + 2 * padding + 1 - kw);
    let padded = x.pad(
        (padding, padding, padding, padding),
        burn::tensor::ops::PadMode::Constant(0.0),
    );
    let shifts: Vec<Tensor<4>> = (0..kh)
        .flat_map(|ky| (0..kw).map(move |kx| (ky, kx)))
        .map(|(ky, kx)| {
            padded
                .clone()
                .narrow(2, ky, oh)
                .narrow(3, kx, ow)
                .reshape([1, b, c, oh * ow])
        })
        .collect();
    Tensor::cat(shifts, 0)
        .permute([2, 0, 1, 3])
        .reshape([c, kh * kw, b * oh * ow])
}

/// Each of `units` input units' contribution to the linear layer's output (no bias), for
/// the activation `x` at `lin.pre_site`: `[units, B * out]`, batch outside the output.
pub fn unit_contributions(
    net: &Network,
    lin: &Linearization,
    x: Activation,
    units: usize,
) -> Result<Tensor<2>> {
    let b = x.batch();
    let out: usize = lin.out_dims.iter().product();
    let plan = net.plan();
    let spec = &plan.stages[plan.site_index(&lin.linear_site)?].spec;
    Ok(match (net.layer(&lin.linear_site)?, x, spec) {
        (
            Layer::Conv2d(conv),
            Activation::Map(x),
            LayerSpec::Conv2d {
                stride, padding, ..
            },
        ) => {
            let w = conv.weight.val();
            let [o, c, kh, kw] = w.dims();
            ensure!(
                c == units,
                "per-unit contributions need one input channel per unit"
            );
            // Patches [C, K, B*L]; filters [O, C, K] -> [C, O, K]. One batched matmul
            // gives every unit's contribution to every output channel.
            let patches = im2col(x, [kh, kw], *stride, *padding);
            let l = patches.dims()[2] / b;
            let filters = w.reshape([o, c, kh * kw]).swap_dims(0, 1);
            // [C, O, B*L] -> [C, B, O, L] (mask-major rows need the batch outside O).
            filters
                .matmul(patches)
                .reshape([c, o, b, l])
                .swap_dims(1, 2)
                .reshape([units, b * out])
        }
        (Layer::Linear(linear), x, _) => {
            let x = x.flatten();
            let f = x.dims()[1];
            ensure!(
                f % units == 0,
                "flattened features are not a multiple of the units"
            );
            let s = f / units;
            let w = linear.weight.val(); // Burn's layout: [in, out]
            let xs = x.reshape([b, units, s]).swap_dims(0, 1); // [U, B, S]
            let ws = w.reshape([units, s, out]); // [U, S, O]
            xs.matmul(ws).reshape([units, b * out])
        }
        _ => bail!("{} is not a conv or linear layer", lin.linear_site),
    })
}

/// The weight `[units, out]` of a linear layer whose input features are the units
/// themselves (one value per unit, as in an MLP), where each unit's contribution is
/// the rank-one term `x_u * W[u, :]` and needs no per-image storage; `None` for a conv
/// layer or a linear layer on flattened maps (several features per unit).
pub fn rank_one_weight(
    net: &Network,
    lin: &Linearization,
    units: usize,
) -> Result<Option<Vec<f32>>> {
    Ok(match net.layer(&lin.linear_site)? {
        Layer::Linear(linear) if linear.weight.dims()[0] == units => {
            // Burn's layout is [in, out]: a unit's row is contiguous.
            Some(to_vec(linear.weight.val()))
        }
        _ => None,
    })
}

/// Per-unit contributions as plain values (see [`unit_contributions_vec`]).
pub struct UnitContributions {
    /// `[units, groups, images, out / groups]`: for a convolution the groups are its
    /// output channels (each unit's contribution to a channel is contiguous over the
    /// images' positions, as one GEMM writes it); for a linear layer there is one group.
    pub values: Vec<f32>,
    pub groups: usize,
}

/// [`unit_contributions`] as plain values. For a convolution, unit `u`'s contribution is
/// its own input channel's patches `[K, B * L]` (unfolded here) times its own slice of the
/// filters `[O, K]`: one GEMM per unit with rows as long as the batch's positions (the
/// units in parallel), written where the combination reads it, with no permutation.
/// `buffer`'s allocation is reused for the values (pass the previous call's values back:
/// a fresh buffer of this size would be zeroed first, for nothing).
pub fn unit_contributions_vec(
    net: &Network,
    lin: &Linearization,
    x: Activation,
    units: usize,
    buffer: Vec<f32>,
) -> Result<UnitContributions> {
    let plan = net.plan();
    let spec = &plan.stages[plan.site_index(&lin.linear_site)?].spec;
    let (
        Layer::Conv2d(conv),
        Activation::Map(x),
        LayerSpec::Conv2d {
            stride, padding, ..
        },
    ) = (net.layer(&lin.linear_site)?, &x, spec)
    else {
        let values = to_vec(unit_contributions(net, lin, x, units)?);
        return Ok(UnitContributions { values, groups: 1 });
    };
    let [b, c, h, w] = x.dims();
    let weight = conv.weight.val();
    let [o, wc, kh, kw] = weight.dims();
    ensure!(
        c == units && wc == units,
        "per-unit contributions need one input channel per unit"
    );
    let d = ConvDims::new([b, c, h, w], [o, c, kh, kw], [*stride; 2], [*padding; 2]);
    let (x, weight) = (to_vec(x.clone()), to_vec(weight));
    let (k, n) = (kh * kw, b * d.oh * d.ow);
    let mut values = buffer;
    // Every value is written by the GEMM below (which does not read its destination).
    values.resize(units * o * n, 0.0);
    values
        .par_chunks_mut(o * n)
        .enumerate()
        .for_each_init(Vec::new, |patches, (u, dst)| {
            unfold_channel(&d, &x, u, patches);
            let filters: Vec<f32> = weight
                .chunks_exact(c * k)
                .flat_map(|f| &f[u * k..(u + 1) * k])
                .copied()
                .collect();
            let (lhs, rhs) = (Mat::row_major(&filters, k), Mat::row_major(patches, n));
            matmul(o, n, k, dst, false, lhs, rhs);
        });
    Ok(UnitContributions { values, groups: o })
}

/// Channel `ch`'s patches on their own into `out`, `[kh * kw, N * L]` (L output
/// positions), zeros in the padding: each tap's row of every image as the convolution
/// kernel unfolds it ([`conv::unfold_tap`]).
fn unfold_channel(d: &ConvDims, x: &[f32], ch: usize, out: &mut Vec<f32>) {
    let (l, plane) = (d.oh * d.ow, d.h * d.w);
    out.resize(d.kh * d.kw * d.n * l, 0.0);
    let taps = (0..d.kh).flat_map(|i| (0..d.kw).map(move |j| (i, j)));
    for ((i, j), dst) in taps.zip(out.chunks_exact_mut(d.n * l)) {
        for (image, row) in dst.chunks_exact_mut(l).enumerate() {
            let src = &x[(image * d.ci + ch) * plane..][..plane];
            conv::unfold_tap(d, src, i, j, row);
        }
    }
}

/// The linear layer's bias laid out like one row of contributions, `[1, B * out]`.
pub fn bias_row(net: &Network, lin: &Linearization, b: usize, device: &Device) -> Tensor<2> {
    let out: usize = lin.out_dims.iter().product();
    let o = lin.out_dims[0];
    let bias = match net.layer(&lin.linear_site) {
        Ok(Layer::Conv2d(c)) => c.bias.as_ref().map(|b| b.val()),
        Ok(Layer::Linear(l)) => l.bias.as_ref().map(|b| b.val()),
        _ => None,
    };
    match bias {
        Some(bias) => bias
            .reshape([1, o, 1])
            .repeat_dim(2, out / o)
            .reshape([1, out])
            .repeat_dim(0, b)
            .reshape([1, b * out]),
        None => Tensor::zeros([1, b * out], device),
    }
}

/// How the linear layer's output becomes the activation the forward pass resumes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumeAt {
    /// A relu and a 2x2 max pool follow the map `[o, h, w]` (even sides): they are
    /// applied in the other order (both monotone, so they commute), the relu then
    /// touching a quarter of the values, and the pass resumes after the pool at `site`.
    PoolRelu { site: String, dims: [usize; 3] },
    /// The output as it is (`dims` without the batch axis); the pass resumes after the
    /// linear layer at `site`.
    Output { site: String, dims: Vec<usize> },
}

impl ResumeAt {
    /// Values per row of the resumed activation.
    pub fn row_len(&self) -> usize {
        match self {
            ResumeAt::PoolRelu {
                dims: [o, h, w], ..
            } => o * (h / 2) * (w / 2),
            ResumeAt::Output { dims, .. } => dims.iter().product(),
        }
    }

    /// The resumed activation's shape for `rows` rows of [`Self::row_len`] values.
    pub fn dims(&self, rows: usize) -> Vec<usize> {
        match self {
            ResumeAt::PoolRelu {
                dims: [o, h, w], ..
            } => vec![rows, *o, h / 2, w / 2],
            ResumeAt::Output { dims, .. } => [&[rows][..], dims].concat(),
        }
    }

    pub fn site(&self) -> &str {
        match self {
            ResumeAt::PoolRelu { site, .. } | ResumeAt::Output { site, .. } => site,
        }
    }
}

/// Where and how the forward pass resumes after the linear layer of `lin`.
pub fn resume_at(plan: &Plan, lin: &Linearization) -> Result<ResumeAt> {
    let j = plan.site_index(&lin.linear_site)?;
    let stages = &plan.stages;
    let relu_then_pool = j + 2 < stages.len()
        && stages[j + 1].kind == crate::LayerKind::Relu
        && matches!(
            stages[j + 2].spec,
            LayerSpec::Maxpool {
                kernel: 2,
                stride: None | Some(2),
                ..
            }
        );
    Ok(match lin.out_dims[..] {
        [o, h, w] if relu_then_pool && h % 2 == 0 && w % 2 == 0 => ResumeAt::PoolRelu {
            site: stages[j + 2].site.clone(),
            dims: [o, h, w],
        },
        [_, _, _] | [_] => ResumeAt::Output {
            site: lin.linear_site.clone(),
            dims: lin.out_dims.clone(),
        },
        _ => bail!("{} has neither a map nor a vector output", lin.linear_site),
    })
}
