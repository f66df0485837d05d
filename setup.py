"""Build the compiled kernels of revdeconv.

OpenMP is detected, not assumed: before building, a tiny OpenMP program is
compiled and linked with the compiler in use (``-fopenmp`` for gcc and clang,
``-Xpreprocessor -fopenmp -lomp`` for Apple clang with libomp installed,
``/openmp`` for MSVC). When that fails the kernels are built serially
(``prange`` becomes a plain loop) and the build log says so.
``REVDECONV_NO_OPENMP=1`` forces a serial build; ``REVDECONV_REQUIRE_OPENMP=1``
turns a failed detection into an error. What was decided is written into the
package (``revdeconv/_build_info.py``) and shown by ``revdeconv info``.

``REVDECONV_DEBUG=1`` makes a debug build: Cython's bounds and wraparound
checks on, the wrappers' assertions on, ``-O0 -g`` and C assertions; CI runs
the whole test suite on it.
"""

import os
import shutil
import sys
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = ["_convolve", "_learn", "_reverse", "_measure", "_openmp_helpers", "_restore",
           "_png_filter", "_block_cache", "_levels"]
# The one kernel built against NumPy's C API (its allocator interface, NumPy >= 1.22).
NUMPY_API = {"_block_cache"}
# The C the kernels include (cdef extern from "_simd.h"): a change rebuilds them.
HEADERS = [os.path.join("src_c", name)
           for name in ("_simd.h", "_simd_typed.h", "_simd_correlate.h")]

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


def _openmp_candidates(compiler):
    """(compile flags, link flags) to try, in order, for this compiler."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":            # Apple clang needs libomp, found or not
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    return candidates


def openmp_flags(compiler):
    """Return (compile, link) flags that build and link OpenMP code, or None."""
    for flags in _openmp_candidates(compiler):
        tmp = tempfile.mkdtemp(prefix="revdeconv-omp-")
        try:
            source = os.path.join(tmp, "probe.c")
            with open(source, "w") as f:
                f.write(OPENMP_PROBE)
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=flags[0])
            compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=flags[1])
            return flags
        except Exception as exc:  # any compile or link failure means "not with these flags"
            print(f"revdeconv: OpenMP probe with {' '.join(flags[0])} failed "
                  f"({type(exc).__name__}: {exc})", file=sys.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return None


class BuildExt(build_ext):
    """build_ext that adds OpenMP flags when the compiler supports them."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:              # compile the extensions side by side
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        if _flag_set("REVDECONV_NO_OPENMP"):
            flags, note = None, "REVDECONV_NO_OPENMP was set"
            if _flag_set("REVDECONV_REQUIRE_OPENMP"):
                raise RuntimeError("revdeconv: REVDECONV_NO_OPENMP and "
                                   "REVDECONV_REQUIRE_OPENMP are both set")
        else:
            flags = openmp_flags(self.compiler)
            note = ("the compiler built and linked an OpenMP test program" if flags else
                    "the compiler could not build and link an OpenMP test program")
            if flags is None and _flag_set("REVDECONV_REQUIRE_OPENMP"):
                raise RuntimeError(f"revdeconv: REVDECONV_REQUIRE_OPENMP is set but {note}")
        print(f"revdeconv: building {'with OpenMP (' + ' '.join(flags[0]) + ')' if flags else 'serially'}"
              f": {note}", file=sys.stderr)
        self._write_build_info(flags, note)
        # No FMA contraction: the kernels must round exactly as the NumPy
        # fallback does (same operations, same order). No debug information
        # (Python's CFLAGS carry -g; it makes the wheel five times larger)
        # unless REVDECONV_DEBUG is set.
        base = []
        if self.compiler.compiler_type != "msvc":
            base = ["-ffp-contract=off"] + (["-O0", "-g", "-UNDEBUG"] if DEBUG else ["-g0"])
        for ext in self.extensions:
            ext.extra_compile_args = base + (flags[0] if flags else [])
            ext.extra_link_args = flags[1] if flags else []
        super().build_extensions()

    def _write_build_info(self, flags, note):
        """Record the OpenMP decision in the package, for show_config()."""
        compiler = getattr(self.compiler, "compiler_so", None) or [self.compiler.compiler_type]
        text = (
            "# Written by setup.py when the extensions were built; do not edit.\n"
            f"OPENMP = {flags is not None!r}\n"
            f"OPENMP_FLAGS = {' '.join(flags[0]) if flags else ''!r}\n"
            f"OPENMP_NOTE = {note!r}\n"
            f"COMPILER = {os.path.basename(str(compiler[0]))!r}\n"
            f"DEBUG = {DEBUG!r}\n"
            f"PORTABLE = {PORTABLE!r}\n"
        )
        folder = os.path.join(self.build_lib, "revdeconv")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "_build_info.py"), "w") as f:
            f.write(text)

    def run(self):
        super().run()
        if self.inplace:      # setuptools builds in build_lib, then copies the extensions
            shutil.copy(os.path.join(self.build_lib, "revdeconv", "_build_info.py"),
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "revdeconv"))


DEBUG = _flag_set("REVDECONV_DEBUG")
PORTABLE = _flag_set("REVDECONV_PORTABLE")

extensions = [
    Extension(f"revdeconv.{name}", [os.path.join("src_c", f"{name}.pyx")],
              include_dirs=["src_c"], depends=HEADERS,
              # Release builds drop the wrappers' assertions (the façade has checked).
              define_macros=([] if DEBUG else [("CYTHON_WITHOUT_ASSERTIONS", None)])
              # The plain C loops of src_c/_simd.h, as compilers without GCC
              # vector types build them (for testing those loops here).
              + ([("REVDECONV_PORTABLE", None)] if PORTABLE else [])
              + ([("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                  ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")] if name in NUMPY_API else []))
    for name in KERNELS
]
for extension in extensions:
    if extension.name.split(".")[-1] in NUMPY_API:
        extension.include_dirs.append(numpy.get_include())
# Bounds and wraparound checks only in a debug build: the façade has validated
# every shape, and the kernels index with raw pointers anyway.
DIRECTIVES = {"language_level": 3, "boundscheck": DEBUG, "wraparound": DEBUG,
              "initializedcheck": DEBUG}

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src_c"],
        compiler_directives=DIRECTIVES,
        # Release and debug C files apart, so that neither build reuses the other's.
        build_dir=os.path.join("build", "cython-debug" if DEBUG else "cython"),
        nthreads=os.cpu_count() or 1,
    ),
    cmdclass={"build_ext": BuildExt},
)
