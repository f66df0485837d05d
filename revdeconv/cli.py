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
"""

import argparse
import os
import shlex
import sys
import time

import numpy as np

from ._runner import DEFAULT_CHUNK, FORMATS, Run, by_channels, each_or_all, expand_inputs, stem


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


def _as_rgb(image):
    """Grey becomes three equal channels; alpha is dropped."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3]


def _load_folder(folder):
    from .io import load_image
    if not os.path.isdir(folder):
        raise SystemExit(f"revdeconv: --images: {folder!r} is not a folder")
    files = expand_inputs([folder])
    if not files:
        raise SystemExit(f"revdeconv: no image files in {folder!r}")
    print(f"revdeconv: {len(files)} images, in this order: "
          f"{', '.join(os.path.basename(f) for f in files)}", file=sys.stderr)
    return [_as_rgb(load_image(path)) for path in files]


def _kernel(value):
    """``--kernel``: a filter name, a .npy or .json kernel file (or kernel-set file)."""
    from . import filters
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


def _positive(value):
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _run(args, command):
    """The run of a command; its outputs go to the folder ``--out`` if it writes images."""
    out = args.out if hasattr(args, "format") else None
    return Run(command, out=out, fmt=getattr(args, "format", "png"),
               overwrite=getattr(args, "overwrite", False), quiet=args.quiet, chunk=args.chunk)


def _filter(args):
    from .batch import convolve
    spec = _kernel(args.kernel)
    if isinstance(spec, dict):
        raise SystemExit("revdeconv filter: --kernel holds one filter per image; "
                         "filter takes one filter")
    options = dict(stride=args.stride or spec.stride, bias=spec.bias,
                   activation=args.activation or spec.activation or "clip",
                   n_threads=args.threads)
    run = _run(args, "filter")
    for loaded in run.chunks(run.pending(expand_inputs(args.inputs))):
        _write_outputs(run, loaded, lambda items: convolve([item[1] for item in items],
                                                            spec.kernel, **options))
    return run.finish()


def _write_outputs(run, loaded, compute):
    """``compute`` on each group of loaded (path, array, ...) items that one compiled
    call can take, and each result written as that path's output."""
    for group in by_channels(loaded):
        for (path, *_), output in each_or_all(run, group, compute):
            run.write(path, output)


def _deconvolve(args):
    from .batch import deconvolve
    spec = _kernel(args.kernel)
    run = _run(args, "deconvolve")
    per_image = isinstance(spec, dict)
    for loaded in run.chunks(run.pending(expand_inputs(args.inputs))):
        if per_image:       # each image with its own filter, found by name
            matched = []
            for path, array in loaded:
                if stem(path) in spec:
                    matched.append((path, array, spec[stem(path)]))
                else:
                    run.fail(path, f"no filter named {stem(path)!r} in {args.kernel}")
            loaded = matched
        else:
            loaded = [(path, array, spec) for path, array in loaded]
        _write_outputs(run, loaded, lambda items: deconvolve(
            [item[1] for item in items], [item[2].kernel for item in items],
            stride=args.stride or items[0][2].stride,
            activation=args.activation or items[0][2].activation or "clip",
            eps=args.eps, output_shape=args.output_size, n_threads=args.threads))
    return run.finish()


def _learn(args):
    from .batch import learn
    from .kernel_file import save_kernel, save_kernels
    run = _run(args, "learn")
    originals, filtered = _by_stem(run, args.original), _by_stem(run, args.filtered)
    for name in sorted(set(originals) ^ set(filtered)):
        side = "filtered" if name in originals else "original"
        run.fail(originals.get(name) or filtered.get(name), f"no {side} file named {name!r}")
    names = sorted(set(originals) & set(filtered))
    options = dict(kernel_size=args.kernel_size, stride=args.stride, lr=args.lr,
                   epochs=args.epochs, bias=args.bias, activation=args.activation,
                   method=args.method, n_threads=args.threads)
    if args.shared and (args.epochs > 1 or args.method == "lstsq"):
        # an epoch is a pass over every pair; a least-squares fit sees every pair at once
        run.chunk = max(len(names), 1)
    results, shared = {}, None
    for items in run.chunks([(originals[n], filtered[n]) for n in names]):
        for group in by_channels(items):
            if args.shared:
                channels = group[0][1].shape[2] if group[0][1].ndim == 3 else 1
                if shared is not None and shared.kernel.shape[0] != channels:
                    for item in group:
                        run.fail(item[0], f"has {channels} channels; the shared filter, "
                                          f"learned first, has {shared.kernel.shape[0]}")
                    continue
                try:
                    shared = learn([i[1] for i in group], [i[2] for i in group], shared=True,
                                   init=shared if args.method == "sgd" else None, **options)
                    run.succeed(len(group))
                except ValueError as exc:
                    for item in group:
                        run.fail(item[0], str(exc))
                continue
            compute = (lambda items: learn([i[1] for i in items], [i[2] for i in items],
                                           **options))
            for item, result in each_or_all(run, group, compute):
                results[stem(item[0])] = result
                run.succeed()
    if args.shared and shared is not None:
        save_kernel(args.out, shared)
        _print_filter("shared filter", shared, args.compare)
    elif results:
        save_kernels(args.out, results)
        print(f"{len(results)} filters written to {args.out}")
        shapes = {}
        for result in results.values():
            shapes.setdefault(result.kernel.shape, []).append(result.kernel)
        for shape, kernels in shapes.items():
            _print_filter(f"mean of the {len(kernels)} {shape[0]}-channel filters",
                          np.mean(kernels, axis=0), args.compare)
    return run.finish()


def _by_stem(run, specs):
    """Input files by name (stem); a second file with a name is reported, not used."""
    files = {}
    for path in expand_inputs(specs):
        if stem(path) in files:
            run.fail(path, f"another input, {files[stem(path)]}, has the name {stem(path)!r}")
        else:
            files[stem(path)] = path
    return files


def _print_filter(title, result, compare):
    """Print a filter per channel, and its error against the named filter ``compare``."""
    from . import filters, metrics
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


def _bench(args):
    from .benchmark import run_command
    bar = _progress(sys.stderr)
    # padded: a shorter label must cover the longer one before it
    return run_command(args, shlex.join(["revdeconv", *args.argv]),
                       progress=lambda done, total, label: bar(done, total, f"{label:<40}"))


def _common(parser, out_help=None, outputs=True):
    """Options shared by the file-processing commands."""
    parser.add_argument("--threads", metavar="N", type=int, default=None,
                        help="OpenMP threads (default: OpenMP's, all cores unless "
                        "OMP_NUM_THREADS says otherwise)")
    parser.add_argument("--chunk", metavar="N", type=_positive, default=DEFAULT_CHUNK,
                        help=f"files in memory at once (default {DEFAULT_CHUNK})")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no summary unless something failed")
    if outputs:
        parser.add_argument("--out", metavar="DIR", required=True, help=out_help)
        parser.add_argument("--format", choices=sorted(FORMATS), default="png",
                            help="output files: 8-bit png or tiff, or float npy (default png)")
        parser.add_argument("--overwrite", action="store_true",
                            help="redo outputs that exist (default: skip them)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="revdeconv", description="Learn a convolution "
                                     "filter from an image pair, and undo it.")
    commands = parser.add_subparsers(dest="command", required=True)
    kernel_help = ("a filter name (blur, sharpen, edge), a .npy kernel, or a .json kernel "
                   "file as `revdeconv learn` writes")

    run = commands.add_parser("filter", help="filter images with a kernel")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    run.add_argument("--kernel", required=True, help=kernel_help)
    run.add_argument("--stride", type=_positive, help="default: the file's, else the kernel size")
    run.add_argument("--activation", choices=["clip", "relu", "identity"],
                     help="default: the file's, else clip")
    _common(run, "folder for the filtered images (OUT/<name>.<format>)")
    run.set_defaults(handler=_filter)

    run = commands.add_parser("learn", help="learn the filter from (original, filtered) pairs")
    run.add_argument("--original", nargs="+", required=True, metavar="DIR_OR_FILES")
    run.add_argument("--filtered", nargs="+", required=True, metavar="DIR_OR_FILES",
                     help="paired with --original by file name (without extension)")
    run.add_argument("--method", choices=["sgd", "lstsq"], default="sgd")
    run.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    run.add_argument("--epochs", type=_positive, default=1)
    run.add_argument("--kernel-size", type=_positive, help="default: the size ratio")
    run.add_argument("--stride", type=_positive, help="default: the kernel size")
    run.add_argument("--bias", action="store_true", help="learn a bias too")
    run.add_argument("--activation", choices=["clip", "relu", "identity"], default="clip")
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
    run.add_argument("--stride", type=_positive, help="default: the file's, else the kernel size")
    run.add_argument("--activation", choices=["clip", "relu", "identity"],
                     help="default: the file's, else clip")
    run.add_argument("--eps", type=float, default=1e-6, help="weights |w| <= eps are not "
                     "divided by (default 1e-6)")
    run.add_argument("--output-size", type=_size, metavar="HxW",
                     help="default: the region the blocks cover")
    _common(run, "folder for the deconvolved images (OUT/<name>.<format>)")
    run.set_defaults(handler=_deconvolve)

    run = commands.add_parser("experiment", help="reproduce the paper's Tables 1 and 2")
    run.add_argument("--images", metavar="DIR", help="a folder of images (default: the ten "
                     "bundled samples); grey ones get three equal channels, alpha is dropped")
    run.add_argument("--rates", metavar="R", type=float, nargs="+",
                     help="learning rates (default: the paper's 19, 1.0 ... 0.01)")
    run.add_argument("--method", choices=["sgd", "lstsq"], default="sgd")
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

    from .benchmark import add_arguments
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
