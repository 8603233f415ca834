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
    let chunk = d.chunk();
    out.par_chunks_mut(chunk * d.out_plane())
        .zip(x.par_chunks(chunk * d.plane()))
        .for_each(|(out, x)| {
            let planes = out
                .chunks_exact_mut(d.out_plane())
                .zip(x.chunks_exact(d.plane()));
            for (out, plane) in planes {
                if d.k == 2 && d.s == 2 {
                    forward_plane_2x2(d, plane, out);
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
/// (top-left, top-right, bottom-left, bottom-right), written so that it vectorizes.
fn forward_plane_2x2(d: &PoolDims, plane: &[f32], out: &mut [f32]) {
    let pick = |best: f32, v: f32| if replaces(v, best) { v } else { best };
    for (oy, row) in out.chunks_exact_mut(d.ow).enumerate() {
        let top = &plane[2 * oy * d.w..][..2 * d.ow];
        let bottom = &plane[(2 * oy + 1) * d.w..][..2 * d.ow];
        for ((o, t), b) in row
            .iter_mut()
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2))
        {
            *o = pick(pick(pick(t[0], t[1]), b[0]), b[1]);
        }
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
    let chunk = d.chunk();
    dx.par_chunks_mut(chunk * d.plane())
        .zip(x.par_chunks(chunk * d.plane()))
        .zip(grad.par_chunks(chunk * d.out_plane()))
        .for_each(|((dx, x), grad)| {
            let planes = dx
                .chunks_exact_mut(d.plane())
                .zip(x.chunks_exact(d.plane()));
            for ((dx, plane), g) in planes.zip(grad.chunks_exact(d.out_plane())) {
                if d.k == 2 && d.s == 2 {
                    backward_plane_2x2(d, plane, g, dx);
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
/// is written, not added), with the order and rule of [`forward_plane_2x2`].
fn backward_plane_2x2(d: &PoolDims, plane: &[f32], g: &[f32], dx: &mut [f32]) {
    for (oy, g) in g.chunks_exact(d.ow).enumerate() {
        let top = 2 * oy * d.w;
        let bottom = top + d.w;
        for (ox, gv) in g.iter().enumerate() {
            let mut best = top + 2 * ox;
            for i in [best + 1, bottom + 2 * ox, bottom + 2 * ox + 1] {
                if replaces(plane[i], plane[best]) {
                    best = i;
                }
            }
            dx[best] = *gv;
        }
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
}
