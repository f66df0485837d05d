"""Past one machine, measured: the figures of the README's "Past one machine".

1. ``large``: a 20000x20000x3 float32 image (4.5 GiB) convolved chunk by chunk
   (``revdeconv.chunked.convolve``, 3x3, stride 3 and stride 1) from a source that
   never exists whole (``dask.array`` random chunks, made where they are used),
   reduced to its sum on a ``local:N`` cluster; time, and the peak resident memory
   (``VmHWM``) of this process (the client) and of each worker; a band of the
   result checked against the in-memory ``revdeconv.convolve``, bit for bit.
2. ``folder``: ``revdeconv filter`` over a folder of 180x250 RGB PNG files (the
   bundled samples, repeated), plain (1 and 2 threads) and ``--scheduler`` on
   ``local:N`` (started beforehand; its start timed apart): images per second,
   and the overhead per task (the workers' time beyond the plain command's
   one-thread time, per task).
3. ``lstsq``: ``learn --shared --method lstsq`` over that folder, plain and on the
   cluster: the largest relative difference of the two kernels.

    python bench/cluster.py                          # all three (a few minutes)
    python bench/cluster.py --only folder --files 200
    python bench/cluster.py --size 4000 --out figures.md
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import revdeconv
from revdeconv import _cluster, cli, data
from revdeconv.io import save_image


def vm_hwm_mib():
    """This process's peak resident memory (Linux ``VmHWM``), in MiB; None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status
                        if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return None


def quiet(function, *args):
    """``function(*args)`` with its standard output and error kept: (value, err)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        value = function(*args)
    return value, err.getvalue()


def reset_peak():
    """Start this process's ``VmHWM`` afresh (Linux 4.0+); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def large(size, workers, strides, chunk_mib):
    """Figure 1: one convolution per stride, each on a fresh cluster."""
    import dask.array as da
    from revdeconv import chunked
    rows = []
    for stride in strides:
        reset = reset_peak()
        started = time.perf_counter()
        cluster = _cluster.Cluster(f"local:{workers}")
        client = cluster.client
        startup = time.perf_counter() - started
        chunks = chunked.aligned_chunks((size, size, 3), 3, stride,
                                        target_bytes=chunk_mib * 2**20)
        source = da.random.default_rng(0).random((size, size, 3), dtype=np.float32,
                                                 chunks=chunks)
        result = chunked.convolve(source, revdeconv.filters.BLUR, stride=stride)
        start = time.perf_counter()
        total = client.compute(result.sum(dtype=np.float64)).result()
        seconds = time.perf_counter() - start
        client_peak, workers_peak = vm_hwm_mib(), client.run(vm_hwm_mib)
        # a band, checked against the in-memory function on the same source pixels
        band = client.compute(source[:300]).result()
        expected = revdeconv.convolve(band, revdeconv.filters.BLUR, stride=stride)
        got = client.compute(result[:expected.shape[0]]).result()
        cluster.close()
        rows.append({
            "stride": stride, "image": f"{size}x{size}x3 float32",
            "image_gib": size * size * 3 * 4 / 2**30, "output": list(result.shape),
            "chunks": f"{len(chunks[0])} row bands of {chunks[0][0]} rows "
                      f"({chunks[0][0] * size * 3 * 4 / 2**20:.0f} MiB)",
            "seconds": seconds, "startup_seconds": startup,
            "megapixels_per_second": size * size / seconds / 1e6,
            "sum": total, "band_identical": bool(np.array_equal(got, expected)),
            "client_peak_mib": client_peak, "client_peak_since": "this stride" if reset
            else "the start of the process",
            "worker_peak_mib": sorted(workers_peak.values())})
    return rows


def make_folder(root, files):
    """``files`` 180x250 RGB PNG files: the ten bundled samples, repeated."""
    folder = os.path.join(root, "originals")
    os.makedirs(folder)
    samples = data.samples()
    for n in range(files):
        save_image(os.path.join(folder, f"{n:05d}.png"), samples[n % len(samples)])
    return folder


def timed(argv):
    start = time.perf_counter()
    status, err = quiet(cli.main, argv)
    assert status == 0, err
    return time.perf_counter() - start


def folder(root, files, workers, repeat):
    """Figures 2 and 3 on one cluster; each time the best of ``repeat`` runs, the plain
    and the cluster runs taking turns (the machine is shared: its load comes and goes)."""
    from distributed import get_task_stream
    from revdeconv._partition import partitions
    from revdeconv._runner import Run
    originals = make_folder(root, files)
    common = ["--kernel", "blur", "--quiet"]
    started = time.perf_counter()
    cluster = _cluster.Cluster(f"local:{workers}")
    cluster.client                                          # noqa: B018
    out = {"cluster_start_seconds": time.perf_counter() - started}
    noop = [cluster.client.submit(int, n, pure=False) for n in range(200)]
    start = time.perf_counter()
    cluster.client.gather(noop)
    out["empty_task_ms"] = (time.perf_counter() - start) / len(noop) * 1e3
    runs = {"plain_1_thread": ["--threads", "1"], "plain_2_thread": ["--threads", "2"],
            "cluster": ["--scheduler", cluster.where()]}
    best, busy = {name: float("inf") for name in runs}, None
    for attempt in range(repeat):
        for name, extra in runs.items():
            target = os.path.join(root, f"{name}-{attempt}")
            with get_task_stream(client=cluster.client) as stream:
                seconds = timed(["filter", originals, *common, "--out", target, *extra])
            if name == "cluster" and attempt == 0:
                out["cluster_first_seconds"] = seconds
            if seconds < best[name]:
                best[name] = seconds
                if name == "cluster":
                    busy = sum(part["stop"] - part["start"] for task in stream.data
                               if "process_part" in str(task["key"])
                               for part in task["startstops"] if part["action"] == "compute")
    out.update({f"{name}_seconds": seconds for name, seconds in best.items()})
    out["worker_busy_seconds"], out["repeat"] = busy, repeat
    target = os.path.join(root, "cluster-0")
    tasks = len(partitions(Run("filter", output_scale=1 / 9), sorted(
        os.path.join(originals, name) for name in os.listdir(originals)), workers))
    out["tasks"] = tasks
    plain = os.path.join(root, "plain_1_thread-0")
    same = all(open(os.path.join(plain, name), "rb").read()
               == open(os.path.join(target, name), "rb").read() for name in os.listdir(plain))
    out["outputs_identical"] = same
    for key in ("plain_1_thread", "plain_2_thread", "cluster"):
        out[f"{key}_images_per_second"] = files / out[f"{key}_seconds"]
    # around the tasks: the wall time beyond the workers' busy time (the client's plan
    # and report, dispatch), per task; in them: the workers' time against the plain
    # command's on one thread (the same work, the same loop)
    out["outside_tasks_seconds"] = out["cluster_seconds"] - out["worker_busy_seconds"] / workers
    out["overhead_per_task_ms"] = out["outside_tasks_seconds"] / tasks * 1e3
    out["in_tasks_per_task_ms"] = (out["worker_busy_seconds"]
                                   - out["plain_1_thread_seconds"]) / tasks * 1e3
    # 3: one least-squares filter over the folder, plain and as a tree of sums
    kernels = []
    for name, extra in (("plain", []), ("spread", ["--scheduler", cluster.where()])):
        path = os.path.join(root, f"lstsq-{name}.json")
        out[f"lstsq_{name}_seconds"] = timed(["learn", "--original", originals, "--filtered",
                                              plain, "--shared",
                                              "--method", "lstsq", "--out", path, "--quiet",
                                              *extra])
        with open(path) as f:
            kernels.append(np.array(json.load(f)["kernel"]))
    out["lstsq_max_relative_difference"] = float(
        np.max(np.abs(kernels[1] - kernels[0])) / np.max(np.abs(kernels[0])))
    # the Gram matrix's condition number: the folder is the ten samples repeated, and
    # repeating pairs scales the sums, not their condition
    from revdeconv.learning import normal_equations
    samples = data.samples()
    filtered = [revdeconv.convolve(image, revdeconv.filters.BLUR) for image in samples]
    out["lstsq_condition"] = float(normal_equations(samples, filtered).condition().max())
    cluster.close()
    return out


def markdown(figures, argv):
    lines = [f"`python bench/cluster.py {' '.join(argv)}` (revdeconv {revdeconv.__version__}, "
             f"{os.cpu_count()} CPUs)", ""]
    for row in figures.get("large", []):
        lines.append(
            f"- large, 3x3 stride {row['stride']}: {row['image']} ({row['image_gib']:.1f} GiB, "
            f"never whole; {row['chunks']}) -> {row['output'][0]}x{row['output'][1]}x3, "
            f"reduced: {row['seconds']:.1f} s ({row['megapixels_per_second']:.1f} Mpixel/s; "
            f"cluster start {row['startup_seconds']:.1f} s); peak memory: client "
            f"{row['client_peak_mib']:.0f} MiB, workers "
            f"{', '.join(f'{m:.0f}' for m in row['worker_peak_mib'])} MiB; a band "
            f"{'bit-identical' if row['band_identical'] else 'DIFFERENT'} to the in-memory call")
    if "folder" in figures:
        f = figures["folder"]
        lines += [
            f"- folder, {f['files']} PNG 180x250 RGB, `filter --kernel blur` (best of "
            f"{f['repeat']}): plain "
            f"{f['plain_1_thread_images_per_second']:.0f} images/s on 1 thread, "
            f"{f['plain_2_thread_images_per_second']:.0f} on 2; `--scheduler` on local:"
            f"{f['workers']} (1 thread each, started beforehand in "
            f"{f['cluster_start_seconds']:.1f} s) {f['cluster_images_per_second']:.0f} images/s "
            f"in {f['tasks']} tasks (the first run on the fresh workers: "
            f"{f['files'] / f['cluster_first_seconds']:.0f} images/s); overhead "
            f"{f['overhead_per_task_ms']:.0f} ms per task ({f['outside_tasks_seconds']:.2f} s "
            f"of wall time outside the tasks: the client's plan and report, dispatch; 200 "
            f"empty tasks {f['empty_task_ms']:.1f} ms each); in the tasks "
            f"{f['worker_busy_seconds']:.2f} s of worker time against "
            f"{f['plain_1_thread_seconds']:.2f} s for the plain command on 1 thread "
            f"({f['in_tasks_per_task_ms']:+.0f} ms a task); outputs "
            f"{'identical' if f['outputs_identical'] else 'DIFFERENT'}",
            f"- shared lstsq over that folder: plain {f['lstsq_plain_seconds']:.2f} s, tree of "
            f"sums {f['lstsq_spread_seconds']:.2f} s; kernels differ by "
            f"{f['lstsq_max_relative_difference']:.1e} relative (stated: about 1e-9; the Gram "
            f"matrix's condition number {f['lstsq_condition']:.1e}, sums over "
            f"{f['files'] * 60 * 83 / 1e6:.1f} million blocks a channel)"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("large", "folder"), help="one part (default both)")
    parser.add_argument("--size", type=int, default=20000, help="the large image's side")
    parser.add_argument("--strides", type=int, nargs="+", default=[3, 1])
    parser.add_argument("--chunk-mib", type=int, default=64, help="large: chunk size")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="folder: the best of N runs")
    parser.add_argument("--out", metavar="FILE.md", help="also write the figures here")
    parser.add_argument("--json", metavar="FILE.json")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    figures = {}
    if args.only in (None, "large"):
        figures["large"] = large(args.size, args.workers, args.strides, args.chunk_mib)
    if args.only in (None, "folder"):
        root = tempfile.mkdtemp(prefix="revdeconv-cluster-")
        try:
            figures["folder"] = dict(folder(root, args.files, args.workers, args.repeat),
                                     files=args.files, workers=args.workers)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    text = markdown(figures, argv)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
