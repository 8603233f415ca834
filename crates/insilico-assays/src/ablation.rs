//! Ablation assays: cumulative ablation curves (Morcos et al. 2018) and single-unit
//! importance (Zhou et al. 2018).
//!
//! A cumulative ablation curve silences the units of a site one after another in some
//! order and measures accuracy after each step. The normalized area under it (accuracy
//! integrated over the fraction ablated, divided by the unablated accuracy) summarizes
//! robustness: Morcos et al. found it lower for networks that memorize.

use crate::masks::{Counts, MaskEvaluator};
use crate::stats::{mean, std, trapezoid};
use anyhow::{bail, Result};
use burn::tensor::{Tensor, TensorData};
use insilico_engine::eval::{correct_per_block, to_vec};
use insilico_engine::{Ablation, Activation, Hooks, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What a silenced unit's activation is replaced with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    Zero,
    /// The unit's mean activation over the examples (spatial mean for channels).
    Mean,
}

impl std::str::FromStr for Replacement {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "zero" => Self::Zero,
            "mean" => Self::Mean,
            _ => bail!("unknown ablation value `{s}`: use zero or mean"),
        })
    }
}

impl std::fmt::Display for Replacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Replacement::Zero => "zero",
            Replacement::Mean => "mean",
        })
    }
}

/// The order in which units are silenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// A fresh random permutation per repeat.
    Random,
    /// Most class-selective units first.
    SelectivityHigh,
    /// Least class-selective units first.
    SelectivityLow,
    /// Most important units (largest single-unit accuracy drop) first.
    Importance,
}

impl std::str::FromStr for Order {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "random" => Self::Random,
            "selectivity-high" => Self::SelectivityHigh,
            "selectivity-low" => Self::SelectivityLow,
            "importance" => Self::Importance,
            _ => bail!(
                "unknown order `{s}`: use random, selectivity-high, selectivity-low or importance"
            ),
        })
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Order::Random => "random",
            Order::SelectivityHigh => "selectivity-high",
            Order::SelectivityLow => "selectivity-low",
            Order::Importance => "importance",
        })
    }
}

/// Each unit's replacement value: zeros, or its mean over examples (and positions).
pub fn replacement_values(cache: &Activation, how: Replacement) -> Vec<f32> {
    match how {
        Replacement::Zero => vec![0.0; cache.units()],
        Replacement::Mean => to_vec(cache.unit_means().mean_dim(0)),
    }
}

/// The fractions 0, 1/steps, ..., 1.
pub fn fractions(steps: usize) -> Vec<f64> {
    (0..=steps).map(|i| i as f64 / steps as f64).collect()
}

/// Masks silencing the first `round(f * U)` units of `order`, for each fraction.
pub fn cumulative_masks(order: &[usize], fractions: &[f64]) -> Vec<Vec<f32>> {
    let u = order.len();
    fractions
        .iter()
        .map(|f| {
            let k = (f * u as f64).round() as usize;
            let mut m = vec![0.0; u];
            for &unit in &order[..k] {
                m[unit] = 1.0;
            }
            m
        })
        .collect()
}

/// Unit orders: `repeats` random permutations, or one order by decreasing `score`
/// (`descending`) or increasing.
pub fn unit_orders(
    units: usize,
    repeats: usize,
    seed: u64,
    score: Option<(&[f64], bool)>,
) -> Vec<Vec<usize>> {
    match score {
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..repeats)
                .map(|_| {
                    let mut o: Vec<usize> = (0..units).collect();
                    o.shuffle(&mut rng);
                    o
                })
                .collect()
        }
        Some((s, descending)) => {
            let mut o: Vec<usize> = (0..units).collect();
            // NaN scores (undefined selectivity) go last either way.
            o.sort_by(|&a, &b| {
                let (x, y) = (s[a], s[b]);
                match (x.is_nan(), y.is_nan()) {
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if descending => y.total_cmp(&x),
                    _ => x.total_cmp(&y),
                }
            });
            vec![o]
        }
    }
}

/// One cumulative ablation curve family at a site (or across all hidden sites).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AblationCurve {
    pub site: String,
    pub order: Order,
    pub replacement: Replacement,
    pub units: usize,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub fractions: Vec<f64>,
    /// `accuracy[r][i]`: repeat `r` at fraction `i`.
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub accuracy: Vec<Vec<f64>>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub mean: Vec<f64>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub std: Vec<f64>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub min: Vec<f64>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub max: Vec<f64>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub unablated: f64,
    /// Area under each repeat's curve divided by the unablated accuracy.
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub auc: Vec<f64>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub auc_mean: f64,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub auc_std: f64,
}

impl AblationCurve {
    pub fn from_accuracies(
        site: &str,
        order: Order,
        replacement: Replacement,
        units: usize,
        fractions: Vec<f64>,
        accuracy: Vec<Vec<f64>>,
    ) -> Self {
        let unablated = accuracy[0][0];
        let col = |i: usize| -> Vec<f64> { accuracy.iter().map(|r| r[i]).collect() };
        let n = fractions.len();
        let mean_v: Vec<f64> = (0..n).map(|i| mean(&col(i))).collect();
        let std_v: Vec<f64> = (0..n).map(|i| std(&col(i))).collect();
        let min_v: Vec<f64> = (0..n)
            .map(|i| col(i).into_iter().fold(f64::INFINITY, f64::min))
            .collect();
        let max_v: Vec<f64> = (0..n)
            .map(|i| col(i).into_iter().fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let auc: Vec<f64> = accuracy
            .iter()
            .map(|r| normalized_auc(&fractions, r, unablated))
            .collect();
        Self {
            site: site.into(),
            order,
            replacement,
            units,
            auc_mean: mean(&auc),
            auc_std: std(&auc),
            fractions,
            accuracy,
            mean: mean_v,
            std: std_v,
            min: min_v,
            max: max_v,
            unablated,
            auc,
        }
    }
}

/// Area under accuracy-vs-fraction divided by the unablated accuracy (1 = no loss at all).
pub fn normalized_auc(fractions: &[f64], accuracy: &[f64], unablated: f64) -> f64 {
    if unablated <= 0.0 {
        return f64::NAN;
    }
    trapezoid(fractions, accuracy) / unablated
}

/// Runs the cumulative ablation curves for given unit orders at one site.
pub fn cumulative_curve(
    eval: &MaskEvaluator,
    site: &str,
    order_kind: Order,
    replacement: Replacement,
    orders: &[Vec<usize>],
    fracs: &[f64],
) -> Result<AblationCurve> {
    let masks: Vec<Vec<f32>> = orders
        .iter()
        .flat_map(|o| cumulative_masks(o, fracs))
        .collect();
    let counts = eval.evaluate(&masks)?;
    let n = eval.examples() as f64;
    let accuracy: Vec<Vec<f64>> = counts
        .chunks(fracs.len())
        .map(|c| c.iter().map(|x| x.correct as f64 / n).collect())
        .collect();
    Ok(AblationCurve::from_accuracies(
        site,
        order_kind,
        replacement,
        eval.units(),
        fracs.to_vec(),
        accuracy,
    ))
}

/// Single-unit importance: the accuracy drop when one unit alone is silenced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnitImportance {
    pub site: String,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub unablated: f64,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub unablated_per_class: Vec<f64>,
    /// Per unit: overall accuracy drop.
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub drop: Vec<f64>,
    /// Per unit and class: the class accuracy drop.
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub class_drop: Vec<Vec<f64>>,
    /// Per unit: the largest class accuracy drop.
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub max_class_drop: Vec<f64>,
    /// Per unit: the increase of the mean cross-entropy (graded where accuracy does not
    /// move, as for most single units of a wide network).
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub loss_increase: Vec<f64>,
}

pub fn single_unit_importance(
    eval: &MaskEvaluator,
    site: &str,
    labels: &[u8],
    num_classes: usize,
) -> Result<UnitImportance> {
    let u = eval.units();
    let mut masks = vec![vec![0.0; u]];
    for i in 0..u {
        let mut m = vec![0.0; u];
        m[i] = 1.0;
        masks.push(m);
    }
    let counts = eval.evaluate(&masks)?;
    let class_n: Vec<f64> = (0..num_classes)
        .map(|c| labels.iter().filter(|&&l| l as usize == c).count().max(1) as f64)
        .collect();
    let n = labels.len() as f64;
    let acc = |c: &Counts| c.correct as f64 / n;
    let per_class = |c: &Counts| -> Vec<f64> {
        c.per_class
            .iter()
            .zip(&class_n)
            .map(|(k, n)| *k as f64 / n)
            .collect()
    };
    let base = &counts[0];
    let base_pc = per_class(base);
    let mut drop = Vec::with_capacity(u);
    let mut class_drop = Vec::with_capacity(u);
    let mut max_class_drop = Vec::with_capacity(u);
    let loss_increase = counts[1..]
        .iter()
        .map(|c| (c.loss - base.loss) / n)
        .collect();
    for c in &counts[1..] {
        drop.push(acc(base) - acc(c));
        let cd: Vec<f64> = base_pc
            .iter()
            .zip(per_class(c))
            .map(|(b, a)| b - a)
            .collect();
        max_class_drop.push(cd.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        class_drop.push(cd);
    }
    Ok(UnitImportance {
        site: site.into(),
        unablated: acc(base),
        unablated_per_class: base_pc,
        drop,
        class_drop,
        max_class_drop,
        loss_increase,
    })
}

#[allow(clippy::too_many_arguments)]
/// The cumulative curve with the same fraction of units silenced at every hidden site at
/// once (one random order per site and repeat). Runs from the first site's cached
/// activation; later sites' masks are aligned to the tiled batch.
pub fn all_sites_curve(
    net: &Network,
    sites: &[String],
    first_cache: &Activation,
    replacements: &[Vec<f32>],
    labels: &[u8],
    repeats: usize,
    fracs: &[f64],
    how: Replacement,
    seed: u64,
) -> Result<AblationCurve> {
    let device = first_cache.clone().flatten().device();
    let units: Vec<usize> = sites
        .iter()
        .map(|s| net.plan().shape_at(s).map(|sh| sh.units()))
        .collect::<Result<_>>()?;
    let mut accuracy = Vec::with_capacity(repeats);
    for r in 0..repeats {
        let orders: Vec<Vec<usize>> = units
            .iter()
            .enumerate()
            .map(|(i, &u)| {
                unit_orders(u, 1, seed.wrapping_add((r * 1000 + i) as u64), None).remove(0)
            })
            .collect();
        let site_masks: Vec<Vec<Vec<f32>>> =
            orders.iter().map(|o| cumulative_masks(o, fracs)).collect();
        let mut correct = vec![0usize; fracs.len()];
        let chunk = 500;
        for start in (0..labels.len()).step_by(chunk) {
            let len = chunk.min(labels.len() - start);
            let mut hooks = Hooks::new();
            for (i, site) in sites.iter().enumerate() {
                let flat: Vec<f32> = site_masks[i].iter().flatten().copied().collect();
                let mask =
                    Tensor::from_data(TensorData::new(flat, [fracs.len(), units[i]]), &device);
                let rep = Tensor::from_data(
                    TensorData::new(replacements[i].clone(), [1, units[i]]),
                    &device,
                );
                let a = if i == 0 {
                    Ablation::new(mask, rep)
                } else {
                    Ablation::aligned(mask, rep)
                };
                hooks = hooks.ablate(site, a);
            }
            let rec = net.resume(&sites[0], first_cache.narrow(start, len), &hooks)?;
            let block = correct_per_block(rec.logits(), &labels[start..start + len]);
            for (c, n) in correct.iter_mut().zip(block) {
                *c += n;
            }
        }
        accuracy.push(
            correct
                .iter()
                .map(|&c| c as f64 / labels.len() as f64)
                .collect(),
        );
    }
    Ok(AblationCurve::from_accuracies(
        "all-hidden",
        Order::Random,
        how,
        units.iter().sum(),
        fracs.to_vec(),
        accuracy,
    ))
}
