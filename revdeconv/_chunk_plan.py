"""The chunk arithmetic of ``revdeconv.chunked``: which rows each chunk reads and
writes, per axis, with kernel ``k`` and stride ``s``. Plain integers, no Dask.

- Convolution: a chunk starting at row ``a`` (a multiple of ``s``) owns the output
  rows ``p`` with ``a <= p*s < next start``: those whose block starts in it. Every
  chunk but the last must therefore be a multiple of ``s``. Block ``p`` reads rows
  ``p*s .. p*s + k - 1``: when ``s >= k`` they lie in the chunk (no halo); when
  ``s < k`` the chunk reads ``k - s`` rows more from the chunks after it, a
  one-sided halo. Chunks that own no output row (a last chunk shorter than the
  kernel, whose rows are all the previous chunk's halo) give no output chunk.
- Reverse solve and zoom: filtered row ``p`` gives output rows ``p*s ..``, so
  input chunk ``i`` of ``n`` rows gives ``n * s`` output rows, and the last chunk
  whatever is left of the output (a border that takes its zoom value, or less).
  With overlapping blocks (``s < k``) the reverse solve is sequential along that
  axis: each block reads pixels the block before it solved.
"""

import math

import numpy as np

from ._layout import output_size

__all__ = ["starts", "check_aligned", "convolution_plan", "replicated_chunks",
           "check_solvable", "aligned"]

AXES = ("rows", "columns")


def starts(chunks):
    """Where each chunk starts, then the end of the axis."""
    return [0] + np.cumsum(chunks).tolist()


def check_aligned(chunks, name, kernel_shape, stride):
    """Every chunk but the last of the first two axes must be a multiple of the stride."""
    for axis, (sizes, k, s) in enumerate(zip(chunks[:2], kernel_shape, stride)):
        bad = sorted({size for size in sizes[:-1] if size % s})
        if bad:
            raise ValueError(
                f"{name}'s chunks along its {AXES[axis]} {sizes} must be multiples of the "
                f"stride {s} (all but the last), got {bad}: a chunk must start where a "
                f"block does; rechunk with {name}.rechunk(revdeconv.chunked.aligned_chunks("
                f"{name}.shape, {tuple(kernel_shape)}, {tuple(stride)}))")


def convolution_plan(chunks, size, k, s):
    """Per output chunk along one axis: its length, and the input rows ``(a, e)`` it
    reads (``e`` past the chunk's end when it needs a halo)."""
    bounds, n_out = starts(chunks), output_size(size, k, s)
    lengths, reads = [], []
    for i, start in enumerate(bounds[:-1]):
        end = n_out if i == len(chunks) - 1 else min(bounds[i + 1] // s, n_out)
        if end <= start // s:
            break
        lengths.append(end - start // s)
        reads.append((start, (end - 1) * s + k))
    return tuple(lengths), reads


def replicated_chunks(chunks, s, size_out):
    """Output chunks when input chunk ``i`` gives the output rows from ``a_i * s`` on."""
    return tuple(size * s for size in chunks[:-1]) + (size_out - sum(chunks[:-1]) * s,)


def check_solvable(chunks, name, kernel_shape, stride):
    """An axis whose blocks overlap must be one chunk for the reverse solve."""
    for axis, (sizes, k, s) in enumerate(zip(chunks[:2], kernel_shape, stride)):
        if s < k and len(sizes) > 1:
            raise ValueError(
                f"the reverse solve with overlapping blocks (stride {s} < kernel {k} along "
                f"the {AXES[axis]}) is sequential: each block reads the pixels the block "
                f"before it solved, so {name}'s {AXES[axis]} must be one chunk, got "
                f"chunks {sizes}; use {name}.rechunk({{{axis}: -1}}), or "
                f"revdeconv.deconvolve in memory")


def _multiple(value, step, at_least):
    """The largest multiple of ``step`` not above ``value``; no less than ``at_least``
    rounded up to one, nor than ``step``."""
    return max(value // step * step, -(-at_least // step) * step, step)


def _split(size, chunk, k):
    """``size`` in chunks of ``chunk``; a last chunk shorter than the kernel (all of it
    the halo of the one before) is joined to the one before."""
    chunks = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
    if len(chunks) > 1 and chunks[-1] < k:
        chunks[-2:] = [chunks[-2] + chunks[-1]]
    return tuple(chunks)


def aligned(height, width, kernel_shape, stride, target_bytes, pixel_bytes):
    """Row and column chunks (see ``revdeconv.chunked.aligned_chunks``)."""
    halo = [max(k - s, 0) for k, s in zip(kernel_shape, stride)]
    rows = _multiple(target_bytes // (width * pixel_bytes), stride[0], halo[0])
    if rows * width * pixel_bytes <= target_bytes or rows >= height:
        cols = width
    else:               # a band is too large: square-ish tiles
        rows = _multiple(math.isqrt(max(target_bytes // pixel_bytes, 1)), stride[0], halo[0])
        cols = _multiple(max(target_bytes // (rows * pixel_bytes), 1), stride[1], halo[1])
    return (_split(height, min(rows, height), kernel_shape[0]),
            _split(width, min(cols, width), kernel_shape[1]))
