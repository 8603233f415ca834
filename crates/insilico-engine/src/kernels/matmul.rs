//! The one matrix product every kernel calls: faer's `f32` GEMM on strided views into
//! slices.
//!
//! faer's kernels (from `private-gemm-x86`) run at 65-67 GFLOP/s on one core of the 2-core
//! development machine for the shapes of cnn-small and mlp-2x512, against 20-36 for the
//! `gemm` crate that Burn's Flex backend calls (`examples`-style measurement of
//! `[1927, 1568] @ [1568, 128]`, `[6272, 400] @ [400, 32]` and `[1024]^3`; the fp32 peak of
//! one core is about 97). faer is already in the workspace for the population measures.

use faer::{Accum, MatMut, MatRef, Par};

/// A matrix view into a slice: element `(r, c)` at `r * rs + c * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix whose rows hold `row_len` values.
    pub fn row_major(data: &'a [f32], row_len: usize) -> Self {
        Self {
            data,
            rs: row_len,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix whose rows hold `row_len` values.
    pub fn transposed(data: &'a [f32], row_len: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: row_len,
        }
    }
}

/// `dst[m, n]` (row-major) = `(dst if accumulate else 0) + lhs[m, k] @ rhs[k, n]`, on the
/// calling thread (the convolution's callers already run one product per image on each
/// rayon worker).
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
) {
    product(m, n, k, dst, accumulate, lhs, rhs, Par::Seq);
}

/// [`matmul`] split over rayon's threads (one large product, as a linear layer's).
pub(crate) fn matmul_parallel(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
) {
    product(m, n, k, dst, accumulate, lhs, rhs, Par::rayon(0));
}

#[allow(clippy::too_many_arguments)]
fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
    par: Par,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // The bounds that make the raw views below sound.
    assert!(dst.len() >= m * n, "matmul: destination too short");
    assert!(
        lhs.data.len() > (m - 1) * lhs.rs + (k - 1) * lhs.cs,
        "matmul: lhs too short"
    );
    assert!(
        rhs.data.len() > (k - 1) * rhs.rs + (n - 1) * rhs.cs,
        "matmul: rhs too short"
    );
    // SAFETY: every index the views read or write is within the slices (checked above);
    // `dst` is borrowed mutably, so it aliases neither operand.
    let (dst, lhs, rhs) = unsafe {
        (
            MatMut::from_raw_parts_mut(dst.as_mut_ptr(), m, n, n as isize, 1),
            MatRef::from_raw_parts(lhs.data.as_ptr(), m, k, lhs.rs as isize, lhs.cs as isize),
            MatRef::from_raw_parts(rhs.data.as_ptr(), k, n, rhs.rs as isize, rhs.cs as isize),
        )
    };
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0, par);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both entry points against the product by its definition, on every combination of
    /// row-major and transposed operands, replacing and accumulating.
    #[test]
    fn products_match_the_definition() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 13) as f32 - 6.0) / 3.0)
            .collect();
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let want = |i: usize, j: usize| (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
        for parallel in [false, true] {
            for (lhs, rhs) in [
                (Mat::row_major(&a, k), Mat::row_major(&b, n)),
                (Mat::transposed(&at, m), Mat::transposed(&bt, k)),
            ] {
                for accumulate in [false, true] {
                    let mut dst = vec![1.0f32; m * n];
                    let f = if parallel { matmul_parallel } else { matmul };
                    f(m, n, k, &mut dst, accumulate, lhs, rhs);
                    for i in 0..m {
                        for j in 0..n {
                            let w = want(i, j) + if accumulate { 1.0 } else { 0.0 };
                            assert!((dst[i * n + j] - w).abs() < 1e-4, "{i},{j}");
                        }
                    }
                }
            }
        }
    }
}
