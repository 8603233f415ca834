//! Seeded random matrices for the property tests.
#![allow(dead_code)]

use faer::Mat;
use insilico_population::Matrix;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

pub fn gaussian(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    Mat::from_fn(rows, cols, |_, _| normal.sample(&mut rng))
}

pub fn matrix(m: &Mat<f64>) -> Matrix {
    Matrix::from_faer(m.clone()).unwrap()
}

/// A random orthogonal `d x d` matrix (the Q of a Gaussian matrix's QR).
pub fn orthogonal(d: usize, seed: u64) -> Mat<f64> {
    gaussian(d, d, seed).qr().compute_thin_Q()
}

/// `x` and a noisy nonlinear function of it, so that every measure is strictly between 0 and 1.
pub fn related_pair(n: usize, dx: usize, dy: usize, seed: u64) -> (Mat<f64>, Mat<f64>) {
    let x = gaussian(n, dx, seed);
    let w = gaussian(dx, dy, seed + 1);
    let noise = gaussian(n, dy, seed + 2);
    let xw = &x * &w;
    let y = Mat::from_fn(n, dy, |i, j| xw[(i, j)].tanh() + 0.5 * noise[(i, j)]);
    (x, y)
}
