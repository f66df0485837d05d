"""Build the compiled kernels of revdeconv.

OpenMP is detected, not assumed: before building, a tiny OpenMP program is
compiled and linked with the compiler in use. When that fails the kernels
are built serially (``prange`` becomes a plain loop) and the build log says
so. ``REVDECONV_NO_OPENMP=1`` forces a serial build; ``REVDECONV_REQUIRE_OPENMP=1``
turns a failed detection into an error.
"""

import os
import shutil
import sys
import tempfile
import textwrap

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = ["_convolve", "_learn", "_reverse", "_openmp_helpers"]

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
    """
)


def _flag_set(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def openmp_flags(compiler):
    """Return (compile, link) flags enabling OpenMP, or None if the compiler cannot."""
    if compiler.compiler_type == "msvc":
        candidates = (["/openmp"], [])
    else:
        candidates = (["-fopenmp"], ["-fopenmp"])
    tmp = tempfile.mkdtemp(prefix="revdeconv-omp-")
    try:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write(OPENMP_PROBE)
        objects = compiler.compile([source], output_dir=tmp, extra_postargs=candidates[0])
        compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=candidates[1])
    except Exception as exc:  # any compile or link failure means "no OpenMP here"
        print(f"revdeconv: OpenMP probe failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return candidates


class BuildExt(build_ext):
    """build_ext that adds OpenMP flags when the compiler supports them."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:              # compile the extensions side by side
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        if _flag_set("REVDECONV_NO_OPENMP"):
            flags = None
            print("revdeconv: REVDECONV_NO_OPENMP is set: building serially", file=sys.stderr)
        else:
            flags = openmp_flags(self.compiler)
            if flags is None:
                if _flag_set("REVDECONV_REQUIRE_OPENMP"):
                    raise RuntimeError(
                        "revdeconv: REVDECONV_REQUIRE_OPENMP is set but the compiler "
                        "cannot build OpenMP code"
                    )
                print("revdeconv: OpenMP not available: building serially", file=sys.stderr)
            else:
                print(f"revdeconv: building with OpenMP ({flags[0][0]})", file=sys.stderr)
        # No FMA contraction: the kernels must round exactly as the NumPy
        # fallback does (same operations, same order).
        base = [] if self.compiler.compiler_type == "msvc" else ["-ffp-contract=off"]
        for ext in self.extensions:
            ext.extra_compile_args = base + (flags[0] if flags else [])
            ext.extra_link_args = flags[1] if flags else []
        super().build_extensions()


extensions = [
    Extension(f"revdeconv.{name}", [os.path.join("src_c", f"{name}.pyx")]) for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src_c"],
        compiler_directives={"language_level": 3},
    ),
    cmdclass={"build_ext": BuildExt},
)
