"""The experiment reports ``revdeconv.restore`` (issue 11, point 4): restore and blind
bicubic gains beside the paper's reverse solve in Tables 1 and 2, a leave-one-out
protocol, and a stride-1 study against scikit-image's Wiener and Richardson-Lucy."""

import csv
import subprocess
import sys

import numpy as np
import pytest

import revdeconv
from revdeconv import _restoration_cases, metrics
from revdeconv.experiment import PAPER_FILTERS, quantize, run_experiment, run_stride1_study
from revdeconv.io import save_image
from revdeconv.report import write_all


def _images(height=30, width=45, n=3):
    """Smooth synthetic RGB images (cheap, deterministic)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return [np.clip((0.5 + 0.3 * np.sin(rows / (3 + k)) * np.cos(cols / (4 + k)))[..., None]
                    * np.array([1.0, 0.8, 0.6]), 0, 1) for k in range(n)]


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def restored():
    return run_experiment(_images(), rates=[0.5, 0.1], restore=True)


def test_each_row_gets_restore_and_bicubic_gains_computed_as_stated(restored):
    images = _images()
    row = restored.row(0.1, "sharpening")
    filtered = [quantize(f) for f in revdeconv.convolve(images, PAPER_FILTERS["sharpening"])]
    targets = [image[:30, :45] for image in images]
    zoomed = [revdeconv.zoom(f, 3, (30, 45)) for f in filtered]
    mae0 = np.mean([metrics.mae(z, t) for z, t in zip(zoomed, targets)])
    fit = revdeconv.learn_filter(images, filtered, lr=0.1)
    ours = revdeconv.restore(filtered, fit, output_shape=[(30, 45)] * 3)
    assert row.restore_gain == pytest.approx(
        mae0 / np.mean([metrics.mae(r, t) for r, t in zip(ours, targets)]), rel=1e-9)
    assert row.restore_psnr == pytest.approx(
        np.mean([metrics.psnr(t, r) for r, t in zip(ours, targets)]), rel=1e-9)
    bicubic = [_restoration_cases.upsample(f, (30, 45)) for f in filtered]
    assert row.bicubic_gain == pytest.approx(
        mae0 / np.mean([metrics.mae(b, t) for b, t in zip(bicubic, targets)]), rel=1e-9)
    assert row.restore_gain > row.gain            # restore undoes what the paper's cannot
    table2 = {r["filter"]: r for r in restored.table2()}
    rows = [restored.row(rate, "blur") for rate in (0.5, 0.1)]
    assert table2["blur"]["restore_gain"] == pytest.approx(np.mean([r.restore_gain
                                                                    for r in rows]))
    assert restored.bicubic in ("OpenCV", "Pillow")


def test_without_restore_nothing_changes():
    plain = run_experiment(_images(n=2), rates=[0.5])
    assert all(r.restore_gain is None and r.bicubic_gain is None for r in plain.rows)
    assert plain.leave_one_out == {} and plain.bicubic is None
    assert plain.table2()[0]["restore_gain"] is None


def test_leave_one_out_learns_on_the_others_and_restores_the_one_held_out(restored):
    images = _images()
    loo = restored.leave_one_out
    assert set(loo) == set(PAPER_FILTERS) and loo["blur"]["images"] == 3
    filtered = [quantize(f) for f in revdeconv.convolve(images, PAPER_FILTERS["blur"])]
    errors, zoom_errors = [], []
    for n in range(3):
        fit = revdeconv.learn_filter([images[k] for k in range(3) if k != n],
                                     [filtered[k] for k in range(3) if k != n],
                                     method="lstsq")
        errors.append(metrics.mae(revdeconv.restore(filtered[n], fit), images[n][:30, :45]))
        zoom_errors.append(metrics.mae(revdeconv.zoom(filtered[n], 3, (30, 45)),
                                       images[n][:30, :45]))
    assert loo["blur"]["gain"] == pytest.approx(np.mean(zoom_errors) / np.mean(errors))
    assert loo["sharpening"]["gain"] > loo["sharpening"]["reverse_gain"]


def test_the_report_and_tables_have_the_restore_columns_only_when_run(restored, tmp_path):
    write_all(restored, tmp_path / "with")
    text = (tmp_path / "with" / "report.md").read_text()
    assert "| γ | filter | MAE | MAE0 | Loss | gain | zoom gain | bicubic gain | restore gain |" \
        in text
    assert "| filter | MAE | MAE0 | Loss | gain | zoom gain | bicubic gain | restore gain |" \
        in text
    assert "### Leave-one-out" in text and "## Restoration" in text
    table1 = _csv(tmp_path / "with" / "table1.csv")
    assert float(table1[0]["restore_gain"]) == pytest.approx(restored.rows[0].restore_gain)
    assert "bicubic_gain" in _csv(tmp_path / "with" / "table2.csv")[0]
    write_all(run_experiment(_images(n=2), rates=[0.5]), tmp_path / "without")
    text = (tmp_path / "without" / "report.md").read_text()
    assert "restore gain" not in text and "## Restoration" not in text
    assert "restore_gain" not in _csv(tmp_path / "without" / "table1.csv")[0]


def test_bicubic_without_opencv_is_pillows_per_channel(monkeypatch):
    from PIL import Image
    image = np.random.default_rng(0).random((10, 12, 3))
    monkeypatch.setitem(sys.modules, "cv2", None)
    assert _restoration_cases.bicubic_backend() == "Pillow"
    out = _restoration_cases.upsample(image, (30, 36))
    green = np.asarray(Image.fromarray(image[:, :, 1].astype(np.float32), "F")
                       .resize((36, 30), Image.BICUBIC))
    np.testing.assert_allclose(out[:, :, 1], np.clip(green, 0, 1))
    np.testing.assert_allclose(_restoration_cases.upsample(np.full((4, 5, 3), 0.25), (12, 15)),
                               0.25, atol=1e-6)


def test_stride1_study_rows_and_report(tmp_path):
    images = [image for image in _images(40, 48, n=2)]
    rows, examples = run_stride1_study(images, quick=True)
    methods = {"blurred input", "paper's reverse solve", "restore"}
    skimage = _restoration_cases.optional("skimage.restoration") is not None
    if skimage:
        methods |= {"Wiener (tuned)", "Richardson-Lucy (tuned)"}
    assert {r["method"] for r in rows} == methods
    assert len(rows) == len(methods) * len(_restoration_cases.BLURS) * 2
    by = {(r["blur"], r["noise"], r["method"]): r for r in rows}
    for blur in _restoration_cases.BLURS:
        for noise in (0.01, 0.0):
            ours, input_ = by[blur, noise, "restore"], by[blur, noise, "blurred input"]
            assert ours["psnr"] > input_["psnr"]
            assert ours["setting"].endswith("it.")
            if skimage:
                assert 0 < ours["ssim"] <= 1
    data = _restoration_cases.blurred(images, _restoration_cases.BLURS["box 3x3"], 0.01)
    expected = np.mean([metrics.psnr(o, r) for o, r in zip(
        images, revdeconv.restore(data, _restoration_cases.BLURS["box 3x3"], stride=1))])
    assert by["box 3x3", 0.01, "restore"]["psnr"] == pytest.approx(expected)
    assert set(examples) == set(_restoration_cases.BLURS)
    result = run_experiment(images, rates=[0.5])
    paths, _ = write_all(result, tmp_path, stride1=(rows, examples))
    assert (tmp_path / "stride1.csv").exists() and (tmp_path / "stride1_box-3x3.png").exists()
    text = (tmp_path / "report.md").read_text()
    assert "### Stride 1 (valid mode): deblurring" in text
    assert "![stride1_motion-9-px.png](stride1_motion-9-px.png)" in text
    assert len(_csv(tmp_path / "stride1.csv")) == len(rows)


def test_stride1_study_says_when_scikit_image_is_missing(monkeypatch, tmp_path):
    for name in ("skimage", "skimage.metrics", "skimage.restoration"):
        monkeypatch.setitem(sys.modules, name, None)
    rows, examples = run_stride1_study(_images(30, 36, n=1), quick=True)
    assert {r["method"] for r in rows} == {"blurred input", "paper's reverse solve", "restore"}
    assert all(r["ssim"] is None for r in rows)
    write_all(run_experiment(_images(n=2), rates=[0.5]), tmp_path, stride1=(rows, examples))
    text = (tmp_path / "report.md").read_text()
    assert "SSIM: scikit-image is not installed" in text and "not installed: left out" in text


def test_experiment_command_restore_flag(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for n, image in enumerate(_images(n=2)):
        save_image(folder / f"{n}.png", image)
    code = (f"import sys, revdeconv.cli\nassert revdeconv.__file__ == {revdeconv.__file__!r}\n"
            "sys.exit(revdeconv.cli.main(['experiment', '--images', 'imgs', '--method', "
            "'lstsq', '--restore', '--out', 'o']))")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "o" / "report.md").read_text()
    assert "| filter | MAE | MAE0 | Loss | gain | zoom gain | bicubic gain | restore gain |" \
        in text
    assert "### Leave-one-out" in text
