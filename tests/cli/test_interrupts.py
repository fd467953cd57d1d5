"""Ctrl-C and SIGTERM on runs with worker processes: every worker stopped, what finished kept, one line, exit 130."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from exactverify.testing import make_onnx

REPO = Path(__file__).resolve().parents[2]


def _slow_instance(folder: Path):
    """A random 8-80-80-80-2 network and a property that keep verify busy for the whole time limit."""
    rng = np.random.default_rng(0)
    sizes = [8, 80, 80, 80, 2]
    ws = [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.standard_normal(b) * 0.1 for b in sizes[1:]]
    make_onnx(folder / "net.onnx", ws, bs)
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(8)) + "(declare-const Y_0 Real)\n"
    text += "(declare-const Y_1 Real)\n"
    text += "".join(f"(assert (>= X_{i} -1.0))\n(assert (<= X_{i} 1.0))\n" for i in range(8))
    (folder / "p.vnnlib").write_text(text + "(assert (>= Y_0 3.0))\n")
    from exactverify.loaders import load_network
    X = rng.uniform(-1, 1, (6, 8))
    np.savez(folder / "pts.npz", x=X, y=load_network(folder / "net.onnx").forward(X).argmax(axis=1))
    return folder / "net.onnx", folder / "p.vnnlib", folder / "pts.npz"


@pytest.fixture
def slow(tmp_path):
    return _slow_instance(tmp_path)


def _group(pgid: int) -> list:
    """The live (not zombie) processes of a process group, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _interrupt(args, sig, whole_group: bool, processes: int, settle: float, cwd):
    """Start `exactverify ARGS` in a new process group, wait until `processes` of the group run (the
    workers have started) and `settle` seconds more, send `sig`, and return (rc, stderr, survivors)."""
    p = subprocess.Popen([sys.executable, "-m", "exactverify", *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True)
    try:
        start = time.time()
        while len(_group(p.pid)) < processes and time.time() - start < 30 and p.poll() is None:
            time.sleep(0.02)
        assert p.poll() is None, p.communicate()
        assert len(_group(p.pid)) >= processes, "the workers did not start"
        time.sleep(settle)
        if whole_group:
            os.killpg(p.pid, sig)  # as the terminal does on Ctrl-C
        else:
            os.kill(p.pid, sig)  # as `kill PID` does
        _, err = p.communicate(timeout=30)
        end = time.time() + 5  # the resource tracker goes a moment after the parent
        while _group(p.pid) and time.time() < end:
            time.sleep(0.05)
        return p.returncode, err, _group(p.pid)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _assert_clean_stop(rc, err, survivors, *needles):
    assert rc == 130, (rc, err)
    assert "Traceback" not in err and "Fatal" not in err, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2 and lines[-1].startswith("exactverify: interrupted"), err
    for needle in needles:
        assert needle in lines[-1], err
    assert not survivors, f"processes left behind: {survivors}"


# parent, resource tracker and 2 workers
_WITH_WORKERS = 4


@pytest.mark.parametrize("sig, whole_group, settle", [
    (signal.SIGINT, True, 0.0),  # Ctrl-C while the workers are still starting (once: "init_import_site")
    (signal.SIGINT, True, 1.5),  # Ctrl-C while they verify
    (signal.SIGTERM, False, 1.5),  # `kill PID`
    (signal.SIGTERM, True, 1.5),  # `kill -TERM -PGID`, as timeout(1) does
])
def test_bench_with_workers_stops_cleanly(tmp_path, slow, sig, whole_group, settle):
    (tmp_path / "inst.csv").write_text("net.onnx,p.vnnlib,60\n" * 4)
    out = tmp_path / "results.csv"
    rc, err, survivors = _interrupt(["bench", tmp_path / "inst.csv", "--workers", 2, "--out", out,
                                     "--no-progress"], sig, whole_group, _WITH_WORKERS, settle, tmp_path)
    _assert_clean_stop(rc, err, survivors, "0 of 4 instances finished")
    assert not out.exists() and not list(tmp_path.glob(".results.csv.*"))  # nothing finished: nothing written


def test_robustness_with_workers_stops_on_ctrl_c(tmp_path, slow):
    net, _, data = slow
    rc, err, survivors = _interrupt(["robustness", net, data, "--timeout", 60, "--workers", 2, "--json",
                                     tmp_path / "rob.json", "--no-progress"], signal.SIGINT, True,
                                    _WITH_WORKERS, 1.5, tmp_path)
    _assert_clean_stop(rc, err, survivors, "of 6 points finished")
    assert not (tmp_path / "rob.json").exists()


@pytest.mark.parametrize("sig, whole_group", [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_verify_with_workers_stops_cleanly(tmp_path, slow, sig, whole_group):
    net, prop, _ = slow
    out = tmp_path / "result.txt"
    # the first 2 s one process tries alone; then the pieces go to the 2 workers
    rc, err, survivors = _interrupt(["verify", net, prop, "--timeout", 60, "--workers", 2, "--out", out],
                                    sig, whole_group, _WITH_WORKERS, 1.0, tmp_path)
    _assert_clean_stop(rc, err, survivors)
    assert not out.exists()


# ---------------------------------------------------------------- what finished is kept

def test_interrupted_bench_keeps_the_finished_instances(tmp_path, monkeypatch, capsys):
    """The rows that finished before the Ctrl-C are written whole (csv and JSON, marked interrupted)."""
    import exactverify.metrics.bench as bench
    from exactverify.cli.app import main

    net, _, _ = _slow_instance(tmp_path)
    for k in range(3):
        (tmp_path / f"p{k}.vnnlib").write_text((tmp_path / "p.vnnlib").read_text())
    (tmp_path / "inst.csv").write_text("".join(f"net.onnx,p{k}.vnnlib,5\n" for k in range(3)))
    real, calls = bench.run_instance, []

    def second_one_interrupted(inst, *rest):
        calls.append(inst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(inst, 0.5, *rest[1:])

    monkeypatch.setattr(bench, "run_instance", second_one_interrupted)
    out, rep = tmp_path / "results.csv", tmp_path / "bench.json"
    rc = main(["bench", str(tmp_path / "inst.csv"), "--workers", "1", "--out", str(out), "--json", str(rep),
               "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 130
    progress = tmp_path / "results.csv.progress.jsonl"
    assert err == (f"exactverify: interrupted: 1 of 3 instances finished (finished ones written to {out} "
                   f"and {rep}; progress in {progress}; run again to resume)")
    rows = out.read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("net.onnx,p0.vnnlib,timeout")
    data = json.loads(rep.read_text())
    assert data["interrupted"] is True and [r["property"] for r in data["results"]] == ["p0.vnnlib"]
    # the rerun runs the two unfinished instances only, and the default progress file goes once all is written
    calls.clear()
    monkeypatch.setattr(bench, "run_instance", lambda inst, *rest: calls.append(inst) or real(inst, 0.5, *rest[1:]))
    assert main(["bench", str(tmp_path / "inst.csv"), "--workers", "1", "--out", str(out), "--json", str(rep),
                 "--no-progress"]) == 0
    assert [c.property.name for c in calls] == ["p1.vnnlib", "p2.vnnlib"]
    assert [r["property"] for r in json.loads(rep.read_text())["results"]] == ["p0.vnnlib", "p1.vnnlib", "p2.vnnlib"]
    assert len(out.read_text().splitlines()) == 4 and not progress.exists()


def test_interrupted_robustness_keeps_whole_lines_and_resumes(tmp_path, monkeypatch, capsys):
    import exactverify.metrics.dataset as dataset
    from exactverify.cli.app import main
    from exactverify.testing import random_network

    net = random_network([2, 6, 3], seed=0)
    from exactverify.loaders.onnx import save_onnx
    save_onnx(net, tmp_path / "net.onnx")
    X = np.random.default_rng(1).uniform(0.2, 0.8, (4, 2))
    np.savez(tmp_path / "data.npz", x=X, y=np.argmax(net.forward(X), axis=1))
    real, calls = dataset._point_record, []

    def third_one_interrupted(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(dataset, "_point_record", third_one_interrupted)
    out = tmp_path / "rob.json"
    args = ["robustness", str(tmp_path / "net.onnx"), str(tmp_path / "data.npz"), "--domain", "0", "1",
            "--timeout", "10", "--json", str(out), "--no-progress"]
    assert main(args) == 130
    progress = tmp_path / "rob.json.progress.jsonl"
    assert capsys.readouterr().err.strip() == (f"exactverify: interrupted: 2 of 4 points finished (kept in "
                                               f"{progress}; run again to resume)")
    assert not out.exists()
    lines = progress.read_text().splitlines()
    assert len(lines) == 3 and [json.loads(line).get("index") for line in lines] == [None, 0, 1]
    # a record cut short by a hard kill is dropped, and the rerun does the rest
    progress.write_text(progress.read_text() + '{"index": 2, "lab')
    monkeypatch.setattr(dataset, "_point_record", real)
    assert main(args) == 0
    assert [p["index"] for p in json.loads(out.read_text())["points"]] == [0, 1, 2, 3]
