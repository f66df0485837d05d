"""The memory of ``revdeconv filter`` and ``revdeconv deconvolve`` over a large folder.

Writes ``--images`` PNG files (default 80 photographs' worth: 1536x2048 RGB),
runs each command over the folder in its own process with ``--memory``
(default 256MiB), and prints its peak resident memory above the interpreter's
(the same command on one small image) beside the budget and beside what
holding every image in memory at once would take. (The speed of the batch
pipeline is part of ``python bench/run.py``.)

    python bench/folder_memory.py                                  # 80 x 1536x2048
    python bench/folder_memory.py --images 5000 --size 180x250     # many small ones
    python bench/folder_memory.py --images 20 --memory 128MiB      # quicker
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import revdeconv
from revdeconv._options import human_bytes, memory, size
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


def photograph(shape, rng):
    """A smooth picture with some grain: compresses as a photograph does, not as noise."""
    rows, cols = (np.linspace(0, 1, n) for n in shape)
    tint = rng.random(3) * 0.6 + 0.4
    image = np.sqrt(rows[:, None, None] * cols[None, :, None]) * tint
    return np.clip(image + 0.03 * rng.standard_normal((*shape, 3)), 0, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--size", type=size, default=(1536, 2048), metavar="HxW")
    parser.add_argument("--memory", type=memory, default=256 * 2**20, metavar="SIZE")
    args = parser.parse_args(argv)
    revdeconv.show_config()
    n, (height, width) = args.images, args.size
    budget = args.memory
    print(f"\na folder of {n} PNG images {height}x{width} RGB, --memory {human_bytes(budget)}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "originals")
        os.makedirs(folder)
        start = time.perf_counter()
        for k in range(n):
            save_image(os.path.join(folder, f"{k:05d}.png"),
                       photograph((height, width), np.random.default_rng(k)))
        print(f"(wrote the folder in {time.perf_counter() - start:.0f} s)")
        save_image(os.path.join(tmp, "one.png"), photograph((30, 36), np.random.default_rng()))
        filtered = os.path.join(tmp, "filtered")
        common = ["--memory", str(budget), "--quiet"]
        runs = [("revdeconv filter", ["filter", folder, "--kernel", "blur", "--out", filtered,
                                      *common]),
                ("revdeconv deconvolve", ["deconvolve", filtered, "--kernel", "blur",
                                          "--out", os.path.join(tmp, "restored"),
                                          "--output-size", f"{height}x{width}", *common])]
        baseline, _ = peak_memory_mib(["filter", os.path.join(tmp, "one.png"), "--kernel",
                                       "blur", "--out", os.path.join(tmp, "one"), "--quiet"])
        print(f"{'the interpreter':<22} peak RSS {baseline:7.1f} MiB  (Python, NumPy, Pillow "
              f"and the package: the command on one small image)")
        limit = 1.5 * budget / 2**20
        for name, command in runs:
            peak, seconds = peak_memory_mib(command)
            above = peak - baseline
            print(f"{name:<22} peak RSS {peak:7.1f} MiB, {above:6.1f} MiB above the "
                  f"interpreter: {above / (budget / 2**20):.2f} x the budget "
                  f"({'within' if above <= limit else 'OVER'} 1.5 x; {seconds:.1f} s, "
                  f"{n / seconds:.1f} images/s)")
        everything = n * height * width * 3 * 8 / 2**20
        print(f"holding all {n} images as float64 at once would take {everything:.0f} MiB")


if __name__ == "__main__":
    main()
