# A batch of channels-last images: a geometry table, and one flat buffer or one array per image.
#
# Row n of a geometry table (``Py_ssize_t[:, ::1]``, built by
# ``revdeconv._compiled_backend``) describes image n:
#   (offset of its first element, height, width, rows of the images before it)
# The last column numbers the rows of all images one after the other, so one
# parallel loop can share out the rows of a whole batch. The convolution, the
# reverse solve and the measures take their images as one array per image
# instead, through a table of addresses (input_pointers, image_pointers): a list
# of separately allocated images (the caller's ``out=`` arrays, the images of a
# folder decoded one by one) is read and written in place (OFFSET unused there).

from cpython.mem cimport PyMem_Malloc
from cython cimport floating

cdef enum:
    OFFSET = 0
    HEIGHT = 1
    WIDTH = 2
    FIRST_ROW = 3
    FIELDS = 4


cdef inline Py_ssize_t image_of_row(const Py_ssize_t* geom, Py_ssize_t n_images,
                                    Py_ssize_t row) noexcept nogil:
    """The image that batch row ``row`` belongs to (binary search on FIRST_ROW)."""
    cdef Py_ssize_t lo = 0, hi = n_images - 1, mid
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if geom[mid * FIELDS + FIRST_ROW] <= row:
            lo = mid
        else:
            hi = mid - 1
    return lo


cdef inline Py_ssize_t batch_rows(const Py_ssize_t* geom, Py_ssize_t n_images) noexcept nogil:
    """Rows of all the images of a batch."""
    cdef const Py_ssize_t* last = geom + (n_images - 1) * FIELDS
    return last[FIRST_ROW] + last[HEIGHT]


cdef inline bint fits(const Py_ssize_t[:, ::1] geom, Py_ssize_t n_channels,
                      Py_ssize_t length) noexcept:
    """Whether every image of a batch lies inside a buffer of ``length`` values
    (asserted by the wrappers in a debug build)."""
    cdef Py_ssize_t n
    if geom.shape[1] != FIELDS:
        return False
    for n in range(geom.shape[0]):
        if (geom[n, OFFSET] < 0 or geom[n, HEIGHT] < 1 or geom[n, WIDTH] < 1
                or geom[n, OFFSET] + geom[n, HEIGHT] * geom[n, WIDTH] * n_channels > length):
            return False
    return True


cdef inline int _check_shape(str what, Py_ssize_t n, Py_ssize_t height, Py_ssize_t width,
                             Py_ssize_t channels, const Py_ssize_t[:, ::1] geom,
                             Py_ssize_t n_channels) except -1:
    """Raise unless image ``n`` has the shape that row ``n`` of ``geom`` gives."""
    if height != geom[n, HEIGHT] or width != geom[n, WIDTH] or channels != n_channels:
        raise ValueError(f"{what} {n} must have shape ({geom[n, HEIGHT]}, "
                         f"{geom[n, WIDTH]}, {n_channels})")
    return 0


cdef inline int input_pointers(list images, const Py_ssize_t[:, ::1] geom,
                               Py_ssize_t n_channels, const floating*** table) except -1:
    """Where each image of a batch given as one array per image begins, for reading.

    ``images[n]`` is a C-contiguous ``(H, W, C)`` array of the shape that row n
    of ``geom`` gives (its OFFSET is not used), writable or not (a read-only
    memmap, ``np.broadcast_to``). ``table[0]`` receives a new table (the caller's
    to ``PyMem_Free``, also when this raises; NULL until it is allocated) whose
    entry n is the address of image n's first value. The arrays are read in
    place, so a list of separate images costs no copy. The shapes are checked in
    every build: a wrong one would be read past its end.
    """
    cdef const floating[:, :, ::1] view
    cdef Py_ssize_t n
    if len(images) != geom.shape[0]:
        raise ValueError(f"{len(images)} inputs for {geom.shape[0]} images")
    table[0] = <const floating**> PyMem_Malloc(geom.shape[0] * sizeof(floating*))
    if table[0] == NULL:
        raise MemoryError()
    for n in range(geom.shape[0]):
        view = images[n]
        _check_shape("input", n, view.shape[0], view.shape[1], view.shape[2], geom, n_channels)
        table[0][n] = &view[0, 0, 0]
    return 0


cdef inline int image_pointers(list images, const Py_ssize_t[:, ::1] geom,
                               Py_ssize_t n_channels, floating*** table) except -1:
    """Where each image of a batch given as one array per image begins.

    ``images[n]`` is a writable C-contiguous ``(H, W, C)`` array of the shape
    that row n of ``geom`` gives (its OFFSET is not used). ``table[0]`` receives
    a new table, as :func:`input_pointers` gives one. The kernels write their
    outputs there: the caller's own arrays (``out=``), or views of one buffer
    allocated for the batch. The shapes are checked in every build: a wrong one
    would be written past its end.
    """
    cdef floating[:, :, ::1] view
    cdef Py_ssize_t n
    if len(images) != geom.shape[0]:
        raise ValueError(f"{len(images)} outputs for {geom.shape[0]} images")
    table[0] = <floating**> PyMem_Malloc(geom.shape[0] * sizeof(floating*))
    if table[0] == NULL:
        raise MemoryError()
    for n in range(geom.shape[0]):
        view = images[n]
        _check_shape("output", n, view.shape[0], view.shape[1], view.shape[2], geom, n_channels)
        table[0][n] = &view[0, 0, 0]
    return 0
