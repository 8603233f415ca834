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
    product(m, n, k, dst, accumulate, lhs, rhs, Split::None);
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
    product(m, n, k, dst, accumulate, lhs, rhs, Split::for_size(m, n, k));
}

/// How a product is spread over the threads. Measured on the 2-core machine (GFLOP/s,
/// idle): a batch of 128 through mlp-2x512's layers (`[128, 784] @ [784, 512]` and the
/// gradients' shapes) runs at 75-85 on one thread, 88-98 with faer's own split and 127-140
/// as one single-threaded product per half of the output's columns; at inference's
/// `[1000, 784] @ [784, 512]` faer's split is the faster (171 against 152); a product of a
/// few million multiply-adds (the logits) is fastest on one thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// One thread.
    None,
    /// The output's columns (or rows, where it has fewer than 32 columns) in as many
    /// blocks as rayon has threads, one single-threaded product each.
    Blocks(usize),
    /// faer's own partition.
    Faer,
}

impl Split {
    fn for_size(m: usize, n: usize, k: usize) -> Self {
        let work = m * n * k;
        let threads = rayon::current_num_threads();
        if threads < 2 || work < 1 << 22 {
            Split::None
        } else if work < 1 << 28 {
            Split::Blocks(threads)
        } else {
            Split::Faer
        }
    }
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
    split: Split,
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
    match split {
        Split::None => faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0, Par::Seq),
        Split::Faer => faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0, Par::rayon(0)),
        Split::Blocks(parts) => in_blocks(dst, accum, lhs, rhs, parts),
    }
}

/// `dst (+)= lhs @ rhs` as `parts` single-threaded products on disjoint blocks of `dst`'s
/// columns (of its rows where the columns are few), halved recursively with `rayon::join`.
fn in_blocks(dst: MatMut<f32>, accum: Accum, lhs: MatRef<f32>, rhs: MatRef<f32>, parts: usize) {
    let (m, n) = (dst.nrows(), dst.ncols());
    if parts < 2 || (m < 2 && n < 2) {
        faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0, Par::Seq);
    } else if n >= 32 || n >= m {
        let (a, b) = dst.split_at_col_mut(n / 2);
        let (ra, rb) = rhs.split_at_col(n / 2);
        rayon::join(
            || in_blocks(a, accum, lhs, ra, parts / 2),
            || in_blocks(b, accum, lhs, rb, parts - parts / 2),
        );
    } else {
        let (a, b) = dst.split_at_row_mut(m / 2);
        let (la, lb) = lhs.split_at_row(m / 2);
        rayon::join(
            || in_blocks(a, accum, la, rhs, parts / 2),
            || in_blocks(b, accum, lb, rhs, parts - parts / 2),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of splitting the product against its definition, on row-major and
    /// transposed operands, replacing and accumulating, with outputs wide (split by
    /// columns) and narrow (split by rows).
    #[test]
    fn products_match_the_definition() {
        for (m, n, k) in [(7, 5, 9), (9, 70, 13), (70, 9, 4), (1, 1, 3)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 13) as f32 - 6.0) / 3.0)
                .collect();
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let want =
                |i: usize, j: usize| (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
            let splits = [Split::None, Split::Blocks(2), Split::Blocks(3), Split::Faer];
            for split in splits {
                for (lhs, rhs) in [
                    (Mat::row_major(&a, k), Mat::row_major(&b, n)),
                    (Mat::transposed(&at, m), Mat::transposed(&bt, k)),
                ] {
                    for accumulate in [false, true] {
                        let mut dst = vec![1.0f32; m * n];
                        product(m, n, k, &mut dst, accumulate, lhs, rhs, split);
                        for i in 0..m {
                            for j in 0..n {
                                let w = want(i, j) + if accumulate { 1.0 } else { 0.0 };
                                let got = dst[i * n + j];
                                assert!((got - w).abs() < 1e-4, "{split:?} {m}x{n}x{k} ({i},{j})");
                            }
                        }
                    }
                }
            }
        }
        // The public entry points route through the same function.
        let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0]);
        let mut dst = [0.0f32; 1];
        type Entry = fn(usize, usize, usize, &mut [f32], bool, Mat, Mat);
        let entries: [(Entry, bool, f32); 2] =
            [(matmul, false, 11.0), (matmul_parallel, true, 22.0)];
        for (f, accumulate, want) in entries {
            let (lhs, rhs) = (Mat::row_major(&a, 2), Mat::row_major(&b, 1));
            f(1, 1, 2, &mut dst, accumulate, lhs, rhs);
            assert_eq!(dst[0], want);
        }
    }
}
