"""How the paper measures a deconvolution (its eq. 4-5), and PSNR.

For an image set and a filter: ``MAE`` is the mean absolute difference between
the deconvolved image and the original (:func:`mae`, over every pixel and
channel, then averaged over the images); ``MAE0`` is the same for the
baseline, the filtered image zoomed back by nearest neighbour
(:func:`revdeconv.zoom`); both are taken on the region the deconvolved image
covers. The paper's **loss ratio** is ``|MAE - MAE0| / MAE0`` (:func:`loss_ratio`:
smaller is "better" in its sense); the **gain** ``MAE0 / MAE`` (:func:`gain`) is
above 1 when the deconvolution is closer to the original than the zoom is.

Dtype policy, as everywhere in the package: images are nominally in ``[0, 1]``;
an integer image (an array with an integer dtype) is scaled by its dtype's
maximum (uint8 255 -> 1.0, uint16 65535 -> 1.0), so ``mae(u8, u8 / 255)`` is 0;
float images are taken as they are. A plain Python list of numbers has no
image dtype and is taken as written. Differences are taken in float64.

Range check: a float image with a value below ``-1`` or above ``2`` (more than
a whole range outside ``[0, 1]``: 0..255 levels stored as floats, most
likely) gets a ``RuntimeWarning`` naming the range found, rather than a
silently meaningless number; values a little outside ``[0, 1]``, as the
``identity`` or ``relu`` activations can give, do not. :func:`psnr` with an
explicit ``data_range`` does not check (the caller has said what the range is).

Examples
--------
>>> import numpy as np
>>> from revdeconv import metrics
>>> round(metrics.loss_ratio(0.5563, 0.5482), 6)   # the paper's edge row at lr = 1
0.014776
>>> metrics.gain(0.0707, 0.0727) > 1     # closer to the original than the zoom
True
>>> u8 = np.array([[0, 51], [204, 255]], dtype=np.uint8)
>>> metrics.mae(u8, u8 / 255)            # uint8 is scaled by 255, as convolve scales it
0.0
"""

import warnings

import numpy as np

from ._validation import comparable

__all__ = ["mae", "loss_ratio", "gain", "psnr", "filter_error"]

#: Float images with values outside this interval are warned about (see the module doc).
WARN_OUTSIDE = (-1.0, 2.0)


def _check_range(array, name):
    """Warn when a float image lies far outside ``[0, 1]`` (see :data:`WARN_OUTSIDE`)."""
    if array.dtype.kind != "f":        # integers are scaled, booleans are 0 and 1
        return
    with np.errstate(invalid="ignore"):
        low, high = float(np.nanmin(array, initial=np.inf)), \
            float(np.nanmax(array, initial=-np.inf))
    if low < WARN_OUTSIDE[0] or high > WARN_OUTSIDE[1]:
        hint = " (8-bit levels as floats? divide by 255)" if high <= 255 and low >= 0 else ""
        warnings.warn(f"{name} holds values from {low:g} to {high:g}, far outside [0, 1], "
                      f"the range the measures assume{hint}; pass integer images as "
                      f"integers, or floats scaled to [0, 1]", RuntimeWarning, stacklevel=4)


def _difference(a, b, names=("a", "b"), check_range=True):
    """``a - b`` in float64, integer images scaled (the inputs are cast element by
    element, not copied)."""
    a, b = comparable(a, b, names, scale=True)
    if check_range:
        _check_range(a, names[0])
        _check_range(b, names[1])
    return np.subtract(a, b, dtype=np.float64)


def mae(a, b):
    """Mean absolute difference over all pixels and channels.

    Parameters
    ----------
    a, b : array_like
        Two images (any shape, one shape for both). Integer images are scaled
        by their dtype's maximum, as everywhere in the package (see the module
        doc); a float image far outside ``[0, 1]`` gets a ``RuntimeWarning``.

    Returns
    -------
    float
        ``mean(|a - b|)``, the difference taken in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv.metrics import mae
    >>> mae([0.0, 0.5], [0.5, 0.5])
    0.25
    >>> mae(np.array([0, 255], dtype=np.uint8), [0.0, 0.5])    # uint8: 255 -> 1.0
    0.25
    """
    return float(np.mean(np.abs(_difference(a, b))))


def _denominator(value, name):
    """``value`` as a float to divide by: it must be > 0."""
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def loss_ratio(mae, mae0):
    """The paper's loss ratio ``|MAE - MAE0| / MAE0`` (eq. 5): smaller is "better".

    Examples
    --------
    >>> from revdeconv.metrics import loss_ratio
    >>> round(loss_ratio(0.3, 0.2), 12)
    0.5
    """
    return abs(float(mae) - float(mae0)) / _denominator(mae0, "mae0")


def gain(mae, mae0):
    """``MAE0 / MAE``: above 1 when the deconvolution is closer to the original than the zoom.

    Examples
    --------
    >>> from revdeconv.metrics import gain
    >>> gain(0.1, 0.2)
    2.0
    """
    return float(mae0) / _denominator(mae, "mae")


def psnr(reference, test, data_range=None):
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    ``10 * log10(data_range**2 / MSE)``, with ``data_range`` and its default as
    :func:`skimage.metrics.peak_signal_noise_ratio` takes them.

    Parameters
    ----------
    reference, test : array_like
        The true image and the image to rate, of one shape. Integer images are
        scaled by their dtype's maximum (see the module doc) before the squared
        error is taken, so a uint8 image and its float version ``u8 / 255``
        compare as equal.
    data_range : float, optional
        The distance between the smallest and largest values the reference
        can take, in the reference's own units, as in scikit-image: 255 for
        uint8 images, 1.0 for float images in ``[0, 1]``. Default (None): the
        reference dtype's maximum for integer images (255 for uint8, 65535 for
        uint16), 1.0 for float images; the images are then checked for values
        far outside ``[0, 1]`` (a ``RuntimeWarning``). Must be > 0.

    Returns
    -------
    float

    Notes
    -----
    Where this differs from scikit-image: values outside the range get a
    warning here, where scikit-image raises ``ValueError`` for a reference
    outside its dtype's range; with negative values in the reference, the
    default stays 1.0 for floats (and the dtype's maximum for signed integers),
    where scikit-image takes 2.0 (the span of ``[-1, 1]``) or the whole span of
    the signed type, since images here live in ``[0, 1]``; and a reference and
    a test of different dtypes are both scaled to ``[0, 1]`` and compared (the
    default range being the reference's), where scikit-image warns and compares
    the raw values.

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv.metrics import psnr
    >>> round(psnr([0.0, 1.0], [0.1, 0.9]), 6)
    20.0
    >>> u8 = np.array([0, 255], dtype=np.uint8)
    >>> round(psnr(u8, np.array([0.1, 0.9])), 6)         # uint8 scaled: 255 -> 1.0
    20.0
    >>> round(psnr(u8, u8 // 2, data_range=255), 4)   # in uint8 units, as skimage
    8.9969
    """
    divisor = 1
    if data_range is None:
        data_range = 1.0
    elif hasattr(reference, "dtype") and np.dtype(reference.dtype).kind in "iu":
        divisor = np.iinfo(reference.dtype).max    # the images are scaled by it: so is the range
    data_range = _denominator(data_range, "data_range") / divisor
    difference = _difference(reference, test, ("reference", "test"),
                             check_range=divisor == 1 and data_range == 1.0)
    mse = float(np.mean(difference ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(data_range ** 2 / mse))


def filter_error(estimate, truth):
    """Relative error ``||K - U|| / ||U||`` (Frobenius) of a learned filter.

    A ``(kh, kw)`` truth is compared with every channel of a ``(C, kh, kw)``
    estimate.

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv.metrics import filter_error
    >>> round(filter_error(np.full((3, 3, 3), 1.1), np.ones((3, 3))), 12)
    0.1
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    try:
        truth = np.broadcast_to(truth, estimate.shape)
    except ValueError:
        raise ValueError(f"estimate {estimate.shape} and truth {truth.shape} must have one "
                         f"shape, or truth be one (kh, kw) filter for every channel") from None
    with np.errstate(over="ignore"):       # a diverged estimate is infinitely far off
        return float(np.linalg.norm(estimate - truth) / _denominator(np.linalg.norm(truth),
                                                                    "the norm of truth"))
