#!/usr/bin/env bash
# Build the compiled kernels with AddressSanitizer and UndefinedBehaviorSanitizer
# (gcc) in a scratch copy of the tree, and run the whole test suite against them.
# Any out-of-bounds access, use-after-free or undefined behaviour aborts the run.
#
#   tools/sanitize.sh    # needs gcc, setuptools>=77, Cython 3, pytest and hypothesis
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
    | (cd "$ROOT" && xargs -0 cp --parents -t "$WORK")
cd "$WORK"
FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
REVDECONV_DEBUG=1 CFLAGS="$FLAGS" LDFLAGS="-fsanitize=address,undefined" \
    python setup.py build_ext --inplace >build.log 2>&1 || { tail -20 build.log; exit 1; }
# Python itself is not instrumented: preload the runtimes, and leave leak
# checking off (the interpreter keeps memory alive at exit on purpose).
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
PYTHONPATH="$WORK" python -m pytest tests -q -p no:cacheprovider -x "$@"
echo "sanitize: ASan+UBSan clean"
