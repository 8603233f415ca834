//! The representation type (`[stimuli, units]`, f64) and its loaders from NPY and CSV.

use std::path::Path;

use faer::Mat;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, unreadable, Error, Result};

/// A population response: one row per stimulus, one column per unit, in f64.
///
/// Stored as a faer matrix (column-major), so that the products the measures need
/// (`X^T Y` over stimuli) run on contiguous columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    data: Mat<f64>,
}

/// How a 4-D convolutional map `[n, c, h, w]` becomes a `[n, units]` matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// Every (channel, position) is a unit: `[n, c*h*w]`, channel-major as in PyTorch's flatten.
    Flatten,
    /// Each channel's response averaged over positions: `[n, c]`.
    SpatialMean,
}

/// The mean of finite values, as numpy's `mean` computes it (the sum over the count),
/// except where the sum alone would overflow (values near f64's largest): then the sum of
/// each value over the count, which cannot.
fn mean_of_finite(values: &[f64]) -> f64 {
    let count = values.len() as f64;
    let sum = values.iter().sum::<f64>();
    if sum.is_finite() {
        sum / count
    } else {
        values.iter().map(|v| v / count).sum()
    }
}

impl Matrix {
    /// A matrix from row-major values (`data[i * cols + j]` is stimulus `i`, unit `j`),
    /// checked as [`Matrix::from_faer`] checks.
    pub fn from_row_major(rows: usize, cols: usize, data: &[f64]) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(invalid(
                "matrix",
                format!(
                    "{rows} x {cols} needs {} values, got {}",
                    rows * cols,
                    data.len()
                ),
            ));
        }
        Self::from_faer(Mat::from_fn(rows, cols, |i, j| data[i * cols + j]))
    }

    /// A matrix from rows of f32 values (e.g. recorded activations), checked like
    /// [`Matrix::from_row_major`].
    pub fn from_row_major_f32(rows: usize, cols: usize, data: &[f32]) -> Result<Self> {
        let wide: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
        Self::from_row_major(rows, cols, &wide)
    }

    /// A 4-D `[n, c, h, w]` map (row-major, as PyTorch and Burn lay it out) reduced to `[n, units]`.
    pub fn from_conv_map(shape: [usize; 4], data: &[f64], reduction: Reduction) -> Result<Self> {
        let [n, c, h, w] = shape;
        let needed = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        if needed != Some(data.len()) {
            let needed = needed.map_or("more than memory holds".into(), |k| k.to_string());
            return Err(invalid(
                "conv map",
                format!("shape {shape:?} needs {needed} values, got {}", data.len()),
            ));
        }
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            let (i, ch, y, x) = (k / (c * h * w), k / (h * w) % c, k / w % h, k % w);
            return Err(invalid(
                "conv map",
                format!(
                    "non-finite value {} at [{i}, {ch}, {y}, {x}] (counting from 0)",
                    data[k]
                ),
            ));
        }
        if h * w == 0 {
            return Err(invalid(
                "conv map",
                format!("shape {shape:?} has no positions (height or width 0)"),
            ));
        }
        match reduction {
            Reduction::Flatten => Self::from_row_major(n, c * h * w, data),
            Reduction::SpatialMean => {
                let positions = h * w;
                let means: Vec<f64> = data.chunks(positions).map(mean_of_finite).collect();
                Self::from_row_major(n, c, &means)
            }
        }
    }

    /// Wraps a faer matrix (rows are stimuli). Refused: no columns, a non-finite value
    /// (naming its row and column), and a largest magnitude outside
    /// [`Matrix::MAGNITUDES`], where the fourth powers that Frobenius norms of Gram
    /// matrices sum would overflow or underflow f64. Every measure is invariant to
    /// scaling an input, so such data can be divided by a constant first.
    pub fn from_faer(data: Mat<f64>) -> Result<Self> {
        let (rows, cols) = (data.nrows(), data.ncols());
        if cols == 0 {
            return Err(invalid(
                "matrix",
                format!("{rows} x 0: a representation needs at least one unit (column)"),
            ));
        }
        let mut largest = (0.0f64, 0, 0);
        for j in 0..cols {
            for i in 0..rows {
                let v = data[(i, j)];
                if !v.is_finite() {
                    return Err(invalid(
                        "matrix",
                        format!("non-finite value {v} at row {i}, column {j} (counting from 0)"),
                    ));
                }
                if v.abs() > largest.0 {
                    largest = (v.abs(), i, j);
                }
            }
        }
        let (low, high) = Self::MAGNITUDES;
        let (size, i, j) = largest;
        if size > high || (size > 0.0 && size < low) {
            return Err(invalid(
                "matrix",
                format!(
                    "the largest magnitude, {size:.3e} (row {i}, column {j}, counting from 0), is outside \
                     {low:e}..{high:e}, where f64 products of the values overflow or \
                     underflow; every measure is invariant to scale, so rescale the data by a \
                     constant"
                ),
            ));
        }
        Ok(Self { data })
    }

    /// The accepted range of a matrix's largest magnitude: float32 activations always lie
    /// in it, and the fourth powers of values in it stay normal f64 numbers.
    pub const MAGNITUDES: (f64, f64) = (1e-60, 1e60);

    /// Number of stimuli (rows).
    pub fn stimuli(&self) -> usize {
        self.data.nrows()
    }

    /// Number of units (columns).
    pub fn units(&self) -> usize {
        self.data.ncols()
    }

    /// The response of unit `unit` to stimulus `stimulus`.
    pub fn get(&self, stimulus: usize, unit: usize) -> f64 {
        self.data[(stimulus, unit)]
    }

    /// The underlying faer matrix.
    pub fn as_faer(&self) -> faer::MatRef<'_, f64> {
        self.data.as_ref()
    }

    /// The responses to the first `n` stimuli (all of them if there are fewer).
    pub fn first_stimuli(&self, n: usize) -> Self {
        let n = n.min(self.stimuli());
        Self {
            data: self.data.as_ref().subrows(0, n).to_owned(),
        }
    }

    /// The values in row-major order.
    pub fn to_row_major(&self) -> Vec<f64> {
        let (n, d) = (self.stimuli(), self.units());
        let mut out = Vec::with_capacity(n * d);
        for i in 0..n {
            out.extend((0..d).map(|j| self.data[(i, j)]));
        }
        out
    }

    /// The mean response of each class: one row per class present in `labels` (the class
    /// of each stimulus), in ascending order of class ([`classes_present`]), each the mean
    /// over the stimuli of that class. Classes need not be numbered from 0 without gaps
    /// (conditions coded 1..8, or a subset of stimuli lacking a class).
    pub fn class_means(&self, labels: &[usize]) -> Result<Self> {
        if labels.len() != self.stimuli() {
            return Err(Error::StimulusMismatch {
                what: "class means (labels vs rows)",
                x: self.stimuli(),
                y: labels.len(),
            });
        }
        let classes = classes_present(labels);
        // The row of each stimulus: its class's place among the classes (all present).
        let row: Vec<usize> = labels
            .iter()
            .map(|l| classes.partition_point(|c| c < l))
            .collect();
        let mut counts = vec![0usize; classes.len()];
        for &r in &row {
            counts[r] += 1;
        }
        let mut means = Mat::<f64>::zeros(classes.len(), self.units());
        for j in 0..self.units() {
            for (i, &r) in row.iter().enumerate() {
                means[(r, j)] += self.data[(i, j)];
            }
            for (r, &count) in counts.iter().enumerate() {
                means[(r, j)] /= count as f64;
            }
        }
        Ok(Self { data: means })
    }

    /// Loads the class of each stimulus, for [`Matrix::class_means`]: non-negative integers,
    /// from an NPY file (1-D, or one column) or a CSV or text file of one column (one
    /// class per line, an optional header). Each value that is not a class is named with
    /// its row.
    pub fn load_classes(path: &Path) -> Result<Vec<usize>> {
        let fail = |message: String| Error::Format {
            path: path.to_owned(),
            message,
        };
        let is_npy = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        let values = if is_npy {
            let bytes = std::fs::read(path).map_err(unreadable(path))?;
            let npy = crate::npy::parse(&bytes).map_err(fail)?;
            match npy.shape[..] {
                [_] | [_, 1] => npy.values,
                ref shape => {
                    return Err(fail(format!(
                        "shape {shape:?}: expected the class of each stimulus, 1-D [stimuli]"
                    )))
                }
            }
        } else {
            let m = Self::load_csv(path)?;
            if m.units() != 1 {
                return Err(fail(format!(
                    "{} columns: expected one, the class of each stimulus",
                    m.units()
                )));
            }
            m.data.col(0).iter().copied().collect()
        };
        values
            .iter()
            .enumerate()
            .map(|(row, &v)| {
                let class = v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64;
                class.then_some(v as usize).ok_or_else(|| {
                    fail(format!(
                        "row {row}: {v} is not a class (a non-negative integer)"
                    ))
                })
            })
            .collect()
    }

    /// Loads a `[stimuli, units]` matrix from an NPY file (floats, integers or booleans, any
    /// byte order, C or Fortran order; see `crate::npy`): 2-D, 1-D (one unit), or 4-D
    /// `[n, c, h, w]` reduced by `reduction` (required for 4-D files).
    pub fn load_npy(path: &Path, reduction: Option<Reduction>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(unreadable(path))?;
        let fail = |message: String| Error::Format {
            path: path.to_owned(),
            message,
        };
        let npy = crate::npy::parse(&bytes).map_err(fail)?;
        match (npy.shape.as_slice(), reduction) {
            (&[n, d], _) => Self::from_row_major(n, d, &npy.values),
            // One unit's responses, as numpy saves a single column taken out (`x[:, j]`).
            (&[n], _) => Self::from_row_major(n, 1, &npy.values),
            (&[n, c, h, w], Some(r)) => Self::from_conv_map([n, c, h, w], &npy.values, r),
            (&[_, _, _, _], None) => Err(fail(
                "a 4-D array [n, c, h, w] needs a reduction (flatten or spatial mean)".into(),
            )),
            (shape, _) => Err(fail(format!(
                "shape {shape:?}: expected 2-D [stimuli, units], 1-D [stimuli] (one unit) or 4-D \
                 [n, c, h, w]"
            ))),
        }
        .map_err(|e| match e {
            Error::InvalidArgument { reason, .. } => fail(reason),
            other => other,
        })
    }

    /// Loads a `[stimuli, units]` matrix from a CSV file: one stimulus per line, comma-separated
    /// numbers (a UTF-8 byte-order mark is skipped). The first line is a header when it does
    /// not parse as numbers, or when it is exactly `0,1,...,d-1`, the names pandas gives
    /// unnamed columns. A header whose first field is empty marks pandas' index column
    /// (`DataFrame.to_csv` without `index=False`): that column is dropped when it counts
    /// `0, 1, 2, ...`, and is an error otherwise, as it is not a unit.
    pub fn load_csv(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(unreadable(path))?;
        let fail = |message: String| Error::Format {
            path: path.to_owned(),
            message,
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
            fail(format!(
                "line {line}: byte {at} is not UTF-8 text (save the file as UTF-8)"
            ))
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .peekable();
        let header: Option<Vec<String>> = lines.peek().and_then(|(_, line)| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let numeric = fields.iter().all(|f| f.parse::<f64>().is_ok());
            let pandas_names =
                fields.len() > 1 && fields.iter().zip(0..).all(|(f, j)| *f == j.to_string());
            (!numeric || pandas_names).then(|| fields.iter().map(|f| f.to_string()).collect())
        });
        if header.is_some() {
            lines.next();
        }
        let (mut values, mut cols, mut rows) = (Vec::new(), None, 0usize);
        for (index, line) in lines {
            let row = parse_csv_row(line).map_err(|(k, field, e)| {
                fail(format!(
                    "line {}, field {}: {field:?} is not a number ({e}; fields are separated by commas)",
                    index + 1,
                    k + 1
                ))
            })?;
            if *cols.get_or_insert(row.len()) != row.len() {
                return Err(fail(format!(
                    "line {}: {} fields, the first data line has {}",
                    index + 1,
                    row.len(),
                    cols.unwrap_or(0)
                )));
            }
            values.extend(row);
            rows += 1;
        }
        let mut cols = cols.ok_or_else(|| fail("no data lines".into()))?;
        if header
            .as_ref()
            .and_then(|h| h.first())
            .is_some_and(String::is_empty)
        {
            values = drop_index_column(&values, rows, cols).map_err(fail)?;
            cols -= 1;
        }
        Self::from_row_major(rows, cols, &values).map_err(|e| fail(e.to_string()))
    }
}

/// A CSV line's fields as numbers, or the first that is not one (its index, text, error).
fn parse_csv_row(
    line: &str,
) -> std::result::Result<Vec<f64>, (usize, &str, std::num::ParseFloatError)> {
    line.split(',')
        .enumerate()
        .map(|(k, f)| f.trim().parse::<f64>().map_err(|e| (k, f, e)))
        .collect()
}

/// The values without their first column, which must count the rows `0, 1, 2, ...`
/// (pandas' default index).
fn drop_index_column(
    values: &[f64],
    rows: usize,
    cols: usize,
) -> std::result::Result<Vec<f64>, String> {
    if let Some(i) = (0..rows).find(|&i| values[i * cols] != i as f64) {
        return Err(format!(
            "the header's first field is empty, as pandas writes its index column, but that \
             column is not the row count 0, 1, 2, ... (row {} holds {}); write the file with \
             `to_csv(..., index=False)` or name the first column",
            i + 1,
            values[i * cols]
        ));
    }
    Ok(values
        .chunks(cols)
        .flat_map(|row| row[1..].iter().copied())
        .collect())
}

/// The distinct classes of `labels`, ascending: the rows of [`Matrix::class_means`].
pub fn classes_present(labels: &[usize]) -> Vec<usize> {
    let mut classes = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    classes
}
