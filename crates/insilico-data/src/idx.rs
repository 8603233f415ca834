//! The IDX format of MNIST and Fashion-MNIST: a 4-byte magic
//! (`00 00 08 ndim`, 0x08 = unsigned bytes), `ndim` big-endian u32 sizes,
//! then the data. Files may be gzipped or not; we detect gzip by its magic
//! (`1f 8b`) rather than by the extension, because people rename files.
//!
//! Validation is strict: a truncated download or a file with trailing bytes
//! is reported, not silently cropped, since either means the data is not what
//! the digest in the manifest describes.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};
use crate::fsx::sha256_hex;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const TYPE_UNSIGNED_BYTE: u8 = 0x08;

/// A parsed IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The payload, row-major, without the header.
    pub data: Vec<u8>,
    /// SHA-256 of the whole decompressed file (header included), the digest
    /// the manifest records.
    pub sha256: String,
}

/// Reads and validates an IDX file, raw or gzipped.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_decompressed(path)?;
    let sha256 = sha256_hex(&bytes);
    let (dims, data) = parse_idx(&bytes, &path.display().to_string())?;
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
        sha256,
    })
}

/// Reads a file and gunzips it if it starts with the gzip magic.
pub fn read_decompressed(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decompress_if_gzip(raw, &path.display().to_string())
}

/// Gunzips `raw` if it is gzip, else returns it unchanged. `file` names the
/// source in errors.
pub fn decompress_if_gzip(raw: Vec<u8>, file: &str) -> Result<Vec<u8>> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| DataError::CorruptGzip {
            file: file.to_string(),
            detail: e.to_string(),
        })?;
    Ok(out)
}

/// Parses decompressed IDX bytes into dims and a payload slice.
pub fn parse_idx<'a>(bytes: &'a [u8], file: &str) -> Result<(Vec<usize>, &'a [u8])> {
    let ndim = check_magic(bytes, file)?;
    let header_len = 4 + 4 * ndim;
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            file: file.to_string(),
            detail: format!(
                "header of {ndim} dimensions needs {header_len} bytes, file has {}",
                bytes.len()
            ),
        });
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = payload_len(&dims, file)?;
    let data = &bytes[header_len..];
    let shape = dims_to_string(&dims);
    match data.len().cmp(&expected) {
        std::cmp::Ordering::Less => Err(DataError::Truncated {
            file: file.to_string(),
            detail: format!(
                "header says {shape} = {expected} bytes of data, found {}",
                data.len()
            ),
        }),
        std::cmp::Ordering::Greater => Err(DataError::TrailingBytes {
            file: file.to_string(),
            detail: format!(
                "header says {shape} = {expected} bytes of data, found {} ({} extra)",
                data.len(),
                data.len() - expected
            ),
        }),
        std::cmp::Ordering::Equal => Ok((dims, data)),
    }
}

/// Encodes an unsigned-byte IDX file (uncompressed). Used by tests and by
/// tools that export data in the format MNIST tooling understands.
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert!(dims.len() <= 255, "IDX supports at most 255 dimensions");
    assert_eq!(
        dims.iter().product::<usize>(),
        data.len(),
        "data length must match dims"
    );
    let mut out = vec![0, 0, TYPE_UNSIGNED_BYTE, dims.len() as u8];
    for &d in dims {
        let d = u32::try_from(d).expect("IDX dimensions are u32");
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// "60000x28x28".
pub fn dims_to_string(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

fn check_magic(bytes: &[u8], file: &str) -> Result<usize> {
    let Some(magic) = bytes.get(..4) else {
        return Err(DataError::Truncated {
            file: file.to_string(),
            detail: format!("{} bytes, too short for the 4-byte IDX magic", bytes.len()),
        });
    };
    let bad = |why: &str| DataError::BadMagic {
        file: file.to_string(),
        detail: format!(
            "expected 00 00 08 <ndim>, found {:02x} {:02x} {:02x} {:02x} ({why})",
            magic[0], magic[1], magic[2], magic[3]
        ),
    };
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad("not an IDX file"));
    }
    if magic[2] != TYPE_UNSIGNED_BYTE {
        return Err(bad("only unsigned-byte data (type 0x08) is supported"));
    }
    if magic[3] == 0 {
        return Err(DataError::BadDims {
            file: file.to_string(),
            detail: "zero dimensions".to_string(),
        });
    }
    Ok(magic[3] as usize)
}

fn payload_len(dims: &[usize], file: &str) -> Result<usize> {
    if let Some(axis) = dims.iter().position(|&d| d == 0) {
        return Err(DataError::BadDims {
            file: file.to_string(),
            detail: format!("dimension {axis} of {} is zero", dims_to_string(dims)),
        });
    }
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::BadDims {
            file: file.to_string(),
            detail: format!("{} overflows the address space", dims_to_string(dims)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn sample() -> (Vec<usize>, Vec<u8>) {
        let dims = vec![3, 2, 4];
        let data = (0..24u8).collect();
        (dims, data)
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn err_of(bytes: &[u8], name: &str) -> (DataError, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), name, bytes);
        let e = read_idx(&p).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(name), "error should name the file: {msg}");
        (e, msg)
    }

    #[test]
    fn round_trip_raw_and_gzip() {
        let (dims, data) = sample();
        let raw = encode_idx(&dims, &data);
        let dir = tempfile::tempdir().unwrap();
        // The gzip file deliberately has no .gz extension: detection is by magic.
        for (name, bytes) in [("raw-idx3", raw.clone()), ("gz-idx3", gzip(&raw))] {
            let a = read_idx(&write(dir.path(), name, &bytes)).unwrap();
            assert_eq!(a.dims, dims);
            assert_eq!(a.data, data);
            assert_eq!(
                a.sha256,
                sha256_hex(&raw),
                "digest is of decompressed bytes"
            );
        }
    }

    #[test]
    fn truncated_file() {
        let (dims, data) = sample();
        let raw = encode_idx(&dims, &data);
        let (e, msg) = err_of(&gzip(&raw[..raw.len() - 5]), "short.gz");
        assert!(matches!(e, DataError::Truncated { .. }), "{e:?}");
        assert!(msg.contains("3x2x4 = 24 bytes of data, found 19"), "{msg}");
    }

    #[test]
    fn truncated_header() {
        let (e, _) = err_of(&[0, 0, 8, 3, 0, 0], "hdr");
        assert!(matches!(e, DataError::Truncated { .. }), "{e:?}");
    }

    #[test]
    fn trailing_bytes() {
        let (dims, data) = sample();
        let mut raw = encode_idx(&dims, &data);
        raw.push(7);
        let (e, msg) = err_of(&raw, "long");
        assert!(matches!(e, DataError::TrailingBytes { .. }), "{e:?}");
        assert!(msg.contains("1 extra"), "{msg}");
    }

    #[test]
    fn wrong_magic() {
        let (dims, data) = sample();
        let mut raw = encode_idx(&dims, &data);
        raw[0] = 0x42;
        let (e, _) = err_of(&raw, "magic0");
        assert!(matches!(e, DataError::BadMagic { .. }), "{e:?}");
        raw[0] = 0;
        raw[2] = 0x0d; // float data: valid IDX, unsupported here
        let (e, msg) = err_of(&raw, "magic-float");
        assert!(matches!(e, DataError::BadMagic { .. }), "{e:?}");
        assert!(msg.contains("0d"), "{msg}");
    }

    #[test]
    fn wrong_dims() {
        let (e, _) = err_of(&[0, 0, 8, 0], "nodims");
        assert!(matches!(e, DataError::BadDims { .. }), "{e:?}");
        let (e, msg) = err_of(&encode_zero_dim(), "zerodim");
        assert!(matches!(e, DataError::BadDims { .. }), "{e:?}");
        assert!(msg.contains("dimension 1"), "{msg}");
        // Header claims more data than present: a product mismatch.
        let mut raw = encode_idx(&[2, 2], &[1, 2, 3, 4]);
        raw[7] = 3;
        let (e, _) = err_of(&raw, "product");
        assert!(matches!(e, DataError::Truncated { .. }), "{e:?}");
    }

    fn encode_zero_dim() -> Vec<u8> {
        let mut raw = vec![0, 0, 8, 2];
        raw.extend_from_slice(&5u32.to_be_bytes());
        raw.extend_from_slice(&0u32.to_be_bytes());
        raw
    }

    #[test]
    fn corrupt_gzip() {
        let (dims, data) = sample();
        let gz = gzip(&encode_idx(&dims, &data));
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        let (e, _) = err_of(&bad, "flipped.gz");
        assert!(matches!(e, DataError::CorruptGzip { .. }), "{e:?}");
        let (e, _) = err_of(&gz[..gz.len() / 2], "cut.gz");
        assert!(matches!(e, DataError::CorruptGzip { .. }), "{e:?}");
    }

    #[test]
    fn missing_file_is_io_error_naming_it() {
        let e = read_idx(Path::new("/nonexistent/dir/t10k-labels")).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/dir/t10k-labels"));
    }
}
