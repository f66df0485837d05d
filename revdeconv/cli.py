"""The ``revdeconv`` command (also ``python -m revdeconv``).

    revdeconv experiment [--images DIR] [--rates R ...] [--method sgd|lstsq]
                         [--author-quirks] [--out DIR] [--threads N]
    revdeconv info
"""

import argparse
import os
import sys
import time

import numpy as np


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
    from PIL import Image

    from .io import load_image
    extensions = set(Image.registered_extensions())
    names = sorted(name for name in os.listdir(folder)
                   if os.path.splitext(name)[1].lower() in extensions)
    if not names:
        raise SystemExit(f"revdeconv: no image files in {folder!r}")
    return [_as_rgb(load_image(os.path.join(folder, name))) for name in names]


def _experiment(args):
    from .experiment import PAPER_RATES, run_experiment
    from .report import write_all
    start = time.perf_counter()
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


def _info(args):
    from . import show_config
    show_config()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="revdeconv", description="Learn a convolution "
                                     "filter from an image pair, and undo it.")
    commands = parser.add_subparsers(dest="command", required=True)
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
    args = parser.parse_args(argv)
    args.handler(args)
    return 0
