//! Comparing representations: layer-by-layer similarity matrices between networks (and
//! within one), or between a network and any `[stimuli, units]` matrix (a recording from
//! a brain area, activations exported by another framework), for every measure of
//! `insilico-population` (CKA, CCA/SVCCA/PWCCA, RSA, ridge predictivity).

use crate::options::distinct;
use crate::population::{to_matrix, MapReduction};
use crate::study::{Study, StudyOptions, Subset};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use insilico_data::fsx::EarlierOutputs;
use insilico_data::Locator;
use insilico_engine::memory::{available_memory, check_fits};
use insilico_engine::Compute;
use insilico_population::{Kernel, Matrix, Measure, Prepared, PreparedPair, RdmMetric};
use insilico_report::{write_csv, write_json, write_npy, Heatmap};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// `stem` with `.ext` appended: measure names contain dots (`svcca-0.99`), which
/// `Path::with_extension` would cut.
pub fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// One representation: a site of a run, or a matrix from a file.
#[derive(Clone)]
pub struct Representation {
    /// `run:site`, or the file's stem.
    pub label: String,
    /// Where it came from (the run directory or the file).
    pub source: PathBuf,
    pub matrix: Matrix,
}

/// Short names for run directories: the last path components that tell them apart
/// (`seed1`, or `a/seed1` and `b/seed1`).
pub fn run_names(dirs: &[PathBuf]) -> Vec<String> {
    let tail = |d: &PathBuf, k: usize| {
        let parts: Vec<String> = d
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts[parts.len().saturating_sub(k)..].join("/")
    };
    let deepest = dirs
        .iter()
        .map(|d| d.components().count())
        .max()
        .unwrap_or(1);
    let k = (1..=deepest)
        .find(|&k| {
            let names: Vec<String> = dirs.iter().map(|d| tail(d, k)).collect();
            (0..names.len()).all(|i| !names[..i].contains(&names[i]))
        })
        .unwrap_or(deepest);
    dirs.iter().map(|d| tail(d, k)).collect()
}

/// Labels that tell every input apart: files that share a name (`good.npy` in two
/// folders) are labelled by their paths as given; the same input given twice (`run` and
/// `run/`, or one file twice) is an error, as its rows and columns would be two copies
/// under one name.
pub fn distinct_labels(reps: &mut [Representation]) -> Result<()> {
    let count =
        |reps: &[Representation], label: &str| reps.iter().filter(|r| r.label == label).count();
    let shared: Vec<bool> = reps.iter().map(|r| count(reps, &r.label) > 1).collect();
    for (r, shared) in reps.iter_mut().zip(shared) {
        if shared && r.source.is_file() {
            r.label = r.source.display().to_string();
        }
    }
    let labels: Vec<&str> = reps.iter().map(|r| r.label.as_str()).collect();
    distinct("inputs", &labels, |label| *label)
}

/// The images a run's study shows, by content. Representations compared with each other
/// must be responses to the same stimuli, row by row, and two runs can show different
/// images under the same `--split` and `--images`: runs on different datasets, or on the
/// training split of different training subsets (`data.train_limit` with another
/// `data.data_seed`).
#[derive(Clone, Debug)]
pub struct RunImages {
    /// The run, as the comparison names it.
    pub run: String,
    dataset: String,
    split: Subset,
    count: usize,
    /// A hash of the images' bits (as normalized for the network), their count and shape.
    fingerprint: u64,
    /// The true class of each stimulus, before any corruption of the training labels
    /// (the conditions of a class-averaged comparison: the same for every run).
    pub classes: Vec<usize>,
}

impl RunImages {
    pub fn of(study: &Study, run: &str) -> Self {
        let examples = &study.examples;
        let mut hasher = std::hash::DefaultHasher::new();
        examples.shape.hash(&mut hasher);
        examples.len().hash(&mut hasher);
        for v in &examples.images {
            hasher.write_u32(v.to_bits());
        }
        let labels = match study.split() {
            Subset::Train => &study.run.data.train_clean_labels[..examples.len()],
            Subset::Test => &examples.labels[..],
        };
        Self {
            run: run.to_string(),
            dataset: study.run.data.dataset.name.clone(),
            split: study.split(),
            count: examples.len(),
            fingerprint: hasher.finish(),
            classes: labels.iter().map(|&l| l as usize).collect(),
        }
    }

    /// Refuses `other` unless it shows the same images as `self`, saying why they differ
    /// and how to compare such runs.
    pub fn check_same(&self, other: &RunImages) -> Result<()> {
        if self.fingerprint == other.fingerprint {
            return Ok(());
        }
        let (a, b, split) = (&self.run, &other.run, self.split);
        let why = if self.dataset != other.dataset {
            format!(
                "{a} is trained on {}, {b} on {}; compare runs on one dataset",
                self.dataset, other.dataset
            )
        } else if split == Subset::Train {
            "their training subsets differ (data.train_limit with another data.data_seed); \
             give --split test, the same images for every run, or compare runs trained with \
             the same data.data_seed"
                .to_string()
        } else {
            format!(
                "{a} shows {} {split} images and {b} {}",
                self.count, other.count
            )
        };
        bail!(
            "{a} and {b} show different images on the {split} split, so their rows are not \
             responses to the same stimuli: {why}"
        )
    }
}

/// Every site of each run (`(directory, name)`; or `options.sites`), recorded on the
/// study's stimuli and labelled `name:site`, with the images of the first run. Every
/// run must show the same images (see [`RunImages`]): each is checked before it is
/// recorded.
pub fn runs_representations(
    runs: &[(&Path, String)],
    compute: &Compute,
    locator: &Locator,
    options: &StudyOptions,
    reduction: MapReduction,
) -> Result<(Vec<Vec<Representation>>, Option<RunImages>)> {
    let mut first: Option<RunImages> = None;
    let mut recorded = Vec::with_capacity(runs.len());
    for (dir, name) in runs {
        let study = Study::open(dir, compute.clone(), locator, options)?;
        let images = RunImages::of(&study, name);
        match &first {
            Some(first) => first.check_same(&images)?,
            None => first = Some(images),
        }
        recorded.push(study_representations(&study, dir, name, reduction)?);
    }
    Ok((recorded, first))
}

/// Every site of a study, labelled `name:site`.
fn study_representations(
    study: &Study,
    dir: &Path,
    name: &str,
    reduction: MapReduction,
) -> Result<Vec<Representation>> {
    study
        .sites
        .iter()
        .map(|site| {
            let act = study.record(site)?;
            Ok(Representation {
                label: format!("{name}:{site}"),
                source: dir.to_path_buf(),
                matrix: to_matrix(&act, reduction).with_context(|| format!("{name}:{site}"))?,
            })
        })
        .collect()
}

/// A matrix from an NPY (2-D, or a 4-D map reduced) or CSV file.
pub fn file_representation(path: &Path, reduction: MapReduction) -> Result<Representation> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let matrix = if is_csv {
        Matrix::load_csv(path)?
    } else {
        Matrix::load_npy(path, Some(reduction.reduction()))?
    };
    Ok(Representation {
        label: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
        source: path.to_path_buf(),
        matrix,
    })
}

/// What the rows of every representation compared are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Conditions {
    /// A row per stimulus: the response to each image.
    #[default]
    Stimuli,
    /// A row per class: the mean response to the stimuli of that class, classes in
    /// ascending order (RSA of class-averaged responses, as in Kriegeskorte et al. 2008;
    /// ten rows for MNIST, too few for CCA and ridge, which need more rows than units).
    ClassMeans,
}

impl Conditions {
    /// What a figure's title adds after the measure: nothing for responses to stimuli.
    pub fn in_title(self) -> &'static str {
        match self {
            Conditions::Stimuli => "",
            Conditions::ClassMeans => " of class means",
        }
    }
}

impl std::fmt::Display for Conditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conditions::Stimuli => "stimuli",
            Conditions::ClassMeans => "class-means",
        })
    }
}

/// Replaces each representation by its class means ([`Matrix::class_means`]): `classes`
/// holds the class of each stimulus, and `from` says where they came from (for errors).
/// Returns the classes present, in the order of the new rows.
pub fn class_averaged(
    reps: &mut [Representation],
    classes: &[usize],
    from: &str,
) -> Result<Vec<usize>> {
    let present = insilico_population::classes_present(classes);
    if let Some(r) = reps.iter().find(|r| r.matrix.stimuli() != classes.len()) {
        bail!(
            "{from}: {} classes, one per stimulus, but {} has {} stimuli (rows); class means \
             need the class of each stimulus, in the order of the rows",
            classes.len(),
            r.label,
            r.matrix.stimuli()
        );
    }
    if present.len() < 2 {
        bail!(
            "{from}: the stimuli's classes are {present:?}; class means need two classes or more"
        );
    }
    for r in reps.iter_mut() {
        r.matrix = r.matrix.class_means(classes)?;
    }
    Ok(present)
}

/// One measure between every pair: `values[i][j]` compares row representation `i`
/// (the measure's first argument) with column representation `j`.
#[derive(Clone, Debug, Serialize)]
pub struct SimilarityMatrix {
    pub measure: String,
    /// The range the measure can take.
    pub range: (f64, f64),
    pub symmetric: bool,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// NaN (`null` in JSON) where the measure is undefined for the pair; see `undefined`.
    pub values: Vec<Vec<f64>>,
    /// Why each NaN cell is undefined (`measure between row and column: reason`); empty
    /// unless asked for by [`similarity_where_defined`] (elsewhere such a pair is an error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undefined: Vec<String>,
    /// What the rows of the representations compared were.
    pub conditions: Conditions,
    /// With [`Conditions::ClassMeans`], the class of each row, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<usize>,
}

/// Each representation prepared for comparisons (see [`similarity_of`]).
pub fn prepare(reps: &[Representation]) -> Vec<Prepared<'_>> {
    reps.iter().map(|r| Prepared::new(&r.matrix)).collect()
}

/// Every measure between every row and column representation. All must hold the same
/// stimuli (rows): a different count is refused, naming both.
pub fn similarity(
    rows: &[Representation],
    columns: &[Representation],
    measures: &[Measure],
) -> Result<Vec<SimilarityMatrix>> {
    let prepared_rows = prepare(rows);
    // A set against itself is prepared once.
    let prepared_columns = (!std::ptr::eq(rows, columns)).then(|| prepare(columns));
    let prepared_columns = prepared_columns.as_deref().unwrap_or(&prepared_rows);
    measure_by_measure(
        (rows, &prepared_rows),
        (columns, prepared_columns),
        measures,
        Undefined::Fail,
        Kernels::Release,
    )
}

/// [`similarity`] of representations already prepared. Each representation is prepared
/// once and each pair once for all measures (centred columns, Gram matrices, singular
/// bases and cross-products are shared), instead of every measure of every pair starting
/// again from the raw matrices; a caller comparing one representation with several others
/// (every pair of runs of a group) prepares it once for all of them, and their RDMs and
/// kernels stay for its next comparisons. A measure undefined for any pair is an error.
pub fn similarity_of(
    rows: (&[Representation], &[Prepared]),
    columns: (&[Representation], &[Prepared]),
    measures: &[Measure],
) -> Result<Vec<SimilarityMatrix>> {
    measure_by_measure(rows, columns, measures, Undefined::Fail, Kernels::Keep)
}

/// [`similarity`] where a measure undefined for a pair (CCA of a representation with itself
/// when it has more than half as many units as stimuli, say) leaves that cell NaN (`null` in
/// JSON) with the reason in [`SimilarityMatrix::undefined`], and a measure undefined for
/// every pair is left out and returned with its reason: what `insilico compare` computes
/// when no measure is named. An error if no measure is defined for any pair.
pub fn similarity_where_defined(
    reps: &[Representation],
    measures: &[Measure],
) -> Result<(Vec<SimilarityMatrix>, Vec<String>)> {
    let prepared = prepare(reps);
    let all = measure_by_measure(
        (reps, &prepared),
        (reps, &prepared),
        measures,
        Undefined::Record,
        Kernels::Release,
    )?;
    let (left_out, defined): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|m| m.values.iter().flatten().all(|v| v.is_nan()));
    let reasons: Vec<String> = left_out.iter().map(|m| m.undefined[0].clone()).collect();
    if defined.is_empty() {
        bail!(
            "no measure is defined for these inputs:\n  {}",
            reasons.join("\n  ")
        );
    }
    Ok((defined, reasons))
}

/// What a measure undefined for one pair does to the comparison.
#[derive(Clone, Copy, PartialEq)]
enum Undefined {
    Fail,
    Record,
}

/// Whether a comparison drops its inputs' RDMs and kernels after each phase (see
/// [`kernel_phases`]): yes where it prepared the inputs itself; a caller that prepared them
/// for several comparisons keeps them for the next.
#[derive(Clone, Copy, PartialEq)]
enum Kernels {
    Release,
    Keep,
}

/// Every measure between every pair. Different stimulus counts are refused for all
/// measures, naming both representations.
fn measure_by_measure(
    (rows, prepared_rows): (&[Representation], &[Prepared]),
    (columns, prepared_columns): (&[Representation], &[Prepared]),
    measures: &[Measure],
    when: Undefined,
    kernels: Kernels,
) -> Result<Vec<SimilarityMatrix>> {
    for r in rows.iter().chain(columns) {
        let first = &rows[0];
        if r.matrix.stimuli() != first.matrix.stimuli() {
            bail!(
                "{} has {} stimuli but {} has {}: representations must be responses to the same stimuli",
                r.label,
                r.matrix.stimuli(),
                first.label,
                first.matrix.stimuli()
            );
        }
    }
    // A representation set against itself: a symmetric measure's (b, a) is its (a, b),
    // computed once; the asymmetric ones (PWCCA, ridge) for every ordered pair.
    let same = std::ptr::eq(rows, columns);
    let inputs: Vec<&Matrix> = match same {
        true => rows.iter().map(|r| &r.matrix).collect(),
        false => rows.iter().chain(columns).map(|r| &r.matrix).collect(),
    };
    check_memory(&inputs, measures, available_memory())?;
    let mut matrices: Vec<SimilarityMatrix> = measures
        .iter()
        .map(|m| SimilarityMatrix {
            measure: m.name(),
            range: m.range(),
            symmetric: m.is_symmetric(),
            rows: rows.iter().map(|r| r.label.clone()).collect(),
            columns: columns.iter().map(|r| r.label.clone()).collect(),
            values: vec![Vec::with_capacity(columns.len()); rows.len()],
            undefined: Vec::new(),
            conditions: Conditions::Stimuli,
            classes: Vec::new(),
        })
        .collect();
    let phases = kernel_phases(measures);
    let bar = if same {
        crate::progress::bar((rows.len() * columns.len() * phases.len()) as u64, "pairs")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut pairs = Pairs {
        rows: (rows, prepared_rows),
        columns: (columns, prepared_columns),
        same,
        when,
        reasons: HashMap::new(),
        bar: &bar,
    };
    for phase in phases {
        let selected: Vec<(usize, Measure)> = phase.iter().map(|&k| (k, measures[k])).collect();
        pairs.measure(&selected, &mut matrices)?;
        // This phase's RDMs or kernels are not read again here.
        if kernels == Kernels::Release {
            for p in prepared_rows.iter().chain(prepared_columns) {
                p.release_kernels();
            }
        }
    }
    bar.finish_and_clear();
    Ok(matrices)
}

/// Refuses a comparison whose inputs and per-input `n x n` matrices (RDMs, RBF kernels:
/// [`Kernel`]) would not fit in `available` bytes (`None`: unknown, accept), before
/// computing any: at 60,000 stimuli one RDM alone is 36 GB, and the allocator would abort
/// the process, or the kernel kill it. A lower bound on the peak (each input and its
/// centred copy, the largest phase's kernels for every input and the temporaries of making
/// one), so that a refusal is certain.
pub(crate) fn check_memory(
    inputs: &[&Matrix],
    measures: &[Measure],
    available: Option<u64>,
) -> Result<()> {
    let Some(available) = available else {
        return Ok(());
    };
    let n = inputs.first().map_or(0, |m| m.stimuli());
    let held: f64 = inputs
        .iter()
        .map(|m| 2.0 * 8.0 * (m.stimuli() * m.units()) as f64)
        .sum();
    let kernels = measures
        .iter()
        .map(|&m| {
            let kernel = Kernel::of(m);
            inputs.len() as f64 * kernel.kept_bytes(n) + kernel.making_bytes(n)
        })
        .fold(0.0, f64::max);
    let names: Vec<String> = measures.iter().map(Measure::name).collect();
    check_fits(
        &format!(
            "comparing {} representations of {n} stimuli by {}",
            inputs.len(),
            names.join(", ")
        ),
        (held, "the representations"),
        (
            kernels,
            "the n x n dissimilarity or kernel matrices of each",
        ),
        "compare fewer stimuli (--images) or leave out RSA and RBF CKA (--measures)",
        available,
    )
}

/// The indices of `measures` grouped by the per-input `n x n` matrix they read
/// ([`Kernel`]), in order of first appearance: measured phase by phase, so that a
/// comparison holds the RDMs or kernels of one kind at a time.
fn kernel_phases(measures: &[Measure]) -> Vec<Vec<usize>> {
    let mut phases: Vec<(Kernel, Vec<usize>)> = Vec::new();
    for (k, &m) in measures.iter().enumerate() {
        let kernel = Kernel::of(m);
        match phases.iter_mut().find(|(q, _)| *q == kernel) {
            Some((_, ks)) => ks.push(k),
            None => phases.push((kernel, vec![k])),
        }
    }
    phases.into_iter().map(|(_, ks)| ks).collect()
}

/// Every pair of a comparison, and what measuring them keeps between measures.
struct Pairs<'r, 'p, 'a> {
    rows: (&'r [Representation], &'r [Prepared<'p>]),
    columns: (&'r [Representation], &'r [Prepared<'p>]),
    same: bool,
    when: Undefined,
    /// Why a symmetric measure was undefined for `(measure, i, j)`, for its mirror `(j, i)`.
    reasons: HashMap<(usize, usize, usize), String>,
    bar: &'a indicatif::ProgressBar,
}

impl Pairs<'_, '_, '_> {
    /// The measures `selected` (index into `matrices`, measure) for every pair, each pair
    /// prepared once for all of them.
    fn measure(
        &mut self,
        selected: &[(usize, Measure)],
        matrices: &mut [SimilarityMatrix],
    ) -> Result<()> {
        let ((rows, prepared_rows), (columns, prepared_columns)) = (self.rows, self.columns);
        for (i, (a, pa)) in rows.iter().zip(prepared_rows).enumerate() {
            self.bar.set_message(a.label.clone());
            for (j, (b, pb)) in columns.iter().zip(prepared_columns).enumerate() {
                let pair = PreparedPair::new(pa, pb);
                for &(k, m) in selected {
                    let matrix = &mut matrices[k];
                    let value = self.value(&pair, (k, m), (i, j), matrix).or_else(|e| {
                        let e =
                            e.context(format!("{} between {} and {}", m.name(), a.label, b.label));
                        if self.when == Undefined::Fail {
                            return Err(e);
                        }
                        matrix.undefined.push(format!("{e:#}"));
                        Ok(f64::NAN)
                    })?;
                    matrix.values[i].push(value);
                }
                self.bar.inc(1);
            }
        }
        Ok(())
    }

    /// Measure `k` of the pair `(i, j)`: computed, or the mirror's value (or reason) for a
    /// symmetric measure of a set against itself below the diagonal.
    fn value(
        &mut self,
        pair: &PreparedPair,
        (k, m): (usize, Measure),
        (i, j): (usize, usize),
        matrix: &SimilarityMatrix,
    ) -> Result<f64> {
        if self.same && j < i && m.is_symmetric() {
            return match self.reasons.get(&(k, j, i)) {
                Some(reason) => Err(anyhow::anyhow!("{reason}")),
                None => Ok(matrix.values[j][i]),
            };
        }
        pair.compare(m).map_err(|e| {
            if self.same && m.is_symmetric() {
                self.reasons.insert((k, i, j), e.to_string());
            }
            anyhow::Error::new(e)
        })
    }
}

/// One saved input of a comparison (`matrices.json`).
#[derive(Serialize)]
struct SavedMatrix {
    label: String,
    /// The NPY file under `matrices/`.
    file: String,
    source: PathBuf,
    /// The training step of the snapshot it was recorded from (`--over-training` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
    stimuli: usize,
    units: usize,
}

/// Representations as compared (after any reduction of feature maps), saved one by one as
/// `matrices/<k>_<label>.npy` (`[stimuli, units]`, f64, the bits compared) with an index,
/// `matrices.json`, written by [`MatrixArchive::finish`]: to check a value with another
/// tool, `np.load` the two files.
pub struct MatrixArchive {
    out: PathBuf,
    index: Vec<SavedMatrix>,
    /// Digits of the file counter, so that `ls` lists the files in the order saved.
    digits: usize,
}

impl MatrixArchive {
    pub fn new(out: &Path) -> Self {
        Self {
            out: out.to_path_buf(),
            index: Vec::new(),
            digits: 2,
        }
    }

    /// Announces how many matrices will be saved: past 100, the counter widens to keep
    /// the files' names in the order of saving.
    pub fn expect(&mut self, total: usize) {
        self.digits = total.saturating_sub(1).to_string().len().max(2);
    }

    /// Saves one matrix; `step` is the snapshot's training step where it is one.
    pub fn save(
        &mut self,
        label: &str,
        source: &Path,
        step: Option<usize>,
        matrix: &Matrix,
    ) -> Result<()> {
        let name = file_name(label);
        let file = format!("{:0w$}_{name}.npy", self.index.len(), w = self.digits);
        let (stimuli, units) = (matrix.stimuli(), matrix.units());
        write_npy(
            &self.out.join("matrices").join(&file),
            &[stimuli, units],
            &matrix.to_row_major(),
        )?;
        self.index.push(SavedMatrix {
            label: label.to_string(),
            file,
            source: source.to_path_buf(),
            step,
            stimuli,
            units,
        });
        Ok(())
    }

    /// Writes the index of every matrix saved.
    pub fn finish(self) -> Result<()> {
        write_json(&self.out.join("matrices.json"), &self.index)
    }
}

/// A label as part of a file name: labels hold `:` (run:site), and file names keep
/// letters, digits, `.`, `-` and `_`.
fn file_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One saved RDM (`rdms.json`).
#[derive(Serialize)]
struct SavedRdm {
    label: String,
    metric: RdmMetric,
    /// The NPY file under `rdms/`, `[n, n]` float64; none where the RDM is undefined.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    /// Its heatmap (PNG and SVG), where the conditions are few enough to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    figure: Option<String>,
    /// Why the RDM is undefined.
    #[serde(skip_serializing_if = "Option::is_none")]
    undefined: Option<String>,
}

/// Most conditions an RDM's heatmap shows: beyond, its cells and labels are too small to
/// read, and the NPY file is the RDM.
const RDM_FIGURE_CONDITIONS: usize = 60;

/// Each representation's RDM under each of `metrics`, as `out/rdms/<k>_<label>_<metric>.npy`
/// (`[n, n]`, float64, 0 on the diagonal; `scipy.spatial.distance.squareform` gives the
/// condensed vector rsatoolbox keeps), with a heatmap where there are at most
/// [`RDM_FIGURE_CONDITIONS`] conditions (rows labelled by `classes`, if any, else by
/// stimulus), and an index, `out/rdms.json`. An RDM undefined for a representation (a
/// stimulus with the same response in every unit has no correlation distance) is listed
/// with the reason instead; the other RDMs are saved.
pub fn write_rdms(
    out: &Path,
    reps: &[Representation],
    metrics: &[RdmMetric],
    classes: &[usize],
) -> Result<()> {
    let dir = out.join("rdms");
    let mut index = Vec::new();
    for (k, r) in reps.iter().enumerate() {
        for &metric in metrics {
            let scale = match metric {
                RdmMetric::Correlation => "1 - Pearson r",
                RdmMetric::Euclidean => "Euclidean distance",
            };
            let stem = format!("{k:02}_{}_{}", file_name(&r.label), metric.name());
            let mut saved = SavedRdm {
                label: r.label.clone(),
                metric,
                file: None,
                figure: None,
                undefined: None,
            };
            match insilico_population::rdm(&r.matrix, metric) {
                Ok(rdm) => {
                    let square = rdm.square();
                    let n = rdm.stimuli;
                    write_npy(&dir.join(format!("{stem}.npy")), &[n, n], &square)?;
                    saved.file = Some(format!("rdms/{stem}.npy"));
                    if n <= RDM_FIGURE_CONDITIONS {
                        let rows = square.chunks(n).map(<[f64]>::to_vec).collect();
                        rdm_heatmap(&r.label, scale, rows, classes).save(&dir.join(&stem))?;
                        saved.figure = Some(format!("rdms/{stem}.png"));
                    }
                }
                Err(e) => saved.undefined = Some(e.to_string()),
            }
            index.push(saved);
        }
    }
    write_json(&out.join("rdms.json"), &index)
}

/// The heatmap of one RDM (`square`, its rows and columns labelled by `classes`, or by
/// stimulus index where there are none).
fn rdm_heatmap(label: &str, scale: &str, square: Vec<Vec<f64>>, classes: &[usize]) -> Heatmap {
    let n = square.len();
    let (names, conditions): (Vec<String>, _) = match classes.len() == n {
        true => (
            classes.iter().map(|c| format!("class {c}")).collect(),
            "class means",
        ),
        false => ((0..n).map(|i| i.to_string()).collect(), "stimuli"),
    };
    let highest = square.iter().flatten().copied().fold(0.0, f64::max);
    Heatmap {
        title: format!("RDM of {label} ({scale})"),
        x_label: conditions.into(),
        y_label: conditions.into(),
        rows: names.clone(),
        columns: names,
        values: square,
        scale: (scale.into(), 0.0, if highest > 0.0 { highest } else { 1.0 }),
    }
}

/// Whether a file directly in a comparison's output folder is one a comparison writes.
fn is_comparison_output(name: &str) -> bool {
    name.starts_with("similarity_")
        || name.starts_with("over_training")
        || name == "compare.json"
        || name == "matrices.json"
        || name == "rdms.json"
}

/// What an earlier comparison wrote in `out` (comparison outputs by name, see
/// [`is_comparison_output`], and the NPY files of `matrices/`), noted before this one
/// writes there: those this one does not write again are removed once it is done
/// ([`EarlierOutputs::remove_unwritten`]), so that a rerun with other measures, inputs or
/// options does not leave the old heatmaps and matrices beside the new `compare.json`.
/// Other files are never touched.
pub fn earlier_outputs(out: &Path) -> Result<EarlierOutputs> {
    EarlierOutputs::default()
        .note(out, is_comparison_output)?
        .note(&out.join("matrices"), |name| name.ends_with(".npy"))?
        .note(&out.join("rdms"), |name| {
            [".npy", ".png", ".svg"]
                .iter()
                .any(|ext| name.ends_with(ext))
        })
}

/// Every representation of a comparison, in a [`MatrixArchive`].
pub fn write_matrices(out: &Path, reps: &[Representation]) -> Result<()> {
    let mut archive = MatrixArchive::new(out);
    archive.expect(reps.len());
    for r in reps {
        archive.save(&r.label, &r.source, None, &r.matrix)?;
    }
    archive.finish()
}

/// `similarity_<measure>.csv` (long format: row, column, value), `compare.json` and a
/// heatmap per measure in `out`.
pub fn write_similarity(out: &Path, matrices: &[SimilarityMatrix], title: &str) -> Result<()> {
    for m in matrices {
        let mut table = Vec::new();
        for (r, row) in m.rows.iter().zip(&m.values) {
            for (c, v) in m.columns.iter().zip(row) {
                table.push(vec![r.clone(), c.clone(), format!("{v:.6}")]);
            }
        }
        write_csv(
            &out.join(format!("similarity_{}.csv", m.measure)),
            &["row", "column", "value"],
            &table,
        )?;
        let (lo, hi) = m.range;
        // R^2 is unbounded below, and debiased CKA dips below its nominal 0 on unrelated
        // inputs: the colours reach down to the lowest value, so that none is clipped.
        let lowest = m
            .values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::min);
        let lo = if lo.is_finite() {
            lo.min(lowest)
        } else {
            lowest
        };
        let of = m.conditions.in_title();
        Heatmap {
            title: format!("{title}{of}: {}", Measure::title_of(&m.measure)),
            x_label: "representation B".into(),
            y_label: "representation A".into(),
            rows: m.rows.clone(),
            columns: m.columns.clone(),
            values: m.values.clone(),
            scale: (Measure::title_of(&m.measure), lo, hi),
        }
        .save(&out.join(format!("similarity_{}", m.measure)))?;
    }
    write_json(&out.join("compare.json"), &matrices)
}

/// A `stimuli x units` representation of values from a linear congruential sequence started
/// at `state` (no two units alike), for tests.
#[cfg(test)]
pub(crate) fn test_representation(
    label: &str,
    stimuli: usize,
    units: usize,
    mut state: u64,
) -> Representation {
    let values: Vec<f64> = (0..stimuli * units)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    Representation {
        label: label.into(),
        source: PathBuf::from(label),
        matrix: Matrix::from_row_major(stimuli, units, &values).unwrap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Class means replace every representation; classes that are not one per stimulus,
    /// or a single class, are refused naming where they came from.
    #[test]
    fn class_averaging_needs_a_class_per_stimulus_and_two_classes() {
        let mut reps = vec![
            test_representation("a", 6, 3, 1),
            test_representation("b", 6, 2, 2),
        ];
        let classes = [1, 0, 1, 0, 2, 2];
        let want: Vec<Matrix> = reps
            .iter()
            .map(|r| r.matrix.class_means(&classes).unwrap())
            .collect();
        let present = class_averaged(&mut reps, &classes, "labels.csv").unwrap();
        assert_eq!(present, vec![0, 1, 2]);
        for (r, want) in reps.iter().zip(&want) {
            assert_eq!(&r.matrix, want);
        }
        let mut reps = vec![test_representation("a", 6, 3, 1)];
        for (classes, says) in [
            (
                &[0; 5][..],
                "labels.csv: 5 classes, one per stimulus, but a has 6",
            ),
            (&[4; 6][..], "labels.csv: the stimuli's classes are [4]"),
        ] {
            let e = class_averaged(&mut reps, classes, "labels.csv").unwrap_err();
            assert!(format!("{e:#}").contains(says), "{e:#}");
        }
    }

    /// Runs showing different images are refused with the cause: another dataset, another
    /// training subset, or another number of images; the same images pass.
    #[test]
    fn stimuli_of_runs_must_be_the_same_images() {
        let images = |run: &str, dataset: &str, split, count, fingerprint| RunImages {
            run: run.into(),
            dataset: dataset.into(),
            split,
            count,
            fingerprint,
            classes: Vec::new(),
        };
        let a = images("a", "mnist", Subset::Train, 60, 1);
        a.check_same(&images("b", "mnist", Subset::Train, 60, 1))
            .unwrap();
        let refused = |b: RunImages| format!("{:#}", a.check_same(&b).unwrap_err());
        let e = refused(images("b", "fashion-mnist", Subset::Train, 60, 2));
        assert!(
            e.contains("a and b show different images on the train split"),
            "{e}"
        );
        assert!(
            e.contains("a is trained on mnist, b on fashion-mnist"),
            "{e}"
        );
        let e = refused(images("b", "mnist", Subset::Train, 60, 2));
        assert!(
            e.contains("training subsets differ") && e.contains("--split test"),
            "{e}"
        );
        let test = images("a", "mnist", Subset::Test, 60, 1);
        let e = format!(
            "{:#}",
            test.check_same(&images("b", "mnist", Subset::Test, 50, 2))
                .unwrap_err()
        );
        assert!(e.contains("a shows 60 test images and b 50"), "{e}");
    }

    /// Files list in the order saved: two digits up to 100 matrices, more beyond.
    #[test]
    fn saved_matrices_are_named_in_the_order_saved() {
        let dir = tempfile::tempdir().unwrap();
        let r = test_representation("run:conv1.relu", 4, 2, 5);
        let names = |expected: usize, saved: usize| {
            let mut archive = MatrixArchive::new(dir.path());
            archive.expect(expected);
            for _ in 0..saved {
                archive.save(&r.label, &r.source, None, &r.matrix).unwrap();
            }
            archive
                .index
                .iter()
                .map(|m| m.file.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(100, 1), ["00_run_conv1.relu.npy"]);
        let wide = names(101, 11);
        assert_eq!(wide[10], "010_run_conv1.relu.npy");
        let mut sorted = wide.clone();
        sorted.sort();
        assert_eq!(sorted, wide);
    }

    #[test]
    fn with_ext_keeps_the_dots_of_measure_names() {
        let p = with_ext(Path::new("out/over_training_svcca-0.99"), "png");
        assert_eq!(p, PathBuf::from("out/over_training_svcca-0.99.png"));
    }

    #[test]
    fn a_measure_undefined_for_one_pair_leaves_that_cell_nan_and_says_why() {
        // CCA needs more stimuli than the two inputs' units together: a (20 units) with b
        // (29) fits in 50 stimuli, b with itself (58) does not.
        let reps = [
            test_representation("a", 50, 20, 1),
            test_representation("b", 50, 29, 2),
        ];
        let measures = [Measure::CcaMean, Measure::CkaLinear];
        let (matrices, left_out) = similarity_where_defined(&reps, &measures).unwrap();
        assert!(left_out.is_empty());
        let cca = &matrices[0];
        assert!(cca.values[1][1].is_nan());
        assert!(cca.values[0][1].is_finite() && cca.values[1][0].is_finite());
        assert_eq!(cca.undefined.len(), 1);
        assert!(cca.undefined[0].starts_with("cca-mean between b and b: "));
        assert!(cca.undefined[0].contains("50 stimuli"));
        assert!(matrices[1].values.iter().flatten().all(|v| v.is_finite()));
        assert!(matrices[1].undefined.is_empty());
        // In JSON the undefined cell is null and the reason is kept.
        let json = serde_json::to_value(cca).unwrap();
        assert!(json["values"][1][1].is_null());
        assert_eq!(json["undefined"][0], cca.undefined[0].as_str());
        // Named measures (and sweeps) refuse it instead, naming the pair.
        let strict = similarity(&reps, &reps, &measures).unwrap_err();
        assert!(format!("{strict:#}").contains("cca-mean between b and b"));
    }

    /// A set against itself computes each symmetric measure once per unordered pair; the
    /// mirrored cells equal a direct computation, and an undefined pair is reported both
    /// ways with the labels in order.
    #[test]
    fn symmetric_measures_are_mirrored_and_asymmetric_ones_computed_both_ways() {
        // CCA: a with b fits in 50 stimuli (20 + 29 units), b with c (29 + 25) does not.
        let reps = [
            test_representation("a", 50, 20, 1),
            test_representation("b", 50, 29, 2),
            test_representation("c", 50, 25, 3),
        ];
        let measures = [Measure::CcaMean, Measure::CkaLinear, Measure::Pwcca];
        let (matrices, _) = similarity_where_defined(&reps, &measures).unwrap();
        for (m, matrix) in measures.iter().zip(&matrices) {
            for (i, x) in reps.iter().enumerate() {
                for (j, y) in reps.iter().enumerate() {
                    let direct = insilico_population::compare(*m, &x.matrix, &y.matrix);
                    let value = matrix.values[i][j];
                    match direct {
                        Ok(d) => assert!((d - value).abs() < 1e-12, "{m:?} {i} {j}"),
                        Err(_) => assert!(value.is_nan(), "{m:?} {i} {j}"),
                    }
                }
            }
        }
        let cca = &matrices[0].undefined;
        assert!(cca
            .iter()
            .any(|r| r.starts_with("cca-mean between b and c: ")));
        assert!(cca
            .iter()
            .any(|r| r.starts_with("cca-mean between c and b: ")));
        assert_eq!(cca.len(), 4, "b-b, b-c, c-b, c-c: {cca:?}");
    }

    #[test]
    fn a_rerun_removes_the_outputs_it_did_not_write_again_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::create_dir(out.join("matrices")).unwrap();
        std::fs::create_dir(out.join("rdms")).unwrap();
        let old = [
            "similarity_pwcca.csv",
            "similarity_pwcca.png",
            "compare.json",
            "matrices.json",
            "matrices/01_a.npy",
            "over_training_cka-linear.svg",
            "rdms.json",
            "rdms/00_a_euclidean.npy",
            "rdms/00_a_euclidean.svg",
        ];
        let kept = ["notes.txt", "matrices/readme.md", "rdms/readme.md", ".lock"];
        for f in old.iter().chain(&kept) {
            std::fs::write(out.join(f), "old").unwrap();
        }
        let earlier = earlier_outputs(out).unwrap();
        // At once, with no pause: the files' clock is coarser than the run's, so a test of
        // times would take these for older than the run (the bug this replaced).
        let rewritten = ["compare.json", "similarity_cka-linear.csv"];
        for f in rewritten {
            insilico_data::fsx::write_atomic(&out.join(f), b"old").unwrap();
        }
        earlier.remove_unwritten().unwrap();
        for f in old.iter().filter(|f| !rewritten.contains(f)) {
            assert!(!out.join(f).exists(), "{f} should be gone");
        }
        for f in kept.iter().chain(&rewritten) {
            assert!(out.join(f).exists(), "{f} should stay");
        }
    }

    #[test]
    fn inputs_sharing_a_name_are_labelled_by_path_and_one_given_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = |sub: &str| {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            let path = dir.path().join(sub).join("good.npy");
            std::fs::write(&path, "").unwrap();
            Representation {
                source: path,
                ..test_representation("good", 5, 2, 1)
            }
        };
        let run_site = test_representation("run:fc1.relu", 5, 2, 2);
        let mut reps = vec![file("a"), file("b"), run_site.clone()];
        distinct_labels(&mut reps).unwrap();
        assert!(reps[0].label.ends_with("a/good.npy"), "{}", reps[0].label);
        assert!(reps[1].label.ends_with("b/good.npy"), "{}", reps[1].label);
        assert_eq!(
            reps[2].label, "run:fc1.relu",
            "a label no other shares stays"
        );
        let mut twice = vec![file("a"), file("a")];
        let err = distinct_labels(&mut twice).unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
        let mut run_twice = vec![run_site.clone(), run_site];
        assert!(distinct_labels(&mut run_twice).is_err());
    }

    #[test]
    fn measures_are_grouped_by_the_kernel_they_read_in_order_of_appearance() {
        let names = "cka-linear,rsa-correlation-spearman,cka-rbf-1,rsa-correlation-tau-a,svcca-0.99,rsa-euclidean-spearman,cka-rbf-0.5";
        let measures: Vec<Measure> = names.split(',').map(|m| m.parse().unwrap()).collect();
        assert_eq!(
            kernel_phases(&measures),
            vec![vec![0, 4], vec![1, 3], vec![2], vec![5], vec![6]]
        );
    }

    /// A comparison that prepared its inputs drops each phase's RDMs and kernels; one
    /// given prepared inputs (a sweep's runs, compared pair after pair) keeps them.
    #[test]
    fn kernels_are_released_only_by_the_comparison_that_prepared_them() {
        let reps: Vec<Representation> = (0..3)
            .map(|k| test_representation(&format!("r{k}"), 12, 4, k))
            .collect();
        let measures: Vec<Measure> = ["rsa-euclidean-spearman", "cka-rbf-1", "cka-linear"]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect();
        let prepared = prepare(&reps);
        let all = (&reps[..], &prepared[..]);
        similarity_of(all, all, &measures).unwrap();
        assert!(prepared.iter().all(|p| p.kept_kernels() == 2));
        measure_by_measure(all, all, &measures, Undefined::Fail, Kernels::Release).unwrap();
        assert!(prepared.iter().all(|p| p.kept_kernels() == 0));
    }

    /// Five inputs of 10,000 stimuli x 32 units: 5 x 2 x 8 x 320,000 = 25.6 MB held. An RDM
    /// keeps 20 bytes per pair (49,995,000 pairs): 5 x 999.9 MB, plus 800 MB of inner products
    /// while one is made, 5.7995 GB; RBF kernels 5 x 800 MB plus 2.4 GB while one is made,
    /// 6.4 GB. The phases run one after the other, so the larger counts: 6.4256 GB.
    #[test]
    fn comparisons_that_cannot_fit_are_refused_before_any_work() {
        let x = Matrix::from_row_major(10_000, 32, &vec![0.0; 320_000]).unwrap();
        let inputs = vec![&x; 5];
        let rsa = "rsa-correlation-spearman".parse::<Measure>().unwrap();
        let rbf = "cka-rbf-1".parse::<Measure>().unwrap();
        let both = [Measure::CkaLinear, rsa, rbf];
        assert!(check_memory(&inputs, &both, Some(6_426_000_000)).is_ok());
        let err = check_memory(&inputs, &both, Some(6_425_000_000)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("6.4 GB") && text.contains("--images"),
            "{text}"
        );
        assert!(check_memory(&inputs, &[rsa], Some(5_826_000_000)).is_ok());
        assert!(check_memory(&inputs, &[rsa], Some(5_825_000_000)).is_err());
        assert!(check_memory(&inputs, &[Measure::CkaLinear], Some(25_600_000)).is_ok());
        assert!(check_memory(&inputs, &[Measure::CkaLinear], Some(25_599_999)).is_err());
        assert!(
            check_memory(&inputs, &both, None).is_ok(),
            "unknown: accepted"
        );
    }

    #[test]
    fn a_measure_undefined_for_every_pair_is_left_out_and_none_defined_is_an_error() {
        let reps = [
            test_representation("a", 40, 100, 3),
            test_representation("b", 40, 60, 4),
        ];
        let (matrices, left_out) =
            similarity_where_defined(&reps, &[Measure::Pwcca, Measure::CkaLinear]).unwrap();
        assert_eq!(matrices.len(), 1);
        assert_eq!(matrices[0].measure, "cka-linear");
        assert_eq!(left_out.len(), 1);
        assert!(left_out[0].starts_with("pwcca between a and a: "));
        let none = similarity_where_defined(&reps, &[Measure::CcaMean]).unwrap_err();
        assert!(format!("{none:#}").contains("no measure is defined"));
    }

    #[test]
    fn run_names_are_the_shortest_tails_that_differ() {
        let dirs: Vec<PathBuf> = ["runs/a/seed1", "runs/b/seed1"].map(PathBuf::from).to_vec();
        assert_eq!(run_names(&dirs), ["a/seed1", "b/seed1"]);
        let dirs: Vec<PathBuf> = ["runs/seed0", "runs/seed1"].map(PathBuf::from).to_vec();
        assert_eq!(run_names(&dirs), ["seed0", "seed1"]);
    }
}
