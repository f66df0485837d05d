"""The paper's three 3x3 filters (its section 3), as its experiment uses them.

The arrays are read-only float64; copy one to modify it.

Examples
--------
>>> import revdeconv
>>> revdeconv.filters.get("edge")
array([[-1., -1., -1.],
       [-1.,  8., -1.],
       [-1., -1., -1.]])
"""

import numpy as np

__all__ = ["BLUR", "SHARPEN", "EDGE", "NAMES", "get"]


def _frozen(values):
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


#: Box blur, ``ones((3, 3)) / 9``.
BLUR = _frozen(np.ones((3, 3)) / 9)
#: Sharpening, ``[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]``.
SHARPEN = _frozen([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
#: Edge detection, ``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]``.
EDGE = _frozen([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])

#: The filters by name, in the paper's order.
NAMES = {"blur": BLUR, "sharpen": SHARPEN, "edge": EDGE}
_ALIASES = {"sharpening": "sharpen", "edge detection": "edge", "edge-detection": "edge"}


def get(name):
    """Return one of the paper's filters by name.

    Parameters
    ----------
    name : str
        ``"blur"``, ``"sharpen"`` (or ``"sharpening"``) or ``"edge"`` (or
        ``"edge detection"``); case-insensitive.

    Returns
    -------
    ndarray, shape (3, 3)
        A read-only float64 array.

    Examples
    --------
    >>> import revdeconv
    >>> float(revdeconv.filters.get("Blur").sum())
    1.0
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in NAMES:
        raise ValueError(f"unknown filter {name!r}; expected one of {', '.join(NAMES)}")
    return NAMES[key]
