"""The command line never loses a user's data, and says early and plainly what is wrong.

Issue 12, points 1-4 (data safety) and 8-10 (clear, early errors): each command is
run as a user runs it, in a separate process, on real files.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import revdeconv
from revdeconv import filters
from revdeconv.io import load_image, save_image
from revdeconv.kernel_file import load_kernel

PRELUDE = ("import signal, sys, revdeconv, revdeconv.cli\n"
           # a test runner may start us with SIGINT ignored; a user's shell does not
           "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
           f"assert revdeconv.__file__ == {revdeconv.__file__!r}, revdeconv.__file__\n")


def command(args, cwd):
    return [sys.executable, "-c", PRELUDE + f"sys.exit(revdeconv.cli.main({list(map(str, args))!r}))"]


def cli(*args, cwd):
    """Run ``revdeconv ARGS`` in a separate process (this session's revdeconv), in ``cwd``."""
    return subprocess.run(command(args, cwd), cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def tree(root):
    """Every file under ``root`` with its bytes."""
    return {os.path.relpath(os.path.join(folder, name), root):
            open(os.path.join(folder, name), "rb").read()
            for folder, _, names in os.walk(root) for name in names}


def photos(folder, rng, names=("a", "b", "c"), shape=(30, 36, 3)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        save_image(folder / f"{name}.png", rng.random(shape))
    return folder


def one_error_line(run, *words):
    """The run failed before reading anything, with one ``error:`` line holding ``words``."""
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line and not line.startswith("usage")
             and not line.startswith(" ")]
    assert len(lines) == 1, run.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- 1. an output is never one of the inputs ------------------------------------------

@pytest.mark.parametrize("args", [
    [".", "--out", ".", "--overwrite"],
    [".", "--out", "."],
    ["*.png", "--out", "./", "--overwrite"],
    ["a.png", "--out", "link", "--overwrite"],                       # link -> .
], ids=["folder-overwrite", "folder", "glob", "symlinked-out"])
def test_an_output_that_is_an_input_is_refused_before_anything_is_written(tmp_path, rng, args):
    folder = photos(tmp_path / "photos", rng)
    os.symlink(".", folder / "link")
    before = tree(folder)
    run = cli("filter", *args, "--kernel", "edge", cwd=folder)
    one_error_line(run, "would replace the input", "a.png", "--out")
    assert tree(folder) == before


def test_an_output_into_another_format_beside_the_inputs_is_not_taken_as_an_input(
        tmp_path, rng):
    folder = photos(tmp_path / "photos", rng)
    first = cli("filter", ".", "--kernel", "blur", "--format", "npy", "--out", ".", cwd=folder)
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip().splitlines()[-1] == "revdeconv filter: 3 done, 0 failed"
    before = tree(folder)
    # the rerun sees a.npy, which is a's output: it refuses instead of filtering it
    again = cli("filter", ".", "--kernel", "blur", "--format", "npy", "--out", ".",
                "--overwrite", cwd=folder)
    one_error_line(again, "a.npy", "would replace the input")
    assert tree(folder) == before


def test_a_rerun_does_not_take_earlier_outputs_in_the_input_folder_as_inputs(tmp_path, rng):
    folder = photos(tmp_path / "photos", rng)
    for _ in range(2):
        run = cli("filter", "photos", "--recursive", "--kernel", "blur", "--out",
                  "photos/filtered", "--overwrite", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert run.stderr.strip().splitlines()[-1] == "revdeconv filter: 3 done, 0 failed"
    assert sorted(tree(folder)) == ["a.png", "b.png", "c.png", "filtered/a.png",
                                    "filtered/b.png", "filtered/c.png"]
    run = cli("filter", "photos/**/*.png", "--kernel", "blur", "--out", "photos/filtered",
              cwd=tmp_path)
    assert run.stderr.strip().splitlines()[-1] == \
        "revdeconv filter: 0 done, 0 failed, 3 skipped (output exists; --overwrite to redo)"
    # without --recursive the output folder is not counted among the subfolders left out
    run = cli("filter", "photos", "--kernel", "blur", "--out", "photos/filtered",
              cwd=tmp_path)
    assert "subfolder" not in run.stderr


def test_learn_refuses_to_write_its_kernel_over_an_input(tmp_path, rng):
    photos(tmp_path / "orig", rng)
    photos(tmp_path / "filt", rng, shape=(10, 12, 3))
    before = tree(tmp_path)
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--out", "filt/a.png",
              cwd=tmp_path)
    one_error_line(run, "would replace the input", "a.png")
    assert tree(tmp_path) == before


# -- 2. memory is bounded in bytes ------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("256MB", 256 * 10**6), ("256MiB", 256 * 2**20), ("1GiB", 2**30), ("1g", 2**30),
    ("1000", 1000), ("1.5 GB", 1.5e9), ("64kB", 64000)])
def test_memory_option_reads_units(text, expected):
    from revdeconv._options import memory
    assert memory(text) == expected


@pytest.mark.parametrize("text", ["0", "-5MB", "12 parsecs", "MB", ""])
def test_memory_option_refuses_other_values(text):
    from revdeconv._options import memory
    with pytest.raises(argparse.ArgumentTypeError, match="an amount of memory"):
        memory(text)


def test_chunks_are_filled_by_bytes_from_the_headers(tmp_path, rng):
    """Images of 48000 bytes as float64 (and 24000 more while one is decoded): a budget
    of 130000 bytes takes two at a time, and an image larger than the budget goes alone."""
    from revdeconv._runner import Run
    photos(tmp_path, rng, names=["a", "b", "c", "d", "e"], shape=(40, 50, 3))
    save_image(tmp_path / "f.png", rng.random((100, 100, 3)))           # 240000 bytes
    save_image(tmp_path / "g.png", rng.random((40, 50, 3)))
    run = Run("filter", memory=130_000, output_scale=0, stream=open(os.devnull, "w"))
    paths = sorted(str(p) for p in tmp_path.glob("*.png"))
    sizes = [[os.path.basename(item[0]) for item in chunk] for chunk in run.chunks(paths)]
    assert sizes == [["a.png", "b.png"], ["c.png", "d.png"], ["e.png"], ["f.png"], ["g.png"]]


def _peak_mib(args, cwd):
    code = PRELUDE + (f"status = revdeconv.cli.main({list(map(str, args))!r})\n"
                      "with open('/proc/self/status') as f:\n"
                      "    print(next(l.split()[1] for l in f if l.startswith('VmHWM:')))\n"
                      "sys.exit(status)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.split()[-1]) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_peak_memory_over_a_folder_stays_within_the_budget(tmp_path, rng):
    """24 images of 512x512 RGB (6 MiB each as float64, 150 MiB in all) with a budget of
    32 MiB: the peak stays within 1.5 times the budget above the interpreter's."""
    folder = tmp_path / "in"
    folder.mkdir()
    ramp = np.linspace(0, 1, 512)
    for k in range(24):
        image = (ramp[:, None, None] * ramp[None, :, None] * np.array([1, 0.7, 0.4])
                 + 0.05 * rng.random((512, 512, 3)))
        save_image(folder / f"{k:02d}.png", image)
    save_image(tmp_path / "one.png", rng.random((30, 36, 3)))
    budget = 32
    baseline = _peak_mib(["filter", "one.png", "--kernel", "blur", "--out", "o1",
                          "--quiet"], tmp_path)
    for name, args in [("filter", ["in", "--kernel", "blur", "--stride", "1"]),
                       ("deconvolve", ["in", "--kernel", "blur", "--stride", "1"])]:
        peak = _peak_mib([name, *args, "--out", f"out_{name}", "--memory", f"{budget}MiB",
                          "--quiet"], tmp_path)
        assert len(os.listdir(tmp_path / f"out_{name}")) == 24
        assert peak - baseline <= 1.5 * budget, (name, peak, baseline)


# -- 3. a run that matches nothing fails; subfolders are not skipped without a word ----

@pytest.mark.parametrize("args, words", [
    (["empty"], ["no image files in 'empty'"]),
    (["nothing*.png"], ["no file matches 'nothing*.png'"]),
    (["texts"], ["no image files in 'texts'", "2 files of other kinds"]),
    (["nested"], ["no image files in 'nested'", "1 subfolder not entered",
                  "--recursive"]),
])
def test_a_run_that_matches_nothing_fails_and_says_so(tmp_path, rng, args, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("x")
    (tmp_path / "texts" / "list.csv").write_text("x")
    photos(tmp_path / "nested" / "sub", rng)
    for command in ("filter", "deconvolve"):
        run = cli(command, *args, "--kernel", "blur", "--out", "out", cwd=tmp_path)
        line = one_error_line(run, *words)
        assert "0 done" not in line
        assert not (tmp_path / "out").exists()


def test_learn_that_matches_nothing_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    run = cli("learn", "--original", "empty", "--filtered", "empty", "--out", "k.json",
              cwd=tmp_path)
    one_error_line(run, "no image files in 'empty'")
    assert not (tmp_path / "k.json").exists()


def test_a_pattern_that_matches_nothing_beside_others_is_a_failure(tmp_path, rng):
    photos(tmp_path / "in", rng)
    run = cli("filter", "in", "none*.png", "--kernel", "blur", "--out", "out", cwd=tmp_path)
    assert run.returncode == 1
    assert "revdeconv filter: none*.png: no file matches this pattern" in run.stderr
    assert run.stderr.strip().splitlines()[-1] == "revdeconv filter: 3 done, 1 failed"


@pytest.fixture
def nested(tmp_path, rng):
    root = photos(tmp_path / "root", rng, names=["a"])
    photos(root / "sub", rng, names=["b"])
    photos(root / "sub" / "deeper", rng, names=["a"])                 # a second "a"
    photos(root / "other", rng, names=["c"])
    photos(root / ".hidden", rng, names=["h"])
    return root


def test_without_recursive_the_summary_counts_the_subfolders_not_entered(nested):
    run = cli("filter", "root", "--kernel", "blur", "--out", "out", cwd=nested.parent)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "revdeconv filter: 1 done, 0 failed; 2 subfolders not entered (--recursive "
        "enters them)")
    assert sorted(tree(nested.parent / "out")) == ["a.png"]


def test_recursive_walks_subfolders_and_mirrors_the_tree(nested):
    run = cli("filter", "root", "--recursive", "--kernel", "blur", "--out", "out",
              cwd=nested.parent)
    assert run.returncode == 0, run.stderr
    out = nested.parent / "out"
    assert sorted(tree(out)) == ["a.png", "other/c.png", "sub/b.png", "sub/deeper/a.png"]
    expected = revdeconv.convolve(load_image(nested / "sub" / "deeper" / "a.png"), filters.BLUR)
    np.testing.assert_allclose(load_image(out / "sub" / "deeper" / "a.png"),
                               np.floor(expected * 255 + 0.5) / 255, atol=1e-12)


def test_a_double_star_glob_is_recursive(nested):
    run = cli("filter", "root/**/*.png", "--kernel", "blur", "--out", "out",
              cwd=nested.parent)
    assert run.returncode == 0, run.stderr
    assert sorted(tree(nested.parent / "out")) == ["a.png", "other/c.png", "sub/b.png",
                                                   "sub/deeper/a.png"]


def test_learn_recursive_pairs_by_relative_name(tmp_path, rng):
    for side, shape in (("orig", (30, 36, 3)), ("filt", (10, 12, 3))):
        photos(tmp_path / side, rng, names=["a"], shape=shape)
        photos(tmp_path / side / "sub", rng, names=["a"], shape=shape)
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--recursive",
              "--method", "lstsq", "--out", "k.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(load_kernel(tmp_path / "k.json")) == ["a", "sub/a"]


# -- 4. Ctrl-C --------------------------------------------------------------------------

@pytest.mark.parametrize("threads", ["1", "2"], ids=["in-line", "overlapped"])
def test_ctrl_c_ends_with_one_line_status_130_and_no_partial_file(tmp_path, rng, threads):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(40):
        save_image(folder / f"{k:02d}.png", rng.random((300, 400, 3)))
    out = tmp_path / "out"
    process = subprocess.Popen(command(["deconvolve", "in", "--kernel", "blur", "--out",
                                        "out", "--chunk", "1", "--threads", threads],
                                       tmp_path),
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
            not out.is_dir() or len([n for n in os.listdir(out) if n.endswith(".png")]) < 2):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(r"revdeconv deconvolve: interrupted: (\d+) done, (\d+) not started",
                         last)
    assert match, stderr
    names = os.listdir(out)
    assert not [n for n in names if n.startswith(".")], names          # no temporary file
    assert int(match.group(1)) == len(names) and int(match.group(2)) == 40 - len(names)
    assert 2 <= len(names) < 40
    for name in names:
        assert load_image(out / name).shape == (900, 1200, 3)           # whole files only


# -- 8. every option is checked once, before the first file is read -------------------

@pytest.mark.parametrize("args, words", [
    (["filter", "in", "--kernel", "blur", "--threads", "0"],
     ["--threads", "a number of threads", "'0'"]),
    (["deconvolve", "in", "--kernel", "blur", "--threads", "many"],
     ["--threads", "a number of threads"]),
    (["learn", "--original", "in", "--filtered", "in", "--lr", "-1", "--out", "k.json"],
     ["--lr", "a number above 0", "'-1'"]),
    (["learn", "--original", "in", "--filtered", "in", "--lr", "nan", "--out", "k.json"],
     ["--lr", "a number above 0"]),
    (["deconvolve", "in", "--kernel", "blur", "--eps", "-1"],
     ["--eps", "a number of at least 0", "'-1'"]),
    (["learn", "--original", "in", "--filtered", "in", "--compare", "sharpne",
      "--out", "k.json"], ["--compare", "a filter name: blur, sharpen, edge", "sharpne"]),
    (["filter", "in", "--kernel", "blur", "--chunk", "x"],
     ["--chunk", "a whole number of at least 1", "'x'"]),
    (["learn", "--original", "in", "--filtered", "in", "--epochs", "0", "--out", "k.json"],
     ["--epochs", "a whole number of at least 1"]),
    (["filter", "in", "--kernel", "blur", "--stride", "3x0"], ["--stride", "ROWSxCOLS"]),
    (["filter", "in", "--kernel", "blur", "--memory", "lots"],
     ["--memory", "an amount of memory"]),
    (["filter", "in", "--kernel", "blur", "--out", "a_file"], ["--out", "is a file"]),
    (["learn", "--original", "in", "--filtered", "in", "--out", "nodir/k.json"],
     ["--out", "no folder 'nodir'"]),
    (["learn", "--original", "in", "--filtered", "in", "--out", "."], ["--out", "folder"]),
])
def test_bad_options_are_one_line_before_any_file_is_read(tmp_path, rng, args, words):
    photos(tmp_path / "in", rng)
    (tmp_path / "a_file").write_text("x")
    if "--out" not in args:
        args = args + ["--out", "out"]
    before = tree(tmp_path)
    run = cli(*args, cwd=tmp_path)
    line = one_error_line(run, *words)
    assert "_positive" not in line and "Errno" not in line and "n_threads" not in line
    assert "in/" not in run.stderr                          # no file was read
    assert tree(tmp_path) == before


@pytest.mark.parametrize("document, words", [
    ({"kernel": [[1, 2], [3, 4]], "shape": [1, 3, 3]},
     ["2x2", "its \"shape\" says [1, 3, 3]"]),
    ({"weights": [[1, 2], [3, 4]]}, ["\"kernel\""]),
    ("[1, 2, 3]", ["a list of rows"]),
    ([[1, 2], [3]], ["rows of one length"]),
    ({"kernel": [[1, 2], [3, 4]], "activation": "tanh"}, ["tanh", "clip, relu, identity"]),
], ids=["shape", "no-kernel", "flat", "ragged", "activation"])
def test_kernel_file_errors_say_what_is_expected(tmp_path, rng, document, words):
    photos(tmp_path / "in", rng)
    text = document if isinstance(document, str) else json.dumps(document)
    (tmp_path / "k.json").write_text(text)
    run = cli("filter", "in", "--kernel", "k.json", "--out", "out", cwd=tmp_path)
    line = one_error_line(run, "--kernel", "k.json", *words)
    assert "None" not in line
    assert not (tmp_path / "out").exists()


def test_learn_says_plainly_when_no_kernel_size_fits(tmp_path, rng):
    photos(tmp_path / "orig", rng, names=["a"])
    (tmp_path / "filt").mkdir()
    np.save(tmp_path / "filt" / "a.npy", rng.random((20, 20, 3)))
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--out", "k.json",
              cwd=tmp_path)
    assert run.returncode == 1
    assert "[] x []" not in run.stderr and "ambiguous" not in run.stderr
    assert "--kernel-size" in run.stderr and "30x36" in run.stderr and "20x20" in run.stderr


def test_a_diverging_filter_is_a_failure_of_its_pair_not_a_warning(tmp_path, rng):
    photos(tmp_path / "orig", rng)
    (tmp_path / "filt").mkdir()
    for name in "abc":
        np.save(tmp_path / "filt" / f"{name}.npy",
                revdeconv.convolve(load_image(tmp_path / "orig" / f"{name}.png"),
                                   filters.BLUR))
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--lr", "1e308",
              "--out", "k.json", cwd=tmp_path)
    assert "RuntimeWarning" not in run.stderr and ".py:" not in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert run.returncode == 1
    assert "diverged" in run.stderr and "--lr" in run.stderr
    learned = load_kernel(tmp_path / "k.json") if (tmp_path / "k.json").exists() else {}
    assert all(np.isfinite(spec.kernel).all() for spec in learned.values())


def test_a_warning_is_one_line_without_source_code(tmp_path, rng):
    photos(tmp_path / "orig", rng, names=["a"], shape=(6, 6, 3))
    (tmp_path / "filt").mkdir()
    np.save(tmp_path / "filt" / "a.npy", rng.random((2, 2, 3)))     # 4 blocks, 9 unknowns
    run = cli("learn", "--original", "orig", "--filtered", "filt", "--method", "lstsq",
              "--out", "k.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if "under-determined" in line]
    assert len(warned) == 3, run.stderr                                 # one per channel
    assert all(line.startswith("revdeconv learn: warning: ") for line in warned)
    assert "Warning:" not in run.stderr and ".py:" not in run.stderr
    assert "warnings.warn" not in run.stderr


def test_a_failing_write_does_not_name_the_temporary_file(tmp_path, rng, monkeypatch, capsys):
    import revdeconv.cli
    import revdeconv.io
    photos(tmp_path / "in", rng, names=["a"])

    def full_disk(path, write):
        raise OSError(28, "No space left on device", os.path.join(os.path.dirname(path),
                                                                  ".a.png.5j7mxcub"))
    monkeypatch.setattr(revdeconv.io, "write_atomically", full_disk)
    status = revdeconv.cli.main(["filter", str(tmp_path / "in"), "--kernel", "blur",
                                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 1
    assert "5j7mxcub" not in err and "Errno" not in err
    assert "cannot write" in err and "No space left on device" in err


@pytest.mark.parametrize("stride", ["3x2", "3,2", "3X2"])
def test_two_value_stride_on_the_command_line(tmp_path, rng, stride):
    photos(tmp_path / "in", rng, names=["a"])
    run = cli("filter", "in", "--kernel", "blur", "--stride", stride, "--format", "npy",
              "--out", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    expected = revdeconv.convolve(load_image(tmp_path / "in" / "a.png"), filters.BLUR,
                                  stride=(3, 2))
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "a.npy"), expected)


# -- 9. a hand-written kernel file -------------------------------------------------------

@pytest.mark.parametrize("document", [
    [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    {"kernel": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]},
    {"kernel": [[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]], "stride": 3},
    {"format": "revdeconv-kernel", "kernel": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]},
], ids=["rows", "object", "object-3d", "format-only"])
def test_a_hand_written_kernel_file_is_accepted(tmp_path, rng, document):
    (tmp_path / "k.json").write_text(json.dumps(document))
    spec = load_kernel(tmp_path / "k.json")
    np.testing.assert_array_equal(spec.kernel, filters.SHARPEN[np.newaxis])
    np.testing.assert_array_equal(spec.bias, [0.0])
    assert spec.stride in (None, (3, 3)) and spec.activation is None
    photos(tmp_path / "in", rng, names=["a"])
    run = cli("filter", "in", "--kernel", "k.json", "--format", "npy", "--out", "out",
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "out" / "a.npy"),
        revdeconv.convolve(load_image(tmp_path / "in" / "a.png"), filters.SHARPEN))


def test_deconvolve_with_a_kernel_set_uses_each_files_own_stride_and_activation(
        tmp_path, rng):
    """Files read in one chunk, of one channel count and kernel size, whose filters
    differ in stride or activation: each is deconvolved with its own filter's (not
    those of the chunk's first file)."""
    sharpen = np.repeat(filters.SHARPEN[np.newaxis], 3, axis=0)
    own = {"a": (sharpen, (3, 3), "clip"), "b": (sharpen, (2, 2), "identity"),
           "c": (sharpen / 4, (3, 3), "identity"), "d": (sharpen / 2, (3, 2), "relu"),
           "e": (np.full((3, 3, 3), 0.05), None, "identity")}   # no stride: kernel size
    photos(tmp_path / "in", rng, names=list(own), shape=(12, 15, 3))
    (tmp_path / "k.json").write_text(json.dumps({
        "format": "revdeconv-kernels", "version": 1,
        "kernels": {name: {"kernel": kernel.tolist(), "activation": activation,
                           **({"stride": list(stride)} if stride else {})}
                    for name, (kernel, stride, activation) in own.items()}}))
    run = cli("deconvolve", "in", "--kernel", "k.json", "--format", "npy", "--out", "out",
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "5 done, 0 failed" in run.stderr
    for name, (kernel, stride, activation) in own.items():
        image = load_image(tmp_path / "in" / f"{name}.png")
        expected = revdeconv.deconvolve(image, kernel, stride=stride, activation=activation)
        first = revdeconv.deconvolve(image, kernel, stride=(3, 3), activation="clip")
        assert name == "a" or expected.shape != first.shape \
            or not np.array_equal(expected, first), name      # the test can fail
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{name}.npy"), expected,
                                      err_msg=name)


# -- 10. --version; progress only on a terminal -------------------------------------------

def test_version(tmp_path):
    run = cli("--version", cwd=tmp_path)
    assert run.returncode == 0
    assert run.stdout.strip() == f"revdeconv {revdeconv.__version__}"


def test_a_piped_run_gets_one_line_per_chunk_and_no_bar(tmp_path, rng):
    photos(tmp_path / "in", rng, names=["a", "b", "c", "d"])
    run = cli("filter", "in", "--kernel", "blur", "--chunk", "1", "--out", "out",
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "[#" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert [re.sub(r" \(.*\)$", "", line) for line in lines[:-1]] == [
        f"revdeconv filter {k}/4" for k in (1, 2, 3)]
    assert lines[-1] == "revdeconv filter: 4 done, 0 failed"
    quiet = cli("filter", "in", "--kernel", "blur", "--chunk", "1", "--out", "out2",
                "--quiet", cwd=tmp_path)
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_experiment_progress_is_a_bar_only_on_a_terminal(tmp_path):
    run = cli("experiment", "--rates", "0.1", "--out", "o", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "[#" not in run.stderr
    assert "3/3" in run.stderr
