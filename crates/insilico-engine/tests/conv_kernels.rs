//! The engine's own CPU convolution against Burn's (forward, input gradient, weight and
//! bias gradients), on random shapes, with and without the fused relu.

use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::eval::to_vec;
use insilico_engine::kernels::{self, ConvSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One convolution to check: input `[n, ci, h, w]`, `co` filters of `k x k`.
#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

impl Case {
    fn output(&self) -> [usize; 2] {
        let out = |s: usize| (s + 2 * self.padding - self.k) / self.stride + 1;
        [out(self.h), out(self.w)]
    }
}

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The largest difference, relative to the reference's largest magnitude.
fn relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    let diff = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

struct Values {
    output: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

/// Runs one path under autodiff: output, and the gradients of `sum(output * r)`.
fn run(case: &Case, relu: bool, own: bool, seed: u64) -> Values {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let Case {
        n, ci, co, h, w, k, ..
    } = *case;
    let [oh, ow] = case.output();
    let tensor4 =
        |v: Vec<f32>, s: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v, s), &device);
    let x = tensor4(random(&mut rng, n * ci * h * w), [n, ci, h, w]).require_grad();
    let weight = tensor4(random(&mut rng, co * ci * k * k), [co, ci, k, k]).require_grad();
    let bias =
        Tensor::<1>::from_data(TensorData::new(random(&mut rng, co), [co]), &device).require_grad();
    let r = tensor4(random(&mut rng, n * co * oh * ow), [n, co, oh, ow]);
    let spec = ConvSpec {
        stride: [case.stride; 2],
        padding: [case.padding; 2],
        relu,
    };
    let y = if own {
        assert!(kernels::supports(&x));
        kernels::conv2d(x.clone(), weight.clone(), bias.clone(), spec)
    } else {
        let options = ConvOptions::new(spec.stride, spec.padding, [1, 1], 1);
        let y = burn_conv2d(x.clone(), weight.clone(), Some(bias.clone()), options);
        if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        }
    };
    let grads = (y.clone() * r).sum().backward();
    Values {
        output: to_vec(y.inner()),
        dx: to_vec(x.grad(&grads).expect("input gradient")),
        dw: to_vec(weight.grad(&grads).expect("weight gradient")),
        db: to_vec(bias.grad(&grads).expect("bias gradient")),
    }
}

fn check(case: Case, relu: bool, seed: u64) {
    let ours = run(&case, relu, true, seed);
    let reference = run(&case, relu, false, seed);
    for (what, a, b) in [
        ("output", &ours.output, &reference.output),
        ("input gradient", &ours.dx, &reference.dx),
        ("weight gradient", &ours.dw, &reference.dw),
        ("bias gradient", &ours.db, &reference.db),
    ] {
        let err = relative_error(a, b);
        assert!(
            err <= 1e-4,
            "{what} of {case:?} (relu {relu}): relative error {err}"
        );
    }
}

/// A random case whose multiply-adds stay small enough for Burn's reference weight
/// gradient (a convolution over the whole feature map) to run in a test.
fn random_case(rng: &mut ChaCha8Rng) -> Case {
    loop {
        let k = rng.random_range(1..=5);
        let padding = rng.random_range(0..=2);
        let case = Case {
            n: rng.random_range(1..=64),
            ci: rng.random_range(1..=64),
            co: rng.random_range(1..=64),
            h: rng.random_range(1..=9) * 2 + 1,
            w: rng.random_range(1..=9) * 2 + 1,
            k,
            stride: rng.random_range(1..=2),
            padding,
        };
        if case.h + 2 * padding < k || case.w + 2 * padding < k {
            continue;
        }
        let [oh, ow] = case.output();
        if case.n * case.ci * case.co * oh * ow * k * k <= 20_000_000 {
            return case;
        }
    }
}

#[test]
fn random_shapes_match_burns_convolution_and_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    for i in 0..24 {
        let case = random_case(&mut rng);
        check(case, i % 2 == 1, 100 + i);
    }
}

#[test]
fn extreme_shapes_match_too() {
    let base = Case {
        n: 1,
        ci: 1,
        co: 1,
        h: 1,
        w: 1,
        k: 1,
        stride: 1,
        padding: 0,
    };
    let cases = [
        // A 1x1 convolution reads the image as its own im2col matrix.
        Case {
            n: 3,
            ci: 5,
            co: 7,
            h: 9,
            w: 11,
            ..base
        },
        // The batch and channel extremes of the range, with the extremes of the kernel.
        Case {
            n: 64,
            ci: 1,
            co: 4,
            h: 13,
            w: 11,
            k: 5,
            padding: 2,
            ..base
        },
        Case {
            n: 2,
            ci: 64,
            co: 64,
            h: 7,
            w: 9,
            k: 3,
            stride: 2,
            padding: 1,
        },
        // A padded window larger than the image: most taps fall in the padding.
        Case {
            n: 2,
            ci: 3,
            co: 2,
            h: 1,
            w: 3,
            k: 5,
            stride: 2,
            padding: 2,
        },
        // cnn-small's conv1 and conv2.
        Case {
            n: 4,
            ci: 1,
            co: 16,
            h: 28,
            w: 28,
            k: 5,
            padding: 2,
            ..base
        },
        Case {
            n: 4,
            ci: 16,
            co: 32,
            h: 14,
            w: 14,
            k: 5,
            padding: 2,
            ..base
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        check(case, false, i as u64);
        check(case, true, 50 + i as u64);
    }
}

/// A case small enough to follow by hand: one 3x3 image 1..9, one 2x2 filter of ones,
/// bias 0.5, stride 1, no padding. Each output is its 2x2 window's sum plus 0.5:
/// 1+2+4+5 = 12, 2+3+5+6 = 16, 4+5+7+8 = 24, 5+6+8+9 = 28. With the output gradient all
/// ones, an input's gradient counts the windows covering it (corners 1, edges 2, centre 4);
/// a tap's gradient sums the inputs it sees over the four windows (tap (0,0) sees 1, 2, 4, 5
/// = 12; (0,1) 2, 3, 5, 6 = 16; (1,0) 4, 5, 7, 8 = 24; (1,1) 5, 6, 8, 9 = 28); the bias's
/// gradient counts the 4 outputs.
#[test]
fn a_small_convolution_matches_the_hand_computation() {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(
        TensorData::new((1..=9).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 3, 3]),
        &device,
    )
    .require_grad();
    let weight = Tensor::<4>::ones([1, 1, 2, 2], &device).require_grad();
    let bias = Tensor::<1>::from_data(TensorData::new(vec![0.5f32], [1]), &device).require_grad();
    let spec = ConvSpec {
        stride: [1, 1],
        padding: [0, 0],
        relu: false,
    };
    let y = kernels::conv2d(x.clone(), weight.clone(), bias.clone(), spec);
    assert_eq!(to_vec(y.clone().inner()), [12.5, 16.5, 24.5, 28.5]);
    let grads = y.sum().backward();
    assert_eq!(
        to_vec(x.grad(&grads).unwrap()),
        [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]
    );
    assert_eq!(
        to_vec(weight.grad(&grads).unwrap()),
        [12.0, 16.0, 24.0, 28.0]
    );
    assert_eq!(to_vec(bias.grad(&grads).unwrap()), [4.0]);
}
