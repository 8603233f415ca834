//! The engine's own CPU max pooling against Burn's (output and input gradient), on random
//! shapes and windows, overlapping or not.

use burn::tensor::module::max_pool2d as burn_max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::eval::to_vec;
use insilico_engine::kernels::{self, PoolSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Output and input gradient of `sum(max_pool2d(x) * r)`, through ours or Burn's.
fn run(x: &[f32], shape: [usize; 4], spec: PoolSpec, own: bool, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), &device).require_grad();
    let y = if own {
        assert!(kernels::supports(&x));
        kernels::max_pool2d(x.clone(), spec)
    } else {
        let (k, s) = (spec.kernel, spec.stride);
        burn_max_pool2d(x.clone(), MaxPoolOptions::new([k, k]).with_stride([s, s]))
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dims = y.dims();
    let r: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let r = Tensor::<4>::from_data(TensorData::new(r, dims), &device);
    let grads = (y.clone() * r).sum().backward();
    (
        to_vec(y.inner()),
        to_vec(x.grad(&grads).expect("input gradient")),
    )
}

#[test]
fn random_shapes_match_burns_max_pooling_and_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..40u64 {
        let k = rng.random_range(1..=4);
        let s = rng.random_range(1..=3);
        let shape = [
            rng.random_range(1..=8),
            rng.random_range(1..=8),
            rng.random_range(k..=k + 12),
            rng.random_range(k..=k + 12),
        ];
        // Values on a coarse grid half the time, so windows hold ties.
        let coarse = case % 2 == 0;
        let x: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| {
                let v = rng.random_range(-1.0f32..1.0);
                if coarse {
                    (v * 3.0).round()
                } else {
                    v
                }
            })
            .collect();
        let spec = PoolSpec {
            kernel: k,
            stride: s,
        };
        let (ours_y, ours_dx) = run(&x, shape, spec, true, case);
        let (burn_y, burn_dx) = run(&x, shape, spec, false, case);
        assert_eq!(ours_y, burn_y, "output of {shape:?} {spec:?}");
        if coarse {
            // Burn and we may pick different maxima among equal values; the gradient's
            // total per window is the same either way.
            let sum = |v: &[f32]| v.iter().map(|&a| a as f64).sum::<f64>();
            assert!(
                (sum(&ours_dx) - sum(&burn_dx)).abs() < 1e-4,
                "{shape:?} {spec:?}"
            );
        } else {
            assert_eq!(ours_dx, burn_dx, "input gradient of {shape:?} {spec:?}");
        }
    }
}

/// cnn-small's pooling (2x2, stride 2) on an odd size: the last row and column are
/// dropped, and each gradient lands on its window's maximum (placed by hand here).
#[test]
fn a_two_by_two_window_on_an_odd_image() {
    let (n, c, h, w) = (1, 2, 5, 5);
    let mut x = vec![0.0f32; n * c * h * w];
    // Channel 0: window (1, 1) has its maximum at (3, 2); channel 1: window (0, 1) at (0, 3).
    x[3 * w + 2] = 5.0;
    x[h * w + 3] = 7.0;
    let spec = PoolSpec {
        kernel: 2,
        stride: 2,
    };
    let (y, dx) = run(&x, [n, c, h, w], spec, true, 1);
    assert_eq!(y, [0., 0., 0., 5., 0., 7., 0., 0.]);
    let (_, reference_dx) = run(&x, [n, c, h, w], spec, false, 1);
    assert_eq!(dx, reference_dx);
    assert_eq!(dx[4 * w + 4], 0.0, "the dropped last row gets no gradient");
}
