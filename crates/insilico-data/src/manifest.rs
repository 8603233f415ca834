//! The dataset manifest (`datasets/manifest.toml`), embedded at build time.
//!
//! Keeping names, class labels, normalization constants and file digests in
//! one reviewed data file (rather than scattered constants) means a binary
//! carries exactly the digests it verifies against, and adding a mirror is a
//! one-line change.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The manifest as shipped in the repository.
pub const MANIFEST_TOML: &str = include_str!("../../../datasets/manifest.toml");

/// All datasets insilico knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "dataset")]
    pub datasets: Vec<DatasetEntry>,
}

/// How a dataset's files are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Four IDX files (MNIST layout).
    Idx,
    /// CIFAR-10 binary batches.
    CifarBin,
    /// Generated in code; no files.
    Generated,
}

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    TrainImages,
    TrainLabels,
    TestImages,
    TestLabels,
    /// A CIFAR batch of (label, image) records for training.
    Train,
    /// A CIFAR batch for testing.
    Test,
}

/// One dataset of the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub format: Format,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    pub classes: Vec<String>,
    /// Per-channel mean of pixel values in [0, 1], over the training split.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, same convention.
    pub std: Vec<f32>,
    #[serde(default)]
    pub train_size: Option<usize>,
    #[serde(default)]
    pub test_size: Option<usize>,
    /// Directories where an OS package installs the files (searched after
    /// the cache).
    #[serde(default)]
    pub system_dirs: Vec<String>,
    /// A folder the files may sit in below the dataset directory
    /// (`cifar-10-batches-bin` for CIFAR-10, as unpacked from its archive).
    #[serde(default)]
    pub subdir: Option<String>,
    /// When set, files come from this archive (.tar.gz) rather than one URL
    /// per file.
    #[serde(default)]
    pub archive_urls: Vec<String>,
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
}

/// One file of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name without `.gz`.
    pub name: String,
    pub role: Role,
    /// SHA-256 of the decompressed file; `None` when the manifest cannot pin
    /// it (the file is then reported as unverified, never as verified).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Mirrors of the gzipped file, tried in order.
    #[serde(default)]
    pub urls: Vec<String>,
}

impl Manifest {
    /// The embedded manifest, parsed and validated once.
    ///
    /// # Panics
    /// If the embedded manifest is invalid: that is a build defect, caught by
    /// this crate's tests.
    pub fn embedded() -> &'static Manifest {
        static CELL: OnceLock<Manifest> = OnceLock::new();
        CELL.get_or_init(|| Manifest::parse(MANIFEST_TOML).expect("embedded manifest is valid"))
    }

    /// Parses and validates a manifest.
    pub fn parse(text: &str) -> Result<Manifest> {
        let m: Manifest = toml::from_str(text).map_err(|e| DataError::Manifest(e.to_string()))?;
        for d in &m.datasets {
            d.validate()?;
        }
        Ok(m)
    }

    /// The entry called `name`, or an error listing the known names.
    pub fn get(&self, name: &str) -> Result<&DatasetEntry> {
        self.datasets
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| DataError::UnknownDataset {
                name: name.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Dataset names, in manifest order.
    pub fn names(&self) -> Vec<&str> {
        self.datasets.iter().map(|d| d.name.as_str()).collect()
    }
}

impl DatasetEntry {
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The file with role `role` (the first one, for CIFAR roles).
    pub fn file(&self, role: Role) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.role == role)
    }

    /// Checks internal consistency, so that loaders can rely on it.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| {
            Err(DataError::Manifest(format!(
                "dataset '{}': {why}",
                self.name
            )))
        };
        let c = self.shape[0];
        if self.shape.contains(&0) {
            return bad(format!("shape {:?} has a zero", self.shape));
        }
        if self.classes.is_empty() || self.classes.len() > 256 {
            return bad(format!("{} classes; labels are bytes", self.classes.len()));
        }
        if self.mean.len() != c || self.std.len() != c {
            return bad(format!("mean/std need {c} values (one per channel)"));
        }
        if self.std.iter().any(|&s| s <= 0.0) {
            return bad("std must be positive".to_string());
        }
        for f in &self.files {
            if let Some(h) = &f.sha256 {
                if h.len() != 64
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return bad(format!(
                        "file {}: sha256 must be 64 lower-case hex digits",
                        f.name
                    ));
                }
            }
        }
        self.validate_roles().or_else(bad)
    }

    fn validate_roles(&self) -> std::result::Result<(), String> {
        let count = |r: Role| self.files.iter().filter(|f| f.role == r).count();
        match self.format {
            Format::Idx => {
                let roles = [
                    Role::TrainImages,
                    Role::TrainLabels,
                    Role::TestImages,
                    Role::TestLabels,
                ];
                if roles.iter().any(|&r| count(r) != 1) || self.files.len() != 4 {
                    return Err("idx datasets need exactly one file per role train-images, train-labels, test-images, test-labels".into());
                }
            }
            Format::CifarBin => {
                if count(Role::Train) == 0
                    || count(Role::Test) == 0
                    || count(Role::Train) + count(Role::Test) != self.files.len()
                {
                    return Err("cifar-bin datasets need train and test batches only".into());
                }
            }
            Format::Generated => {
                if !self.files.is_empty() {
                    return Err("generated datasets have no files".into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_is_valid_and_complete() {
        let m = Manifest::embedded();
        assert_eq!(m.names(), ["mnist", "fashion-mnist", "cifar10", "shapes"]);
        for d in &m.datasets {
            assert_eq!(d.num_classes(), 10, "{}", d.name);
        }
        let mnist = m.get("mnist").unwrap();
        assert_eq!(
            mnist.file(Role::TrainImages).unwrap().sha256.as_deref(),
            Some("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db")
        );
        assert!(mnist.files.iter().all(|f| f.urls.len() == 2));
        let fashion = m.get("fashion-mnist").unwrap();
        assert_eq!(fashion.system_dirs, ["/usr/share/datasets/fashion-mnist"]);
        assert!(fashion.files.iter().all(|f| f.sha256.is_some()));
        assert_eq!(m.get("cifar10").unwrap().shape, [3, 32, 32]);
    }

    #[test]
    fn unknown_dataset_lists_known_ones() {
        let e = Manifest::embedded()
            .get("imagenet")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("imagenet") && e.contains("mnist, fashion-mnist, cifar10, shapes"),
            "{e}"
        );
    }

    #[test]
    fn invalid_manifests_are_rejected() {
        let base = r#"
            [[dataset]]
            name = "x"
            format = "generated"
            shape = [1, 2, 2]
            classes = ["a", "b"]
            mean = [0.5]
            std = [0.5]
        "#;
        assert!(Manifest::parse(base).is_ok());
        let two_means = base.replace("mean = [0.5]", "mean = [0.5, 0.5]");
        assert!(Manifest::parse(&two_means)
            .unwrap_err()
            .to_string()
            .contains("mean/std"));
        let idx = base.replace("generated", "idx");
        assert!(Manifest::parse(&idx)
            .unwrap_err()
            .to_string()
            .contains("one file per role"));
        let bad_hash = format!(
            "{}\n[[dataset.file]]\nname = \"f\"\nrole = \"train-images\"\nsha256 = \"ABC\"\n",
            base.replace("generated", "idx")
        );
        assert!(Manifest::parse(&bad_hash)
            .unwrap_err()
            .to_string()
            .contains("sha256"));
    }
}
