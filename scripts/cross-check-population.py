"""Cross-checks `insilico population` on a trained run against scikit-learn, site by site,
and prints every difference.

    python scripts/cross-check-population.py --bin target/debug/insilico --run RUN \
        [--images 2000] [--tsne-stimuli 1000] [--perplexity 30] [--reduction spatial-mean] \
        [--work DIR]

Needs numpy, scipy and scikit-learn. It runs, on the first --images test images:
`insilico population` (once with every stimulus in the PCA embedding, once with t-SNE) and
`insilico compare RUN --save-matrices` for the sites' matrices as the assay sees them. Then,
for every site:
- the PCA spectrum, participation ratio and components for 90/95/99 % against numpy's
  eigenvalues of the covariance (divisor n - 1);
- the PCA embedding against numpy's SVD scores, each component signed so that its
  largest-magnitude loading is positive;
- every decoding accuracy against scikit-learn's `PCA(k)` then `RidgeClassifierCV` (the same
  penalty grid), on insilico's stratified folds (the i-th stimulus of each class is held out
  in fold i mod folds): counts, so they must agree exactly;
- t-SNE, which has no single answer (a local optimum of a non-convex objective): its KL
  divergence under scikit-learn's affinities against scikit-learn's exact t-SNE from four
  random starts, and both embeddings' trustworthiness. Reported, and flagged only where
  ours is worse than every start of scikit-learn's by more than 5 %.
Exit status 1 if anything else differs by more than the tolerance.
"""

import argparse
import json
import os
import sys
import tempfile
import warnings

import numpy as np

from crosscheck_net import run


def folds_of(labels, folds):
    """insilico's stratified folds: the i-th stimulus of each class goes to fold i mod folds."""
    seen, fold = {}, np.empty(len(labels), dtype=int)
    for i, c in enumerate(labels):
        fold[i] = seen.get(c, 0) % folds
        seen[c] = seen.get(c, 0) + 1
    return fold


def decoding(x, labels, components, folds):
    """Held-out accuracy of scikit-learn's `RidgeClassifierCV` (insilico's penalty grid) on the
    top-k components of a `PCA` fitted on each training set. One full PCA per fold serves every
    k: `PCA(k).transform` is the first k columns of the full one's."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeClassifierCV
    alphas = np.array([10.0 ** e for e in range(-3, 4)]) * np.sum((x - x.mean(0)) ** 2) / x.shape[1]
    fold = folds_of(labels, folds)
    correct = np.zeros(len(components))
    for f in range(folds):
        train, test = fold != f, fold == f
        z = PCA(svd_solver="full").fit(x[train]).transform(x)
        for i, k in enumerate(components):
            clf = RidgeClassifierCV(alphas=alphas).fit(z[train, :k], labels[train])
            correct[i] += np.sum(clf.predict(z[test, :k]) == labels[test])
    return list(correct / len(labels))


def principal(x):
    """numpy's eigenvalues of the covariance (divisor n - 1), from the singular values of the
    centred data, and the scores on the first two components, each signed so that its
    largest-magnitude loading is positive."""
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    scores = xc @ vt[:2].T
    for c in range(min(2, len(s))):
        if vt[c][np.argmax(np.abs(vt[c]))] < 0:
            scores[:, c] *= -1
    return s ** 2 / (len(x) - 1), scores


def tsne_quality(x, ours, perplexity):
    from scipy.spatial.distance import pdist, squareform
    from sklearn.manifold import TSNE, trustworthiness
    from sklearn.manifold._t_sne import _joint_probabilities, _kl_divergence
    n = len(x)
    p = _joint_probabilities(squareform(pdist(x, "sqeuclidean")), perplexity, 0)
    kl_ours = _kl_divergence(ours.ravel(), p, 1.0, n, 2)[0]
    theirs = [TSNE(perplexity=perplexity, init="random", random_state=seed, method="exact").fit(x)
              for seed in range(4)]
    return (kl_ours, [t.kl_divergence_ for t in theirs], trustworthiness(x, ours),
            [trustworthiness(x, t.embedding_) for t in theirs])


def check_site(site, x, labels, emb_all, emb_tsne, options, tolerance):
    """Prints the comparison of one site; returns the number of unexplained differences."""
    bad = 0

    def compare(what, ours, ref, tol=tolerance):
        nonlocal bad
        ours, ref = np.atleast_1d(np.asarray(ours, float)), np.atleast_1d(np.asarray(ref, float))
        scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
        diff = float(np.abs(ours - ref).max()) / scale if ours.shape == ref.shape else np.inf
        flag = "" if diff <= tol else "   <-- DIFFERS"
        bad += bool(flag)
        print(f"  {what:<34} max difference {diff:.1e}{flag}")

    n = len(x)
    lam, scores = principal(x)
    spectrum = site["spectrum"]
    kept = len(spectrum["eigenvalues"])
    compare("eigenvalues / largest", np.array(spectrum["eigenvalues"]) / lam[0], lam[:kept] / lam[0])
    compare("dropped eigenvalues / largest", 0.0, np.abs(lam[kept:]).max(initial=0.0) / lam[0], 1e-9)
    positive = lam[:kept]
    compare("participation ratio", spectrum["participation_ratio"],
            positive.sum() ** 2 / (positive ** 2).sum())
    cumulative = np.cumsum(positive) / positive.sum()
    want = [int(np.argmax(cumulative >= t - 1e-12)) + 1 for t in (0.90, 0.95, 0.99)]
    compare("components for 90/95/99 %",
            [spectrum["components_90"], spectrum["components_95"], spectrum["components_99"]], want, 0)
    compare("PCA embedding / largest score", emb_all[:, :2] / np.abs(scores).max(),
            scores / np.abs(scores).max(), 1e-5)
    d = site["decoding"]
    compare("decoding accuracy (exact counts)", d["accuracy"],
            decoding(x, labels, d["components"], options["folds"]), 0.5 / n)
    if emb_tsne is not None:
        m = len(emb_tsne)
        kl, kls, trust, trusts = tsne_quality(x[:m], emb_tsne[:, 2:4].astype(float), options["perplexity"])
        worse = kl > 1.05 * max(kls)
        bad += worse
        print(f"  t-SNE KL {kl:.4f} (scikit-learn's starts {min(kls):.4f}-{max(kls):.4f}), "
              f"trustworthiness {trust:.4f} ({min(trusts):.4f}-{max(trusts):.4f})"
              + ("   <-- WORSE" if worse else ""))
    return bad


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="the insilico binary")
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--tsne-stimuli", type=int, default=1000)
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--reduction", default="spatial-mean")
    parser.add_argument("--work", default=None, help="where to keep the outputs (default: a temporary folder)")
    parser.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    work = args.work or tempfile.mkdtemp(prefix="cross-check-population-")
    common = ["--run", args.run, "--split", "test", "--images", str(args.images),
              "--reduction", args.reduction, "-q"]
    assay = os.path.join(args.run, "assays", "population")
    outputs = {}
    for tsne in (0, args.tsne_stimuli):
        run([args.bin, "population", *common, "--tsne-stimuli", str(tsne),
             "--perplexity", str(args.perplexity)])
        with open(os.path.join(assay, "population.json")) as f:
            result = json.load(f)
        embeddings = {s["site"]: np.load(os.path.join(assay, f"embedding_{s['site']}.npy"))
                      for s in result["sites"]}
        outputs[tsne] = (result, embeddings)
    saved = os.path.join(work, "compare")
    run([args.bin, "compare", args.run, "--split", "test", "--images", str(args.images),
         "--reduction", args.reduction, "--measures", "cka-linear", "--save-matrices", "-q",
         "-o", saved])
    with open(os.path.join(saved, "matrices.json")) as f:
        index = {m["label"].split(":", 1)[1]: m["file"] for m in json.load(f)}
    result, all_embeddings = outputs[0]
    bad = 0
    for site in result["sites"]:
        name = site["site"]
        x = np.load(os.path.join(saved, "matrices", index[name]))
        emb = all_embeddings[name]
        labels = emb[:, 4].astype(int)
        print(f"{name}: {x.shape[0]} stimuli x {x.shape[1]} units")
        tsne = outputs[args.tsne_stimuli][1][name] if args.tsne_stimuli > 0 else None
        bad += check_site(site, x, labels, emb, tsne, result["options"] | {"perplexity": args.perplexity},
                          args.tolerance)
    print(f"{bad} unexplained difference(s); outputs in {work}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
