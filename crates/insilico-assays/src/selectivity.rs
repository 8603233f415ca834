//! Class selectivity (Morcos et al. 2018) and class information of units.
//!
//! The class selectivity index of a unit is `(mu_max - mu_-max) / (mu_max + mu_-max)`,
//! where `mu_max` is its largest class-conditional mean activation and `mu_-max` the mean
//! of its class-conditional means over the other classes. Channels of feature maps are
//! averaged over space first. It is 0 for a unit that responds equally to every class and
//! 1 for one that responds to one class only.
//!
//! Units that never fire (every class mean is 0) get index 0 and are flagged `silent`.
//! The index is defined for non-negative responses (post-ReLU sites); where a unit's
//! class means are negative (a pre-ReLU site) the denominator can vanish or change sign,
//! and the index is reported as NaN.

use crate::stats::mutual_information;
use serde::{Deserialize, Serialize};

/// Per-unit responses: `values[i * units + u]` is unit `u`'s response to example `i`.
pub struct Responses<'a> {
    pub values: &'a [f32],
    pub units: usize,
    pub labels: &'a [u8],
    pub num_classes: usize,
}

impl Responses<'_> {
    fn unit(&self, u: usize) -> Vec<f32> {
        self.values
            .iter()
            .skip(u)
            .step_by(self.units)
            .copied()
            .collect()
    }

    /// Class-conditional mean response of each unit: `[units][classes]`.
    pub fn class_means(&self) -> Vec<Vec<f64>> {
        let mut sums = vec![vec![0.0f64; self.num_classes]; self.units];
        let mut counts = vec![0usize; self.num_classes];
        for (i, &l) in self.labels.iter().enumerate() {
            counts[l as usize] += 1;
            let row = &self.values[i * self.units..(i + 1) * self.units];
            for (u, &v) in row.iter().enumerate() {
                sums[u][l as usize] += v as f64;
            }
        }
        for s in &mut sums {
            for (c, v) in s.iter_mut().enumerate() {
                *v /= counts[c].max(1) as f64;
            }
        }
        sums
    }
}

/// The class selectivity index from one unit's class-conditional means.
pub fn selectivity_index(class_means: &[f64]) -> SelectivityIndex {
    let (best, &mu_max) = class_means
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .expect("at least one class");
    let others: Vec<f64> = class_means
        .iter()
        .enumerate()
        .filter(|(c, _)| *c != best)
        .map(|(_, &v)| v)
        .collect();
    let mu_rest = others.iter().sum::<f64>() / others.len().max(1) as f64;
    let silent = class_means.iter().all(|&v| v == 0.0);
    let index = if silent {
        0.0
    } else if class_means.iter().any(|&v| v < 0.0) || mu_max + mu_rest <= 0.0 {
        f64::NAN
    } else {
        (mu_max - mu_rest) / (mu_max + mu_rest)
    };
    SelectivityIndex {
        index,
        preferred_class: best,
        silent,
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct SelectivityIndex {
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub index: f64,
    pub preferred_class: usize,
    pub silent: bool,
}

/// Selectivity and class information of every unit at a site.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteSelectivity {
    pub site: String,
    pub selectivity: Vec<SelectivityIndex>,
    /// Mutual information (bits) between the binned response and the class.
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub mutual_information: Vec<f64>,
    #[serde(deserialize_with = "crate::stats::nullable")]
    pub class_means: Vec<Vec<f64>>,
}

/// Computes the index and mutual information (`bins` equal-count bins) for every unit.
pub fn site_selectivity(site: &str, r: &Responses, bins: usize) -> SiteSelectivity {
    let class_means = r.class_means();
    let selectivity = class_means.iter().map(|m| selectivity_index(m)).collect();
    let mutual_information = (0..r.units)
        .map(|u| mutual_information(&r.unit(u), r.labels, r.num_classes, bins))
        .collect();
    SiteSelectivity {
        site: site.into(),
        selectivity,
        mutual_information,
        class_means,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_class_only_gives_one() {
        let s = selectivity_index(&[0.0, 0.0, 3.0, 0.0]);
        assert_eq!(s.index, 1.0);
        assert_eq!(s.preferred_class, 2);
    }

    #[test]
    fn equal_classes_give_zero() {
        assert_eq!(selectivity_index(&[2.0; 10]).index, 0.0);
    }

    #[test]
    fn a_worked_example() {
        // mu_max = 4, mu_-max = (1 + 1 + 1) / 3 = 1: (4 - 1) / (4 + 1) = 0.6.
        let s = selectivity_index(&[1.0, 4.0, 1.0, 1.0]);
        assert!((s.index - 0.6).abs() < 1e-12);
    }

    #[test]
    fn silent_units_are_zero_and_flagged_and_negative_ones_nan() {
        let s = selectivity_index(&[0.0; 5]);
        assert!(s.silent && s.index == 0.0);
        assert!(selectivity_index(&[-1.0, 2.0]).index.is_nan());
    }

    #[test]
    fn class_means_from_responses() {
        // Two units, four examples of classes 0, 0, 1, 1.
        let values = [1.0, 0.0, 3.0, 0.0, 0.0, 5.0, 0.0, 7.0];
        let r = Responses {
            values: &values,
            units: 2,
            labels: &[0, 0, 1, 1],
            num_classes: 2,
        };
        assert_eq!(r.class_means(), vec![vec![2.0, 0.0], vec![0.0, 6.0]]);
        let s = site_selectivity("x", &r, 2);
        assert_eq!(s.selectivity[0].index, 1.0);
        assert_eq!(s.selectivity[1].preferred_class, 1);
    }
}
