"""The benchmark harness and ``revdeconv bench``: what they report, never how fast.

Every run here is the smallest there is (the paper's 180x250 image, one
repeat, a few pipeline images): the tests check the structure of the results,
that each target is decided or said to be not measured, and the command's
files and errors. They assert no timing.
"""

import json
import sys

import numpy as np
import pytest

import revdeconv
import revdeconv.cli
from revdeconv import _backend, _bench_cases, benchmark

SMALL = dict(size="paper", threads=(1,), repeat=1, images=4)
N_TARGETS = (len(benchmark.SPEED_TARGETS) + len(benchmark.RESTORE_TARGETS)
             + len(benchmark.KERNELS))


@pytest.fixture(scope="module")
def result():
    return benchmark.run_benchmark(**SMALL)


def _not_measured(targets):
    """name -> reason of each target not measured."""
    return {t["name"]: t["note"] for t in targets if t["met"] == "not measured"}


def test_json_has_every_part_and_every_target(result):
    report = json.loads(result.to_json())
    assert {"machine", "config", "size", "repeat", "rows", "targets", "command"} <= set(report)
    assert report["size"] == "paper" and report["image_shape"] == [180, 250, 3]
    assert report["repeat"] == 1 and report["threads"] == [1]
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert report["config"]["revdeconv"] == revdeconv.__version__
    for name in ("cv2", "scipy", "matplotlib"):
        assert report["config"][name]                       # a version or "not installed"
    assert report["command"].startswith("revdeconv.benchmark.run_benchmark(size='paper'")

    cases = {row["case"] for row in report["rows"]}
    assert cases == (set(benchmark.KERNELS) | set(benchmark.OUT_CASES) | {benchmark.PIPELINE}
                     | set(benchmark.RESTORE_CASES))
    for row in report["rows"]:
        assert {"case", "implementation", "seconds", "images", "note"} <= set(row)
        assert (row["seconds"] is None) == bool(row["note"])
    numpy_rows = [r for r in report["rows"] if r["implementation"] == "numpy"]
    # out= and one TV iteration: compiled only
    assert len(numpy_rows) == len(cases) - len(benchmark.OUT_CASES) - 1
    assert all(r["seconds"] > 0 for r in numpy_rows)
    copy = [r for r in report["rows"] if r["case"] == benchmark.DECONVOLVE_OUT
            and r["implementation"] == "np.copyto"]
    assert len(copy) == 1 and copy[0]["seconds"] > 0
    pipeline = {r["implementation"]: r for r in report["rows"] if r["case"] == "batch pipeline"}
    assert pipeline["numpy"]["images"] == 4

    targets = report["targets"]
    assert len(targets) == N_TARGETS == len({t["name"] for t in targets})
    for target in targets:
        assert {"name", "measured", "required", "met"} <= set(target)
        assert target["met"] in (True, False, "not measured")
        if target["met"] == "not measured":
            assert target["measured"] is None and target["note"]
        else:
            assert target["measured"] > 0
    # one thread only: the 2-thread target cannot be decided, and says why
    assert "compiled 2T not run" in _not_measured(targets)[
        "batch pipeline: compiled 2T vs compiled 1T"]
    assert "compiled 2T not run" in _not_measured(targets)[
        f"{benchmark.CONVOLVE_S1_OUT}: compiled 2T vs compiled 1T"]


def test_markdown_has_the_tables_and_a_mark_per_target(result):
    text = result.to_markdown()
    for heading in ("## Kernels (seconds)", "## Batch pipeline", "## Memory", "## Targets"):
        assert heading in text
    assert "| kernel | implementation | seconds | vs NumPy | vs compiled 1T |" in text
    assert "| case | measured | required | target |" in text
    target_rows = text.split("## Targets")[1].strip().splitlines()[2:]
    assert len(target_rows) == N_TARGETS
    for line in target_rows:
        assert line.rstrip(" |").endswith(("✓", "✗")) or "| not measured: " in line
    assert f"- machine: {result.machine['cpu']}" in text
    assert "# revdeconv benchmark" not in result.to_markdown(header=False)


@pytest.mark.skipif(not revdeconv.compiled_available(), reason="no compiled extension")
def test_memory_is_measured_for_each_compiled_kernel(result):
    assert [row.case for row in result.memory] == list(benchmark.KERNELS)
    for row in result.memory:
        assert row.input_bytes > 0 and row.output_bytes > 0 and row.peak_extra_bytes >= 0
    image = 180 * 250 * 3 * 4
    assert result.memory[0].input_bytes == image                # float32 in, nothing copied


def test_missing_peers_are_not_measured_never_passed(monkeypatch):
    for name in ("cv2", "scipy", "scipy.ndimage"):
        monkeypatch.setitem(sys.modules, name, None)           # import raises ImportError
    result = benchmark.run_benchmark(**dict(SMALL, images=2))
    rows = {row.implementation: row for row in result.rows
            if row.case == benchmark.CONVOLVE_S1}
    assert rows["cv2 1T"].seconds is None and rows["cv2 1T"].note == "cv2 not installed"
    assert rows["scipy"].seconds is None and rows["scipy"].note == "scipy not installed"
    missing = _not_measured([t.to_dict() for t in result.targets])
    assert missing["convolve 3x3 stride 1: compiled 1T vs cv2 1T"] == "cv2 not installed"
    assert missing["convolve 3x3 stride 1: compiled 1T vs scipy"] == "scipy not installed"
    assert "| cv2 1T | not measured: cv2 not installed |" in result.to_markdown()
    assert result.config["cv2"] == "not installed"


def test_without_the_compiled_extension_only_numpy_is_timed(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(_backend, "IMPORT_ERROR", "ImportError: pretend")
    status = revdeconv.cli.main(["bench", "--size", "paper", "--repeat", "1", "--images", "2",
                                 "--json", str(tmp_path / "r.json")])
    assert status == 0
    assert "compiled extension is not available" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    compiled = [r for r in report["rows"] if r["implementation"].startswith("compiled")]
    assert compiled and all(r["seconds"] is None for r in compiled)
    assert report["memory"] == []
    for target in report["targets"]:
        if "compiled" in target["name"]:
            assert target["met"] == "not measured"
            assert target["note"] == "compiled extension not available"


def test_figure_is_drawn_where_matplotlib_is(result, tmp_path):
    pytest.importorskip("matplotlib")
    assert result.save_figure(tmp_path / "speedups.png")
    assert (tmp_path / "speedups.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_figure_and_a_note_without_matplotlib(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert result.save_figure(tmp_path / "speedups.png") is False
    assert not (tmp_path / "speedups.png").exists()


def test_bench_command_writes_json_and_markdown(tmp_path, capsys):
    json_path, md_path = tmp_path / "out" / "r.json", tmp_path / "r.md"
    args = ["bench", "--size", "paper", "--repeat", "1", "--images", "4", "--threads", "1",
            "--json", str(json_path), "--markdown", str(md_path)]
    assert revdeconv.cli.main(args) == 0
    out = capsys.readouterr().out
    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert report["command"] == "revdeconv " + " ".join(args)
    assert len(report["targets"]) == N_TARGETS
    markdown = md_path.read_text(encoding="utf-8")
    assert "## Targets" in markdown and "## Targets" in out
    assert f"- command: `{report['command']}`" in markdown


@pytest.mark.parametrize("args, name", [
    (["--size", "8k"], "size"),
    (["--threads", "1", "0"], "threads"),
    (["--threads", "-1"], "threads"),
    (["--repeat", "0"], "repeat"),
    (["--images", "0"], "images"),
])
def test_bad_arguments_are_one_line_errors(args, name, capsys, tmp_path):
    assert revdeconv.cli.main(["bench", *args, "--json", str(tmp_path / "r.json")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"revdeconv bench: error: {name} must ")
    assert captured.out == "" and not (tmp_path / "r.json").exists()


def test_restore_rows_are_timed_per_million_values_with_their_psnr(result):
    """restore on the compiled backend, the NumPy fallback, scikit-image's Wiener and
    Richardson-Lucy, on one image: each row with its values and PSNR; one TV
    iteration on one thread; the three targets of issue 11 decided on them."""
    rows = {r.implementation: r for r in result.rows if r.case == benchmark.RESTORE}
    assert set(rows) == {"compiled 1T", "numpy", benchmark.WIENER, benchmark.RICHARDSON_LUCY}
    values = 180 * 250 * 3                                      # RESTORE_SIZES["paper"]
    pytest.importorskip("skimage.restoration")
    for row in rows.values():
        assert row.seconds > 0 and row.values == values
        assert row.ms_per_million == pytest.approx(row.seconds / values * 1e9)
        assert 20 < row.psnr < 50
    # the same restore on both backends: the same image
    assert rows["numpy"].psnr == pytest.approx(rows["compiled 1T"].psnr, abs=1e-3)
    [iteration] = [r for r in result.rows if r.case == benchmark.RESTORE_ITERATION]
    assert iteration.implementation == "compiled 1T"
    assert iteration.images == _bench_cases.RESTORE_ITERATIONS
    assert iteration.ms_per_million == pytest.approx(
        iteration.seconds / iteration.images / values * 1e9)
    targets = {t.name: t for t in result.targets}
    assert targets[f"{benchmark.RESTORE}: compiled vs numpy"].required == 20
    psnr = targets[f"restore: PSNR above {benchmark.RICHARDSON_LUCY}"]
    assert psnr.measured == pytest.approx(rows["compiled 1T"].psnr
                                          - rows[benchmark.RICHARDSON_LUCY].psnr)
    assert psnr.met == (psnr.measured > 0) and psnr.unit == "dB"
    per_iteration = targets["restore: one TV iteration, 1 thread"]
    assert per_iteration.measured == pytest.approx(iteration.ms_per_million)
    assert per_iteration.required_text == "at most 30 ms per million values"
    assert "## Restore" in result.to_markdown(header=False)


def test_the_folder_cases_time_the_command_and_the_opencv_loop_on_the_same_files(tmp_path):
    """Six files: the command on 1 and 2 threads and the loop, each timed; the loop's
    outputs equal the command's, file by file."""
    pytest.importorskip("cv2")
    from revdeconv._bench_folder import folder_jobs
    jobs = list(folder_jobs(revdeconv.cli.main, 6, (1, 2), 1, str(tmp_path)))
    rows = []
    for case in _bench_cases.FOLDER_CASES:
        rows += _bench_cases._time_case([j for j in jobs if j.case == case], lambda _: None)
    assert [(r.case, r.implementation) for r in rows] == [
        (case, implementation) for case in _bench_cases.FOLDER_CASES
        for implementation in ("compiled 1T", "compiled 2T", _bench_cases.OPENCV_LOOP)]
    assert all(r.seconds > 0 and r.images == 6 for r in rows)
    loops = [r for r in rows if r.implementation == _bench_cases.OPENCV_LOOP]
    assert [r.note for r in loops] == ["outputs: 6 of 6 files identical to the command's"] * 2
    # each timed run wrote into a folder of its own (kept until the benchmark ends)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "check", "cv2", "deconvolve", "filter", "filtered", "photos"]
    runs = sorted((tmp_path / "filter").iterdir())
    assert [p.name for p in runs] == ["run0", "run1", "run2"]
    assert all(len(list(p.iterdir())) == 6 for p in runs)


def test_compare_folders_finds_a_changed_and_a_missing_file(tmp_path):
    from PIL import Image
    from revdeconv._bench_folder import compare_folders
    for side in ("ours", "theirs"):
        (tmp_path / side).mkdir()
        for name in ("a", "b", "c"):
            Image.fromarray(np.full((4, 5, 3), 100, np.uint8)).save(tmp_path / side / f"{name}.png")
    assert compare_folders(tmp_path / "ours", tmp_path / "theirs") == (3, 3, 0)
    Image.fromarray(np.full((4, 5, 3), 103, np.uint8)).save(tmp_path / "ours" / "b.png")
    assert compare_folders(tmp_path / "ours", tmp_path / "theirs") == (2, 3, 3)
    (tmp_path / "ours" / "c.png").unlink()
    assert compare_folders(tmp_path / "ours", tmp_path / "theirs") == (1, 3, -1)
