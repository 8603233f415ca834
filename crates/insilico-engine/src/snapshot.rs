//! Snapshots: model states kept at chosen training steps for analysis over training time
//! (Raghu et al. 2017's layer-by-time similarity, Morcos et al. 2018's ablation robustness
//! through training). They are not resume checkpoints: those hold the optimizer too and are
//! pruned; snapshots hold only the weights and are never pruned.
//!
//! A step here is a count of optimizer steps taken: step 0 is the initialization, step
//! `steps_per_epoch` the end of the first epoch.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// When to keep a snapshot (`training.snapshots` in a run config). Every schedule other
/// than `none` keeps the initialization (step 0) and the end of every epoch, so the last
/// snapshot is the final network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SnapshotSchedule {
    /// No snapshots.
    #[default]
    None,
    /// The initialization and every epoch end.
    Epochs,
    /// Also every `n` optimizer steps.
    Every(usize),
    /// Also about `n` steps spaced evenly in log(step) over the whole run: dense early,
    /// where learning is fast (several inside the first epoch of MNIST).
    Log(usize),
}

const SYNTAX: &str = "expected \"none\", \"epochs\", \"every:N\" (every N optimizer steps) or \
                      \"log:N\" (N log-spaced steps), N at least 1";

impl FromStr for SnapshotSchedule {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let count = |n: &str| -> Result<usize> {
            match n.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => bail!("training.snapshots = {s:?}: {SYNTAX}"),
            }
        };
        match s.trim().split_once(':') {
            None if s.trim() == "none" => Ok(Self::None),
            None if s.trim() == "epochs" => Ok(Self::Epochs),
            Some(("every", n)) => Ok(Self::Every(count(n)?)),
            Some(("log", n)) => Ok(Self::Log(count(n)?)),
            _ => bail!("training.snapshots = {s:?}: {SYNTAX}"),
        }
    }
}

impl TryFrom<String> for SnapshotSchedule {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl fmt::Display for SnapshotSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => write!(f, "none"),
            Self::Epochs => write!(f, "epochs"),
            Self::Every(n) => write!(f, "every:{n}"),
            Self::Log(n) => write!(f, "log:{n}"),
        }
    }
}

impl From<SnapshotSchedule> for String {
    fn from(s: SnapshotSchedule) -> String {
        s.to_string()
    }
}

impl SnapshotSchedule {
    /// The steps at which a run of `epochs` epochs of `steps_per_epoch` steps keeps a
    /// snapshot (empty for `none`).
    pub fn steps(&self, epochs: usize, steps_per_epoch: usize) -> BTreeSet<usize> {
        let total = epochs * steps_per_epoch;
        let mut steps = BTreeSet::new();
        if *self == Self::None || total == 0 {
            return steps;
        }
        steps.insert(0);
        steps.extend((1..=epochs).map(|e| e * steps_per_epoch));
        match *self {
            Self::Every(n) => steps.extend((n..=total).step_by(n)),
            Self::Log(n) => steps.extend(log_spaced(n, total)),
            Self::None | Self::Epochs => {}
        }
        steps
    }
}

/// `n` steps from 1 to `total` spaced evenly in log(step), rounded and deduplicated (so
/// fewer than `n` where early steps coincide).
fn log_spaced(n: usize, total: usize) -> BTreeSet<usize> {
    if n == 1 {
        return BTreeSet::from([total]);
    }
    let top = (total as f64).ln();
    (0..n)
        .map(|k| {
            let s = (top * k as f64 / (n - 1) as f64).exp().round() as usize;
            s.clamp(1, total)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_form() {
        for (text, s) in [
            ("none", SnapshotSchedule::None),
            ("epochs", SnapshotSchedule::Epochs),
            ("every:50", SnapshotSchedule::Every(50)),
            ("log:16", SnapshotSchedule::Log(16)),
        ] {
            assert_eq!(text.parse::<SnapshotSchedule>().unwrap(), s);
            assert_eq!(s.to_string(), text);
        }
        for bad in [
            "",
            "every",
            "every:0",
            "log:-1",
            "log:x",
            "weekly",
            "every:3:4",
        ] {
            let err = bad.parse::<SnapshotSchedule>().unwrap_err().to_string();
            assert!(err.contains("training.snapshots"), "{bad}: {err}");
        }
    }

    #[test]
    fn epochs_keep_the_initialization_and_every_epoch_end() {
        let s = SnapshotSchedule::Epochs.steps(3, 10);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [0, 10, 20, 30]);
        assert!(SnapshotSchedule::None.steps(3, 10).is_empty());
    }

    #[test]
    fn every_n_adds_multiples_of_n() {
        let s = SnapshotSchedule::Every(4).steps(2, 10);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [0, 4, 8, 10, 12, 16, 20]);
    }

    #[test]
    fn log_spacing_is_geometric_and_dense_early() {
        // 5 points over 1..=10000: 10^0, 10^1, ..., 10^4 exactly.
        let s = log_spaced(5, 10_000);
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            [1, 10, 100, 1000, 10_000]
        );
        // 469 steps per epoch (MNIST, batch 128), 3 epochs, log:16: several snapshots
        // fall inside the first epoch.
        let s = SnapshotSchedule::Log(16).steps(3, 469);
        let first_epoch = s.iter().filter(|&&k| k > 0 && k < 469).count();
        assert!(first_epoch >= 8, "{s:?}");
        assert_eq!(s.last(), Some(&(3 * 469)));
    }
}
