"""The batch pipeline, images per second, and the memory of a large folder run.

1. Through the batch API (``revdeconv.batch``): filter (edge detection, 3x3,
   stride 3), learn one filter per image (SGD, one pass), deconvolve each image
   with its own filter, and MAE against the original, for N images of 180x250
   RGB float32 (default 1,000), on the compiled backend with 1 and 2 threads
   and the NumPy fallback (on the first ``--numpy-images`` images: its rate is
   per image, and 1,000 images would take minutes). Best of ``--repeat`` runs.
2. ``revdeconv filter`` and ``revdeconv deconvolve`` over a folder of
   ``--folder-images`` PNG files (default 5,000), each run in its own process,
   and their peak resident memory (``ru_maxrss``), beside what holding every
   image in memory at once would take.

    python bench/bench_pipeline.py
    python bench/bench_pipeline.py --images 200 --folder-images 500   # quicker
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import revdeconv
from _timing import best_time  # bench/_timing.py, beside this script
from revdeconv import batch, data, filters
from revdeconv.io import save_image


def pipeline(stack, backend, n_threads):
    options = dict(backend=backend, n_threads=n_threads)
    filtered = batch.convolve(stack, filters.EDGE, **options)
    learned = batch.learn(stack, filtered, lr=0.1, **options)
    restored = batch.deconvolve(filtered, learned, output_shape=stack.shape[1:3], **options)
    return batch.mae(restored, stack)


def images(n, rng):
    """n RGB 180x250 float32 images: the bundled samples, flipped and shifted."""
    samples = data.samples()
    out = np.empty((n, 180, 250, 3), dtype=np.float32)
    for k in range(n):
        image = samples[k % len(samples)]
        if (k // len(samples)) % 2:
            image = image[:, ::-1]
        out[k] = np.roll(image, (int(rng.integers(180)), int(rng.integers(250))), axis=(0, 1))
    return out


# The child's own peak: VmHWM of its address space. (ru_maxrss would not do: Linux
# carries the parent's peak at fork into the child's ru_maxrss.)
_CHILD = """
import sys
from revdeconv.cli import main
status = main(sys.argv[1:])
with open("/proc/self/status") as f:
    print(next(line.split()[1] for line in f if line.startswith("VmHWM:")))   # KiB
sys.exit(status)
"""


def peak_memory_mib(argv):
    """Run the ``revdeconv`` command ``argv`` in a fresh process: (its peak RSS in MiB,
    seconds)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, *argv], check=True,
                          capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--numpy-images", type=int, default=100)
    parser.add_argument("--folder-images", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--only", choices=["pipeline", "folder"],
                        help="run one of the two parts")
    args = parser.parse_args(argv)
    revdeconv.show_config()
    if args.only != "folder":
        run_pipeline(args)
    if args.only != "pipeline":
        run_folder(args)


def run_pipeline(args):
    rng = np.random.default_rng(0)
    stack = images(args.images, rng)

    print(f"\n1. pipeline (filter, learn, deconvolve, MAE) on {args.images} images "
          f"180x250 RGB float32, best of {args.repeat}")
    rows = []
    for n_threads in (1, 2):
        seconds = best_time(lambda: pipeline(stack, "compiled", n_threads), args.repeat)
        rows.append((f"compiled, {n_threads} thread{'s' * (n_threads > 1)}", args.images,
                     seconds))
    subset = stack[:args.numpy_images]
    seconds = best_time(lambda: pipeline(subset, "numpy", None), 1)
    rows.append(("NumPy fallback", len(subset), seconds))
    numpy_rate = rows[-1][1] / rows[-1][2]
    print(f"{'backend':<22}{'images':>8}{'seconds':>10}{'images/s':>11}{'vs NumPy':>10}")
    for name, count, seconds in rows:
        rate = count / seconds
        print(f"{name:<22}{count:>8}{seconds:>10.3f}{rate:>11.1f}{rate / numpy_rate:>9.1f}x")
    print(f"2 threads / 1 thread: {rows[0][2] / rows[1][2]:.2f}x")


def run_folder(args):
    n = args.folder_images
    print(f"\n2. a folder of {n} PNG images 180x250 RGB, --chunk {args.chunk}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "originals")
        os.makedirs(folder)
        start = time.perf_counter()
        for k in range(n):
            save_image(os.path.join(folder, f"{k:05d}.png"),
                       images(1, np.random.default_rng(k))[0])
        print(f"(wrote the folder in {time.perf_counter() - start:.0f} s)")
        filtered = os.path.join(tmp, "filtered")
        runs = [("revdeconv filter", ["filter", folder, "--kernel", "blur", "--out", filtered,
                                      "--chunk", str(args.chunk), "--quiet"]),
                ("revdeconv deconvolve", ["deconvolve", filtered, "--kernel", "blur",
                                          "--out", os.path.join(tmp, "restored"),
                                          "--output-size", "180x250",
                                          "--chunk", str(args.chunk), "--quiet"])]
        baseline, _ = peak_memory_mib(["info"])
        print(f"{'revdeconv info':<22} peak RSS {baseline:7.1f} MiB  (the interpreter, "
              f"NumPy, Pillow and the package)")
        for name, command in runs:
            peak, seconds = peak_memory_mib(command)
            print(f"{name:<22} peak RSS {peak:7.1f} MiB  ({seconds:.1f} s, "
                  f"{n / seconds:.0f} images/s)")
        everything = n * 180 * 250 * 3 * 8 / 2**20
        print(f"holding all {n} images as float64 at once would take {everything:.0f} MiB")


if __name__ == "__main__":
    main()
