//! Loss, accuracy and batched inference.

use crate::examples::{label_tensor, Examples};
use crate::hooks::{Activation, Hooks};
use crate::network::Network;
use burn::tensor::{activation::log_softmax, Device, Int, Tensor};

/// Per-example cross-entropy of `logits` `[B, K]` against `targets` `[B]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, targets.reshape([b, 1]))
        .reshape([b])
        .neg()
}

/// Plain values of a tensor.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor")
}

/// Index of the largest score in each row of a row-major `[rows, k]` matrix.
pub fn argmax_rows(scores: &[f32], k: usize) -> Vec<usize> {
    scores
        .chunks_exact(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

/// Correct predictions of `logits` `[M * B, K]` against `labels` (`B` of them), per block
/// of `B` rows: one count for each of the `M` interventions of a mask-major batch (one
/// count for a plain batch).
pub fn correct_per_block(logits: Tensor<2>, labels: &[u8]) -> Vec<usize> {
    let [rows, k] = logits.dims();
    let b = labels.len().max(1);
    let mut correct = vec![0; rows / b];
    for (row, p) in argmax_rows(&to_vec(logits), k).into_iter().enumerate() {
        if p == labels[row % b] as usize {
            correct[row / b] += 1;
        }
    }
    correct
}

/// Mean loss and accuracy of a network on examples, in evaluation mode.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    pub loss: f64,
    pub accuracy: f64,
}

/// Scores `net` (already in evaluation mode) on `examples`, `batch` images at a time.
pub fn evaluate(net: &Network, examples: &Examples, batch: usize, device: &Device) -> Score {
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    for start in (0..examples.len()).step_by(batch) {
        let len = batch.min(examples.len() - start);
        let x = examples.range(start, len, device);
        let labels = &examples.labels[start..start + len];
        let logits = net.forward(x);
        let ce = cross_entropy(logits.clone(), label_tensor(labels, device));
        loss += ce.sum().into_scalar::<f32>() as f64;
        correct += correct_per_block(logits, labels)[0];
    }
    let n = examples.len().max(1) as f64;
    Score {
        loss: loss / n,
        accuracy: correct as f64 / n,
    }
}

/// The activations at several sites, recorded in one forward pass over the examples (in
/// batches of `batch`), in the order of `sites`.
pub fn record_sites(
    net: &Network,
    examples: &Examples,
    sites: &[&str],
    batch: usize,
    device: &Device,
) -> anyhow::Result<Vec<Activation>> {
    let last = sites
        .iter()
        .map(|s| net.plan().site_index(s))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .max()
        .ok_or_else(|| anyhow::anyhow!("no sites to record"))?;
    let hooks = Hooks::new()
        .record(sites)
        .stop_after(&net.plan().stages[last].site);
    net.check_hooks(&hooks)?;
    let mut parts: Vec<Vec<Activation>> = vec![Vec::new(); sites.len()];
    for start in (0..examples.len()).step_by(batch) {
        let len = batch.min(examples.len() - start);
        let rec = net.run(examples.range(start, len, device), &hooks);
        for (part, site) in parts.iter_mut().zip(sites) {
            part.push(rec.get(site).clone());
        }
    }
    Ok(parts.into_iter().map(Activation::cat).collect())
}

/// Records `site` for all examples, `batch` at a time, and returns the activations stacked
/// along the batch axis (the network runs only up to the site).
pub fn record_site(
    net: &Network,
    examples: &Examples,
    site: &str,
    batch: usize,
    device: &Device,
) -> anyhow::Result<Activation> {
    let hooks = Hooks::new().record(&[site]).stop_after(site);
    net.check_hooks(&hooks)?;
    let mut parts = Vec::new();
    for start in (0..examples.len()).step_by(batch) {
        let len = batch.min(examples.len() - start);
        let rec = net.run(examples.range(start, len, device), &hooks);
        parts.push(rec.get(site).clone());
    }
    Ok(Activation::cat(parts))
}
