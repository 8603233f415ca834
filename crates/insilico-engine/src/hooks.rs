//! The one hook mechanism every assay uses: record activations at named sites, edit them
//! (ablate with a mask and a replacement, patch, or any function), stop early, or resume
//! the forward pass from a cached activation.
//!
//! Ablation follows netdissect's single primitive, `x * (1 - mask) + replacement * mask`,
//! with a per-unit mask (a channel of a feature map, or a feature of a vector). A mask
//! tensor with `M` rows applies `M` different interventions to the same batch at once: the
//! batch of `B` examples becomes `M * B` rows, mask-major (row `m * B + b` is example `b`
//! under mask `m`), so a whole ablation sweep runs in a few forward passes.

use burn::tensor::{Tensor, TensorData};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The activation at a site for a batch: feature maps `[B, C, H, W]` or vectors `[B, N]`.
#[derive(Clone, Debug)]
pub enum Activation {
    Map(Tensor<4>),
    Flat(Tensor<2>),
}

impl Activation {
    pub fn batch(&self) -> usize {
        match self {
            Activation::Map(t) => t.dims()[0],
            Activation::Flat(t) => t.dims()[0],
        }
    }

    /// Units: channels of a map, features of a vector.
    pub fn units(&self) -> usize {
        match self {
            Activation::Map(t) => t.dims()[1],
            Activation::Flat(t) => t.dims()[1],
        }
    }

    /// Dimensions including the batch axis.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Activation::Map(t) => t.dims().to_vec(),
            Activation::Flat(t) => t.dims().to_vec(),
        }
    }

    /// Each unit's response per example, `[B, U]`: channels are averaged over space.
    pub fn unit_means(&self) -> Tensor<2> {
        match self {
            Activation::Map(t) => {
                let [b, c, _, _] = t.dims();
                t.clone().mean_dim(3).mean_dim(2).reshape([b, c])
            }
            Activation::Flat(t) => t.clone(),
        }
    }

    /// All values of each example in one row, `[B, U * H * W]`.
    pub fn flatten(self) -> Tensor<2> {
        match self {
            Activation::Map(t) => t.flatten(1, 3),
            Activation::Flat(t) => t,
        }
    }

    pub fn detach(self) -> Self {
        self.map(|t| t.detach(), |t| t.detach())
    }

    /// Rows `start..end` of the batch.
    pub fn narrow(&self, start: usize, len: usize) -> Self {
        self.clone()
            .map(|t| t.narrow(0, start, len), |t| t.narrow(0, start, len))
    }

    /// Stacks activations of the same site along the batch axis.
    pub fn cat(parts: Vec<Activation>) -> Self {
        match parts.first() {
            Some(Activation::Map(_)) => Activation::Map(Tensor::cat(
                parts.into_iter().map(|a| a.expect_map()).collect(),
                0,
            )),
            Some(Activation::Flat(_)) => Activation::Flat(Tensor::cat(
                parts.into_iter().map(|a| a.flatten()).collect(),
                0,
            )),
            None => panic!("Activation::cat of nothing"),
        }
    }

    /// The batch tiled `times` times (copy-major): row `m * B + b` is example `b`.
    pub fn tile(self, times: usize) -> Self {
        if times == 1 {
            return self;
        }
        self.map(|t| t.repeat_dim(0, times), |t| t.repeat_dim(0, times))
    }

    /// Values in row-major order.
    pub fn to_vec(&self) -> Vec<f32> {
        let data = match self {
            Activation::Map(t) => t.to_data(),
            Activation::Flat(t) => t.to_data(),
        };
        data.convert::<f32>()
            .try_into_vec::<f32>()
            .expect("float activations")
    }

    /// An activation from plain values, with `dims` including the batch axis.
    pub fn from_vec(values: Vec<f32>, dims: &[usize], device: &burn::tensor::Device) -> Self {
        match *dims {
            [b, c, h, w] => Activation::Map(Tensor::from_data(
                TensorData::new(values, [b, c, h, w]),
                device,
            )),
            [b, n] => Activation::Flat(Tensor::from_data(TensorData::new(values, [b, n]), device)),
            _ => panic!("activation dims must be [B, C, H, W] or [B, N], got {dims:?}"),
        }
    }

    pub fn expect_map(self) -> Tensor<4> {
        match self {
            Activation::Map(t) => t,
            Activation::Flat(t) => panic!("expected feature maps, got vectors {:?}", t.dims()),
        }
    }

    pub fn map(
        self,
        on_map: impl FnOnce(Tensor<4>) -> Tensor<4>,
        on_flat: impl FnOnce(Tensor<2>) -> Tensor<2>,
    ) -> Self {
        match self {
            Activation::Map(t) => Activation::Map(on_map(t)),
            Activation::Flat(t) => Activation::Flat(on_flat(t)),
        }
    }

    /// Applies per-unit values `[R, U]` (one row per intervention) so that they broadcast
    /// against this activation: `[R, U, 1, 1]` for maps, `[R, U]` for vectors.
    fn per_unit(&self, values: Tensor<2>) -> Activation {
        match self {
            Activation::Map(_) => {
                let [r, u] = values.dims();
                Activation::Map(values.reshape([r, u, 1, 1]))
            }
            Activation::Flat(_) => Activation::Flat(values),
        }
    }
}

/// A unit ablation: `x * (1 - mask) + replacement * mask`, per unit.
///
/// `mask` is `[M, U]` (0 keeps a unit, 1 silences it; fractions interpolate), and
/// `replacement` is `[1, U]` or `[M, U]` (zeros, or each unit's mean over the data).
#[derive(Clone, Debug)]
pub struct Ablation {
    pub mask: Tensor<2>,
    pub replacement: Tensor<2>,
    /// `true` (the default): the incoming batch of `B` is tiled into `M * B` rows.
    /// `false`: the batch already holds `M * B` rows, mask-major, from an ablation at an
    /// earlier site, and mask `m` applies to block `m` (ablating several sites at once).
    pub tile: bool,
}

impl Ablation {
    pub fn new(mask: Tensor<2>, replacement: Tensor<2>) -> Self {
        Self {
            mask,
            replacement,
            tile: true,
        }
    }

    /// For a second (third, ...) site of a multi-site ablation: see [`Ablation::tile`].
    pub fn aligned(mask: Tensor<2>, replacement: Tensor<2>) -> Self {
        Self {
            mask,
            replacement,
            tile: false,
        }
    }

    /// Number of interventions (rows of the mask).
    pub fn count(&self) -> usize {
        self.mask.dims()[0]
    }

    /// Applies the ablation to a batch of `B`, returning `M * B` rows (mask-major).
    pub fn apply(&self, x: Activation) -> Activation {
        let m = self.count();
        let b = if self.tile {
            x.batch()
        } else {
            assert_eq!(
                x.batch() % m,
                0,
                "aligned ablation: batch is not a multiple of {m}"
            );
            x.batch() / m
        };
        let [r, u] = self.replacement.dims();
        assert_eq!(
            u,
            x.units(),
            "ablation mask has {u} units, the site has {}",
            x.units()
        );
        assert!(
            r == 1 || r == m,
            "replacement must have 1 or {m} rows, has {r}"
        );
        let rows = |t: Tensor<2>| -> Tensor<2> {
            // [R, U] -> [R * B, U], each row repeated for the B examples it applies to.
            let [r, u] = t.dims();
            if r == 1 || b == 1 {
                t
            } else {
                t.reshape([r, 1, u]).repeat_dim(1, b).reshape([r * b, u])
            }
        };
        let mask = x.per_unit(rows(self.mask.clone()));
        let replacement = x.per_unit(rows(self.replacement.clone()));
        let x = if self.tile { x.tile(m) } else { x };
        match (x, mask, replacement) {
            (Activation::Map(x), Activation::Map(m), Activation::Map(r)) => {
                Activation::Map(x.clone() - x * m.clone() + r * m)
            }
            (Activation::Flat(x), Activation::Flat(m), Activation::Flat(r)) => {
                Activation::Flat(x.clone() - x * m.clone() + r * m)
            }
            _ => unreachable!("per_unit keeps the activation's kind"),
        }
    }
}

/// A function applied to a site's activation (noise injection, clamping, ...).
pub type EditFn = Arc<dyn Fn(Activation) -> Activation + Send + Sync>;

/// What to do to the activation at a site.
#[derive(Clone)]
// A handful of edits exist per forward pass: their size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Edit {
    Ablate(Ablation),
    /// Replace the activation by this one (same shape, or batch 1 to broadcast).
    Patch(Activation),
    Apply(EditFn),
}

impl std::fmt::Debug for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Edit::Ablate(a) => write!(f, "Ablate({} masks)", a.count()),
            Edit::Patch(p) => write!(f, "Patch({:?})", p.dims()),
            Edit::Apply(_) => write!(f, "Apply(fn)"),
        }
    }
}

impl Edit {
    pub fn apply(&self, x: Activation) -> Activation {
        match self {
            Edit::Ablate(a) => a.apply(x),
            Edit::Patch(p) => {
                let b = x.batch();
                if p.batch() == b {
                    p.clone()
                } else {
                    assert_eq!(p.batch(), 1, "patch batch must be 1 or {b}");
                    p.clone().tile(b)
                }
            }
            Edit::Apply(f) => f(x),
        }
    }
}

/// Which sites a run records.
#[derive(Clone, Debug, Default)]
pub enum Record {
    #[default]
    Nothing,
    All,
    Sites(HashSet<String>),
}

/// The hooks of one forward pass: what to record, what to edit, where to stop.
/// Edits at one site compose: they apply in the order they were added (an ablation,
/// then noise on what is left, say). Recorded activations are taken after the site's
/// edits.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub record: Record,
    pub edits: BTreeMap<String, Vec<Edit>>,
    /// Stop after this site (the output is then `None`): recording early layers is cheap.
    pub stop_after: Option<String>,
}

impl Hooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record these sites (TransformerLens' `run_with_cache` names filter).
    pub fn record<S: AsRef<str>>(mut self, sites: &[S]) -> Self {
        let mut set = match self.record {
            Record::Sites(s) => s,
            _ => HashSet::new(),
        };
        set.extend(sites.iter().map(|s| s.as_ref().to_string()));
        self.record = Record::Sites(set);
        self
    }

    pub fn record_all(mut self) -> Self {
        self.record = Record::All;
        self
    }

    /// Adds an edit at `site`, after those already there.
    pub fn edit(mut self, site: &str, edit: Edit) -> Self {
        self.edits.entry(site.into()).or_default().push(edit);
        self
    }

    pub fn ablate(self, site: &str, ablation: Ablation) -> Self {
        self.edit(site, Edit::Ablate(ablation))
    }

    pub fn patch(self, site: &str, value: Activation) -> Self {
        self.edit(site, Edit::Patch(value))
    }

    /// Applies any function to the site's activation (noise, clamping, ...).
    pub fn apply(self, site: &str, f: EditFn) -> Self {
        self.edit(site, Edit::Apply(f))
    }

    /// The activation at `site` after its edits, in the order they were added.
    pub fn edited(&self, site: &str, act: Activation) -> Activation {
        match self.edits.get(site) {
            Some(edits) => edits.iter().fold(act, |a, e| e.apply(a)),
            None => act,
        }
    }

    pub fn stop_after(mut self, site: &str) -> Self {
        self.stop_after = Some(site.into());
        self
    }

    pub(crate) fn wants(&self, site: &str) -> bool {
        match &self.record {
            Record::Nothing => false,
            Record::All => true,
            Record::Sites(s) => s.contains(site),
        }
    }

    /// Every site this hook set names, for validation against a network's sites.
    pub fn named_sites(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.edits.keys().map(String::as_str).collect();
        if let Record::Sites(s) = &self.record {
            names.extend(s.iter().map(String::as_str));
        }
        names.extend(self.stop_after.as_deref());
        names
    }
}

/// The result of a hooked forward pass: the output logits (unless stopped early) and the
/// recorded activations by site.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    pub output: Option<Tensor<2>>,
    pub cache: BTreeMap<String, Activation>,
}

impl Recording {
    /// The logits; panics if the run stopped early.
    pub fn logits(&self) -> Tensor<2> {
        self.output
            .clone()
            .expect("the run stopped before the output (stop_after was set)")
    }

    /// The recorded activation at a site; panics if it was not recorded.
    pub fn get(&self, site: &str) -> &Activation {
        self.cache
            .get(site)
            .unwrap_or_else(|| panic!("site `{site}` was not recorded"))
    }
}
