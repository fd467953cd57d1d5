"""The command line: verdict output, result files, bench, and one test per kind of bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from pathlib import Path

from exactverify.testing import make_onnx

REPO = Path(__file__).resolve().parents[2]

ABS_NET = ([np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])  # y = |x0 - x1|


def vnnlib(lo0=0.0, hi0=1.0, y_at_least=0.5, n_inputs=2):
    decls = "".join(f"(declare-const X_{i} Real)\n" for i in range(n_inputs)) + "(declare-const Y_0 Real)\n"
    bounds = "".join(f"(assert (>= X_{i} {lo0}))\n(assert (<= X_{i} {hi0}))\n" for i in range(n_inputs))
    return decls + bounds + f"(assert (>= Y_0 {y_at_least}))\n"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "exactverify.cli.app", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=120)


@pytest.fixture
def absnet(tmp_path):
    return make_onnx(tmp_path / "abs.onnx", *ABS_NET)


def test_verify_sat_writes_vnncomp_result_and_json(tmp_path, absnet):
    prop = tmp_path / "p.vnnlib"
    prop.write_text(vnnlib(y_at_least=0.5))
    out, rep = tmp_path / "res.txt", tmp_path / "rep.json"
    r = cli("verify", absnet, prop, "--out", out, "--json", rep)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "sat"
    text = out.read_text().splitlines()
    assert text[0] == "sat"
    body = " ".join(text[1:])
    assert body.startswith("((X_0 ") and "(Y_0 " in body and body.endswith("))")
    vals = dict((tok.split()[0].strip("()"), float(tok.split()[1].strip("()")))
                for tok in body[1:-1].replace(")", ")|").split("|") if tok.strip())
    assert abs(vals["X_0"] - vals["X_1"]) >= 0.5 and 0 <= vals["X_0"] <= 1 and 0 <= vals["X_1"] <= 1
    report = json.loads(rep.read_text())
    assert report["status"] == "sat" and len(report["counterexample"]["x"]) == 2


def test_verify_unsat(tmp_path, absnet):
    prop = tmp_path / "p.vnnlib"
    prop.write_text(vnnlib(y_at_least=1.5))
    out = tmp_path / "res.txt"
    r = cli("verify", absnet, prop, "--out", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "unsat"
    assert out.read_text() == "unsat\n"


def test_verify_does_not_import_torch(tmp_path, absnet):
    prop = tmp_path / "p.vnnlib"
    prop.write_text(vnnlib(y_at_least=1.5))
    code = ("import sys; from exactverify.cli.app import main; rc = main(['verify', sys.argv[1], sys.argv[2]]); "
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')")
    r = subprocess.run([sys.executable, "-c", code, str(absnet), str(prop)], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "NOTORCH"


def test_help_lists_commands_and_verdicts():
    r = cli("--help")
    assert r.returncode == 0
    for word in ("verify", "bench", "sat", "unsat", "timeout", "unknown"):
        assert word in r.stdout


def test_python_dash_m_exactverify_is_the_command_line():
    r = subprocess.run([sys.executable, "-m", "exactverify", "--version"], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("exactverify "), r.stderr


def _subparsers():
    import argparse

    from exactverify.cli.app import build_parser
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _option(parser, flag):
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_every_command_has_json_and_shared_options_read_the_same():
    commands = _subparsers()
    assert set(commands) == {"verify", "bench", "info", "export", "robustness", "certify", "validate", "audit"}
    for flag in ("--json", "--markdown", "--tightening", "--solver", "--domain", "--scale", "--ground-truth"):
        found = {(a.metavar, a.help) for a in (_option(p, flag) for p in commands.values()) if a is not None}
        assert len(found) == 1, (flag, found)
    assert all(_option(p, "--json") is not None for p in commands.values())
    for name, p in commands.items():  # --progress and --no-progress wherever there is progress to show
        if _option(p, "--no-progress") is not None:
            assert _option(p, "--progress") is _option(p, "--no-progress"), name


def test_tightening_choices_are_the_search_stages():
    from exactverify.cli.options import TIGHTENING
    from exactverify.search.tightening import STAGES

    assert TIGHTENING == STAGES


def test_help_loads_no_bounds_search_or_solver():
    """`exactverify --help` builds every command's parser; the heavy layers load only when a command runs."""
    code = ("import sys; from exactverify.cli.app import build_parser; build_parser(); "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('highspy', 'z3', 'pulp', 'onnx', 'torch') "
            "or m.split('.')[:2] in (['exactverify', p] for p in ('bounds', 'search', 'metrics', 'encodings', "
            "'loaders', 'training'))]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr)


def test_command_modules_import_only_options():
    """cli/ modules stay independent: each imports the layers below and cli/options.py, never another command."""
    import ast

    cli_dir = REPO / "exactverify" / "cli"
    commands = {p.stem for p in cli_dir.glob("*.py")} - {"__init__", "app", "options"}
    for path in cli_dir.glob("*.py"):
        if path.stem == "app":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                assert set(names) <= {"options"}, (path.name, names)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                full = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(f.startswith("exactverify.cli") for f in full), (path.name, full)
    assert commands == {"verify", "bench", "info", "export", "robustness", "certify", "validate", "audit"}


def test_bench_counts_agreement(tmp_path, absnet):
    (tmp_path / "sat.vnnlib").write_text(vnnlib(y_at_least=0.5))
    (tmp_path / "unsat.vnnlib").write_text(vnnlib(y_at_least=1.5))
    (tmp_path / "inst.csv").write_text("abs.onnx,sat.vnnlib,120\nabs.onnx,unsat.vnnlib,120\n")
    # the ground truth deliberately claims the wrong verdict for the second instance
    (tmp_path / "gt.csv").write_text("network,property,expected\nabs.onnx,sat.vnnlib,sat\nabs.onnx,unsat.vnnlib,sat\n")
    out, rep = tmp_path / "results.csv", tmp_path / "bench.json"
    r = cli("bench", tmp_path / "inst.csv", "--ground-truth", tmp_path / "gt.csv", "--out", out, "--json", rep,
            "--no-progress")
    assert r.returncode == 0, r.stderr
    summary = json.loads(rep.read_text())["summary"]
    assert summary["decided"] == 2 and summary["agreeing"] == 1 and summary["wrong"] == 1
    assert "WRONG 1" in r.stdout
    rows = out.read_text().splitlines()
    assert rows[0].startswith("network,property,status") and len(rows) == 3


def test_bench_on_worker_processes_gives_the_same_rows_in_csv_order(tmp_path, absnet):
    props = {f"p{k}.vnnlib": vnnlib(y_at_least=t) for k, t in enumerate([0.5, 1.5, 0.2, 3.0, 0.9])}
    for name, text in props.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "inst.csv").write_text("".join(f"abs.onnx,{name},120\n" for name in props))
    rows = {}
    for workers in ("1", "2"):
        rep = tmp_path / f"bench{workers}.json"
        r = cli("bench", tmp_path / "inst.csv", "--workers", workers, "--json", rep, "--no-progress")
        assert r.returncode == 0, r.stderr
        rows[workers] = [(x["property"], x["status"]) for x in json.loads(rep.read_text())["results"]]
    assert rows["1"] == rows["2"]
    assert [p for p, _ in rows["2"]] == list(props)
    assert {s for _, s in rows["2"]} == {"sat", "unsat"}


# ---------------------------------------------------------------- bad input: exit 2, one line, nothing written

def assert_clean_error(r, *needles, out=None):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("exactverify: error:")
    for n in needles:
        assert n.lower() in err.lower(), (n, err)
    if out is not None:
        assert not out.exists()
        assert not list(out.parent.glob(f".{out.name}.*"))


@pytest.fixture
def good_prop(tmp_path):
    p = tmp_path / "good.vnnlib"
    p.write_text(vnnlib())
    return p


def test_missing_network(tmp_path, good_prop):
    out = tmp_path / "res.txt"
    assert_clean_error(cli("verify", tmp_path / "nope.onnx", good_prop, "--out", out), "nope.onnx", out=out)


def test_malformed_onnx(tmp_path, good_prop):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf\xff\xfe" * 10)
    out = tmp_path / "res.txt"
    assert_clean_error(cli("verify", bad, good_prop, "--out", out), "garbage.onnx", out=out)


def test_unsupported_operator_is_named(tmp_path, good_prop):
    net = make_onnx(tmp_path / "sig.onnx", *ABS_NET, op_for_activation="Sigmoid")
    out = tmp_path / "res.txt"
    assert_clean_error(cli("verify", net, good_prop, "--out", out), "sig.onnx", "Sigmoid", out=out)


def test_nan_weights(tmp_path, good_prop):
    w, b = ABS_NET
    w = [w[0].copy(), w[1]]
    w[0][0, 0] = np.nan
    net = make_onnx(tmp_path / "nan.onnx", w, b)
    out = tmp_path / "res.txt"
    assert_clean_error(cli("verify", net, good_prop, "--out", out), "nan.onnx", "nan", out=out)


def test_malformed_vnnlib(tmp_path, absnet):
    bad = tmp_path / "broken.vnnlib"
    bad.write_text(vnnlib().replace("(assert (>= Y_0 0.5))", "(assert (>= Y_0 0.5)"))
    out = tmp_path / "res.txt"
    assert_clean_error(cli("verify", absnet, bad, "--out", out), "broken.vnnlib", out=out)


def test_empty_input_box(tmp_path, absnet):
    bad = tmp_path / "empty.vnnlib"
    bad.write_text(vnnlib(lo0=1.0, hi0=0.0))
    out = tmp_path / "res.txt"
    assert_clean_error(cli("verify", absnet, bad, "--out", out), "empty.vnnlib", "empty", out=out)


def test_shape_mismatch(tmp_path, absnet):
    bad = tmp_path / "three.vnnlib"
    bad.write_text(vnnlib(n_inputs=3))
    out = tmp_path / "res.txt"
    assert_clean_error(cli("verify", absnet, bad, "--out", out), "three.vnnlib", "3 inputs", out=out)


def test_missing_instances_csv(tmp_path):
    assert_clean_error(cli("bench", tmp_path / "none.csv", "--no-progress"), "none.csv")


def test_instances_csv_pointing_at_missing_file(tmp_path, absnet):
    (tmp_path / "inst.csv").write_text("abs.onnx,missing.vnnlib,30\n")
    out = tmp_path / "results.csv"
    assert_clean_error(cli("bench", tmp_path / "inst.csv", "--out", out, "--no-progress"), "missing.vnnlib", out=out)


def test_bench_bad_filter_is_bad_input(tmp_path, absnet):
    (tmp_path / "inst.csv").write_text("abs.onnx,p.vnnlib,30\n")
    assert_clean_error(cli("bench", tmp_path / "inst.csv", "--filter", "(", "--no-progress"), "--filter")


def test_package_verify_stays_the_function_after_submodules_load():
    """`exactverify.verify` is the API function, whatever submodules were imported before."""
    import exactverify
    import exactverify.search.verifier  # noqa: F401
    from exactverify.metrics.bench import run_instances  # noqa: F401

    assert callable(exactverify.verify) and exactverify.verify.__module__ == "exactverify.api"


def test_result_files_are_ordinary_files_not_private_temporaries(tmp_path, absnet):
    import os
    (tmp_path / "p.vnnlib").write_text(vnnlib(y_at_least=1.5))
    out = tmp_path / "result.txt"
    r = cli("verify", absnet, tmp_path / "p.vnnlib", "--out", out)
    assert r.returncode == 0, r.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_verify_reports_progress_on_long_runs(monkeypatch):
    import exactverify.search.verifier as verifier
    from exactverify import verify
    from exactverify.bounds.crown import crown_bounds, linear_objective_bounds
    from exactverify.core.property import Case, OutputConstraint, Property
    from exactverify.testing import VERDICT_TIMEOUT, random_network

    monkeypatch.setattr(verifier, "_PROGRESS_SECONDS", 0.0)  # every box and MILP reports
    net = random_network([3, 20, 20, 2], seed=1)
    lo, hi = -np.ones(3), np.ones(3)
    ys = net.forward(np.random.default_rng(0).uniform(-1, 1, (2000, 3)))
    up = linear_objective_bounds(net, crown_bounds(net, lo, hi), np.array([[1.0, -1.0]]))[1][0]
    # unsafe: y0 - y1 >= t, halfway between the sampled maximum and CROWN's bound: it takes input splitting
    t = ((ys[:, 0] - ys[:, 1]).max() + up) / 2
    prop = Property(3, 2, [Case(lo, hi, [OutputConstraint(np.array([[-1.0, 1.0]]), np.array([-t]))])])
    lines = []
    result = verify(net, prop, timeout=VERDICT_TIMEOUT, progress=lines.append, attack_time=0)
    assert result.status == "unsat"
    assert lines and all(line.startswith("[") and "disjuncts refuted" in line for line in lines)
    assert any("input boxes done" in line for line in lines)


def test_verify_reports_progress_while_one_stage_runs_long(monkeypatch):
    """Lines keep coming while a single stage runs without reaching a hook (a long MILP, say): a timer does it."""
    import time

    import exactverify.search.verifier as verifier
    from exactverify import verify
    from exactverify.testing import VERDICT_TIMEOUT, make_instance

    monkeypatch.setattr(verifier, "_PROGRESS_SECONDS", 0.2)
    # the first stage, here made to run 1.5 s without reaching a hook
    monkeypatch.setattr(verifier._Run, "lipschitz_check", lambda self: time.sleep(1.5) or False)
    net, prop, expected, _ = make_instance(4)
    stamps, lines = [], []

    def progress(line):
        stamps.append(time.perf_counter())
        lines.append(line)

    start = time.perf_counter()
    result = verify(net, prop, timeout=VERDICT_TIMEOUT, progress=progress)
    assert result.status == expected
    during = [t for t in stamps if t - start < 1.5]
    assert len(during) >= 4, lines  # about one every 0.2 s
    assert max(b - a for a, b in zip([start, *during], during)) < 0.8, lines
    assert all(line.startswith("[") and "disjuncts refuted" in line for line in lines)


def test_verify_on_workers_reports_progress_while_pieces_run(monkeypatch):
    import exactverify.search.parallel as parallel
    from exactverify.search.verifier import verify
    from exactverify.testing import random_network
    from exactverify.core.property import Case, OutputConstraint, Property

    monkeypatch.setattr(parallel, "PROGRESS_SECONDS", 0.5)
    net = random_network([8, 80, 80, 80, 2], seed=0)
    prop = Property(8, 2, [Case(-np.ones(8), np.ones(8), [OutputConstraint(np.array([[-1.0, 0.0]]),
                                                                          np.array([-3.0]))])])
    lines = []
    result = parallel.verify_parallel(net, prop, timeout=5.0, workers=2, decide=verify, solo=0.0,
                                      progress=lines.append, attack_time=0)
    assert result.status == "timeout" and result.stats["pieces"] >= 1
    assert len(lines) >= 3 and all("pieces:" in line and "running" in line for line in lines), lines


def test_batch_progress_off_a_terminal_is_plain_lines(tmp_path, absnet):
    """--progress into a log (stderr not a terminal) gives no tqdm bar, only plain lines (none on a short run)."""
    (tmp_path / "p.vnnlib").write_text(vnnlib(y_at_least=0.5))
    (tmp_path / "inst.csv").write_text("abs.onnx,p.vnnlib,30\n" * 3)
    r = cli("bench", tmp_path / "inst.csv", "--progress", "--workers", 1)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "it/s" not in r.stderr and "inst/s" not in r.stderr and "%|" not in r.stderr
