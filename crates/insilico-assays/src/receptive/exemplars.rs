//! Dataset exemplars: the k images of a set that drive each objective hardest.

use super::objective::Objective;
use super::synth::objective_values;
use anyhow::Result;
use burn::tensor::Device;
use insilico_engine::{Examples, Network};
use serde::{Deserialize, Serialize};

/// Per objective (unit), the indices of its top-k examples and their values, best first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Exemplars {
    pub k: usize,
    pub index: Vec<Vec<usize>>,
    pub value: Vec<Vec<f32>>,
}

impl Exemplars {
    /// The best value of each unit (NaN where there are no examples).
    pub fn best(&self) -> Vec<f32> {
        self.value
            .iter()
            .map(|v| v.first().copied().unwrap_or(f32::NAN))
            .collect()
    }
}

/// Top `k` of each column of a row-major `[n, units]` matrix (ties: lower index first).
pub fn top_k(values: &[f32], units: usize, k: usize) -> Exemplars {
    let n = values.len().checked_div(units).unwrap_or(0);
    let mut index = Vec::with_capacity(units);
    let mut value = Vec::with_capacity(units);
    for u in 0..units {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            values[b * units + u]
                .total_cmp(&values[a * units + u])
                .then(a.cmp(&b))
        });
        order.truncate(k);
        value.push(order.iter().map(|&i| values[i * units + u]).collect());
        index.push(order);
    }
    Exemplars { k, index, value }
}

/// Each objective's value on every example, `[n, objectives]`, `batch` examples at a time.
pub fn responses(
    net: &Network,
    examples: &Examples,
    objectives: &[Objective],
    batch: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(examples.len() * objectives.len());
    for start in (0..examples.len()).step_by(batch.max(1)) {
        let len = batch.min(examples.len() - start);
        let x = examples.range(start, len, device);
        out.extend(objective_values(net, objectives, x, device)?);
    }
    Ok(out)
}

/// The top-k examples of each objective.
pub fn exemplars(
    net: &Network,
    examples: &Examples,
    objectives: &[Objective],
    k: usize,
    device: &Device,
) -> Result<Exemplars> {
    let values = responses(net, examples, objectives, 500, device)?;
    Ok(top_k(&values, objectives.len(), k))
}

/// One image patch that drives a unit: example `example` at the site's position
/// `position` (`(0, 0)` for a vector site), with the unit's value there.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    pub example: usize,
    pub position: (usize, usize),
    pub value: f32,
}

/// Per listed channel of `site`, its top-`k` patches over every example and every
/// position of the map, best first, at most one per example (its best position there),
/// so that one image cannot fill the row (Zeiler and Fergus's top-9 patches). For a
/// vector site a patch is a whole image at `(0, 0)`. Ties go to the lower example index.
pub fn top_patches(
    net: &Network,
    examples: &Examples,
    site: &str,
    units: &[usize],
    k: usize,
    device: &Device,
) -> Result<Vec<Vec<Patch>>> {
    let mut best: Vec<Vec<Patch>> = vec![Vec::with_capacity(examples.len()); units.len()];
    const BATCH: usize = 500;
    for start in (0..examples.len()).step_by(BATCH) {
        let len = BATCH.min(examples.len() - start);
        let rec = net.run_with_cache(examples.range(start, len, device), &[site])?;
        let act = rec.get(site);
        let dims = act.dims();
        let (channels, h, w) = match dims[..] {
            [_, c, h, w] => (c, h, w),
            [_, c] => (c, 1, 1),
            _ => unreachable!("activations are maps or vectors"),
        };
        let values = act.to_vec();
        for b in 0..len {
            for (i, &u) in units.iter().enumerate() {
                let plane = &values[(b * channels + u) * h * w..(b * channels + u + 1) * h * w];
                let (arg, value) =
                    plane
                        .iter()
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |m, (j, &v)| if v > m.1 { (j, v) } else { m },
                        );
                best[i].push(Patch {
                    example: start + b,
                    position: (arg / w, arg % w),
                    value,
                });
            }
        }
    }
    for patches in &mut best {
        patches.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.example.cmp(&b.example)));
        patches.truncate(k);
    }
    Ok(best)
}
