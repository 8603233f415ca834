//! The CIFAR-10 binary format: a batch file is a sequence of 3073-byte
//! records, one label byte followed by a 32x32 RGB image stored channel-major
//! (1024 red, 1024 green, 1024 blue bytes), which is already the `[c, h, w]`
//! layout the engine wants.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::fsx::sha256_hex;
use crate::idx::read_decompressed;

/// Bytes of one image (3 x 32 x 32).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: label + image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Training batch file names, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// Test batch file name.
pub const TEST_FILE: &str = "test_batch.bin";

/// One decoded batch file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CifarBatch {
    pub labels: Vec<u8>,
    /// `labels.len() * IMAGE_BYTES` bytes, channel-major per image.
    pub pixels: Vec<u8>,
    /// SHA-256 of the (decompressed) file.
    pub sha256: String,
}

/// Reads a batch file (raw or gzipped) and validates it: the length must be
/// a whole number of records and every label below `num_classes`.
pub fn read_cifar_batch(path: &Path, num_classes: usize) -> Result<CifarBatch> {
    let bytes = read_decompressed(path)?;
    let sha256 = sha256_hex(&bytes);
    let (labels, pixels) = parse_cifar(&bytes, num_classes, &path.display().to_string())?;
    Ok(CifarBatch {
        labels,
        pixels,
        sha256,
    })
}

/// Splits decompressed batch bytes into labels and pixels.
pub fn parse_cifar(bytes: &[u8], num_classes: usize, file: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(DataError::Malformed {
            file: file.to_string(),
            detail: format!(
                "length {} is not a positive multiple of the {RECORD_BYTES}-byte record \
                 ({} whole records and {} bytes over)",
                bytes.len(),
                bytes.len() / RECORD_BYTES,
                bytes.len() % RECORD_BYTES
            ),
        });
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    for (i, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        if rec[0] as usize >= num_classes {
            return Err(DataError::Malformed {
                file: file.to_string(),
                detail: format!("record {i} has label {}, expected < {num_classes}", rec[0]),
            });
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((labels, pixels))
}

/// Encodes records in the batch format (for tests and fixtures).
pub fn encode_cifar(labels: &[u8], pixels: &[u8]) -> Vec<u8> {
    assert_eq!(pixels.len(), labels.len() * IMAGE_BYTES);
    labels
        .iter()
        .zip(pixels.chunks_exact(IMAGE_BYTES))
        .flat_map(|(&l, img)| std::iter::once(l).chain(img.iter().copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let labels = [3u8, 9, 0];
        let pixels: Vec<u8> = (0..3 * IMAGE_BYTES).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data_batch_1.bin");
        std::fs::write(&p, encode_cifar(&labels, &pixels)).unwrap();
        let b = read_cifar_batch(&p, 10).unwrap();
        assert_eq!(b.labels, labels);
        assert_eq!(b.pixels, pixels);
    }

    #[test]
    fn bad_length_and_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("test_batch.bin");
        let mut bytes = encode_cifar(&[1, 2], &vec![0; 2 * IMAGE_BYTES]);
        bytes.pop();
        std::fs::write(&p, &bytes).unwrap();
        let e = read_cifar_batch(&p, 10).unwrap_err().to_string();
        assert!(
            e.contains("test_batch.bin") && e.contains("multiple of the 3073"),
            "{e}"
        );

        std::fs::write(&p, encode_cifar(&[1, 10], &vec![0; 2 * IMAGE_BYTES])).unwrap();
        let e = read_cifar_batch(&p, 10).unwrap_err().to_string();
        assert!(e.contains("record 1 has label 10"), "{e}");

        std::fs::write(&p, b"").unwrap();
        assert!(read_cifar_batch(&p, 10).is_err());
    }
}
