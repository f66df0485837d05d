"""What the installation computes with: the backend, OpenMP, threads, the fallback."""

import os
import subprocess
import sys
import textwrap

import pytest

import revdeconv
from revdeconv import _backend, _threads


def _run(code, tmp_path, **env):
    """Run ``code`` in a fresh interpreter (backend choice happens at import).

    It runs outside the source tree and checks it imported the same package
    as this test session: ``python -c`` puts the working directory first on
    ``sys.path``, where a source checkout would shadow the installed package.
    """
    environ = {k: v for k, v in os.environ.items() if k != "REVDECONV_BACKEND"}
    environ.update(env)
    check = f"import revdeconv; assert revdeconv.__file__ == {revdeconv.__file__!r}\n"
    return subprocess.run([sys.executable, "-c", check + textwrap.dedent(code)], env=environ,
                          cwd=tmp_path, capture_output=True, text=True, check=True)


@pytest.mark.skipif(not os.environ.get("REVDECONV_EXPECT_COMPILED"),
                    reason="set REVDECONV_EXPECT_COMPILED=1 where the extension must be built")
def test_compiled_backend_is_under_test():
    assert revdeconv.compiled_available(), revdeconv.config()["import_error"]
    assert revdeconv.config()["backend"] == "compiled"


@pytest.mark.skipif(not os.environ.get("REVDECONV_EXPECT_OPENMP"),
                    reason="set REVDECONV_EXPECT_OPENMP=1 where OpenMP must be compiled in")
def test_openmp_was_compiled_in():
    # A build that silently lost OpenMP would still pass every other test.
    assert revdeconv.config()["openmp"]


def test_build_record_agrees_with_the_extension():
    """What setup.py recorded about OpenMP is what the compiled code says."""
    info = revdeconv.config()
    if info["build"] is None or not info["compiled"]:
        pytest.skip("no installed build")
    assert info["build"]["openmp"] == info["openmp"]
    assert bool(info["build"]["flags"]) == info["openmp"]


def test_debug_build_asserts_on_a_bad_geometry():
    """In a debug build (REVDECONV_DEBUG=1) the compiled wrappers check what the façade
    hands them: a geometry that points past a buffer is an AssertionError, not a crash."""
    build = revdeconv.config()["build"]
    if not (revdeconv.compiled_available() and build and build["debug"]):
        pytest.skip("not a debug build")
    import numpy as np
    from revdeconv import _convolve
    src = [np.zeros((3, 3, 3))]
    geometry = np.array([[0, 3, 3, 0]], dtype=np.intp)
    kernel = np.ones((3, 3, 3))
    out_geometry = np.array([[0, 1, 1, 0]], dtype=np.intp)
    too_far = np.array([[0, 1, 1, 5]], dtype=np.intp)       # rows past the row flags
    no_taps = np.empty((1, 0), dtype=np.intp)
    rows = np.zeros(1, dtype=np.uint8)
    with pytest.raises(AssertionError):
        _convolve.convolve(src, geometry, kernel, np.zeros(3), [np.zeros((1, 1, 3))],
                           too_far, np.empty((0, 0)), no_taps, np.empty((1, 0)), rows,
                           3, 3, 2, 1)
    out = np.zeros((1, 1, 3))
    _convolve.convolve(src, geometry, kernel, np.zeros(3), [out], out_geometry,
                       np.empty((0, 0)), no_taps, np.empty((1, 0)), rows, 3, 3, 2, 1)


def test_show_config_reports_backend_openmp_threads(capsys):
    revdeconv.show_config()
    out = capsys.readouterr().out
    info = revdeconv.config()
    assert f"backend: {info['backend']}" in out
    assert f"built with OpenMP: {'yes' if info['openmp'] else 'no'}" in out
    assert f"threads in use: {info['threads']}" in out
    assert "build: " in out


def test_environment_forces_numpy_backend(tmp_path):
    out = _run("import revdeconv; print(revdeconv.config()['backend'])", tmp_path,
               REVDECONV_BACKEND="numpy").stdout
    assert out.strip() == "numpy"


def test_omp_num_threads_is_honoured(tmp_path):
    if not _threads.openmp_enabled():
        pytest.skip("serial build")
    out = _run("import revdeconv; print(revdeconv.config()['threads'])", tmp_path,
               OMP_NUM_THREADS="3").stdout
    assert out.strip() == "3"


def test_package_imports_without_extension_and_says_why(tmp_path):
    """Copy the pure-Python part of the package alone: it must fall back to NumPy."""
    import shutil
    src = os.path.dirname(revdeconv.__file__)
    dst = tmp_path / "revdeconv"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c",
         "import numpy as np, revdeconv; revdeconv.show_config(); "
         "print(revdeconv.convolve(np.ones((6, 6)), np.ones((3, 3)) / 9).tolist())"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if k != "REVDECONV_BACKEND"})
    assert "backend: numpy" in result.stdout
    assert "import error:" in result.stdout
    assert "compiled extension could not be imported" in result.stderr
    assert "[[1.0, 1.0], [1.0, 1.0]]" in result.stdout


def test_compiled_backend_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_backend, "_compiled_backend", None)
    monkeypatch.setattr(_backend, "IMPORT_ERROR", "ImportError: gone")
    with pytest.raises(RuntimeError, match="gone"):
        revdeconv.convolve([[0.5] * 4] * 4, [[1.0]], backend="compiled")


@pytest.mark.parametrize("n_threads, expected", [(1, 1), (2, 2), (7, 7)])
def test_effective_n_threads_positive(n_threads, expected):
    got = _threads.effective_n_threads(n_threads)
    assert got == (expected if _threads.openmp_enabled() else 1)


def test_effective_n_threads_negative_counts_back():
    if not _threads.openmp_enabled():
        pytest.skip("serial build")
    default = _threads.effective_n_threads(None)
    assert _threads.effective_n_threads(-1) == default
    assert _threads.effective_n_threads(-default - 5) == 1


@pytest.mark.parametrize("bad, error", [(0, ValueError), (1.5, TypeError), ("2", TypeError),
                                        (True, TypeError)])
def test_effective_n_threads_rejects(bad, error):
    with pytest.raises(error, match="n_threads"):
        _threads.effective_n_threads(bad)
