//! Timings of the comparison measures on synthetic data, for `insilico bench population`
//! and the side-by-side numpy/scipy reference (`bench/population_reference.py`).

use std::time::Instant;

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{cca, cka, ridge, rsa, Matrix};

/// The best wall-clock time of one task over the repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchTiming {
    pub task: String,
    pub stimuli: usize,
    pub units: usize,
    pub seconds: f64,
}

/// `x` standard normal `[n, d]`; `y = x W / sqrt(d) + 0.5 noise` with `W` standard normal
/// `[d, d]`, so the two are related but not identical.
pub(crate) fn synthetic_pair(n: usize, d: usize, seed: u64) -> Result<(Matrix, Matrix)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("unit normal");
    let mut draw =
        |count: usize| -> Vec<f64> { (0..count).map(|_| normal.sample(&mut rng)).collect() };
    let xs = draw(n * d);
    let w = draw(d * d);
    let noise = draw(n * d);
    let scale = 1.0 / (d as f64).sqrt();
    let mut ys = vec![0.0; n * d];
    for i in 0..n {
        for k in 0..d {
            let xik = xs[i * d + k] * scale;
            for j in 0..d {
                ys[i * d + j] += xik * w[k * d + j];
            }
        }
        for j in 0..d {
            ys[i * d + j] += 0.5 * noise[i * d + j];
        }
    }
    Ok((
        Matrix::from_row_major(n, d, &xs)?,
        Matrix::from_row_major(n, d, &ys)?,
    ))
}

fn best_of(repeats: usize, mut task: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        std::hint::black_box(task()?);
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Times linear CKA, SVCCA (0.99), PWCCA and ridge predictivity (default options) on
/// `stimuli x units` against `stimuli x units`, and an RSA (correlation RDMs, Spearman) on
/// `rsa_stimuli x units`; the best of `repeats` runs each. The sizes are
/// 10,000 x 512 and 2,000.
pub fn bench_population(
    stimuli: usize,
    units: usize,
    rsa_stimuli: usize,
    repeats: usize,
) -> Result<Vec<BenchTiming>> {
    let (x, y) = synthetic_pair(stimuli, units, 7)?;
    let (rx, ry) = synthetic_pair(rsa_stimuli, units, 8)?;
    let timing = |task: &str, n: usize, seconds: f64| BenchTiming {
        task: task.into(),
        stimuli: n,
        units,
        seconds,
    };
    let options = ridge::RidgeOptions::default();
    Ok(vec![
        timing(
            "cka-linear",
            stimuli,
            best_of(repeats, || cka::cka_linear(&x, &y))?,
        ),
        timing(
            "svcca",
            stimuli,
            best_of(repeats, || Ok(cca::svcca(&x, &y, 0.99)?.mean))?,
        ),
        timing(
            "pwcca",
            stimuli,
            best_of(repeats, || Ok(cca::pwcca(&x, &y)?.value))?,
        ),
        timing(
            "ridge",
            stimuli,
            best_of(repeats, || {
                Ok(ridge::ridge_predictivity(&x, &y, &options)?.median_r2)
            })?,
        ),
        timing(
            "rsa-correlation-spearman",
            rsa_stimuli,
            best_of(repeats, || {
                rsa::rsa(
                    &rx,
                    &ry,
                    rsa::RdmMetric::Correlation,
                    rsa::RdmComparison::Spearman,
                )
            })?,
        ),
    ])
}
