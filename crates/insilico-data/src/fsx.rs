//! Filesystem helpers shared by every crate of the workspace.
//!
//! Runs are long and get interrupted; a half-written checkpoint, report or
//! dataset file that looks complete is worse than none. So every file we
//! produce is written to a temporary sibling, fsynced, and renamed over the
//! target: readers see either the old content or the new, never a mix.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

/// Writes `bytes` to `path` atomically (temp file in the same directory,
/// fsync, rename). Creates missing parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], for content produced by a streaming writer. If `f`
/// fails, the target is untouched and the temporary file is removed.
pub fn write_atomic_with(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    write_atomic_io(path, f).with_context(|| format!("writing {}", path.display()))
}

/// The I/O-error flavour of [`write_atomic_with`], for callers inside this
/// crate that report [`crate::DataError`]s.
pub(crate) fn write_atomic_io(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir)?;
    let tmp = temp_sibling(path);
    let result = write_and_sync(&tmp, f).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_dir(&dir);
    Ok(())
}

/// Replaces `path` (a file or a directory) atomically with what `produce` writes at the
/// temporary sibling path it is given: for writers that insist on a path of their own
/// (Burn's recorders, a checkpoint directory of several files). If `produce` fails, the
/// target is untouched and the temporary is removed.
pub fn replace_with(
    path: &Path,
    produce: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_sibling(path);
    let result = produce(&tmp).and_then(|()| {
        if path.is_dir() {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("removing the old {}", path.display()))?;
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp).or_else(|_| std::fs::remove_file(&tmp));
        return result;
    }
    sync_dir(&dir);
    Ok(())
}

/// Renders a CSV document with the `csv` crate: RFC 4180 quoting (fields containing a
/// comma, a double quote or a line break are quoted and inner quotes doubled), lines
/// ending in `\n`. Every row must have as many fields as the header.
pub fn csv_string<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> anyhow::Result<String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(header)?;
    for (r, row) in rows.iter().enumerate() {
        if row.len() != header.len() {
            bail!(
                "CSV row {r} has {} fields but the header has {}",
                row.len(),
                header.len()
            );
        }
        w.write_record(row.iter().map(|f| f.as_ref()))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Writes a CSV table (header + rows, as [`csv_string`]) atomically: the one CSV writer
/// of the workspace, so that every table is quoted alike and never left half-written.
/// `pandas.read_csv(path)` loads it.
pub fn write_csv<S: AsRef<str>>(
    path: &Path,
    header: &[&str],
    rows: &[Vec<S>],
) -> anyhow::Result<()> {
    let text = csv_string(header, rows).with_context(|| format!("writing {}", path.display()))?;
    write_atomic(path, text.as_bytes())
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex encoding of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_and_sync(
    tmp: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut writer = BufWriter::new(File::create(tmp)?);
    f(&mut writer)?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `.name.tmp-<pid>-<seq>`: hidden, in the same directory (so the rename
/// stays on one filesystem), unique per process and per call so that two
/// threads writing the same target cannot clobber each other's temp file.
fn temp_sibling(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    parent_dir(path).join(format!(".{name}.tmp-{}-{seq}", std::process::id()))
}

/// Makes the rename durable. Best effort: not every platform or filesystem
/// lets a directory be opened and synced, and the data itself is already safe.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The outputs an earlier run left in a folder, noted before a new run writes there, so
/// that those the new run does not write again can be removed once it has written all of
/// its own: a rerun with fewer sites or measures would otherwise leave the old figures
/// beside the new results, as if they belonged to them. A file counts as written again
/// when its identity (inode) or modification time changed since it was noted, which every
/// [`write_atomic`] does, as it renames a new file over the old. Comparing modification
/// times with the run's start instead is not safe: the kernel stamps files with a clock
/// coarser than [`std::time::SystemTime::now`], so a file written in the first
/// milliseconds can look older than the run that wrote it.
#[derive(Debug, Default)]
pub struct EarlierOutputs {
    files: Vec<(PathBuf, FileStamp)>,
}

/// What tells one version of a file from the next.
type FileStamp = (Option<std::time::SystemTime>, u64);

fn stamp(meta: &std::fs::Metadata) -> FileStamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    (meta.modified().ok(), inode)
}

impl EarlierOutputs {
    /// Notes the files directly in `dir` (not in its subfolders) whose names `is_output`
    /// claims; a missing `dir` has none. Call before the run writes anything there.
    pub fn note(mut self, dir: &Path, is_output: impl Fn(&str) -> bool) -> anyhow::Result<Self> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name();
            let meta = entry
                .metadata()
                .with_context(|| format!("reading {}", entry.path().display()))?;
            if meta.is_file() && name.to_str().is_some_and(&is_output) {
                self.files.push((entry.path(), stamp(&meta)));
            }
        }
        Ok(self)
    }

    /// Removes the noted files that are as they were: the run did not write them again.
    /// Call once the run's outputs are all written, so that a run that fails leaves the
    /// earlier one whole.
    pub fn remove_unwritten(self) -> anyhow::Result<()> {
        for (path, before) in self.files {
            match std::fs::metadata(&path) {
                Ok(meta) if stamp(&meta) == before => std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_parents_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/file.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "temp files left: {leftovers:?}");
    }

    #[test]
    fn failing_writer_leaves_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.txt");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("boom"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replace_with_swaps_a_whole_directory_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ckpt");
        for content in ["one", "two"] {
            replace_with(&target, |tmp| {
                std::fs::create_dir_all(tmp)?;
                std::fs::write(tmp.join("a"), content)?;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "two");
        let failed = replace_with(&target, |tmp| {
            std::fs::create_dir_all(tmp)?;
            std::fs::write(tmp.join("a"), "three")?;
            anyhow::bail!("the writer failed")
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn csv_quotes_commas_quotes_newlines() {
        let rows = vec![
            vec!["plain".to_string(), "a,b".to_string()],
            vec!["say \"hi\"".to_string(), "line1\nline2".to_string()],
            vec!["".to_string(), "cr\rx".to_string()],
        ];
        let s = csv_string(&["name", "value, unit"], &rows).unwrap();
        // RFC 4180 by hand: quoted where a field holds a comma, quote or line break.
        assert_eq!(
            s,
            "name,\"value, unit\"\nplain,\"a,b\"\n\"say \"\"hi\"\"\",\"line1\nline2\"\n,\"cr\rx\"\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        write_csv(&p, &["name", "value, unit"], &rows).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), s);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn csv_row_of_the_wrong_width_is_refused_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        write_atomic(&p, b"old").unwrap();
        let err = write_csv(&p, &["a", "b"], &[vec!["x"]]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("t.csv") && msg.contains("1 fields"), "{msg}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
