"""The ``filter``, ``learn`` and ``deconvolve`` commands over real folders of mixed files.

End-to-end behaviour (exit status, stderr, the files written) is checked in a
separate process, as a user runs the command; failures that cannot be
provoked from outside (a writer interrupted or failing midway) are simulated
in-process with ``monkeypatch`` around ``revdeconv.cli.main``.
"""

import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import revdeconv
import revdeconv.cli
import revdeconv.io
from revdeconv import filters
from revdeconv import _pixels
from revdeconv.io import load_image, read_image, save_image
from revdeconv.kernel_file import load_kernel, save_kernel

GOOD = ["float32.npy", "grey16.png", "grey8.png", "palette.png", "photo.jpg", "rgb.png",
        "rgba.png"]
BAD = {                                   # file -> what its reason on stderr says
    "corrupt.png": "not an image file",
    "empty.png": "not an image file",
    "text.png": "not an image file",
    "truncated.png": "truncated",
    "tiny.png": "smaller than the 3x3 kernel",
}
# deconvolve needs no minimum size: a 2x2 image is 2x2 blocks of a 6x6 one
DECONVOLVE_GOOD = GOOD + ["tiny.png"]
DECONVOLVE_BAD = {name: reason for name, reason in BAD.items() if name != "tiny.png"}
COUNTS = {"filter": (len(GOOD), len(BAD), 0),
          "deconvolve": (len(DECONVOLVE_GOOD), len(DECONVOLVE_BAD), 0)}
SUMMARY = re.compile(r"^revdeconv (\w+): (\d+) done, (\d+) failed"
                     r"(?:, (\d+) skipped \((?:output exists; --overwrite to redo|"
                     r"no partner file)\))?$")
#: Inputs whose outputs keep 16 bits (the others are 8-bit, or .npy data written at 8 bits).
SIXTEEN_BIT = {"grey16"}


# -- helpers -------------------------------------------------------------------------

def cli(*args, cwd):
    """Run ``revdeconv ARGS`` in a separate process (this session's revdeconv), in ``cwd``."""
    code = ("import sys, revdeconv, revdeconv.cli\n"
            f"assert revdeconv.__file__ == {revdeconv.__file__!r}, revdeconv.__file__\n"
            f"sys.exit(revdeconv.cli.main({[str(a) for a in args]!r}))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def summary(stderr, command):
    """(done, failed, skipped) from the summary line, which must be the last line."""
    lines = stderr.strip().splitlines()
    assert lines, "no summary line on stderr"
    match = SUMMARY.match(lines[-1])
    assert match and match.group(1) == command, f"not a summary line: {lines[-1]!r}"
    return int(match.group(2)), int(match.group(3)), int(match.group(4) or 0)


def failures(stderr, command):
    """{path: reason} of the ``revdeconv COMMAND: PATH: REASON`` lines."""
    reported = {}
    prefix = f"revdeconv {command}: "
    for line in stderr.splitlines():
        if line.startswith(prefix) and not SUMMARY.match(line):
            path, _, reason = line[len(prefix):].partition(": ")
            if reason.startswith("skipped: "):          # left out, not failed (skips())
                continue
            assert path not in reported, f"{path} reported twice"
            reported[path] = reason
    return reported


def skips(stderr, command):
    """{path: reason} of the ``revdeconv COMMAND: PATH: skipped: REASON`` lines."""
    prefix = f"revdeconv {command}: "
    return {path: reason[len("skipped: "):] for path, _, reason in
            (line[len(prefix):].partition(": ") for line in stderr.splitlines()
             if line.startswith(prefix))
            if reason.startswith("skipped: ")}


def read_input(path):
    """An input file as the commands read it."""
    return np.load(path) if str(path).endswith(".npy") else load_image(path)


def as_command(function, path, kernel, **options):
    """What ``filter`` (``function`` revdeconv.convolve) or ``deconvolve`` computes for
    the input ``path``: the colour channels, and an image's alpha carried to the output
    (--alpha keep: the block mean, or the zoom)."""
    if str(path).endswith(".npy"):
        return function(np.load(path), kernel, **options)
    picture = read_image(path)
    output = function(picture.pixels, kernel, **options)
    if picture.alpha is None:
        return output
    stride = options.get("stride") or np.shape(kernel)[-2:]
    alpha = (_pixels.block_mean(picture.alpha, np.shape(kernel)[-2:], stride)
             if function is revdeconv.convolve
             else _pixels.zoom_alpha(picture.alpha, stride, output.shape[:2]))
    return _pixels.with_alpha(output, alpha)


def quantized(values, bits=8):
    """What an image file of ``bits`` bits keeps of ``values``."""
    top = 2 ** bits - 1
    return np.floor(np.clip(np.asarray(values, dtype=np.float64), 0, 1) * top + 0.5) / top


def assert_output(path, expected, fmt):
    """The output file holds ``expected`` as ``fmt`` stores it."""
    assert os.path.isfile(path), f"missing output {path}"
    if fmt == "npy":
        got = np.load(path)
        assert got.dtype == expected.dtype, f"{path}: dtype {got.dtype}, expected {expected.dtype}"
        np.testing.assert_array_equal(got, expected, err_msg=str(path))
    else:
        got = load_image(path)
        assert got.shape == expected.shape, f"{path}: shape {got.shape} != {expected.shape}"
        bits = 16 if stem(os.path.basename(path)) in SIXTEEN_BIT else 8     # the input's
        np.testing.assert_allclose(got, quantized(expected, bits), rtol=0, atol=1e-12,
                                   err_msg=str(path))


def stem(name):
    return os.path.splitext(name)[0]


def listing(folder):
    return sorted(os.listdir(folder))


def uint8(values):
    return np.floor(np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)


# -- fixtures ------------------------------------------------------------------------

def build_mixed(folder, rng):
    """Good and bad input files of every kind, in ``folder``."""
    folder.mkdir()
    save_image(folder / "rgb.png", rng.random((30, 36, 3)))
    save_image(folder / "grey16.png", rng.random((30, 36)), bits=16)
    save_image(folder / "grey8.png", rng.random((33, 39)))
    save_image(folder / "rgba.png", rng.random((30, 36, 4)))
    Image.fromarray(uint8(rng.random((30, 36, 3)))).quantize(16).save(folder / "palette.png")
    Image.fromarray(uint8(rng.random((36, 30, 3)))).save(folder / "photo.jpg", quality=90)
    np.save(folder / "float32.npy", rng.random((30, 36, 3)).astype(np.float32))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(300))
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not a picture\n")
    save_image(folder / "whole.png", rng.random((30, 36, 3)))
    data = (folder / "whole.png").read_bytes()
    (folder / "whole.png").unlink()
    (folder / "truncated.png").write_bytes(data[:len(data) // 2])
    save_image(folder / "tiny.png", rng.random((2, 2)))
    save_image(folder / ".hidden.png", rng.random((30, 36)))      # skipped: hidden
    (folder / "notes.txt").write_text("not an image extension\n")   # skipped: not an image


@pytest.fixture
def mixed(tmp_path, rng):
    """tmp_path/in holds the mixed files; commands run in tmp_path."""
    build_mixed(tmp_path / "in", rng)
    with Image.open(tmp_path / "in" / "palette.png") as palette, \
            Image.open(tmp_path / "in" / "grey16.png") as grey16:
        assert (palette.mode, grey16.mode) == ("P", "I;16")
    assert sorted(GOOD + list(BAD)) == sorted(
        n for n in os.listdir(tmp_path / "in") if not n.startswith(".") and n != "notes.txt")
    return SimpleNamespace(root=tmp_path, folder="in", path=tmp_path / "in")


@pytest.fixture
def pairs(tmp_path, rng):
    """tmp_path/orig and tmp_path/filt: RGB pairs a, b, c, a grey pair g (filtered with
    blur, stored as float .npy), plus a lone original and a lone filtered file."""
    orig, filt = tmp_path / "orig", tmp_path / "filt"
    orig.mkdir()
    filt.mkdir()
    for name, shape in [("a", (30, 36, 3)), ("b", (33, 30, 3)), ("c", (30, 36, 3)),
                        ("g", (30, 36))]:
        save_image(orig / f"{name}.png", rng.random(shape))
        np.save(filt / f"{name}.npy", revdeconv.convolve(load_image(orig / f"{name}.png"),
                                                         filters.BLUR))
    save_image(orig / "lonely.png", rng.random((30, 36, 3)))
    np.save(filt / "stray.npy", rng.random((10, 12, 3)))
    return SimpleNamespace(root=tmp_path, orig=orig, filt=filt,
                           names=["a", "b", "c", "g"])


def learned_pair(pairs, name, **options):
    """``learn_filter`` on one pair of the ``pairs`` fixture."""
    return revdeconv.learn_filter(load_image(pairs.orig / f"{name}.png"),
                                  np.load(pairs.filt / f"{name}.npy"), **options)


# -- filter --------------------------------------------------------------------------

def test_filter_folder_processes_good_files_and_reports_bad_ones(mixed):
    run = cli("filter", mixed.folder, "--kernel", "blur", "--out", "out", cwd=mixed.root)
    assert run.returncode == 1
    out = mixed.root / "out"
    assert listing(out) == sorted(stem(name) + ".png" for name in GOOD)
    for name in GOOD:
        expected = as_command(revdeconv.convolve, mixed.path / name, filters.BLUR)
        assert_output(out / (stem(name) + ".png"), expected, "png")
    reported = failures(run.stderr, "filter")
    assert set(reported) == {os.path.join("in", name) for name in BAD}
    for name, reason in BAD.items():
        assert reason in reported[os.path.join("in", name)]
    assert summary(run.stderr, "filter") == (len(GOOD), len(BAD), 0)
    assert ".hidden" not in run.stderr and "notes.txt" not in run.stderr


def test_filter_skips_existing_outputs_and_overwrite_redoes_them(mixed):
    first = cli("filter", mixed.folder, "--kernel", "edge", "--out", "out", cwd=mixed.root)
    assert summary(first.stderr, "filter") == (len(GOOD), len(BAD), 0)
    out = mixed.root / "out"
    old = 1_000_000_000_000_000_000                 # 2001: a rewrite would change it
    for name in listing(out):
        os.utime(out / name, ns=(old, old))
    again = cli("filter", mixed.folder, "--kernel", "edge", "--out", "out", cwd=mixed.root)
    assert again.returncode == 1                    # the bad files still fail
    assert summary(again.stderr, "filter") == (0, len(BAD), len(GOOD))
    assert all(os.stat(out / name).st_mtime_ns == old for name in listing(out))

    redo = cli("filter", mixed.folder, "--kernel", "edge", "--out", "out", "--overwrite",
               cwd=mixed.root)
    assert summary(redo.stderr, "filter") == (len(GOOD), len(BAD), 0)
    assert all(os.stat(out / name).st_mtime_ns != old for name in listing(out))
    for name in GOOD:
        expected = as_command(revdeconv.convolve, mixed.path / name, filters.EDGE)
        assert_output(out / (stem(name) + ".png"), expected, "png")


@pytest.mark.parametrize("fmt, suffix", [("tiff", ".tiff"), ("npy", ".npy"), ("png", ".png")])
def test_filter_output_formats(mixed, fmt, suffix):
    run = cli("filter", mixed.folder, "--kernel", "sharpen", "--format", fmt, "--out", "out",
              cwd=mixed.root)
    assert run.returncode == 1
    assert listing(mixed.root / "out") == sorted(stem(name) + suffix for name in GOOD)
    for name in GOOD:
        expected = as_command(revdeconv.convolve, mixed.path / name, filters.SHARPEN)
        assert_output(mixed.root / "out" / (stem(name) + suffix), expected, fmt)


def test_filter_float32_npy_output_stays_float32(mixed):
    """The float32 input computes in float32 whatever other files share its chunk."""
    for chunk in ("1", "64"):
        cli("filter", mixed.folder, "--kernel", "blur", "--format", "npy", "--chunk", chunk,
            "--out", f"out{chunk}", cwd=mixed.root)
        expected = revdeconv.convolve(np.load(mixed.path / "float32.npy"), filters.BLUR)
        assert expected.dtype == np.float32
        assert_output(mixed.root / f"out{chunk}" / "float32.npy", expected, "npy")


def test_filter_with_json_kernel_file(mixed, rng):
    kernel = rng.normal(size=(3, 3))
    save_kernel(mixed.root / "k.json", kernel, stride=2, bias=0.05, activation="relu")
    run = cli("filter", mixed.folder, "--kernel", "k.json", "--format", "npy", "--out", "out",
              cwd=mixed.root)
    assert run.returncode == 1
    assert summary(run.stderr, "filter") == (len(GOOD), len(BAD), 0)
    for name in GOOD:
        expected = as_command(revdeconv.convolve, mixed.path / name, kernel, stride=2,
                                      bias=0.05, activation="relu")
        assert_output(mixed.root / "out" / (stem(name) + ".npy"), expected, "npy")


def test_filter_with_npy_kernel_and_options(mixed, rng):
    kernel = rng.normal(size=(3, 3))
    np.save(mixed.root / "k.npy", kernel)
    run = cli("filter", mixed.folder, "--kernel", "k.npy", "--stride", "1", "--activation",
              "identity", "--format", "npy", "--out", "out", cwd=mixed.root)
    assert run.returncode == 1
    assert summary(run.stderr, "filter") == (len(GOOD), len(BAD), 0)
    for name in GOOD:
        expected = as_command(revdeconv.convolve, mixed.path / name, kernel, stride=1,
                                      activation="identity")
        assert_output(mixed.root / "out" / (stem(name) + ".npy"), expected, "npy")


def test_filter_three_channel_json_kernel_fails_only_other_channel_counts(mixed, rng):
    kernel = rng.normal(size=(3, 3, 3))
    save_kernel(mixed.root / "k3.json", kernel)
    run = cli("filter", mixed.folder, "--kernel", "k3.json", "--format", "npy",
              "--out", "out", cwd=mixed.root)
    def colour_channels(name):          # rgba.png's alpha is carried, not filtered
        image = np.load(mixed.path / name) if name.endswith(".npy") \
            else read_image(mixed.path / name).pixels
        return image.shape[2] if image.ndim == 3 else 1

    three = [n for n in GOOD if colour_channels(n) == 3]
    assert sorted(three) == ["float32.npy", "palette.png", "photo.jpg", "rgb.png", "rgba.png"]
    assert run.returncode == 1
    assert listing(mixed.root / "out") == sorted(stem(n) + ".npy" for n in three)
    for name in three:
        expected = as_command(revdeconv.convolve, mixed.path / name, kernel)
        assert_output(mixed.root / "out" / (stem(name) + ".npy"), expected, "npy")
    others = set(GOOD) - set(three)
    assert set(failures(run.stderr, "filter")) == {os.path.join("in", n)
                                                    for n in list(BAD) + list(others)}
    assert summary(run.stderr, "filter") == (len(three), len(BAD) + len(others), 0)


def test_filter_unknown_kernel_name_lists_the_names(mixed):
    run = cli("filter", mixed.folder, "--kernel", "smudge", "--out", "out", cwd=mixed.root)
    assert run.returncode != 0
    assert "smudge" in run.stderr
    for name in filters.NAMES:
        assert name in run.stderr
    assert not (mixed.root / "out").exists() or listing(mixed.root / "out") == []


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "something else"})])
def test_filter_bad_kernel_file_is_a_clear_error(mixed, content):
    (mixed.root / "k.json").write_text(content)
    run = cli("filter", mixed.folder, "--kernel", "k.json", "--out", "out", cwd=mixed.root)
    assert run.returncode != 0
    assert "--kernel" in run.stderr and "k.json" in run.stderr
    assert "Traceback" not in run.stderr


def test_filter_refuses_a_kernel_set(mixed, rng):
    from revdeconv.kernel_file import save_kernels
    save_kernels(mixed.root / "set.json", {"rgb": rng.normal(size=(3, 3))})
    run = cli("filter", mixed.folder, "--kernel", "set.json", "--out", "out", cwd=mixed.root)
    assert run.returncode != 0
    assert "one filter" in run.stderr and "Traceback" not in run.stderr


def test_filter_quiet(mixed):
    good_only = [os.path.join("in", name) for name in GOOD]
    run = cli("filter", *good_only, "--kernel", "blur", "--quiet", "--out", "a",
              cwd=mixed.root)
    assert (run.returncode, run.stderr, run.stdout) == (0, "", "")
    run = cli("filter", mixed.folder, "--kernel", "blur", "--quiet", "--out", "b",
              cwd=mixed.root)
    assert run.returncode == 1
    assert summary(run.stderr, "filter") == (len(GOOD), len(BAD), 0)
    assert len(failures(run.stderr, "filter")) == len(BAD)


def test_filter_without_quiet_all_good_prints_summary_and_exits_0(mixed):
    run = cli("filter", "in/rgb.png", "in/grey8.png", "--kernel", "blur", "--out", "out",
              cwd=mixed.root)
    assert run.returncode == 0
    assert summary(run.stderr, "filter") == (2, 0, 0)
    assert failures(run.stderr, "filter") == {}


def test_filter_globs_and_missing_files(mixed):
    run = cli("filter", "in/*.jpg", "in/rgb.*", "in/missing.png", "--kernel", "blur",
              "--out", "out", cwd=mixed.root)
    assert run.returncode == 1
    assert listing(mixed.root / "out") == ["photo.png", "rgb.png"]
    reported = failures(run.stderr, "filter")
    assert list(reported) == ["in/missing.png"] and "no such file" in reported["in/missing.png"]
    assert summary(run.stderr, "filter") == (2, 1, 0)


# -- learn ---------------------------------------------------------------------------

def test_learn_one_filter_per_pair(pairs):
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--out", "k.json",
              cwd=pairs.root)
    assert run.returncode == 0, run.stderr          # files without a partner: skipped
    learned = load_kernel(pairs.root / "k.json")
    assert sorted(learned) == pairs.names
    for name in pairs.names:
        expected = learned_pair(pairs, name)
        np.testing.assert_array_equal(learned[name].kernel, expected.kernel, err_msg=name)
        np.testing.assert_array_equal(learned[name].bias, expected.bias)
        assert learned[name].stride == expected.stride == (3, 3)
        assert learned[name].activation == expected.activation == "clip"
    assert failures(run.stderr, "learn") == {}
    skipped = skips(run.stderr, "learn")
    assert set(skipped) == {os.path.join("orig", "lonely.png"),
                            os.path.join("filt", "stray.npy")}
    assert "no filtered file named 'lonely'" in skipped[os.path.join("orig", "lonely.png")]
    assert "no original file named 'stray'" in skipped[os.path.join("filt", "stray.npy")]
    assert summary(run.stderr, "learn") == (4, 0, 2)
    assert "4 filters written to k.json" in run.stdout


def test_learn_options_bias_epochs_lr(pairs):
    run = cli("learn", "--original", "orig/[ab].png", "--filtered", "filt/[ab].npy",
              "--bias", "--epochs", "3", "--lr", "0.3", "--activation", "identity",
              "--out", "k.json", cwd=pairs.root)
    assert run.returncode == 0, run.stderr
    learned = load_kernel(pairs.root / "k.json")
    assert sorted(learned) == ["a", "b"]
    for name in "ab":
        expected = learned_pair(pairs, name, bias=True, epochs=3, lr=0.3,
                                activation="identity")
        np.testing.assert_array_equal(learned[name].kernel, expected.kernel)
        np.testing.assert_array_equal(learned[name].bias, expected.bias)
        assert learned[name].activation == "identity"


def test_learn_lstsq(pairs):
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--method", "lstsq",
              "--out", "k.json", cwd=pairs.root)
    assert run.returncode == 0, run.stderr
    learned = load_kernel(pairs.root / "k.json")
    for name in pairs.names:
        expected = learned_pair(pairs, name, method="lstsq")
        np.testing.assert_array_equal(learned[name].kernel, expected.kernel, err_msg=name)
        # the targets are blur through clip, never clipped: least squares finds blur back
        np.testing.assert_allclose(learned[name].kernel[0], filters.BLUR, atol=1e-9)


@pytest.mark.parametrize("options, keywords", [
    ([], {}),
    (["--chunk", "1"], {}),                                  # the kernel carried over
    (["--epochs", "2", "--chunk", "1", "--lr", "0.2"], dict(epochs=2, lr=0.2)),
], ids=["default", "chunk1", "epochs2"])
def test_learn_shared_equals_learn_filter_on_the_sorted_lists(pairs, options, keywords):
    names = ["a", "b", "c"]
    run = cli("learn", "--original", "orig/c.png", "orig/a.png", "orig/b.png",
              "--filtered", "filt", "--shared", "--compare", "edge", *options,
              "--out", "k.json", cwd=pairs.root)
    expected = revdeconv.learn_filter([load_image(pairs.orig / f"{n}.png") for n in names],
                                      [np.load(pairs.filt / f"{n}.npy") for n in names],
                                      **keywords)
    learned = load_kernel(pairs.root / "k.json")
    assert not isinstance(learned, dict)
    np.testing.assert_array_equal(learned.kernel, expected.kernel)
    np.testing.assert_array_equal(learned.bias, expected.bias)
    assert learned.stride == (3, 3)
    # g and stray have no original among those given: skipped, not failed
    assert set(skips(run.stderr, "learn")) == {os.path.join("filt", "g.npy"),
                                               os.path.join("filt", "stray.npy")}
    assert failures(run.stderr, "learn") == {}
    assert run.returncode == 0, run.stderr
    assert summary(run.stderr, "learn") == (3, 0, 2)
    error = re.search(r"relative error against edge: (\S+)", run.stdout)
    assert error, run.stdout
    assert float(error.group(1)) == pytest.approx(
        revdeconv.metrics.filter_error(expected.kernel, filters.EDGE), abs=1e-6)


def test_learn_shared_brings_a_grey_pair_to_colour(pairs):
    """One filter over grey and colour pairs: the grey pair as three equal channels, as
    ``experiment --images`` takes it (issue 12, point 7)."""
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--shared",
              "--out", "k.json", cwd=pairs.root)
    assert run.returncode == 0, run.stderr
    assert failures(run.stderr, "learn") == {}

    def colour(image):
        return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image

    expected = revdeconv.learn_filter(
        [colour(load_image(pairs.orig / f"{n}.png")) for n in "abcg"],
        [colour(np.load(pairs.filt / f"{n}.npy")) for n in "abcg"])
    np.testing.assert_array_equal(load_kernel(pairs.root / "k.json").kernel, expected.kernel)


def test_learn_compare_per_pair_prints_relative_error(pairs):
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--method", "lstsq",
              "--compare", "blur", "--out", "k.json", cwd=pairs.root)
    errors = [float(v) for v in re.findall(r"relative error against blur: (\S+)", run.stdout)]
    assert len(errors) == 2                          # 3-channel and 1-channel means
    assert all(e < 1e-6 for e in errors)


def test_learn_reports_unreadable_and_mismatched_pairs(pairs):
    (pairs.orig / "broken.png").write_bytes(b"garbage")
    np.save(pairs.filt / "broken.npy", np.zeros((10, 12, 3)))
    save_image(pairs.orig / "odd.png", np.full((30, 36, 3), 0.5))
    np.save(pairs.filt / "odd.npy", np.zeros((31, 12, 3)))   # taller than its original
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--out", "k.json",
              cwd=pairs.root)
    assert run.returncode == 1
    reported = failures(run.stderr, "learn")
    assert set(reported) == {os.path.join("orig", "broken.png"), os.path.join("orig", "odd.png")}
    assert sorted(load_kernel(pairs.root / "k.json")) == pairs.names
    assert summary(run.stderr, "learn") == (4, 2, 2)          # lonely and stray: skipped


# -- deconvolve ----------------------------------------------------------------------

@pytest.fixture
def kernel_set(pairs):
    """k.json: the filters `revdeconv learn` learned for each pair (lstsq)."""
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--method", "lstsq",
              "--out", "k.json", cwd=pairs.root)
    assert run.returncode == 0 and (pairs.root / "k.json").exists(), run.stderr
    return load_kernel(pairs.root / "k.json")


def test_deconvolve_with_a_kernel_set_uses_each_images_own_filter(pairs, kernel_set):
    # the pairs were learned apart, so a wrong pick of filter would show
    assert not np.array_equal(kernel_set["a"].kernel, kernel_set["b"].kernel)
    run = cli("deconvolve", "filt", "--kernel", "k.json", "--format", "npy", "--out", "out",
              cwd=pairs.root)
    assert run.returncode == 1
    assert listing(pairs.root / "out") == [f"{n}.npy" for n in pairs.names]
    for name in pairs.names:
        spec = kernel_set[name]
        filtered = np.load(pairs.filt / f"{name}.npy")
        expected = revdeconv.deconvolve(filtered, spec.kernel, stride=spec.stride,
                                        activation=spec.activation)
        assert_output(pairs.root / "out" / f"{name}.npy", expected, "npy")
    reported = failures(run.stderr, "deconvolve")
    assert list(reported) == [os.path.join("filt", "stray.npy")]
    assert "no filter named 'stray'" in reported[os.path.join("filt", "stray.npy")]
    assert summary(run.stderr, "deconvolve") == (4, 1, 0)


def test_deconvolve_output_size(pairs, kernel_set):
    run = cli("deconvolve", "filt/a.npy", "filt/g.npy", "--kernel", "k.json",
              "--output-size", "32x40", "--format", "npy", "--out", "out", cwd=pairs.root)
    assert run.returncode == 0, run.stderr
    for name in ["a", "g"]:
        spec = kernel_set[name]
        expected = revdeconv.deconvolve(np.load(pairs.filt / f"{name}.npy"), spec.kernel,
                                        stride=spec.stride, output_shape=(32, 40))
        assert expected.shape[:2] == (32, 40)
        assert_output(pairs.root / "out" / f"{name}.npy", expected, "npy")


@pytest.mark.parametrize("size", ["0x5", "32", "axb", "20x20"])
def test_deconvolve_bad_output_size(pairs, size):
    run = cli("deconvolve", "filt/a.npy", "--kernel", "blur", "--output-size", size,
              "--out", "out", cwd=pairs.root)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    if size == "20x20":               # well-formed, but smaller than what the blocks cover
        assert "filt/a.npy" in failures(run.stderr, "deconvolve")


def test_deconvolve_with_a_named_kernel_and_png_output(mixed):
    run = cli("deconvolve", mixed.folder, "--kernel", "sharpen", "--eps", "0.01",
              "--out", "out", cwd=mixed.root)
    assert run.returncode == 1
    for name in DECONVOLVE_GOOD:
        expected = as_command(revdeconv.deconvolve, mixed.path / name, filters.SHARPEN,
                                        eps=0.01)
        assert_output(mixed.root / "out" / (stem(name) + ".png"), expected, "png")
    reported = failures(run.stderr, "deconvolve")
    assert set(reported) == {os.path.join("in", n) for n in DECONVOLVE_BAD}
    for name, reason in DECONVOLVE_BAD.items():
        assert reason in reported[os.path.join("in", name)]
    assert summary(run.stderr, "deconvolve") == COUNTS["deconvolve"]


# -- threads and chunks ----------------------------------------------------------------

def outputs(folder):
    return {name: np.load(os.path.join(folder, name)) for name in listing(folder)}


def assert_same_outputs(first, second):
    a, b = outputs(first), outputs(second)
    assert sorted(a) == sorted(b) and a
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("option, values", [("--threads", ("1", "2")),
                                            ("--chunk", ("2", "64"))])
@pytest.mark.parametrize("command", ["filter", "deconvolve"])
def test_threads_and_chunks_do_not_change_outputs(mixed, command, option, values):
    for value in values:
        run = cli(command, mixed.folder, "--kernel", "blur", "--format", "npy", option, value,
                  "--out", f"out{value}", cwd=mixed.root)
        assert run.returncode == 1
        assert summary(run.stderr, command) == COUNTS[command]
    assert_same_outputs(mixed.root / f"out{values[0]}", mixed.root / f"out{values[1]}")


@pytest.mark.parametrize("option, values", [("--threads", ("1", "2")),
                                            ("--chunk", ("2", "64"))])
@pytest.mark.parametrize("extra", [[], ["--shared"], ["--method", "lstsq"],
                                   ["--shared", "--epochs", "2"]],
                         ids=["each", "shared", "lstsq", "shared-epochs2"])
def test_threads_and_chunks_do_not_change_learned_filters(pairs, option, values, extra):
    texts = []
    for value in values:
        cli("learn", "--original", "orig/[abc].png", "--filtered", "filt/[abc].npy", *extra,
            option, value, "--out", f"k{value}.json", cwd=pairs.root)
        texts.append((pairs.root / f"k{value}.json").read_text())
    assert texts[0] == texts[1]


@pytest.mark.parametrize("chunk", ["1", "2", "64"])
def test_learn_shared_lstsq_fits_all_pairs_whatever_the_chunk(tmp_path, rng, chunk):
    """Least squares over every pair, not over the last chunk's pairs only."""
    (tmp_path / "orig").mkdir()
    (tmp_path / "filt").mkdir()
    originals, targets = [], []
    for name, kernel in zip("abc", [filters.BLUR, filters.SHARPEN, rng.normal(size=(3, 3))]):
        original = rng.random((30, 36, 3))
        save_image(tmp_path / "orig" / f"{name}.png", original)
        originals.append(load_image(tmp_path / "orig" / f"{name}.png"))
        targets.append(revdeconv.convolve(originals[-1], kernel, activation="identity"))
        np.save(tmp_path / "filt" / f"{name}.npy", targets[-1])
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--shared", "--method",
              "lstsq", "--activation", "identity", "--chunk", chunk, "--out", "k.json",
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    expected = revdeconv.learn_filter(originals, targets, method="lstsq",
                                      activation="identity")
    np.testing.assert_allclose(load_kernel(tmp_path / "k.json").kernel, expected.kernel,
                               rtol=0, atol=1e-12)


def test_deconvolve_kernel_set_chunk_and_threads(pairs, kernel_set):
    for name, options in [("plain", []), ("chunk", ["--chunk", "1"]),
                          ("threads", ["--threads", "1"])]:
        cli("deconvolve", "filt", "--kernel", "k.json", "--format", "npy", *options,
            "--out", name, cwd=pairs.root)
    assert_same_outputs(pairs.root / "plain", pairs.root / "chunk")
    assert_same_outputs(pairs.root / "plain", pairs.root / "threads")


# -- interrupted and failing writes (in-process) -------------------------------------

def failing_write(monkeypatch, at, error):
    """Make the ``at``-th output write (1-based) raise ``error`` midway, after part of
    the file went to the temporary file. Returns the list of written targets."""
    real = revdeconv.io.write_atomically
    targets = []

    def write_atomically(path, write):
        targets.append(os.fspath(path))
        if len(targets) != at:
            return real(path, write)

        def partial(f):
            f.write(b"\x89PNG\r\n\x1a\n half an image")
            raise error
        return real(path, partial)

    monkeypatch.setattr(revdeconv.io, "write_atomically", write_atomically)
    return targets


def assert_whole_files_only(folder, fmt):
    names = listing(folder)
    assert not [n for n in names if n.startswith(".")], f"temporary files left: {names}"
    for name in names:
        if fmt == "npy":
            np.load(os.path.join(folder, name))
        else:
            load_image(os.path.join(folder, name))
    return names


@pytest.mark.parametrize("fmt", ["png", "npy"])
def test_interrupted_run_leaves_whole_files_only_and_resumes(mixed, monkeypatch, capsys, fmt):
    out = mixed.root / "out"
    targets = failing_write(monkeypatch, 3, KeyboardInterrupt())
    # Ctrl-C: status 130 and one line, not a traceback (issue 12, point 4)
    assert revdeconv.cli.main(["filter", str(mixed.path), "--kernel", "blur", "--format",
                               fmt, "--out", str(out)]) == 130
    assert "interrupted: 2 done" in capsys.readouterr().err.splitlines()[-1]
    assert len(targets) == 3
    written = assert_whole_files_only(out, fmt)
    assert sorted(written) == sorted(os.path.basename(t) for t in targets[:2])

    monkeypatch.undo()
    capsys.readouterr()
    status = revdeconv.cli.main(["filter", str(mixed.path), "--kernel", "blur",
                                 "--format", fmt, "--out", str(out)])
    assert status == 1
    assert summary(capsys.readouterr().err, "filter") == (len(GOOD) - 2, len(BAD), 2)
    assert len(assert_whole_files_only(out, fmt)) == len(GOOD)
    for name in GOOD:
        expected = as_command(revdeconv.convolve, mixed.path / name, filters.BLUR)
        assert_output(out / (stem(name) + "." + fmt), expected, fmt)


@pytest.mark.parametrize("fmt", ["png", "npy"])
def test_failing_write_is_reported_and_the_rest_written(mixed, monkeypatch, capsys, fmt):
    out = mixed.root / "out"
    targets = failing_write(monkeypatch, 3, OSError(28, "No space left on device"))
    status = revdeconv.cli.main(["filter", str(mixed.path), "--kernel", "blur",
                                 "--format", fmt, "--out", str(out)])
    assert status == 1
    err = capsys.readouterr().err
    lost = targets[2]
    assert len(targets) == len(GOOD)
    written = assert_whole_files_only(out, fmt)
    assert sorted(written) == sorted(os.path.basename(t) for t in targets if t != lost)
    reported = failures(err, "filter")
    assert len(reported) == len(BAD) + 1
    lost_input = [p for p in reported if stem(os.path.basename(p)) == stem(os.path.basename(lost))]
    assert len(lost_input) == 1
    reason = reported[lost_input[0]]
    assert "cannot write" in reason and "No space left on device" in reason
    assert summary(err, "filter") == (len(GOOD) - 1, len(BAD) + 1, 0)


def test_overwrite_interrupted_keeps_the_old_file(mixed, monkeypatch, capsys):
    out = mixed.root / "out"
    assert revdeconv.cli.main(["filter", "--quiet", str(mixed.path / "rgb.png"),
                               "--kernel", "blur", "--out", str(out)]) == 0
    before = (out / "rgb.png").read_bytes()
    failing_write(monkeypatch, 1, KeyboardInterrupt())
    assert revdeconv.cli.main(["filter", str(mixed.path / "rgb.png"), "--kernel", "edge",
                               "--overwrite", "--out", str(out)]) == 130
    assert listing(out) == ["rgb.png"]
    assert (out / "rgb.png").read_bytes() == before


# -- help ----------------------------------------------------------------------------

HELP = {
    (): ["filter", "learn", "deconvolve", "experiment", "info"],
    ("filter",): ["INPUT", "--kernel", "--stride", "--activation", "--out", "--format",
                  "--overwrite", "--quiet", "--chunk", "--threads", "blur", "sharpen", "edge"],
    ("learn",): ["--original", "--filtered", "--method", "--lr", "--epochs", "--kernel-size",
                 "--stride", "--bias", "--activation", "--shared", "--compare", "--out",
                 "--quiet", "--chunk", "--threads"],
    ("deconvolve",): ["INPUT", "--kernel", "--stride", "--activation", "--eps",
                      "--output-size", "--out", "--format", "--overwrite", "--quiet",
                      "--chunk", "--threads"],
    ("experiment",): ["--images", "--rates", "--method", "--author-quirks", "--out",
                      "--threads"],
    ("info",): ["usage: revdeconv info"],
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: " ".join(c) or "top")
def test_help(tmp_path, command):
    run = cli(*command, "--help", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for word in HELP[command]:
        assert word in run.stdout, f"{word!r} not in the help of {command}"
    assert listing(tmp_path) == []                  # --help writes nothing


# -- output names --------------------------------------------------------------------

@pytest.fixture
def nested(tmp_path, rng):
    """ROOT/x.png and ROOT/sub/deeper/y.png, ROOT = tmp_path/root."""
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    save_image(root / "x.png", rng.random((30, 36, 3)))
    save_image(root / "sub" / "deeper" / "y.png", rng.random((30, 36)))
    return root


@pytest.mark.parametrize("spec", ["sub/../x.png", "./x.png", "sub/deeper/../../x.png",
                                  "sub/../*.png", "{root}/x.png"])
def test_output_names_stay_inside_out(nested, spec):
    before = {p for p in nested.parent.rglob("*")}
    run = cli("filter", spec.format(root=nested), "--kernel", "blur", "--out", "out",
              cwd=nested)
    assert run.returncode == 0, run.stderr
    assert listing(nested / "out") == ["x.png"]
    after = {p for p in nested.parent.rglob("*")}
    assert after - before == {nested / "out", nested / "out" / "x.png"}
    assert_output(nested / "out" / "x.png",
                  revdeconv.convolve(load_image(nested / "x.png"), filters.BLUR), "png")


def test_one_file_named_twice_is_done_once(nested):
    run = cli("filter", "x.png", "sub/../x.png", "./x.png", str(nested / "x.png"),
              "--kernel", "blur", "--out", "out", cwd=nested)
    assert run.returncode == 0, run.stderr
    assert summary(run.stderr, "filter") == (1, 0, 0)
    assert listing(nested / "out") == ["x.png"]


def test_output_name_collision_is_reported(tmp_path, rng):
    folder = tmp_path / "in"
    folder.mkdir()
    save_image(folder / "a.png", rng.random((30, 36, 3)))
    Image.fromarray(uint8(rng.random((30, 36, 3)))).save(folder / "a.jpg")
    save_image(folder / "b.png", rng.random((30, 36)))
    run = cli("filter", "in", "--kernel", "blur", "--out", "out", cwd=tmp_path)
    assert run.returncode == 1
    assert listing(tmp_path / "out") == ["a.png", "b.png"]
    reported = failures(run.stderr, "filter")
    assert list(reported) == [os.path.join("in", "a.png")]         # a.jpg came first
    assert "also the output of" in reported[os.path.join("in", "a.png")]
    assert os.path.join("in", "a.jpg") in reported[os.path.join("in", "a.png")]
    assert summary(run.stderr, "filter") == (2, 1, 0)
    assert_output(tmp_path / "out" / "a.png",
                  revdeconv.convolve(load_image(folder / "a.jpg"), filters.BLUR), "png")

    again = cli("filter", "in", "--kernel", "blur", "--out", "out", cwd=tmp_path)
    assert again.returncode == 1                    # still a collision, even when skipped
    assert summary(again.stderr, "filter") == (0, 1, 2)


def test_learn_reports_two_originals_with_one_stem(pairs):
    """orig/a.jpg and orig/a.png both claim filt/a.npy: one must be reported, not
    silently dropped."""
    Image.fromarray(uint8(np.full((30, 36, 3), 0.5))).save(pairs.orig / "a.jpg")
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--out", "k.json",
              cwd=pairs.root)
    assert run.returncode == 1
    reported = failures(run.stderr, "learn")
    assert {os.path.join("orig", "a.jpg"), os.path.join("orig", "a.png")} & set(reported), \
        run.stderr
    assert summary(run.stderr, "learn")[1:] == (1, 2)   # one of the two a's; lonely and
    #                                                     stray skipped


def test_deconvolve_reports_two_inputs_with_one_stem(pairs, kernel_set):
    save_image(pairs.filt / "a.png", np.load(pairs.filt / "a.npy"))
    run = cli("deconvolve", "filt", "--kernel", "k.json", "--format", "npy", "--out", "out",
              cwd=pairs.root)
    assert run.returncode == 1
    reported = failures(run.stderr, "deconvolve")
    assert "also the output of" in reported[os.path.join("filt", "a.png")]
    assert listing(pairs.root / "out") == [f"{n}.npy" for n in pairs.names]
    spec = kernel_set["a"]
    assert_output(pairs.root / "out" / "a.npy",
                  revdeconv.deconvolve(np.load(pairs.filt / "a.npy"), spec.kernel), "npy")


def test_a_decompression_bomb_is_reported_and_the_rest_completes(tmp_path):
    """Pillow's limit is kept: a file claiming 20000x20000 pixels is refused, not decoded."""
    from test_io import _png_claiming_size
    folder = tmp_path / "in"
    folder.mkdir()
    _png_claiming_size(folder / "bomb.png", 20000, 20000)
    save_image(folder / "good.png", np.random.default_rng(0).random((30, 36, 3)))
    run = subprocess.run([sys.executable, "-m", "revdeconv", "filter", str(folder),
                          "--kernel", "blur", "--out", str(tmp_path / "out")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1
    assert "bomb.png" in run.stderr and "1 done, 1 failed" in run.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["good.png"]
