"""The memory of ``revdeconv filter`` and ``revdeconv deconvolve`` over a large folder.

Writes ``--images`` PNG files (default 5,000) of 180x250 RGB, runs each command
over the folder in its own process, and prints its peak resident memory beside
what holding every image in memory at once would take. (The speed of the
batch pipeline is part of ``python bench/run.py``.)

    python bench/folder_memory.py
    python bench/folder_memory.py --images 500 --chunk 32     # quicker
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import revdeconv
from revdeconv.benchmark import pipeline_images
from revdeconv.io import save_image

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
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=64)
    args = parser.parse_args(argv)
    revdeconv.show_config()
    n = args.images
    print(f"\na folder of {n} PNG images 180x250 RGB, --chunk {args.chunk}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "originals")
        os.makedirs(folder)
        start = time.perf_counter()
        for k in range(n):
            save_image(os.path.join(folder, f"{k:05d}.png"),
                       pipeline_images(1, np.random.default_rng(k))[0])
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
