"""Cross-checks `insilico compare --npy A --npy B` against the reference implementations on
inputs of many shapes and kinds, measure by measure, and prints every difference.

    python scripts/cross-check-compare.py --bin target/debug/insilico --svcca PATH/TO/google-svcca \
        [--work DIR] [--tolerance 1e-4]

Needs numpy, scipy, scikit-learn and rsatoolbox. The references are those of the agreement
fixture (crates/insilico-population/tests/fixtures/make_fixtures.py): Kornblith et al.'s CKA,
google/svcca's cca_core.py and pwcca.py, rsatoolbox, scikit-learn's RidgeCV. The inputs:
tall and wide, nearly square, rank-deficient, dead ReLUs, small integers (ties), a large
offset, a tiny scale, one unit, float32, skewed, binary codes and spike counts; and one pair
compared as class means (`--conditions class-means --labels`) against rsatoolbox's RDMs of
patterns averaged by a descriptor (`calc_rdm(..., descriptor=...)`).

Expected differences, each documented in the README: CCA with dead units (cca_core.py with
epsilon=0 averages in a zero per dead unit; insilico drops them, as cca_core.py does with
epsilon > 0); correlation RSA of integer responses (rsatoolbox breaks mathematically tied
distances by rounding, insilico keeps them tied; the script prints the exact tie-aware value
beside both); cells that insilico leaves undefined (NaN) where the reference returns a
forced or failed value. Exit status 1 if any other measure differs by more than the tolerance.
"""

import argparse
import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "crates", "insilico-population", "tests", "fixtures"))
import make_fixtures as mf  # noqa: E402


def references(cca_core, pwcca, x, y):
    import rsatoolbox
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.metrics import r2_score
    out = {"cka-linear": mf.feature_space_linear_cka(x, y),
           "cka-debiased": mf.feature_space_linear_cka(x, y, debiased=True),
           "cka-rbf-1": mf.cka(mf.gram_rbf(x, 1.0), mf.gram_rbf(y, 1.0))}

    def attempt(names, task):
        try:
            for name, value in zip(names, task()):
                out[name] = float(value)
        except Exception as e:  # the reference fails: insilico should refuse too
            for name in names:
                out[name] = f"reference error: {e}"

    def cca():
        rho = np.asarray(cca_core.get_cca_similarity(x.T, y.T, epsilon=0.0, verbose=False)["cca_coef1"])
        return rho.mean(), (rho ** 2).mean()

    def svcca():
        (sx, _), (sy, _) = mf.svd_reduce(x.T, 0.99), mf.svd_reduce(y.T, 0.99)
        return [np.mean(cca_core.get_cca_similarity(sx, sy, epsilon=0.0, verbose=False)["cca_coef1"])]

    def pw():
        xc, yc = x - x.mean(0), y - y.mean(0)
        a, b = (xc, yc) if xc.shape[1] <= yc.shape[1] else (yc, xc)
        return [pwcca.compute_pwcca(a.T, b.T, epsilon=0.0)[0]]

    def rsa(metric):
        rx = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x), method=metric)
        ry = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(y), method=metric)
        return [rsatoolbox.rdm.compare(rx, ry, method=m)[0, 0] for m in ("spearman", "tau-a")]

    def ridge():
        alive = y[:, y.std(0) > 0]
        alphas = np.array([10.0 ** e for e in range(-3, 4)]) * np.sum((x - x.mean(0)) ** 2) / x.shape[1]
        pred = cross_val_predict(RidgeCV(alphas=alphas, alpha_per_target=True), x, alive, cv=KFold(5))
        r = [np.corrcoef(alive[:, t], pred[:, t])[0, 1] for t in range(alive.shape[1])]
        return np.median(r2_score(alive, pred, multioutput="raw_values")), np.median(r)

    attempt(["cca-mean", "cca-mean-squared"], cca)
    attempt(["svcca-0.99"], svcca)
    attempt(["pwcca"], pw)
    for metric in ("correlation", "euclidean"):
        attempt([f"rsa-{metric}-spearman", f"rsa-{metric}-tau-a"], lambda: rsa(metric))
    attempt(["ridge-r2", "ridge-pearson"], ridge)
    return out


def exact_correlation_rsa(x, y):
    """Spearman and tau-a of correlation RDMs of integer responses, ties kept exactly."""
    from scipy.stats import kendalltau, rankdata, spearmanr

    def ranks(a):
        a = a.astype(np.int64)
        d = a.shape[1]
        c = d * a - a.sum(1, keepdims=True)
        keys = []
        for i in range(len(a)):
            for j in range(i + 1, len(a)):
                n = int(c[i] @ c[j])
                keys.append(-Fraction(n * abs(n), int(c[i] @ c[i]) * int(c[j] @ c[j])))
        index = {k: r for r, k in enumerate(sorted(set(keys)))}
        return rankdata([index[k] for k in keys])

    rx, ry = ranks(x), ranks(y)
    n = len(rx)
    concordant = sum(np.sum(np.sign(rx[i] - rx[i + 1:]) * np.sign(ry[i] - ry[i + 1:])) for i in range(n))
    return spearmanr(rx, ry).statistic, 2 * concordant / (n * (n - 1))


def ours(binary, work, case, x, y):
    d = os.path.join(work, case)
    os.makedirs(d, exist_ok=True)
    np.save(f"{d}/a.npy", x)
    np.save(f"{d}/b.npy", y)
    p = subprocess.run([binary, "compare", "--npy", f"{d}/a.npy", "--npy", f"{d}/b.npy", "-o", f"{d}/out"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip()
    values = {m["measure"]: m["values"][0][1] for m in json.load(open(f"{d}/out/compare.json"))}
    return values, p.stderr.strip()


def cases():
    rng = np.random.default_rng(1)

    def related(x, dy, noise=0.5):
        return np.tanh(x @ rng.normal(size=(x.shape[1], dy))) + noise * rng.normal(size=(x.shape[0], dy))

    x = rng.normal(size=(200, 30)); yield "tall", x, related(x, 20)
    x = rng.normal(size=(40, 100)); yield "wide", x, related(x, 60)
    x = rng.normal(size=(50, 20)); yield "near-square", x, related(x, 29)
    x = rng.normal(size=(120, 5)) @ rng.normal(size=(5, 30)); yield "rank-5", x, related(x, 12)
    x = np.maximum(rng.normal(size=(150, 25)) - 0.3, 0); x[:, :4] = 0
    y = np.maximum(related(x, 18), 0); y[:, 2] = 0; yield "dead-relu", x, y
    x = rng.integers(0, 3, size=(60, 6)).astype(float)
    yield "small-integers", x, rng.integers(0, 3, size=(60, 4)).astype(float) + x[:, :4]
    x = 1e4 + rng.normal(size=(100, 10)); yield "offset", x, 1e4 + related(x - 1e4, 8)
    x = 1e-8 * rng.normal(size=(100, 10)); yield "tiny", x, 1e-8 * related(x * 1e8, 8)
    x = rng.normal(size=(80, 1)); yield "one-unit", x, related(x, 3)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    yield "float32", x, related(x.astype(float), 16).astype(np.float32)
    x = rng.standard_exponential(size=(90, 12)); yield "skewed", x, x[:, ::-1] ** 2 + rng.normal(size=(90, 12))
    x = rng.integers(0, 2, size=(80, 20)); yield "binary", x, (rng.random((80, 15)) < 0.3 + 0.4 * x[:, :15]).astype(np.int64)
    x = rng.poisson(3, size=(100, 50)); yield "spike-counts", x, rng.poisson(1 + x[:, :30] / 3)


def class_means(binary, work, tolerance):
    """`--conditions class-means` against rsatoolbox's condition-averaged RDMs and linear CKA
    of numpy's class means; classes numbered with gaps, stimuli interleaved. Returns the
    number of differences beyond the tolerance."""
    import rsatoolbox
    rng = np.random.default_rng(2)
    x = rng.normal(size=(240, 30))
    y = np.tanh(x @ rng.normal(size=(30, 20))) + 0.5 * rng.normal(size=(240, 20))
    labels = 3 * rng.integers(1, 9, size=240) + 1
    d = os.path.join(work, "class-means")
    os.makedirs(d, exist_ok=True)
    for name, a in (("a", x), ("b", y), ("labels", labels)):
        np.save(f"{d}/{name}.npy", a)
    p = subprocess.run([binary, "compare", "--npy", f"{d}/a.npy", "--npy", f"{d}/b.npy",
                        "--conditions", "class-means", "--labels", f"{d}/labels.npy", "-o", f"{d}/out"],
                       capture_output=True, text=True)
    print(f"== class-means: {x.shape} against {y.shape}, {len(set(labels))} classes")
    if p.returncode != 0:
        print(f"  insilico refused the pair: {p.stderr.strip()}")
        return 1
    got = {m["measure"]: m["values"][0][1] for m in json.load(open(f"{d}/out/compare.json"))}
    classes = sorted(set(labels))
    means = [np.stack([a[labels == c].mean(0) for c in classes]) for a in (x, y)]
    want = {"cka-linear": mf.feature_space_linear_cka(*means)}
    for metric in ("correlation", "euclidean"):
        rdms = [rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(a, obs_descriptors={"class": labels}),
                                        method=metric, descriptor="class") for a in (x, y)]
        for m, name in (("spearman", "spearman"), ("tau-a", "tau-a")):
            want[f"rsa-{metric}-{name}"] = rsatoolbox.rdm.compare(rdms[0], rdms[1], method=m)[0, 0]
    failures = 0
    for name, w in want.items():
        diff = abs(got[name] - w)
        note = "  <-- differs" if diff > tolerance else ""
        failures += diff > tolerance
        print(f"  {name:26} insilico {got[name]: .8f}  reference {w: .8f}  diff {diff:.1e}{note}")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="the insilico binary")
    parser.add_argument("--svcca", required=True, help="path to a google/svcca checkout")
    parser.add_argument("--work", default="cross-check")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    sys.path.insert(0, args.svcca)
    import cca_core
    import pwcca

    failures = 0
    for case, x, y in cases():
        got, stderr = ours(args.bin, args.work, case, x, y)
        print(f"== {case}: {x.shape} against {y.shape}")
        if got is None:
            print(f"  insilico refused the pair: {stderr}")
            failures += 1
            continue
        ref = references(cca_core, pwcca, x.astype(float), y.astype(float))
        integers = np.issubdtype(x.dtype, np.integer) or np.all(x == np.round(x))
        exact = exact_correlation_rsa(x, y) if integers and x.shape[0] <= 120 else None
        for name, want in ref.items():
            value = got.get(name)
            if value is None or isinstance(want, str):
                print(f"  {name:26} insilico {value}  reference {want}")
                continue
            diff = abs(value - want)
            note = ""
            if name.startswith("rsa-correlation") and exact is not None:
                e = exact[0] if name.endswith("spearman") else exact[1]
                note = f"  exact {e:.8f} (insilico off by {abs(value - e):.1e})"
                failures += abs(value - e) > 1e-12
            elif case == "dead-relu" and name.startswith("cca-mean"):
                note = "  (dead units: documented convention)"
            elif diff > args.tolerance:
                note = "  <-- differs"
                failures += 1
            print(f"  {name:26} insilico {value: .8f}  reference {want: .8f}  diff {diff:.1e}{note}")
        for line in stderr.splitlines():
            print(f"  note: {line}")
    failures += class_means(args.bin, args.work, args.tolerance)
    print(f"{failures} unexplained difference(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
