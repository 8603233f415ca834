//! Kinds of layers and the properties of each that the assays rely on. Adding a layer
//! kind (GELU, another pooling, a strided convolution) is a variant here with its
//! properties, its spec in `config.rs`, its shape in `plan.rs` and its module in
//! `network.rs`; the assays ask these properties and never match on a layer's name.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    Conv2d,
    Linear,
    Relu,
    Maxpool,
    Avgpool,
    Batchnorm,
    Dropout,
    Flatten,
}

impl LayerKind {
    /// The name used in configs (`type = "conv2d"`) and messages.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Conv2d => "conv2d",
            LayerKind::Linear => "linear",
            LayerKind::Relu => "relu",
            LayerKind::Maxpool => "maxpool",
            LayerKind::Avgpool => "avgpool",
            LayerKind::Batchnorm => "batchnorm",
            LayerKind::Dropout => "dropout",
            LayerKind::Flatten => "flatten",
        }
    }

    /// Whether its output is a hidden site in the sense of Morcos et al. 2018: the output
    /// of a nonlinearity, where units are recorded and silenced by default.
    pub fn is_hidden_site(self) -> bool {
        matches!(self, LayerKind::Relu)
    }

    /// Whether it has weights that combine input units (conv and linear layers). Its
    /// output, before the nonlinearity, is where receptive fields are mapped by default.
    pub fn is_weighted(self) -> bool {
        matches!(self, LayerKind::Conv2d | LayerKind::Linear)
    }

    /// Whether a binary per-unit mask commutes with it (in evaluation mode):
    /// `f(x * (1 - m) + r * m) = f(x) * (1 - m) + f(r) * m` for `m` in {0, 1} per unit
    /// (constant over a channel's positions). True of per-unit element-wise maps (relu),
    /// per-channel pooling and affine maps (max and average pooling, batch norm in
    /// evaluation), dropout in evaluation and flatten; false of layers that mix units.
    pub fn commutes_with_unit_mask(self) -> bool {
        matches!(
            self,
            LayerKind::Relu
                | LayerKind::Maxpool
                | LayerKind::Avgpool
                | LayerKind::Batchnorm
                | LayerKind::Dropout
                | LayerKind::Flatten
        )
    }

    /// Whether its output is affine in its input units: `bias + sum_u L(x_u)`, where
    /// `x_u` is the input with every unit but `u` set to zero. Each unit's contribution
    /// can then be computed once ([`crate::linearize::unit_contributions`]).
    pub fn is_linear_in_units(self) -> bool {
        matches!(self, LayerKind::Conv2d | LayerKind::Linear)
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_that_mixes_units_neither_commutes_nor_is_skipped() {
        for kind in [LayerKind::Conv2d, LayerKind::Linear] {
            assert!(!kind.commutes_with_unit_mask() && kind.is_linear_in_units());
        }
        assert!(LayerKind::Relu.is_hidden_site() && LayerKind::Relu.commutes_with_unit_mask());
        let names: Vec<String> = serde_json::from_str::<Vec<LayerKind>>(r#"["conv2d","maxpool"]"#)
            .unwrap()
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(names, ["conv2d", "maxpool"]);
    }
}
