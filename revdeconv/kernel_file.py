"""Kernel files: JSON (shape, stride, activation, values per channel) and ``.npy``.

A kernel file holds one filter::

    {"format": "revdeconv-kernel", "version": 1,
     "shape": [C, kh, kw], "stride": [sh, sw], "activation": "clip",
     "kernel": [[[...], ...], ...],          # C kernels of kh rows of kw values
     "bias": [b_0, ..., b_C-1]}

A kernel-set file holds one filter per image, by image name (what
``revdeconv learn`` writes without ``--shared``)::

    {"format": "revdeconv-kernels", "version": 1, "kernels": {"name": {...}, ...}}

Examples
--------
>>> import os, tempfile
>>> from revdeconv import filters
>>> from revdeconv.kernel_file import load_kernel, save_kernel
>>> path = os.path.join(tempfile.mkdtemp(), "edge.json")
>>> save_kernel(path, filters.EDGE, stride=3)
>>> spec = load_kernel(path)
>>> spec.kernel.shape, spec.stride, spec.activation
((1, 3, 3), (3, 3), 'clip')
"""

import json
import os
import re
from dataclasses import dataclass

import numpy as np

from ._validation import ACTIVATIONS, as_pair
from .io import load_array, write_atomically
from .learning import FilterResult

__all__ = ["KernelSpec", "load_kernel", "save_kernel", "save_kernels"]

SINGLE, SET = "revdeconv-kernel", "revdeconv-kernels"


@dataclass(frozen=True)
class KernelSpec:
    """A filter read from a file: ``kernel`` ``(C, kh, kw)``; the rest None when not stored."""

    kernel: np.ndarray
    bias: np.ndarray = None
    stride: tuple = None
    activation: str = None


def _to_json(kernel, bias, stride, activation):
    if isinstance(kernel, FilterResult):
        bias = kernel.bias if bias is None else bias
        stride = kernel.stride if stride is None else stride
        activation = kernel.activation if activation is None else activation
        kernel = kernel.kernel
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim == 2:
        kernel = kernel[np.newaxis]
    if kernel.ndim != 3 or not np.isfinite(kernel).all():
        raise ValueError(f"kernel must be a finite (kh, kw) or (C, kh, kw) array, "
                         f"got shape {kernel.shape}")
    return {
        "format": SINGLE, "version": 1, "shape": list(kernel.shape),
        "stride": None if stride is None else list(as_pair(stride, "stride")),
        "activation": activation or "clip",
        "kernel": kernel.tolist(),
        "bias": np.zeros(kernel.shape[0]).tolist() if bias is None
        else np.broadcast_to(np.asarray(bias, dtype=np.float64), kernel.shape[:1]).tolist(),
    }


def _write_json(path, document):
    # Indented, but each innermost list (a kernel row, a stride) on one line.
    text = re.sub(r"\[\n\s+([^\[\]{}]*?)\n\s*\]",
                  lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  json.dumps(document, indent=1)).encode()
    write_atomically(path, lambda f: f.write(text))


def save_kernel(path, kernel, *, bias=None, stride=None, activation=None):
    """Write one filter (an array or a :class:`~revdeconv.FilterResult`) to a JSON file.

    The stride defaults to the result's (for an array: not stored, which means
    the kernel size); the activation to the result's, or ``"clip"``.
    """
    _write_json(path, _to_json(kernel, bias, stride, activation))


def save_kernels(path, kernels):
    """Write one filter per image name (``{name: FilterResult or array}``) to a JSON file."""
    _write_json(path, {"format": SET, "version": 1,
                       "kernels": {str(name): _to_json(k, None, None, None)
                                   for name, k in kernels.items()}})


def _from_json(entry, path):
    try:
        kernel = np.array(entry["kernel"], dtype=np.float64)
        if kernel.ndim != 3 or list(kernel.shape) != list(entry.get("shape", kernel.shape)):
            raise ValueError(f"kernel values do not have the stated shape {entry.get('shape')}")
        bias = np.array(entry.get("bias") or np.zeros(kernel.shape[0]), dtype=np.float64)
        stride = entry.get("stride")
        activation = entry.get("activation")
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise ValueError("kernel values must be finite")
        return KernelSpec(kernel, bias.reshape(-1),
                          None if stride is None else as_pair(stride, "stride"), activation)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid revdeconv kernel ({exc})") from None


def load_kernel(path):
    """Read a kernel file: a :class:`KernelSpec`, or for a kernel-set file a dict of them
    by image name. ``.npy`` files hold the kernel values only."""
    path = os.fspath(path)
    if path.lower().endswith(".npy"):
        array = load_array(path).astype(np.float64)
        return KernelSpec(array if array.ndim == 3 else array[np.newaxis])
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read a kernel file ({exc})") from None
    kind = document.get("format") if isinstance(document, dict) else None
    if kind == SET:
        return {name: _from_json(entry, path) for name, entry in document["kernels"].items()}
    if kind == SINGLE:
        return _from_json(document, path)
    raise ValueError(f"{path}: not a revdeconv kernel file (format {kind!r})")
