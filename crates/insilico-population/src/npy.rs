//! A minimal NPY reader for numeric arrays as numpy.save writes them: floats (`f2`, `f4`, `f8`;
//! half precision as PyTorch's `.half()` activations export),
//! signed and unsigned integers of 1-8 bytes (spike counts are often saved as `int64`) and
//! booleans, in either byte order and in C or Fortran order, read as f64 in C order.

pub(crate) struct Npy {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Npy, String> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(
            "a zip archive (as np.savez and torch.save write), not an NPY file: save \
                    each array with np.save"
                .into(),
        );
    }
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an NPY file (bad magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (len as usize, 12)
        }
        v => return Err(format!("unsupported NPY version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    if header.contains("'descr': [") {
        // `field` would cut such a descr at its first comma; the whole list says nothing a
        // user needs, the remedy does.
        return Err(
            "a structured array (named fields), not a [stimuli, units] matrix: \
                    numpy.lib.recfunctions.structured_to_unstructured(a) makes one"
                .into(),
        );
    }
    let descr = field(header, "descr").ok_or("header has no 'descr'")?;
    let dtype = Dtype::parse(descr.trim_matches(|c| c == '\'' || c == '"'))?;
    let fortran = match field(header, "fortran_order").map(str::trim) {
        Some("False") => false,
        Some("True") => true,
        _ => return Err("header has no fortran_order True or False".into()),
    };
    let shape = parse_shape(header)?;
    let bytes_needed = shape
        .iter()
        .try_fold(dtype.width, |total, &s| total.checked_mul(s))
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    let data = &bytes[start + header_len..];
    if data.len() != bytes_needed {
        return Err(format!(
            "shape {shape:?} needs {bytes_needed} bytes of data, the file has {}",
            data.len()
        ));
    }
    let values = data
        .chunks_exact(dtype.width)
        .enumerate()
        .map(|(k, b)| dtype.decode(b, k))
        .collect::<Result<Vec<f64>, String>>()?;
    let values = if fortran {
        fortran_to_c(&values, &shape)
    } else {
        values
    };
    Ok(Npy { shape, values })
}

/// A numeric NPY element type (`descr` such as `<f8`, `>i4`, `|u1`, `|b1`).
#[derive(Clone, Copy)]
struct Dtype {
    kind: Kind,
    width: usize,
    big_endian: bool,
}

/// What the bytes of an element hold (the `descr` letter).
#[derive(Clone, Copy)]
enum Kind {
    Float,
    Signed,
    /// Unsigned integers and booleans (0 or 1).
    Unsigned,
}

impl Dtype {
    fn parse(descr: &str) -> Result<Self, String> {
        let unsupported = || {
            format!(
                "dtype {descr}: expected floats (f2, f4, f8), integers (i1-i8, u1-u8) or booleans (b1)"
            )
        };
        let b = descr.as_bytes();
        if b.len() < 3 {
            return Err(unsupported());
        }
        let big_endian = match b[0] {
            b'<' | b'|' => false,
            b'>' => true,
            b'=' => cfg!(target_endian = "big"),
            _ => return Err(unsupported()),
        };
        let width: usize = descr[2..].parse().map_err(|_| unsupported())?;
        let kind = match (b[1], width) {
            (b'f', 2 | 4 | 8) => Kind::Float,
            (b'i', 1 | 2 | 4 | 8) => Kind::Signed,
            (b'u', 1 | 2 | 4 | 8) | (b'b', 1) => Kind::Unsigned,
            _ => return Err(unsupported()),
        };
        Ok(Self {
            kind,
            width,
            big_endian,
        })
    }

    /// Element `k`, from its `width` bytes.
    fn decode(self, bytes: &[u8], k: usize) -> Result<f64, String> {
        let mut le = [0u8; 8];
        le[..self.width].copy_from_slice(bytes);
        if self.big_endian {
            le[..self.width].reverse();
        }
        let unsigned = u64::from_le_bytes(le);
        let value = match (self.kind, self.width) {
            (Kind::Float, 2) => return Ok(half_to_f64(u16::from_le_bytes([le[0], le[1]]))),
            (Kind::Float, 4) => {
                return Ok(f64::from(f32::from_le_bytes([le[0], le[1], le[2], le[3]])))
            }
            (Kind::Float, _) => return Ok(f64::from_le_bytes(le)),
            (Kind::Signed, w) => {
                // Sign-extend the `w`-byte integer.
                let shift = 64 - 8 * w as u32;
                ((unsigned << shift) as i64 >> shift) as i128
            }
            (Kind::Unsigned, _) => unsigned as i128,
        };
        // Integers beyond 2^53 would be rounded as f64.
        if value.unsigned_abs() > 1 << 53 {
            return Err(format!(
                "integer {value} (element {k}) is too large to be exact as f64"
            ));
        }
        Ok(value as f64)
    }
}

/// An IEEE 754 half-precision number (1 sign, 5 exponent, 10 fraction bits), exactly.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24), // subnormal
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Fortran-order values (first axis fastest) in C order (last axis fastest).
fn fortran_to_c(values: &[f64], shape: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let mut index = vec![0usize; shape.len()];
    for _ in 0..values.len() {
        let (mut at, mut stride) = (0, 1);
        for (i, s) in index.iter().zip(shape) {
            at += i * stride;
            stride *= s;
        }
        out.push(values[at]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// The text of `'key': value` up to the next comma at depth 0 (values here are short).
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?;
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn parse_shape(header: &str) -> Result<Vec<usize>, String> {
    let at = header.find("'shape'").ok_or("header has no 'shape'")?;
    let rest = &header[at..];
    let open = rest.find('(').ok_or("malformed shape")?;
    let close = rest.find(')').ok_or("malformed shape")?;
    rest[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry {s:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NPY v1.0 file with `descr`, `fortran_order` and `shape` around `data`.
    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let fortran = if fortran { "True" } else { "False" };
        let header =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}\n");
        with_header(&header, data)
    }

    /// An NPY v1.0 file of this header and data.
    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    /// Half precision, by bit patterns worked out by hand: 1 (0x3c00), -2.5 (0xc100), the
    /// largest (65504, 0x7bff), the smallest subnormal (2^-24, 0x0001), 1/3 rounded
    /// (0x3555 = 1.0100110101b x 2^-2 = 0.333251953125), in either byte order.
    #[test]
    fn half_precision_reads_exactly() {
        let bits: [u16; 5] = [0x3c00, 0xc100, 0x7bff, 0x0001, 0x3555];
        let expected = [1.0, -2.5, 65504.0, 2f64.powi(-24), 0.333251953125];
        let le: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let be: Vec<u8> = bits.iter().flat_map(|b| b.to_be_bytes()).collect();
        assert_eq!(
            parse(&npy("<f2", false, "(1, 5)", &le)).unwrap().values,
            expected
        );
        assert_eq!(
            parse(&npy(">f2", false, "(1, 5)", &be)).unwrap().values,
            expected
        );
        let inf = parse(&npy("<f2", false, "(1, 1)", &0x7c00u16.to_le_bytes())).unwrap();
        assert_eq!(inf.values, [f64::INFINITY]);
    }

    #[test]
    fn integers_booleans_and_both_byte_orders_read_as_their_values() {
        let counts: Vec<u8> = [3i64, -2, 0, 7]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<i8", false, "(2, 2)", &counts)).unwrap();
        assert_eq!((a.shape, a.values), (vec![2, 2], vec![3.0, -2.0, 0.0, 7.0]));
        let small: Vec<u8> = [-1i16, 300].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            parse(&npy(">i2", false, "(1, 2)", &small)).unwrap().values,
            [-1.0, 300.0]
        );
        assert_eq!(
            parse(&npy("|u1", false, "(1, 2)", &[255, 1]))
                .unwrap()
                .values,
            [255.0, 1.0]
        );
        assert_eq!(
            parse(&npy("|b1", false, "(1, 2)", &[1, 0])).unwrap().values,
            [1.0, 0.0]
        );
        let floats: Vec<u8> = [0.5f64, -3.25]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(
            parse(&npy(">f8", false, "(2, 1)", &floats)).unwrap().values,
            [0.5, -3.25]
        );
    }

    #[test]
    fn fortran_order_is_read_in_c_order() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let data: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f4", true, "(2, 3)", &data)).unwrap();
        assert_eq!(a.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // 4-D [1, 2, 1, 2]: Fortran element (0, c, 0, w) sits at c + 2 w.
        let data: Vec<u8> = [10.0f64, 20.0, 11.0, 21.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f8", true, "(1, 2, 1, 2)", &data)).unwrap();
        assert_eq!(a.values, [10.0, 11.0, 20.0, 21.0]);
    }

    #[test]
    fn unsupported_or_inexact_data_and_impossible_shapes_are_errors() {
        let err = |descr: &str, shape: &str, data: &[u8]| {
            parse(&npy(descr, false, shape, data)).err().unwrap()
        };
        assert!(err("<c16", "(1, 1)", &[0; 16]).starts_with("dtype <c16: expected"));
        assert!(err("<f16", "(1, 1)", &[0; 16]).starts_with("dtype <f16"));
        assert!(parse(b"PK\x03\x04rest of a zip")
            .err()
            .unwrap()
            .contains("np.savez"));
        assert!(err("|O", "(1, 1)", &[0; 8]).starts_with("dtype |O"));
        let fields =
            "{'descr': [('x', '<f8'), ('y', '<f8')], 'fortran_order': False, 'shape': (1,), }";
        assert!(parse(&with_header(fields, &[0; 16]))
            .err()
            .unwrap()
            .contains("structured_to_unstructured"));
        let big = ((1i64 << 53) + 1).to_le_bytes();
        assert!(err("<i8", "(1, 1)", &big).contains("too large to be exact"));
        assert!(err("<f8", "(4294967296, 4294967296, 2)", &[]).contains("is too large"));
        assert!(err("<f8", "(2, 2)", &[0; 8]).contains("needs 32 bytes of data, the file has 8"));
    }
}
