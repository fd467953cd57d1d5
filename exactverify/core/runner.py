"""The one executor behind every batch command (bench, robustness, validate, audit): tasks run in
this process, on a local process pool, or on a Dask cluster, and come back as each one ends.

    runner = Runner(workers=4)                        # or Runner(scheduler="tcp://10.0.0.5:8786")
    with runner.results(task, items, initializer, initargs) as results:
        for result in results:                        # in the order the tasks end
            ...

`task(item)` is a module-level function (it travels to the workers by reference, so the workers
need exactverify installed); `initializer(*initargs)` runs once in each worker process before its
first task (a network loaded once per worker, say).

A Dask cluster (`pip install "exactverify[cluster]"`) gets one task per item. The per-worker
state is scattered to the workers once, not sent with every task. A worker lost mid-run costs only
the tasks it held: the scheduler runs them again elsewhere, and each item's result comes back
exactly once (one future per item). A worker process runs one exactverify task at a time, whatever
its thread count, because the tasks keep per-process state (the loaded network); start workers
with `--nthreads 1` and one process per core. On Ctrl-C the tasks are cancelled on the cluster;
the cluster itself, which this run did not start, is left running.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import uuid
from dataclasses import dataclass

from .errors import InputError
from .runtime import Interrupted, held_interrupts, ignoring_interrupts, limit_worker_threads, worker_pool

CONNECT_SECONDS = 20  # how long to wait for a Dask scheduler before saying it cannot be reached
CLUSTER_EXTRA = 'pip install "exactverify[cluster]"'


@dataclass(frozen=True)
class Runner:
    """Where a batch's tasks run: `workers` local processes (1: this process), or the Dask scheduler at `scheduler`."""

    workers: int = 1
    scheduler: str | None = None

    @contextlib.contextmanager
    def results(self, task, items, initializer=None, initargs=()):
        """An iterator over `task(item)` for every item, in the order the tasks end; see the module docstring.

        Leaving the block, by an exception or a Ctrl-C too, stops what still runs (local workers
        terminated, Dask tasks cancelled). An exception raised by a task is raised here.
        """
        items = list(items)
        if not items:
            yield iter(())
        elif self.scheduler:
            with _dask_results(self.scheduler, task, items, initializer, initargs) as results:
                yield results
        elif self.workers <= 1 or len(items) == 1:
            if initializer is not None:
                initializer(*initargs)
            yield (task(item) for item in items)
        else:
            with worker_pool(min(self.workers, len(items)), initializer, initargs) as pool:
                yield pool.imap_unordered(task, items)

    def shared_paths_problem(self, paths) -> str | None:
        """Which of `paths` the Dask workers cannot read (a task opens them there), or None; always None locally."""
        if not self.scheduler:
            return None
        with _client(self.scheduler) as client:
            missing = client.run(_missing_files, sorted({str(p) for p in paths}))
        for worker, names in sorted(missing.items()):
            if names:
                return (f"the Dask worker {worker} cannot read {names[0]}"
                        + (f" (and {len(names) - 1} more files)" if len(names) > 1 else "")
                        + "; the paths must be visible to the workers (a shared file system)")
        return None


def gather(runner: Runner, task, items, records: dict, total: int, unit: str, journal=None, bar=None,
           initializer=None, initargs=(), note=None) -> dict:
    """Run `task` over `items` on `runner`, keeping each result (a dict with an "index") in `records` and
    appending it to `journal` (a core.journal.Journal, or None) as it ends; `note(records)` sets the
    progress bar's postfix. On Ctrl-C: `Interrupted`, saying where the finished ones are kept."""
    try:
        with journal if journal is not None and items else contextlib.nullcontext(), \
                runner.results(task, items, initializer, initargs) as results:
            for record in results:
                records[record["index"]] = record
                if journal is not None:
                    journal.append(record)
                if bar is not None:
                    if note is not None:
                        bar.set_postfix_str(note(records))
                    bar.update(1)
    except KeyboardInterrupt:
        # the workers are stopped; the finished records are in the progress file, whole lines
        kept = f"kept in {journal.path}; run again to resume" if journal is not None and records else ""
        raise Interrupted(len(records), total, unit, kept) from None
    finally:
        if bar is not None:
            bar.close()
    return records


def scheduler_problem(address: str) -> str | None:
    """Why `--scheduler address` cannot be used before connecting (dask.distributed missing), or None."""
    if importlib.util.find_spec("distributed") is None:
        return f"needs dask.distributed, which is not installed: {CLUSTER_EXTRA}"
    if not address.strip():
        return "is empty"
    return None


def check_scheduler(address: str) -> None:
    """InputError unless the Dask scheduler at `address` answers and has at least one worker."""
    with _client(address) as client:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    if not workers:
        raise InputError(None, f"--scheduler {address}: the scheduler has no workers")


# ---------------------------------------------------------------- Dask

@contextlib.contextmanager
def _client(address: str):
    problem = scheduler_problem(address)
    if problem:
        raise InputError(None, f"--scheduler {address}: {problem}")
    from distributed import Client
    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise InputError(None, f"--scheduler {address}: cannot reach the scheduler ({e.__class__.__name__}: {e})") \
            from None
    try:
        yield client
    finally:
        with ignoring_interrupts():
            client.close()


@contextlib.contextmanager
def _dask_results(address: str, task, items, initializer, initargs):
    from distributed import as_completed

    with _client(address) as client:
        run = uuid.uuid4().hex[:12]  # names this run's state on the workers, and its task keys
        state = client.scatter([tuple(initargs)], broadcast=True, hash=False)[0] if initializer else None
        futures = [client.submit(_dask_task, task, initializer, run, state, item, pure=False,
                                 key=f"exactverify-{run}-{i}") for i, item in enumerate(items)]
        try:
            yield (future.result() for future in as_completed(futures, loop=client.loop))
        finally:
            with held_interrupts():  # cancel everything, even on a second Ctrl-C
                client.cancel(futures)
                if state is not None:
                    client.cancel([state])


_READY: set = set()  # per worker process: the runs whose initializer has run here
_ONE_AT_A_TIME = threading.Lock()  # per worker process: tasks share module-level state (loaded networks)


def _dask_task(task, initializer, run, state, item):
    with _ONE_AT_A_TIME:
        if run not in _READY:
            limit_worker_threads()
            if initializer is not None:
                initializer(*state)
            _READY.add(run)
        return task(item)


def _missing_files(paths) -> list:
    import os
    return [p for p in paths if not os.access(p, os.R_OK)]

