//! Hand-built networks for the tuning and effective-receptive-field tests.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::{Network, RunConfig};

pub fn device() -> Device {
    Device::flex()
}

/// A network from a `[model]` TOML table whose convolution weights are `convs` (one
/// `[out, in, k, k]` row-major vector per conv layer, in order) and every other parameter
/// (biases, linear weights) zero.
pub fn hand_built(model_toml: &str, input: [usize; 3], convs: Vec<Vec<f32>>) -> Network {
    let config = RunConfig::from_toml(model_toml, &[]).unwrap();
    let net = Network::new(&config.model, input, &device()).unwrap();
    let mut setter = SetWeights { convs, next: 0 };
    let net = net.map(&mut setter);
    assert_eq!(
        setter.next,
        setter.convs.len(),
        "one weight vector per conv layer"
    );
    net
}

struct SetWeights {
    convs: Vec<Vec<f32>>,
    next: usize,
}

impl ModuleMapper for SetWeights {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let shape = t.shape();
            let device = t.device();
            let n = shape.num_elements();
            let values = if D == 4 {
                let v = self.convs[self.next].clone();
                self.next += 1;
                assert_eq!(v.len(), n, "conv weight size");
                v
            } else {
                vec![0.0; n]
            };
            Tensor::<D>::from_data(TensorData::new(values, shape), &device)
        })
    }
}
