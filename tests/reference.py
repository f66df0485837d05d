"""Slow, obviously-correct reference loops written straight from SPEC.md.

Nothing here is vectorised: every output pixel, every block and every SGD update is one explicit
Python loop iteration, computed in Python floats (float64).  The tests compare the package, in both
of its backends, against these functions.

Conventions (all functions):

- images are ``(H, W, C)`` arrays, kernels ``(C, kh, kw)``, biases ``(C,)``;
- ``sh, sw`` are the vertical and horizontal strides;
- block ``(p, q)`` covers rows ``p*sh .. p*sh+kh-1`` and columns ``q*sw .. q*sw+kw-1``;
- block index ``b`` (shuffled order) means ``p = b // Wo``, ``q = b % Wo``.
"""

import math

import numpy as np


def activate(z, activation):
    """SPEC section 2: the activation applied to one number."""
    if activation == "clip":
        return min(max(z, 0.0), 1.0)
    if activation == "relu":
        return max(z, 0.0)
    if activation == "identity":
        return z
    raise ValueError(activation)


def out_size(h, w, kh, kw, sh, sw):
    """Number of valid blocks ``(Ho, Wo)``."""
    return (h - kh) // sh + 1, (w - kw) // sw + 1


def _block_sum(img, kernel, c, p, q, sh, sw):
    """sum_{i,j} K_c[i, j] * img[p*sh + i, q*sw + j, c] as a Python float."""
    kh, kw = kernel.shape[1:]
    z = 0.0
    for i in range(kh):
        for j in range(kw):
            z += float(kernel[c, i, j]) * float(img[p * sh + i, q * sw + j, c])
    return z


# --------------------------------------------------------------------------------------------
# Section 2: forward model


def ref_convolve(img, kernel, stride, bias, activation):
    """out[p, q, c] = f(sum_{i,j} K_c[i, j] img[p*sh+i, q*sw+j, c] + b_c), valid region."""
    sh, sw = stride
    h, w, nc = img.shape
    kh, kw = kernel.shape[1:]
    ho, wo = out_size(h, w, kh, kw, sh, sw)
    out = np.zeros((ho, wo, nc))
    for c in range(nc):
        b = 0.0 if bias is None else float(bias[c])
        for p in range(ho):
            for q in range(wo):
                out[p, q, c] = activate(_block_sum(img, kernel, c, p, q, sh, sw) + b, activation)
    return out


# --------------------------------------------------------------------------------------------
# Section 3: learning the filter


def _initial_state(init, nc, kh, kw):
    """init is None (zeros), a kernel (kh, kw) / (C, kh, kw), or a tuple (kernel, bias)."""
    kernel = np.zeros((nc, kh, kw))
    bias = np.zeros(nc)
    if init is not None:
        if isinstance(init, tuple):
            init, init_bias = init
            bias[:] = init_bias
        init = np.asarray(init, dtype=np.float64)
        if init.ndim == 2:
            for c in range(nc):
                kernel[c] = init
        else:
            kernel[:] = init
    return kernel, bias


def ref_learn_sgd(originals, filteds, kh, kw, sh, sw, lr, epochs, init, bias, activation,
                  orders=None):
    """SGD, one update per output pixel (SPEC section 3).

    ``orders`` is None (raster order) or ``orders[epoch][pair]`` = permutation of block indices.
    Returns ``(kernel (C, kh, kw), bias (C,), loss (epochs,))``; loss = mean of e**2 over every
    update of the epoch, e taken before the update.
    """
    nc = originals[0].shape[2]
    kernel, b = _initial_state(init, nc, kh, kw)
    losses = np.zeros(epochs)
    for epoch in range(epochs):
        total = 0.0
        count = 0
        for pair, (y, t) in enumerate(zip(originals, filteds)):
            ho, wo = t.shape[:2]
            if orders is None:
                blocks = range(ho * wo)
            else:
                blocks = orders[epoch][pair]
            for c in range(nc):
                for block in blocks:
                    p, q = block // wo, block % wo
                    z = _block_sum(y, kernel, c, p, q, sh, sw) + b[c]
                    a = activate(z, activation)
                    e = a - float(t[p, q, c])
                    total += e * e
                    count += 1
                    for i in range(kh):
                        for j in range(kw):
                            kernel[c, i, j] -= lr * e * float(y[p * sh + i, q * sw + j, c])
                    if bias:
                        b[c] -= lr * e
        losses[epoch] = total / count
    return kernel, b, losses


def _in_linear_range(target, activation):
    if activation == "clip":
        return 0.0 < target < 1.0
    if activation == "relu":
        return target > 0.0
    return True


def ref_lstsq(originals, filteds, kh, kw, sh, sw, bias, activation):
    """Closed-form fit (SPEC section 3, method="lstsq").

    Per channel, the normal equations A^T A k = A^T t are accumulated block by block over the
    blocks whose target lies in the activation's linear range, then solved with
    np.linalg.lstsq.  Returns ``(kernel, bias, loss)`` with loss = mean squared error of
    f(conv(original) + b) against filtered over every block, pair and channel.
    """
    nc = originals[0].shape[2]
    n = kh * kw + (1 if bias else 0)
    kernel = np.zeros((nc, kh, kw))
    b = np.zeros(nc)
    for c in range(nc):
        ata = np.zeros((n, n))
        atb = np.zeros(n)
        for y, t in zip(originals, filteds):
            ho, wo = t.shape[:2]
            for p in range(ho):
                for q in range(wo):
                    target = float(t[p, q, c])
                    if not _in_linear_range(target, activation):
                        continue
                    row = [float(y[p * sh + i, q * sw + j, c])
                           for i in range(kh) for j in range(kw)]
                    if bias:
                        row.append(1.0)
                    for u in range(n):
                        atb[u] += row[u] * target
                        for v in range(n):
                            ata[u, v] += row[u] * row[v]
        solution = np.linalg.lstsq(ata, atb, rcond=None)[0]
        kernel[c] = solution[:kh * kw].reshape(kh, kw)
        if bias:
            b[c] = solution[-1]
    total = 0.0
    count = 0
    for y, t in zip(originals, filteds):
        model = ref_convolve(y, kernel, (sh, sw), b, activation)
        for p in range(t.shape[0]):
            for q in range(t.shape[1]):
                for c in range(nc):
                    total += (model[p, q, c] - float(t[p, q, c])) ** 2
                    count += 1
    return kernel, b, total / count


# --------------------------------------------------------------------------------------------
# Section 5: zoom


def ref_zoom(x, sh, sw, output_shape=None):
    """out[r, c] = x[min(r // sh, Ho-1), min(c // sw, Wo-1)]; default shape (Ho*sh, Wo*sw)."""
    ho, wo, nc = x.shape
    if output_shape is None:
        output_shape = (ho * sh, wo * sw)
    rows, cols = output_shape[:2]
    out = np.zeros((rows, cols, nc))
    for r in range(rows):
        for col in range(cols):
            for c in range(nc):
                out[r, col, c] = x[min(r // sh, ho - 1), min(col // sw, wo - 1), c]
    return out


# --------------------------------------------------------------------------------------------
# Section 4: the reverse solve


def ref_deconvolve(x, kernel, sh, sw, activation, eps, output_shape=None):
    """SPEC section 4, literally: the whole sum over the block is recomputed for every pixel."""
    ho, wo, nc = x.shape
    kh, kw = kernel.shape[1:]
    default_shape = ((ho - 1) * sh + kh, (wo - 1) * sw + kw)
    if output_shape is None:
        output_shape = default_shape
    rows, cols = output_shape[:2]
    if rows < default_shape[0] or cols < default_shape[1]:
        raise ValueError("output_shape smaller than the region the blocks cover")
    # Step 1: every pixel starts unsolved, holding its zoom value (kept where no block covers).
    y = ref_zoom(x, sh, sw, (rows, cols))
    solved = np.zeros((rows, cols, nc), dtype=bool)
    for c in range(nc):
        for p in range(ho):                      # step 2: blocks in raster order
            for q in range(wo):
                xv = float(x[p, q, c])
                for i in range(kh):              # pixels of the block in raster order
                    for j in range(kw):
                        r, col = p * sh + i, q * sw + j
                        if solved[r, col, c]:
                            continue
                        wij = float(kernel[c, i, j])
                        if abs(wij) <= eps:      # step 3
                            value = xv
                        else:
                            others = 0.0
                            for k in range(kh):
                                for l in range(kw):
                                    if (k, l) == (i, j):
                                        continue
                                    rr, cc = p * sh + k, q * sw + l
                                    v = float(y[rr, cc, c]) if solved[rr, cc, c] else xv
                                    others += float(kernel[c, k, l]) * v
                            value = (xv - others) / wij
                        y[r, col, c] = activate(value, activation)   # step 4
                        solved[r, col, c] = True
    return y


def relative_error(kernel, true_kernel):
    """||K - U|| / ||U|| (Frobenius norms)."""
    diff = np.asarray(kernel, dtype=np.float64) - np.asarray(true_kernel, dtype=np.float64)
    return math.sqrt(float(np.sum(diff * diff))) / math.sqrt(
        float(np.sum(np.asarray(true_kernel, dtype=np.float64) ** 2)))
