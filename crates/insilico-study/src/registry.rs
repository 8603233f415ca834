//! The assay registry: the one list of assays. The command line, the sweep's
//! validation and executor, its summary and its report all iterate [`AssayKind::ALL`];
//! adding an assay is a module with an [`Assay`] implementation and one line in
//! [`with_assay!`].

use crate::options::Options;
use crate::study::{Study, StudyOptions};
use anyhow::{Context, Result};
use insilico_engine::{Plan, RunDir};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// A figure for a report: the PNG and its caption.
pub type Figure = (PathBuf, String);

/// One assay: its options, how it runs on a study, the result it writes, and how the
/// command line and the report present it.
pub trait Assay {
    const KIND: AssayKind;
    /// The subcommand (`insilico <COMMAND> --run RUN`).
    const COMMAND: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// What it computes and writes, for `<COMMAND> --help`.
    const LONG_ABOUT: &'static str;
    /// Example command lines.
    const EXAMPLES: &'static str;
    /// The JSON file in the assay's directory that holds [`Assay::Output`].
    const RESULT_FILE: &'static str;
    type Options: Options + clap::Args;
    type Output: Serialize;

    /// Runs the assay on a study and writes `RUN/assays/<name>/`.
    fn run(study: &Study, options: &Self::Options) -> Result<Self::Output>;

    /// What the command line prints of a result, a line each.
    fn describe(output: &Self::Output) -> Vec<String>;

    /// Checks that need the network's plan (sites, units), before any run of a sweep.
    fn check(_options: &Self::Options, _plan: &Plan, _study: &StudyOptions) -> Result<()> {
        Ok(())
    }

    /// The per-run figures the report shows for this assay, from a finished run (none by
    /// default: the sweep summary draws the figures across runs).
    fn gallery(_run: &RunDir) -> Vec<Figure> {
        Vec::new()
    }
}

/// The result of a finished run of assay `A`, read back into its own type, if there is
/// one.
pub fn read<A: Assay>(run: &RunDir) -> Result<Option<A::Output>>
where
    A::Output: DeserializeOwned,
{
    read_in::<A>(&run.assay_dir(A::KIND.name()))
}

/// The result of assay `A` in directory `dir` (a run's or a snapshot's), if there is one.
pub fn read_in<A: Assay>(dir: &Path) -> Result<Option<A::Output>>
where
    A::Output: DeserializeOwned,
{
    let path = dir.join(A::RESULT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let output = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a {} result", path.display(), A::KIND))?;
    Ok(Some(output))
}

/// Every assay, in the order a sweep runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssayKind {
    Ablation,
    Selectivity,
    Noise,
    ReceptiveFields,
    Population,
    Tuning,
    Erf,
}

/// Evaluates `$body` with the type `$A` bound to the [`Assay`] of `$kind`: the single
/// place that maps a kind to its implementation.
#[macro_export]
macro_rules! with_assay {
    ($kind:expr, $A:ident => $body:expr) => {
        match $kind {
            $crate::AssayKind::Ablation => {
                type $A = $crate::ablation::Ablation;
                $body
            }
            $crate::AssayKind::Selectivity => {
                type $A = $crate::selectivity::Selectivity;
                $body
            }
            $crate::AssayKind::Noise => {
                type $A = $crate::noise::Noise;
                $body
            }
            $crate::AssayKind::ReceptiveFields => {
                type $A = $crate::receptive::ReceptiveFields;
                $body
            }
            $crate::AssayKind::Population => {
                type $A = $crate::population::Population;
                $body
            }
            $crate::AssayKind::Tuning => {
                type $A = $crate::tuning::TuningCurves;
                $body
            }
            $crate::AssayKind::Erf => {
                type $A = $crate::erf::EffectiveReceptiveFields;
                $body
            }
        }
    };
}

impl AssayKind {
    pub const ALL: [AssayKind; 7] = [
        AssayKind::Ablation,
        AssayKind::Selectivity,
        AssayKind::Noise,
        AssayKind::ReceptiveFields,
        AssayKind::Population,
        AssayKind::Tuning,
        AssayKind::Erf,
    ];

    /// The name of its sweep table and of its directory under `RUN/assays/`.
    pub fn name(self) -> &'static str {
        match self {
            AssayKind::Ablation => "ablation",
            AssayKind::Selectivity => "selectivity",
            AssayKind::Noise => "noise",
            AssayKind::ReceptiveFields => "receptive_fields",
            AssayKind::Population => "population",
            AssayKind::Tuning => "tuning",
            AssayKind::Erf => "erf",
        }
    }

    /// The heading of its section in a report.
    pub fn title(self) -> &'static str {
        match self {
            AssayKind::Ablation => "Ablation",
            AssayKind::Selectivity => "Class selectivity",
            AssayKind::Noise => "Noise robustness",
            AssayKind::ReceptiveFields => "Receptive fields",
            AssayKind::Population => "Population dimensionality",
            AssayKind::Tuning => "Tuning curves",
            AssayKind::Erf => "Effective receptive fields",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn command(self) -> &'static str {
        with_assay!(self, A => A::COMMAND)
    }

    /// Parses and validates a sweep file's options table for this assay.
    pub fn validate(self, table: &toml::Table) -> Result<()> {
        with_assay!(self, A => <A as Assay>::Options::from_table(table.clone()).map(|_| ()))
    }

    /// The checks that need a network's plan.
    pub fn check(self, table: &toml::Table, plan: &Plan, study: &StudyOptions) -> Result<()> {
        with_assay!(self, A => {
            let options = <A as Assay>::Options::from_table(table.clone())?;
            A::check(&options, plan, study)
        })
    }

    /// Runs the assay with options from a table (a sweep's) and writes its outputs, on
    /// the study's snapshots too where it asks for checkpoints.
    pub fn run(self, study: &mut Study, table: &toml::Table) -> Result<()> {
        with_assay!(self, A => {
            let options = <A as Assay>::Options::from_table(table.clone())?;
            crate::checkpoints::run_assay::<A>(study, &options).map(|_| ())
        })
    }

    /// The report's figures of a finished run of this assay.
    pub fn gallery(self, run: &RunDir) -> Vec<Figure> {
        with_assay!(self, A => A::gallery(run))
    }

    /// Whether a run holds this assay's finished outputs.
    pub fn done(self, run: &RunDir) -> bool {
        done_marker(run, self).exists()
    }
}

/// The figures among `files` (name in the assay's directory, caption) that a run holds.
pub fn existing_figures(run: &RunDir, kind: AssayKind, files: &[(&str, &str)]) -> Vec<Figure> {
    let dir = run.assay_dir(kind.name());
    files
        .iter()
        .map(|(f, c)| (dir.join(f), c.to_string()))
        .filter(|(p, _)| p.exists())
        .collect()
}

/// Written once an assay's outputs are all in place (`assays/<name>/done.json`).
pub fn done_marker(run: &RunDir, kind: AssayKind) -> PathBuf {
    run.assay_dir(kind.name()).join("done.json")
}

impl fmt::Display for AssayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a JSON file of type `T` where it exists.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assay_is_registered_once_under_its_own_kind() {
        let mut commands = Vec::new();
        for kind in AssayKind::ALL {
            assert_eq!(AssayKind::from_name(kind.name()), Some(kind));
            assert_eq!(with_assay!(kind, A => A::KIND), kind);
            commands.push(kind.command());
        }
        commands.sort();
        commands.dedup();
        assert_eq!(
            commands.len(),
            AssayKind::ALL.len(),
            "one subcommand per assay"
        );
    }

    #[test]
    fn every_assay_accepts_its_defaults_and_refuses_unknown_keys() {
        for kind in AssayKind::ALL {
            kind.validate(&toml::Table::new()).unwrap();
            let typo: toml::Table = toml::from_str("no_such_option = 1").unwrap();
            let msg = format!("{:#}", kind.validate(&typo).unwrap_err());
            assert!(msg.contains("no_such_option"), "{kind}: {msg}");
        }
    }
}
