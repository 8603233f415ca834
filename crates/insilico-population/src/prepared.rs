//! Inputs prepared once for many comparisons.
//!
//! Raghu et al.'s layer x checkpoint heatmap compares each layer's final state with every
//! snapshot, and each snapshot by several measures; a comparison across seeds compares
//! every layer of one network with every layer of another. What linear CKA and the CCA
//! family need of one input alone (its centred columns, its Gram matrix `X^T X`, its right
//! singular basis) is computed once per input with [`Prepared`], and the cross-product
//! `X^T Y` once per pair with [`PreparedPair`]: for a heatmap cell by linear CKA and SVCCA
//! that is one Gram and one cross-product over the stimuli instead of four Grams and two
//! crosses. Where the units outnumber the stimuli (flattened conv maps), linear and debiased
//! CKA go through each input's `n x n` Gram matrix `X X^T`, also computed once per input,
//! as RBF CKA goes through each input's kernel matrix (once per bandwidth).
//! Ridge predictivity is fitted once per ordered pair, for its R^2 and its r alike.
//! The values are those of [`crate::compare`] (the same formulas, tested against it);
//! measures without a prepared form go to it unchanged.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use faer::{Mat, MatRef};

use crate::cca::{cca_of, check_variance_kept, svcca_of, SUMMED_RANKS};
use crate::cka::{self, Moments};
use crate::error::Result;
use crate::linalg::{
    centred, check_pair, cross, frobenius_sq, lower_gram, lower_inner, RightBasis,
};
use crate::ridge::{predictivity, RidgeOptions, RidgeResult};
use crate::rsa::{self, RankedRdm, RdmMetric};
use crate::{compare, Matrix, Measure};

/// One input, with what comparisons need of it alone, computed when first needed.
pub struct Prepared<'a> {
    matrix: &'a Matrix,
    centred: Mat<f64>,
    gram: OnceCell<Mat<f64>>,
    basis: OnceCell<RightBasis>,
    stimulus_gram: OnceCell<Mat<f64>>,
    row_norms: OnceCell<Vec<f64>>,
    /// Centred RBF kernel matrices, one per bandwidth asked for.
    rbf: RefCell<Vec<(f64, Rc<Mat<f64>>)>>,
    /// Dissimilarity matrices, one per metric asked for (every RSA measure of every pair
    /// with this input reads one).
    rdms: RefCell<Vec<(RdmMetric, Rc<RankedRdm<'static>>)>>,
}

impl<'a> Prepared<'a> {
    pub fn new(matrix: &'a Matrix) -> Self {
        Self {
            matrix,
            centred: centred(matrix.as_faer()),
            gram: OnceCell::new(),
            basis: OnceCell::new(),
            stimulus_gram: OnceCell::new(),
            row_norms: OnceCell::new(),
            rbf: RefCell::new(Vec::new()),
            rdms: RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn matrix(&self) -> &'a Matrix {
        self.matrix
    }

    /// The input, each column minus its mean.
    pub(crate) fn centred(&self) -> MatRef<'_, f64> {
        self.centred.as_ref()
    }

    /// Fewer units than stimuli: the `d x d` Gram is the small one.
    fn feature_space(&self) -> bool {
        self.matrix.units() < self.matrix.stimuli()
    }

    /// The lower triangle of `X^T X`: all that CKA's norm (`lower_inner`, as `cka_linear`
    /// computes it) and the eigendecomposition behind the basis read.
    pub(crate) fn gram(&self) -> &Mat<f64> {
        self.gram.get_or_init(|| lower_gram(self.centred.as_ref()))
    }

    /// The lower triangle of the `n x n` Gram matrix `X X^T` of the centred stimuli.
    pub(crate) fn stimulus_gram(&self) -> &Mat<f64> {
        self.stimulus_gram
            .get_or_init(|| lower_gram(self.centred.transpose()))
    }

    /// The squared norm of each centred stimulus (debiased CKA's row terms).
    fn row_norms(&self) -> &[f64] {
        self.row_norms
            .get_or_init(|| cka::row_norms_sq(self.centred.as_ref()))
    }

    /// The centred RBF kernel matrix for `bandwidth`, computed once per bandwidth.
    fn rbf(&self, bandwidth: f64) -> Result<Rc<Mat<f64>>> {
        memo(&self.rbf, bandwidth, || {
            cka::centred_rbf(self.centred.as_ref(), bandwidth)
        })
    }

    /// How many RDMs and RBF kernels this input keeps (see [`Kernel`]).
    pub fn kept_kernels(&self) -> usize {
        self.rbf.borrow().len() + self.rdms.borrow().len()
    }

    /// Drops the RDMs and RBF kernels kept so far (see [`Kernel`]).
    pub fn release_kernels(&self) {
        self.rbf.borrow_mut().clear();
        self.rdms.borrow_mut().clear();
    }

    /// The RDM under `metric` (and its ranks, when asked for), computed once per metric.
    fn rdm(&self, metric: RdmMetric) -> Result<Rc<RankedRdm<'static>>> {
        memo(&self.rdms, metric, || {
            Ok(RankedRdm::new(Cow::Owned(rsa::rdm(self.matrix, metric)?)))
        })
    }

    pub(crate) fn basis(&self, what: &'static str) -> Result<&RightBasis> {
        if let Some(b) = self.basis.get() {
            return Ok(b);
        }
        let basis = RightBasis::of_gram(self.gram().as_ref(), what)?;
        Ok(self.basis.get_or_init(|| basis))
    }
}

/// The per-input `n x n` matrix a measure reads and [`Prepared`] keeps: an RDM (and its
/// ranks) under one metric, or an RBF kernel at one bandwidth, each as large as a Gram
/// matrix over the stimuli. A comparison that takes the measures of one kind together, for
/// every pair, and then calls [`Prepared::release_kernels`] holds one kind at a time for
/// all its inputs instead of every kind at once (at 10,000 stimuli each RDM with its ranks
/// is 1 GB, each kernel 0.8 GB, per input).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// Products of the inputs alone (Gram, cross-product, bases): nothing of `n x n` but a
    /// wide input's Gram matrix over the stimuli, kept throughout.
    None,
    Rdm(RdmMetric),
    Rbf(f64),
}

impl Kernel {
    pub fn of(measure: Measure) -> Self {
        match measure {
            Measure::Rsa { metric, .. } => Kernel::Rdm(metric),
            Measure::CkaRbf { bandwidth } => Kernel::Rbf(bandwidth),
            _ => Kernel::None,
        }
    }

    /// Bytes one input's kernel of `n` stimuli keeps: an RDM's `n (n - 1) / 2`
    /// dissimilarities (f64), their ranks (f64) and sorting order (u32); an RBF kernel's
    /// `n^2` f64 values.
    pub fn kept_bytes(self, n: usize) -> f64 {
        let n = n as f64;
        match self {
            Kernel::None => 0.0,
            Kernel::Rdm(_) => n * (n - 1.0) / 2.0 * (8.0 + 8.0 + 4.0),
            Kernel::Rbf(_) => n * n * 8.0,
        }
    }

    /// Bytes of the `n x n` temporaries while one is made: the inner products of the
    /// stimuli (both kinds), and the squared distances with their copy for the median
    /// (RBF).
    pub fn making_bytes(self, n: usize) -> f64 {
        let square = (n as f64).powi(2) * 8.0;
        match self {
            Kernel::None => 0.0,
            Kernel::Rdm(_) => square,
            Kernel::Rbf(_) => 3.0 * square,
        }
    }
}

/// The value cached under `key` in `cache`, made (and cached) by `make` the first time.
fn memo<K: PartialEq + Copy, V>(
    cache: &RefCell<Vec<(K, Rc<V>)>>,
    key: K,
    make: impl FnOnce() -> Result<V>,
) -> Result<Rc<V>> {
    let known = cache
        .borrow()
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone());
    if let Some(v) = known {
        return Ok(v);
    }
    let v = Rc::new(make()?);
    cache.borrow_mut().push((key, v.clone()));
    Ok(v)
}

/// Two prepared inputs with the same stimuli, and their cross-product once computed.
pub struct PreparedPair<'p, 'a> {
    x: &'p Prepared<'a>,
    y: &'p Prepared<'a>,
    cross: OnceCell<Mat<f64>>,
    /// `x` predicting `y`, read by both ridge scores (the fits are most of their cost).
    ridge: OnceCell<Result<RidgeResult>>,
}

impl<'p, 'a> PreparedPair<'p, 'a> {
    pub fn new(x: &'p Prepared<'a>, y: &'p Prepared<'a>) -> Self {
        Self {
            x,
            y,
            cross: OnceCell::new(),
            ridge: OnceCell::new(),
        }
    }

    /// `X^T Y` of the centred inputs.
    fn cross(&self) -> &Mat<f64> {
        self.cross
            .get_or_init(|| cross(self.x.centred.as_ref(), self.y.centred.as_ref()))
    }

    /// Linear or debiased CKA through the two inputs' `n x n` Gram matrices, as
    /// `cka_linear` and `cka_debiased` compute it where the units outnumber the stimuli.
    fn stimulus_space_cka(&self, debiased: bool) -> Result<f64> {
        let (x, y) = (self.x.matrix, self.y.matrix);
        if debiased {
            check_pair(x, y, cka::DEBIASED, 4, cka::DEBIASED_STIMULI)?;
        } else {
            check_pair(x, y, cka::LINEAR, 3, cka::TWO_STIMULI)?;
        }
        let (xy, xx, yy) = cka::stimulus_space(
            self.x.stimulus_gram().as_ref(),
            self.y.stimulus_gram().as_ref(),
        );
        if !debiased {
            return cka::ratio(cka::LINEAR, xy, xx, yy);
        }
        let m = Moments {
            xy,
            xx,
            yy,
            rows_x: self.x.row_norms().to_vec(),
            rows_y: self.y.row_norms().to_vec(),
        };
        cka::debiased_ratio(&m, x.stimuli())
    }

    /// The measure's value, as [`compare`] gives it.
    pub fn compare(&self, measure: Measure) -> Result<f64> {
        let (x, y) = (self.x.matrix, self.y.matrix);
        // The route `cka_linear` takes (`cka::moments`): Gram matrices over the stimuli
        // when they are the smaller products.
        let stimulus_space = x.units() + y.units() >= x.stimuli();
        match measure {
            Measure::CkaLinear if stimulus_space => return self.stimulus_space_cka(false),
            Measure::CkaDebiased if stimulus_space => return self.stimulus_space_cka(true),
            Measure::CkaRbf { bandwidth } => {
                cka::check_bandwidth(bandwidth)?;
                check_pair(x, y, cka::RBF, 3, cka::TWO_STIMULI)?;
                let (k, l) = (self.x.rbf(bandwidth)?, self.y.rbf(bandwidth)?);
                return cka::rbf_ratio(&k, &l);
            }
            Measure::Rsa { metric, comparison } => {
                rsa::check_rsa_pair(x, y)?;
                let (a, b) = (self.x.rdm(metric)?, self.y.rdm(metric)?);
                return rsa::compare_ranked(&a, &b, comparison);
            }
            Measure::Ridge { score } => {
                let fitted = self
                    .ridge
                    .get_or_init(|| predictivity(self.x, y, &RidgeOptions::default()));
                return fitted.as_ref().map(|r| score.of(r)).map_err(Clone::clone);
            }
            _ => {}
        }
        if !(self.x.feature_space() && self.y.feature_space()) {
            return compare(measure, x, y);
        }
        let n = x.stimuli();
        match measure {
            Measure::CkaLinear => {
                check_pair(x, y, cka::LINEAR, 3, cka::TWO_STIMULI)?;
                let xy = frobenius_sq(self.cross().as_ref());
                let (gx, gy) = (self.x.gram().as_ref(), self.y.gram().as_ref());
                let (xx, yy) = (lower_inner(gx, gx), lower_inner(gy, gy));
                cka::ratio(cka::LINEAR, xy, xx, yy)
            }
            Measure::Svcca { kept } => {
                check_variance_kept(kept)?;
                check_pair(x, y, "SVCCA", 3, SUMMED_RANKS)?;
                let (bx, by) = (self.x.basis("SVCCA")?, self.y.basis("SVCCA")?);
                Ok(svcca_of(bx, by, self.cross().as_ref(), n, kept)?.mean)
            }
            Measure::CcaMean | Measure::CcaMeanSquared => {
                check_pair(x, y, "CCA", 3, SUMMED_RANKS)?;
                let (bx, by) = (self.x.basis("CCA")?, self.y.basis("CCA")?);
                let r = cca_of(bx, by, self.cross().as_ref(), n)?;
                Ok(match measure {
                    Measure::CcaMean => r.mean,
                    _ => r.mean_squared,
                })
            }
            _ => compare(measure, x, y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RidgeScore;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, d: usize, seed: u64) -> Matrix {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        Matrix::from_row_major(n, d, &v).unwrap()
    }

    /// The prepared path gives what `compare` gives, measure by measure, whether the pair
    /// is prepared once for all measures or not, in feature space and out of it.
    #[test]
    fn prepared_comparisons_equal_the_plain_ones() {
        let measures = [
            Measure::CkaLinear,
            Measure::Svcca { kept: 0.99 },
            Measure::Svcca { kept: 0.5 },
            Measure::CcaMean,
            Measure::CcaMeanSquared,
            Measure::CkaDebiased,
            Measure::CkaRbf { bandwidth: 0.8 },
            Measure::CkaRbf { bandwidth: -1.0 },
            Measure::Rsa {
                metric: RdmMetric::Correlation,
                comparison: rsa::RdmComparison::Spearman,
            },
            Measure::Rsa {
                metric: RdmMetric::Euclidean,
                comparison: rsa::RdmComparison::KendallTauA,
            },
            // One fit serves both scores.
            Measure::Ridge {
                score: RidgeScore::R2,
            },
            Measure::Ridge {
                score: RidgeScore::Pearson,
            },
        ];
        // Feature space; one input wider than the stimuli; both wider (flattened maps);
        // too few stimuli for debiased CKA and CCA.
        for (n, dx, dy) in [(60, 7, 5), (60, 5, 9), (12, 20, 4), (10, 25, 30), (3, 5, 6)] {
            let x = random(n, dx, 1);
            // y shares a linear part with x, so the values are not all near 0.
            let noise = random(n, dy, 2);
            let y_values: Vec<f64> = (0..n * dy)
                .map(|k| {
                    x.to_row_major()[(k / dy) * dx + (k % dy) % dx] + 0.5 * noise.to_row_major()[k]
                })
                .collect();
            let y = Matrix::from_row_major(n, dy, &y_values).unwrap();
            let (px, py) = (Prepared::new(&x), Prepared::new(&y));
            let pair = PreparedPair::new(&px, &py);
            for m in measures {
                let plain = compare(m, &x, &y);
                let prepared = pair.compare(m);
                match (plain, prepared) {
                    (Ok(a), Ok(b)) => {
                        assert!((a - b).abs() < 1e-10, "{m:?} ({n}, {dx}, {dy}): {a} vs {b}")
                    }
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{m:?}"),
                    (a, b) => panic!("{m:?} ({n}, {dx}, {dy}): {a:?} vs {b:?}"),
                }
            }
        }
    }

    /// Constant units everywhere: the prepared routes refuse as the plain ones do.
    #[test]
    fn a_constant_input_is_refused_alike_on_every_route() {
        let y = random(10, 30, 4);
        for d in [3, 25] {
            let x = Matrix::from_row_major(10, d, &vec![0.5; 10 * d]).unwrap();
            let (px, py) = (Prepared::new(&x), Prepared::new(&y));
            for m in [Measure::CkaLinear, Measure::CkaDebiased] {
                let plain = compare(m, &x, &y).unwrap_err().to_string();
                let prepared = PreparedPair::new(&px, &py).compare(m).unwrap_err();
                assert_eq!(plain, prepared.to_string(), "{m:?}, {d} units");
                assert!(plain.contains("no variance"), "{plain}");
            }
        }
    }

    #[test]
    fn an_input_against_itself_is_one() {
        let x = random(40, 6, 3);
        let p = Prepared::new(&x);
        let pair = PreparedPair::new(&p, &p);
        for m in [
            Measure::CkaLinear,
            Measure::Svcca { kept: 0.99 },
            Measure::CcaMean,
        ] {
            assert!((pair.compare(m).unwrap() - 1.0).abs() < 1e-10, "{m:?}");
        }
    }
}
