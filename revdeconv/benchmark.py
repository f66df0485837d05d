"""The benchmark behind ``revdeconv bench``: the kernels against the NumPy fallback and
established peers, timed in one run and reported as ratios.

Each kernel runs on a random RGB float32 image (:data:`SIZES`) for the compiled
backend on each thread count asked for, for the NumPy fallback and, for the
stride-1 convolution, for ``cv2.filter2D`` and ``scipy.ndimage.correlate`` where
they are installed. The stride-1 convolution and the reverse solve run once more
writing into an array allocated once (``out=``, the cases ending in ``out=``),
against ``cv2.filter2D`` with its ``dst`` given and against ``np.copyto`` of an
output-sized array into an existing one: what a caller who reuses one buffer
waits for, without allocating and faulting in a fresh output every call. A time is the best of ``repeat`` runs after one untimed
warm-up (the NumPy SGD pass and the NumPy batch pipeline, which take seconds,
run once); the implementations of a case take turns, one run each per round,
so that a slow spell of a shared machine does not fall on one of them only.
The batch pipeline (:func:`pipeline`) is timed in images per second.
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

This module runs the benchmark and checks the targets. The cases, how each is
timed, the sizes and the targets are in ``revdeconv._bench_cases`` (its public
names are imported here); :mod:`revdeconv.bench_report` writes the results
(JSON, Markdown, the figure); the options and the runner of ``revdeconv bench``
(``add_arguments``, ``run_command``) are :mod:`revdeconv.cli`'s.
"""

import datetime
import os
import platform
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import _backend, bench_report
from ._bench_cases import (CONVOLVE_S1, CONVOLVE_S1_OUT, CONVOLVE_S3, DECONVOLVE,
                           DECONVOLVE_OUT, DEFAULT_SIZE, FOLDER_CASES, KERNELS, LEARN_LSTSQ,
                           LEARN_SGD, MEMORY_LIMIT, NUMPY_IMAGES, OUT_CASES, PIPELINE, RESTORE,
                           RESTORE_CASES, RESTORE_ITERATION, RESTORE_SIZES, RESTORE_TARGETS,
                           RICHARDSON_LUCY, SIZES, SPEED_TARGETS, WIENER, MemoryRow,
                           TimingRow, _faster, _jobs, _memory_rows, _optional, _time_case,
                           allocated_peak, pipeline, pipeline_images)
from ._config import config
from ._validation import as_int

__all__ = ["SIZES", "DEFAULT_SIZE", "SPEED_TARGETS", "RESTORE_TARGETS", "MEMORY_LIMIT",
           "TimingRow", "Row",
           "MemoryRow", "Target", "BenchResult", "run_benchmark", "allocated_peak",
           "pipeline", "pipeline_images", "machine_info"]

#: The former name of :class:`TimingRow` (not :class:`revdeconv.experiment.Row`, a
#: row of the experiment's table).
Row = TimingRow


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
        default threads), the NumPy, cv2, SciPy, matplotlib, threadpoolctl and isal
        (PNG reading, ``revdeconv[fast]``) versions (or ``"not installed"``), and the
        thread pools in the process.

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
                     for name in ("cv2", "scipy", "matplotlib", "threadpoolctl", "isal")})
    software["thread_pools"] = _thread_pools()
    return machine, software


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
    unit: str = ""                # a measure in units (ms, dB), not a ratio

    @property
    def measured_text(self):
        if self.measured is None:
            return ""
        if self.unit:
            return f"{self.measured:.2f} {self.unit}"
        return f"{self.measured:.3f}" if self.at_most else _faster(self.measured)

    @property
    def required_text(self):
        if self.unit:
            return f"{'at most' if self.at_most else 'above'} {self.required:g} {self.unit}"
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
    ('paper', [180, 250, 3], 24)
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
    rows: list = field(default_factory=list)      # TimingRow
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
        if row is None and case in FOLDER_CASES and not any(r.case == case for r in self.rows):
            return None, "the folder cases are run by `revdeconv bench` (bench/run.py)"
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
        targets += self._restore_targets()
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

    def _restore_targets(self):
        """The targets of :data:`RESTORE_TARGETS`: one TV iteration's milliseconds per
        million values, and restore's PSNR over Richardson-Lucy's."""
        targets = []
        for name, case, unit, limit, at_most in RESTORE_TARGETS:
            target = Target(name, case, limit, at_most=at_most, unit=unit)
            if case == RESTORE_ITERATION:
                row, why = self._timed(case, "compiled 1T")
                value = None if row is None else row.ms_per_million
            else:
                row, why = self._timed(case, "compiled")
                theirs, why_not = self._timed(case, RICHARDSON_LUCY)
                why = why or why_not
                value = None if row is None or theirs is None else row.psnr - theirs.psnr
            if value is None:
                targets.append(replace(target, note=why))
            else:
                targets.append(replace(target, measured=value, met=value <= limit if at_most
                                       else value > limit))
        return targets

    def to_dict(self):
        """Everything, as plain JSON types."""
        return {
            "command": self.command, "date": self.date, "machine": self.machine,
            "config": self.config, "size": self.size, "image_shape": list(self.image_shape),
            "dtype": "float32", "threads": list(self.threads), "repeat": self.repeat,
            "images": self.images, "numpy_images": self.numpy_images,
            "rows": [dict(asdict(row), per_image=row.per_image,
                          ms_per_million=row.ms_per_million) for row in self.rows],
            "memory": [dict(asdict(row), ratio=row.ratio) for row in self.memory],
            "targets": [target.to_dict() for target in self.targets],
        }

    # The writing is revdeconv.bench_report's (which does not import this module).
    def to_json(self):
        """:meth:`to_dict` as JSON text (:func:`revdeconv.bench_report.to_json`)."""
        return bench_report.to_json(self)

    def header_lines(self):
        """Markdown bullets: date, command, machine, software, what was timed
        (:func:`revdeconv.bench_report.header_lines`)."""
        return bench_report.header_lines(self)

    def to_markdown(self, header=True):
        """The tables (times, the batch pipeline, memory, targets) in Markdown, after
        :meth:`header_lines` with ``header`` (:func:`revdeconv.bench_report.to_markdown`)."""
        return bench_report.to_markdown(self, header)

    def save_figure(self, path):
        """A bar chart of each implementation's speed-up over the NumPy fallback
        (:func:`revdeconv.bench_report.save_figure`). Returns False (and writes nothing)
        where matplotlib is not installed."""
        return bench_report.save_figure(self, path)


def _check_options(size, threads, repeat, images, numpy_images):
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    threads = tuple(dict.fromkeys(as_int(t, "threads", 1) for t in threads))
    if not threads:
        raise ValueError("threads must name at least one thread count")
    return (threads, as_int(repeat, "repeat", 1), as_int(images, "images", 1),
            as_int(numpy_images, "numpy_images", 1))


def run_benchmark(size=DEFAULT_SIZE, threads=(1, 2), repeat=3, images=1000, *,
                  numpy_images=NUMPY_IMAGES, progress=None, command=None, more=()):
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
    more : iterable, optional
        More timings, made with the others (``revdeconv bench`` adds the folder
        cases of :mod:`revdeconv._bench_folder` here).

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
    jobs = list(_jobs(image, stack, threads, repeat, numpy_images, size)) + list(more)
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

