# cython: language_level=3
"""PNG's Paeth filter (filter type 4 of the PNG specification, ISO/IEC 15948) over
rows of bytes: the hot loop of revdeconv's PNG writer (``revdeconv._png_encoder.png_bytes``),
which writes every row with this one filter.

The caller has checked the shapes; nothing here checks its input.
"""

cdef inline int _distance(int value) noexcept nogil:
    return value if value >= 0 else -value


cdef inline unsigned char _predictor(int left, int up, int corner) noexcept nogil:
    """The byte the filter predicts from the bytes left of it, above it and above-left
    (the specification's ``a``, ``b``, ``c``): whichever is nearest ``a + b - c``."""
    cdef int to_left = _distance(up - corner)             # |p - a|, p = a + b - c
    cdef int to_up = _distance(left - corner)             # |p - b|
    cdef int to_corner = _distance(left + up - 2 * corner)  # |p - c|
    if to_left <= to_up and to_left <= to_corner:
        return <unsigned char> left
    return <unsigned char> (up if to_up <= to_corner else corner)


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
    above the image's first row is zeros. ``step``: bytes per pixel."""
    cdef Py_ssize_t r, size = raw.shape[1]
    with nogil:
        for r in range(start, stop):
            if r == 0:
                _first_row(&raw[0, 0], size, step, &out[0, 0])
            else:
                _filter_row(&raw[r, 0], &raw[r - 1, 0], size, step, &out[r - start, 0])
