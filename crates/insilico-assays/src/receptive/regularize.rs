//! Regularizers of a synthesized image, each per row `[rows, 1]` (rows are optimized
//! independently, so the batch loss is their sum).

use burn::tensor::Tensor;

/// Mean square of each image (a mean, not a sum, so that weights do not depend on the
/// image size; multiply by `c h w` for the sum).
pub fn l2(x: Tensor<4>) -> Tensor<2> {
    (x.clone() * x).flatten(1, 3).mean_dim(1)
}

/// Mean of `|x|^alpha` of each image (the alpha-norm of Mahendran & Vedaldi, to the power
/// alpha, per pixel).
pub fn alpha_norm(x: Tensor<4>, alpha: f32) -> Tensor<2> {
    x.abs().powf_scalar(alpha).flatten(1, 3).mean_dim(1)
}

/// Total variation of each image: mean absolute difference between vertical neighbours
/// plus the same between horizontal neighbours (as in the PyTorch reference benchmark).
pub fn total_variation(x: Tensor<4>) -> Tensor<2> {
    let [_, _, h, w] = x.dims();
    let dy = x.clone().narrow(2, 1, h - 1) - x.clone().narrow(2, 0, h - 1);
    let dx = x.clone().narrow(3, 1, w - 1) - x.narrow(3, 0, w - 1);
    dy.abs().flatten(1, 3).mean_dim(1) + dx.abs().flatten(1, 3).mean_dim(1)
}

/// A 3x3 box blur (wrapping at the borders) of values without gradient.
pub fn box_blur(x: Tensor<4>) -> Tensor<4> {
    let x = x.detach();
    let mut acc = x.clone();
    for (dy, dx) in [
        (-1i64, -1i64),
        (-1, 0),
        (-1, 1),
        (0, -1),
        (0, 1),
        (1, -1),
        (1, 0),
        (1, 1),
    ] {
        acc = acc + x.clone().roll(&[dy, dx], &[2, 3]);
    }
    acc / 9.0
}

/// Lucid's `blur_input_each_step`: a term whose gradient is `x - blur(x)`, so that each
/// step of the optimizer also moves the image towards its blurred self. Per row.
pub fn blur_pull(x: Tensor<4>) -> Tensor<2> {
    let target = x.clone().detach() - box_blur(x.clone());
    (x * target).flatten(1, 3).mean_dim(1)
}
