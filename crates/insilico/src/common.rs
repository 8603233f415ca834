//! Options shared by several commands.

use anyhow::Result;
use clap::Args;
use insilico_data::Locator;
use insilico_engine::{Backend, Compute};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct Env {
    /// Compute device: auto (a GPU through wgpu if built in and present, else the CPU),
    /// cpu (Burn's Flex backend) or wgpu.
    #[arg(long, default_value = "auto", global = true)]
    pub device: String,
    /// Where datasets live; searched before $INSILICO_DATA, the user cache, system
    /// packages and the public mirrors.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl Env {
    pub fn compute(&self) -> Result<Compute> {
        Compute::select(self.device.parse::<Backend>()?)
    }

    pub fn locator(&self) -> Locator {
        Locator::from_env(self.data_dir.clone())
    }

    /// Progress bars only for a person watching a terminal.
    pub fn progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}
