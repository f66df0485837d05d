"""``import revdeconv`` makes every public submodule reachable as an attribute, loading
each one on first use (PEP 562, as scikit-image does), so that the import stays fast."""

import subprocess
import sys

import pytest

import revdeconv

#: The public submodules a user reaches as ``revdeconv.<name>``.
SUBMODULES = ("batch", "benchmark", "bench_report", "cli", "data", "experiment", "io",
              "kernel_file", "report", "filters", "metrics", "convolution", "learning",
              "reverse")


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout


def test_import_loads_none_of_the_heavy_submodules_and_each_loads_on_first_use():
    out = _python(
        "import sys, revdeconv\n"
        f"assert revdeconv.__file__ == {revdeconv.__file__!r}\n"
        "heavy = ['revdeconv.' + n for n in ('benchmark', 'experiment', 'report', 'batch',"
        " 'io', 'kernel_file', 'data', 'cli', 'bench_report')]\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(len(revdeconv.data.samples()))\n"
        "print('revdeconv.data' in sys.modules, 'revdeconv.experiment' in sys.modules)\n"
        "print(revdeconv.batch.convolve.__module__)\n")
    assert out.split("\n")[:4] == ["[]", "10", "True False", "revdeconv.batch"]


@pytest.mark.parametrize("name", SUBMODULES)
def test_every_public_submodule_is_an_attribute(name):
    out = _python(f"import revdeconv\nprint(revdeconv.{name}.__name__)")
    assert out.strip() == f"revdeconv.{name}"


#: Public modules that need an optional dependency, and it: left out where it is missing.
OPTIONAL = {"chunked": "dask"}


def _installed(name):
    import importlib.util
    return name not in OPTIONAL or importlib.util.find_spec(OPTIONAL[name]) is not None


def test_any_public_module_of_the_package_is_reachable_and_private_ones_are_not():
    import pkgutil
    public = [m.name for m in pkgutil.iter_modules(revdeconv.__path__)
              if not m.name.startswith("_") and _installed(m.name)]
    assert set(SUBMODULES) <= set(public)
    out = _python("import revdeconv\n"        # (a private module is not imported for it)
                  "print(hasattr(revdeconv, '_runner'), hasattr(revdeconv, '__main__'))\n"
                  f"print([getattr(revdeconv, n).__name__ for n in {public!r}])")
    assert out.split("\n")[:2] == ["False False", str([f"revdeconv.{n}" for n in public])]


def test_dir_lists_the_submodules_and_unknown_names_still_raise_attribute_error():
    names = dir(revdeconv)
    assert set(SUBMODULES) <= set(names)
    assert set(revdeconv.__all__) <= set(names)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        revdeconv.nonexistent  # noqa: B018
    assert not hasattr(revdeconv, "_runner_not_a_module")
    assert getattr(revdeconv, "experiment") is sys.modules["revdeconv.experiment"]
