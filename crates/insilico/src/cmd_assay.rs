//! Every assay's subcommand, built from the registry: `insilico <assay> --run RUN`, the
//! study's flags, the assay's own flags (one definition: its options struct), and
//! `--options FILE` merged under the flags.

use crate::common::Env;
use anyhow::Result;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use insilico_study::{merge_with_file, Assay, Study, StudyOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct AssayArgs<O: Args> {
    /// The run directory to study (as written by `insilico train`).
    #[arg(long)]
    pub run: PathBuf,
    #[command(flatten)]
    pub study: StudyOptions,
    #[command(flatten)]
    pub options: O,
    /// The assay's options as a TOML file (its table of a sweep file); flags given on
    /// the command line win over the file, the file over the defaults.
    #[arg(long = "options", value_name = "FILE")]
    pub options_file: Option<PathBuf>,
    #[command(flatten)]
    pub env: Env,
}

/// The subcommand of assay `A`.
pub fn command<A: Assay>() -> clap::Command {
    AssayArgs::<A::Options>::augment_args(clap::Command::new(A::COMMAND))
        .about(A::ABOUT)
        .long_about(A::LONG_ABOUT)
        .after_help(A::EXAMPLES)
}

/// Runs assay `A` with the parsed arguments of its subcommand and prints its summary.
pub fn run<A: Assay>(matches: &ArgMatches) -> Result<()> {
    let args = AssayArgs::<A::Options>::from_arg_matches(matches)?;
    // The flags a person typed, by field name (clap's id of a derived argument).
    let given: Vec<String> = matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect();
    let options = merge_with_file(&args.options, &given, args.options_file.as_deref())?;
    let mut study = Study::open(
        &args.run,
        args.env.compute()?,
        &args.env.locator(),
        &args.study,
    )?;
    let output = insilico_study::checkpoints::run_assay::<A>(&mut study, &options)?;
    for line in A::describe(&output) {
        println!("{line}");
    }
    println!("outputs in {}/", study.out_dir(A::KIND.name()).display());
    Ok(())
}
