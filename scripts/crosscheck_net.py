"""What the cross-check scripts share: running the binary, reading a run's weights, and
walking its config's layers into stages (insilico's site names, shapes, theoretical
receptive fields). Imported by cross-check-tuning.py and cross-check-erf.py, which run
from this folder."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np


def run(cmd):
    """stdout of `cmd`; exits with its stderr if it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return done.stdout


def load_safetensors(path):
    """{name: float64 array} from a safetensors file (8-byte little-endian header length,
    JSON header, little-endian data)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    types = {"F32": "<f4", "F64": "<f8", "F16": "<f2"}
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        if v["dtype"] not in types:
            sys.exit(f"{path}: {name} is {v['dtype']}")
        start, end = v["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + start:8 + n + end],
                                  dtype=types[v["dtype"]]).reshape(v["shape"]).astype(np.float64)
    return out


def plan(layers, input_shape, weights, supported):
    """The stages of the network, one per layer of `supported` kinds (any other is refused):
    `kind`, `site` (insilico's default names conv1, pool1, flatten, fc1, logits for the last
    linear, <parent>.relu, <parent>.dropout, or the layer's `name`), `weight` and `bias`
    (conv2d, linear), `kernel`, `stride`, `padding` (conv2d, pools), output `shape` and
    theoretical receptive `field` ((size, jump, first), or None for a unit that sees the
    whole input)."""
    stages, shape, field = [], tuple(input_shape), (1, 1, 0)
    count = {"conv2d": 0, "linear": 0, "pool": 0}
    parent = "input"
    last_linear = max((i for i, l in enumerate(layers) if l["type"] == "linear"), default=None)
    for i, layer in enumerate(layers):
        kind = layer["type"]
        if kind not in supported:
            sys.exit(f"model.layers[{i}] is a {kind} layer: this check supports only "
                     f"{', '.join(supported)}")
        if kind == "conv2d":
            count["conv2d"] += 1
            site = f"conv{count['conv2d']}"
        elif kind == "linear":
            count["linear"] += 1
            site = "logits" if i == last_linear else f"fc{count['linear']}"
        elif kind in ("maxpool", "avgpool"):
            count["pool"] += 1
            site = f"pool{count['pool']}"
        elif kind == "flatten":
            site = "flatten"
        else:
            site = f"{parent}.{kind}"
        site = layer.get("name", site)
        st = {"kind": kind, "site": site}
        if kind in ("conv2d", "linear"):
            parent = site
            st["weight"] = weights[f"{site}.weight"]
            st["bias"] = weights.get(f"{site}.bias", np.zeros(st["weight"].shape[0]))
        if kind in ("conv2d", "maxpool", "avgpool"):
            if len(shape) != 3:
                sys.exit(f"model.layers[{i}] ({kind}) gets a vector")
            k = layer["kernel"]
            s = layer.get("stride", 1 if kind == "conv2d" else k)
            p = layer.get("padding", 0) if kind == "conv2d" else 0
            c, h, w = shape
            out_c = layer["out_channels"] if kind == "conv2d" else c
            if kind == "conv2d" and st["weight"].shape != (out_c, c, k, k):
                sys.exit(f"{site}.weight has shape {st['weight'].shape}, expected {(out_c, c, k, k)}")
            st.update(kernel=k, stride=s, padding=p)
            shape = (out_c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
            if field is not None:
                size, jump, first = field
                field = (size + (k - 1) * jump, jump * s, first - p * jump)
        elif kind == "flatten":
            shape, field = (int(np.prod(shape)),), None
        elif kind == "linear":
            if len(shape) != 1 or st["weight"].shape != (layer["out_features"], shape[0]):
                sys.exit(f"{site}.weight has shape {st['weight'].shape}, input {shape}")
            shape, field = (layer["out_features"],), None
        st.update(shape=shape, field=field)
        stages.append(st)
    return stages
