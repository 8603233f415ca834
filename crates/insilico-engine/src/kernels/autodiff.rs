//! The kernels under autodiff: each forward runs on the inner backend and registers a
//! handwritten backward step whose gradients are the inner backend's (for a convolution
//! `conv2d_input_grad` and `conv2d_param_grad`, after the relu mask when the relu is fused;
//! for a linear layer `linear_input_grad` and `linear_param_grad`).

use super::{ConvGradSpec, ConvKernels, ConvSpec, LinearKernels, PoolKernels, PoolSpec};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, TensorMetadata};

/// The backward step of one fused convolution; its parents are x, weight and bias.
#[derive(Debug)]
struct ConvBackward;

/// What the step keeps: x and the weights (through the checkpointer), the relu's output
/// when the relu is fused (its mask), the spec and the shapes.
#[derive(Clone, Debug)]
struct ConvState<T> {
    x: NodeId,
    weight: NodeId,
    relu_output: Option<T>,
    spec: ConvSpec,
    weight_shape: [usize; 4],
    input_hw: [usize; 2],
}

impl<B: Backend + ConvKernels> Backward<B, 3> for ConvBackward {
    type State = ConvState<FloatTensor<B>>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let state = ops.state;
        let grad = match state.relu_output {
            Some(output) => B::relu_backward(output, grad),
            None => grad,
        };
        let x: FloatTensor<B> = checkpointer.retrieve_node_output(state.x);
        let weight: FloatTensor<B> = checkpointer.retrieve_node_output(state.weight);
        if let Some(node) = node_x {
            let spec = ConvGradSpec {
                spec: state.spec,
                input_hw: state.input_hw,
            };
            grads.register::<B>(node.id, B::conv2d_input_grad(weight, grad.clone(), spec));
        }
        if node_weight.is_some() || node_bias.is_some() {
            let (dw, db) = B::conv2d_param_grad(x, grad, state.weight_shape, state.spec);
            if let Some(node) = node_weight {
                grads.register::<B>(node.id, dw);
            }
            if let Some(node) = node_bias {
                grads.register::<B>(node.id, db);
            }
        }
    }
}

fn dims4(shape: &[usize]) -> [usize; 4] {
    shape
        .try_into()
        .unwrap_or_else(|_| panic!("expected a 4-d tensor, got shape {shape:?}"))
}

impl<B: Backend + ConvKernels, C: CheckpointStrategy> ConvKernels for Autodiff<B, C> {
    fn conv2d_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let x_shape = dims4(&x.shape());
        let weight_shape = dims4(&weight.shape());
        let prep = ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                let weight_id = prep.checkpoint(&weight);
                let out = B::conv2d_fused(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    spec,
                );
                let state = ConvState {
                    x: x_id,
                    weight: weight_id,
                    relu_output: spec.relu.then(|| out.clone()),
                    spec,
                    weight_shape,
                    input_hw: [x_shape[2], x_shape[3]],
                };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_fused(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                spec,
            )),
        }
    }

    // The gradients themselves are not differentiated again (no second-order terms): they
    // are computed on the inner backend and return as constants.
    fn conv2d_input_grad(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: ConvGradSpec,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::conv2d_input_grad(
            Self::inner(weight),
            Self::inner(grad),
            spec,
        ))
    }

    fn conv2d_param_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        weight_shape: [usize; 4],
        spec: ConvSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dw, db) = B::conv2d_param_grad(Self::inner(x), Self::inner(grad), weight_shape, spec);
        (Self::from_inner(dw), Self::from_inner(db))
    }
}

/// The backward step of one linear layer; its parents are x, weight and bias, and it keeps
/// x and the weight (through the checkpointer).
#[derive(Debug)]
struct LinearBackward;

impl<B: Backend + LinearKernels> Backward<B, 3> for LinearBackward {
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_id, weight_id) = ops.state;
        if let Some(node) = node_x {
            let weight: FloatTensor<B> = checkpointer.retrieve_node_output(weight_id);
            grads.register::<B>(node.id, B::linear_input_grad(weight, grad.clone()));
        }
        if node_weight.is_some() || node_bias.is_some() {
            let x: FloatTensor<B> = checkpointer.retrieve_node_output(x_id);
            let (dw, db) = B::linear_param_grad(x, grad);
            for (node, g) in [(node_weight, dw), (node_bias, db)] {
                if let Some(node) = node {
                    grads.register::<B>(node.id, g);
                }
            }
        }
    }
}

impl<B: Backend + LinearKernels, C: CheckpointStrategy> LinearKernels for Autodiff<B, C> {
    fn linear_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = LinearBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(mut prep) => {
                let ids = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let out = B::linear_fused(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                prep.finish(ids, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::linear_fused(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }

    // Not differentiated again, as the convolution's gradients.
    fn linear_input_grad(weight: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::linear_input_grad(Self::inner(weight), Self::inner(grad)))
    }

    fn linear_param_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dw, db) = B::linear_param_grad(Self::inner(x), Self::inner(grad));
        (Self::from_inner(dw), Self::from_inner(db))
    }
}

/// The backward step of one max pooling; its parent is x, which it keeps (through the
/// checkpointer) to find each window's maximum again.
#[derive(Debug)]
struct MaxPoolBackward;

impl<B: Backend + PoolKernels> Backward<B, 1> for MaxPoolBackward {
    type State = (NodeId, PoolSpec);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_id, spec) = ops.state;
        if let Some(node) = node_x {
            let x: FloatTensor<B> = checkpointer.retrieve_node_output(x_id);
            grads.register::<B>(node.id, B::maxpool2d_input_grad(x, grad, spec));
        }
    }
}

impl<B: Backend + PoolKernels, C: CheckpointStrategy> PoolKernels for Autodiff<B, C> {
    fn maxpool2d(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                let out = B::maxpool2d(x.into_primitive(), spec);
                prep.finish((x_id, spec), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::maxpool2d(x.into_primitive(), spec)),
        }
    }

    // Not differentiated again, as the convolution's gradients.
    fn maxpool2d_input_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        spec: PoolSpec,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::maxpool2d_input_grad(
            Self::inner(x),
            Self::inner(grad),
            spec,
        ))
    }
}
