//! The engine on wgpu against the CPU path (flex with the engine's own convolution): a
//! few training steps, recording every site, a batch of ablation masks, and input
//! gradients, from the same weights and inputs. Built only with `--features wgpu` and run
//! by `./just test-gpu`, on Mesa's software Vulkan (lavapipe) where there is no GPU.
//!
//! Tolerance: both sides compute in f32 with different summation orders, so values agree
//! to a few float32 ulps per accumulated term, not bit for bit. Every comparison is
//! relative to the size of the compared values: `max |a - b| <= TOL * max(1, max |a|)`.
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::backend::Backend;
use insilico_engine::eval::{cross_entropy, to_vec};
use insilico_engine::examples::label_tensor;
use insilico_engine::{Ablation, Compute, Hooks, Network, RunConfig};

/// Forward values, recordings and gradients.
const TOL: f32 = 1e-4;
/// Weights after several optimizer steps, where differences compound.
const TOL_TRAINED: f32 = 1e-3;

/// Small enough for software Vulkan: two convolutions (stride 1 and 2), max pooling, a
/// hidden linear layer.
const NET: &str = r#"
[model]
name = "gpu-check"
layers = [
  { type = "conv2d", out_channels = 6, kernel = 3, padding = 1 },
  { type = "relu" },
  { type = "maxpool", kernel = 2 },
  { type = "conv2d", out_channels = 8, kernel = 3, stride = 2, padding = 1 },
  { type = "relu" },
  { type = "flatten" },
  { type = "linear", out_features = 16 },
  { type = "relu" },
  { type = "linear", out_features = 10 },
]
"#;
const SHAPE: [usize; 3] = [1, 16, 16];

fn wgpu() -> Device {
    Compute::select(Backend::Wgpu)
        .expect("a wgpu adapter: on a machine without a GPU, install mesa-vulkan-drivers")
        .device
}

/// The same network (weights from one seeded initialization) on both devices.
fn networks(dir: &std::path::Path) -> (Network, Network, RunConfig) {
    let config = RunConfig::from_toml(NET, &[]).unwrap();
    let cpu = Device::flex();
    cpu.seed(11);
    let net = Network::new(&config.model, SHAPE, &cpu).unwrap();
    let file = dir.join("init.bpk");
    net.clone().save_file(&file).unwrap();
    let gpu = Network::new(&config.model, SHAPE, &wgpu())
        .unwrap()
        .try_load_file(&file)
        .unwrap();
    (net, gpu, config)
}

/// Deterministic inputs (no device RNG: the two devices' generators differ).
fn images(batch: usize, salt: u32) -> Vec<f32> {
    (0..batch * SHAPE.iter().product::<usize>())
        .map(|i| {
            let h = (i as u32 ^ salt).wrapping_mul(2_654_435_761);
            (h >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn tensor(v: &[f32], batch: usize, device: &Device) -> Tensor<4> {
    let [c, h, w] = SHAPE;
    Tensor::from_data(TensorData::new(v.to_vec(), [batch, c, h, w]), device)
}

fn assert_close(what: &str, cpu: &[f32], gpu: &[f32], tol: f32) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
    let scale = cpu.iter().fold(1f32, |m, v| m.max(v.abs()));
    let diff = cpu
        .iter()
        .zip(gpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("{what}: max |cpu - wgpu| = {diff:.3e} (scale {scale:.3e})");
    assert!(diff <= tol * scale, "{what}: {diff} > {tol} * {scale}");
}

#[test]
fn recording_every_site_matches_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let (cpu, gpu, _) = networks(tmp.path());
    let x = images(8, 1);
    let hooks = Hooks::new().record_all();
    let a = cpu.run(tensor(&x, 8, &Device::flex()), &hooks);
    let b = gpu.run(tensor(&x, 8, &wgpu()), &hooks);
    for site in cpu.plan().site_names() {
        let (x, y) = (a.get(&site).to_vec(), b.get(&site).to_vec());
        assert_close(&site, &x, &y, TOL);
    }
}

#[test]
fn a_batch_of_ablation_masks_matches_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let (cpu, gpu, _) = networks(tmp.path());
    let x = images(4, 2);
    let units = 6;
    // Mask m silences channels 0..m of conv1's relu output (m = 0 keeps all).
    let mask: Vec<f32> = (0..units * units)
        .map(|i| ((i % units) < (i / units)) as u8 as f32)
        .collect();
    let run = |net: &Network, device: &Device| {
        let m = Tensor::<2>::from_data(TensorData::new(mask.clone(), [units, units]), device);
        let r = Tensor::<2>::zeros([1, units], device);
        let hooks = Hooks::new().ablate("conv1.relu", Ablation::new(m, r));
        to_vec(net.run(tensor(&x, 4, device), &hooks).logits())
    };
    let (a, b) = (run(&cpu, &Device::flex()), run(&gpu, &wgpu()));
    assert_eq!(a.len(), units * 4 * 10);
    assert_close("ablated logits", &a, &b, TOL);
}

#[test]
fn input_gradients_match_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let (cpu, gpu, _) = networks(tmp.path());
    let x = images(3, 3);
    let grad = |net: &Network, device: &Device| {
        let input = tensor(&x, 3, device).autodiff().require_grad();
        // The logit of class 3, summed over the batch.
        let y = net.forward(input.clone()).narrow(1, 3, 1).sum();
        let g = input.grad(&y.backward()).expect("the input has a gradient");
        to_vec(g)
    };
    assert_close(
        "input gradient",
        &grad(&cpu, &Device::flex()),
        &grad(&gpu, &wgpu()),
        TOL,
    );
}

#[test]
fn a_few_training_steps_match_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, config) = networks(tmp.path());
    let file = tmp.path().join("init.bpk");
    let steps = |device: Device| {
        let device = device.autodiff();
        let mut net = Network::new(&config.model, SHAPE, &device)
            .unwrap()
            .try_load_file(&file)
            .unwrap();
        let mut optim = SgdConfig::new().init();
        for step in 0..5u32 {
            let x = tensor(&images(16, 100 + step), 16, &device);
            let labels: Vec<u8> = (0..16).map(|i| ((i + step) % 10) as u8).collect();
            let loss = cross_entropy(net.forward(x), label_tensor(&labels, &device)).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(0.1, net, grads);
        }
        net.valid().named_tensors()
    };
    let (a, b) = (steps(Device::flex()), steps(wgpu()));
    assert_eq!(a.len(), 8, "four weighted layers, weight and bias each");
    // The steps moved the weights (else agreeing would prove nothing).
    let (cpu, _, _) = networks(tmp.path());
    let moved = cpu
        .named_tensors()
        .iter()
        .zip(&a)
        .map(|((_, _, w0), (_, _, w))| {
            w0.iter()
                .zip(w)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        })
        .fold(0f32, f32::max);
    assert!(
        moved > 1e-3,
        "training moved no weight by more than {moved}"
    );
    for ((name, _, va), (_, _, vb)) in a.iter().zip(&b) {
        assert_close(name, va, vb, TOL_TRAINED);
    }
}
