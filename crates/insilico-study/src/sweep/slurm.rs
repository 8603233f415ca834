//! The Slurm executor: one job array whose task i runs grid point i with this same
//! program (`insilico sweep FILE --point ID`, on a filesystem every node sees), and a job
//! that depends on it and writes the summary and the report. What was submitted is
//! recorded in `OUT/slurm/jobs.json`, so that `--status` and `--cancel` find it and a
//! second submission leaves out the points that are done, queued or running.
//!
//! Preemption and time limits: tasks are submitted with `--signal=B:USR2@<seconds>` and
//! `--requeue`; a task told to stop checkpoints at the next training step and exits with
//! [`REQUEUE_EXIT`], which the cluster's `RequeueExit` turns into a requeue; the requeued
//! task resumes from that step.

use super::spec::Point;
use super::Sweep;
use crate::options::{at_least, Options};
use anyhow::{bail, Context, Result};
use clap::Args;
use insilico_data::fsx::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The exit code with which a grid point's task asks Slurm to requeue it (the cluster's
/// `RequeueExit` must list it; `scripts/slurm/start.sh` sets it).
pub const REQUEUE_EXIT: i32 = 85;

/// Seconds before the time limit at which Slurm warns a task (`--signal=B:USR2@90`).
pub const DEFAULT_SIGNAL_SECONDS: u32 = 90;

/// How the sweep's jobs are submitted: flags, or the experiment file's `[slurm]` table
/// (a flag wins over the file). Unset fields are left to the cluster's defaults.
#[derive(Args, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmOptions {
    /// Slurm partition (default: the cluster's default partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit of each grid point's task, in Slurm's format (`90`, `2:00:00`,
    /// `1-12:00:00`).
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs per grid point's task (its training threads).
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Memory per grid point's task (`4G`, `8000M`).
    #[arg(long)]
    pub mem: Option<String>,
    /// Generic resources per task, e.g. `gpu:1` (then pass `--device wgpu`).
    #[arg(long)]
    pub gres: Option<String>,
    /// Grid points running at once (the array's `%N` throttle).
    #[arg(long)]
    pub array_parallelism: Option<u32>,
    /// Account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// Seconds before the time limit at which a task is told to checkpoint and requeue
    /// [default: 90].
    #[arg(long)]
    pub signal_seconds: Option<u32>,
    /// Extra argument for sbatch, repeatable (`--sbatch-arg=--qos=long`).
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    #[serde(rename = "sbatch_args")]
    pub sbatch_args: Vec<String>,
}

impl Options for SlurmOptions {
    const SECTION: &'static str = "slurm";

    fn validate(&self) -> Result<()> {
        let s = Self::SECTION;
        for (field, value) in [
            ("partition", &self.partition),
            ("time", &self.time),
            ("mem", &self.mem),
            ("gres", &self.gres),
            ("account", &self.account),
        ] {
            if let Some(v) = value {
                if v.is_empty() || v.chars().any(char::is_whitespace) {
                    bail!("{s}.{field} = {v:?}: must be a non-empty word without spaces");
                }
            }
        }
        if let Some(n) = self.cpus_per_task {
            at_least(s, "cpus_per_task", n, 1)?;
        }
        if let Some(n) = self.array_parallelism {
            at_least(s, "array_parallelism", n, 1)?;
        }
        at_least(s, "signal_seconds", self.signal_seconds(), 1)?;
        if let Some(m) = &self.mem {
            let digits = m.trim_end_matches(['K', 'M', 'G', 'T']);
            if digits.len() + 1 < m.len() || digits.parse::<u64>().is_err() {
                bail!("{s}.mem = {m:?}: expected a number with an optional unit K, M, G or T (e.g. 4G)");
            }
        }
        if let Some(t) = &self.time {
            let Some(secs) = time_limit_seconds(t) else {
                bail!("{s}.time = {t:?}: expected Slurm's format: minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes or days-hours:minutes:seconds");
            };
            if secs <= u64::from(self.signal_seconds()) {
                bail!(
                    "{s}.time = {t:?} ({secs} s) leaves no time before the warning signal \
                     ({s}.signal_seconds = {}): give a longer time limit",
                    self.signal_seconds()
                );
            }
        }
        Ok(())
    }
}

impl SlurmOptions {
    pub fn signal_seconds(&self) -> u32 {
        self.signal_seconds.unwrap_or(DEFAULT_SIGNAL_SECONDS)
    }

    /// These options (from flags) over `file`'s: a field set here wins.
    pub fn over(&self, file: &SlurmOptions) -> SlurmOptions {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            a.clone().or_else(|| b.clone())
        }
        SlurmOptions {
            partition: pick(&self.partition, &file.partition),
            time: pick(&self.time, &file.time),
            cpus_per_task: pick(&self.cpus_per_task, &file.cpus_per_task),
            mem: pick(&self.mem, &file.mem),
            gres: pick(&self.gres, &file.gres),
            array_parallelism: pick(&self.array_parallelism, &file.array_parallelism),
            account: pick(&self.account, &file.account),
            signal_seconds: pick(&self.signal_seconds, &file.signal_seconds),
            sbatch_args: if self.sbatch_args.is_empty() {
                file.sbatch_args.clone()
            } else {
                self.sbatch_args.clone()
            },
        }
    }

    /// The sbatch arguments of a grid point's task.
    fn task_args(&self) -> Vec<String> {
        let mut a = vec![
            "--requeue".to_string(),
            format!("--signal=B:USR2@{}", self.signal_seconds()),
        ];
        let flags = [
            ("--time", &self.time),
            ("--mem", &self.mem),
            ("--gres", &self.gres),
        ];
        a.extend(
            flags
                .iter()
                .filter_map(|(f, v)| v.as_ref().map(|v| format!("{f}={v}"))),
        );
        if let Some(n) = self.cpus_per_task {
            a.push(format!("--cpus-per-task={n}"));
        }
        a.extend(self.common_args());
        a
    }

    /// The sbatch arguments every job of the sweep shares.
    fn common_args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            ("--partition", &self.partition),
            ("--account", &self.account),
        ]
        .iter()
        .filter_map(|(f, v)| v.as_ref().map(|v| format!("{f}={v}")))
        .collect();
        a.extend(self.sbatch_args.iter().cloned());
        a
    }
}

/// Seconds of a Slurm time limit: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
pub fn time_limit_seconds(t: &str) -> Option<u64> {
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d.parse::<u64>().ok()?), r),
        None => (None, t),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = match (days.is_some(), parts.as_slice()) {
        (false, [m]) => (0, *m, 0),
        (false, [m, s]) => (0, *m, *s),
        (false, [h, m, s]) | (true, [h, m, s]) => (*h, *m, *s),
        (true, [h]) => (*h, 0, 0),
        (true, [h, m]) => (*h, *m, 0),
        _ => return None,
    };
    Some(days.unwrap_or(0) * 86400 + h * 3600 + m * 60 + s)
}

/// One submission: a job array (task i ran `points[i]`) and its summary job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    pub array_job: String,
    pub summary_job: Option<String>,
    pub points: Vec<String>,
    pub script: PathBuf,
    /// Seconds since the Unix epoch.
    pub submitted: u64,
}

/// Where a sweep keeps what it submitted: `OUT/slurm/`.
pub fn slurm_dir(out: &Path) -> PathBuf {
    out.join("slurm")
}

fn jobs_path(out: &Path) -> PathBuf {
    slurm_dir(out).join("jobs.json")
}

/// The submissions recorded in the sweep directory (none if it has none).
pub fn read_submissions(out: &Path) -> Result<Vec<Submission>> {
    let path = jobs_path(out);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn write_submissions(out: &Path, all: &[Submission]) -> Result<()> {
    write_atomic(
        &jobs_path(out),
        serde_json::to_string_pretty(all)?.as_bytes(),
    )
}

/// The log of task `index` of an array (sbatch's `--output=%A_%a.log`).
pub fn task_log(out: &Path, array_job: &str, index: usize) -> PathBuf {
    slurm_dir(out)
        .join("logs")
        .join(format!("{array_job}_{index}.log"))
}

/// Runs a Slurm command; its stdout, or an error with its message.
fn slurm(cmd: &str, args: &[String]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a program is on the PATH.
pub fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// The sbatch client, or an error that says what is missing.
fn require_sbatch() -> Result<()> {
    if !on_path("sbatch") {
        bail!(
            "--executor slurm: `sbatch` is not on the PATH. Run this on a Slurm login node \
             (or load its module, e.g. `module load slurm`), or use the local executor \
             (`--jobs N`). Nothing was submitted."
        );
    }
    Ok(())
}

/// The directories that are usually local to each node of a cluster.
fn node_local_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["/tmp", "/var/tmp", "/dev/shm", "/run/user"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(t) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
        roots.push(PathBuf::from(t));
    }
    roots
}

/// A warning when `path` (absolute) lies in a node-local temporary directory.
pub fn node_local_warning(what: &str, path: &Path) -> Option<String> {
    let root = node_local_roots()
        .into_iter()
        .find(|r| path.starts_with(r))?;
    Some(format!(
        "warning: the {what} {} is under {}, which is usually local to each node: \
         tasks on other nodes will not find it. Use a shared filesystem (home or project \
         directory) unless the cluster is this one machine.",
        path.display(),
        root.display()
    ))
}

/// Refuses a partition the cluster does not have (when `sinfo` answers).
fn check_partition(partition: Option<&str>) -> Result<()> {
    let Some(p) = partition else { return Ok(()) };
    let Ok(list) = slurm("sinfo", &["-h".into(), "-o".into(), "%R".into()]) else {
        return Ok(()); // sbatch will refuse it with its own message
    };
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !names.contains(&p) {
        bail!(
            "slurm.partition = {p:?}: the cluster has no such partition (partitions: {}). \
             Nothing was submitted.",
            names.join(", ")
        );
    }
    Ok(())
}

/// Warns when the cluster would not requeue a task that exits with [`REQUEUE_EXIT`].
fn check_requeue_exit() {
    let Ok(config) = slurm("scontrol", &["show".into(), "config".into()]) else {
        return;
    };
    let listed = config.lines().any(|l| {
        l.split_once('=').is_some_and(|(k, v)| {
            k.trim() == "RequeueExit"
                && v.split(|c: char| c == ',' || c.is_whitespace())
                    .any(|code| code == REQUEUE_EXIT.to_string())
        })
    });
    if !listed {
        eprintln!(
            "warning: this cluster's RequeueExit does not list {REQUEUE_EXIT}: a task stopped \
             by a time limit or preemption checkpoints and shows as failed; run the same \
             command again to resume it from its checkpoint."
        );
    }
}

/// A word in single quotes for bash.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn command_line(exe: &Path, args: &[String]) -> String {
    std::iter::once(quote(&exe.display().to_string()))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The array's batch script: task i runs `points[i]`.
fn array_script(exe: &Path, args: &[String], points: &[&Point]) -> String {
    let ids: Vec<String> = points
        .iter()
        .map(|p| format!("  {}", quote(&p.id)))
        .collect();
    format!(
        "#!/bin/bash\n\
         # Written by `insilico sweep --executor slurm`: array task i runs grid point i.\n\
         # exec, so that Slurm's warning signal (B:USR2) reaches insilico itself.\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         points=(\n{}\n)\n\
         exec {} --point \"${{points[$SLURM_ARRAY_TASK_ID]}}\"\n",
        ids.join("\n"),
        command_line(exe, args)
    )
}

fn summary_script(exe: &Path, args: &[String]) -> String {
    format!(
        "#!/bin/bash\n\
         # Written by `insilico sweep --executor slurm`: the summary and the report.\n\
         exec {} --summary-only --when-done\n",
        command_line(exe, args)
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// sbatch's `--parsable` answer: `JOBID` or `JOBID;CLUSTER`.
fn job_id(parsable: &str) -> Result<String> {
    let id = parsable.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch answered {parsable:?}, not a job id");
    }
    Ok(id)
}

/// What a submission did.
pub enum Submitted {
    /// Every point is done: nothing was submitted.
    AllDone,
    /// Points are queued or running from an earlier submission; nothing new to submit.
    AlreadyQueued(usize),
    Jobs(Submission),
}

impl Sweep {
    /// Submits the points that are neither done nor queued nor running, as one job
    /// array and a summary job after it. `child` is the command line of this sweep for
    /// one point (without `--point`), with absolute paths.
    pub fn submit_slurm(
        &self,
        options: &SlurmOptions,
        exe: &Path,
        child: &[String],
    ) -> Result<Submitted> {
        require_sbatch()?;
        options.validate()?;
        check_partition(options.partition.as_deref())?;
        for (what, path) in [
            ("sweep directory", &self.out),
            ("program", &exe.to_path_buf()),
        ] {
            if let Some(w) = node_local_warning(what, &absolute(path)?) {
                eprintln!("{w}");
            }
        }
        let mut all = read_submissions(&self.out)?;
        let tasks = task_states(&all);
        let active = active_points(&all, &tasks);
        let todo: Vec<&Point> = self
            .todo()
            .into_iter()
            .filter(|p| !active.contains(&p.id))
            .collect();
        if todo.is_empty() {
            return Ok(match active.len() {
                0 => Submitted::AllDone,
                n => Submitted::AlreadyQueued(n),
            });
        }
        check_requeue_exit();
        self.begin()?;
        let logs = slurm_dir(&self.out).join("logs");
        std::fs::create_dir_all(&logs)?;
        let script = slurm_dir(&self.out).join(format!("array-{}.sh", all.len()));
        write_atomic(&script, array_script(exe, child, &todo).as_bytes())?;
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name=insilico-{}", self.spec.name),
            format!("--array=0-{}{}", todo.len() - 1, throttle(options)),
            format!("--output={}", logs.join("%A_%a.log").display()),
            "--open-mode=append".into(),
        ];
        args.extend(options.task_args());
        args.push(script.display().to_string());
        let array_job = job_id(&slurm("sbatch", &args).context("Slurm refused the job array")?)?;
        all.push(Submission {
            array_job: array_job.clone(),
            summary_job: None,
            points: todo.iter().map(|p| p.id.clone()).collect(),
            script,
            submitted: unix_now(),
        });
        // Recorded before the summary job is submitted, so that --status and --cancel
        // find the array even if that submission fails.
        write_submissions(&self.out, &all)?;
        let summary = self.submit_summary(options, exe, child, &array_job)?;
        all.last_mut().expect("just pushed").summary_job = Some(summary);
        write_submissions(&self.out, &all)?;
        Ok(Submitted::Jobs(all.pop().expect("just pushed")))
    }

    fn submit_summary(
        &self,
        options: &SlurmOptions,
        exe: &Path,
        child: &[String],
        array_job: &str,
    ) -> Result<String> {
        let script = slurm_dir(&self.out).join("summary.sh");
        write_atomic(&script, summary_script(exe, child).as_bytes())?;
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name=insilico-{}-summary", self.spec.name),
            // Not afterok: Slurm 22.05 counts a task's requeue exit as a failure and
            // never runs an afterok job after a requeued task. After any end, the job
            // writes the summary only if every point is done (`--when-done`).
            format!("--dependency=afterany:{array_job}"),
            format!(
                "--output={}",
                slurm_dir(&self.out).join("logs/summary_%j.log").display()
            ),
        ];
        args.extend(options.time.iter().map(|t| format!("--time={t}")));
        args.extend(options.common_args());
        args.push(script.display().to_string());
        job_id(&slurm("sbatch", &args).context("Slurm refused the summary job")?)
    }
}

fn throttle(options: &SlurmOptions) -> String {
    options
        .array_parallelism
        .map(|n| format!("%{n}"))
        .unwrap_or_default()
}

/// An absolute form of `path` (its parent made canonical where it exists).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    if path.exists() {
        return path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()));
    }
    Ok(std::env::current_dir()?.join(path))
}

/// What Slurm says about one array task (`scontrol show job -o`).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    pub job_id: String,
    pub state: String,
    pub restarts: u32,
    pub exit_code: String,
    pub reason: String,
}

/// The array tasks Slurm knows, by (array job, task index); empty when Slurm does not
/// answer.
pub fn task_states(subs: &[Submission]) -> BTreeMap<(String, usize), TaskInfo> {
    if subs.is_empty() {
        return BTreeMap::new();
    }
    match slurm("scontrol", &["show".into(), "job".into(), "-o".into()]) {
        Ok(text) => parse_jobs(&text),
        Err(_) => BTreeMap::new(),
    }
}

/// Parses `scontrol show job -o` (one line per job or per group of pending tasks, as
/// `Key=Value` words) into array tasks.
pub fn parse_jobs(text: &str) -> BTreeMap<(String, usize), TaskInfo> {
    let mut tasks = BTreeMap::new();
    for fields in records(text) {
        let (Some(array), Some(ids)) = (fields.get("ArrayJobId"), fields.get("ArrayTaskId")) else {
            continue;
        };
        let info = TaskInfo {
            job_id: fields.get("JobId").unwrap_or(&"").to_string(),
            state: fields.get("JobState").unwrap_or(&"UNKNOWN").to_string(),
            restarts: fields
                .get("Restarts")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            exit_code: fields.get("ExitCode").unwrap_or(&"").to_string(),
            reason: fields.get("Reason").unwrap_or(&"").to_string(),
        };
        for index in task_ids(ids) {
            tasks.insert((array.to_string(), index), info.clone());
        }
    }
    tasks
}

/// The `Key=Value` words of each line of `scontrol show job -o`.
fn records(text: &str) -> impl Iterator<Item = BTreeMap<&str, &str>> {
    text.lines().map(|line| {
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect()
    })
}

/// The indices of an `ArrayTaskId` field: `3`, `0-4`, `1,3-5`, with a `%N` throttle.
fn task_ids(field: &str) -> Vec<usize> {
    let list = field.split('%').next().unwrap_or("");
    let mut ids = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    ids.extend(a..=b);
                }
            }
            None => ids.extend(part.parse::<usize>().ok()),
        }
    }
    ids
}

/// Where a grid point stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointStatus {
    Done,
    Running,
    Pending,
    Failed,
    /// Never submitted, or Slurm no longer knows its task and it is not done.
    NotDone,
}

impl PointStatus {
    pub fn name(self) -> &'static str {
        match self {
            PointStatus::Done => "done",
            PointStatus::Running => "running",
            PointStatus::Pending => "pending",
            PointStatus::Failed => "failed",
            PointStatus::NotDone => "not done",
        }
    }

    fn of_state(state: &str) -> Self {
        match state {
            "RUNNING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" | "SUSPENDED" | "STOPPED" => {
                PointStatus::Running
            }
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "CONFIGURING"
            | "RESIZING" => PointStatus::Pending,
            // COMPLETED without the point's outputs on disk is a failure too.
            _ => PointStatus::Failed,
        }
    }
}

/// One row of `--status`.
#[derive(Clone, Debug)]
pub struct PointRow {
    pub id: String,
    pub status: PointStatus,
    /// `ARRAY_INDEX` of its latest task, if it was submitted.
    pub task: Option<String>,
    pub slurm: Option<TaskInfo>,
    pub log: Option<PathBuf>,
}

/// The latest submission of each point: (array job, index).
fn latest_tasks(subs: &[Submission]) -> BTreeMap<&str, (&str, usize)> {
    let mut latest = BTreeMap::new();
    for s in subs {
        for (i, id) in s.points.iter().enumerate() {
            latest.insert(id.as_str(), (s.array_job.as_str(), i));
        }
    }
    latest
}

fn active_points(subs: &[Submission], tasks: &BTreeMap<(String, usize), TaskInfo>) -> Vec<String> {
    latest_tasks(subs)
        .into_iter()
        .filter(|(_, (job, i))| {
            tasks.get(&(job.to_string(), *i)).is_some_and(|t| {
                matches!(
                    PointStatus::of_state(&t.state),
                    PointStatus::Running | PointStatus::Pending
                )
            })
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

impl Sweep {
    /// Every point's status, from the sweep directory and (where it answers) Slurm.
    pub fn slurm_status(&self) -> Result<Vec<PointRow>> {
        let subs = read_submissions(&self.out)?;
        let tasks = task_states(&subs);
        let latest = latest_tasks(&subs);
        let rows = self.points.iter().map(|p| {
            let submitted = latest.get(p.id.as_str());
            let info = submitted.and_then(|(job, i)| tasks.get(&(job.to_string(), *i)));
            let status = if super::exec::point_done(&self.out, p, &self.spec.assays) {
                PointStatus::Done
            } else {
                info.map_or(PointStatus::NotDone, |t| PointStatus::of_state(&t.state))
            };
            PointRow {
                id: p.id.clone(),
                status,
                task: submitted.map(|(job, i)| format!("{job}_{i}")),
                slurm: info.cloned(),
                log: submitted.map(|(job, i)| task_log(&self.out, job, *i)),
            }
        });
        Ok(rows.collect())
    }

    /// Cancels this sweep's jobs that are still queued or running; returns their ids.
    pub fn slurm_cancel(&self) -> Result<Vec<String>> {
        let subs = read_submissions(&self.out)?;
        if subs.is_empty() {
            bail!(
                "{} records no Slurm jobs (nothing was submitted from this sweep directory)",
                jobs_path(&self.out).display()
            );
        }
        if !on_path("scancel") {
            bail!("`scancel` is not on the PATH: run --cancel where Slurm's commands are");
        }
        let ids: Vec<String> = subs
            .iter()
            .flat_map(|s| std::iter::once(s.array_job.clone()).chain(s.summary_job.clone()))
            .collect();
        let live = live_jobs(&ids)?;
        if !live.is_empty() {
            slurm("scancel", &live)?;
        }
        Ok(live)
    }
}

/// The ids among `ids` (array or plain jobs) that still have a task queued or running.
fn live_jobs(ids: &[String]) -> Result<Vec<String>> {
    let text = slurm("scontrol", &["show".into(), "job".into(), "-o".into()])?;
    let mut live = Vec::new();
    for fields in records(&text) {
        let id = fields.get("ArrayJobId").or(fields.get("JobId")).copied();
        let state = fields.get("JobState").copied().unwrap_or("");
        let running = matches!(
            PointStatus::of_state(state),
            PointStatus::Running | PointStatus::Pending
        );
        if let Some(id) = id.filter(|id| running && ids.iter().any(|i| i == id)) {
            if !live.iter().any(|l| l == id) {
                live.push(id.to_string());
            }
        }
    }
    Ok(live)
}

/// The last `n` lines of a log (empty when it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_limits_in_every_format() {
        assert_eq!(time_limit_seconds("90"), Some(90 * 60));
        assert_eq!(time_limit_seconds("5:30"), Some(5 * 60 + 30));
        assert_eq!(time_limit_seconds("2:00:00"), Some(7200));
        assert_eq!(time_limit_seconds("1-12"), Some(86400 + 12 * 3600));
        assert_eq!(time_limit_seconds("1-0:30"), Some(86400 + 1800));
        assert_eq!(time_limit_seconds("2-1:2:3"), Some(2 * 86400 + 3723));
        for bad in ["", "x", "1:2:3:4", "1-", "-5", "1-2:3:4:5", "1h"] {
            assert_eq!(time_limit_seconds(bad), None, "{bad}");
        }
    }

    fn refused(o: SlurmOptions) -> String {
        format!("{:#}", o.validate().unwrap_err())
    }

    #[test]
    fn bad_options_are_refused_naming_the_field() {
        let d = SlurmOptions::default();
        assert!(d.validate().is_ok());
        let time = |t: &str| SlurmOptions {
            time: Some(t.into()),
            ..d.clone()
        };
        assert!(refused(time("2 hours")).contains("slurm.time"));
        assert!(refused(time("2h")).contains("slurm.time = \"2h\""));
        // 1:30 is exactly the default warning's 90 seconds: nothing left to train.
        assert!(refused(time("1:30")).contains("signal_seconds = 90"));
        assert!(time("1:31").validate().is_ok());
        let mem = |m: &str| SlurmOptions {
            mem: Some(m.into()),
            ..d.clone()
        };
        assert!(mem("4G").validate().is_ok() && mem("8000").validate().is_ok());
        assert!(refused(mem("4GB")).contains("slurm.mem"));
        assert!(refused(mem("G")).contains("slurm.mem"));
        assert!(refused(SlurmOptions {
            cpus_per_task: Some(0),
            ..d.clone()
        })
        .contains("slurm.cpus_per_task = 0"));
        assert!(refused(SlurmOptions {
            partition: Some(String::new()),
            ..d
        })
        .contains("slurm.partition"));
    }

    #[test]
    fn flags_win_over_the_file_field_by_field() {
        let file = SlurmOptions {
            partition: Some("long".into()),
            time: Some("4:00:00".into()),
            sbatch_args: vec!["--qos=low".into()],
            ..Default::default()
        };
        let flags = SlurmOptions {
            time: Some("1:00:00".into()),
            ..Default::default()
        };
        let m = flags.over(&file);
        assert_eq!(m.partition.as_deref(), Some("long"));
        assert_eq!(m.time.as_deref(), Some("1:00:00"));
        assert_eq!(m.sbatch_args, vec!["--qos=low".to_string()]);
    }

    #[test]
    fn scontrol_lines_become_tasks_with_pending_ranges_expanded() {
        let text = "JobId=7 ArrayJobId=5 ArrayTaskId=2-3%2 JobState=PENDING Reason=JobArrayTaskLimit Restarts=0 ExitCode=0:0\n\
                    JobId=9 ArrayJobId=5 ArrayTaskId=1 JobState=FAILED Reason=NonZeroExitCode Restarts=1 ExitCode=3:0\n\
                    JobId=8 ArrayJobId=5 ArrayTaskId=0 JobState=RUNNING Restarts=0 ExitCode=0:0\n\
                    JobId=10 JobState=PENDING Reason=Dependency\n";
        let t = parse_jobs(text);
        assert_eq!(t.len(), 4);
        assert_eq!(t[&("5".into(), 1)].state, "FAILED");
        assert_eq!(t[&("5".into(), 1)].restarts, 1);
        assert_eq!(t[&("5".into(), 1)].exit_code, "3:0");
        assert_eq!(t[&("5".into(), 3)].state, "PENDING");
        assert_eq!(t[&("5".into(), 0)].job_id, "8");
        assert_eq!(task_ids("1,3-5"), vec![1, 3, 4, 5]);
    }

    #[test]
    fn the_batch_script_quotes_every_word() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(job_id("123;cluster\n").unwrap(), "123");
        assert!(job_id("sbatch: error").is_err());
    }

    #[test]
    fn temporary_directories_are_node_local() {
        assert!(node_local_warning("sweep directory", Path::new("/tmp/x")).is_some());
        assert!(node_local_warning("sweep directory", Path::new("/dev/shm/x")).is_some());
        assert!(node_local_warning("sweep directory", Path::new("/home/me/x")).is_none());
        assert!(node_local_warning("sweep directory", Path::new("/tmpfoo")).is_none());
    }
}
