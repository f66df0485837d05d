"""``--scheduler``: the commands on a Dask cluster of 2 worker processes give the files,
lines, summary and exit status of the plain command, and lose nothing when a worker
is killed (a worker started once for the module: ``local:2`` through the package's own
starter, which leaves this process's environment alone)."""

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import revdeconv  # noqa: E402
from revdeconv import _cluster, cli, learning  # noqa: E402
from revdeconv.io import load_image, save_image  # noqa: E402

#: Seconds a command may take here (2 cores, shared).
TIMEOUT = 120
FILES = 60


@pytest.fixture(scope="module")
def cluster():
    started = _cluster.Cluster("local:2")
    started.client                      # noqa: B018 (starts it)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])    # (for client.run)
    yield started
    started.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """60 RGB 40x50 images, a grey and an RGBA one, one too small to filter (first
    in name order) and one unreadable (in a later task of the same chunk)."""
    root = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(7)
    images = root / "in"
    images.mkdir()
    for n in range(FILES):
        save_image(images / f"im{n}.png", rng.random((40, 50, 3)))
    save_image(images / "grey.png", rng.random((40, 50)))
    save_image(images / "logo.png", rng.random((40, 50, 4)))
    save_image(images / "a_tiny.png", rng.random((2, 2, 3)))
    (images / "im15_broken.png").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def filtered(folder):
    """The folder filtered by the plain command (``filtered``), for learn and deconvolve."""
    status, _, _ = run("filter", "in", "--kernel", "blur", "--out", "filtered", cwd=folder)
    assert status == 1                          # the two bad files
    return "filtered"


def run(*args, cwd):
    """The command in this process, in ``cwd``: (status, stdout lines, stderr lines
    without the progress lines, which hold times)."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli.main([str(arg) for arg in args])
    finally:
        os.chdir(here)
    lines = [line for line in err.getvalue().splitlines()
             if not re.fullmatch(r"revdeconv \w+ \d+/\d+ \([\d.]+ s\)", line)]
    return status, out.getvalue().splitlines(), lines


def files(folder):
    """Every file under ``folder`` (hidden ones too) by relative path, with its bytes."""
    found = {}
    for current, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(current, name)
            found[os.path.relpath(path, folder)] = open(path, "rb").read()
    return found


def both(cluster, root, *args, out="out", prepare=None):
    """The command plain and on the cluster, each into its own ``out``; both results."""
    results = []
    for name, extra in ((f"{out}-plain", []), (f"{out}-cluster", ["--scheduler",
                                                                   cluster.where()])):
        if prepare is not None:
            prepare(root / name)
        results.append((run(*[a.replace("OUT", name) for a in args], *extra, cwd=root),
                        root / name))
    return results


@pytest.mark.parametrize("options", [[], ["--chunk", "25"], ["--format", "npy"]],
                         ids=["one-chunk", "chunks-of-25", "npy"])
def test_filter_gives_the_plain_files_lines_summary_and_status(cluster, folder, options):
    def earlier_outputs(out):               # a rerun: these are skipped
        out.mkdir()
        for n in (3, 30):
            save_image(out / f"im{n}.png", np.zeros((13, 16, 3)))
    (plain, plain_out), (spread, spread_out) = both(
        cluster, folder, "filter", "in", "--kernel", "blur", "--out", "OUT", *options,
        prepare=earlier_outputs, out="filter-" + "".join(options).strip("-"))
    assert spread == plain
    # the plain order: the chunk's reads first, though the unreadable file lies in a
    # later task than the one too small to filter
    summary = "62 done, 2 failed" if "npy" in options else "60 done, 2 failed, 2 skipped"
    assert plain == (1, [], [
        "revdeconv filter: in/im15_broken.png: not an image file Pillow can read",
        "revdeconv filter: in/a_tiny.png: image of shape (2, 2) is smaller than the 3x3 kernel",
        f"revdeconv filter: {summary} (output exists; --overwrite to redo)"
        if "skipped" in summary else f"revdeconv filter: {summary}"])
    assert files(spread_out) == files(plain_out)


def test_deconvolve_with_a_filter_per_image_gives_the_plain_files(cluster, folder, filtered):
    status, _, _ = run("learn", "--original", "in", "--filtered", filtered,
                       "--out", "set.json", cwd=folder)
    assert status == 0
    (plain, plain_out), (spread, spread_out) = both(
        cluster, folder, "deconvolve", filtered, "--kernel", "set.json",
        "--out", "OUT", out="deconvolved")
    assert spread == plain and plain[0] == 0
    assert files(spread_out) == files(plain_out)


def test_subfolders_mirror_and_filters_by_folder_and_name_as_the_plain_command(cluster,
                                                                                tmp_path):
    # the workers get absolute paths; names (sub/a) and mirrored outputs come from them
    rng = np.random.default_rng(9)
    for sub in ("in", "in/sub", "in/sub/deeper"):
        (tmp_path / sub).mkdir()
        for n in range(9):
            save_image(tmp_path / sub / f"a{n}.png", rng.random((30, 36, 3)))
    assert run("filter", "in", "--recursive", "--kernel", "sharpen", "--out", "sharp",
               cwd=tmp_path)[0] == 0
    assert run("learn", "--original", "in", "--filtered", "sharp", "--recursive", "--out",
               "set.json", cwd=tmp_path)[0] == 0
    for args in (["filter", "in", "--kernel", "blur"],
                 ["deconvolve", "sharp", "--kernel", "set.json"]):
        (plain, plain_out), (spread, spread_out) = both(
            cluster, tmp_path, *args, "--recursive", "--out", "OUT", out=args[0])
        assert spread == plain and plain[0] == 0
        assert files(spread_out) == files(plain_out) and len(files(plain_out)) == 27
        assert "sub/deeper/a8.png" in files(plain_out)


@pytest.mark.parametrize("options", [[], ["--shared"], ["--shared", "--epochs", "2"]],
                         ids=["each", "shared-sgd", "shared-sgd-epochs"])
def test_learn_gives_the_plain_filters_and_lines(cluster, folder, filtered, options):
    args = ["learn", "--original", "in", "--filtered", filtered, *options]
    plain = run(*args, "--out", "plain.json", cwd=folder)
    spread = run(*args, "--out", "spread.json", "--scheduler", cluster.where(), cwd=folder)
    note = [line for line in spread[2] if "note: shared SGD is sequential" in line]
    assert len(note) == ("--shared" in options)
    out = [line.replace("spread.json", "plain.json") for line in spread[1]]
    assert (spread[0], out, [line for line in spread[2] if line not in note]) == plain
    assert (folder / "spread.json").read_bytes() == (folder / "plain.json").read_bytes()


def test_shared_lstsq_is_a_tree_of_sums_within_1e_9_of_the_in_memory_filter(cluster, folder,
                                                                            filtered):
    args = ["learn", "--original", "in", "--filtered", filtered, "--shared",
            "--method", "lstsq", "--bias"]
    plain = run(*args, "--out", "lstsq-plain.json", cwd=folder)
    spread = run(*args, "--out", "lstsq-spread.json", "--scheduler", cluster.where(),
                 cwd=folder)
    assert plain[0] == spread[0] == 0 and plain[2][-1] == spread[2][-1]
    kernels = [np.array(json.loads((folder / name).read_text())["kernel"])
               for name in ("lstsq-plain.json", "lstsq-spread.json")]
    np.testing.assert_allclose(kernels[1], kernels[0], rtol=1e-9, atol=0)
    # and the in-memory filter: grey as three equal channels, alpha dropped, as learn does
    names = sorted(p.stem for p in (folder / filtered).iterdir())
    first = [load_image(folder / "in" / f"{n}.png", alpha="drop") for n in names]
    second = [load_image(folder / filtered / f"{n}.png", alpha="drop")
              for n in names]
    grey = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in first + second]
    whole = learning.learn_filter(grey[:len(names)], grey[len(names):], method="lstsq",
                                  bias=True)
    np.testing.assert_allclose(kernels[1], whole.kernel, rtol=1e-9, atol=1e-12)


def test_warnings_are_reported_where_the_plain_command_reports_them(cluster, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    for n in range(45):
        save_image(tmp_path / "in" / f"im{n}.png", rng.random((20, 24, 3)))
    for name in ("im3_hot", "im40_hot"):        # float pixels past 1: clipped, with a warning
        tifffile.imwrite(tmp_path / "in" / f"{name}.tiff",
                         (2 * rng.random((20, 24, 3))).astype(np.float32))
    (tmp_path / "in" / "im20_broken.png").write_bytes(b"not an image")
    (plain, plain_out), (spread, spread_out) = both(
        cluster, tmp_path, "filter", "in", "--kernel", "blur", "--out", "OUT", out="hot")
    assert spread == plain
    warned = [line for line in plain[2] if ": warning: in/" in line]
    assert [line.split(": ")[2] for line in warned] == ["in/im3_hot.tiff", "in/im40_hot.tiff"]
    assert files(spread_out) == files(plain_out)


def test_grey_sums_count_in_each_colour_channel_as_three_equal_channels():
    from revdeconv._partition import channel_policy
    rng = np.random.default_rng(2)
    grey, colour = rng.random((30, 36)), rng.random((30, 36, 3))
    grey_out, colour_out = (revdeconv.convolve(image, revdeconv.filters.SHARPEN)
                            for image in (grey, colour))
    total, _ = channel_policy({1: learning.normal_equations(grey, grey_out),
                               3: learning.normal_equations(colour, colour_out)}, [], True)
    three = np.repeat(grey[:, :, None], 3, axis=2)
    whole = learning.normal_equations([three, colour], [revdeconv.convolve(
        three, revdeconv.filters.SHARPEN), colour_out])
    np.testing.assert_allclose(total.gram, whole.gram, rtol=1e-12)
    np.testing.assert_allclose(total.solve().kernel, whole.solve().kernel, rtol=1e-9,
                               atol=1e-12)


def _slow_writes(seconds):
    """On a worker: each output takes ``seconds`` to write (inside the atomic write)."""
    import revdeconv.io as io
    real = getattr(io, "_real_write_atomically", io.write_atomically)
    io._real_write_atomically = real

    def slow(path, write):
        def slowly(f):
            write(f)
            time.sleep(seconds)
        return real(path, slowly)
    io.write_atomically = slow if seconds else real
    return os.getpid()


def test_a_worker_killed_mid_run_loses_nothing(cluster, folder):
    reference = run("filter", "in", "--kernel", "blur", "--out", "killed-plain", cwd=folder)
    victim = sorted(cluster.client.nthreads())[0]
    pid = cluster.client.run(_slow_writes, 0.5, workers=[victim])[victim]
    command = [sys.executable, "-m", "revdeconv", "filter", "in", "--kernel", "blur",
               "--out", "killed", "--scheduler", cluster.where()]
    try:
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline, seen = time.time() + TIMEOUT, {}
        while True:         # until the slow worker has been inside a write for 0.1 s
            assert time.time() < deadline and process.poll() is None, process.stderr.read()
            names = os.listdir(folder / "killed") if (folder / "killed").is_dir() else []
            now = time.time()
            seen = {name: seen.get(name, now) for name in names if ".revdeconv-" in name}
            if any(now - since > 0.1 for since in seen.values()):
                break
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)        # in the middle of a task, inside a write
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        cluster.client.run(_slow_writes, 0)
    lines = [line for line in err.splitlines() if not re.search(r"\d+/\d+ \(", line)]
    assert (process.returncode, out.splitlines(), lines) == reference
    assert pid not in cluster.client.run(os.getpid).values()            # it was restarted
    # every input once: no output lost, none twice, and no temporary file left behind
    assert files(folder / "killed") == files(folder / "killed-plain")


def test_nothing_imports_dask_without_scheduler(folder):
    code = ("import sys\nfrom revdeconv import cli\n"
            "status = cli.main(['filter', 'in', '--kernel', 'blur', '--out', 'no-dask', "
            "'--quiet'])\n"
            "print(status, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed', 'cloudpickle', 'tornado')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.stdout.split("\n")[0] == "1 []", done.stderr


def test_a_local_cluster_leaves_this_process_environment_and_threads_alone(tmp_path):
    # distributed's nannies write OMP_NUM_THREADS=1 (and more) into the environment of
    # the process hosting them; a package imported there afterwards would run on one
    # thread. local:N hosts them in a process of its own.
    code = (
        "import os, subprocess, sys\n"
        "from revdeconv import _cluster\n"
        "before = dict(os.environ)\n"
        "cluster = _cluster.Cluster('local:1')\n"
        "cluster.client\n"
        "changed = sorted(k for k in set(before) | set(os.environ)\n"
        "                 if before.get(k) != os.environ.get(k))\n"
        "later = subprocess.run([sys.executable, '-c', 'import revdeconv; "
        "print(revdeconv.config()[\"threads\"])'], capture_output=True, text=True)\n"
        "print(changed, later.stdout.strip(), list(cluster.facts.values())[0]['threads'])\n"
        "cluster.close()\n")
    environment = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=tmp_path, env=environment)
    assert done.returncode == 0, done.stderr
    expected = revdeconv._threads.default_threads() if "OMP_NUM_THREADS" not in os.environ \
        else None
    changed, threads, worker = done.stdout.split("] ")[0] + "]", *done.stdout.split()[-2:]
    assert changed == "[]"                      # the environment is as it was
    assert worker == "1"                        # a worker: one thread (--threads says more)
    if expected is not None:
        assert int(threads) == expected         # a package imported later: every thread


def _claim_version(version):
    from revdeconv import _version
    previous = getattr(_version, "_real_version", _version.__version__)
    _version._real_version = previous
    _version.__version__ = version or previous
    return previous


def test_info_reports_each_worker_and_refuses_another_version(cluster, tmp_path):
    status, out, _ = run("info", "--scheduler", cluster.where(), cwd=tmp_path)
    workers = [line for line in out if line.startswith("  tcp://")]
    assert status == 0 and len(workers) == 2
    assert all(f"revdeconv {revdeconv.__version__}, backend " in line and "OpenMP " in line
               and "threads " in line for line in workers)
    first = sorted(cluster.client.nthreads())[0]
    cluster.client.run(_claim_version, "0.0.1", workers=[first])
    try:
        status, _, err = run("info", "--scheduler", cluster.where(), cwd=tmp_path)
    finally:
        cluster.client.run(_claim_version, None, workers=[first])
    assert status != 0
    assert err == [f"revdeconv info: error: --scheduler: the workers must run revdeconv "
                   f"{revdeconv.__version__}, as here: {first} has 0.0.1; install the same "
                   f"version on every worker"]


def test_a_scheduler_file_names_the_cluster_and_a_missing_one_is_an_error(cluster, tmp_path):
    cluster.client.write_scheduler_file(str(tmp_path / "scheduler.json"))
    status, out, _ = run("info", "--scheduler-file", "scheduler.json", cwd=tmp_path)
    assert status == 0 and len([line for line in out if line.startswith("  tcp://")]) == 2
    status, _, err = run("filter", "in", "--kernel", "blur", "--out", "o",
                         "--scheduler-file", "missing.json", cwd=tmp_path)
    assert status == 2 and err == ["revdeconv filter: error: --scheduler-file: there is no "
                                   "file 'missing.json' (a scheduler writes it: dask "
                                   "scheduler --scheduler-file PATH)"]


@pytest.mark.parametrize("value", ["remote", "local:0", "local:x", "tcp://"])
def test_a_bad_scheduler_is_refused_before_anything_runs(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as stop:
        cli.main(["filter", str(tmp_path), "--kernel", "blur", "--out", str(tmp_path / "o"),
                  "--scheduler", value])
    assert stop.value.code == 2
    assert "argument --scheduler: expected local, local:N" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")


def test_partitions_cut_the_plain_chunks_into_20_to_64_files(tmp_path):
    from revdeconv._partition import partitions
    from revdeconv._runner import Run
    files = []
    for n in range(300):
        path = tmp_path / f"{n}.npy"
        np.save(path, np.zeros((10, 10)))
        files.append(str(path))
    parts = partitions(Run("filter", chunk=100), files, slots=2)
    assert [p.stop - p.start for p in parts] == [25] * 12       # 3 chunks of 100, 4 parts each
    assert [p.chunk for p in parts] == [n // 4 for n in range(12)]
    parts = partitions(Run("filter"), files, slots=2)
    assert {p.stop - p.start for p in parts} == {60} and parts[-1].stop == 300
    assert len(partitions(Run("filter"), files[:30], slots=8)) == 1    # never under 20

