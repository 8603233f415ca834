//! The CPU max pooling on plain `f32` slices (NCHW, square windows, no padding).
//!
//! Burn's Flex pools through a general 3-D kernel that divides to find every window's
//! coordinates and scatters its gradient one index at a time; in training cnn-small that
//! was a quarter of the time. Here each output row reads the `k` input rows under it, and
//! the backward pass finds each window's maximum again from the input and the output
//! instead of storing indices: the same first-maximum rule both ways, so the gradient goes
//! exactly where the forward took its value from.

use rayon::prelude::*;

/// The shape of one max pooling: input `[n, c, h, w]`, a `k x k` window every `s` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolDims {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub s: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolDims {
    /// Panics where the window does not fit or is empty: the network's plan rejects such
    /// layers before any tensor exists.
    pub fn new(x: [usize; 4], kernel: usize, stride: usize) -> Self {
        let [n, c, h, w] = x;
        assert!(
            kernel > 0 && stride > 0,
            "max_pool2d: zero kernel or stride"
        );
        assert!(
            h >= kernel && w >= kernel,
            "max_pool2d: window {kernel} exceeds input {h}x{w}"
        );
        Self {
            planes: n * c,
            h,
            w,
            k: kernel,
            s: stride,
            oh: (h - kernel) / stride + 1,
            ow: (w - kernel) / stride + 1,
        }
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    fn out_plane(&self) -> usize {
        self.oh * self.ow
    }

    /// Input offsets (within a plane) of the window of output `(oy, ox)`, row by row.
    fn window(&self, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
        let (y0, x0) = (oy * self.s, ox * self.s);
        (y0..y0 + self.k).flat_map(move |y| (x0..x0 + self.k).map(move |x| y * self.w + x))
    }

    /// Planes per parallel task: enough work per task to outweigh rayon's overhead.
    fn chunk(&self) -> usize {
        (16_384 / self.plane().max(1)).clamp(1, 64)
    }
}

/// Whether `v` replaces `best` as the window's maximum: strictly greater, or the first NaN
/// (a NaN wins and stays, as in PyTorch, so a diverged run shows NaN, not a finite value).
fn replaces(v: f32, best: f32) -> bool {
    v > best || (v.is_nan() && !best.is_nan())
}

/// The offset of the window's first maximum, by the rule of [`replaces`].
fn argmax(d: &PoolDims, plane: &[f32], oy: usize, ox: usize) -> usize {
    let mut window = d.window(oy, ox);
    let first = window.next().expect("a window holds at least one pixel");
    window.fold(first, |best, i| {
        if replaces(plane[i], plane[best]) {
            i
        } else {
            best
        }
    })
}

/// Forward pass: `x[n, c, h, w]` to `[n, c, oh, ow]`, each value its window's maximum.
pub fn forward(d: &PoolDims, x: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), d.planes * d.plane(), "max_pool2d: input length");
    let mut out = vec![0.0f32; d.planes * d.out_plane()];
    if out.is_empty() {
        return out;
    }
    let (chunk, simd) = (d.chunk(), avx2());
    out.par_chunks_mut(chunk * d.out_plane())
        .zip(x.par_chunks(chunk * d.plane()))
        .for_each(|(out, x)| {
            let planes = out
                .chunks_exact_mut(d.out_plane())
                .zip(x.chunks_exact(d.plane()));
            for (out, plane) in planes {
                if d.k == 2 && d.s == 2 {
                    forward_plane_2x2(d, plane, out, simd);
                } else {
                    for (o, v) in out.iter_mut().enumerate() {
                        *v = plane[argmax(d, plane, o / d.ow, o % d.ow)];
                    }
                }
            }
        });
    out
}

/// The common 2x2 window with stride 2, row pair by row pair, in the order of [`argmax`]
/// (top-left, top-right, bottom-left, bottom-right); eight windows at a time where `simd`
/// (AVX2 present, see [`avx2`]).
fn forward_plane_2x2(d: &PoolDims, plane: &[f32], out: &mut [f32], simd: bool) {
    for (oy, row) in out.chunks_exact_mut(d.ow).enumerate() {
        let top = &plane[2 * oy * d.w..][..2 * d.ow];
        let bottom = &plane[(2 * oy + 1) * d.w..][..2 * d.ow];
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the caller found AVX2.
            unsafe { forward_row_2x2_avx2(top, bottom, row) };
            continue;
        }
        forward_row_2x2(top, bottom, row);
    }
}

/// Whether the 2x2 pooling can take its AVX2 paths (looked up once per call).
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[allow(unreachable_code)]
    false
}

/// One row of windows over the input rows `top` and `bottom`.
fn forward_row_2x2(top: &[f32], bottom: &[f32], row: &mut [f32]) {
    let pick = |best: f32, v: f32| if replaces(v, best) { v } else { best };
    for ((o, t), b) in row
        .iter_mut()
        .zip(top.chunks_exact(2))
        .zip(bottom.chunks_exact(2))
    {
        *o = pick(pick(pick(t[0], t[1]), b[0]), b[1]);
    }
}

/// [`forward_row_2x2`] eight windows at a time. The last eight overlap the ones before
/// where the row is not a multiple of eight (the same maxima written twice); a row of
/// fewer than eight goes through a padded copy. (A scalar tail held most of the work:
/// cnn-small pools rows of 14 and 7 windows.)
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_row_2x2_avx2(top: &[f32], bottom: &[f32], row: &mut [f32]) {
    let n = row.len();
    if n >= 8 {
        for ox in eights(n) {
            // SAFETY: ox + 8 <= n, and both input rows hold 2 * n values.
            unsafe {
                let (t, b) = (top.as_ptr().add(2 * ox), bottom.as_ptr().add(2 * ox));
                forward8(t, b, row.as_mut_ptr().add(ox));
            }
        }
        return;
    }
    let (mut t, mut b, mut out) = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 8]);
    t[..2 * n].copy_from_slice(&top[..2 * n]);
    b[..2 * n].copy_from_slice(&bottom[..2 * n]);
    // SAFETY: full-size local arrays.
    unsafe { forward8(t.as_ptr(), b.as_ptr(), out.as_mut_ptr()) };
    row.copy_from_slice(&out[..n]);
}

/// Where the groups of eight of a row of `n >= 8` windows start: every eighth, and `n - 8`.
#[cfg(target_arch = "x86_64")]
fn eights(n: usize) -> impl Iterator<Item = usize> {
    (0..n - 8).step_by(8).chain(std::iter::once(n - 8))
}

/// Eight windows' maxima: 16 values of each input row in, 8 out.
///
/// # Safety
/// The CPU has AVX2; 16 values are readable at `top` and `bottom`, 8 writable at `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward8(top: *const f32, bottom: *const f32, out: *mut f32) {
    use std::arch::x86_64::*;
    // SAFETY: the caller vouches for the pointers.
    unsafe {
        let (t0, t1) = deinterleave(top);
        let (b0, b1) = deinterleave(bottom);
        let pick = |best: __m256, v: __m256| _mm256_blendv_ps(best, v, replaces_avx(v, best));
        _mm256_storeu_ps(out, pick(pick(pick(t0, t1), b0), b1));
    }
}

/// Gradient with respect to the input: each output's gradient goes to its window's first
/// maximum (overlapping windows add up); every other input gets zero.
pub fn backward(d: &PoolDims, x: &[f32], grad: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        d.planes * d.plane(),
        "max_pool2d backward: input length"
    );
    assert_eq!(
        grad.len(),
        d.planes * d.out_plane(),
        "max_pool2d backward: gradient length"
    );
    let mut dx = vec![0.0f32; x.len()];
    if dx.is_empty() || grad.is_empty() {
        return dx;
    }
    let (chunk, simd) = (d.chunk(), avx2());
    dx.par_chunks_mut(chunk * d.plane())
        .zip(x.par_chunks(chunk * d.plane()))
        .zip(grad.par_chunks(chunk * d.out_plane()))
        .for_each(|((dx, x), grad)| {
            let planes = dx
                .chunks_exact_mut(d.plane())
                .zip(x.chunks_exact(d.plane()));
            for ((dx, plane), g) in planes.zip(grad.chunks_exact(d.out_plane())) {
                if d.k == 2 && d.s == 2 {
                    backward_plane_2x2(d, plane, g, dx, simd);
                    continue;
                }
                for (o, gv) in g.iter().enumerate() {
                    dx[argmax(d, plane, o / d.ow, o % d.ow)] += gv;
                }
            }
        });
    dx
}

/// [`backward`] for the 2x2 window with stride 2 (windows do not overlap: each gradient
/// is written, not added), with the order and rule of [`forward_plane_2x2`], row pair by
/// row pair, eight windows at a time where `simd`.
fn backward_plane_2x2(d: &PoolDims, plane: &[f32], g: &[f32], dx: &mut [f32], simd: bool) {
    for (oy, g) in g.chunks_exact(d.ow).enumerate() {
        let top = &plane[2 * oy * d.w..][..2 * d.ow];
        let bottom = &plane[(2 * oy + 1) * d.w..][..2 * d.ow];
        let (dtop, dbottom) = dx[2 * oy * d.w..][..2 * d.w].split_at_mut(d.w);
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the caller found AVX2.
            unsafe { backward_row_2x2_avx2(top, bottom, g, dtop, dbottom) };
            continue;
        }
        backward_row_2x2(top, bottom, g, dtop, dbottom);
    }
}

/// [`backward_row_2x2`] eight windows at a time (the compiler does not vectorize the
/// stride-2 pattern itself), row ends as in [`forward_row_2x2_avx2`]: overlapping groups
/// write the same gradients twice (windows do not overlap, so each is written, not added).
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward_row_2x2_avx2(
    top: &[f32],
    bottom: &[f32],
    g: &[f32],
    dtop: &mut [f32],
    dbottom: &mut [f32],
) {
    let n = g.len();
    if n >= 8 {
        for ox in eights(n) {
            // SAFETY: ox + 8 <= n: 16 values at 2 * ox in each row of the input and of dx
            // (rows of 2 * n values at least), 8 gradients at ox.
            unsafe {
                let (t, b) = (top.as_ptr().add(2 * ox), bottom.as_ptr().add(2 * ox));
                let (dt, db) = (
                    dtop.as_mut_ptr().add(2 * ox),
                    dbottom.as_mut_ptr().add(2 * ox),
                );
                backward8(t, b, g.as_ptr().add(ox), dt, db);
            }
        }
        return;
    }
    let (mut t, mut b, mut gv) = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 8]);
    let (mut dt, mut db) = ([0.0f32; 16], [0.0f32; 16]);
    t[..2 * n].copy_from_slice(&top[..2 * n]);
    b[..2 * n].copy_from_slice(&bottom[..2 * n]);
    gv[..n].copy_from_slice(g);
    // SAFETY: full-size local arrays.
    unsafe {
        backward8(
            t.as_ptr(),
            b.as_ptr(),
            gv.as_ptr(),
            dt.as_mut_ptr(),
            db.as_mut_ptr(),
        )
    };
    dtop[..2 * n].copy_from_slice(&dt[..2 * n]);
    dbottom[..2 * n].copy_from_slice(&db[..2 * n]);
}

/// Eight windows' gradients, each to its window's first maximum.
///
/// # Safety
/// The CPU has AVX2; 16 values are readable at `top` and `bottom` and writable at `dtop`
/// and `dbottom`, 8 readable at `g`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward8(
    top: *const f32,
    bottom: *const f32,
    g: *const f32,
    dtop: *mut f32,
    dbottom: *mut f32,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller vouches for the pointers.
    unsafe {
        let (t0, t1) = deinterleave(top);
        let (b0, b1) = deinterleave(bottom);
        let gv = _mm256_loadu_ps(g);
        let right = replaces_avx(t1, t0);
        let best = _mm256_blendv_ps(t0, t1, right);
        let below = replaces_avx(b0, best);
        let best = _mm256_blendv_ps(best, b0, below);
        let last = replaces_avx(b1, best);
        // Each window's gradient goes to exactly one of the four.
        let keep = |won: __m256| _mm256_and_ps(gv, won);
        let neither = _mm256_andnot_ps(
            last,
            _mm256_andnot_ps(below, _mm256_set1_ps(f32::from_bits(!0))),
        );
        interleave(
            keep(_mm256_andnot_ps(right, neither)),
            keep(_mm256_and_ps(right, neither)),
            dtop,
        );
        interleave(keep(_mm256_andnot_ps(last, below)), keep(last), dbottom);
    }
}

/// `replaces(v, best)` lane by lane, as an all-ones / all-zeros mask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn replaces_avx(
    v: std::arch::x86_64::__m256,
    best: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let greater = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
    let v_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
    let best_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(best, best);
    _mm256_or_ps(greater, _mm256_andnot_ps(best_nan, v_nan))
}

/// Sixteen consecutive values as their even and odd halves, in order.
///
/// # Safety
/// The CPU has AVX2; 16 values are readable at `p`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn deinterleave(p: *const f32) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    // SAFETY: the caller vouches for 16 values.
    let (a, b) = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) };
    // Within each 128-bit lane: evens (a0 a2 b0 b2 | a4 a6 b4 b6), odds likewise; then the
    // 64-bit quarters back in order.
    let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
    let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
    let order =
        |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
    (order(even), order(odd))
}

/// The inverse of [`deinterleave`]: stores `even[0] odd[0] even[1] odd[1] ...` at `p`.
///
/// # Safety
/// The CPU has AVX2; 16 values are writable at `p`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interleave(even: std::arch::x86_64::__m256, odd: std::arch::x86_64::__m256, p: *mut f32) {
    use std::arch::x86_64::*;
    // low: e0 o0 e1 o1 | e4 o4 e5 o5; high: e2 o2 e3 o3 | e6 o6 e7 o7.
    let low = _mm256_unpacklo_ps(even, odd);
    let high = _mm256_unpackhi_ps(even, odd);
    // SAFETY: the caller vouches for 16 values.
    unsafe {
        _mm256_storeu_ps(p, _mm256_permute2f128_ps::<0x20>(low, high));
        _mm256_storeu_ps(p.add(8), _mm256_permute2f128_ps::<0x31>(low, high));
    }
}

/// One row of windows: `top` and `bottom` the two input rows under it, `g` its gradients,
/// `dtop` and `dbottom` where they go.
fn backward_row_2x2(top: &[f32], bottom: &[f32], g: &[f32], dtop: &mut [f32], dbottom: &mut [f32]) {
    let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
    let targets = dtop.chunks_exact_mut(2).zip(dbottom.chunks_exact_mut(2));
    for ((gv, (t, b)), (dt, db)) in g.iter().zip(windows).zip(targets) {
        // The search of `argmax` unrolled: each later value takes over if it replaces the
        // best so far.
        let right = replaces(t[1], t[0]);
        let best = if right { t[1] } else { t[0] };
        let below = replaces(b[0], best);
        let best = if below { b[0] } else { best };
        let last = replaces(b[1], best);
        let pick = |won: bool| if won { *gv } else { 0.0 };
        dt[0] = pick(!last && !below && !right);
        dt[1] = pick(!last && !below && right);
        db[0] = pick(!last && below);
        db[1] = pick(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_worked_plane() {
        // 4x4 plane, 2x2 windows: maxima 6, 8, 14, 16 at offsets 5, 7, 13, 11; a tie in
        // the last window (16 twice) goes to the first in row order.
        let x: Vec<f32> = vec![
            1., 2., 3., 4., //
            5., 6., 7., 8., //
            9., 10., 11., 16., //
            13., 14., 15., 16.,
        ];
        let d = PoolDims::new([1, 1, 4, 4], 2, 2);
        assert_eq!(forward(&d, &x), [6., 8., 14., 16.]);
        let dx = backward(&d, &x, &[1., 2., 3., 4.]);
        let mut expected = vec![0.0; 16];
        (expected[5], expected[7], expected[13], expected[11]) = (1., 2., 3., 4.);
        assert_eq!(dx, expected);
    }

    #[test]
    fn overlapping_windows_add_their_gradients() {
        // 1x4 rows are not allowed (k = 2 needs h >= 2): a 2x4 plane, windows 2x2 every
        // pixel: three windows, the middle pixel of the bottom row (9) wins all three.
        let x = vec![0., 1., 2., 3., 4., 9., 5., 6.];
        let d = PoolDims::new([1, 1, 2, 4], 2, 1);
        assert_eq!((d.oh, d.ow), (1, 3));
        assert_eq!(forward(&d, &x), [9., 9., 6.]);
        let dx = backward(&d, &x, &[1., 10., 100.]);
        assert_eq!(dx, [0., 0., 0., 0., 0., 11., 0., 100.]);
    }

    #[test]
    fn nan_wins_its_window() {
        let x = vec![1., f32::NAN, 3., 2.];
        let d = PoolDims::new([1, 1, 2, 2], 2, 2);
        assert!(forward(&d, &x)[0].is_nan());
        assert_eq!(backward(&d, &x, &[5.]), [0., 5., 0., 0.]);
    }

    #[test]
    fn the_2x2_fast_paths_take_and_send_back_what_argmax_finds() {
        // Values from {0, 1, 2, NaN}: ties and NaNs in most windows; odd widths and heights
        // leave a last column and row outside every window; rows of 4 windows go through
        // the padded copy, of 18 end with an overlapping group of eight, of 16 are whole.
        for (h, w) in [(7, 9), (5, 37), (4, 32)] {
            let x: Vec<f32> = (0..h * w)
                .map(|i| match (i * 7 + i / 5) % 9 {
                    0 => f32::NAN,
                    k => (k % 3) as f32,
                })
                .collect();
            let d = PoolDims::new([1, 1, h, w], 2, 2);
            let g: Vec<f32> = (0..d.oh * d.ow).map(|o| 1.0 + o as f32).collect();
            let mut expected = vec![0.0; h * w];
            for (o, gv) in g.iter().enumerate() {
                expected[argmax(&d, &x, o / d.ow, o % d.ow)] = *gv;
            }
            let maxima: Vec<u32> = (0..d.oh * d.ow)
                .map(|o| x[argmax(&d, &x, o / d.ow, o % d.ow)].to_bits())
                .collect();
            // Through the public passes, and each plane path on its own (the scalar one
            // too, which this machine's passes would not take).
            assert_eq!(backward(&d, &x, &g), expected, "{h}x{w}");
            let out: Vec<u32> = forward(&d, &x).iter().map(|v| v.to_bits()).collect();
            assert_eq!(out, maxima, "{h}x{w} forward");
            for simd in [false, avx2()] {
                let mut dx = vec![0.0; h * w];
                backward_plane_2x2(&d, &x, &g, &mut dx, simd);
                assert_eq!(dx, expected, "{h}x{w}, simd {simd}");
                // The forward's maxima: bit for bit the values argmax picks (NaN as NaN).
                let mut out = vec![0.0; d.oh * d.ow];
                forward_plane_2x2(&d, &x, &mut out, simd);
                let out: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(out, maxima, "{h}x{w} forward, simd {simd}");
            }
        }
    }
}
