"""Where images lie: output geometry of a strided valid convolution, and zero-copy
views of images that lie back to back in one buffer (the images of a stack).

Nothing here checks user input (``_validation`` does); these helpers are shared
by the façades and the backends.
"""

import numpy as np

__all__ = ["output_size", "covered_shape", "stacked_view", "back_to_back"]


def output_size(size, k, s):
    """Output length of a valid convolution: ``(size - k) // s + 1``."""
    return (size - k) // s + 1


def covered_shape(out_shape, kernel_shape, stride):
    """Rows and columns that ``out_shape`` blocks of a kernel at a stride cover:
    ``((Ho - 1) * sh + kh, (Wo - 1) * sw + kw)``, the reverse solve's default output."""
    return tuple((out - 1) * s + k for out, k, s in zip(out_shape[:2], kernel_shape, stride))


def _address(array):
    return array.__array_interface__["data"][0]


def _root(array):
    """The array that owns the memory ``array`` views."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def stacked_view(arrays):
    """An ``(N, *shape)`` view of C-contiguous ``arrays`` of one shape and dtype that
    lie one after the other in one array's memory (the images of a contiguous
    stack), or None. Writable when that memory is."""
    first = arrays[0]
    root, address = _root(first), _address(first)
    for array in arrays:
        if (array.shape != first.shape or array.dtype != first.dtype
                or not array.flags.c_contiguous or _root(array) is not root
                or _address(array) != address):
            return None
        address += array.nbytes
    if not root.flags.c_contiguous:
        return None
    view = np.ndarray((len(arrays),) + first.shape, dtype=first.dtype, buffer=root,
                      offset=_address(first) - _address(root))
    view.flags.writeable = root.flags.writeable
    return view


def back_to_back(arrays):
    """A flat view of C-contiguous ``arrays`` that lie one after the other in memory
    (one image, or the images of a contiguous stack), or None."""
    if len(arrays) == 1:
        return arrays[0].reshape(-1) if arrays[0].flags.c_contiguous else None
    view = stacked_view(arrays)
    return None if view is None else view.reshape(-1)
