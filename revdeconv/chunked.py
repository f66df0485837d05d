"""Images larger than memory: :func:`convolve`, :func:`deconvolve`, :func:`zoom` and
:func:`mae` on Dask arrays, chunk by chunk, bit-identical to the in-memory functions.

Each function takes a ``(H, W)`` or ``(H, W, C)`` Dask array (the channel axis in
one chunk) and returns a lazy Dask array; nothing is computed until asked, and no
task ever holds more than one chunk and its halo. Each chunk goes through the
package's own in-memory function, so the pixels are those of ``revdeconv.convolve``
(etc.) on the whole image, bit for bit: the kernels give every output pixel the
same sum in the same order wherever it lies in the array they are handed.

Geometry, per axis, with kernel ``k`` and stride ``s``, is exact arithmetic (see
``revdeconv._chunk_plan``). :func:`convolve`: every chunk but the last must be a
multiple of ``s`` (else a ``ValueError``, before anything is computed); when
``s >= k`` each chunk is convolved as it is (``map_blocks``, no copy); when
``s < k`` it also reads the first ``k - s`` rows of the chunks after it: a
one-sided halo, cut from them and merged with the chunk (``concatenate``, then a
rechunk that merges each chunk with its halo; ``map_overlap``'s symmetric depth
would read ``k - s`` rows before each chunk too, for nothing, and rechunks where
a chunk is shorter than the depth). :func:`deconvolve`: disjoint blocks
(``s >= k``) are solved each from its own filtered pixel, so any chunking works;
where blocks overlap the solve is sequential, and that axis must be one chunk.
:func:`zoom` copies pixels: any chunking works. :func:`aligned_chunks` gives
good chunks: full-width row bands when they fit (contiguous in a C-ordered
source: handed to the kernels without a copy), multiples of the stride.

Dask is an optional dependency (``pip install "revdeconv[dask]"``): it is
imported here only, and ``import revdeconv`` does not import this module.

Examples
--------
>>> import dask.array as da
>>> import numpy as np
>>> import revdeconv
>>> from revdeconv import chunked
>>> image = np.random.default_rng(0).random((300, 200, 3), dtype=np.float32)
>>> lazy = da.from_array(image, chunks=chunked.aligned_chunks(image.shape, 5, 2,
...                                                            target_bytes=100_000))
>>> filtered = chunked.convolve(lazy, revdeconv.filters.BLUR, stride=2)
>>> filtered.chunks[0]
(20, 20, 20, 20, 20, 20, 20, 9)
>>> expected = revdeconv.convolve(image, revdeconv.filters.BLUR, stride=2)
>>> bool(np.array_equal(filtered.compute(), expected))
True
"""

import math

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.utils import parse_bytes
except ImportError as exc:          # the optional extra is not installed
    raise ImportError("revdeconv.chunked needs Dask: pip install 'revdeconv[dask]'") from exc

from . import metrics
from ._backend import get_backend
from ._chunk_plan import (aligned, check_aligned, check_solvable, convolution_plan,
                          replicated_chunks, starts)
from ._layout import covered_shape, output_size
from ._threads import effective_n_threads
from ._validation import (ACTIVATIONS, DEFAULT_ACTIVATION, DEFAULT_NONFINITE, NONFINITE,
                          as_bias, as_float, as_kernel, as_pair, as_shape, check_choice,
                          float_dtype, scale_integers)
from .convolution import convolve as _convolve
from .learning import FilterResult
from .reverse import DEFAULT_EPS
from .reverse import deconvolve as _deconvolve
from .reverse import zoom as _zoom

__all__ = ["convolve", "deconvolve", "zoom", "mae", "aligned_chunks"]


def _as_dask_image(image, name):
    """A 2-D or 3-D Dask array of real numbers, known chunk sizes, channels in one chunk;
    and the float dtype its pixels compute in (the package's dtype policy)."""
    if not isinstance(image, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array, got {type(image).__name__}; "
                        f"wrap it with dask.array.from_array({name}, chunks=revdeconv."
                        f"chunked.aligned_chunks(...)), or call the in-memory function")
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got shape {image.shape}")
    if image.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {image.dtype}")
    if any(math.isnan(size) for size in image.shape):
        raise ValueError(f"{name} has chunks of unknown size; call {name}.compute_chunk_sizes()")
    if 0 in image.shape:
        raise ValueError(f"{name} must not be empty, got shape {image.shape}")
    if image.ndim == 3 and len(image.chunks[2]) > 1:
        raise ValueError(f"{name}'s channel axis must be one chunk, got chunks "
                         f"{image.chunks[2]}; use {name}.rechunk({{2: -1}})")
    return float_dtype(image.dtype)


def _n_channels(image):
    return image.shape[2] if image.ndim == 3 else 1


def _with_halo(x, axis, reads):
    """``x`` whose block ``i`` along ``axis`` is ``x[a_i:e_i]`` for ``reads[i] = (a_i, e_i)``.

    Without a halo (each ``e_i`` within chunk ``i``) the chunks stay as they are: a
    kernel ignores the rows after its last block, and nothing is copied. Otherwise
    each chunk is cut to its reads, the halo cut from the chunks after it, and the
    two merged into one block.
    """
    bounds = starts(x.chunks[axis])
    index = [slice(None)] * x.ndim
    if all(stop <= bounds[i + 1] for i, (_, stop) in enumerate(reads)):
        index[axis] = slice(0, bounds[len(reads)])
        return x if len(reads) == len(x.chunks[axis]) else x[tuple(index)]
    pieces = []
    for start, stop in reads:
        index[axis] = slice(start, stop)
        pieces.append(x[tuple(index)])
    joined = da.concatenate(pieces, axis=axis)
    return joined.rechunk({axis: tuple(stop - start for start, stop in reads)})


def _with_channels(image, row_col_chunks):
    """Output chunks: ``row_col_chunks``, then the channel axis whole."""
    return tuple(row_col_chunks) + ((image.shape[2],) if image.ndim == 3 else ())


def _in_chunk(function, block_id, *args, **kwargs):
    """Call ``function``, naming the chunk in any ValueError (a NaN pixel, say)."""
    try:
        return function(*args, **kwargs)
    except ValueError as exc:
        raise ValueError(f"chunk {tuple(block_id[:2])}: {exc}") from exc


def _convolve_block(block, block_id=None, **options):
    return _in_chunk(_convolve, block_id, block, **options)


def convolve(image, kernel, *, stride=None, bias=None, activation=DEFAULT_ACTIVATION,
             n_threads=None, backend=None, nonfinite=DEFAULT_NONFINITE):
    """:func:`revdeconv.convolve` on a Dask array, chunk by chunk: a lazy Dask array.

    Bit-identical to ``revdeconv.convolve(image.compute(), kernel, ...)`` with the
    same arguments. Every chunk but the last of each axis must be a multiple of the
    stride (a ``ValueError`` otherwise, as for any argument the in-memory function
    rejects, before anything is computed); with overlapping blocks (``stride <
    kernel``) a chunk also reads the first ``k - s`` rows (columns) after it.

    Parameters
    ----------
    image : dask.array.Array
        ``(H, W)`` or ``(H, W, C)``, the channel axis in one chunk (see
        :func:`aligned_chunks`). Dtype policy as in :func:`revdeconv.convolve`.
    kernel, stride, bias, activation, n_threads, backend, nonfinite
        As in :func:`revdeconv.convolve`. Each chunk's task runs with
        ``n_threads`` (tasks running at once share the package's thread budget);
        a non-finite pixel raises when its chunk is computed, naming the chunk.

    Returns
    -------
    dask.array.Array
        ``((H - kh)//sh + 1, (W - kw)//sw + 1[, C])`` in the image's float dtype;
        output chunk ``i`` holds the rows whose blocks start in input chunk ``i``.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from revdeconv import chunked
    >>> image = da.ones((90, 120), chunks=(30, 120))
    >>> out = chunked.convolve(image, np.ones((3, 3)) / 9)
    >>> out.shape, out.chunks
    ((30, 40), ((10, 10, 10), (40,)))
    """
    dtype = _as_dask_image(image, "image")
    n_channels = _n_channels(image)
    get_backend(backend)
    effective_n_threads(n_threads)
    weights = as_kernel(kernel, "kernel", n_channels, dtype)
    kernel_shape = weights.shape[1:]
    stride = kernel_shape if stride is None else as_pair(stride, "stride")
    if image.shape[0] < kernel_shape[0] or image.shape[1] < kernel_shape[1]:
        raise ValueError(f"image of shape {image.shape[:2]} is smaller than the "
                         f"{kernel_shape[0]}x{kernel_shape[1]} kernel")
    offsets = as_bias(bias, n_channels, dtype)
    check_choice(activation, "activation", ACTIVATIONS)
    check_choice(nonfinite, "nonfinite", NONFINITE)
    check_aligned(image.chunks, "image", kernel_shape, stride)
    extended, out_chunks = image, []
    for axis in (0, 1):
        lengths, reads = convolution_plan(image.chunks[axis], image.shape[axis],
                                           kernel_shape[axis], stride[axis])
        extended = _with_halo(extended, axis, reads)
        out_chunks.append(lengths)
    return da.map_blocks(
        _convolve_block, extended, dtype=dtype, chunks=_with_channels(image, out_chunks),
        meta=np.empty((0,) * image.ndim, dtype), kernel=weights, stride=stride, bias=offsets,
        activation=activation, n_threads=n_threads, backend=backend, nonfinite=nonfinite)


def _solved_shape(block_id, out_chunks):
    return tuple(out_chunks[axis][block_id[axis]] for axis in (0, 1))


def _deconvolve_block(block, block_id=None, out_chunks=None, **options):
    return _in_chunk(_deconvolve, block_id, block,
                     output_shape=_solved_shape(block_id, out_chunks), **options)


def _zoom_block(block, block_id=None, stride=None, out_chunks=None):
    return _zoom(block, stride, output_shape=_solved_shape(block_id, out_chunks))


def deconvolve(filtered, kernel, *, stride=None, activation=None, eps=DEFAULT_EPS,
               output_shape=None, n_threads=None, backend=None, nonfinite=DEFAULT_NONFINITE):
    """:func:`revdeconv.deconvolve` (the paper's reverse solve) on a Dask array, lazily.

    Bit-identical to ``revdeconv.deconvolve(filtered.compute(), kernel, ...)``. Along
    an axis of disjoint blocks (``stride >= kernel``) any chunking works: chunk
    ``i`` of ``n`` rows gives ``n * s`` output rows, the last one also the border
    of a larger ``output_shape`` (zoom values, as in the gaps of ``s > k``). Along
    an axis of overlapping blocks the solve is sequential (each block reads the
    pixels the block before it solved): that axis must be one chunk, else a
    ``ValueError``, raised (as for any argument rejected) before anything is computed.

    Parameters
    ----------
    filtered : dask.array.Array
        ``(Ho, Wo)`` or ``(Ho, Wo, C)``, the channel axis in one chunk.
    kernel : array_like or FilterResult
        ``(kh, kw)`` or ``(C, kh, kw)`` filter, or what :func:`revdeconv.learn_filter`
        returned (its stride and activation are then the defaults).
    stride, activation, eps, output_shape, n_threads, backend, nonfinite
        As in :func:`revdeconv.deconvolve`.

    Returns
    -------
    dask.array.Array
        ``output_shape[, C]`` (default ``((Ho-1)*sh + kh, (Wo-1)*sw + kw)``).

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import revdeconv
    >>> from revdeconv import chunked
    >>> filtered = np.random.default_rng(1).random((60, 83, 3))
    >>> lazy = da.from_array(filtered, chunks=(16, 83, 3))
    >>> out = chunked.deconvolve(lazy, revdeconv.filters.SHARPEN, output_shape=(180, 250))
    >>> out.chunks[0]
    (48, 48, 48, 36)
    >>> expected = revdeconv.deconvolve(filtered, revdeconv.filters.SHARPEN,
    ...                                 output_shape=(180, 250))
    >>> bool(np.array_equal(out.compute(), expected))
    True
    """
    dtype = _as_dask_image(filtered, "filtered")
    n_channels = _n_channels(filtered)
    get_backend(backend)
    effective_n_threads(n_threads)
    if isinstance(kernel, FilterResult):
        stride = kernel.stride if stride is None else stride
        activation = kernel.activation if activation is None else activation
        kernel = kernel.kernel
    weights = as_kernel(kernel, "kernel", n_channels, dtype)
    kernel_shape = weights.shape[1:]
    stride = kernel_shape if stride is None else as_pair(stride, "stride")
    activation = DEFAULT_ACTIVATION if activation is None else activation
    check_choice(activation, "activation", ACTIVATIONS)
    check_choice(nonfinite, "nonfinite", NONFINITE)
    eps = as_float(eps, "eps", minimum=0)
    covered = covered_shape(filtered.shape, kernel_shape, stride)
    shape = covered if output_shape is None else as_shape(output_shape, "output_shape",
                                                          n_channels)
    if shape[0] < covered[0] or shape[1] < covered[1]:
        raise ValueError(f"output_shape {shape} is smaller than the "
                         f"{covered[0]}x{covered[1]} region the blocks cover")
    check_solvable(filtered.chunks, "filtered", kernel_shape, stride)
    out_chunks = [replicated_chunks(chunks, s, size)
                  for chunks, s, size in zip(filtered.chunks, stride, shape)]
    return da.map_blocks(
        _deconvolve_block, filtered, dtype=dtype, chunks=_with_channels(filtered, out_chunks),
        meta=np.empty((0,) * filtered.ndim, dtype), out_chunks=tuple(out_chunks), kernel=weights,
        stride=stride, activation=activation, eps=eps, n_threads=n_threads, backend=backend,
        nonfinite=nonfinite)


def zoom(filtered, stride, output_shape=None):
    """:func:`revdeconv.zoom` (nearest neighbour, the paper's MAE0 baseline) on a Dask
    array, lazily; bit-identical to the in-memory zoom, for any chunks.

    Parameters
    ----------
    filtered : dask.array.Array
        ``(Ho, Wo)`` or ``(Ho, Wo, C)``, the channel axis in one chunk.
    stride, output_shape
        As in :func:`revdeconv.zoom`: default ``(Ho * sh, Wo * sw)``; a larger
        shape replicates the last row and column (in the last chunk), a smaller
        one crops (the rows no output pixel reads are left out first).

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import dask.array as da
    >>> from revdeconv import chunked
    >>> chunked.zoom(da.ones((10, 8), chunks=(4, 8)), 3).chunks
    ((12, 12, 6), (24,))
    """
    dtype = _as_dask_image(filtered, "filtered")
    stride = as_pair(stride, "stride")
    if output_shape is None:
        shape = (filtered.shape[0] * stride[0], filtered.shape[1] * stride[1])
    else:
        shape = as_shape(output_shape, "output_shape", _n_channels(filtered))
    # Output row r reads input row min(r // s, Ho - 1): rows past (shape - 1) // s go unread.
    needed = tuple(min(size, (out - 1) // s + 1)
                   for size, out, s in zip(filtered.shape, shape, stride))
    if needed != filtered.shape[:2]:
        filtered = filtered[:needed[0], :needed[1]]
    out_chunks = tuple(replicated_chunks(chunks, s, out)
                       for chunks, s, out in zip(filtered.chunks, stride, shape))
    return da.map_blocks(_zoom_block, filtered, dtype=dtype, stride=stride,
                         chunks=_with_channels(filtered, out_chunks),
                         meta=np.empty((0,) * filtered.ndim, dtype), out_chunks=out_chunks)


# Per chunk: the sum of |a - b|, then the smallest and largest values of a and of b.
_PARTS = 5


def _mae_part(a, b):
    """One chunk's share, shaped ``(1, ..., 1, _PARTS)`` to sit in a grid of chunks."""
    a, b = scale_integers(np.asarray(a)), scale_integers(np.asarray(b))
    total = np.add.reduce(np.abs(np.subtract(a, b, dtype=np.float64)), axis=None)
    ranges = []
    for values in (a, b):
        with np.errstate(invalid="ignore"):
            ranges += [np.nanmin(values, initial=np.inf), np.nanmax(values, initial=-np.inf)]
    return np.array([total] + ranges, dtype=np.float64).reshape((1,) * a.ndim + (_PARTS,))


def _mae_total(parts, size, check_a, check_b):
    """The mean from every chunk's share; the range warnings of :func:`metrics.mae`."""
    parts = parts.reshape(-1, _PARTS)
    for check, column, name in ((check_a, 1, "a"), (check_b, 3, "b")):
        if check:
            metrics._check_range(np.array([parts[:, column].min(),
                                           parts[:, column + 1].max()]), name)
    # fsum: the sum of the chunks' sums is correctly rounded, whatever their order.
    return np.float64(math.fsum(parts[:, 0].tolist()) / size)


def mae(a, b):
    """:func:`revdeconv.metrics.mae` of two Dask arrays (or one and an array), lazily.

    Each chunk sums ``|a - b|`` in float64 (NumPy's pairwise sum); the chunks'
    sums are then added exactly (``math.fsum``) and divided by the number of
    values. The value equals ``metrics.mae`` bit for bit when the arrays are one
    chunk; otherwise the two differ only in how float64 rounds a sum of
    non-negative terms, within a few ``1e-16`` relative (at most about ``log2(n)``
    units of rounding, ``n`` the number of values). Integer images are scaled and
    far-out float ranges warned about as :func:`revdeconv.metrics.mae` does; the
    warning comes when the value is computed.

    Parameters
    ----------
    a, b : dask.array.Array or array_like
        Two images of one shape (any number of axes); an array that is not a Dask
        array is chunked as the other. Different chunks are unified by Dask.

    Returns
    -------
    dask.array.Array
        A lazy 0-d float64 array: ``float(mae(a, b))`` computes it.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from revdeconv import chunked
    >>> a = da.from_array(np.array([[0.0, 0.5], [1.0, 1.0]]), chunks=1)
    >>> float(chunked.mae(a, np.array([[0.5, 0.5], [1.0, 0.0]])))
    0.375
    """
    if not isinstance(a, da.Array) and not isinstance(b, da.Array):
        raise TypeError("a or b must be a dask.array.Array; use revdeconv.metrics.mae "
                        "for arrays in memory")
    a, b = (value if isinstance(value, da.Array) else np.asarray(value) for value in (a, b))
    for name, value in (("a", a), ("b", b)):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real-valued array, got dtype {value.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, got {a.shape} and {b.shape}")
    a = a if isinstance(a, da.Array) else da.from_array(a, chunks=b.chunks)
    b = b if isinstance(b, da.Array) else da.from_array(b, chunks=a.chunks)
    if any(math.isnan(size) for size in a.shape) or a.size == 0:
        raise ValueError(f"a and b must not be empty or of unknown size, got {a.shape}")
    parts = da.map_blocks(_mae_part, a, b, new_axis=a.ndim, dtype=np.float64,
                          chunks=tuple((1,) * len(c) for c in a.chunks) + ((_PARTS,),),
                          meta=np.empty((0,) * (a.ndim + 1)))
    together = parts.rechunk(-1)
    return da.map_blocks(_mae_total, together, a.size, a.dtype.kind == "f",
                         b.dtype.kind == "f", drop_axis=list(range(together.ndim)),
                         dtype=np.float64, meta=np.empty(()))


def aligned_chunks(shape, kernel_shape, stride=None, *, target_bytes=None, dtype=np.float32):
    """Chunks for an image of ``shape`` that the chunked functions take as they are.

    Full-width row bands when a band of at least one stride (and one halo) fits
    ``target_bytes``: in a C-ordered source each band is one contiguous run of
    memory, handed to the kernels without a copy, and only rows need a halo.
    Otherwise square-ish tiles. Every chunk but the last is a multiple of the
    stride and at least the halo ``k - s`` long (so a halo comes from the next
    chunk alone); a last chunk shorter than the kernel is joined to the one before.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``: the image (for :func:`deconvolve` and
        :func:`zoom`, the filtered image, with kernel and stride 1).
    kernel_shape : int or (int, int)
    stride : int or (int, int), optional
        Default: the kernel size.
    target_bytes : int or str, optional
        The most one chunk should take, in ``dtype``. Default: Dask's
        ``array.chunk-size`` setting (128 MiB unless configured).
    dtype : dtype, optional
        What one value takes (default float32).

    Returns
    -------
    tuple of tuple of int
        For ``dask.array.from_array(..., chunks=...)`` or ``Array.rechunk``.

    Examples
    --------
    >>> from revdeconv.chunked import aligned_chunks
    >>> aligned_chunks((1000, 800, 3), 3, target_bytes=1_000_000)
    ((102, 102, 102, 102, 102, 102, 102, 102, 102, 82), (800,), (3,))
    >>> aligned_chunks((30, 50), (5, 5), 2, target_bytes=400)     # a band is too large
    ((10, 10, 10), (10, 10, 10, 10, 10))
    """
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be (H, W) or (H, W, C), got {shape}")
    height, width = as_pair(shape[:2], "shape")
    kernel_shape = as_pair(kernel_shape, "kernel_shape")
    stride = kernel_shape if stride is None else as_pair(stride, "stride")
    if target_bytes is None:
        target_bytes = dask.config.get("array.chunk-size")
    if isinstance(target_bytes, str):
        target_bytes = parse_bytes(target_bytes)
    pixel = np.dtype(dtype).itemsize * (shape[2] if len(shape) == 3 else 1)
    chunks = aligned(height, width, kernel_shape, stride, int(target_bytes), pixel)
    return chunks + (((shape[2],),) if len(shape) == 3 else ())
