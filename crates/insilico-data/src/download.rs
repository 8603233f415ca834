//! HTTP downloads into the cache, all-or-nothing.
//!
//! A download is verified (decompressed SHA-256) before anything is written
//! to its final name, and final names are written atomically, so an
//! interrupted, failed or tampered download never leaves a file that a later
//! run would pick up.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{DataError, Result};
use crate::fsx::{sha256_hex, write_atomic_io};
use crate::idx::decompress_if_gzip;
use crate::manifest::{DatasetEntry, FileEntry};

/// The URLs to try for `file`: the override base if given, else the
/// manifest's mirrors.
pub(crate) fn file_urls(file: &FileEntry, base_override: Option<&str>) -> Vec<String> {
    match base_override {
        Some(base) => vec![format!("{}/{}.gz", base.trim_end_matches('/'), file.name)],
        None => file.urls.clone(),
    }
}

/// The archive URLs to try for `entry`.
pub(crate) fn archive_urls(entry: &DatasetEntry, base_override: Option<&str>) -> Vec<String> {
    match base_override {
        Some(base) => entry
            .archive_urls
            .iter()
            .take(1)
            .map(|u| format!("{}/{}", base.trim_end_matches('/'), url_basename(u)))
            .collect(),
        None => entry.archive_urls.clone(),
    }
}

/// Downloads one gzipped file, trying mirrors in order, verifies its
/// decompressed digest and writes it as `<dir>/<name>.gz` (or `<name>` when
/// the server sent it uncompressed). Returns the written path.
pub(crate) fn fetch_file(
    file: &FileEntry,
    urls: &[String],
    dir: &Path,
    use_proxy: bool,
) -> Result<PathBuf> {
    let mut failures = Vec::new();
    for url in urls {
        match download_verified(file, url, use_proxy) {
            Ok((bytes, gzipped)) => {
                let name = if gzipped {
                    format!("{}.gz", file.name)
                } else {
                    file.name.clone()
                };
                let path = dir.join(name);
                write_atomic_io(&path, |w| w.write_all(&bytes))
                    .map_err(|e| DataError::io(&path, e))?;
                return Ok(path);
            }
            Err(e) => failures.push(e),
        }
    }
    Err(summarize(failures, &file.name))
}

/// Downloads a .tar.gz archive, extracts the files named in `wanted`,
/// verifies each one that has a digest, and only then writes them all into
/// `dir`. Returns the written paths by file name.
pub(crate) fn fetch_archive(
    wanted: &[&FileEntry],
    urls: &[String],
    dir: &Path,
    use_proxy: bool,
) -> Result<HashMap<String, PathBuf>> {
    let mut failures = Vec::new();
    for url in urls {
        match download_archive(wanted, url, dir, use_proxy) {
            Ok(contents) => return write_all(contents, dir),
            Err(e) => failures.push(e),
        }
    }
    // Leave no empty dataset directory behind either.
    let _ = std::fs::remove_dir(dir);
    Err(summarize(failures, "archive"))
}

fn write_all(contents: HashMap<String, Vec<u8>>, dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut written = HashMap::new();
    for (name, bytes) in contents {
        let path = dir.join(&name);
        write_atomic_io(&path, |w| w.write_all(&bytes)).map_err(|e| DataError::io(&path, e))?;
        written.insert(name, path);
    }
    Ok(written)
}

/// With several mirrors, a checksum mismatch is the most informative
/// failure (the server answered, with the wrong data); otherwise list all.
fn summarize(mut failures: Vec<DataError>, what: &str) -> DataError {
    if let Some(i) = failures
        .iter()
        .position(|e| matches!(e, DataError::ChecksumMismatch { .. }))
    {
        return failures.swap_remove(i);
    }
    if failures.len() == 1 {
        return failures.remove(0);
    }
    let detail = if failures.is_empty() {
        "no download URL known".to_string()
    } else {
        failures
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    DataError::Download {
        url: what.to_string(),
        detail,
    }
}

fn download_verified(file: &FileEntry, url: &str, use_proxy: bool) -> Result<(Vec<u8>, bool)> {
    let mut bytes = Vec::new();
    http_get(url, &file.name, &mut bytes, use_proxy)?;
    let label = format!("{} (from {url})", file.name);
    let gzipped = bytes.starts_with(&[0x1f, 0x8b]);
    let content = decompress_if_gzip(bytes.clone(), &label)?;
    check_digest(file, &content, &label)?;
    Ok((bytes, gzipped))
}

fn check_digest(file: &FileEntry, content: &[u8], label: &str) -> Result<()> {
    let Some(expected) = &file.sha256 else {
        return Ok(());
    };
    let found = sha256_hex(content);
    if &found != expected {
        return Err(DataError::ChecksumMismatch {
            file: label.to_string(),
            expected: expected.clone(),
            found,
        });
    }
    Ok(())
}

/// Streams the archive to a hidden temp file next to its destination (it
/// can be large), then extracts what we want in memory.
fn download_archive(
    wanted: &[&FileEntry],
    url: &str,
    dir: &Path,
    use_proxy: bool,
) -> Result<HashMap<String, Vec<u8>>> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let part = TempPath(dir.join(format!(
        ".{}.part-{}",
        url_basename(url),
        std::process::id()
    )));
    let mut out = File::create(&part.0).map_err(|e| DataError::io(&part.0, e))?;
    http_get(url, url_basename(url), &mut out, use_proxy)?;
    out.sync_all().map_err(|e| DataError::io(&part.0, e))?;
    drop(out);
    extract(&part.0, wanted, url)
}

/// Removes the file on drop, whatever happened.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn extract(archive: &Path, wanted: &[&FileEntry], url: &str) -> Result<HashMap<String, Vec<u8>>> {
    let corrupt = |e: std::io::Error| DataError::CorruptGzip {
        file: url.to_string(),
        detail: e.to_string(),
    };
    let f = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut tar = tar::Archive::new(MultiGzDecoder::new(BufReader::new(f)));
    let mut found = HashMap::new();
    for item in tar.entries().map_err(corrupt)? {
        let mut item = item.map_err(corrupt)?;
        let path = item.path().map_err(corrupt)?.into_owned();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let Some(file) = wanted.iter().find(|f| f.name == name) else {
            continue;
        };
        let mut bytes = Vec::new();
        item.read_to_end(&mut bytes).map_err(corrupt)?;
        check_digest(file, &bytes, &format!("{name} (in {url})"))?;
        found.insert(name, bytes);
    }
    let missing: Vec<&str> = wanted
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| !found.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        return Err(DataError::Download {
            url: url.to_string(),
            detail: format!("archive lacks {}", missing.join(", ")),
        });
    }
    Ok(found)
}

/// GETs `url` into `sink`, with a progress bar on an interactive stderr.
/// Fails on HTTP errors and on short bodies (fewer bytes than announced).
fn http_get(url: &str, label: &str, sink: &mut dyn Write, use_proxy: bool) -> Result<u64> {
    let fail = |detail: String| DataError::Download {
        url: url.to_string(),
        detail,
    };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .try_proxy_from_env(use_proxy)
        .build();
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, r) => fail(format!("HTTP {code} {}", r.status_text())),
        ureq::Error::Transport(t) => fail(t.to_string()),
    })?;
    let announced: Option<u64> = response
        .header("Content-Length")
        .and_then(|v| v.parse().ok());
    let bar = progress_bar(label, announced);
    let mut reader = bar.wrap_read(response.into_reader());
    let got = std::io::copy(&mut reader, sink).map_err(|e| fail(e.to_string()))?;
    bar.finish_and_clear();
    if let Some(n) = announced {
        if got != n {
            return Err(fail(format!("server announced {n} bytes, sent {got}")));
        }
    }
    Ok(got)
}

fn progress_bar(label: &str, len: Option<u64>) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = match len {
        Some(n) => ProgressBar::with_draw_target(Some(n), target).with_style(
            ProgressStyle::with_template(
                "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, target).with_style(
            ProgressStyle::with_template("{msg:32} {spinner} {bytes} {bytes_per_sec}")
                .expect("valid template"),
        ),
    };
    bar.with_message(label.to_string())
}

fn url_basename(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}
