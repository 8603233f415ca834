//! The network plan: each layer with its site name and output shape, inferred from the
//! input shape before any tensor exists. Every impossible shape is caught here.

use crate::config::{LayerSpec, ModelConfig};
use crate::layer::LayerKind;
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// The shape of one example at a site: a stack of feature maps or a flat vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Shape {
    Map { c: usize, h: usize, w: usize },
    Flat(usize),
}

impl Shape {
    /// Units at this site: channels of a map, features of a vector.
    pub fn units(&self) -> usize {
        match *self {
            Shape::Map { c, .. } => c,
            Shape::Flat(n) => n,
        }
    }

    /// Values per example. Every shape of a [`Plan`] has a `numel` that fits in a
    /// `usize` (the plan checks [`Shape::checked_numel`]).
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Map { c, h, w } => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    /// [`Shape::numel`], or `None` when it overflows.
    pub fn checked_numel(&self) -> Option<usize> {
        match *self {
            Shape::Map { c, h, w } => c.checked_mul(h)?.checked_mul(w),
            Shape::Flat(n) => Some(n),
        }
    }

    /// Spatial positions per unit (1 for a vector).
    pub fn positions(&self) -> usize {
        match *self {
            Shape::Map { h, w, .. } => h * w,
            Shape::Flat(_) => 1,
        }
    }

    /// Dimensions without the batch axis.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Map { c, h, w } => vec![c, h, w],
            Shape::Flat(n) => vec![n],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map { c, h, w } => write!(f, "{c}x{h}x{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// One step of the forward pass: the layer spec, its site name and its output shape.
#[derive(Clone, Debug, Serialize)]
pub struct Stage {
    pub site: String,
    pub kind: LayerKind,
    #[serde(skip)]
    pub spec: LayerSpec,
    pub input: Shape,
    pub output: Shape,
    /// Trainable parameters of the layer (weights and biases; batch norm's scale and
    /// shift).
    pub params: usize,
}

/// All stages in order, with a lookup from site name to position.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub input: Shape,
    pub stages: Vec<Stage>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl Plan {
    /// Infers every stage's shape from `input` ([c, h, w] of the dataset) and names sites.
    pub fn new(model: &ModelConfig, input: [usize; 3]) -> Result<Self> {
        let input = Shape::Map {
            c: input[0],
            h: input[1],
            w: input[2],
        };
        if input.dims().contains(&0) || input.checked_numel().is_none() {
            bail!("input shape {input}: every size must be at least 1 and their product fit in memory");
        }
        let mut namer = Namer::new(&model.layers);
        let mut stages = Vec::with_capacity(model.layers.len());
        let mut shape = input;
        for (i, spec) in model.layers.iter().enumerate() {
            let (out, params) = output_shape(spec, shape)
                .and_then(|out| {
                    if out.checked_numel().is_none() {
                        bail!("its output {out} has more values per example than a usize holds");
                    }
                    Ok((out, layer_params(spec, shape, out)?))
                })
                .map_err(|e| {
                    anyhow::anyhow!(
                        "model.layers[{i}] ({}): {e} (input shape {shape})",
                        spec.kind()
                    )
                })?;
            let site = namer.name(i, spec);
            stages.push(Stage {
                site,
                kind: spec.kind(),
                spec: spec.clone(),
                input: shape,
                output: out,
                params,
            });
            shape = out;
        }
        if !matches!(shape, Shape::Flat(_)) {
            bail!(
                "model `{}`: the last layer outputs {shape}, not a vector of class scores; end with flatten and linear",
                model.name
            );
        }
        if stages
            .iter()
            .try_fold(0usize, |total, s| total.checked_add(s.params))
            .is_none()
        {
            bail!("model `{}`: its parameter count overflows", model.name);
        }
        let mut index = HashMap::new();
        for (i, s) in stages.iter().enumerate() {
            if index.insert(s.site.clone(), i).is_some() {
                bail!(
                    "model.layers[{i}]: site name `{}` is used twice; give the layer an explicit `name`",
                    s.site
                );
            }
        }
        Ok(Self {
            input,
            stages,
            index,
        })
    }

    /// Position of a site, or an error listing the sites that exist.
    pub fn site_index(&self, site: &str) -> Result<usize> {
        self.index.get(site).copied().ok_or_else(|| {
            anyhow::anyhow!(
                "no site named `{site}`; this network has: {}",
                self.site_names().join(", ")
            )
        })
    }

    pub fn site_names(&self) -> Vec<String> {
        self.stages.iter().map(|s| s.site.clone()).collect()
    }

    pub fn shape_at(&self, site: &str) -> Result<Shape> {
        Ok(self.stages[self.site_index(site)?].output)
    }

    pub fn num_classes(&self) -> usize {
        self.stages.last().map(|s| s.output.units()).unwrap_or(0)
    }

    /// Trainable parameters of the whole network. Cannot overflow: the total is checked
    /// when the plan is built.
    pub fn parameters(&self) -> usize {
        self.stages.iter().map(|s| s.params).sum()
    }

    /// Refuses a network whose output is narrower than the dataset's classes (a label
    /// would index past the scores) or that has nothing to train.
    pub fn check_trainable(&self, classes: usize, dataset: &str) -> Result<()> {
        let last = self.stages.len() - 1;
        let scores = self.num_classes();
        if scores < classes {
            bail!(
                "model.layers[{last}] ({}): the network outputs {scores} class scores but \
                 dataset {dataset} has {classes} classes; make its out_features {classes}",
                self.stages[last].kind
            );
        }
        if self.parameters() == 0 {
            bail!(
                "the network has no parameters to train (layers: {}); add a linear or conv2d layer",
                self.stages
                    .iter()
                    .map(|s| s.kind.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(())
    }

    /// Hidden sites where units are conventionally recorded and ablated: the output of each
    /// nonlinearity (after the relu), as in Morcos et al. 2018.
    pub fn hidden_sites(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|s| s.kind.is_hidden_site())
            .map(|s| s.site.clone())
            .collect()
    }
}

fn conv_out(size: usize, kernel: usize, stride: usize, padding: usize) -> Result<usize> {
    let padded = padding
        .checked_mul(2)
        .and_then(|p| p.checked_add(size))
        .ok_or_else(|| anyhow::anyhow!("padding {padding} is too large"))?;
    if padded < kernel {
        bail!("kernel {kernel} is larger than the padded input ({padded})");
    }
    if stride == 0 || kernel == 0 {
        bail!("kernel and stride must be at least 1");
    }
    Ok((padded - kernel) / stride + 1)
}

/// Trainable parameters of one layer, with every product checked.
fn layer_params(spec: &LayerSpec, input: Shape, output: Shape) -> Result<usize> {
    let too_large = || anyhow::anyhow!("{output} outputs: its parameter count overflows");
    let (weights, biases) = match spec {
        LayerSpec::Conv2d { kernel, .. } => (
            input
                .units()
                .checked_mul(output.units())
                .and_then(|n| n.checked_mul(*kernel))
                .and_then(|n| n.checked_mul(*kernel)),
            output.units(),
        ),
        LayerSpec::Linear { .. } => (input.units().checked_mul(output.units()), output.units()),
        LayerSpec::Batchnorm { .. } => (Some(input.units()), input.units()),
        _ => (Some(0), 0),
    };
    weights
        .and_then(|w| w.checked_add(biases))
        .ok_or_else(too_large)
}

fn output_shape(spec: &LayerSpec, input: Shape) -> Result<Shape> {
    let need_map = |what: &str| -> Result<(usize, usize, usize)> {
        match input {
            Shape::Map { c, h, w } => Ok((c, h, w)),
            Shape::Flat(_) => bail!("{what} needs feature maps but gets a flat vector"),
        }
    };
    Ok(match spec {
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            ..
        } => {
            let (c, h, w) = need_map("conv2d")?;
            if let Some(ic) = in_channels {
                if *ic != c {
                    bail!("in_channels = {ic} but the input has {c} channels");
                }
            }
            Shape::Map {
                c: *out_channels,
                h: conv_out(h, *kernel, *stride, *padding)?,
                w: conv_out(w, *kernel, *stride, *padding)?,
            }
        }
        LayerSpec::Maxpool { kernel, stride, .. } | LayerSpec::Avgpool { kernel, stride, .. } => {
            let (c, h, w) = need_map(spec.kind().name())?;
            let s = stride.unwrap_or(*kernel);
            Shape::Map {
                c,
                h: conv_out(h, *kernel, s, 0)?,
                w: conv_out(w, *kernel, s, 0)?,
            }
        }
        LayerSpec::Linear {
            in_features,
            out_features,
            ..
        } => {
            let Shape::Flat(n) = input else {
                bail!("linear needs a flat vector but gets {input}; insert a flatten layer");
            };
            if let Some(f) = in_features {
                if *f != n {
                    bail!("in_features = {f} but the input has {n} features");
                }
            }
            Shape::Flat(*out_features)
        }
        LayerSpec::Flatten { .. } => Shape::Flat(
            input
                .checked_numel()
                .ok_or_else(|| anyhow::anyhow!("{input} values per example overflow"))?,
        ),
        LayerSpec::Relu { .. } | LayerSpec::Batchnorm { .. } | LayerSpec::Dropout { .. } => input,
    })
}

/// Default site names, following the conventions of the field (`conv1`, `fc1.relu`, `logits`).
struct Namer {
    last_linear: Option<usize>,
    convs: usize,
    linears: usize,
    pools: usize,
    parent: String,
}

impl Namer {
    fn new(layers: &[LayerSpec]) -> Self {
        let last_linear = layers
            .iter()
            .rposition(|l| matches!(l, LayerSpec::Linear { .. }));
        Self {
            last_linear,
            convs: 0,
            linears: 0,
            pools: 0,
            parent: "input".into(),
        }
    }

    fn name(&mut self, i: usize, spec: &LayerSpec) -> String {
        let auto = match spec {
            LayerSpec::Conv2d { .. } => {
                self.convs += 1;
                format!("conv{}", self.convs)
            }
            LayerSpec::Linear { .. } => {
                self.linears += 1;
                if Some(i) == self.last_linear {
                    "logits".to_string()
                } else {
                    format!("fc{}", self.linears)
                }
            }
            LayerSpec::Maxpool { .. } | LayerSpec::Avgpool { .. } => {
                self.pools += 1;
                format!("pool{}", self.pools)
            }
            LayerSpec::Flatten { .. } => "flatten".into(),
            LayerSpec::Relu { .. } => format!("{}.relu", self.parent),
            LayerSpec::Batchnorm { .. } => format!("{}.bn", self.parent),
            LayerSpec::Dropout { .. } => format!("{}.dropout", self.parent),
        };
        let name = spec.explicit_name().map(str::to_string).unwrap_or(auto);
        if matches!(spec, LayerSpec::Conv2d { .. } | LayerSpec::Linear { .. }) {
            self.parent = name.clone();
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

    fn cnn_small() -> ModelConfig {
        RunConfig::from_toml(crate::models::builtin("cnn-small").unwrap(), &[])
            .unwrap()
            .model
    }

    #[test]
    fn cnn_small_sites_and_shapes() {
        let plan = Plan::new(&cnn_small(), [1, 28, 28]).unwrap();
        let names = plan.site_names();
        assert_eq!(
            names,
            [
                "conv1",
                "conv1.relu",
                "pool1",
                "conv2",
                "conv2.relu",
                "pool2",
                "flatten",
                "fc1",
                "fc1.relu",
                "logits"
            ]
        );
        // 28 -> conv pad 2 (28) -> pool (14) -> conv (14) -> pool (7); 32*7*7 = 1568.
        assert_eq!(plan.shape_at("flatten").unwrap(), Shape::Flat(1568));
        assert_eq!(
            plan.shape_at("conv2.relu").unwrap(),
            Shape::Map {
                c: 32,
                h: 14,
                w: 14
            }
        );
        assert_eq!(plan.num_classes(), 10);
        assert_eq!(
            plan.hidden_sites(),
            ["conv1.relu", "conv2.relu", "fc1.relu"]
        );
    }

    #[test]
    fn mismatched_linear_is_rejected_naming_the_layer() {
        let mut m = cnn_small();
        m.layers[7] = LayerSpec::Linear {
            name: None,
            in_features: Some(1000),
            out_features: 128,
        };
        let err = Plan::new(&m, [1, 28, 28]).unwrap_err().to_string();
        assert!(
            err.contains("model.layers[7]") && err.contains("1568"),
            "{err}"
        );
    }

    #[test]
    fn linear_without_flatten_is_rejected() {
        let mut m = cnn_small();
        m.layers.remove(6);
        let err = Plan::new(&m, [1, 28, 28]).unwrap_err().to_string();
        assert!(err.contains("flatten"), "{err}");
    }

    #[test]
    fn kernel_larger_than_input_is_rejected() {
        let m = cnn_small();
        let err = Plan::new(&m, [1, 2, 2]).unwrap_err().to_string();
        assert!(err.contains("kernel"), "{err}");
    }

    fn conv(out_channels: usize, kernel: usize, stride: usize, padding: usize) -> LayerSpec {
        LayerSpec::Conv2d {
            name: None,
            in_channels: None,
            out_channels,
            kernel,
            stride,
            padding,
        }
    }

    fn err_with(layer: usize, spec: LayerSpec, input: [usize; 3]) -> String {
        let mut m = cnn_small();
        m.layers[layer] = spec;
        Plan::new(&m, input).unwrap_err().to_string()
    }

    #[test]
    fn sizes_that_overflow_are_errors_naming_the_layer() {
        let huge = i64::MAX as usize;
        // Padding: 2 * padding overflows, or the padded size does.
        for padding in [huge, usize::MAX, 1 << 62] {
            let err = err_with(0, conv(16, 5, 1, padding), [1, 28, 28]);
            assert!(err.contains("model.layers[0]"), "{padding}: {err}");
        }
        // 2^63 - 1 channels of 28 x 28 values overflow the values per example.
        let err = err_with(0, conv(huge, 5, 1, 2), [1, 28, 28]);
        assert!(
            err.contains("model.layers[0]") && err.contains("values"),
            "{err}"
        );
        // 128 x (2^63 - 1) weights overflow the parameter count.
        let linear = LayerSpec::Linear {
            name: None,
            in_features: None,
            out_features: huge,
        };
        let err = err_with(9, linear, [1, 28, 28]);
        assert!(
            err.contains("model.layers[9]") && err.contains("parameter"),
            "{err}"
        );
        // Unvalidated zeros are errors too, not a division by zero.
        let err = err_with(0, conv(16, 5, 0, 2), [1, 28, 28]);
        assert!(err.contains("stride"), "{err}");
    }

    #[test]
    fn inputs_with_a_zero_or_an_overflowing_size_are_refused() {
        for input in [[0, 28, 28], [1, usize::MAX, usize::MAX], [1, 0, 28]] {
            let err = Plan::new(&cnn_small(), input).unwrap_err().to_string();
            assert!(err.contains("input shape"), "{input:?}: {err}");
        }
    }

    #[test]
    fn parameters_are_counted_by_hand() {
        let plan = Plan::new(&cnn_small(), [1, 28, 28]).unwrap();
        // conv1 16*1*25 + 16, conv2 32*16*25 + 32, fc1 1568*128 + 128, logits 128*10 + 10.
        assert_eq!(plan.parameters(), 416 + 12_832 + 200_832 + 1_290);
        assert!(plan.check_trainable(10, "mnist").is_ok());
        let err = plan.check_trainable(11, "wide").unwrap_err().to_string();
        assert!(
            err.contains("model.layers[9]") && err.contains("11 classes"),
            "{err}"
        );
    }

    #[test]
    fn unknown_site_lists_the_real_ones() {
        let plan = Plan::new(&cnn_small(), [1, 28, 28]).unwrap();
        let err = plan.site_index("fc9").unwrap_err().to_string();
        assert!(err.contains("fc9") && err.contains("conv1.relu"), "{err}");
    }
}
