"""``revdeconv bench``: its options and its run, shared with ``bench/run.py``."""

import os
import shlex
import sys
import tempfile

from . import _backend
from ._bench_folder import folder_jobs
from ._options import progress
from .benchmark import DEFAULT_SIZE, NUMPY_IMAGES, SIZES, _check_options, run_benchmark


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
                        help="images 180x250 in the batch pipeline, and PNG files in the "
                        "folder cases (default 1000; the NumPy fallback runs the first "
                        f"{NUMPY_IMAGES} of the pipeline)")
    for option, what in (("json", "the results as JSON"), ("markdown", "the tables as Markdown"),
                         ("figure", "the speed-ups over NumPy as a PNG (needs matplotlib)")):
        default = outputs.get(option)
        parser.add_argument(f"--{option}", metavar="PATH", default=default,
                            help=f"write {what}" + (f" (default {default})" if default else ""))


def run_command(args, command, progress=None, main=None):
    """Run the benchmark for options parsed by :func:`add_arguments`: print the tables,
    write the files asked for, and return the exit status (0).

    ``command`` is the command line to record; ``progress`` is passed on to
    :func:`revdeconv.benchmark.run_benchmark`. With ``main`` (the command line's
    entry point), the folder cases run it (:mod:`revdeconv._bench_folder`). Bad
    options raise ValueError before anything runs.
    """
    _check_options(args.size, args.threads, args.repeat, args.images, NUMPY_IMAGES)
    if not _backend.compiled_available():
        print(f"revdeconv bench: the compiled extension is not available "
              f"({_backend.IMPORT_ERROR}); timing the NumPy fallback only", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="revdeconv-bench-") as folder:
        more = () if main is None else folder_jobs(main, args.images, args.threads,
                                                   args.repeat, folder)
        result = run_benchmark(args.size, args.threads, args.repeat, args.images,
                               progress=progress, command=command, more=more)
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


def bench(args, main=None):
    """``revdeconv bench``: :func:`run_command` with a progress display."""
    bar = progress(sys.stderr)
    # padded: a shorter label must cover the longer one before it
    return run_command(args, shlex.join(["revdeconv", *args.argv]),
                       progress=lambda done, total, label: bar(done, total, f"{label:<40}"),
                       main=main)
