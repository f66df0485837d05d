"""The ``revdeconv`` command (also ``python -m revdeconv``).

    revdeconv filter INPUT... --kernel NAME|FILE.npy|FILE.json --out DIR
    revdeconv learn --original DIR_OR_FILES --filtered DIR_OR_FILES --out FILE.json
    revdeconv deconvolve INPUT... --kernel NAME|FILE.npy|FILE.json --out DIR
    revdeconv restore INPUT... --kernel NAME|FILE.npy|FILE.json --out DIR [--method tikhonov|tv]
    revdeconv experiment [--images DIR] [--rates R ...] [--method sgd|lstsq]
                         [--author-quirks] [--out DIR]
    revdeconv info
    revdeconv bench [--size paper|1080p|4k] [--threads N ...] [--repeat N] [--images N]
                    [--json PATH] [--markdown PATH] [--figure PATH]

``filter``, ``learn``, ``deconvolve`` and ``restore`` take files, folders and glob patterns
(``--recursive`` enters subfolders, ``**`` matches any depth), check every
option before any file is read, never write an output over an input, read as
many files at a time as ``--memory`` holds and compute them in one compiled
call, report each file that fails (and go on), and exit with status 1 when any
failed (2 on a bad option or when nothing matches, 130 on Ctrl-C).
The chain over the files is ``_runner.Run``'s; this module parses the
arguments; what ``filter``, ``deconvolve`` and ``restore`` compute is
``_commands``'. The options and the runner of
``bench`` (:func:`add_arguments`, :func:`run_command`, from
``_bench_command``) are shared with ``bench/run.py``.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

from . import _cluster, _commands, _options, _pixels, filters, restoration
from ._options import progress as _progress
from ._runner import DEFAULT_FORMAT, FORMATS, Interrupted, Run, expand_inputs, load_rgb
from ._validation import ACTIVATIONS, DEFAULT_ACTIVATION
from .io import DEFAULT_PNG_COMPRESSION
from . import _bench_command
from ._bench_command import add_arguments  # noqa: F401 (bench/run.py's)
from .learning import DEFAULT_METHOD, METHODS
from .reverse import DEFAULT_EPS
from ._version import __version__


def _load_folder(folder, fail=None):
    """The files of ``folder`` read (those ``fail`` was told of left out), and the images."""
    if not os.path.isdir(folder):
        raise SystemExit(f"revdeconv: --images: {folder!r} is not a folder")
    files = expand_inputs([folder])
    if not files:
        raise SystemExit(f"revdeconv: no image files in {folder!r}")
    failed = []
    images = load_rgb(files, None if fail is None else
                      lambda path, reason: (failed.append(path), fail(path, reason)))
    files = [f for f in files if f not in failed]
    print(f"revdeconv: {len(files)} images, in this order: "
          f"{', '.join(os.path.basename(f) for f in files)}", file=sys.stderr)
    return files, images


def _kernel(value):
    """``--kernel``: a filter name, a .npy or .json kernel file (or kernel-set file)."""
    from .kernel_file import KernelSpec, load_kernel
    if value.lower().endswith((".json", ".npy")):
        try:
            return load_kernel(value)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--kernel: {exc}") from None
    try:
        return KernelSpec(filters.get(value)[np.newaxis])
    except ValueError as exc:
        raise ValueError(f"--kernel: {exc}; or give a .json or .npy file") from None


def _run(args, command, output_scale=1.0):
    """The run of a command; its outputs go to the folder ``--out`` if it writes images
    (``output_scale``: an output's bytes per byte of its input), else to the file
    ``--out``. The places written to are checked here, before any file is read."""
    if hasattr(args, "format"):
        _options.check_out_folder(args.out)
        out, out_file = args.out, None
    else:
        _options.check_out_file(args.out)
        out, out_file = None, args.out
    bits = getattr(args, "bits", None)
    _pixels.check_bits(bits, getattr(args, "format", None))
    # learn: --alpha keep and drop both learn the colour channels only
    alpha = args.alpha if out is not None or args.alpha == "filter" else "drop"
    return Run(command, out=out, fmt=getattr(args, "format", DEFAULT_FORMAT),
               overwrite=getattr(args, "overwrite", False), quiet=args.quiet, chunk=args.chunk,
               memory=args.memory, output_scale=output_scale, recursive=args.recursive,
               out_file=out_file, alpha=alpha, bits=bits, n_threads=args.threads,
               png_compression=getattr(args, "png_compression", DEFAULT_PNG_COMPRESSION),
               cluster=getattr(args, "cluster", None))          # --scheduler: _cluster


def _files(build):
    """The handler of ``filter``, ``deconvolve`` or ``restore``: ``_commands``' builder
    with the ``--kernel`` read and the command's run made here."""
    return lambda args: build(args, _kernel(args.kernel),
                              lambda command, scale: _run(args, command, output_scale=scale))


def _learn(args):
    from .batch import learn
    from .kernel_file import save_kernel, save_kernels
    run = _run(args, "learn", output_scale=0)
    options = dict(kernel_size=args.kernel_size, stride=args.stride, lr=args.lr,
                   epochs=args.epochs, bias=args.bias, activation=args.activation,
                   method=args.method, n_threads=args.threads)
    learn = _learning(learn, args.lr)

    def save(write, value):         # an error in words, not the temporary file's name
        try:
            write(args.out, value)
        except OSError as exc:
            raise ValueError(f"--out: cannot write {args.out}: {exc.strerror or exc}") from None
    if args.shared:
        def step(originals, filtered, shared):
            channels = originals[0].shape[2] if originals[0].ndim == 3 else 1
            # a filter carried from grey pairs applies to each colour channel (point 7)
            carried = (1, channels) if args.alpha != "filter" else (channels,)
            if shared is not None and shared.kernel.shape[0] not in carried:
                raise ValueError(f"has {channels} channels; the shared filter, "
                                 f"learned first, has {shared.kernel.shape[0]}")
            result = learn(originals, filtered, shared=True,
                           init=shared if args.method == "sgd" else None, **options)
            if isinstance(result, Exception):
                raise result
            return result

        # an epoch is a pass over every pair; a least-squares fit sees every pair at once
        # (on a cluster: each partition's normal equations, added as a tree, then solved)
        parts = (_cluster.lstsq_parts(options, _learning(lambda sums: sums.solve(), args.lr))
                 if args.method == "lstsq" else None)
        shared = run.fold_pairs(args.original, args.filtered, step,
                                at_once=args.epochs > 1 or args.method == "lstsq",
                                prepare=_channel_policy(args), parts=parts)
        if shared is not None:
            save(save_kernel, shared)
            _print_filter("shared filter", shared, args.compare)
        return run.finish()
    results = run.map_pairs(args.original, args.filtered,
                            lambda originals, filtered: learn(originals, filtered, **options),
                            prepare=_channel_policy(args))
    if results:
        save(save_kernels, results)
        print(f"{len(results)} filters written to {args.out}")
        shapes = {}
        for result in results.values():
            shapes.setdefault(result.kernel.shape, []).append(result.kernel)
        for shape, kernels in shapes.items():
            _print_filter(f"mean of the {len(kernels)} {shape[0]}-channel filters",
                          np.mean(kernels, axis=0), args.compare)
    return run.finish()


def _channel_policy(args):
    """learn: grey meets colour as three equal channels, as in ``experiment --images``
    (not with ``--alpha filter``, which learns the channels as they are)."""
    return None if args.alpha == "filter" else _pixels.learning_channels(args.shared)


def _learning(learn, lr):
    """``learn`` with a diverged filter in place of the result, as the error that fails
    its pair (not a warning), and the options named as on the command line."""
    def wrapped(*args, **options):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".* diverged", RuntimeWarning)
            try:
                results = learn(*args, **options)
            except ValueError as exc:
                raise ValueError(str(exc).replace("kernel_size", "--kernel-size")) from None
        diverged = ValueError(f"the filter diverged (its weights are not finite): give a "
                              f"smaller --lr than {lr:g}")
        finite = [np.isfinite(r.kernel).all() and np.isfinite(r.bias).all()
                  for r in (results if isinstance(results, list) else [results])]
        if not isinstance(results, list):
            return results if finite[0] else diverged
        return [r if ok else diverged for r, ok in zip(results, finite)]
    return wrapped


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
    from .experiment import PAPER_FILTERS, PAPER_RATES, run_experiment, run_stride1_study
    from .report import table2_summary, write_all
    start = time.perf_counter()
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise SystemExit(f"revdeconv: --out: {args.out!r} exists and is not a folder")
    failed = []

    def fail(path, reason):             # as `filter` reports a file: one line, and go on
        failed.append((path, reason))
        print(f"revdeconv experiment: {path}: {reason}", file=sys.stderr)

    images = names = None
    if args.images:
        # the filters' size, or two blocks a side where the author's loop drops one
        least = np.max([k.shape for k in PAPER_FILTERS.values()], axis=0) * (
            2 if args.author_quirks else 1)
        files, loaded = _load_folder(args.images, fail)
        used = []
        for path, image in zip(files, loaded):
            if image.shape[0] < least[0] or image.shape[1] < least[1]:
                fail(path, f"is {image.shape[0]}x{image.shape[1]}, smaller than the "
                           f"{least[0]}x{least[1]} the experiment needs")
            else:
                used.append((path, image))
        if not used:
            raise SystemExit(f"revdeconv experiment: no image in {args.images!r} could be "
                             f"used ({len(failed)} failed)")
        names = [os.path.basename(path) for path, _ in used]
        images = [image for _, image in used]
    if args.method == "lstsq" and args.rates:
        print("revdeconv experiment: --rates is not used: lstsq has no learning rate "
              "(one fit per filter)", file=sys.stderr)
    result = run_experiment(images, rates=args.rates or PAPER_RATES, method=args.method,
                            author_quirks=args.author_quirks, n_threads=args.threads,
                            progress=_progress(sys.stderr), names=names, restore=args.restore)
    study = run_stride1_study(images, n_threads=args.threads) if args.stride1_study else None
    paths, plotted = write_all(result, args.out, command=getattr(args, "argv", None),
                               images_dir=args.images, left_out=failed, stride1=study)
    for path in paths:
        print(path)
    for line in table2_summary(result):
        print(line)
    if not plotted and args.method != "lstsq":      # lstsq has no rate to plot against
        print('revdeconv: matplotlib is not installed, so no plots were made; '
              'pip install "revdeconv[plot]" to get them', file=sys.stderr)
    if failed:
        print(f"revdeconv experiment: {len(images)} images used, {len(failed)} failed",
              file=sys.stderr)
    print(f"revdeconv: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 1 if failed else 0


def _info(args):
    from . import show_config
    show_config()
    cluster = getattr(args, "cluster", None)                 # --scheduler: its workers too
    return cluster.show_workers() if cluster is not None else 0


def _common(parser, out_help=None, outputs=True):
    """Options shared by the file-processing commands."""
    _cluster.add_options(parser)
    parser.add_argument("--threads", metavar="N", type=_options.threads, default=None,
                        help="threads computing (OpenMP) and decoding and encoding files "
                        "while the next ones compute (default: all cores unless "
                        "OMP_NUM_THREADS says otherwise; -1 all cores, -2 all but one; 1: "
                        "one file after another)")
    parser.add_argument("--memory", metavar="SIZE", type=_options.memory,
                        default=_options.DEFAULT_MEMORY,
                        help="pixels in memory at once, as float64, inputs and outputs: "
                        "files are read as many at a time as fit (a larger one alone); "
                        "bytes, or 256MB, 512MiB, 2GiB (default 1GiB)")
    parser.add_argument("--chunk", metavar="N", type=_options.whole_number, default=None,
                        help="at most N files in memory at once (default: as --memory allows)")
    parser.add_argument("--recursive", action="store_true",
                        help="enter subfolders of the folders given" + (
                            ", and mirror them under --out" if outputs else
                            "; files are paired by folder and name (sub/a)"))
    parser.add_argument("--quiet", action="store_true",
                        help="no progress and no summary unless something failed "
                        "(the bar is drawn on a terminal only; elsewhere a line a chunk)")
    if not outputs:
        parser.add_argument("--alpha", choices=_pixels.ALPHA, default=_pixels.DEFAULT_ALPHA,
                            help="keep, drop (default keep): learn the colour channels, "
                            "not alpha; filter: alpha as one more channel")
        return
    parser.add_argument("--out", metavar="DIR", required=True, help=out_help)
    parser.add_argument("--format", choices=sorted(FORMATS), default=DEFAULT_FORMAT,
                        help="output files: png or tiff at the input's bit depth (see "
                        f"--bits), or float npy (default {DEFAULT_FORMAT}); a multi-page "
                        "TIFF gives one output per page, OUT/<name>_p<N>, N from 1")
    parser.add_argument("--bits", type=int, choices=_pixels.BITS, default=None,
                        help="bits of the png or tiff outputs: 8, 16, or 32 for float32 "
                        "(tiff only); default: the input's (8 for 8-bit, 16 for 16-bit, "
                        "float32 tiff or 16-bit png for floating point, 8 for .npy)")
    parser.add_argument("--png-compression", metavar="0-9", type=_options.png_level,
                        default=DEFAULT_PNG_COMPRESSION,
                        help="zlib level of png outputs, 0 (none, fastest) to 9 (smallest); "
                        "default: as OpenCV, level 1 with zlib's run-length strategy, on "
                        "photographs as small as level 6 (Pillow's) and 3-4 times faster")
    parser.add_argument("--alpha", choices=_pixels.ALPHA, default=_pixels.DEFAULT_ALPHA,
                        help="keep (default): filter the colour channels and carry alpha "
                        "to the output's size (block mean, or zoom for deconvolve), so an "
                        "opaque image stays opaque; drop: write no alpha; filter: alpha "
                        "as one more channel")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo outputs that exist (default: skip them)")


def _undo_arguments(run, kernel_help):
    """The inputs and filter options that ``deconvolve`` and ``restore`` share."""
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    run.add_argument("--kernel", required=True, help=kernel_help)
    run.add_argument("--stride", type=_options.pair, metavar="S|SHxSW",
                     help="default: the file's, else the kernel size")
    run.add_argument("--activation", choices=ACTIVATIONS, help="default: the file's, else clip")


def run_command(args, command, progress=None):
    """``revdeconv bench``'s run for parsed options (``bench/run.py`` calls it): the
    folder cases run this command line (:func:`main`) in this process."""
    return _bench_command.run_command(args, command, progress, main)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="revdeconv", description="Learn a convolution "
                                     "filter from an image pair, and undo it.")
    parser.add_argument("--version", action="version", version=f"revdeconv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    kernel_help = (f"a filter name ({', '.join(filters.NAMES)}), a .npy kernel, or a .json "
                   "kernel file as `revdeconv learn` writes")

    run = commands.add_parser("filter", help="filter images with a kernel")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    run.add_argument("--kernel", required=True, help=kernel_help)
    run.add_argument("--stride", type=_options.pair, metavar="S|SHxSW",
                     help="default: the file's, else the kernel size")
    run.add_argument("--activation", choices=ACTIVATIONS, help="default: the file's, else clip")
    _common(run, "folder for the filtered images (OUT/<name>.<format>)")
    run.set_defaults(handler=_files(_commands.filter_files))

    run = commands.add_parser("learn", help="learn the filter from (original, filtered) pairs")
    run.add_argument("--original", nargs="+", required=True, metavar="DIR_OR_FILES")
    run.add_argument("--filtered", nargs="+", required=True, metavar="DIR_OR_FILES",
                     help="paired with --original by file name (without extension)")
    run.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    run.add_argument("--lr", type=_options.positive_number, default=0.1,
                     help="SGD learning rate (default 0.1)")
    run.add_argument("--epochs", type=_options.whole_number, default=1)
    run.add_argument("--kernel-size", type=_options.pair, metavar="K|KHxKW",
                     help="default: the size ratio")
    run.add_argument("--stride", type=_options.pair, metavar="S|SHxSW",
                     help="default: the kernel size")
    run.add_argument("--bias", action="store_true", help="learn a bias too")
    run.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULT_ACTIVATION)
    run.add_argument("--shared", action="store_true", help="one filter over all pairs in "
                     "order, the kernel carried over (the paper); default: one per pair")
    run.add_argument("--compare", metavar="NAME", type=_options.filter_name,
                     help="print the error against this filter")
    run.add_argument("--out", required=True, metavar="FILE.json", help="the kernel file")
    _common(run, outputs=False)
    run.set_defaults(handler=_learn)

    run = commands.add_parser("deconvolve", help="undo a filter (the paper's reverse solve)")
    _undo_arguments(run, kernel_help + "; a kernel-set file gives each image its own "
                    "filter, by name")
    eps = np.format_float_scientific(DEFAULT_EPS, trim="-", exp_digits=1)     # 1e-6
    run.add_argument("--eps", type=_options.non_negative_number, default=DEFAULT_EPS,
                     help="weights |w| <= eps are "
                     f"not divided by (default {eps})")
    run.add_argument("--output-size", type=_options.size, metavar="HxW",
                     help="default: the region the blocks cover")
    _common(run, "folder for the deconvolved images (OUT/<name>.<format>)")
    run.set_defaults(handler=_files(_commands.deconvolve_files))

    run = commands.add_parser("restore", help="undo a filter by regularized inversion "
                              "(restore: detail between blocks, deblurring at stride 1)")
    _undo_arguments(run, kernel_help + "; a kernel-set file gives each image its own "
                    "filter (and bias), by name")
    run.add_argument("--method", choices=restoration.METHODS, help="default: tikhonov (order "
                     "2) when the blocks do not overlap (stride >= kernel size), else tv")
    run.add_argument("--order", type=int, choices=(1, 2), help="tikhonov's prior: 1 gradient, "
                     "2 Laplacian (default 2)")
    run.add_argument("--weight", type=_options.positive_number, help="the regularization "
                     "weight (default: per image, from its estimated noise)")
    defaults = ", ".join(f"{m} {restoration.DEFAULT_MAX_ITER[m]}" for m in restoration.METHODS)
    run.add_argument("--max-iter", type=_options.whole_number, help=f"default: {defaults}")
    defaults = ", ".join(f"{m} {restoration.DEFAULT_TOL[m]:g}" for m in restoration.METHODS)
    run.add_argument("--tol", type=_options.non_negative_number, help="stop at this relative "
                     f"residual (tikhonov) or primal-dual gap (tv); default: {defaults}")
    run.add_argument("--output-size", type=_options.size, metavar="HxW",
                     help="default: the region the blocks cover")
    _common(run, "folder for the restored images (OUT/<name>.<format>)")
    run.set_defaults(handler=_files(_commands.restore_files))

    run = commands.add_parser("experiment", help="reproduce the paper's Tables 1 and 2")
    run.add_argument("--images", metavar="DIR", help="a folder of images (default: the ten "
                     "bundled samples); grey ones get three equal channels, alpha is dropped")
    run.add_argument("--rates", metavar="R", type=_options.positive_number, nargs="+",
                     help="learning rates (default: the paper's 19, 1.0 ... 0.01)")
    run.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    run.add_argument("--author-quirks", action="store_true",
                     help="reproduce the two quirks of the author's code")
    run.add_argument("--restore", action="store_true", help="add revdeconv.restore's and "
                     "blind bicubic's gains to Tables 1 and 2, and a leave-one-out run "
                     "(about a second per row, half a minute more, on the samples)")
    run.add_argument("--stride1-study", action="store_true", help="restore, the paper's "
                     "reverse solve, Wiener and Richardson-Lucy (scikit-image, tuned) on "
                     "three blurs at stride 1 (a few minutes)")
    run.add_argument("--out", metavar="DIR", default="revdeconv-experiment",
                     help="where to write tables, report and figures "
                     "(default: ./revdeconv-experiment)")
    run.add_argument("--threads", metavar="N", type=_options.threads, default=None,
                     help="OpenMP threads (default: OpenMP's, honouring OMP_NUM_THREADS)")
    run.set_defaults(handler=_experiment)

    info = commands.add_parser("info", help="how this installation computes (and the "
                               "workers of a Dask cluster, with --scheduler)")
    _cluster.add_options(info)
    info.set_defaults(handler=_info)

    run = commands.add_parser("bench", help="time the kernels against the NumPy fallback, "
                              "OpenCV and SciPy, and check the speed and memory targets")
    add_arguments(run)
    run.set_defaults(handler=lambda args: _bench_command.bench(args, main))
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv                          # bench records the command line as typed
    try:
        # a warning is not a line of source code; --scheduler's cluster is closed after
        with _options.warnings_as_lines(args.command), _cluster.session(args):
            return args.handler(args)
    except (ValueError, OSError) as exc:      # bad values or files: one line, not a traceback
        print(f"revdeconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:          # Ctrl-C: one line (a run's says what it did)
        if not isinstance(exc, Interrupted):
            print(f"revdeconv {args.command}: interrupted", file=sys.stderr)
        return 130
