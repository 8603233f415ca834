//! Property tests: random layer lists, mutated config files and random overrides fed to
//! the config parser, the plan and the memory estimate give an error, never a panic; and
//! small networks that pass all three build and run.

use burn::tensor::{Device, Tensor};
use insilico_engine::config::TrainConfig;
use insilico_engine::memory::MemoryEstimate;
use insilico_engine::models::{builtin, BUILTIN};
use insilico_engine::{Network, Plan, RunConfig};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Sizes a hostile user might type: zero, small, powers of two, the edges of the integer
/// types, negative numbers, and values of the wrong type.
fn size() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0..6u64).prop_map(|v| v.to_string()),
        2 => (0..64u32).prop_map(|s| (1u64 << s).to_string()),
        1 => Just(i64::MAX.to_string()),
        1 => Just((1u64 << 62).to_string()),
        1 => Just("1000000000".to_string()),
        1 => Just("-1".to_string()),
        1 => Just("2.5".to_string()),
        1 => Just("\"x\"".to_string()),
        1 => Just("nan".to_string()),
        1 => Just("inf".to_string()),
    ]
}

fn layer() -> impl Strategy<Value = String> {
    let conv = (size(), size(), size(), size()).prop_map(|(o, k, s, p)| {
        format!("{{ type = \"conv2d\", out_channels = {o}, kernel = {k}, stride = {s}, padding = {p} }}")
    });
    let linear = size().prop_map(|o| format!("{{ type = \"linear\", out_features = {o} }}"));
    let pool = (
        prop_oneof![Just("maxpool"), Just("avgpool")],
        size(),
        size(),
    )
        .prop_map(|(t, k, s)| format!("{{ type = \"{t}\", kernel = {k}, stride = {s} }}"));
    let dropout = size().prop_map(|p| format!("{{ type = \"dropout\", p = {p} }}"));
    let simple = prop_oneof![
        Just("{ type = \"relu\" }".to_string()),
        Just("{ type = \"flatten\" }".to_string()),
        Just("{ type = \"batchnorm\" }".to_string()),
        Just("{ type = \"bogus\" }".to_string()),
        Just("3".to_string()),
    ];
    prop_oneof![conv, linear, pool, dropout, simple]
}

fn model_text(layers: &[String]) -> String {
    format!(
        "[model]\nname = \"random\"\nlayers = [\n  {}\n]\n",
        layers.join(",\n  ")
    )
}

/// Parses, plans and estimates; everything may fail, nothing may panic.
fn exercise(text: &str, overrides: &[String], input: [usize; 3], batch: usize) {
    let Ok(c) = RunConfig::from_toml(text, overrides) else {
        return;
    };
    let Ok(plan) = Plan::new(&c.model, input) else {
        return;
    };
    let _ = plan.check_trainable(10, "random");
    let t = TrainConfig {
        batch_size: batch.max(1),
        ..c.training.clone()
    };
    let e = MemoryEstimate::training(&plan, &t, 60_000);
    assert!(e.total().is_finite() && e.total() >= 0.0, "{e:?}");
    let _ = e.check_fits("random", Some(1 << 30));
}

fn input() -> impl Strategy<Value = [usize; 3]> {
    let dim = prop_oneof![4 => 1..40usize, 1 => Just(0usize), 1 => Just(usize::MAX), 1 => Just(1usize << 40)];
    [dim.clone(), dim.clone(), dim]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn random_layer_lists_never_panic(
        layers in proptest::collection::vec(layer(), 0..8),
        input in input(),
        batch in prop_oneof![1..512usize, Just(usize::MAX)],
    ) {
        exercise(&model_text(&layers), &[], input, batch);
    }

    #[test]
    fn mutated_builtin_configs_never_panic(
        which in 0..BUILTIN.len(),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), 0..6usize, prop_oneof![
            Just(""), Just("="), Just("]"), Just("["), Just("{"), Just("}"), Just(","), Just("\""),
            Just("-1"), Just("1e999"), Just("nan"), Just("inf"), Just("9223372036854775807"),
            Just("0"), Just("\n"), Just("type"), Just("layers"),
        ]), 1..4),
    ) {
        let mut text = builtin(BUILTIN[which]).unwrap().to_string();
        for (at, len, insert) in &cuts {
            let start = at.index(text.len() + 1);
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            if text.is_char_boundary(start) {
                text.replace_range(start..end, insert);
            }
        }
        exercise(&text, &[], [1, 28, 28], 128);
    }

    #[test]
    fn random_overrides_never_panic(
        which in 0..BUILTIN.len(),
        sets in proptest::collection::vec((prop_oneof![
            Just("training.lr"), Just("training.epochs"), Just("training.batch_size"),
            Just("training.momentum"), Just("training.weight_decay"), Just("training.gamma"),
            Just("training.step_every"), Just("training.eval_train_limit"), Just("training.seed"),
            Just("training.eval_every"),
            Just("data.label_noise"), Just("data.train_limit"), Just("data.dataset"),
            Just("model.layers.0.out_channels"), Just("model.layers.0.padding"),
            Just("model.layers.0.kernel"), Just("model.layers.1.out_features"),
            Just("model.layers.5.out_features"), Just("model.layers.99.kernel"),
            Just("model.layers"), Just("model"), Just(""), Just("model.layers.x.kernel"),
        ], size()), 1..4),
    ) {
        let overrides: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        exercise(builtin(BUILTIN[which]).unwrap(), &overrides, [3, 32, 32], 128);
    }
}

/// Small layer lists only, so that every network that passes the checks is cheap to build.
fn small_layer() -> impl Strategy<Value = String> {
    let n = 1..5usize;
    prop_oneof![
        (n.clone(), n.clone(), n.clone(), 0..3usize).prop_map(|(o, k, s, p)| format!(
            "{{ type = \"conv2d\", out_channels = {o}, kernel = {k}, stride = {s}, padding = {p} }}"
        )),
        n.clone()
            .prop_map(|o| format!("{{ type = \"linear\", out_features = {o} }}")),
        (prop_oneof![Just("maxpool"), Just("avgpool")], n.clone(), n)
            .prop_map(|(t, k, s)| format!("{{ type = \"{t}\", kernel = {k}, stride = {s} }}")),
        Just("{ type = \"relu\" }".to_string()),
        Just("{ type = \"flatten\" }".to_string()),
        Just("{ type = \"batchnorm\" }".to_string()),
        Just("{ type = \"dropout\", p = 0.5 }".to_string()),
    ]
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn small_networks_that_pass_the_checks_build_and_run(
        layers in proptest::collection::vec(small_layer(), 1..7),
        h in 1..9usize,
        w in 1..9usize,
    ) {
        let Ok(c) = RunConfig::from_toml(&model_text(&layers), &[]) else {
            return Ok(());
        };
        let Ok(plan) = Plan::new(&c.model, [2, h, w]) else {
            return Ok(());
        };
        let device = Device::flex();
        let net = Network::new(&c.model, [2, h, w], &device).unwrap();
        let logits = net.forward(Tensor::ones([3, 2, h, w], &device));
        prop_assert_eq!(logits.dims(), [3, plan.num_classes()]);
    }
}
