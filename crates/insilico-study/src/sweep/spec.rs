//! The sweep file: a base config, a grid, per-model settings, the assays to run on every
//! trained network, and named scales. Expanded into grid points and validated whole
//! before anything runs.

use super::slurm::SlurmOptions;
use crate::options::Options;
use crate::registry::AssayKind;
use crate::study::StudyOptions;
use anyhow::{bail, Context, Result};
use insilico_engine::{load_config, Plan, RunConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A sweep file (`experiments/*.toml`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Output directory (default `runs/<name>`).
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Settings for every run, as in a run config (`[base.training] epochs = 30`).
    #[serde(default)]
    pub base: toml::Table,
    /// Settings for the runs of one model only (`[models.cnn-small.training] lr = 0.01`).
    #[serde(default)]
    pub models: BTreeMap<String, toml::Table>,
    /// Axes: `model` (built-in names or config files) and any config field, by dotted path
    /// or by the short names `label_noise`, `seed`, `epochs`, `lr`, `weight_decay`,
    /// `train_limit`, `dataset`, `width`, `dropout`, `batch_norm`.
    pub grid: toml::Table,
    #[serde(default)]
    pub assays: AssaySpec,
    /// A claim of Morcos et al. 2018 to check on the results (`check = "generalization"`):
    /// its figure and its printed check in the summary and the report.
    #[serde(default)]
    pub check: Option<super::claims::Claim>,
    /// Runs compared with each other once all are trained (`[compare]`).
    #[serde(default)]
    pub compare: Option<super::compare::CompareSpec>,
    /// Alternative scales (`--scale full`): tables merged over `base`, `grid` and `models`.
    #[serde(default)]
    pub scales: BTreeMap<String, Scale>,
    /// How `--executor slurm` submits the grid (flags win over this table).
    #[serde(default)]
    pub slurm: SlurmOptions,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub base: toml::Table,
    #[serde(default)]
    pub grid: toml::Table,
    #[serde(default)]
    pub models: BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub assays: Option<toml::Table>,
    #[serde(default)]
    pub compare: Option<toml::Table>,
}

/// The `[assays]` table: the options every assay shares, and one table per assay to run
/// (an absent table means the assay is not run). Each table is validated by its assay's
/// options type when the file is loaded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AssaySpec {
    pub study: StudyOptions,
    pub assays: BTreeMap<AssayKind, toml::Table>,
}

impl AssaySpec {
    /// Splits an `[assays]` table into the shared options and the assays' own tables.
    pub fn from_table(mut table: toml::Table) -> Result<Self> {
        let mut assays = BTreeMap::new();
        for kind in AssayKind::ALL {
            let Some(value) = table.remove(kind.name()) else {
                continue;
            };
            let toml::Value::Table(options) = value else {
                bail!("assays.{kind}: must be a table, e.g. [assays.{kind}]");
            };
            kind.validate(&options)
                .with_context(|| format!("in [assays.{kind}]"))?;
            assays.insert(kind, options);
        }
        let study = StudyOptions::from_table(table).with_context(|| {
            let names: Vec<&str> = AssayKind::ALL.iter().map(|k| k.name()).collect();
            format!("in [assays] (assays: {})", names.join(", "))
        })?;
        Ok(Self { study, assays })
    }

    pub fn to_table(&self) -> Result<toml::Table> {
        let mut table = toml::Table::try_from(&self.study)?;
        for (kind, options) in &self.assays {
            table.insert(kind.name().into(), toml::Value::Table(options.clone()));
        }
        Ok(table)
    }

    /// The assays to run, in order.
    pub fn kinds(&self) -> Vec<AssayKind> {
        self.assays.keys().copied().collect()
    }
}

impl<'de> Deserialize<'de> for AssaySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        AssaySpec::from_table(table).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

impl Serialize for AssaySpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_table()
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

/// One point of the grid: its coordinates and its resolved config.
#[derive(Clone, Debug)]
pub struct Point {
    pub id: String,
    pub model: String,
    /// Grid coordinates other than the model, as `(axis, value)`.
    pub coords: Vec<(String, toml::Value)>,
    pub config: RunConfig,
}

impl Point {
    /// The value of a grid axis at this point, as a number where it is one (a boolean
    /// as 0 or 1, so that `batch_norm = [false, true]` can be an x axis).
    pub fn coord_f64(&self, axis: &str) -> Option<f64> {
        self.coords
            .iter()
            .find(|(a, _)| a == axis)
            .and_then(|(_, v)| match v {
                toml::Value::Float(f) => Some(*f),
                toml::Value::Integer(i) => Some(*i as f64),
                toml::Value::Boolean(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            })
    }
}

/// Short names for the axes the studies of Morcos et al. 2018 vary.
fn alias(axis: &str) -> &str {
    match axis {
        "label_noise" => "data.label_noise",
        "shuffle_labels" => "data.shuffle_labels",
        "train_limit" => "data.train_limit",
        "dataset" => "data.dataset",
        "seed" => "training.seed",
        "epochs" => "training.epochs",
        "lr" => "training.lr",
        "weight_decay" => "training.weight_decay",
        "width" => "model.width",
        "dropout" => "model.dropout",
        "batch_norm" => "model.batch_norm",
        other => other,
    }
}

/// Flattens nested tables into `a.b.c=value` overrides.
fn overrides(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => overrides(t, &key, out),
            other => out.push(format!("{key}={other}")),
        }
    }
}

fn merge(into: &mut toml::Table, from: &toml::Table) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

fn value_label(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A name safe for a directory: the model's file stem, or the built-in name.
pub fn model_label(model: &str) -> String {
    Path::new(model)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| model.to_string())
}

impl SweepFile {
    pub fn load(path: &Path, scale: Option<&str>) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read sweep file {}", path.display()))?;
        let mut sweep: SweepFile =
            toml::from_str(&text).with_context(|| format!("in sweep file {}", path.display()))?;
        sweep
            .slurm
            .validate()
            .with_context(|| format!("in sweep file {}: [slurm]", path.display()))?;
        if let Some(name) = scale {
            let s = sweep.scales.get(name).cloned().with_context(|| {
                format!(
                    "{}: no scale `{name}` (scales: {})",
                    path.display(),
                    sweep.scales.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            merge(&mut sweep.base, &s.base);
            for (k, v) in &s.grid {
                sweep.grid.insert(k.clone(), v.clone());
            }
            for (m, t) in &s.models {
                merge(sweep.models.entry(m.clone()).or_default(), t);
            }
            if let Some(a) = &s.assays {
                let mut current = sweep.assays.to_table()?;
                merge(&mut current, a);
                sweep.assays = AssaySpec::from_table(current)
                    .with_context(|| format!("{}: scales.{name}.assays", path.display()))?;
            }
            if let Some(c) = &s.compare {
                let mut current = toml::Table::try_from(sweep.compare.clone().unwrap_or_default())?;
                merge(&mut current, c);
                sweep.compare = Some(
                    current
                        .try_into()
                        .with_context(|| format!("{}: scales.{name}.compare", path.display()))?,
                );
            }
            sweep.name = format!("{}-{name}", sweep.name);
        }
        Ok(sweep)
    }

    pub fn out_dir(&self, override_dir: Option<&Path>) -> PathBuf {
        override_dir
            .map(Path::to_path_buf)
            .or_else(|| self.out.clone())
            .unwrap_or_else(|| PathBuf::from("runs").join(&self.name))
    }

    /// Every grid point with its config resolved; errors name the point and the field.
    pub fn expand(&self) -> Result<Vec<Point>> {
        let mut axes: Vec<(String, Vec<toml::Value>)> = Vec::new();
        for (axis, values) in &self.grid {
            let toml::Value::Array(values) = values else {
                bail!("grid.{axis}: must be a list of values, e.g. {axis} = [0.0, 0.5]");
            };
            if values.is_empty() {
                bail!("grid.{axis}: is empty");
            }
            axes.push((axis.clone(), values.clone()));
        }
        let Some(models) = axes.iter().position(|(a, _)| a == "model") else {
            bail!("grid: needs a `model` axis, e.g. model = [\"mlp-2x512\"]");
        };
        let (_, models) = axes.remove(models);
        let mut base = Vec::new();
        overrides(&self.base, "", &mut base);
        let mut points = Vec::new();
        for model in &models {
            let toml::Value::String(model) = model else {
                bail!("grid.model: entries must be config names or paths (strings)");
            };
            let mut model_overrides = base.clone();
            if let Some(t) = self
                .models
                .get(model.as_str())
                .or_else(|| self.models.get(&model_label(model)))
            {
                overrides(t, "", &mut model_overrides);
            }
            for coords in cartesian(&axes) {
                let mut o = model_overrides.clone();
                for (axis, v) in &coords {
                    o.push(format!("{}={v}", alias(axis)));
                }
                let id = std::iter::once(model_label(model))
                    .chain(
                        coords
                            .iter()
                            .map(|(a, v)| format!("{a}={}", value_label(v))),
                    )
                    .collect::<Vec<_>>()
                    .join("_");
                let config = load_config(model, &o).with_context(|| format!("grid point {id}"))?;
                points.push(Point {
                    id,
                    model: model.clone(),
                    coords,
                    config,
                });
            }
        }
        Ok(points)
    }

    /// Checks everything that can be checked before the first run: every point's config
    /// (fields and shapes against its dataset) and the assay options and sites.
    pub fn validate(&self, points: &[Point], locator: &insilico_data::Locator) -> Result<()> {
        let a = &self.assays;
        if let Some(claim) = self.check {
            claim.check_sweep(self)?;
        }
        if a.study.checkpoints.is_some() {
            if let Some(p) = points
                .iter()
                .find(|p| p.config.training.snapshots == insilico_engine::SnapshotSchedule::None)
            {
                bail!(
                    "assays.checkpoints = \"{}\" but grid point {} keeps no snapshots: set training.snapshots (e.g. \"epochs\") in [base.training]",
                    a.study.checkpoints.map(|c| c.to_string()).unwrap_or_default(),
                    p.id
                );
            }
        }
        // Shape and class count per dataset.
        let mut datasets: BTreeMap<String, ([usize; 3], usize)> = BTreeMap::new();
        for p in points {
            let dataset = &p.config.data.dataset;
            let (shape, classes) = match datasets.get(dataset) {
                Some(d) => *d,
                None => {
                    let entry = insilico_data::Manifest::embedded()
                        .get(dataset)
                        .with_context(|| format!("grid point {}", p.id))?;
                    let d = (entry.shape, entry.classes.len());
                    // The data must be there (or downloadable) before hours of work start.
                    locator
                        .locate(dataset)
                        .with_context(|| format!("grid point {}: dataset {dataset}", p.id))?;
                    datasets.insert(dataset.clone(), d);
                    d
                }
            };
            let plan = Plan::new(&p.config.model, shape)
                .with_context(|| format!("grid point {}", p.id))?;
            plan.check_trainable(classes, dataset)
                .with_context(|| format!("grid point {}", p.id))?;
            for site in &a.study.sites {
                plan.site_index(site)
                    .with_context(|| format!("assays.sites, for grid point {}", p.id))?;
            }
            for (kind, options) in &a.assays {
                kind.check(options, &plan, &a.study)
                    .with_context(|| format!("[assays.{kind}], for grid point {}", p.id))?;
            }
            if let Some(c) = &self.compare {
                for site in &c.sites {
                    plan.site_index(site)
                        .with_context(|| format!("compare.sites, for grid point {}", p.id))?;
                }
            }
        }
        if let Some(c) = &self.compare {
            c.check_grid(points)?;
        }
        Ok(())
    }
}

fn cartesian(axes: &[(String, Vec<toml::Value>)]) -> Vec<Vec<(String, toml::Value)>> {
    let mut out = vec![Vec::new()];
    for (axis, values) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((axis.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
name = "t"
[base.data]
dataset = "shapes"
train_limit = 100
[models.mlp-2x128.training]
lr = 0.01
[grid]
model = ["mlp-2x128", "cnn-small"]
label_noise = [0.0, 0.5]
seed = [0, 1, 2]
[assays]
images = 50
[assays.ablation]
repeats = 2
"#;

    fn parse(text: &str) -> SweepFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn expands_the_full_product_with_aliases_and_model_settings() {
        let points = parse(FILE).expand().unwrap();
        assert_eq!(points.len(), 2 * 2 * 3);
        let p = points
            .iter()
            .find(|p| p.id == "mlp-2x128_label_noise=0.5_seed=2")
            .unwrap();
        assert_eq!(p.config.data.label_noise, 0.5);
        assert_eq!(p.config.training.seed, 2);
        assert_eq!(p.config.training.lr, 0.01);
        assert_eq!(p.config.data.train_limit, Some(100));
        let q = points.iter().find(|p| p.model == "cnn-small").unwrap();
        assert_ne!(
            q.config.training.lr, 0.01,
            "model settings stay with their model"
        );
        assert_eq!(p.coord_f64("label_noise"), Some(0.5));
    }

    #[test]
    fn the_axes_of_morcos_et_al_reach_the_config() {
        let file = r#"
name = "t"
[base.data]
dataset = "shapes"
[grid]
model = ["mlp-2x128"]
lr = [0.01]
weight_decay = [0.001]
width = [0.5]
dropout = [0.25]
batch_norm = [true]
train_limit = [100]
"#;
        let points = parse(file).expand().unwrap();
        assert_eq!(points.len(), 1);
        let (c, p) = (&points[0].config, &points[0]);
        assert_eq!(c.training.lr, 0.01);
        assert_eq!(c.training.weight_decay, 0.001);
        assert_eq!(c.data.train_limit, Some(100));
        let plan = Plan::new(&c.model, [1, 28, 28]).unwrap();
        // 128 units halved; batch norm and dropout around each hidden relu.
        assert_eq!(plan.shape_at("fc1").unwrap().units(), 64);
        for site in ["fc1.bn", "fc1.dropout", "fc2.bn", "fc2.dropout"] {
            plan.site_index(site).unwrap();
        }
        assert_eq!(
            p.coord_f64("batch_norm"),
            Some(1.0),
            "booleans are axes too"
        );
        assert_eq!(p.coord_f64("dropout"), Some(0.25));
        let err = parse(&file.replace("[0.25]", "[1.5]"))
            .expand()
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("model.dropout = 1.5"),
            "{err:#}"
        );
    }

    #[test]
    fn a_bad_grid_value_names_the_point_and_field() {
        let err = parse(&FILE.replace("[0.0, 0.5]", "[0.0, 1.5]"))
            .expand()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("label_noise=1.5") && msg.contains("data.label_noise"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_assay_options_are_rejected() {
        let err =
            toml::from_str::<SweepFile>(&FILE.replace("repeats = 2", "repeets = 2")).unwrap_err();
        assert!(err.to_string().contains("repeets"), "{err}");
    }

    #[test]
    fn a_grid_needs_models() {
        let err = parse(&FILE.replace("model = [\"mlp-2x128\", \"cnn-small\"]", ""))
            .expand()
            .unwrap_err();
        assert!(err.to_string().contains("model"));
    }

    /// Every experiment shipped in `experiments/`, at its base and at every scale it
    /// defines, parses and expands into grid points with resolved configs: a typo in a
    /// scale nobody runs in the tests would otherwise surface only on a long run.
    #[test]
    fn every_shipped_experiment_expands_at_every_scale() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        assert!(files.len() >= 10, "{files:?}");
        for file in files {
            let base = SweepFile::load(&file, None).unwrap();
            for scale in std::iter::once(None).chain(base.scales.keys().map(|k| Some(k.as_str()))) {
                let spec = SweepFile::load(&file, scale)
                    .unwrap_or_else(|e| panic!("{} at {scale:?}: {e:#}", file.display()));
                let points = spec
                    .expand()
                    .unwrap_or_else(|e| panic!("{} at {scale:?}: {e:#}", file.display()));
                assert!(!points.is_empty(), "{} at {scale:?}", file.display());
            }
        }
    }
}
