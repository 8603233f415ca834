//! Tables and arrays: CSV, pretty JSON and NPY writers.

use crate::write_atomic;
use anyhow::{bail, Result};
use std::path::Path;

/// Write a CSV table (header + rows, RFC 4180 quoting, `\n` line endings), atomically.
/// Every row must have as many fields as the header. `pandas.read_csv(path)` loads it.
pub use insilico_data::fsx::write_csv;

/// Write `value` as pretty-printed JSON (with a trailing newline).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// An element type numpy reads from NPY: its `descr` and little-endian bytes.
pub trait NpyElement: Copy {
    const DESCR: &'static str;
    fn extend_le(self, out: &mut Vec<u8>);
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    fn extend_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for f64 {
    const DESCR: &'static str = "<f8";
    fn extend_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Encode an NPY v1.0 file: little-endian `<f4` or `<f8`, C order.
pub(crate) fn npy_bytes<T: NpyElement>(shape: &[usize], data: &[T]) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        bail!(
            "NPY shape {shape:?} holds {n} values but {} were given",
            data.len()
        );
    }
    let shape_str = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_str}, }}",
        T::DESCR
    );
    // magic (6) + version (2) + header length (2) + header, padded with
    // spaces and terminated by '\n' so the total is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    header.extend(std::iter::repeat_n(' ', pad));
    header.push('\n');
    if header.len() > u16::MAX as usize {
        bail!("NPY header too long for format 1.0");
    }
    let mut out = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    out.extend_from_slice(b"\x93NUMPY");
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in data {
        v.extend_le(&mut out);
    }
    Ok(out)
}

/// Write a float32 or float64 array as NPY v1.0 (`<f4`/`<f8`, C order, header padded to a
/// multiple of 64 bytes). `numpy.load(path)` reads it. `shape` must multiply out to
/// `data.len()`; an empty `shape` writes a scalar.
pub fn write_npy<T: NpyElement>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    write_atomic(path, &npy_bytes(shape, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse an NPY file by hand per the spec; returns (header dict, payload).
    fn parse_npy(bytes: &[u8]) -> (String, Vec<f32>) {
        assert_eq!(&bytes[..6], b"\x93NUMPY", "magic");
        assert_eq!(bytes[6], 1, "major version");
        assert_eq!(bytes[7], 0, "minor version");
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0, "header not padded to 64");
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.ends_with('\n'));
        let payload = &bytes[10 + hlen..];
        assert_eq!(payload.len() % 4, 0);
        let vals = payload
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (header.trim_end().to_string(), vals)
    }

    fn numpy_available() -> bool {
        std::process::Command::new("python3")
            .args(["-c", "import numpy"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    #[test]
    fn npy_roundtrip_by_hand_and_numpy() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(Vec<usize>, Vec<f32>, &str)> = vec![
            (vec![3], vec![1.5, -2.0, f32::MAX], "(3,)"),
            (vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.25], "(2, 3)"),
            (vec![], vec![7.0], "()"),
        ];
        for (i, (shape, data, shape_str)) in cases.iter().enumerate() {
            let p = dir.path().join(format!("a{i}.npy"));
            write_npy(&p, shape, data).unwrap();
            let (header, vals) = parse_npy(&std::fs::read(&p).unwrap());
            assert!(header.starts_with('{') && header.ends_with('}'), "{header}");
            assert!(header.contains("'descr': '<f4'"), "{header}");
            assert!(header.contains("'fortran_order': False"), "{header}");
            assert!(
                header.contains(&format!("'shape': {shape_str}")),
                "{header}"
            );
            assert_eq!(&vals, data);
            if numpy_available() {
                let script = format!(
                    "import numpy as np; a = np.load({:?}); \
                     assert a.dtype == np.float32 and a.shape == {shape_str}, (a.dtype, a.shape); \
                     print(' '.join(repr(float(v)) for v in a.ravel()))",
                    p.to_str().unwrap()
                );
                let out = std::process::Command::new("python3")
                    .args(["-c", &script])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let got: Vec<f32> = String::from_utf8(out.stdout)
                    .unwrap()
                    .split_whitespace()
                    .map(|s| s.parse::<f64>().unwrap() as f32)
                    .collect();
                assert_eq!(&got, data);
            } else {
                eprintln!("numpy not available: skipping np.load check");
            }
        }
        crate::assert_no_temp_files(dir.path());
    }

    #[test]
    fn npy_of_f64_keeps_every_bit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npy");
        let data = [0.1f64, -1e-300, f64::MAX, 1.0 / 3.0];
        write_npy(&p, &[2, 2], &data).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0, "header not padded to 64");
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.contains("'descr': '<f8'") && header.contains("'shape': (2, 2)"));
        let back: Vec<f64> = bytes[10 + hlen..]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, data);
    }

    #[test]
    fn npy_rejects_shape_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_npy(&dir.path().join("x.npy"), &[2, 2], &[1.0; 3]).is_err());
    }

    #[test]
    fn json_is_pretty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.json");
        write_json(&p, &serde_json::json!({"a": [1, 2], "b": "x"})).unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.contains("\n  \"a\""), "{s}");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["b"], "x");
        crate::assert_no_temp_files(dir.path());
    }
}
