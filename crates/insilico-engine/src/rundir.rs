//! The run directory: everything one training run leaves behind, written atomically.
//!
//! ```text
//! RUN/config.toml                 the config as resolved (overrides applied)
//! RUN/manifest.json               seed, versions, backend, dataset checksum, timings, status
//! RUN/metrics.csv, metrics.json   one row per epoch
//! RUN/checkpoints/epoch-NNNN/     model.bpk, optim.bpk (complete directories only)
//! RUN/checkpoints/epoch-NNNN-step-SSSSSS/  the same, SSSSSS steps into epoch NNNN+1
//!                                 (written when a run is told to stop mid-epoch)
//! RUN/checkpoints/latest          name of the newest complete checkpoint
//! RUN/snapshots/step-NNNNNNNN/    model.bpk at a training step (`training.snapshots`)
//! RUN/snapshots/index.csv         step,epoch of every complete snapshot
//! RUN/model.bpk                   final weights (Burn's burnpack)
//! RUN/weights.safetensors         final weights for numpy/PyTorch (PyTorch layout)
//! RUN/assays/<assay>/             what the assays write
//! ```
//!
//! A checkpoint is written into a hidden temporary directory and renamed into place, and
//! `latest` is replaced atomically after it, so a kill at any moment leaves the previous
//! checkpoint intact and never a half-written one.

use crate::backend::Compute;
use crate::config::RunConfig;
use crate::examples::RunData;
use crate::network::Network;
use crate::train::EpochMetrics;
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use insilico_data::fsx::{replace_with, write_atomic, write_csv};
use insilico_data::{Dataset, Locator};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// How many complete checkpoints to keep (the newest ones).
const KEEP_CHECKPOINTS: usize = 2;

#[derive(Clone, Debug)]
pub struct RunDir {
    pub root: PathBuf,
}

/// One kept model state (see [`crate::snapshot`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Optimizer steps taken (0: the initialization).
    pub step: usize,
    /// `step` in epochs (1.0: the end of the first epoch).
    pub epoch: f64,
    /// Its `model.bpk`.
    pub weights: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.json")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    pub fn model_path(&self) -> PathBuf {
        self.root.join("model.bpk")
    }
    pub fn assay_dir(&self, assay: &str) -> PathBuf {
        self.root.join("assays").join(assay)
    }

    /// Whether training finished (final weights and a complete manifest exist).
    pub fn is_complete(&self) -> bool {
        self.model_path().exists()
            && Manifest::read(self)
                .map(|m| m.status == "complete")
                .unwrap_or(false)
    }

    /// Takes the run's writer lock (see [`DirLock`]): one process writes a run at a time.
    pub fn lock(&self) -> Result<DirLock> {
        DirLock::acquire(&self.root, "run directory")
    }

    /// Creates the directory, or checks that resuming it is consistent with `config`.
    pub fn prepare(&self, config: &RunConfig, resume: bool) -> Result<()> {
        let saved = self.config_path();
        if saved.exists() {
            if !resume {
                bail!(
                    "{} already holds a run; pass --resume to continue it, or choose another output directory",
                    self.root.display()
                );
            }
            let previous = RunConfig::load(&saved, &[])?;
            if previous != *config {
                bail!(
                    "cannot resume {}: its config.toml differs from this run's config",
                    self.root.display()
                );
            }
        }
        std::fs::create_dir_all(self.checkpoints())
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        write_atomic(&saved, config.to_toml().as_bytes())
    }

    /// The newest complete checkpoint directory, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>> {
        let latest = self.checkpoints().join("latest");
        if !latest.exists() {
            return Ok(None);
        }
        let name = std::fs::read_to_string(&latest)
            .with_context(|| format!("cannot read {}", latest.display()))?;
        let dir = self.checkpoints().join(name.trim());
        if !dir.join("model.bpk").exists() {
            bail!(
                "{} names {}, which holds no model.bpk",
                latest.display(),
                dir.display()
            );
        }
        Ok(Some(dir))
    }

    /// Writes the checkpoint after `epoch` complete epochs, with the metrics so far.
    pub fn write_checkpoint(
        &self,
        epoch: usize,
        net: &Network,
        optim: &ModuleOptimizer,
        metrics: &[EpochMetrics],
    ) -> Result<()> {
        self.write_checkpoint_at(Position::new(epoch, 0), net, optim, metrics)?;
        self.prune_checkpoints(epoch)
    }

    /// Writes the checkpoint at `at` (mid-epoch when a run is stopped by a signal), with
    /// the metrics of the complete epochs; prunes nothing.
    pub fn write_checkpoint_at(
        &self,
        at: Position,
        net: &Network,
        optim: &ModuleOptimizer,
        metrics: &[EpochMetrics],
    ) -> Result<()> {
        let name = at.name();
        replace_with(&self.checkpoints().join(&name), |tmp| {
            std::fs::create_dir_all(tmp)?;
            net.clone()
                .save_file(tmp.join("model.bpk"))
                .with_context(|| format!("writing {}", tmp.join("model.bpk").display()))?;
            optim
                .save(tmp.join("optim.bpk"))
                .with_context(|| format!("writing {}", tmp.join("optim.bpk").display()))
        })?;
        // Metrics first: a checkpoint is only used once `latest` names it, and resume reads
        // as many metric rows as complete epochs.
        self.write_metrics(metrics)?;
        write_atomic(&self.checkpoints().join("latest"), name.as_bytes())
    }

    /// Where the latest checkpoint stands (zero epochs and steps without one).
    pub fn latest_position(&self) -> Result<Position> {
        match self.latest_checkpoint()? {
            None => Ok(Position::default()),
            Some(dir) => dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Position::parse)
                .with_context(|| format!("bad checkpoint name {}", dir.display())),
        }
    }

    /// Removes epoch checkpoints beyond the newest few, and every mid-epoch one (all are
    /// older than a new epoch checkpoint).
    fn prune_checkpoints(&self, newest: usize) -> Result<()> {
        for entry in std::fs::read_dir(self.checkpoints())? {
            let path = entry?.path();
            let Some(at) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Position::parse)
            else {
                continue;
            };
            if at.step > 0 || at.epochs + KEEP_CHECKPOINTS <= newest {
                std::fs::remove_dir_all(path)?;
            }
        }
        Ok(())
    }

    pub fn write_metrics(&self, metrics: &[EpochMetrics]) -> Result<()> {
        let rows: Vec<Vec<String>> = metrics
            .iter()
            .map(|m| {
                // An epoch without evaluation leaves its cells empty (NaN in pandas).
                let cell = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
                vec![
                    m.epoch.to_string(),
                    cell(m.train_loss),
                    cell(m.train_acc),
                    cell(m.test_loss),
                    cell(m.test_acc),
                    format!("{:.3}", m.seconds),
                    format!("{:.6e}", m.lr),
                ]
            })
            .collect();
        write_csv(
            &self.root.join("metrics.csv"),
            &[
                "epoch",
                "train_loss",
                "train_acc",
                "test_loss",
                "test_acc",
                "seconds",
                "lr",
            ],
            &rows,
        )?;
        write_atomic(
            &self.root.join("metrics.json"),
            serde_json::to_string_pretty(metrics)?.as_bytes(),
        )
    }

    /// The metrics of the epochs completed so far (those of the latest checkpoint).
    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>> {
        let path = self.root.join("metrics.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut metrics: Vec<EpochMetrics> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid metrics JSON", path.display()))?;
        // The checkpoint named by `latest` is authoritative.
        if self.latest_checkpoint()?.is_some() {
            metrics.truncate(self.latest_position()?.epochs);
        }
        Ok(metrics)
    }

    /// Keeps the network's weights at `step` (idempotent: a resumed run that passes the
    /// step again finds it kept) and indexes every complete snapshot.
    pub fn write_snapshot(&self, step: usize, steps_per_epoch: usize, net: &Network) -> Result<()> {
        let dir = self.snapshots_dir().join(format!("step-{step:08}"));
        if !dir.join("model.bpk").exists() {
            std::fs::create_dir_all(self.snapshots_dir())
                .with_context(|| format!("cannot create {}", self.snapshots_dir().display()))?;
            replace_with(&dir, |tmp| {
                std::fs::create_dir_all(tmp)?;
                net.clone()
                    .save_file(tmp.join("model.bpk"))
                    .with_context(|| format!("writing {}", tmp.join("model.bpk").display()))
            })?;
        }
        self.write_snapshot_index(steps_per_epoch)
    }

    /// `index.csv` from the complete snapshot directories, so that a kill between a
    /// snapshot and its index line is repaired by the next write.
    fn write_snapshot_index(&self, steps_per_epoch: usize) -> Result<()> {
        // `{}` of an f64 is its shortest round-tripping form, so `snapshots()` reads back
        // exactly the epoch written here.
        let rows: Vec<Vec<String>> = self
            .snapshot_steps()?
            .into_iter()
            .map(|step| {
                vec![
                    step.to_string(),
                    (step as f64 / steps_per_epoch as f64).to_string(),
                ]
            })
            .collect();
        write_csv(
            &self.snapshots_dir().join("index.csv"),
            &["step", "epoch"],
            &rows,
        )
    }

    /// Steps of the complete snapshot directories, ascending.
    fn snapshot_steps(&self) -> Result<Vec<usize>> {
        let dir = self.snapshots_dir();
        let mut steps = Vec::new();
        if !dir.exists() {
            return Ok(steps);
        }
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let step = name
                .strip_prefix("step-")
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(step) = step.filter(|_| entry.path().join("model.bpk").exists()) {
                steps.push(step);
            }
        }
        steps.sort_unstable();
        Ok(steps)
    }

    /// The run's snapshots in training order (empty when it kept none), from `index.csv`;
    /// an index naming a missing snapshot is an error that names both, and so is a
    /// damaged index (see [`check_snapshot_row`]) or one that lists nothing while
    /// complete snapshot folders exist.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let index = self.snapshots_dir().join("index.csv");
        let listed = if index.exists() {
            self.read_snapshot_index(&index)?
        } else {
            Vec::new()
        };
        if listed.is_empty() {
            self.refuse_unindexed_snapshots(&index)?;
        }
        Ok(listed)
    }

    /// The rows of `index.csv` as [`write_snapshot_index`](Self::write_snapshot_index)
    /// writes them: the header `step,epoch`, then one row per snapshot, ascending.
    fn read_snapshot_index(&self, index: &Path) -> Result<Vec<Snapshot>> {
        let mut reader = csv::Reader::from_path(index)
            .with_context(|| format!("cannot read {}", index.display()))?;
        let header = reader
            .headers()
            .with_context(|| format!("{}: line 1", index.display()))?;
        // An empty file has no header; it lists nothing, like a header alone.
        if !header.is_empty() && !header.iter().eq(["step", "epoch"]) {
            bail!(
                "{}: line 1 is `{}`, not the header `step,epoch`",
                index.display(),
                header.iter().collect::<Vec<_>>().join(",")
            );
        }
        let mut out: Vec<Snapshot> = Vec::new();
        let mut record = csv::StringRecord::new();
        while reader
            .read_record(&mut record)
            .with_context(|| format!("cannot read {}", index.display()))?
        {
            let line = record.position().map_or(0, |p| p.line());
            let at = || format!("{}: line {line}", index.display());
            let (step, epoch): (usize, f64) = record.deserialize(None).with_context(at)?;
            check_snapshot_row(out.last(), step, epoch).with_context(at)?;
            let weights = self
                .snapshots_dir()
                .join(format!("step-{step:08}"))
                .join("model.bpk");
            if !weights.exists() {
                bail!(
                    "{} lists step {step}, but {} is missing",
                    index.display(),
                    weights.display()
                );
            }
            out.push(Snapshot {
                step,
                epoch,
                weights,
            });
        }
        Ok(out)
    }

    /// An index that lists no snapshot (missing, empty or a header alone) while complete
    /// snapshot folders exist is damaged: reading it as "no snapshots" would send the
    /// user to retrain a run that has them.
    fn refuse_unindexed_snapshots(&self, index: &Path) -> Result<()> {
        let steps = self.snapshot_steps()?;
        let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
            return Ok(());
        };
        let state = if index.exists() {
            "lists no snapshots"
        } else {
            "is missing"
        };
        bail!(
            "{} {state}, although {} holds {} complete step-* snapshot folder(s) (steps {first} to {last}): \
             the index is damaged; write it again (a header `step,epoch`, then a row per folder, ascending)",
            index.display(),
            self.snapshots_dir().display(),
            steps.len()
        )
    }

    /// Final weights: burnpack for insilico, safetensors for everyone else.
    pub fn write_final(&self, net: &Network) -> Result<()> {
        replace_with(&self.model_path(), |tmp| {
            net.clone()
                .save_file(tmp)
                .with_context(|| format!("writing {}", tmp.display()))
        })?;
        crate::export::write_safetensors(net, &self.root.join("weights.safetensors"))
    }
}

/// One row of `index.csv` against the row before it: training writes steps ascending,
/// each once, and epochs as finite, non-negative fractions of them, so anything else is
/// a damaged file (read as it is, an unsorted index would reorder training).
fn check_snapshot_row(previous: Option<&Snapshot>, step: usize, epoch: f64) -> Result<()> {
    if !epoch.is_finite() || epoch < 0.0 {
        bail!("epoch {epoch} of step {step}: must be a finite number, at least 0");
    }
    let Some(previous) = previous else {
        return Ok(());
    };
    if step == previous.step {
        bail!("step {step} is listed twice");
    }
    if step < previous.step {
        bail!(
            "step {step} follows step {}: steps must increase from row to row",
            previous.step
        );
    }
    if epoch < previous.epoch {
        bail!(
            "epoch {epoch} of step {step} is below epoch {} of the earlier step {}",
            previous.epoch,
            previous.step
        );
    }
    Ok(())
}

/// Where training stands: complete epochs, and optimizer steps into the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub epochs: usize,
    pub step: usize,
}

impl Position {
    pub fn new(epochs: usize, step: usize) -> Self {
        Self { epochs, step }
    }

    /// The checkpoint directory's name: `epoch-0003`, or `epoch-0003-step-000012`.
    pub fn name(&self) -> String {
        match self.step {
            0 => format!("epoch-{:04}", self.epochs),
            s => format!("epoch-{:04}-step-{s:06}", self.epochs),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("epoch-")?;
        let (epochs, step) = match rest.split_once("-step-") {
            Some((e, s)) => (e.parse().ok()?, s.parse().ok()?),
            None => (rest.parse().ok()?, 0),
        };
        Some(Self { epochs, step })
    }
}

/// The lock file inside a locked directory. It stays after the lock is released: deleting
/// it would let a third process lock a new file while a second still holds the old one.
pub const LOCK_FILE: &str = ".lock";

/// An advisory OS lock (`flock`) on a directory for as long as a process writes it, so
/// that two writers (two `train --out X`, two `--resume`, two sweeps) cannot interleave.
/// The OS releases it when the process ends, killed or not, so a crash never leaves a
/// stale lock. Readers (assays on a finished run) do not take it.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Creates `dir` if needed and locks it, or fails naming the process that holds it.
    /// `what` says what the directory is ("run directory", "sweep directory").
    pub fn acquire(dir: &Path, what: &str) -> Result<Self> {
        use std::io::Write;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("process {pid}"),
                };
                bail!(
                    "{what} {} is being written by {holder} (it holds {}); wait for it to \
                     finish or stop it, or choose another output directory",
                    dir.display(),
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        // Our PID, for the message a second writer gets.
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

/// `manifest.json`: what produced a run, so that it can be reproduced and compared.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub status: String,
    pub model: String,
    pub seed: u64,
    pub insilico_version: String,
    pub burn_version: String,
    pub backend: String,
    pub dataset: String,
    pub dataset_checksum: String,
    pub dataset_source: String,
    pub train_examples: usize,
    pub test_examples: usize,
    pub label_corruption: String,
    pub started_unix: u64,
    pub finished_unix: Option<u64>,
    pub train_seconds: f64,
    pub epochs_completed: usize,
    pub final_train_acc: Option<f64>,
    pub final_test_acc: Option<f64>,
    pub resumed_from: Option<usize>,
    pub command: Vec<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Manifest {
    pub fn begin(
        config: &RunConfig,
        dataset: &Dataset,
        compute: &Compute,
        run: &RunDir,
    ) -> Result<Self> {
        let m = Manifest {
            status: "running".into(),
            model: config.model.name.clone(),
            seed: config.training.seed,
            insilico_version: env!("CARGO_PKG_VERSION").into(),
            burn_version: crate::BURN_VERSION.into(),
            backend: compute.description.clone(),
            dataset: dataset.name.clone(),
            dataset_checksum: dataset.checksum.clone(),
            dataset_source: dataset.source.clone(),
            train_examples: config
                .data
                .train_limit
                .unwrap_or(dataset.train.len())
                .min(dataset.train.len()),
            test_examples: dataset.test.len(),
            label_corruption: format!("{:?}", config.data.corruption()),
            started_unix: unix_now(),
            finished_unix: None,
            train_seconds: 0.0,
            epochs_completed: 0,
            final_train_acc: None,
            final_test_acc: None,
            resumed_from: None,
            command: std::env::args().collect(),
        };
        m.write(run)?;
        Ok(m)
    }

    pub fn finish(&mut self, metrics: &[EpochMetrics], run: &RunDir) -> Result<()> {
        self.status = "complete".into();
        self.finished_unix = Some(unix_now());
        self.train_seconds = metrics.iter().map(|m| m.seconds).sum();
        self.epochs_completed = metrics.len();
        self.final_train_acc = metrics.last().and_then(|m| m.train_acc);
        self.final_test_acc = metrics.last().and_then(|m| m.test_acc);
        self.write(run)
    }

    fn write(&self, run: &RunDir) -> Result<()> {
        write_atomic(
            &run.manifest_path(),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    pub fn read(run: &RunDir) -> Result<Self> {
        let path = run.manifest_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a manifest", path.display()))
    }
}

/// A trained run opened for study: its config, network (evaluation mode) and data.
pub struct TrainedRun {
    pub dir: RunDir,
    pub config: RunConfig,
    pub network: Network,
    pub data: RunData,
    pub compute: Compute,
}

impl TrainedRun {
    /// Opens `dir`: final weights if training finished, else the latest checkpoint.
    pub fn open(dir: &Path, compute: Compute, locator: &Locator) -> Result<Self> {
        let run = RunDir::new(dir);
        if !run.config_path().exists() {
            bail!(
                "{} is not a run directory (no config.toml); train one with `insilico train --out {}`",
                dir.display(),
                dir.display()
            );
        }
        let config = RunConfig::load(&run.config_path(), &[])?;
        let weights = if run.model_path().exists() {
            run.model_path()
        } else if let Some(ckpt) = run.latest_checkpoint()? {
            ckpt.join("model.bpk")
        } else {
            bail!(
                "{} has no checkpoint (neither model.bpk nor checkpoints/latest): its training never completed an epoch",
                dir.display()
            );
        };
        let data = RunData::prepare(&config.data, config.training.seed, locator)?;
        let network = load_network(&config, &data, &compute, &weights)?;
        Ok(Self {
            dir: run,
            config,
            network,
            data,
            compute,
        })
    }

    /// The network with other weights of the same run (a snapshot), in evaluation mode.
    pub fn load_weights(&self, weights: &Path) -> Result<Network> {
        load_network(&self.config, &self.data, &self.compute, weights)
    }
}

fn load_network(
    config: &RunConfig,
    data: &RunData,
    compute: &Compute,
    weights: &Path,
) -> Result<Network> {
    Ok(
        Network::new(&config.model, data.dataset.shape, &compute.device)?
            .try_load_file(weights)
            .with_context(|| format!("loading {}", weights.display()))?
            .valid(),
    )
}

#[cfg(test)]
mod tests {
    use super::{Position, RunDir};

    #[test]
    fn snapshot_index_round_trips_exact_epochs_and_skips_incomplete_snapshots() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path().join("run"));
        // Complete snapshots (a model.bpk) at steps 0, 1, 7 and 30; step 5 has none, as
        // after a kill between its directory and its weights.
        for step in [0, 1, 5, 7, 30] {
            let dir = run.snapshots_dir().join(format!("step-{step:08}"));
            std::fs::create_dir_all(&dir).unwrap();
            if step != 5 {
                std::fs::write(dir.join("model.bpk"), b"w").unwrap();
            }
        }
        // 3 steps per epoch: 1/3 and 7/3 have no finite decimal form, so only a
        // shortest round-tripping format reads back the very same f64.
        run.write_snapshot_index(3).unwrap();
        let read = run.snapshots().unwrap();
        let got: Vec<(usize, f64)> = read.iter().map(|s| (s.step, s.epoch)).collect();
        assert_eq!(got, [(0, 0.0), (1, 1.0 / 3.0), (7, 7.0 / 3.0), (30, 10.0)]);
        let text = std::fs::read_to_string(run.snapshots_dir().join("index.csv")).unwrap();
        assert!(
            text.starts_with("step,epoch\n0,0\n1,0.3333333333333333\n"),
            "{text}"
        );
    }

    /// A run with complete snapshots at steps 0, 1 and 2 and `index` as its index.
    fn run_with_index(tmp: &tempfile::TempDir, index: Option<&str>) -> RunDir {
        let run = RunDir::new(tmp.path().join("run"));
        for step in 0..3 {
            let dir = run.snapshots_dir().join(format!("step-{step:08}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("model.bpk"), b"w").unwrap();
        }
        if let Some(text) = index {
            std::fs::write(run.snapshots_dir().join("index.csv"), text).unwrap();
        }
        run
    }

    #[test]
    fn a_damaged_snapshot_index_is_refused_naming_the_file_and_the_line() {
        // Line 1 is the header, so the n-th row is on line n + 1.
        for (index, line, says) in [
            ("step,epoch\n0,0\n2,1\n1,0.5\n", 4, "step 1 follows step 2"),
            (
                "step,epoch\n0,0\n1,0.5\n1,0.5\n",
                4,
                "step 1 is listed twice",
            ),
            ("step,epoch\n0,0\n1,nan\n", 3, "epoch NaN of step 1"),
            ("step,epoch\n0,0\n1,inf\n", 3, "epoch inf of step 1"),
            ("step,epoch\n0,-0.5\n", 2, "epoch -0.5 of step 0"),
            ("step,epoch\n0,0.5\n1,0.25\n", 3, "below epoch 0.5"),
            ("step,epoch\n0,0\n-1,0.5\n", 3, ""),
            ("0,0\n1,0.5\n", 1, "not the header `step,epoch`"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let run = run_with_index(&tmp, Some(index));
            let err = format!("{:#}", run.snapshots().unwrap_err());
            let file = run.snapshots_dir().join("index.csv");
            let at = format!("{}: line {line}", file.display());
            assert!(err.contains(&at) && err.contains(says), "{index:?}: {err}");
        }
    }

    #[test]
    fn an_index_listing_nothing_beside_snapshot_folders_is_refused() {
        for (index, says) in [
            (Some(""), "lists no snapshots"),
            (Some("step,epoch\n"), "lists no snapshots"),
            (None, "is missing"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let run = run_with_index(&tmp, index);
            let err = format!("{:#}", run.snapshots().unwrap_err());
            assert!(
                err.contains(says) && err.contains("3 complete step-* snapshot folder(s)"),
                "{index:?}: {err}"
            );
        }
        // Without folders, an index listing nothing means no snapshots.
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path().join("run"));
        std::fs::create_dir_all(run.snapshots_dir()).unwrap();
        std::fs::write(run.snapshots_dir().join("index.csv"), "step,epoch\n").unwrap();
        assert!(run.snapshots().unwrap().is_empty());
    }

    #[test]
    fn checkpoint_names_round_trip_and_others_are_not_positions() {
        for at in [
            Position { epochs: 3, step: 0 },
            Position {
                epochs: 0,
                step: 17,
            },
            Position {
                epochs: 12,
                step: 123456,
            },
        ] {
            assert_eq!(Position::parse(&at.name()), Some(at));
        }
        assert_eq!(Position::parse("epoch-0002").unwrap().epochs, 2);
        assert_eq!(
            Position::parse("epoch-0002-step-000005"),
            Some(Position { epochs: 2, step: 5 })
        );
        for other in ["latest", ".epoch-0002.tmp-1", "epoch-", "epoch-2-step-x"] {
            assert_eq!(Position::parse(other), None, "{other}");
        }
    }
}
