"""Kernel files: JSON (shape, stride, activation, values per channel) and ``.npy``.

A kernel file holds one filter::

    {"format": "revdeconv-kernel", "version": 1,
     "shape": [C, kh, kw], "stride": [sh, sw], "activation": "clip",
     "kernel": [[[...], ...], ...],          # C kernels of kh rows of kw values
     "bias": [b_0, ..., b_C-1]}

A kernel-set file holds one filter per image, by image name (what
``revdeconv learn`` writes without ``--shared``)::

    {"format": "revdeconv-kernels", "version": 1, "kernels": {"name": {...}, ...}}

A hand-written file may hold less: a list of rows, ``[[0, -1, 0], [-1, 5, -1],
[0, -1, 0]]`` (or one such list per channel), or ``{"kernel": [[...], ...]}``
with any of the other fields; the bias is then 0, and the stride and
activation are those the command or function is given (by default, the
kernel size and ``"clip"``).

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
from .io import write_atomically
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


_EXPECTED = ('a list of rows such as [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], or an object '
             'with a "kernel" field')


def _values(value, what, expected=_EXPECTED):
    """A JSON list of rows (or of per-channel lists of rows) as a (C, kh, kw) float array."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must hold numbers only, in rows of one length") from None
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"{what} has shape {array.shape}; expected {expected}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} must hold finite numbers only")
    return array


def _from_json(entry, path):
    """One filter: a list of rows, or an object whose fields other than "kernel" are
    optional (bias 0, stride and activation those of the command or function)."""
    try:
        if not isinstance(entry, dict):
            entry = {"kernel": entry}
        if "kernel" not in entry:
            raise ValueError(f"expected {_EXPECTED}")
        kernel = _values(entry["kernel"], "the kernel")
        stated = entry.get("shape")
        shapes = [list(kernel.shape)] + ([list(kernel.shape[1:])] if len(kernel) == 1 else [])
        if stated is not None and stated not in shapes:
            raise ValueError(f'its "kernel" holds {"x".join(map(str, kernel.shape))} values, '
                             f'but its "shape" says {stated}')
        bias = np.zeros(kernel.shape[0]) if entry.get("bias") is None \
            else np.array(entry["bias"], dtype=np.float64).reshape(-1)
        if bias.size == 1:
            bias = np.repeat(bias, kernel.shape[0])
        if bias.shape != kernel.shape[:1] or not np.isfinite(bias).all():
            raise ValueError(f'"bias" must be one finite number, or one per channel '
                             f'({kernel.shape[0]}), got {entry["bias"]}')
        stride = entry.get("stride")
        activation = entry.get("activation")
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected "
                             f"{', '.join(ACTIVATIONS)}")
        return KernelSpec(kernel, bias,
                          None if stride is None else as_pair(stride, "stride"), activation)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a kernel file revdeconv can read: {exc}") from None


def load_kernel(path):
    """Read a kernel file: a :class:`KernelSpec`, or for a kernel-set file a dict of them
    by image name.

    Besides the files :func:`save_kernel` and :func:`save_kernels` write, a
    hand-written file is read: a JSON list of rows (``[[0, -1, 0], [-1, 5, -1],
    [0, -1, 0]]``), a list of such lists (one per channel), or an object with a
    ``"kernel"`` field whose other fields are optional (``"bias"``: 0,
    ``"stride"`` and ``"activation"``: not stored). ``.npy`` files hold the
    kernel values only.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "sharpen.json")
    >>> with open(path, "w") as f:
    ...     _ = f.write("[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]")
    >>> load_kernel(path).kernel.shape
    (1, 3, 3)
    """
    path = os.fspath(path)
    if path.lower().endswith(".npy"):
        try:
            return KernelSpec(_values(np.load(path, allow_pickle=False), "the array",
                                      "a (kh, kw) or (C, kh, kw) array of numbers"))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ValueError(f"{path}: not a kernel revdeconv can read: {exc}") from None
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not a JSON file ({exc})") from None
    kind = document.get("format") if isinstance(document, dict) else None
    if kind == SET:
        entries = document.get("kernels")
        if not isinstance(entries, dict):
            raise ValueError(f'{path}: a kernel-set file needs a "kernels" object, '
                             f'{{"image name": kernel, ...}}')
        return {name: _from_json(entry, path) for name, entry in entries.items()}
    if kind not in (None, SINGLE):
        raise ValueError(f"{path}: unknown format {kind!r}; expected {SINGLE!r} or {SET!r}")
    return _from_json(document, path)
