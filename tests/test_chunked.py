"""revdeconv.chunked: the functions on Dask arrays, chunk by chunk, bit-identical to the
in-memory calls; misaligned chunks raise before anything is computed; no task holds
more than a chunk and its halo."""

import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import revdeconv  # noqa: E402
from revdeconv import chunked, filters, metrics  # noqa: E402
from revdeconv._chunk_plan import convolution_plan  # noqa: E402

STRIDES = [1, 2, 3, 4, (5, 2)]
KERNELS = [3, 5]
DTYPES = [np.float32, np.float64]


def _pair(stride):
    return (stride, stride) if np.isscalar(stride) else tuple(stride)


def _chunks(size, step, last):
    """Chunks of ``step`` then one of ``last`` (``size`` adjusted by the caller)."""
    return (step,) * ((size - last) // step) + ((last,) if last else ())


def _kernel(rng, k, n_channels=None):
    shape = (k, k) if n_channels is None else (n_channels, k, k)
    return rng.normal(size=shape) / k


class Source:
    """An array-like that Dask reads through ``__getitem__``: records every region read."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, index):
        self.reads.append(index)
        return self.array[index]


def _from_source(array, chunks):
    source = Source(array)
    lazy = da.from_array(source, chunks=chunks, meta=np.empty((0,) * array.ndim, array.dtype))
    return lazy, source


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("layout", ["bands", "tiles"])
def test_convolve_equals_in_memory(layout, stride, k, dtype):
    sh, sw = _pair(stride)
    rng = np.random.default_rng(sh * 100 + sw * 10 + k)
    # Every chunk a multiple of the stride but the last, which is shorter than the kernel.
    rows = _chunks(sh * 7 * 3 + k - 1, sh * 3, k - 1)
    cols = (sum(_chunks(sw * 9 * 2 + 2, sw * 2, 2)),) if layout == "bands" else \
        _chunks(sw * 9 * 2 + 2, sw * 2, 2)
    image = rng.random((sum(rows), sum(cols), 3)).astype(dtype)
    kernel = _kernel(rng, k, 3)
    lazy = da.from_array(image, chunks=(rows, cols, (3,)))
    for activation in ("clip", "identity"):
        got = chunked.convolve(lazy, kernel, stride=stride, activation=activation)
        expected = revdeconv.convolve(image, kernel, stride=stride, activation=activation)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        computed = got.compute()
        assert computed.dtype == expected.dtype
        assert np.array_equal(computed, expected)


@pytest.mark.parametrize("stride", STRIDES)
def test_convolve_2d_uint8_bias_and_numpy_backend(stride):
    rng = np.random.default_rng(5)
    sh, sw = _pair(stride)
    image = (rng.random((sh * 12 + 3, sw * 10 + 1)) * 255).astype(np.uint8)
    lazy = da.from_array(image, chunks=(sh * 4, sw * 3))
    for backend in ("compiled", "numpy"):
        if backend == "compiled" and not revdeconv.compiled_available():
            continue
        got = chunked.convolve(lazy, filters.SHARPEN, stride=stride, bias=0.1, backend=backend)
        expected = revdeconv.convolve(image, filters.SHARPEN, stride=stride, bias=0.1,
                                      backend=backend)
        assert got.dtype == np.float64 and got.ndim == 2
        assert np.array_equal(got.compute(), expected)


def test_last_chunk_shorter_than_the_kernel_gives_no_output_chunk():
    # 5x5 at stride 2 on 22 rows in chunks (10, 10, 2): 9 output rows; chunk 1 owns
    # rows 5..8 (row 8 reads input rows 16..20, two of them from chunk 2); chunk 2
    # owns none: its rows are all halo.
    rng = np.random.default_rng(0)
    image = rng.random((22, 13))
    lazy = da.from_array(image, chunks=((10, 10, 2), (13,)))
    got = chunked.convolve(lazy, np.ones((5, 5)) / 25, stride=2)
    assert got.chunks == ((5, 4), (5,))
    assert np.array_equal(got.compute(), revdeconv.convolve(image, np.ones((5, 5)) / 25,
                                                            stride=2))


def test_halo_taken_from_several_chunks():
    # Stride 1, 5x5: a halo of 4 rows, chunks of 2 rows: each chunk reads two after it.
    rng = np.random.default_rng(1)
    image = rng.random((15, 11, 2)).astype(np.float32)
    lazy = da.from_array(image, chunks=((2,) * 7 + (1,), (3, 3, 3, 2), (2,)))
    kernel = _kernel(rng, 5)
    got = chunked.convolve(lazy, kernel, stride=1)
    assert got.chunks[:2] == ((2, 2, 2, 2, 2, 1), (3, 3, 1))
    assert np.array_equal(got.compute(), revdeconv.convolve(image, kernel, stride=1))


@pytest.mark.parametrize("size, k, s", [(22, 5, 2), (23, 3, 1), (17, 3, 3), (9, 3, 4),
                                        (30, 5, 5), (11, 5, 1)])
def test_convolution_plan_covers_every_output_row_once(size, k, s):
    n_out = (size - k) // s + 1
    for step in range(s, size + s, s):
        chunks = _chunks(size, step, size % step)
        lengths, reads = convolution_plan(chunks, size, k, s)
        assert sum(lengths) == n_out and all(n > 0 for n in lengths)
        first = 0
        for n, (start, stop) in zip(lengths, reads):
            assert start == first * s                       # the chunk's first block
            assert stop == (first + n - 1) * s + k <= size  # through its last block's end
            first += n


@pytest.mark.parametrize("rows, stride, bad", [((5, 5, 2), 2, [5]), ((6, 4, 4, 3), 3, [4])])
def test_misaligned_chunks_raise_before_anything_is_read(rows, stride, bad):
    image = np.zeros((sum(rows), 12))
    lazy, source = _from_source(image, (rows, (12,)))
    with pytest.raises(ValueError, match=rf"rows {re.escape(str(rows))} must be multiples "
                                         rf"of the stride {stride} .*got {re.escape(str(bad))}"
                                         rf".*aligned_chunks"):
        chunked.convolve(lazy, np.ones((3, 3)), stride=stride)
    with pytest.raises(ValueError, match=r"columns \(5, 7\) must be multiples of the "
                                         r"stride 2"):
        chunked.convolve(da.from_array(image[:12], chunks=(4, (5, 7))), np.ones((3, 3)),
                         stride=2)
    assert source.reads == []


def test_wrong_inputs_raise_clear_errors():
    image = da.zeros((12, 12, 3), chunks=(6, 12, 1))
    with pytest.raises(ValueError, match=r"channel axis must be one chunk.*rechunk\(\{2: -1\}\)"):
        chunked.convolve(image, np.ones((3, 3)))
    with pytest.raises(TypeError, match="dask.array.Array.*from_array"):
        chunked.convolve(np.zeros((12, 12)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        chunked.convolve(da.zeros((2, 12), chunks=2), np.ones((3, 3)))
    with pytest.raises(ValueError, match="activation must be one of"):
        chunked.convolve(da.zeros((12, 12), chunks=6), np.ones((3, 3)), activation="tanh")
    with pytest.raises(TypeError, match="real numbers"):
        chunked.convolve(da.zeros((12, 12), dtype=bool, chunks=6), np.ones((3, 3)))


def test_nan_raises_naming_the_chunk_or_propagates():
    image = np.random.default_rng(2).random((18, 18))
    image[13, 4] = np.nan
    lazy = da.from_array(image, chunks=6)
    out = chunked.convolve(lazy, filters.BLUR)             # lazy: nothing raised yet
    with pytest.raises(ValueError, match=r"chunk \(2, 0\): .*NaN"):
        out.compute()
    same = chunked.convolve(lazy, filters.BLUR, nonfinite="propagate").compute()
    np.testing.assert_array_equal(same, revdeconv.convolve(image, filters.BLUR,
                                                           nonfinite="propagate"))


class _TaskSizes(dask.callbacks.Callback):
    """Records the largest array any task returned (but the final gathering of the
    result that ``compute()`` returns)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        name = key[0] if isinstance(key, tuple) else key
        if not str(name).startswith("finalize"):
            self.largest = max(self.largest, getattr(result, "nbytes", 0))


@pytest.mark.parametrize("stride, k", [(1, 5), (3, 3), (2, 5)])
def test_one_task_per_chunk_and_no_task_holds_the_image(stride, k):
    rng = np.random.default_rng(3)
    image = rng.random((120, 90, 3))
    rows = _chunks(120, 24 if stride != 1 else 20, 0)
    lazy, source = _from_source(image, (rows, (30, 30, 30), (3,)))
    kernel = _kernel(rng, k)
    out = chunked.convolve(lazy, kernel, stride=stride)
    graph = out.__dask_graph__()
    assert len(graph.layers[out.name]) == out.npartitions         # one task per chunk
    assert source.reads == []                                     # lazy: nothing read
    with _TaskSizes() as sizes:
        computed = out.compute(scheduler="sync")
    chunk_bytes = 24 * 30 * 3 * 8
    halo_rows, halo_cols = max(k - stride, 0), max(k - stride, 0)
    assert sizes.largest <= (24 + halo_rows) * (30 + halo_cols) * 3 * 8
    assert sizes.largest < image.nbytes / 4
    # The source is read one chunk at a time, each chunk once.
    assert all(image[index].nbytes <= chunk_bytes for index in source.reads)
    assert len(source.reads) == len(rows) * 3
    assert np.array_equal(computed, revdeconv.convolve(image, kernel, stride=stride))


def test_graph_pickles_and_computes_the_same():
    rng = np.random.default_rng(4)
    image = rng.random((40, 30, 3)).astype(np.float32)
    out = chunked.convolve(da.from_array(image, chunks=(8, 30, 3)), filters.BLUR, stride=1)
    again = pickle.loads(pickle.dumps(out))
    assert np.array_equal(again.compute(), revdeconv.convolve(image, filters.BLUR, stride=1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, stride", [(3, 3), (3, 4), (2, (3, 5)), (3, (5, 3)), (5, 5)])
@pytest.mark.parametrize("larger", [False, True])
def test_disjoint_deconvolution_equals_in_memory(k, stride, larger, dtype):
    rng = np.random.default_rng(k * 10 + _pair(stride)[1])
    sh, sw = _pair(stride)
    filtered = rng.random((23, 19, 3)).astype(dtype)
    kernel = (_kernel(rng, k, 3) + np.eye(k)).astype(dtype)
    covered = ((23 - 1) * sh + k, (19 - 1) * sw + k)
    shape = (covered[0] + sh + 2, covered[1] + 7) if larger else None
    lazy = da.from_array(filtered, chunks=((5, 5, 5, 5, 3), (7, 7, 5), (3,)))
    for activation in ("clip", "identity"):
        got = chunked.deconvolve(lazy, kernel, stride=stride, output_shape=shape,
                                 activation=activation)
        expected = revdeconv.deconvolve(filtered, kernel, stride=stride, output_shape=shape,
                                        activation=activation)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        assert np.array_equal(got.compute(), expected)


def test_deconvolve_takes_a_filter_result_and_overlap_along_one_whole_axis():
    rng = np.random.default_rng(6)
    original = rng.random((60, 66))
    filtered = revdeconv.convolve(original, filters.SHARPEN, stride=(3, 2),
                                  activation="identity")
    result = revdeconv.learn_filter(original, filtered, kernel_size=3, stride=(3, 2),
                                    activation="identity", method="lstsq")
    # Columns overlap (stride 2 < 3): one chunk; rows are disjoint: any chunks.
    lazy = da.from_array(filtered, chunks=(7, -1))
    got = chunked.deconvolve(lazy, result, output_shape=original.shape)
    expected = revdeconv.deconvolve(filtered, result, output_shape=original.shape)
    assert np.array_equal(got.compute(), expected)


def test_overlapping_reverse_solve_in_chunks_raises_saying_it_is_sequential():
    filtered = da.zeros((30, 30), chunks=(10, 30))
    with pytest.raises(ValueError, match=r"overlapping blocks \(stride 1 < kernel 3 along "
                                         r"the rows\) is sequential.*rechunk\(\{0: -1\}\)"):
        chunked.deconvolve(filtered, filters.BLUR, stride=1)
    whole = chunked.deconvolve(filtered.rechunk({0: -1}), filters.BLUR, stride=1)
    assert whole.shape == (32, 32)
    with pytest.raises(ValueError, match="smaller than the 90x90 region"):
        chunked.deconvolve(filtered, filters.BLUR, output_shape=(80, 90))


@pytest.mark.parametrize("shape", [None, (50, 40), (7, 5), (61, 37), (60, 30, 2)])
def test_zoom_equals_in_memory(shape):
    filtered = np.random.default_rng(7).random((20, 13, 2)).astype(np.float32)
    lazy = da.from_array(filtered, chunks=(6, 4, 2))
    got = chunked.zoom(lazy, (3, 2), shape)
    expected = revdeconv.zoom(filtered, (3, 2), shape)
    assert got.shape == expected.shape
    assert np.array_equal(got.compute(), expected)


def test_mae_agrees_with_metrics_mae():
    rng = np.random.default_rng(8)
    a, b = rng.random((301, 203, 3)), rng.random((301, 203, 3)).astype(np.float32)
    exact = metrics.mae(a, b)
    lazy = chunked.mae(da.from_array(a, chunks=(50, 60, 3)), b)
    assert isinstance(lazy, da.Array) and lazy.shape == ()
    assert abs(float(lazy) - exact) <= 1e-14 * exact
    # One chunk: the same sum, bit for bit.
    assert float(chunked.mae(da.from_array(a, chunks=-1), b)) == exact
    u8 = (a * 255).astype(np.uint8)
    assert float(chunked.mae(da.from_array(u8, chunks=100), u8 / 255)) == 0.0
    with pytest.warns(RuntimeWarning, match="far outside"):
        float(chunked.mae(da.from_array(a * 255, chunks=100), a))
    with pytest.raises(ValueError, match="one shape"):
        chunked.mae(da.zeros((3, 4), chunks=2), np.zeros((4, 3)))


@pytest.mark.parametrize("shape", [(1000, 800, 3), (257, 1999), (40, 30000, 3), (33, 7)])
@pytest.mark.parametrize("k, stride", [(3, 3), (5, 2), (5, 1), ((3, 5), (2, 4))])
@pytest.mark.parametrize("target", [2_000, 200_000, "1MiB"])
def test_aligned_chunks_are_valid_and_full_width_when_they_fit(shape, k, stride, target):
    chunks = chunked.aligned_chunks(shape, k, stride, target_bytes=target)
    kh, kw = _pair(k)
    sh, sw = _pair(stride)
    target_bytes = dask.utils.parse_bytes(target) if isinstance(target, str) else target
    pixel = 4 * (shape[2] if len(shape) == 3 else 1)
    assert [sum(c) for c in chunks] == list(shape)
    assert all(size % sh == 0 for size in chunks[0][:-1])
    assert all(size % sw == 0 for size in chunks[1][:-1])
    assert len(chunks[0]) == 1 or chunks[0][-1] >= kh            # no chunk of halo only
    if len(shape) == 3:
        assert chunks[2] == (shape[2],)
    band = max(sh, -(-(kh - sh) // sh) * sh) * shape[1] * pixel  # one stride and halo
    if band <= target_bytes:
        assert chunks[1] == (shape[1],)                          # full-width bands
    if max(chunks[0][:-1], default=0) > max(sh, kh - sh) and len(chunks[1]) == 1:
        assert max(chunks[0][:-1]) * shape[1] * pixel <= target_bytes


def test_aligned_chunks_give_the_in_memory_result():
    image = np.random.default_rng(9).random((203, 151, 3)).astype(np.float32)
    for target in (5_000, 60_000):
        lazy = da.from_array(image, chunks=chunked.aligned_chunks(image.shape, 5, 2,
                                                                  target_bytes=target))
        assert np.array_equal(chunked.convolve(lazy, np.ones((5, 5)) / 25, stride=2).compute(),
                              revdeconv.convolve(image, np.ones((5, 5)) / 25, stride=2))


def test_import_revdeconv_does_not_import_dask():
    code = ("import sys, revdeconv, revdeconv.learning, revdeconv.batch\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
