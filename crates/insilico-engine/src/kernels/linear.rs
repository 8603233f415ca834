//! A linear layer's forward pass and both gradients on plain slices, each one product
//! split over rayon's threads (see [`super::matmul`] for why not Burn's).
//!
//! Shapes as Burn's `Linear` keeps them: x `[n, i]`, weight `[i, o]` (input-major, so that
//! the forward is `x @ W`), bias `[o]`:
//! - forward: `y = x @ W + b`, the bias rows written first and the product added onto them;
//! - input gradient: `dx = g @ W^T`;
//! - weight gradient: `dW = x^T @ g`, bias gradient: `g`'s column sums.

use super::matmul::{matmul_parallel, Mat};

/// A linear layer's sizes: `n` rows (examples), `i` inputs, `o` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearDims {
    pub n: usize,
    pub i: usize,
    pub o: usize,
}

/// `x @ weight + bias`, `[n, o]`.
pub fn forward(d: LinearDims, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    assert_eq!(bias.len(), d.o, "linear: bias length");
    let mut y = Vec::with_capacity(d.n * d.o);
    for _ in 0..d.n {
        y.extend_from_slice(bias);
    }
    let (x, w) = (Mat::row_major(x, d.i), Mat::row_major(weight, d.o));
    matmul_parallel(d.n, d.o, d.i, &mut y, true, x, w);
    y
}

/// `grad @ weight^T`, `[n, i]`.
pub fn input_grad(d: LinearDims, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; d.n * d.i];
    let (g, wt) = (Mat::row_major(grad, d.o), Mat::transposed(weight, d.o));
    matmul_parallel(d.n, d.i, d.o, &mut dx, false, g, wt);
    dx
}

/// `(x^T @ grad, column sums of grad)`: `[i, o]` and `[o]`.
pub fn param_grad(d: LinearDims, x: &[f32], grad: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dw = vec![0.0; d.i * d.o];
    let (xt, g) = (Mat::transposed(x, d.i), Mat::row_major(grad, d.o));
    matmul_parallel(d.i, d.o, d.n, &mut dw, false, xt, g);
    let mut db = vec![0.0f32; d.o];
    for row in grad.chunks_exact(d.o) {
        db.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    (dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three passes against their definitions summed in f64.
    #[test]
    fn passes_match_their_definitions() {
        let d = LinearDims { n: 6, i: 5, o: 3 };
        let val = |s: usize| move |j: usize| ((j * 7 + s) % 11) as f32 / 4.0 - 1.3;
        let x: Vec<f32> = (0..d.n * d.i).map(val(1)).collect();
        let w: Vec<f32> = (0..d.i * d.o).map(val(2)).collect();
        let b: Vec<f32> = (0..d.o).map(val(3)).collect();
        let g: Vec<f32> = (0..d.n * d.o).map(val(4)).collect();
        let close = |a: f32, b: f64| assert!((a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        let y = forward(d, &x, &w, &b);
        let dx = input_grad(d, &w, &g);
        let (dw, db) = param_grad(d, &x, &g);
        for r in 0..d.n {
            for c in 0..d.o {
                let want: f64 = (0..d.i)
                    .map(|k| x[r * d.i + k] as f64 * w[k * d.o + c] as f64)
                    .sum();
                close(y[r * d.o + c], want + b[c] as f64);
            }
            for k in 0..d.i {
                let want: f64 = (0..d.o)
                    .map(|c| g[r * d.o + c] as f64 * w[k * d.o + c] as f64)
                    .sum();
                close(dx[r * d.i + k], want);
            }
        }
        for k in 0..d.i {
            for c in 0..d.o {
                let want: f64 = (0..d.n)
                    .map(|r| x[r * d.i + k] as f64 * g[r * d.o + c] as f64)
                    .sum();
                close(dw[k * d.o + c], want);
            }
        }
        for c in 0..d.o {
            close(db[c], (0..d.n).map(|r| g[r * d.o + c] as f64).sum());
        }
    }
}
