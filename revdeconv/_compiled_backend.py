"""The compiled backend: packs validated arrays for the Cython kernels.

Same functions and arguments as ``revdeconv._numpy_backend``. The kernels
take a batch of channels-last images plus a geometry table (see
``src_c/_batch.pxd``), so several images (of different sizes) go through one
call and one parallel loop. The convolution, the reverse solve and the
measures read their images as one array per image, in place (a list of
separately decoded images is not copied), and write their outputs into one
array per image: the caller's (``out=``), written in place, or views of one
buffer allocated here. The learning kernels take one flat buffer (``_pack``).
"""

import numpy as np

from . import _convolve, _learn, _measure, _reverse
from ._layout import back_to_back, output_size
from ._threads import thread_share

__all__ = ["convolve", "squared_error", "sgd", "normal_equations", "deconvolve", "mae"]

ACTIVATION_CODES = _convolve.ACTIVATION_CODES      # the C enum of src_c/_simd.h

# Per-channel state rows are padded to whole, distinct cache lines so that
# threads owning neighbouring channels never write to the same line.
_CACHE_LINE = 64

# The least work worth a thread of its own (measured on a 2-core machine: a
# 180x250 RGB image runs the SGD pass and the reverse solve faster on one).
_MIN_MACS_PER_THREAD = 1 << 16      # convolution: output values x kernel taps
_MIN_UPDATES_PER_THREAD = 1 << 15   # SGD: block updates, all channels
_MIN_VALUES_PER_THREAD = 1 << 18    # reverse solve, MAE: values written or read

# lstsq: bands of block rows per channel, and the most their sums may take.
_NORMAL_BANDS = 8
_NORMAL_BANDS_BYTES = 1 << 24

# Pixels per stretch of a row in the stride-1 convolution and the disjoint
# reverse solve: enough to amortise the loop set-up, few enough that the
# stretch and its kernel stay in the first-level cache.
_DENSE_CHUNK_PIXELS = 64

# Up to this stride along a row (and from the kernel's width: blocks that do not
# overlap), the convolution computes the stride-1 row with the vectorised kernel
# and keeps one pixel in ``stride``: ``stride`` times the work, yet faster than
# the strided scalar loop (4k, 1 thread: 3x3 at stride 3 22 ms against 29 ms,
# 5x5 at 5 14 ms against 20 ms; with overlap, 7x7 at 4, 53 ms against 46 ms).
_SUBSAMPLED_MAX_STRIDE = 8


def _geometry(shapes, n_channels):
    """Batch geometry: per image (offset, height, width, rows before it)."""
    geometry = np.zeros((len(shapes), 4), dtype=np.intp)
    offset = row = 0
    for n, (height, width) in enumerate(shapes):
        geometry[n] = offset, height, width, row
        offset += height * width * n_channels
        row += height
    return geometry


def _shapes_geometry(images):
    """Geometry of a list of (H, W, C) arrays read in place (OFFSET unused)."""
    return _geometry([image.shape[:2] for image in images], images[0].shape[2])


def _pack(images):
    """Flat buffer and geometry of a list of C-contiguous (H, W, C) arrays.

    Nothing is copied when the images already lie back to back in one buffer
    (one image, or the images of a C-contiguous stack).
    """
    geometry = _shapes_geometry(images)
    flat = back_to_back(images)
    if flat is None:
        flat = np.concatenate([image.reshape(-1) for image in images])
    return flat, geometry


def _allocate(shapes, n_channels, dtype):
    """Outputs of the given (H, W) shapes: ``(H, W, C)`` views of one buffer, back to
    back (so that a stack in gives a stack out without a copy)."""
    flat = np.empty(sum(h * w for h, w in shapes) * n_channels, dtype=dtype)
    return [flat[start:start + h * w * n_channels].reshape(h, w, n_channels)
            for start, h, w, _ in _geometry(shapes, n_channels)]


def _padded_rows(n_rows, row_len, dtype):
    """A zeroed (n_rows, >= row_len) work array whose rows start on distinct cache lines."""
    per_line = _CACHE_LINE // np.dtype(dtype).itemsize
    width = (row_len + per_line - 1) // per_line * per_line + per_line
    return np.zeros((n_rows, width), dtype=dtype)


def _taps(kernel, nonfinite):
    """The taps ``i * kw + j`` the convolution sums, in raster order: every one, or
    with ``nonfinite="raise"`` those with a nonzero weight in some channel (at
    least one). Leaving out ``0 * x`` changes no sum when ``x`` is finite: the sum
    starts at +0, is never -0, and adding a zero of either sign to it changes
    nothing; with ``"raise"`` the images are finite, or the call raises."""
    n_channels, kh, kw = kernel.shape
    if nonfinite != "raise":
        return np.arange(kh * kw)
    nonzero = np.flatnonzero(kernel.reshape(n_channels, kh * kw).any(axis=0))
    return nonzero if len(nonzero) else np.arange(1)


def convolve(images, kernel, bias, stride, activation, n_threads, outputs=None,
             nonfinite="propagate"):
    """Returns the outputs (``outputs``, written into, or new) and, per image, whether
    one of its sums was not finite (a NaN or an infinity among the pixels read, or
    an overflow); with ``nonfinite="raise"``, zero taps are left out (``_taps``)."""
    n_channels, kh, kw = kernel.shape
    shapes = [(output_size(h, kh, stride[0]), output_size(w, kw, stride[1]))
              for h, w, _ in (image.shape for image in images)]
    src_geom = _shapes_geometry(images)
    dst_geom = _geometry(shapes, n_channels)
    if outputs is None:
        outputs = _allocate(shapes, n_channels, kernel.dtype)
    # The taps' weights and the bias repeated along a chunk of a row, and where each
    # tap reads (see _convolve.pyx): at stride 1, and when blocks do not overlap along
    # a row at a small stride, through the stride-1 row (_convolve_row_subsampled).
    tiled = np.empty((0, 0), dtype=kernel.dtype)
    taps = np.empty((len(images), 0), dtype=np.intp)
    if stride[1] == 1 or kw <= stride[1] <= _SUBSAMPLED_MAX_STRIDE:
        chosen = _taps(kernel, nonfinite)
        rows = np.concatenate([kernel.reshape(n_channels, kh * kw).T[chosen], bias[None, :]])
        tiled = np.ascontiguousarray(np.tile(rows, (1, _DENSE_CHUNK_PIXELS)))
        i, j = np.divmod(chosen, kw)
        taps = np.ascontiguousarray((i * src_geom[:, 2:3] + j) * n_channels, dtype=np.intp)
    nonfinite_rows = np.empty(int(dst_geom[-1, 3] + dst_geom[-1, 1]), dtype=np.uint8)
    values = sum(h * w for h, w in shapes) * n_channels
    with thread_share(n_threads, values * kh * kw, _MIN_MACS_PER_THREAD) as n_threads:
        subsampled = stride[1] > 1 and tiled.size
        scratch = _padded_rows(n_threads if subsampled else 1,
                               tiled.shape[1] if subsampled else 0, kernel.dtype)
        _convolve.convolve(list(images), src_geom, kernel, bias, outputs, dst_geom, tiled,
                           taps, scratch, nonfinite_rows, stride[0], stride[1],
                           ACTIVATION_CODES[activation], n_threads)
    return outputs, np.logical_or.reduceat(nonfinite_rows, dst_geom[:, 3]).tolist()


def squared_error(originals, targets, kernel, bias, stride, activation, n_threads):
    """Sum over all pairs of ``(convolve(original) - target)**2``, in double."""
    n_channels, kh, kw = kernel.shape
    src_geom, tgt_geom = _shapes_geometry(originals), _shapes_geometry(targets)
    row_sums = np.empty(int(tgt_geom[-1, 3] + tgt_geom[-1, 1]))
    values = sum(target.size for target in targets)
    with thread_share(n_threads, values * kh * kw, _MIN_MACS_PER_THREAD) as n_threads:
        scratch = _padded_rows(n_threads, int(tgt_geom[:, 2].max()) * n_channels, kernel.dtype)
        _convolve.squared_error(list(originals), src_geom, kernel, bias, list(targets),
                                tgt_geom, scratch, row_sums, stride[0], stride[1],
                                ACTIVATION_CODES[activation], n_threads)
    return float(row_sums.sum())


def _sgd(originals, targets, kernel, bias, stride, lr, epochs, learn_bias, activation,
         order, n_threads, order_start=None):
    """SGD on kernels ``(..., kh, kw)`` and biases ``(...)``: ``_learn.sgd``, or with
    ``order_start`` ``_learn.sgd_each``, each channel's state in a padded row of its
    own. Returns the learned kernels, biases and squared errors ``(..., epochs)``."""
    lead, (kh, kw) = kernel.shape[:-2], kernel.shape[-2:]
    n_rows = int(np.prod(lead))
    params = _padded_rows(n_rows, kh * kw + 1, kernel.dtype)
    params[:, :kh * kw] = kernel.reshape(n_rows, -1)
    params[:, kh * kw] = bias.reshape(-1)
    sq_err = _padded_rows(n_rows, epochs, np.float64)
    src, src_geom = _pack(originals)
    tgt, tgt_geom = _pack(targets)
    order = np.empty(0, dtype=np.intp) if order is None else order
    # taps[n, i*kw + j]: where tap (i, j) lies from a block's first value in original n
    widths = src_geom[:, 2, None, None]
    taps = (np.arange(kh)[:, None] * widths + np.arange(kw)) * originals[0].shape[2]
    taps = np.ascontiguousarray(taps.reshape(len(originals), kh * kw), dtype=np.intp)
    learn, first = ((_learn.sgd, ()) if order_start is None
                    else (_learn.sgd_each, (order_start,)))
    with thread_share(n_threads, epochs * tgt.size,
                               _MIN_UPDATES_PER_THREAD) as n_threads:
        learn(src, src_geom, tgt, tgt_geom, params, sq_err, order, *first, taps, stride[0],
              stride[1], lr, epochs, learn_bias, ACTIVATION_CODES[activation], n_threads)
    return (params[:, :kh * kw].reshape(kernel.shape).copy(),
            params[:, kh * kw].reshape(lead).copy(),
            sq_err[:, :epochs].reshape(lead + (epochs,)).copy())


def sgd(originals, targets, kernel, bias, stride, lr, epochs, learn_bias,
        activation, order, n_threads):
    return _sgd(originals, targets, kernel, bias, stride, lr, epochs, learn_bias, activation,
                order, n_threads)


def sgd_each(originals, targets, kernels, biases, stride, lr, epochs, learn_bias,
             activation, order, n_threads):
    blocks = [epochs * target.shape[0] * target.shape[1] for target in targets]
    order_start = np.concatenate([[0], np.cumsum(blocks)]).astype(np.intp)
    return _sgd(originals, targets, kernels, biases, stride, lr, epochs, learn_bias,
                activation, order, n_threads, order_start)


def normal_equations(originals, targets, kernel_shape, stride, with_bias,
                     activation, n_threads):
    kh, kw = kernel_shape
    n_channels = originals[0].shape[2]
    m = kh * kw + bool(with_bias)
    ld = (m + 1 + 3) // 4 * 4          # a design row, its target, then zeros
    # Each channel's sums in a few bands of block rows, so that every thread has
    # work whatever the channel count; a fixed number of bands (not one per
    # thread), so that the sums, and the result, do not depend on the threads.
    n_bands = int(np.clip(_NORMAL_BANDS_BYTES // (n_channels * ld * ld * 8), 1, _NORMAL_BANDS))
    acc = _padded_rows(n_bands * n_channels, ld * ld + 1, np.float64)
    src, src_geom = _pack(originals)
    tgt, tgt_geom = _pack(targets)
    # A thread's part: a band and up to DESIGN_LANES channels, gathered in one sweep.
    lanes = min(_learn.DESIGN_LANES, n_channels)
    n_parts = n_bands * -(-n_channels // lanes)
    with thread_share(n_threads, n_parts) as n_threads:
        rows = _padded_rows(n_threads, lanes * _learn.DESIGN_ROWS * ld, np.float64)
        _learn.normal_equations(src, src_geom, tgt, tgt_geom, acc, rows, n_channels, kh, kw,
                                stride[0], stride[1], with_bias, ACTIVATION_CODES[activation],
                                n_threads)
    totals = acc[:, :ld * ld + 1].reshape(n_bands, n_channels, -1).sum(axis=0)
    full = totals[:, :ld * ld].reshape(n_channels, ld, ld)
    # The kernel fills the upper triangle (and a little more); mirror it. The target
    # is column m of a design row: A't is column m, t't the diagonal after A'A.
    upper = np.triu(full[:, :m, :m])
    gram = upper + np.triu(upper, 1).transpose(0, 2, 1)
    return gram, full[:, :m, m].copy(), totals[:, ld * ld].copy(), full[:, m, m].copy()


def deconvolve(images, kernel, stride, output_shapes, eps, activation, n_threads,
               outputs=None):
    """``kernel`` is ``(C, kh, kw)``, or ``(N, C, kh, kw)``: one per image. Returns the
    outputs (``outputs``, written into, or new)."""
    n_channels, kh, kw = kernel.shape[-3:]
    src_geom = _shapes_geometry(images)
    dst_geom = _geometry(output_shapes, n_channels)
    if outputs is None:
        outputs = _allocate(output_shapes, n_channels, kernel.dtype)
    # When blocks are disjoint, each thread lays the kernel out along a stretch
    # of a row and keeps running sums and solved values there (see _reverse.pyx).
    disjoint = stride[0] >= kh and stride[1] >= kw
    chunk = _DENSE_CHUNK_PIXELS * n_channels
    values = sum(h * w for h, w in output_shapes) * n_channels
    with thread_share(n_threads, values, _MIN_VALUES_PER_THREAD) as n_threads:
        scratch = _padded_rows(n_threads if disjoint else 1,
                               (2 * kh * kw + 1 + kw) * chunk if disjoint else 0, kernel.dtype)
        tiled_for = np.full(n_threads, -1, dtype=np.intp)
        _reverse.deconvolve(list(images), src_geom, kernel.reshape(-1, kh, kw), outputs,
                            dst_geom, scratch, tiled_for, chunk, n_channels, stride[0],
                            stride[1], eps, ACTIVATION_CODES[activation], n_threads)
    return outputs


def mae(images, references, n_threads):
    """``images[n]`` and ``references[n]`` share a shape and one float dtype."""
    geometry = _shapes_geometry(images)
    out = np.empty(len(images))
    values = sum(image.size for image in images)
    with thread_share(n_threads, values, _MIN_VALUES_PER_THREAD) as n_threads:
        _measure.mean_abs_diff(list(images), list(references), geometry, out,
                               images[0].shape[2], n_threads)
    return out
