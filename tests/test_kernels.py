"""Correctness of every public function of revdeconv against the reference loops of SPEC.md.

Layout of this file:

1. the case grid (kernel size x stride x activation x dtype, with channel count, bias and kernel
   sharing cycled through the grid) and one ``Problem`` builder per public operation;
2. generic tests run on every operation: agreement with ``tests/reference.py``, compiled backend vs
   NumPy backend, thread-count invariance, output dtype and dimensionality, untouched / read-only /
   non-contiguous inputs;
3. targeted tests of SPEC statements (filter recovery, deconvolution of the blur == zoom, shuffle
   order, chaining of pairs and epochs, divergence, defaults, errors).

Tolerances: package vs reference 1e-10 (float64) / 1e-4 (float32); compiled vs NumPy 1e-12 / 1e-5;
both relative + absolute.  The reverse solve is an unstable recursion (every solved pixel is
divided by a weight and reused by the next one), so for ``deconvolve`` the absolute tolerance is
scaled by ``max(1, max |expected|)``: rounding errors grow exactly as fast as the values do.
"""

import dataclasses
import functools
import itertools
import warnings

import numpy as np
import pytest

import revdeconv

from conftest import BACKENDS, require
from reference import (
    activate,
    out_size,
    ref_convolve,
    ref_deconvolve,
    ref_learn_sgd,
    ref_lstsq,
    ref_zoom,
    relative_error,
)

KERNEL_SIZES = [(1, 1), (2, 3), (3, 3), (5, 5)]
STRIDE_KINDS = ["1", "2", "kernel", "gap"]          # 1, 2, = kernel size, > kernel size
ACTIVATIONS = ["clip", "relu", "identity"]
DTYPES = [np.float32, np.float64]
CHANNELS = [None, 1, 2, 3, 4]                        # None: a 2-D (H, W) image
MAX_SIDE = 23
LR = 0.05

REFERENCE_TOL = {np.float64: 1e-10, np.float32: 1e-4}
BACKEND_TOL = {np.float64: 1e-12, np.float32: 1e-5}


# ============================================================================================
# The case grid


@dataclasses.dataclass(frozen=True)
class Case:
    index: int
    kernel_size: tuple
    stride_kind: str
    activation: str
    dtype: type
    channels: object            # None (2-D image) or an int >= 1
    bias: bool
    shared_kernel: bool         # kernel (kh, kw) for all channels instead of (C, kh, kw)

    def __str__(self):
        kh, kw = self.kernel_size
        sh, sw = self.strides
        chan = "2d" if self.channels is None else f"c{self.channels}"
        return (f"{kh}x{kw}-s{sh}x{sw}{'' if isinstance(self.stride, tuple) else 'int'}-"
                f"{self.activation}-{np.dtype(self.dtype).name}-{chan}"
                f"{'-bias' if self.bias else ''}{'-shared' if self.shared_kernel else ''}")

    @property
    def stride(self):
        """The stride as passed to the package: an int or an (sh, sw) pair."""
        kh, kw = self.kernel_size
        return {"1": 1, "2": 2, "kernel": (kh, kw), "gap": (kh + 1, kw + 2)}[self.stride_kind]

    @property
    def strides(self):
        s = self.stride
        return s if isinstance(s, tuple) else (s, s)

    @property
    def nc(self):
        return 1 if self.channels is None else self.channels

    def rng(self, salt):
        return np.random.default_rng([self.index, salt])

    def image_size(self, rng):
        """(H, W) in [7, 23], large enough for at least two blocks each way."""
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (int(rng.integers(max(7, kh + sh), MAX_SIDE + 1)),
                int(rng.integers(max(7, kw + sw), MAX_SIDE + 1)))

    def image_shape(self, h, w):
        return (h, w) if self.channels is None else (h, w, self.channels)

    def random_image(self, rng, h, w, low=0.0, high=1.0):
        return rng.uniform(low, high, self.image_shape(h, w)).astype(self.dtype)

    def as_package_kernel(self, kernel3d):
        """(C, kh, kw) -> what is passed to the package: (kh, kw) when shared."""
        kernel = kernel3d[0] if self.shared_kernel else kernel3d
        return np.array(kernel, dtype=self.dtype)

    def as_package_image(self, image3d):
        """(H, W, C) -> the layout of this case's images."""
        image = image3d[:, :, 0] if self.channels is None else image3d
        return np.array(image, dtype=self.dtype)


def make_cases():
    product = itertools.product(KERNEL_SIZES, STRIDE_KINDS, ACTIVATIONS, DTYPES)
    return [Case(index, ks, stride, act, dtype, channels=CHANNELS[index % len(CHANNELS)],
                 bias=(index // 2) % 2 == 1, shared_kernel=index % 3 == 0)
            for index, (ks, stride, act, dtype) in enumerate(product)]


CASES = make_cases()
SOME_CASES = CASES[::7]             # a spread-out subset for the more expensive generic tests


def as3d(image):
    image = np.asarray(image, dtype=np.float64)
    return image[:, :, None] if image.ndim == 2 else image


def as_kernel3d(kernel, nc):
    kernel = np.asarray(kernel, dtype=np.float64)
    return np.stack([kernel] * nc) if kernel.ndim == 2 else kernel


def np_activate(z, activation):
    return np.vectorize(lambda v: activate(float(v), activation), otypes=[float])(z)


# ============================================================================================
# Problems: one call of a public function, with its inputs and its reference result


@dataclasses.dataclass
class Problem:
    name: str
    args: tuple
    kwargs: dict
    reference: object           # () -> dict of expected outputs
    takes_backend: bool = True
    scaled_atol: bool = False
    float_outputs: tuple = ()   # outputs that must keep the input dtype

    def run(self, backend=None, n_threads=None, transform=None):
        args, kwargs = self.args, dict(self.kwargs)
        if transform is not None:
            args, kwargs = map_arrays(transform, args), map_arrays(transform, kwargs)
        if self.takes_backend:
            kwargs.update(backend=backend, n_threads=n_threads)
        result = getattr(revdeconv, self.name)(*args, **kwargs)
        return unpack(self.name, result)


def unpack(name, result):
    if name == "learn_filter":
        return {"kernel": result.kernel, "bias": result.bias, "loss": result.loss,
                "diverged": np.float64(bool(result.diverged))}
    return {"out": result}


def map_arrays(fn, obj):
    """Apply fn to every ndarray inside nested tuples / lists / dicts."""
    if isinstance(obj, np.ndarray):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_arrays(fn, item) for item in obj)
    if isinstance(obj, dict):
        return {key: map_arrays(fn, value) for key, value in obj.items()}
    return obj


def convolve_problem(case):
    rng = case.rng(1)
    (kh, kw), nc = case.kernel_size, case.nc
    image = case.random_image(rng, *case.image_size(rng))
    kernel = case.as_package_kernel(rng.uniform(-1.0, 2.0, (nc, kh, kw)) / (kh * kw))
    bias = None
    if case.bias:
        bias = (float(rng.uniform(-0.3, 0.5)) if case.channels is None
                else rng.uniform(-0.3, 0.5, nc).astype(case.dtype))

    def reference():
        bias_vec = None if bias is None else np.broadcast_to(np.asarray(bias, float), (nc,))
        out = ref_convolve(as3d(image), as_kernel3d(kernel, nc), case.strides, bias_vec,
                           case.activation)
        return {"out": case.as_package_image(out)}

    return Problem("convolve", (image, kernel),
                   dict(stride=case.stride, bias=bias, activation=case.activation),
                   reference, float_outputs=("out",))


def make_pairs(case, rng, min_blocks=0):
    """Originals and their (noisy) filtered images, at least min_blocks blocks in all."""
    (kh, kw), nc = case.kernel_size, case.nc
    true_kernel = rng.uniform(0.2, 1.8, (nc, kh, kw)) / (kh * kw)
    true_bias = rng.uniform(-0.4, 0.4, nc)
    n_pairs = 1 if min_blocks else 1 + case.index % 2
    originals, filtereds, blocks = [], [], 0
    while len(originals) < n_pairs or blocks < min_blocks:
        original = case.random_image(rng, *case.image_size(rng))
        z = ref_convolve(as3d(original), true_kernel, case.strides, true_bias, "identity")
        z += rng.normal(0.0, 0.05, z.shape)
        originals.append(original)
        filtereds.append(case.as_package_image(np_activate(z, case.activation)))
        blocks += z.shape[0] * z.shape[1]
    return originals, filtereds


def learn_inputs(originals, filtereds):
    """One pair is passed as two arrays, several as two lists."""
    if len(originals) == 1:
        return originals[0], filtereds[0]
    return list(originals), list(filtereds)


def sgd_problem(case):
    rng = case.rng(2)
    (kh, kw), nc = case.kernel_size, case.nc
    originals, filtereds = make_pairs(case, rng)
    epochs = 1 + (case.index // 3) % 2
    init = None
    if case.index % 4 == 1:
        init = case.as_package_kernel(rng.uniform(-0.5, 0.5, (nc, kh, kw)))
    kwargs = dict(kernel_size=(kh, kw), stride=case.stride, lr=LR, epochs=epochs, init=init,
                  bias=case.bias, activation=case.activation, method="sgd")

    def reference():
        kernel, bias, loss = ref_learn_sgd(
            [as3d(o) for o in originals], [as3d(f) for f in filtereds], kh, kw, *case.strides,
            LR, epochs, None if init is None else as_kernel3d(init, nc), case.bias,
            case.activation)
        return {"kernel": kernel, "bias": bias, "loss": loss, "diverged": np.float64(0)}

    return Problem("learn_filter", learn_inputs(originals, filtereds), kwargs, reference,
                   float_outputs=("kernel", "bias"))


def lstsq_problem(case):
    rng = case.rng(3)
    (kh, kw), nc = case.kernel_size, case.nc
    n_unknowns = kh * kw + case.bias
    originals, filtereds = make_pairs(case, rng, min_blocks=4 * n_unknowns)
    kwargs = dict(kernel_size=(kh, kw), stride=case.stride, bias=case.bias,
                  activation=case.activation, method="lstsq")

    def reference():
        kernel, bias, loss = ref_lstsq([as3d(o) for o in originals],
                                       [as3d(f) for f in filtereds], kh, kw, *case.strides,
                                       case.bias, case.activation)
        return {"kernel": kernel, "bias": bias, "loss": np.array([loss]),
                "diverged": np.float64(0)}

    return Problem("learn_filter", learn_inputs(originals, filtereds), kwargs, reference,
                   float_outputs=("kernel", "bias"))


def deconvolve_problem(case):
    """A near-uniform positive kernel (a learned blur), with one zero weight in half the cases
    (the |w| <= eps branch), and the original size as output_shape in half the cases."""
    rng = case.rng(4)
    (kh, kw), nc = case.kernel_size, case.nc
    h, w = case.image_size(rng)
    ho, wo = out_size(h, w, kh, kw, *case.strides)
    x = case.random_image(rng, ho, wo, 0.05, 0.95)
    weights = (1.0 + rng.uniform(-0.3, 0.3, (nc, kh, kw))) / (kh * kw)
    if case.index % 2 == 0 and kh * kw > 1:
        weights[:, rng.integers(kh), rng.integers(kw)] = 0.0
    kernel = case.as_package_kernel(weights)
    output_shape = (h, w) if case.index % 4 in (1, 2) else None

    def reference():
        out = ref_deconvolve(as3d(x), as_kernel3d(kernel, nc), *case.strides, case.activation,
                             1e-6, output_shape)
        return {"out": case.as_package_image(out)}

    return Problem("deconvolve", (x, kernel),
                   dict(stride=case.stride, activation=case.activation,
                        output_shape=output_shape),
                   reference, scaled_atol=True, float_outputs=("out",))


def zoom_problem(case):
    rng = case.rng(5)
    sh, sw = case.strides
    ho, wo = (int(v) for v in rng.integers(1, 8, 2))
    x = case.random_image(rng, ho, wo)
    output_shape = None if case.index % 2 == 0 else (ho * sh + 2, wo * sw + 1)

    def reference():
        return {"out": case.as_package_image(ref_zoom(as3d(x), sh, sw, output_shape))}

    return Problem("zoom", (x, case.stride), dict(output_shape=output_shape), reference,
                   takes_backend=False, float_outputs=("out",))


BUILDERS = {"convolve": convolve_problem, "sgd": sgd_problem, "lstsq": lstsq_problem,
            "deconvolve": deconvolve_problem, "zoom": zoom_problem}
THREADED = ["convolve", "sgd", "lstsq", "deconvolve"]


@functools.lru_cache(maxsize=None)
def _cached_problem(op, case):
    return BUILDERS[op](case)


def build(op, case):
    """The problem of (operation, case), inputs freshly copied (the package never sees the
    cached arrays, so a call that wrote into its inputs could not spoil other tests)."""
    problem = _cached_problem(op, case)
    return dataclasses.replace(problem, args=map_arrays(np.copy, problem.args),
                               kwargs=map_arrays(np.copy, problem.kwargs))


@functools.lru_cache(maxsize=None)
def expected(op, case):
    """Reference result, computed once per (operation, case) and shared by both backends."""
    return _cached_problem(op, case).reference()


# ============================================================================================
# Helpers


def assert_outputs_close(actual, wanted, dtype, tols, scaled_atol=False, label=""):
    assert set(actual) == set(wanted), label
    tol = tols[dtype]
    for key in wanted:
        a = np.asarray(actual[key], dtype=np.float64)
        e = np.asarray(wanted[key], dtype=np.float64)
        assert a.shape == e.shape, f"{label} {key}: shape {a.shape} != {e.shape}"
        scale = max(1.0, float(np.max(np.abs(e)))) if scaled_atol and e.size else 1.0
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * scale, err_msg=f"{label} {key}")


def assert_outputs_equal(actual, wanted, label=""):
    assert set(actual) == set(wanted), label
    for key in wanted:
        np.testing.assert_array_equal(actual[key], wanted[key], err_msg=f"{label} {key}")


def op_backend_params(ops, cases):
    """(op, case, backend) triples; zoom has no backend argument, so it runs once."""
    params = []
    for op, case in itertools.product(ops, cases):
        for backend in (BACKENDS if _cached_problem(op, case).takes_backend else [None]):
            params.append(pytest.param(op, case, backend, id=f"{op}-{case}-{backend}"))
    return params


def blur(n=3):
    return np.ones((n, n)) / (n * n)


def smooth_image(rng, h, w, c, passes=2):
    """Low-pass noise: uniform noise box-filtered `passes` times, rescaled to [0.1, 0.9]."""
    img = rng.uniform(0, 1, (h + 2 * passes, w + 2 * passes, c))
    for _ in range(passes):
        img = (img[:-2] + img[1:-1] + img[2:]) / 3
        img = (img[:, :-2] + img[:, 1:-1] + img[:, 2:]) / 3
    return 0.1 + 0.8 * (img - img.min()) / (img.max() - img.min())


# ============================================================================================
# Generic tests over every operation


@pytest.mark.parametrize("op, case, backend", op_backend_params(BUILDERS, CASES))
def test_matches_reference(op, case, backend):
    require(backend)
    problem = build(op, case)
    got = problem.run(backend=backend)
    assert_outputs_close(got, expected(op, case), case.dtype, REFERENCE_TOL,
                         problem.scaled_atol, label=f"{op} {case} {backend}")


@pytest.mark.parametrize("op", THREADED)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_compiled_matches_numpy(op, case):
    require("compiled")
    problem = build(op, case)
    assert_outputs_close(problem.run(backend="compiled"), problem.run(backend="numpy"),
                         case.dtype, BACKEND_TOL, problem.scaled_atol, label=f"{op} {case}")


@pytest.mark.parametrize("op, case, backend", op_backend_params(THREADED, SOME_CASES))
def test_thread_count_does_not_change_result(op, case, backend):
    require(backend)
    problem = build(op, case)
    single = problem.run(backend=backend, n_threads=1)
    for n_threads in (2, 3):
        assert_outputs_equal(problem.run(backend=backend, n_threads=n_threads), single,
                             label=f"n_threads={n_threads}")


@pytest.mark.parametrize("op, case, backend", op_backend_params(BUILDERS, SOME_CASES))
def test_output_dtype_and_ndim(op, case, backend):
    require(backend)
    problem = build(op, case)
    got = problem.run(backend=backend)
    for key in problem.float_outputs:
        assert got[key].dtype == case.dtype, f"{key}: {got[key].dtype} for {case.dtype} input"
    if op in ("convolve", "deconvolve", "zoom"):
        assert got["out"].ndim == (2 if case.channels is None else 3)
    else:
        (kh, kw), nc = case.kernel_size, case.nc
        assert got["kernel"].shape == (nc, kh, kw)
        assert got["bias"].shape == (nc,)
        assert got["loss"].dtype == np.float64
        if not case.bias:
            assert np.all(got["bias"] == 0)


def reversed_layout(a):
    """Same values, memory reversed along the last axis (as for arr[:, ::-1])."""
    return np.ascontiguousarray(a[..., ::-1])[..., ::-1]


def fortran_layout(a):
    """Same values, a transposed view of a C-contiguous array."""
    return np.ascontiguousarray(a.T).T


def strided_layout(a):
    """Same values, every other element of a larger buffer."""
    return np.repeat(a, 2, axis=-1)[..., ::2]


def read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


LAYOUTS = {"reversed": reversed_layout, "transposed": fortran_layout,
           "strided": strided_layout, "read-only": read_only}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op, case, backend", op_backend_params(BUILDERS, SOME_CASES))
def test_noncontiguous_and_readonly_inputs(op, case, backend, layout):
    require(backend)
    problem = build(op, case)
    assert_outputs_close(problem.run(backend=backend, transform=LAYOUTS[layout]),
                         problem.run(backend=backend), case.dtype, BACKEND_TOL,
                         problem.scaled_atol, label=layout)


@pytest.mark.parametrize("op, case, backend", op_backend_params(BUILDERS, SOME_CASES))
def test_inputs_not_modified(op, case, backend):
    require(backend)
    problem = build(op, case)
    pristine = map_arrays(np.copy, (problem.args, problem.kwargs))
    problem.run(backend=backend)
    flat_before, flat_after = [], []
    map_arrays(flat_before.append, pristine)
    map_arrays(flat_after.append, (problem.args, problem.kwargs))
    assert len(flat_before) == len(flat_after)
    for before, after in zip(flat_before, flat_after):
        np.testing.assert_array_equal(after, before)


def test_compiled_available_is_bool():
    assert isinstance(revdeconv.compiled_available(), bool)


# ============================================================================================
# convolve


@pytest.mark.parametrize("kernel_size", KERNEL_SIZES)
def test_convolve_default_stride_is_kernel_size(kernel_size, backend):
    rng = np.random.default_rng(10)
    image = rng.uniform(0, 1, (17, 19, 3))
    kernel = rng.uniform(0, 1, kernel_size) / np.prod(kernel_size)
    default = revdeconv.convolve(image, kernel, backend=backend)
    explicit = revdeconv.convolve(image, kernel, stride=kernel_size, backend=backend)
    kh, kw = kernel_size
    assert default.shape == ((17 - kh) // kh + 1, (19 - kw) // kw + 1, 3)
    np.testing.assert_array_equal(default, explicit)


def test_convolve_shared_kernel_and_scalar_bias_broadcast(backend):
    rng = np.random.default_rng(11)
    image = rng.uniform(0, 1, (13, 16, 3))
    kernel = rng.uniform(-0.5, 1, (2, 3))
    shared = revdeconv.convolve(image, kernel, stride=1, bias=0.1, backend=backend)
    stacked = revdeconv.convolve(image, np.stack([kernel] * 3), stride=1,
                                 bias=np.full(3, 0.1), backend=backend)
    np.testing.assert_array_equal(shared, stacked)


def test_convolve_paper_example_shape(backend):
    """SPEC: a 180x250 image with a 3x3 kernel at the default stride becomes 60x83."""
    image = np.full((180, 250, 3), 0.5)
    assert revdeconv.convolve(image, blur(), backend=backend).shape == (60, 83, 3)


# ============================================================================================
# learn_filter


def test_learn_default_kernel_size_and_stride(backend):
    rng = np.random.default_rng(20)
    original = rng.uniform(0, 1, (22, 26, 2))
    filtered = ref_convolve(original, np.stack([blur()] * 2), (3, 3), None, "clip")  # 7 x 8
    default = revdeconv.learn_filter(original, filtered, lr=LR, backend=backend)
    explicit = revdeconv.learn_filter(original, filtered, kernel_size=(3, 3), stride=3, lr=LR,
                                      backend=backend)
    assert default.kernel.shape == (2, 3, 3)
    assert_outputs_equal(unpack("learn_filter", default), unpack("learn_filter", explicit))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_recovers_blur(dtype, backend):
    """90x120x3 low-pass noise (two 3x3 box passes, range [0.1, 0.9]), blurred at stride 3 with
    clip; 5 epochs of SGD at lr=0.05 from zero bring every channel's kernel within 5 % of the
    blur (the reference loops reach about 1 %)."""
    rng = np.random.default_rng(21)
    original = smooth_image(rng, 90, 120, 3)
    filtered = ref_convolve(original, np.stack([blur()] * 3), (3, 3), None, "clip")
    result = revdeconv.learn_filter(original.astype(dtype), filtered.astype(dtype), lr=LR,
                                    epochs=5, backend=backend)
    assert not result.diverged
    for c in range(3):
        assert relative_error(result.kernel[c], blur()) < 0.05
    assert np.all(np.diff(result.loss) < 0)


@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("with_bias", [False, True])
def test_lstsq_recovers_random_filter(stride, with_bias, backend):
    rng = np.random.default_rng(22)
    original = rng.uniform(0, 1, (30, 33, 2))
    true_kernel = rng.normal(size=(2, 3, 3))
    true_bias = rng.normal(size=2) if with_bias else np.zeros(2)
    filtered = ref_convolve(original, true_kernel, (stride, stride), true_bias, "identity")
    result = revdeconv.learn_filter(original, filtered, kernel_size=(3, 3), stride=stride,
                                    activation="identity", method="lstsq", bias=with_bias,
                                    backend=backend)
    assert result.loss.shape == (1,)
    assert result.loss[0] < 1e-20
    for c in range(2):
        assert relative_error(result.kernel[c], true_kernel[c]) < 1e-8
    np.testing.assert_allclose(result.bias, true_bias, atol=1e-8)


def shuffle_orders(seed, epochs, filtereds):
    """SPEC: rng = default_rng(seed); per epoch, per pair in order: rng.permutation(Ho*Wo)."""
    rng = np.random.default_rng(seed)
    return [[rng.permutation(f.shape[0] * f.shape[1]) for f in filtereds]
            for _ in range(epochs)]


@pytest.mark.parametrize("case", SOME_CASES, ids=str)
def test_shuffle_matches_reference_and_differs_from_raster(case, backend):
    problem = build("sgd", case)
    originals, filtereds = (list(a) if isinstance(a, list) else [a] for a in problem.args)
    options = problem.kwargs
    (kh, kw), nc = case.kernel_size, case.nc
    init = None if options["init"] is None else as_kernel3d(options["init"], nc)
    orders = shuffle_orders(1234, options["epochs"], filtereds)
    kernel, bias, loss = ref_learn_sgd(
        [as3d(o) for o in originals], [as3d(f) for f in filtereds], kh, kw, *case.strides, LR,
        options["epochs"], init, case.bias, case.activation, orders)
    shuffled = unpack("learn_filter", revdeconv.learn_filter(
        *problem.args, **options, shuffle=True, seed=1234, backend=backend))
    assert_outputs_close(shuffled, {"kernel": kernel, "bias": bias, "loss": loss,
                                    "diverged": np.float64(0)}, case.dtype, REFERENCE_TOL)
    raster = problem.run(backend=backend)
    assert not np.allclose(shuffled["kernel"], raster["kernel"], rtol=0, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shuffle_same_on_both_backends(dtype):
    require("compiled")
    rng = np.random.default_rng(23)
    pairs = [rng.uniform(0, 1, (16, 20, 3)).astype(dtype) for _ in range(2)]
    targets = [ref_convolve(p, np.stack([blur()] * 3), (1, 1), None, "clip").astype(dtype)
               for p in pairs]
    results = [unpack("learn_filter", revdeconv.learn_filter(
        pairs, targets, kernel_size=3, stride=1, lr=LR, epochs=2, shuffle=True, seed=7,
        backend=backend)) for backend in BACKENDS]
    assert_outputs_close(results[0], results[1], dtype, BACKEND_TOL)


def learn(original, filtered, **kwargs):
    defaults = dict(kernel_size=(3, 3), stride=2, lr=LR, bias=True, activation="clip")
    return revdeconv.learn_filter(original, filtered, **{**defaults, **kwargs})


def two_pairs(seed, channels=3):
    rng = np.random.default_rng(seed)
    originals = [rng.uniform(0, 1, (15, 19, channels)), rng.uniform(0, 1, (21, 13, channels))]
    kernel = np.stack([blur() * 1.2] * channels)
    filtereds = [ref_convolve(o, kernel, (2, 2), np.full(channels, -0.05), "clip")
                 for o in originals]
    return originals, filtereds


def test_pairs_in_order_equal_chained_init(backend):
    originals, filtereds = two_pairs(24)
    together = learn(originals, filtereds, backend=backend)
    first = learn(originals[0], filtereds[0], backend=backend)
    second = learn(originals[1], filtereds[1], init=first, backend=backend)
    np.testing.assert_allclose(together.kernel, second.kernel, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(together.bias, second.bias, rtol=1e-12, atol=1e-12)
    # the epoch loss is the mean over every update of both pairs
    n1, n2 = filtereds[0].size, filtereds[1].size
    np.testing.assert_allclose(together.loss,
                               [(n1 * first.loss[0] + n2 * second.loss[0]) / (n1 + n2)],
                               rtol=1e-12)


def test_init_kernel_array_equals_init_result_without_bias(backend):
    originals, filtereds = two_pairs(25)
    first = learn(originals[0], filtereds[0], bias=False, backend=backend)
    from_result = learn(originals[1], filtereds[1], bias=False, init=first, backend=backend)
    from_array = learn(originals[1], filtereds[1], bias=False, init=first.kernel.copy(),
                       backend=backend)
    assert_outputs_equal(unpack("learn_filter", from_result), unpack("learn_filter", from_array))


def test_epochs_two_equals_two_chained_calls(backend):
    originals, filtereds = two_pairs(26)
    twice = learn(originals, filtereds, epochs=2, backend=backend)
    once = learn(originals, filtereds, backend=backend)
    again = learn(originals, filtereds, init=once, backend=backend)
    assert twice.loss.shape == (2,)
    np.testing.assert_allclose(twice.kernel, again.kernel, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(twice.bias, again.bias, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(twice.loss, [once.loss[0], again.loss[0]], rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_learning_rate_reports_divergence(dtype, backend):
    """identity: the weights overflow (relu would only die: a huge negative kernel, a = 0)."""
    rng = np.random.default_rng(27)
    original = rng.uniform(0.5, 1, (20, 20, 2)).astype(dtype)
    filtered = ref_convolve(original, np.stack([blur()] * 2), (1, 1), None,
                            "identity").astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = revdeconv.learn_filter(original, filtered, kernel_size=3, stride=1, lr=1e6,
                                        epochs=2, activation="identity", backend=backend)
    assert bool(result.diverged) is True
    assert result.kernel.shape == (2, 3, 3)
    assert result.loss.shape == (2,)


@pytest.mark.parametrize("method", ["sgd", "lstsq"])
@pytest.mark.parametrize("where", ["original", "filtered"])
def test_nonfinite_input_reports_divergence(method, where, backend):
    rng = np.random.default_rng(28)
    original = rng.uniform(0, 1, (12, 12, 2))
    filtered = ref_convolve(original, np.stack([blur()] * 2), (3, 3), None, "identity")
    {"original": original, "filtered": filtered}[where][1, 1, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = revdeconv.learn_filter(original, filtered, method=method,
                                        activation="identity", backend=backend,
                                        nonfinite="propagate")
    assert bool(result.diverged) is True


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_images_do_not_crash(value, backend):
    rng = np.random.default_rng(29)
    image = rng.uniform(0, 1, (9, 12, 2))
    image[4, 5, 1] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        options = dict(backend=backend, nonfinite="propagate")
        assert revdeconv.convolve(image, blur(), **options).shape == (3, 4, 2)
        assert revdeconv.deconvolve(image, blur(), **options).shape == (27, 36, 2)
        assert revdeconv.deconvolve(image, blur(), stride=1, **options).shape == (11, 14, 2)
    assert revdeconv.zoom(image, 3).shape == (27, 36, 2)


# ============================================================================================
# deconvolve and zoom


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("explicit_stride", [False, True])
def test_deconvolve_blur_is_zoom(channels, explicit_stride, backend):
    """With the blur filter, x - sum_{others} w v = x - 8x/9 and dividing by 1/9 gives x back:
    every pixel of a block is solved to the block's own value, so deconvolution == zoom."""
    rng = np.random.default_rng(30 + (channels or 0))
    original = rng.uniform(0, 1, (20, 25, channels or 1))
    filtered = ref_convolve(original, np.stack([blur()] * (channels or 1)), (3, 3), None, "clip")
    if channels is None:
        filtered = filtered[:, :, 0]
    stride = {"stride": 3} if explicit_stride else {}
    deconvolved = revdeconv.deconvolve(filtered, blur(), backend=backend, **stride)
    np.testing.assert_allclose(deconvolved, revdeconv.zoom(filtered, 3), rtol=0, atol=1e-12)
    full = revdeconv.deconvolve(filtered, blur(), output_shape=(20, 25), backend=backend,
                                **stride)
    np.testing.assert_allclose(full, ref_zoom(as3d(filtered), 3, 3, (20, 25)).reshape(full.shape),
                               rtol=0, atol=1e-12)


PAPER_KERNELS = {
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float),
    "edge": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], float),
    "signed-random": np.random.default_rng(31).uniform(-1, 1, (3, 3)),
}


@pytest.mark.parametrize("name", PAPER_KERNELS)
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_deconvolve_signed_kernels_match_reference(name, stride, dtype, backend):
    """The paper's filters (with zero weights: the |w| <= eps branch) under clip."""
    rng = np.random.default_rng(32 + stride)
    x = rng.uniform(0, 1, (6, 7, 2)).astype(dtype)
    kernel = PAPER_KERNELS[name].astype(dtype)
    got = revdeconv.deconvolve(x, kernel, stride=stride, backend=backend)
    want = ref_deconvolve(as3d(x), as_kernel3d(kernel, 2), stride, stride, "clip", 1e-6)
    assert_outputs_close({"out": got}, {"out": want}, dtype, REFERENCE_TOL, scaled_atol=True)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_deconvolve_eps_threshold(activation, backend):
    """|w_ij| <= eps: the pixel takes x; a weight just above eps is divided by."""
    rng = np.random.default_rng(33)
    x = rng.uniform(0.1, 0.9, (4, 5))
    kernel = np.array([[0.3, 0.02], [0.25, 0.4]])
    for eps in (0.01, 0.02, 0.05):
        got = revdeconv.deconvolve(x, kernel, stride=2, activation=activation, eps=eps,
                                   backend=backend)
        want = ref_deconvolve(as3d(x), as_kernel3d(kernel, 1), 2, 2, activation, eps)[:, :, 0]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    taken = revdeconv.deconvolve(x, kernel, stride=2, activation=activation, eps=0.02,
                                 backend=backend)
    np.testing.assert_array_equal(taken[0::2, 1::2], x)


def test_deconvolve_larger_output_shape_keeps_zoom_border(backend):
    rng = np.random.default_rng(34)
    x = rng.uniform(0, 1, (5, 6, 3))
    kernel = (1 + rng.uniform(-0.2, 0.2, (3, 3, 3))) / 9
    default = revdeconv.deconvolve(x, kernel, stride=2, backend=backend)   # (11, 13, 3)
    assert default.shape == (11, 13, 3)
    larger = revdeconv.deconvolve(x, kernel, stride=2, output_shape=(15, 16), backend=backend)
    assert larger.shape == (15, 16, 3)
    np.testing.assert_array_equal(larger[:11, :13], default)
    border = ref_zoom(x, 2, 2, (15, 16))
    np.testing.assert_array_equal(larger[11:], border[11:])
    np.testing.assert_array_equal(larger[:, 13:], border[:, 13:])


@pytest.mark.parametrize("output_shape", [(10, 13), (11, 12), (3, 3)])
def test_deconvolve_smaller_output_shape_raises(output_shape, backend):
    x = np.full((5, 6), 0.5)
    with pytest.raises(ValueError):
        revdeconv.deconvolve(x, blur(), stride=2, output_shape=output_shape, backend=backend)


@pytest.mark.parametrize("stride", [1, 2, 3, (2, 3), (3, 1)])
def test_zoom_default_shape(stride):
    x = np.arange(12, dtype=float).reshape(3, 4)
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    out = revdeconv.zoom(x, stride)
    assert out.shape == (3 * sh, 4 * sw)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(x, sh, axis=0), sw, axis=1))


@pytest.mark.parametrize("stride", [(1, 1), (2, 3), (3, 3), (4, 5)])
@pytest.mark.parametrize("activation", ["identity", "relu", "clip"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_squared_error_of_a_fit(stride, activation, dtype, backend):
    # The lstsq loss: sum over a batch of (convolve(original) - target)**2, computed
    # row by row without the fitted images; against the plain computation.
    require(backend)
    from revdeconv._backend import get_backend
    rng = np.random.default_rng(7)
    originals = [rng.random(shape, dtype=np.float64).astype(dtype)
                 for shape in [(13, 17, 2), (9, 11, 2), (30, 7, 2)]]
    kernel = (rng.standard_normal((2, 3, 3)) * 0.5).astype(dtype)
    bias = np.array([0.1, -0.2], dtype=dtype)
    fitted = revdeconv.convolve(originals, kernel, stride=stride, bias=bias,
                                activation=activation, backend="numpy")
    targets = [(f + rng.standard_normal(f.shape) * 0.1).astype(dtype) for f in fitted]
    expected = sum(float(np.sum((f.astype(np.float64) - t) ** 2))
                   for f, t in zip(fitted, targets))
    got = get_backend(backend).squared_error(originals, targets, kernel, bias, stride,
                                            activation, 2)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kernel_shape, stride", [((3, 3), 3), ((2, 3), 3), ((3, 3), 8),
                                                  ((5, 5), 5), ((3, 2), 2), ((7, 4), 4)])
@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_wide_rows_at_every_stride_agree_with_numpy(kernel_shape, stride, n_channels):
    # Rows wide enough to span many of the compiled kernels' stretches (the
    # stride-1 row subsampled, or the strided loop), in both dtypes.
    require("compiled")
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        images = [rng.random((h, w, n_channels)).astype(dtype) for h, w in [(9, 701), (8, 263)]]
        kernel = rng.standard_normal((n_channels,) + kernel_shape).astype(dtype)
        for activation in ("identity", "clip"):
            options = dict(stride=(2, stride), bias=0.1, activation=activation)
            compiled = revdeconv.convolve(images, kernel, backend="compiled", **options)
            fallback = revdeconv.convolve(images, kernel, backend="numpy", **options)
            for a, b in zip(compiled, fallback):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel_shape, stride", [((3, 3), (3, 3)), ((2, 3), (3, 4)),
                                                  ((3, 2), (4, 2)), ((1, 4), (1, 4))])
@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_wide_rows_of_disjoint_blocks_agree_with_numpy(kernel_shape, stride, n_channels):
    # The compiled reverse solve of blocks that share no pixel goes a stretch of
    # blocks at a time and writes each pixel row in address order (with C = 3 and
    # blocks that tile the row, four values a pixel, one past it, the last pixel
    # exactly): rows of one to many stretches, gaps, and a border of zoom values
    # beyond the blocks, in both dtypes and on two threads, bit for bit the fallback's.
    require("compiled")
    rng = np.random.default_rng(12)
    for dtype in (np.float32, np.float64):
        kernel = rng.uniform(0.5, 1.5, (n_channels,) + kernel_shape).astype(dtype)
        for width in (1, 64, 65, 200):
            x = rng.random((4, width, n_channels)).astype(dtype)
            covered = ((4 - 1) * stride[0] + kernel_shape[0],
                       (width - 1) * stride[1] + kernel_shape[1])
            for output_shape in (covered, (covered[0] + 2, covered[1] + 3)):
                options = dict(stride=stride, activation="identity", output_shape=output_shape)
                compiled = revdeconv.deconvolve(x, kernel, backend="compiled", n_threads=2,
                                                **options)
                fallback = revdeconv.deconvolve(x, kernel, backend="numpy", **options)
                np.testing.assert_array_equal(compiled, fallback)
