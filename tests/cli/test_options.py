"""Options checked before any work: output paths, numeric values and the extras a run needs; one line, exit 2.

Most checks run `main` in-process on input files that do not exist: the option's error, not
"file not found", shows that the option was refused before anything was loaded or computed.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exactverify.cli.app import build_parser, main
from exactverify.testing import make_onnx

REPO = Path(__file__).resolve().parents[2]

ABS_NET = ([np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])  # y = |x0 - x1|
SAT_PROP = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
            "(assert (>= X_0 0.0))\n(assert (<= X_0 1.0))\n(assert (>= X_1 0.0))\n(assert (<= X_1 1.0))\n"
            "(assert (>= Y_0 0.5))\n")

# the positional arguments (and required options) of each command, on files that do not exist
ARGS = {
    "verify": ["missing.onnx", "missing.vnnlib"],
    "bench": ["missing.csv"],
    "info": ["missing.onnx"],
    "export": ["missing.onnx", "missing.vnnlib", "--format", "lp", "-o", "{ok}"],
    "robustness": ["missing.onnx", "missing.npz"],
    "certify": ["missing.onnx", "missing.npz", "--eps", "0.1"],
    "validate": ["missing.onnx", "missing.npz", "--eps", "0.1"],
    "audit": ["missing.csv"],
}
# every option that names a file the command writes
OUTPUTS = {
    "verify": ["--out", "--json"],
    "bench": ["--out", "--json", "--resume"],
    "info": ["--json"],
    "export": ["-o", "--json"],
    "robustness": ["--json", "--plot", "--resume"],
    "certify": ["--json"],
    "validate": ["--json", "--markdown", "--plot", "--resume"],
    "audit": ["--json", "--markdown", "--convert", "--resume"],
}
OUTPUT_FLAGS = {"--out", "--json", "--markdown", "--plot", "--output", "--convert", "--resume"}


def _commands():
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _run(capsys, command, *extra, tmp):
    args = [a.format(ok=tmp / "ok.out") for a in ARGS[command]]
    if "-o" in extra:  # export's -o given here replaces the harmless one above
        i = args.index("-o")
        del args[i:i + 2]
    rc = main([command, *args, *map(str, extra)])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_refused(rc, out, err, *needles):
    assert rc == 2, (rc, out, err)
    assert out == ""  # no verdict, no table: nothing ran
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("exactverify: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


# ---------------------------------------------------------------- defect 1: output paths, before the work

def test_the_output_table_lists_every_output_option_of_every_command():
    for name, parser in _commands().items():
        found = {a.option_strings[0] for a in parser._actions if OUTPUT_FLAGS & set(a.option_strings)}
        assert found == set(OUTPUTS[name]), name


@pytest.mark.parametrize("command, flag", [(c, f) for c, flags in OUTPUTS.items() for f in flags])
def test_every_output_option_is_checked_before_any_work(tmp_path, capsys, command, flag):
    afile = tmp_path / "afile"
    afile.write_text("a regular file, standing where a folder should be\n")
    (tmp_path / "adir").mkdir()
    before = sorted(tmp_path.rglob("*"))
    label = "-o/--output" if flag == "-o" else flag
    for path, problem in [(tmp_path / "nope" / "r.txt", f"output directory {tmp_path / 'nope'} does not exist"),
                          (tmp_path / "adir", "is a directory"),
                          # root may write anywhere: a path under a regular file stands for a place it cannot
                          (afile / "r.txt", f"{afile} is not a directory")]:
        rc, out, err = _run(capsys, command, flag, path, tmp=tmp_path)
        line = assert_refused(rc, out, err, problem)
        assert line.startswith(f"exactverify: error: {label} {path}: "), line
        assert "missing" not in line  # the inputs were never opened
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, no temporary left


def test_a_read_only_output_folder_is_refused(tmp_path, capsys, monkeypatch):
    """os.access says no (as it does for a user without write permission; root is always allowed, hence the patch)."""
    import os
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if Path(path) == tmp_path else real(path, mode))
    rc, out, err = _run(capsys, "verify", "--json", tmp_path / "r.json", tmp=tmp_path)
    assert_refused(rc, out, err, f"--json {tmp_path / 'r.json'}: output directory {tmp_path} is not writable")


def test_verify_with_an_unwritable_out_prints_no_verdict(tmp_path, capsys):
    net = make_onnx(tmp_path / "abs.onnx", *ABS_NET)
    (tmp_path / "p.vnnlib").write_text(SAT_PROP)
    for bad in (Path("/nonexistent/dir/r.txt"), tmp_path):
        rc = main(["verify", str(net), str(tmp_path / "p.vnnlib"), "--out", str(bad)])
        assert_refused(rc, *capsys.readouterr(), "--out", bad)
    rc = main(["verify", str(net), str(tmp_path / "p.vnnlib"), "--out", str(tmp_path / "r.txt"), "--workers", "1"])
    assert rc == 0 and capsys.readouterr().out.splitlines()[0] == "sat"
    assert (tmp_path / "r.txt").read_text().startswith("sat\n")


def test_export_checks_the_derived_part_files_too(tmp_path, capsys):
    """With several (case, disjunct) parts, export writes toy.c0.d0.lp, ...: one that is a folder is refused."""
    (tmp_path / "toy.c0.d1.lp").mkdir()
    rc = main(["export", str(REPO / "examples" / "toy_spirals.onnx"), str(REPO / "examples" / "toy_eps0.15.vnnlib"),
               "--format", "lp", "-o", str(tmp_path / "toy.lp")])
    assert_refused(rc, *capsys.readouterr(), "toy.c0.d1.lp", "is a directory")
    assert [p.name for p in tmp_path.iterdir()] == ["toy.c0.d1.lp"]


# ---------------------------------------------------------------- defect 2: values, the same check everywhere

BAD_VALUES = {
    "--timeout": (["nan", "inf", "0", "-1", "ten"], "must be a finite number > 0"),
    "--eps": (["nan", "0", "-0.1"], "must be a finite number > 0"),
    "--scale": (["nan", "0", "-255"], "must be a finite number > 0"),
    "--workers": (["0", "-3", "1.5"], "must be a whole number >= 1"),
    "--limit": (["0", "-1"], "must be a whole number >= 1"),
}


@pytest.mark.parametrize("flag", list(BAD_VALUES))
def test_bad_values_are_refused_with_the_same_message_on_every_command(tmp_path, capsys, flag):
    values, problem = BAD_VALUES[flag]
    commands = [name for name, p in _commands().items()
                if any(flag in a.option_strings for a in p._actions)]
    assert commands, flag
    for command in commands:
        for value in values:
            rc, out, err = _run(capsys, command, flag, value, tmp=tmp_path)
            line = assert_refused(rc, out, err)
            assert line == f"exactverify: error: {flag} {value}: {problem}", (command, line)
    assert not list(tmp_path.iterdir())


def test_a_domain_that_is_not_finite_is_refused_before_any_work(tmp_path, capsys):
    commands = [name for name, p in _commands().items()
                if any("--domain" in a.option_strings for a in p._actions)]
    assert commands
    for command in commands:
        for lo, hi, bad in (("nan", "1", "nan"), ("0", "inf", "inf")):
            rc, out, err = _run(capsys, command, "--domain", lo, hi, tmp=tmp_path)
            line = assert_refused(rc, out, err)
            assert line == f"exactverify: error: --domain {bad}: must be a finite number", (command, line)
    assert not list(tmp_path.iterdir())


def test_shared_options_have_the_same_check_and_help_everywhere():
    """One definition per option: the same `type=` check on every command, and the same help text."""
    for flag in ("--timeout", "--eps", "--scale", "--workers", "--limit"):
        actions = [a for p in _commands().values() for a in p._actions if flag in a.option_strings]
        assert len({a.type.__name__ for a in actions}) == 1, flag


def test_defaults_of_valid_runs_are_unchanged():
    parse = build_parser().parse_args
    verify = parse(["verify", "n.onnx", "p.vnnlib"])
    assert (verify.timeout, verify.workers) == (60.0, None)  # None: one per core, as 0 was
    bench = parse(["bench", "i.csv"])
    assert (bench.timeout, bench.workers, bench.limit) == (None, None, None)
    assert parse(["audit", "r.csv"]).workers == 1 and parse(["robustness", "n", "d"]).workers == 1
    assert parse(["robustness", "n", "d"]).scale is None and parse(["certify", "n", "d", "--eps", "1"]).scale == 1.0
    args = parse(["robustness", "n", "d", "--timeout", "2.5", "--workers", "3", "--limit", "4", "--eps", "0.1", "1",
                  "--scale", "255"])
    assert (args.timeout, args.workers, args.limit, args.eps, args.scale) == (2.5, 3, 4, [0.1, 1.0], 255.0)


def test_workers_default_is_one_per_core_and_the_help_says_so():
    from exactverify.cli.options import resolve_workers
    from exactverify.core.runtime import default_workers

    assert resolve_workers(None) == default_workers() and resolve_workers(2) == 2
    for name in ("verify", "bench"):
        text = " ".join(_commands()[name].format_help().split())
        assert "(default: one per core)" in text and "0: one per core" not in text, name
    assert "(default 1)" in " ".join(_commands()["audit"].format_help().split())


def test_timeout_nan_on_the_command_line_is_one_line_exit_2_without_work(tmp_path):
    """The measured case, as a user runs it: a subprocess, the real files, nothing printed on stdout."""
    net = make_onnx(tmp_path / "abs.onnx", *ABS_NET)
    (tmp_path / "p.vnnlib").write_text(SAT_PROP)
    r = subprocess.run([sys.executable, "-m", "exactverify", "verify", str(net), str(tmp_path / "p.vnnlib"),
                        "--timeout", "nan", "--out", str(tmp_path / "r.txt")],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert_refused(r.returncode, r.stdout, r.stderr, "--timeout nan: must be a finite number > 0")
    assert not (tmp_path / "r.txt").exists()


def test_bench_csv_timeouts_must_be_finite_and_positive(tmp_path, capsys):
    """A nan in the instances csv would remove the limit as `--timeout nan` did."""
    make_onnx(tmp_path / "abs.onnx", *ABS_NET)
    (tmp_path / "p.vnnlib").write_text(SAT_PROP)
    for value in ("nan", "0", "-5", "inf"):
        (tmp_path / "inst.csv").write_text(f"abs.onnx,p.vnnlib,60\nabs.onnx,p.vnnlib,{value}\n")
        rc = main(["bench", str(tmp_path / "inst.csv"), "--no-progress"])
        assert_refused(rc, *capsys.readouterr(), "inst.csv", "line 2", f"timeout {value!r}", "finite number > 0")


# ---------------------------------------------------------------- defect 3: --plot needs matplotlib

@pytest.mark.parametrize("command", ["robustness", "validate"])
def test_plot_without_matplotlib_is_refused_before_any_work(tmp_path, capsys, monkeypatch, command):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    png = tmp_path / "fig.png"
    rc, out, err = _run(capsys, command, "--plot", png, tmp=tmp_path)
    assert_refused(rc, out, err, f"--plot {png}", "matplotlib", 'pip install "exactverify[plot]"')
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- defect 4: bench without onnxruntime

@pytest.fixture
def sat_bench(tmp_path):
    make_onnx(tmp_path / "abs.onnx", *ABS_NET)
    (tmp_path / "p.vnnlib").write_text(SAT_PROP)
    (tmp_path / "inst.csv").write_text("abs.onnx,p.vnnlib,60\n")
    return tmp_path / "inst.csv"


def test_bench_without_onnxruntime_says_the_rechecks_were_skipped(sat_bench, monkeypatch):
    from exactverify.metrics.bench import format_summary, run_instances

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    report = run_instances(sat_bench, progress=False, workers=1)
    assert [r.status for r in report.rows] == ["sat"] and report.rows[0].onnxruntime_recheck == "skipped"
    s = report.summary()
    assert (s["sat_onnxruntime_rechecked"], s["sat_onnxruntime_failed"], s["sat_onnxruntime_skipped"]) == (0, 0, 1)
    text = format_summary(report)
    assert "re-checked by onnxruntime: skipped (onnxruntime not installed" in text
    assert "0 ok, 0 failed" not in text
    assert json.loads(json.dumps(report.as_dict()))["results"][0]["onnxruntime_recheck"] == "skipped"


def test_bench_with_onnxruntime_reports_the_rechecks_as_before(sat_bench):
    pytest.importorskip("onnxruntime")
    from exactverify.metrics.bench import format_summary, run_instances

    report = run_instances(sat_bench, progress=False, workers=1)
    assert "sat counterexamples re-checked by onnxruntime: 1 ok, 0 failed\n" in format_summary(report)
