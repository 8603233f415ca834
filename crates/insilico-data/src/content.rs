//! Content checks of a dataset's files beyond their digests: each file parses in the
//! dataset's format (IDX header and length, whole CIFAR records), its labels are classes
//! of the dataset, and it holds as many examples as the manifest and its sibling files
//! say. `data verify` runs them on every file, so that files whose digest the manifest
//! cannot pin (CIFAR-10) are still checked, and every problem names its file.

use crate::cifar::parse_cifar;
use crate::dataset::{check_image_dims, check_labels};
use crate::error::{DataError, Result};
use crate::idx::{dims_to_string, parse_idx};
use crate::manifest::{DatasetEntry, Format, Role};

/// Parses the decompressed `bytes` of a file with `role` and returns how many examples
/// (images, labels or records) it holds. `file` names it in errors.
pub fn examples_in(entry: &DatasetEntry, role: Role, bytes: &[u8], file: &str) -> Result<usize> {
    match (entry.format, role) {
        (Format::CifarBin, _) => {
            let (labels, _) = parse_cifar(bytes, entry.num_classes(), file)?;
            Ok(labels.len())
        }
        (_, Role::TrainImages | Role::TestImages) => {
            let (dims, _) = parse_idx(bytes, file)?;
            check_image_dims(entry, file, &dims)
        }
        (_, Role::TrainLabels | Role::TestLabels) => {
            let (dims, labels) = parse_idx(bytes, file)?;
            if dims.len() != 1 {
                return Err(DataError::BadDims {
                    file: file.to_string(),
                    detail: format!(
                        "labels are {}, expected one dimension",
                        dims_to_string(&dims)
                    ),
                });
            }
            check_labels(labels, entry.num_classes(), file)?;
            Ok(dims[0])
        }
        (_, role) => Err(DataError::Manifest(format!(
            "dataset '{}': an {:?} file cannot have role {role:?}",
            entry.name, entry.format
        ))),
    }
}

/// How many examples one file of `role` must hold, when the manifest says: the split's
/// size shared evenly over the files of that role (CIFAR-10 spreads its 50,000 training
/// images over five batches of 10,000; an IDX split is one file).
pub fn expected_examples(entry: &DatasetEntry, role: Role) -> Option<usize> {
    let size = match role {
        Role::TrainImages | Role::TrainLabels | Role::Train => entry.train_size,
        Role::TestImages | Role::TestLabels | Role::Test => entry.test_size,
    }?;
    let files = entry.files.iter().filter(|f| f.role == role).count();
    (files > 0 && size.is_multiple_of(files)).then(|| size / files)
}

/// The images role whose count a labels file must match.
pub fn images_role(labels: Role) -> Option<Role> {
    match labels {
        Role::TrainLabels => Some(Role::TrainImages),
        Role::TestLabels => Some(Role::TestImages),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar::{encode_cifar, IMAGE_BYTES};
    use crate::idx::encode_idx;
    use crate::manifest::Manifest;
    use crate::testutil::tiny_entry;

    #[test]
    fn idx_counts_and_problems() {
        let e = tiny_entry(None);
        let img = encode_idx(&[3, 2, 2], &[0; 12]);
        assert_eq!(
            examples_in(&e, Role::TrainImages, &img, "tr-img").unwrap(),
            3
        );
        let lbl = encode_idx(&[3], &[0, 1, 1]);
        assert_eq!(
            examples_in(&e, Role::TrainLabels, &lbl, "tr-lbl").unwrap(),
            3
        );
        // The tiny set has 2 classes: label 2 is out of range.
        let bad = encode_idx(&[3], &[0, 2, 1]);
        let msg = examples_in(&e, Role::TrainLabels, &bad, "tr-lbl")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("tr-lbl") && msg.contains("label 2 at index 1"),
            "{msg}"
        );
        // Images given as labels: three dimensions where one is expected.
        let msg = examples_in(&e, Role::TrainLabels, &img, "tr-lbl")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("3x2x2") && msg.contains("one dimension"),
            "{msg}"
        );
    }

    #[test]
    fn cifar_expected_counts_split_over_batches() {
        let e = Manifest::embedded().get("cifar10").unwrap();
        // 50,000 over five batches; 10,000 in the one test batch.
        assert_eq!(expected_examples(e, Role::Train), Some(10_000));
        assert_eq!(expected_examples(e, Role::Test), Some(10_000));
        let rec = encode_cifar(&[3, 10], &vec![0; 2 * IMAGE_BYTES]);
        let msg = examples_in(e, Role::Test, &rec, "test_batch.bin")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("record 1 has label 10"), "{msg}");
    }
}
