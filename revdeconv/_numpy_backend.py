"""The NumPy fallback: the same kernels as the compiled extension, in NumPy.

Every function here takes what the façade has already validated: lists of
C-contiguous ``(H, W, C)`` arrays of one float dtype, a ``(C, kh, kw)`` kernel
of that dtype, a ``(sh, sw)`` stride and an activation name. It performs the
same floating-point operations in the same order as the compiled kernels,
so the two backends round alike (sums over a block are taken in raster order;
``np.add.accumulate`` is used where a sequential sum is needed, because
``np.sum`` may sum pairwise). ``n_threads`` is accepted and ignored.

Vectorised wherever the maths permits: the convolution is a sum of shifted,
strided views; the reverse solve works on all blocks at once when blocks do
not overlap. SGD updates the kernel after every block, so it loops over
blocks (vectorised over channels), and so does the reverse solve when
blocks overlap, because a block then reads pixels solved by earlier ones.
"""

import numpy as np

from ._layout import output_size
from ._validation import ACTIVATIONS

__all__ = ["convolve", "squared_error", "sgd", "normal_equations", "deconvolve", "mae"]


def _activate(values, activation):
    """Apply the activation in place (NaN passes through, as in the compiled code)."""
    if activation == "clip":
        np.clip(values, 0, 1, out=values)
    elif activation == "relu":
        np.maximum(values, 0, out=values)
    elif activation != "identity":     # a name added to ACTIVATIONS but not here
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return values


def _blocks(image, kh, kw, out_h, out_w, stride):
    """``view[i, j]`` is the ``(out_h, out_w, C)`` grid of pixels ``(i, j)`` of every block."""
    sh, sw = stride
    return [[image[i:i + (out_h - 1) * sh + 1:sh, j:j + (out_w - 1) * sw + 1:sw]
             for j in range(kw)] for i in range(kh)]


def _sum(values):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.add.reduce(values, axis=None)


def convolve(images, kernel, bias, stride, activation, n_threads=None, outputs=None,
             nonfinite="propagate"):
    """Returns the outputs (``outputs``, written into, or new) and, per image, whether
    one of its sums was not finite (with ``nonfinite="raise"``; else False): a NaN
    or an infinity among the pixels read, or (huge values) an overflow."""
    _, kh, kw = kernel.shape
    results, suspects = [], []
    for n, image in enumerate(images):
        out_h = output_size(image.shape[0], kh, stride[0])
        out_w = output_size(image.shape[1], kw, stride[1])
        if outputs is None:
            out = np.zeros((out_h, out_w, image.shape[2]), dtype=image.dtype)
        else:
            out = outputs[n]
            out[...] = 0
        term = np.empty_like(out)
        blocks = _blocks(image, kh, kw, out_h, out_w, stride)
        for i in range(kh):
            for j in range(kw):
                out += np.multiply(blocks[i][j], kernel[:, i, j], out=term)
        suspects.append(nonfinite == "raise" and not np.isfinite(_sum(out)))
        out += bias
        results.append(_activate(out, activation))
    return results, suspects


#: Output values per band in squared_error: its temporaries stay a few MiB.
_BAND_VALUES = 1 << 18


def squared_error(originals, targets, kernel, bias, stride, activation, n_threads=None):
    """Sum over all pairs of ``(convolve(original) - target)**2``, in float64, band of
    rows by band of rows, so that the fit never takes memory of the target's size."""
    kh = kernel.shape[1]
    total = 0.0
    for original, target in zip(originals, targets):
        out_h, out_w, n_channels = target.shape
        band = max(1, _BAND_VALUES // (out_w * n_channels))
        for top in range(0, out_h, band):
            rows = min(band, out_h - top)
            part = original[top * stride[0]:(top + rows - 1) * stride[0] + kh]
            fitted = convolve([part], kernel, bias, stride, activation)[0][0]
            error = np.subtract(fitted, target[top:top + rows], dtype=np.float64)
            total += float(np.square(error, out=error).sum())
    return total


def sgd_each(originals, targets, kernels, biases, stride, lr, epochs, learn_bias,
             activation, order=None, n_threads=None):
    """SGD on every pair on its own (see the compiled ``sgd_each``)."""
    results, start = [], 0
    for original, target, kernel, bias in zip(originals, targets, kernels, biases):
        size = epochs * target.shape[0] * target.shape[1]
        own = None if order is None else order[start:start + size]
        start += size
        results.append(sgd([original], [target], kernel, bias, stride, lr, epochs,
                           learn_bias, activation, own))
    return tuple(np.stack(parts) for parts in zip(*results))


def _block_sum(weights, values):
    """Sum of ``weights * values`` over a ``(kh, kw, C)`` block, in raster order."""
    products = (weights * values).reshape(-1, values.shape[-1])
    return np.add.accumulate(products, axis=0)[-1]


def sgd(originals, targets, kernel, bias, stride, lr, epochs, learn_bias,
        activation, order=None, n_threads=None):
    n_channels, kh, kw = kernel.shape
    sh, sw = stride
    dtype = kernel.dtype
    weights = kernel.transpose(1, 2, 0).copy()   # (kh, kw, C), ours to update
    bias = bias.copy()
    lr = dtype.type(lr)
    sq_err = np.zeros((n_channels, epochs))
    start = 0
    for epoch in range(epochs):
        for original, target in zip(originals, targets):
            out_h, out_w = target.shape[:2]
            n_blocks = out_h * out_w
            if order is None:
                visits = range(n_blocks)
            else:
                visits = order[start:start + n_blocks].tolist()
                start += n_blocks
            flat_target = target.reshape(n_blocks, n_channels)
            for b in visits:
                p, q = divmod(b, out_w)
                block = original[p * sh:p * sh + kh, q * sw:q * sw + kw]
                z = _block_sum(weights, block) + bias     # the bias: fixed unless learned
                err = _activate(z, activation) - flat_target[b]
                sq_err[:, epoch] += err.astype(np.float64) ** 2
                step = lr * err
                weights -= step * block
                if learn_bias:
                    bias -= step
    return np.ascontiguousarray(weights.transpose(2, 0, 1)), bias, sq_err


_CHUNK_ELEMENTS = 1 << 22    # float64 design-matrix elements per chunk (32 MiB)


def _in_linear_range(target, activation):
    if activation == "clip":
        return (target > 0) & (target < 1)
    if activation == "relu":
        return target > 0
    return np.ones(target.shape, dtype=bool)


def normal_equations(originals, targets, kernel_shape, stride, with_bias,
                     activation, n_threads=None):
    kh, kw = kernel_shape
    n_channels = originals[0].shape[2]
    m = kh * kw + bool(with_bias)
    gram = np.zeros((n_channels, m, m))
    rhs = np.zeros((n_channels, m))
    count = np.zeros(n_channels)
    target_sq = np.zeros(n_channels)          # t't over the usable blocks
    for original, target in zip(originals, targets):
        out_h, out_w = target.shape[:2]
        # A few block rows at a time bound the memory the design matrix takes.
        step = max(1, _CHUNK_ELEMENTS // (out_w * m * n_channels))
        for top in range(0, out_h, step):
            rows = min(step, out_h - top)
            part = original[top * stride[0]:(top + rows - 1) * stride[0] + kh]
            blocks = _blocks(part, kh, kw, rows, out_w, stride)
            # design[b, a, c]: element a of block b in channel c
            design = np.stack([blocks[i][j] for i in range(kh) for j in range(kw)], axis=2)
            design = design.reshape(rows * out_w, kh * kw, n_channels).astype(np.float64)
            values = target[top:top + rows].reshape(-1, n_channels).astype(np.float64)
            for c in range(n_channels):
                keep = _in_linear_range(values[:, c], activation)
                chosen = design[keep, :, c]
                if with_bias:
                    chosen = np.column_stack([chosen, np.ones(len(chosen))])
                gram[c] += chosen.T @ chosen
                rhs[c] += chosen.T @ values[keep, c]
                count[c] += keep.sum()
                target_sq[c] += values[keep, c] @ values[keep, c]
    return gram, rhs, count, target_sq


def zoom(image, stride, output_shape, out=None):
    """Nearest-neighbour zoom of a ``(Ho, Wo, C)`` array:
    ``out[r, c] = x[min(r // sh, Ho - 1), min(c // sw, Wo - 1)]``; into ``out`` when
    given."""
    rows = np.minimum(np.arange(output_shape[0]) // stride[0], image.shape[0] - 1)
    cols = np.minimum(np.arange(output_shape[1]) // stride[1], image.shape[1] - 1)
    if out is None:
        return image[rows[:, None], cols[None, :]]
    # Without a temporary: each input row's zoomed row written once (np.take with
    # mode="clip" writes into out unbuffered), then copied to the rows repeating it.
    starts = np.flatnonzero(np.diff(rows, prepend=-1)).tolist() + [len(rows)]
    for first, stop in zip(starts[:-1], starts[1:]):
        np.take(image[rows[first]], cols, axis=0, out=out[first], mode="clip")
        out[first + 1:stop] = out[first]
    return out


def _solve_pixel(weight, small, x, total, activation):
    """One step of eq. 3: returns the solved value and the updated running sum."""
    rest = total - weight * x
    value = np.where(small, x, (x - rest) / np.where(small, 1, weight))
    value = _activate(value, activation)
    return value, rest + weight * value


def deconvolve(images, kernel, stride, output_shapes, eps, activation, n_threads=None,
               outputs=None):
    """``kernel`` is ``(C, kh, kw)``, or ``(N, C, kh, kw)``: one per image. Returns the
    outputs (``outputs``, written into, or new)."""
    kernels = kernel if kernel.ndim == 4 else [kernel] * len(images)
    sh, sw = stride
    results = []
    for n, (x, shape, kernel) in enumerate(zip(images, output_shapes, kernels)):
        _, kh, kw = kernel.shape
        # Compared in float64, as the compiled code compares |w| <= eps.
        small = np.abs(kernel.astype(np.float64)) <= eps
        if outputs is None:
            y = np.ascontiguousarray(zoom(x, stride, shape))
        else:
            y = zoom(x, stride, shape, outputs[n])
        if sh >= kh and sw >= kw:
            _solve_disjoint_blocks(x, y, kernel, small, stride, activation)
        else:
            _solve_overlapping_blocks(x, y, kernel, small, stride, activation)
        results.append(y)
    return results


def _solve_disjoint_blocks(x, y, kernel, small, stride, activation):
    """Every block at once: each pixel belongs to one block, so all are independent."""
    _, kh, kw = kernel.shape
    out_h, out_w = x.shape[:2]
    total = np.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            total = total + kernel[:, i, j] * x
    pixels = _blocks(y, kh, kw, out_h, out_w, stride)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(kh):
            for j in range(kw):
                value, total = _solve_pixel(kernel[:, i, j], small[:, i, j], x, total, activation)
                pixels[i][j][...] = value


def _solve_overlapping_blocks(x, y, kernel, small, stride, activation):
    """Block by block in raster order; pixels solved by earlier blocks are read back."""
    _, kh, kw = kernel.shape
    sh, sw = stride
    weights = kernel.transpose(1, 2, 0)                  # (kh, kw, C)
    out_h, out_w = x.shape[:2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for p in range(out_h):
            first_row = 0 if p == 0 else max(kh - sh, 0)
            for q in range(out_w):
                first_col = 0 if q == 0 else max(kw - sw, 0)
                value = x[p, q]
                block = y[p * sh:p * sh + kh, q * sw:q * sw + kw]
                current = block.copy()
                current[first_row:, first_col:] = value      # unsolved pixels count as x
                total = _block_sum(weights, current)
                for i in range(first_row, kh):
                    for j in range(first_col, kw):
                        block[i, j], total = _solve_pixel(
                            kernel[:, i, j], small[:, i, j], value, total, activation)


def mae(images, references, n_threads=None):
    """Mean absolute difference of each pair, the difference taken in float64."""
    return np.array([np.mean(np.abs(np.subtract(a, b, dtype=np.float64)))
                     for a, b in zip(images, references)])
