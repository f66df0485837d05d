"""What the command line does with alpha, bit depth, pages and channel counts.

:mod:`revdeconv.io` reads and writes the files; this module is the policy of
``filter``, ``deconvolve`` and ``learn`` (``_runner.Run`` applies it):

- **Alpha** (``--alpha``): ``keep`` (default) filters the colour channels and
  carries the alpha channel to the output's geometry (:func:`block_mean` for
  a convolution, :func:`zoom_alpha` for a deconvolution), so an opaque image
  stays opaque; ``drop`` writes the colour channels only; ``filter`` treats
  alpha as one more channel. ``learn`` learns the colour channels (``keep``
  and ``drop``) or every channel (``filter``).
- **Bit depth** (``--bits``): an output has its input's depth by default
  (:func:`output_bits`): 8 bits for 8, 16 for 16, and for a floating-point
  input float32 in a TIFF (16 bits in a PNG, its closest). A ``.npy`` input
  is data, not a picture: its PNG or TIFF output is 8-bit unless ``--bits``.
- **Pages**: a multi-page TIFF is one input per page (:class:`Page`), whose
  output is ``<stem>_p<N>`` (N from 1).
- **Channels in learn** (:func:`learning_channels`): as ``experiment
  --images`` does, grey meets colour as three equal channels (alpha is not
  learned): within a pair, and with ``--shared`` across all pairs, so that
  one filter is learned over grey, RGB and RGBA files.
"""

import os

import numpy as np

from .io import ImageReadError, Picture, load_array, load_image, page_count, read_image

__all__ = ["ALPHA", "DEFAULT_ALPHA", "BITS", "Page", "pages", "read", "key", "block_mean",
           "zoom_alpha", "with_alpha", "output_bits", "check_bits", "learning_channels",
           "load_rgb", "by_channels", "columns"]

ALPHA = ("keep", "drop", "filter")
DEFAULT_ALPHA = "keep"
#: ``--bits``: 8, 16, or 32 for float32 (TIFF only).
BITS = (8, 16, 32)

_READ_ALPHA = {"keep": "split", "drop": "drop", "filter": "last"}


class Page(str):
    """One page of a multi-page file, as an input of a run.

    As a string it is the file's path (what ``os`` functions and ``open``
    see); printed, it says which page (``scan.tif (page 2 of 3)``); its
    :attr:`stem` names its output (``scan_p2``). Two pages of one file are
    equal as strings: key dictionaries by :func:`key`.

    Examples
    --------
    >>> from revdeconv._pixels import Page
    >>> page = Page("in/scan.tif", 1, 3)
    >>> f"{page}", page.stem, page.page, page.endswith(".tif")
    ('in/scan.tif (page 2 of 3)', 'scan_p2', 1, True)
    """

    def __new__(cls, path, page, pages):
        new = super().__new__(cls, path)
        new.page, new.pages = page, pages        # (not index, count: str methods)
        return new

    def __getnewargs__(self):           # pickles (to a worker process) with its page
        return self.file, self.page, self.pages

    @property
    def file(self):
        return str.__str__(self)

    @property
    def stem(self):
        return f"{os.path.splitext(os.path.basename(self.file))[0]}_p{self.page + 1}"

    def __str__(self):
        return f"{self.file} (page {self.page + 1} of {self.pages})"

    def __format__(self, spec):
        return format(str(self), spec)

    def __repr__(self):
        return f"Page({self.file!r}, {self.page}, {self.pages})"


def absolute(path):
    """``path`` made absolute, a :class:`Page` still a page: the file as a process in
    another working folder (a cluster's worker) names it."""
    if isinstance(path, Page):
        return Page(os.path.abspath(path.file), path.page, path.pages)
    return os.path.abspath(path)


def key(path):
    """A dictionary key for an input: its path, and its page for a :class:`Page`."""
    return (str.__str__(path), getattr(path, "page", None))


def pages(paths):
    """``paths`` with each multi-page TIFF replaced by its pages (a file whose pages
    cannot be counted stays as it is, for reading to report)."""
    found = []
    for path in paths:
        try:
            count = 1 if path.lower().endswith(".npy") else page_count(path)
        except (OSError, ValueError):
            count = 1
        found += [Page(path, n, count) for n in range(count)] if count > 1 else [path]
    return found


def stem(path):
    """A file's name without its folder and extension; a page's: ``scan_p2``."""
    if isinstance(path, Page):
        return path.stem
    return os.path.splitext(os.path.basename(path))[0]


def read(path, alpha=DEFAULT_ALPHA):
    """An input as a :class:`revdeconv.io.Picture`: a ``.npy`` array as stored (float;
    no alpha, no bit depth), an image (or a :class:`Page`) in ``[0, 1]`` with its
    alpha apart (``keep``), dropped (``drop``) or last (``filter``)."""
    if path.lower().endswith(".npy"):
        array = load_array(path)
        return Picture(array if array.dtype.kind == "f" else array.astype(np.float64), None,
                       None)
    return read_image(path, alpha=_READ_ALPHA[alpha], page=getattr(path, "page", None))


def block_mean(alpha, kernel_shape, stride=None):
    """Alpha carried through a convolution: its mean over each block the kernel
    sees (a box kernel of the kernel's size at the stride, identity activation).
    The sum is divided afterwards, so an opaque block stays exactly 1.

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv._pixels import block_mean
    >>> block_mean(np.ones((6, 6)), (3, 3))
    array([[1., 1.],
           [1., 1.]])
    """
    from .convolution import convolve
    rows, cols = kernel_shape
    total = convolve(alpha, np.ones((rows, cols)), stride=stride, activation="identity")
    return total / (rows * cols)


def zoom_alpha(alpha, stride, shape):
    """Alpha carried through a deconvolution: zoomed to the output's ``shape``, as
    :func:`revdeconv.zoom` does."""
    from .reverse import zoom
    return zoom(alpha, stride, output_shape=shape)


def with_alpha(output, alpha):
    """The output with the carried alpha as its last channel."""
    colour = output if output.ndim == 3 else output[:, :, None]
    return np.concatenate([colour, alpha[:, :, None].astype(colour.dtype)], axis=2)


def output_bits(source, fmt, bits=None):
    """The depth an output is written at: ``bits`` when given, else as its input
    (``source``: 8, 16, 32 for floating point, None for a ``.npy`` input) allows
    in the format ``fmt`` (``png``, ``tiff``; None for ``npy``)."""
    if fmt == "npy":
        return None
    if bits is not None:
        return bits
    if source is None:
        return 8
    if source == 32:
        return 32 if fmt == "tiff" else 16
    return source


def check_bits(bits, fmt):
    """Raise ValueError when ``--bits`` cannot be written in ``--format``."""
    if bits is None:
        return
    if fmt == "npy":
        raise ValueError(f"--bits {bits} is for png and tiff outputs; npy keeps the "
                         f"computed float values")
    if bits == 32 and fmt != "tiff":
        raise ValueError(f"--bits 32 (float32) needs --format tiff; {fmt} holds 8 or 16 "
                         f"bits")


def _channels(array):
    return 1 if array.ndim == 2 else array.shape[2]


def _colour(array):
    """A grey image as three equal channels."""
    return np.repeat(array.reshape(array.shape[:2] + (1,)), 3, axis=2)


def learning_channels(shared):
    """``prepare`` for ``Run.map_pairs`` / ``Run.fold_pairs``: loaded (path, original,
    filtered) items with grey brought to three equal channels where it meets
    colour: within each pair, or with ``shared`` in any pair so far or in the
    chunk (a filter carried from grey pairs then applies to each colour channel,
    which is exactly what learning on three equal channels gives: channels are
    learned independently). With ``shared`` the chunk is also brought to one
    float dtype, so that its pairs are learned in name order in one call.
    """
    seen = {"colour": False}

    def prepare(items):
        if shared:
            arrays = [array for _, *pair in items for array in pair]
            seen["colour"] |= any(_channels(array) == 3 for array in arrays)
            dtype = np.result_type(*(array.dtype for array in arrays))

            def fit(array):
                array = array.astype(dtype, copy=False)
                return _colour(array) if seen["colour"] and _channels(array) == 1 else array

            return [(path, fit(original), fit(filtered)) for path, original, filtered in items]
        prepared = []
        for path, original, filtered in items:
            if {_channels(original), _channels(filtered)} == {1, 3}:
                original = _colour(original) if _channels(original) == 1 else original
                filtered = _colour(filtered) if _channels(filtered) == 1 else filtered
            prepared.append((path, original, filtered))
        return prepared

    return prepare


def _as_rgb(image):
    """Grey becomes three equal channels; alpha is dropped."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3]


def load_rgb(paths, fail=None):
    """The images at ``paths``, each with three channels (for ``experiment``).

    A file that cannot be read raises; with ``fail``, it is reported as
    ``fail(path, reason)`` instead and left out, and the others are read.
    """
    images = []
    for path in paths:
        try:
            image = load_image(path)
        except (ImageReadError, OSError, ValueError) as exc:
            if fail is None:
                raise
            fail(path, getattr(exc, "reason", str(exc)))
            continue
        images.append(_as_rgb(image))
    return images


def by_channels(items):
    """Group (path, array, ...) items by layout, channel count and dtype: one compiled
    call each, and every image computed in its own dtype whatever else the chunk holds."""
    groups = {}
    for item in items:
        array = item[1]
        groups.setdefault((array.shape[2:], array.dtype), []).append(item)
    return list(groups.values())


def columns(items):
    """(path, a, b, ...) items as the lists [a, ...], [b, ...]: what ``compute`` takes."""
    return [list(column) for column in zip(*items)][1:]
