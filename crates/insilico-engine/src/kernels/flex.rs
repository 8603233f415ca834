//! [`ConvKernels`] on Burn's Flex CPU backend: the tensors' `f32` storage goes straight to
//! the slice kernels of [`super::conv`], and their results come back without a copy.

use super::conv::{self, ConvDims};
use super::linear::{self, LinearDims};
use super::pool::{self, PoolDims};
use super::{ConvGradSpec, ConvKernels, ConvSpec, LinearKernels, PoolKernels, PoolSpec};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::tensor::{DType, TensorData};
use std::borrow::Cow;

/// The tensor's values in row-major order, borrowed where it is already contiguous.
fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    assert_eq!(
        t.dtype(),
        DType::F32,
        "the engine's kernels run on f32 tensors only"
    );
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous")
                .to_vec(),
        ),
    }
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.shape();
    assert_eq!(s.num_dims(), 4, "expected a 4-d tensor, got {s:?}");
    [s[0], s[1], s[2], s[3]]
}

fn dims2(t: &FlexTensor) -> [usize; 2] {
    let s = t.shape();
    assert_eq!(s.num_dims(), 2, "expected a 2-d tensor, got {s:?}");
    [s[0], s[1]]
}

fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

impl ConvKernels for Flex {
    fn conv2d_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let d = ConvDims::new(dims4(&x), dims4(&weight), spec.stride, spec.padding);
        let out = conv::forward(&d, &values(&x), &values(&weight), &values(&bias), spec.relu);
        tensor(out, vec![d.n, d.co, d.oh, d.ow])
    }

    fn conv2d_input_grad(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: ConvGradSpec,
    ) -> FloatTensor<Self> {
        let [n, _, oh, ow] = dims4(&grad);
        let w = dims4(&weight);
        let [h, wd] = spec.input_hw;
        let d = ConvDims::new([n, w[1], h, wd], w, spec.spec.stride, spec.spec.padding);
        assert_eq!([d.oh, d.ow], [oh, ow], "conv2d backward: gradient shape");
        let dx = conv::input_grad(&d, &values(&weight), &values(&grad));
        tensor(dx, vec![n, d.ci, h, wd])
    }

    fn conv2d_param_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        weight_shape: [usize; 4],
        spec: ConvSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let d = ConvDims::new(dims4(&x), weight_shape, spec.stride, spec.padding);
        let (dw, db) = conv::param_grad(&d, &values(&x), &values(&grad));
        (tensor(dw, weight_shape.to_vec()), tensor(db, vec![d.co]))
    }
}

impl LinearKernels for Flex {
    fn linear_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let ([n, i], [_, o]) = (dims2(&x), dims2(&weight));
        let d = LinearDims { n, i, o };
        let y = linear::forward(d, &values(&x), &values(&weight), &values(&bias));
        tensor(y, vec![n, o])
    }

    fn linear_input_grad(weight: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let ([i, o], [n, _]) = (dims2(&weight), dims2(&grad));
        let dx = linear::input_grad(LinearDims { n, i, o }, &values(&weight), &values(&grad));
        tensor(dx, vec![n, i])
    }

    fn linear_param_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let ([n, i], [_, o]) = (dims2(&x), dims2(&grad));
        let (dw, db) = linear::param_grad(LinearDims { n, i, o }, &values(&x), &values(&grad));
        (tensor(dw, vec![i, o]), tensor(db, vec![o]))
    }
}

impl PoolKernels for Flex {
    fn maxpool2d(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        let d = PoolDims::new(dims4(&x), spec.kernel, spec.stride);
        let [n, c, _, _] = dims4(&x);
        tensor(pool::forward(&d, &values(&x)), vec![n, c, d.oh, d.ow])
    }

    fn maxpool2d_input_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: PoolSpec,
    ) -> FloatTensor<Self> {
        let shape = dims4(&x);
        let d = PoolDims::new(shape, spec.kernel, spec.stride);
        let dx = pool::backward(&d, &values(&x), &values(&grad));
        tensor(dx, shape.to_vec())
    }
}
