//! The engine's own CPU kernels, registered with Burn as a backend extension.
//!
//! Burn 0.22 has no backend type parameter on `Tensor`; a custom operation is a trait over
//! `burn::backend::Backend` marked `#[backend_extension(...)]`, which generates the runtime
//! dispatch from a `Tensor`'s `DispatchTensor` to the concrete backend. We implement three,
//! convolution ([`ConvKernels`]), linear layers ([`LinearKernels`]) and max pooling
//! ([`PoolKernels`]), for Flex (the slice kernels of [`conv`], [`linear`] and [`pool`],
//! every product through [`matmul`]) and for `Autodiff<B>` (handwritten `Backward` steps
//! that call the same extension on the inner backend for the gradients), so training, hooks,
//! resume and input gradients all run through it. The wgpu path keeps Burn's kernels:
//! [`supports`] picks the extension only for `f32` tensors on the Flex device.

pub mod adam;
mod autodiff;
pub mod conv;
mod flex;
pub mod linear;
pub(crate) mod matmul;
pub mod pool;

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, DispatchDevice};
use burn::tensor::{DType, Tensor};

/// A 2-D convolution's hyper-parameters (no dilation, no groups), plus whether a relu
/// follows it directly and is fused into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub relu: bool,
}

/// What the backward pass needs to know besides the tensors: the forward's spec and the
/// input's spatial size (which the output's size does not determine when the stride is 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGradSpec {
    pub spec: ConvSpec,
    pub input_hw: [usize; 2],
}

/// The convolution operations of the engine.
#[backend_extension(Flex, Autodiff)]
pub trait ConvKernels: Backend {
    /// `relu?(conv2d(x, weight) + bias)`: x `[n, ci, h, w]`, weight `[co, ci, kh, kw]`,
    /// bias `[co]`.
    fn conv2d_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self>;

    /// The gradient with respect to x, given the output gradient (after the relu mask).
    fn conv2d_input_grad(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: ConvGradSpec,
    ) -> FloatTensor<Self>;

    /// The gradients with respect to the weight and the bias.
    fn conv2d_param_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        weight_shape: [usize; 4],
        spec: ConvSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// The linear layer's operations of the engine (weight `[i, o]` as Burn's `Linear` keeps it).
#[backend_extension(Flex, Autodiff)]
pub trait LinearKernels: Backend {
    /// `x @ weight + bias`: x `[n, i]`, weight `[i, o]`, bias `[o]`.
    fn linear_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The gradient with respect to x, given the output gradient.
    fn linear_input_grad(weight: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradients with respect to the weight and the bias.
    fn linear_param_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// A max pooling's square window and stride (no padding, no dilation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    pub kernel: usize,
    pub stride: usize,
}

/// The pooling operations of the engine.
#[backend_extension(Flex, Autodiff)]
pub trait PoolKernels: Backend {
    /// `max_pool2d(x)`: x `[n, c, h, w]` to `[n, c, oh, ow]`.
    fn maxpool2d(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self>;

    /// The gradient with respect to x, given x and the output gradient.
    fn maxpool2d_input_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: PoolSpec,
    ) -> FloatTensor<Self>;
}

/// Whether the engine's own kernels serve this tensor: `f32` on the Flex (CPU) device,
/// unless the environment sets `INSILICO_CONV=burn` (Burn's convolution and pooling
/// everywhere, to compare the two in a benchmark with one binary).
pub fn supports<const D: usize>(x: &Tensor<D>) -> bool {
    static BURN_ONLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *BURN_ONLY.get_or_init(|| std::env::var("INSILICO_CONV").is_ok_and(|v| v == "burn")) {
        return false;
    }
    let on_flex = matches!(
        x.device().without_autodiff().as_dispatch(),
        DispatchDevice::Flex(_)
    );
    on_flex && x.dtype() == DType::F32
}

/// `relu?(conv2d(x, weight) + bias)` through the engine's kernels; differentiable with
/// respect to all three. Call only where [`supports`] holds.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, spec: ConvSpec) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvKernels>::conv2d_fused(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        spec,
    ))
}

/// `x @ weight + bias` through the engine's kernels; differentiable with respect to all
/// three. Call only where [`supports`] holds.
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as LinearKernels>::linear_fused(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// `max_pool2d(x)` through the engine's kernels; differentiable with respect to x. Call
/// only where [`supports`] holds.
pub fn max_pool2d(x: Tensor<4>, spec: PoolSpec) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as PoolKernels>::maxpool2d(
        x.into_dispatch(),
        spec,
    ))
}
