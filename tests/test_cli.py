"""The ``revdeconv`` command, run as a user runs it: a separate process, real files."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import revdeconv
from revdeconv.io import save_image


def _revdeconv(*args, cwd, prelude=""):
    """Run ``python -m revdeconv ARGS`` (``prelude`` runs first, in the same process)."""
    code = (f"{prelude}\nimport sys, revdeconv.cli\n"
            f"assert revdeconv.__file__ == {revdeconv.__file__!r}\n"
            f"sys.exit(revdeconv.cli.main({list(args)!r}))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, check=True)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_experiment_on_the_bundled_samples_writes_every_file(tmp_path):
    run = _revdeconv("experiment", "--out", "out", cwd=tmp_path)
    out = tmp_path / "out"
    names = {"table1.csv", "table2.csv", "report.md", "strip_blur.png",
             "strip_sharpening.png", "strip_edge-detection.png"}
    try:
        import matplotlib  # noqa: F401
        names.add("loss_ratio.png")
    except ImportError:
        assert "revdeconv[plot]" in run.stderr
    assert names <= set(os.listdir(out))
    table1 = _rows(out / "table1.csv")
    assert len(table1) == 57
    assert {r["filter"] for r in table1} == {"blur", "sharpening", "edge-detection"}
    assert all(r["author_MAE"] for r in table1)          # the author's numbers beside ours
    assert len([k for k in table1[0] if k.startswith("k")]) == 27   # 3 channels x 3x3
    table2 = _rows(out / "table2.csv")
    assert {(r["rates"], r["filter"]) for r in table2} == {
        (s, f) for s in ("1.0-0.1", "all") for f in ("blur", "sharpening", "edge-detection")}
    blur = next(r for r in table2 if r["rates"] == "1.0-0.1" and r["filter"] == "blur")
    assert float(blur["author_loss_ratio"]) == pytest.approx(1.098372, rel=1e-6)
    report = (out / "report.md").read_text()
    assert "| blur | 0.0245" in report or "| blur |" in report
    # The author's Table 2 as the paper prints it (means rounded half up), and Table 1.
    assert "| 0.1514 | 0.0727 | 109.8372% |" in report
    assert "| 0.5570 | 0.5482 | 1.5904% |" in report and "296.1781%" in report
    assert "### edge-detection" in report and "| Red |" in report   # learned filters
    # piped, so no bar: a line at each tenth of the way (issue 12, point 10)
    assert "57/57 edge-detection" in run.stderr and "\r" not in run.stderr


def test_experiment_options_and_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    save_image(folder / "a.png", rng.random((30, 36)))              # grey: three channels
    save_image(folder / "b.png", rng.random((33, 30, 4)))           # alpha: dropped
    (folder / "notes.txt").write_text("not an image")
    _revdeconv("experiment", "--images", str(folder), "--rates", "0.5", "0.05",
               "--method", "lstsq", "--author-quirks", "--out", "res", cwd=tmp_path)
    table1 = _rows(tmp_path / "res" / "table1.csv")
    assert [r["learning_rate"] for r in table1] == [""] * 3     # lstsq: one fit, no rate
    assert "author quirks on" in (tmp_path / "res" / "report.md").read_text()


def test_experiment_without_matplotlib_still_writes_tables_and_strips(tmp_path):
    run = _revdeconv("experiment", "--rates", "0.1", "--out", "o", cwd=tmp_path,
                     prelude="import sys; sys.modules['matplotlib'] = None")
    files = set(os.listdir(tmp_path / "o"))
    assert "loss_ratio.png" not in files
    assert {"table1.csv", "table2.csv", "report.md", "strip_blur.png"} <= files
    assert 'pip install "revdeconv[plot]"' in run.stderr


def test_info_shows_the_configuration(tmp_path):
    out = _revdeconv("info", cwd=tmp_path).stdout
    assert f"backend: {revdeconv.config()['backend']}" in out
    assert "built with OpenMP:" in out


def test_python_dash_m_runs_the_command(tmp_path):
    run = subprocess.run([sys.executable, "-m", "revdeconv", "info"], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert "backend:" in run.stdout


@pytest.mark.parametrize("args, message", [
    (["experiment", "--images", "missing"], "is not a folder"),
    # checked as the command line is read, in its words (issue 12, point 8)
    (["experiment", "--rates", "0"], "argument --rates: expected a number above 0"),
    (["experiment", "--rates", "nan"], "argument --rates: expected a number above 0"),
    (["experiment", "--threads", "0"], "argument --threads: expected a number of threads"),
    (["experiment", "--out", "a_file"], "exists and is not a folder"),
])
def test_experiment_bad_arguments_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(subprocess.CalledProcessError) as failure:
        _revdeconv(*args, cwd=tmp_path)
    assert message in failure.value.stderr
    assert "Traceback" not in failure.value.stderr


def test_empty_image_folder_is_a_clear_error(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        _revdeconv("experiment", "--images", str(tmp_path), cwd=tmp_path)
    assert "no image files in" in failure.value.stderr
