//! The CPU convolution on plain `f32` slices (NCHW, weights `[c_out, c_in, kh, kw]`).
//!
//! Every pass is a single-threaded GEMM ([`super::matmul`]) over one image's im2col matrix
//! `col[c_in * kh * kw, oh * ow]` (a 1x1 convolution with stride 1 and no padding uses the
//! image itself):
//! - forward: `out[c_out, P] = W[c_out, K] @ col[K, P] + bias`, relu applied in place while
//!   the image's output is still in cache;
//! - input gradient: `dcol[K, P] = W^T @ g[c_out, P]`, folded back onto the image (col2im);
//! - weight gradient: `dW[c_out, K] += g[c_out, P] @ col[K, P]^T`, one product per image
//!   accumulated over a fixed block of images, the blocks summed in order.
//!
//! Rayon splits the batch; each worker thread keeps one scratch buffer between calls, so
//! nothing is allocated per image or per tile. The weight gradient's blocks depend on the
//! batch size only, not on the number of threads, so the sums (and a resumed training run)
//! are the same bit for bit on every run of the same machine.

use super::matmul::{matmul, Mat};
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
        valid_outputs(self.w, self.pw, self.sw, self.ow, j)
    }

    /// Output rows `lo..hi` whose window row `i` falls inside the image.
    fn valid_rows(&self, i: usize) -> (usize, usize) {
        valid_outputs(self.h, self.ph, self.sh, self.oh, i)
    }

    /// The input row under output row `oy` for window row `i`, `None` in the padding.
    fn input_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i)
            .checked_sub(self.ph)
            .filter(|&iy| iy < self.h)
    }

    /// Stride 1 with outputs as wide as the input (the "same" padding of every configured
    /// convolution): then output position `q` of tap `(c, i, j)` reads input `q + offset`
    /// of plane `c`, so a tap's row of the im2col matrix is one shifted copy of the plane
    /// (with the columns that wrapped round an edge cleared), not one short copy per
    /// output row.
    fn flat_shift(&self) -> bool {
        self.sh == 1 && self.sw == 1 && self.ow == self.w
    }

    /// For [`Self::flat_shift`]: where window tap `(i, j)`'s row reads its plane.
    fn shift(&self, i: usize, j: usize) -> Shift {
        let (ylo, yhi) = self.valid_rows(i);
        let (lo, hi) = self.valid_columns(j);
        let w = self.w as isize;
        let off = (i as isize - self.ph as isize) * w + j as isize - self.pw as isize;
        let (rows_lo, rows_hi) = (ylo as isize * w, yhi as isize * w);
        // Clamped to the plane: what lies beyond it is padding (wrapped columns).
        let q0 = rows_lo.max(-off).min(rows_hi);
        let q1 = rows_hi.min((self.h as isize) * w - off).max(q0);
        Shift {
            q0: q0 as usize,
            q1: q1 as usize,
            // Only read where q1 > q0, and then q0 + off lies in the plane.
            src: (q0 + off).max(0) as usize,
            lo,
            hi,
            ow: self.ow,
        }
    }

    /// Images per block of the batch: about 32 blocks, a number that depends on the batch
    /// size only (see the module note on determinism).
    fn block(&self) -> usize {
        self.n.div_ceil(32).max(1)
    }
}

/// One window tap's row of the im2col matrix under [`ConvDims::flat_shift`]: positions
/// `q0..q1` read the plane from `src` on, except the columns outside `lo..hi` of each
/// output row, which wrapped round an edge; every other position is padding.
#[derive(Clone, Copy, Debug)]
struct Shift {
    q0: usize,
    q1: usize,
    src: usize,
    lo: usize,
    hi: usize,
    ow: usize,
}

impl Shift {
    fn unfold(&self, plane: &[f32], row: &mut [f32]) {
        let (q0, q1) = (self.q0, self.q1);
        row[..q0].fill(0.0);
        row[q1..].fill(0.0);
        if q1 > q0 {
            row[q0..q1].copy_from_slice(&plane[self.src..][..q1 - q0]);
            self.clear_wrapped(row);
        }
    }

    /// Adds the row onto the plane, clearing its wrapped columns first so that they add
    /// exact zeros.
    fn fold(&self, row: &mut [f32], plane: &mut [f32]) {
        let (q0, q1) = (self.q0, self.q1);
        if q1 > q0 {
            self.clear_wrapped(row);
            let dst = &mut plane[self.src..][..q1 - q0];
            dst.iter_mut().zip(&row[q0..q1]).for_each(|(o, s)| *o += s);
        }
    }

    /// A few values per output row, stored one by one (a slice fill per row would be a
    /// library call each).
    fn clear_wrapped(&self, row: &mut [f32]) {
        for x in (0..self.lo).chain(self.hi..self.ow) {
            let mut k = x;
            while k < row.len() {
                row[k] = 0.0;
                k += self.ow;
            }
        }
    }
}

/// Outputs `lo..hi` (of `out`) along one axis whose window offset `k` lands inside an
/// input of `size` values padded by `pad` on each side, with stride `stride`.
fn valid_outputs(size: usize, pad: usize, stride: usize, out: usize, k: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(k).div_ceil(stride).min(out);
    let hi = (size + pad).saturating_sub(k).div_ceil(stride).min(out);
    (lo, hi.max(lo))
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

/// The offsets `(i, j)` of a window, row by row.
fn window(d: &ConvDims) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..d.kh).flat_map(move |i| (0..d.kw).map(move |j| (i, j)))
}

/// The taps `(c, (i, j))` in the order of the im2col matrix's rows.
fn taps(d: &ConvDims) -> impl Iterator<Item = (usize, (usize, usize))> + '_ {
    (0..d.ci).flat_map(move |c| window(d).map(move |ij| (c, ij)))
}

/// Unfolds one image `[ci, h, w]` into `col[ci * kh * kw, oh * ow]`, zeros in the padding.
fn im2col(d: &ConvDims, image: &[f32], col: &mut [f32]) {
    let (p, plane) = (d.positions(), d.h * d.w);
    if d.flat_shift() {
        // Window taps outside, channels inside: a tap's shift serves every channel.
        for (t, (i, j)) in window(d).enumerate() {
            let shift = d.shift(i, j);
            for c in 0..d.ci {
                let row = &mut col[(c * d.kh * d.kw + t) * p..][..p];
                shift.unfold(&image[c * plane..][..plane], row);
            }
        }
        return;
    }
    for ((c, (i, j)), row) in taps(d).zip(col.chunks_exact_mut(p)) {
        im2col_rows(d, i, j, &image[c * plane..][..plane], row);
    }
}

/// One tap's row of the im2col matrix in general (any stride and padding), output row by
/// output row.
fn im2col_rows(d: &ConvDims, i: usize, j: usize, plane: &[f32], row: &mut [f32]) {
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

/// The image's im2col matrix `[K, P]`: the image itself for a pointwise convolution,
/// otherwise unfolded into `col`.
fn unfolded<'a>(d: &ConvDims, image: &'a [f32], col: &'a mut [f32]) -> &'a [f32] {
    if d.pointwise() {
        return image;
    }
    im2col(d, image, col);
    col
}

/// Window tap `(i, j)`'s row of one plane's im2col matrix, `row[oh * ow]` (zeros in the
/// padding), for callers that lay the rows out themselves.
pub fn unfold_tap(d: &ConvDims, plane: &[f32], i: usize, j: usize, row: &mut [f32]) {
    if d.flat_shift() {
        d.shift(i, j).unfold(plane, row);
    } else {
        im2col_rows(d, i, j, plane, row);
    }
}

/// Adds `col[ci * kh * kw, oh * ow]` back onto the image `[ci, h, w]` (the adjoint of
/// im2col). Each input value receives its taps' terms in the same order on both paths
/// (taps in row order); the flat path adds the wrapped columns as exact zeros, which change
/// no sum (the image starts at +0, so no -0 is ever there to flip), and clears them in
/// `col` to do so.
fn col2im(d: &ConvDims, col: &mut [f32], image: &mut [f32]) {
    image.fill(0.0);
    let (p, plane) = (d.positions(), d.h * d.w);
    // A few dozen small values, computed once for every channel of the image.
    let shifts: Vec<Shift> = match d.flat_shift() {
        true => window(d).map(|(i, j)| d.shift(i, j)).collect(),
        false => Vec::new(),
    };
    for c in 0..d.ci {
        let dst = &mut image[c * plane..][..plane];
        for (t, (i, j)) in window(d).enumerate() {
            let row = &mut col[(c * d.kh * d.kw + t) * p..][..p];
            match shifts.get(t) {
                Some(shift) => shift.fold(row, dst),
                None => col2im_rows(d, i, j, row, dst),
            }
        }
    }
}

/// One tap's row added back onto its plane in general, output row by output row.
fn col2im_rows(d: &ConvDims, i: usize, j: usize, row: &[f32], plane: &mut [f32]) {
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
    let w = Mat::row_major(weight, k);
    let cols = Mat::row_major(unfolded(d, image, col), p);
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
    let block = d.block();
    // Room for the unfolded gradient, and for the weights and gradients of the channels
    // that carry one (see `input_grad_image`).
    let scratch = d.patch() * d.positions() + d.co * (d.patch() + d.positions());
    dx.par_chunks_mut(block * d.image_len())
        .zip(grad.par_chunks(block * d.out_len()))
        .for_each(|(dx, grad)| {
            with_scratch(scratch, |scratch| {
                let grads = grad.chunks_exact(d.out_len());
                for (dx, g) in dx.chunks_exact_mut(d.image_len()).zip(grads) {
                    input_grad_image(d, weight, g, scratch, dx);
                }
            })
        });
    dx
}

/// One image's input gradient: `dcol[K, P] = W^T @ g[co, P]`, folded back onto the image.
///
/// Output channels whose gradient is zero everywhere add nothing, and in activation
/// maximization every image's objective is one channel: the product then runs over the
/// channels that carry a gradient only (their rows of `W` and `g` gathered first), which
/// at cnn-small's conv2 is 1 of 32. The terms left out are exact zeros (`0 * w`), so the
/// sums are the same but for the sign of a zero.
fn input_grad_image(d: &ConvDims, weight: &[f32], g: &[f32], scratch: &mut [f32], dx: &mut [f32]) {
    let (p, k) = (d.positions(), d.patch());
    let (dcol, rest) = scratch.split_at_mut(k * p);
    let live = |c: &usize| g[c * p..][..p].iter().any(|v| *v != 0.0);
    let channels: Vec<usize> = (0..d.co).filter(live).collect();
    if channels.is_empty() {
        dx.fill(0.0);
        return;
    }
    let (w, g) = if 2 * channels.len() <= d.co {
        let (w_live, g_live) = rest.split_at_mut(channels.len() * k);
        for (i, &c) in channels.iter().enumerate() {
            w_live[i * k..][..k].copy_from_slice(&weight[c * k..][..k]);
            g_live[i * p..][..p].copy_from_slice(&g[c * p..][..p]);
        }
        (&*w_live, &g_live[..channels.len() * p])
    } else {
        (weight, g)
    };
    let co = w.len() / k;
    // W^T: element (r, c) of the [K, co] transpose is W[c, r].
    let wt = Mat::transposed(w, k);
    let out = if d.pointwise() { &mut *dx } else { &mut *dcol };
    if co == 1 {
        // An outer product: the GEMM's general path costs more than the products.
        for (row, wv) in out.chunks_exact_mut(p).zip(w) {
            row.iter_mut().zip(g).for_each(|(o, gv)| *o = wv * gv);
        }
    } else {
        matmul(k, p, co, out, false, wt, Mat::row_major(g, p));
    }
    if !d.pointwise() {
        col2im(d, dcol, dx);
    }
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
            with_scratch(d.col_len() + d.patch() * d.positions(), |scratch| {
                let grads = grad.chunks_exact(d.out_len());
                for (image, g) in x.chunks_exact(d.image_len()).zip(grads) {
                    param_grad_image(d, image, g, scratch, &mut dw, &mut db);
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
/// `dW[co, K] += g[co, P] @ rows[P, K]`, where `rows` is the image's im2col matrix
/// transposed (one output position's window per row). Both GEMM operands are then read
/// along their rows: handing the GEMM `col^T` as a strided view made its packing gather
/// the operand column by column, 40 % of the pass in a profile; unfolding by position
/// directly copies `kw` values at a time. So the image is unfolded as for the forward
/// pass (one shifted copy per tap) and transposed in tiles.
fn param_grad_image(
    d: &ConvDims,
    image: &[f32],
    g: &[f32],
    scratch: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (p, k) = (d.positions(), d.patch());
    let (col, rows) = scratch.split_at_mut(d.col_len());
    transpose(unfolded(d, image, col), k, p, rows);
    let g_mat = Mat::row_major(g, p);
    matmul(d.co, k, p, dw, true, g_mat, Mat::row_major(rows, k));
    for (b, row) in db.iter_mut().zip(g.chunks_exact(p)) {
        *b += sum(row);
    }
}

/// `dst[cols, rows] = src[rows, cols]^T`, in 8 x 8 tiles so that both sides stay in cache
/// lines: whole tiles with AVX where the CPU has it (eight loads, 24 shuffles, eight
/// stores), a fixed-size array otherwise, the ragged edges value by value.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    let avx = avx_available();
    // Two tiles down before the next across: each row of `dst` then gets 16 consecutive
    // values, a whole cache line, before it is left (the matrices outgrow L2).
    for r0 in (0..rows).step_by(2 * TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r1 in [r0, r0 + TILE] {
                if r1 + TILE <= rows && c0 + TILE <= cols {
                    let (from, to) = (r1 * cols + c0, c0 * rows + r1);
                    if avx {
                        // SAFETY: AVX is present; the tile's eight rows of eight values,
                        // at strides `cols` and `rows`, lie inside the slices (a whole
                        // tile, lengths checked above).
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            transpose_tile_avx(
                                src[from..].as_ptr(),
                                cols,
                                dst[to..].as_mut_ptr(),
                                rows,
                            )
                        };
                    } else {
                        transpose_tile(&src[from..], cols, &mut dst[to..], rows);
                    }
                    continue;
                }
                for r in r1..(r1 + TILE).min(rows) {
                    for c in c0..(c0 + TILE).min(cols) {
                        dst[c * rows + r] = src[r * cols + c];
                    }
                }
            }
        }
    }
}

const TILE: usize = 8;

fn avx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx");
    #[allow(unreachable_code)]
    false
}

/// One whole tile without AVX: through a fixed-size array, straight-line moves.
fn transpose_tile(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
    let mut tile = [[0.0f32; TILE]; TILE];
    for (r, line) in tile.iter_mut().enumerate() {
        line.copy_from_slice(&src[r * src_stride..][..TILE]);
    }
    for c in 0..TILE {
        let out = &mut dst[c * dst_stride..][..TILE];
        for (r, v) in out.iter_mut().enumerate() {
            *v = tile[r][c];
        }
    }
}

/// One whole tile with AVX: the classic unpack / shuffle / lane-permute transpose.
///
/// # Safety
/// The CPU has AVX; `src` holds eight rows of eight values `src_stride` apart and `dst`
/// eight rows of eight `dst_stride` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_tile_avx(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY (every load and store): inside the tile the caller vouches for.
    let load = |k: usize| unsafe { _mm256_loadu_ps(src.add(k * src_stride)) };
    let (r0, r1, r2, r3) = (load(0), load(1), load(2), load(3));
    let (r4, r5, r6, r7) = (load(4), load(5), load(6), load(7));
    // Pairs of rows interleaved, then pairs of pairs: columns (k, k + 4) of rows 0-3 in
    // `sk`, of rows 4-7 in `sk + 4`.
    let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
    let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
    let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
    let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let store = |k: usize, v: __m256| unsafe { _mm256_storeu_ps(dst.add(k * dst_stride), v) };
    store(0, _mm256_permute2f128_ps::<0x20>(s0, s4));
    store(1, _mm256_permute2f128_ps::<0x20>(s1, s5));
    store(2, _mm256_permute2f128_ps::<0x20>(s2, s6));
    store(3, _mm256_permute2f128_ps::<0x20>(s3, s7));
    store(4, _mm256_permute2f128_ps::<0x31>(s0, s4));
    store(5, _mm256_permute2f128_ps::<0x31>(s1, s5));
    store(6, _mm256_permute2f128_ps::<0x31>(s2, s6));
    store(7, _mm256_permute2f128_ps::<0x31>(s3, s7));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct values that show which input a copy read (no zeros, unlike the padding).
    fn ramp(len: usize) -> Vec<f32> {
        (0..len).map(|i| 1.0 + i as f32).collect()
    }

    /// Shapes with outputs as wide as the input, where [`ConvDims::flat_shift`] holds:
    /// square and oblong kernels, rows that lose their padding (`ph = 0`), windows wider
    /// than the image, a one-pixel image.
    fn flat_shapes() -> Vec<ConvDims> {
        [
            ([2, 3, 7, 5], [4, 3, 5, 5], [2, 2]),
            ([1, 2, 6, 9], [1, 2, 3, 5], [0, 2]),
            ([1, 1, 1, 2], [1, 1, 5, 5], [2, 2]),
            ([1, 2, 1, 1], [3, 2, 3, 3], [1, 1]),
            ([1, 1, 4, 4], [2, 1, 3, 1], [1, 0]),
        ]
        .into_iter()
        .map(|(x, w, pad)| ConvDims::new(x, w, [1, 1], pad))
        .inspect(|d| assert!(d.flat_shift(), "{d:?}"))
        .collect()
    }

    #[test]
    fn the_flat_shift_unfolds_as_the_row_by_row_copy() {
        for d in flat_shapes() {
            let image = ramp(d.image_len());
            let mut flat = vec![f32::NAN; d.patch() * d.positions()];
            im2col(&d, &image, &mut flat);
            let mut rows = vec![f32::NAN; flat.len()];
            for ((c, (i, j)), row) in taps(&d).zip(rows.chunks_exact_mut(d.positions())) {
                im2col_rows(&d, i, j, &image[c * d.h * d.w..][..d.h * d.w], row);
            }
            assert_eq!(flat, rows, "{d:?}");
        }
    }

    #[test]
    fn the_flat_shift_folds_back_as_the_row_by_row_sum() {
        for d in flat_shapes() {
            let col = ramp(d.patch() * d.positions());
            let mut flat = vec![f32::NAN; d.image_len()];
            col2im(&d, &mut col.clone(), &mut flat);
            let mut rows = vec![0.0; d.image_len()];
            for ((c, (i, j)), row) in taps(&d).zip(col.chunks_exact(d.positions())) {
                col2im_rows(&d, i, j, row, &mut rows[c * d.h * d.w..][..d.h * d.w]);
            }
            assert_eq!(flat, rows, "{d:?}");
        }
    }

    #[test]
    fn the_portable_tile_transposes_too() {
        let src = ramp(TILE * 11);
        let mut dst = vec![f32::NAN; TILE * 13];
        transpose_tile(&src, 11, &mut dst, 13);
        for r in 0..TILE {
            for c in 0..TILE {
                assert_eq!(dst[c * 13 + r], src[r * 11 + c], "at {r},{c}");
            }
        }
    }

    #[test]
    fn transpose_moves_every_value_once() {
        for (rows, cols) in [(1, 1), (3, 17), (8, 8), (16, 24), (25, 784), (9, 8)] {
            let src = ramp(rows * cols);
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * rows + r],
                        src[r * cols + c],
                        "{rows}x{cols} at {r},{c}"
                    );
                }
            }
        }
    }

    /// The input gradient straight from its definition, in f64: every output value's
    /// gradient times each weight, added onto the input pixel the weight saw.
    fn input_grad_by_definition(d: &ConvDims, weight: &[f32], grad: &[f32]) -> Vec<f64> {
        let mut dx = vec![0.0f64; d.n * d.image_len()];
        for n in 0..d.n {
            for co in 0..d.co {
                for (q, gv) in grad[(n * d.co + co) * d.positions()..][..d.positions()]
                    .iter()
                    .enumerate()
                {
                    let (oy, ox) = (q / d.ow, q % d.ow);
                    for ((c, (i, j)), w) in taps(d).zip(&weight[co * d.patch()..]) {
                        let y = (oy * d.sh + i) as isize - d.ph as isize;
                        let x = (ox * d.sw + j) as isize - d.pw as isize;
                        if (0..d.h as isize).contains(&y) && (0..d.w as isize).contains(&x) {
                            let at = ((n * d.ci + c) * d.h + y as usize) * d.w + x as usize;
                            dx[at] += f64::from(*w) * f64::from(*gv);
                        }
                    }
                }
            }
        }
        dx
    }

    #[test]
    fn channels_without_gradient_are_left_out_of_the_input_gradient() {
        // 8 output channels: all live, two live (the gathered path), one (an outer
        // product), none.
        let d = ConvDims::new([2, 3, 6, 5], [8, 3, 3, 3], [1, 1], [1, 1]);
        let weight: Vec<f32> = (0..d.co * d.patch())
            .map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.5)
            .collect();
        let dense: Vec<f32> = (0..d.n * d.out_len())
            .map(|i| ((i * 53) % 29) as f32 / 29.0 - 0.5)
            .collect();
        let channel = |i: usize| (i / d.positions()) % d.co;
        let masked = |keep: &dyn Fn(usize) -> bool| -> Vec<f32> {
            dense
                .iter()
                .enumerate()
                .map(|(i, v)| if keep(channel(i)) { *v } else { 0.0 })
                .collect()
        };
        for grad in [
            dense.clone(),
            masked(&|c| c == 1 || c == 5),
            masked(&|c| c == 3),
            masked(&|_| false),
        ] {
            let ours = input_grad(&d, &weight, &grad);
            let reference = input_grad_by_definition(&d, &weight, &grad);
            for (a, b) in ours.iter().zip(&reference) {
                assert!((f64::from(*a) - b).abs() < 1e-5, "{a} against {b}");
            }
        }
    }
}
