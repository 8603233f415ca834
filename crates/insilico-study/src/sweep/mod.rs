//! Sweeps: one file describes a whole study (a grid of training runs and the assays to
//! run on each); one call runs it, resumes it after an interruption, and writes the
//! summary figures and the report.

pub mod claims;
pub mod compare;
pub mod compare_report;
pub mod exec;
pub mod report;
pub mod slurm;
pub mod spec;
pub mod summary;

use anyhow::{bail, Result};
use insilico_data::fsx::write_atomic;
use insilico_data::Locator;
use insilico_engine::Compute;
use spec::{Point, SweepFile};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A loaded sweep: its file, the expanded grid and where it writes.
pub struct Sweep {
    pub file: PathBuf,
    pub scale: Option<String>,
    /// The sweep file's text, kept for the report.
    pub text: String,
    pub spec: SweepFile,
    pub points: Vec<Point>,
    pub out: PathBuf,
}

/// What a grid point has on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointState {
    Todo,
    Partial,
    Done,
}

impl Sweep {
    /// Loads and expands a sweep file (at a named scale), writing into `out` (default:
    /// the file's `out`, else `runs/<name>`). Every point's config is resolved here.
    pub fn load(file: &Path, scale: Option<&str>, out: Option<&Path>) -> Result<Self> {
        let spec = SweepFile::load(file, scale)?;
        let text = std::fs::read_to_string(file)?;
        let points = spec.expand()?;
        Ok(Self {
            file: file.to_path_buf(),
            scale: scale.map(str::to_string),
            out: spec.out_dir(out),
            text,
            spec,
            points,
        })
    }

    pub fn state(&self, point: &Point) -> PointState {
        if exec::point_done(&self.out, point, &self.spec.assays) {
            PointState::Done
        } else if exec::run_dir(&self.out, point).config_path().exists() {
            PointState::Partial
        } else {
            PointState::Todo
        }
    }

    /// The points that still need work.
    pub fn todo(&self) -> Vec<&Point> {
        self.points
            .iter()
            .filter(|p| self.state(p) != PointState::Done)
            .collect()
    }

    /// Checks every point's config, the data and the assays' options, before any run.
    pub fn validate(&self, locator: &Locator) -> Result<()> {
        self.spec.validate(&self.points, locator)
    }

    /// Trains one grid point (unless complete) and runs its assays (unless done); stops
    /// early, with a checkpoint, once `stop` is set.
    pub fn run_point(
        &self,
        id: &str,
        compute: &Compute,
        locator: &Locator,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<exec::PointRun> {
        let Some(p) = self.points.iter().find(|p| p.id == id) else {
            bail!("no grid point `{id}` in {}", self.file.display());
        };
        exec::run_point(
            &self.out,
            p,
            &self.spec.assays,
            compute,
            locator,
            false,
            stop,
        )
    }

    /// Runs every unfinished point, one after another in this process.
    pub fn run_serial(&self, compute: &Compute, locator: &Locator, progress: bool) -> Result<()> {
        self.begin()?;
        for p in self.todo() {
            exec::run_point(
                &self.out,
                p,
                &self.spec.assays,
                compute,
                locator,
                progress,
                None,
            )?;
        }
        Ok(())
    }

    /// Runs every unfinished point in `jobs` child processes of `exe` (this program),
    /// each told its point with `--point ID`.
    pub fn run_parallel(
        &self,
        exe: &Path,
        device: &str,
        data_dir: Option<&Path>,
        jobs: usize,
    ) -> Result<()> {
        self.begin()?;
        let child = exec::child_args(
            &self.file,
            self.scale.as_deref(),
            &self.out,
            device,
            data_dir,
        );
        exec::run_parallel(exe, &child, &self.todo(), jobs)
    }

    /// Locks the sweep directory for this process (an OS file lock, released on exit or
    /// crash); a second writer gets an error naming the holder's PID.
    pub fn lock(&self) -> Result<insilico_engine::rundir::DirLock> {
        std::fs::create_dir_all(&self.out)?;
        insilico_engine::rundir::DirLock::acquire(&self.out, "sweep directory")
    }

    /// Keeps the sweep file beside its results.
    fn begin(&self) -> Result<()> {
        std::fs::create_dir_all(&self.out)?;
        write_atomic(&self.out.join("sweep.toml"), self.text.as_bytes())
    }

    /// Compares the runs of each group (`[compare]`), once every point is trained;
    /// `None` when the file has no `[compare]` table.
    pub fn compare(
        &self,
        compute: &Compute,
        locator: &Locator,
    ) -> Result<Option<compare::Comparison>> {
        let Some(spec) = &self.spec.compare else {
            return Ok(None);
        };
        compare::run_comparison(&self.out, &self.points, spec, compute, locator).map(Some)
    }

    /// Writes `summary/` and `report.html` from what is on disk.
    pub fn summarize(&self, wall_seconds: Option<f64>) -> Result<summary::Summary> {
        summary::summarize(self, wall_seconds)
    }
}
