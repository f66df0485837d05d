"""What a user reads (the README, the docstrings, the command's help) cites no file the
user does not have, and says itself what the package computes. (The tests may refer to
the developers' SPEC.md: it is their contract, not shipped.)"""

import ast
import os
import re
import subprocess
import sys

import pytest

import revdeconv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.dirname(revdeconv.__file__)
README = os.path.join(ROOT, "README.md")

pytestmark = pytest.mark.skipif(not os.path.exists(README),
                                reason="README.md not beside the tests (installed tests only)")


def _readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_readme_cites_no_spec_and_only_files_that_are_there():
    text = _readme()
    assert not re.search(r"\bSPEC\b", text)
    cited = set(re.findall(r"`([\w./-]+/[\w.-]+\.\w+)`", text))      # paths with a folder
    cited |= set(re.findall(r"\]\(([^)#:]+)\)", text))                  # links and images
    missing = sorted(path for path in cited if not os.path.exists(os.path.join(ROOT, path)))
    assert not missing


def _docstrings(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    nodes = [tree] + [node for node in ast.walk(tree)
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return [ast.get_docstring(node) or "" for node in nodes]


def test_no_docstring_cites_the_spec():
    cited = []
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith((".py", ".pyi")):
                path = os.path.join(folder, name)
                if any(re.search(r"\bSPEC\b", doc) for doc in _docstrings(path)):
                    cited.append(os.path.relpath(path, PACKAGE))
    assert not cited


@pytest.mark.parametrize("command", [[], ["filter"], ["learn"], ["deconvolve"],
                                     ["experiment"], ["bench"]])
def test_no_help_cites_the_spec(command):
    out = subprocess.run([sys.executable, "-m", "revdeconv", *command, "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "SPEC" not in out


def test_readme_states_the_conventions_a_user_needs():
    text = _readme()
    conventions = text[text.index("## Conventions"):]
    for needed in [
        "the default is the kernel size",                       # stride
        '`"clip"` (default',                                    # activation
        "integer images are scaled by their dtype's maximum",  # dtype policy
        "`|w| <= eps` (default `1e-6`)",                        # eps
        "**MAE**", "**MAE0**", "`|MAE - MAE0| / MAE0`", "`MAE0 / MAE`",
        "`metrics.psnr(reference, test, data_range=None)`",
    ]:
        assert needed in conventions, needed
