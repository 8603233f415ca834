//! Evaluating many unit masks at one site, fast.
//!
//! The activation at the site is recorded once; each mask is then applied to the cached
//! activations and only the downstream layers run, many masks per forward pass.
//!
//! Where the algebra allows it, most of the downstream work disappears too. For a binary
//! mask `m` and a per-unit replacement `r`, every per-unit operation that follows the site
//! (relu, max/avg pooling, batch norm in evaluation, dropout in evaluation, flatten)
//! commutes with the mask: `f(x * (1 - m) + r * m) = f(x) * (1 - m) + f(r) * m`. The next
//! conv or linear layer `L` is linear in its input units, so
//! `L(x') = base + sum_u m_u D_u` with `base = sum_u L(x_u) + bias` (nothing silenced)
//! and `D_u = L(r_u) - L(x_u)` (what silencing unit `u` changes). The per-unit
//! contributions `L(x_u)` are computed once per image (one GEMM per unit over its own
//! channel's patches, or a batched matmul over the flattened map); every mask is then a
//! sum of rows instead of a convolution per mask. Cumulative masks are reached from one
//! another a few rows at a time, every mask of a block in one pass over each image's
//! contributions ([`crate::combine`]), and a mask of one unit (single-unit importance) is
//! just `base + D_u`. [`MaskEvaluator`] takes this path for binary masks where a conv or
//! linear layer follows the site and it saves work, and the plain cached path otherwise;
//! both give the same accuracies (tested against each other and against full forward
//! passes).

use crate::combine::{combine, Contributions, PerUnit, Schedule};
use anyhow::{ensure, Result};
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::eval::{argmax_rows, to_vec};
use insilico_engine::linearize::{
    bias_row, linearization, rank_one_weight, resume_at, unit_contributions,
    unit_contributions_vec, Linearization, ResumeAt,
};
use insilico_engine::{Ablation, Activation, Hooks, Network};

/// Correct predictions of one mask, overall and per class.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub correct: usize,
    pub per_class: Vec<usize>,
    /// Summed cross-entropy: a graded measure where accuracy does not move.
    pub loss: f64,
}

/// `-log softmax(logits)[label]`, computed stably.
fn cross_entropy_row(logits: &[f32], label: u8) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln() - logits[label as usize] as f64
}

/// The slice of the downstream network that the linearized path replaces (where the
/// engine says the algebra holds), with the replacement's contributions.
struct Linearized {
    at: Linearization,
    /// The replacement passed through the per-unit layers, as contributions `[U, out]`.
    replacement_contrib: Vec<f32>,
    /// The linear layer's bias per output value, `[out]`.
    bias: Vec<f32>,
    /// Where the forward pass resumes from the combined pre-activations.
    resume: ResumeAt,
    /// For a linear layer on single-valued units: its weight `[units, out]` and the
    /// replacement at its input `[units]` ([`PerUnit::Factored`]).
    rank_one: Option<(Vec<f32>, Vec<f32>)>,
}

impl std::ops::Deref for Linearized {
    type Target = Linearization;
    fn deref(&self) -> &Linearization {
        &self.at
    }
}

/// Accuracy of many unit masks at one site, on cached activations.
pub struct MaskEvaluator<'a> {
    net: &'a Network,
    site: String,
    units: usize,
    cache: Activation,
    labels: Vec<u8>,
    num_classes: usize,
    replacement: Tensor<2>,
    device: Device,
    linear: Option<Linearized>,
    /// Floats per forward chunk (bounds memory).
    budget: usize,
    /// Images per chunk.
    images_per_chunk: usize,
}

impl<'a> MaskEvaluator<'a> {
    /// `cache` is the site's activation for the examples with `labels`; `replacement` one
    /// value per unit (zeros, or each unit's mean).
    pub fn new(
        net: &'a Network,
        site: &str,
        cache: Activation,
        labels: Vec<u8>,
        replacement: &[f32],
        device: &Device,
    ) -> Result<Self> {
        let idx = net.plan().site_index(site)?;
        let units = net.plan().stages[idx].output.units();
        ensure!(
            replacement.len() == units,
            "replacement needs {units} values"
        );
        ensure!(
            cache.batch() == labels.len(),
            "one label per cached example"
        );
        let replacement =
            Tensor::from_data(TensorData::new(replacement.to_vec(), [1, units]), device);
        let mut me = Self {
            net,
            site: site.to_string(),
            units,
            cache,
            labels,
            num_classes: net.plan().num_classes(),
            replacement,
            device: device.clone(),
            linear: None,
            budget: 1 << 25,
            images_per_chunk: 1000,
        };
        me.linear = me.plan_linearized(idx)?;
        Ok(me)
    }

    /// Forces the plain cached path (for comparisons and benchmarks).
    pub fn without_linearization(mut self) -> Self {
        self.linear = None;
        self
    }

    /// Whether binary masks can take the linearized path (a layer linear in the units
    /// follows the site); each group of masks takes it where it saves work.
    pub fn is_linearized(&self) -> bool {
        self.linear.is_some()
    }

    pub fn units(&self) -> usize {
        self.units
    }

    pub fn examples(&self) -> usize {
        self.labels.len()
    }

    fn plan_linearized(&self, idx: usize) -> Result<Option<Linearized>> {
        let Some(at) = linearization(self.net.plan(), &self.site)? else {
            return Ok(None);
        };
        // The replacement as a constant activation, passed through the per-unit layers.
        let site_dims = self.net.plan().stages[idx].output.dims();
        let r = to_vec(self.replacement.clone());
        let per_unit: usize = site_dims[1..].iter().product();
        let mut values = Vec::with_capacity(self.units * per_unit);
        for v in &r {
            values.extend(std::iter::repeat_n(*v, per_unit));
        }
        let mut dims = vec![1];
        dims.extend(&site_dims);
        let r_act = Activation::from_vec(values, &dims, &self.device);
        let r_pre = self.to_pre_site(&at, r_act)?;
        let rank_one = rank_one_weight(self.net, &at, self.units)?
            .map(|weight| (weight, to_vec(r_pre.clone().flatten())));
        let replacement_contrib = to_vec(unit_contributions(self.net, &at, r_pre, self.units)?);
        let bias = to_vec(bias_row(self.net, &at, 1, &self.device));
        let resume = resume_at(self.net.plan(), &at)?;
        Ok(Some(Linearized {
            at,
            replacement_contrib,
            bias,
            resume,
            rank_one,
        }))
    }

    /// Whether the linearized path saves work for binary masks with this schedule. Per
    /// image and output value it costs the schedule's row additions plus `U` for the
    /// unablated sum (the contributions themselves cost one run of the layer); the cached
    /// path runs the layer on every mask, `fan_in` multiply-adds each. Row additions are
    /// memory-bound where the layer is a GEMM, so they are weighted 4 to 1.
    fn linear_pays_off(&self, schedule: &Schedule) -> bool {
        self.linear.as_ref().is_some_and(|lin| {
            let masks = schedule.steps.len();
            4 * (schedule.cost() + self.units) <= masks * lin.fan_in
        })
    }

    fn to_pre_site(&self, lin: &Linearization, act: Activation) -> Result<Activation> {
        if lin.pre_site == self.site {
            return Ok(act);
        }
        let hooks = Hooks::new()
            .record(&[lin.pre_site.as_str()])
            .stop_after(&lin.pre_site);
        let rec = self.net.resume(&self.site, act, &hooks)?;
        Ok(rec.get(&lin.pre_site).clone())
    }

    /// Correct counts for each mask (rows of `masks`, one value per unit).
    pub fn evaluate(&self, masks: &[Vec<f32>]) -> Result<Vec<Counts>> {
        for m in masks {
            ensure!(
                m.len() == self.units,
                "mask has {} values, site {} has {} units",
                m.len(),
                self.site,
                self.units
            );
        }
        // Identical masks (every order starts with none and ends with all units silenced)
        // are evaluated once.
        let mut unique: Vec<Vec<f32>> = Vec::new();
        let mut slot = Vec::with_capacity(masks.len());
        let mut seen: std::collections::HashMap<Vec<u32>, usize> = std::collections::HashMap::new();
        for m in masks {
            let key: Vec<u32> = m.iter().map(|v| v.to_bits()).collect();
            let i = *seen.entry(key).or_insert_with(|| {
                unique.push(m.clone());
                unique.len() - 1
            });
            slot.push(i);
        }
        // Binary masks take the linearized path where it pays for them as a group; the
        // rest the cached path.
        let binary: Vec<usize> = (0..unique.len())
            .filter(|&i| unique[i].iter().all(|&v| v == 0.0 || v == 1.0))
            .collect();
        let linear_group: Vec<Vec<f32>> = binary.iter().map(|&i| unique[i].clone()).collect();
        let schedule = Schedule::new(&linear_group);
        let linear = !binary.is_empty() && self.linear_pays_off(&schedule);
        let mut counts = vec![Counts::default(); unique.len()];
        if linear {
            for (i, c) in binary
                .iter()
                .zip(self.run_linear(&linear_group, &schedule)?)
            {
                counts[*i] = c;
            }
        }
        let cached: Vec<usize> = (0..unique.len())
            .filter(|i| !linear || !binary.contains(i))
            .collect();
        if !cached.is_empty() {
            let group: Vec<Vec<f32>> = cached.iter().map(|&i| unique[i].clone()).collect();
            for (i, c) in cached.into_iter().zip(self.run_cached(&group)?) {
                counts[i] = c;
            }
        }
        Ok(slot.into_iter().map(|i| counts[i].clone()).collect())
    }

    fn zero_counts(&self, masks: usize) -> Vec<Counts> {
        vec![
            Counts {
                correct: 0,
                per_class: vec![0; self.num_classes],
                loss: 0.0,
            };
            masks
        ]
    }

    fn run_cached(&self, masks: &[Vec<f32>]) -> Result<Vec<Counts>> {
        let mut counts = self.zero_counts(masks.len());
        let n = self.examples();
        let per_row: usize = self.cache.dims()[1..].iter().product();
        // Images per chunk: small enough that every mask fits in one pass over the chunk
        // (so the chunk's cached values are read once and stay in cache), within bounds.
        let chunk_len = (self.budget / (masks.len() * per_row).max(1))
            .clamp(32, self.images_per_chunk)
            .min(n.max(1));
        for start in (0..n).step_by(chunk_len) {
            let len = chunk_len.min(n - start);
            let chunk = self.cache.narrow(start, len);
            let labels = &self.labels[start..start + len];
            let per_image: usize = chunk.dims()[1..].iter().product();
            let step = (self.budget / (len * per_image).max(1)).max(1);
            for first in (0..masks.len()).step_by(step) {
                let rows = &masks[first..(first + step).min(masks.len())];
                let ablation = Ablation::new(self.mask_tensor(rows), self.replacement.clone());
                let hooks = Hooks::new().ablate(&self.site, ablation);
                let rec = self.net.resume(&self.site, chunk.clone(), &hooks)?;
                // Rows are mask-major: mask `first + row / len`, image `row % len`.
                self.tally(rec.logits(), labels, &mut counts, |row| {
                    (first + row / len, row % len)
                });
            }
        }
        Ok(counts)
    }

    fn mask_tensor(&self, rows: &[Vec<f32>]) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(
            TensorData::new(flat, [rows.len(), self.units]),
            &self.device,
        )
    }

    /// Counts the predictions of `logits`; `which(row)` is the row's mask and image.
    fn tally(
        &self,
        logits: Tensor<2>,
        labels: &[u8],
        counts: &mut [Counts],
        which: impl Fn(usize) -> (usize, usize),
    ) {
        let k = logits.dims()[1];
        let values = to_vec(logits);
        let pred = argmax_rows(&values, k);
        for (row, p) in pred.iter().enumerate() {
            let (m, i) = which(row);
            counts[m].loss += cross_entropy_row(&values[row * k..(row + 1) * k], labels[i]);
            if *p == labels[i] as usize {
                counts[m].correct += 1;
                counts[m].per_class[labels[i] as usize] += 1;
            }
        }
    }

    /// The linearized path for binary masks (see [`crate::combine`]). Images go in chunks
    /// small enough that their contributions stay in the processor's cache while every
    /// mask of the chunk is combined; the rest of the network then runs once on all of
    /// the chunk's masks and images.
    fn run_linear(&self, masks: &[Vec<f32>], schedule: &Schedule) -> Result<Vec<Counts>> {
        let lin = self.linear.as_ref().expect("linear path planned");
        let mut counts = self.zero_counts(masks.len());
        let n = self.examples();
        let out: usize = lin.out_dims.iter().product();
        // Rank-one contributions take no room of their own.
        let contributions = if lin.rank_one.is_some() {
            0
        } else {
            self.units * out
        };
        let per_image = contributions.max(masks.len() * lin.resume.row_len());
        let chunk_len = (CONTRIBUTION_FLOATS / per_image.max(1))
            .clamp(8, self.images_per_chunk)
            .min(n.max(1));
        // The contributions' buffer, reused from chunk to chunk.
        let mut values = Vec::new();
        for start in (0..n).step_by(chunk_len) {
            let len = chunk_len.min(n - start);
            let pre = self.to_pre_site(lin, self.cache.narrow(start, len))?;
            let inputs;
            let per_unit = match &lin.rank_one {
                Some((weight, replacement)) => {
                    inputs = to_vec(pre.flatten());
                    PerUnit::Factored {
                        inputs: &inputs,
                        weight,
                        replacement,
                    }
                }
                None => {
                    let buffer = std::mem::take(&mut values);
                    let written = unit_contributions_vec(self.net, lin, pre, self.units, buffer)?;
                    values = written.values;
                    PerUnit::Values {
                        values: &values,
                        groups: written.groups,
                    }
                }
            };
            let c = Contributions {
                per_unit,
                replacement: &lin.replacement_contrib,
                bias: &lin.bias,
                units: self.units,
                images: len,
            };
            let rows = combine(&c, schedule, &lin.resume);
            let dims = lin.resume.dims(len * masks.len());
            let act = Activation::from_vec(rows, &dims, &self.device);
            let rec = self.net.resume(lin.resume.site(), act, &Hooks::new())?;
            // Rows are image-major: image `row / masks`, mask `row % masks`.
            let m = masks.len();
            let labels = &self.labels[start..start + len];
            self.tally(rec.logits(), labels, &mut counts, |row| (row % m, row / m));
        }
        Ok(counts)
    }
}

/// Floats of contributions (or combined rows) per chunk of images on the linearized path:
/// 8 MB, so that a chunk's contributions and the rows combined from them stay in the
/// last-level cache together (32 MB here) between the matmul that writes the first, the
/// combination and the next layer's matmul. The bench's sweep ran 1.19-1.22 s a sweep
/// with 16 MB, 0.94-1.19 with 8 MB, 1.08-1.15 with 4 MB (fewer images per chunk for the
/// two threads to share).
const CONTRIBUTION_FLOATS: usize = 1 << 21;
