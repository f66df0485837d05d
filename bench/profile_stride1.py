"""Where the time of the stride-1 convolution goes, beside ``cv2.filter2D``.

The one target of ``revdeconv bench`` not met on the project's 2-core machine
is the stride-1 convolution against OpenCV on one thread. This times the
parts of ``revdeconv.convolve(image, SHARPEN, stride=1, n_threads=1)`` on the
4k image of the benchmark, in one process, each the best of ``--repeat`` runs:
the compiled kernel writing into an output already faulted in, faulting in a
fresh output of that size, the NaN check of the input, the whole call with
and without that check, and cv2 with and without its output given.

    python bench/profile_stride1.py            # needs opencv-python-headless ([bench])
"""

import argparse
import time

import numpy as np

import revdeconv
from revdeconv import _compiled_backend, _convolve, filters
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
    weights = np.ascontiguousarray(np.broadcast_to(kernel, (3, 3, 3)))
    bias = np.zeros(3, dtype=np.float32)
    # The kernel's own arguments, as _compiled_backend.convolve lays them out.
    src, src_geom = _compiled_backend._pack([image])
    dst, dst_geom, _ = _compiled_backend._allocate([(2158, 3838)], 3, np.float32)
    taps = np.concatenate([weights.reshape(3, 9).T, bias[None, :]])
    tiled = np.ascontiguousarray(np.tile(taps, (1, _compiled_backend._DENSE_CHUNK_PIXELS)))
    no_scratch = np.empty((1, 0), dtype=np.float32)
    given = np.empty_like(image)

    parts = [
        ("compiled kernel, output faulted in", lambda: _convolve.convolve(
            src, src_geom, weights, bias, dst, dst_geom, tiled, no_scratch, 1, 1, 2, 1)),
        ("fault in a fresh output (np.empty + touch)",
         lambda: np.empty(dst.size, np.float32)[::1024].fill(0)),
        ("NaN check of the input", lambda: check_finite(image, "image", 1)),
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
