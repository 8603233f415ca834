//! Effective receptive fields against what the filters and the plan say they must be.

mod common;

use burn::tensor::{Distribution, Tensor};
use common::{device, hand_built};
use insilico_assays::erf::{effective_receptive_fields, ErfOptions};
use insilico_engine::eval::to_vec;
use insilico_engine::receptive_field::receptive_field;
use insilico_engine::{load_config, Hooks, Network};

fn noise(n: usize, shape: [usize; 3]) -> Tensor<4> {
    device().seed(11);
    Tensor::random(
        [n, shape[0], shape[1], shape[2]],
        Distribution::Normal(0.0, 1.0),
        &device(),
    )
}

/// Two 3x3 convolutions without padding or nonlinearity on a 9x9 input: conv2 is 5x5 and
/// its centre position (2, 2) sees pixels 2..=6.
const LINEAR: &str = r#"
[model]
name = "linear-stack"
layers = [
  { type = "conv2d", out_channels = 2, kernel = 3 },
  { type = "conv2d", out_channels = 2, kernel = 3 },
  { type = "flatten" },
  { type = "linear", out_features = 2 },
]
"#;

/// Full 2-D convolution of two 3x3 kernels: 5x5.
fn full_conv(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; 25];
    for (i, va) in a.iter().enumerate() {
        for (j, vb) in b.iter().enumerate() {
            let (y, x) = (i / 3 + j / 3, i % 3 + j % 3);
            out[y * 5 + x] += va * vb;
        }
    }
    out
}

#[test]
fn the_erf_of_a_linear_stack_is_the_convolution_of_its_kernels() {
    // conv2's unit u at p is sum_c sum_a w2[u,c](a) sum_b w1[c](b) x(p + a + b)
    // (cross-correlations), so d y_u / d x(p + s) = sum_c (w1[c] * w2[u,c])(s), the full
    // convolution, whatever the image. The ERF averages its magnitude over u.
    let w1: Vec<Vec<f64>> = vec![
        vec![1., 2., 0., 0., 1., 0., 0., 0., -1.],
        vec![0., 1., 0., 1., -2., 1., 0., 1., 0.],
    ];
    let w2: Vec<Vec<Vec<f64>>> = vec![
        vec![
            vec![0., 0., 1., 0., 2., 0., 1., 0., 0.],
            vec![1., 0., 0., 0., 0., 0., 0., 0., 3.],
        ],
        vec![
            vec![-1., 1., 0., 0., 0., 0., 0., 0., 0.],
            vec![0., 0., 0., 2., 0., -2., 0., 0., 0.],
        ],
    ];
    let flat = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let net = hand_built(
        LINEAR,
        [1, 9, 9],
        vec![
            flat(w1.concat()),
            flat(w2.iter().flatten().flatten().copied().collect()),
        ],
    );
    let mut want = vec![0.0f64; 81];
    for w2u in &w2 {
        let mut g = [0.0; 25];
        for c in 0..2 {
            let k = full_conv(&w1[c], &w2u[c]);
            g.iter_mut().zip(k).for_each(|(a, b)| *a += b);
        }
        for (s, v) in g.iter().enumerate() {
            want[(2 + s / 5) * 9 + 2 + s % 5] += v.abs() / 2.0;
        }
    }
    let opts = ErfOptions {
        gradient_images: 3,
        batch: 4,
        ..Default::default()
    };
    let erf = effective_receptive_fields(&net, &["conv2".to_string()], &noise(3, [1, 9, 9]), &opts)
        .unwrap();
    let erf = &erf[0];
    assert_eq!((erf.images, erf.units, erf.theoretical_size), (3, 2, 5));
    assert_eq!(erf.centre, (4.0, 4.0));
    for (got, want) in erf.map.iter().zip(&want) {
        assert!((*got as f64 - want).abs() < 1e-4, "{got} vs {want}");
    }
    assert!(erf.size <= 5.0);
}

fn cnn_small() -> Network {
    let config = load_config("cnn-small", &[]).unwrap();
    device().seed(3);
    Network::new(&config.model, [1, 28, 28], &device()).unwrap()
}

#[test]
fn a_cropped_window_holds_every_pixel_a_unit_depends_on() {
    // Gradients of conv2 units at a corner, an edge and the centre: every pixel with a
    // nonzero gradient lies inside the unit's window (margin 0).
    let net = cnn_small();
    let field = receptive_field(net.plan(), "conv2").unwrap();
    let hooks = Hooks::new().record(&["conv2"]).stop_after("conv2");
    for (u, y, x) in [(0, 0, 0), (5, 0, 13), (9, 7, 7), (31, 13, 6)] {
        let input = noise(1, [1, 28, 28]).autodiff().require_grad();
        let rec = net.run(input.clone(), &hooks);
        let act = rec.get("conv2").clone().expect_map();
        let y_u = act.narrow(1, u, 1).narrow(2, y, 1).narrow(3, x, 1).sum();
        let g = to_vec(input.grad(&y_u.backward()).unwrap());
        let w = field.window((y, x), 0, [28, 28]);
        let inside = |i: usize| {
            let (r, c) = (i / 28, i % 28);
            r >= w.y0 && r < w.y0 + w.height && c >= w.x0 && c < w.x0 + w.width
        };
        assert!(
            g.iter().enumerate().all(|(i, v)| *v == 0.0 || inside(i)),
            "{u} at ({y}, {x})"
        );
        assert!(g.iter().any(|v| *v != 0.0));
    }
}

#[test]
fn cnn_small_erfs_stay_inside_their_theoretical_fields() {
    let net = cnn_small();
    let sites: Vec<String> = ["conv1.relu", "conv2.relu", "fc1.relu"]
        .map(String::from)
        .to_vec();
    let opts = ErfOptions {
        gradient_images: 4,
        ..Default::default()
    };
    let erfs = effective_receptive_fields(&net, &sites, &noise(8, [1, 28, 28]), &opts).unwrap();
    for erf in &erfs {
        let w = erf.field.window(erf.position, 0, [28, 28]);
        for (i, v) in erf.map.iter().enumerate() {
            let (r, c) = (i / 28, i % 28);
            let inside = r >= w.y0 && r < w.y0 + w.height && c >= w.x0 && c < w.x0 + w.width;
            assert!(inside || *v == 0.0, "{} pixel ({r}, {c})", erf.site);
        }
        assert!(erf.size <= erf.theoretical_size as f64, "{erf:?}");
        assert!(erf.radius.is_finite() && erf.images == 4);
    }
    assert_eq!(erfs[1].theoretical_size, 14);
}

#[test]
fn batch_norm_runs_in_evaluation_mode_although_the_input_carries_gradients() {
    // With batch statistics the rows of a pass would depend on each other, and one image
    // per pass would give another map than four images per pass.
    let config = load_config("cnn-bn", &[]).unwrap();
    device().seed(5);
    let net = Network::new(&config.model, [3, 32, 32], &device()).unwrap();
    let images = noise(4, [3, 32, 32]);
    let sites = ["conv2.relu".to_string()];
    let run = |batch: usize| {
        let opts = ErfOptions {
            gradient_images: 4,
            batch,
            ..Default::default()
        };
        effective_receptive_fields(&net, &sites, &images, &opts)
            .unwrap()
            .remove(0)
            .map
    };
    // conv2.relu has 32 units: batch 32 is one image per pass, 128 all four at once.
    let (one, all) = (run(32), run(128));
    let scale = one.iter().fold(0.0f32, |m, v| m.max(*v));
    for (a, b) in one.iter().zip(&all) {
        assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
    }
}

#[test]
fn a_site_no_gradient_reaches_the_input_from_is_silent_with_no_size() {
    // conv1's weights and biases are all 0: its relu outputs 0 everywhere and passes no
    // gradient (a ReLU at 0 passes none, as in PyTorch), so neither conv1.relu nor
    // conv2.relu above it, whose own weights are not 0, has a map.
    const DEAD: &str = r#"
[model]
name = "dead-below"
layers = [
  { type = "conv2d", out_channels = 2, kernel = 3 },
  { type = "relu" },
  { type = "conv2d", out_channels = 1, kernel = 3 },
  { type = "relu" },
  { type = "flatten" },
  { type = "linear", out_features = 2 },
]
"#;
    let net = hand_built(DEAD, [1, 9, 9], vec![vec![0.0; 18], vec![1.0; 18]]);
    let sites = vec!["conv1.relu".to_string(), "conv2.relu".to_string()];
    let erfs =
        effective_receptive_fields(&net, &sites, &noise(3, [1, 9, 9]), &ErfOptions::default())
            .unwrap();
    for erf in &erfs {
        assert!(erf.silent(), "{}", erf.site);
        assert!(erf.size.is_nan() && erf.radius.is_nan(), "{erf:?}");
    }
    // The same stack with conv1 alive has both maps.
    let net = hand_built(DEAD, [1, 9, 9], vec![vec![1.0; 18], vec![1.0; 18]]);
    let erfs = effective_receptive_fields(
        &net,
        &sites,
        &noise(3, [1, 9, 9]).abs(),
        &ErfOptions::default(),
    )
    .unwrap();
    assert!(erfs.iter().all(|e| !e.silent() && e.size.is_finite()));
}
