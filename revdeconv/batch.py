"""Many images at once: a stack or a list goes through one compiled call.

Every function here takes a stack ``(N, H, W, C)`` (or ``(N, H, W)`` for grey
images: in this module an array's first axis always counts images) or a list
of images, and hands them to the compiled kernels in **one** call that shares
the rows (or the image x channel planes) of the whole batch out between the
OpenMP threads, with the GIL released. A list may mix sizes: the kernels take
a batch of images of different sizes as it is (no grouping needed), as long
as they share one channel count. A C-contiguous stack is not copied, and a
stack in gives a stack out.

The results are exactly those of calling :func:`revdeconv.convolve`,
:func:`revdeconv.learn_filter` and :func:`revdeconv.deconvolve` image by
image.

Examples
--------
>>> import numpy as np
>>> from revdeconv import batch, filters
>>> rng = np.random.default_rng(0)
>>> stack = rng.random((8, 60, 90, 3))
>>> filtered = batch.convolve(stack, filters.BLUR)
>>> filtered.shape
(8, 20, 30, 3)
>>> results = batch.learn(stack, filtered, lr=0.05)      # one filter per image
>>> len(results), results[0].kernel.shape
(8, (3, 3, 3))
>>> restored = batch.deconvolve(filtered, results)       # each with its own filter
>>> restored.shape
(8, 60, 90, 3)
"""

import numpy as np

from . import convolution, learning, reverse
from ._backend import get_backend
from ._layout import stacked_view
from ._threads import effective_n_threads
from ._validation import DEFAULT_ACTIVATION, DEFAULT_NONFINITE, comparable
from .learning import DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_METHOD
from .reverse import DEFAULT_EPS

__all__ = ["convolve", "learn", "deconvolve", "mae"]


def _images(images, name):
    """A stack or a list of images -> (list of images, whether a stack was given).

    Only the container is checked here (a stack's shape, a list's items being
    2-D or 3-D, so that no list is mistaken for one image); the pixels are
    checked by the function the images go to.
    """
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(f"{name} must be a (N, H, W) or (N, H, W, C) stack or a list of "
                             f"images, got an array of shape {images.shape}")
    elif isinstance(images, (list, tuple)):
        bad = [n for n, image in enumerate(images) if np.ndim(image) not in (2, 3)]
        if bad:
            raise ValueError(f"{name}[{bad[0]}] must be an (H, W) or (H, W, C) image, got "
                             f"shape {np.shape(images[bad[0]])}")
    else:
        raise TypeError(f"{name} must be a stack (ndarray) or a list of images, "
                        f"got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError(f"{name} must hold at least one image")
    return list(images), isinstance(images, np.ndarray)


def _stacked(outputs):
    """Outputs of one shape as an (N, ...) stack: a view when they lie back to back."""
    if any(output.shape != outputs[0].shape for output in outputs):
        raise ValueError("a stack in gives a stack out, but the outputs differ in shape")
    view = stacked_view(outputs)
    return np.stack(outputs) if view is None else view


def _returned(outputs, stacked):
    return _stacked(outputs) if stacked else outputs


def convolve(images, kernel, *, stride=None, bias=None, activation=DEFAULT_ACTIVATION,
             n_threads=None, backend=None, nonfinite=DEFAULT_NONFINITE):
    """:func:`revdeconv.convolve` over a stack or a list of images, in one call.

    Parameters
    ----------
    images : ndarray or list of array_like
        ``(N, H, W[, C])`` stack or a list of ``(H, W[, C])`` images.
    kernel : array_like
        ``(kh, kw)`` or ``(C, kh, kw)``, shared by all images.
    stride, bias, activation, n_threads, backend, nonfinite
        As in :func:`revdeconv.convolve` (same defaults).

    Returns
    -------
    ndarray or list of ndarray
        A stack for a stack, a list for a list.
    """
    arrays, stacked = _images(images, "images")
    outputs = convolution.convolve(arrays, kernel, stride=stride, bias=bias,
                                   activation=activation, n_threads=n_threads,
                                   backend=backend, nonfinite=nonfinite)
    return _returned(outputs, stacked)


def learn(originals, filtered, *, shared=False, kernel_size=None, stride=None, lr=DEFAULT_LR,
          epochs=DEFAULT_EPOCHS, init=None, bias=False, activation=DEFAULT_ACTIVATION,
          method=DEFAULT_METHOD, shuffle=False, seed=None, n_threads=None, backend=None,
          nonfinite=DEFAULT_NONFINITE):
    """Learn filters from many (original, filtered) pairs.

    Parameters
    ----------
    originals, filtered : ndarray or list of array_like
        Stacks or lists of the same length.
    shared : bool, optional
        False (default): every pair learns its own filter, independently (SGD:
        all pairs in one compiled call, parallel over pairs x channels). True:
        one filter, learned over the pairs in order with the kernel carried
        over, as the paper does (:func:`revdeconv.learn_filter` on the lists).
    kernel_size, stride, lr, epochs, init, bias, activation, method, shuffle, seed, \
n_threads, backend, nonfinite
        As in :func:`revdeconv.learn_filter` (same defaults). With
        ``shuffle=True`` each pair draws its block order from
        ``numpy.random.default_rng(seed)`` anew, as a call for that pair alone.

    Returns
    -------
    list of FilterResult, or FilterResult when ``shared``
    """
    if not isinstance(shared, (bool, np.bool_)):
        raise TypeError(f"shared must be True or False, got {shared!r}")
    first, _ = _images(originals, "originals")
    second, _ = _images(filtered, "filtered")
    options = dict(kernel_size=kernel_size, stride=stride, lr=lr, epochs=epochs, init=init,
                   bias=bias, activation=activation, method=method, shuffle=shuffle, seed=seed,
                   n_threads=n_threads, backend=backend, nonfinite=nonfinite)
    if shared:
        return learning.learn_filter(first, second, **options)
    return learning._learn(first, second, each=True, **options)


def deconvolve(filtered, kernels, *, stride=None, activation=None, eps=DEFAULT_EPS,
               output_shape=None, n_threads=None, backend=None, nonfinite=DEFAULT_NONFINITE):
    """:func:`revdeconv.deconvolve` over a stack or a list of images, in one call.

    Parameters
    ----------
    filtered : ndarray or list of array_like
        ``(N, Ho, Wo[, C])`` stack or a list of filtered images.
    kernels : array_like, FilterResult, or list of them
        One filter for every image (``(kh, kw)``, ``(C, kh, kw)`` or a
        :class:`~revdeconv.FilterResult`), or one per image: an
        ``(N, C, kh, kw)`` array or a list of ``N`` kernels or results (what
        :func:`learn` returns).
    stride, activation, eps, output_shape, n_threads, backend, nonfinite
        As in :func:`revdeconv.deconvolve` (same defaults): ``stride`` and
        ``activation`` default to the results' when results are given.

    Returns
    -------
    ndarray or list of ndarray
        A stack for a stack, a list for a list.
    """
    arrays, stacked = _images(filtered, "filtered")
    outputs = reverse._deconvolve(arrays, kernels, stride=stride, activation=activation,
                                  eps=eps, output_shape=output_shape, n_threads=n_threads,
                                  backend=backend, nonfinite=nonfinite, kernel_name="kernels",
                                  listed_per_image=True)
    return _returned(outputs, stacked)


def mae(images, references, *, n_threads=None, backend=None):
    """:func:`revdeconv.metrics.mae` of each image against its reference, in one call.

    Parameters
    ----------
    images, references : ndarray or list of array_like
        Stacks or lists of the same length; ``images[n]`` and ``references[n]``
        share a shape (pairs may differ in shape from one another).
    n_threads, backend
        As in :func:`revdeconv.convolve`: the compiled backend shares the pairs
        out between its threads.

    Returns
    -------
    ndarray
        ``(N,)`` float64. Each value is the mean of ``|a - b|`` with the
        difference taken in float64, as :func:`revdeconv.metrics.mae` takes it
        (the compiled backend sums in another order: the two agree to about
        1e-15, relative). NaN pixels give NaN. Integer images are scaled by
        their dtype's maximum (uint8 255 -> 1.0) as everywhere in the package;
        unlike :func:`revdeconv.metrics.mae`, float images are not checked for
        values far outside ``[0, 1]`` (that would be another pass over a
        batch).

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv import batch
    >>> batch.mae(np.zeros((2, 4, 4)), np.full((2, 4, 4), 0.5))
    array([0.5, 0.5])
    """
    first, _ = _images(images, "images")
    second, _ = _images(references, "references")
    if len(first) != len(second):
        raise ValueError(f"{len(first)} images but {len(second)} references")
    pairs = [comparable(a, b, (f"images[{n}]", f"references[{n}]"), scale=True)
             for n, (a, b) in enumerate(zip(first, second))]
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    # float32 pairs stay float32 (each difference is still taken in float64);
    # anything else is compared as float64, which holds every value exactly.
    dtype = np.result_type(*first, *second)
    if dtype != np.float32:
        dtype = np.float64
    # Each image as one flat run of values: the kernel needs no shapes.
    flat = [[np.ascontiguousarray(x, dtype=dtype).reshape(1, -1, 1) for x in arrays]
            for arrays in (first, second)]
    return get_backend(backend).mae(*flat, effective_n_threads(n_threads))
