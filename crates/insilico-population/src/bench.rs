//! Timings of the comparison measures on synthetic data, for `insilico bench population`
//! and the side-by-side numpy/scipy reference (`bench/population_reference.py`).

use std::time::Instant;

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{cca, cka, ridge, rsa, Matrix, Measure, Prepared, PreparedPair};

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

/// Layers and checkpoints of the benchmark's layer x checkpoint heatmap (reproduction 1:
/// cnn-small's hidden sites at about 20 snapshots).
pub const HEATMAP_LAYERS: usize = 4;
pub const HEATMAP_CHECKPOINTS: usize = 20;

/// The states of one layer through training: checkpoint `c` of `count` is the final
/// state plus noise of standard deviation `1 - c / (count - 1)` (the last is the final).
fn checkpoints(final_state: &Matrix, count: usize, seed: u64) -> Result<Vec<Matrix>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("unit normal");
    let base = final_state.to_row_major();
    (0..count)
        .map(|c| {
            let sd = 1.0 - c as f64 / (count.max(2) - 1) as f64;
            let v: Vec<f64> = base
                .iter()
                .map(|x| x + sd * normal.sample(&mut rng))
                .collect();
            Matrix::from_row_major(final_state.stimuli(), final_state.units(), &v)
        })
        .collect()
}

/// The layer x checkpoint heatmap of reproduction 1: every checkpoint of every layer
/// against the layer's final state, by linear CKA and SVCCA (0.99). The final state is
/// prepared once per layer, each checkpoint once for both measures ([`crate::prepared`]).
pub fn heatmap(layers: &[Vec<Matrix>]) -> Result<Vec<Vec<(f64, f64)>>> {
    layers
        .iter()
        .map(|states| {
            let last = states.last().ok_or_else(|| {
                crate::error::invalid("heatmap", "a layer without checkpoints".to_string())
            })?;
            let last = Prepared::new(last);
            states
                .iter()
                .map(|s| {
                    let s = Prepared::new(s);
                    let pair = PreparedPair::new(&s, &last);
                    Ok((
                        pair.compare(Measure::CkaLinear)?,
                        pair.compare(Measure::Svcca { kept: 0.99 })?,
                    ))
                })
                .collect()
        })
        .collect()
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
/// `rsa_stimuli x units`, and the layer x checkpoint heatmap ([`HEATMAP_LAYERS`] x
/// [`HEATMAP_CHECKPOINTS`], `rsa_stimuli x units` each); the best of `repeats` runs each.
/// The sizes are 10,000 x 512 and 2,000.
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
    let layers: Vec<Vec<Matrix>> = (0..HEATMAP_LAYERS as u64)
        .map(|l| {
            checkpoints(
                &synthetic_pair(rsa_stimuli, units, 9 + l)?.0,
                HEATMAP_CHECKPOINTS,
                l,
            )
        })
        .collect::<Result<_>>()?;
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
        timing(
            &format!("heatmap-{HEATMAP_LAYERS}x{HEATMAP_CHECKPOINTS}"),
            rsa_stimuli,
            best_of(repeats, || Ok(heatmap(&layers)?[0][0].0))?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heatmap_reaches_one_at_the_final_state_and_rises_towards_it() {
        let final_state = synthetic_pair(300, 8, 1).unwrap().0;
        let states = checkpoints(&final_state, 5, 2).unwrap();
        // The last checkpoint has no noise: it is the final state.
        assert_eq!(states[4], final_state);
        let h = heatmap(&[states]).unwrap();
        let (cka_last, svcca_last) = h[0][4];
        assert!((cka_last - 1.0).abs() < 1e-9 && (svcca_last - 1.0).abs() < 1e-9);
        // Unit-variance data plus noise of s.d. 1: linear CKA is about 1/2 (the noise
        // doubles every eigenvalue of the covariance); well below the final state's 1.
        assert!(h[0][0].0 < 0.75, "{:?}", h[0]);
        assert!(h[0][0].0 < h[0][2].0 && h[0][2].0 < h[0][4].0, "{:?}", h[0]);
    }
}
