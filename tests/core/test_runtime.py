"""Worker plumbing (exactverify/core/runtime.py): one BLAS thread per worker, SIGINT left to the parent,
progress bars only on a terminal."""

import os

import pytest

from exactverify.core import runtime


def test_workers_run_one_blas_thread():
    """numpy's OpenBLAS is loaded before the initializer runs, so the environment variables alone left it
    at one thread per core; threadpoolctl limits it in place, and libraries loaded later get the variables."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with runtime.worker_pool(1) as pool:
        pool.apply(exec, ("import numpy, scipy.linalg, scipy.sparse.linalg",))
        info = pool.apply(threadpoolctl.threadpool_info)
    blas = [lib for lib in info if lib["user_api"] == "blas"]
    assert blas, info
    assert all(lib["num_threads"] == 1 for lib in blas), [(lib["filepath"], lib["num_threads"]) for lib in blas]


_CHECK_STARTING_WORKERS = """
import multiprocessing as mp, signal
from exactverify.core import runtime

def held(pid):
    masks = dict(line.split(":\\t") for line in open(f"/proc/{pid}/status").read().splitlines()
                 if line.startswith(("SigBlk", "SigIgn")))
    return bool((int(masks["SigBlk"], 16) | int(masks["SigIgn"], 16)) & (1 << (signal.SIGINT - 1)))

if __name__ == "__main__":
    with runtime.worker_pool(2) as pool:
        print(all(held(p.pid) for p in mp.active_children()))
        print(pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN)
    print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    print(signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
"""


def test_workers_leave_ctrl_c_to_the_parent(tmp_path):
    """SIGINT is held (blocked, then ignored) in every worker from its first instant: a Ctrl-C during a
    worker's start-up gave "Fatal Python error: init_import_site". A fresh process, since the first pool of
    a process also starts multiprocessing's resource tracker, which unblocked SIGINT in the parent."""
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/status").exists():
        pytest.skip("reads signal masks from /proc")
    script = tmp_path / "check.py"
    script.write_text(_CHECK_STARTING_WORKERS)
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(repo)})
    assert r.returncode == 0, r.stderr
    started_held, ignored_in_worker, handler_back, unblocked = r.stdout.split()
    assert started_held == "True"
    assert ignored_in_worker == "True"
    assert handler_back == "True" and unblocked == "True"  # the parent's Ctrl-C works as before


def test_progress_is_plain_lines_off_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "PROGRESS_SECONDS", 0.0)
    bar = runtime.progress_bar(3, True, unit="inst")
    assert isinstance(bar, runtime.PlainProgress)  # capsys' stderr is no terminal
    bar.set_postfix_str("decided 1")
    bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert err.startswith("1/3 inst done, decided 1 (") and "\r" not in err and len(err.splitlines()) == 1
    assert runtime.progress_bar(3, False) is None


def test_progress_is_a_bar_on_a_terminal(monkeypatch):
    tqdm = pytest.importorskip("tqdm")
    monkeypatch.setattr(runtime, "_stderr_is_terminal", lambda: True)
    bar = runtime.progress_bar(3, True)
    try:
        assert isinstance(bar, tqdm.tqdm)
    finally:
        bar.close()


def test_plain_progress_waits_between_lines(capsys):
    bar = runtime.PlainProgress(100)  # PROGRESS_SECONDS (5 s) between lines: a fast run prints none
    for _ in range(100):
        bar.update(1)
    assert capsys.readouterr().err == ""
