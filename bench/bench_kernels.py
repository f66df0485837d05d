"""Compiled kernels vs the NumPy fallback, on one machine, in one run.

Times the three kernels on a 2160x3840 RGB float32 image (the default; see
``--height/--width``): convolution at stride 1 and stride 3, one SGD pass,
and the reverse solve, for the compiled backend on each thread count asked
for and for the NumPy fallback. Each time is the best of ``--repeat`` runs
(the NumPy SGD pass, which takes seconds, runs once). Speed is reported as
ratios measured in this one run: the machine may be shared and noisy, so
compare the ratios, not the seconds, between runs.

    python bench/bench_kernels.py                 # 1 and 2 threads
    python bench/bench_kernels.py --threads 1 2 4 --repeat 5
"""

import argparse

import numpy as np

import revdeconv
from _timing import best_time  # bench/_timing.py, beside this script
from revdeconv import filters


def cases(image):
    """(name, function of (backend, n_threads)) for each kernel benchmarked."""
    filtered = revdeconv.convolve(image, filters.BLUR)
    return [
        ("convolve stride 1", lambda b, t: revdeconv.convolve(
            image, filters.SHARPEN, stride=1, backend=b, n_threads=t)),
        ("convolve stride 3", lambda b, t: revdeconv.convolve(
            image, filters.SHARPEN, backend=b, n_threads=t)),
        ("learn_filter sgd, 1 pass", lambda b, t: revdeconv.learn_filter(
            image, filtered, lr=0.01, backend=b, n_threads=t)),
        ("deconvolve stride 3", lambda b, t: revdeconv.deconvolve(
            filtered, filters.BLUR, output_shape=image.shape[:2], backend=b, n_threads=t)),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args(argv)

    revdeconv.show_config()
    rng = np.random.default_rng(0)
    image = rng.random((args.height, args.width, 3), dtype=np.float64).astype(args.dtype)
    print(f"\nimage {image.shape} {image.dtype}; best of {args.repeat} "
          f"(NumPy SGD: 1 run); times in seconds\n")
    columns = [f"compiled {t}T" for t in args.threads] + ["numpy"]
    header = f"{'kernel':<26}" + "".join(f"{c:>13}" for c in columns)
    header += "".join(f"{'numpy/' + str(t) + 'T':>11}" for t in args.threads)
    if len(args.threads) > 1:
        header += f"{'1T/' + str(args.threads[-1]) + 'T':>9}"
    print(header)
    for name, run in cases(image):
        compiled = [best_time(lambda: run("compiled", t), args.repeat) for t in args.threads]
        numpy_repeat = 1 if "sgd" in name else args.repeat
        fallback = best_time(lambda: run("numpy", None), numpy_repeat)
        line = f"{name:<26}" + "".join(f"{s:>13.4f}" for s in compiled + [fallback])
        line += "".join(f"{fallback / s:>10.1f}x" for s in compiled)
        if len(args.threads) > 1:
            line += f"{compiled[0] / compiled[-1]:>8.2f}x"
        print(line, flush=True)
    reference = scipy_reference(image, args.repeat)
    if reference is not None:
        print(f"\nscipy.ndimage.correlate, same 3x3 filter, every pixel (stride 1): "
              f"{reference:.4f} s  (pip install 'revdeconv[bench]')")


def scipy_reference(image, repeat):
    """SciPy's correlation of each channel, the nearest established reference, if installed."""
    try:
        from scipy import ndimage
    except ImportError:
        return None
    kernel = filters.SHARPEN.astype(image.dtype)
    return best_time(lambda: [ndimage.correlate(image[..., c], kernel)
                              for c in range(image.shape[2])], repeat)


if __name__ == "__main__":
    main()
