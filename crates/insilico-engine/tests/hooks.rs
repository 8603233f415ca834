//! The hook mechanism checked against the plain forward pass.

use burn::tensor::{Distribution, Tensor, TensorData};
use insilico_engine::eval::to_vec;
use insilico_engine::{load_config, Ablation, Activation, Hooks, Network};

fn device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

fn net(name: &str, input: [usize; 3]) -> Network {
    let config = load_config(name, &[]).unwrap();
    device().seed(7);
    Network::new(&config.model, input, &device()).unwrap()
}

fn images(b: usize, shape: [usize; 3]) -> Tensor<4> {
    Tensor::random(
        [b, shape[0], shape[1], shape[2]],
        Distribution::Normal(0.0, 1.0),
        &device(),
    )
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn mask(rows: usize, units: usize, f: impl Fn(usize, usize) -> f32) -> Tensor<2> {
    let v: Vec<f32> = (0..rows * units).map(|i| f(i / units, i % units)).collect();
    Tensor::from_data(TensorData::new(v, [rows, units]), &device())
}

#[test]
fn recording_every_site_leaves_the_output_unchanged() {
    for (name, shape) in [("cnn-small", [1, 28, 28]), ("cnn-bn", [3, 32, 32])] {
        let net = net(name, shape);
        let x = images(4, shape);
        let plain = to_vec(net.forward(x.clone()));
        let rec = net.run(x, &Hooks::new().record_all());
        assert_eq!(plain, to_vec(rec.logits()), "{name}");
        assert_eq!(rec.cache.len(), net.plan().stages.len());
        for stage in &net.plan().stages {
            let got = rec.get(&stage.site).dims();
            assert_eq!(&got[1..], &stage.output.dims()[..], "{}", stage.site);
        }
    }
}

#[test]
fn resuming_from_any_site_equals_the_full_forward() {
    let net = net("cnn-small", [1, 28, 28]);
    let x = images(5, [1, 28, 28]);
    let rec = net.run(x, &Hooks::new().record_all());
    let full = to_vec(rec.logits());
    for site in net.plan().site_names() {
        let resumed = net
            .resume(&site, rec.get(&site).clone(), &Hooks::new())
            .unwrap();
        let d = max_abs_diff(&full, &to_vec(resumed.logits()));
        assert!(d < 1e-5, "resume from {site}: max diff {d}");
    }
}

#[test]
fn zero_ablating_a_whole_layer_makes_the_output_independent_of_the_input() {
    let net = net("cnn-small", [1, 28, 28]);
    for site in ["conv1.relu", "pool2", "fc1.relu"] {
        let units = net.plan().shape_at(site).unwrap().units();
        let ablation = Ablation::new(mask(1, units, |_, _| 1.0), mask(1, units, |_, _| 0.0));
        let hooks = Hooks::new().ablate(site, ablation);
        let a = to_vec(net.run(images(3, [1, 28, 28]), &hooks).logits());
        let b = to_vec(net.run(images(3, [1, 28, 28]) * 5.0, &hooks).logits());
        assert!(max_abs_diff(&a, &b) < 1e-5, "{site}");
        // ...and every row is the same constant prediction.
        assert!(max_abs_diff(&a[..10], &a[10..20]) < 1e-5, "{site}");
        // Without the ablation the two inputs give different outputs.
        let c = to_vec(net.forward(images(3, [1, 28, 28])));
        assert!(max_abs_diff(&a, &c) > 1e-3, "{site}");
    }
}

#[test]
fn a_batch_of_masks_equals_the_masks_one_by_one() {
    let net = net("cnn-small", [1, 28, 28]);
    let x = images(3, [1, 28, 28]);
    for site in ["conv1.relu", "conv2.relu", "fc1.relu"] {
        let units = net.plan().shape_at(site).unwrap().units();
        let rec = net.run(x.clone(), &Hooks::new().record(&[site]));
        let cached = rec.get(site).clone();
        let means = cached.unit_means().mean_dim(0);
        // Four different masks: none, every other unit, the first third, all.
        let pattern = |m: usize, u: usize| match m {
            0 => 0.0,
            1 => (u % 2) as f32,
            2 => (u < units / 3) as u8 as f32,
            _ => 1.0,
        };
        let batched = Ablation::new(mask(4, units, pattern), means.clone());
        let all = to_vec(
            net.resume(site, cached.clone(), &Hooks::new().ablate(site, batched))
                .unwrap()
                .logits(),
        );
        assert_eq!(all.len(), 4 * 3 * 10);
        for m in 0..4 {
            let single = Ablation::new(mask(1, units, |_, u| pattern(m, u)), means.clone());
            // The slow path: a full forward pass with one mask.
            let one = to_vec(
                net.run(x.clone(), &Hooks::new().ablate(site, single))
                    .logits(),
            );
            let d = max_abs_diff(&all[m * 30..(m + 1) * 30], &one);
            assert!(d < 1e-4, "{site} mask {m}: diff {d}");
        }
    }
}

#[test]
fn patching_a_site_with_another_inputs_activation_transplants_its_output() {
    let net = net("cnn-small", [1, 28, 28]);
    let (a, b) = (images(2, [1, 28, 28]), images(2, [1, 28, 28]));
    let rec_b = net.run(b.clone(), &Hooks::new().record(&["pool2"]));
    let patched = net.run(a, &Hooks::new().patch("pool2", rec_b.get("pool2").clone()));
    let d = max_abs_diff(&to_vec(patched.logits()), &to_vec(net.forward(b)));
    assert!(d < 1e-5);
}

#[test]
fn stop_after_returns_no_output_and_the_site() {
    let net = net("cnn-small", [1, 28, 28]);
    let rec = net.run(
        images(2, [1, 28, 28]),
        &Hooks::new().record(&["conv1"]).stop_after("conv1"),
    );
    assert!(rec.output.is_none());
    assert_eq!(rec.get("conv1").dims(), vec![2, 16, 28, 28]);
}

#[test]
fn unknown_sites_are_reported_with_the_real_ones() {
    let net = net("cnn-small", [1, 28, 28]);
    let err = net
        .run_with_cache(images(1, [1, 28, 28]), &["conv7"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv7") && err.contains("fc1.relu"), "{err}");
}

#[test]
fn gradients_flow_to_the_input_through_hooks() {
    let config = load_config("cnn-small", &[]).unwrap();
    let ad = device().autodiff();
    let net = Network::new(&config.model, [1, 28, 28], &ad).unwrap();
    let x = images(1, [1, 28, 28]).autodiff().require_grad();
    // Objective: mean of conv2 channel 3 with half of conv1's channels silenced.
    let ablation = Ablation::new(
        mask(1, 16, |_, u| (u < 8) as u8 as f32).to_device(&ad),
        mask(1, 16, |_, _| 0.0).to_device(&ad),
    );
    let hooks = Hooks::new()
        .ablate("conv1.relu", ablation)
        .record(&["conv2"])
        .stop_after("conv2");
    let rec = net.run(x.clone(), &hooks);
    let objective = rec.get("conv2").unit_means().narrow(1, 3, 1).sum();
    let grads = objective.backward();
    let g = to_vec(x.grad(&grads).expect("input gradient"));
    assert!(g.iter().any(|v| v.abs() > 0.0));

    // Finite-difference check of one pixel against the analytic gradient.
    let base = to_vec(x.clone().inner()).to_vec();
    let pixel = g
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    let eval = |delta: f32| {
        let mut v = base.clone();
        v[pixel] += delta;
        let t = Tensor::<4>::from_data(TensorData::new(v, [1, 1, 28, 28]), &ad);
        let r = net.run(t, &hooks);
        r.get("conv2")
            .unit_means()
            .narrow(1, 3, 1)
            .sum()
            .into_scalar::<f32>()
    };
    let h = 1e-2;
    let numeric = (eval(h) - eval(-h)) / (2.0 * h);
    let rel = (numeric - g[pixel]).abs() / g[pixel].abs();
    assert!(rel < 0.05, "analytic {} numeric {numeric}", g[pixel]);
}

#[test]
fn activation_round_trips_through_vectors() {
    let a = Activation::from_vec(
        (0..24).map(|i| i as f32).collect(),
        &[2, 3, 2, 2],
        &device(),
    );
    assert_eq!(a.units(), 3);
    let means = to_vec(a.unit_means());
    // Channel 0 of example 0 holds 0,1,2,3: mean 1.5.
    assert_eq!(means[0], 1.5);
    assert_eq!(
        Activation::cat(vec![a.narrow(0, 1), a.narrow(1, 1)]).to_vec(),
        a.to_vec()
    );
}
