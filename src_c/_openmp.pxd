# The one OpenMP shim of the package.
#
# Every kernel cimports from here instead of from ``openmp`` so that a build
# without OpenMP still compiles: without ``_OPENMP`` the calls below become
# serial no-ops and Cython's ``prange`` turns into a plain loop.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define REVDECONV_OPENMP 1
    #else
    #define REVDECONV_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    #endif
    """
    bint REVDECONV_OPENMP
    int omp_get_max_threads() noexcept nogil
