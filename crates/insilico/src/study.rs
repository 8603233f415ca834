//! Opening a trained run for study, and the options every assay shares.

use crate::common::Env;
use anyhow::{bail, Result};
use clap::Args;
use insilico_engine::eval::record_site;
use insilico_engine::{Activation, Examples, TrainedRun};
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct StudyArgs {
    /// The run directory to study (as written by `insilico train`).
    #[arg(long)]
    pub run: PathBuf,
    /// Sites, comma-separated (default: every hidden site, i.e. each relu output).
    #[arg(long, value_delimiter = ',')]
    pub sites: Vec<String>,
    /// Which examples: train (with the labels the network was trained on, corrupted or
    /// not, as Morcos et al. for memorizing networks) or test.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Use at most this many examples of the split.
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Seed for random orders and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub env: Env,
}

pub struct Study {
    pub run: TrainedRun,
    pub examples: Examples,
    pub sites: Vec<String>,
    pub split: String,
}

impl Study {
    pub fn open(args: &StudyArgs) -> Result<Self> {
        let run = TrainedRun::open(&args.run, args.env.compute()?, &args.env.locator())?;
        Self::new(run, &args.split, args.images, &args.sites)
    }

    /// A study of `images` examples of `split` at `sites` (every hidden site if empty).
    pub fn new(run: TrainedRun, split: &str, images: usize, sites: &[String]) -> Result<Self> {
        let examples = match split {
            "train" => run.data.train.head(Some(images)),
            "test" => run.data.test.head(Some(images)),
            other => bail!("unknown split `{other}`: use train or test"),
        };
        let sites = if sites.is_empty() {
            run.network.plan().hidden_sites()
        } else {
            for s in sites {
                run.network.plan().site_index(s)?;
            }
            sites.to_vec()
        };
        Ok(Self {
            run,
            examples,
            sites,
            split: split.to_string(),
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

    pub fn out_dir(&self, assay: &str) -> PathBuf {
        self.run.dir.assay_dir(assay)
    }
}
