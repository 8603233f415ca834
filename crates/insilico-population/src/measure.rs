//! One name per representation-similarity measure, and one function to compute any of them.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rsa::{RdmComparison, RdmMetric};
use crate::{cca, cka, ridge, rsa, Matrix};

/// The fraction of singular-value mass SVCCA keeps (Raghu et al. 2017).
pub const SVCCA_KEPT: f64 = 0.99;
/// The RBF bandwidth as a multiple of the median distance (Kornblith et al.'s demo default).
pub const RBF_BANDWIDTH: f64 = 1.0;

/// Which score of the ridge predictivity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RidgeScore {
    /// Median cross-validated R^2 over target units.
    R2,
    /// Median Pearson r between each target unit and its prediction.
    Pearson,
}

impl RidgeScore {
    /// This score of a predictivity.
    pub fn of(self, r: &ridge::RidgeResult) -> f64 {
        match self {
            RidgeScore::R2 => r.median_r2,
            RidgeScore::Pearson => r.median_pearson,
        }
    }
}

/// A measure of similarity between two `[stimuli, units]` representations of the same stimuli.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "measure", rename_all = "kebab-case")]
pub enum Measure {
    CkaLinear,
    CkaRbf {
        bandwidth: f64,
    },
    CkaDebiased,
    CcaMean,
    CcaMeanSquared,
    Svcca {
        kept: f64,
    },
    Pwcca,
    Rsa {
        metric: RdmMetric,
        comparison: RdmComparison,
    },
    /// `x` predicts `y` (asymmetric).
    Ridge {
        score: RidgeScore,
    },
}

impl Measure {
    /// Every measure with its default parameters, in a fixed order (for tables and sweeps).
    pub fn all() -> Vec<Measure> {
        let mut out = vec![
            Measure::CkaLinear,
            Measure::CkaRbf {
                bandwidth: RBF_BANDWIDTH,
            },
            Measure::CkaDebiased,
            Measure::CcaMean,
            Measure::CcaMeanSquared,
            Measure::Svcca { kept: SVCCA_KEPT },
            Measure::Pwcca,
        ];
        for metric in [RdmMetric::Correlation, RdmMetric::Euclidean] {
            for comparison in [RdmComparison::Spearman, RdmComparison::KendallTauA] {
                out.push(Measure::Rsa { metric, comparison });
            }
        }
        out.push(Measure::Ridge {
            score: RidgeScore::R2,
        });
        out.push(Measure::Ridge {
            score: RidgeScore::Pearson,
        });
        out
    }

    /// A short name for file names, table headers and figure titles.
    pub fn name(&self) -> String {
        match self {
            Measure::CkaLinear => "cka-linear".into(),
            Measure::CkaRbf { bandwidth } => format!("cka-rbf-{}", parameter(*bandwidth)),
            Measure::CkaDebiased => "cka-debiased".into(),
            Measure::CcaMean => "cca-mean".into(),
            Measure::CcaMeanSquared => "cca-mean-squared".into(),
            Measure::Svcca { kept } => format!("svcca-{}", parameter(*kept)),
            Measure::Pwcca => "pwcca".into(),
            Measure::Rsa { metric, comparison } => {
                let c = match comparison {
                    RdmComparison::Spearman => "spearman",
                    RdmComparison::KendallTauA => "tau-a",
                };
                format!("rsa-{}-{c}", metric.name())
            }
            Measure::Ridge {
                score: RidgeScore::R2,
            } => "ridge-r2".into(),
            Measure::Ridge {
                score: RidgeScore::Pearson,
            } => "ridge-pearson".into(),
        }
    }

    /// The name a figure shows: what the measure is, in words (`name` is for files and
    /// command lines).
    pub fn title(&self) -> String {
        match self {
            Measure::CkaLinear => "linear CKA".into(),
            Measure::CkaRbf { bandwidth } => {
                let b = parameter(*bandwidth);
                format!("RBF CKA (bandwidth {b} x median distance)")
            }
            Measure::CkaDebiased => "debiased linear CKA".into(),
            Measure::CcaMean => "mean canonical correlation".into(),
            Measure::CcaMeanSquared => "mean squared canonical correlation".into(),
            // Rounded so that 0.57 reads 57, not 56.99999999999999.
            Measure::Svcca { kept } => {
                format!("SVCCA ({} % of variance)", (1e8 * kept).round() / 1e6)
            }
            Measure::Pwcca => "PWCCA".into(),
            Measure::Rsa { metric, comparison } => {
                let m = match metric {
                    RdmMetric::Correlation => "1 - Pearson",
                    RdmMetric::Euclidean => "Euclidean",
                };
                let c = match comparison {
                    RdmComparison::Spearman => "Spearman",
                    RdmComparison::KendallTauA => "Kendall's tau-a",
                };
                format!("RSA ({m} RDMs, {c})")
            }
            Measure::Ridge {
                score: RidgeScore::R2,
            } => "ridge predictivity (median R^2)".into(),
            Measure::Ridge {
                score: RidgeScore::Pearson,
            } => "ridge predictivity (median r)".into(),
        }
    }

    /// The title of the measure named `name` (as written by [`Measure::name`]), or the name
    /// itself where it names none.
    pub fn title_of(name: &str) -> String {
        name.parse::<Measure>()
            .map_or(name.to_string(), |m| m.title())
    }

    /// The range of values, for heatmap colour scales. Debiased CKA can dip slightly below 0
    /// and ridge R^2 is unbounded below; their nominal ranges are given.
    pub fn range(&self) -> (f64, f64) {
        match self {
            Measure::Rsa { .. }
            | Measure::Ridge {
                score: RidgeScore::Pearson,
            } => (-1.0, 1.0),
            Measure::Ridge {
                score: RidgeScore::R2,
            } => (f64::NEG_INFINITY, 1.0),
            _ => (0.0, 1.0),
        }
    }

    /// Whether `compare(m, x, y) == compare(m, y, x)` for all inputs.
    pub fn is_symmetric(&self) -> bool {
        !matches!(self, Measure::Pwcca | Measure::Ridge { .. })
    }
}

/// A parameter as a name shows it: plainly (`0.8`), or with an exponent outside 1e-4..1e6,
/// where plain digits would run to hundreds (`1e-300`, not 300 zeros in a file name).
/// Either parses back to the same value.
fn parameter(v: f64) -> String {
    if v == 0.0 || (1e-4..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A measure's value for one pair of representations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    #[serde(flatten)]
    pub measure: Measure,
    pub value: f64,
}

/// The value of `measure` between `x` and `y` (rows: the same stimuli in the same order).
/// Ridge uses [`ridge::RidgeOptions::default`] (5 contiguous folds).
pub fn compare(measure: Measure, x: &Matrix, y: &Matrix) -> Result<f64> {
    match measure {
        Measure::CkaLinear => cka::cka_linear(x, y),
        Measure::CkaRbf { bandwidth } => cka::cka_rbf(x, y, bandwidth),
        Measure::CkaDebiased => cka::cka_debiased(x, y),
        Measure::CcaMean => Ok(cca::cca(x, y)?.mean),
        Measure::CcaMeanSquared => Ok(cca::cca(x, y)?.mean_squared),
        Measure::Svcca { kept } => Ok(cca::svcca(x, y, kept)?.mean),
        Measure::Pwcca => Ok(cca::pwcca(x, y)?.value),
        Measure::Rsa { metric, comparison } => rsa::rsa(x, y, metric, comparison),
        Measure::Ridge { score } => Ok(score.of(&ridge::ridge_predictivity(
            x,
            y,
            &ridge::RidgeOptions::default(),
        )?)),
    }
}

/// Every measure in `measures` for one pair, as serializable records.
pub fn compare_all(measures: &[Measure], x: &Matrix, y: &Matrix) -> Result<Vec<Comparison>> {
    measures
        .iter()
        .map(|&measure| {
            Ok(Comparison {
                measure,
                value: compare(measure, x, y)?,
            })
        })
        .collect()
}

impl std::str::FromStr for Measure {
    type Err = crate::Error;

    /// Parses [`Measure::name`]: every default name, plus `cka-rbf-<bandwidth>` and
    /// `svcca-<kept>` with any parameter.
    fn from_str(s: &str) -> Result<Self> {
        if let Some(m) = Measure::all().into_iter().find(|m| m.name() == s) {
            return Ok(m);
        }
        let number = |text: &str| text.parse::<f64>().ok().filter(|v| v.is_finite());
        if let Some(bandwidth) = s.strip_prefix("cka-rbf-").and_then(number) {
            return Ok(Measure::CkaRbf { bandwidth });
        }
        if let Some(kept) = s.strip_prefix("svcca-").and_then(number) {
            return Ok(Measure::Svcca { kept });
        }
        let known: Vec<String> = Measure::all().iter().map(Measure::name).collect();
        Err(crate::error::invalid(
            "measure",
            format!("unknown measure {s:?}; known: {}", known.join(", ")),
        ))
    }
}
