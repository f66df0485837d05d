"""The ``revdeconv`` command (also ``python -m revdeconv``).

    revdeconv filter INPUT... --kernel NAME|FILE.npy|FILE.json --out DIR
    revdeconv learn --original DIR_OR_FILES --filtered DIR_OR_FILES --out FILE.json
    revdeconv deconvolve INPUT... --kernel NAME|FILE.npy|FILE.json --out DIR
    revdeconv experiment [--images DIR] [--rates R ...] [--method sgd|lstsq]
                         [--author-quirks] [--out DIR]
    revdeconv info
    revdeconv bench [--size paper|1080p|4k] [--threads N ...] [--repeat N] [--images N]
                    [--json PATH] [--markdown PATH] [--figure PATH]

``filter``, ``learn`` and ``deconvolve`` take files, folders and glob patterns,
process them ``--chunk`` at a time through one compiled call per chunk, report
each file that fails (and go on), and exit with status 1 when any failed.
The chain over the files is ``_runner.Run``'s; this module parses the
arguments and says what each command computes. The options and the runner of
``bench`` (:func:`add_arguments`, :func:`run_command`) are shared with
``bench/run.py``.
"""

import argparse
import os
import shlex
import sys
import time

import numpy as np

from . import _backend, filters
from ._runner import DEFAULT_CHUNK, DEFAULT_FORMAT, FORMATS, Run, expand_inputs, load_rgb, stem
from ._validation import ACTIVATIONS, DEFAULT_ACTIVATION
from .benchmark import DEFAULT_SIZE, NUMPY_IMAGES, SIZES, _check_options, run_benchmark
from .learning import DEFAULT_METHOD, METHODS
from .reverse import DEFAULT_EPS


def _progress(stream):
    """A one-line progress bar on ``stream``."""
    def update(done, total, label):
        width = 30
        filled = width * done // total
        stream.write(f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} {label:<24}")
        if done == total:
            stream.write("\n")
        stream.flush()
    return update


def _load_folder(folder):
    if not os.path.isdir(folder):
        raise SystemExit(f"revdeconv: --images: {folder!r} is not a folder")
    files = expand_inputs([folder])
    if not files:
        raise SystemExit(f"revdeconv: no image files in {folder!r}")
    print(f"revdeconv: {len(files)} images, in this order: "
          f"{', '.join(os.path.basename(f) for f in files)}", file=sys.stderr)
    return load_rgb(files)


def _kernel(value):
    """``--kernel``: a filter name, a .npy or .json kernel file (or kernel-set file)."""
    from .kernel_file import KernelSpec, load_kernel
    if value.lower().endswith((".json", ".npy")):
        try:
            return load_kernel(value)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"revdeconv: --kernel: {exc}") from None
    try:
        return KernelSpec(filters.get(value)[np.newaxis])
    except ValueError as exc:
        raise SystemExit(f"revdeconv: --kernel: {exc}; or give a .json or .npy file") from None


def _size(value):
    """``--output-size HxW``."""
    try:
        rows, cols = (int(v) for v in value.lower().split("x"))
        if rows < 1 or cols < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 180x250, got {value!r}") from None
    return rows, cols


def _positive_int_arg(value):
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:      # the words argparse said when this function was "_positive"
        raise argparse.ArgumentTypeError(f"invalid _positive value: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _run(args, command):
    """The run of a command; its outputs go to the folder ``--out`` if it writes images."""
    out = args.out if hasattr(args, "format") else None
    return Run(command, out=out, fmt=getattr(args, "format", DEFAULT_FORMAT),
               overwrite=getattr(args, "overwrite", False), quiet=args.quiet, chunk=args.chunk)


def _filter(args):
    from .batch import convolve
    spec = _kernel(args.kernel)
    if isinstance(spec, dict):
        raise SystemExit("revdeconv filter: --kernel holds one filter per image; "
                         "filter takes one filter")
    options = dict(stride=args.stride or spec.stride, bias=spec.bias,
                   activation=args.activation or spec.activation or DEFAULT_ACTIVATION,
                   n_threads=args.threads)
    return _run(args, "filter").process(
        args.inputs, lambda images: convolve(images, spec.kernel, **options))


def _deconvolve(args):
    from .batch import deconvolve
    spec = _kernel(args.kernel)

    def kernel_for(path):
        if not isinstance(spec, dict):
            return spec
        if stem(path) not in spec:      # each image with its own filter, found by name
            raise ValueError(f"no filter named {stem(path)!r} in {args.kernel}")
        return spec[stem(path)]

    def compute(images, specs):         # stride, activation: the group's first filter's
        return deconvolve(images, [s.kernel for s in specs],
                          stride=args.stride or specs[0].stride,
                          activation=args.activation or specs[0].activation or DEFAULT_ACTIVATION,
                          eps=args.eps, output_shape=args.output_size, n_threads=args.threads)

    return _run(args, "deconvolve").process(args.inputs, compute, attach=kernel_for)


def _learn(args):
    from .batch import learn
    from .kernel_file import save_kernel, save_kernels
    run = _run(args, "learn")
    options = dict(kernel_size=args.kernel_size, stride=args.stride, lr=args.lr,
                   epochs=args.epochs, bias=args.bias, activation=args.activation,
                   method=args.method, n_threads=args.threads)
    if args.shared:
        def step(originals, filtered, shared):
            channels = originals[0].shape[2] if originals[0].ndim == 3 else 1
            if shared is not None and shared.kernel.shape[0] != channels:
                raise ValueError(f"has {channels} channels; the shared filter, "
                                 f"learned first, has {shared.kernel.shape[0]}")
            return learn(originals, filtered, shared=True,
                         init=shared if args.method == "sgd" else None, **options)

        # an epoch is a pass over every pair; a least-squares fit sees every pair at once
        shared = run.fold_pairs(args.original, args.filtered, step,
                                at_once=args.epochs > 1 or args.method == "lstsq")
        if shared is not None:
            save_kernel(args.out, shared)
            _print_filter("shared filter", shared, args.compare)
        return run.finish()
    results = run.map_pairs(args.original, args.filtered,
                            lambda originals, filtered: learn(originals, filtered, **options))
    if results:
        save_kernels(args.out, results)
        print(f"{len(results)} filters written to {args.out}")
        shapes = {}
        for result in results.values():
            shapes.setdefault(result.kernel.shape, []).append(result.kernel)
        for shape, kernels in shapes.items():
            _print_filter(f"mean of the {len(kernels)} {shape[0]}-channel filters",
                          np.mean(kernels, axis=0), args.compare)
    return run.finish()


def _print_filter(title, result, compare):
    """Print a filter per channel, and its error against the named filter ``compare``."""
    from . import metrics
    kernel = getattr(result, "kernel", result)
    print(f"{title}:")
    for c, channel in enumerate(kernel):
        print(f"  channel {c}:")
        for row in channel:
            print("    " + "  ".join(f"{v:9.4f}" for v in row))
    if compare:
        truth = filters.get(compare)
        if truth.shape == kernel.shape[1:]:
            print(f"relative error against {compare}: "
                  f"{metrics.filter_error(kernel, truth):.6f}")
        else:
            print(f"cannot compare with {compare}: sizes {truth.shape} and {kernel.shape[1:]}")


def _experiment(args):
    from .experiment import PAPER_RATES, run_experiment
    from .report import write_all
    start = time.perf_counter()
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise SystemExit(f"revdeconv: --out: {args.out!r} exists and is not a folder")
    images = _load_folder(args.images) if args.images else None
    result = run_experiment(images, rates=args.rates or PAPER_RATES, method=args.method,
                            author_quirks=args.author_quirks, n_threads=args.threads,
                            progress=_progress(sys.stderr))
    paths, plotted = write_all(result, args.out)
    for path in paths:
        print(path)
    for row in result.table2():
        print(f"{row['filter']:<16} MAE {row['MAE']:.4f}  MAE0 {row['MAE0']:.4f}  "
              f"loss {100 * row['loss_ratio']:.4f}%  (mean over {row['rates']} rates)")
    if not plotted:
        print('revdeconv: matplotlib is not installed, so no plots were made; '
              'pip install "revdeconv[plot]" to get them', file=sys.stderr)
    print(f"revdeconv: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def _info(args):
    from . import show_config
    show_config()
    return 0


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
    :func:`revdeconv.benchmark.run_benchmark`. Bad options raise ValueError before
    anything runs.
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


def _bench(args):
    bar = _progress(sys.stderr)
    # padded: a shorter label must cover the longer one before it
    return run_command(args, shlex.join(["revdeconv", *args.argv]),
                       progress=lambda done, total, label: bar(done, total, f"{label:<40}"))


def _common(parser, out_help=None, outputs=True):
    """Options shared by the file-processing commands."""
    parser.add_argument("--threads", metavar="N", type=int, default=None,
                        help="OpenMP threads (default: OpenMP's, all cores unless "
                        "OMP_NUM_THREADS says otherwise)")
    parser.add_argument("--chunk", metavar="N", type=_positive_int_arg, default=DEFAULT_CHUNK,
                        help=f"files in memory at once (default {DEFAULT_CHUNK})")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no summary unless something failed")
    if outputs:
        parser.add_argument("--out", metavar="DIR", required=True, help=out_help)
        parser.add_argument("--format", choices=sorted(FORMATS), default=DEFAULT_FORMAT,
                            help="output files: 8-bit png or tiff, or float npy "
                            f"(default {DEFAULT_FORMAT})")
        parser.add_argument("--overwrite", action="store_true",
                            help="redo outputs that exist (default: skip them)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="revdeconv", description="Learn a convolution "
                                     "filter from an image pair, and undo it.")
    commands = parser.add_subparsers(dest="command", required=True)
    kernel_help = (f"a filter name ({', '.join(filters.NAMES)}), a .npy kernel, or a .json "
                   "kernel file as `revdeconv learn` writes")

    run = commands.add_parser("filter", help="filter images with a kernel")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    run.add_argument("--kernel", required=True, help=kernel_help)
    run.add_argument("--stride", type=_positive_int_arg,
                     help="default: the file's, else the kernel size")
    run.add_argument("--activation", choices=ACTIVATIONS, help="default: the file's, else clip")
    _common(run, "folder for the filtered images (OUT/<name>.<format>)")
    run.set_defaults(handler=_filter)

    run = commands.add_parser("learn", help="learn the filter from (original, filtered) pairs")
    run.add_argument("--original", nargs="+", required=True, metavar="DIR_OR_FILES")
    run.add_argument("--filtered", nargs="+", required=True, metavar="DIR_OR_FILES",
                     help="paired with --original by file name (without extension)")
    run.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    run.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    run.add_argument("--epochs", type=_positive_int_arg, default=1)
    run.add_argument("--kernel-size", type=_positive_int_arg, help="default: the size ratio")
    run.add_argument("--stride", type=_positive_int_arg, help="default: the kernel size")
    run.add_argument("--bias", action="store_true", help="learn a bias too")
    run.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULT_ACTIVATION)
    run.add_argument("--shared", action="store_true", help="one filter over all pairs in "
                     "order, the kernel carried over (the paper); default: one per pair")
    run.add_argument("--compare", metavar="NAME", help="print the error against this filter")
    run.add_argument("--out", required=True, metavar="FILE.json", help="the kernel file")
    _common(run, outputs=False)
    run.set_defaults(handler=_learn)

    run = commands.add_parser("deconvolve", help="undo a filter (the paper's reverse solve)")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    run.add_argument("--kernel", required=True, help=kernel_help + "; a kernel-set file "
                     "gives each image its own filter, by name")
    run.add_argument("--stride", type=_positive_int_arg,
                     help="default: the file's, else the kernel size")
    run.add_argument("--activation", choices=ACTIVATIONS, help="default: the file's, else clip")
    eps = np.format_float_scientific(DEFAULT_EPS, trim="-", exp_digits=1)     # 1e-6
    run.add_argument("--eps", type=float, default=DEFAULT_EPS, help="weights |w| <= eps are "
                     f"not divided by (default {eps})")
    run.add_argument("--output-size", type=_size, metavar="HxW",
                     help="default: the region the blocks cover")
    _common(run, "folder for the deconvolved images (OUT/<name>.<format>)")
    run.set_defaults(handler=_deconvolve)

    run = commands.add_parser("experiment", help="reproduce the paper's Tables 1 and 2")
    run.add_argument("--images", metavar="DIR", help="a folder of images (default: the ten "
                     "bundled samples); grey ones get three equal channels, alpha is dropped")
    run.add_argument("--rates", metavar="R", type=float, nargs="+",
                     help="learning rates (default: the paper's 19, 1.0 ... 0.01)")
    run.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    run.add_argument("--author-quirks", action="store_true",
                     help="reproduce the two quirks of the author's code")
    run.add_argument("--out", metavar="DIR", default="revdeconv-experiment",
                     help="where to write tables, report and figures "
                     "(default: ./revdeconv-experiment)")
    run.add_argument("--threads", metavar="N", type=int, default=None,
                     help="OpenMP threads (default: OpenMP's, honouring OMP_NUM_THREADS)")
    run.set_defaults(handler=_experiment)

    info = commands.add_parser("info", help="how this installation computes")
    info.set_defaults(handler=_info)

    run = commands.add_parser("bench", help="time the kernels against the NumPy fallback, "
                              "OpenCV and SciPy, and check the speed and memory targets")
    add_arguments(run)
    run.set_defaults(handler=_bench)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv                          # bench records the command line as typed
    try:
        return args.handler(args)
    except (ValueError, OSError) as exc:      # bad values or files: one line, not a traceback
        print(f"revdeconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
