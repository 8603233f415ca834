//! A network built from a [`ModelConfig`]: Burn modules in order, each output a named site.

use crate::config::{LayerSpec, ModelConfig};
use crate::hooks::{Activation, Hooks, Recording};
use crate::kernels::{self, ConvSpec};
use crate::plan::{Plan, Shape};
use anyhow::{bail, Result};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::tensor::{Device, Tensor};

/// Reshapes feature maps into one vector per example (a module so that it can sit in the
/// layer list like any other).
#[derive(Module, Debug, Default)]
pub struct Flatten;

/// One layer of a [`Network`].
#[derive(Module, Debug)]
pub enum Layer {
    Conv2d(Conv2d),
    Linear(Linear),
    BatchNorm(BatchNorm),
    Dropout(Dropout),
    Relu(Relu),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    Flatten(Flatten),
}

impl Layer {
    fn new(spec: &LayerSpec, input: Shape, device: &Device) -> Self {
        match spec {
            LayerSpec::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => Layer::Conv2d(
                Conv2dConfig::new([input.units(), *out_channels], [*kernel, *kernel])
                    .with_stride([*stride, *stride])
                    .with_padding(PaddingConfig2d::Explicit(
                        *padding, *padding, *padding, *padding,
                    ))
                    .init(device),
            ),
            LayerSpec::Linear { out_features, .. } => {
                Layer::Linear(LinearConfig::new(input.units(), *out_features).init(device))
            }
            LayerSpec::Batchnorm { .. } => {
                Layer::BatchNorm(BatchNormConfig::new(input.units()).init(device))
            }
            LayerSpec::Dropout { p, .. } => Layer::Dropout(DropoutConfig::new(*p).init()),
            LayerSpec::Relu { .. } => Layer::Relu(Relu::new()),
            LayerSpec::Maxpool { kernel, stride, .. } => {
                let s = stride.unwrap_or(*kernel);
                Layer::MaxPool(
                    MaxPool2dConfig::new([*kernel, *kernel])
                        .with_strides([s, s])
                        .init(),
                )
            }
            LayerSpec::Avgpool { kernel, stride, .. } => {
                let s = stride.unwrap_or(*kernel);
                Layer::AvgPool(
                    AvgPool2dConfig::new([*kernel, *kernel])
                        .with_strides([s, s])
                        .init(),
                )
            }
            LayerSpec::Flatten { .. } => Layer::Flatten(Flatten),
        }
    }

    fn forward(&self, x: Activation) -> Activation {
        use Activation::{Flat, Map};
        match (self, x) {
            (Layer::Conv2d(l), Map(t)) => Map(conv2d(l, t, false)),
            (Layer::Linear(l), Flat(t)) => Flat(linear(l, t)),
            (Layer::BatchNorm(l), Map(t)) => Map(l.forward(t)),
            (Layer::BatchNorm(l), Flat(t)) => Flat(l.forward(t)),
            (Layer::Dropout(l), x) => x.map(|t| l.forward(t), |t| l.forward(t)),
            (Layer::Relu(_), x) => x.map(burn::tensor::activation::relu, |t| {
                burn::tensor::activation::relu(t)
            }),
            (Layer::MaxPool(l), Map(t)) => Map(max_pool2d(l, t)),
            (Layer::AvgPool(l), Map(t)) => Map(l.forward(t)),
            (Layer::Flatten(_), x) => Flat(x.flatten()),
            (layer, x) => panic!(
                "layer {layer:?} cannot take an activation of shape {:?}; the plan should have caught this",
                x.dims()
            ),
        }
    }
}

/// A convolution, followed by a relu when `relu` is set: through the engine's own kernels
/// on the CPU (bias and relu fused), through Burn's elsewhere (wgpu keeps its kernels).
fn conv2d(conv: &Conv2d, x: Tensor<4>, relu: bool) -> Tensor<4> {
    let own = if kernels::supports(&x) {
        own_conv_spec(conv, relu)
    } else {
        None
    };
    match (own, &conv.bias) {
        (Some(spec), Some(bias)) => kernels::conv2d(x, conv.weight.val(), bias.val(), spec),
        _ if relu => burn::tensor::activation::relu(conv.forward(x)),
        _ => conv.forward(x),
    }
}

/// A linear layer: through the engine's kernels on the CPU (every layer [`Layer::new`]
/// builds has a bias), through Burn's elsewhere.
fn linear(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    match &layer.bias {
        Some(bias) if kernels::supports(&x) => kernels::linear(x, layer.weight.val(), bias.val()),
        _ => layer.forward(x),
    }
}

/// A max pooling: through the engine's kernel on the CPU where it covers the layer (square
/// window and stride, no padding or dilation: every max pooling [`Layer::new`] builds).
fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let [k, kw] = pool.kernel_size;
    let [s, sw] = pool.stride;
    let plain = k == kw
        && s == sw
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(
            pool.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        );
    if plain && kernels::supports(&x) {
        kernels::max_pool2d(
            x,
            kernels::PoolSpec {
                kernel: k,
                stride: s,
            },
        )
    } else {
        pool.forward(x)
    }
}

/// The kernel spec of a convolution the engine's kernels cover: symmetric explicit
/// padding, no dilation, no groups (every convolution [`Layer::new`] builds).
fn own_conv_spec(conv: &Conv2d, relu: bool) -> Option<ConvSpec> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        return None;
    };
    let plain = top == bottom && left == right && conv.dilation == [1, 1] && conv.groups == 1;
    plain.then_some(ConvSpec {
        stride: conv.stride,
        padding: [top, left],
        relu,
    })
}

/// A network with named sites. Build it with [`Network::new`]; run it with [`Network::run`]
/// (hooks), [`Network::forward`] (plain) or [`Network::resume`] (from a cached site).
#[derive(Module, Debug)]
pub struct Network {
    layers: Vec<Layer>,
    #[module(skip)]
    plan: Plan,
}

impl Network {
    /// Builds the network for inputs of shape `[c, h, w]`, checking every shape first.
    pub fn new(config: &ModelConfig, input: [usize; 3], device: &Device) -> Result<Self> {
        let plan = Plan::new(config, input)?;
        let layers = plan
            .stages
            .iter()
            .map(|s| Layer::new(&s.spec, s.input, device))
            .collect();
        Ok(Self { layers, plan })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Plain forward pass: images `[B, C, H, W]` to logits `[B, K]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run_from(0, Activation::Map(x), &Hooks::new())
            .output
            .expect("a run without stop_after has an output")
    }

    /// Forward pass with hooks. Panics on a site name the network lacks; call
    /// [`Network::check_hooks`] first where names come from a user.
    pub fn run(&self, x: Tensor<4>, hooks: &Hooks) -> Recording {
        self.run_from(0, Activation::Map(x), hooks)
    }

    /// Records the activations at `sites` (TransformerLens' `run_with_cache`).
    pub fn run_with_cache<S: AsRef<str>>(&self, x: Tensor<4>, sites: &[S]) -> Result<Recording> {
        let hooks = Hooks::new().record(sites);
        self.check_hooks(&hooks)?;
        Ok(self.run(x, &hooks))
    }

    /// Resumes the forward pass from `act`, the activation at `site` (as recorded), running
    /// only the layers downstream of it. Edits and recording at `site` itself apply too.
    pub fn resume(&self, site: &str, act: Activation, hooks: &Hooks) -> Result<Recording> {
        let i = self.plan.site_index(site)?;
        let expected = self.plan.stages[i].output.dims();
        if act.dims()[1..] != expected[..] {
            bail!(
                "cannot resume at `{site}`: expected activations of shape {:?} per example, got {:?}",
                expected,
                &act.dims()[1..]
            );
        }
        self.check_hooks(hooks)?;
        let mut rec = Recording::default();
        let act = self.visit_site(i, act, hooks, &mut rec);
        if hooks.stop_after.as_deref() == Some(site) {
            return Ok(rec);
        }
        let tail = self.run_from(i + 1, act, hooks);
        rec.cache.extend(tail.cache);
        rec.output = tail.output;
        Ok(rec)
    }

    /// Checks that every site named by `hooks` exists.
    pub fn check_hooks(&self, hooks: &Hooks) -> Result<()> {
        for site in hooks.named_sites() {
            self.plan.site_index(site)?;
        }
        Ok(())
    }

    fn run_from(&self, start: usize, mut act: Activation, hooks: &Hooks) -> Recording {
        let mut rec = Recording::default();
        let mut i = start;
        while i < self.layers.len() {
            act = match self.fusable_conv_relu(i, hooks) {
                Some(conv) => {
                    // The conv site is invisible to the hooks: skip straight to its relu.
                    i += 1;
                    Activation::Map(conv2d(conv, act.expect_map(), true))
                }
                None => self.layers[i].forward(act),
            };
            act = self.visit_site(i, act, hooks, &mut rec);
            if hooks.stop_after.as_deref() == Some(self.plan.stages[i].site.as_str()) {
                return rec;
            }
            i += 1;
        }
        rec.output = Some(act.flatten());
        rec
    }

    /// The convolution at `i` when a relu follows it and no hook touches the convolution's
    /// own site, so that the relu can be fused into it.
    fn fusable_conv_relu(&self, i: usize, hooks: &Hooks) -> Option<&Conv2d> {
        let (Layer::Conv2d(conv), Some(Layer::Relu(_))) = (&self.layers[i], self.layers.get(i + 1))
        else {
            return None;
        };
        let site = self.plan.stages[i].site.as_str();
        let touched = hooks.wants(site)
            || hooks.edits.contains_key(site)
            || hooks.stop_after.as_deref() == Some(site);
        (!touched).then_some(conv)
    }

    fn visit_site(
        &self,
        i: usize,
        act: Activation,
        hooks: &Hooks,
        rec: &mut Recording,
    ) -> Activation {
        let site = &self.plan.stages[i].site;
        let act = hooks.edited(site, act);
        if hooks.wants(site) {
            rec.cache.insert(site.clone(), act.clone());
        }
        act
    }

    /// The layer producing a site, for assays that use its weights (e.g. filters of conv1).
    pub fn layer(&self, site: &str) -> Result<&Layer> {
        Ok(&self.layers[self.plan.site_index(site)?])
    }

    /// Named parameter tensors in PyTorch's conventions (`conv1.weight` `[out, in, kh, kw]`,
    /// `fc1.weight` `[out, in]`, batch-norm `running_mean`...), for export.
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        let mut push = |name: String, t: Vec<usize>, v: Vec<f32>| out.push((name, t, v));
        for (stage, layer) in self.plan.stages.iter().zip(&self.layers) {
            let site = &stage.site;
            match layer {
                Layer::Conv2d(c) => {
                    let w = c.weight.val();
                    push(format!("{site}.weight"), w.dims().to_vec(), values(w));
                    if let Some(b) = &c.bias {
                        let b = b.val();
                        push(format!("{site}.bias"), b.dims().to_vec(), values(b));
                    }
                }
                Layer::Linear(l) => {
                    // Burn stores [in, out]; PyTorch and most tools expect [out, in].
                    let w = l.weight.val().transpose();
                    push(format!("{site}.weight"), w.dims().to_vec(), values(w));
                    if let Some(b) = &l.bias {
                        let b = b.val();
                        push(format!("{site}.bias"), b.dims().to_vec(), values(b));
                    }
                }
                Layer::BatchNorm(bn) => {
                    for (name, t) in [
                        ("weight", bn.gamma.val()),
                        ("bias", bn.beta.val()),
                        ("running_mean", bn.running_mean.value()),
                        ("running_var", bn.running_var.value()),
                    ] {
                        push(format!("{site}.{name}"), t.dims().to_vec(), values(t));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float parameters")
}
