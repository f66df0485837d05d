"""Learning the filter back from an (original, filtered) pair (the paper's eq. 1-2)."""

import warnings

import numpy as np

from ._backend import get_backend
from ._images import as_images
from ._layout import output_size
from ._results import FilterResult, NormalEquations, check_flags
from ._threads import effective_n_threads
from ._validation import (ACTIVATIONS, DEFAULT_ACTIVATION, DEFAULT_NONFINITE, as_bias,
                          as_float, as_int, as_kernel, as_pair, check_choice, check_fits)

__all__ = ["learn_filter", "FilterResult", "normal_equations", "NormalEquations", "METHODS",
           "DEFAULT_METHOD", "DEFAULT_LR", "DEFAULT_EPOCHS"]

METHODS = ("sgd", "lstsq")
DEFAULT_METHOD = "sgd"
#: SGD's learning rate and passes over the pairs unless told.
DEFAULT_LR = 0.1
DEFAULT_EPOCHS = 1

# The compiled normal equations keep one block on the stack (see _learn.pyx).
_MAX_LSTSQ_UNKNOWNS = 1024


def _kernel_geometry(originals, targets, names, kernel_size, stride):
    """Resolve kernel size and stride, and check every pair agrees with them."""
    (height, width), (out_h, out_w) = originals[0].shape[:2], targets[0].shape[:2]
    if out_h > height or out_w > width:
        raise ValueError(f"filtered {targets[0].shape[:2]} must not be larger than "
                         f"original {originals[0].shape[:2]}")
    if stride is not None:
        stride = as_pair(stride, "stride")
    if kernel_size is not None:
        kernel_size = as_pair(kernel_size, "kernel_size")
    elif stride is None:
        kernel_size = _size_ratio((height, width), (out_h, out_w))
    elif stride == (1, 1):
        kernel_size = (height - out_h + 1, width - out_w + 1)
    else:
        raise ValueError("kernel_size is required when a stride other than 1 is given")
    stride = kernel_size if stride is None else stride
    check_fits(originals, names, kernel_size)
    for n, (original, target) in enumerate(zip(originals, targets)):
        expected = tuple(output_size(size, k, s) for size, k, s
                         in zip(original.shape[:2], kernel_size, stride))
        if target.shape[:2] != expected:
            raise ValueError(
                f"filtered[{n}] has shape {target.shape[:2]}, but a {kernel_size[0]}x"
                f"{kernel_size[1]} kernel at stride {stride} on original of shape "
                f"{original.shape[:2]} gives {expected}")
    return kernel_size, stride


def _size_ratio(shape, out_shape):
    """The kernel size k (stride k) that turns ``shape`` into ``out_shape``.

    With stride = kernel size, ``Ho = H // k``: every k in ``(H/(Ho+1), H/Ho]``
    fits. The paper's 180x250 -> 60x83 allows only 3; where an axis allows
    several sizes, the one size both axes allow is taken, and if there is no
    single such size, the user must say.
    """
    fits = [{k for k in range(size // (out + 1) + 1, size // out + 1) if size // k == out}
            for size, out in zip(shape, out_shape)]
    if len(fits[0]) == 1 and len(fits[1]) == 1:
        return min(fits[0]), min(fits[1])
    square = fits[0] & fits[1]
    if len(square) == 1:
        return (min(square),) * 2
    if not fits[0] or not fits[1]:
        raise ValueError(f"no kernel size k at stride k turns {shape[0]}x{shape[1]} into "
                         f"{out_shape[0]}x{out_shape[1]}; give kernel_size (and stride)")
    raise ValueError(f"kernel_size is ambiguous: {shape} -> {out_shape} fits kernel sizes "
                     f"{sorted(fits[0])} x {sorted(fits[1])} at stride = kernel size; "
                     f"give kernel_size")


def _initial(init, n_channels, kernel_size, dtype):
    """Initial kernel and bias: zeros, a kernel, or a previous FilterResult."""
    if init is None:
        return (np.zeros((n_channels,) + kernel_size, dtype=dtype),
                np.zeros(n_channels, dtype=dtype))
    init_bias = None
    if isinstance(init, FilterResult):
        init, init_bias = init.kernel, init.bias
    kernel = as_kernel(init, "init", n_channels, dtype)
    if kernel.shape[1:] != kernel_size:
        raise ValueError(f"init has a {kernel.shape[1]}x{kernel.shape[2]} kernel, "
                         f"expected {kernel_size[0]}x{kernel_size[1]}")
    return kernel, as_bias(init_bias, n_channels, dtype, name="init.bias")


def _shuffled_order(rng, targets, epochs):
    """Block visiting order of every (epoch, pair), one after the other."""
    sizes = [target.shape[0] * target.shape[1] for target in targets]
    return np.concatenate([rng.permutation(size) for _ in range(epochs)
                           for size in sizes]).astype(np.intp)


def learn_filter(original, filtered, *, kernel_size=None, stride=None, lr=DEFAULT_LR,
                 epochs=DEFAULT_EPOCHS, init=None, bias=False, activation=DEFAULT_ACTIVATION,
                 method=DEFAULT_METHOD, shuffle=False, seed=None, n_threads=None, backend=None,
                 nonfinite=DEFAULT_NONFINITE):
    """Learn the filter that turned ``original`` into ``filtered``.

    ``method="sgd"`` is the paper's eq. 1-2: stochastic gradient descent with
    one update per block, sliding over the blocks in raster order::

        e = f(sum K * block + b) - target;  K -= lr * e * block;  b -= lr * e

    (the signed error, as in the author's code; the paper's printed norm is
    a typo). ``method="lstsq"`` solves the same model in closed form: the
    normal equations over every block whose target lies strictly inside the
    activation's linear range (``0 < t < 1`` for clip, ``t > 0`` for relu).

    Parameters
    ----------
    original, filtered : array_like or list of array_like
        One ``(H, W[, C])`` image and its ``(Ho, Wo[, C])`` filtered version,
        or two lists of them, learned in order with the kernel carried over
        from one pair to the next (the paper's protocol). Channels are
        independent: one kernel per channel. Dtype: the common float dtype
        of all images (see :func:`revdeconv.convolve`).
    kernel_size : int or (int, int), optional
        Default: the size ratio ``(H // Ho, W // Wo)`` (180x250 -> 60x83
        gives 3) when ``stride`` is not given, ``H - Ho + 1`` with stride 1.
    stride : int or (int, int), optional
        Default: the kernel size.
    lr : float, optional
        SGD learning rate (> 0), default 0.1. Too large a rate makes the
        weights overflow: the result then says ``diverged=True``.
    epochs : int, optional
        SGD passes over all the pairs, in order (default 1).
    init : array_like or FilterResult, optional
        SGD starting kernel (``(kh, kw)`` or ``(C, kh, kw)``), or a previous
        result whose kernel and bias are carried on. Default zeros.
    bias : bool, optional
        Learn a bias per channel too (default False, as in the paper). When
        False the bias stays at its initial value: zero, or ``init``'s.
    activation : {"clip", "relu", "identity"}, optional
        The activation the filtered image went through (default ``"clip"``).
    method : {"sgd", "lstsq"}, optional
    shuffle : bool, optional
        SGD: visit the blocks of each pair in a random order, drawn per epoch
        and pair from ``numpy.random.default_rng(seed)``.
    seed : int or numpy.random.Generator, optional
    n_threads, backend, nonfinite
        As in :func:`revdeconv.convolve`; threads take whole channels. With
        ``nonfinite="propagate"`` a NaN pixel makes the result ``diverged``.

    Returns
    -------
    FilterResult
        ``.kernel`` ``(C, kh, kw)``, ``.bias`` ``(C,)``, ``.loss``, ``.diverged``.

    Examples
    --------
    >>> import numpy as np
    >>> import revdeconv
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((90, 120, 3))
    >>> truth = rng.normal(size=(3, 3))
    >>> filtered = revdeconv.convolve(image, truth, activation="identity")
    >>> result = revdeconv.learn_filter(image, filtered, activation="identity",
    ...                                 method="lstsq")
    >>> result.kernel.shape
    (3, 3, 3)
    >>> bool(revdeconv.metrics.filter_error(result.kernel, truth) < 1e-8)
    True
    """
    return _learn(original, filtered, each=False, kernel_size=kernel_size, stride=stride,
                  lr=lr, epochs=epochs, init=init, bias=bias, activation=activation,
                  method=method, shuffle=shuffle, seed=seed, n_threads=n_threads,
                  backend=backend, nonfinite=nonfinite)


def _learn(original, filtered, *, each, kernel_size, stride, lr, epochs, init, bias,
           activation, method, shuffle, seed, n_threads, backend, nonfinite):
    """:func:`learn_filter`; with ``each=True`` every pair learns its own filter
    (what ``revdeconv.batch.learn`` does), all in one compiled call for SGD."""
    impl = get_backend(backend)
    n_threads = effective_n_threads(n_threads)
    originals, targets, n_channels, dtype, kernel_size, stride = _pairs(
        original, filtered, kernel_size, stride, n_threads, nonfinite)
    check_choice(activation, "activation", ACTIVATIONS)
    check_choice(method, "method", METHODS)
    check_flags(bias=bias, shuffle=shuffle)
    lr = as_float(lr, "lr", minimum=0, strict=True)
    epochs = as_int(epochs, "epochs", minimum=1)
    if method == "lstsq" and (init is not None or shuffle):
        raise ValueError("init and shuffle are for method='sgd'; method='lstsq' solves "
                         "in closed form")
    pairs = [([o], [t]) for o, t in zip(originals, targets)] if each else [(originals, targets)]

    if method == "lstsq":
        fits = [_lstsq(impl, o, t, kernel_size, stride, bool(bias), activation, dtype,
                       n_threads) for o, t in pairs]
        kernels, biases, losses = (np.stack(parts) for parts in zip(*fits))
    else:
        kernel, offsets = _initial(init, n_channels, kernel_size, dtype)
        # Each group of pairs learned together draws its orders from a fresh generator.
        order = (np.concatenate([_shuffled_order(np.random.default_rng(seed), t, epochs)
                                 for _, t in pairs]) if shuffle else None)
        with np.errstate(over="ignore", invalid="ignore"):
            if each:
                kernels, biases, sq_err = impl.sgd_each(
                    originals, targets, np.stack([kernel] * len(pairs)),
                    np.stack([offsets] * len(pairs)), stride, lr, epochs, bool(bias),
                    activation, order, n_threads)
            else:
                kernels, biases, sq_err = impl.sgd(originals, targets, kernel, offsets, stride,
                                                   lr, epochs, bool(bias), activation, order,
                                                   n_threads)
                kernels, biases, sq_err = kernels[None], biases[None], sq_err[None]
        n_errors = np.array([n_channels * sum(target.shape[0] * target.shape[1]
                                              for target in t) for _, t in pairs])
        losses = sq_err.sum(axis=1) / n_errors[:, None]

    # Every pair at once: there may be thousands.
    diverged = ~(np.isfinite(kernels).all(axis=(1, 2, 3)) & np.isfinite(biases).all(axis=1)
                 & np.isfinite(losses).all(axis=1))
    results = [FilterResult(k, b, loss, bool(bad), method, stride, activation)
               for k, b, loss, bad in zip(kernels, biases, losses, diverged)]
    n_diverged = int(diverged.sum())
    if n_diverged:
        what = f"{n_diverged} of {len(results)} filters" if each else "learn_filter"
        warnings.warn(f"{what} diverged: the weights are not finite (a learning rate "
                      f"too large, or non-finite pixels)", RuntimeWarning, stacklevel=3)
    return results if each else results[0]


def _lstsq(impl, originals, targets, kernel_size, stride, with_bias, activation,
           dtype, n_threads):
    """Closed-form fit from the normal equations; the loss from a second pass over the
    images (the fitted model through the activation, over every block)."""
    equations = _accumulate(impl, originals, targets, kernel_size, stride, with_bias,
                            activation, dtype, n_threads)
    kernel, offsets = equations._fit(stacklevel=5, caller="learn_filter(method='lstsq')")
    squared = impl.squared_error(originals, targets, kernel, offsets, stride, activation,
                                 n_threads)
    loss = np.array([squared / sum(t.size for t in targets)])
    return kernel, offsets, loss


def _pairs(original, filtered, kernel_size, stride, n_threads, nonfinite):
    """The (original, filtered) pairs checked and in one float dtype: ``(originals,
    targets, n_channels, dtype, kernel_size, stride)``."""
    first = as_images(original, "original", nonfinite=nonfinite, n_threads=n_threads)
    second = as_images(filtered, "filtered", nonfinite=nonfinite, n_threads=n_threads)
    originals, targets, n_channels = first.arrays, second.arrays, first.n_channels
    if first.is_list != second.is_list or len(originals) != len(targets):
        raise ValueError("original and filtered must be two arrays or two lists of one length")
    dtype = np.result_type(originals[0].dtype, targets[0].dtype)
    originals = [image.astype(dtype, copy=False) for image in originals]
    targets = [image.astype(dtype, copy=False) for image in targets]
    if n_channels != targets[0].shape[2]:
        raise ValueError(f"original has {n_channels} channels, filtered has "
                         f"{targets[0].shape[2]}")
    kernel_size, stride = _kernel_geometry(originals, targets, first.names, kernel_size, stride)
    return originals, targets, n_channels, dtype, kernel_size, stride


def _accumulate(impl, originals, targets, kernel_size, stride, with_bias, activation, dtype,
                n_threads):
    """:class:`NormalEquations` of the pairs, from the backend's one pass over them."""
    n_unknowns = kernel_size[0] * kernel_size[1] + with_bias
    if n_unknowns > _MAX_LSTSQ_UNKNOWNS:
        raise ValueError(f"method='lstsq' supports at most {_MAX_LSTSQ_UNKNOWNS} unknowns "
                         f"(kh*kw + bias), got {n_unknowns}")
    sums = impl.normal_equations(originals, targets, kernel_size, stride, with_bias,
                                 activation, n_threads)
    return NormalEquations(*sums, kernel_size, stride, activation, with_bias,
                           np.dtype(dtype).name)


def normal_equations(original, filtered, *, kernel_size=None, stride=None, bias=False,
                     activation=DEFAULT_ACTIVATION, n_threads=None, backend=None,
                     nonfinite=DEFAULT_NONFINITE):
    """The normal equations that :func:`learn_filter` solves for ``method="lstsq"``.

    Least squares is a sum over the blocks: the equations of parts of a data set
    (on other threads, processes or machines) add up with ``+`` (or ``sum``) to
    those of the whole, and ``.solve()`` gives the filter (see
    :class:`NormalEquations` for the agreement to expect).

    Parameters
    ----------
    original, filtered, kernel_size, stride, bias, activation, n_threads, backend, nonfinite
        As in :func:`learn_filter`: one pair, or two lists of pairs.

    Returns
    -------
    NormalEquations

    Examples
    --------
    >>> import numpy as np
    >>> import revdeconv
    >>> from revdeconv.learning import normal_equations
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.random((60, 90, 3)) for _ in range(4)]
    >>> truth = rng.normal(size=(3, 3))
    >>> filtered = [revdeconv.convolve(image, truth, activation="identity") for image in images]
    >>> parts = [normal_equations(images[i:i + 2], filtered[i:i + 2], activation="identity")
    ...          for i in (0, 2)]
    >>> result = sum(parts).solve()     # as if all four pairs were in one place
    >>> bool(revdeconv.metrics.filter_error(result.kernel, truth) < 1e-8)
    True
    """
    impl = get_backend(backend)
    n_threads = effective_n_threads(n_threads)
    originals, targets, _, dtype, kernel_size, stride = _pairs(
        original, filtered, kernel_size, stride, n_threads, nonfinite)
    check_choice(activation, "activation", ACTIVATIONS)
    check_flags(bias=bias)
    return _accumulate(impl, originals, targets, kernel_size, stride, bool(bias), activation,
                       dtype, n_threads)
