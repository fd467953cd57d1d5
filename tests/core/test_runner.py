"""The one executor (exactverify/core/runner.py) and the progress file (exactverify/core/journal.py):
the same results in this process, on a local pool and on a local Dask cluster; a worker killed
mid-run loses nothing and counts nothing twice; a progress file resumes only its own run."""

import json
import os
import signal
import sys
import time
from collections import Counter

import numpy as np
import pytest

from exactverify.core.errors import InputError
from exactverify.core.journal import Journal
from exactverify.core.runner import Runner
from exactverify.testing import remember, slow_echo

ITEMS = [(k, 0.01) for k in range(6)]


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster of 2 worker processes (1 thread each), started for these tests."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as c:
        yield c


def _collect(runner, items, initializer=remember, initargs=("shared",)):
    with runner.results(slow_echo, items, initializer, initargs) as results:
        return list(results)


@pytest.mark.parametrize("runner", [Runner(1), Runner(2)], ids=["this process", "local pool"])
def test_local_runs_give_every_result_once_with_the_initializers_state(runner):
    got = _collect(runner, ITEMS)
    assert sorted(k for k, _, _ in got) == list(range(6))
    assert {v for _, v, _ in got} == {"shared"}
    pids = {pid for _, _, pid in got}
    assert (pids == {os.getpid()}) if runner.workers == 1 else (os.getpid() not in pids)


def test_a_dask_cluster_gives_the_same_results_as_the_local_pool(cluster):
    local = _collect(Runner(2), ITEMS)
    dask = _collect(Runner(scheduler=cluster.scheduler_address), ITEMS)
    assert sorted((k, v) for k, v, _ in dask) == sorted((k, v) for k, v, _ in local)
    assert os.getpid() not in {pid for _, _, pid in dask}


def test_a_worker_killed_mid_run_loses_nothing_and_counts_nothing_twice(cluster):
    """The scheduler runs the dead worker's tasks again on the other (and on the worker the nanny restarts)."""
    from distributed import Client
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        pids = set(client.run(os.getpid).values())
    assert len(pids) == 2
    items = [(k, 0.4) for k in range(8)]
    got, killed = [], None
    with Runner(scheduler=cluster.scheduler_address).results(slow_echo, items, remember, ("shared",)) as results:
        for k, value, pid in results:
            got.append((k, value, pid))
            if killed is None:  # the first task has ended: both workers hold tasks now
                killed = next(p for p in pids if p != pid)
                os.kill(killed, signal.SIGKILL)
    counts = Counter(k for k, _, _ in got)
    assert sorted(counts) == list(range(8)) and set(counts.values()) == {1}
    assert {v for _, v, _ in got} == {"shared"}  # the restarted worker ran the initializer again


def test_a_task_that_fails_raises_its_error_here(cluster):
    with pytest.raises(TypeError):
        _collect(Runner(scheduler=cluster.scheduler_address), [(0, "not a number")])


def test_a_dask_worker_that_cannot_see_a_file_is_named_before_any_work(cluster, tmp_path):
    runner = Runner(scheduler=cluster.scheduler_address)
    (tmp_path / "seen.onnx").write_text("x")
    assert runner.shared_paths_problem([tmp_path / "seen.onnx"]) is None
    problem = runner.shared_paths_problem([tmp_path / "seen.onnx", tmp_path / "gone.onnx"])
    assert "cannot read" in problem and "gone.onnx" in problem


# ---------------------------------------------------------------- the progress file

def test_the_progress_file_resumes_its_own_run_and_refuses_another(tmp_path):
    path = tmp_path / "p.jsonl"
    with Journal(path, {"norm": "2", "timeout": 5.0}, key="index") as j:
        j.append({"index": 0, "rho": 0.5})
        j.append({"index": 1, "rho": np.float64(0.25)})
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"config": {"norm": "2", "timeout": 5.0}} and len(lines) == 3
    # a last line cut off by a killed run is dropped, on reading and on appending
    path.write_text(path.read_text() + '{"index": 2, "rh')
    again = Journal(path, {"norm": "2", "timeout": 5.0}, key="index")
    assert sorted(again.finished) == [0, 1] and again.finished[1]["rho"] == 0.25
    with again:
        again.append({"index": 2, "rho": 1.0})
    assert [json.loads(line).get("index") for line in path.read_text().splitlines()] == [None, 0, 1, 2]
    # only the settings named in `match` must agree
    assert sorted(Journal(path, {"norm": "2", "timeout": 9.0}, key="index", match=("norm",)).finished) == [0, 1, 2]
    with pytest.raises(InputError, match="different run.*timeout 5.0 there, 9.0 now"):
        Journal(path, {"norm": "2", "timeout": 9.0}, key="index")
    path.write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(InputError, match="line 2 is not JSON"):
        Journal(path, {"norm": "2", "timeout": 5.0}, key="index")


# ---------------------------------------------------------------- the commands on a cluster

@pytest.fixture
def small_run(tmp_path):
    """A small ONNX network, 4 points, a VNN-COMP instances csv of 3 instances."""
    from exactverify.loaders.onnx import save_onnx
    from exactverify.testing import random_network
    net = random_network([3, 8, 8, 3], seed=2)
    save_onnx(net, tmp_path / "net.onnx")
    X = np.random.default_rng(0).uniform(0.2, 0.8, (4, 3))
    np.savez(tmp_path / "pts.npz", x=X, y=net.forward(X).argmax(axis=1))
    for k, eps in enumerate((0.01, 0.05, 0.3)):
        lines = [f"(declare-const X_{i} Real)" for i in range(3)] + [f"(declare-const Y_{i} Real)" for i in range(3)]
        label = int(net.forward(X[k]).argmax())
        lines += [f"(assert (>= X_{i} {X[k][i] - eps}))\n(assert (<= X_{i} {X[k][i] + eps}))" for i in range(3)]
        others = [j for j in range(3) if j != label]
        lines.append("(assert (or " + " ".join(f"(and (>= Y_{j} Y_{label}))" for j in others) + "))")
        (tmp_path / f"p{k}.vnnlib").write_text("\n".join(lines) + "\n")
    (tmp_path / "inst.csv").write_text("".join(f"net.onnx,p{k}.vnnlib,30\n" for k in range(3)))
    return tmp_path


def _cli(*args):
    from exactverify.cli.app import main
    return main([str(a) for a in args])


def test_robustness_and_bench_on_a_dask_cluster_match_the_local_pool(cluster, small_run, capsys):
    d, address = small_run, cluster.scheduler_address
    for where, extra in (("local", ["--workers", 2]), ("dask", ["--scheduler", address])):
        assert _cli("robustness", d / "net.onnx", d / "pts.npz", "--domain", 0, 1, "--timeout", 30,
                    "--json", d / f"rob_{where}.json", "--no-progress", *extra) == 0
        assert _cli("bench", d / "inst.csv", "--json", d / f"bench_{where}.json", "--no-progress", *extra) == 0
    capsys.readouterr()
    rho = {w: [(p["index"], p["status"], p["radius"]) for p in json.loads((d / f"rob_{w}.json").read_text())["points"]]
           for w in ("local", "dask")}
    assert rho["local"] == rho["dask"] and all(s == "exact" for _, s, _ in rho["dask"])
    verdicts = {w: [(r["property"], r["status"]) for r in json.loads((d / f"bench_{w}.json").read_text())["results"]]
                for w in ("local", "dask")}
    assert verdicts["local"] == verdicts["dask"] and len(verdicts["dask"]) == 3
    assert not list(d.glob("*.progress.jsonl"))  # the default progress files go once the reports are written


def test_scheduler_problems_are_one_line_before_any_work(small_run, capsys, monkeypatch):
    import exactverify.core.runner as runner
    d = small_run
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the [cluster] extra were not installed
    assert _cli("bench", d / "inst.csv", "--scheduler", "tcp://127.0.0.1:1", "--json", d / "b.json") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "exactverify[cluster]"' in err[0]
    monkeypatch.delitem(sys.modules, "distributed")
    pytest.importorskip("distributed")
    monkeypatch.setattr(runner, "CONNECT_SECONDS", 1)
    t = time.perf_counter()
    assert _cli("robustness", d / "net.onnx", d / "pts.npz", "--domain", 0, 1, "--scheduler", "tcp://127.0.0.1:1",
                "--json", d / "r.json") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the scheduler" in err[0] and "Traceback" not in err[0]
    assert not (d / "r.json").exists() and not (d / "r.json.progress.jsonl").exists()
    assert time.perf_counter() - t < 30
