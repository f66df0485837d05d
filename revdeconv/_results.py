"""What learning returns: :class:`FilterResult`, and :class:`NormalEquations`, the
least-squares sums that parts of a data set add up (both public in
``revdeconv.learning``, where they are documented and pickled from).
"""

import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from ._validation import ACTIVATIONS, as_pair, check_choice

__all__ = ["FilterResult", "NormalEquations", "check_flags"]


def check_flags(**flags):
    """Each flag must be True or False (a bool or a NumPy bool)."""
    for flag, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False, got {value!r}")


@dataclass(frozen=True)
class FilterResult:
    """What :func:`learn_filter` learned.

    Attributes
    ----------
    kernel : ndarray, shape (C, kh, kw)
        The learned filter, one per channel, in the images' float dtype.
    bias : ndarray, shape (C,)
        The learned bias (zeros unless ``bias=True``).
    loss : ndarray of float64
        SGD: the mean squared error ``e**2`` of every update of each epoch,
        taken before the update (shape ``(epochs,)``). lstsq: the mean squared
        error of the fitted model over every block (shape ``(1,)``).
    diverged : bool
        True when the weights or the loss became non-finite (the learning
        rate was too large); ``kernel`` then holds those non-finite values.
    method, stride, activation
        How it was learned; pass ``stride`` and ``activation`` on to
        :func:`revdeconv.deconvolve`.
    """

    kernel: np.ndarray
    bias: np.ndarray
    loss: np.ndarray
    diverged: bool
    method: str
    stride: tuple
    activation: str


@dataclass(frozen=True, eq=False)
class NormalEquations:
    """The least-squares normal equations of some pairs (:func:`normal_equations`): a
    sum over their blocks, so equations of parts of a data set add up with ``+``.

    ``solve()`` gives the filter, as :func:`learn_filter` (``method="lstsq"``) does;
    on the equations of one batch of pairs, the very same kernel. Added parts hold
    the same sums as the whole, added in another order, so their kernel agrees with
    the whole's to about ``condition() * count * 1e-16`` relative at worst (float64;
    the Gram matrix squares the design's condition number, and the rounding of a
    sum grows with the blocks it adds). Measured: 2e-13 to 2e-12 for parts of the
    sample photographs (condition 4e3 to 8e4, 3x3 and 5x5 kernels), 6.5e-10 for
    1,000 images cut into 17 parts (condition 1.4e4, 5 million blocks a channel):
    expect about 1e-9. Pickles, to cross process boundaries.

    Attributes
    ----------
    gram, rhs : ndarray of float64, shapes (C, m, m) and (C, m)
        Per channel, ``A'A`` and ``A't`` over the blocks whose target lies in the
        activation's linear range; a row of ``A`` is a block's ``kh*kw`` pixels
        (then 1 with a bias: ``m = kh*kw + with_bias``), ``t`` their targets.
    count : ndarray of int64, shape (C,)
        Those blocks, per channel.
    target_sq : ndarray of float64, shape (C,)
        ``t't``, for the loss from the sums alone.
    kernel_size, stride, activation, with_bias
        The geometry; only equal geometries add.
    dtype : str
        The images' float dtype, the kernel's (two parts add to their common dtype).

    Examples
    --------
    >>> import pickle
    >>> import numpy as np
    >>> import revdeconv
    >>> from revdeconv.learning import normal_equations
    >>> image = np.random.default_rng(0).random((90, 120, 3))
    >>> filtered = revdeconv.convolve(image, revdeconv.filters.SHARPEN)
    >>> top = normal_equations(image[:45], filtered[:15])      # block rows 0..14
    >>> bottom = pickle.loads(pickle.dumps(normal_equations(image[45:], filtered[15:])))
    >>> top + bottom
    NormalEquations(3 channels, kernel_size=(3, 3), stride=(3, 3), activation='clip', \
with_bias=False, count=[243, 254, 214])
    >>> whole = normal_equations(image, filtered)
    >>> bool(np.allclose((top + bottom).solve().kernel, whole.solve().kernel, rtol=1e-9))
    True
    """

    gram: np.ndarray
    rhs: np.ndarray
    count: np.ndarray
    target_sq: np.ndarray
    kernel_size: tuple
    stride: tuple
    activation: str
    with_bias: bool
    dtype: str = "float64"

    def __post_init__(self):
        kernel_size, stride = as_pair(self.kernel_size, "kernel_size"), as_pair(self.stride,
                                                                                "stride")
        check_choice(self.activation, "activation", ACTIVATIONS)
        check_flags(with_bias=self.with_bias)
        m = kernel_size[0] * kernel_size[1] + bool(self.with_bias)
        fields = dict(gram=np.asarray(self.gram, dtype=np.float64),
                      rhs=np.asarray(self.rhs, dtype=np.float64),
                      count=np.asarray(self.count).astype(np.int64),
                      target_sq=np.asarray(self.target_sq, dtype=np.float64))
        n = len(fields["count"])
        expected = dict(gram=(n, m, m), rhs=(n, m), count=(n,), target_sq=(n,))
        for name, array in fields.items():
            if array.shape != expected[name]:
                raise ValueError(f"NormalEquations.{name} must have shape {expected[name]}, "
                                 f"got {array.shape}")
        fields.update(kernel_size=kernel_size, stride=stride, with_bias=bool(self.with_bias),
                      dtype=np.dtype(self.dtype).name)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __add__(self, other):
        if not isinstance(other, NormalEquations):
            return NotImplemented
        differ = [f"{name} {getattr(self, name)!r} != {getattr(other, name)!r}"
                  for name in ("kernel_size", "stride", "activation", "with_bias")
                  if getattr(self, name) != getattr(other, name)]
        if len(self.count) != len(other.count):
            differ.append(f"channels {len(self.count)} != {len(other.count)}")
        if differ:
            raise ValueError(f"cannot add normal equations of another geometry: "
                             f"{'; '.join(differ)}")
        return NormalEquations(self.gram + other.gram, self.rhs + other.rhs,
                               self.count + other.count, self.target_sq + other.target_sq,
                               self.kernel_size, self.stride, self.activation, self.with_bias,
                               np.result_type(self.dtype, other.dtype).name)

    def __radd__(self, other):          # sum(parts) starts from 0
        return self if isinstance(other, numbers.Integral) and other == 0 else NotImplemented

    def __eq__(self, other):
        if not isinstance(other, NormalEquations):
            return NotImplemented
        return all(np.array_equal(getattr(self, name), getattr(other, name))
                   for name in self.__dataclass_fields__)

    def __repr__(self):
        return (f"NormalEquations({len(self.count)} channels, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, activation={self.activation!r}, "
                f"with_bias={self.with_bias}, count={self.count.tolist()})")

    def condition(self):
        """The Gram matrix's condition number per channel (``inf`` when singular)."""
        return np.array([np.linalg.cond(gram) for gram in self.gram])

    def _fit(self, stacklevel, caller="NormalEquations.solve()"):
        """The kernel ``(C, kh, kw)`` and bias ``(C,)`` in :attr:`dtype`."""
        (kh, kw), n_channels, m = self.kernel_size, len(self.count), self.rhs.shape[1]
        solution = np.zeros((n_channels, m))
        for c in range(n_channels):
            if not (np.isfinite(self.gram[c]).all() and np.isfinite(self.rhs[c]).all()):
                solution[c] = np.nan         # non-finite pixels: reported as diverged
                continue
            solution[c], _, rank, _ = np.linalg.lstsq(self.gram[c], self.rhs[c], rcond=None)
            if rank < m:
                warnings.warn(f"{caller}: channel {c} is under-determined "
                              f"({int(self.count[c])} usable blocks, rank {rank} < {m}); "
                              f"returning the minimum-norm solution", RuntimeWarning,
                              stacklevel=stacklevel)
        kernel = np.ascontiguousarray(solution[:, :kh * kw].reshape(n_channels, kh, kw),
                                      dtype=self.dtype)
        offsets = (solution[:, kh * kw] if self.with_bias else np.zeros(n_channels))
        return kernel, offsets.astype(self.dtype)

    def solve(self):
        """The filter, as :func:`learn_filter` with ``method="lstsq"`` finds it.

        The kernel and bias are those :func:`learn_filter` returns from these sums.
        The loss differs: with the images gone, it is the mean of the linear
        model's squared error over the blocks the sums hold (those in the
        activation's linear range), ``(t't - 2 w'A't + w'A'Aw) / count`` in
        float64, where :func:`learn_filter` takes the model through the
        activation over every block. The formula cancels: it is exact only to
        about ``1e-16 * t't / count`` (a perfect fit reads ~1e-17, never below 0).

        Returns
        -------
        FilterResult
        """
        kernel, offsets = self._fit(stacklevel=3)
        weights = np.concatenate([kernel.reshape(len(kernel), -1).astype(np.float64),
                                  offsets.astype(np.float64)[:, None]], axis=1)
        weights = weights[:, :self.rhs.shape[1]]
        with np.errstate(invalid="ignore", over="ignore"):
            squared = (self.target_sq - 2 * np.einsum("cm,cm->c", weights, self.rhs)
                       + np.einsum("cm,cmn,cn->c", weights, self.gram, weights))
            loss = np.array([np.maximum(squared, 0).sum() / max(int(self.count.sum()), 1)])
        diverged = not (np.isfinite(kernel).all() and np.isfinite(offsets).all()
                        and np.isfinite(loss).all())
        if diverged:
            warnings.warn("NormalEquations.solve: the filter is not finite (non-finite "
                          "pixels in the sums)", RuntimeWarning, stacklevel=2)
        return FilterResult(kernel, offsets, loss, diverged, "lstsq", self.stride,
                            self.activation)


# Their public home: pickles and help() name revdeconv.learning.
FilterResult.__module__ = NormalEquations.__module__ = "revdeconv.learning"
