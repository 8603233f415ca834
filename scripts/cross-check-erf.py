"""Cross-checks `insilico erf` (effective receptive fields, Luo et al. 2016) on a trained run
against an independent numpy forward and hand-written backward pass, site by site, and prints
every difference.

    python scripts/cross-check-erf.py --bin target/debug/insilico --run RUN \
        [--gradient-images 16] [--mass 0.95] [--sites conv1.relu,...] [--split train] \
        [--data-dir DIR] [--tolerance 1e-5] [--work DIR]

Needs numpy only (the weights are read from RUN/weights.safetensors by hand, the images from
the dataset's IDX files, found as insilico finds them: --data-dir, $INSILICO_DATA, the user
cache, the manifest's system folders; digests and normalization from datasets/manifest.toml).
It copies RUN into the work folder (assays write into the run), runs
`insilico erf --run COPY --quiet --device cpu` there and reads assays/erf/erf.json and erf.csv.
Then, for every site:
- the trained map: for each of the first --gradient-images images of the split, the gradient
  with respect to the input of each unit at the centre position (h/2, w/2) of the site's map,
  or of every unit of a vector site, |grad| summed over channels, averaged over images and
  units, in float64 from the float32 weights and images; against erf.json's map (max
  difference relative to the map's max, --tolerance). The backward follows the tool's
  (PyTorch's) conventions: ReLU passes nothing at exactly 0, and a max pool window with tied
  maxima sends the gradient to the first of them in row-major order. The windows tied at a
  positive value, where that rule decides, are counted;
- a finite-difference check of this script's own backward pass, on a few pixels of a
  jittered image (1e-4 noise breaks the ties of a flat background, where the function has
  no derivative): reported, and a failure marks the check as untrustworthy, not the tool;
- the size measures: the radius around the centre of the theoretical field holding --mass
  of the map, and the side 2 d + 1 of the smallest centred square doing so (d its Chebyshev
  half-width), computed here from the tool's map (must equal erf.json within 1e-9 and
  erf.csv's 4 decimals exactly) and from this script's map (may differ only where the
  map's share at a distance lies within float noise of --mass);
- the theoretical receptive field, computed by hand from the layers (kernel, stride,
  padding of conv and pool; a vector sees the whole input, its size the input's larger
  side): field, centre position, centre pixel and theoretical_size_px;
- no mass outside the theoretical window, and a silent site (map all zero) with NaN size and
  radius in erf.csv (null in erf.json).
The untrained network (Burn's initializer, not reproducible here) gets the property checks
only: its size and radius recomputed from its map, the zero mass outside the window, the
silent case and the bookkeeping.
Supports conv2d, relu, maxpool, flatten and linear layers (the shipped configs without batch
norm or dropout) and IDX datasets (mnist, fashion-mnist). Exit status 1 if anything differs
beyond its tolerance without an explanation.
"""

import argparse
import csv
import gzip
import hashlib
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

from crosscheck_net import load_safetensors, plan, run

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "datasets" / "manifest.toml"
SUPPORTED = ("conv2d", "relu", "maxpool", "flatten", "linear")
# Slack of the tool's mass threshold: a share counts as reaching `mass` from mass - 1e-9.
MASS_SLACK = 1e-9
# The backward pass here against central differences (float64, piecewise linear network).
FD_TOLERANCE = 1e-6


# ------------------------------------------------------------------------------ run and data

def dataset_entry(name, manifest):
    with open(manifest, "rb") as f:
        for d in tomllib.load(f)["dataset"]:
            if d["name"] == name:
                return d
    sys.exit(f"dataset `{name}` is not in {manifest}")


def find_dataset_file(entry, file_name, data_dir):
    """The file as insilico looks for it: <root>/<dataset>/<file>[.gz] or <root>/<file>[.gz]
    under --data-dir, $INSILICO_DATA, the user cache and the manifest's system folders."""
    roots = [data_dir, os.environ.get("INSILICO_DATA"),
             os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                          "insilico", "datasets")] + entry.get("system_dirs", [])
    for root in filter(None, roots):
        for folder in (Path(root) / entry["name"], Path(root)):
            for name in (file_name + ".gz", file_name):
                if (folder / name).is_file():
                    return folder / name
    sys.exit(f"{file_name} of `{entry['name']}` not found under {[r for r in roots if r]}")


def load_images(entry, split, n, data_dir):
    """The first n images of the split, normalized as insilico does it in float32:
    (byte / 255 - mean[c]) / std[c]."""
    if entry["format"] != "idx":
        sys.exit(f"dataset `{entry['name']}` ({entry['format']}): only IDX datasets are supported")
    role = f"{split}-images"
    file = next(f for f in entry["file"] if f["role"] == role)
    raw = find_dataset_file(entry, file["name"], data_dir).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if file.get("sha256") and hashlib.sha256(raw).hexdigest() != file["sha256"]:
        sys.exit(f"{file['name']}: its SHA-256 is not the manifest's")
    magic, count, h, w = struct.unpack(">IIII", raw[:16])
    c = entry["shape"][0]
    if magic != 0x0803 or [c, h, w] != entry["shape"]:
        sys.exit(f"{file['name']}: not an IDX file of {entry['shape']} images")
    n = min(n, count)
    x = np.frombuffer(raw[16:16 + n * h * w], dtype=np.uint8).reshape(n, 1, h, w)
    x = x.astype(np.float32) / np.float32(255.0)
    mean = np.array(entry["mean"], dtype=np.float32)[None, :, None, None]
    std = np.array(entry["std"], dtype=np.float32)[None, :, None, None]
    return (x - mean) / std


# ------------------------------------------------------------------------------ the network

def conv_forward(x, st):
    W, s, p = st["weight"], st["stride"], st["padding"]
    ho, wo = st["shape"][1:]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((len(x),) + st["shape"])
    for i in range(st["kernel"]):
        for j in range(st["kernel"]):
            patch = xp[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s]
            out += np.einsum("nchw,oc->nohw", patch, W[:, :, i, j], optimize=True)
    return out + st["bias"][None, :, None, None]


def conv_backward(g, st, in_shape):
    W, s, p = st["weight"], st["stride"], st["padding"]
    c, h, w = in_shape
    ho, wo = g.shape[2:]
    gp = np.zeros((len(g), c, h + 2 * p, w + 2 * p))
    for i in range(st["kernel"]):
        for j in range(st["kernel"]):
            gp[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += np.einsum(
                "rohw,oc->rchw", g, W[:, :, i, j], optimize=True)
    return gp[:, :, p:p + h, p:p + w]


def pool_windows(st):
    """Each offset (i, j) of the window, in row-major order, with the index of the input
    values it sees across the output map."""
    k, s = st["kernel"], st["stride"]
    ho, wo = st["shape"][1:]
    for i in range(k):
        for j in range(k):
            yield i, j, (slice(None), slice(None), slice(i, i + s * (ho - 1) + 1, s),
                         slice(j, j + s * (wo - 1) + 1, s))


def pool_forward(x, st):
    """Max and the offset of the FIRST maximum of each window in row-major order (a later
    offset wins only if strictly larger), and the number of windows tied at a positive max."""
    best, arg = None, None
    for i, j, where in pool_windows(st):
        v = x[where]
        if best is None:
            best, arg = v.copy(), np.zeros(v.shape, dtype=np.int64)
            continue
        larger = v > best
        best = np.where(larger, v, best)
        arg[larger] = i * st["kernel"] + j
    count = sum((x[where] == best).astype(int) for _, _, where in pool_windows(st))
    ties = int(((count > 1) & (best > 0)).sum())
    return best, arg, ties


def pool_backward(g, st, arg, in_shape):
    dx = np.zeros((len(g),) + tuple(in_shape))
    for i, j, where in pool_windows(st):
        dx[where] += g * (arg == i * st["kernel"] + j)
    return dx


def forward(stages, x, upto=None):
    """Every stage's output, and what the backward needs: relu inputs, pool choices."""
    acts, aux, ties = [], [], {}
    for st in stages[:None if upto is None else upto + 1]:
        kind = st["kind"]
        a = None
        if kind == "conv2d":
            y = conv_forward(x, st)
        elif kind == "relu":
            y, a = np.maximum(x, 0.0), x
        elif kind == "maxpool":
            y, a, ties[st["site"]] = pool_forward(x, st)
        elif kind == "flatten":
            y = x.reshape(len(x), -1)
        else:
            y = x @ st["weight"].T + st["bias"]
        acts.append(y)
        aux.append(a)
        x = y
    return acts, aux, ties


def input_gradient(stages, input_shape, aux, b, k, seeds):
    """Gradient with respect to image b of seeds . (output of stage k), one row per seed."""
    g = seeds
    for i in range(k, -1, -1):
        st = stages[i]
        in_shape = tuple(input_shape) if i == 0 else stages[i - 1]["shape"]
        kind = st["kind"]
        if kind == "conv2d":
            g = conv_backward(g, st, in_shape)
        elif kind == "relu":
            g = g * (aux[i][b] > 0)  # nothing passes at exactly 0
        elif kind == "maxpool":
            g = pool_backward(g, st, aux[i][b][None], in_shape)
        elif kind == "flatten":
            g = g.reshape((len(g),) + in_shape)
        else:
            g = g @ st["weight"]
    return g


def centre_position(shape):
    return (shape[1] // 2, shape[2] // 2) if len(shape) == 3 else (0, 0)


def unit_seeds(shape, units):
    """One row per unit in `units`: 1 at the unit's centre position, 0 elsewhere."""
    seeds = np.zeros((len(units),) + tuple(shape))
    y, x = centre_position(shape)
    for r, u in enumerate(units):
        seeds[(r, u, y, x) if len(shape) == 3 else (r, u)] = 1.0
    return seeds


def erf_map(stages, input_shape, x, aux, k, rows=256):
    """Mean over images and units of |d y_u(centre) / d x|, summed over channels."""
    shape = stages[k]["shape"]
    units = shape[0]
    total = np.zeros(input_shape[1:])
    for b in range(len(x)):
        for start in range(0, units, rows):
            seeds = unit_seeds(shape, range(start, min(units, start + rows)))
            g = input_gradient(stages, input_shape, aux, b, k, seeds)
            total += np.abs(g).sum(axis=(0, 1))
    return total / (len(x) * units)


def finite_difference_error(stages, input_shape, x, k, rng, pixels=3, eps=1e-6):
    """Largest error, relative to the gradient's scale, of the backward pass against central
    differences on a few pixels of one jittered image, every unit of site k at once."""
    xj = x[:1].astype(np.float64) + 1e-4 * rng.standard_normal(x[:1].shape)
    _, aux, _ = forward(stages, xj, k)
    shape = stages[k]["shape"]
    g = input_gradient(stages, input_shape, aux, 0, k, unit_seeds(shape, range(shape[0])))
    scale = max(float(np.abs(g).max()), 1e-300)
    reached = np.argwhere(np.abs(g).sum(axis=0) > 0)
    unreached = np.argwhere(np.abs(g).sum(axis=0) == 0)
    picks = [reached[i] for i in rng.choice(len(reached), min(pixels, len(reached)), replace=False)]
    picks += [unreached[i] for i in rng.choice(len(unreached), min(1, len(unreached)), replace=False)]
    y, xc = centre_position(shape)

    def value(img):
        out = forward(stages, img, k)[0][-1][0]
        return out[:, y, xc] if len(shape) == 3 else out

    worst = 0.0
    for c, r, q in picks:
        plus, minus = xj.copy(), xj.copy()
        plus[0, c, r, q] += eps
        minus[0, c, r, q] -= eps
        fd = (value(plus) - value(minus)) / (2 * eps)
        worst = max(worst, float(np.abs(fd - g[:, c, r, q]).max()) / scale)
    return worst, len(picks)


# ------------------------------------------------------------------------------ size measures

def mass_distance(m, centre, mass, metric):
    """The smallest distance D from `centre` (pixel centres at integer coordinates) such that
    the pixels within D hold `mass` of the map's total |value|; NaN for an all-zero map."""
    a = np.abs(np.asarray(m, dtype=np.float64))
    total = a.sum()
    if total <= 0:
        return math.nan
    yy, xx = np.indices(a.shape)
    d = metric(yy - centre[0], xx - centre[1]).ravel()
    levels, group = np.unique(d, return_inverse=True)
    share = np.cumsum(np.bincount(group.ravel(), weights=a.ravel())) / total
    reached = np.nonzero(share >= mass - MASS_SLACK)[0]
    return float(levels[reached[0]]) if len(reached) else math.nan


def radius_of(m, centre, mass):
    return mass_distance(m, centre, mass, np.hypot)


def size_of(m, centre, mass):
    return 2 * mass_distance(m, centre, mass, lambda dy, dx: np.maximum(abs(dy), abs(dx))) + 1


def share_within(m, centre, distance, metric):
    a = np.abs(np.asarray(m, dtype=np.float64))
    yy, xx = np.indices(a.shape)
    return a[metric(yy - centre[0], xx - centre[1]) <= distance].sum() / a.sum()


# ------------------------------------------------------------------------------ the checks

class Report:
    def __init__(self):
        self.unexplained = []

    def line(self, where, what, detail, ok, note=""):
        flag = "" if ok else "   <-- DIFFERS"
        print(f"    {what:<34} {detail}{note}{flag}")
        if not ok:
            self.unexplained.append(f"{where}: {what}: {detail}")


def fmt4(v):
    """A value as erf.csv writes it (Rust's {:.4}: NaN for a silent site)."""
    return "NaN" if math.isnan(v) else f"{v:.4f}"


def same(a, b, tol):
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return abs(a - b) <= tol


def check_measures(rep, where, e, row, tool_map, mine, mass):
    """Size and radius: from the tool's map against erf.json and erf.csv (exact), and from
    this script's map (where given) against erf.csv, explained where the map's share at the
    distance the two disagree on lies within float noise of `mass`."""
    centre = tuple(e["centre"])
    metrics = {"size": (size_of, lambda dy, dx: np.maximum(abs(dy), abs(dx)), "effective_size_px"),
               "radius": (radius_of, np.hypot, "effective_radius_px")}
    for what, (measure, metric, column) in metrics.items():
        ours = measure(tool_map, centre, mass)
        js = e[what]
        ok = same(ours, js, 1e-9) and fmt4(ours) == row[column]
        rep.line(where, f"{what} from the tool's map", f"{fmt4(ours)}  erf.json "
                 f"{'null' if js is None else f'{js:.6f}'}  erf.csv {row[column]}", ok)
        if mine is None:
            continue
        theirs = math.nan if js is None else js
        mine_v = measure(mine, centre, mass)
        ok, note = fmt4(mine_v) == row[column], ""
        if not ok and not (math.isnan(mine_v) or math.isnan(theirs)):
            lo = min(mine_v, theirs)
            lo = (lo - 1) / 2 if what == "size" else lo
            share = share_within(tool_map, centre, lo, metric)
            if abs(share - (mass - MASS_SLACK)) <= 1e-5:
                ok, note = True, f"  (explained: the share within {lo:g} is {share:.7f}, at --mass)"
        rep.line(where, f"{what} from numpy's map", f"{fmt4(mine_v)}  erf.csv {row[column]}", ok, note)


def check_site(rep, net, e, row, st, mine, args, n_images, input_shape):
    where = f"{e['site']} ({net})"
    h, w = input_shape[1:]
    shape = st["shape"]
    position = centre_position(shape)
    if st["field"] is None:
        field = {"kind": "whole"}
        centre, theoretical = ((h - 1) / 2, (w - 1) / 2), max(h, w)
        inside = np.ones((h, w), bool)
    else:
        size, jump, first = st["field"]
        field = {"kind": "local", "size": size, "jump": jump, "first": first}
        y0, x0 = first + position[0] * jump, first + position[1] * jump
        centre, theoretical = (y0 + (size - 1) / 2, x0 + (size - 1) / 2), size
        yy, xx = np.indices((h, w))
        inside = (yy >= y0) & (yy < y0 + size) & (xx >= x0) & (xx < x0 + size)
    units = shape[0]
    want = {"field": field, "position": list(position), "centre": list(centre),
            "theoretical_size": theoretical, "shape": [h, w], "images": n_images,
            "units": units, "mass": args.mass}
    got = {k: e.get(k) for k in want}
    csv_got = {"theoretical_size": int(row["theoretical_size_px"]), "images": int(row["images"]),
               "units": int(row["units"]), "mass": float(row["mass"])}
    bad = [f"erf.json {k} {got[k]}" for k in want if got[k] != want[k]]
    bad += [f"erf.csv {k} {csv_got[k]}" for k in csv_got if csv_got[k] != want[k]]
    rep.line(where, "field, centre, sizes, counts",
             f"theoretical {theoretical} px, centre {centre}, {units} units, {n_images} images"
             + (f"; but {', '.join(bad)}" if bad else ""), not bad)
    tool_map = np.asarray(e["map"], dtype=np.float64)
    if tool_map.size != h * w:
        rep.line(where, "map", f"{tool_map.size} values, expected {h * w}", False)
        return
    tool_map = tool_map.reshape(h, w)
    if mine is not None:
        scale = max(np.abs(tool_map).max(), np.abs(mine).max())
        diff = np.abs(mine - tool_map).max() / scale if scale > 0 else 0.0
        l1 = np.abs(mine - tool_map).sum() / np.abs(tool_map).sum() if scale > 0 else 0.0
        rep.line(where, "map vs numpy's", f"max difference / map max {diff:.1e}, L1 {l1:.1e}",
                 diff <= args.tolerance)
    outside = float(np.abs(tool_map[~inside]).max(initial=0.0))
    rep.line(where, "mass outside the theoretical field", f"largest value {outside:.1e}",
             outside == 0.0)
    silent = not np.any(tool_map)
    nan_csv = row["effective_size_px"] == "NaN" and row["effective_radius_px"] == "NaN"
    null_json = e["size"] is None and e["radius"] is None
    rep.line(where, "silent" if silent else "not silent",
             f"erf.csv size/radius {row['effective_size_px']}/{row['effective_radius_px']}, "
             f"erf.json {json.dumps(e['size'])}/{json.dumps(e['radius'])}",
             (nan_csv and null_json) if silent else not (nan_csv or null_json))
    check_measures(rep, where, e, row, tool_map, mine, args.mass)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="the insilico binary")
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--gradient-images", type=int, default=16)
    parser.add_argument("--mass", type=float, default=0.95)
    parser.add_argument("--sites", default=None, help="comma-separated (default: the tool's, every relu)")
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--data-dir", default=None, help="passed on to insilico; searched first here too")
    parser.add_argument("--manifest", default=str(MANIFEST), help="insilico's datasets/manifest.toml")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest map difference relative to the map's max (float32 noise)")
    parser.add_argument("--work", default=None,
                        help="where to keep the outputs (default: a temporary folder)")
    args = parser.parse_args()
    run_dir = Path(args.run)
    with open(run_dir / "config.toml", "rb") as f:
        config = tomllib.load(f)
    if args.split == "train" and config["data"].get("train_limit"):
        sys.exit("data.train_limit is set: the training split is a seeded subset "
                 "this check cannot rebuild")
    entry = dataset_entry(config["data"]["dataset"], args.manifest)
    input_shape = tuple(entry["shape"])
    weights = load_safetensors(run_dir / "weights.safetensors")
    stages = plan(config["model"]["layers"], input_shape, weights, SUPPORTED)
    by_site = {st["site"]: i for i, st in enumerate(stages)}

    work = Path(args.work or tempfile.mkdtemp(prefix="cross-check-erf-"))
    work.mkdir(parents=True, exist_ok=True)
    copy = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    shutil.copytree(run_dir, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns("assays"))
    cmd = [args.bin, "erf", "--run", str(copy), "--quiet", "--device", "cpu", "--split", args.split,
           "--gradient-images", str(args.gradient_images), "--mass", repr(args.mass)]
    cmd += ["--sites", args.sites] if args.sites else []
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    print("$ " + " ".join(cmd))
    print(run(cmd), end="")
    out = copy / "assays" / "erf"
    result = json.loads((out / "erf.json").read_text())
    with open(out / "erf.csv", newline="") as f:
        rows = {(r["site"], r["network"]): r for r in csv.DictReader(f)}

    x = load_images(entry, args.split, args.gradient_images, args.data_dir)
    n_images = len(x)
    _, aux, ties = forward(stages, x)
    print(f"\n{n_images} {args.split} images of {entry['name']}, mass {args.mass}; "
          f"outputs in {out}")
    for site, t in ties.items():
        windows = n_images * int(np.prod(stages[by_site[site]]["shape"]))
        print(f"  {site}: {t} of {windows} windows tie at a positive max "
              "(the first in row order takes the gradient)")
    sites = [e["site"] for e in result["trained"]]
    want_sites = (args.sites.split(",") if args.sites
                  else [st["site"] for st in stages if st["kind"] == "relu"])
    rng = np.random.default_rng(0)
    rep = Report()
    if sorted(sites) != sorted(want_sites) or [e["site"] for e in result["untrained"]] != sites:
        rep.line("erf.json", "sites", f"{sites}, expected {want_sites}", False)
    fd_worst = 0.0
    for e_trained, e_untrained in zip(result["trained"], result["untrained"]):
        site = e_trained["site"]
        if site not in by_site:
            rep.line(site, "site", "not in the network as this script reads it", False)
            continue
        k = by_site[site]
        st = stages[k]
        print(f"\n{site} ({st['kind']}, output {'x'.join(map(str, st['shape']))})")
        mine = erf_map(stages, input_shape, x, aux, k)
        fd, picks = finite_difference_error(stages, input_shape, x, k, rng)
        fd_worst = max(fd_worst, fd)
        print(f"    {'numpy backward vs differences':<34} max error / gradient max {fd:.1e} "
              f"({picks} pixels, jittered image)" + ("   <-- CHECK SUSPECT" if fd > FD_TOLERANCE else ""))
        for net, e, m in [("trained", e_trained, mine), ("untrained", e_untrained, None)]:
            print(f"  {net}")
            row = rows.get((site, net))
            if row is None:
                rep.line(f"{site} ({net})", "erf.csv row", "missing", False)
                continue
            check_site(rep, net, e, row, st, m, args, n_images, input_shape)
    if len(rows) != 2 * len(sites):
        rep.line("erf.csv", "rows", f"{len(rows)}, expected {2 * len(sites)}", False)

    print(f"\nnumpy backward against finite differences: worst {fd_worst:.1e}"
          + (" -- this check's own backward is suspect" if fd_worst > FD_TOLERANCE else " (fine)"))
    if rep.unexplained:
        print(f"{len(rep.unexplained)} unexplained difference(s):")
        for u in rep.unexplained:
            print(f"  {u}")
        sys.exit(1)
    print("no unexplained differences")


if __name__ == "__main__":
    main()
