"""Folder runs overlap reading, computing and writing (issue 14, item 1), and say and
write exactly what a run on one thread does; PNG compression is chosen and can be
given (``--png-compression``)."""

import io
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image

import revdeconv
from revdeconv import cli
from revdeconv._pipeline import Deferred, Files
from revdeconv.io import read_image, save_image


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def run(capsys, *args):
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.err.splitlines()


@pytest.fixture
def mixed(tmp_path, rng):
    """Forty photographs, a broken file and two grey float TIFFs with pixels past 1
    (read with a warning), in name order among them."""
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(40):
        save_image(folder / f"im{k:02d}.png", rng.random((30, 40, 3)))
    (folder / "im05_broken.png").write_bytes(b"not an image")
    for name in ("im12_hot", "im31_hot"):
        Image.fromarray((2 * rng.random((30, 40))).astype(np.float32)).save(
            folder / f"{name}.tiff")
    return folder


@pytest.mark.parametrize("command", ["filter", "deconvolve"])
def test_the_lines_and_files_do_not_depend_on_the_threads(mixed, tmp_path, capsys, command):
    """Small chunks (``--memory``), so that several are read, computed and written at
    once on two threads: the same lines (but the lines per chunk: a run that overlaps
    takes smaller chunks), in the files' order, and the same bytes."""
    results = {}
    for threads in (1, 2):
        out = tmp_path / f"out{threads}"
        results[threads] = run(capsys, command, mixed, "--kernel", "blur", "--out", out,
                               "--memory", "200kB", "--threads", threads, "--quiet")
        results[threads] += (tree(out),)
    assert results[1] == results[2]
    status, lines, files = results[2]
    assert status == 1 and len(files) == 42
    assert [line.split(": ")[-2].rsplit("/", 1)[-1] for line in lines[:-1]] == [
        "im05_broken.png", "im12_hot.tiff", "im31_hot.tiff"]
    assert lines[-1] == f"revdeconv {command}: 42 done, 1 failed"


def test_a_piped_run_of_one_chunk_prints_the_same_lines_on_any_threads(tmp_path, rng, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(5):
        save_image(folder / f"p{k}.png", rng.random((20, 24, 3)))
    lines = {}
    for threads in (1, 2):
        status, err = run(capsys, "filter", folder, "--kernel", "blur", "--out",
                          tmp_path / f"o{threads}", "--threads", threads)
        lines[threads] = (status, err)
    assert lines[1] == lines[2] == (0, ["revdeconv filter: 5 done, 0 failed"])


def test_a_chunk_larger_than_its_share_runs_alone(tmp_path, rng, monkeypatch, capsys):
    """--memory 3MB on 2 threads: a share of 1 MB each (and 4 files at most); the
    300x300 file (2.2 MB as
    float64) is a chunk of its own, and no other chunk is at work beside it, while the
    chunks of small files before and after it do go two at a time."""
    from revdeconv._runner import Run
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(36):
        save_image(folder / f"a{k:02d}.png", rng.random((20, 24, 3)))
    save_image(folder / "a17_big.png", rng.random((300, 300, 3)))
    at_work, seen, lock = [], [], threading.Lock()
    chunk = Run._chunk

    def watched(self, batch, compute, attach):
        names = [p[0].rsplit("/", 1)[-1] for p in batch]
        with lock:
            at_work.append(names)
            seen.append([list(n) for n in at_work])
        try:
            time.sleep(0.05)                  # long enough for chunks to meet
            return chunk(self, batch, compute, attach)
        finally:
            with lock:
                at_work.remove(names)
    monkeypatch.setattr(Run, "_chunk", watched)
    status, _ = run(capsys, "filter", folder, "--kernel", "blur", "--out", tmp_path / "o",
                    "--memory", "3MB", "--chunk", 4, "--threads", 2, "--quiet")
    assert status == 0 and len(list((tmp_path / "o").iterdir())) == 37
    assert ["a17_big.png"] in [names for moment in seen for names in moment]
    assert all(moment == [["a17_big.png"]] for moment in seen if ["a17_big.png"] in moment)
    assert any(len(moment) == 2 for moment in seen)          # the others do go side by side


def test_a_chunk_that_raises_leaves_the_others_counted(tmp_path, rng):
    """An error other than a bad image (a bug) goes up, after every chunk at work has
    been counted: the files on disk are the files counted."""
    from revdeconv._runner import Run
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(8):
        save_image(folder / f"b{k}.png", rng.random((20, 24, 3)))

    def compute(images):
        if len(images) == 1 and images[0].shape[0] == 20 and compute.calls == 3:
            raise RuntimeError("a bug")
        compute.calls += 1
        return [image[1:, 1:] for image in images]
    compute.calls = 0
    run_ = Run("filter", out=str(tmp_path / "o"), chunk=1, n_threads=2,
               stream=io.StringIO())
    with pytest.raises(RuntimeError, match="a bug"):
        run_.process([str(folder)], compute)
    assert run_.done == len(list((tmp_path / "o").iterdir())) >= 3


def test_a_serial_build_spreads_its_files_too(monkeypatch):
    from revdeconv import _threads
    monkeypatch.setattr(_threads, "openmp_enabled", lambda: False)
    assert _threads.effective_n_threads(4) == 1
    assert Files(4).n_threads == 4 and Files(-1).n_threads == _threads.available_cpus()


def test_a_warning_on_the_pool_is_shown_by_the_thread_that_takes_the_result():
    shown = []
    previous = warnings.showwarning
    warnings.showwarning = lambda message, *rest, **kw: shown.append(
        (str(message), threading.current_thread().name))
    try:
        def decode(name):
            warnings.warn(f"{name}: odd", RuntimeWarning)
            if name == "b":
                raise ValueError("b is broken")
            return name.upper()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            with Files(2).open() as files:
                futures = [files.submit(decode, name) for name in "abc"]
                assert shown == []                     # kept until asked for
                assert futures[0].result() == "A"
                with pytest.raises(ValueError, match="b is broken"):
                    futures[1].result()
                assert futures[2].result() == "C"
    finally:
        warnings.showwarning = previous
    main = threading.main_thread().name
    assert shown == [("a: odd", main), ("b: odd", main), ("c: odd", main)]


def test_in_line_calls_wait_until_asked_and_are_made_once():
    calls = []
    files = Files(1)
    with files.open():
        assert not files.overlapped
        done = files.submit(lambda path: calls.append(path) or path, "x")
        assert calls == []
        assert done.result() == "x" and done.result() == "x" and calls == ["x"]
        dropped = files.submit(calls.append, "never")
        assert dropped.cancel() and not done.cancel()
    assert calls == ["x"]
    failing = Deferred(int, "not a number")
    for _ in range(2):                                # raised again to each caller
        with pytest.raises(ValueError):
            failing.result()


# -- PNG compression -------------------------------------------------------------------

def _png(image, **options):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def test_the_default_png_is_as_small_as_level_6_and_decodes_the_same(tmp_path):
    sample = revdeconv.data.samples()[0]
    save_image(tmp_path / "default.png", sample)
    for level in (0, 6, 9):
        save_image(tmp_path / f"level{level}.png", sample, png_compression=level)
    sizes = {p.stem: p.stat().st_size for p in tmp_path.iterdir()}
    assert sizes["level0"] > 1.2 * sizes["level9"]
    assert sizes["default"] <= 1.03 * sizes["level6"]          # zlib's RLE strategy
    pixels = {name: read_image(tmp_path / f"{name}.png").pixels for name in sizes}
    for name in sizes:
        np.testing.assert_array_equal(pixels[name], pixels["default"])


def test_a_16_bit_png_takes_the_level_too(tmp_path):
    image = revdeconv.data.samples()[2]
    save_image(tmp_path / "none.png", image, bits=16, png_compression=0)
    save_image(tmp_path / "default.png", image, bits=16)
    assert (tmp_path / "none.png").stat().st_size > (tmp_path / "default.png").stat().st_size
    np.testing.assert_array_equal(read_image(tmp_path / "none.png").pixels,
                                  read_image(tmp_path / "default.png").pixels)


@pytest.mark.parametrize("level", [10, -1, 1.5, 1.0, np.float64(2), True, "6"])
def test_save_image_names_a_bad_png_compression(tmp_path, level):
    with pytest.raises(ValueError, match="png_compression must be None or an integer from "
                                         "0 to 9"):
        save_image(tmp_path / "x.png", np.zeros((2, 2)), png_compression=level)
    assert list(tmp_path.iterdir()) == []


def test_png_compression_on_the_command_line(tmp_path, rng, capsys):
    (tmp_path / "in").mkdir()
    save_image(tmp_path / "in" / "a.png", revdeconv.data.samples()[1])
    sizes = {}
    for level in ("0", "9"):
        status, _ = run(capsys, "filter", tmp_path / "in", "--kernel", "blur", "--stride", "1",
                        "--out", tmp_path / level, "--png-compression", level)
        assert status == 0
        sizes[level] = (tmp_path / level / "a.png").stat().st_size
    assert sizes["0"] > 1.2 * sizes["9"]
    for bad in ("10", "fast", "-1"):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["filter", str(tmp_path / "in"), "--kernel", "blur", "--out",
                      str(tmp_path / "bad"), "--png-compression", bad])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "--png-compression" in err and "a zlib level from 0" in err and bad in err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_folder_run_gives_its_freed_images_blocks_again(tmp_path, rng, capsys, threads):
    """The run's arrays come from ``_block_cache``, which gives a chunk the blocks the
    chunks before it freed, and lets them all go when the run ends."""
    block_cache = pytest.importorskip("revdeconv._block_cache")
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(12):
        save_image(folder / f"im{k:02d}.png", rng.random((120, 160, 3)))   # 450 KiB as floats
    hits = block_cache.held()[2]
    status, _ = run(capsys, "filter", folder, "--kernel", "blur", "--out", tmp_path / "out",
                    "--memory", "2MB", "--threads", threads, "--quiet")
    assert status == 0 and len(list((tmp_path / "out").iterdir())) == 12
    assert block_cache.held()[2] > hits
    assert block_cache.held()[:2] == (0, 0)


def test_resolved_is_realpath_and_exists(tmp_path):
    """What ``pending`` takes for each output: the real path (the folder's link
    followed, and the file's own when it is a link) and whether the file is there."""
    from revdeconv._inputs import resolved
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "a.png").write_bytes(b"x")
    (tmp_path / "real" / "link.png").symlink_to(tmp_path / "real" / "a.png")
    (tmp_path / "real" / "dangling.png").symlink_to(tmp_path / "real" / "none.png")
    folders = {}
    for name in ("a.png", "b.png", "link.png", "dangling.png"):
        target = str(tmp_path / "via" / name)
        assert resolved(target, folders) == (os.path.realpath(target), os.path.exists(target))
    assert list(folders) == [str(tmp_path / "via")]          # the folder resolved once


def test_the_cache_of_freed_blocks_stays_within_the_memory_budget(monkeypatch):
    """``--memory`` bounds what the cache keeps, as it bounds the chunks."""
    block_cache = pytest.importorskip("revdeconv._block_cache")
    from revdeconv import _pipeline
    limits = []
    monkeypatch.setattr(block_cache, "open_cache", limits.append)
    for memory in (2**20, float("inf")):
        with Files(4).open(memory):
            pass
    assert limits == [2**20, 5 * _pipeline.CHUNK_BYTES]


def test_the_numpy_fallback_leaves_out_the_file_helpers_too():
    """``REVDECONV_BACKEND=numpy``: no compiled PNG filter, levels or block cache."""
    code = ("from revdeconv import _native, _png, io, _pipeline\n"
            "print(_native.png_filter, _native.levels, _native.block_cache, _png._png_filter,"
            " io._levels, _pipeline._block_cache)")
    env = dict(os.environ, REVDECONV_BACKEND="numpy")
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    assert found == ["None"] * 6
