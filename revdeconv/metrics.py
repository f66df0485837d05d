"""How the paper measures a deconvolution (eq. 4-5; SPEC section 5).

``MAE0`` is the error of the zoomed filtered image, ``MAE`` that of the
deconvolved one, both against the original on the region the deconvolved
image covers.

Examples
--------
>>> from revdeconv import metrics
>>> round(metrics.loss_ratio(0.5563, 0.5482), 6)   # the paper's edge row at lr = 1
0.014776
>>> metrics.gain(0.0707, 0.0727) > 1     # closer to the original than the zoom
True
"""

import numpy as np

from ._validation import comparable

__all__ = ["mae", "loss_ratio", "gain", "psnr", "filter_error"]


def _difference(a, b, names=("a", "b")):
    """``a - b`` in float64 (the inputs are cast element by element, not copied)."""
    a, b = comparable(a, b, names)
    return np.subtract(a, b, dtype=np.float64)


def mae(a, b):
    """Mean absolute difference over all pixels and channels.

    Examples
    --------
    >>> from revdeconv.metrics import mae
    >>> mae([0.0, 0.5], [0.5, 0.5])
    0.25
    """
    return float(np.mean(np.abs(_difference(a, b))))


def _positive(value, name):
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
    return abs(float(mae) - float(mae0)) / _positive(mae0, "mae0")


def gain(mae, mae0):
    """``MAE0 / MAE``: above 1 when the deconvolution is closer to the original than the zoom.

    Examples
    --------
    >>> from revdeconv.metrics import gain
    >>> gain(0.1, 0.2)
    2.0
    """
    return float(mae0) / _positive(mae, "mae")


def psnr(reference, test, data_range=1.0):
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    Examples
    --------
    >>> from revdeconv.metrics import psnr
    >>> round(psnr([0.0, 1.0], [0.1, 0.9]), 6)
    20.0
    """
    mse = float(np.mean(_difference(reference, test, ("reference", "test")) ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(_positive(data_range, "data_range") ** 2 / mse))


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
        return float(np.linalg.norm(estimate - truth) / _positive(np.linalg.norm(truth),
                                                                    "the norm of truth"))
