//! `insilico compare`: similarity matrices between the sites of runs and recorded
//! matrices, for every measure of the population library.

use crate::common::Env;
use anyhow::{bail, Result};
use clap::Args;
use insilico_engine::rundir::DirLock;
use insilico_population::{Matrix, Measure, RdmMetric, SVCCA_KEPT};
use insilico_study::compare::{
    class_averaged, distinct_labels, earlier_outputs, file_representation, run_names,
    runs_representations, similarity, similarity_where_defined, write_matrices, write_rdms,
    write_similarity, Conditions, MatrixArchive, Representation, RunImages,
};
use insilico_study::options::distinct;
use insilico_study::over_training::{checks, over_training, write_over_training};
use insilico_study::population::MapReduction;
use insilico_study::{Study, StudyOptions};
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(
    about = "Compare representations: layer x layer similarity between runs, or with recorded matrices",
    long_about = "Records every site of each run on the same stimuli (--split, --images) and \
        computes, for every pair of representations, linear, RBF and debiased CKA, mean \
        canonical correlation and mean squared correlation, SVCCA (99 % of variance, \
        variance counted as singular values s, as google/svcca does), PWCCA (weights from \
        the representation with fewer units: asymmetric), RSA (1 - Pearson and Euclidean \
        dissimilarities compared by Spearman and Kendall's tau-a) and cross-validated ridge \
        predictivity (row predicts column; median R^2 and Pearson r over target units). \
        Any [stimuli, units] matrix from an NPY (2-D, or a 4-D map) or CSV file joins them: \
        a recording from a brain area, or activations exported by another framework, with \
        one row per stimulus in the order of the study's images (files are read whole: \
        --split and --images choose the runs' stimuli). Feature maps are reduced \
        by their spatial mean (--reduction flatten keeps every position). Writes OUT/: \
        similarity_<measure>.csv (long format), similarity_<measure>.png/.svg (heatmaps \
        with the measure's range) and compare.json (a pair a measure is undefined for: null, \
        with the reason); with --save-matrices, the matrices compared in OUT/matrices/; with \
        --save-rdms, each one's dissimilarity matrices in OUT/rdms/.",
    after_help = "Examples:\n  insilico compare runs/a runs/b --split test --images 2000\n  insilico compare --over-training runs/a --split test --images 2000\n  insilico compare --npy recording.npy --run runs/a --measures cka-linear,rsa-correlation-spearman\n  insilico compare --npy A.npy --npy B.npy --out runs/compare-ab"
)]
pub struct CompareArgs {
    /// Run directories whose sites are compared (each with every other, and with itself).
    pub runs: Vec<PathBuf>,
    /// A run directory, as the other assays take it (`--run A --run B` is `A B`; runs
    /// given this way follow those given without the flag).
    #[arg(long = "run", value_name = "RUN")]
    pub run_flags: Vec<PathBuf>,
    /// `[stimuli, units]` matrices from NPY files (floats of 2, 4 or 8 bytes, integers such as
    /// spike counts, or booleans; either byte order, C or Fortran order; a 1-D array is one
    /// unit, a 4-D `[n, c, h, w]` one a feature map).
    #[arg(long)]
    pub npy: Vec<PathBuf>,
    /// `[stimuli, units]` matrices from CSV files: a row per stimulus, an optional header;
    /// pandas' default `to_csv` index column (unnamed, counting the rows) is dropped.
    #[arg(long)]
    pub csv: Vec<PathBuf>,
    /// Measures, comma-separated: cka-linear, cka-rbf-1, cka-debiased,
    /// cca-mean, cca-mean-squared, svcca-0.99, pwcca, rsa-correlation-spearman,
    /// rsa-correlation-tau-a, rsa-euclidean-spearman, rsa-euclidean-tau-a, ridge-r2,
    /// ridge-pearson (`cka-rbf-<bandwidth>` and `svcca-<kept>` take any value). Without
    /// this option, every one of them, and where one is undefined for a pair (CCA with no
    /// more stimuli than the two inputs' units together, correlation distance with a
    /// stimulus that evokes the same response in every unit) the cell is NaN (null in
    /// compare.json, grey in the heatmap) and the reason is printed and kept in compare.json;
    /// a measure undefined for every pair is left out. A measure named here and undefined
    /// for any pair is an error.
    #[arg(long, value_delimiter = ',')]
    pub measures: Vec<String>,
    /// Instead: every site of the one run given, at every snapshot saved during training
    /// (training.snapshots), against its final state (Raghu et al. 2017); a layer x
    /// snapshot heatmap per measure (default svcca-0.99 and cka-linear) and the check that
    /// the step at which each layer first reaches 0.95 does not decrease with depth.
    #[arg(long)]
    pub over_training: bool,
    /// Also save every representation as compared (feature maps after --reduction) in
    /// OUT/matrices/ as `[stimuli, units]` float64 NPY files (class means with
    /// --conditions class-means), indexed by OUT/matrices.json,
    /// to check any value with another tool (numpy, rsatoolbox, scikit-learn). With
    /// --over-training, every site at every snapshot (`step` in the index; the last is the
    /// final state).
    #[arg(long)]
    pub save_matrices: bool,
    /// Also save each representation's representational dissimilarity matrix under each
    /// RSA metric compared (both where none is) in OUT/rdms/ as `[n, n]` float64 NPY files
    /// (1 - Pearson r, or the Euclidean distance itself: rsatoolbox's "euclidean" is its
    /// square over the units), indexed by OUT/rdms.json, with a heatmap of each that has
    /// at most 60 conditions (class means, say).
    #[arg(long)]
    pub save_rdms: bool,
    /// What each row of a representation is: the response to one stimulus, or the mean
    /// response to the stimuli of one class (an RSA of class-averaged responses). Classes
    /// are the true classes of the runs' images (before any corruption of training labels),
    /// or those --labels gives.
    #[arg(long, value_enum, default_value_t = Conditions::Stimuli)]
    pub conditions: Conditions,
    /// With --conditions class-means: the class of each stimulus, in the order of the
    /// rows (needed where only files are compared; with runs, replaces their images' own
    /// classes, to average by any grouping): non-negative integers, an NPY file (1-D) or a
    /// CSV or text file of one column.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// How feature maps become vectors: spatial-mean or flatten.
    #[arg(long, value_enum, default_value_t = MapReduction::SpatialMean)]
    pub reduction: MapReduction,
    #[command(flatten)]
    pub study: StudyOptions,
    /// Output directory.
    #[arg(long, short, default_value = "runs/compare")]
    pub out: PathBuf,
    #[command(flatten)]
    pub env: Env,
}

pub fn run(mut args: CompareArgs) -> Result<()> {
    let flagged = std::mem::take(&mut args.run_flags);
    args.runs.extend(flagged);
    let measures: Vec<Measure> = if args.measures.is_empty() && args.over_training {
        vec![Measure::Svcca { kept: SVCCA_KEPT }, Measure::CkaLinear]
    } else if args.measures.is_empty() {
        Measure::all()
    } else {
        measures_named(&args.measures)?
    };
    if args.labels.is_some() && args.conditions != Conditions::ClassMeans {
        bail!("--labels gives the classes of --conditions class-means; add that option, or leave out --labels");
    }
    if args.over_training && args.save_rdms {
        bail!("--save-rdms saves the RDMs of representations compared with each other; --over-training compares snapshots by --measures (--save-matrices saves every snapshot's responses)");
    }
    if args.over_training && args.conditions != Conditions::Stimuli {
        bail!("--over-training compares each site's responses to every stimulus with its final state; --conditions {} is for comparisons between representations", args.conditions);
    }
    if args.study.checkpoints.is_some() {
        bail!("--checkpoints runs a one-run assay at every snapshot; compare takes a run's snapshots with --over-training");
    }
    // One writer at a time: two comparisons into one folder would mix their files.
    let _lock = DirLock::acquire(&args.out, "compare output directory")?;
    let earlier = earlier_outputs(&args.out)?;
    if args.over_training {
        over(&args, &measures)?;
    } else {
        between(&args, &measures)?;
    }
    earlier.remove_unwritten()
}

/// Every representation against every other: runs' sites and files.
fn between(args: &CompareArgs, measures: &[Measure]) -> Result<()> {
    let Inputs {
        mut reps,
        images,
        labels,
    } = inputs(args)?;
    let classes = match args.conditions {
        Conditions::Stimuli => Vec::new(),
        Conditions::ClassMeans => {
            let (classes, from) = match (labels, &images) {
                (Some(labels), _) => labels,
                (None, Some(s)) => (s.classes.clone(), format!("the classes of {}'s images", s.run)),
                (None, None) => bail!("--conditions class-means needs the class of each stimulus: give --labels FILE (one class per row of the files), or a run whose images the rows are"),
            };
            class_averaged(&mut reps, &classes, &from)?
        }
    };
    if args.save_matrices {
        write_matrices(&args.out, &reps)?;
    }
    let mut matrices = if args.measures.is_empty() {
        // Every measure that the inputs allow; the others are named with the reason.
        let (matrices, left_out) = similarity_where_defined(&reps, measures)?;
        for reason in &left_out {
            eprintln!("left out, undefined for every pair: {reason}");
        }
        for m in matrices.iter().filter(|m| !m.undefined.is_empty()) {
            let cells = m.rows.len() * m.columns.len();
            eprintln!(
                "undefined (NaN) for {} of {cells} pairs, listed in compare.json; the first: {}",
                m.undefined.len(),
                m.undefined[0]
            );
        }
        matrices
    } else {
        similarity(&reps, &reps, measures)?
    };
    for m in &mut matrices {
        m.conditions = args.conditions;
        m.classes.clone_from(&classes);
    }
    write_similarity(&args.out, &matrices, "representational similarity")?;
    // After the comparison, which refuses sizes that cannot fit before any work.
    if args.save_rdms {
        write_rdms(&args.out, &reps, &rdm_metrics(measures), &classes)?;
    }
    for m in &matrices {
        println!("{}", m.measure);
        for (r, row) in m.rows.iter().zip(&m.values) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>6.3}")).collect();
            println!("  {r:<28} {}", cells.join(" "));
        }
    }
    if !classes.is_empty() {
        println!("compared as class means: one row per class of {classes:?}");
    }
    println!("outputs in {}/", args.out.display());
    Ok(())
}

/// What a comparison between representations reads.
struct Inputs {
    /// Distinctly labelled: every site of each run, then the files.
    reps: Vec<Representation>,
    /// The runs' images, if any run is compared.
    images: Option<RunImages>,
    /// The classes of `--labels`, with the file's name.
    labels: Option<(Vec<usize>, String)>,
}

fn inputs(args: &CompareArgs) -> Result<Inputs> {
    // Files first: they are quick to read, and a bad one is named before the runs are
    // recorded (minutes at 10,000 images); so are --labels.
    let files = args
        .npy
        .iter()
        .chain(&args.csv)
        .map(|path| file_representation(path, args.reduction))
        .collect::<Result<Vec<_>>>()?;
    let labels = match &args.labels {
        Some(path) => Some((Matrix::load_classes(path)?, path.display().to_string())),
        None => None,
    };
    let mut reps = Vec::new();
    let mut images = None;
    if !args.runs.is_empty() {
        files_fit_the_study(&files, None, &args.study)?;
        let runs: Vec<(&Path, String)> = args
            .runs
            .iter()
            .map(PathBuf::as_path)
            .zip(run_names(&args.runs))
            .collect();
        let compute = args.env.compute()?;
        let (recorded, first) = runs_representations(
            &runs,
            &compute,
            &args.env.locator(),
            &args.study,
            args.reduction,
        )?;
        reps.extend(recorded.into_iter().flatten());
        if let Some(first) = reps.first() {
            files_fit_the_study(&files, Some(first.matrix.stimuli()), &args.study)?;
        }
        images = first;
    }
    reps.extend(files);
    if reps.len() < 2 {
        bail!(
            "nothing to compare: {} representation(s) ({}); give runs (each contributes its sites), --npy or --csv files, two representations at least",
            reps.len(),
            reps.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    distinct_labels(&mut reps)?;
    Ok(Inputs {
        reps,
        images,
        labels,
    })
}

/// Refuses a file whose rows cannot be the runs' stimuli, saying how to make them so: before
/// the runs are recorded (`recorded` None), a file longer than `--images`; after, a file
/// whose rows are not the `recorded` count. Without this, the comparison would stop at
/// the first pair with "different stimulus counts" and no remedy.
fn files_fit_the_study(
    files: &[Representation],
    recorded: Option<usize>,
    study: &StudyOptions,
) -> Result<()> {
    let bad = |f: &&Representation| match recorded {
        Some(n) => f.matrix.stimuli() != n,
        None => f.matrix.stimuli() > study.images,
    };
    let Some(file) = files.iter().find(bad) else {
        return Ok(());
    };
    let rows = file.matrix.stimuli();
    let (split, images) = (study.split, study.images);
    let fewer = format!("--images {rows} (and the --split the file was recorded on)");
    let (runs, remedy) = match recorded {
        // The split ran out before --images: more images cannot be had from it.
        Some(n) if n < images && rows > n => (
            format!("the {split} split has only {n} images"),
            format!("the --split the file was recorded on, or a file of {n} rows"),
        ),
        Some(n) => (
            format!("the runs were recorded on the first {n} {split} images"),
            fewer,
        ),
        None => (format!("the runs see at most --images {images}"), fewer),
    };
    bail!(
        "{}: {rows} rows (stimuli), but {runs}; a file's rows must be the responses to the \
         study's images, in order: give {remedy}",
        file.source.display()
    )
}

/// The RDM metrics of the RSA measures among `measures`, in order; both where there is none.
fn rdm_metrics(measures: &[Measure]) -> Vec<RdmMetric> {
    let mut metrics = Vec::new();
    for m in measures {
        if let Measure::Rsa { metric, .. } = m {
            if !metrics.contains(metric) {
                metrics.push(*metric);
            }
        }
    }
    if metrics.is_empty() {
        metrics = vec![RdmMetric::Correlation, RdmMetric::Euclidean];
    }
    metrics
}

/// The measures `--measures` names, each once: one given twice (or spelled twice, as
/// `cka-rbf-1` and `cka-rbf-1.0`) would be computed twice and its files overwritten.
fn measures_named(names: &[String]) -> Result<Vec<Measure>> {
    let measures = names
        .iter()
        .map(|m| Ok(m.parse::<Measure>()?))
        .collect::<Result<Vec<_>>>()?;
    distinct("--measures", names, |name| name.parse::<Measure>().ok())?;
    Ok(measures)
}

/// `--over-training`: one run's sites at every snapshot against their final state.
fn over(args: &CompareArgs, measures: &[Measure]) -> Result<()> {
    let [run] = &args.runs[..] else {
        bail!(
            "--over-training compares one run with itself through training: give exactly one run (got {})",
            args.runs.len()
        );
    };
    if !args.npy.is_empty() || !args.csv.is_empty() {
        bail!("--over-training takes no --npy or --csv matrices");
    }
    let study = Study::open(run, args.env.compute()?, &args.env.locator(), &args.study)?;
    let mut archive = args.save_matrices.then(|| MatrixArchive::new(&args.out));
    let o = over_training(&study, measures, args.reduction, archive.as_mut())?;
    if let Some(archive) = archive {
        archive.finish()?;
    }
    write_over_training(&args.out, &o)?;
    for m in &o.measures {
        println!("{} against the final state", m.measure);
        for (site, row) in o.sites.iter().zip(&m.values) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>5.2}")).collect();
            println!("  {site:<14} {}", cells.join(" "));
        }
    }
    println!("steps: {:?}", o.steps);
    for check in checks(&o) {
        println!("{check}");
    }
    println!("outputs in {}/", args.out.display());
    Ok(())
}
