//! Population analyses on `[stimuli, units]` matrices: dimensionality (PCA spectrum,
//! participation ratio, decodability from the top components, PCA and t-SNE embeddings)
//! and the comparison of two representations of the same stimuli (CKA, CCA, SVCCA, PWCCA,
//! RSA, ridge predictivity).
//!
//! Everything here is a pure function of f64 matrices ([`Matrix`], loadable from NPY and CSV),
//! with no dependency on the network engine: a layer's activations, a recording from a brain
//! area or activations exported by another framework are all the same thing. Linear algebra is
//! faer's; covariances are computed in f64 and in feature space (`units x units` products over
//! stimuli) wherever that is cheaper than the `stimuli x stimuli` Gram matrix.
//!
//! Degenerate inputs are errors naming the measure and the problem (too few stimuli,
//! different stimulus counts, representations with no variance), never a silent NaN; the few
//! documented exceptions (constant target units in ridge predictivity) are listed in the
//! result.

mod bench;
mod cca;
mod cka;
mod decode;
mod error;
mod linalg;
mod matrix;
mod measure;
mod npy;
mod prepared;
mod ridge;
mod rsa;
mod screen;
mod spectrum;
mod tsne;

pub use bench::{bench_population, BenchTiming};
pub use cca::{cca, pwcca, svcca, CcaResult, PwccaResult, WeightedSide};
pub use cka::{cka_debiased, cka_linear, cka_rbf};
pub use decode::{decodability, decodability_of, Decodability};
pub use error::{Error, Result};
pub use matrix::{classes_present, Matrix, Reduction};
pub use measure::{
    compare, compare_all, Comparison, Measure, RidgeScore, RBF_BANDWIDTH, SVCCA_KEPT,
};
pub use prepared::{Kernel, Prepared, PreparedPair};
pub use ridge::{ridge_predictivity, RidgeOptions, RidgeResult};
pub use rsa::{compare_rdms, rdm, rsa, Rdm, RdmComparison, RdmMetric};
pub use spectrum::{participation_ratio, pca, pca_embedding, pca_of, spectrum, Pca, Spectrum};
pub use tsne::{tsne, TsneInit, TsneOptions, MIN_PERPLEXITY};

/// Threads for the linear algebra (faer's global parallelism): 1 runs sequentially, 0
/// uses rayon's pool (every core, or `RAYON_NUM_THREADS`).
pub fn set_threads(threads: usize) {
    faer::set_global_parallelism(match threads {
        1 => faer::Par::Seq,
        n => faer::Par::rayon(n),
    });
}
