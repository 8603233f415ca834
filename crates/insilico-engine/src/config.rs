//! Run configuration: the network (a list of layers), training and data options.
//!
//! Configs are TOML files read with `deny_unknown_fields`, so a misspelt key is an error
//! naming the key rather than a silently ignored setting. Shapes are checked when the
//! network plan is built ([`crate::plan::Plan::new`]), before any training starts.

use crate::layer::LayerKind;
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
        let config: RunConfig = value.try_into()?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serializes")
    }

    /// Checks that do not need the dataset (shapes are checked by the plan).
    pub fn validate(&self) -> Result<()> {
        let t = &self.training;
        check(
            t.lr > 0.0 && t.lr.is_finite(),
            "training.lr",
            "must be a positive number",
        )?;
        check(t.epochs > 0, "training.epochs", "must be at least 1")?;
        check(
            t.batch_size > 0,
            "training.batch_size",
            "must be at least 1",
        )?;
        check(
            (0.0..1.0).contains(&t.momentum),
            "training.momentum",
            "must be in [0, 1)",
        )?;
        check(
            t.weight_decay >= 0.0,
            "training.weight_decay",
            "must be >= 0",
        )?;
        check(t.gamma > 0.0, "training.gamma", "must be > 0")?;
        check(
            t.step_every > 0,
            "training.step_every",
            "must be at least 1",
        )?;
        let d = &self.data;
        check(
            (0.0..=1.0).contains(&d.label_noise),
            "data.label_noise",
            "must be a fraction in [0, 1]",
        )?;
        check(
            d.train_limit != Some(0),
            "data.train_limit",
            "must be at least 1",
        )?;
        check(
            !self.model.layers.is_empty(),
            "model.layers",
            "must list at least one layer",
        )?;
        for (i, layer) in self.model.layers.iter().enumerate() {
            let bad = |field: &str, why: &str| {
                anyhow::anyhow!("model.layers[{i}] ({}).{field}: {why}", layer.kind())
            };
            match layer {
                LayerSpec::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    ..
                } => {
                    if *out_channels == 0 {
                        return Err(bad("out_channels", "must be at least 1"));
                    }
                    if *kernel == 0 {
                        return Err(bad("kernel", "must be at least 1"));
                    }
                    if *stride == 0 {
                        return Err(bad("stride", "must be at least 1"));
                    }
                }
                LayerSpec::Linear { out_features, .. } if *out_features == 0 => {
                    return Err(bad("out_features", "must be at least 1"));
                }
                LayerSpec::Maxpool { kernel, stride, .. }
                | LayerSpec::Avgpool { kernel, stride, .. }
                    if *kernel == 0 || *stride == Some(0) =>
                {
                    return Err(bad("kernel", "kernel and stride must be at least 1"));
                }
                LayerSpec::Dropout { p, .. } if !(0.0..1.0).contains(p) => {
                    return Err(bad("p", "must be in [0, 1)"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn check(ok: bool, field: &str, why: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        bail!("{field}: {why}")
    }
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

    #[test]
    fn round_trips_through_toml() {
        let c = RunConfig::from_toml(SMALL, &["data.train_limit=100".into()]).unwrap();
        let again = RunConfig::from_toml(&c.to_toml(), &[]).unwrap();
        assert_eq!(c, again);
    }
}
