# cython: language_level=3
"""PNG's row filters (the PNG specification, ISO/IEC 15948, section 9): the hot loops
of revdeconv's PNG writer, which writes every row with the Paeth filter (type 4),
and of its reader, which undoes any of the five (``revdeconv._png``).

The caller has made the arrays; the wrappers check that their shapes agree (a few
comparisons, before any loop) and the loops check the filter types, which come
from the file.
"""

from libc.string cimport memcpy

cdef inline int _distance(int value) noexcept nogil:
    return value if value >= 0 else -value


cdef inline unsigned char _predictor(int left, int up, int corner) noexcept nogil:
    """The byte the filter predicts from the bytes left of it, above it and above-left
    (the specification's ``a``, ``b``, ``c``): whichever is nearest ``a + b - c``, the
    first of them on a tie. Without branches (``&``, not ``and``): the choice follows
    the image, and a mispredicted branch would cost more than the arithmetic."""
    cdef int to_left = _distance(up - corner)               # |p - a|, p = a + b - c
    cdef int to_up = _distance(left - corner)               # |p - b|
    cdef int to_corner = _distance(left + up - 2 * corner)  # |p - c|
    cdef int up_or_corner = up if to_up <= to_corner else corner
    return <unsigned char> (left if (to_left <= to_up) & (to_left <= to_corner)
                            else up_or_corner)


cdef void _filter_row(const unsigned char* row, const unsigned char* above, Py_ssize_t size,
                      Py_ssize_t step, unsigned char* out) noexcept nogil:
    """``out``: the filter-type byte, then ``row`` less its prediction (modulo 256);
    ``step`` bytes per pixel; left of the first pixel is 0."""
    cdef Py_ssize_t i
    out[0] = 4
    for i in range(step):
        out[1 + i] = row[i] - _predictor(0, above[i], 0)
    for i in range(step, size):
        out[1 + i] = row[i] - _predictor(row[i - step], above[i], above[i - step])


cdef void _first_row(const unsigned char* row, Py_ssize_t size, Py_ssize_t step,
                     unsigned char* out) noexcept nogil:
    """The image's first row: with zeros above it the filter predicts the byte to the
    left (``b = c = 0``: ``p = a``)."""
    cdef Py_ssize_t i
    out[0] = 4
    for i in range(step):
        out[1 + i] = row[i]
    for i in range(step, size):
        out[1 + i] = row[i] - row[i - step]


def paeth_rows(const unsigned char[:, ::1] raw, Py_ssize_t start, Py_ssize_t stop,
               Py_ssize_t step, unsigned char[:, ::1] out):
    """Rows ``start`` to ``stop`` of ``raw`` filtered into ``out`` (``stop - start``
    rows of ``raw.shape[1] + 1`` bytes, each led by its filter type, 4); the row
    above the image's first row is zeros. ``step``: bytes per pixel, 1 to 8."""
    cdef Py_ssize_t r, size = raw.shape[1]
    _check_rows(size, step)
    if not (0 <= start <= stop <= raw.shape[0] and out.shape[0] == stop - start
            and out.shape[1] == size + 1):
        raise ValueError(f"rows {start}:{stop} of {raw.shape[0]} do not fit out "
                         f"{out.shape[0]}x{out.shape[1]}")
    with nogil:
        for r in range(start, stop):
            if r == 0:
                _first_row(&raw[0, 0], size, step, &out[0, 0])
            else:
                _filter_row(&raw[r, 0], &raw[r - 1, 0], size, step, &out[r - start, 0])


cdef int _check_rows(Py_ssize_t size, Py_ssize_t step) except -1:
    """Rows of ``size`` bytes, whole pixels of ``step`` bytes (1 to 8, as PNG has)."""
    if not (1 <= step <= 8 and size > 0 and size % step == 0):
        raise ValueError(f"rows of {size} bytes are not pixels of {step} bytes (1-8)")
    return 0


cdef void _unfilter_row(int kind, const unsigned char* row, const unsigned char* above,
                        Py_ssize_t size, Py_ssize_t step, unsigned char* out) noexcept nogil:
    """``out``: ``row`` (filtered by filter ``kind``, 0-4) with the prediction added
    back, from the bytes already restored (left of it in ``out``, and ``above``)."""
    cdef Py_ssize_t i
    if kind == 0:
        memcpy(out, row, size)
    elif kind == 2:
        for i in range(size):
            out[i] = row[i] + above[i]
    elif step == 3:                 # (a constant step: the pixel's bytes in registers)
        _by_pixel(kind, row, above, size, 3, out)
    elif step == 4:
        _by_pixel(kind, row, above, size, 4, out)
    elif step == 1:
        _by_pixel(kind, row, above, size, 1, out)
    elif step == 2:
        _by_pixel(kind, row, above, size, 2, out)
    elif step == 6:
        _by_pixel(kind, row, above, size, 6, out)
    elif step == 8:
        _by_pixel(kind, row, above, size, 8, out)
    else:
        _by_pixel(kind, row, above, size, step, out)


cdef inline void _by_pixel(int kind, const unsigned char* row, const unsigned char* above,
                           Py_ssize_t size, Py_ssize_t step, unsigned char* out) noexcept nogil:
    """Filters 1 (Sub), 3 (Average) and 4 (Paeth) undone, a pixel at a time: each of
    its ``step`` bytes (at most 8) depends on the byte a pixel to the left, kept in
    ``left`` rather than read back from ``out``, so that the bytes' chains run side
    by side."""
    cdef int left[8]
    cdef int corner[8]
    cdef int up
    cdef Py_ssize_t i = 0, k
    for k in range(step):
        left[k] = 0
        corner[k] = 0
    while i < size:
        for k in range(step):
            up = above[i + k]
            if kind == 1:
                left[k] = (row[i + k] + left[k]) & 255
            elif kind == 3:
                left[k] = (row[i + k] + ((left[k] + up) >> 1)) & 255
            else:
                left[k] = (row[i + k] + _predictor(left[k], up, corner[k])) & 255
            out[i + k] = <unsigned char> left[k]
            corner[k] = up
        i += step


def unfilter_rows(const unsigned char[::1] data, Py_ssize_t step, unsigned char[:, ::1] out):
    """``out`` (rows of bytes) from ``data``: as many rows, each of one more byte, its
    filter type (0-4) first. Returns the first row whose type is another, else -1
    (the rows before it are restored). ``step``: bytes per pixel, 1 to 8."""
    cdef Py_ssize_t r, height = out.shape[0], size = out.shape[1], bad = -1
    cdef const unsigned char* row
    _check_rows(size, step)
    if data.shape[0] != height * (size + 1):
        raise ValueError(f"{data.shape[0]} bytes are not {height} rows of {size + 1}")
    cdef unsigned char[::1] zeros = bytearray(size)         # the row above the first
    with nogil:
        for r in range(height):
            row = &data[r * (size + 1)]
            if row[0] > 4:
                bad = r
                break
            _unfilter_row(row[0], row + 1, &out[r - 1, 0] if r else &zeros[0], size, step,
                          &out[r, 0])
    return bad
