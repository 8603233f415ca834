"""Cross-checks `insilico tuning` (orientation and spatial-frequency tuning to drifting gratings
and bars) on a trained run against an independent float64 numpy re-implementation, unit by
unit, and prints every difference.

    python scripts/cross-check-tuning.py --bin target/debug/insilico --run RUN [--work DIR] \
        [--sites conv1,conv1.relu] [--protocols grating,bar] [--contrasts=1,-1] \
        [--orientations 16] [--frequencies 8] [--min-frequency 0.04] [--max-frequency 0.4] \
        [--phases 8] [--luminance 0.5]

Needs numpy and scipy. It copies RUN (without its assays/) into the work folder (assays write
into the run), runs `insilico tuning --run COPY --quiet --device cpu` there with the options
above passed through, and reads assays/tuning/units.csv and tuning.json. Independently, from
RUN/weights.safetensors (parsed by hand), RUN/config.toml ([[model.layers]]: conv2d with
stride and padding, relu, maxpool, avgpool, flatten, linear, dropout as the identity; batch
norm is refused) and the dataset's normalization in datasets/manifest.toml, it
- builds the stimulus grid (orientations 180 i / n degrees, frequencies log-spaced in cycles
  per pixel, phases 2 pi i / n, the contrasts) and checks it against tuning.json's;
- computes each site's theoretical receptive field (kernel, stride, padding of conv and pool
  layers; a vector site sees the whole image), the centre position (h/2, w/2) of its map and
  the field's centre in pixels, checked against tuning.json;
- renders the stimuli as documented (crates/insilico-assays/src/tuning/stimulus.rs):
  orientation = direction of the stripes, counter-clockwise from horizontal with y up (rows
  grow downwards); `across` = signed distance from the centre line along the normal
  (-sin t, cos t); grating cos(2 pi f across + phase); bar = 1 within a quarter period of its
  middle at (phase / 2 pi - 1/2) periods, else 0, averaged over 4 x 4 sub-pixel samples;
  pixel = clip(luminance (1 + contrast pattern), 0, 1), then (pixel - mean) / std;
- runs the network in float64 and takes every unit's value at the centre position, averaged
  over the phases (F0).
Then, per site and protocol:
- responses: every F0 against tuning.json's, and the orientation curve, frequency curve and
  contrast response at the tool's peak, relative to the site's largest response (1e-4);
- silent units (every response 0): flagged silent, every statistic NaN;
- the statistics, computed here both from our curves ("ours") and from the tool's own curves
  in tuning.json ("tool's curve", which isolates the analysis from the forward pass), against
  units.csv: OSI = |sum r e^{2 i t}| / sum r (1 - circular variance, Ringach 2002), NaN if a
  response is negative or all are 0 (1e-4); preferred orientation = half the angle of that
  sum, NaN where its length is <= 1e-5 of sum |r| (0.1 deg, circular); the peak over
  orientation x frequency at the reference contrast (the largest in magnitude, the positive of
  two opposite) and its preferred frequency; F1/F0 at the peak = 2 |sum_p r_p e^{-i phi_p}| / P
  over the mean, NaN if the mean is 0 or a phase response negative (1e-3; ours only: the
  tool does not save its phase responses); the sampled bandwidth, the half width at which
  the sampled curve falls below 1/sqrt 2 of its peak value, linearly interpolated on each side
  of the (first) peak sample and averaged over the sides, a side that does not fall within
  n/2 steps counting 90, NaN if a response is negative or all are 0 (0.1 deg); the von Mises
  bandwidth, from our own least-squares fit (scipy, multi-start) of
  b + a exp(kappa (cos 2 (t - mu) - 1)), a >= 0, ln kappa in [-8, ln kappa_max] with
  kappa_max = min(ln 2 / (2 (1 - cos step)), 200): the half width at which the fitted curve
  falls to 1/sqrt 2 of b + a, cos 2d = 1 + ln g / kappa with g = ((b + a) / sqrt 2 - b) / a,
  90 where it never does, NaN if a = 0 or b + a <= 0 or a response of the curve is negative
  (0.5 deg);
- the tool's von Mises parameters in tuning.json: within the kappa bounds, a >= 0, their
  bandwidth by the formula above equal to the reported one (1e-6 deg), their R^2;
- units.csv against tuning.json (the printed digits).
Explained differences, printed as such:
- a fit is a local optimum: a fitted bandwidth beyond 0.5 deg is unexplained only where our
  fit's SSE on the curve is clearly (1 %, and above float32 noise) lower than that of the
  tool's parameters, else it is another local optimum;
- ill-conditioned statistics: a difference between ours and the tool's where the tool's
  curve gives the tool's value here and our curves agree with the tool's within the response
  tolerance (e.g. the preferred orientation of a nearly flat curve, a peak sample nearly
  tied); peaks tied within the response tolerance (our curve statistics are always taken at
  the tool's peak, whose choice is checked on its own); units silent but for float32 rounding; F1/F0 within the error that the unit's measured F0
  differences allow, (2 + F1/F0) * 4 max|dF0| / F0.
Writes ours.csv (our statistics) to the work folder. Exit status 1 if anything else differs
beyond its tolerance.
"""

import argparse
import csv
import json
import math
import os
import shutil
import sys
import tempfile
import tomllib
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from crosscheck_net import load_safetensors, plan, run

REPO = Path(__file__).resolve().parent.parent
SUPPORTED = ("conv2d", "relu", "maxpool", "avgpool", "flatten", "linear", "dropout")
MANIFEST = REPO / "datasets" / "manifest.toml"
# The assay's documented defaults (crates/insilico-assays/src/tuning/mod.rs).
DEFAULTS = dict(orientations=16, frequencies=8, min_frequency=0.04, max_frequency=0.4, phases=8,
                contrasts="1", luminance=0.5)
RESPONSE_TOL = 1e-4      # relative to the site's largest response
OSI_TOL, ANGLE_TOL, SAMPLED_TOL, FITTED_TOL, F1F0_TOL = 1e-4, 0.1, 0.1, 0.5, 1e-3
FLAT = 1e-5              # a curve whose doubled-angle sum is below this of sum |r| is flat
SQRT2 = math.sqrt(2.0)
# units.csv column: (tuning.json field, tolerance of the printed digits)
CSV_COLUMNS = {"osi": ("osi", 1e-6), "preferred_orientation_deg": ("preferred_orientation", 1e-4),
               "preferred_frequency_cycles_per_px": ("preferred_frequency", 1e-6),
               "bandwidth_deg": ("bandwidth", 1e-4), "sampled_bandwidth_deg": ("sampled_bandwidth", 1e-4),
               "f1_f0": ("modulation_ratio", 1e-6)}


def num(v):
    """A JSON or CSV value as a float (null / NaN -> NaN)."""
    return float("nan") if v is None or v == "" else float(v)


# ------------------------------------------------------------------------------ the network

def centre_of(stage, input_shape):
    """The map position whose units are measured, (h // 2, w // 2) ((0, 0) for a vector), and
    the centre of its receptive field in pixels (row, column; the image centre for a vector)."""
    if len(stage["shape"]) == 1:
        return (0, 0), ((input_shape[1] - 1) / 2, (input_shape[2] - 1) / 2)
    pos = (stage["shape"][1] // 2, stage["shape"][2] // 2)
    size, jump, first = stage["field"]
    return pos, tuple(first + q * jump + (size - 1) / 2 for q in pos)


def forward(stages, x, wanted):
    """{site: activation} for the sites in `wanted`, float64, stopping after the last."""
    last = max(i for i, st in enumerate(stages) if st["site"] in wanted)
    out = {}
    for st in stages[:last + 1]:
        kind = st["kind"]
        if kind == "conv2d":
            p, k, s = st["padding"], st["kernel"], st["stride"]
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
            x = np.tensordot(win, st["weight"], axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
            x = x + st["bias"][None, :, None, None]
        elif kind in ("maxpool", "avgpool"):
            win = np.lib.stride_tricks.sliding_window_view(x, (st["kernel"], st["kernel"]), axis=(2, 3))
            win = win[:, :, ::st["stride"], ::st["stride"]]
            x = win.max(axis=(4, 5)) if kind == "maxpool" else win.mean(axis=(4, 5))
        elif kind == "relu":
            x = np.maximum(x, 0.0)
        elif kind == "flatten":
            x = x.reshape(len(x), -1)
        elif kind == "linear":
            x = x @ st["weight"].T + st["bias"]
        if st["site"] in wanted:
            out[st["site"]] = x
    return out


# ------------------------------------------------------------------------------ the stimuli

def stimulus_grid(o, n_f, f_lo, f_hi, n_p, contrasts):
    """Orientations (degrees), frequencies (cycles per pixel), phases (radians), contrasts.
    Scalar math (the C library's exp, log, sin, cos, as the tool's) so that a bar edge lying
    exactly on a sub-pixel sample is decided the same way."""
    ori = [180.0 * i / o for i in range(o)]
    fr = [f_lo if n_f == 1 else
          math.exp(math.log(f_lo) + i / (n_f - 1) * (math.log(f_hi) - math.log(f_lo)))
          for i in range(n_f)]
    ph = [2.0 * math.pi * i / n_p for i in range(n_p)]
    return ori, fr, ph, list(contrasts)


def render(protocol, grid, centre, luminance, shape, mean, std):
    """Every stimulus of the grid (contrast, orientation, frequency, phase; phase fastest) as
    normalized inputs [n, c, h, w], float64."""
    ori, fr, ph, con = grid
    c, h, w = shape
    ss = 4 if protocol == "bar" else 1
    offsets = (np.arange(ss) + 0.5) / ss - 0.5
    x = (np.arange(w)[:, None] + offsets[None, :]) - centre[1]          # [col, dx], right
    y = centre[0] - (np.arange(h)[:, None] + offsets[None, :])          # [row, dy], up
    planes = []
    for contrast in con:
        for t in ori:
            theta = math.radians(t)
            nx, ny = -math.sin(theta), math.cos(theta)
            across = nx * x[None, :, None, :] + ny * y[:, None, :, None]  # [row, col, dy, dx]
            for f in fr:
                for phase in ph:
                    if protocol == "grating":
                        pattern = np.cos(2.0 * math.pi * f * across + phase)
                    else:
                        period = 1.0 / f
                        middle = (phase / (2.0 * math.pi) - 0.5) * period
                        pattern = (np.abs(across - middle) <= period / 4.0).astype(float)
                    value = pattern.mean(axis=(2, 3))
                    planes.append(np.clip(luminance * (1.0 + contrast * value), 0.0, 1.0))
    planes = np.array(planes)[:, None]
    m = np.array(mean, float)[None, :, None, None]
    s = np.array(std, float)[None, :, None, None]
    return (np.repeat(planes, c, axis=1) - m) / s


# ------------------------------------------------------------------------------ statistics

def osi(theta, r):
    if np.any(r < 0) or not np.any(r > 0):
        return math.nan
    return abs(np.sum(r * np.exp(2j * np.radians(theta)))) / np.sum(r)


def preferred_orientation(theta, r):
    z = np.sum(r * np.exp(2j * np.radians(theta)))
    if abs(z) <= FLAT * np.sum(np.abs(r)):
        return math.nan
    return (math.degrees(np.angle(z)) / 2.0) % 180.0


def sampled_bandwidth(r):
    n = len(r)
    if np.any(r < 0) or not np.any(r > 0):
        return math.nan
    k0 = int(np.argmax(r))
    level = r[k0] / SQRT2
    step = 180.0 / n

    def side(d):
        for k in range(1, n // 2 + 1):
            before, here = r[(k0 + d * (k - 1)) % n], r[(k0 + d * k) % n]
            if here < level:
                return step * (k - 1 + (before - level) / (before - here))
        return 90.0
    return (side(1) + side(-1)) / 2.0


def modulation_ratio(rp, phases):
    f0 = np.mean(rp)
    if f0 == 0 or np.any(rp < 0):
        return math.nan
    return 2.0 * abs(np.sum(rp * np.exp(-1j * np.asarray(phases)))) / len(rp) / f0


def von_mises(theta, b, a, kappa, mu):
    return b + a * np.exp(kappa * (np.cos(2.0 * np.radians(np.asarray(theta) - mu)) - 1.0))


def vm_bandwidth(b, a, kappa):
    peak = b + a
    if not (a > 0 and peak > 0 and math.isfinite(kappa)):
        return math.nan
    g = (peak / SQRT2 - b) / a
    if g <= 0:
        return 90.0
    c = 1.0 + math.log(g) / kappa
    return 90.0 if c <= -1.0 else math.degrees(math.acos(min(c, 1.0))) / 2.0


def kappa_bounds(n):
    step = math.radians(180.0 / n)
    return -8.0, math.log(min(math.log(2.0) / (2.0 * (1.0 - math.cos(step))), 200.0))


def fit_von_mises(theta, r):
    """Least squares of b + a exp(kappa (cos 2 (t - mu) - 1)), a >= 0, ln kappa bounded:
    starts from the best points of a coarse (mu, ln kappa) grid (b and a by linear regression
    there), each refined over all four parameters by scipy. (b, a, kappa, mu, SSE)."""
    t = np.radians(np.asarray(theta))
    lo, hi = kappa_bounds(len(t))
    scale = max(float(np.max(np.abs(r))), 1e-300)
    y = np.asarray(r) / scale
    mus = np.radians(np.arange(0.0, 180.0, 2.5))
    lks = np.linspace(lo, hi, 40)
    g = np.exp(np.exp(lks)[None, :, None] * (np.cos(2 * (t[None, None, :] - mus[:, None, None])) - 1))
    gc = g - g.mean(-1, keepdims=True)
    sgg = np.sum(gc * gc, -1)
    a = np.where(sgg > 0, np.maximum(np.sum(gc * (y - y.mean()), -1) / np.where(sgg > 0, sgg, 1), 0), 0)
    b = y.mean() - a * g.mean(-1)
    sse = np.sum((b[..., None] + a[..., None] * g - y) ** 2, -1)
    starts = []
    for flat in np.argsort(sse, axis=None):
        i, j = np.unravel_index(flat, sse.shape)
        far = all(abs((mus[i] - mus[k] + np.pi / 2) % np.pi - np.pi / 2) > np.radians(15)
                  or abs(lks[j] - lks[m]) > 2 for k, m in starts)
        if far:
            starts.append((i, j))
        if len(starts) == 4:
            break

    def residual(p):
        return p[0] + p[1] * np.exp(np.exp(p[2]) * (np.cos(2 * (t - p[3])) - 1)) - y
    best = None
    for i, j in starts:
        x0 = [b[i, j], a[i, j], min(max(lks[j], lo), hi), mus[i]]
        fit = least_squares(residual, x0, bounds=([-np.inf, 0, lo, -np.inf], [np.inf, np.inf, hi, np.inf]),
                            xtol=1e-12, ftol=1e-12, gtol=1e-12)
        e = float(np.sum(fit.fun ** 2))
        if best is None or e < best[0]:
            best = (e, fit.x)
    e, (bb, aa, lk, mu) = best
    return bb * scale, aa * scale, math.exp(lk), math.degrees(mu) % 180.0, e * scale * scale


def sse_of(theta, r, b, a, kappa, mu):
    return float(np.sum((von_mises(theta, b, a, kappa, mu) - r) ** 2))


def statistics(theta, curve):
    """OSI, preferred orientation, sampled and fitted bandwidth of an orientation curve, and
    the fit."""
    fit = fit_von_mises(theta, curve)
    return dict(osi=osi(theta, curve), pref=preferred_orientation(theta, curve),
                sbw=sampled_bandwidth(curve), bw=fitted_bandwidth(curve, *fit[:3]), fit=fit)


def fitted_bandwidth(curve, b, a, kappa):
    """vm_bandwidth, NaN where a response of the curve is negative (no rates)."""
    return math.nan if np.any(np.asarray(curve) < 0) else vm_bandwidth(b, a, kappa)


# ------------------------------------------------------------------------------ comparison

def distance(a, b, angle=False):
    """|a - b| (folded over 180 degrees for angles); 0 if both NaN, inf if one is."""
    na, nb = math.isnan(a), math.isnan(b)
    if na or nb:
        return 0.0 if na and nb else math.inf
    d = abs(a - b)
    return min(d % 180.0, 180.0 - d % 180.0) if angle else d


class Report:
    """The differences of one site and protocol: the largest per quantity, and a line for
    each beyond its tolerance, explained or not."""

    def __init__(self):
        self.largest, self.nan, self.lines, self.unexplained = {}, {}, [], 0

    def record(self, key, d):
        if math.isinf(d):
            self.nan[key] = self.nan.get(key, 0) + 1
        else:
            self.largest[key] = max(self.largest.get(key, 0.0), d)

    def compare(self, key, unit, ours, tool, tol, angle=False, why=None):
        """Records |ours - tool|; beyond `tol`, why() gives (explained, note). Returns whether
        it was within tolerance."""
        d = distance(ours, tool, angle)
        self.record(key, d)
        if d <= tol:
            return True
        ok, note = why() if why else (False, "")
        self.flag(unit, f"{key}: ours {ours:.6g}, tool {tool:.6g}", ok, note)
        return False

    def flag(self, unit, text, explained, note=""):
        self.lines.append(f"    unit {unit:>4} {text}" + (f"  ({note})" if note else "")
                          + ("" if explained else "   <-- UNEXPLAINED"))
        self.unexplained += not explained

    def print(self, keys):
        for key in keys:
            if key in self.largest or key in self.nan:
                nan = f"  ({self.nan[key]} NaN vs number)" if key in self.nan else ""
                print(f"  {key:<42} max difference {self.largest.get(key, 0.0):.2e}{nan}")
        for line in self.lines:
            print(line)


def fit_check(theta, curve, ours, tool_vm):
    """Our fitted bandwidth against the tool's: beyond the tolerance, unexplained only where
    our fit's SSE is clearly lower than that of the tool's parameters on the same curve."""
    def why():
        b, a, k, mu, e = ours
        e_tool = sse_of(theta, curve, *tool_vm)
        noise = len(curve) * (1e-6 * float(np.max(np.abs(curve)))) ** 2
        note = f"SSE ours {e:.6g}, tool's {e_tool:.6g}"
        if e < e_tool - max(0.01 * e_tool, noise):
            return False, note + ": the tool's fit is a worse optimum"
        return True, note + ": another local optimum"
    return why


def check(site, protocol, tool_site, csv_units, mine, raw, grid, ref, rows):
    """Compares one site and protocol; returns its Report. `mine` is our F0 [c, o, f, unit],
    `raw` our responses [c, o, f, p, unit]."""
    ori, fr, ph, con = grid
    no, nf = len(ori), len(fr)
    rep = Report()
    units = tool_site["units"]
    if len(units) != mine.shape[-1]:
        rep.flag("-", f"{len(units)} units in tuning.json, {mine.shape[-1]} here", False)
        return rep
    scale = max(float(np.max(np.abs(mine))), 1e-300)
    tol_abs = RESPONSE_TOL * scale
    lo, hi = kappa_bounds(no)
    if sorted(csv_units) != list(range(len(units))):
        rep.flag("-", f"units.csv lists units {sorted(csv_units)}, tuning.json 0..{len(units) - 1}", False)
    for u, tu in enumerate(units):
        row = csv_units.get(u)
        if row is None:
            rep.flag(u, "missing from units.csv", False)
            continue
        # units.csv against tuning.json (printed with 6 and 4 decimals)
        rep.compare("units.csv silent vs tuning.json", u, float(row["silent"] == "true"),
                    float(tu["silent"]), 0)
        for col, (key, tol) in CSV_COLUMNS.items():
            rep.compare("units.csv vs tuning.json", u, num(row[col]), num(tu[key]), tol)
        csv_v = {col: num(row[col]) for col in CSV_COLUMNS}
        ours_u, raw_u = mine[..., u], raw[..., u]
        tool_f0 = np.array([num(v) for v in tu["responses"]]).reshape(len(con), no, nf)
        d_f0 = float(np.max(np.abs(ours_u - tool_f0)))
        rep.compare("responses (F0) / site max", u, d_f0 / scale, 0.0, RESPONSE_TOL)
        silent_ours = not np.any(raw_u != 0)
        out = dict(site=site, protocol=protocol, unit=u, silent=silent_ours)
        rows.append(out)
        if tu["silent"] or silent_ours:
            if tu["silent"] != silent_ours:
                near = float(np.max(np.abs(raw_u))) <= tol_abs
                rep.flag(u, f"silent: ours {silent_ours}, tool {tu['silent']}", near,
                         "silent within float32 rounding" if near else "")
            elif any(not math.isnan(v) for v in csv_v.values()):
                rep.flag(u, f"silent but units.csv has numbers: {csv_v}", False)
            continue
        # the tool's peak (first maximum over orientation x frequency at the reference contrast)
        if math.isnan(csv_v["preferred_frequency_cycles_per_px"]) or tu["peak_orientation"] is None:
            rep.flag(u, "responsive but without a preferred frequency or peak orientation", False)
            continue
        f_tool = int(np.argmin(np.abs(np.array(fr) - csv_v["preferred_frequency_cycles_per_px"])))
        o_tool = int(np.argmin([distance(t, num(tu["peak_orientation"]), True) for t in ori]))
        curve_tool = np.array([num(v) for v in tu["orientation_curve"]])
        # the tool's curves against ours, and against its own float32 responses
        for key, ours_c, tool_c in [
                ("orientation curve / site max", ours_u[ref, :, f_tool], curve_tool),
                ("frequency curve / site max", ours_u[ref, o_tool, :], tu["frequency_curve"]),
                ("contrast response / site max", ours_u[:, o_tool, f_tool], tu["contrast_response"])]:
            tool_c = np.array([num(v) for v in tool_c])
            rep.compare(key, u, float(np.max(np.abs(ours_c - tool_c))) / scale, 0.0, RESPONSE_TOL)
        rep.compare("tool's curve vs its responses / site max", u,
                    float(np.max(np.abs(curve_tool - tool_f0[ref, :, f_tool]))) / scale, 0.0, 1e-6)
        curves_agree = d_f0 <= tol_abs
        # the peak: from the tool's float32 responses (ties within their rounding), and ours
        for whose, f0, tie in [("tool's responses", tool_f0[ref], 1e-6 * scale),
                               ("ours", ours_u[ref], tol_abs)]:
            o, f = divmod(int(np.argmax(f0)), nf)
            if (o, f) != (o_tool, f_tool):
                tied = f0[o_tool, f_tool] >= f0[o, f] - tie
                rep.flag(u, f"peak, {whose}: ({ori[o]:g} deg, {fr[f]:.4g}) vs the tool's "
                         f"({ori[o_tool]:g} deg, {fr[f_tool]:.4g})", tied,
                         "tied within the response tolerance" if tied else "")
            rep.record(f"preferred frequency, {whose}", abs(fr[f] - fr[f_tool]))
        # statistics of the tool's curve, then of ours (at the tool's peak)
        tool_vm = [num(tu["von_mises"][k]) for k in ("baseline", "amplitude", "kappa", "mu")]
        theirs = statistics(ori, curve_tool)
        ours_c = ours_u[ref, :, f_tool]
        ours = statistics(ori, ours_c)
        rp = raw_u[ref, o_tool, f_tool]
        f1f0 = modulation_ratio(rp, ph)
        out.update(osi=ours["osi"], preferred_orientation=ours["pref"], preferred_frequency=fr[f_tool],
                   bandwidth=ours["bw"], sampled_bandwidth=ours["sbw"], f1_f0=f1f0)
        checks = [("osi", "osi", OSI_TOL, False), ("preferred orientation (deg)", "pref", ANGLE_TOL, True),
                  ("sampled bandwidth (deg)", "sbw", SAMPLED_TOL, False)]
        columns = {"osi": "osi", "pref": "preferred_orientation_deg", "sbw": "sampled_bandwidth_deg"}
        for name, k, tol, angle in checks:
            agree = rep.compare(f"{name}, tool's curve", u, theirs[k], csv_v[columns[k]], tol, angle)
            rep.compare(f"{name}, ours", u, ours[k], csv_v[columns[k]], tol, angle,
                        lambda agree=agree: conditioned(agree, curves_agree, d_f0 / scale))
        rep.compare("fitted bandwidth (deg), tool's curve", u, theirs["bw"], csv_v["bandwidth_deg"],
                    FITTED_TOL, why=fit_check(ori, curve_tool, theirs["fit"], tool_vm))
        rep.compare("fitted bandwidth (deg), ours", u, ours["bw"], csv_v["bandwidth_deg"], FITTED_TOL,
                    why=fit_check(ori, ours_c, ours["fit"], tool_vm))
        # the tool's own von Mises parameters
        b, a, k, mu = tool_vm
        rep.compare("tool's fit: bandwidth from its parameters", u, fitted_bandwidth(curve_tool, b, a, k),
                    num(tu["bandwidth"]), 1e-6)
        if not (a >= 0 and math.exp(lo) * (1 - 1e-9) <= k <= math.exp(hi) * (1 + 1e-9)):
            rep.flag(u, f"tool's fit outside the bounds: amplitude {a:.4g}, kappa {k:.4g} "
                        f"(allowed [{math.exp(lo):.3g}, {math.exp(hi):.4g}])", False)
        sst = float(np.sum((curve_tool - curve_tool.mean()) ** 2))
        if sst > 0:
            r2 = 1 - sse_of(ori, curve_tool, b, a, k, mu) / sst
            slack = 1e-9 * float(np.sum(curve_tool ** 2)) / sst + 1e-6
            rep.compare("tool's fit: R^2 of its parameters", u, r2, num(tu["von_mises"]["r_squared"]), slack)
        # F1/F0: ours only; within the error the unit's F0 differences allow
        eps = max(4 * d_f0, 1e-6 * scale)

        def f1f0_why(r=f1f0, rp=rp, eps=eps):
            if math.isnan(r) or math.isnan(csv_v["f1_f0"]):
                near = abs(np.mean(rp)) <= eps or abs(np.min(rp)) <= eps
                return near, "mean or smallest phase response 0 within float32 rounding" if near else ""
            bound = (2 + abs(r)) * eps / np.mean(rp)
            return abs(r - csv_v["f1_f0"]) <= bound, f"allowed by the F0 differences: {bound:.2g}"
        rep.compare("F1/F0, ours", u, f1f0, csv_v["f1_f0"], F1F0_TOL, why=f1f0_why)
    return rep


def conditioned(tool_curve_agrees, curves_agree, d):
    if tool_curve_agrees and curves_agree:
        return True, (f"ill-conditioned: the tool's curve gives its value, the curves differ by {d:.1e} "
                      "of the site max")
    return False, ""


# ------------------------------------------------------------------------------ main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="the insilico binary")
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--work", default=None,
                        help="where to copy the run and keep outputs (default: a temporary folder)")
    parser.add_argument("--sites", default=None, help="sites, comma-separated (default: every relu output)")
    parser.add_argument("--protocols", default="grating,bar")
    parser.add_argument("--contrasts", default=DEFAULTS["contrasts"],
                        help="comma-separated; write --contrasts=1,-1")
    for name in ("orientations", "frequencies", "phases"):
        parser.add_argument(f"--{name}", type=int, default=DEFAULTS[name])
    for name in ("min_frequency", "max_frequency", "luminance"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=DEFAULTS[name])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    work = Path(args.work or tempfile.mkdtemp(prefix="cross-check-tuning-"))
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "run"
    if copy.exists():
        shutil.rmtree(copy)
    source = os.path.abspath(args.run)
    shutil.copytree(source, copy, ignore=lambda d, names: ["assays"] if os.path.abspath(d) == source else [])
    protocols = args.protocols.split(",")
    options = ["--protocols", args.protocols, f"--contrasts={args.contrasts}",
               "--orientations", str(args.orientations), "--frequencies", str(args.frequencies),
               "--min-frequency", repr(args.min_frequency), "--max-frequency", repr(args.max_frequency),
               "--phases", str(args.phases), "--luminance", repr(args.luminance)]
    if args.sites:
        options += ["--sites", args.sites]
    cmd = [args.bin, "tuning", "--run", str(copy), "--quiet", "--device", "cpu", *options]
    print("$ " + " ".join(cmd))
    run(cmd)
    out_dir = copy / "assays" / "tuning"
    with open(out_dir / "tuning.json") as f:
        result = json.load(f)
    with open(out_dir / "units.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))

    # the network and its input space
    with open(copy / "config.toml", "rb") as f:
        config = tomllib.load(f)
    model = config["model"]
    for knob, identity in (("width", 1.0), ("dropout", None), ("batch_norm", None)):
        if model.get(knob, identity) != identity:
            sys.exit(f"model.{knob} = {model[knob]}: expected a config with its knobs applied")
    dataset = config.get("data", {}).get("dataset", "shapes")
    with open(MANIFEST, "rb") as f:
        entry = next((d for d in tomllib.load(f)["dataset"] if d["name"] == dataset), None)
    if entry is None:
        sys.exit(f"dataset `{dataset}` is not in {MANIFEST}")
    shape = entry["shape"]
    stages = plan(model["layers"], shape, load_safetensors(copy / "weights.safetensors"), SUPPORTED)
    by_site = {st["site"]: st for st in stages}
    sites = args.sites.split(",") if args.sites else [st["site"] for st in stages if st["kind"] == "relu"]
    for s in sites:
        if s not in by_site:
            sys.exit(f"no site `{s}`; this network has {', '.join(by_site)}")

    bad = 0
    contrasts = [float(c) for c in args.contrasts.split(",")]
    grid = stimulus_grid(args.orientations, args.frequencies, args.min_frequency, args.max_frequency,
                         args.phases, contrasts)
    ori, fr, ph, con = grid
    for key, ours in zip(("orientations", "frequencies", "phases", "contrasts"), grid):
        theirs = result["grid"][key]
        if len(theirs) != len(ours) or not np.allclose(theirs, ours, rtol=1e-12, atol=0):
            print(f"grid {key}: ours {ours}, tool {theirs}   <-- UNEXPLAINED")
            bad += 1
    if abs(result["luminance"] - args.luminance) > 0:
        print(f"luminance: ours {args.luminance}, tool {result['luminance']}   <-- UNEXPLAINED")
        bad += 1
    # the reference contrast: largest in magnitude, the positive of two opposite
    ref = max(range(len(con)), key=lambda i: (abs(con[i]), con[i] > 0))
    expected = [(s, p) for p in protocols for s in sites]
    got = [(s["site"], s["protocol"]) for s in result["sites"]]
    if sorted(expected) != sorted(got):
        print(f"sites: expected {expected}, tuning.json has {got}   <-- UNEXPLAINED")
        bad += 1
    by_unit = {}
    for r in csv_rows:
        by_unit.setdefault((r["site"], r["protocol"]), {})[int(r["unit"])] = r

    keys = ["responses (F0) / site max", "orientation curve / site max", "frequency curve / site max",
            "contrast response / site max", "tool's curve vs its responses / site max",
            "preferred frequency, tool's responses", "preferred frequency, ours",
            "osi, tool's curve", "osi, ours", "preferred orientation (deg), tool's curve",
            "preferred orientation (deg), ours", "sampled bandwidth (deg), tool's curve",
            "sampled bandwidth (deg), ours", "fitted bandwidth (deg), tool's curve",
            "fitted bandwidth (deg), ours", "F1/F0, ours", "tool's fit: bandwidth from its parameters",
            "tool's fit: R^2 of its parameters", "units.csv vs tuning.json",
            "units.csv silent vs tuning.json"]
    rows = []
    for protocol in protocols:
        # one rendering and forward pass per receptive-field centre
        centres = {}
        for s in sites:
            centres.setdefault(centre_of(by_site[s], shape)[1], []).append(s)
        responses = {}
        for centre, group in centres.items():
            x = render(protocol, grid, centre, args.luminance, shape, entry["mean"], entry["std"])
            parts = {s: [] for s in group}
            for start in range(0, len(x), 128):
                acts = forward(stages, x[start:start + 128], set(group))
                for s in group:
                    a = acts[s]
                    pos = centre_of(by_site[s], shape)[0]
                    parts[s].append(a if a.ndim == 2 else a[:, :, pos[0], pos[1]])
            for s in group:
                responses[s] = np.concatenate(parts[s]).reshape(len(con), len(ori), len(fr), len(ph), -1)
        for s in sites:
            tool_site = next((t for t in result["sites"]
                              if t["site"] == s and t["protocol"] == protocol), None)
            if tool_site is None:
                continue
            pos, centre = centre_of(by_site[s], shape)
            print(f"{s} {protocol}: {len(tool_site['units'])} units, centre {centre} at position {pos}")
            if tuple(tool_site["centre"]) != centre or tuple(tool_site["position"]) != pos:
                print(f"  centre: the tool's {tool_site['centre']} at {tool_site['position']}"
                      "   <-- UNEXPLAINED")
                bad += 1
            raw = responses[s]
            rep = check(s, protocol, tool_site, by_unit.get((s, protocol), {}),
                        raw.mean(axis=3), raw, grid, ref, rows)
            live = sum(not u["silent"] for u in tool_site["units"])
            print(f"  silent units: tool {len(tool_site['units']) - live}, "
                  f"ours {sum(r['silent'] for r in rows if r['site'] == s and r['protocol'] == protocol)}")
            rep.print(keys)
            bad += rep.unexplained
    with open(work / "ours.csv", "w", newline="") as f:
        fields = ["site", "protocol", "unit", "silent", "osi", "preferred_orientation", "preferred_frequency",
                  "bandwidth", "sampled_bandwidth", "f1_f0"]
        w = csv.DictWriter(f, fieldnames=fields, restval="NaN")
        w.writeheader()
        w.writerows(rows)
    print(f"{bad} unexplained difference(s); outputs in {work}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
