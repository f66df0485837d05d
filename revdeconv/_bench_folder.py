"""The folder cases of ``revdeconv bench``: ``revdeconv filter`` and ``revdeconv
deconvolve`` over a folder of PNG files, against a ten-line OpenCV loop over the
same files, its outputs checked equal to the command's.

The folder holds ``images`` 8-bit RGB PNG files of 180x250: the bundled samples,
flipped and shifted so that no two are alike. ``filter`` applies the sharpening
filter at stride 3; its loop is ``cv2.imread``, ``cv2.filter2D`` (the stride-1
correlation, cropped to the valid region and subsampled), the clip and the 8-bit
rounding, ``cv2.imwrite``. ``deconvolve`` undoes it on ``filter``'s outputs; OpenCV
has no reverse solve, so its loop calls :func:`revdeconv.deconvolve` between
``cv2.imread`` and ``cv2.imwrite``: what the command adds around the same
computation. Every run writes into a new, empty folder (made outside the timing,
once the disk has flushed the runs before; removed when the benchmark ends), and
each loop runs on one thread (``cv2.setNumThreads(1)``,
``n_threads=1``), one file after another.
"""

import contextlib
import itertools
import os
import shutil
from functools import partial

import numpy as np
from PIL import Image

from . import filters
from ._bench_cases import (FOLDER_DECONVOLVE, FOLDER_FILTER, OPENCV_LOOP, _Job,
                           _compiled_missing, _cv2_threads, _optional, pipeline_images)
from .reverse import deconvolve

__all__ = ["folder_jobs", "make_folder", "compare_folders"]

_STRIDE = 3


def make_folder(folder, n):
    """Write ``n`` PNG files ``img0000.png`` ... (8-bit RGB, 180x250) into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    stack = pipeline_images(n, np.random.default_rng(0))
    for k, image in enumerate(stack):
        Image.fromarray(np.floor(image * 255 + 0.5).astype(np.uint8)).save(
            os.path.join(folder, f"img{k:04d}.png"))


def _filter_loop(cv2, files, out):
    kernel = filters.SHARPEN
    for path in files:
        image = cv2.imread(path).astype(np.float64) / 255
        full = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        valid = full[1:-1:_STRIDE, 1:-1:_STRIDE]        # the blocks' centres, stride 3
        cv2.imwrite(os.path.join(out, os.path.basename(path)),
                    np.floor(np.clip(valid, 0, 1) * 255 + 0.5).astype(np.uint8))


def _deconvolve_loop(cv2, files, out):
    for path in files:
        image = cv2.imread(path).astype(np.float64) / 255
        restored = deconvolve(image, filters.SHARPEN, n_threads=1)
        cv2.imwrite(os.path.join(out, os.path.basename(path)),
                    np.floor(np.clip(restored, 0, 1) * 255 + 0.5).astype(np.uint8))


def compare_folders(ours, theirs):
    """``(identical, total, largest)``: how many files of ``theirs`` have the same pixels
    in ``ours``, of how many, and the largest difference in levels (-1: a file missing
    or of another shape)."""
    identical, largest, names = 0, 0, sorted(os.listdir(theirs))
    for name in names:
        try:
            a = _levels(os.path.join(ours, name))
        except OSError:
            largest = -1
            continue
        b = _levels(os.path.join(theirs, name))
        if a.shape != b.shape:
            largest = -1
            continue
        difference = int(np.abs(a - b).max())
        identical += difference == 0
        largest = max(largest, difference) if largest >= 0 else largest
    return identical, len(names), largest


def _levels(path):
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.int16)


class _Outputs:
    """A new, empty output folder for each run, and the disk settled before it: the
    writes of the runs before are flushed (``os.sync``), and no folder is removed
    until the benchmark ends (the base is its caller's to remove). Removing a
    thousand files just before a run made the next run's file creations wait on
    the disk's work for it, for every implementation alike: on this project's
    machine some runs took twice their time."""

    def __init__(self, base):
        self.base, self.current, self._count = base, None, itertools.count()

    @contextlib.contextmanager
    def fresh(self):
        self.current = os.path.join(self.base, f"run{next(self._count)}")
        os.makedirs(self.current)
        getattr(os, "sync", lambda: None)()           # (Unix only)
        yield


def _command(main, name, source, out, n_threads):
    status = main([name, source, "--kernel", "sharpen", "--out", out,
                       "--threads", str(n_threads), "--quiet"])
    if status != 0:
        raise RuntimeError(f"revdeconv {name} on the benchmark folder exited {status}")


def _emptied(folder):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def _files(folder):
    return sorted(os.path.join(folder, name) for name in os.listdir(folder))


def _checked(main, name, source, base, loop):
    """Both ways once more (the command on one thread) into kept folders: whether
    the outputs are equal, as a note."""
    ours, theirs = _emptied(os.path.join(base, "check")), _emptied(os.path.join(base, "cv2"))
    _command(main, name, source, ours, 1)
    loop(_files(source), theirs)
    identical, total, largest = compare_folders(ours, theirs)
    return (f"outputs: {identical} of {total} files identical to the command's"
            + ("" if identical == total else f" (largest difference: {largest} levels)"))


def folder_jobs(main, images, threads, repeat, base):
    """The folder cases' timings (``_Job`` s of :mod:`revdeconv._bench_cases`), on a
    folder of ``images`` files made in the folder ``base`` (the caller's to remove);
    ``main(argv)`` runs a command line (``revdeconv.cli.main``)."""
    photos, filtered = os.path.join(base, "photos"), os.path.join(base, "filtered")
    make_folder(photos, images)
    _command(main, "filter", photos, _emptied(filtered), 1)      # what deconvolve undoes
    cv2 = _optional("cv2")
    for case, name, source, loop in ((FOLDER_FILTER, "filter", photos, _filter_loop),
                                     (FOLDER_DECONVOLVE, "deconvolve", filtered,
                                      _deconvolve_loop)):
        outputs = _Outputs(_emptied(os.path.join(base, name)))
        for t in threads:
            yield _Job(case, f"compiled {t}T",
                       lambda name=name, source=source, o=outputs, t=t: _command(
                           main, name, source, o.current, t),
                       repeat, images=images, context=outputs.fresh,
                       note=_compiled_missing(t))
        if cv2 is None:
            yield _Job(case, OPENCV_LOOP, note="cv2 not installed")
            continue
        files, looped = _files(source), partial(loop, cv2)

        @contextlib.contextmanager
        def one_thread(fresh=outputs.fresh):
            with _cv2_threads(cv2, 1), fresh():
                yield
        yield _Job(case, OPENCV_LOOP, lambda looped=looped, files=files, o=outputs: looped(
            files, o.current), repeat, images=images, context=one_thread,
            check=partial(_checked, main, name, source, base, looped))
