"""Writing a benchmark run.

The run's results (:class:`revdeconv.benchmark.BenchResult`) as JSON, as
Markdown tables and as a bar chart of the speed-ups over the NumPy fallback
(needs matplotlib: ``pip install "revdeconv[plot]"``). The methods of
:class:`~revdeconv.benchmark.BenchResult` (``to_json``, ``to_markdown``,
``header_lines``, ``save_figure``) call these functions; they read the result
through its attributes and methods only, so this module imports the cases
(``revdeconv._bench_cases``), never :mod:`revdeconv.benchmark`. The options of
``revdeconv bench`` are :mod:`revdeconv.cli`'s.

Examples
--------
>>> from revdeconv.benchmark import run_benchmark
>>> result = run_benchmark("paper", threads=(1,), repeat=1, images=2)
>>> to_markdown(result).splitlines()[0]
'# revdeconv benchmark'
"""

import json

from ._bench_cases import (FOLDER_CASES, OPENCV_LOOP, PIPELINE, RESTORE_CASES,
                           RESTORE_ITERATIONS, RESTORE_SIZES, _faster, _optional, _speed)

__all__ = ["to_json", "header_lines", "to_markdown", "save_figure"]


def to_json(result):
    """``result.to_dict()`` as JSON text (indented, not ASCII-escaped).

    Examples
    --------
    >>> import json
    >>> from revdeconv.benchmark import run_benchmark
    >>> result = run_benchmark("paper", threads=(1,), repeat=1, images=2)
    >>> json.loads(to_json(result))["size"]
    'paper'
    """
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False)


def header_lines(result):
    """Markdown bullets: date, command, machine, software, what was timed."""
    m, c = result.machine, result.config
    backend = (f"compiled, {'OpenMP' if c['openmp'] else 'serial build'}, "
               f"{c['default_threads']} threads by default" if c["compiled"]
               else f"compiled extension NOT available: {c['import_error']}")
    h, w = result.image_shape[:2]
    return [
        f"- date: {result.date}",
        f"- command: `{result.command}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['platform']}",
        f"- revdeconv {c['revdeconv']} ({backend}); Python {m['python']}, NumPy "
        f"{c['numpy']}, cv2 {c['cv2']}, SciPy {c['scipy']}, matplotlib {c['matplotlib']}, "
        f"isal {c.get('isal', 'not installed')} (the PNG files' inflate where installed, "
        f"else zlib's)",
        f"- thread pools: {'; '.join(c['thread_pools']) or 'none found'}",
        f"- kernels: one {h}x{w} RGB float32 image ({result.size}); best of {result.repeat} "
        f"after a warm-up (the NumPy SGD pass: one run)",
        f"- batch pipeline: {result.images} images 180x250 RGB float32 (the NumPy "
        f"fallback: the first {result.numpy_images}, one run; rates per image)",
        f"- folders: {result.images} PNG files of 180x250 RGB, 8 bits; `revdeconv filter "
        "DIR --kernel sharpen` (stride 3) and `revdeconv deconvolve` on its outputs, in "
        "this process, each run into a new folder (the disk flushed first, the folders "
        "removed at the end); against a ten-line OpenCV loop on one "
        "thread (imread, filter2D or revdeconv.deconvolve, imwrite) on the same files, "
        "outputs compared pixel by pixel; best of the runs, no warm-up",
        "- restore: the bundled samples tiled to {}x{} RGB float32, Gaussian 5x5 blur (valid "
        "mode), noise 0.01, 8 bits; `restore` at its defaults (the NumPy fallback: one run), "
        "scikit-image's Wiener and Richardson-Lucy padded symmetrically; one TV iteration: "
        "{} iterations with `tol=0` on one thread".format(*RESTORE_SIZES[result.size],
                                                         RESTORE_ITERATIONS),
    ]


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _vs(result, row, reference):
    """The row's speed against ``reference`` in its case (blank where unmeasured)."""
    ref = result.row(row.case, reference)
    if row.seconds is None or ref is None or ref.seconds is None:
        return ""
    return "—" if ref is row else _faster(ref.per_image / row.per_image)


def _cells(result, row, rate=False):
    """Seconds, images per second (with ``rate``), vs NumPy, vs compiled 1T."""
    if row.seconds is None:
        return [f"not measured: {row.note}"] + [""] * (2 + rate)
    rate = [f"{1 / row.per_image:.1f}"] if rate else []
    return [f"{row.seconds:.3g}", *rate, _vs(result, row, "numpy"),
            _vs(result, row, "compiled 1T")]


def to_markdown(result, header=True):
    """The tables (times, the batch pipeline, memory, targets) in Markdown, after
    :func:`header_lines` with ``header``.

    Examples
    --------
    >>> from revdeconv.benchmark import run_benchmark
    >>> result = run_benchmark("paper", threads=(1,), repeat=1, images=2)
    >>> "## Targets" in to_markdown(result, header=False)
    True
    """
    lines = ["# revdeconv benchmark", ""] + header_lines(result) + [""] if header else []
    lines += ["## Kernels (seconds)", ""] + _md_table(
        ["kernel", "implementation", "seconds", "vs NumPy", "vs compiled 1T"],
        [[r.case, r.implementation, *_cells(result, r)]
         for r in result.rows
         if r.case != PIPELINE and r.case not in RESTORE_CASES + FOLDER_CASES])
    lines += ["", "## Batch pipeline", ""] + _md_table(
        ["implementation", "images", "seconds", "images/s", "vs NumPy", "vs compiled 1T"],
        [[r.implementation, r.images, *_cells(result, r, rate=True)]
         for r in result.rows if r.case == PIPELINE])
    lines += ["", "## Folders of PNG files", ""] + _md_table(
        ["case", "implementation", "files", "seconds", "images/s", "vs OpenCV loop",
         "vs compiled 1T", "outputs"],
        [[r.case, r.implementation, r.images] + (
            [f"{r.seconds:.3g}", f"{1 / r.per_image:.0f}", _vs(result, r, OPENCV_LOOP),
             _vs(result, r, "compiled 1T"), r.note] if r.seconds is not None
            else [f"not measured: {r.note}", "", "", "", ""])
         for r in result.rows if r.case in FOLDER_CASES])
    lines += ["", "## Restore", ""] + _md_table(
        ["case", "implementation", "seconds", "ms per million values", "PSNR dB", "vs NumPy",
         "vs compiled 1T"],
        [[r.case, r.implementation, *(_cells(result, r)[:1] + (
            [f"{r.ms_per_million:.1f}", "" if r.psnr is None else f"{r.psnr:.2f}"]
            if r.seconds is not None else ["", ""]) + _cells(result, r)[1:])]
         for r in result.rows if r.case in RESTORE_CASES])
    mib = 2.0 ** 20
    lines += ["", "## Memory (compiled, default threads)", ""] + _md_table(
        ["kernel", "input MiB", "output MiB", "peak extra MiB",
         "(input + peak) / (input + output)"],
        [[r.case, f"{r.input_bytes / mib:.3g}", f"{r.output_bytes / mib:.3g}",
          f"{r.peak_extra_bytes / mib:.3g}", f"{r.ratio:.3f}"] for r in result.memory])
    lines += ["", "## Targets", ""] + _md_table(
        ["case", "measured", "required", "target"],
        [[t.name, f"{t.measured_text} ({t.note})" if t.measured is not None and t.note
          else t.measured_text, t.required_text, t.mark] for t in result.targets])
    return "\n".join(lines) + "\n"


def save_figure(result, path):
    """A bar chart of each implementation's speed-up over the NumPy fallback, per
    case, on a log scale, written to ``path`` as PNG. Returns False (and writes
    nothing) where matplotlib is not installed."""
    if _optional("matplotlib") is None:
        return False
    from matplotlib.figure import Figure   # no pyplot: no global backend to set
    cases = list(dict.fromkeys(row.case for row in result.rows))
    bars = {}                             # implementation -> {case: speed-up}
    for row in result.rows:
        numpy_row = result.row(row.case, "numpy")
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
    h, w = result.image_shape[:2]
    ax.set_title(f"revdeconv bench: {h}x{w} RGB float32; batch pipeline: per image",
                 fontsize=10)
    if bars:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True

