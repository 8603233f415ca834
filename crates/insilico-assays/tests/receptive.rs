//! Receptive-field assay: activation maximization, exemplars and reverse correlation,
//! each checked against what the maths says it must find.

use burn::tensor::{Device, Tensor, TensorData};
use insilico_assays::receptive::regularize::{gaussian_blur, gaussian_kernel};
use insilico_assays::receptive::{
    correlation, exemplars, objective_values, spike_triggered_average, synthesize, top_patches,
    ImageParam, ImageSpace, Objective, Param, Range, Settings, Transforms,
};
use insilico_engine::eval::to_vec;
use insilico_engine::network::Layer;
use insilico_engine::{load_config, Examples, Hooks, Network};

fn device() -> Device {
    Device::flex()
}

fn cnn_small(seed: u64) -> Network {
    let cfg = load_config("cnn-small", &[]).unwrap();
    device().seed(seed);
    Network::new(&cfg.model, [1, 28, 28], &device()).unwrap()
}

fn conv_weights(net: &Network, site: &str) -> (Vec<f32>, [usize; 4]) {
    match net.layer(site).unwrap() {
        Layer::Conv2d(c) => {
            let w = c.weight.val();
            let dims = w.dims();
            (to_vec(w), dims)
        }
        _ => panic!("{site} is not a conv layer"),
    }
}

/// Fraction of the power of a (mean-removed) h x w image at radial frequencies above a
/// quarter cycle per pixel (half the Nyquist frequency), by direct DFT sums.
fn high_frequency_fraction(img: &[f32], h: usize, w: usize) -> f64 {
    let mean = img.iter().map(|v| *v as f64).sum::<f64>() / img.len() as f64;
    let (mut high, mut total) = (0.0, 0.0);
    for ky in 0..h {
        for kx in 0..w {
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for y in 0..h {
                for x in 0..w {
                    let v = img[y * w + x] as f64 - mean;
                    let ph = -2.0
                        * std::f64::consts::PI
                        * (ky as f64 * y as f64 / h as f64 + kx as f64 * x as f64 / w as f64);
                    re += v * ph.cos();
                    im += v * ph.sin();
                }
            }
            let p = re * re + im * im;
            let fy = if ky <= h / 2 {
                ky as f64
            } else {
                ky as f64 - h as f64
            } / h as f64;
            let fx = if kx <= w / 2 {
                kx as f64
            } else {
                kx as f64 - w as f64
            } / w as f64;
            total += p;
            if (fy * fy + fx * fx).sqrt() > 0.25 {
                high += p;
            }
        }
    }
    if total == 0.0 {
        0.0
    } else {
        high / total
    }
}

fn shapes_examples(n: usize) -> (Examples, ImageSpace) {
    let ds = insilico_data::load("shapes", &insilico_data::Locator::from_env(None)).unwrap();
    let ex = Examples::new(&ds.test, &ds).head(Some(n));
    (ex, ImageSpace::of(&ds))
}

/// conv1 before its relu is linear in the input, so maximizing one neuron minus an L2
/// penalty `l2 mean(x^2)` has the closed-form optimum `x = n w / (2 l2)` (n = 784 pixels)
/// inside the neuron's 5x5 window, and 0 elsewhere: with `l2 = n / 2` the synthesized
/// patch is the filter itself.
#[test]
fn a_linear_neuron_is_maximized_by_its_filter() {
    let net = cnn_small(11);
    let (w, [out, _, kh, kw]) = conv_weights(&net, "conv1");
    let objectives: Vec<Objective> = (0..out)
        .map(|u| Objective::neuron_at("conv1", u, 14, 14))
        .collect();
    let settings = Settings {
        steps: 150,
        lr: 0.01,
        param: Param::Pixel,
        range: Range::Free,
        transforms: Transforms::none(),
        l2: 392.0,
        tv: 0.0,
        ..Settings::default()
    };
    let space = ImageSpace::standard([1, 28, 28]);
    let s = synthesize(&net, &space, &objectives, None, &settings, 1, &device()).unwrap();
    for u in 0..out {
        let img = &s.inputs[u * 784..(u + 1) * 784];
        // conv1 has padding 2: output (14, 14) sees input rows and columns 12..17.
        let patch: Vec<f32> = (0..kh * kw)
            .map(|i| img[(12 + i / kw) * 28 + 12 + i % kw])
            .collect();
        let filter = &w[u * kh * kw..(u + 1) * kh * kw];
        let r = correlation(&patch, filter);
        assert!(r >= 0.9, "unit {u}: correlation with its filter {r}");
        // Outside the window the L2 penalty alone acts: the image decays to ~0.
        let inside: f32 = patch.iter().map(|v| v * v).sum();
        let all: f32 = img.iter().map(|v| v * v).sum();
        assert!(
            all - inside < 0.05 * all,
            "unit {u}: energy outside the window"
        );
    }
}

/// Gradient ascent reaches values no dataset image reaches (pre-relu sites, so that no
/// unit is silent): its synthesized image beats its best of 300 shapes for every unit.
#[test]
fn synthesized_images_beat_the_best_dataset_image() {
    let net = cnn_small(5);
    let (examples, space) = shapes_examples(300);
    // Pixels without transforms: the plainest ascent, which converges fastest.
    let settings = Settings {
        steps: 128,
        param: Param::Pixel,
        transforms: Transforms::none(),
        ..Settings::default()
    };
    for site in ["conv2", "logits"] {
        let units = net.plan().shape_at(site).unwrap().units();
        let objectives: Vec<Objective> = (0..units).map(|u| Objective::channel(site, u)).collect();
        let s = synthesize(&net, &space, &objectives, None, &settings, 3, &device()).unwrap();
        let best = exemplars(&net, &examples, &objectives, 1, &device())
            .unwrap()
            .best();
        for (u, (synth, data)) in s.objective.iter().zip(&best).enumerate() {
            assert!(
                synth > data,
                "{site} unit {u}: synthesized {synth} vs best dataset image {data}"
            );
        }
    }
}

/// The 1/f Fourier parameterization with jitter steers the ascent away from the
/// high-frequency patterns that plain pixel ascent produces.
#[test]
fn fourier_with_jitter_has_less_high_frequency_power_than_pixels() {
    let net = cnn_small(5);
    let space = ImageSpace::standard([1, 28, 28]);
    let objectives: Vec<Objective> = (0..8).map(|u| Objective::channel("conv2", u)).collect();
    let base = Settings {
        steps: 64,
        tv: 0.0,
        l2: 0.0,
        ..Settings::default()
    };
    let pixel = Settings {
        param: Param::Pixel,
        transforms: Transforms::none(),
        ..base.clone()
    };
    let fourier = Settings {
        param: Param::Fourier,
        transforms: Transforms::jitter_only(2),
        ..base
    };
    let hf = |s: &Settings| {
        let out = synthesize(&net, &space, &objectives, None, s, 9, &device()).unwrap();
        (0..out.rows)
            .map(|r| high_frequency_fraction(out.image(r), 28, 28))
            .sum::<f64>()
            / out.rows as f64
    };
    let (p, f) = (hf(&pixel), hf(&fourier));
    assert!(
        f < p,
        "high-frequency power: fourier+jitter {f:.3}, pixel {p:.3}"
    );
}

/// A linear-nonlinear unit `relu(w . x)` under Gaussian white noise: its spike-triggered
/// average is proportional to `w` (Bussgang), so the map recovers the filter.
#[test]
fn reverse_correlation_recovers_the_filter_of_a_linear_nonlinear_unit() {
    let dev = device();
    // Three units: 5x5 filters at different places of a 28x28 image.
    let places = [(5usize, 5usize), (12, 18), (20, 9)];
    let mut filters = vec![0.0f32; 784 * places.len()];
    for (u, (py, px)) in places.iter().enumerate() {
        for i in 0..25 {
            let (y, x) = (i / 5, i % 5);
            // A Gabor-like pattern, different per unit.
            let v =
                ((x as f32 + u as f32) * 1.3).cos() * (-(((y as f32) - 2.0).powi(2)) / 4.0).exp();
            filters[u * 784 + (py + y) * 28 + px + x] = v;
        }
    }
    let w = Tensor::<2>::from_data(TensorData::new(filters.clone(), [3, 784]), &dev).transpose();
    let respond = |x: &Tensor<4>| {
        let b = x.dims()[0];
        burn::tensor::activation::relu(x.clone().reshape([b, 784]).matmul(w.clone()))
    };
    let sta = spike_triggered_average(respond, [1, 28, 28], 20_000, 1000, 1.0, 4, &dev);
    assert_eq!(sta.units, 3);
    for u in 0..3 {
        let r = correlation(sta.map(u), &filters[u * 784..(u + 1) * 784]);
        assert!(r >= 0.9, "unit {u}: correlation {r}");
    }
}

/// The same on a network site: the centre neuron of conv1 (linear) through the engine.
#[test]
fn reverse_correlation_of_a_conv1_neuron_is_its_filter() {
    let net = cnn_small(2);
    let (w, [out, _, kh, kw]) = conv_weights(&net, "conv1");
    let hooks = Hooks::new().record(&["conv1"]).stop_after("conv1");
    let objectives: Vec<Objective> = (0..out)
        .map(|u| Objective::neuron_at("conv1", u, 14, 14))
        .collect();
    let respond = |x: &Tensor<4>| {
        let b = x.dims()[0];
        let v = objective_values(&net, &objectives, x.clone(), &device()).unwrap();
        Tensor::<2>::from_data(TensorData::new(v, [b, out]), &device())
    };
    let _ = &hooks;
    let sta = spike_triggered_average(respond, [1, 28, 28], 4000, 1000, 1.0, 1, &device());
    for u in 0..out {
        let map = sta.map(u);
        let mut filter = vec![0.0f32; 784];
        for i in 0..kh * kw {
            filter[(12 + i / kw) * 28 + 12 + i % kw] = w[u * kh * kw + i];
        }
        let r = correlation(map, &filter);
        assert!(r >= 0.9, "conv1 unit {u}: correlation {r}");
    }
}

#[test]
fn the_same_seed_gives_the_same_images_bitwise() {
    let net = cnn_small(5);
    let (_, space) = shapes_examples(1);
    let objectives: Vec<Objective> = (0..4).map(|u| Objective::channel("conv2", u)).collect();
    let settings = Settings {
        steps: 8,
        ..Settings::default()
    };
    let run =
        |seed| synthesize(&net, &space, &objectives, None, &settings, seed, &device()).unwrap();
    let (a, b, c) = (run(1), run(1), run(2));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.pixels), bits(&b.pixels));
    assert_eq!(bits(&a.objective), bits(&b.objective));
    assert_ne!(bits(&a.pixels), bits(&c.pixels));
}

/// The objective algebra is linear: the value of `a + 2 b - c` is that combination of
/// the values of `a`, `b` and `c`.
#[test]
fn objectives_combine_linearly() {
    let net = cnn_small(5);
    let a = Objective::channel("conv2", 3);
    let b = Objective::neuron("conv1", 2);
    let c = Objective::logit(7);
    let d = Objective::direction("fc1", (0..128).map(|i| (i as f32 * 0.1).sin()).collect());
    let combo = a.clone() + 2.0 * b.clone() - c.clone() + d.clone() * 0.5;
    let x = Tensor::<4>::random(
        [5, 1, 28, 28],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device(),
    );
    let parts = objective_values(&net, &[a, b, c, d], x.clone(), &device()).unwrap();
    let whole = objective_values(&net, &[combo], x, &device()).unwrap();
    for i in 0..5 {
        let p = &parts[i * 4..(i + 1) * 4];
        let expected = p[0] + 2.0 * p[1] - p[2] + 0.5 * p[3];
        assert!(
            (whole[i] - expected).abs() < 1e-4 * (1.0 + expected.abs()),
            "{} vs {expected}",
            whole[i]
        );
    }
}

/// Activation maximization sees the network in eval mode even when it is handed one in
/// training mode (a fresh cnn-bn: batch norm and dropout flags on). With a step too small
/// to move the image, the objective traced during the (autodiff) step must equal the
/// objective of the final image evaluated without autodiff, and two runs must agree:
/// training-mode batch norm would normalize by the batch's own statistics and dropout
/// would zero random units of fc1.
#[test]
fn activation_maximization_runs_the_network_in_eval_mode() {
    let cfg = load_config("cnn-bn", &[]).unwrap();
    device().seed(3);
    let net = Network::new(&cfg.model, [1, 28, 28], &device()).unwrap();
    let space = ImageSpace::standard([1, 28, 28]);
    let objectives: Vec<Objective> = (0..10).map(|u| Objective::channel("logits", u)).collect();
    let settings = Settings {
        steps: 1,
        lr: 1e-9,
        init_std: 0.5,
        transforms: Transforms::none(),
        ..Settings::default()
    };
    let run = || synthesize(&net, &space, &objectives, None, &settings, 7, &device()).unwrap();
    let (a, b) = (run(), run());
    assert_eq!(a.trace, b.trace, "two runs differ: dropout is active");
    let mean = a.objective.iter().sum::<f32>() / a.objective.len() as f32;
    let scale = a.objective.iter().map(|v| v.abs()).fold(1e-3f32, f32::max);
    assert!(
        (a.trace[0] - mean).abs() <= 1e-4 * scale,
        "objective during ascent {} vs in eval mode {mean}",
        a.trace[0]
    );
}

/// Each top patch's value is the unit's activation at that example and position, read
/// back through a separate path (a neuron objective on that one image), and no example
/// drives the channel harder at any position than the best patch.
#[test]
fn top_patches_are_the_strongest_positions_of_each_channel() {
    let net = cnn_small(5);
    let (examples, _) = shapes_examples(40);
    let units = [0, 3, 7];
    let patches = top_patches(&net, &examples, "conv2", &units, 4, &device()).unwrap();
    let all: Vec<Objective> = (0..14 * 14)
        .flat_map(|p| {
            units
                .iter()
                .map(move |&u| Objective::neuron_at("conv2", u, p / 14, p % 14))
        })
        .collect();
    let values = objective_values(&net, &all, examples.range(0, 40, &device()), &device()).unwrap();
    for (i, &u) in units.iter().enumerate() {
        let p = &patches[i];
        assert_eq!(p.len(), 4);
        let mut examples_seen: Vec<usize> = p.iter().map(|q| q.example).collect();
        examples_seen.dedup();
        assert_eq!(examples_seen.len(), 4, "unit {u}: one patch per example");
        for q in p {
            let (y, x) = q.position;
            let at = values[q.example * all.len() + (y * 14 + x) * units.len() + i];
            assert!(
                (at - q.value).abs() <= 1e-4 * at.abs().max(1.0),
                "unit {u}: {at} vs {}",
                q.value
            );
        }
        let strongest = (0..40 * 14 * 14)
            .map(|j| values[(j / 196) * all.len() + (j % 196) * units.len() + i])
            .fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(strongest, p[0].value, "unit {u}");
        assert!(p.windows(2).all(|w| w[0].value >= w[1].value));
    }
}

/// The blur between steps acts on the same image whichever the parameterization: blurring
/// Fourier coefficients by their gains gives the pixel blur of the image they make (the
/// circular blur is diagonal in the Fourier basis), here on 10x12 images with a 1.1 px
/// Gaussian.
#[test]
fn the_fourier_blur_is_the_pixel_blur_of_its_image() {
    let dev = device();
    let space = ImageSpace::standard([1, 10, 12]);
    let fourier = ImageParam::new(Param::Fourier, Range::Free, false, &space, 3, &dev);
    let raw = fourier.init(5, 1.0, &dev);
    let op = fourier.blur_op(1.1, &dev).expect("a blur");
    let via_coefficients = to_vec(fourier.visible(fourier.blur(raw.clone(), &op)));
    let kernel = gaussian_kernel(1.1, 10);
    let via_pixels = to_vec(gaussian_blur(fourier.visible(raw.clone()), &kernel));
    let before = to_vec(fourier.visible(raw));
    let moved = before
        .iter()
        .zip(&via_pixels)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "the blur changes the image");
    for (a, b) in via_coefficients.iter().zip(&via_pixels) {
        assert!((a - b).abs() < 1e-4 * moved.max(1.0), "{a} vs {b}");
    }
    // The pixel parameterization blurs its pixels.
    let pixel = ImageParam::new(Param::Pixel, Range::Free, false, &space, 3, &dev);
    let raw = pixel.init(5, 1.0, &dev);
    let op = pixel.blur_op(1.1, &dev).expect("a blur");
    let blurred = to_vec(pixel.visible(pixel.blur(raw.clone(), &op)));
    let want = to_vec(gaussian_blur(pixel.visible(raw), &kernel));
    for (a, b) in blurred.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert!(pixel.blur_op(0.0, &dev).is_none());
}
