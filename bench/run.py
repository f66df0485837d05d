"""Run the benchmark and write bench/RESULTS.md, bench/results.json and bench/speedups.png.

The harness is :mod:`revdeconv.benchmark` (also ``revdeconv bench``), and
:mod:`revdeconv.bench_report` writes its results; this script only records them
beside itself. It takes the options of ``revdeconv bench`` (from
:mod:`revdeconv.cli`); the output paths default to this folder.

    python bench/run.py                        # 4k, threads 1 and 2, best of 3
    python bench/run.py --size paper --images 50    # a quick look
"""

import argparse
import os
import shlex
import sys

from revdeconv.cli import add_arguments, run_command

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUTS = {"json": os.path.join(HERE, "results.json"),
           "markdown": os.path.join(HERE, "RESULTS.md"),
           "figure": os.path.join(HERE, "speedups.png")}


def _step(done, total, label):
    print(f"[{done}/{total}] {label}", file=sys.stderr, flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, outputs=OUTPUTS)
    args = parser.parse_args(argv)
    try:
        return run_command(args, shlex.join(["python", sys.argv[0], *argv]), progress=_step)
    except ValueError as exc:
        print(f"{sys.argv[0]}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
