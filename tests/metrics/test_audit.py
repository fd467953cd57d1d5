"""audit: another tool's sat/unsat claims checked exactly (exactverify.metrics.audit, `exactverify audit`)."""

import json

import numpy as np
import pytest

from exactverify.testing import make_onnx
from exactverify import load_network, load_vnnlib
from exactverify.metrics.audit import audit, claim_of, convert_long, format_markdown, read_claims
from exactverify.core.check import check_point
from exactverify.cli.app import main
from exactverify.core.errors import InputError
from exactverify.testing import VERDICT_TIMEOUT

ABS_NET = ([np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])  # |x0 - x1|


def vnnlib(y_at_least):
    return ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
            "(assert (>= X_0 0.0))\n(assert (<= X_0 1.0))\n(assert (>= X_1 0.0))\n(assert (<= X_1 1.0))\n"
            f"(assert (>= Y_0 {y_at_least}))\n")


@pytest.fixture
def bench(tmp_path):
    """A folder with abs.onnx (y = |x0 - x1| on [0,1]^2) and two properties: sat (y >= 0.5), unsat (y >= 1.5)."""
    (tmp_path / "nets").mkdir()
    (tmp_path / "specs").mkdir()
    make_onnx(tmp_path / "nets" / "abs.onnx", *ABS_NET)
    (tmp_path / "specs" / "sat.vnnlib").write_text(vnnlib(0.5))
    (tmp_path / "specs" / "unsat.vnnlib").write_text(vnnlib(1.5))
    return tmp_path


def test_claim_words():
    assert [claim_of(w) for w in ("holds", "UNSAT", "safe", "violated", "sat", "unsafe", "excluded:sat")] == \
        ["unsat"] * 3 + ["sat"] * 4
    assert [claim_of(w) for w in ("timeout", "unknown", "error", "", "maybe")] == [""] * 5


def test_wrong_claims_are_flagged_and_right_ones_confirmed(bench, capsys):
    (bench / "results.csv").write_text(
        "network,property,result,time\n"
        "nets/abs.onnx,specs/sat.vnnlib,violated,1.0\n"      # right
        "nets/abs.onnx,specs/unsat.vnnlib,holds,2.0\n"       # right
        "nets/abs.onnx,specs/sat.vnnlib,unsat,3.0\n"         # WRONG: a counterexample exists
        "nets/abs.onnx,specs/unsat.vnnlib,sat,4.0\n"         # WRONG: proven unsat
        "nets/abs.onnx,specs/unsat.vnnlib,timeout,116\n")    # no claim
    out, md = bench / "audit.json", bench / "audit.md"
    rc = main(["audit", str(bench / "results.csv"), "--json", str(out), "--markdown", str(md), "--no-progress",
               "--timeout", str(VERDICT_TIMEOUT)])
    assert rc == 1
    text = capsys.readouterr().out
    assert text.count("WRONG") >= 2 and "confirmed 2, WRONG 2, undecided 0" in text
    rep = json.loads(out.read_text())
    assert rep["summary"]["claims"] == 4 and rep["summary"]["no_claim"] == 1
    rows = {(r["property"], r["result"]): r for r in rep["claims"]}
    assert rows[("specs/sat.vnnlib", "violated")]["outcome"] == "confirmed"
    assert rows[("specs/unsat.vnnlib", "holds")]["outcome"] == "confirmed"
    assert rows[("specs/unsat.vnnlib", "sat")]["outcome"] == "WRONG"
    assert "proven unsat" in rows[("specs/unsat.vnnlib", "sat")]["evidence"]
    wrong_unsat = rows[("specs/sat.vnnlib", "unsat")]
    assert wrong_unsat["outcome"] == "WRONG" and wrong_unsat["extra"]["time"] == "3.0"
    x = np.asarray(wrong_unsat["counterexample"]["x"])
    net = load_network(bench / "nets" / "abs.onnx")
    assert check_point(net, load_vnnlib(bench / "specs" / "sat.vnnlib"), x) is not None
    assert wrong_unsat["onnxruntime_recheck"] in ("ok", "skipped")  # skipped where onnxruntime is not installed
    text = md.read_text()
    assert "### WRONG claims" in text and "| **all** | **4** | **2** | **2** | **0** |" in text
    assert "Counterexamples" in text


def test_all_claims_right_exits_0_and_headerless_vnncomp_layout(bench, capsys):
    # VNN-COMP layout, paths relative to --root, with and without the benchmark column
    (bench / "sub").mkdir()
    (bench / "sub" / "res.csv").write_text("nets/abs.onnx,specs/sat.vnnlib,0.5,violated,1.2\n"
                                           "toy,nets/abs.onnx,specs/unsat.vnnlib,0.5,holds,3.4\n"
                                           "nets/abs.onnx,specs/unsat.vnnlib,0.5,timeout,116\n")
    claims = read_claims(bench / "sub" / "res.csv", root=bench)
    assert [(c.claim, c.extra["run_time"]) for c in claims] == [("sat", "1.2"), ("unsat", "3.4"), ("", "116")]
    assert claims[1].extra["benchmark"] == "toy" and claims[0].network_path == bench / "nets" / "abs.onnx"
    rc = main(["audit", str(bench / "sub" / "res.csv"), "--root", str(bench), "--no-progress",
               "--timeout", str(VERDICT_TIMEOUT)])
    assert rc == 0
    assert "confirmed 2, WRONG 0, undecided 0" in capsys.readouterr().out


def test_long_table_one_tool_year_and_convert(bench, capsys):
    # the results_all_tools_long.csv layout: bare file names, found one folder below the root
    (bench / "long.csv").write_text(
        "year,tool,network,property,result,time_s\n"
        "2021,nv_jl,abs.onnx,sat.vnnlib,sat,1\n"
        "2021,nv_jl,abs.onnx,unsat.vnnlib,sat,2\n"
        "2021,nnv,abs.onnx,unsat.vnnlib,unsat,3\n"
        "2022,nv_jl,abs.onnx,unsat.vnnlib,timeout,4\n")
    assert main(["audit", str(bench / "long.csv")]) == 2  # several tool-years: pick one
    assert "--tool" in capsys.readouterr().err
    text = convert_long(bench / "long.csv", "NV.jl", "2021", out=bench / "nv.csv")
    assert text.splitlines() == ["network,property,result,time_s", "nets/abs.onnx,specs/sat.vnnlib,sat,1",
                                 "nets/abs.onnx,specs/unsat.vnnlib,sat,2"]
    report = audit(bench / "nv.csv", timeout=VERDICT_TIMEOUT)
    assert [r.outcome for r in report.rows] == ["confirmed", "WRONG"]
    rc = main(["audit", str(bench / "long.csv"), "--tool", "nnv", "--year", "2021", "--no-progress"])
    assert rc == 0
    assert "nnv 2021: 1 claims" in capsys.readouterr().out
    assert "### WRONG claims" in format_markdown(report)


@pytest.mark.parametrize("content,problem", [
    (None, "not found"),
    ("nets/abs.onnx,specs/sat.vnnlib,holds\n", "expected network,property,prepare_time,result,run_time"),
    ("network,property,verdict\nnets/abs.onnx,specs/sat.vnnlib,holds\n", "must name at least"),
    ("network,property,result\nnets/abs.onnx,specs/nope.vnnlib,holds\n", "not found"),
    ("network,property,result\n", "no results"),
    ("network,property,result\nspecs/sat.vnnlib,specs/sat.vnnlib,holds\n", "sat.vnnlib"),
])
def test_bad_input_exits_2_with_one_line(bench, capsys, content, problem):
    path = bench / "bad.csv"
    if content is not None:
        path.write_text(content)
    assert main(["audit", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0], err


def test_read_claims_rejects_tool_without_tool_column(bench):
    (bench / "r.csv").write_text("network,property,result\nnets/abs.onnx,specs/sat.vnnlib,holds\n")
    with pytest.raises(InputError, match="no 'tool' column"):
        read_claims(bench / "r.csv", tool="nnv")


@pytest.mark.slow
@pytest.mark.timeout(900)  # four claims of up to 120 s each: above the 300 s default
def test_nv_jl_2021_acasxu_wrong_claims(benchmarks):
    """Two of NV.jl's six wrong ACAS Xu claims (2021), and two of its right ones."""
    acas = benchmarks / "acasxu"
    pick = {("ACASXU_run2a_1_3_batch_2000.onnx", "prop_4.vnnlib"), ("ACASXU_run2a_1_2_batch_2000.onnx",
            "prop_4.vnnlib"), ("ACASXU_run2a_1_7_batch_2000.onnx", "prop_4.vnnlib"),
            ("ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib")}
    report = audit(acas / "results_all_tools_long.csv", tool="nv_jl", year="2021", timeout=120,
                   ground_truth=acas / "ground_truth.csv", only=lambda c: (c.network, c.property) in pick)
    got = {(r.network, r.property): r.outcome for r in report.rows}
    assert got[("ACASXU_run2a_1_3_batch_2000.onnx", "prop_4.vnnlib")] == "WRONG"
    assert got[("ACASXU_run2a_1_2_batch_2000.onnx", "prop_4.vnnlib")] == "WRONG"
    assert got[("ACASXU_run2a_1_7_batch_2000.onnx", "prop_4.vnnlib")] == "confirmed"
    assert got[("ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib")] == "confirmed"
    assert all((r.outcome == "WRONG") == (r.claim != r.expected) for r in report.rows)


def test_published_witness_that_rechecks_answers_sat(bench):
    (bench / "w").mkdir()
    (bench / "w" / "abs__sat.txt").write_text("; published\n((X_0 0.0)\n (X_1 1.0)\n (Y_0 1.0))\n")
    (bench / "w" / "abs__unsat.txt").write_text("((X_0 0.5)\n (X_1 0.5)\n (Y_0 0.0))\n")  # does not re-check
    (bench / "r.csv").write_text("network,property,result\nnets/abs.onnx,specs/sat.vnnlib,holds\n"
                                 "nets/abs.onnx,specs/unsat.vnnlib,holds\n")
    report = audit(bench / "r.csv", timeout=VERDICT_TIMEOUT, witnesses=bench / "w")
    first, second = report.rows
    assert first.outcome == "WRONG" and "witness abs__sat.txt" in first.reason
    assert first.counterexample["x"] == [0.0, 1.0]
    assert second.outcome == "confirmed" and "witness" not in second.reason
    assert "published counterexample" in format_markdown(report)
    with pytest.raises(InputError, match="witness folder"):
        audit(bench / "r.csv", witnesses=bench / "nowhere")


def test_interrupted_audit_resumes_from_its_progress_file(bench, capsys, monkeypatch):
    import exactverify.metrics.audit as auditing
    (bench / "results.csv").write_text("network,property,result\n" + "".join(
        f"nets/abs.onnx,specs/{s}.vnnlib,{w}\n" for s, w in (("sat", "violated"), ("unsat", "holds"),
                                                               ("sat", "unsat"))))
    real, calls = auditing._check, []

    def second_one_interrupted(job):
        calls.append(job[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(auditing, "_check", second_one_interrupted)
    out = bench / "audit.json"
    args = ["audit", str(bench / "results.csv"), "--json", str(out), "--no-progress", "--timeout", str(VERDICT_TIMEOUT)]
    assert main(args) == 130
    progress = bench / "audit.json.progress.jsonl"
    assert f"progress in {progress}; run again to resume" in capsys.readouterr().err
    assert [json.loads(line).get("line") for line in progress.read_text().splitlines()] == [None, 2]
    calls.clear()
    monkeypatch.setattr(auditing, "_check", lambda job: calls.append(job[0]) or real(job))
    assert main(args) == 1  # the third claim is WRONG
    assert calls == [3, 4] and not progress.exists()
    rep = json.loads(out.read_text())
    assert [r["outcome"] for r in rep["claims"]] == ["confirmed", "confirmed", "WRONG"]
