//! Linear decodability of the class from the top principal components.
//!
//! The classifier is a ridge classifier (scikit-learn's `RidgeClassifierCV`): least-squares
//! regression onto +1/-1 class indicators with an unpenalized intercept, the predicted class
//! being the largest output; one penalty shared by all classes, chosen inside each training
//! set by leave-one-out error from [`RidgeOptions`]'s grid. Principal components are fitted on
//! each training set only (no test stimulus shapes them). Folds are stratified: the i-th
//! stimulus of each class (in order) goes to fold `i mod folds`.

use faer::Mat;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::linalg::check_stimuli;
use crate::ridge::{argmin, Fit, Pooled, RidgeOptions};
use crate::{Matrix, Prepared};

/// Cross-validated accuracy of decoding the class from the top-k components.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decodability {
    /// k = 1, 2, 4, ... and finally every component (the largest rank over training sets).
    pub components: Vec<usize>,
    /// Fraction of stimuli whose class is predicted correctly when held out.
    pub accuracy: Vec<f64>,
    /// The accuracy of always guessing the most frequent class.
    pub chance: f64,
    pub folds: usize,
}

fn stratified_folds(labels: &[usize], folds: usize) -> Vec<Vec<usize>> {
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut seen = vec![0usize; classes];
    let mut out = vec![Vec::new(); folds];
    for (i, &l) in labels.iter().enumerate() {
        out[seen[l] % folds].push(i);
        seen[l] += 1;
    }
    out
}

/// 1, 2, 4, ... below `all`, then `all`.
fn component_counts(all: usize) -> Vec<usize> {
    let mut ks: Vec<usize> = std::iter::successors(Some(1usize), |k| Some(k * 2))
        .take_while(|&k| k < all)
        .collect();
    ks.push(all);
    ks
}

/// +1 for the stimulus's class, -1 elsewhere.
fn indicators(labels: &[usize], classes: usize) -> Mat<f64> {
    Mat::from_fn(labels.len(), classes, |i, c| {
        if labels[i] == c {
            1.0
        } else {
            -1.0
        }
    })
}

/// Decodability of `labels` (classes `0..=max`) from `x`'s top principal components.
pub fn decodability(x: &Matrix, labels: &[usize], options: &RidgeOptions) -> Result<Decodability> {
    decodability_of(&Prepared::new(x), labels, options)
}

/// [`decodability`] from a prepared input, whose centred values and Gram matrix the folds'
/// fits share with other measures of it (PCA: [`crate::pca_of`]).
pub fn decodability_of(
    p: &Prepared<'_>,
    labels: &[usize],
    options: &RidgeOptions,
) -> Result<Decodability> {
    const WHAT: &str = "decodability";
    let x = p.matrix();
    if labels.len() != x.stimuli() {
        return Err(Error::StimulusMismatch {
            what: WHAT,
            x: x.stimuli(),
            y: labels.len(),
        });
    }
    check_stimuli(x, WHAT, 2, "classification needs stimuli")?;
    options.check(WHAT, x.stimuli())?;
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    if classes < 2 {
        return Err(invalid(WHAT, "labels name a single class"));
    }
    let alphas = options.alphas(x);
    let folds = stratified_folds(labels, options.folds);
    let targets = indicators(labels, classes);
    let largest = folds.iter().map(Vec::len).max().unwrap_or(0);
    let pooled = Pooled::new(p, targets.as_ref(), largest);
    let fits: Vec<Fit> = folds
        .iter()
        .map(|test| pooled.fit(test, WHAT))
        .collect::<Result<_>>()?;
    let all = fits.iter().map(|f| f.s.len()).max().unwrap_or(1);
    let components = component_counts(all);
    let accuracy = components
        .iter()
        .map(|&k| {
            let correct: usize = folds
                .iter()
                .zip(&fits)
                .map(|(test, fit)| correct_in_fold(labels, test, fit, k.min(fit.s.len()), &alphas))
                .sum();
            correct as f64 / x.stimuli() as f64
        })
        .collect();
    let mut counts = vec![0usize; classes];
    labels.iter().for_each(|&l| counts[l] += 1);
    let chance = *counts.iter().max().unwrap_or(&0) as f64 / labels.len() as f64;
    Ok(Decodability {
        components,
        accuracy,
        chance,
        folds: options.folds,
    })
}

fn correct_in_fold(labels: &[usize], test: &[usize], fit: &Fit, k: usize, alphas: &[f64]) -> usize {
    // One penalty for all classes: the smallest leave-one-out error summed over classes.
    let errors = fit.loo_errors(k, alphas);
    let best = argmin(errors.iter().map(|e| e.iter().sum::<f64>()));
    let shared = vec![alphas[best]; fit.uty.ncols()];
    let scores = fit.predict(k, &shared);
    test.iter()
        .enumerate()
        .filter(|&(r, &i)| {
            let predicted = argmax_row(scores.as_ref(), r);
            predicted == labels[i]
        })
        .count()
}

fn argmax_row(m: faer::MatRef<'_, f64>, row: usize) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for c in 0..m.ncols() {
        if m[(row, c)] > best.1 {
            best = (c, m[(row, c)]);
        }
    }
    best.0
}
