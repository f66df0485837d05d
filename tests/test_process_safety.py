"""What running the package under threads, worker processes and killed processes needs:
no process-wide state changed to write a file, values and errors that cross a process
boundary through pickle, and no temporary file left behind by a process killed midway."""

import importlib
import os
import pickle
import pkgutil
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import revdeconv
from revdeconv import cli
from revdeconv.io import remove_stale_temporaries, save_array, save_image, write_atomically


# -- the umask -----------------------------------------------------------------------

def _umask():
    """This process's umask without changing it (Linux: /proc), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_threads_writing_at_once_leave_the_umask_and_give_files_its_mode(tmp_path):
    # Learning the umask by setting it (os.umask(0), then back) is a window in which
    # every file any thread creates is world-writable, and, where two threads' windows
    # overlap, one thread's "back" restores the other's 0 for good.
    reference = tmp_path / "reference"
    reference.touch()
    mode, mask = reference.stat().st_mode & 0o777, _umask()
    image, stop = np.zeros((4, 4)), threading.Event()

    def write(n):
        for trial in range(200):
            save_array(tmp_path / f"{n}-{trial}.npy", image)

    def create(n):                  # other threads creating files meanwhile (as Pillow,
        count = 0                   # or os.makedirs, do: the system applies the umask)
        while not stop.is_set():
            with open(tmp_path / f"plain-{n}-{count}", "wb"):
                count += 1
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)     # threads take turns as often as they can
    creators = [threading.Thread(target=create, args=(n,)) for n in range(1)]
    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    try:
        for thread in creators + writers:
            thread.start()
        for thread in writers:
            thread.join()
    finally:
        stop.set()
        for thread in creators:
            thread.join()
        sys.setswitchinterval(switching)
    if mask is not None:
        assert _umask() == mask
    modes = {}
    for path in tmp_path.iterdir():
        modes.setdefault(oct(path.stat().st_mode & 0o777), []).append(path.name)
    assert list(modes) == [oct(mode)], {m: names[:3] for m, names in modes.items()}


def test_writing_a_file_never_sets_the_umask(tmp_path, monkeypatch):
    # Under the GIL the window above is short (two calls): rare to catch in the act,
    # so the rule itself is tested: no process-wide state is set to write a file.
    calls = []
    monkeypatch.setattr(os, "umask", lambda *args: calls.append(args) or 0o022)
    save_array(tmp_path / "a.npy", np.zeros((2, 2)))
    save_image(tmp_path / "a.png", np.zeros((2, 2, 3)))
    save_image(tmp_path / "b.png", np.zeros((2, 2, 3)), bits=16)      # this package's writer
    save_image(tmp_path / "a.tiff", np.zeros((2, 2, 3)))
    write_atomically(tmp_path / "a.bin", lambda f: f.write(b"x"))
    assert calls == []


# -- pickle --------------------------------------------------------------------------

#: Every exception class of the package, with the arguments of an instance (a new
#: class must be added here, and to the fresh process's classes below).
EXCEPTION_ARGS = {
    "ImageReadError": ("in/a.png", "not an image file Pillow can read"),
    "_PageError": ("page 3 of a 2-page file",),
    "Interrupted": (),
    "_Unreadable": (),
}
EXCEPTIONS = sorted(EXCEPTION_ARGS)


def _package_exceptions():
    found = {}
    for info in pkgutil.iter_modules(revdeconv.__path__, prefix="revdeconv."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:         # an optional dependency missing (chunked: dask)
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) \
                    and value.__module__.startswith("revdeconv"):
                found[value.__name__] = value
    return found


def test_every_exception_of_the_package_is_listed_here():
    assert set(_package_exceptions()) == set(EXCEPTIONS)


def test_every_exception_round_trips_through_plain_pickle():
    # In a fresh process: importing dask or distributed installs tblib's pickling of
    # every exception class, which hides an exception that plain pickle cannot rebuild.
    code = ("import pickle, sys\n"
            "from revdeconv import _codecs, _runner, io\n"
            "assert 'tblib' not in sys.modules\n"
            "classes = {'ImageReadError': io.ImageReadError, '_PageError': _codecs._PageError,\n"
            "           'Interrupted': _runner.Interrupted, '_Unreadable': _runner._Unreadable}\n"
            f"samples = {EXCEPTION_ARGS!r}\n"
            "for name, cls in sorted(classes.items()):\n"
            "    error = cls(*samples[name])\n"
            "    try:\n"
            "        again = pickle.loads(pickle.dumps(error))\n"
            "    except Exception as exc:\n"
            "        print(name, 'fails:', exc)\n"
            "        continue\n"
            "    same = (type(again), str(again), again.args, vars(again)) == \\\n"
            "        (type(error), str(error), error.args, vars(error))\n"
            "    print(name, 'round-trips' if same else 'changes')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{name} round-trips" for name in sorted(EXCEPTIONS)]


def _same(first, second):
    """Equal, field by field, arrays by value."""
    if isinstance(first, np.ndarray):
        return isinstance(second, np.ndarray) and first.dtype == second.dtype \
            and np.array_equal(first, second, equal_nan=True)
    if hasattr(first, "__dataclass_fields__") or hasattr(first, "_fields"):
        names = getattr(first, "_fields", None) or first.__dataclass_fields__
        return type(first) is type(second) and all(
            _same(getattr(first, n), getattr(second, n)) for n in names)
    return first == second and type(first) is type(second)


def _values(tmp_path):
    from revdeconv import learning
    from revdeconv._pixels import Page
    from revdeconv.io import read_image
    from revdeconv.kernel_file import load_kernel, save_kernel
    rng = np.random.default_rng(3)
    image = rng.random((30, 36, 3))
    filtered = revdeconv.convolve(image, revdeconv.filters.BLUR)
    result = revdeconv.learn_filter(image, filtered)
    path = tmp_path / "k.json"
    save_kernel(path, result)
    save_image(tmp_path / "a.png", np.ones((2, 3, 4)))
    return {"FilterResult": result,
            "NormalEquations": learning.normal_equations(image, filtered, bias=True),
            "KernelSpec": load_kernel(path),
            "Picture": read_image(tmp_path / "a.png"),
            "Page": Page("in/scan.tif", 1, 3)}


@pytest.mark.parametrize("name", ["FilterResult", "NormalEquations", "KernelSpec", "Picture",
                                  "Page"])
def test_values_that_cross_to_workers_round_trip_through_pickle(tmp_path, name):
    value = _values(tmp_path)[name]
    again = pickle.loads(pickle.dumps(value))
    assert _same(again, value)


def test_a_page_keeps_its_page_through_pickle():
    from revdeconv._pixels import Page
    page = pickle.loads(pickle.dumps(Page("in/scan.tif", 1, 3)))
    assert (f"{page}", page.stem, page.page, page.pages) == ("in/scan.tif (page 2 of 3)",
                                                             "scan_p2", 1, 3)


def test_a_run_crosses_without_its_stream_and_with_absolute_paths(tmp_path, monkeypatch):
    from revdeconv._runner import Run
    monkeypatch.chdir(tmp_path)
    run = Run("filter", out="out")
    run._rel["in/sub/a.png"] = "sub"
    again = pickle.loads(pickle.dumps(run))
    assert again.stream is None and again.cluster is None
    assert again.out == str(tmp_path / "out")
    assert again.output_path(str(tmp_path / "in" / "sub" / "a.png")) == \
        str(tmp_path / "out" / "sub" / "a.png")


# -- temporaries a killed process left ----------------------------------------------

def _old(path, age=3600):
    path.write_bytes(b"\x89PNG half an image")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_a_run_removes_the_temporaries_of_its_outputs_that_a_killed_process_left(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        save_image(tmp_path / "in" / f"{name}.png", np.full((6, 6, 3), 0.5))
    out = tmp_path / "out"
    out.mkdir()
    stale = _old(out / ".a.png.revdeconv-0123abcd")
    kept = [_old(out / ".a.png.5j7mxcub"),                 # another program's temporary
            _old(out / ".c.png.revdeconv-0123abcd"),       # not an output of this run
            _old(out / "a.png.revdeconv-0123abcd"),        # not hidden: not ours
            out / ".b.png.revdeconv-89abcdef"]             # newer than the run: in use
    kept[-1].write_bytes(b"being written")
    os.utime(kept[-1], (time.time() + 3600, time.time() + 3600))
    assert cli.main(["filter", str(tmp_path / "in"), "--kernel", "blur", "--out", str(out),
                     "--quiet"]) == 0
    assert not stale.exists()
    assert all(path.exists() for path in kept)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["a.png", "a.png.revdeconv-0123abcd", "b.png"]


def test_what_a_killed_writer_leaves_is_what_the_next_run_removes(tmp_path):
    (tmp_path / "in").mkdir()
    save_image(tmp_path / "in" / "a.png", np.full((6, 6, 3), 0.5))
    (tmp_path / "out").mkdir()
    code = ("import time\nfrom revdeconv.io import write_atomically\n"
            "write_atomically('out/a.png', lambda f: (f.write(b'half'), f.flush(), "
            "time.sleep(60)))\n")
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while not [n for n in os.listdir(tmp_path / "out") if n.startswith(".a.png.")]:
            assert time.time() < deadline and writer.poll() is None
            time.sleep(0.01)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    left = os.listdir(tmp_path / "out")
    assert len(left) == 1 and re.fullmatch(r"\.a\.png\.revdeconv-[0-9a-f]{8}", left[0])
    time.sleep(0.05)                        # (file times may be coarse)
    assert cli.main(["filter", str(tmp_path / "in"), "--kernel", "blur",
                     "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert os.listdir(tmp_path / "out") == ["a.png"]


def test_remove_stale_temporaries_removes_only_those_of_the_paths_given(tmp_path):
    stale = _old(tmp_path / ".x.tiff.revdeconv-deadbeef")
    other = _old(tmp_path / ".y.tiff.revdeconv-deadbeef")
    assert remove_stale_temporaries([tmp_path / "x.tiff", tmp_path / "none" / "z.png"],
                                    time.time()) == [str(stale)]
    assert not stale.exists() and other.exists()


def test_write_atomically_names_its_temporary_as_the_sweep_expects(tmp_path):
    seen = []
    write_atomically(tmp_path / "a.npy", lambda f: seen.extend(os.listdir(tmp_path)))
    assert len(seen) == 1 and re.fullmatch(r"\.a\.npy\.revdeconv-[0-9a-f]{8}", seen[0])
    assert os.listdir(tmp_path) == ["a.npy"]
