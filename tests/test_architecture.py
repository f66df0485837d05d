"""The package's imports read top to bottom: commands -> experiment / benchmark / batch ->
public functions -> backends -> images / threads -> validation / layout / io.

A module may import modules of its own layer or below, never above, and the imports
have no circle. A new module must be given its layer here.
"""

import ast
import pathlib

import pytest

import revdeconv

LAYERS = [
    # 0: checks, geometry, files, constants, the compiled kernels
    {"_validation", "_layout", "io", "_codecs", "filters", "_version", "_build_info", "data",
     "_convolve", "_learn", "_reverse", "_measure", "_openmp_helpers", "_restore",
     "_png_filter", "_png", "_block_cache", "_levels", "_atomic", "_native", "_chunk_plan"},
    # 1: thread counts; images as the public functions take them
    {"_threads", "_images", "_results"},
    # 2: the implementations, and the choice between them
    {"_numpy_backend", "_compiled_backend", "_restore_numpy", "_restore_compiled",
     "_backend", "_config"},
    # 3: the public functions
    {"convolution", "learning", "reverse", "metrics", "restoration"},
    # 4: many images, files of kernels, the experiment and the benchmark
    {"batch", "kernel_file", "experiment", "report", "_report_text", "_figures",
     "benchmark", "_bench_cases", "bench_report", "chunked", "_restoration_cases"},
    # 5: the command line
    {"_options", "_inputs", "_pixels", "_runner", "_bench_command", "cli", "__main__",
     "_partition", "_cluster", "_commands", "_pipeline", "_tally", "_bench_folder"},
    # 6: the package's namespace
    {"__init__"},
]
LAYER = {name: n for n, names in enumerate(LAYERS) for name in names}
PACKAGE = pathlib.Path(revdeconv.__file__).parent


def _imports(path):
    """Names of the package's top-level modules that ``path`` imports (at any depth)."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:                                   # from . import a, b
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("revdeconv."):
            found.add(node.module.split(".")[1])
    return found


def _graph():
    return {path.stem: _imports(path) for path in PACKAGE.glob("*.py")}


def test_every_module_has_a_layer():
    missing = sorted(set(_graph()) - set(LAYER))
    assert not missing, f"give these modules a layer in {__file__}: {missing}"


@pytest.mark.parametrize("module", sorted(p.stem for p in PACKAGE.glob("*.py")))
def test_no_module_imports_one_above_it(module):
    above = {name for name in _graph()[module] if LAYER.get(name, -1) > LAYER.get(module, -1)}
    assert not above, f"{module} (layer {LAYER.get(module)}) imports {sorted(above)} from above"


def test_imports_have_no_circle():
    graph = _graph()
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import circle: {' -> '.join(path + [module])}"
        state[module] = "open"
        for name in sorted(graph.get(module, ())):
            if name in graph and name != "__init__":
                visit(name, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])


def test_no_module_is_too_long():
    long = {p.name: n for p in PACKAGE.glob("*.py")
            if (n := len(p.read_text().splitlines())) > 460}
    assert not long, f"modules over about 450 lines: {long}"
