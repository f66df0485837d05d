"""The counts and reports of a run over many files: one line per file that fails or
is skipped, a progress bar on a terminal (a line per chunk in a log), the summary
line and its exit status, and the one line of a Ctrl-C. A report made on a pool
thread is made by the run's own thread (:mod:`revdeconv._pipeline`)."""

import contextlib
import sys
import time

from ._inputs import subfolder_note
from ._pipeline import reported_by_caller

__all__ = ["Tally", "Interrupted"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, already reported on its one line."""


class Tally:
    """What a command has done so far, and the lines that say it (on ``stream``,
    standard error by default; ``quiet``: only failures and the summary of a run
    that failed)."""

    def __init__(self, command, *, quiet=False, stream=None):
        self.command, self.quiet = command, quiet
        self.stream = stream or sys.stderr
        self.done = self.failed = self.skipped = 0
        self.total = self.subfolders = 0
        self.show_progress = not quiet and self.stream.isatty()
        self._skips = {}
        self._start = time.perf_counter()

    @reported_by_caller
    def fail(self, path, reason):
        self.failed += 1
        self._clear_progress()
        print(f"revdeconv {self.command}: {path}: {reason}", file=self.stream)
        self._progress()

    @reported_by_caller
    def skip(self, path, reason, why):
        """Leave ``path`` out, with its ``reason`` on a line; counted as skipped
        (``why``, in the summary), not as failed."""
        self.skipped += 1
        self._skips[why] = self._skips.get(why, 0) + 1
        self._clear_progress()
        print(f"revdeconv {self.command}: {path}: skipped: {reason}", file=self.stream)
        self._progress()

    @reported_by_caller
    def succeed(self, count=1):
        self.done += count
        self._progress()

    def _progress(self):
        if self.show_progress and self.total:
            finished = self.done + self.failed + self.skipped
            filled = 30 * finished // self.total
            self.stream.write(f"\r[{'#' * filled}{'-' * (30 - filled)}] {finished}/{self.total}")
            self.stream.flush()

    def _clear_progress(self):
        if self.show_progress:
            self.stream.write("\r" + " " * 50 + "\r")

    def _chunk_line(self):
        """Where there is no bar (a pipe, a log), one line after each chunk but the last."""
        if not self.quiet and not self.show_progress:
            print(f"revdeconv {self.command} {self.done + self.failed + self.skipped}/"
                  f"{self.total} ({time.perf_counter() - self._start:.1f} s)", file=self.stream)

    def finish(self):
        """Print the summary line; the exit status: 1 when anything failed."""
        self._clear_progress()
        why = dict(self._skips)                    # reason -> count
        if self.skipped > sum(why.values()):
            why["output exists; --overwrite to redo"] = self.skipped - sum(why.values())
        reasons = list(why) if len(why) == 1 else [f"{n} {w}" for w, n in why.items()]
        skipped = f", {self.skipped} skipped ({'; '.join(reasons)})" if self.skipped else ""
        if not self.quiet or self.failed:
            print(f"revdeconv {self.command}: {self.done} done, {self.failed} failed{skipped}"
                  f"{subfolder_note(self.subfolders)}", file=self.stream)
        return 1 if self.failed else 0

    @contextlib.contextmanager
    def _interruptible(self):
        """Ctrl-C ends the run with one line, then raises :class:`Interrupted`."""
        try:
            yield
        except KeyboardInterrupt:
            self._clear_progress()
            left = max(self.total - self.done - self.failed - self.skipped, 0)
            failed = f", {self.failed} failed" if self.failed else ""
            skipped = f", {self.skipped} skipped" if self.skipped else ""
            print(f"revdeconv {self.command}: interrupted: {self.done} done{failed}{skipped}, "
                  f"{left} not started", file=self.stream)
            raise Interrupted from None
