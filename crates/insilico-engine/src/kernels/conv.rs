//! The CPU convolution on plain `f32` slices (NCHW, weights `[c_out, c_in, kh, kw]`).
//!
//! Every pass is a GEMM from the `gemm` crate over one image's im2col matrix
//! `col[c_in * kh * kw, oh * ow]` (a 1x1 convolution with stride 1 and no padding uses the
//! image itself):
//! - forward: `out[c_out, P] = W[c_out, K] @ col[K, P] + bias`, relu applied in place while
//!   the image's output is still in cache;
//! - input gradient: `dcol[K, P] = W^T @ g[c_out, P]`, folded back onto the image (col2im);
//! - weight gradient: `dW[c_out, K] += g[c_out, P] @ rows[P, K]`, where `rows` is the
//!   image unfolded by output position (the transpose of im2col's matrix), one product per
//!   image accumulated over a fixed block of images, the blocks summed in order.
//!
//! Rayon splits the batch; each worker thread keeps one scratch buffer between calls, so
//! nothing is allocated per image or per tile. The weight gradient's blocks depend on the
//! batch size only, not on the number of threads, so the sums (and a resumed training run)
//! are the same bit for bit on every run of the same machine.

use rayon::prelude::*;

/// The shape of one convolution: input `[n, ci, h, w]`, weights `[co, ci, kh, kw]`, stride,
/// symmetric zero padding; no dilation, no groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvDims {
    pub n: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvDims {
    /// Panics where the kernel does not fit the padded input or a stride is zero: the
    /// network's plan rejects such layers before any tensor exists.
    pub fn new(x: [usize; 4], weight: [usize; 4], stride: [usize; 2], padding: [usize; 2]) -> Self {
        let [n, ci, h, w] = x;
        let [co, wci, kh, kw] = weight;
        assert_eq!(
            ci, wci,
            "conv2d: input has {ci} channels, weights expect {wci}"
        );
        assert!(stride[0] > 0 && stride[1] > 0, "conv2d: zero stride");
        let out = |size: usize, k: usize, s: usize, p: usize| {
            let padded = size + 2 * p;
            assert!(
                padded >= k,
                "conv2d: kernel {k} exceeds padded input {padded}"
            );
            (padded - k) / s + 1
        };
        Self {
            n,
            ci,
            h,
            w,
            co,
            kh,
            kw,
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            oh: out(h, kh, stride[0], padding[0]),
            ow: out(w, kw, stride[1], padding[1]),
        }
    }

    /// Rows of the im2col matrix: inputs seen by one output value.
    pub fn patch(&self) -> usize {
        self.ci * self.kh * self.kw
    }

    /// Output positions per channel.
    pub fn positions(&self) -> usize {
        self.oh * self.ow
    }

    fn image_len(&self) -> usize {
        self.ci * self.h * self.w
    }

    fn out_len(&self) -> usize {
        self.co * self.positions()
    }

    /// A 1x1 convolution without stride or padding: the image is its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }

    fn col_len(&self) -> usize {
        if self.pointwise() {
            0
        } else {
            self.patch() * self.positions()
        }
    }

    /// Output columns `lo..hi` whose window column `j` falls inside the image (not the padding).
    fn valid_columns(&self, j: usize) -> (usize, usize) {
        let lo = self.pw.saturating_sub(j).div_ceil(self.sw).min(self.ow);
        let hi = (self.w + self.pw)
            .saturating_sub(j)
            .div_ceil(self.sw)
            .min(self.ow);
        (lo, hi.max(lo))
    }

    /// The input row under output row `oy` for window row `i`, `None` in the padding.
    fn input_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i)
            .checked_sub(self.ph)
            .filter(|&iy| iy < self.h)
    }

    /// Images per block of the batch: about 32 blocks, a number that depends on the batch
    /// size only (see the module note on determinism).
    fn block(&self) -> usize {
        self.n.div_ceil(32).max(1)
    }
}

/// A matrix view into a slice: element `(r, c)` at `r * rs + c * cs`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix whose rows hold `row_len` values.
    fn row_major(data: &'a [f32], row_len: usize) -> Self {
        Self {
            data,
            rs: row_len,
            cs: 1,
        }
    }
}

/// `dst[m, n]` (row-major) = `(dst if accumulate else 0) + lhs[m, k] @ rhs[k, n]`.
fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], accumulate: bool, lhs: Mat, rhs: Mat) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // The bounds that make the raw-pointer call below sound.
    assert!(dst.len() >= m * n, "matmul: destination too short");
    assert!(
        lhs.data.len() > (m - 1) * lhs.rs + (k - 1) * lhs.cs,
        "matmul: lhs too short"
    );
    assert!(
        rhs.data.len() > (k - 1) * rhs.rs + (n - 1) * rhs.cs,
        "matmul: rhs too short"
    );
    // SAFETY: every index the product reads or writes is within the slices (checked above);
    // `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

thread_local! {
    /// Each worker thread's im2col buffer, kept between calls: a training step would
    /// otherwise fault fresh pages in for every block of images of every convolution.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of `len` values (contents unspecified: every
/// user overwrites all of it).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// Sum of a row with eight independent accumulators, which the compiler keeps in one
/// vector register (a single running sum is a chain of dependent scalar adds).
fn sum(row: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Unfolds one image `[ci, h, w]` into `col[ci * kh * kw, oh * ow]`, zeros in the padding.
fn im2col(d: &ConvDims, image: &[f32], col: &mut [f32]) {
    let p = d.positions();
    let rows = col.chunks_exact_mut(p);
    let taps =
        (0..d.ci).flat_map(|c| (0..d.kh).flat_map(move |i| (0..d.kw).map(move |j| (c, i, j))));
    for ((c, i, j), row) in taps.zip(rows) {
        let plane = &image[c * d.h * d.w..][..d.h * d.w];
        let (lo, hi) = d.valid_columns(j);
        for (oy, out) in row.chunks_exact_mut(d.ow).enumerate() {
            let Some(iy) = d.input_row(oy, i) else {
                out.fill(0.0);
                continue;
            };
            let src = &plane[iy * d.w..][..d.w];
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            if d.sw == 1 && hi > lo {
                let start = lo + j - d.pw;
                out[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
            } else if d.sw > 1 {
                for (ox, v) in out[lo..hi].iter_mut().enumerate() {
                    *v = src[(lo + ox) * d.sw + j - d.pw];
                }
            }
        }
    }
}

/// Adds `col[ci * kh * kw, oh * ow]` back onto the image `[ci, h, w]` (the adjoint of im2col).
fn col2im(d: &ConvDims, col: &[f32], image: &mut [f32]) {
    image.fill(0.0);
    let p = d.positions();
    let taps =
        (0..d.ci).flat_map(|c| (0..d.kh).flat_map(move |i| (0..d.kw).map(move |j| (c, i, j))));
    for ((c, i, j), row) in taps.zip(col.chunks_exact(p)) {
        let plane = &mut image[c * d.h * d.w..][..d.h * d.w];
        let (lo, hi) = d.valid_columns(j);
        for (oy, src) in row.chunks_exact(d.ow).enumerate() {
            let Some(iy) = d.input_row(oy, i) else {
                continue;
            };
            let dst = &mut plane[iy * d.w..][..d.w];
            if d.sw == 1 && hi > lo {
                let start = lo + j - d.pw;
                for (o, s) in dst[start..start + hi - lo].iter_mut().zip(&src[lo..hi]) {
                    *o += s;
                }
            } else if d.sw > 1 {
                for (ox, s) in src[lo..hi].iter().enumerate() {
                    dst[(lo + ox) * d.sw + j - d.pw] += s;
                }
            }
        }
    }
}

/// Forward pass: `x[n, ci, h, w]`, `weight[co, ci, kh, kw]`, `bias[co]` to `[n, co, oh, ow]`,
/// with relu applied when `relu` is set (NaN passes through, so a diverged run is still seen).
pub fn forward(d: &ConvDims, x: &[f32], weight: &[f32], bias: &[f32], relu: bool) -> Vec<f32> {
    assert_eq!(x.len(), d.n * d.image_len(), "conv2d: input length");
    assert_eq!(weight.len(), d.co * d.patch(), "conv2d: weight length");
    assert_eq!(bias.len(), d.co, "conv2d: bias length");
    let mut out = vec![0.0f32; d.n * d.out_len()];
    if out.is_empty() || x.is_empty() {
        return out;
    }
    let block = d.block();
    out.par_chunks_mut(block * d.out_len())
        .zip(x.par_chunks(block * d.image_len()))
        .for_each(|(out, x)| {
            with_scratch(d.col_len(), |col| {
                let images = x.chunks_exact(d.image_len());
                for (out, image) in out.chunks_exact_mut(d.out_len()).zip(images) {
                    forward_image(d, image, weight, bias, relu, col, out);
                }
            })
        });
    out
}

fn forward_image(
    d: &ConvDims,
    image: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
    col: &mut [f32],
    out: &mut [f32],
) {
    let (p, k) = (d.positions(), d.patch());
    for (row, b) in out.chunks_exact_mut(p).zip(bias) {
        row.fill(*b);
    }
    let rhs = if d.pointwise() {
        image
    } else {
        im2col(d, image, col);
        &*col
    };
    let w = Mat::row_major(weight, k);
    let cols = Mat::row_major(rhs, p);
    matmul(d.co, p, k, out, true, w, cols);
    if relu {
        // A select, not a branch, so that it vectorizes; NaN stays NaN.
        out.iter_mut()
            .for_each(|v| *v = if *v < 0.0 { 0.0 } else { *v });
    }
}

/// Gradient with respect to the input: `grad[n, co, oh, ow]` to `[n, ci, h, w]`.
pub fn input_grad(d: &ConvDims, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    assert_eq!(
        weight.len(),
        d.co * d.patch(),
        "conv2d backward: weight length"
    );
    assert_eq!(
        grad.len(),
        d.n * d.out_len(),
        "conv2d backward: gradient length"
    );
    let mut dx = vec![0.0f32; d.n * d.image_len()];
    if dx.is_empty() || grad.is_empty() {
        return dx;
    }
    let (p, k, block) = (d.positions(), d.patch(), d.block());
    // W^T: element (r, c) of the [K, co] transpose is W[c, r].
    let wt = Mat {
        data: weight,
        rs: 1,
        cs: k,
    };
    dx.par_chunks_mut(block * d.image_len())
        .zip(grad.par_chunks(block * d.out_len()))
        .for_each(|(dx, grad)| {
            with_scratch(d.col_len(), |dcol| {
                let grads = grad.chunks_exact(d.out_len());
                for (dx, g) in dx.chunks_exact_mut(d.image_len()).zip(grads) {
                    let g = Mat::row_major(g, p);
                    if d.pointwise() {
                        matmul(k, p, d.co, dx, false, wt, g);
                    } else {
                        matmul(k, p, d.co, dcol, false, wt, g);
                        col2im(d, dcol, dx);
                    }
                }
            })
        });
    dx
}

/// Gradients with respect to the weights `[co, ci, kh, kw]` and the bias `[co]`, given the
/// input `x[n, ci, h, w]` and the output gradient `grad[n, co, oh, ow]`.
pub fn param_grad(d: &ConvDims, x: &[f32], grad: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        d.n * d.image_len(),
        "conv2d backward: input length"
    );
    assert_eq!(
        grad.len(),
        d.n * d.out_len(),
        "conv2d backward: gradient length"
    );
    let (k, block) = (d.patch(), d.block());
    if x.is_empty() || grad.is_empty() {
        return (vec![0.0; d.co * k], vec![0.0; d.co]);
    }
    let partials: Vec<(Vec<f32>, Vec<f32>)> = x
        .par_chunks(block * d.image_len())
        .zip(grad.par_chunks(block * d.out_len()))
        .map(|(x, grad)| {
            let mut dw = vec![0.0f32; d.co * k];
            let mut db = vec![0.0f32; d.co];
            with_scratch(d.patch() * d.positions(), |rows| {
                let grads = grad.chunks_exact(d.out_len());
                for (image, g) in x.chunks_exact(d.image_len()).zip(grads) {
                    param_grad_image(d, image, g, rows, &mut dw, &mut db);
                }
            });
            (dw, db)
        })
        .collect();
    // Summed in block order, whatever thread computed which block.
    let mut partials = partials.into_iter();
    let (mut dw, mut db) = partials
        .next()
        .unwrap_or_else(|| (vec![0.0; d.co * k], vec![0.0; d.co]));
    for (w, b) in partials {
        dw.iter_mut().zip(&w).for_each(|(a, v)| *a += v);
        db.iter_mut().zip(&b).for_each(|(a, v)| *a += v);
    }
    (dw, db)
}

/// Adds one image's contribution to the weight and bias gradients:
/// `dW[co, K] += g[co, P] @ rows[P, K]`, with the image unfolded by rows ([`im2row`]), so
/// that both operands are read along their rows (the transposed im2col matrix made the
/// GEMM gather its right operand column by column, at a third of the speed).
fn param_grad_image(
    d: &ConvDims,
    image: &[f32],
    g: &[f32],
    rows: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (p, k) = (d.positions(), d.patch());
    im2row(d, image, rows);
    let g_mat = Mat::row_major(g, p);
    let rows_mat = Mat::row_major(rows, k);
    matmul(d.co, k, p, dw, true, g_mat, rows_mat);
    for (b, row) in db.iter_mut().zip(g.chunks_exact(p)) {
        *b += sum(row);
    }
}

/// Unfolds one image `[ci, h, w]` into `rows[oh * ow, ci * kh * kw]`: the transpose of
/// [`im2col`]'s matrix, one output position's window per row, zeros in the padding.
fn im2row(d: &ConvDims, image: &[f32], rows: &mut [f32]) {
    let k = d.patch();
    for (pos, row) in rows.chunks_exact_mut(k).enumerate() {
        let (oy, ox) = (pos / d.ow, pos % d.ow);
        // The window's first input column, which may lie in the left padding.
        let x0 = (ox * d.sw) as isize - d.pw as isize;
        let inside = x0 >= 0 && x0 as usize + d.kw <= d.w;
        let taps = row.chunks_exact_mut(d.kw);
        let rows_of_window = (0..d.ci).flat_map(|c| (0..d.kh).map(move |i| (c, i)));
        for ((c, i), dst) in rows_of_window.zip(taps) {
            let Some(iy) = d.input_row(oy, i) else {
                dst.fill(0.0);
                continue;
            };
            let src = &image[(c * d.h + iy) * d.w..][..d.w];
            if inside {
                dst.copy_from_slice(&src[x0 as usize..x0 as usize + d.kw]);
            } else {
                for (j, v) in dst.iter_mut().enumerate() {
                    let ix = x0 + j as isize;
                    *v = if (0..d.w as isize).contains(&ix) {
                        src[ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}
