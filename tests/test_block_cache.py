"""The cache of array memory of folder runs (``revdeconv._block_cache``): arrays made
while it is in use are whole and correct, their freed blocks are given again, it
holds no more than its limit, and it lets everything go when closed."""

import threading

import numpy as np
import pytest

block_cache = pytest.importorskip("revdeconv._block_cache")

MIB = 1 << 20


@pytest.fixture
def cache():
    block_cache.open_cache(16 * MIB)
    previous = block_cache.use()
    try:
        yield block_cache
    finally:
        block_cache.restore(previous)
        block_cache.close_cache()


try:
    from numpy._core.multiarray import get_handler_name
except ImportError:                                         # NumPy 1
    from numpy.core.multiarray import get_handler_name


def test_arrays_take_its_memory_only_while_in_use():
    block_cache.open_cache(16 * MIB)
    previous = block_cache.use()
    try:
        inside = get_handler_name(np.empty(MIB))
        elsewhere = []
        thread = threading.Thread(
            target=lambda: elsewhere.append(get_handler_name(np.empty(MIB))))
        thread.start()
        thread.join()
    finally:
        block_cache.restore(previous)
        block_cache.close_cache()
    assert inside == "revdeconv_block_cache"
    assert elsewhere != [inside]                    # another thread: its own allocator
    assert get_handler_name(np.empty(MIB)) != inside      # and this one, after


def test_a_freed_block_is_given_again_and_zeroed_when_asked(cache):
    first = np.full(MIB // 8, 7.0)
    address = first.ctypes.data
    del first
    blocks, held, hits = cache.held()
    assert blocks >= 1 and held >= MIB
    again = np.zeros(MIB // 8)                       # the same size: the same block
    assert again.ctypes.data == address and cache.held()[2] == hits + 1
    assert not again.any()                          # calloc through the cache: zeros


def test_a_block_up_to_an_eighth_larger_fits(cache):
    big = np.empty(9 * MIB // 64, dtype=np.uint8)
    address = big.ctypes.data
    del big
    smaller = np.ones(MIB // 8 // 8, dtype=np.float64)    # 128 KiB in a 144 KiB block
    assert smaller.ctypes.data == address and (smaller == 1).all()
    del smaller
    much_smaller = np.ones(MIB // 16 // 8)                  # 64 KiB: too small for it
    assert much_smaller.ctypes.data != address


def test_it_holds_at_most_its_limit(cache):
    arrays = [np.ones(MIB // 8) for _ in range(40)]         # 40 MiB made, 40 blocks freed
    del arrays
    blocks, held, _ = cache.held()
    assert held <= 16 * MIB and blocks <= 16


def test_small_arrays_are_not_kept(cache):
    before = cache.held()[:2]
    small = np.ones(1000)
    del small
    assert cache.held()[:2] == before


def test_resize_keeps_the_values(cache):
    a = np.arange(100000, dtype=np.float64)
    a.resize(300000, refcheck=False)                        # realloc through the cache
    np.testing.assert_array_equal(a[:100000], np.arange(100000))
    assert not a[100000:].any()


def test_arrays_outlive_the_cache():
    block_cache.open_cache(16 * MIB)
    previous = block_cache.use()
    try:
        kept = np.arange(MIB // 8, dtype=np.float64)
    finally:
        block_cache.restore(previous)
        block_cache.close_cache()
    assert block_cache.held()[:2] == (0, 0)
    np.testing.assert_array_equal(kept[-3:], np.arange(MIB // 8 - 3, MIB // 8))
    del kept                                                  # freed by the C library
    assert block_cache.held()[:2] == (0, 0)


def test_threads_at_once_get_their_own_blocks(cache):
    errors = []

    def work(seed):
        previous = block_cache.use()
        try:
            for n in range(50):
                a = np.full(MIB // 8, float(seed * 1000 + n))
                b = a * 2
                if not (b == 2 * (seed * 1000 + n)).all():
                    errors.append((seed, n))
        finally:
            block_cache.restore(previous)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
