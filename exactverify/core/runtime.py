"""Process plumbing shared by every batch command: how many workers, one BLAS thread per worker,
and a progress bar that stays out of the way when there is no one to see it."""

from __future__ import annotations

import os


def default_workers() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def limit_worker_threads() -> None:
    """One BLAS/OpenMP thread in a worker process: the workers are the parallelism."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def progress_bar(total: int, enabled: bool, unit: str = "inst"):
    """A tqdm bar over `total` items, or None when disabled or tqdm is missing."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, dynamic_ncols=True)
