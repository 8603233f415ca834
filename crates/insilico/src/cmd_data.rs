//! `insilico data list|fetch|verify`.

use crate::common::Env;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use insilico_data::{DatasetStatus, Manifest};

#[derive(Args)]
#[command(
    about = "Find, download and verify datasets",
    long_about = "Datasets are looked for, in order: --data-dir, $INSILICO_DATA, the user cache \
        (~/.cache/insilico/datasets), the place a system package installs them \
        (/usr/share/datasets/fashion-mnist), then downloaded from the public mirrors. Every \
        file's decompressed SHA-256 is checked against datasets/manifest.toml.",
    after_help = "Examples:\n  insilico data list\n  insilico data fetch mnist\n  insilico data verify --data-dir ../shared/datasets"
)]
pub struct DataArgs {
    #[command(subcommand)]
    pub action: DataAction,
    #[command(flatten)]
    pub env: Env,
}

#[derive(Subcommand)]
pub enum DataAction {
    /// Where each dataset was found and whether it verifies (never downloads).
    List,
    /// Download a dataset into the user cache (checks every digest).
    Fetch { name: String },
    /// Check the digests of a dataset's files (all datasets if no name).
    Verify { name: Option<String> },
}

/// "cifar10 (test_batch.bin, data_batch_3.bin)", or why the dataset is not available.
fn failing_files(status: &DatasetStatus) -> String {
    let files: Vec<&str> = status
        .reports
        .iter()
        .filter(|r| !r.is_ok())
        .map(|r| r.name.as_str())
        .collect();
    match &status.problem {
        Some(p) => format!("{}: {p}", status.name),
        None => format!("{} ({})", status.name, files.join(", ")),
    }
}

pub fn run(args: DataArgs) -> Result<()> {
    let locator = args.env.locator();
    match args.action {
        DataAction::List => {
            for name in Manifest::embedded().names() {
                println!("{}", locator.status(name));
            }
        }
        DataAction::Fetch { name } => {
            let loc = locator.fetch(&name)?;
            println!("{}", loc.describe());
        }
        DataAction::Verify { name } => {
            // Without a name, datasets that are not present are listed but not failures.
            let named = name.is_some();
            let names: Vec<String> = match name {
                Some(n) => vec![n],
                None => Manifest::embedded()
                    .names()
                    .into_iter()
                    .map(String::from)
                    .collect(),
            };
            let mut bad = Vec::new();
            for name in names {
                let status = locator.status(&name);
                println!("{status}");
                let present = status.location.is_some() || named;
                if present && !status.usable() && !status.generated {
                    bad.push(failing_files(&status));
                }
            }
            if !bad.is_empty() {
                bail!(
                    "{} dataset(s) missing or failing verification: {}",
                    bad.len(),
                    bad.join("; ")
                );
            }
        }
    }
    Ok(())
}
