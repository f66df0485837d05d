"""The NumPy fallback of ``revdeconv.restore``'s passes (``src_c/_restore.pyx``).

Same functions and arguments as ``revdeconv._restore_compiled``, and the same
floating-point operations in the same order, so the two backends round
alike: ``A`` adds its taps in raster order from 0; the adjoint scatters the
taps in reverse raster order (the order in which the compiled gather adds
them); sums are taken in float64 row by row (``np.add.accumulate``, which
adds in order where ``np.sum`` may add pairwise; each pixel to one of
``LANES`` running sums, as the compiled passes do) and then over the rows of
each image in order. ``n_threads`` is accepted and ignored.

A workspace holds one image's buffers per image, allocated once; every pass
updates them in place and returns its sums per image (and channel).
"""

from types import SimpleNamespace

import numpy as np

from ._layout import output_size

__all__ = ["workspace", "images", "forward", "adjoint", "cg_forward", "cg_adjoint",
           "cg_update", "cg_start", "tv_dual", "tv_primal", "reduce_rows"]


def reduce_rows(row_sums, first_rows):
    """Per-row sums ``(rows, k)`` of a batch -> per image ``(n, k)``, rows added in order."""
    return np.add.reduceat(row_sums, first_rows, axis=0)


#: Pixel ``px`` of a row adds to running sum ``px % LANES`` (per channel); the lanes
#: are then added in order: the compiled passes' order (independent sums vectorise).
LANES = 4


def _row_sums(values):
    """``(H, W, C)`` products in float64 -> ``(H, C)`` sums along each row, in lanes."""
    height, width, n_channels = values.shape
    pad = -width % LANES                      # zeros: adding them changes no sum
    if pad:
        values = np.concatenate([values, np.zeros((height, pad, n_channels))], axis=1)
    lanes = np.add.accumulate(values.reshape(height, -1, LANES, n_channels), axis=1)[:, -1]
    return np.add.accumulate(lanes, axis=1)[:, -1]


def _squares(a, b=None):
    a = a.astype(np.float64)
    return _row_sums(a * (a if b is None else b.astype(np.float64)))


def _strided(shape, kh, kw, out_h, out_w, stride, i, j):
    sh, sw = stride
    return (slice(i, i + (out_h - 1) * sh + 1, sh), slice(j, j + (out_w - 1) * sw + 1, sw))


def forward(x, kernel, stride, n_threads=None):
    """``A x``: the valid, strided cross-correlation, taps in raster order from 0."""
    _, kh, kw = kernel.shape
    out_h = output_size(x.shape[0], kh, stride[0])
    out_w = output_size(x.shape[1], kw, stride[1])
    out = np.zeros((out_h, out_w, x.shape[2]), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out += kernel[:, i, j] * x[_strided(x.shape, kh, kw, out_h, out_w, stride, i, j)]
    return out


def adjoint(y, kernel, stride, shape, n_threads=None):
    """``A^T y`` on an image of ``shape`` (rows, cols): taps in reverse raster order."""
    _, kh, kw = kernel.shape
    out = np.zeros(tuple(shape[:2]) + (y.shape[2],), dtype=y.dtype)
    for i in reversed(range(kh)):
        for j in reversed(range(kw)):
            out[_strided(shape, kh, kw, y.shape[0], y.shape[1], stride, i, j)] += (
                kernel[:, i, j] * y)
    return out


def _laplacian(v):
    """The graph Laplacian with a Neumann border: neighbours up, down, left, right."""
    out = np.zeros_like(v)
    out[1:] += v[:-1] - v[1:]
    out[:-1] += v[1:] - v[:-1]
    out[:, 1:] += v[:, :-1] - v[:, 1:]
    out[:, :-1] += v[:, 1:] - v[:, :-1]
    return out


def _gradient(v):
    """Forward differences, 0 on the last row (``g0``) and the last column (``g1``)."""
    g0 = np.zeros_like(v)
    g1 = np.zeros_like(v)
    g0[:-1] = v[1:] - v[:-1]
    g1[:, :-1] = v[:, 1:] - v[:, :-1]
    return g0, g1


def _channel_sum(values):
    """Sum over the channels of each pixel, in order, in the values' dtype."""
    return np.add.accumulate(values, axis=2)[:, :, -1]


def workspace(data, x0, kernel, stride, method, n_threads=None):
    """Buffers for one solve. ``data``: per image the ``(Ho, Wo, C)`` filtered
    values less the bias; ``x0``: the ``(H, W, C)`` starting images; ``kernel``:
    ``(C, kh, kw)`` in the images' dtype; ``method``: "tikhonov" or "tv"."""
    ws = SimpleNamespace(kernel=kernel, stride=tuple(stride), method=method,
                         data=[np.array(d) for d in data], x=[np.array(x) for x in x0])
    ws.first_x = np.cumsum([0] + [x.shape[0] for x in x0[:-1]])
    ws.first_y = np.cumsum([0] + [d.shape[0] for d in data[:-1]])
    if method == "tikhonov":
        ws.p = [np.array(x) for x in x0]         # the first pass works on x0
        ws.r = [np.zeros_like(x) for x in x0]
        ws.q = [np.zeros_like(x) for x in x0]
        ws.u = [np.zeros_like(x) for x in x0]
        ws.t = [np.array(d) for d in data]        # A^T t is the right-hand side at first
    else:
        ws.xbar = [np.array(x) for x in x0]
        ws.q0 = [np.zeros_like(x) for x in x0]
        ws.q1 = [np.zeros_like(x) for x in x0]
        ws.aold = [np.zeros_like(d) for d in data]
        ws.dual = [np.zeros_like(d) for d in data]
    return ws


def images(ws):
    """The current images, ``(H, W, C)`` views of the workspace."""
    return ws.x


def _split(parts, first_rows, pieces):
    """Per-image per-row sums -> per image, split into ``pieces`` arrays of ``(n, C)``."""
    return tuple(np.split(reduce_rows(np.concatenate(parts), first_rows), pieces, axis=1))


def cg_forward(ws, start, order, scale=None):
    """``t = A p``, ``u = Lap p`` (on the ``start`` pass ``t = A p - data``); the
    sums of ``t**2`` and of ``p R p`` (``R``, see ``cg_adjoint``): ``u**2`` at
    ``order`` 2, ``-(p * u)`` at order 1. With ``scale``, first CG's new direction
    ``p = r + a p``, ``a = scale[n]``."""
    if scale is not None:
        for p, r, a in zip(ws.p, ws.r, scale):
            p[...] = r + a * p
    rows_y, rows_x = [], []
    for n, p in enumerate(ws.p):
        t = forward(p, ws.kernel, ws.stride)
        if start:
            t = t - ws.data[n]
        ws.t[n][...] = t
        u = _laplacian(p)
        ws.u[n][...] = u
        rows_y.append(_squares(t))
        rows_x.append(_squares(u) if order == 2 else _squares(p, u))
    (t_sq,), (prior,) = _split(rows_y, ws.first_y, 1), _split(rows_x, ws.first_x, 1)
    return t_sq, (prior if order == 2 else -prior)


def cg_adjoint(ws, weight, order, start):
    """``q = A^T t + w R p`` (``R p = -u`` at order 1, ``Lap u`` at order 2); sums of
    ``p * q`` and, on the ``start`` pass, ``q**2`` (else None). ``weight``:
    ``(n, C)`` in the images' dtype."""
    rows = []
    for n, (t, p, u) in enumerate(zip(ws.t, ws.p, ws.u)):
        q = _prior_step(ws, n, adjoint(t, ws.kernel, ws.stride, p.shape), weight, order)
        ws.q[n][...] = q
        rows.append(np.concatenate([_squares(p, q)] + [_squares(q)] * start, axis=1))
    sums = _split(rows, ws.first_x, 1 + start)
    return sums[0], (sums[1] if start else None)


def _prior_step(ws, n, aty, weight, order):
    """``q = A^T t + w R p`` of image n (see ``cg_adjoint``)."""
    if order == 1:
        return aty - weight[n] * ws.u[n]
    return aty + weight[n] * _laplacian(ws.u[n])


def cg_update(ws, weight, order, scale):
    """``cg_adjoint``'s ``q``, not stored but used: ``x += a p``, ``r -= a q``
    (``a = scale[n]``); returns the sums of ``r**2``."""
    rows = []
    for n, (x, p, r) in enumerate(zip(ws.x, ws.p, ws.r)):
        q = _prior_step(ws, n, adjoint(ws.t[n], ws.kernel, ws.stride, p.shape), weight, order)
        x[...] = x + scale[n] * p
        r[...] = r - scale[n] * q
        rows.append(_squares(r))
    return _split(rows, ws.first_x, 1)[0]


def cg_start(ws):
    """CG's first residual and direction: ``r = -q``, ``p = r``. Returns the sums of
    ``r**2``."""
    rows = []
    for p, r, q in zip(ws.p, ws.r, ws.q):
        r[...] = -q
        p[...] = r
        rows.append(_squares(r))
    return _split(rows, ws.first_x, 1)[0]


def tv_dual(ws, sigma, lam, first, update, measure):
    """The dual step of Chambolle-Pock (see ``_restore.tv_dual``). ``sigma``, ``lam``:
    one per image, the images' dtype. With ``measure``, returns the sums of
    ``(A x - data)**2``, ``dual**2``, ``dual * data`` (each ``(n, C)``) and the TV
    of ``x`` (``(n,)``); else None."""
    rows_y, rows_x = [], []
    for n, (x, data) in enumerate(zip(ws.x, ws.data)):
        a = forward(x, ws.kernel, ws.stride)
        s = sigma[n]
        if update:
            a_bar = a if first else 2 * a - ws.aold[n]
            ws.aold[n][...] = a
            dual = ws.dual[n]
            dual[...] = (dual + s * (a_bar - data)) / (1 + s)
        if measure:
            zeros = np.zeros((a.shape[0], a.shape[2]))
            parts = [_squares(a - data), _squares(ws.dual[n]) if update else zeros,
                     _squares(ws.dual[n], data) if update else zeros]
            rows_y.append(np.concatenate(parts, axis=1))
            g0, g1 = _gradient(x)
            norm = np.sqrt(_channel_sum(g0 * g0 + g1 * g1))
            rows_x.append(_row_sums(norm.astype(np.float64)[:, :, None]))
        if update:
            g0, g1 = _gradient(ws.xbar[n])
            q0, q1 = ws.q0[n], ws.q1[n]
            q0[...] = q0 + s * g0
            q1[...] = q1 + s * g1
            inverse = 1 / np.maximum(np.sqrt(_channel_sum(q0 * q0 + q1 * q1)) / lam[n], 1)
            q0 *= inverse[:, :, None]
            q1 *= inverse[:, :, None]
    if not measure:
        return None
    res, dual_sq, dual_data = _split(rows_y, ws.first_y, 3)
    return res, dual_sq, dual_data, reduce_rows(np.concatenate(rows_x), ws.first_x)[:, 0]


def tv_primal(ws, tau, lo, hi, measure):
    """The primal step (see ``_restore.tv_primal``); ``tau``: one per image. With
    ``measure``, returns the sums of ``(x_new - x)**2``, ``max(-z, 0)`` and
    ``x_new**2``, each ``(n, C)``; else None."""
    rows = []
    for n, (x, q0, q1) in enumerate(zip(ws.x, ws.q0, ws.q1)):
        aty = adjoint(ws.dual[n], ws.kernel, ws.stride, x.shape)
        dv = q0.copy()
        dv[1:] = q0[1:] - q0[:-1]
        dh = q1.copy()
        dh[:, 1:] = q1[:, 1:] - q1[:, :-1]
        z = aty - (dv + dh)
        new = np.clip(x - tau[n] * z, lo, hi)
        ws.xbar[n][...] = 2 * new - x
        if measure:
            rows.append(np.concatenate([_squares(new - x),
                                        _row_sums(np.maximum(-z, 0).astype(np.float64)),
                                        _squares(new)], axis=1))
        x[...] = new
    return _split(rows, ws.first_x, 3) if measure else None
