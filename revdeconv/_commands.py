"""What ``revdeconv filter``, ``deconvolve`` and ``restore`` compute, per chunk of files.

Each builder takes the parsed arguments, the ``--kernel`` read (a
:class:`~revdeconv.kernel_file.KernelSpec`, or a dict of them by file name for
a kernel-set file) and ``run_for(command, output_scale)``, which makes the
command's :class:`~revdeconv._runner.Run` (in :mod:`revdeconv.cli`, where the
options that every command shares are read); it hands its compute function
to :meth:`Run.process <revdeconv._runner.Run.process>` and returns the exit
status.
"""

from . import _pixels
from ._validation import DEFAULT_ACTIVATION

__all__ = ["filter_files", "deconvolve_files", "restore_files"]


def _area(stride, spec):
    """Pixels of a block: the stride's, else the kernel's."""
    rows, cols = (stride, stride) if isinstance(stride, int) else stride or spec.kernel.shape[1:]
    return rows * cols


def filter_files(args, spec, run_for):
    """``revdeconv filter``: every file through :func:`revdeconv.batch.convolve`."""
    from .batch import convolve
    if isinstance(spec, dict):
        raise ValueError(f"--kernel: {args.kernel} holds one filter per image; "
                         "filter takes one filter")
    run = run_for("filter", 1 / _area(args.stride or spec.stride, spec))
    options = dict(stride=args.stride or spec.stride, bias=spec.bias,
                   activation=args.activation or spec.activation or DEFAULT_ACTIVATION,
                   n_threads=run.compute_threads(args.threads))
    return run.process(args.inputs, lambda images: convolve(images, spec.kernel, **options),
                       carry=lambda path, alpha, shape: _pixels.block_mean(
                           alpha, spec.kernel.shape[1:], options["stride"]))


def _reverse_files(args, spec, run_for, command, solve, group, light):
    """``deconvolve`` and ``restore``: each file with its filter (a kernel set's by
    file name), the files of one ``group(spec)`` key solved in one call by
    ``solve(images, specs, stride, activation, n_threads)``; alpha zoomed as the image
    was. ``light``: the solve takes little next to the files' decoding and encoding
    (see :meth:`revdeconv._runner.Run.compute_threads`)."""
    specs = spec.values() if isinstance(spec, dict) else [spec]
    run = run_for(command, max(_area(args.stride or s.stride, s) for s in specs))
    n_threads = run.compute_threads(args.threads) if light else args.threads

    def kernel_for(path):
        if not isinstance(spec, dict):
            return spec
        if run.name(path) not in spec:  # each image with its own filter, found by name
            raise ValueError(f"no filter named {run.name(path)!r} in {args.kernel}")
        return spec[run.name(path)]

    def compute(images, specs):         # one call per group of settings
        calls, outputs = {}, [None] * len(images)
        for n, own in enumerate(specs):     # each file with its own filter's settings
            stride = args.stride or own.stride
            activation = args.activation or own.activation or DEFAULT_ACTIVATION
            calls.setdefault((stride, activation, group(own)), []).append(n)
        for (stride, activation, _), members in calls.items():
            results = solve([images[n] for n in members], [specs[n] for n in members],
                            stride, activation, n_threads)
            for n, result in zip(members, results):
                outputs[n] = result
        return outputs

    def carry(path, alpha, shape):      # alpha zoomed as the image was, to its output size
        own = kernel_for(path)
        return _pixels.zoom_alpha(alpha, args.stride or own.stride or own.kernel.shape[1:],
                                  shape)

    return run.process(args.inputs, compute, attach=kernel_for, carry=carry)


def deconvolve_files(args, spec, run_for):
    """``revdeconv deconvolve``: :func:`revdeconv.batch.deconvolve`, one call per
    stride, activation and kernel size (each file with its own kernel)."""
    from .batch import deconvolve

    def solve(images, specs, stride, activation, n_threads):
        return deconvolve(images, [s.kernel for s in specs], stride=stride,
                          activation=activation, eps=args.eps,
                          output_shape=args.output_size, n_threads=n_threads)
    return _reverse_files(args, spec, run_for, "deconvolve", solve, lambda s: s.kernel.shape,
                          light=True)


def restore_files(args, spec, run_for):
    """``revdeconv restore``: :func:`revdeconv.restore`, one call per filter (its
    bias too), stride and activation; each image gets its own weight (from its
    estimated noise) unless ``--weight`` is given."""
    from .restoration import restore

    def solve(images, specs, stride, activation, n_threads):    # iterations: all threads
        own = specs[0]
        return restore(images, own.kernel, stride=stride, bias=own.bias,
                       activation=activation, method=args.method, order=args.order,
                       weight=args.weight, max_iter=args.max_iter, tol=args.tol,
                       output_shape=args.output_size, n_threads=n_threads)
    return _reverse_files(args, spec, run_for, "restore", solve, id, light=False)
