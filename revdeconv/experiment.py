"""The paper's experiment (Tables 1 and 2), on any images, filters and learning rates.

The protocol, as the author's public code runs it. For each filter ``U``
(the paper's are 3x3, used at stride 3 with the ``clip`` activation, no
bias): every image is filtered and stored as 8 bits (``round(v*255)/255``,
half up, as a file stores it); then, for each learning rate, the kernel
starts at zero and is learned by one SGD pass over image 1, continuing over
image 2, ... (the kernel carries over); every image is deconvolved with that
final kernel; and MAE (deconvolved vs original), MAE0 (the filtered image
zoomed back by nearest neighbour vs original) and the loss ratio
``|MAE - MAE0| / MAE0`` are averaged over the images (see
:mod:`revdeconv.metrics`). Both errors are taken on the region the
deconvolved image covers (180x249 for 180x250 images at stride 3).
``method="lstsq"`` has no learning rate: each filter is fitted once, in
closed form, and has one row.

``restore=True`` adds, beside the paper's reverse solve, the gain of
:func:`revdeconv.restore` (defaults) with each row's learned filter and that of
blind bicubic upsampling (OpenCV, else Pillow), and a leave-one-out protocol:
for each image, the filter learned by ``lstsq`` on the others, that image
restored with it. :func:`run_stride1_study` compares ``restore`` with the
paper's reverse solve and scikit-image's Wiener and Richardson-Lucy at stride 1.

``author_quirks=True`` reproduces, on request only, the two quirks of the
author's code: its learning loop skips the last row and the last column of
blocks, and its zoom baseline resizes the filtered image back to the full
original size by nearest-neighbour replication (``floor(c * Wo / W)``, which
is misaligned when ``W`` is not ``Wo * 3``), errors then being taken on the
full image.

Examples
--------
>>> import numpy as np
>>> from revdeconv.experiment import run_experiment
>>> rng = np.random.default_rng(0)
>>> images = [rng.random((30, 45, 3)) for _ in range(2)]
>>> result = run_experiment(images, rates=[0.5, 0.1])
>>> len(result.rows), sorted(result.filters)
(6, ['blur', 'edge-detection', 'sharpening'])
>>> row = result.row(0.1, "blur")
>>> bool(row.loss_ratio >= 0), row.kernel.shape
(True, (3, 3, 3))
"""

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from . import _backend, metrics
from . import filters as _filters
from ._images import as_images
from ._layout import covered_shape
from ._threads import effective_n_threads
from ._validation import as_float, check_choice
from .convolution import convolve
from ._restoration_cases import bicubic_backend, quantize, stride1_study, upsample
from .learning import METHODS, learn_filter
from .restoration import restore as _restore
from .reverse import deconvolve, zoom

__all__ = ["PAPER_RATES", "TABLE1_RATES", "PAPER_FILTERS", "Table1Row", "Row",
           "ExperimentResult",
           "run_experiment", "run_stride1_study", "quantize"]

#: The paper's 19 learning rates: 1.0, 0.9, ..., 0.1, 0.09, ..., 0.01.
PAPER_RATES = tuple([round(0.1 * k, 2) for k in range(10, 0, -1)]
                    + [round(0.01 * k, 2) for k in range(9, 0, -1)])
#: The rates of the paper's Table 1, which its Table 2 averages over.
TABLE1_RATES = PAPER_RATES[:10]
#: The paper's filters, under the names of the author's results file.
PAPER_FILTERS = {"blur": _filters.BLUR, "sharpening": _filters.SHARPEN,
                 "edge-detection": _filters.EDGE}


@dataclass(frozen=True)
class Table1Row:
    """One (learning rate, filter) of Table 1, averaged over the images
    (``rate`` is None for ``method="lstsq"``, which has no learning rate)."""

    rate: float
    filter: str
    mae: float
    mae0: float
    loss_ratio: float
    gain: float
    psnr: float
    filter_error: float
    kernel: np.ndarray = field(repr=False)   # (C, kh, kw), the final learned kernel
    diverged: bool
    #: With ``restore=True``: MAE0 / MAE of ``restore`` with this row's filter, its
    #: PSNR, and MAE0 / MAE of blind bicubic upsampling (None otherwise).
    restore_gain: float = None
    restore_psnr: float = None
    bicubic_gain: float = None


#: The name :class:`Table1Row` had before (kept: it is public).
Row = Table1Row


@dataclass
class ExperimentResult:
    """Table 1 (``rows``), Table 2 (:meth:`table2`) and one worked example per filter.

    ``rates`` are the learning rates run (none for ``method="lstsq"``: one
    row per filter); ``image_names``, ``bundled`` (the bundled samples were
    used), ``backend`` and ``n_threads`` say what the numbers were computed
    on and with.
    """

    rows: list
    filters: dict
    rates: tuple
    method: str
    author_quirks: bool
    n_images: int
    #: filter -> (original, zoomed filtered, deconvolved) of the first image at the best rate
    examples: dict = field(repr=False, default_factory=dict)
    image_names: tuple = ()
    bundled: bool = False
    backend: str = None
    n_threads: int = None
    #: With ``restore=True``: filter -> the leave-one-out means (``gain``, ``PSNR``
    #: of restore; ``reverse_gain``, ``bicubic_gain``, ``images``), and the bicubic's maker.
    leave_one_out: dict = field(default_factory=dict)
    bicubic: str = None

    def row(self, rate, filter_name):
        """The row of one (learning rate, filter). A least-squares run has one row
        per filter and no learning rate: ``rate`` is not used (None will do)."""
        for row in self.rows:
            if row.filter == filter_name and (
                    row.rate is None or rate is not None and math.isclose(row.rate, rate)):
                return row
        raise KeyError(f"no row for rate {rate} and filter {filter_name!r}")

    def best(self, filter_name):
        """The row of ``filter_name`` with the smallest loss ratio (the paper's "best")."""
        rows = [row for row in self.rows if row.filter == filter_name and not row.diverged]
        if not rows:
            raise KeyError(f"no converged row for filter {filter_name!r}")
        return min(rows, key=lambda row: row.loss_ratio)

    def table2(self, rates=None):
        """Averages per filter over ``rates`` (default: the paper's Table 1 rates
        1.0 ... 0.1 where they were run, else every rate run), as the paper's
        Table 2: mean MAE, mean MAE0 and the mean of the rows' loss ratios.
        A diverged row (NaN) makes its filter's averages NaN.

        A least-squares run (no learning rate) gives each filter's one row,
        with ``rates`` 0: nothing is averaged.

        Returns
        -------
        list of dict
            ``filter``, ``rates`` (how many), ``MAE``, ``MAE0``, ``loss_ratio``,
            ``gain``, ``PSNR``, ``restore_gain`` and ``bicubic_gain`` (None
            without ``restore=True``).
        """
        if self.method == "lstsq":
            rates = [None]
        elif rates is None:
            paper = [r for r in self.rates if any(math.isclose(r, t) for t in TABLE1_RATES)]
            rates = paper or self.rates
        table = []
        for name in self.filters:
            rows = [self.row(rate, name) for rate in rates]
            table.append({
                "filter": name, "rates": 0 if self.method == "lstsq" else len(rows),
                "MAE": float(np.mean([r.mae for r in rows])),
                "MAE0": float(np.mean([r.mae0 for r in rows])),
                "loss_ratio": float(np.mean([r.loss_ratio for r in rows])),
                "gain": float(np.mean([r.gain for r in rows])),
                "PSNR": float(np.mean([r.psnr for r in rows])),
                **{key: None if any(getattr(r, key) is None for r in rows) else
                   float(np.mean([getattr(r, key) for r in rows]))
                   for key in ("restore_gain", "bicubic_gain")},
            })
        return table


def _quirk_zoom(filtered, shape):
    """The author's baseline: nearest-neighbour resize to the full original size."""
    out_h, out_w = filtered.shape[:2]
    rows = np.arange(shape[0]) * out_h // shape[0]
    cols = np.arange(shape[1]) * out_w // shape[1]
    return filtered[rows[:, None], cols[None, :]]


def _drop_last_blocks(image, filtered, kernel_shape, stride):
    """The author's learning loop: without the last row and column of blocks."""
    out_h, out_w = filtered.shape[0] - 1, filtered.shape[1] - 1
    if out_h < 1 or out_w < 1:
        raise ValueError("author_quirks needs images of at least two blocks a side")
    height, width = covered_shape((out_h, out_w), kernel_shape, stride)
    return image[:height, :width], filtered[:out_h, :out_w]


def _check_filters(filters):
    if filters is None:
        return dict(PAPER_FILTERS)
    if not isinstance(filters, dict) or not filters:
        raise TypeError("filters must be a non-empty dict of name -> (kh, kw) kernel")
    checked = {}
    for name, kernel in filters.items():
        kernel = np.asarray(kernel, dtype=np.float64)
        if kernel.ndim != 2 or 0 in kernel.shape or not np.isfinite(kernel).all():
            raise ValueError(f"filters[{name!r}] must be a finite (kh, kw) kernel")
        checked[str(name)] = kernel
    return checked


def run_experiment(images=None, *, filters=None, rates=PAPER_RATES, method="sgd",
                   author_quirks=False, n_threads=None, backend=None, progress=None,
                   names=None, restore=False):
    """Run the paper's experiment (see the module doc for the protocol).

    Parameters
    ----------
    images : list of array_like, optional
        The images, ``(H, W)`` or ``(H, W, C)`` in ``[0, 1]``, all with one
        channel count; sizes may differ. Default: the ten bundled samples
        (:func:`revdeconv.data.samples`).
    filters : dict of str to array_like, optional
        Name -> ``(kh, kw)`` filter; the stride is the filter size. Default:
        the paper's blur, sharpening and edge-detection filters.
    rates : sequence of float, optional
        Learning rates; default the paper's 19 (:data:`PAPER_RATES`).
    method : {"sgd", "lstsq"}, optional
        ``"lstsq"`` has no learning rate: each filter is fitted once, in
        closed form, and has one row (with ``rate`` None); ``rates`` is then
        not used.
    author_quirks : bool, optional
        Reproduce the two quirks of the author's code (see the module doc).
    n_threads, backend
        As in :func:`revdeconv.convolve`. All images of one (rate, filter)
        go through one compiled call.
    progress : callable, optional
        Called as ``progress(done, total, label)`` after each (rate, filter).
    names : sequence of str, optional
        A name per image, for the report (default: the samples' names, or
        ``"image 1"``, ``"image 2"``, ...).
    restore : bool, optional
        Also restore each row's images with :func:`revdeconv.restore` (its
        defaults: Tikhonov, second order, at stride 3) and run the leave-one-out
        protocol (see the module doc); about a second per row on ten samples.

    Returns
    -------
    ExperimentResult
    """
    bundled = images is None
    if bundled:
        from .data import sample_names, samples
        images, names = samples(), sample_names() if names is None else names
    if not isinstance(images, (list, tuple)):
        raise TypeError("images must be a list of images")
    originals = as_images(list(images), "images", dtype=np.float64).arrays
    if names is None:
        names = [f"image {n + 1}" for n in range(len(originals))]
    names = tuple(str(name) for name in names)
    if len(names) != len(originals):
        raise ValueError(f"names must name each of the {len(originals)} images, "
                         f"got {len(names)} names")
    filters = _check_filters(filters)
    rates = tuple(as_float(rate, "rates", minimum=0, strict=True) for rate in rates)
    if not rates:
        raise ValueError("rates must not be empty")
    check_choice(method, "method", METHODS)
    for flag, value in (("author_quirks", author_quirks), ("restore", restore)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    options = dict(n_threads=n_threads, backend=backend)
    _backend.get_backend(backend)             # an unknown or missing backend: an error now
    backend_name = backend or _backend.DEFAULT_BACKEND
    threads = 1 if backend_name == "numpy" else effective_n_threads(n_threads)
    if method == "lstsq":       # no learning rate: one fit per filter
        rates = ()

    rows, examples = [], {}      # filled in below, filter by filter
    result = ExperimentResult(rows, filters, rates, method, bool(author_quirks),
                              len(originals), examples, names, bundled, backend_name, threads,
                              bicubic=bicubic_backend() if restore else None)
    total, done = len(filters) * max(len(rates), 1), 0
    for name, truth in filters.items():
        stride = truth.shape
        filtered = [quantize(f) for f in convolve(originals, truth, activation="clip",
                                                   **options)]
        if author_quirks:
            regions = [image.shape[:2] for image in originals]
            zoomed = [_quirk_zoom(f, shape) for f, shape in zip(filtered, regions)]
            pairs = [_drop_last_blocks(image, f, truth.shape, stride)
                     for image, f in zip(originals, filtered)]
            learn_from, learn_to = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            regions = [covered_shape(f.shape, truth.shape, stride) for f in filtered]
            zoomed = [zoom(f, stride, shape) for f, shape in zip(filtered, regions)]
            learn_from, learn_to = originals, filtered
        targets = [image[:h, :w] for image, (h, w) in zip(originals, regions)]
        mae0 = float(np.mean([metrics.mae(z, t) for z, t in zip(zoomed, targets)]))
        bicubic = None if not restore else mae0 / np.mean(
            [metrics.mae(upsample(f, t.shape[:2]), t) for f, t in zip(filtered, targets)])

        for rate in rates or (None,):
            learning_rate = {} if rate is None else {"lr": rate}
            with warnings.catch_warnings():     # a diverged rate is a row, not a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                fitted = learn_filter(learn_from, learn_to, kernel_size=truth.shape,
                                      stride=stride, activation="clip", method=method,
                                      **learning_rate, **options)
            restored = None if fitted.diverged else deconvolve(
                filtered, fitted.kernel, stride=stride, activation="clip",
                output_shape=regions, **options)
            row = _row(rate, name, truth, fitted, restored, targets, mae0)
            if restore and not fitted.diverged:
                ours = _restore(filtered, fitted, output_shape=regions, **options)
                row = replace(row, bicubic_gain=bicubic, restore_psnr=float(np.mean(
                    [metrics.psnr(t, r) for r, t in zip(ours, targets)])), restore_gain=(
                    mae0 / np.mean([metrics.mae(r, t) for r, t in zip(ours, targets)])))
            rows.append(row)
            done += 1
            if progress is not None:
                progress(done, total, f"{name} " + ("lstsq" if rate is None else f"lr={rate:g}"))
        try:
            best = result.best(name)
        except KeyError:            # every rate diverged: no example to show
            continue
        example = deconvolve(filtered[0], best.kernel, stride=stride, activation="clip",
                             output_shape=regions[0], **options)
        examples[name] = (targets[0], zoomed[0], example)
        if restore and len(originals) > 1:
            result.leave_one_out[name] = _leave_one_out(
                learn_from, learn_to, filtered, targets, zoomed, truth.shape, options)
    return result


def _leave_one_out(learn_from, learn_to, filtered, targets, zoomed, size, options):
    """For each image, the filter fitted by ``lstsq`` on the others, that image restored
    (and reverse-solved, and upsampled) with it; means over the held-out images."""
    errors = {"restore": [], "reverse": [], "bicubic": [], "zoom": [], "psnr": []}
    for n, target in enumerate(targets):
        rest = [k for k in range(len(targets)) if k != n]
        fit = learn_filter([learn_from[k] for k in rest], [learn_to[k] for k in rest],
                           kernel_size=size, stride=size, activation="clip",
                           method="lstsq", **options)
        ours = _restore(filtered[n], fit, output_shape=target.shape[:2], **options)
        theirs = deconvolve(filtered[n], fit.kernel, stride=size, activation="clip",
                            output_shape=target.shape[:2], **options)
        errors["restore"].append(metrics.mae(ours, target))
        errors["reverse"].append(metrics.mae(theirs, target))
        errors["bicubic"].append(metrics.mae(upsample(filtered[n], target.shape[:2]), target))
        errors["zoom"].append(metrics.mae(zoomed[n], target))
        errors["psnr"].append(metrics.psnr(target, ours))
    mae0 = float(np.mean(errors["zoom"]))
    return {"images": len(targets), "gain": mae0 / np.mean(errors["restore"]),
            "PSNR": float(np.mean(errors["psnr"])),
            "reverse_gain": mae0 / np.mean(errors["reverse"]),
            "bicubic_gain": mae0 / np.mean(errors["bicubic"])}


def run_stride1_study(images=None, *, quick=False, n_threads=None):
    """``restore`` at stride 1 (deblurring) beside the paper's reverse solve and
    scikit-image's Wiener and Richardson-Lucy (where installed, tuned on the same
    images): box 3x3, Gaussian 5x5 and 9-pixel motion blurs, noise 0.01 and 0,
    then 8 bits; PSNR and SSIM. ``quick`` tries a third of the tuning grids.

    Returns
    -------
    rows : list of dict
        ``blur``, ``noise``, ``method``, ``psnr``, ``ssim`` (None without
        scikit-image), ``setting``.
    examples : dict
        blur -> (original, blurred, Wiener or None, restored) of the first image
        at noise 0.01.
    """
    if images is None:
        from .data import samples
        images = samples()
    originals = as_images(list(images), "images", dtype=np.float64).arrays
    return stride1_study(originals, quick=quick, n_threads=n_threads)


def _row(rate, name, truth, fitted, restored, targets, mae0):
    """Average one (rate, filter) over the images."""
    if fitted.diverged:
        nan = float("nan")
        return Table1Row(rate, name, nan, mae0, nan, nan, nan, nan, fitted.kernel, True)
    mae = float(np.mean([metrics.mae(r, t) for r, t in zip(restored, targets)]))
    psnr = float(np.mean([metrics.psnr(t, r) for r, t in zip(restored, targets)]))
    return Table1Row(rate, name, mae, mae0, metrics.loss_ratio(mae, mae0),
               metrics.gain(mae, mae0) if mae > 0 else float("inf"), psnr,
               metrics.filter_error(fitted.kernel, truth), fitted.kernel, False)
