"""The cases of ``revdeconv bench``, how each is timed and measured, and its targets.

The image sizes, the kernels and the batch pipeline, the calls that run them on
each implementation (compiled per thread count, the NumPy fallback, cv2 and
SciPy), the calls that write into an array allocated once (``out=``, against
cv2's ``dst`` and ``np.copyto``), the timing in rounds and the
:mod:`tracemalloc` pass; the speed and memory targets, and how a ratio is
written. :mod:`revdeconv.benchmark` runs the
cases and checks the targets, :mod:`revdeconv.bench_report` writes the results:
both import from here, nothing here imports them. :mod:`revdeconv.benchmark` is
where the public names here are documented and imported from.
"""

import contextlib
import importlib
import time
import tracemalloc
from dataclasses import dataclass
from functools import partial

import numpy as np

from . import _backend, _restoration_cases, _threads, batch, data, filters, metrics
from .convolution import convolve
from .learning import learn_filter
from .restoration import restore
from .reverse import deconvolve

CONVOLVE_S1 = "convolve 3x3 stride 1"
CONVOLVE_S3 = "convolve 3x3 stride 3"
LEARN_SGD = "learn_filter SGD"
LEARN_LSTSQ = "learn_filter lstsq"
DECONVOLVE = "deconvolve stride 3"
PIPELINE = "batch pipeline"
KERNELS = (CONVOLVE_S1, CONVOLVE_S3, LEARN_SGD, LEARN_LSTSQ, DECONVOLVE)
#: The same calls writing into an array allocated once (``out=``), against cv2 with
#: its ``dst`` given and against ``np.copyto`` of an output-sized array into one.
CONVOLVE_S1_OUT = "convolve 3x3 stride 1, out="
DECONVOLVE_OUT = "deconvolve stride 3, out="
OUT_CASES = (CONVOLVE_S1_OUT, DECONVOLVE_OUT)
#: ``revdeconv filter`` and ``deconvolve`` over a folder of PNG files, against a
#: ten-line OpenCV loop on one thread (``revdeconv._bench_folder``).
FOLDER_FILTER = "folder: filter"
FOLDER_DECONVOLVE = "folder: deconvolve"
FOLDER_CASES = (FOLDER_FILTER, FOLDER_DECONVOLVE)
OPENCV_LOOP = "OpenCV loop 1T"
#: ``restore`` at its defaults (TV) on a natural image blurred by a Gaussian 5x5,
#: noise 0.01, 8 bits, against scikit-image's Wiener and Richardson-Lucy; and one TV
#: iteration (``tol=0``, :data:`RESTORE_ITERATIONS` of them, one thread).
RESTORE = "restore TV stride 1"
RESTORE_ITERATION = "restore one TV iteration"
RESTORE_CASES = (RESTORE, RESTORE_ITERATION)
RESTORE_ITERATIONS = 50
#: The restore image: a crop of the bundled samples tiled (rows, columns).
RESTORE_SIZES = {"paper": (180, 250), "1080p": (512, 512), "4k": (512, 512)}
#: scikit-image's Wiener ``balance`` (the best on the samples at this noise,
#: bench/RESTORE.md) and Richardson-Lucy's iterations.
WIENER_BALANCE = 0.01
RL_ITERATIONS = 30
WIENER = "skimage wiener"
RICHARDSON_LUCY = f"skimage richardson_lucy {RL_ITERATIONS}"
#: (name, case, unit, limit, at_most) of the targets not a speed ratio; see
#: :func:`restore_measures`.
RESTORE_TARGETS = (
    ("restore: one TV iteration, 1 thread", RESTORE_ITERATION, "ms per million values",
     30, True),
    (f"restore: PSNR above {RICHARDSON_LUCY}", RESTORE, "dB", 0, False),
)

#: Image sizes (rows, columns) of the kernel benchmark; the images are RGB float32.
SIZES = {"paper": (180, 250), "1080p": (1080, 1920), "4k": (2160, 3840)}
#: The size the targets are set for.
DEFAULT_SIZE = "4k"
#: Images the NumPy fallback runs the batch pipeline on (its rate is per image).
NUMPY_IMAGES = 50

#: (case, candidate, reference, least speed-up): the candidate's time per image
#: must be at most the reference's over the speed-up. "compiled" is the
#: compiled backend on its fastest thread count.
SPEED_TARGETS = (
    (CONVOLVE_S1, "compiled 1T", "cv2 1T", 1 / 1.2),
    (CONVOLVE_S1, "compiled 1T", "scipy", 5),
    (CONVOLVE_S1_OUT, "compiled 1T", "cv2 1T", 1 / 1.2),
    (CONVOLVE_S1_OUT, "compiled 2T", "compiled 1T", 1.6),
    (DECONVOLVE_OUT, "compiled", "np.copyto", 1 / 2),
    (CONVOLVE_S3, "compiled", "numpy", 5),
    (LEARN_SGD, "compiled", "numpy", 100),
    (LEARN_LSTSQ, "compiled", "numpy", 5),
    (DECONVOLVE, "compiled", "numpy", 10),
    (PIPELINE, "compiled", "numpy", 100),
    (PIPELINE, "compiled 2T", "compiled 1T", 1.7),
    (FOLDER_FILTER, "compiled 1T", OPENCV_LOOP, 1),
    (FOLDER_FILTER, "compiled 2T", "compiled 1T", 1.7),
    (FOLDER_DECONVOLVE, "compiled 1T", OPENCV_LOOP, 1),
    (FOLDER_DECONVOLVE, "compiled 2T", "compiled 1T", 1.7),
    (RESTORE, "compiled", "numpy", 20),
    (RESTORE, "compiled", RICHARDSON_LUCY, 1),
)
#: A compiled kernel may hold at most this times (input + output) at its peak.
MEMORY_LIMIT = 1.10


def _speed(speedup):
    """``'8.62x'``: the slower of two times over the faster, given their ratio (two
    decimals below 10, so that a ratio just past a target never reads as on it)."""
    ratio = speedup if speedup >= 1 else 1 / speedup
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


def _faster(speedup):
    """``'8.6x faster'`` or ``'1.2x slower'``."""
    return f"{_speed(speedup)} {'faster' if speedup >= 1 else 'slower'}"


@dataclass(frozen=True)
class TimingRow:
    """One timing: ``case`` run by ``implementation`` (``"compiled 2T"``, ``"numpy"``,
    ``"cv2 1T"``, ``"scipy"``) on ``images`` images, best of ``runs``; ``seconds`` is
    None and ``note`` says why when it was not measured."""

    case: str
    implementation: str
    seconds: object = None        # float, or None: not measured
    images: int = 1
    runs: int = 0
    note: str = ""
    values: int = 0               # restore: values of the image (``images``: iterations)
    psnr: object = None           # restore: dB against the original

    @property
    def per_image(self):
        """Seconds per image (restore: per call, or per iteration), or None."""
        return None if self.seconds is None else self.seconds / self.images

    @property
    def ms_per_million(self):
        """Restore: milliseconds per million values of the image, or None."""
        if self.seconds is None or not self.values:
            return None
        return self.per_image / (self.values / 1e6) * 1e3


@dataclass(frozen=True)
class MemoryRow:
    """What one compiled kernel allocated (default thread count)."""

    case: str
    input_bytes: int
    output_bytes: int
    peak_extra_bytes: int         # the most the call held allocated at once

    @property
    def ratio(self):
        """``(input + peak extra) / (input + output)``: 1 when the call allocated
        nothing but its output."""
        return ((self.input_bytes + self.peak_extra_bytes)
                / (self.input_bytes + self.output_bytes))


def allocated_peak(call):
    """Run ``call()`` under :mod:`tracemalloc`: its result, and the most bytes it held
    allocated at once beyond what was allocated before it (NumPy reports its array
    memory to tracemalloc, and the compiled kernels write into NumPy arrays).

    Examples
    --------
    >>> import numpy as np
    >>> result, peak = allocated_peak(lambda: np.ones(10**6))
    >>> peak >= result.nbytes
    True
    """
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not tracing:
            tracemalloc.stop()
    return result, peak - before


def pipeline(stack, backend, n_threads):
    """The batch pipeline: filter (edge detection, 3x3, stride 3), learn one filter per
    image (SGD, one pass, ``lr=0.1``), deconvolve each image with its own filter, and
    the MAE of each against its original.

    Examples
    --------
    >>> import numpy as np
    >>> stack = pipeline_images(2, np.random.default_rng(0))
    >>> pipeline(stack, "numpy", None).shape
    (2,)
    """
    options = dict(backend=backend, n_threads=n_threads)
    filtered = batch.convolve(stack, filters.EDGE, **options)
    learned = batch.learn(stack, filtered, lr=0.1, **options)
    restored = batch.deconvolve(filtered, learned, output_shape=stack.shape[1:3], **options)
    return batch.mae(restored, stack, **options)


def pipeline_images(n, rng):
    """``n`` RGB 180x250 float32 images: the bundled samples, flipped and shifted by
    ``rng``, so that no two are alike.

    Examples
    --------
    >>> import numpy as np
    >>> pipeline_images(3, np.random.default_rng(0)).shape
    (3, 180, 250, 3)
    """
    samples = data.samples()
    out = np.empty((n, 180, 250, 3), dtype=np.float32)
    for k in range(n):
        image = samples[k % len(samples)]
        if (k // len(samples)) % 2:
            image = image[:, ::-1]
        out[k] = np.roll(image, (int(rng.integers(180)), int(rng.integers(250))), axis=(0, 1))
    return out


def _optional(name):
    """The module ``name``, or None where it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@dataclass(frozen=True)
class _Job:
    """A timing to make, or (``note``) one that cannot be made."""

    case: str
    implementation: str
    call: object = None
    repeat: int = 1
    warmup: object = None
    images: int = 1
    context: object = contextlib.nullcontext    # set up around the timed runs
    note: str = ""
    values: int = 0
    psnr: object = None           # a callable giving the PSNR, after the warm-up
    check: object = None          # a callable giving a note, after the timings

    def time_once(self):
        """Seconds of one run of ``call`` (in ``context``)."""
        with self.context():
            start = time.perf_counter()
            self.call()
            return time.perf_counter() - start


def _time_case(jobs, step):
    """Time the jobs of one case in rounds, each job once a round while it has runs
    left, so that a slow spell of the machine falls on all of them alike (the
    ratios compare like with like); a job's time is its best round.

    Returns one :class:`TimingRow` per job, in order.
    """
    for job in jobs:
        step(f"{job.case}: {job.implementation}")
        if not job.note and job.warmup is not None:
            with job.context():
                job.warmup()
    best = [float("inf")] * len(jobs)
    for round_ in range(max(job.repeat for job in jobs)):
        for k, job in enumerate(jobs):
            if not job.note and round_ < job.repeat:
                best[k] = min(best[k], job.time_once())
    return [TimingRow(job.case, job.implementation, note=job.note) if job.note else
            TimingRow(job.case, job.implementation, best[k], job.images, job.repeat,
                      values=job.values, psnr=job.psnr() if job.psnr else None,
                      note=job.check() if job.check else "")
            for k, job in enumerate(jobs)]


def _kernel_calls(image):
    """(case, call(backend, n_threads), inputs) of each kernel benchmarked."""
    filtered = convolve(image, filters.BLUR)
    return [
        (CONVOLVE_S1, lambda b, t: convolve(image, filters.SHARPEN, stride=1, backend=b,
                                            n_threads=t), (image,)),
        (CONVOLVE_S3, lambda b, t: convolve(image, filters.SHARPEN, backend=b, n_threads=t),
         (image,)),
        (LEARN_SGD, lambda b, t: learn_filter(image, filtered, lr=0.01, backend=b,
                                              n_threads=t), (image, filtered)),
        (LEARN_LSTSQ, lambda b, t: learn_filter(image, filtered, method="lstsq", backend=b,
                                                n_threads=t), (image, filtered)),
        (DECONVOLVE, lambda b, t: deconvolve(filtered, filters.BLUR,
                                             output_shape=image.shape[:2], backend=b,
                                             n_threads=t), (filtered,)),
    ]


def _compiled_missing(n_threads):
    """Why the compiled backend cannot be timed on ``n_threads`` (empty: it can)."""
    if not _backend.compiled_available():
        return "compiled extension not available"
    if n_threads > 1 and not _threads.openmp_enabled():
        return "serial build (no OpenMP)"
    return ""


@contextlib.contextmanager
def _cv2_threads(cv2, n_threads):
    previous = cv2.getNumThreads()
    cv2.setNumThreads(n_threads)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _peer_jobs(image, threads, repeat):
    """The stride-1 convolution by cv2.filter2D (per thread count) and by
    scipy.ndimage.correlate (one thread), zero outside the image as ours."""
    kernel = filters.SHARPEN.astype(image.dtype)
    cv2 = _optional("cv2")
    for t in threads:
        if cv2 is None:
            yield _Job(CONVOLVE_S1, f"cv2 {t}T", note="cv2 not installed")
            continue
        call = partial(cv2.filter2D, image, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        yield _Job(CONVOLVE_S1, f"cv2 {t}T", call, repeat, warmup=call,
                   context=partial(_cv2_threads, cv2, t))
    ndimage = _optional("scipy.ndimage")
    if ndimage is None:
        yield _Job(CONVOLVE_S1, "scipy", note="scipy not installed")
    else:
        # a (3, 3, 1) kernel: each channel on its own, in one call
        call = partial(ndimage.correlate, image, kernel[:, :, np.newaxis], mode="constant")
        yield _Job(CONVOLVE_S1, "scipy", call, repeat, warmup=call)


def _out_jobs(image, threads, repeat):
    """The stride-1 convolution and the stride-3 reverse solve into an array allocated
    once (``out=``), per thread count, against cv2.filter2D into its ``dst`` and
    ``np.copyto`` of an output-sized array into an existing one. One spare buffer
    of the image's size takes every output in turn, as a caller's reused buffer."""
    spare = np.empty_like(image)
    filtered = convolve(image, filters.BLUR)
    out_shape = (image.shape[0] - 2, image.shape[1] - 2, image.shape[2])
    convolved = spare.reshape(-1)[:int(np.prod(out_shape))].reshape(out_shape)
    for t in threads:
        call = partial(convolve, image, filters.SHARPEN, stride=1, backend="compiled",
                       n_threads=t, out=convolved)
        yield _Job(CONVOLVE_S1_OUT, f"compiled {t}T", call, repeat, warmup=call,
                   note=_compiled_missing(t))
    cv2 = _optional("cv2")
    kernel = filters.SHARPEN.astype(image.dtype)
    for t in threads:
        if cv2 is None:
            yield _Job(CONVOLVE_S1_OUT, f"cv2 {t}T", note="cv2 not installed")
            continue
        call = partial(cv2.filter2D, image, -1, kernel, dst=spare,
                       borderType=cv2.BORDER_CONSTANT)
        yield _Job(CONVOLVE_S1_OUT, f"cv2 {t}T", call, repeat, warmup=call,
                   context=partial(_cv2_threads, cv2, t))
    for t in threads:
        call = partial(deconvolve, filtered, filters.BLUR, output_shape=image.shape[:2],
                       backend="compiled", n_threads=t, out=spare)
        yield _Job(DECONVOLVE_OUT, f"compiled {t}T", call, repeat, warmup=call,
                   note=_compiled_missing(t))
    call = partial(np.copyto, spare, image)
    yield _Job(DECONVOLVE_OUT, "np.copyto", call, repeat, warmup=call)


def _jobs(image, stack, threads, repeat, numpy_images, size):
    """Every timing, case by case: compiled per thread count, NumPy, peers."""
    for case, call, _ in _kernel_calls(image):
        for t in threads:
            timed = partial(call, "compiled", t)
            yield _Job(case, f"compiled {t}T", timed, repeat, warmup=timed,
                       note=_compiled_missing(t))
        # the NumPy SGD pass is a Python loop over blocks: seconds, so run once
        once = case == LEARN_SGD
        timed = partial(call, "numpy", None)
        yield _Job(case, "numpy", timed, 1 if once else repeat, None if once else timed)
        if case == CONVOLVE_S1:
            yield from _peer_jobs(image, threads, repeat)
    yield from _out_jobs(image, threads, repeat)
    for t in threads:
        # warmed up on a few images: what warms is per call, not per image
        yield _Job(PIPELINE, f"compiled {t}T", partial(pipeline, stack, "compiled", t), repeat,
                   warmup=partial(pipeline, stack[:8], "compiled", t), images=len(stack),
                   note=_compiled_missing(t))
    subset = stack[:numpy_images]
    yield _Job(PIPELINE, "numpy", partial(pipeline, subset, "numpy", None), images=len(subset))
    yield from _restore_jobs(size, threads, repeat)


def restore_image(size):
    """The natural RGB float32 image of the restore cases: the bundled samples tiled,
    cropped to ``RESTORE_SIZES[size]``."""
    rows, cols = RESTORE_SIZES[size]
    samples = data.samples()
    band = np.concatenate(samples * -(-cols // samples[0].shape[1]), axis=1)[:, :cols]
    flipped = [band, band[::-1]]                  # no seam of one sample against itself
    tall = np.concatenate([flipped[k % 2] for k in range(-(-rows // band.shape[0]))], axis=0)
    return np.ascontiguousarray(tall[:rows], dtype=np.float32)


def _restore_jobs(size, threads, repeat):
    """``restore`` (defaults) per thread count and on NumPy (once), scikit-image's Wiener
    and Richardson-Lucy on the same blurred image, each with its PSNR; one TV
    iteration on one thread."""
    original = restore_image(size)
    kernel = _restoration_cases.BLURS["Gaussian 5x5"]
    blurred = _restoration_cases.blurred([original], kernel, 0.01)[0].astype(np.float32)
    made = {}

    def job(implementation, call, runs, missing="", **extra):
        def warmup():
            made[implementation] = call()
        return _Job(RESTORE, implementation, call, runs, warmup, note=missing,
                    values=original.size, psnr=lambda: metrics.psnr(original, made[
                        implementation]), **extra)
    for t in threads:
        yield job(f"compiled {t}T", partial(restore, blurred, kernel, stride=1,
                                            backend="compiled", n_threads=t), repeat,
                  _compiled_missing(t))
    yield job("numpy", partial(restore, blurred, kernel, stride=1, backend="numpy"), 1)
    missing = "" if _optional("skimage.restoration") else "scikit-image not installed"
    yield job(WIENER, partial(_restoration_cases.wiener, blurred, kernel, WIENER_BALANCE),
              repeat, missing)
    yield job(RICHARDSON_LUCY, partial(_restoration_cases.richardson_lucy, blurred, kernel,
                                       RL_ITERATIONS), repeat, missing)
    call = partial(restore, blurred, kernel, stride=1, method="tv", tol=0, n_threads=1,
                   max_iter=RESTORE_ITERATIONS, backend="compiled")
    yield _Job(RESTORE_ITERATION, "compiled 1T", call, repeat, warmup=call,
               images=RESTORE_ITERATIONS, values=original.size, note=_compiled_missing(1))


def _nbytes(value):
    """The bytes of an array, or of the arrays of a result object."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    return sum(v.nbytes for v in vars(value).values() if isinstance(v, np.ndarray))


def _memory_rows(image, progress):
    """What each compiled kernel allocates, on the default thread count."""
    rows = []
    for case, call, inputs in _kernel_calls(image):
        progress(f"{case}: memory")
        output, peak = allocated_peak(partial(call, "compiled", None))
        rows.append(MemoryRow(case, sum(a.nbytes for a in inputs), _nbytes(output), peak))
    return rows
