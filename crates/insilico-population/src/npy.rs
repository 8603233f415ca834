//! A minimal NPY reader: little-endian f32/f64 arrays in C order (what numpy.save writes).

pub(crate) struct Npy {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Npy, String> {
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
    let descr = field(header, "descr").ok_or("header has no 'descr'")?;
    let width = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(format!(
                "dtype {other}: only little-endian f32 (<f4) and f64 (<f8)"
            ))
        }
    };
    if field(header, "fortran_order").map(str::trim) != Some("False") {
        return Err("Fortran-order arrays are not supported; save in C order".into());
    }
    let shape = parse_shape(header)?;
    let count: usize = shape.iter().product();
    let data = &bytes[start + header_len..];
    if data.len() != count * width {
        return Err(format!(
            "shape {shape:?} needs {} bytes of data, the file has {}",
            count * width,
            data.len()
        ));
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect()
    };
    Ok(Npy { shape, values })
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
