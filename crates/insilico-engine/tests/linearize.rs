//! The per-unit contributions on plain slices against the layer they decompose and
//! against the tensor path.

use burn::tensor::{Distribution, Tensor};
use insilico_engine::eval::to_vec;
use insilico_engine::linearize::{
    linearization, unit_contributions, unit_contributions_vec, Linearization,
};
use insilico_engine::{load_config, Hooks, ModelConfig, Network};

fn device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// A network whose second convolution has stride 2, padding 1 and a 3x3 kernel, fed by
/// a relu (so the linear layer follows the masked site directly).
fn strided() -> ModelConfig {
    toml::from_str(
        r#"
        name = "strided"
        layers = [
          { type = "conv2d", out_channels = 5, kernel = 3, padding = 1 },
          { type = "relu" },
          { type = "conv2d", out_channels = 4, kernel = 3, padding = 1, stride = 2 },
          { type = "relu" },
          { type = "flatten" },
          { type = "linear", out_features = 10 },
        ]
        "#,
    )
    .unwrap()
}

/// For unit contributions `C` of a conv layer: `sum_u C_u + bias` is the layer's output
/// (recorded by a plain forward pass), and the slice layout `[U, O, B, L]` holds the
/// same values as the tensor path's `[U, B, O, L]`.
fn check(net: &Network, input: [usize; 3], site: &str) {
    let b = 3;
    let x = Tensor::<4>::random(
        [b, input[0], input[1], input[2]],
        Distribution::Normal(0.0, 1.0),
        &device(),
    );
    let lin: Linearization = linearization(net.plan(), site).unwrap().unwrap();
    let rec = net.run(
        x,
        &Hooks::new().record(&[lin.pre_site.as_str(), lin.linear_site.as_str()]),
    );
    let pre = rec.get(&lin.pre_site).clone();
    let layer = to_vec(rec.get(&lin.linear_site).clone().flatten());
    let units = pre.units();
    // A reused buffer of stale values must not leak into the result.
    let fast = unit_contributions_vec(net, &lin, pre.clone(), units, vec![7.0; 5]).unwrap();
    let slow = to_vec(unit_contributions(net, &lin, pre, units).unwrap());
    let out: usize = lin.out_dims.iter().product();
    let (o, l) = (fast.groups, out / fast.groups);
    assert_eq!(o, lin.out_dims[0], "{site}: one group per output channel");
    assert_eq!(fast.values.len(), units * b * out);
    // The bias is the layer's output with every contribution taken away.
    let mut bias_seen = vec![Vec::new(); o];
    for image in 0..b {
        for g in 0..o {
            for p in 0..l {
                let mut sum = 0.0f32;
                for u in 0..units {
                    let v = fast.values[((u * o + g) * b + image) * l + p];
                    let w = slow[u * b * out + image * out + g * l + p];
                    assert!(
                        (v - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{site}: {v} vs {w}"
                    );
                    sum += v;
                }
                bias_seen[g].push(layer[image * out + g * l + p] - sum);
            }
        }
    }
    // Each channel's remainder is one constant (its bias) at every image and position.
    for seen in &bias_seen {
        let spread = seen.iter().fold(0.0f32, |m, v| m.max((v - seen[0]).abs()));
        assert!(spread < 1e-4, "{site}: remainder varies by {spread}");
    }
}

#[test]
fn slice_contributions_decompose_the_layer_and_match_the_tensor_path() {
    let config = load_config("cnn-small", &[]).unwrap();
    device().seed(3);
    let net = Network::new(&config.model, [1, 28, 28], &device()).unwrap();
    check(&net, [1, 28, 28], "conv1.relu");
    let net = Network::new(&strided(), [2, 9, 9], &device()).unwrap();
    check(&net, [2, 9, 9], "conv1.relu");
}
