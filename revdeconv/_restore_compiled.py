"""The compiled passes of ``revdeconv.restore``: buffers for ``src_c/_restore.pyx``.

Same functions and arguments as ``revdeconv._restore_numpy``. A workspace
packs the batch once: the restored images in one flat x-space buffer, the
filtered ones in one flat y-space buffer where each image has a border of
zeros wide enough for the adjoint's gather (see ``_restore.pyx``), and every
other buffer the solver needs, allocated once for all its iterations. Each
pass is one call (one or two parallel loops over the rows of the whole
batch) that returns its sums per image and channel.
"""

from types import SimpleNamespace

import numpy as np

from . import _restore
from ._compiled_backend import _DENSE_CHUNK_PIXELS, _geometry, _padded_rows
from ._layout import output_size
from ._restore_numpy import reduce_rows
from ._threads import thread_share

__all__ = ["workspace", "images", "forward", "adjoint", "cg_forward", "cg_adjoint",
           "cg_update", "cg_start", "tv_dual", "tv_primal", "reduce_rows"]

# The least work (multiply-adds) worth a thread of its own in one pass.
_MIN_MACS_PER_THREAD = 1 << 16


def _tiled(kernel):
    """The taps repeated along a chunk of a row, then a row of zeros (``correlate``'s
    bias), as ``_compiled_backend.convolve`` lays them out."""
    n_channels, kh, kw = kernel.shape
    rows = np.concatenate([kernel.reshape(n_channels, kh * kw).T,
                           np.zeros((1, n_channels), dtype=kernel.dtype)])
    return np.ascontiguousarray(np.tile(rows, (1, _DENSE_CHUNK_PIXELS)))


def _padded_geometry(x_shapes, y_shapes, kernel_shape, stride, n_channels):
    """y-space layout: per image (offset of pixel (0, 0), Ho, Wo, rows before), the
    values per padded row, the buffer's length, and the views' (start, shape, pads)."""
    (kh, kw), (sh, sw) = kernel_shape, stride
    pad_h, pad_w = (kh - 1) // sh, (kw - 1) // sw
    geometry = np.zeros((len(y_shapes), 4), dtype=np.intp)
    pitch = np.zeros(len(y_shapes), dtype=np.intp)
    views, start, row = [], 0, 0
    for n, ((height, width), (out_h, out_w)) in enumerate(zip(x_shapes, y_shapes)):
        # Every block a pixel's taps reach: rows -pad_h .. (H - 1) // sh.
        rows = pad_h + (height - 1) // sh + 1
        cols = pad_w + (width - 1) // sw + 1
        pitch[n] = cols * n_channels
        geometry[n] = start + (pad_h * cols + pad_w) * n_channels, out_h, out_w, row
        views.append((start, (rows, cols, n_channels), (pad_h, pad_w)))
        start += rows * cols * n_channels
        row += out_h
    return geometry, pitch, start, views


def workspace(data, x0, kernel, stride, method, n_threads):
    n_channels, kh, kw = kernel.shape
    dtype = kernel.dtype
    x_shapes = [x.shape[:2] for x in x0]
    y_shapes = [d.shape[:2] for d in data]
    ws = SimpleNamespace(kernel=kernel, stride=tuple(stride), method=method,
                         n_channels=n_channels)
    ws.xg = _geometry(x_shapes, n_channels)
    ws.yg, ws.ypitch, y_size, y_views = _padded_geometry(x_shapes, y_shapes, (kh, kw),
                                                         stride, n_channels)
    ws.first_x, ws.first_y = ws.xg[:, 3].copy(), ws.yg[:, 3].copy()
    x_size = sum(h * w for h, w in x_shapes) * n_channels

    def x_buffer(values=None):
        flat = np.zeros(x_size, dtype=dtype)
        if values is not None:
            for view, image in zip(_x_views(ws, flat), values):
                view[...] = image
        return flat

    def y_buffer(values=None):
        flat = np.zeros(y_size, dtype=dtype)
        if values is not None:
            for (start, shape, (ph, pw)), image in zip(y_views, values):
                part = flat[start:start + shape[0] * shape[1] * shape[2]].reshape(shape)
                part[ph:ph + image.shape[0], pw:pw + image.shape[1]] = image
        return flat

    ws.data = y_buffer(data)
    ws.x = x_buffer(x0)
    ws.views = _x_views(ws, ws.x)
    if method == "tikhonov":
        ws.p = x_buffer(x0)                 # the first pass works on x0
        ws.r, ws.q, ws.u = x_buffer(), x_buffer(), x_buffer()
        ws.t = y_buffer(data)                # A^T t is the right-hand side at first
    else:
        ws.xbar = x_buffer(x0)
        ws.q0, ws.q1 = x_buffer(), x_buffer()
        ws.aold, ws.dual = y_buffer(), y_buffer()
    # The vectorised rows: A at stride 1 along rows, the adjoint at stride 1 (a
    # correlation with the flipped kernel); where tap i * kw + j reads, per image.
    empty = np.empty((0, 0), dtype=dtype)
    ws.tiled_forward = _tiled(kernel) if stride[1] == 1 else empty
    ws.tiled_adjoint = (_tiled(np.ascontiguousarray(kernel[:, ::-1, ::-1]))
                        if stride == (1, 1) else empty)
    i, j = np.divmod(np.arange(kh * kw), kw)
    ws.taps_forward = np.ascontiguousarray((i * ws.xg[:, 2:3] + j) * n_channels)
    ws.taps_adjoint = np.ascontiguousarray(i * ws.ypitch[:, None] + j * n_channels)
    ws.n_threads = n_threads
    ws.work = x_size * (kh * kw // (stride[0] * stride[1]) + 8)
    widest = max(max(w for _, w in x_shapes), max(w for _, w in y_shapes)) * n_channels
    ws.scratch = _padded_rows(n_threads, 2 * widest, dtype)
    # Per-channel scalars repeated along a row (weight, CG's step), filled per pass.
    pixels = max(w for _, w in x_shapes)
    ws.weight_rows = np.zeros((len(x0), pixels, n_channels), dtype=dtype)
    ws.scale_rows = np.zeros((len(x0), pixels, n_channels), dtype=dtype)
    ws.weight_of_rows = None
    ws.zeros = np.zeros(widest, dtype=dtype)
    rows_x, rows_y = int(ws.xg[-1, 3] + ws.xg[-1, 1]), int(ws.yg[-1, 3] + ws.yg[-1, 1])
    ws.sums_x = np.zeros((rows_x, 3 * n_channels))
    ws.sums_y = np.zeros((rows_y, 3 * n_channels))
    ws.sums_tv = np.zeros(rows_x)
    return ws


def _x_views(ws, flat):
    c = ws.n_channels
    return [flat[start:start + h * w * c].reshape(h, w, c) for start, h, w, _ in ws.xg]


def images(ws):
    return ws.views


def _along_rows(rows, values):
    """``rows[n, px, c] = values[n, c]``, in place; the kernels' ``(n, W * C)`` view."""
    rows[...] = values[:, None, :]
    return rows.reshape(len(rows), -1)


def _threads(ws):
    return thread_share(ws.n_threads, ws.work, _MIN_MACS_PER_THREAD)


def _split(sums, first_rows, pieces, n_channels):
    # Slices, not np.split (which costs more than a small pass's kernel call).
    totals = reduce_rows(sums[:, :pieces * n_channels], first_rows)
    return tuple(totals[:, k * n_channels:(k + 1) * n_channels] for k in range(pieces))


def cg_forward(ws, start, order, scale=None):
    step = scale is not None
    rows = _along_rows(ws.scale_rows, scale) if step else ws.scale_rows.reshape(len(ws.xg), -1)
    with _threads(ws) as n_threads:
        _restore.cg_forward(ws.p, ws.u, ws.xg, ws.t, ws.data, ws.yg, ws.ypitch, ws.kernel,
                            ws.tiled_forward, ws.taps_forward, ws.stride[0], ws.stride[1], start,
                            order, ws.sums_y, ws.sums_x, ws.p, ws.r, rows, step, n_threads)
    c = ws.n_channels
    (t_sq,), (prior,) = _split(ws.sums_y, ws.first_y, 1, c), _split(ws.sums_x, ws.first_x, 1, c)
    return t_sq, (prior if order == 2 else -prior)


def cg_adjoint(ws, weight, order, start):
    ws.weight_of_rows = None                # weight_rows is overwritten below
    with _threads(ws) as n_threads:
        _restore.cg_adjoint(ws.t, ws.yg, ws.ypitch, ws.p, ws.u, ws.q, ws.xg, ws.kernel,
                            ws.tiled_adjoint, ws.taps_adjoint, ws.stride[0], ws.stride[1],
                            _along_rows(ws.weight_rows, weight), order, start,
                            ws.scratch, ws.sums_x, ws.x, ws.r,
                            ws.scale_rows.reshape(len(ws.xg), -1), False, n_threads)
    p_q, q_sq = _split(ws.sums_x, ws.first_x, 2, ws.n_channels)
    return p_q, (q_sq if start else None)


def cg_update(ws, weight, order, scale):
    if ws.weight_of_rows is not weight:   # the same weight every iteration: laid out once
        ws.weight_of_rows, ws.weights_along = weight, _along_rows(ws.weight_rows, weight)
    with _threads(ws) as n_threads:
        _restore.cg_adjoint(ws.t, ws.yg, ws.ypitch, ws.p, ws.u, ws.q, ws.xg, ws.kernel,
                            ws.tiled_adjoint, ws.taps_adjoint, ws.stride[0], ws.stride[1],
                            ws.weights_along, order, False, ws.scratch,
                            ws.sums_x, ws.x, ws.r, _along_rows(ws.scale_rows, scale), True,
                            n_threads)
    return _split(ws.sums_x, ws.first_x, 1, ws.n_channels)[0]


def cg_start(ws):
    with _threads(ws) as n_threads:
        _restore.cg_start(ws.p, ws.r, ws.q, ws.xg, ws.n_channels, ws.sums_x, n_threads)
    return _split(ws.sums_x, ws.first_x, 1, ws.n_channels)[0]


def tv_dual(ws, sigma, lam, first, update, measure):
    with _threads(ws) as n_threads:
        _restore.tv_dual(ws.x, ws.xbar, ws.q0, ws.q1, ws.xg, ws.aold, ws.dual, ws.data,
                         ws.yg, ws.ypitch, ws.kernel, ws.tiled_forward, ws.taps_forward,
                         ws.stride[0], ws.stride[1], sigma, lam, first, update, measure,
                         ws.scratch, ws.sums_y, ws.sums_tv, n_threads)
    if not measure:
        return None
    return (_split(ws.sums_y, ws.first_y, 3, ws.n_channels)
            + (reduce_rows(ws.sums_tv, ws.first_x),))


def tv_primal(ws, tau, lo, hi, measure):
    with _threads(ws) as n_threads:
        _restore.tv_primal(ws.x, ws.xbar, ws.q0, ws.q1, ws.xg, ws.dual, ws.yg, ws.ypitch,
                           ws.kernel, ws.tiled_adjoint, ws.taps_adjoint, ws.stride[0],
                           ws.stride[1], tau, lo, hi, ws.zeros, measure, ws.scratch,
                           ws.sums_x, n_threads)
    return _split(ws.sums_x, ws.first_x, 3, ws.n_channels) if measure else None


def forward(x, kernel, stride, n_threads=1):
    """``A x`` of one ``(H, W, C)`` image, through the compiled pass."""
    shape = tuple(output_size(s, k, st) for s, k, st in zip(x.shape, kernel.shape[1:], stride))
    data = [np.zeros(shape + (x.shape[2],), dtype=x.dtype)]
    ws = workspace(data, [x], kernel, stride, "tikhonov", n_threads)
    cg_forward(ws, False, 2)
    start, shape3, (ph, pw) = _padded_geometry([x.shape[:2]], [shape], kernel.shape[1:],
                                               stride, x.shape[2])[3][0]
    padded = ws.t[start:start + np.prod(shape3)].reshape(shape3)
    return padded[ph:ph + shape[0], pw:pw + shape[1]].copy()


def adjoint(y, kernel, stride, shape, n_threads=1):
    """``A^T y`` on an image of ``shape`` (rows, cols), through the compiled pass."""
    x0 = [np.zeros(tuple(shape[:2]) + (y.shape[2],), dtype=y.dtype)]
    ws = workspace([y], x0, kernel, stride, "tikhonov", n_threads)
    cg_adjoint(ws, np.zeros((1, y.shape[2]), dtype=y.dtype), 1, False)
    return _x_views(ws, ws.q)[0].copy()
