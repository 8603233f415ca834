//! Benchmarks (`insilico bench`), each mirroring one PyTorch reference script of
//! `../shared/bench` (same model, batch sizes, step counts and timing rule: median of
//! the timed repetitions after one warm-up), and the helpers that run the reference and
//! print ratios side by side.

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use insilico_assays::receptive::{
    synthesize, ImageSpace, Objective, Param, Range, Settings, Transforms,
};
use insilico_engine::eval::cross_entropy;
use insilico_engine::examples::label_tensor;
use insilico_engine::{load_config, Compute, Network};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Median seconds of `repeats` calls after one warm-up, as in the reference `common.py`.
pub fn timed(mut f: impl FnMut(), repeats: usize) -> f64 {
    f();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Multiply-adds of one cnn-small forward pass (the reference's MACS).
const CNN_SMALL_MACS: f64 =
    (28 * 28 * 16 * 25 + 14 * 14 * 32 * 16 * 25 + 1568 * 128 + 128 * 10) as f64;

pub fn bench_train(compute: &Compute, repeats: usize) -> Result<Value> {
    let config = load_config("cnn-small", &["training.lr=0.01".into()])?;
    let ad = compute.device.clone().autodiff();
    ad.seed(0);
    let mut net = Network::new(&config.model, [1, 28, 28], &ad)?;
    let mut optim = burn::optim::SgdConfig::new()
        .with_momentum(Some(
            burn::optim::momentum::MomentumConfig::new()
                .with_momentum(0.9)
                .with_dampening(0.0),
        ))
        .init();
    let x = Tensor::<4>::random([128, 1, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
    let labels: Vec<u8> = (0..128).map(|i| (i * 7 % 10) as u8).collect();
    let y = label_tensor(&labels, &ad);
    const STEPS: usize = 20;
    let t_train = timed(
        || {
            for _ in 0..STEPS {
                let loss = cross_entropy(net.forward(x.clone()), y.clone()).mean();
                let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(0.01, net.clone(), grads);
            }
            // Wait for the device to finish: one value read back.
            let _ = net.forward(x.clone().narrow(0, 0, 1)).into_data();
        },
        repeats,
    );
    let eval_net = net.valid();
    let x_eval = Tensor::<4>::random(
        [1000, 1, 28, 28],
        Distribution::Normal(0.0, 1.0),
        &compute.device,
    );
    const BATCHES: usize = 5;
    let t_infer = timed(
        || {
            for _ in 0..BATCHES {
                let _ = eval_net.forward(x_eval.clone()).into_data();
            }
        },
        repeats,
    );
    let infer_ips = (BATCHES * 1000) as f64 / t_infer;
    Ok(json!({
        "bench": "cnn-small",
        "engine": "insilico",
        "backend": compute.description,
        "train_images_per_s": round1((STEPS * 128) as f64 / t_train),
        "infer_images_per_s": round1(infer_ips),
        "infer_gflops": round1(infer_ips * 2.0 * CNN_SMALL_MACS / 1e9),
    }))
}

/// The two mask paths are the same function summed in another order, so float32 rounding
/// moves logits by about 1e-6 of their size: the summed cross-entropy must agree to 1e-4
/// relative, and a prediction can flip only where the top two logits are tied to that
/// precision, which on a random network happens for a few images in ten thousand; allow
/// 0.1% of the images (at least one) per mask.
fn agree(
    linearized: &[insilico_assays::masks::Counts],
    cached: &[insilico_assays::masks::Counts],
    images: usize,
) -> Result<()> {
    anyhow::ensure!(
        linearized.len() == cached.len(),
        "the sweeps evaluated different numbers of masks"
    );
    let flips = (images / 1000).max(1);
    for (i, (a, b)) in linearized.iter().zip(cached).enumerate() {
        let loss_gap = (a.loss - b.loss).abs() / b.loss.abs().max(1e-12);
        anyhow::ensure!(
            a.correct.abs_diff(b.correct) <= flips && loss_gap <= 1e-4,
            "the linearized and cached sweeps disagree at mask {i}: {} against {} correct, summed loss {} against {}",
            a.correct,
            b.correct,
            a.loss,
            b.loss
        );
    }
    Ok(())
}

/// Mirrors `torch_ablation.py`: cumulative ablation at the post-ReLU outputs of conv1,
/// conv2 and fc1 of a randomly initialised cnn-small, 11 fractions, 5 random orders,
/// 10,000 random images against random labels. Timed: recording each site once and
/// evaluating all 165 masks (the linearized path), and, for comparison, the plain cached
/// path on the same masks.
pub fn bench_ablation(compute: &Compute) -> Result<Value> {
    use insilico_assays::ablation::{cumulative_masks, fractions, unit_orders};
    use insilico_assays::masks::{Counts, MaskEvaluator};
    use insilico_engine::eval::record_sites;
    use insilico_engine::Examples;
    let device = &compute.device;
    let config = load_config("cnn-small", &[])?;
    device.seed(0);
    let net = Network::new(&config.model, [1, 28, 28], device)?;
    let n: usize = std::env::var("BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let images = Tensor::<4>::random([n, 1, 28, 28], Distribution::Normal(0.0, 1.0), device);
    let examples = Examples {
        shape: [1, 28, 28],
        images: insilico_engine::eval::to_vec(images),
        labels: (0..n).map(|i| ((i * 7919) % 10) as u8).collect(),
    };
    let sites = ["conv1.relu", "conv2.relu", "fc1.relu"];
    let fracs = fractions(10);
    let sweep = |linearized: bool| -> Result<Vec<Counts>> {
        // One forward pass records every site (as the assay's caches would be).
        let caches = record_sites(&net, &examples, &sites, 1000, device)?;
        let mut correct = Vec::new();
        for (i, (site, cache)) in sites.iter().zip(caches).enumerate() {
            let units = cache.units();
            let mut eval = MaskEvaluator::new(
                &net,
                site,
                cache,
                examples.labels.clone(),
                &vec![0.0; units],
                device,
            )?;
            if !linearized {
                eval = eval.without_linearization();
            }
            let masks: Vec<Vec<f32>> = unit_orders(units, 5, i as u64, None)
                .iter()
                .flat_map(|o| cumulative_masks(o, &fracs))
                .collect();
            correct.extend(eval.evaluate(&masks)?);
        }
        Ok(correct)
    };
    let fast = sweep(true)?;
    agree(&fast, &sweep(false)?, n)?;
    let t_fast = timed(
        || {
            sweep(true).expect("sweep");
        },
        3,
    );
    let t_cached = timed(
        || {
            sweep(false).expect("sweep");
        },
        1,
    );
    Ok(json!({
        "bench": "ablation-sweep",
        "engine": "insilico",
        "backend": compute.description,
        "evaluations": fast.len(),
        "images": n,
        "insilico_s": (t_fast * 1000.0).round() / 1000.0,
        "insilico_cached_only_s": (t_cached * 1000.0).round() / 1000.0,
    }))
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Runs a reference script and parses its one JSON line.
pub fn run_torch(python: &Path, bench_dir: &Path, script: &str) -> Result<Value> {
    let out = Command::new(python)
        .arg(script)
        .current_dir(bench_dir)
        .output()
        .with_context(|| format!("cannot run {} {script}", python.display()))?;
    json_line(&out, script)
}

/// The last JSON line a reference script printed, or its failure with its stderr.
fn json_line(out: &std::process::Output, script: &str) -> Result<Value> {
    if !out.status.success() {
        bail!("{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{script} printed no JSON line"))?;
    Ok(serde_json::from_str(line)?)
}

/// Adds `<key>_ratio` = ours / torch for each numeric key present in both.
pub fn ratios(ours: &Value, torch: &Value, keys: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for k in keys {
        if let (Some(a), Some(b)) = (ours[k].as_f64(), torch[k].as_f64()) {
            out.insert(format!("{k}_ratio"), json!((a / b * 100.0).round() / 100.0));
        }
    }
    Value::Object(out)
}

/// The activation-maximization benchmark, mirroring `../shared/bench/torch_actmax.py`:
/// all 32 conv2 channels of a randomly initialised cnn-small, one 1x28x28 image per
/// channel in one batch, Adam lr 0.05, 256 steps, objective the channel's spatial mean
/// after the relu minus `1e-3 * sum(img^2)` minus `1e-2 * TV` (TV averaged over the whole
/// batch), a random roll of up to 2 pixels per step. Returns the median seconds of 3 runs
/// after a warm-up, and the steps per run (`insilico bench actmax`).
pub fn bench_actmax(device: &Device) -> Result<(f64, usize)> {
    const CHANNELS: usize = 32;
    const STEPS: usize = 256;
    let cfg = load_config("cnn-small", &[])?;
    device.seed(0);
    let net = Network::new(&cfg.model, [1, 28, 28], device)?;
    let objectives: Vec<Objective> = (0..CHANNELS)
        .map(|u| Objective::channel("conv2.relu", u))
        .collect();
    let space = ImageSpace::standard([1, 28, 28]);
    let pixels = (28 * 28) as f32;
    let settings = Settings {
        steps: STEPS,
        lr: 0.05,
        param: Param::Pixel,
        range: Range::Free,
        decorrelate: false,
        init_std: 0.01,
        transforms: Transforms::jitter_only(2),
        // Ours are per-image means; the reference sums the squares over the batch and
        // averages TV over the batch: the same loss.
        l2: 1e-3 * pixels,
        tv: 1e-2 / CHANNELS as f32,
        ..Settings::default()
    };
    let once = || synthesize(&net, &space, &objectives, None, &settings, 0, device).map(|_| ());
    once()?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        once()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((times[1], STEPS))
}

/// The sizes of `insilico bench population` (the issue's: 10,000 x 512 and 2,000).
#[derive(Clone, Copy, Debug)]
pub struct PopulationSizes {
    pub stimuli: usize,
    pub units: usize,
    pub rsa_stimuli: usize,
}

/// Runs our linear algebra on `threads` (0: rayon's pool) and returns how many that is.
pub fn set_population_threads(threads: usize) -> usize {
    insilico_population::set_threads(threads);
    if threads > 0 {
        threads
    } else {
        population_threads()
    }
}

/// Threads in rayon's pool, which faer uses by default.
fn population_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Ours: task -> best seconds, as JSON.
pub fn population_ours(sizes: PopulationSizes, repeats: usize) -> Result<Value> {
    let timings = insilico_population::bench_population(
        sizes.stimuli,
        sizes.units,
        sizes.rsa_stimuli,
        repeats,
    )?;
    let mut out = serde_json::Map::new();
    for t in timings {
        out.insert(t.task, json!(t.seconds));
    }
    Ok(Value::Object(out))
}

/// The numpy/scipy reference script (with google/svcca's `cca_core.py` and `pwcca.py`
/// from the checkout `svcca`) on the same sizes, with its BLAS limited to
/// `threads`, as ours (OpenBLAS otherwise starts one per core it sees, which on a shared
/// machine measures contention, not the library).
pub fn population_reference(
    python: &Path,
    script: &Path,
    svcca: &Path,
    sizes: PopulationSizes,
    repeats: usize,
    threads: usize,
) -> Result<Value> {
    let threads = threads.to_string();
    let out = Command::new(python)
        .arg(script)
        .arg("--json")
        .arg("--svcca")
        .arg(svcca)
        .args(["--stimuli", &sizes.stimuli.to_string()])
        .args(["--units", &sizes.units.to_string()])
        .args(["--rsa-stimuli", &sizes.rsa_stimuli.to_string()])
        .args(["--repeats", &repeats.to_string()])
        .env("OPENBLAS_NUM_THREADS", &threads)
        .env("OMP_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .output()
        .with_context(|| format!("cannot run {} {}", python.display(), script.display()))?;
    json_line(&out, &script.display().to_string())
}

/// Speed-ups, reference seconds / our seconds, for every task both timed.
pub fn speedups(ours: &Value, reference: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(tasks) = ours.as_object() {
        for (task, t) in tasks {
            if let (Some(a), Some(b)) = (t.as_f64(), reference[task].as_f64()) {
                out.insert(task.clone(), json!((b / a * 100.0).round() / 100.0));
            }
        }
    }
    Value::Object(out)
}
