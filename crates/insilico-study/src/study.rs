//! Opening a trained run for study, and the options every assay shares.

use crate::checkpoints::CheckpointSelection;
use crate::options::{at_least, distinct, Options};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use insilico_engine::eval::record_site;
use insilico_engine::{Activation, Compute, Examples, Plan, TrainedRun};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Which examples an assay presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    /// The training images, with the labels the network was trained on (corrupted or
    /// not), as Morcos et al. for memorizing networks.
    Train,
    /// The held-out test images.
    Test,
}

impl fmt::Display for Subset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subset::Train => "train",
            Subset::Test => "test",
        })
    }
}

/// What every assay shares: the stimuli, the sites and the seed (the `[assays]` table of
/// a sweep file; `--split`, `--images`, `--sites`, `--seed` on the command line).
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudyOptions {
    /// Sites, comma-separated (default: every hidden site, i.e. each relu output;
    /// receptive-fields: every conv and linear output before its relu, logits included).
    #[arg(long, value_delimiter = ',')]
    pub sites: Vec<String>,
    /// Which examples: train (with the labels the network was trained on, corrupted or
    /// not, as Morcos et al. for memorizing networks) or test.
    #[arg(long, value_enum, default_value_t = StudyOptions::default().split)]
    pub split: Subset,
    /// Use at most this many examples of the split.
    #[arg(long, default_value_t = StudyOptions::default().images)]
    pub images: usize,
    /// Seed for random orders, noise and initial images.
    #[arg(long, default_value_t = StudyOptions::default().seed)]
    pub seed: u64,
    /// Also run on the run's snapshots (model states saved through training, see
    /// training.snapshots): `all`, or `every:N` (every N-th, first and last always).
    /// Results per snapshot in RUN/assays/<assay>/checkpoints/step-NNNNNNNN/, the summary
    /// over training (AUC, test loss, selectivity by epoch) in RUN/assays/checkpoints/.
    #[arg(long, value_name = "all|every:N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointSelection>,
}

impl Default for StudyOptions {
    fn default() -> Self {
        Self {
            sites: Vec::new(),
            split: Subset::Train,
            images: 10_000,
            seed: 0,
            checkpoints: None,
        }
    }
}

impl Options for StudyOptions {
    const SECTION: &'static str = "assays";
    fn validate(&self) -> Result<()> {
        at_least(Self::SECTION, "images", self.images, 1)?;
        distinct(
            &format!("{}.sites", Self::SECTION),
            &self.sites,
            String::clone,
        )
    }
}

/// `sites` in the network's order (input to output), whatever order they were given in:
/// over-training's bottom-up check reads the order as depth, and every output lists
/// layers the way the network stacks them. An unknown site is an error naming it.
pub fn in_depth_order(plan: &Plan, sites: &[String]) -> Result<Vec<String>> {
    let mut by_depth = sites
        .iter()
        .map(|site| Ok((plan.site_index(site)?, site.clone())))
        .collect::<Result<Vec<_>>>()?;
    by_depth.sort_by_key(|(depth, _)| *depth);
    Ok(by_depth.into_iter().map(|(_, site)| site).collect())
}

/// A trained network, the examples it is shown and the sites recorded from.
pub struct Study {
    pub run: TrainedRun,
    pub examples: Examples,
    /// The sites every assay records from (resolved: never empty), in depth order.
    pub sites: Vec<String>,
    pub options: StudyOptions,
    /// The snapshot the network is at while an assay runs over checkpoints: results go
    /// to that snapshot's directory. `None`: the final network.
    pub snapshot_step: Option<usize>,
}

impl Study {
    /// Opens the run directory `dir` (as written by `insilico train`) for study.
    pub fn open(
        dir: &Path,
        compute: Compute,
        locator: &insilico_data::Locator,
        options: &StudyOptions,
    ) -> Result<Self> {
        options.validate()?;
        Self::new(TrainedRun::open(dir, compute, locator)?, options)
    }

    /// A study of `options.images` examples of the split at `options.sites` (every
    /// hidden site if empty).
    pub fn new(run: TrainedRun, options: &StudyOptions) -> Result<Self> {
        options.validate()?;
        let examples = match options.split {
            Subset::Train => run.data.train.head(Some(options.images)),
            Subset::Test => run.data.test.head(Some(options.images)),
        };
        if examples.is_empty() {
            bail!("the {} split of this run has no examples", options.split);
        }
        let sites = if options.sites.is_empty() {
            run.network.plan().hidden_sites()
        } else {
            in_depth_order(run.network.plan(), &options.sites)?
        };
        Ok(Self {
            run,
            examples,
            sites,
            options: options.clone(),
            snapshot_step: None,
        })
    }

    /// The activation at `site` for the study's examples (recorded once).
    pub fn record(&self, site: &str) -> Result<Activation> {
        record_site(
            &self.run.network,
            &self.examples,
            site,
            1000,
            &self.run.compute.device,
        )
    }

    pub fn num_classes(&self) -> usize {
        self.run.network.plan().num_classes()
    }

    pub fn split(&self) -> Subset {
        self.options.split
    }

    pub fn seed(&self) -> u64 {
        self.options.seed
    }

    pub fn out_dir(&self, assay: &str) -> PathBuf {
        let dir = self.run.dir.assay_dir(assay);
        match self.snapshot_step {
            Some(step) => crate::checkpoints::step_dir(&dir, step),
            None => dir,
        }
    }

    /// "model on dataset" for figure titles.
    pub fn who(&self) -> String {
        format!(
            "{} on {}",
            self.run.config.model.name, self.run.data.dataset.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::in_depth_order;
    use insilico_engine::Plan;

    #[test]
    fn sites_are_taken_in_the_networks_order_whatever_order_they_are_typed_in() {
        let model = insilico_engine::load_config("cnn-small", &[])
            .unwrap()
            .model;
        let plan = Plan::new(&model, [1, 28, 28]).unwrap();
        let typed = ["fc1.relu", "conv2.relu", "conv1.relu"].map(String::from);
        // The network's order: its sites as it stacks them, kept where typed.
        let by_depth: Vec<String> = plan
            .site_names()
            .into_iter()
            .filter(|s| typed.contains(s))
            .collect();
        assert_eq!(by_depth.len(), typed.len());
        assert_eq!(in_depth_order(&plan, &typed).unwrap(), by_depth);
        let unknown = ["fc9.relu".to_string()];
        let err = format!("{:#}", in_depth_order(&plan, &unknown).unwrap_err());
        assert!(err.contains("no site named `fc9.relu`"), "{err}");
    }
}
