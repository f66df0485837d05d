"""The benchmark behind ``revdeconv bench``: the kernels against the NumPy fallback and
established peers, timed in one run and reported as ratios.

Each kernel runs on a random RGB float32 image (:data:`SIZES`) for the compiled
backend on each thread count asked for, for the NumPy fallback and, for the
stride-1 convolution, for ``cv2.filter2D`` and ``scipy.ndimage.correlate`` where
they are installed. A time is the best of ``repeat`` runs after one untimed
warm-up (the NumPy SGD pass and the NumPy batch pipeline, which take seconds,
run once); the implementations of a case take turns, one run each per round,
so that a slow spell of a shared machine does not fall on one of them only. The batch pipeline (:func:`pipeline`) is timed in images per second.
A second pass, apart from the timings because tracing slows allocation,
measures with :mod:`tracemalloc` what each compiled kernel allocates.

The machine may be shared and noisy, so the speed is reported as ratios
measured in this one run (``8.6x faster``: the slower time over the faster),
and each target of :data:`SPEED_TARGETS` and :data:`MEMORY_LIMIT` is checked on
them. What could not be measured (cv2, SciPy or the compiled extension missing,
a thread count not run) is reported as ``not measured: <why>``, never as a pass.

Examples
--------
>>> from revdeconv.benchmark import run_benchmark
>>> result = run_benchmark("paper", threads=(1,), repeat=1, images=2)
>>> row = result.rows[0]
>>> row.case, row.implementation
('convolve 3x3 stride 1', 'compiled 1T')
>>> sorted({target.met in (True, False) or target.met.startswith("not measured")
...         for target in result.targets})
[True]
>>> "| target |" in result.to_markdown()
True
"""

import contextlib
import datetime
import importlib
import json
import os
import platform
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np

from . import _backend, batch, data, filters
from ._config import config
from ._validation import as_int
from .convolution import convolve
from .learning import learn_filter
from .reverse import deconvolve

__all__ = ["SIZES", "DEFAULT_SIZE", "SPEED_TARGETS", "MEMORY_LIMIT", "Row", "MemoryRow",
           "Target", "BenchResult", "run_benchmark", "allocated_peak",
           "pipeline", "pipeline_images", "machine_info", "add_arguments", "run_command"]

#: Image sizes (rows, columns) of the kernel benchmark; the images are RGB float32.
SIZES = {"paper": (180, 250), "1080p": (1080, 1920), "4k": (2160, 3840)}
#: The size the targets are set for.
DEFAULT_SIZE = "4k"
#: Images the NumPy fallback runs the batch pipeline on (its rate is per image).
NUMPY_IMAGES = 50

CONVOLVE_S1 = "convolve 3x3 stride 1"
CONVOLVE_S3 = "convolve 3x3 stride 3"
LEARN_SGD = "learn_filter SGD"
LEARN_LSTSQ = "learn_filter lstsq"
DECONVOLVE = "deconvolve stride 3"
PIPELINE = "batch pipeline"
KERNELS = (CONVOLVE_S1, CONVOLVE_S3, LEARN_SGD, LEARN_LSTSQ, DECONVOLVE)

#: (case, candidate, reference, least speed-up): the candidate's time per image
#: must be at most the reference's over the speed-up. "compiled" is the
#: compiled backend on its fastest thread count.
SPEED_TARGETS = (
    (CONVOLVE_S1, "compiled 1T", "cv2 1T", 1 / 1.5),
    (CONVOLVE_S1, "compiled 1T", "scipy", 5),
    (CONVOLVE_S3, "compiled", "numpy", 5),
    (LEARN_SGD, "compiled", "numpy", 100),
    (LEARN_LSTSQ, "compiled", "numpy", 5),
    (DECONVOLVE, "compiled", "numpy", 10),
    (PIPELINE, "compiled", "numpy", 100),
    (PIPELINE, "compiled 2T", "compiled 1T", 1.7),
)
#: A compiled kernel may hold at most this times (input + output) at its peak.
MEMORY_LIMIT = 1.10


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


def _version(name):
    module = _optional(name)
    return getattr(module, "__version__", "unknown") if module else "not installed"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _thread_pools():
    """The thread pools threadpoolctl sees (BLAS, OpenMP) and their sizes."""
    threadpoolctl = _optional("threadpoolctl")
    if threadpoolctl is None:
        return ["threadpoolctl not installed"]
    return [f"{os.path.basename(pool['filepath'])} ({pool['user_api']}, "
            f"{pool['num_threads']} threads)" for pool in threadpoolctl.threadpool_info()]


def machine_info():
    """The machine and the software the benchmark ran with, as two dicts.

    Returns
    -------
    machine : dict
        ``cpu`` (the model, from ``/proc/cpuinfo`` where there is one), ``cores``
        (``os.cpu_count()``), ``platform``, ``python``.
    software : dict
        What :func:`revdeconv.config` says (version, backend, compiled, OpenMP,
        default threads), the NumPy, cv2, SciPy, matplotlib and threadpoolctl
        versions (or ``"not installed"``), and the thread pools in the process.

    Examples
    --------
    >>> machine, software = machine_info()
    >>> machine["cores"] >= 1, "numpy" in software
    (True, True)
    """
    info = config()
    machine = {"cpu": _cpu_model(), "cores": os.cpu_count(), "platform": info["platform"],
               "python": info["python"]}
    software = {"revdeconv": info["version"], "backend": info["backend"],
                "compiled": info["compiled"], "openmp": info["openmp"],
                "default_threads": info["threads"], "import_error": info["import_error"],
                "numpy": info["numpy"]}
    software.update({name: _version(name)
                     for name in ("cv2", "scipy", "matplotlib", "threadpoolctl")})
    software["thread_pools"] = _thread_pools()
    return machine, software


def _speed(speedup):
    """``'8.62x'``: the slower of two times over the faster, given their ratio (two
    decimals below 10, so that a ratio just past a target never reads as on it)."""
    ratio = speedup if speedup >= 1 else 1 / speedup
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


def _faster(speedup):
    """``'8.6x faster'`` or ``'1.2x slower'``."""
    return f"{_speed(speedup)} {'faster' if speedup >= 1 else 'slower'}"


@dataclass(frozen=True)
class Row:
    """One timing: ``case`` run by ``implementation`` (``"compiled 2T"``, ``"numpy"``,
    ``"cv2 1T"``, ``"scipy"``) on ``images`` images, best of ``runs``; ``seconds`` is
    None and ``note`` says why when it was not measured."""

    case: str
    implementation: str
    seconds: object = None        # float, or None: not measured
    images: int = 1
    runs: int = 0
    note: str = ""

    @property
    def per_image(self):
        """Seconds per image, or None."""
        return None if self.seconds is None else self.seconds / self.images


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


@dataclass(frozen=True)
class Target:
    """A target checked on ratios of one run.

    ``measured`` is a speed-up (the reference's time over the candidate's; the
    target needs at least ``required``) or, with ``at_most``, a memory ratio (at
    most ``required``). ``met`` is True, False, or ``"not measured"`` with the
    reason in ``note``; for a measured target against "compiled", ``note`` names
    the thread count that was fastest.
    """

    name: str
    case: str
    required: float
    at_most: bool = False
    measured: object = None       # float, or None: not measured
    met: object = "not measured"  # True, False or "not measured"
    note: str = ""

    @property
    def measured_text(self):
        if self.measured is None:
            return ""
        return f"{self.measured:.3f}" if self.at_most else _faster(self.measured)

    @property
    def required_text(self):
        if self.at_most:
            return f"at most {self.required:.2f}"
        if self.required < 1:
            return f"at most {1 / self.required:g}x slower"
        return f"at least {self.required:g}x faster"

    @property
    def mark(self):
        """✓, ✗, or ``not measured: <why>``."""
        if self.met is True or self.met is False:
            return "✓" if self.met else "✗"
        return f"not measured: {self.note}"

    def to_dict(self):
        return dict(asdict(self), measured_text=self.measured_text,
                    required_text=self.required_text)


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


@dataclass
class BenchResult:
    """The rows of one run, and the targets checked on them.

    Examples
    --------
    >>> from revdeconv.benchmark import run_benchmark
    >>> import json
    >>> result = run_benchmark("paper", threads=(1,), repeat=1, images=2)
    >>> report = json.loads(result.to_json())
    >>> report["size"], report["image_shape"], len(report["targets"])
    ('paper', [180, 250, 3], 13)
    >>> result.targets[-1].name
    'deconvolve stride 3: compiled peak memory / (input + output)'
    """

    size: str
    image_shape: tuple
    threads: tuple
    repeat: int
    images: int
    numpy_images: int
    command: str
    date: str
    machine: dict
    config: dict
    rows: list = field(default_factory=list)      # Row
    memory: list = field(default_factory=list)    # MemoryRow

    def row(self, case, implementation):
        """The row of ``case`` and ``implementation``, or None where none was run."""
        return next((r for r in self.rows
                     if r.case == case and r.implementation == implementation), None)

    def _timed(self, case, implementation):
        """(row, None) for a measured row; ``"compiled"`` is the fastest compiled
        row. (None, why) when there is none."""
        if implementation == "compiled":
            rows = [r for r in self.rows
                    if r.case == case and r.implementation.startswith("compiled ")]
            measured = [r for r in rows if r.seconds is not None]
            if measured:
                return min(measured, key=lambda r: r.per_image), None
            return None, rows[0].note
        row = self.row(case, implementation)
        if row is None:
            return None, f"{implementation} not run (threads {list(self.threads)})"
        return (row, None) if row.seconds is not None else (None, row.note)

    @property
    def targets(self):
        """Every target of :data:`SPEED_TARGETS` and the memory target of each kernel,
        checked on this run (list of :class:`Target`)."""
        targets = []
        for case, candidate, reference, required in SPEED_TARGETS:
            target = Target(f"{case}: {candidate} vs {reference}", case, required)
            fast, why = self._timed(case, candidate)
            slow, why_not = self._timed(case, reference)
            if fast is None or slow is None:
                targets.append(replace(target, note=why or why_not))
                continue
            speedup = slow.per_image / fast.per_image
            best = f"best: {fast.implementation}" if candidate == "compiled" else ""
            targets.append(replace(target, measured=speedup, met=speedup >= required,
                                   note=best))
        measured = {row.case: row for row in self.memory}
        for case in KERNELS:
            target = Target(f"{case}: compiled peak memory / (input + output)", case,
                            MEMORY_LIMIT, at_most=True)
            if case in measured:
                ratio = measured[case].ratio
                target = replace(target, measured=ratio, met=ratio <= MEMORY_LIMIT)
            else:
                target = replace(target, note="compiled extension not available")
            targets.append(target)
        return targets

    def to_dict(self):
        """Everything, as plain JSON types."""
        return {
            "command": self.command, "date": self.date, "machine": self.machine,
            "config": self.config, "size": self.size, "image_shape": list(self.image_shape),
            "dtype": "float32", "threads": list(self.threads), "repeat": self.repeat,
            "images": self.images, "numpy_images": self.numpy_images,
            "rows": [dict(asdict(row), per_image=row.per_image) for row in self.rows],
            "memory": [dict(asdict(row), ratio=row.ratio) for row in self.memory],
            "targets": [target.to_dict() for target in self.targets],
        }

    def to_json(self):
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def header_lines(self):
        """Markdown bullets: date, command, machine, software, what was timed."""
        m, c = self.machine, self.config
        backend = (f"compiled, {'OpenMP' if c['openmp'] else 'serial build'}, "
                   f"{c['default_threads']} threads by default" if c["compiled"]
                   else f"compiled extension NOT available: {c['import_error']}")
        h, w = self.image_shape[:2]
        return [
            f"- date: {self.date}",
            f"- command: `{self.command}`",
            f"- machine: {m['cpu']}, {m['cores']} cores, {m['platform']}",
            f"- revdeconv {c['revdeconv']} ({backend}); Python {m['python']}, NumPy "
            f"{c['numpy']}, cv2 {c['cv2']}, SciPy {c['scipy']}, matplotlib {c['matplotlib']}",
            f"- thread pools: {'; '.join(c['thread_pools']) or 'none found'}",
            f"- kernels: one {h}x{w} RGB float32 image ({self.size}); best of {self.repeat} "
            f"after a warm-up (the NumPy SGD pass: one run)",
            f"- batch pipeline: {self.images} images 180x250 RGB float32 (the NumPy "
            f"fallback: the first {self.numpy_images}, one run; rates per image)",
        ]

    def _vs(self, row, reference):
        """The row's speed against ``reference`` in its case (blank where unmeasured)."""
        ref = self.row(row.case, reference)
        if row.seconds is None or ref is None or ref.seconds is None:
            return ""
        return "—" if ref is row else _faster(ref.per_image / row.per_image)

    def _cells(self, row, rate=False):
        """Seconds, images per second (with ``rate``), vs NumPy, vs compiled 1T."""
        if row.seconds is None:
            return [f"not measured: {row.note}"] + [""] * (2 + rate)
        rate = [f"{1 / row.per_image:.1f}"] if rate else []
        return [f"{row.seconds:.3g}", *rate, self._vs(row, "numpy"),
                self._vs(row, "compiled 1T")]

    def to_markdown(self, header=True):
        """The tables (times, the batch pipeline, memory, targets) in Markdown, after
        :meth:`header_lines` with ``header``."""
        lines = ["# revdeconv benchmark", ""] + self.header_lines() + [""] if header else []
        lines += ["## Kernels (seconds)", ""] + _md_table(
            ["kernel", "implementation", "seconds", "vs NumPy", "vs compiled 1T"],
            [[r.case, r.implementation, *self._cells(r)]
             for r in self.rows if r.case != PIPELINE])
        lines += ["", "## Batch pipeline", ""] + _md_table(
            ["implementation", "images", "seconds", "images/s", "vs NumPy", "vs compiled 1T"],
            [[r.implementation, r.images, *self._cells(r, rate=True)]
             for r in self.rows if r.case == PIPELINE])
        mib = 2.0 ** 20
        lines += ["", "## Memory (compiled, default threads)", ""] + _md_table(
            ["kernel", "input MiB", "output MiB", "peak extra MiB",
             "(input + peak) / (input + output)"],
            [[r.case, f"{r.input_bytes / mib:.3g}", f"{r.output_bytes / mib:.3g}",
              f"{r.peak_extra_bytes / mib:.3g}", f"{r.ratio:.3f}"] for r in self.memory])
        lines += ["", "## Targets", ""] + _md_table(
            ["case", "measured", "required", "target"],
            [[t.name, f"{t.measured_text} ({t.note})" if t.measured is not None and t.note
              else t.measured_text, t.required_text, t.mark] for t in self.targets])
        return "\n".join(lines) + "\n"

    def save_figure(self, path):
        """A bar chart of each implementation's speed-up over the NumPy fallback, per
        case, on a log scale. Returns False (and writes nothing) where matplotlib is
        not installed."""
        if _optional("matplotlib") is None:
            return False
        from matplotlib.figure import Figure   # no pyplot: no global backend to set
        cases = list(dict.fromkeys(row.case for row in self.rows))
        bars = {}                             # implementation -> {case: speed-up}
        for row in self.rows:
            numpy_row = self.row(row.case, "numpy")
            if (row.implementation != "numpy" and row.seconds is not None
                    and numpy_row is not None and numpy_row.seconds is not None):
                bars.setdefault(row.implementation, {})[row.case] = (numpy_row.per_image
                                                                     / row.per_image)
        # each case's bars side by side, centred on it
        present = {case: [i for i in bars if case in bars[i]] for case in cases}
        width = 0.8 / max([len(names) for names in present.values()] + [1])
        fig = Figure(figsize=(10, 4.5))
        ax = fig.subplots()
        for implementation, speedups in bars.items():
            xs = [cases.index(case) + width * (present[case].index(implementation)
                                               - (len(present[case]) - 1) / 2)
                  for case in speedups]
            drawn = ax.bar(xs, list(speedups.values()), width, label=implementation)
            ax.bar_label(drawn, [_speed(s) for s in speedups.values()], fontsize=6)
        ax.axhline(1, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(cases)), [c.replace(" stride", "\nstride") for c in cases],
                      fontsize=8)
        ax.set_ylabel("speed-up over the NumPy fallback")
        h, w = self.image_shape[:2]
        ax.set_title(f"revdeconv bench: {h}x{w} RGB float32; batch pipeline: per image",
                     fontsize=10)
        if bars:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        return True


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

    Returns one :class:`Row` per job, in order.
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
    return [Row(job.case, job.implementation, note=job.note) if job.note else
            Row(job.case, job.implementation, best[k], job.images, job.repeat)
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
    if n_threads > 1 and not _backend.openmp_enabled():
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


def _jobs(image, stack, threads, repeat, numpy_images):
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
    for t in threads:
        # warmed up on a few images: what warms is per call, not per image
        yield _Job(PIPELINE, f"compiled {t}T", partial(pipeline, stack, "compiled", t), repeat,
                   warmup=partial(pipeline, stack[:8], "compiled", t), images=len(stack),
                   note=_compiled_missing(t))
    subset = stack[:numpy_images]
    yield _Job(PIPELINE, "numpy", partial(pipeline, subset, "numpy", None), images=len(subset))


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


def _check_options(size, threads, repeat, images, numpy_images):
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    threads = tuple(dict.fromkeys(as_int(t, "threads", 1) for t in threads))
    if not threads:
        raise ValueError("threads must name at least one thread count")
    return (threads, as_int(repeat, "repeat", 1), as_int(images, "images", 1),
            as_int(numpy_images, "numpy_images", 1))


def run_benchmark(size=DEFAULT_SIZE, threads=(1, 2), repeat=3, images=1000, *,
                  numpy_images=NUMPY_IMAGES, progress=None, command=None):
    """Time the kernels and the batch pipeline, then measure the compiled kernels'
    memory, and return it all.

    Parameters
    ----------
    size : {"paper", "1080p", "4k"}
        The kernels' image: 180x250, 1080x1920 or 2160x3840, RGB float32, drawn by
        ``numpy.random.default_rng(0)``.
    threads : sequence of int
        The compiled backend's thread counts (and cv2's), each at least 1.
    repeat : int
        Each time is the best of this many runs after a warm-up.
    images : int
        Images in the batch pipeline; the NumPy fallback runs it on the first
        ``numpy_images`` of them.
    progress : callable, optional
        Called as ``progress(done, total, label)`` before each step and once
        at the end (label ``"done"``).
    command : str, optional
        The command line to record (default: this call, as Python).

    Returns
    -------
    BenchResult

    Raises
    ------
    ValueError
        For an unknown size, or a thread count, repeat or image count below 1.

    Examples
    --------
    >>> result = run_benchmark("paper", threads=(1,), repeat=1, images=2)
    >>> [row.implementation for row in result.rows if row.case == "batch pipeline"]
    ['compiled 1T', 'numpy']
    """
    threads, repeat, images, numpy_images = _check_options(size, threads, repeat, images,
                                                           numpy_images)
    if command is None:
        command = (f"revdeconv.benchmark.run_benchmark(size={size!r}, threads={threads}, "
                   f"repeat={repeat}, images={images})")
    image = np.random.default_rng(0).random((*SIZES[size], 3), dtype=np.float32)
    stack = pipeline_images(images, np.random.default_rng(0))
    jobs = list(_jobs(image, stack, threads, repeat, numpy_images))
    steps = len(jobs) + (len(KERNELS) if _backend.compiled_available() else 0)
    done = iter(range(steps))

    def step(label):
        if progress is not None:
            progress(next(done), steps, label)

    machine, software = machine_info()
    result = BenchResult(size, image.shape, threads, repeat, images,
                         min(numpy_images, images), command,
                         datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                         machine, software)
    for case in dict.fromkeys(job.case for job in jobs):
        result.rows += _time_case([job for job in jobs if job.case == case], step)
    if _backend.compiled_available():      # apart from the timings: tracing slows them
        result.memory = _memory_rows(image, step)
    if progress is not None:
        progress(steps, steps, "done")
    return result


def add_arguments(parser, *, outputs=None):
    """Add the options of ``revdeconv bench`` (and ``bench/run.py``) to an
    :class:`argparse.ArgumentParser`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    outputs : dict, optional
        Default paths of the files written, by option (``"json"``, ``"markdown"``,
        ``"figure"``); an option not named writes nothing unless given.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser, outputs={"json": "results.json"})
    >>> args = parser.parse_args(["--size", "paper"])
    >>> args.size, args.threads, args.json, args.figure
    ('paper', [1, 2], 'results.json', None)
    """
    outputs = outputs or {}
    parser.add_argument(
        "--size", default=DEFAULT_SIZE, metavar="{" + ",".join(SIZES) + "}",
        help="the kernels' image: paper 180x250, 1080p 1080x1920 or 4k 2160x3840, RGB "
        "float32. Default 4k: the size the targets are set for, and an image (95 MiB) "
        "far larger than the caches, so the times are those of large images; it takes a "
        "minute or two, most of it the NumPy SGD pass")
    parser.add_argument("--threads", metavar="N", type=int, nargs="+", default=[1, 2],
                        help="thread counts for the compiled backend and cv2 (default 1 2)")
    parser.add_argument("--repeat", metavar="N", type=int, default=3,
                        help="each time is the best of N runs after a warm-up (default 3; "
                        "the NumPy SGD pass and NumPy pipeline run once)")
    parser.add_argument("--images", metavar="N", type=int, default=1000,
                        help="images 180x250 in the batch pipeline (default 1000; the "
                        f"NumPy fallback runs the first {NUMPY_IMAGES})")
    for option, what in (("json", "the results as JSON"), ("markdown", "the tables as Markdown"),
                         ("figure", "the speed-ups over NumPy as a PNG (needs matplotlib)")):
        default = outputs.get(option)
        parser.add_argument(f"--{option}", metavar="PATH", default=default,
                            help=f"write {what}" + (f" (default {default})" if default else ""))


def run_command(args, command, progress=None):
    """Run the benchmark for options parsed by :func:`add_arguments`: print the tables,
    write the files asked for, and return the exit status (0).

    ``command`` is the command line to record; ``progress`` is passed on to
    :func:`run_benchmark`. Bad options raise ValueError before anything runs.
    """
    _check_options(args.size, args.threads, args.repeat, args.images, NUMPY_IMAGES)
    if not _backend.compiled_available():
        print(f"revdeconv bench: the compiled extension is not available "
              f"({_backend.IMPORT_ERROR}); timing the NumPy fallback only", file=sys.stderr)
    result = run_benchmark(args.size, args.threads, args.repeat, args.images,
                           progress=progress, command=command)
    markdown = result.to_markdown()
    print(markdown)
    for path, text in ((args.json, result.to_json()), (args.markdown, markdown)):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if args.figure and not result.save_figure(args.figure):
        print('revdeconv bench: matplotlib is not installed, so no figure was drawn; '
              'pip install "revdeconv[plot]" to get it', file=sys.stderr)
    return 0
