# cython: language_level=3
"""NumPy's memory for arrays (its allocator interface, NEP 49) with a cache of freed
blocks, for the chunks of a folder run.

Each chunk allocates its images (a megabyte each for a 180x250 RGB float image),
computes and frees them, and the C library hands the freed memory back to the
operating system; the next chunk then faults every page in again (2.7 µs a page
on the machine the benchmark runs on: 0.4 ms per image, a fifth of a file's
time). While :func:`use` is in force in a context (NumPy keeps the allocator in a
context variable: each thread has its own), the arrays made in it come from this
allocator: a block of 64 KiB or more is kept when its
array is freed, up to :func:`open_cache`'s limit, and given to the next array
of its size (or up to an eighth less). Smaller blocks go to the C library at
once. Every block carries its capacity in a header, so nothing depends on the
size NumPy passes when it frees.

Arrays keep the allocator that made them, so they stay valid after :func:`use`
and :func:`close_cache`; their blocks then go back to the C library.
"""

from cpython.pycapsule cimport PyCapsule_New
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock,
                               PyThread_acquire_lock, PyThread_release_lock, WAIT_LOCK)
from libc.stdint cimport uint8_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset, strncpy


cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyDataMemAllocator:
        void* ctx
        void* (*malloc)(void* ctx, size_t size) noexcept nogil
        void* (*calloc)(void* ctx, size_t nelem, size_t elsize) noexcept nogil
        void* (*realloc)(void* ctx, void* ptr, size_t new_size) noexcept nogil
        void (*free)(void* ctx, void* ptr, size_t size) noexcept nogil

    ctypedef struct PyDataMem_Handler:
        char name[127]
        uint8_t version
        PyDataMemAllocator allocator

    int _import_array() except -1
    object PyDataMem_SetHandler(object handler)


cdef enum:
    SLOTS = 64                  # blocks the cache holds at most
    HEADER = 16                 # bytes before each block: its capacity (keeps malloc's alignment)
    SMALLEST = 65536            # blocks below this size are not kept

cdef struct Cache:
    PyThread_type_lock lock
    size_t limit                # bytes the cache may hold; 0: closed
    Py_ssize_t users            # open_cache calls not yet closed
    size_t held
    Py_ssize_t count            # blocks held, oldest first
    char* blocks[SLOTS]
    Py_ssize_t hits             # blocks given again (for the tests)

cdef Cache _cache
cdef PyDataMem_Handler _handler


cdef inline size_t _capacity(char* block) noexcept nogil:
    return (<size_t*> block)[0]


cdef char* _reused(size_t size) noexcept nogil:
    """The block best fitting ``size`` (capacity from ``size`` to ``size + size / 8``),
    the newest of those that fit exactly (the likeliest still in the processor's
    caches), taken from the cache; NULL when there is none."""
    cdef Py_ssize_t i, best = -1
    cdef char* block = NULL
    if size < SMALLEST:
        return NULL
    PyThread_acquire_lock(_cache.lock, WAIT_LOCK)
    for i in range(_cache.count - 1, -1, -1):
        if size <= _capacity(_cache.blocks[i]) <= size + size // 8 and (
                best < 0 or _capacity(_cache.blocks[i]) < _capacity(_cache.blocks[best])):
            best = i
            if _capacity(_cache.blocks[i]) == size:
                break
    if best >= 0:
        block = _drop(best)
        _cache.hits += 1
    PyThread_release_lock(_cache.lock)
    return block


cdef char* _drop(Py_ssize_t i) noexcept nogil:
    """Take block ``i`` out of the cache (the lock held), and return it."""
    cdef char* block = _cache.blocks[i]
    _cache.held -= _capacity(block)
    _cache.count -= 1
    while i < _cache.count:
        _cache.blocks[i] = _cache.blocks[i + 1]
        i += 1
    return block


cdef void* _malloc(void* ctx, size_t size) noexcept nogil:
    cdef char* block = _reused(size)
    if block == NULL:
        if size > (<size_t> -1) - HEADER:
            return NULL
        block = <char*> malloc(size + HEADER)
        if block == NULL:
            return NULL
        (<size_t*> block)[0] = size
    return block + HEADER


cdef void* _calloc(void* ctx, size_t nelem, size_t elsize) noexcept nogil:
    cdef size_t size = nelem * elsize
    if elsize != 0 and size // elsize != nelem:                 # overflow
        return NULL
    cdef void* data = _malloc(ctx, size)
    if data != NULL:
        memset(data, 0, size)
    return data


cdef void* _realloc(void* ctx, void* data, size_t size) noexcept nogil:
    if data == NULL:
        return _malloc(ctx, size)
    if size > (<size_t> -1) - HEADER:
        return NULL
    cdef char* block = <char*> realloc(<char*> data - HEADER, size + HEADER)
    if block == NULL:
        return NULL
    (<size_t*> block)[0] = size
    return block + HEADER


cdef void _free(void* ctx, void* data, size_t size) noexcept nogil:
    """Keep the block (the oldest ones freed to make room), or free it."""
    if data == NULL:
        return
    cdef char* block = <char*> data - HEADER
    cdef size_t capacity = _capacity(block)
    if capacity >= SMALLEST:
        PyThread_acquire_lock(_cache.lock, WAIT_LOCK)
        if capacity <= _cache.limit:
            while _cache.count and (_cache.count == SLOTS
                                    or _cache.held + capacity > _cache.limit):
                free(_drop(0))
            _cache.blocks[_cache.count] = block
            _cache.count += 1
            _cache.held += capacity
            block = NULL
        PyThread_release_lock(_cache.lock)
    free(block)


_import_array()
_cache.lock = PyThread_allocate_lock()
if _cache.lock == NULL:
    raise MemoryError("revdeconv._block_cache: no lock could be allocated")
strncpy(_handler.name, b"revdeconv_block_cache", 127)
_handler.version = 1
_handler.allocator.ctx = NULL
_handler.allocator.malloc = _malloc
_handler.allocator.calloc = _calloc
_handler.allocator.realloc = _realloc
_handler.allocator.free = _free
_HANDLER = PyCapsule_New(&_handler, b"mem_handler", NULL)


def use():
    """Make this allocator the one that arrays made in the current context (this
    thread's) take their memory from; returns the one it replaces, for
    :func:`restore`."""
    return PyDataMem_SetHandler(_HANDLER)


def restore(previous):
    """Give the current context back the allocator :func:`use` replaced."""
    PyDataMem_SetHandler(previous)


def open_cache(size_t limit):
    """Let the cache hold up to ``limit`` bytes of freed blocks (the largest limit
    of the runs that have it open), until :func:`close_cache`."""
    PyThread_acquire_lock(_cache.lock, WAIT_LOCK)
    _cache.users += 1
    _cache.limit = max(_cache.limit, limit)
    PyThread_release_lock(_cache.lock)


def close_cache():
    """One user fewer; with the last, every block held is freed and none is kept
    from then on."""
    PyThread_acquire_lock(_cache.lock, WAIT_LOCK)
    _cache.users -= 1
    if _cache.users <= 0:
        _cache.users = 0
        _cache.limit = 0
        while _cache.count:
            free(_drop(0))
    PyThread_release_lock(_cache.lock)


def held():
    """``(blocks, bytes, hits)``: what the cache holds, and how many blocks it has
    given again since it was first opened."""
    return _cache.count, _cache.held, _cache.hits
