"""The experiment's report, read as a researcher reads it: every measure defined where it
first appears, every mean saying what it is over, where the numbers come from (version,
command, date, backend, threads, images), labelled figures, an honest least-squares run,
and a folder with a bad file that still gives a report."""

import csv
import datetime
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import revdeconv
from revdeconv import experiment
from revdeconv.experiment import PAPER_FILTERS, TABLE1_RATES, run_experiment
from revdeconv.io import save_image
from revdeconv.report import write_all, write_report, write_strips


def _images(height=30, width=45, n=2):
    """Smooth synthetic RGB images (cheap, deterministic)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return [np.clip((0.5 + 0.3 * np.sin(rows / (3 + k)) * np.cos(cols / (4 + k)))[..., None]
                    * np.array([1.0, 0.8, 0.6]), 0, 1) for k in range(n)]


def _revdeconv(*args, cwd):
    code = (f"import sys, revdeconv.cli\nassert revdeconv.__file__ == {revdeconv.__file__!r}\n"
            f"sys.exit(revdeconv.cli.main({list(args)!r}))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- the measures, defined where they first appear ------------------------------------

@pytest.mark.parametrize("quirks", [False, True])
def test_each_measure_is_defined_where_it_first_appears(tmp_path, quirks):
    result = run_experiment(_images(), rates=[0.5, 0.1], author_quirks=quirks)
    write_report(result, tmp_path)
    lines = (tmp_path / "report.md").read_text().splitlines()
    definitions = {
        "MAE": (r"\bMAE\b", ["mean", "|", "original", "deconvolved"]),
        "MAE0": (r"\bMAE0\b", ["zoom", "original"]),
        "Loss": (r"(?i)\bloss\b", ["loss ratio", "|MAE - MAE0| / MAE0"]),
        "gain": (r"(?i)\bgain\b", ["MAE0 / MAE", "closer"]),
    }
    for term, (pattern, words) in definitions.items():
        first = next(line for line in lines if re.search(pattern, line))
        assert first.startswith(f"- **{term}**"), (term, first)
        for word in words:
            assert word in first, (term, word, first)
    text = "\n".join(lines)
    # the region the errors are taken on follows the protocol actually run
    assert ("full image" in text) == quirks


# --- which rows each mean is over -----------------------------------------------------

def test_a_three_rate_mean_is_called_a_three_rate_mean(tmp_path):
    result = run_experiment(_images(), rates=[0.5, 0.3, 0.1])
    write_all(result, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "(the paper's Table 2)" not in text and "Table 2: mean over the 10" not in text
    assert "mean over the 3 learning rates 0.5, 0.3, 0.1" in text
    assert "not the paper's Table 2" in text
    labels = {row["rates"] for row in _rows(tmp_path / "table2.csv")}
    assert "1.0-0.1" not in labels and labels == {"0.5 0.3 0.1"}


def test_the_papers_ten_rates_are_its_table_2_and_other_rates_a_mean_of_all(tmp_path):
    result = run_experiment(_images(), rates=TABLE1_RATES + (0.05,))
    write_report(result, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "mean over the 10 learning rates 1.0 ... 0.1 (the paper's Table 2)" in text
    assert "mean over all 11 learning rates run (1.0 ... 0.05)" in text
    assert "the author's means over the same rates" in text


# --- provenance -----------------------------------------------------------------------

def test_provenance_of_a_run_on_the_bundled_samples(tmp_path):
    run = _revdeconv("experiment", "--rates", "0.1", "--threads", "1", "--out", "o",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "o" / "report.md").read_text()
    head = text.split("## Table")[0]
    assert f"revdeconv {revdeconv.__version__}" in head
    assert "`revdeconv experiment --rates 0.1 --threads 1 --out o`" in head
    assert f"backend {revdeconv.config()['backend']}" in head and "1 thread" in head
    stamp = re.search(r"date: (\S+)", head).group(1)
    when = datetime.datetime.fromisoformat(stamp)
    assert abs(when - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 600
    assert "the ten bundled sample images" in head and "not the paper's" in head
    assert "01_astronaut_face" in head


def test_provenance_of_a_run_on_an_image_folder(tmp_path):
    folder = tmp_path / "my images"
    folder.mkdir()
    for name, image in zip(("first", "second"), _images()):
        save_image(folder / f"{name}.png", image)
    run = _revdeconv("experiment", "--images", str(folder), "--rates", "0.2", "--out", "o",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    head = (tmp_path / "o" / "report.md").read_text().split("## Table")[0]
    assert "bundled" not in head
    assert f"the 2 images of the folder `{folder}`" in head
    assert "first.png, second.png" in head
    assert "--images" in head and "not the paper's" in head


def test_provenance_of_a_python_run(tmp_path):
    result = run_experiment(_images(), rates=[0.2], n_threads=1, backend="numpy")
    write_report(result, tmp_path)
    head = (tmp_path / "report.md").read_text().split("## Table")[0]
    assert "2 images given to `run_experiment`" in head and "backend numpy" in head
    assert "1 thread" in head and "run from Python" in head


# --- the figures ----------------------------------------------------------------------

def test_strips_are_labelled_with_panels_filter_rate_and_image(tmp_path):
    images = _images(30, 45)
    result = run_experiment(images, rates=[0.5])
    paths = write_strips(result, tmp_path)
    bands = {}
    for path in paths:
        strip = np.asarray(Image.open(path).convert("RGB"), dtype=float) / 255
        # three panels 45 wide at an integer scale k, 4-pixel gaps, a label band on top
        scale = (strip.shape[1] - 8) // 135
        assert scale >= 1 and strip.shape[1] == 135 * scale + 8
        height = 30 * scale
        assert strip.shape[0] > height                 # the band
        original = np.repeat(np.repeat(images[0], scale, 0), scale, 1)
        np.testing.assert_allclose(strip[-height:, :45 * scale], original, atol=0.5 / 255 + 1e-9)
        band = strip[:-height].mean(axis=2)
        for start in (0, 45 * scale + 4, 90 * scale + 8):   # a label over each panel
            assert (band[:, start:start + 45 * scale] < 0.5).any()
        bands[path] = band
    # each strip's band names its own filter
    first, *others = bands.values()
    assert all(b.shape != first.shape or not np.array_equal(b, first) for b in others)
    write_report(result, tmp_path, figures=paths)
    text = (tmp_path / "report.md").read_text()
    for name in PAPER_FILTERS:
        best = result.best(name)
        assert re.search(rf"\*{re.escape(name)}, learning rate {best.rate:g}.*image "
                         rf"`image 1`.*original \| filtered, zoomed back \| restored", text)


# --- least squares has no learning rate -----------------------------------------------

def test_lstsq_fits_each_filter_once_and_says_there_is_no_rate(tmp_path, monkeypatch):
    calls = []
    real = experiment.learn_filter

    def counting(*args, **kwargs):
        calls.append(kwargs.get("method"))
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "learn_filter", counting)
    result = run_experiment(_images(), rates=[1.0, 0.5, 0.1, 0.05], method="lstsq")
    assert calls == ["lstsq"] * len(PAPER_FILTERS)        # one fit per filter
    assert len(result.rows) == len(PAPER_FILTERS)
    assert all(row.rate is None for row in result.rows)
    assert result.row(None, "blur") is result.row(0.5, "blur")   # a rate is not used
    assert [row["rates"] for row in result.table2()] == [0] * len(PAPER_FILTERS)
    write_all(result, tmp_path)
    table1 = _rows(tmp_path / "table1.csv")
    assert [r["learning_rate"] for r in table1] == [""] * len(PAPER_FILTERS)
    text = (tmp_path / "report.md").read_text()
    assert "no learning rate" in text and "one fit per filter" in text
    assert "19 rates" not in text and "4 learning rates" not in text


def test_lstsq_on_the_command_line_says_rates_are_not_used(tmp_path):
    run = _revdeconv("experiment", "--method", "lstsq", "--rates", "0.5", "0.1", "--out", "o",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "--rates is not used" in run.stderr
    assert "mean over" not in run.stdout and "least squares" in run.stdout
    assert len(_rows(tmp_path / "o" / "table1.csv")) == 3


# --- a folder with bad files ----------------------------------------------------------

def test_images_folder_with_bad_files_skips_and_reports_them(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, image in zip(("a", "c"), _images()):
        save_image(folder / f"{name}.png", image)
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")     # corrupt
    save_image(folder / "d.png", np.full((2, 2, 3), 0.5))                # smaller than 3x3
    run = _revdeconv("experiment", "--images", str(folder), "--rates", "0.3", "--out", "o",
                     cwd=tmp_path)
    assert run.returncode == 1                                  # as `filter`: 1 when any failed
    assert "Traceback" not in run.stderr
    assert re.search(rf"^revdeconv experiment: {re.escape(str(folder / 'b.png'))}: \S",
                     run.stderr, re.M)
    assert re.search(rf"^revdeconv experiment: {re.escape(str(folder / 'd.png'))}: .*2x2.*3x3",
                     run.stderr, re.M)
    assert "revdeconv experiment: 2 images used, 2 failed" in run.stderr
    text = (tmp_path / "o" / "report.md").read_text()       # the run went on without them
    assert "the 2 images of the folder" in text and "a.png, c.png" in text
    assert "left out" in text and "b.png" in text and "d.png" in text
    assert len(_rows(tmp_path / "o" / "table1.csv")) == 3


def test_images_folder_with_only_bad_files_is_an_error(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "b.png").write_bytes(b"garbage")
    run = _revdeconv("experiment", "--images", str(folder), "--out", "o", cwd=tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"revdeconv experiment: {folder / 'b.png'}: " in run.stderr
    assert "no image in" in run.stderr and "could be used" in run.stderr
