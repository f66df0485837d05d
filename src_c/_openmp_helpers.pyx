# cython: language_level=3
"""What the compiled extension knows about OpenMP."""

from _openmp cimport REVDECONV_OPENMP, omp_get_max_threads

#: Whether this extension was compiled with OpenMP.
OPENMP_ENABLED = bool(REVDECONV_OPENMP)


def max_threads():
    """OpenMP's default thread count (honours ``OMP_NUM_THREADS``); 1 in a serial build."""
    return omp_get_max_threads()
