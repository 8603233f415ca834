//! The model configs shipped in `configs/`, embedded so that `--config cnn-small` works
//! from any directory and the quick start needs no files.

/// Names of the built-in configs.
pub const BUILTIN: [&str; 6] = [
    "cnn-small",
    "cnn-bn",
    "cnn-plain8",
    "mlp-2x128",
    "mlp-2x512",
    "mlp-6x128",
];

/// The TOML text of a built-in config.
pub fn builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "cnn-small" => include_str!("../../../configs/cnn-small.toml"),
        "cnn-bn" => include_str!("../../../configs/cnn-bn.toml"),
        "cnn-plain8" => include_str!("../../../configs/cnn-plain8.toml"),
        "mlp-2x128" => include_str!("../../../configs/mlp-2x128.toml"),
        "mlp-2x512" => include_str!("../../../configs/mlp-2x512.toml"),
        "mlp-6x128" => include_str!("../../../configs/mlp-6x128.toml"),
        _ => return None,
    })
}
