//! Run configuration: the network (a list of layers), training and data options.
//!
//! Configs are TOML files read with `deny_unknown_fields`, so a misspelt key is an error
//! naming the key rather than a silently ignored setting. Shapes are checked when the
//! network plan is built ([`crate::plan::Plan::new`]), before any training starts.

use crate::layer::LayerKind;
pub use crate::snapshot::SnapshotSchedule;
use anyhow::{bail, Context, Result};
use insilico_data::labels::LabelCorruption;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything a training run needs: model, training and data sections.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    #[serde(default)]
    pub training: TrainConfig,
    #[serde(default)]
    pub data: DataConfig,
}

/// A network: a name and an ordered list of layers. Input shape comes from the dataset.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub layers: Vec<LayerSpec>,
    /// Multiplies the size of every hidden conv2d and linear layer (not the output layer),
    /// rounded, at least 1: `model.width = 2` doubles a network's channels and units.
    #[serde(default = "unit_width", skip_serializing_if = "is_unit_width")]
    pub width: f64,
    /// Dropout with this rate after every relu (`fc1.relu` is followed by `fc1.dropout`);
    /// replaces any dropout layers the config lists, and 0 removes them all. Unset: the
    /// layers as listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// `true`: batch norm right after every hidden conv2d and linear layer (`fc1.bn`,
    /// before `fc1.relu`) where there is none; `false`: every batch norm layer removed.
    /// Unset: the layers as listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_norm: Option<bool>,
}

fn unit_width() -> f64 {
    1.0
}

fn is_unit_width(w: &f64) -> bool {
    *w == 1.0
}

impl ModelConfig {
    /// Checks the model-level knobs; errors name the field and the value.
    fn validate_knobs(&self) -> Result<()> {
        check(
            self.width > 0.0 && self.width.is_finite(),
            "model.width",
            self.width,
            "must be a positive finite multiplier",
        )?;
        if let Some(p) = self.dropout {
            check(
                (0.0..1.0).contains(&p),
                "model.dropout",
                p,
                "must be in [0, 1)",
            )?;
        }
        Ok(())
    }

    /// The layers with the knobs applied, and the knobs reset, so that the result is an
    /// ordinary layer list (saved as such in a run's `config.toml`) and applying it
    /// again changes nothing. Inserted layers are unnamed, so they take the site names of
    /// the layer they follow (`fc1.bn`, `fc1.dropout`).
    pub fn with_knobs_applied(&self) -> ModelConfig {
        let last_linear = self
            .layers
            .iter()
            .rposition(|l| matches!(l, LayerSpec::Linear { .. }));
        let mut layers = Vec::with_capacity(self.layers.len() * 2);
        for (i, layer) in self.layers.iter().enumerate() {
            let hidden = Some(i) != last_linear && layer.kind().is_weighted();
            match layer {
                LayerSpec::Batchnorm { .. } if self.batch_norm == Some(false) => continue,
                LayerSpec::Dropout { .. } if self.dropout.is_some() => continue,
                _ => {}
            }
            // Under a width change every explicit input size is stale, the output layer's too.
            layers.push(match (self.width == 1.0, hidden) {
                (true, _) => layer.clone(),
                (false, true) => layer.scaled(self.width),
                (false, false) => layer.scaled(1.0),
            });
            let next_is_bn = matches!(self.layers.get(i + 1), Some(LayerSpec::Batchnorm { .. }));
            if hidden && self.batch_norm == Some(true) && !next_is_bn {
                layers.push(LayerSpec::Batchnorm { name: None });
            }
            match (layer, self.dropout) {
                (LayerSpec::Relu { .. }, Some(p)) if p > 0.0 => {
                    layers.push(LayerSpec::Dropout { name: None, p })
                }
                _ => {}
            }
        }
        ModelConfig {
            name: self.name.clone(),
            description: self.description.clone(),
            layers,
            width: 1.0,
            dropout: None,
            batch_norm: None,
        }
    }
}

/// One layer. `name` is optional: by default convolutions are `conv1, conv2, ...`, linear
/// layers `fc1, fc2, ...` (the last one `logits`), pools `pool1, ...`, and a relu, batch norm
/// or dropout takes the name of the layer it follows (`conv1.relu`, `fc1.bn`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LayerSpec {
    Conv2d {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Checked against the incoming shape when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_channels: Option<usize>,
        out_channels: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
    },
    Linear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Checked against the incoming shape when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_features: Option<usize>,
        out_features: usize,
    },
    Relu {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Maxpool {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        kernel: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
    },
    Avgpool {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        kernel: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
    },
    Batchnorm {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Dropout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        p: f64,
    },
    Flatten {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

fn one() -> usize {
    1
}

impl LayerSpec {
    pub fn explicit_name(&self) -> Option<&str> {
        match self {
            LayerSpec::Conv2d { name, .. }
            | LayerSpec::Linear { name, .. }
            | LayerSpec::Relu { name }
            | LayerSpec::Maxpool { name, .. }
            | LayerSpec::Avgpool { name, .. }
            | LayerSpec::Batchnorm { name }
            | LayerSpec::Dropout { name, .. }
            | LayerSpec::Flatten { name } => name.as_deref(),
        }
    }

    /// The layer with its output size multiplied by `factor` (rounded, at least 1) and its
    /// explicit input size dropped (the plan infers it); other layers unchanged.
    fn scaled(&self, factor: f64) -> LayerSpec {
        let scale = |n: usize| ((n as f64 * factor).round() as usize).max(1);
        match self.clone() {
            LayerSpec::Conv2d {
                name,
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => LayerSpec::Conv2d {
                name,
                in_channels: None,
                out_channels: scale(out_channels),
                kernel,
                stride,
                padding,
            },
            LayerSpec::Linear {
                name, out_features, ..
            } => LayerSpec::Linear {
                name,
                in_features: None,
                out_features: scale(out_features),
            },
            other => other,
        }
    }

    pub fn kind(&self) -> LayerKind {
        match self {
            LayerSpec::Conv2d { .. } => LayerKind::Conv2d,
            LayerSpec::Linear { .. } => LayerKind::Linear,
            LayerSpec::Relu { .. } => LayerKind::Relu,
            LayerSpec::Maxpool { .. } => LayerKind::Maxpool,
            LayerSpec::Avgpool { .. } => LayerKind::Avgpool,
            LayerSpec::Batchnorm { .. } => LayerKind::Batchnorm,
            LayerSpec::Dropout { .. } => LayerKind::Dropout,
            LayerSpec::Flatten { .. } => LayerKind::Flatten,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

/// Learning-rate schedule over epochs (applied per step for `cosine`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `step_every` epochs.
    Step,
    /// Cosine decay from `lr` to 0 over all steps.
    Cosine,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// SGD momentum (PyTorch convention: no dampening).
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub step_every: usize,
    pub gamma: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Evaluate accuracy on at most this many training images per epoch (None: all).
    pub eval_train_limit: Option<usize>,
    /// Evaluate the train and test loss and accuracy after every this many epochs and
    /// after the last (1: every epoch). The epochs in between keep a row in
    /// `metrics.csv` with those columns empty. Evaluating 10,000 test images costs
    /// about as much as an epoch of training on 4,000, and an experiment that reads only
    /// the final accuracies need not pay it every epoch.
    pub eval_every: usize,
    /// Model states to keep through training for analysis (`"epochs"`, `"every:N"`,
    /// `"log:N"`; see [`SnapshotSchedule`]).
    pub snapshots: SnapshotSchedule,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            step_every: 1,
            gamma: 0.1,
            epochs: 3,
            batch_size: 128,
            seed: 0,
            eval_train_limit: None,
            eval_every: 1,
            snapshots: SnapshotSchedule::None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `mnist`, `fashion-mnist`, `cifar10` or `shapes`.
    pub dataset: String,
    /// Fraction of training labels replaced by a uniformly drawn class (Zhang et al. 2017).
    pub label_noise: f64,
    /// Replace the training labels by a permutation of themselves (overrides `label_noise`).
    pub shuffle_labels: bool,
    /// Train on a seeded, class-stratified subset of this many images.
    pub train_limit: Option<usize>,
    /// Seed for the label corruption and the subset (defaults to the training seed).
    pub data_seed: Option<u64>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "shapes".into(),
            label_noise: 0.0,
            shuffle_labels: false,
            train_limit: None,
            data_seed: None,
        }
    }
}

impl DataConfig {
    pub fn corruption(&self) -> LabelCorruption {
        if self.shuffle_labels {
            LabelCorruption::Shuffled
        } else if self.label_noise > 0.0 {
            LabelCorruption::Random {
                p: self.label_noise,
            }
        } else {
            LabelCorruption::None
        }
    }
}

impl RunConfig {
    /// Reads a config file, applies `key=value` overrides (dotted paths, TOML values), and
    /// validates the result. Errors name the file and the offending field.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::from_toml(&text, overrides).with_context(|| format!("in config {}", path.display()))
    }

    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Self> {
        let mut value: toml::Table = toml::from_str(text)?;
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        check_layers(&value)?;
        let mut config: RunConfig = value.try_into()?;
        config.model.validate_knobs()?;
        config.model = config.model.with_knobs_applied();
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serializes")
    }

    /// Range and finiteness checks of every numeric field, which do not need the dataset
    /// (shapes are checked by the plan). Errors name the field and its value.
    pub fn validate(&self) -> Result<()> {
        self.validate_training()?;
        let d = &self.data;
        check(
            (0.0..=1.0).contains(&d.label_noise),
            "data.label_noise",
            d.label_noise,
            "must be a fraction in [0, 1]",
        )?;
        if let Some(n) = d.train_limit {
            check(n >= 1, "data.train_limit", n, "must be at least 1")?;
        }
        check(
            !self.model.layers.is_empty(),
            "model.layers",
            "[]",
            "must list at least one layer",
        )?;
        for (i, layer) in self.model.layers.iter().enumerate() {
            validate_layer(i, layer)?;
        }
        Ok(())
    }

    fn validate_training(&self) -> Result<()> {
        let t = &self.training;
        let positive = "must be a positive finite number";
        check(
            t.lr > 0.0 && t.lr.is_finite(),
            "training.lr",
            t.lr,
            positive,
        )?;
        check(
            (1..=MAX_EPOCHS).contains(&t.epochs),
            "training.epochs",
            t.epochs,
            &format!("must be in 1..={MAX_EPOCHS}"),
        )?;
        check(
            t.batch_size >= 1,
            "training.batch_size",
            t.batch_size,
            "must be at least 1",
        )?;
        check(
            (0.0..1.0).contains(&t.momentum),
            "training.momentum",
            t.momentum,
            "must be in [0, 1)",
        )?;
        check(
            t.weight_decay >= 0.0 && t.weight_decay.is_finite(),
            "training.weight_decay",
            t.weight_decay,
            "must be a finite number >= 0",
        )?;
        check(
            t.gamma > 0.0 && t.gamma.is_finite(),
            "training.gamma",
            t.gamma,
            positive,
        )?;
        check(
            t.step_every >= 1,
            "training.step_every",
            t.step_every,
            "must be at least 1",
        )?;
        if let Some(n) = t.eval_train_limit {
            check(n >= 1, "training.eval_train_limit", n, "must be at least 1")?;
        }
        check(
            t.eval_every >= 1,
            "training.eval_every",
            t.eval_every,
            "must be at least 1",
        )?;
        Ok(())
    }
}

/// More epochs than anyone trains a small network for; the bound keeps step counts
/// (epochs x steps per epoch) far from overflowing.
pub const MAX_EPOCHS: usize = 1_000_000;

/// Per-layer checks. Sizes are only bounded below here: what is too large for the
/// input or for the machine is refused by the plan and the memory estimate.
fn validate_layer(i: usize, layer: &LayerSpec) -> Result<()> {
    let field = |name: &str| format!("model.layers[{i}].{name}");
    let why = |what: &str| format!("{what} (a {} layer)", layer.kind());
    let at_least_one =
        |name: &str, v: usize| check(v >= 1, &field(name), v, &why("must be at least 1"));
    match layer {
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            ..
        } => {
            if let Some(c) = in_channels {
                at_least_one("in_channels", *c)?;
            }
            at_least_one("out_channels", *out_channels)?;
            at_least_one("kernel", *kernel)?;
            at_least_one("stride", *stride)?;
            // PyTorch's rule, so that exported weights mean the same there.
            check(
                *padding <= kernel / 2,
                &field("padding"),
                padding,
                &why(&format!("must be at most half the kernel ({kernel})")),
            )
        }
        LayerSpec::Linear {
            in_features,
            out_features,
            ..
        } => {
            if let Some(f) = in_features {
                at_least_one("in_features", *f)?;
            }
            at_least_one("out_features", *out_features)
        }
        LayerSpec::Maxpool { kernel, stride, .. } | LayerSpec::Avgpool { kernel, stride, .. } => {
            at_least_one("kernel", *kernel)?;
            stride.map_or(Ok(()), |s| at_least_one("stride", s))
        }
        LayerSpec::Dropout { p, .. } => check(
            (0.0..1.0).contains(p),
            &field("p"),
            p,
            &why("must be in [0, 1)"),
        ),
        LayerSpec::Relu { .. } | LayerSpec::Batchnorm { .. } | LayerSpec::Flatten { .. } => Ok(()),
    }
}

fn check(ok: bool, field: &str, value: impl std::fmt::Display, why: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        bail!("{field} = {value}: {why}")
    }
}

/// The TOML type a layer field must have, and whether `v` has it. Serde reports a wrong
/// type inside a tagged enum without the field's name, so layers are checked field by
/// field first.
fn layer_field_type(key: &str, v: &toml::Value) -> Option<(&'static str, bool)> {
    use toml::Value::{Float, Integer, String};
    Some(match key {
        "in_channels" | "out_channels" | "kernel" | "stride" | "padding" | "in_features"
        | "out_features" => ("a non-negative integer", matches!(v, Integer(n) if *n >= 0)),
        "p" => ("a number", matches!(v, Integer(_) | Float(_))),
        "name" | "type" => ("a string", matches!(v, String(_))),
        _ => return None,
    })
}

/// Deserializes `model.layers` one layer at a time, so that every error names the
/// layer's index and, for a wrong type, the field.
fn check_layers(table: &toml::Table) -> Result<()> {
    let Some(toml::Value::Array(layers)) = table.get("model").and_then(|m| m.get("layers")) else {
        return Ok(()); // a missing or mistyped list is named by serde
    };
    for (i, layer) in layers.iter().enumerate() {
        let toml::Value::Table(fields) = layer else {
            bail!("model.layers[{i}]: expected a table like {{ type = \"relu\" }}, found {layer}");
        };
        for (key, value) in fields {
            if let Some((expected, false)) = layer_field_type(key, value) {
                bail!("model.layers[{i}].{key}: expected {expected}, found {value}");
            }
        }
        layer
            .clone()
            .try_into::<LayerSpec>()
            .with_context(|| format!("model.layers[{i}]"))?;
    }
    Ok(())
}

/// Applies one `a.b.c=value` override. The value is parsed as TOML (`3`, `0.1`, `true`,
/// `"text"`, `[1, 2]`), falling back to a bare string. Numeric path parts index arrays, so
/// `model.layers.0.out_channels=32` works.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (path, raw) = assignment
        .split_once('=')
        .with_context(|| format!("override `{assignment}` is not of the form key=value"))?;
    let value = parse_value(raw.trim());
    let parts: Vec<&str> = path.trim().split('.').collect();
    let mut current = table;
    for (depth, part) in parts.iter().enumerate() {
        let last = depth + 1 == parts.len();
        if last {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        let next = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match next {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                let index_part = parts[depth + 1];
                let index: usize = index_part.parse().with_context(|| {
                    format!("override `{path}`: `{part}` is a list; index it with a number")
                })?;
                let len = items.len();
                let item = items.get_mut(index).with_context(|| {
                    format!("override `{path}`: `{part}` has {len} entries, no index {index}")
                })?;
                let rest = parts[depth + 2..].join(".");
                let toml::Value::Table(t) = item else {
                    bail!("override `{path}`: `{part}.{index}` is not a table");
                };
                if rest.is_empty() {
                    bail!("override `{path}`: cannot replace a whole list entry");
                }
                return apply_override(t, &format!("{rest}={raw}"));
            }
            _ => bail!("override `{path}`: `{part}` is not a table"),
        };
    }
    bail!("override `{assignment}` has an empty key")
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
[model]
name = "tiny"
layers = [
  { type = "flatten" },
  { type = "linear", out_features = 8 },
  { type = "relu" },
  { type = "linear", out_features = 10 },
]
"#;

    #[test]
    fn parses_with_defaults() {
        let c = RunConfig::from_toml(SMALL, &[]).unwrap();
        assert_eq!(c.model.layers.len(), 4);
        assert_eq!(c.training, TrainConfig::default());
        assert_eq!(c.data.dataset, "shapes");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let text = format!("{SMALL}\n[training]\nepoks = 3\n");
        let err = format!("{:#}", RunConfig::from_toml(&text, &[]).unwrap_err());
        assert!(err.contains("epoks"), "{err}");
    }

    #[test]
    fn unknown_layer_field_is_rejected() {
        let text = SMALL.replace("out_features = 8", "out_features = 8, widht = 3");
        let err = format!("{:#}", RunConfig::from_toml(&text, &[]).unwrap_err());
        assert!(err.contains("widht"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let text = SMALL.replace("out_features = 8", "");
        let err = format!("{:#}", RunConfig::from_toml(&text, &[]).unwrap_err());
        assert!(err.contains("out_features"), "{err}");
    }

    #[test]
    fn overrides_reach_nested_and_listed_fields() {
        let c = RunConfig::from_toml(
            SMALL,
            &[
                "training.epochs=7".into(),
                "training.optimizer=adam".into(),
                "model.layers.1.out_features=32".into(),
                "data.dataset=mnist".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.training.epochs, 7);
        assert_eq!(c.training.optimizer, OptimizerKind::Adam);
        assert_eq!(c.data.dataset, "mnist");
        assert!(matches!(
            c.model.layers[1],
            LayerSpec::Linear {
                out_features: 32,
                ..
            }
        ));
    }

    #[test]
    fn override_of_unknown_key_is_rejected() {
        let err = RunConfig::from_toml(SMALL, &["training.lrr=0.1".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("lrr"));
    }

    #[test]
    fn invalid_values_name_the_field() {
        let err = RunConfig::from_toml(SMALL, &["data.label_noise=1.5".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("data.label_noise"));
        let err = RunConfig::from_toml(SMALL, &["training.epochs=0".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("training.epochs"));
    }

    fn err_of(overrides: &[&str]) -> String {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        format!("{:#}", RunConfig::from_toml(SMALL, &o).unwrap_err())
    }

    #[test]
    fn every_numeric_field_is_range_and_finiteness_checked() {
        for (set, needle) in [
            ("training.weight_decay=inf", "training.weight_decay = inf"),
            ("training.weight_decay=nan", "training.weight_decay = NaN"),
            ("training.gamma=inf", "training.gamma = inf"),
            ("training.gamma=0", "training.gamma = 0"),
            ("training.lr=-inf", "training.lr = -inf"),
            ("training.momentum=nan", "training.momentum = NaN"),
            ("training.epochs=1000001", "training.epochs = 1000001"),
            ("training.batch_size=0", "training.batch_size = 0"),
            ("training.step_every=0", "training.step_every = 0"),
            (
                "training.eval_train_limit=0",
                "training.eval_train_limit = 0",
            ),
            ("training.eval_every=0", "training.eval_every = 0"),
            ("data.label_noise=nan", "data.label_noise = NaN"),
            ("data.train_limit=0", "data.train_limit = 0"),
            (
                "model.layers.1.out_features=0",
                "model.layers[1].out_features = 0",
            ),
            (
                "model.layers.1.in_features=0",
                "model.layers[1].in_features = 0",
            ),
        ] {
            let err = err_of(&[set]);
            assert!(err.contains(needle), "{set}: {err}");
        }
        assert!(RunConfig::from_toml(SMALL, &["training.epochs=1000000".into()]).is_ok());
    }

    #[test]
    fn conv_and_pool_fields_name_their_layer() {
        let conv = SMALL.replace(
            "{ type = \"flatten\" },",
            "{ type = \"conv2d\", out_channels = 4, kernel = 3, padding = 1 },\n  { type = \"maxpool\", kernel = 2 },\n  { type = \"dropout\", p = 0.5 },\n  { type = \"flatten\" },",
        );
        let err_with = |set: &str| {
            format!(
                "{:#}",
                RunConfig::from_toml(&conv, &[set.into()]).unwrap_err()
            )
        };
        assert!(RunConfig::from_toml(&conv, &[]).is_ok());
        // PyTorch refuses padding above half the kernel; so do we.
        assert!(err_with("model.layers.0.padding=2").contains("model.layers[0].padding = 2"));
        assert!(err_with("model.layers.0.stride=0").contains("model.layers[0].stride = 0"));
        assert!(err_with("model.layers.1.stride=0").contains("model.layers[1].stride = 0"));
        assert!(err_with("model.layers.2.p=1.0").contains("model.layers[2].p = 1"));
        assert!(err_with("model.layers.2.p=nan").contains("model.layers[2].p = NaN"));
    }

    #[test]
    fn a_wrong_type_in_a_layer_names_the_index_and_field() {
        let err = err_of(&["model.layers.3.out_features=\"ten\""]);
        assert!(
            err.contains(
                "model.layers[3].out_features: expected a non-negative integer, found \"ten\""
            ),
            "{err}"
        );
        let err = err_of(&["model.layers.1.out_features=-3"]);
        assert!(
            err.contains("model.layers[1].out_features") && err.contains("-3"),
            "{err}"
        );
        let err = err_of(&["model.layers.2.type=\"relux\""]);
        assert!(
            err.contains("model.layers[2]") && err.contains("relux"),
            "{err}"
        );
        let text = SMALL.replace("{ type = \"relu\" },", "3,");
        let err = format!("{:#}", RunConfig::from_toml(&text, &[]).unwrap_err());
        assert!(err.contains("model.layers[2]"), "{err}");
    }

    #[test]
    fn round_trips_through_toml() {
        let c = RunConfig::from_toml(SMALL, &["data.train_limit=100".into()]).unwrap();
        let again = RunConfig::from_toml(&c.to_toml(), &[]).unwrap();
        assert_eq!(c, again);
    }

    fn sites(name: &str, overrides: &[&str]) -> Vec<String> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let config = crate::load_config(name, &o).unwrap();
        crate::Plan::new(&config.model, [1, 28, 28])
            .unwrap()
            .site_names()
    }

    #[test]
    fn dropout_and_batch_norm_toggles_insert_named_layers() {
        assert_eq!(
            sites("mlp-2x128", &["model.dropout=0.5", "model.batch_norm=true"]),
            [
                "flatten",
                "fc1",
                "fc1.bn",
                "fc1.relu",
                "fc1.dropout",
                "fc2",
                "fc2.bn",
                "fc2.relu",
                "fc2.dropout",
                "logits"
            ]
        );
        // cnn-bn lists batch norm and one dropout; the toggles remove them all, and the
        // names of the remaining sites do not change.
        let plain = sites("cnn-bn", &["model.dropout=0", "model.batch_norm=false"]);
        let listed = sites("cnn-bn", &[]);
        assert!(plain.iter().all(|s| listed.contains(s)), "{plain:?}");
        assert!(
            plain
                .iter()
                .all(|s| !s.ends_with(".bn") && !s.ends_with(".dropout")),
            "{plain:?}"
        );
        assert_eq!(plain.len(), listed.len() - 5);
        // Turning batch norm on where it is listed adds it only after fc1.
        let on = sites("cnn-bn", &["model.batch_norm=true"]);
        assert_eq!(on.len(), listed.len() + 1);
        assert!(on.contains(&"fc1.bn".to_string()));
    }

    #[test]
    fn width_scales_hidden_layers_only() {
        let o = ["model.width=0.5".to_string()];
        let c = crate::load_config("cnn-small", &o).unwrap();
        let plan = crate::Plan::new(&c.model, [1, 28, 28]).unwrap();
        // 16 and 32 channels, 128 hidden units, halved; the 10 class scores stay.
        assert_eq!(plan.shape_at("conv1").unwrap().dims()[0], 8);
        assert_eq!(plan.shape_at("conv2").unwrap().dims()[0], 16);
        assert_eq!(plan.shape_at("fc1").unwrap().units(), 64);
        assert_eq!(plan.num_classes(), 10);
        // The knobs are applied once: the saved config reads back to the same layers.
        let again = RunConfig::from_toml(&c.to_toml(), &[]).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn bad_knob_values_name_the_field() {
        for (set, needle) in [
            ("model.width=0", "model.width = 0"),
            ("model.width=nan", "model.width = NaN"),
            ("model.dropout=1.0", "model.dropout = 1"),
            ("model.dropout=-0.1", "model.dropout = -0.1"),
        ] {
            let err = err_of(&[set]);
            assert!(err.contains(needle), "{set}: {err}");
        }
        assert!(err_of(&["model.batch_norm=3"]).contains("batch_norm"));
    }
}
