//! Adam's update as one pass over each parameter on the CPU.
//!
//! Burn's Adam runs its update as a dozen tensor operations per parameter (the two
//! moments, the bias corrections, the square root, the division, the weight decay), each
//! a single-threaded pass over the tensor into a fresh buffer: 3.1 ms of the 8 ms an
//! mlp-2x512 training step at batch 128 took here, most of the step outside the products.
//! [`FusedAdam`] computes the same update with the same `f32` operations in the same order
//! (so the same bits, tested against Burn's), in one pass over the parameter, its
//! gradient and moments, in place where Burn's buffers are not shared, the tensor in
//! parallel chunks. Its state is Burn's [`AdamState`], so checkpoints written with either
//! load into the other. Tensors off the CPU (wgpu) take Burn's Adam unchanged.

use burn::optim::{
    decay::WeightDecayConfig, Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate,
    Optimizer,
};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// Adam (Kingma & Ba) with optional L2 weight decay added to the gradient, as Burn's
/// [`Adam`] computes it; see the module documentation.
#[derive(Clone)]
pub struct FusedAdam {
    epsilon: f32,
    /// The L2 penalty added to the gradient (`grad + penalty * param`), as Burn's.
    penalty: Option<f32>,
    /// Burn's Adam with the same settings, for tensors the fused pass does not serve.
    burn: Adam,
}

impl FusedAdam {
    /// Adam with Burn's default betas (0.9, 0.999), `epsilon` and an optional weight decay.
    pub fn new(epsilon: f32, weight_decay: Option<f32>) -> Self {
        let config = AdamConfig::new()
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay.map(WeightDecayConfig::new));
        Self {
            epsilon,
            penalty: weight_decay,
            burn: config.build(),
        }
    }
}

/// Burn's default betas, which the lab's configurations do not change.
const BETAS: [f32; 2] = [0.9, 0.999];

/// Elements per parallel chunk: large enough that a chunk's four streams amortize the
/// task, small enough that mlp-2x512's largest tensor splits over the threads.
const CHUNK: usize = 1 << 14;

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if !super::supports(&tensor) {
            return self.burn.step(lr, tensor, grad, state);
        }
        let device = tensor.device();
        let shape = tensor.shape();
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                Some(s.momentum.moment_1),
                Some(s.momentum.moment_2),
            ),
            None => (1, None, None),
        };
        let mut param = tensor.into_data();
        let grad = grad.into_data();
        let len = param.num_elements();
        let mut m = m.map_or_else(|| zeros(len, &shape), Tensor::into_data);
        let mut v = v.map_or_else(|| zeros(len, &shape), Tensor::into_data);
        let first = time == 1;
        let k = self.constants(time, lr);
        let (p, g) = (
            slice_mut(&mut param),
            grad.as_slice::<f32>().expect("f32 gradient"),
        );
        let (ms, vs) = (slice_mut(&mut m), slice_mut(&mut v));
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(ms.par_chunks_mut(CHUNK).zip(vs.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| k.update(p, g, m, v, first));
        let tensor = |data: TensorData| Tensor::<D>::from_data(data, &device);
        let momentum = AdaptiveMomentumState::new(time, tensor(m), tensor(v));
        (tensor(param), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

/// The scalars of one step, as Burn derives them (in `f32`).
struct Constants {
    beta_1: f32,
    beta_2: f32,
    /// `1 - beta_1`, `1 - beta_2`.
    one_minus: [f32; 2],
    /// `sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
    combined: f32,
    /// `epsilon * sqrt(1 - beta_2^t)`.
    epsilon: f32,
    lr: f32,
    penalty: Option<f32>,
}

impl FusedAdam {
    fn constants(&self, time: usize, lr: LearningRate) -> Constants {
        let ([beta_1, beta_2], t) = (BETAS, time as i32);
        let correction_2 = (1.0 - beta_2.powi(t)).sqrt();
        Constants {
            beta_1,
            beta_2,
            one_minus: [1.0 - beta_1, 1.0 - beta_2],
            combined: correction_2 / (1.0 - beta_1.powi(t)),
            epsilon: self.epsilon * correction_2,
            lr: lr as f32,
            penalty: self.penalty,
        }
    }
}

impl Constants {
    /// One chunk of the update; every line is one of Burn's tensor operations, rounded
    /// as it rounds them (Rust does not fuse a multiply and an add on its own).
    fn update(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], first: bool) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
            let g = match self.penalty {
                Some(w) => *p * w + g,
                None => g,
            };
            if first {
                *m = g * self.one_minus[0];
                *v = g * g * self.one_minus[1];
            } else {
                *m = *m * self.beta_1 + g * self.one_minus[0];
                *v = *v * self.beta_2 + g * g * self.one_minus[1];
            }
            let step = *m * self.combined / (v.sqrt() + self.epsilon);
            *p -= step * self.lr;
        }
    }
}

fn zeros(len: usize, shape: &burn::tensor::Shape) -> TensorData {
    TensorData::new(vec![0.0f32; len], shape.clone())
}

fn slice_mut(data: &mut TensorData) -> &mut [f32] {
    data.as_mut_slice::<f32>().expect("f32 tensor data")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor<const D: usize>(seed: usize, shape: [usize; D], device: &Device) -> Tensor<D> {
        let n: usize = shape.iter().product();
        // A spread of magnitudes and signs, zeros included.
        let values: Vec<f32> = (0..n)
            .map(|i| {
                let k = (i * 7919 + seed * 104_729) % 2003;
                (k as f32 - 1001.0) * 1e-3 * if k.is_multiple_of(5) { 0.0 } else { 1.0 }
            })
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn bits<const D: usize>(t: &Tensor<D>) -> Vec<u32> {
        t.to_data()
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Five steps of the fused update against Burn's Adam with the same settings, on a
    /// tensor of several chunks and a small one: the same parameters and moments, bit
    /// for bit, with and without weight decay.
    fn matches_burn<const D: usize>(shape: [usize; D]) {
        let device = Device::flex();
        assert!(
            super::super::supports(&tensor(0, shape, &device)),
            "the fused path runs"
        );
        for decay in [None, Some(1e-3f32)] {
            let fused = FusedAdam::new(1e-8, decay);
            let burn = AdamConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(decay.map(WeightDecayConfig::new))
                .build();
            let (mut a, mut b) = (tensor(0, shape, &device), tensor(0, shape, &device));
            let (mut sa, mut sb) = (None, None);
            for step in 1..=5 {
                let lr = 1e-3 / step as f64;
                let g = tensor(step, shape, &device);
                (a, sa) = fused.step(lr, a, g.clone(), sa);
                (b, sb) = burn.step(lr, b, g, sb);
                assert_eq!(
                    bits(&a),
                    bits(&b),
                    "parameters after step {step}, {decay:?}"
                );
                let (ma, mb) = (
                    &sa.as_ref().unwrap().momentum,
                    &sb.as_ref().unwrap().momentum,
                );
                assert_eq!(ma.time, mb.time);
                assert_eq!(bits(&ma.moment_1), bits(&mb.moment_1));
                assert_eq!(bits(&ma.moment_2), bits(&mb.moment_2));
            }
        }
    }

    #[test]
    fn the_fused_update_gives_burns_bits() {
        matches_burn([3 * CHUNK + 17]);
        matches_burn([37, 29]);
    }
}
