"""numpy/scipy/scikit-learn reference timings for `insilico bench population`.

The same tasks on synthetic data of the same sizes, written as a numpy user would (and as
the reference implementations do): linear CKA in feature space (Kornblith et al.'s demo),
CCA through covariance matrices and their inverse square roots (google/svcca's cca_core),
SVCCA (SVD truncation to 99 % of the singular-value mass, then CCA), PWCCA (Morcos et al.
2018), ridge predictivity (scikit-learn RidgeCV, one penalty per target, inside 5-fold
cross_val_predict), RSA (1 - Pearson RDMs, Spearman of the upper triangles, scipy), and
the layer x checkpoint heatmap (linear CKA and SVCCA of every checkpoint of 4 layers
against the layer's final state, 20 checkpoints). Best of `--repeats` each, as ours.

    python bench/population_reference.py [--stimuli 10000] [--units 512] [--rsa-stimuli 2000]

Prints one JSON object: task -> seconds.
"""

import argparse
import json
import time

import numpy as np
import scipy.linalg
import scipy.stats


def synthetic_pair(rng, n, d):
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.5 * rng.normal(size=(n, d))
    return x, y


def cka_linear(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def inv_sqrt(c, eps=1e-10):
    w, v = scipy.linalg.eigh(c)
    keep = w > eps * w.max()
    return (v[:, keep] / np.sqrt(w[keep])) @ v[:, keep].T


def cca(x, y):
    """Canonical correlations and the x-side canonical directions (columns)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    wx, wy = inv_sqrt(x.T @ x), inv_sqrt(y.T @ y)
    u, rho, _ = np.linalg.svd(wx @ (x.T @ y) @ wy, full_matrices=False)
    k = min(np.linalg.matrix_rank(x), np.linalg.matrix_rank(y))
    return np.clip(rho[:k], 0, 1), wx @ u[:, :k]


def svd_reduce(x, kept):
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(int(np.searchsorted(np.cumsum(s) / s.sum(), kept) + 1), len(s))
    return u[:, :k] * s[:k]


def svcca(x, y, kept=0.99):
    return cca(svd_reduce(x, kept), svd_reduce(y, kept))[0].mean()


def pwcca(x, y):
    if x.shape[1] > y.shape[1]:
        x, y = y, x
    rho, dirs = cca(x, y)
    xc = x - x.mean(0)
    h = xc @ dirs
    weights = np.abs(h.T @ xc).sum(1)
    weights /= weights.sum()
    return float(weights @ rho)


def ridge(x, y):
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.metrics import r2_score
    alphas = np.array([10.0 ** e for e in range(-3, 4)]) * np.sum((x - x.mean(0)) ** 2) / x.shape[1]
    pred = cross_val_predict(RidgeCV(alphas=alphas, alpha_per_target=True), x, y, cv=KFold(5))
    return float(np.median(r2_score(y, pred, multioutput="raw_values")))


def rsa(x, y):
    iu = np.triu_indices(x.shape[0], 1)
    return scipy.stats.spearmanr((1 - np.corrcoef(x))[iu], (1 - np.corrcoef(y))[iu])[0]


def heatmap(layers):
    return [[(cka_linear(s, states[-1]), svcca(s, states[-1])) for s in states] for states in layers]


def best_of(repeats, task):
    best = float("inf")
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        task()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stimuli", type=int, default=10000)
    p.add_argument("--units", type=int, default=512)
    p.add_argument("--rsa-stimuli", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    rng = np.random.default_rng(7)
    x, y = synthetic_pair(rng, a.stimuli, a.units)
    rx, ry = synthetic_pair(rng, a.rsa_stimuli, a.units)
    layers = []
    for _ in range(4):
        final = rng.normal(size=(a.rsa_stimuli, a.units))
        layers.append([final + (1 - c / 19) * rng.normal(size=final.shape) for c in range(20)])
    out = {
        "cka-linear": best_of(a.repeats, lambda: cka_linear(x, y)),
        "svcca": best_of(a.repeats, lambda: svcca(x, y)),
        "pwcca": best_of(a.repeats, lambda: pwcca(x, y)),
        "ridge": best_of(a.repeats, lambda: ridge(x, y)),
        "rsa-correlation-spearman": best_of(a.repeats, lambda: rsa(rx, ry)),
        "heatmap-4x20": best_of(a.repeats, lambda: heatmap(layers)),
        "threads": "numpy/BLAS default",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
