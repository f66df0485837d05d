"""The commands' ``--scheduler``: a folder's files in partitions on a Dask cluster.

``revdeconv filter | learn | deconvolve ... --scheduler tcp://HOST:PORT`` (or
``--scheduler-file PATH``, or ``local`` / ``local:N`` for a cluster of N worker
processes started for the command) runs the per-file chain of
:class:`revdeconv._runner.Run` on the cluster's workers:

- The client expands the inputs, refuses outputs that would replace them and
  skips outputs that exist, as without ``--scheduler``; it then cuts the files
  into the chunks the plain command reads at once (by ``--memory`` and
  ``--chunk``, from the headers) and each chunk into partitions of 20 to 64
  files (:func:`revdeconv._partition.partitions`): a task per file would cost
  more than it computes.
- A task runs the plain command's own loop (``Run.work``, ``map_work``,
  ``fold_work``) on its partition, in one compiled call per step, writes each
  output atomically, and returns small records
  (:class:`revdeconv._partition.Record`): each input done or failed and why,
  each warning, where the plain command would print it, and for ``learn`` the
  filter. Paths go to workers absolute (a worker has its own working folder)
  and come back as the command line named them. A task run twice (a worker
  killed midway: distributed runs it again) writes the same files again and
  returns the same records; what the killed one left half-written is removed.
- The client reports the records chunk by chunk in the plain command's order,
  so the error lines, the summary and the exit status are those of the
  command without ``--scheduler``, and the output files are the same bytes.

``learn --shared --method lstsq`` adds each partition's normal equations
(:func:`revdeconv.learning.normal_equations`) pairwise as a tree on the cluster
and solves the sum once: the filter agrees with the in-memory one to about
``condition() * 1e-16`` relative (1e-9 unless the Gram matrix's condition number
exceeds 1e7; see :class:`revdeconv.learning.NormalEquations`). Shared SGD is
sequential by definition: it runs as a chain of tasks, one at a time, each
starting from the filter the previous one left, and gains nothing from the cluster.

``local:N`` starts the scheduler and its N worker processes in a process of their
own: distributed's nannies write ``OMP_NUM_THREADS=1`` and more into the
environment of the process that hosts them, and this one's stays as it was.
Each worker runs one task at a time on ``--threads`` OpenMP threads (default 1).

dask and distributed are imported only here, and only when a cluster is used
(``pip install "revdeconv[dask]"``).
"""

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings

from ._partition import (Part, Record, added, channel_policy, fold_part, map_part, nth,
                         partitions, paths, process_part, sum_part, unpack, worker_facts)
from ._pixels import absolute, key
from ._threads import available_cpus
from .io import remove_stale_temporaries

#: Seconds to wait for a scheduler.
CONNECT_TIMEOUT = 30
INSTALL = 'pip install "revdeconv[dask]"'


# -- options ------------------------------------------------------------------------

def scheduler(value):
    """``--scheduler``: ``local``, ``local:N`` (N worker processes) or an address.

    Examples
    --------
    >>> scheduler("local"), scheduler("local:4"), scheduler("tcp://10.0.0.5:8786")
    ('local', 'local:4', 'tcp://10.0.0.5:8786')
    """
    text = value.strip()
    head, _, count = text.partition(":")
    if head.lower() == "local" and (not count or (count.isdigit() and int(count) >= 1)):
        return text.lower()
    if "://" in text and text.split("://", 1)[1]:
        return text
    raise argparse.ArgumentTypeError(
        f"expected local, local:N (N worker processes, at least 1) or a scheduler's "
        f"address such as tcp://HOST:8786, got {value!r}")


def add_options(parser):
    """``--scheduler`` and ``--scheduler-file`` (one or the other)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scheduler", metavar="ADDRESS", type=scheduler,
                       help="run on a Dask cluster: tcp://HOST:PORT, or local[:N] for N "
                       "worker processes started here (default: a worker per core, "
                       "--threads each); the same files, lines and status as without it "
                       "(learn --shared --method lstsq: the filter to about 1e-9 "
                       "relative; shared SGD runs as a chain and gains nothing); needs "
                       f"{INSTALL}")
    group.add_argument("--scheduler-file", metavar="PATH",
                       help="run on the Dask cluster this scheduler file names")


@contextlib.contextmanager
def session(args):
    """``args.cluster``: the :class:`Cluster` the options name (connected on first
    use, closed after the command), or None."""
    address, path = getattr(args, "scheduler", None), getattr(args, "scheduler_file", None)
    if path and not os.path.isfile(path):      # (distributed would wait for it forever)
        raise ValueError(f"--scheduler-file: there is no file {path!r} (a scheduler writes "
                         f"it: dask scheduler --scheduler-file PATH)")
    cluster = (Cluster(address, scheduler_file=path, threads=getattr(args, "threads", None))
               if address or path else None)
    args.cluster = cluster
    try:
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()


def lstsq_parts(options, solve):
    """``Run.fold_pairs``'s ``parts`` for one least-squares filter over all pairs: each
    partition's normal equations (``options``: those of ``learn``), and the filter
    ``solve(total)`` gives (an exception in its place fails the pairs)."""
    names = ("kernel_size", "stride", "bias", "activation", "n_threads")

    def part(originals, filtered):
        from .learning import normal_equations
        try:
            return normal_equations(originals, filtered, **{name: options[name]
                                                             for name in names})
        except ValueError as exc:       # the option as the command line names it
            raise ValueError(str(exc).replace("kernel_size", "--kernel-size")) from None

    def result(total):
        value = solve(total)
        if isinstance(value, Exception):
            raise value
        return value
    return part, result


# -- the client -----------------------------------------------------------------------

class Cluster:
    """A Dask cluster the command runs on: ``address`` (``local``, ``local:N`` or a
    scheduler's address) or ``scheduler_file``; connected on first use, when every
    worker's revdeconv must be this one's version."""

    def __init__(self, address=None, *, scheduler_file=None, threads=None):
        self.address, self.scheduler_file = address, scheduler_file
        # local: each worker's OpenMP threads (--threads; a negative count from all cores)
        cpus = available_cpus()
        self.threads = 1 if threads is None else threads if threads > 0 \
            else max(cpus + 1 + threads, 1)
        self._client = self._server = self.facts = None

    def __reduce__(self):       # a command's options travel to workers; its cluster does not
        return _nothing, ()

    # -- connecting ----------------------------------------------------------------
    @property
    def client(self):
        """The distributed Client, connected (and the workers' versions checked)."""
        if self._client is None:
            client = self._connect()
            try:
                self.facts = self._check(client)
            except BaseException:
                client.close()
                raise
            self._client = client
        return self._client

    def _connect(self):
        try:
            from distributed import Client
        except ImportError:
            raise ValueError(f"--scheduler needs dask and distributed: {INSTALL}") from None
        where = self.scheduler_file or self.address
        try:
            if self.scheduler_file:
                return Client(scheduler_file=self.scheduler_file, timeout=CONNECT_TIMEOUT,
                              set_as_default=False)
            address = self.address
            if address.startswith("local"):
                count = address.partition(":")[2]
                self._server = _LocalServer(int(count) if count else
                                            max(1, available_cpus() // self.threads),
                                            self.threads)
                address = self._server.address
            return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            option = "--scheduler-file" if self.scheduler_file else "--scheduler"
            raise ValueError(f"{option}: cannot connect to {where}: {exc}") from None

    def _check(self, client):
        from ._version import __version__
        try:
            facts = client.run(worker_facts)
        except Exception as exc:        # noqa: BLE001 (a worker without revdeconv, ...)
            raise ValueError(f"--scheduler: the workers cannot run revdeconv "
                             f"{__version__}: {type(exc).__name__}: {exc}") from None
        if not facts:
            raise ValueError(f"--scheduler: the scheduler at {self.where()} has no workers")
        other = {address: fact["version"] for address, fact in facts.items()
                 if fact["version"] != __version__}
        if other:
            listed = ", ".join(f"{address} has {version}" for address, version in other.items())
            raise ValueError(f"--scheduler: the workers must run revdeconv {__version__}, "
                             f"as here: {listed}; install the same version on every worker")
        return facts

    def where(self):
        return self._server.address if self._server else self.scheduler_file or self.address

    def slots(self):
        """Tasks the cluster runs at once."""
        return max(1, sum(self.client.nthreads().values()))

    def show_workers(self, file=None):
        """``revdeconv info --scheduler``: one line per worker; the exit status."""
        self.client         # noqa: B018 (connects, and checks the versions)
        print(f"cluster at {self.where()}: {len(self.facts)} workers", file=file)
        for address, fact in sorted(self.facts.items()):
            print(f"  {address}: revdeconv {fact['version']}, backend {fact['backend']}, "
                  f"OpenMP {'yes' if fact['openmp'] else 'no'}, threads {fact['threads']}, "
                  f"python {fact['python']} (pid {fact['pid']} on {fact['host']})", file=file)
        return 0

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- running ---------------------------------------------------------------------
    def _job(self, *values):
        """The run and its functions pickled once (cloudpickle: closures travel), held
        by one task that the scheduler can compute again, copied to every worker."""
        import cloudpickle
        client = self.client
        try:
            blob = cloudpickle.dumps(values)
        except Exception as exc:        # noqa: BLE001
            raise ValueError(f"--scheduler: cannot send the command to the workers: "
                             f"{exc}") from None
        job = client.submit(unpack, blob, key=f"revdeconv-job-{uuid.uuid4().hex}")
        client.replicate([job])     # on every worker: a task goes where there is room,
        return job                  # not where the job lies

    def _submit(self, function, job, items, parts, *extra):
        client, tag = self.client, uuid.uuid4().hex
        return [client.submit(function, job, _absolute(items[part.start:part.stop]), *extra,
                              key=f"revdeconv-{function.__name__}-{n}-{tag}",
                              priority=len(parts) - n, pure=False)
                for n, part in enumerate(parts)]

    def process(self, run, todo, compute, attach):
        """``Run.process`` on the cluster: the pending files in partitions."""
        if todo:
            parts = partitions(run, todo, self.slots())
            futures = self._submit(process_part, self._job(run, compute, attach), todo, parts)
            self._replay(run, todo, parts, self._gather(todo, parts, futures))
        # what a worker killed while writing left (its task ran again elsewhere)
        remove_stale_temporaries([run.output_path(path) for path in todo], time.time())

    def map_pairs(self, run, pairs, compute, prepare):
        """``Run.map_pairs`` on the cluster; the filters by name, in the plain order."""
        parts = partitions(run, pairs, self.slots())
        futures = self._submit(map_part, self._job(run, compute, prepare), pairs, parts)
        finished = self._replay(run, pairs, parts, self._gather(pairs, parts, futures))
        return {run.name(path): record.value for path, record in finished
                if record.reason is None and record.value is not None}

    def fold_pairs(self, run, pairs, step, prepare, parts_of, at_once):
        """``Run.fold_pairs`` on the cluster: a tree of sums, or a chain of ``step``."""
        if parts_of is not None:
            return self._sums(run, pairs, prepare, *parts_of)
        print(f"revdeconv {run.command}: note: shared SGD is sequential (each pair starts "
              f"from the filter the ones before it left): it runs as a chain of tasks, one "
              f"at a time, and gains nothing from the cluster", file=run.stream)
        parts = [Part(0, 0, len(pairs))] if at_once else partitions(run, pairs, 1)
        job, previous, links = self._job(run, step, prepare), None, []
        for n, part in enumerate(parts):
            previous = self.client.submit(fold_part, job, _absolute(pairs[part.start:part.stop]),
                                          previous, at_once, pure=False,
                                          key=f"revdeconv-chain-{n}-{uuid.uuid4().hex}")
            links.append(previous)
        records = [self.client.submit(nth, link, 0) for link in links]
        self._replay(run, pairs, parts, self._gather(pairs, parts, records))
        return self._result(links[-1], 1)

    def _sums(self, run, pairs, prepare, part, result):
        """Least squares as a sum: each partition's part, added pairwise on the cluster
        (never all at the client), then ``result(total)`` here."""
        parts = partitions(run, pairs, self.slots())
        futures = self._submit(sum_part, self._job(run, part, prepare), pairs, parts)
        client = self.client
        sums = [client.submit(nth, future, 1) for future in futures]
        while len(sums) > 1:                # a tree: log2(parts) rounds of pairwise adds
            sums = [client.submit(added, *pair) for pair in zip(sums[::2], sums[1::2])] \
                + sums[len(sums) - len(sums) % 2:]
        records = self._gather(pairs, parts, [client.submit(nth, f, 0) for f in futures])
        total, records = channel_policy(self._result(sums[0]), records, prepare is not None)
        try:
            value, reason = (result(total) if total is not None else None), None
        except ValueError as exc:           # as the plain command: the fit fails its pairs
            value, reason = None, str(exc)
        self._replay(run, pairs, parts, records, reason)
        return value

    # -- reporting --------------------------------------------------------------------
    def _result(self, future, n=None):
        try:
            value = future.result()
        except Exception:                   # noqa: BLE001 (reported with the records)
            return None
        return value if n is None else value[n]

    def _gather(self, items, parts, futures):
        """Each part's records, in order; a task that failed fails its files."""
        from distributed import as_completed
        found = {}
        position = {future.key: n for n, future in enumerate(futures)}
        try:
            for future in as_completed(futures, loop=self.client.loop):
                n = position[future.key]
                try:
                    found[n] = future.result()
                except Exception as exc:    # noqa: BLE001 (killed too often, a bug, ...)
                    why = f"its task failed on the cluster: {type(exc).__name__}: {exc}"
                    found[n] = [Record(k, 0, why, (2, None, 0))
                                for k in range(parts[n].stop - parts[n].start)]
        finally:
            self.client.cancel([f for f in futures if not f.done()])
        return [found[n] for n in range(len(parts))]

    def _replay(self, run, items, parts, records, reason=None):
        """The records reported as the plain command would: chunk by chunk, failures
        and warnings in its order (reads, attached values, then each group of one
        layout: its warnings, the files computed alone, those written); ``reason``
        fails every input still done. Returns (path, record) of each input, in the
        order the plain command finishes them."""
        chunks = {}
        for part, found in zip(parts, records):
            chunks.setdefault(part.chunk, []).extend(
                (part.start + record.index if record.index >= 0 else -1, n, record)
                for n, record in enumerate(found))
        finished = []
        for number in sorted(chunks):
            found = chunks[number]
            if reason is not None:
                found = [(i, n, r if r.reason or r.warning else r._replace(
                    reason=reason, order=(2, r.layout, 0))) for i, n, r in found]
            rank = {}
            for _, _, record in sorted(found, key=lambda entry: entry[0]):
                if record.layout is not None and record.warning is None:
                    rank.setdefault(record.layout, len(rank))

            def place(entry):           # (stable: warnings and failures as they came)
                index, _, record = entry
                phase, layout, sub = record.order or (2, record.layout, 3)
                return phase, rank.get(layout, 0) if phase == 2 else 0, sub, index
            done = 0
            for index, _, record in sorted(found, key=place):
                item = items[index] if index >= 0 else ()
                text = _localised(record.reason, run, item)
                if record.warning is not None:
                    warnings.warn(text, record.warning, stacklevel=2)
                    continue
                if record.reason is None:
                    done += 1
                else:
                    run.fail(paths(item)[record.which], text)
                finished.append((paths(item)[0], record))
            run.succeed(done)
            if number != len(chunks) - 1:
                run._chunk_line()
        return finished


def _absolute(items):
    """Items (paths, or pairs of paths) as a worker opens them: it has its own folder."""
    return [tuple(map(absolute, item)) if isinstance(item, tuple) else absolute(item)
            for item in items]


def _localised(text, run, item):
    """A worker's words with the paths of ``item`` (input, output) as this run names them."""
    if not text:
        return text
    for path in paths(item):
        if run.out is not None:
            target = run.output_path(path)
            text = text.replace(os.path.abspath(target), target)
        text = text.replace(key(absolute(path))[0], key(path)[0])
    return text


def _nothing():
    return None


class _LocalServer:
    """``local:N``: a scheduler and N worker processes (``threads`` OpenMP threads
    each) in a process of their own, which ends when this one closes its stdin."""

    def __init__(self, workers, threads):
        self.log = tempfile.TemporaryFile()
        environment = dict(os.environ, OMP_NUM_THREADS=str(threads))   # the server's only
        self.process = subprocess.Popen(
            [sys.executable, "-m", "revdeconv._cluster", str(workers)], env=environment,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.address = self.process.stdout.readline().decode().strip()
        if not self.address:
            self.process.wait()
            self.log.seek(0)
            said = self.log.read().decode(errors="replace").strip().splitlines()[-3:]
            self.close()
            raise OSError(f"the local cluster did not start: {' '.join(said) or 'no reason'}")

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()          # the server closes its cluster and ends
            try:
                self.process.wait(timeout=CONNECT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.log.close()


def _serve(workers):
    """The local cluster's process: its address on stdout, then wait for stdin to end."""
    import logging

    from distributed import LocalCluster
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
