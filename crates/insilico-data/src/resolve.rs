//! Finding a dataset's files, checking them, and fetching what is missing.
//!
//! Resolution order, first complete match wins:
//! 1. the explicit `data_dir` (a `--data-dir` flag),
//! 2. `$INSILICO_DATA`,
//! 3. the per-user cache (`<cache_dir>/insilico/datasets`),
//! 4. OS install locations from the manifest (Debian's
//!    `/usr/share/datasets/fashion-mnist`),
//! 5. a download into the cache, if allowed.
//!
//! A root counts only if it holds *all* of a dataset's files: mixing files
//! from two places would make "where did this data come from" unanswerable.
//! Within a root, a file may sit in `<root>/<dataset>/` or directly in
//! `<root>/` (when the root is the dataset folder itself), optionally in the
//! manifest's `subdir`, gzipped (`.gz`, preferred) or not.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::content;
use crate::download;
use crate::error::{DataError, Result};
use crate::fsx::sha256_hex;
use crate::idx::read_decompressed;
use crate::manifest::{DatasetEntry, FileEntry, Format, Manifest, Role};

/// Environment variable naming a data root.
pub const ENV_VAR: &str = "INSILICO_DATA";

/// Where a file was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Source {
    DataDir,
    Env,
    Cache,
    Debian,
    Downloaded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::DataDir => "--data-dir",
            Source::Env => "$INSILICO_DATA",
            Source::Cache => "cache",
            Source::Debian => "system package",
            Source::Downloaded => "downloaded",
        })
    }
}

/// One located file.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundFile {
    pub entry: FileEntry,
    pub path: PathBuf,
    pub source: Source,
}

/// Where each file of a dataset is. Empty `files` for generated datasets.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub dataset: String,
    pub files: Vec<FoundFile>,
}

impl Location {
    /// The located file called `name` (manifest name, without `.gz`).
    pub fn get(&self, name: &str) -> Option<&FoundFile> {
        self.files.iter().find(|f| f.entry.name == name)
    }

    /// "/data/mnist ($INSILICO_DATA)", or one entry per directory if the
    /// files are spread out (a partial cache topped up by a download).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for f in &self.files {
            let dir = f.path.parent().unwrap_or(Path::new("")).display();
            let s = format!("{dir} ({})", f.source);
            if !parts.contains(&s) {
                parts.push(s);
            }
        }
        if parts.is_empty() {
            "generated in code".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// The outcome of checking one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Digest matches the manifest.
    Ok,
    /// Digest differs from the manifest.
    Mismatch { expected: String },
    /// The manifest has no digest for this file; its content is unverified.
    Unchecked,
    /// The file could not be read or decompressed.
    Unreadable(String),
    /// The file reads but is not what the dataset's format says: a bad header or length,
    /// a label that is not a class, or a wrong number of examples. The text names the file.
    Invalid(String),
}

/// The result of checking one located file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileReport {
    pub name: String,
    pub path: PathBuf,
    pub source: Source,
    /// SHA-256 of the decompressed content, if it could be read.
    pub sha256: Option<String>,
    pub verdict: Verdict,
}

impl FileReport {
    /// True if the file may be used: verified, or unverifiable by design.
    pub fn is_ok(&self) -> bool {
        matches!(self.verdict, Verdict::Ok | Verdict::Unchecked)
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.verdict {
            Verdict::Ok => write!(
                f,
                "ok          {path}  sha256 {}",
                self.sha256.as_deref().unwrap_or("")
            ),
            Verdict::Unchecked => write!(
                f,
                "unverified  {path}  sha256 {} (the manifest has no checksum for this file)",
                self.sha256.as_deref().unwrap_or("")
            ),
            Verdict::Mismatch { expected } => write!(
                f,
                "MISMATCH    {path}  expected sha256 {expected}, found {}",
                self.sha256.as_deref().unwrap_or("")
            ),
            Verdict::Unreadable(why) => write!(f, "UNREADABLE  {path}  {why}"),
            Verdict::Invalid(why) => write!(f, "INVALID     {why}"),
        }
    }
}

/// What `insilico data list` shows for one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetStatus {
    pub name: String,
    pub generated: bool,
    /// Where it was found; `None` if not found (see `problem`).
    pub location: Option<Location>,
    pub reports: Vec<FileReport>,
    /// Why it is not usable, if it is not.
    pub problem: Option<String>,
}

impl DatasetStatus {
    /// Found (or generated) and every file passes.
    pub fn usable(&self) -> bool {
        self.problem.is_none() && self.reports.iter().all(FileReport::is_ok)
    }
}

impl fmt::Display for DatasetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.generated {
            return write!(f, "{}: available (generated in code)", self.name);
        }
        if let Some(p) = &self.problem {
            return write!(f, "{}: not available: {p}", self.name);
        }
        let loc = self
            .location
            .as_ref()
            .map(Location::describe)
            .unwrap_or_default();
        let bad = self.reports.iter().filter(|r| !r.is_ok()).count();
        let unchecked = self
            .reports
            .iter()
            .filter(|r| r.verdict == Verdict::Unchecked)
            .count();
        if bad > 0 {
            write!(
                f,
                "{}: CORRUPT ({bad} of {} files fail verification) at {loc}",
                self.name,
                self.reports.len()
            )?;
            for r in self.reports.iter().filter(|r| !r.is_ok()) {
                write!(f, "\n  {r}")?;
            }
            Ok(())
        } else if unchecked > 0 {
            write!(
                f,
                "{}: found at {loc}; {unchecked} files unverified (no checksums in the manifest)",
                self.name
            )
        } else {
            write!(
                f,
                "{}: ok, {} files verified, at {loc}",
                self.name,
                self.reports.len()
            )
        }
    }
}

/// Decides where datasets come from. All fields are public so that callers
/// (and tests) can build one without touching the process environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locator {
    /// Explicit data root; searched first.
    pub data_dir: Option<PathBuf>,
    /// Whether a missing dataset may be downloaded into the cache.
    pub allow_download: bool,
    /// Replaces the mirrors' base URL (`<base>/<file>.gz`): local mirrors,
    /// loopback test servers.
    pub base_url_override: Option<String>,
    /// The value of `$INSILICO_DATA` (injected so tests need not set it).
    pub env_dir: Option<PathBuf>,
    /// Download cache root; `None` if the system has no cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Whether to search OS install locations (`system_dirs` in the manifest).
    pub system_dirs: bool,
}

impl Locator {
    /// The normal configuration: `$INSILICO_DATA`, the user cache, system
    /// locations, downloads allowed.
    pub fn from_env(data_dir: Option<PathBuf>) -> Locator {
        let env_dir = std::env::var_os(ENV_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Locator {
            data_dir,
            allow_download: true,
            base_url_override: None,
            env_dir,
            cache_dir: default_cache_dir(),
            system_dirs: true,
        }
    }

    /// Finds `name`'s files, downloading if allowed and needed.
    pub fn locate(&self, name: &str) -> Result<Location> {
        self.locate_entry(Manifest::embedded().get(name)?)
    }

    /// [`Locator::locate`] for an explicit manifest entry.
    pub fn locate_entry(&self, entry: &DatasetEntry) -> Result<Location> {
        if entry.format == Format::Generated {
            return Ok(empty_location(entry));
        }
        let (found, partial) = self.search(entry);
        if let Some(loc) = found {
            return Ok(loc);
        }
        if !self.allow_download {
            return Err(self.not_found(entry, &partial));
        }
        // A folder missing one file is the likelier mistake than the mirrors being down:
        // say so, rather than only which download failed.
        self.fetch_entry(entry)
            .map_err(|e| match partial.is_empty() {
                true => e,
                false => DataError::NotFound {
                    dataset: entry.name.clone(),
                    detail: format!(
                        "incomplete: {}; downloading it instead failed: {e}",
                        partial.join("; ")
                    ),
                },
            })
    }

    /// Reports whether `name` is available and whether its files verify.
    /// Never downloads.
    pub fn status(&self, name: &str) -> DatasetStatus {
        let mut st = DatasetStatus {
            name: name.to_string(),
            generated: false,
            location: None,
            reports: Vec::new(),
            problem: None,
        };
        let entry = match Manifest::embedded().get(name) {
            Ok(e) => e,
            Err(e) => {
                st.problem = Some(e.to_string());
                return st;
            }
        };
        st.generated = entry.format == Format::Generated;
        match self.offline().locate_entry(entry) {
            Ok(loc) => {
                st.reports = verify_location(entry, &loc);
                st.location = Some(loc);
            }
            Err(e) => st.problem = Some(e.to_string()),
        }
        st
    }

    /// Checks every located file of `name` against the manifest. Never
    /// downloads; a missing dataset is an error, a bad file is a report.
    pub fn verify(&self, name: &str) -> Result<Vec<FileReport>> {
        self.verify_entry(Manifest::embedded().get(name)?)
    }

    /// [`Locator::verify`] for an explicit manifest entry.
    pub fn verify_entry(&self, entry: &DatasetEntry) -> Result<Vec<FileReport>> {
        Ok(verify_location(entry, &self.offline().locate_entry(entry)?))
    }

    /// Makes sure the cache holds a verified copy of `name`: files already
    /// there and verifying are kept, the others are downloaded.
    pub fn fetch(&self, name: &str) -> Result<Location> {
        self.fetch_entry(Manifest::embedded().get(name)?)
    }

    /// [`Locator::fetch`] for an explicit manifest entry.
    pub fn fetch_entry(&self, entry: &DatasetEntry) -> Result<Location> {
        if entry.format == Format::Generated {
            return Ok(empty_location(entry));
        }
        let cache = self
            .cache_dir
            .as_deref()
            .ok_or_else(|| DataError::NotFound {
                dataset: entry.name.clone(),
                detail: "this system has no per-user cache directory to download into; \
                     pass --data-dir or set INSILICO_DATA"
                    .to_string(),
            })?;
        let mut files = Vec::new();
        let mut missing = Vec::new();
        for f in &entry.files {
            match find_in_root(cache, entry, f).filter(|p| cached_file_ok(p, f)) {
                Some(path) => files.push(found(f, path, Source::Cache)),
                None => missing.push(f),
            }
        }
        if !missing.is_empty() {
            files.extend(self.download(entry, cache, &missing)?);
        }
        // Keep manifest order.
        files.sort_by_key(|ff| entry.files.iter().position(|f| f.name == ff.entry.name));
        Ok(Location {
            dataset: entry.name.clone(),
            files,
        })
    }

    fn download(
        &self,
        entry: &DatasetEntry,
        cache: &Path,
        missing: &[&FileEntry],
    ) -> Result<Vec<FoundFile>> {
        let base = self.base_url_override.as_deref();
        // Proxies only for the real mirrors: an override is local by intent.
        let use_proxy = base.is_none();
        let dir = cache.join(&entry.name);
        if !entry.archive_urls.is_empty() {
            let dir = match &entry.subdir {
                Some(s) => dir.join(s),
                None => dir,
            };
            let urls = download::archive_urls(entry, base);
            let written = download::fetch_archive(missing, &urls, &dir, use_proxy)?;
            return Ok(missing
                .iter()
                .map(|f| found(f, written[&f.name].clone(), Source::Downloaded))
                .collect());
        }
        missing
            .iter()
            .map(|f| {
                let urls = download::file_urls(f, base);
                download::fetch_file(f, &urls, &dir, use_proxy)
                    .map(|p| found(f, p, Source::Downloaded))
            })
            .collect()
    }

    /// This locator without downloads.
    fn offline(&self) -> Locator {
        Locator {
            allow_download: false,
            ..self.clone()
        }
    }

    /// The roots to search, in priority order.
    fn roots(&self, entry: &DatasetEntry) -> Vec<(PathBuf, Source)> {
        let mut roots = Vec::new();
        let explicit = [
            (&self.data_dir, Source::DataDir),
            (&self.env_dir, Source::Env),
            (&self.cache_dir, Source::Cache),
        ];
        for (dir, source) in explicit {
            if let Some(d) = dir {
                roots.push((d.clone(), source));
            }
        }
        if self.system_dirs {
            roots.extend(
                entry
                    .system_dirs
                    .iter()
                    .map(|d| (PathBuf::from(d), Source::Debian)),
            );
        }
        roots
    }

    /// The first root holding every file, plus notes on partial roots.
    fn search(&self, entry: &DatasetEntry) -> (Option<Location>, Vec<String>) {
        let mut partial = Vec::new();
        for (root, source) in self.roots(entry) {
            let hits: Vec<Option<PathBuf>> = entry
                .files
                .iter()
                .map(|f| find_in_root(&root, entry, f))
                .collect();
            let present = hits.iter().filter(|h| h.is_some()).count();
            if present == entry.files.len() {
                let files = entry
                    .files
                    .iter()
                    .zip(hits)
                    .map(|(f, p)| found(f, p.expect("all present"), source))
                    .collect();
                return (
                    Some(Location {
                        dataset: entry.name.clone(),
                        files,
                    }),
                    partial,
                );
            }
            if present > 0 {
                let missing: Vec<&str> = entry
                    .files
                    .iter()
                    .zip(&hits)
                    .filter(|(_, h)| h.is_none())
                    .map(|(f, _)| f.name.as_str())
                    .collect();
                partial.push(format!(
                    "{} ({source}) lacks {}",
                    root.display(),
                    missing.join(", ")
                ));
            }
        }
        (None, partial)
    }

    fn not_found(&self, entry: &DatasetEntry, partial: &[String]) -> DataError {
        let searched: Vec<String> = self
            .roots(entry)
            .iter()
            .map(|(r, s)| format!("{} ({s})", r.display()))
            .collect();
        let mut detail = if searched.is_empty() {
            "no directory to search".to_string()
        } else {
            format!("searched {}", searched.join(", "))
        };
        if !partial.is_empty() {
            detail.push_str(&format!("; incomplete: {}", partial.join("; ")));
        }
        detail.push_str(&format!(
            "; run `insilico data fetch {}`, or pass --data-dir / set {ENV_VAR} to a folder holding {}/",
            entry.name, entry.name
        ));
        DataError::NotFound {
            dataset: entry.name.clone(),
            detail,
        }
    }
}

/// `<cache_dir>/insilico/datasets`.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("insilico").join("datasets"))
}

/// The path of `file` under `root`, trying `<root>/<name>[/<subdir>]/` then
/// `<root>[/<subdir>]/`, each as `.gz` then uncompressed.
pub fn find_in_root(root: &Path, entry: &DatasetEntry, file: &FileEntry) -> Option<PathBuf> {
    let mut dirs = Vec::new();
    for base in [root.join(&entry.name), root.to_path_buf()] {
        if let Some(sub) = &entry.subdir {
            dirs.push(base.join(sub));
        }
        dirs.push(base);
    }
    dirs.iter()
        .flat_map(|d| [d.join(format!("{}.gz", file.name)), d.join(&file.name)])
        .find(|p| p.is_file())
}

/// Checks each located file: its content (header, length, labels, number of examples,
/// see [`crate::content`]), then its digest. A content problem is reported rather than a
/// digest mismatch, since it says what is wrong.
pub fn verify_location(entry: &DatasetEntry, loc: &Location) -> Vec<FileReport> {
    let checked: Vec<(FileReport, Option<usize>)> =
        loc.files.iter().map(|f| verify_file(entry, f)).collect();
    let count_of = |role: Role| {
        loc.files
            .iter()
            .zip(&checked)
            .find(|(f, _)| f.entry.role == role)
            .and_then(|(_, (_, n))| *n)
    };
    let mut reports = Vec::with_capacity(checked.len());
    for (f, (mut report, n)) in loc.files.iter().zip(checked.iter().cloned()) {
        if let (Some(n), Verdict::Ok | Verdict::Unchecked | Verdict::Mismatch { .. }) =
            (n, &report.verdict)
        {
            if let Some(why) = count_problem(entry, f, n, &count_of) {
                report.verdict = Verdict::Invalid(format!("{}: {why}", f.path.display()));
            }
        }
        reports.push(report);
    }
    reports
}

/// Why a file holding `n` examples has the wrong number, if it does: labels must match
/// their images file, and every file the count the manifest implies.
fn count_problem(
    entry: &DatasetEntry,
    f: &FoundFile,
    n: usize,
    count_of: &dyn Fn(Role) -> Option<usize>,
) -> Option<String> {
    let role = f.entry.role;
    if let Some(images_role) = content::images_role(role) {
        match count_of(images_role) {
            Some(images) if images != n => {
                return Some(format!(
                    "holds {n} labels, but the {images_role:?} file holds {images} images"
                ))
            }
            _ => {}
        }
    }
    match content::expected_examples(entry, role) {
        Some(expected) if expected != n => Some(format!(
            "holds {n} examples; {} expects {expected} in each {role:?} file",
            entry.name
        )),
        _ => None,
    }
}

/// One file's report, and how many examples it holds when its content is valid.
fn verify_file(entry: &DatasetEntry, f: &FoundFile) -> (FileReport, Option<usize>) {
    let (sha256, verdict, examples) = match read_decompressed(&f.path) {
        Err(e) => (None, Verdict::Unreadable(e.to_string()), None),
        Ok(bytes) => {
            let found = sha256_hex(&bytes);
            let file = f.path.display().to_string();
            match content::examples_in(entry, f.entry.role, &bytes, &file) {
                Err(e) => (Some(found), Verdict::Invalid(e.to_string()), None),
                Ok(n) => {
                    let verdict = match &f.entry.sha256 {
                        None => Verdict::Unchecked,
                        Some(exp) if *exp == found => Verdict::Ok,
                        Some(exp) => Verdict::Mismatch {
                            expected: exp.clone(),
                        },
                    };
                    (Some(found), verdict, Some(n))
                }
            }
        }
    };
    let report = FileReport {
        name: f.entry.name.clone(),
        path: f.path.clone(),
        source: f.source,
        sha256,
        verdict,
    };
    (report, examples)
}

/// A cached file is reused only if it verifies (or cannot be verified but
/// reads): a previous corrupt copy must not block a repair by `fetch`.
fn cached_file_ok(path: &Path, file: &FileEntry) -> bool {
    match (read_decompressed(path), &file.sha256) {
        (Ok(bytes), Some(exp)) => sha256_hex(&bytes) == *exp,
        (Ok(_), None) => true,
        (Err(_), _) => false,
    }
}

fn found(f: &FileEntry, path: PathBuf, source: Source) -> FoundFile {
    FoundFile {
        entry: f.clone(),
        path,
        source,
    }
}

fn empty_location(entry: &DatasetEntry) -> Location {
    Location {
        dataset: entry.name.clone(),
        files: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use std::collections::HashMap;

    fn offline(data: Option<&Path>, env: Option<&Path>, cache: Option<&Path>) -> Locator {
        Locator {
            data_dir: data.map(Path::to_path_buf),
            allow_download: false,
            base_url_override: None,
            env_dir: env.map(Path::to_path_buf),
            cache_dir: cache.map(Path::to_path_buf),
            system_dirs: false,
        }
    }

    fn sources(loc: &Location) -> Vec<Source> {
        loc.files.iter().map(|f| f.source).collect()
    }

    #[test]
    fn resolution_order_data_dir_env_cache() {
        let roots: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let files = tiny_idx_files(0);
        for r in &roots {
            write_gz(&r.path().join("tiny"), &files);
        }
        let [a, b, c] = [roots[0].path(), roots[1].path(), roots[2].path()];
        let entry = tiny_entry(None);

        let loc = offline(Some(a), Some(b), Some(c))
            .locate_entry(&entry)
            .unwrap();
        assert_eq!(sources(&loc), [Source::DataDir; 4]);
        assert!(loc.files.iter().all(|f| f.path.starts_with(a)));

        let loc = offline(None, Some(b), Some(c))
            .locate_entry(&entry)
            .unwrap();
        assert_eq!(sources(&loc), [Source::Env; 4]);
        assert!(loc.files.iter().all(|f| f.path.starts_with(b)));

        let loc = offline(None, None, Some(c)).locate_entry(&entry).unwrap();
        assert_eq!(sources(&loc), [Source::Cache; 4]);

        let e = offline(None, None, None).locate_entry(&entry).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }));
        assert!(e.to_string().contains("insilico data fetch tiny"), "{e}");
    }

    #[test]
    fn incomplete_root_is_skipped_and_reported() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let files = tiny_idx_files(0);
        write_gz(&a.path().join("tiny"), &files[..3]);
        write_gz(&b.path().join("tiny"), &files);
        let entry = tiny_entry(None);
        let loc = offline(Some(a.path()), Some(b.path()), None)
            .locate_entry(&entry)
            .unwrap();
        assert_eq!(sources(&loc), [Source::Env; 4]);
        let e = offline(Some(a.path()), None, None)
            .locate_entry(&entry)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks te-lbl"), "{e}");
    }

    #[test]
    fn layouts_flat_uncompressed_and_gz_preferred() {
        let root = tempfile::tempdir().unwrap();
        let files = tiny_idx_files(0);
        // Flat in the root, uncompressed.
        for (name, bytes) in &files {
            std::fs::write(root.path().join(name), bytes).unwrap();
        }
        let entry = tiny_entry(Some(&files));
        let loc = offline(Some(root.path()), None, None)
            .locate_entry(&entry)
            .unwrap();
        assert_eq!(loc.get("tr-img").unwrap().path, root.path().join("tr-img"));
        assert!(verify_location(&entry, &loc)
            .iter()
            .all(|r| r.verdict == Verdict::Ok));
        // A .gz next to it wins.
        write_gz(root.path(), &files[..1]);
        let loc = offline(Some(root.path()), None, None)
            .locate_entry(&entry)
            .unwrap();
        assert_eq!(
            loc.get("tr-img").unwrap().path,
            root.path().join("tr-img.gz")
        );
        // The <root>/<dataset>/ folder wins over flat files.
        write_gz(&root.path().join("tiny"), &files);
        let loc = offline(Some(root.path()), None, None)
            .locate_entry(&entry)
            .unwrap();
        assert!(loc
            .files
            .iter()
            .all(|f| f.path.starts_with(root.path().join("tiny"))));
    }

    #[test]
    fn verify_and_status_report_mismatches() {
        let root = tempfile::tempdir().unwrap();
        let files = tiny_idx_files(0);
        write_gz(&root.path().join("tiny"), &files);
        let entry = tiny_entry(Some(&files));
        let loc = offline(Some(root.path()), None, None);
        assert!(loc
            .verify_entry(&entry)
            .unwrap()
            .iter()
            .all(FileReport::is_ok));
        // Same file name, different (valid) content.
        write_gz(&root.path().join("tiny"), &tiny_idx_files(9)[..1]);
        let reports = loc.verify_entry(&entry).unwrap();
        let bad: Vec<_> = reports.iter().filter(|r| !r.is_ok()).collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].name, "tr-img");
        assert!(bad[0].to_string().contains("MISMATCH"), "{}", bad[0]);
        // Unpinned digests are reported as unverified, not as ok.
        let reports = loc.verify_entry(&tiny_entry(None)).unwrap();
        assert!(reports.iter().all(|r| r.verdict == Verdict::Unchecked));
        assert!(reports[0].to_string().contains("unverified"));
    }

    #[test]
    fn status_of_embedded_datasets() {
        let empty = tempfile::tempdir().unwrap();
        let loc = offline(Some(empty.path()), None, None);
        let st = loc.status("mnist");
        assert!(!st.usable());
        assert!(st.to_string().contains("not available"), "{st}");
        let st = loc.status("shapes");
        assert!(st.usable() && st.generated, "{st}");
        assert!(!loc.status("nope").usable());
    }

    #[test]
    fn a_partial_root_is_named_when_the_download_fails_too() {
        let files = tiny_idx_files(3);
        let root = tempfile::tempdir().unwrap();
        write_gz(&root.path().join("tiny"), &files[..3]);
        let server = tiny_server(&[], 8); // every file is a 404
        let cache = tempfile::tempdir().unwrap();
        let locator = Locator {
            data_dir: Some(root.path().to_path_buf()),
            ..downloading(cache.path(), &server)
        };
        let e = locator
            .locate_entry(&tiny_entry(Some(&files)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks te-lbl") && e.contains("404"), "{e}");
    }

    #[test]
    fn verify_names_each_bad_cifar_batch_with_its_problem() {
        use crate::cifar::{encode_cifar, IMAGE_BYTES, TEST_FILE, TRAIN_FILES};
        let mut entry = Manifest::embedded().get("cifar10").unwrap().clone();
        // Two records per batch: 10 over the five training batches, 2 in the test batch.
        entry.train_size = Some(10);
        entry.test_size = Some(2);
        let good = encode_cifar(&[1, 2], &vec![0; 2 * IMAGE_BYTES]);
        let root = tempfile::tempdir().unwrap();
        for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
            std::fs::write(root.path().join(name), &good).unwrap();
        }
        let offline = offline(Some(root.path()), None, None);
        assert!(offline
            .verify_entry(&entry)
            .unwrap()
            .iter()
            .all(FileReport::is_ok));
        let write =
            |name: &str, bytes: &[u8]| std::fs::write(root.path().join(name), bytes).unwrap();
        write(
            "data_batch_2.bin",
            &encode_cifar(&[1, 10], &vec![0; 2 * IMAGE_BYTES]),
        );
        write("data_batch_3.bin", b"");
        write(
            "data_batch_4.bin",
            &encode_cifar(&[1, 2, 3], &vec![0; 3 * IMAGE_BYTES]),
        );
        write("test_batch.bin", &good[..good.len() - 1]);
        let reports = offline.verify_entry(&entry).unwrap();
        let bad: Vec<(String, String)> = reports
            .iter()
            .filter(|r| !r.is_ok())
            .map(|r| (r.name.clone(), r.to_string()))
            .collect();
        let names: Vec<&str> = bad.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "test_batch.bin"
            ]
        );
        for ((_, line), problem) in bad.iter().zip([
            "record 1 has label 10, expected < 10",
            "length 0 is not a positive multiple",
            "holds 3 examples; cifar10 expects 2 in each Train file",
            "length 6145 is not a positive multiple",
        ]) {
            assert!(
                line.starts_with("INVALID") && line.contains(problem),
                "{line}"
            );
        }
        let status = offline.status("cifar10");
        // The embedded entry expects 10,000 records a batch: every file is named.
        let text = status.to_string();
        assert!(
            text.contains("6 of 6 files fail") && text.contains("data_batch_1.bin"),
            "{text}"
        );
    }

    fn tiny_server(files: &[(String, Vec<u8>)], max: usize) -> TestServer {
        let bodies: HashMap<String, Vec<u8>> = files
            .iter()
            .map(|(n, b)| (format!("{n}.gz"), gzip(b)))
            .collect();
        TestServer::start(bodies, max)
    }

    fn downloading(cache: &Path, server: &TestServer) -> Locator {
        Locator {
            allow_download: true,
            base_url_override: Some(format!("{}/", server.base)),
            ..offline(None, None, Some(cache))
        }
    }

    #[test]
    fn download_into_cache_then_reuse() {
        let files = tiny_idx_files(3);
        let server = tiny_server(&files, 8);
        let cache = tempfile::tempdir().unwrap();
        let entry = tiny_entry(Some(&files));
        let locator = downloading(cache.path(), &server);

        let loc = locator.locate_entry(&entry).unwrap();
        assert_eq!(sources(&loc), [Source::Downloaded; 4]);
        assert_eq!(server.requests().len(), 4);
        for f in &loc.files {
            assert_eq!(
                f.path,
                cache
                    .path()
                    .join("tiny")
                    .join(format!("{}.gz", f.entry.name))
            );
        }
        let ds = crate::load_entry(&entry, &locator).unwrap();
        assert_eq!(ds.train.len(), 6);
        assert_eq!(ds.test.labels, [0, 1, 0, 1]);
        // The second time, the cache answers and the network is not used.
        let loc = locator.locate_entry(&entry).unwrap();
        assert_eq!(sources(&loc), [Source::Cache; 4]);
        assert_eq!(server.requests().len(), 4);
        // No temp files left.
        assert_eq!(files_below(cache.path()).len(), 4);
    }

    #[test]
    fn corrupt_download_is_rejected_and_leaves_nothing() {
        let files = tiny_idx_files(3);
        let entry = tiny_entry(Some(&files));
        // The server has the right names with the wrong content.
        let server = tiny_server(&tiny_idx_files(4), 8);
        let cache = tempfile::tempdir().unwrap();
        let e = downloading(cache.path(), &server)
            .fetch_entry(&entry)
            .unwrap_err();
        match &e {
            DataError::ChecksumMismatch {
                file,
                expected,
                found,
            } => {
                assert!(
                    file.contains("tr-img") && file.contains(&server.base),
                    "{file}"
                );
                assert_eq!(expected, entry.files[0].sha256.as_ref().unwrap());
                assert_ne!(expected, found);
            }
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
        assert!(
            files_below(cache.path()).is_empty(),
            "{:?}",
            files_below(cache.path())
        );
    }

    #[test]
    fn missing_file_on_server_is_a_download_error() {
        let files = tiny_idx_files(3);
        let server = tiny_server(&files[..1], 8);
        let cache = tempfile::tempdir().unwrap();
        let e = downloading(cache.path(), &server)
            .fetch_entry(&tiny_entry(Some(&files)))
            .unwrap_err();
        assert!(matches!(e, DataError::Download { .. }), "{e:?}");
        assert!(e.to_string().contains("404"), "{e}");
        assert!(e.to_string().contains("tr-lbl.gz"), "{e}");
        // The one good file may stay (it verified); nothing unverified does.
        let left = files_below(cache.path());
        assert!(
            left.iter().all(|p| p.ends_with("tiny/tr-img.gz")),
            "{left:?}"
        );
    }

    #[test]
    fn fetch_repairs_a_corrupt_cached_file() {
        let files = tiny_idx_files(3);
        let server = tiny_server(&files, 8);
        let cache = tempfile::tempdir().unwrap();
        write_gz(&cache.path().join("tiny"), &files);
        write_gz(&cache.path().join("tiny"), &tiny_idx_files(5)[2..3]); // bad te-img
        let entry = tiny_entry(Some(&files));
        let loc = downloading(cache.path(), &server)
            .fetch_entry(&entry)
            .unwrap();
        assert_eq!(server.requests(), ["te-img.gz"]);
        assert_eq!(loc.get("te-img").unwrap().source, Source::Downloaded);
        assert_eq!(loc.get("tr-img").unwrap().source, Source::Cache);
        assert!(verify_location(&entry, &loc)
            .iter()
            .all(|r| r.verdict == Verdict::Ok));
    }

    #[test]
    fn cifar_archive_download() {
        use crate::cifar::{encode_cifar, IMAGE_BYTES};
        let batch =
            |label: u8| encode_cifar(&[label, 9 - label], &vec![label * 20; 2 * IMAGE_BYTES]);
        let mut tar = tar::Builder::new(Vec::new());
        let names = [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
        ];
        for (i, name) in names.iter().enumerate() {
            let data = batch(i as u8);
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(
                &mut h,
                format!("cifar-10-batches-bin/{name}"),
                data.as_slice(),
            )
            .unwrap();
        }
        let archive = gzip(&tar.into_inner().unwrap());
        let server = TestServer::start(
            HashMap::from([("cifar-10-binary.tar.gz".to_string(), archive)]),
            4,
        );
        let cache = tempfile::tempdir().unwrap();
        let mut entry = Manifest::embedded().get("cifar10").unwrap().clone();
        entry.train_size = Some(10);
        entry.test_size = Some(2);
        let locator = downloading(cache.path(), &server);
        let ds = crate::load_entry(&entry, &locator).unwrap();
        assert_eq!(ds.train.labels, [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]);
        assert_eq!(ds.test.labels, [5, 4]);
        assert_eq!(ds.test.image(0)[0], 100.0 / 255.0);
        assert!(cache
            .path()
            .join("cifar10/cifar-10-batches-bin/test_batch.bin")
            .is_file());
        assert_eq!(
            files_below(cache.path()).len(),
            6,
            "archive temp file removed"
        );
        let reports = locator.verify_entry(&entry).unwrap();
        assert!(reports.iter().all(|r| r.verdict == Verdict::Unchecked));
    }
}
