//! How much memory a network needs, estimated from its plan before any tensor exists, and
//! checked against what the machine has (`MemAvailable` in `/proc/meminfo`), so that a
//! config asking for 100 GB is refused with the estimate rather than aborting the process
//! in the allocator.
//!
//! The estimate counts 32-bit floats: the parameters; in training also their gradients,
//! the optimizer's state (one buffer per parameter for SGD momentum, two for Adam), and
//! every site's activations at the batch size twice (kept for the backward pass, and
//! their gradients); in evaluation (batches of [`EVAL_BATCH`]), the largest site twice.
//! Sums are in `f64`, which cannot overflow for any plan; it is a lower bound on the real
//! peak (temporary buffers of convolutions are not counted), so a refusal is certain.

use crate::config::{OptimizerKind, TrainConfig};
use crate::plan::Plan;
use anyhow::{bail, Result};
use std::fmt;

/// Bytes of one `f32`.
const FLOAT: f64 = 4.0;
/// The batch size of evaluation (see `train`).
pub const EVAL_BATCH: usize = 1000;

/// Estimated bytes, by what holds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryEstimate {
    pub parameters: f64,
    pub gradients: f64,
    pub optimizer: f64,
    pub activations: f64,
    /// The batch size the activations are counted at (0: no activations counted).
    pub batch: usize,
}

impl MemoryEstimate {
    /// The weights alone: what building the network allocates.
    pub fn weights(plan: &Plan) -> Self {
        Self {
            parameters: plan.parameters() as f64 * FLOAT,
            gradients: 0.0,
            optimizer: 0.0,
            activations: 0.0,
            batch: 0,
        }
    }

    /// Training on `examples` training images with `training`'s batch size and optimizer.
    pub fn training(plan: &Plan, training: &TrainConfig, examples: usize) -> Self {
        let params = plan.parameters() as f64 * FLOAT;
        let buffers = match training.optimizer {
            OptimizerKind::Sgd if training.momentum > 0.0 => 1.0,
            OptimizerKind::Sgd => 0.0,
            OptimizerKind::Adam => 2.0,
        };
        let batch = training.batch_size.min(examples);
        let per_example: f64 = plan
            .stages
            .iter()
            .map(|s| s.output.numel() as f64)
            .sum::<f64>()
            + plan.input.numel() as f64;
        let largest = plan
            .stages
            .iter()
            .map(|s| s.output.numel() as f64)
            .fold(plan.input.numel() as f64, f64::max);
        let train = 2.0 * per_example * batch as f64 * FLOAT;
        let eval = 2.0 * largest * EVAL_BATCH as f64 * FLOAT;
        Self {
            parameters: params,
            gradients: params,
            optimizer: buffers * params,
            activations: train.max(eval),
            batch,
        }
    }

    pub fn total(&self) -> f64 {
        self.parameters + self.gradients + self.optimizer + self.activations
    }

    /// Refuses when the estimate exceeds `available` bytes (`None`: unknown, accept).
    pub fn check_fits(&self, what: &str, available: Option<u64>) -> Result<()> {
        match available {
            Some(avail) if self.total() > avail as f64 => bail!(
                "{what} needs an estimated {self}, but this machine has {} available \
                 (MemAvailable in /proc/meminfo); make the layers narrower{}",
                gb(avail as f64),
                if self.batch > 0 {
                    " or training.batch_size smaller"
                } else {
                    ""
                }
            ),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (parameters {}",
            gb(self.total()),
            gb(self.parameters)
        )?;
        if self.batch > 0 {
            write!(
                f,
                ", gradients {}, optimizer state {}, activations at batch {} {}",
                gb(self.gradients),
                gb(self.optimizer),
                self.batch,
                gb(self.activations)
            )?;
        }
        f.write_str(")")
    }
}

/// "12.3 GB" (10^9 bytes), or MB below a gigabyte.
pub fn gb(bytes: f64) -> String {
    if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else {
        format!("{:.1} MB", bytes / 1e6)
    }
}

/// Refuses `what` when its two parts (bytes, what holds them) together exceed `available`
/// bytes, naming both, what the machine has, and `remedy`.
pub fn check_fits(
    what: &str,
    (first, first_is): (f64, &str),
    (second, second_is): (f64, &str),
    remedy: &str,
    available: u64,
) -> Result<()> {
    if first + second <= available as f64 {
        return Ok(());
    }
    bail!(
        "{what} needs at least {} of memory ({} for {first_is}, {} for {second_is}), but this \
         machine has {} available (MemAvailable in /proc/meminfo); {remedy}",
        gb(first + second),
        gb(first),
        gb(second),
        gb(available as f64)
    )
}

/// Bytes the kernel says can be allocated without swapping (`MemAvailable`), if known.
pub fn available_memory() -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

    fn plan(name: &str, overrides: &[&str]) -> Plan {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let c = RunConfig::from_toml(crate::models::builtin(name).unwrap(), &o).unwrap();
        Plan::new(&c.model, [1, 28, 28]).unwrap()
    }

    #[test]
    fn mlp_estimate_by_hand() {
        let p = plan("mlp-2x128", &[]);
        // 784*128 + 128 + 128*128 + 128 + 128*10 + 10.
        assert_eq!(p.parameters(), 118_282);
        let t = TrainConfig {
            optimizer: OptimizerKind::Adam,
            batch_size: 100,
            ..TrainConfig::default()
        };
        let e = MemoryEstimate::training(&p, &t, 60_000);
        assert_eq!(e.parameters, 118_282.0 * 4.0);
        assert_eq!(e.optimizer, 2.0 * 118_282.0 * 4.0);
        // Per example: input 784 + flatten 784 + (128 twice) twice + 10 = 2090 values;
        // training at batch 100 (2 x 2090 x 100 x 4 bytes) is below evaluation at batch
        // 1000 of the largest site, 784 values (2 x 784 x 1000 x 4 bytes).
        assert_eq!(e.activations, (2 * 784 * 1000 * 4) as f64);
        let big = MemoryEstimate::training(
            &p,
            &TrainConfig {
                batch_size: 1000,
                ..t
            },
            60_000,
        );
        assert_eq!(big.activations, (2 * 2090 * 1000 * 4) as f64);
        // The batch never exceeds the training set.
        let small = MemoryEstimate::training(
            &p,
            &TrainConfig {
                batch_size: 1000,
                ..t
            },
            10,
        );
        assert_eq!(small.batch, 10);
    }

    #[test]
    fn a_billion_channels_is_refused_with_the_estimate() {
        let p = plan("cnn-small", &["model.layers.0.out_channels=1000000000"]);
        let e = MemoryEstimate::training(&p, &TrainConfig::default(), 60_000);
        // conv1 alone: 1e9 * (25 + 1) parameters of 4 bytes.
        assert!(e.parameters >= 1e9 * 26.0 * 4.0);
        let err = e
            .check_fits("model `cnn-small`", Some(64 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cnn-small")
                && err.contains("GB")
                && err.contains("activations at batch 128"),
            "{err}"
        );
        assert!(
            e.check_fits("x", None).is_ok(),
            "unknown memory is not a refusal"
        );
        assert!(MemoryEstimate::weights(&plan("cnn-small", &[]))
            .check_fits("x", Some(1 << 30))
            .is_ok());
    }

    #[test]
    fn meminfo_is_parsed() {
        let text = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(parse_meminfo(text), Some(8_000_000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
    }
}
