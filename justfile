# insilico's tasks. `./just <recipe>` installs `just` first where it is missing.
# One build profile (dev, dependencies at opt-level 3) serves run, test and demo.

set shell := ["bash", "-eu", "-o", "pipefail", "-c"]

# Datasets for tests and CI: the shared folder beside the checkout, if present.
export INSILICO_DATA := env_var_or_default("INSILICO_DATA", if path_exists(justfile_directory() / "../shared/datasets") == "true" { justfile_directory() / "../shared/datasets" } else { "" })

bin := "target/debug/insilico"

default:
    @just --list

# Build the command-line tool.
build:
    cargo build -p insilico

# Train cnn-small on the embedded shapes set (no download), then run the quick assays.
demo: build
    {{bin}} train --config cnn-small --dataset shapes --epochs 2 --out runs/demo --set training.lr=0.02 --set training.schedule=\"constant\" --resume
    {{bin}} ablate --run runs/demo --split test --images 2000 --repeats 5 --steps 10
    {{bin}} selectivity --run runs/demo --split test --images 2000
    @echo "demo outputs: runs/demo/ (metrics.csv, manifest.json, weights.safetensors, assays/ablation/curves.png, assays/selectivity/)"

# The test suite (uses ../shared/datasets where present).
test:
    cargo test --workspace

# Lints as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Check that the GPU (wgpu) build compiles.
check-gpu:
    cargo check -p insilico --features wgpu

# The engine on wgpu against the CPU path: training steps, recording, ablation masks and
# input gradients (Mesa's software Vulkan where there is no GPU). Its own target dir, so
# that the CPU build's artifacts are not rebuilt with other features.
test-gpu:
    scripts/ensure-vulkan.sh
    CARGO_TARGET_DIR=target/gpu cargo test -p insilico-engine --features wgpu --test wgpu -- --test-threads 1 --nocapture

# Training and inference throughput, side by side with PyTorch (needs ~/torch-bench).
bench-train python=(env_var("HOME") / "torch-bench/bin/python"): build
    {{bin}} bench train --torch {{python}} --bench-dir ../shared/bench

# Must-show: cnn-small on MNIST, 3 epochs (>= 98.5% test accuracy).
mnist: build
    {{bin}} train --config cnn-small --dataset mnist --epochs 3 --out runs/cnn-small-mnist --resume

# Must-show: mlp-2x512 memorizes 10k MNIST images with fully random labels (>= 99% train accuracy).
memorize: build
    {{bin}} train --config mlp-2x512 --dataset mnist --set data.train_limit=10000 --set data.label_noise=1.0 --out runs/mlp-2x512-random --resume

# The ablation sweep benchmark, side by side with PyTorch's naive and cached loops.
bench-ablation python=(env_var("HOME") / "torch-bench/bin/python"): build
    {{bin}} bench ablation --torch {{python}} --bench-dir ../shared/bench

# Activation maximization of conv2's 32 channels, side by side with PyTorch.
bench-actmax python=(env_var("HOME") / "torch-bench/bin/python"): build
    {{bin}} bench actmax --torch {{python}} --bench-dir ../shared/bench

# Morcos et al. 2018 on MNIST at CPU scale (about 5 minutes on 2 idle cores; two networks at once,
# one thread each, train 1.8x faster than one on two threads): runs/ablation-vs-generalization/report.html
reproduce: build
    time {{bin}} sweep experiments/ablation-vs-generalization.toml --jobs 2

# Raghu et al. 2017 (bottom-up convergence), Kornblith et al. 2019 (corresponding layers) and
# Morcos, Raghu & Bengio 2018 (memorization): about 10 + 11 + 27 minutes on 2 idle cores.
# The population reproductions with CNNs, each printing its check (runs/<experiment>/report.html).
reproduce-populations: build
    time {{bin}} sweep experiments/convergence-over-training.toml
    time {{bin}} sweep experiments/corresponding-layers-cnn.toml -j 2
    time {{bin}} sweep experiments/memorization-convergence-cnn.toml

# Needs a Python with numpy, scipy and scikit-learn, and a checkout of github.com/google/svcca.
# CKA, SVCCA, PWCCA, ridge, RSA and the layer x checkpoint heatmap against numpy/scipy.
bench-population python svcca: build
    {{bin}} bench population --python {{python}} --svcca {{svcca}} --threads 1
