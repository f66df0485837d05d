"""Where the time of the stride-1 convolution goes, beside ``cv2.filter2D``.

The stride-1 convolution on one thread is held to within 1.2x of OpenCV's
time (``revdeconv bench``), with a fresh output and with ``out=``. This times the
parts of ``revdeconv.convolve(image, SHARPEN, stride=1, n_threads=1)`` on the
4k image of the benchmark, in one process, each the best of ``--repeat`` runs:
the call writing into an output already faulted in (``out=``), faulting in a
fresh output of that size, what a separate NaN check of the input would cost
(the convolution makes it as it sums), the whole call with and without the
check, and cv2 with and without its output given.

    python bench/profile_stride1.py            # needs opencv-python-headless ([bench])
"""

import argparse
import time

import numpy as np

import revdeconv
from revdeconv import filters
from revdeconv._images import check_finite


def best(call, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    image = np.random.default_rng(0).random((2160, 3840, 3), dtype=np.float32)
    kernel = filters.SHARPEN.astype(np.float32)
    out = np.empty((2158, 3838, 3), dtype=np.float32)
    given = np.empty_like(image)

    parts = [
        ("revdeconv.convolve, out= (faulted in)", lambda: revdeconv.convolve(
            image, filters.SHARPEN, stride=1, n_threads=1, out=out)),
        ("fault in a fresh output (np.empty + touch)",
         lambda: np.empty(out.size, np.float32)[::1024].fill(0)),
        ("a separate NaN check of the input", lambda: check_finite(image, "image", 1)),
        ("revdeconv.convolve, 1 thread", lambda: revdeconv.convolve(
            image, filters.SHARPEN, stride=1, n_threads=1)),
        ("  the same, nonfinite='propagate'", lambda: revdeconv.convolve(
            image, filters.SHARPEN, stride=1, n_threads=1, nonfinite="propagate")),
        ("cv2.filter2D, 1 thread", lambda: cv2.filter2D(
            image, -1, kernel, borderType=cv2.BORDER_CONSTANT)),
        ("  the same, output given", lambda: cv2.filter2D(
            image, -1, kernel, dst=given, borderType=cv2.BORDER_CONSTANT)),
        ("np.copyto of the image (the memory floor)", lambda: np.copyto(given, image)),
    ]
    for _, call in parts:                 # warm up
        call()
    for name, call in parts:
        print(f"{name:<44}{best(call, args.repeat) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
