"""Process plumbing shared by every batch command: how many workers, one BLAS thread per worker,
worker pools that stop cleanly on Ctrl-C or SIGTERM, and progress that stays out of the way when
there is no one to see it.

Interrupts: the command line (cli/app.py) turns SIGTERM into KeyboardInterrupt while a command
runs (`interrupts_as_keyboard`). Workers of a `worker_pool` ignore SIGINT, so a Ctrl-C, which
the terminal sends to every process of the foreground group, reaches the parent alone; the
parent terminates the pool and the batch function raises `Interrupted`, which says how much had
finished; `main` prints that one line and exits 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

PROGRESS_SECONDS = 5.0  # how often plain (non-terminal) progress lines and long runs report

_BLAS_LIMITS: list = []  # keeps the threadpoolctl limiter of this worker process alive


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM: how many of its items had finished, and where they were kept."""

    def __init__(self, done: int | None = None, total: int | None = None, unit: str = "", kept: str = "",
                 partial=None):
        super().__init__()
        self.done, self.total, self.unit, self.kept = done, total, unit, kept
        self.partial = partial  # what had finished, for the command to write (bench: a partial report)

    def line(self) -> str:
        """The one line the command line prints, e.g. 'interrupted: 3 of 10 instances finished'."""
        text = "interrupted"
        if self.done is not None and self.total is not None:
            text += f": {self.done} of {self.total}{' ' + self.unit if self.unit else ''} finished"
        if self.kept:
            text += f" ({self.kept})"
        return text


def default_workers() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def limit_worker_threads() -> None:
    """One BLAS/OpenMP thread in a worker process: the workers are the parallelism."""
    # the variables reach the BLAS libraries loaded from now on and the worker's own child processes
    # (CBC); the libraries already loaded (numpy's OpenBLAS) read them only at load, so threadpoolctl
    # limits those in place
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _BLAS_LIMITS.append(threadpool_limits(1))


def worker_init(initializer=None, *initargs) -> None:
    """A pool worker's start: SIGINT ignored (the parent alone handles Ctrl-C), one BLAS thread, then `initializer`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        # the parent blocked SIGINT while it started this process (see worker_pool); a Ctrl-C that
        # came meanwhile is pending here and is dropped now that SIGINT is ignored
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    limit_worker_threads()
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def worker_pool(workers: int, initializer=None, initargs=()):
    """A spawned process pool whose workers ignore SIGINT; on leaving, or on any exception, it is terminated and joined.

    On KeyboardInterrupt (Ctrl-C, or SIGTERM under `interrupts_as_keyboard`) further interrupts
    are ignored while the workers are stopped, so a second Ctrl-C cannot leave them behind.
    """
    import multiprocessing as mp

    # spawn, not fork: a forked copy of a process that has run HiGHS threads is not safe.
    # While the workers start, an interrupt is held (raised once the pool is guarded below: one raised
    # inside Pool() left workers starting up with their semaphores gone, and tracebacks), and SIGINT
    # is blocked in this thread, which the workers inherit: a Ctrl-C cannot reach one before its
    # initializer ignores SIGINT (that gave tracebacks, even "Fatal Python error: init_import_site").
    if hasattr(signal, "pthread_sigmask"):
        # the resource tracker unblocks SIGINT once it has started itself: start it first
        from multiprocessing import resource_tracker
        resource_tracker.ensure_running()
    hold = _Hold()
    try:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hasattr(signal, "pthread_sigmask") else None
        try:
            pool = mp.get_context("spawn").Pool(workers, initializer=worker_init, initargs=(initializer, *initargs))
        finally:
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    except BaseException:
        hold.release()
        raise
    interrupted = False
    try:
        hold.release()  # an interrupt held meanwhile is raised here, where the pool gets stopped
        yield pool
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # terminate, not close: results no longer wanted (a sat piece found elsewhere) must not keep the
        # run waiting. After an interrupt, more Ctrl-C are dropped; otherwise one is held until the
        # workers are gone
        with ignoring_interrupts() if interrupted else held_interrupts():
            pool.terminate()
            pool.join()


class _Hold:
    """Ctrl-C and SIGTERM noted, not raised, from now until `release()` (main thread; elsewhere none is raised anyway).

    Python-level handlers, not a signal mask: the kernel may hand a signal to any thread that does not
    block it (OpenBLAS' threads), and Python then raises it in the main thread whatever its mask.
    """

    def __init__(self):
        self.pending: list = []
        self._old: dict = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if callable(handler):  # SIG_IGN and SIG_DFL need no help
                self._old[sig] = handler
                signal.signal(sig, self._note)

    def _note(self, signum, frame) -> None:
        self.pending.append(signum)

    def release(self) -> None:
        """Put the handlers back and run the first held signal's (which raises KeyboardInterrupt); idempotent."""
        old, self._old = self._old, {}
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if self.pending and self.pending[0] in old:
            old[self.pending[0]](self.pending[0], None)


@contextlib.contextmanager
def held_interrupts():
    """Ctrl-C and SIGTERM noted, not raised, for the block; their handlers run after it.

    For a write that must not be cut, and for native code that calls back into Python (HiGHS'
    callbacks): a KeyboardInterrupt raised inside such a callback is lost in the solver, and a run
    went on to its time limit and exited 0. The yielded list gets each signal's number, so that a
    callback can stop the solver at once.
    """
    hold = _Hold()
    try:
        yield hold.pending
    finally:
        hold.release()


@contextlib.contextmanager
def ignoring_interrupts():
    """SIGINT and SIGTERM ignored for the block (main thread only), e.g. while workers are being stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def interrupts_as_keyboard():
    """SIGTERM raises KeyboardInterrupt in the main thread for the block, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class Ticker:
    """A daemon thread that calls `fn()` every `interval` seconds until `stop()` (progress lines on long runs)."""

    def __init__(self, interval: float, fn):
        self.interval, self.fn = float(interval), fn
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="exactverify-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.fn()
            except Exception:  # a progress line must never stop or fail the run it reports on
                return

    def stop(self) -> None:
        """Stop calling `fn` and wait for the thread (at most one call's time)."""
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)


def progress_bar(total: int, enabled: bool, unit: str = "inst", initial: int = 0, desc: str = ""):
    """Progress over `total` items: a tqdm bar when stderr is a terminal, plain lines every
    PROGRESS_SECONDS otherwise, or None when disabled.

    Either way the object has tqdm's `update(n)`, `set_postfix_str(s)` and `close()`.
    """
    if not enabled:
        return None
    if _stderr_is_terminal():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, unit=unit, initial=initial, desc=desc or None, dynamic_ncols=True)
    return PlainProgress(total, unit, initial, desc)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class PlainProgress:
    """Progress as plain lines on stderr ('12/100 inst done, decided 3 (35 s)'), at most one every PROGRESS_SECONDS."""

    def __init__(self, total: int, unit: str = "inst", initial: int = 0, desc: str = "", stream=None):
        self.total, self.n, self.unit, self.desc = total, initial, unit, desc
        self.postfix = ""
        self.stream = stream
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        """Count `n` more items done; print a line when one is due."""
        self.n += n
        now = time.perf_counter()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            print(self.line(now), file=self.stream or sys.stderr, flush=True)

    def set_postfix_str(self, s: str) -> None:
        """The text after the counts in the next line (as tqdm's postfix)."""
        self.postfix = s

    def line(self, now: float | None = None) -> str:
        """The current progress line."""
        elapsed = (now or time.perf_counter()) - self.start
        head = f"{self.desc}: " if self.desc else ""
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{head}{self.n}/{self.total} {self.unit} done{tail} ({elapsed:.0f} s)"

    def close(self) -> None:
        """Nothing to tidy: plain lines leave nothing on screen."""
