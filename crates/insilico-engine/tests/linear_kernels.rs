//! The engine's own CPU linear layer against Burn's (forward, input, weight and bias
//! gradients), on random shapes, a non-contiguous input among them.

use burn::tensor::module::linear as burn_linear;
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::eval::to_vec;
use insilico_engine::kernels;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The largest difference, relative to the reference's largest magnitude.
fn relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// Output and the gradients of `sum(output * r)` of x, weight and bias, through our kernels
/// or Burn's. With `transposed`, x is the transpose of a stored `[i, n]` tensor (a strided
/// view the kernel must read correctly).
fn run([n, i, o]: [usize; 3], own: bool, transposed: bool, seed: u64) -> [Vec<f32>; 4] {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tensor2 =
        |v: Vec<f32>, s: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, s), &device);
    let stored = if transposed { [i, n] } else { [n, i] };
    let x = tensor2(random(&mut rng, n * i), stored).require_grad();
    let weight = tensor2(random(&mut rng, i * o), [i, o]).require_grad();
    let bias =
        Tensor::<1>::from_data(TensorData::new(random(&mut rng, o), [o]), &device).require_grad();
    let r = tensor2(random(&mut rng, n * o), [n, o]);
    let input = if transposed {
        x.clone().transpose()
    } else {
        x.clone()
    };
    let y = if own {
        assert!(kernels::supports(&input));
        kernels::linear(input, weight.clone(), bias.clone())
    } else {
        burn_linear(input, weight.clone(), Some(bias.clone()))
    };
    let grads = (y.clone() * r).sum().backward();
    [
        to_vec(y.inner()),
        to_vec(x.grad(&grads).expect("input gradient")),
        to_vec(weight.grad(&grads).expect("weight gradient")),
        to_vec(bias.grad(&grads).expect("bias gradient")),
    ]
}

#[test]
fn random_shapes_match_burns_linear_layer_and_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // The extremes (one row, one input, one output) and shapes as large as mlp-2x512's.
    let mut shapes = vec![
        [1, 1, 1],
        [1, 784, 512],
        [300, 1, 7],
        [5, 9, 1],
        [128, 1568, 128],
    ];
    for _ in 0..12 {
        shapes.push([
            rng.random_range(1..=300),
            rng.random_range(1..=800),
            rng.random_range(1..=200),
        ]);
    }
    for (k, shape) in shapes.into_iter().enumerate() {
        let transposed = k % 3 == 2;
        let ours = run(shape, true, transposed, k as u64);
        let reference = run(shape, false, transposed, k as u64);
        for (what, a, b) in [
            "output",
            "input gradient",
            "weight gradient",
            "bias gradient",
        ]
        .iter()
        .zip(&ours)
        .zip(&reference)
        .map(|((w, a), b)| (w, a, b))
        {
            let err = relative_error(a, b);
            assert!(
                err <= 1e-4,
                "{what} of {shape:?} (transposed {transposed}): relative error {err}"
            );
        }
    }
}
