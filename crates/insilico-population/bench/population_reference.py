"""numpy/scipy/scikit-learn reference timings for `insilico bench population`.

Times the same tasks as `insilico_population::bench_population` on data of the same shape
(x standard normal [n, d]; y = x W / sqrt(d) + 0.5 noise), the best of `--repeats` runs each:

- cka-linear: Kornblith et al.'s `feature_space_linear_cka` (numpy);
- svcca: google/svcca tutorial recipe (SVD of centred activations, keep sum(s[:k])/sum(s) >= 0.99,
  then `cca_core.get_cca_similarity`);
- pwcca: google/svcca `pwcca.compute_pwcca` (the smaller-representation branch);
- ridge: scikit-learn `cross_val_predict(RidgeCV(alphas, alpha_per_target=True), cv=KFold(5))`,
  alphas 10^-3..10^3 times ||X - mean||_F^2 / d;
- rsa-correlation-spearman: scipy `pdist(metric="correlation")` on both inputs, then
  `spearmanr` of the two condensed RDMs;
- heatmap-4x20: the layer x checkpoint heatmap of reproduction 1, linear CKA and SVCCA (as
  above) of each of 20 checkpoints of 4 layers ([rsa-stimuli, units] each; checkpoint c is
  the final state plus noise of s.d. 1 - c/19) against the layer's final state.

    python population_reference.py --svcca PATH/TO/google-svcca [--stimuli 10000 --units 512
        --rsa-stimuli 2000 --repeats 3]

Output: CSV `task,stimuli,units,seconds`, like the Rust example `bench_population`, or with
`--json` one JSON object task -> seconds (what `insilico bench population --python` reads).
Its BLAS threads: OPENBLAS_NUM_THREADS, which `insilico bench population` sets to its own.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def feature_space_linear_cka(x, y):
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def svcca(cca_core, x, y, kept=0.99):
    reduced = []
    for acts in (x.T, y.T):
        cacts = acts - acts.mean(axis=1, keepdims=True)
        _, s, v = np.linalg.svd(cacts, full_matrices=False)
        k = min(int(np.searchsorted(np.cumsum(s) / s.sum(), kept) + 1), len(s))
        reduced.append((s[:k] * np.eye(k)) @ v[:k])
    r = cca_core.get_cca_similarity(reduced[0], reduced[1], epsilon=0.0, verbose=False)
    return np.mean(r["cca_coef1"])


def ridge(x, y):
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.metrics import r2_score
    alphas = np.array([10.0 ** e for e in range(-3, 4)]) * np.sum((x - x.mean(0)) ** 2) / x.shape[1]
    pred = cross_val_predict(RidgeCV(alphas=alphas, alpha_per_target=True), x, y, cv=KFold(5))
    return np.median(r2_score(y, pred, multioutput="raw_values"))


def rsa(x, y):
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr
    return spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).statistic


def pair(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x @ rng.standard_normal((d, d)) / np.sqrt(d) + 0.5 * rng.standard_normal((n, d))
    return x, y


def heatmap(cca_core, layers):
    return [[(feature_space_linear_cka(s, states[-1]), svcca(cca_core, s, states[-1]))
             for s in states] for states in layers]


def checkpoints(n, d, seed, count=20):
    rng = np.random.default_rng(seed)
    final = rng.standard_normal((n, d))
    return [final + (1 - c / (count - 1)) * rng.standard_normal((n, d)) for c in range(count)]


def best_of(repeats, task):
    best = float("inf")
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        task()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--svcca", required=True, help="path to a google/svcca checkout")
    parser.add_argument("--stimuli", type=int, default=10000)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--rsa-stimuli", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sys.path.insert(0, args.svcca)
    import cca_core
    import pwcca

    x, y = pair(args.stimuli, args.units, 7)
    rx, ry = pair(args.rsa_stimuli, args.units, 8)
    layers = [checkpoints(args.rsa_stimuli, args.units, 9 + layer) for layer in range(4)]
    tasks = [
        ("cka-linear", args.stimuli, lambda: feature_space_linear_cka(x, y)),
        ("svcca", args.stimuli, lambda: svcca(cca_core, x, y)),
        ("pwcca", args.stimuli, lambda: pwcca.compute_pwcca(x.T, y.T, epsilon=0.0)),
        ("ridge", args.stimuli, lambda: ridge(x, y)),
        ("rsa-correlation-spearman", args.rsa_stimuli, lambda: rsa(rx, ry)),
        ("heatmap-4x20", args.rsa_stimuli, lambda: heatmap(cca_core, layers)),
    ]
    if args.json:
        out = {name: best_of(args.repeats, task) for name, _, task in tasks}
        out["numpy"] = np.__version__
        out["blas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS", "default")
        print(json.dumps(out))
        return
    print("task,stimuli,units,seconds")
    for name, n, task in tasks:
        print(f"{name},{n},{args.units},{best_of(args.repeats, task):.4f}", flush=True)


if __name__ == "__main__":
    main()
