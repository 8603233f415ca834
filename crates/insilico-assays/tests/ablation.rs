//! The fast ablation paths against the slow one (a full forward pass per mask).

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use insilico_assays::ablation::{
    cumulative_curve, cumulative_masks, fractions, unit_orders, Order, Replacement,
};
use insilico_assays::masks::MaskEvaluator;
use insilico_engine::eval::{argmax_rows, to_vec};
use insilico_engine::{load_config, Ablation, Hooks, Network};

fn device() -> Device {
    Device::flex()
}

fn setup(name: &str, input: [usize; 3], n: usize) -> (Network, Tensor<4>, Vec<u8>) {
    let config = load_config(name, &[]).unwrap();
    device().seed(11);
    let net = Network::new(&config.model, input, &device()).unwrap();
    let x = Tensor::<4>::random(
        [n, input[0], input[1], input[2]],
        Distribution::Normal(0.0, 1.0),
        &device(),
    );
    // Labels: half the network's own predictions, half arbitrary, so accuracy is neither
    // 0 nor 1 and changes with the masks.
    let pred = argmax_rows(&to_vec(net.forward(x.clone())), 10);
    let labels = pred
        .iter()
        .enumerate()
        .map(|(i, &p)| if i % 2 == 0 { p as u8 } else { (i % 10) as u8 })
        .collect();
    (net, x, labels)
}

/// The slow path: one full forward pass with one mask, counted by hand.
fn slow_correct(
    net: &Network,
    x: &Tensor<4>,
    labels: &[u8],
    site: &str,
    mask: &[f32],
    repl: &[f32],
) -> usize {
    let u = mask.len();
    let a = Ablation::new(
        Tensor::from_data(TensorData::new(mask.to_vec(), [1, u]), &device()),
        Tensor::from_data(TensorData::new(repl.to_vec(), [1, u]), &device()),
    );
    let logits = net.run(x.clone(), &Hooks::new().ablate(site, a)).logits();
    argmax_rows(&to_vec(logits), 10)
        .iter()
        .zip(labels)
        .filter(|(p, &l)| **p == l as usize)
        .count()
}

fn check_site(name: &str, input: [usize; 3], site: &str, expect_linearized: bool) {
    let (net, x, labels) = setup(name, input, 40);
    let cache = net
        .run(x.clone(), &Hooks::new().record(&[site]))
        .get(site)
        .clone();
    let units = cache.units();
    let means = to_vec(cache.unit_means().mean_dim(0));
    for repl in [vec![0.0; units], means] {
        let fast = MaskEvaluator::new(&net, site, cache.clone(), labels.clone(), &repl, &device())
            .unwrap();
        assert_eq!(fast.is_linearized(), expect_linearized, "{name} {site}");
        let cached =
            MaskEvaluator::new(&net, site, cache.clone(), labels.clone(), &repl, &device())
                .unwrap()
                .without_linearization();
        let orders = unit_orders(units, 3, 5, None);
        let mut masks: Vec<Vec<f32>> = orders
            .iter()
            .flat_map(|o| cumulative_masks(o, &fractions(5)))
            .collect();
        // Single units too (the sparse path of single-unit importance).
        for unit in 0..units.min(4) {
            let mut m = vec![0.0; units];
            m[unit] = 1.0;
            masks.push(m);
        }
        let a = fast.evaluate(&masks).unwrap();
        let b = cached.evaluate(&masks).unwrap();
        for (i, m) in masks.iter().enumerate() {
            let slow = slow_correct(&net, &x, &labels, site, m, &repl);
            assert_eq!(a[i].correct, slow, "{name} {site} mask {i} (fast)");
            assert_eq!(b[i].correct, slow, "{name} {site} mask {i} (cached)");
            assert_eq!(a[i].per_class.iter().sum::<usize>(), slow);
        }
    }
}

#[test]
fn fast_paths_agree_with_full_forward_passes_on_cnn_small() {
    check_site("cnn-small", [1, 28, 28], "conv1.relu", true);
    check_site("cnn-small", [1, 28, 28], "conv2.relu", true);
    // A vector feeding a linear layer: linearized too (cumulative masks cost a few row
    // additions each, single units one).
    check_site("cnn-small", [1, 28, 28], "fc1.relu", true);
    // Nothing linear follows the logits: the plain cached path.
    check_site("cnn-small", [1, 28, 28], "logits", false);
}

#[test]
fn fast_paths_agree_through_batch_norm_and_on_an_mlp() {
    check_site("cnn-bn", [3, 32, 32], "conv1.relu", true);
    check_site("cnn-bn", [3, 32, 32], "conv2", true);
    check_site("mlp-2x128", [1, 28, 28], "fc1.relu", true);
}

#[test]
fn no_ablation_gives_the_unablated_accuracy_and_full_ablation_the_constant_prediction() {
    let (net, x, labels) = setup("cnn-small", [1, 28, 28], 60);
    let unablated = argmax_rows(&to_vec(net.forward(x.clone())), 10)
        .iter()
        .zip(&labels)
        .filter(|(p, &l)| **p == l as usize)
        .count() as f64
        / 60.0;
    for site in ["conv1.relu", "fc1.relu"] {
        let cache = net
            .run(x.clone(), &Hooks::new().record(&[site]))
            .get(site)
            .clone();
        let u = cache.units();
        let eval = MaskEvaluator::new(&net, site, cache, labels.clone(), &vec![0.0; u], &device())
            .unwrap();
        let orders = unit_orders(u, 2, 1, None);
        let curve = cumulative_curve(
            &eval,
            site,
            Order::Random,
            Replacement::Zero,
            &orders,
            &fractions(4),
        )
        .unwrap();
        assert_eq!(curve.unablated, unablated);
        // Everything silenced: every input gives the same logits, so the prediction is one
        // class c for all, and accuracy is the share of labels equal to c.
        let zeros = Tensor::<2>::zeros([1, u], &device());
        let all = Ablation::new(Tensor::ones([1, u], &device()), zeros);
        let logits = net
            .run(x.clone().narrow(0, 0, 1), &Hooks::new().ablate(site, all))
            .logits();
        let c = argmax_rows(&to_vec(logits), 10)[0];
        let expected = labels.iter().filter(|&&l| l as usize == c).count() as f64 / 60.0;
        for acc in &curve.accuracy {
            assert_eq!(acc[0], unablated);
            assert_eq!(*acc.last().unwrap(), expected, "{site}");
        }
        // The normalized AUC of a curve that stays at the unablated accuracy would be 1;
        // this one loses accuracy, so it is below 1 and above 0.
        assert!(curve.auc_mean < 1.0 && curve.auc_mean > 0.0);
    }
}
