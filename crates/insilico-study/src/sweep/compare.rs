//! The sweep-level comparison (`[compare]`): after every grid point is trained, the runs
//! of each group (points equal in every grid axis but `across`, usually the seed) are
//! compared layer by layer, every ordered pair of runs, for each measure; then the checks
//! of two reproductions are computed from the matrices:
//! - corresponding layers (Kornblith et al. 2019): how often the most similar layer of
//!   another seed is the same layer;
//! - memorization (Morcos, Raghu & Bengio 2018): per layer, the similarity of networks
//!   trained on true labels against that of networks trained on one fixed relabelling.

use super::spec::{model_label, Point};
use crate::compare::{
    class_averaged, prepare, runs_representations, similarity_of, Conditions, Representation,
};
use crate::options::{at_least, distinct, Options};
use crate::population::MapReduction;
use crate::study::{Study, StudyOptions, Subset};
use anyhow::{bail, Context, Result};
use insilico_assays::stats::{mean, std};
use insilico_data::fsx::write_atomic;
use insilico_data::Locator;
use insilico_engine::config::SnapshotSchedule;
use insilico_engine::{Compute, RunDir};
use insilico_population::{Measure, Prepared};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A reproduction's check, computed from the comparison matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompareCheck {
    /// Kornblith et al. 2019: accuracy of identifying the corresponding layer of another
    /// seed by maximum similarity; expected near 100 % for linear CKA, lower for CCA.
    CorrespondingLayers,
    /// Morcos, Raghu & Bengio 2018: early layers as similar among memorizing networks as
    /// among generalizing ones; later layers more similar among generalizing ones.
    Memorization,
    /// Raghu et al. 2017 (with `over_training`): the step at which each layer first
    /// reaches 0.95 similarity to its final state is non-decreasing with depth.
    BottomUp,
}

/// The `[compare]` table of a sweep file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompareSpec {
    /// Measures by name (`insilico compare --help` lists them).
    #[serde(with = "measure_names")]
    pub measures: Vec<Measure>,
    /// Sites compared (default: every hidden site).
    pub sites: Vec<String>,
    /// The stimuli, the same for every run: the first `images` of the split. The test
    /// split is the default because training subsets differ between data seeds.
    pub split: Subset,
    pub images: usize,
    /// How feature maps become vectors.
    pub reduction: MapReduction,
    /// What each row of a site's representation is: the response to one stimulus, or the
    /// mean response to the stimuli of one (true) class.
    pub conditions: Conditions,
    /// The grid axis whose runs are compared with each other; the other axes form groups.
    pub across: String,
    /// Instead of comparing runs with each other, compare every site of each run at
    /// every snapshot with its final state (runs trained with `training.snapshots`).
    pub over_training: bool,
    pub checks: Vec<CompareCheck>,
}

impl Default for CompareSpec {
    fn default() -> Self {
        Self {
            measures: vec![
                Measure::CkaLinear,
                Measure::CcaMean,
                Measure::Svcca {
                    kept: insilico_population::SVCCA_KEPT,
                },
                Measure::Pwcca,
            ],
            sites: Vec::new(),
            split: Subset::Test,
            images: 2000,
            reduction: MapReduction::SpatialMean,
            conditions: Conditions::Stimuli,
            across: "seed".into(),
            over_training: false,
            checks: Vec::new(),
        }
    }
}

impl Options for CompareSpec {
    const SECTION: &'static str = "compare";
    fn validate(&self) -> Result<()> {
        at_least(Self::SECTION, "images", self.images, 2)?;
        if self.measures.is_empty() {
            bail!("compare.measures: is empty; name at least one, e.g. [\"cka-linear\"]");
        }
        // Measures by their names: the one of each (`cka-rbf-1.0` reads as `cka-rbf-1`).
        let names: Vec<String> = self.measures.iter().map(Measure::name).collect();
        distinct("compare.measures", &names, String::clone)?;
        if self.over_training && self.conditions != Conditions::Stimuli {
            bail!("compare.conditions: `{}` is for comparisons between runs; over_training compares each site's responses to every stimulus with its final state", self.conditions);
        }
        distinct("compare.sites", &self.sites, String::clone)
    }
}

impl CompareSpec {
    /// Checks the spec against the expanded grid: `across` is an axis, and the
    /// memorization check has groups on true labels and on random ones.
    pub fn check_grid(&self, points: &[Point]) -> Result<()> {
        self.validate()?;
        let axes: Vec<&str> = points
            .first()
            .map(|p| p.coords.iter().map(|(a, _)| a.as_str()).collect())
            .unwrap_or_default();
        if self.over_training {
            if points
                .iter()
                .any(|p| p.config.training.snapshots == SnapshotSchedule::None)
            {
                bail!("compare.over_training: needs snapshots through training; set training.snapshots (e.g. [base.training] snapshots = \"log:20\")");
            }
        } else if self.checks.contains(&CompareCheck::BottomUp) {
            bail!("compare.checks: `bottom-up` needs over_training = true");
        } else if !axes.contains(&self.across.as_str()) {
            bail!(
                "compare.across: `{}` is not a grid axis (axes: {})",
                self.across,
                axes.join(", ")
            );
        }
        if self.checks.contains(&CompareCheck::Memorization) {
            let kinds: Vec<bool> = points.iter().map(true_labels).collect();
            if !(kinds.contains(&true) && kinds.contains(&false)) {
                bail!("compare.checks: `memorization` needs runs on true labels and runs on random ones (a grid axis shuffle_labels = [false, true] or label_noise = [0.0, 1.0])");
            }
        }
        Ok(())
    }
}

/// Whether a point trains on the dataset's own labels.
pub fn true_labels(p: &Point) -> bool {
    p.config.data.label_noise == 0.0 && !p.config.data.shuffle_labels
}

/// Measures as their names in TOML (`"cka-linear"`, `"svcca-0.99"`).
mod measure_names {
    use insilico_population::Measure;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &[Measure], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(Measure::name))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Measure>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|n| n.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Grid points equal in every axis but `across`: (label, points), in grid order.
pub fn groups<'a>(points: &'a [Point], across: &str) -> Vec<(String, Vec<&'a Point>)> {
    let key = |p: &Point| {
        std::iter::once(model_label(&p.model))
            .chain(
                p.coords
                    .iter()
                    .filter(|(a, _)| a != across)
                    .map(|(a, v)| format!("{a}={v}")),
            )
            .collect::<Vec<_>>()
            .join("_")
    };
    let mut out: Vec<(String, Vec<&Point>)> = Vec::new();
    for p in points {
        let k = key(p);
        match out.iter_mut().find(|(g, _)| *g == k) {
            Some((_, members)) => members.push(p),
            None => out.push((k, vec![p])),
        }
    }
    out
}

/// One measure over every ordered pair of runs of a group: `values[p][i][j]` compares
/// site `i` of run `pairs[p].0` (first argument) with site `j` of run `pairs[p].1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairMatrices {
    pub measure: String,
    pub pairs: Vec<(usize, usize)>,
    pub values: Vec<Vec<Vec<f64>>>,
}

/// The comparison of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupComparison {
    pub group: String,
    /// Grid point ids of the runs, in the order `pairs` index.
    pub runs: Vec<String>,
    pub true_labels: bool,
    pub sites: Vec<String>,
    pub measures: Vec<PairMatrices>,
}

/// What `summary/compare/comparison.json` holds: the spec it was computed with, so a
/// changed `[compare]` table recomputes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub spec: CompareSpec,
    pub groups: Vec<GroupComparison>,
    /// With `over_training`: each run's sites at every snapshot against the final state.
    #[serde(default)]
    pub over_training: Vec<crate::over_training::OverTraining>,
    pub seconds: f64,
}

pub fn comparison_path(out: &Path) -> std::path::PathBuf {
    out.join("summary").join("compare").join("comparison.json")
}

/// Reads `comparison.json` if it was computed with `spec`.
pub fn read_comparison(out: &Path, spec: &CompareSpec) -> Result<Option<Comparison>> {
    let path = comparison_path(out);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    let c: Comparison = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a comparison", path.display()))?;
    Ok((c.spec == *spec).then_some(c))
}

/// The stimuli and sites of the comparison.
fn study_options(spec: &CompareSpec) -> StudyOptions {
    StudyOptions {
        sites: spec.sites.clone(),
        split: spec.split,
        images: spec.images,
        seed: 0,
        ..StudyOptions::default()
    }
}

/// Every measure between every site of run `a` and every site of run `b`, for every
/// ordered pair of runs (`reps[run][site]`).
pub fn pair_matrices(
    reps: &[Vec<Representation>],
    all: &[Measure],
    label: &str,
) -> Result<Vec<PairMatrices>> {
    let n = reps.len();
    let mut measures: Vec<PairMatrices> = all
        .iter()
        .map(|m| PairMatrices {
            measure: m.name(),
            pairs: Vec::new(),
            values: Vec::new(),
        })
        .collect();
    let bar = crate::progress::bar((n * n.saturating_sub(1)) as u64, "pairs of runs")
        .with_message(format!("comparing {label}"));
    // A symmetric measure of (b, a) is the transpose of (a, b): computed once per
    // unordered pair; the asymmetric ones (PWCCA, ridge) for every ordered pair.
    let (symmetric, asymmetric): (Vec<Measure>, Vec<Measure>) =
        all.iter().partition(|m| m.is_symmetric());
    let mut values = vec![vec![None; all.len()]; n * n];
    // Every run's sites prepared once for all its pairs (their Gram matrices above all).
    let prepared: Vec<Vec<Prepared>> = reps.iter().map(|r| prepare(r)).collect();
    for a in 0..n {
        for b in (0..n).filter(|&b| b != a) {
            let wanted = if a < b { all } else { &asymmetric[..] };
            let matrices =
                similarity_of((&reps[a], &prepared[a]), (&reps[b], &prepared[b]), wanted)
                    .with_context(|| format!("run {a} against run {b} of {label}"))?;
            for m in matrices {
                let k = all.iter().position(|x| x.name() == m.measure);
                let k = k.expect("a measure of the spec");
                if a < b && symmetric.contains(&all[k]) {
                    values[b * n + a][k] = Some(transpose(&m.values));
                }
                values[a * n + b][k] = Some(m.values);
            }
            bar.inc(1);
        }
    }
    for a in 0..n {
        for b in (0..n).filter(|&b| b != a) {
            for (k, out) in measures.iter_mut().enumerate() {
                out.pairs.push((a, b));
                out.values
                    .push(values[a * n + b][k].take().expect("every pair compared"));
            }
        }
    }
    bar.finish_and_clear();
    Ok(measures)
}

/// Compares every ordered pair of the group's runs (which must all be trained).
pub fn compare_group(
    label: &str,
    runs: &[(&Point, RunDir)],
    spec: &CompareSpec,
    compute: &Compute,
    locator: &Locator,
) -> Result<GroupComparison> {
    // Sites are labelled by name alone: the runs are the group's, named by their ids.
    let dirs: Vec<(&Path, String)> = runs
        .iter()
        .map(|(p, run)| (run.root.as_path(), p.id.clone()))
        .collect();
    let options = study_options(spec);
    let (mut reps, images) =
        runs_representations(&dirs, compute, locator, &options, spec.reduction)?;
    for (run, (p, _)) in reps.iter_mut().zip(runs) {
        for r in run.iter_mut() {
            r.label = r.label[p.id.len() + 1..].to_string();
        }
        if let (Conditions::ClassMeans, Some(s)) = (spec.conditions, &images) {
            class_averaged(
                run,
                &s.classes,
                &format!("the classes of {}'s images", s.run),
            )?;
        }
    }
    let measures = pair_matrices(&reps, &spec.measures, label)?;
    Ok(GroupComparison {
        group: label.to_string(),
        runs: runs.iter().map(|(p, _)| p.id.clone()).collect(),
        true_labels: true_labels(runs[0].0),
        sites: reps[0].iter().map(|r| r.label.clone()).collect(),
        measures,
    })
}

/// Compares the runs of every group whose runs are all trained, and writes
/// `summary/compare/comparison.json` (unless it is there, computed with the same spec).
pub fn run_comparison(
    out: &Path,
    points: &[Point],
    spec: &CompareSpec,
    compute: &Compute,
    locator: &Locator,
) -> Result<Comparison> {
    if let Some(c) = read_comparison(out, spec)? {
        return Ok(c);
    }
    let started = std::time::Instant::now();
    let mut compared = Vec::new();
    let mut over = Vec::new();
    if spec.over_training {
        for p in points {
            let run = super::exec::run_dir(out, p);
            if !run.is_complete() {
                eprintln!("compare: {} skipped (not trained)", p.id);
                continue;
            }
            eprintln!("compare: {} over training", p.id);
            let study = Study::open(&run.root, compute.clone(), locator, &study_options(spec))?;
            over.push(
                crate::over_training::over_training(&study, &spec.measures, spec.reduction, None)
                    .with_context(|| format!("grid point {}", p.id))?,
            );
        }
    }
    let pairs = if spec.over_training {
        Vec::new()
    } else {
        groups(points, &spec.across)
    };
    for (label, members) in pairs {
        let runs: Vec<(&Point, RunDir)> = members
            .iter()
            .map(|p| (*p, super::exec::run_dir(out, p)))
            .collect();
        if runs.len() < 2 || runs.iter().any(|(_, r)| !r.is_complete()) {
            eprintln!("compare: group {label} skipped (fewer than two trained runs)");
            continue;
        }
        eprintln!("compare: group {label}, {} runs", runs.len());
        compared.push(compare_group(&label, &runs, spec, compute, locator)?);
    }
    let c = Comparison {
        spec: spec.clone(),
        groups: compared,
        over_training: over,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_atomic(
        &comparison_path(out),
        serde_json::to_string_pretty(&c)?.as_bytes(),
    )?;
    Ok(c)
}

fn transpose(m: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let cols = m.first().map_or(0, Vec::len);
    (0..cols)
        .map(|j| m.iter().map(|r| r[j]).collect())
        .collect()
}

/// The fraction of (pair, layer) cases where the most similar layer of the other run is
/// the same layer: `(correct, total)`. A tie for the maximum counts as wrong unless the
/// corresponding layer is the only maximum, so constant matrices score 0.
pub fn identification(values: &[Vec<Vec<f64>>]) -> (usize, usize) {
    let mut correct = 0;
    let mut total = 0;
    for m in values {
        for (i, row) in m.iter().enumerate() {
            total += 1;
            let own = row[i];
            let beaten = row.iter().enumerate().any(|(j, &v)| j != i && v >= own);
            if own.is_finite() && !beaten {
                correct += 1;
            }
        }
    }
    (correct, total)
}

/// Per layer, the mean and s.d. over pairs of the similarity of a layer with the same
/// layer of the other run.
pub fn corresponding(values: &[Vec<Vec<f64>>]) -> Vec<(f64, f64)> {
    let layers = values.first().map_or(0, Vec::len);
    (0..layers)
        .map(|i| {
            let v: Vec<f64> = values.iter().map(|m| m[i][i]).collect();
            (mean(&v), std(&v))
        })
        .collect()
}

/// The element-wise mean over pairs.
pub fn mean_matrix(values: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
    let Some(first) = values.first() else {
        return Vec::new();
    };
    let n = values.len() as f64;
    let mut out = vec![vec![0.0; first[0].len()]; first.len()];
    for m in values {
        for (o, r) in out.iter_mut().zip(m) {
            for (x, v) in o.iter_mut().zip(r) {
                *x += v / n;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identification_counts_rows_whose_maximum_is_the_diagonal() {
        // Row 0: the diagonal wins; row 1: layer 0 is more similar; row 2: a tie.
        let m = vec![
            vec![0.9, 0.1, 0.2],
            vec![0.8, 0.7, 0.1],
            vec![0.3, 0.5, 0.5],
        ];
        assert_eq!(identification(std::slice::from_ref(&m)), (1, 3));
        let identity = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        assert_eq!(identification(&[m, identity]), (4, 6));
        assert_eq!(identification(&[vec![vec![0.5; 2]; 2]]), (0, 2));
    }

    #[test]
    fn corresponding_and_mean_average_over_pairs() {
        let a = vec![vec![1.0, 0.0], vec![0.0, 0.5]];
        let b = vec![vec![0.0, 1.0], vec![1.0, 0.7]];
        let c = corresponding(&[a.clone(), b.clone()]);
        assert!((c[0].0 - 0.5).abs() < 1e-12 && (c[1].0 - 0.6).abs() < 1e-12);
        assert_eq!(mean_matrix(&[a, b]), vec![vec![0.5, 0.5], vec![0.5, 0.6]]);
    }

    fn rep(seed: u64, units: usize) -> Representation {
        // 40 stimuli; the sequence starts from a state derived from the seed.
        let state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        crate::compare::test_representation(&format!("r{seed}"), 40, units, state)
    }

    #[test]
    fn pair_matrices_equal_direct_comparisons_in_both_orders() {
        let reps: Vec<Vec<Representation>> = (0..3)
            .map(|r| vec![rep(10 * r, 3), rep(10 * r + 1, 5)])
            .collect();
        let measures = [Measure::CkaLinear, Measure::Pwcca];
        let out = pair_matrices(&reps, &measures, "t").unwrap();
        assert_eq!(out[0].pairs.len(), 6);
        for m in &out {
            let measure: Measure = m.measure.parse().unwrap();
            for (&(a, b), values) in m.pairs.iter().zip(&m.values) {
                for (i, row) in values.iter().enumerate() {
                    for (j, v) in row.iter().enumerate() {
                        let direct = insilico_population::compare(
                            measure,
                            &reps[a][i].matrix,
                            &reps[b][j].matrix,
                        )
                        .unwrap();
                        assert!(
                            (v - direct).abs() < 1e-12,
                            "{measure:?} ({a},{b}) [{i}][{j}]"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn groups_are_the_points_equal_in_every_axis_but_across() {
        let file: super::super::spec::SweepFile = toml::from_str(
            "name = \"t\"\n[base.data]\ndataset = \"shapes\"\n[grid]\nmodel = [\"mlp-2x128\"]\nshuffle_labels = [false, true]\nseed = [0, 1, 2]\n",
        )
        .unwrap();
        let points = file.expand().unwrap();
        let g = groups(&points, "seed");
        assert_eq!(g.len(), 2);
        assert!(g.iter().all(|(_, members)| members.len() == 3));
        assert!(g[0].1.iter().all(|p| true_labels(p)) && g[1].1.iter().all(|p| !true_labels(p)));
        let spec = CompareSpec {
            checks: vec![CompareCheck::Memorization],
            ..CompareSpec::default()
        };
        spec.check_grid(&points).unwrap();
        let wrong = CompareSpec {
            across: "epochs".into(),
            ..spec
        };
        assert!(wrong
            .check_grid(&points)
            .unwrap_err()
            .to_string()
            .contains("epochs"));
    }

    #[test]
    fn measures_parse_from_names_and_unknown_ones_are_named() {
        let spec: CompareSpec = toml::from_str(
            "measures = [\"cka-linear\", \"svcca-0.95\"]\nchecks = [\"memorization\"]",
        )
        .unwrap();
        assert_eq!(
            spec.measures,
            vec![Measure::CkaLinear, Measure::Svcca { kept: 0.95 }]
        );
        assert_eq!(spec.checks, vec![CompareCheck::Memorization]);
        let err = toml::from_str::<CompareSpec>("measures = [\"cka-lin\"]").unwrap_err();
        assert!(err.to_string().contains("cka-lin"), "{err}");
    }

    #[test]
    fn a_measure_or_site_given_twice_is_refused_naming_it() {
        // `cka-rbf-1.0` is the bandwidth 1 of `cka-rbf-1`: one measure, named `cka-rbf-1`.
        for (table, says) in [
            (
                "measures = [\"cka-linear\", \"cka-linear\"]",
                "compare.measures: `cka-linear` is given twice",
            ),
            (
                "measures = [\"cka-rbf-1\", \"cka-rbf-1.0\"]",
                "compare.measures: `cka-rbf-1` is given twice",
            ),
            (
                "sites = [\"fc1.relu\", \"fc1.relu\"]",
                "compare.sites: `fc1.relu` is given twice",
            ),
        ] {
            let spec: CompareSpec = toml::from_str(table).unwrap();
            let err = format!("{:#}", spec.validate().unwrap_err());
            assert!(err.contains(says), "{table}: {err}");
        }
    }

    #[test]
    fn class_means_are_for_comparisons_between_runs() {
        let spec: CompareSpec = toml::from_str("conditions = \"class-means\"").unwrap();
        assert_eq!(spec.conditions, Conditions::ClassMeans);
        spec.validate().unwrap();
        let spec: CompareSpec =
            toml::from_str("conditions = \"class-means\"\nover_training = true").unwrap();
        let err = format!("{:#}", spec.validate().unwrap_err());
        assert!(err.contains("compare.conditions: `class-means`"), "{err}");
        let err = toml::from_str::<CompareSpec>("conditions = \"classes\"").unwrap_err();
        assert!(err.to_string().contains("class-means"), "{err}");
    }
}
