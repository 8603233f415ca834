//! The in-memory dataset the engine consumes: images as `f32` in [0, 1],
//! channel-major, with labels, class names and normalization constants, plus
//! a checksum that identifies exactly which data was loaded (recorded with
//! every run).

use crate::cifar::{read_cifar_batch, IMAGE_BYTES};
use crate::error::{DataError, Result};
use crate::fsx::sha256_hex;
use crate::idx::{dims_to_string, read_idx, IdxArray};
use crate::manifest::{DatasetEntry, Format, Manifest, Role};
use crate::resolve::{FoundFile, Location, Locator};
use crate::shapes::{self, ShapesConfig};

/// One split (train or test).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    /// `N * C * H * W` values in [0, 1], image after image, channel-major.
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`C * H * W`).
    pub fn image_len(&self) -> usize {
        self.images.len().checked_div(self.len()).unwrap_or(0)
    }

    /// Image `i` as `C * H * W` values.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The images and labels at `idx`, in that order (indices may repeat).
    pub fn subset(&self, idx: &[usize]) -> Split {
        let mut images = Vec::with_capacity(idx.len() * self.image_len());
        for &i in idx {
            images.extend_from_slice(self.image(i));
        }
        Split {
            images,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// How many examples each class has.
    pub fn class_counts(&self, num_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// A loaded dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub name: String,
    /// `[c, h, w]`.
    pub shape: [usize; 3],
    pub num_classes: usize,
    pub class_names: Vec<String>,
    /// Per channel, for input normalization (`(x - mean) / std`).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub train: Split,
    pub test: Split,
    /// SHA-256 over the files' digests, or `generated:shapes:seed=N`.
    pub checksum: String,
    /// Where it came from, for humans.
    pub source: String,
}

/// Loads `name` ("mnist", "fashion-mnist", "cifar10", "shapes"), verifying
/// every file against the manifest.
pub fn load(name: &str, locator: &Locator) -> Result<Dataset> {
    load_entry(Manifest::embedded().get(name)?, locator)
}

/// [`load`] for an explicit manifest entry (custom datasets, tests).
pub fn load_entry(entry: &DatasetEntry, locator: &Locator) -> Result<Dataset> {
    if entry.format == Format::Generated {
        return Ok(load_shapes(entry, &ShapesConfig::default()));
    }
    let loc = locator.locate_entry(entry)?;
    let mut digests = Vec::new();
    let (train, test) = match entry.format {
        Format::Idx => (
            idx_split(
                entry,
                &loc,
                Role::TrainImages,
                Role::TrainLabels,
                &mut digests,
            )?,
            idx_split(
                entry,
                &loc,
                Role::TestImages,
                Role::TestLabels,
                &mut digests,
            )?,
        ),
        Format::CifarBin => (
            cifar_split(entry, &loc, Role::Train, &mut digests)?,
            cifar_split(entry, &loc, Role::Test, &mut digests)?,
        ),
        Format::Generated => unreachable!("handled above"),
    };
    check_size(entry, &loc, "train", entry.train_size, train.len())?;
    check_size(entry, &loc, "test", entry.test_size, test.len())?;
    Ok(Dataset {
        train,
        test,
        checksum: combined_checksum(&digests),
        source: loc.describe(),
        ..skeleton(entry)
    })
}

/// The `shapes` dataset with a non-default configuration.
pub fn load_shapes_with(cfg: &ShapesConfig) -> Dataset {
    load_shapes(
        Manifest::embedded()
            .get("shapes")
            .expect("manifest has shapes"),
        cfg,
    )
}

fn load_shapes(entry: &DatasetEntry, cfg: &ShapesConfig) -> Dataset {
    let (train, test) = shapes::generate(cfg);
    Dataset {
        train,
        test,
        checksum: format!("generated:shapes:seed={}", cfg.seed),
        source: format!(
            "generated in code (seed {}, {} train / {} test)",
            cfg.seed, cfg.train, cfg.test
        ),
        ..skeleton(entry)
    }
}

fn skeleton(entry: &DatasetEntry) -> Dataset {
    Dataset {
        name: entry.name.clone(),
        shape: entry.shape,
        num_classes: entry.num_classes(),
        class_names: entry.classes.clone(),
        mean: entry.mean.clone(),
        std: entry.std.clone(),
        train: Split::default(),
        test: Split::default(),
        checksum: String::new(),
        source: String::new(),
    }
}

/// SHA-256 over "digest  name" lines: changes if any file changes.
fn combined_checksum(digests: &[(String, String)]) -> String {
    let text: String = digests
        .iter()
        .map(|(name, d)| format!("{d}  {name}\n"))
        .collect();
    sha256_hex(text.as_bytes())
}

fn files_with_role(loc: &Location, role: Role) -> impl Iterator<Item = &FoundFile> {
    loc.files.iter().filter(move |f| f.entry.role == role)
}

fn one_file(loc: &Location, role: Role) -> Result<&FoundFile> {
    files_with_role(loc, role)
        .next()
        .ok_or_else(|| DataError::NotFound {
            dataset: loc.dataset.clone(),
            detail: format!("no {role:?} file located"),
        })
}

/// Fails if the content digest differs from the manifest's.
fn check_digest(f: &FoundFile, found: &str) -> Result<()> {
    match &f.entry.sha256 {
        Some(expected) if expected != found => Err(DataError::ChecksumMismatch {
            file: f.path.display().to_string(),
            expected: expected.clone(),
            found: found.to_string(),
        }),
        _ => Ok(()),
    }
}

fn read_checked_idx(f: &FoundFile, digests: &mut Vec<(String, String)>) -> Result<IdxArray> {
    let a = read_idx(&f.path)?;
    check_digest(f, &a.sha256)?;
    digests.push((f.entry.name.clone(), a.sha256.clone()));
    Ok(a)
}

fn idx_split(
    entry: &DatasetEntry,
    loc: &Location,
    images_role: Role,
    labels_role: Role,
    digests: &mut Vec<(String, String)>,
) -> Result<Split> {
    let (img_file, lbl_file) = (one_file(loc, images_role)?, one_file(loc, labels_role)?);
    let images = read_checked_idx(img_file, digests)?;
    let labels = read_checked_idx(lbl_file, digests)?;
    let n = check_image_dims(entry, &img_file.path.display().to_string(), &images.dims)?;
    let malformed = |detail: String| DataError::Malformed {
        file: lbl_file.path.display().to_string(),
        detail,
    };
    if labels.dims.len() != 1 || labels.dims[0] != n {
        return Err(malformed(format!(
            "labels are {}, but {} holds {n} images",
            dims_to_string(&labels.dims),
            img_file.path.display()
        )));
    }
    check_labels(
        &labels.data,
        entry.num_classes(),
        &lbl_file.path.display().to_string(),
    )?;
    Ok(Split {
        images: to_unit_f32(&images.data),
        labels: labels.data,
    })
}

/// Accepts `[n, h, w]` (one channel) or `[n, c, h, w]`; returns `n`.
pub(crate) fn check_image_dims(entry: &DatasetEntry, file: &str, dims: &[usize]) -> Result<usize> {
    let [c, h, w] = entry.shape;
    let ok = match dims {
        [_, dh, dw] => c == 1 && *dh == h && *dw == w,
        [_, dc, dh, dw] => *dc == c && *dh == h && *dw == w,
        _ => false,
    };
    if !ok {
        return Err(DataError::BadDims {
            file: file.to_string(),
            detail: format!(
                "images are {}, expected N x {} for dataset {}",
                dims_to_string(dims),
                dims_to_string(&entry.shape),
                entry.name
            ),
        });
    }
    Ok(dims[0])
}

pub(crate) fn check_labels(labels: &[u8], num_classes: usize, file: &str) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= num_classes) {
        Some(i) => Err(DataError::Malformed {
            file: file.to_string(),
            detail: format!("label {} at index {i} is not < {num_classes}", labels[i]),
        }),
        None => Ok(()),
    }
}

fn cifar_split(
    entry: &DatasetEntry,
    loc: &Location,
    role: Role,
    digests: &mut Vec<(String, String)>,
) -> Result<Split> {
    if entry.shape.iter().product::<usize>() != IMAGE_BYTES {
        return Err(DataError::Manifest(format!(
            "dataset '{}': cifar-bin needs shape [3, 32, 32]",
            entry.name
        )));
    }
    let mut split = Split::default();
    for f in files_with_role(loc, role) {
        let batch = read_cifar_batch(&f.path, entry.num_classes())?;
        check_digest(f, &batch.sha256)?;
        digests.push((f.entry.name.clone(), batch.sha256));
        split
            .images
            .extend(batch.pixels.iter().map(|&b| b as f32 / 255.0));
        split.labels.extend(batch.labels);
    }
    Ok(split)
}

fn check_size(
    entry: &DatasetEntry,
    loc: &Location,
    split: &str,
    expected: Option<usize>,
    got: usize,
) -> Result<()> {
    match expected {
        Some(n) if n != got => Err(DataError::Malformed {
            file: loc.describe(),
            detail: format!(
                "{} {split} split has {got} examples, the manifest says {n}",
                entry.name
            ),
        }),
        _ => Ok(()),
    }
}

fn to_unit_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| b as f32 / 255.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar::encode_cifar;
    use crate::idx::{encode_idx, read_decompressed};
    use crate::testutil::*;
    use std::path::{Path, PathBuf};

    const MNIST_TRAIN: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    const MNIST_TEST: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

    /// `$INSILICO_DATA`, else the project's shared folder; `None` (and a
    /// note) if `name` is not there.
    fn real_data(name: &str) -> Option<PathBuf> {
        let root = std::env::var_os("INSILICO_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/work/shared/datasets"));
        if root.join(name).is_dir() {
            Some(root)
        } else {
            eprintln!("note: {name} not found under {}; skipping", root.display());
            None
        }
    }

    fn mean_std(images: &[f32]) -> (f64, f64) {
        let n = images.len() as f64;
        let mean = images.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = images
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    #[test]
    fn real_mnist() {
        let Some(root) = real_data("mnist") else {
            return;
        };
        let ds = load("mnist", &only(&root)).unwrap();
        assert_eq!(ds.shape, [1, 28, 28]);
        assert_eq!(ds.train.class_counts(10), MNIST_TRAIN);
        assert_eq!(ds.test.class_counts(10), MNIST_TEST);
        assert_eq!(ds.train.image_len(), 784);
        let (mean, std) = mean_std(&ds.train.images);
        assert!(
            (mean - ds.mean[0] as f64).abs() < 1e-3 && (std - ds.std[0] as f64).abs() < 1e-3,
            "{mean} {std}"
        );
        assert_eq!(ds.checksum.len(), 64);
        assert!(ds.source.contains("--data-dir"), "{}", ds.source);
    }

    #[test]
    fn real_fashion_mnist() {
        let Some(root) = real_data("fashion-mnist") else {
            return;
        };
        let ds = load("fashion-mnist", &only(&root)).unwrap();
        assert_eq!(ds.train.class_counts(10), [6000; 10]);
        assert_eq!(ds.test.class_counts(10), [1000; 10]);
        assert_eq!(ds.class_names[9], "Ankle boot");
        let (mean, std) = mean_std(&ds.train.images);
        assert!(
            (mean - ds.mean[0] as f64).abs() < 1e-3 && (std - ds.std[0] as f64).abs() < 1e-3,
            "{mean} {std}"
        );
    }

    #[test]
    fn real_mnist_with_a_modified_file_is_rejected() {
        let Some(root) = real_data("mnist") else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnist");
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
        ] {
            let file = format!("{name}.gz");
            std::fs::copy(root.join("mnist").join(&file), dir.join(&file)).unwrap();
        }
        // A valid gzip of a valid IDX file, one label changed.
        let mut labels = read_decompressed(&root.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
        labels[8] = (labels[8] + 1) % 10;
        std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
        let e = load("mnist", &only(tmp.path())).unwrap_err();
        match &e {
            DataError::ChecksumMismatch {
                file,
                expected,
                found,
            } => {
                assert!(file.ends_with("mnist/t10k-labels-idx1-ubyte.gz"), "{file}");
                assert_eq!(
                    expected,
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
                );
                assert_eq!(found, &crate::fsx::sha256_hex(&labels));
            }
            other => panic!("expected ChecksumMismatch, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("t10k-labels-idx1-ubyte.gz") && msg.contains("expected sha256 ff7bcfd4"),
            "{msg}"
        );
    }

    #[test]
    fn tiny_idx_load_and_checks() {
        let root = tempfile::tempdir().unwrap();
        let files = tiny_idx_files(1);
        write_gz(&root.path().join("tiny"), &files);
        let entry = tiny_entry(Some(&files));
        let ds = load_entry(&entry, &only(root.path())).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (6, 4));
        // Pixel k of the file is 7k + salt.
        assert_eq!(
            ds.train.image(1),
            [29.0 / 255.0, 36.0 / 255.0, 43.0 / 255.0, 50.0 / 255.0]
        );
        assert_eq!(ds.train.labels, [0, 1, 0, 1, 0, 1]);
        // The checksum identifies the content.
        let other = tiny_idx_files(2);
        write_gz(&root.path().join("tiny"), &other);
        let ds2 = load_entry(&tiny_entry(Some(&other)), &only(root.path())).unwrap();
        assert_ne!(ds.checksum, ds2.checksum);
    }

    fn write_tiny_with(root: &Path, replace: (&str, Vec<u8>)) -> DatasetEntry {
        let mut files = tiny_idx_files(1);
        files.iter_mut().find(|(n, _)| n == replace.0).unwrap().1 = replace.1;
        write_gz(&root.join("tiny"), &files);
        tiny_entry(None)
    }

    #[test]
    fn label_out_of_range_and_count_mismatch() {
        let root = tempfile::tempdir().unwrap();
        let entry = write_tiny_with(root.path(), ("te-lbl", encode_idx(&[4], &[0, 1, 2, 0])));
        let e = load_entry(&entry, &only(root.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("te-lbl.gz") && e.contains("label 2 at index 2"),
            "{e}"
        );

        let entry = write_tiny_with(root.path(), ("te-lbl", encode_idx(&[3], &[0, 1, 0])));
        let e = load_entry(&entry, &only(root.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("te-lbl.gz") && e.contains("labels are 3, but") && e.contains("4 images"),
            "{e}"
        );

        let entry = write_tiny_with(root.path(), ("tr-img", encode_idx(&[6, 3, 2], &[0; 36])));
        let e = load_entry(&entry, &only(root.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tr-img.gz") && e.contains("6x3x2"), "{e}");
    }

    fn cifar_entry() -> DatasetEntry {
        let mut e = Manifest::embedded().get("cifar10").unwrap().clone();
        e.train_size = None;
        e.test_size = None;
        e
    }

    #[test]
    fn cifar_tiny_files() {
        let root = tempfile::tempdir().unwrap();
        // Directly in the root, as if --data-dir pointed at the unpacked folder.
        for (i, name) in crate::cifar::TRAIN_FILES
            .iter()
            .chain([&crate::cifar::TEST_FILE])
            .enumerate()
        {
            let pixels: Vec<u8> = (0..2 * IMAGE_BYTES)
                .map(|p| ((p + i) % 256) as u8)
                .collect();
            std::fs::write(root.path().join(name), encode_cifar(&[i as u8, 9], &pixels)).unwrap();
        }
        let ds = load_entry(&cifar_entry(), &only(root.path())).unwrap();
        assert_eq!(ds.shape, [3, 32, 32]);
        assert_eq!(ds.train.labels, [0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
        assert_eq!(ds.test.labels, [5, 9]);
        assert_eq!(ds.train.image_len(), 3072);
        assert_eq!(ds.train.image(2)[0], 1.0 / 255.0);
        assert_eq!(
            ds.test.image(1)[3071],
            ((3071 + IMAGE_BYTES + 5) % 256) as f32 / 255.0
        );

        std::fs::write(root.path().join("test_batch.bin"), vec![0u8; 3073 + 10]).unwrap();
        let e = load_entry(&cifar_entry(), &only(root.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test_batch.bin") && e.contains("multiple"),
            "{e}"
        );
    }

    #[test]
    fn cifar_train_size_is_checked() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cifar10/cifar-10-batches-bin");
        std::fs::create_dir_all(&dir).unwrap();
        for name in crate::cifar::TRAIN_FILES
            .iter()
            .chain([&crate::cifar::TEST_FILE])
        {
            std::fs::write(dir.join(name), encode_cifar(&[1], &[0; IMAGE_BYTES])).unwrap();
        }
        let e = load("cifar10", &only(root.path())).unwrap_err().to_string();
        assert!(
            e.contains("train split has 5 examples, the manifest says 50000"),
            "{e}"
        );
    }

    #[test]
    fn shapes_and_unknown_names() {
        let empty = tempfile::tempdir().unwrap();
        let ds = load("shapes", &only(empty.path())).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (12_000, 2_000));
        assert_eq!(ds.checksum, "generated:shapes:seed=0");
        assert_eq!(ds.class_names[0], "bar-0");
        let e = load("mnist-3d", &only(empty.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mnist-3d") && e.contains("mnist, fashion-mnist, cifar10, shapes"),
            "{e}"
        );
    }

    #[test]
    fn split_helpers() {
        let s = Split {
            images: (0..8).map(|v| v as f32).collect(),
            labels: vec![2, 0, 2, 1],
        };
        assert_eq!(s.len(), 4);
        assert_eq!(s.image_len(), 2);
        assert_eq!(s.image(2), [4.0, 5.0]);
        let sub = s.subset(&[3, 0, 0]);
        assert_eq!(sub.labels, [1, 2, 2]);
        assert_eq!(sub.images, [6.0, 7.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(s.class_counts(3), [1, 1, 2]);
        assert!(Split::default().is_empty());
        assert_eq!(Split::default().image_len(), 0);
    }
}
