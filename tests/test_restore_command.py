"""``revdeconv restore``: each file's output is :func:`revdeconv.restore` of it, written
as ``deconvolve`` writes (bit depth and alpha kept), through the same chain of files."""

import json

import numpy as np
import pytest

import revdeconv
from revdeconv import filters, restoration
from revdeconv.io import load_image, read_image, save_image
from test_commands import assert_output, cli, failures, summary
from revdeconv import _pixels

BOX = np.ones((3, 3)) / 9


def smooth(rng, shape):
    """A smooth image (restore's prior suits it), blurred by ``BOX`` at stride 1."""
    image = rng.random(shape).cumsum(0).cumsum(1)
    image = (image - image.min()) / np.ptp(image)
    return revdeconv.convolve(image, BOX, stride=1)


def test_restore_writes_what_restore_returns_for_each_file(tmp_path, rng):
    """Several files (one compiled call), each with its own noise weight; .npy out is
    bit for bit ``revdeconv.restore`` of the file alone."""
    (tmp_path / "in").mkdir()
    for name, shape in [("a", (24, 30, 3)), ("b", (20, 26, 3)), ("c", (26, 22, 3))]:
        np.save(tmp_path / "in" / f"{name}.npy", smooth(rng, shape))
    run = cli("restore", "in", "--kernel", "blur", "--stride", "1", "--format", "npy",
              "--out", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert summary(run.stderr, "restore") == (3, 0, 0)
    for name in "abc":
        image = np.load(tmp_path / "in" / f"{name}.npy")
        expected = revdeconv.restore(image, filters.BLUR, stride=1)
        assert expected.shape == (image.shape[0] + 2, image.shape[1] + 2, 3)
        assert not np.array_equal(expected, revdeconv.deconvolve(image, filters.BLUR, stride=1))
        assert_output(tmp_path / "out" / f"{name}.npy", expected, "npy")


@pytest.mark.parametrize("options, keywords", [
    (["--method", "tikhonov", "--order", "1", "--weight", "0.01", "--max-iter", "7"],
     dict(method="tikhonov", order=1, weight=0.01, max_iter=7)),
    (["--method", "tv", "--tol", "0", "--max-iter", "5", "--output-size", "30x31"],
     dict(method="tv", tol=0, max_iter=5, output_shape=(30, 31))),
    (["--stride", "3", "--activation", "identity"], dict(stride=3, activation="identity")),
], ids=["tikhonov", "tv", "stride-3"])
def test_restore_options_reach_restore(tmp_path, rng, options, keywords):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", smooth(rng, (24, 27, 3)))
    stride = [] if "--stride" in options else ["--stride", "1"]
    run = cli("restore", "in", "--kernel", "sharpen", *stride, *options, "--format", "npy",
              "--out", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    image = np.load(tmp_path / "in" / "a.npy")
    expected = revdeconv.restore(image, filters.SHARPEN, **{"stride": 1, **keywords})
    default = revdeconv.restore(image, filters.SHARPEN, stride=1)
    assert expected.shape != default.shape or not np.array_equal(expected, default)
    assert_output(tmp_path / "out" / "a.npy", expected, "npy")


def test_restore_keeps_the_bit_depth_and_carries_alpha_as_deconvolve(tmp_path, rng):
    (tmp_path / "in").mkdir()
    save_image(tmp_path / "in" / "rgba.png", rng.random((12, 15, 4)))
    save_image(tmp_path / "in" / "grey16.png", rng.random((12, 15)), bits=16)
    run = cli("restore", "in", "--kernel", "blur", "--out", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    picture = read_image(tmp_path / "in" / "rgba.png")
    output = revdeconv.restore(picture.pixels, filters.BLUR)
    expected = _pixels.with_alpha(output, _pixels.zoom_alpha(picture.alpha, (3, 3),
                                                             output.shape[:2]))
    assert expected.shape == (36, 45, 4)
    assert_output(tmp_path / "out" / "rgba.png", expected, "png")
    grey = revdeconv.restore(load_image(tmp_path / "in" / "grey16.png"), filters.BLUR)
    assert_output(tmp_path / "out" / "grey16.png", grey, "png")       # 16 bits kept


def test_restore_gives_each_file_its_own_filter_and_bias_from_a_kernel_set(tmp_path, rng):
    sharpen = np.repeat(filters.SHARPEN[np.newaxis], 3, axis=0)
    own = {"a": (sharpen, [0.1, 0.0, -0.1], (3, 3)), "b": (BOX, [0.0], (1, 1))}
    (tmp_path / "in").mkdir()
    for name in own:
        np.save(tmp_path / "in" / f"{name}.npy", smooth(rng, (18, 21, 3)))
    (tmp_path / "k.json").write_text(json.dumps({
        "format": "revdeconv-kernels", "version": 1,
        "kernels": {name: {"kernel": np.asarray(k).tolist(), "bias": bias,
                           "stride": list(stride), "activation": "identity"}
                    for name, (k, bias, stride) in own.items()}}))
    run = cli("restore", "in", "--kernel", "k.json", "--format", "npy", "--out", "out",
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for name, (kernel, bias, stride) in own.items():
        image = np.load(tmp_path / "in" / f"{name}.npy")
        expected = revdeconv.restore(image, kernel, bias=bias, stride=stride,
                                     activation="identity")
        unbiased = revdeconv.restore(image, kernel, stride=stride, activation="identity")
        assert name == "b" or not np.array_equal(expected, unbiased)
        assert_output(tmp_path / "out" / f"{name}.npy", expected, "npy")


@pytest.mark.parametrize("args, words", [
    (["--weight", "-1"], ["--weight"]),
    (["--method", "lasso"], ["--method", "tikhonov"]),
    (["--order", "3"], ["--order"]),
    (["--max-iter", "0"], ["--max-iter"]),
], ids=["weight", "method", "order", "max-iter"])
def test_restore_refuses_a_bad_option_before_reading(tmp_path, rng, args, words):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", rng.random((9, 9, 3)))
    run = cli("restore", "in", "--kernel", "blur", *args, "--out", "out", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert all(word in run.stderr for word in words), run.stderr
    assert not (tmp_path / "out").exists()


def test_restore_help_takes_its_choices_and_defaults_from_restoration(tmp_path):
    run = cli("restore", "--help", cwd=tmp_path)
    text = " ".join(run.stdout.split())
    assert f"{{{','.join(restoration.METHODS)}}}" in text
    for method in restoration.METHODS:
        assert f"{method} {restoration.DEFAULT_MAX_ITER[method]}" in text
        assert f"{method} {restoration.DEFAULT_TOL[method]:g}" in text


def test_a_file_restore_cannot_use_fails_alone(tmp_path, rng):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "good.npy", smooth(rng, (12, 12, 3)))
    np.save(tmp_path / "in" / "bad.npy", np.full((6, 6, 3), np.nan))
    run = cli("restore", "in", "--kernel", "blur", "--stride", "1", "--format", "npy",
              "--out", "out", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    assert summary(run.stderr, "restore")[:2] == (1, 1)
    assert [path.endswith("bad.npy") for path in failures(run.stderr, "restore")] == [True]
    assert (tmp_path / "out" / "good.npy").exists()
