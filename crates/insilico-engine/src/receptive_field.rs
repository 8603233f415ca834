//! Theoretical receptive fields: which input pixels each position of a site can see,
//! computed from the plan alone (Araujo, Norris and Sim 2019, "Computing receptive fields
//! of convolutional neural networks").
//!
//! Along one axis, a layer with kernel `k`, stride `s` and padding `p` maps the receptive
//! field of its input (size `r`, jump `j` between neighbouring positions, first pixel `f`
//! of position 0) to
//!
//! ```text
//! r' = r + (k - 1) j        j' = j s        f' = f - p j
//! ```
//!
//! Position `y` of the site then sees input pixels `f + y j ..= f + y j + r - 1` (some of
//! them padding when outside the image). Pointwise layers (relu, batch norm, dropout)
//! change nothing; flatten and linear layers mix every position, so their units see the
//! whole input. Kernels, strides and padding are square, so one set of numbers serves both
//! axes.

use crate::config::LayerSpec;
use crate::plan::{Plan, Shape};
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The theoretical receptive field of the units at one site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReceptiveField {
    /// Position `(y, x)` of a feature map sees the `size` x `size` input pixels whose top
    /// left one is `(first + y * jump, first + x * jump)`; `first` is negative where
    /// padding lies before the image.
    Local {
        size: usize,
        jump: usize,
        first: i64,
    },
    /// A unit of a vector (after flatten or linear): it sees the whole input.
    Whole,
}

/// A rectangle of input pixels: rows `y0..y0 + height`, columns `x0..x0 + width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub y0: usize,
    pub x0: usize,
    pub height: usize,
    pub width: usize,
}

impl ReceptiveField {
    /// The field of the input itself: one pixel per position.
    pub const PIXEL: ReceptiveField = ReceptiveField::Local {
        size: 1,
        jump: 1,
        first: 0,
    };

    /// Side of the field in input pixels; the whole input's larger side for [`Whole`].
    ///
    /// [`Whole`]: ReceptiveField::Whole
    pub fn size(&self, input: [usize; 2]) -> usize {
        match *self {
            ReceptiveField::Local { size, .. } => size,
            ReceptiveField::Whole => input[0].max(input[1]),
        }
    }

    /// The centre of the field of position `(y, x)` in input pixel coordinates (pixel `i`
    /// spans `i - 0.5 .. i + 0.5`), as `(row, column)`. For [`Whole`] the image centre.
    ///
    /// [`Whole`]: ReceptiveField::Whole
    pub fn centre(&self, position: (usize, usize), input: [usize; 2]) -> (f64, f64) {
        match *self {
            ReceptiveField::Local { size, jump, first } => {
                let along =
                    |p: usize| (first + (p * jump) as i64) as f64 + (size as f64 - 1.0) / 2.0;
                (along(position.0), along(position.1))
            }
            ReceptiveField::Whole => ((input[0] as f64 - 1.0) / 2.0, (input[1] as f64 - 1.0) / 2.0),
        }
    }

    /// The pixels of an `input` (`[h, w]`) image that position `(y, x)` sees, widened by
    /// `margin` pixels on every side and clipped to the image: the crop that shows a
    /// unit's whole receptive field and a thin frame of context.
    pub fn window(&self, position: (usize, usize), margin: usize, input: [usize; 2]) -> Window {
        let ReceptiveField::Local { size, jump, first } = *self else {
            return Window {
                y0: 0,
                x0: 0,
                height: input[0],
                width: input[1],
            };
        };
        let span = |p: usize, len: usize| {
            let lo = first + (p * jump) as i64 - margin as i64;
            let hi = lo + (size + 2 * margin) as i64;
            let (lo, hi) = (lo.clamp(0, len as i64), hi.clamp(0, len as i64));
            (lo as usize, (hi - lo) as usize)
        };
        let (y0, height) = span(position.0, input[0]);
        let (x0, width) = span(position.1, input[1]);
        Window {
            y0,
            x0,
            height,
            width,
        }
    }

    /// The field after one more layer.
    fn then(self, layer: Geometry) -> Self {
        match (self, layer) {
            (ReceptiveField::Whole, _) | (_, Geometry::Mixing) => ReceptiveField::Whole,
            (field, Geometry::Pointwise) => field,
            (
                ReceptiveField::Local { size, jump, first },
                Geometry::Window {
                    kernel,
                    stride,
                    padding,
                },
            ) => ReceptiveField::Local {
                size: size + (kernel - 1) * jump,
                jump: jump * stride,
                first: first - (padding * jump) as i64,
            },
        }
    }
}

/// The spatial footprint of a layer.
#[derive(Clone, Copy, Debug)]
enum Geometry {
    /// A sliding window over the map (convolution, pooling).
    Window {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    /// Each output position reads the same input position (relu, batch norm, dropout).
    Pointwise,
    /// Each output reads every position (flatten, linear).
    Mixing,
}

/// The only place that looks at layer kinds.
fn geometry(spec: &LayerSpec) -> Geometry {
    match *spec {
        LayerSpec::Conv2d {
            kernel,
            stride,
            padding,
            ..
        } => Geometry::Window {
            kernel,
            stride,
            padding,
        },
        LayerSpec::Maxpool { kernel, stride, .. } | LayerSpec::Avgpool { kernel, stride, .. } => {
            Geometry::Window {
                kernel,
                stride: stride.unwrap_or(kernel),
                padding: 0,
            }
        }
        LayerSpec::Relu { .. } | LayerSpec::Batchnorm { .. } | LayerSpec::Dropout { .. } => {
            Geometry::Pointwise
        }
        LayerSpec::Linear { .. } | LayerSpec::Flatten { .. } => Geometry::Mixing,
    }
}

/// Every site's theoretical receptive field, in plan order.
pub fn receptive_fields(plan: &Plan) -> Vec<(String, ReceptiveField)> {
    let mut field = ReceptiveField::PIXEL;
    plan.stages
        .iter()
        .map(|stage| {
            field = field.then(geometry(&stage.spec));
            (stage.site.clone(), field)
        })
        .collect()
}

/// The theoretical receptive field of one site (an error lists the sites that exist).
pub fn receptive_field(plan: &Plan, site: &str) -> Result<ReceptiveField> {
    let i = plan.site_index(site)?;
    Ok(receptive_fields(plan)[i].1)
}

/// The position whose unit stands for a channel of a feature map: the centre of the map,
/// `(h / 2, w / 2)` (the convention of the neuron objectives); `(0, 0)` for a vector.
pub fn centre_position(shape: Shape) -> (usize, usize) {
    match shape {
        Shape::Map { h, w, .. } => (h / 2, w / 2),
        Shape::Flat(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_config;

    fn fields(config: &str, input: [usize; 3]) -> Vec<(String, ReceptiveField)> {
        let model = load_config(config, &[]).unwrap().model;
        receptive_fields(&Plan::new(&model, input).unwrap())
    }

    fn local(size: usize, jump: usize, first: i64) -> ReceptiveField {
        ReceptiveField::Local { size, jump, first }
    }

    fn expect(config: &str, input: [usize; 3], want: &[(&str, ReceptiveField)]) {
        let got = fields(config, input);
        let got: Vec<(&str, ReceptiveField)> = got.iter().map(|(s, f)| (s.as_str(), *f)).collect();
        assert_eq!(got, want, "{config}");
    }

    #[test]
    fn cnn_small_matches_the_hand_calculation() {
        // conv1 5x5 pad 2: r = 1 + 4 = 5, j = 1, f = 0 - 2 = -2.
        // pool1 2x2 stride 2: r = 5 + 1 = 6, j = 2, f = -2.
        // conv2 5x5 pad 2: r = 6 + 4 * 2 = 14, j = 2, f = -2 - 2 * 2 = -6.
        // pool2 2x2 stride 2: r = 14 + 1 * 2 = 16, j = 4, f = -6.
        let (c1, p1, c2, p2) = (
            local(5, 1, -2),
            local(6, 2, -2),
            local(14, 2, -6),
            local(16, 4, -6),
        );
        let w = ReceptiveField::Whole;
        expect(
            "cnn-small",
            [1, 28, 28],
            &[
                ("conv1", c1),
                ("conv1.relu", c1),
                ("pool1", p1),
                ("conv2", c2),
                ("conv2.relu", c2),
                ("pool2", p2),
                ("flatten", w),
                ("fc1", w),
                ("fc1.relu", w),
                ("logits", w),
            ],
        );
    }

    #[test]
    fn cnn_bn_matches_the_hand_calculation() {
        // 3x3 pad 1 convs: r grows by 2 j, f drops by j. conv1: 3, 1, -1; conv2: 5, 1, -2;
        // pool1: 6, 2, -2; conv3: 6 + 4 = 10, 2, -4; conv4: 14, 2, -6; pool2: 16, 4, -6.
        let (c1, c2, p1) = (local(3, 1, -1), local(5, 1, -2), local(6, 2, -2));
        let (c3, c4, p2) = (local(10, 2, -4), local(14, 2, -6), local(16, 4, -6));
        let w = ReceptiveField::Whole;
        let mut want = Vec::new();
        for (conv, f) in [("conv1", c1), ("conv2", c2)] {
            for suffix in ["", ".bn", ".relu"] {
                want.push((format!("{conv}{suffix}"), f));
            }
        }
        want.push(("pool1".into(), p1));
        for (conv, f) in [("conv3", c3), ("conv4", c4)] {
            for suffix in ["", ".bn", ".relu"] {
                want.push((format!("{conv}{suffix}"), f));
            }
        }
        want.push(("pool2".into(), p2));
        for s in ["flatten", "fc1", "fc1.relu", "fc1.dropout", "logits"] {
            want.push((s.into(), w));
        }
        let want: Vec<(&str, ReceptiveField)> =
            want.iter().map(|(s, f)| (s.as_str(), *f)).collect();
        expect("cnn-bn", [3, 32, 32], &want);
    }

    #[test]
    fn cnn_plain8_matches_the_hand_calculation() {
        // 3x3 pad 1 convs: r grows by 2 j, f drops by j; 2x2 pools: r grows by j, j doubles.
        // conv1: 3, 1, -1; pool1: 4, 2, -1; conv2: 8, 2, -3; conv3: 12, 2, -5;
        // pool2: 14, 4, -5; conv4: 22, 4, -9; conv5: 30, 4, -13; conv6: 38, 4, -17.
        let (c1, p1, c2, c3) = (
            local(3, 1, -1),
            local(4, 2, -1),
            local(8, 2, -3),
            local(12, 2, -5),
        );
        let (p2, c4, c5, c6) = (
            local(14, 4, -5),
            local(22, 4, -9),
            local(30, 4, -13),
            local(38, 4, -17),
        );
        let w = ReceptiveField::Whole;
        let mut want = vec![("conv1", c1), ("conv1.relu", c1), ("pool1", p1)];
        want.extend([
            ("conv2", c2),
            ("conv2.relu", c2),
            ("conv3", c3),
            ("conv3.relu", c3),
        ]);
        want.push(("pool2", p2));
        want.extend([
            ("conv4", c4),
            ("conv4.relu", c4),
            ("conv5", c5),
            ("conv5.relu", c5),
        ]);
        want.extend([("conv6", c6), ("conv6.relu", c6)]);
        for s in ["flatten", "fc1", "fc1.relu", "logits"] {
            want.push((s, w));
        }
        expect("cnn-plain8", [1, 28, 28], &want);
    }

    #[test]
    fn mlps_see_the_whole_input_everywhere() {
        // A linear layer mixes every input unit: every site after the flatten sees the
        // whole image.
        for (config, hidden) in [("mlp-2x128", 2), ("mlp-2x512", 2), ("mlp-6x128", 6)] {
            let w = ReceptiveField::Whole;
            let names: Vec<String> = std::iter::once("flatten".to_string())
                .chain((1..=hidden).flat_map(|i| [format!("fc{i}"), format!("fc{i}.relu")]))
                .chain(std::iter::once("logits".to_string()))
                .collect();
            let want: Vec<(&str, ReceptiveField)> = names.iter().map(|n| (n.as_str(), w)).collect();
            expect(config, [1, 28, 28], &want);
        }
    }

    #[test]
    fn every_shipped_config_is_covered_by_a_hand_calculation() {
        // A new config in configs/ needs its own hand calculation above.
        let mut shipped: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect();
        shipped.sort();
        assert_eq!(
            shipped,
            [
                "cnn-bn.toml",
                "cnn-plain8.toml",
                "cnn-small.toml",
                "mlp-2x128.toml",
                "mlp-2x512.toml",
                "mlp-6x128.toml"
            ]
        );
    }

    #[test]
    fn centres_and_windows_of_cnn_small_conv2() {
        // conv2 of cnn-small: 14x14 maps; the centre position (7, 7) sees pixels
        // -6 + 14 = 8 ..= 21, centred on 14.5; with a margin of 1: 7 ..= 22.
        let field = local(14, 2, -6);
        assert_eq!(field.centre((7, 7), [28, 28]), (14.5, 14.5));
        let w = field.window((7, 7), 1, [28, 28]);
        assert_eq!((w.y0, w.x0, w.height, w.width), (7, 7, 16, 16));
        // Position (0, 13): rows -6..=7 clip to 0..=7; columns 20..=33 clip to 20..=27.
        let w = field.window((0, 13), 0, [28, 28]);
        assert_eq!((w.y0, w.height, w.x0, w.width), (0, 8, 20, 8));
        assert_eq!(
            ReceptiveField::Whole.window((0, 0), 3, [28, 30]),
            Window {
                y0: 0,
                x0: 0,
                height: 28,
                width: 30
            }
        );
        assert_eq!(ReceptiveField::Whole.centre((0, 0), [28, 28]), (13.5, 13.5));
    }

    #[test]
    fn a_unknown_site_names_the_real_ones() {
        let model = load_config("cnn-small", &[]).unwrap().model;
        let plan = Plan::new(&model, [1, 28, 28]).unwrap();
        let err = receptive_field(&plan, "conv9").unwrap_err().to_string();
        assert!(err.contains("conv9") && err.contains("conv1.relu"), "{err}");
        assert_eq!(receptive_field(&plan, "pool1").unwrap(), local(6, 2, -2));
    }
}
