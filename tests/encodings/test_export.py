"""`exactverify export`, the LP/MPS/SMT-LIB2 writers, and the encodings/ gallery solved by other tools."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from exactverify import load_network, load_vnnlib, verify
from exactverify.bounds.crown import compute_bounds
from exactverify.core.check import best_violation, check_point
from exactverify.cli.app import main
from exactverify.cli.export import export_texts, select_parts
from exactverify.encodings.milp import build_milp
from exactverify.encodings.writers import to_lp, to_mps, written_rows
from exactverify.core.network import Affine, MaxGroups, Network, ReLU
from exactverify.core.property import Case, OutputConstraint
from exactverify.testing import VERDICT_TIMEOUT, random_network
from exactverify.core.property import robustness_property

REPO = Path(__file__).resolve().parents[2]
GALLERY = REPO / "encodings"
NAME = re.compile(r"^(?P<prop>.+)\.c(?P<case>\d+)\.d(?P<disjunct>\d+)\.(?P<ext>lp|mps|smt2)$")


def _highs():
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)  # the process' HiGHS scheduler is single-threaded (solvers/highs.py)
    return h


def _read_with_highs(path):
    """(status, objective, {column name: value}) of an LP/MPS file solved by HiGHS."""
    h = _highs()
    assert str(h.readModel(str(path))) == "HighsStatus.kOk", path
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    lp = h.getLp()
    values = {}
    if status == "Optimal":
        col = h.getSolution().col_value
        values = {h.getColName(j)[1]: col[j] for j in range(lp.num_col_)}
    return status, h.getInfo().objective_function_value, values


def _read_with_z3(path):
    import z3

    s = z3.Solver()
    s.add(z3.parse_smt2_file(str(path)))
    r = s.check()
    values = {}
    if r == z3.sat:
        m = s.model()
        values = {d.name(): float(m[d].as_fraction()) for d in m.decls()}
    return str(r), values


# ------------------------------------------------------------------ the gallery

def _gallery():
    parts = defaultdict(list)
    for f in sorted(GALLERY.iterdir()):
        m = NAME.match(f.name)
        if m:
            parts[m["prop"]].append((f, m["ext"]))
    return parts


def test_gallery_files_solved_by_other_tools_agree_with_verify():
    """LP/MPS (written by exactverify) read and solved by HiGHS' own reader; SMT-LIB2 by Z3's parser."""
    parts = _gallery()
    assert set(parts) == {"toy_eps0.05", "toy_eps0.15"}
    net = load_network(REPO / "examples" / "toy_spirals.onnx")
    for stem, files in parts.items():
        prop = load_vnnlib(REPO / "examples" / f"{stem}.vnnlib")
        expected = verify(net, prop, timeout=VERDICT_TIMEOUT).status
        assert expected in ("sat", "unsat")
        n_parts = sum(len(c.disjuncts) for c in prop.cases)
        for ext in ("lp", "mps", "smt2"):
            mine = [f for f, e in files if e == ext]
            assert len(mine) == n_parts, (stem, ext, mine)
            feasible = []
            for f in mine:
                if ext == "smt2":
                    status, values = _read_with_z3(f)
                    assert status in ("sat", "unsat"), (f, status)
                    ok = status == "sat"
                else:
                    status, objective, values = _read_with_highs(f)
                    assert status in ("Optimal", "Infeasible"), (f, status)
                    ok = status == "Optimal" and objective <= 0
                if ok:  # a candidate: a real (near-)counterexample of the network
                    x = np.array([values[f"x{i}"] for i in range(prop.n_inputs)])
                    # Z3 answers with a vertex, typically ON the margin row A y = b + tolerance, which
                    # the float re-check need not accept as it is (verify polishes such points); the
                    # MILP optimum (min s) lies deep inside and re-checks as it is.
                    assert check_point(net, prop, x) is not None or best_violation(net, prop, x) <= 1e-4, f
                    feasible.append(f)
            verdict = "sat" if feasible else "unsat"
            assert verdict == expected, (stem, ext, verdict, expected)


def test_gallery_is_what_regenerate_writes(monkeypatch):
    """The committed files are the current export of the examples (else: python encodings/regenerate.py)."""
    monkeypatch.chdir(REPO)
    net = load_network("examples/toy_spirals.onnx")
    for stem, files in _gallery().items():
        prop = load_vnnlib(f"examples/{stem}.vnnlib")
        for fmt in ("lp", "mps", "smt2"):
            paths = sorted(f for f, e in files if e == fmt)
            parts = [tuple(int(v) for v in NAME.match(p.name).group("case", "disjunct")) for p in paths]
            texts = export_texts(net, prop, fmt, parts)
            for p, text in zip(paths, texts):
                assert p.read_text() == text, f"{p} is stale: run python encodings/regenerate.py"


# ------------------------------------------------------------------ writers: nothing rounded

def _awkward_model():
    """A MILP with ReLUs, a max-pool group, a nearly stable (relaxed) ReLU and non-short decimals."""
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal((6, 3)).astype(np.float32).astype(np.float64)
    w1[5] = [1e-7, 0.0, 0.0]  # a neuron whose bounds straddle 0 by < 1e-6: relaxed, not branched
    layers = [Affine(w1, np.array([0.1, -0.2, 0.3, 0.05, -0.1, 0.0])), ReLU(6),
              MaxGroups(np.array([[0, 1, 2], [3, 4, 5]]), 6),
              Affine(rng.standard_normal((2, 2)) / 3.0, np.array([1 / 3, -2 / 7]))]
    net = Network(layers, input_shape=(1, 3), output_shape=(1, 2))
    lo, hi = -np.ones(3) / 3, np.ones(3) * 0.7
    case = Case(lo, hi, [OutputConstraint(np.array([[1.0, -1.0]]), np.array([0.1]))],
                np.array([[1.0, 1.0, 1.0]]), np.array([0.9]))
    lb = compute_bounds(net, lo, hi, "interval")
    return build_milp(net, lb, case, case.disjuncts[0])


@pytest.mark.parametrize("fmt", ["lp", "mps"])
def test_lp_and_mps_read_back_bit_for_bit(tmp_path, fmt):
    model = _awkward_model()
    assert any(np.isfinite(model.row_lower) & np.isfinite(model.row_upper) & (model.row_lower < model.row_upper))
    path = tmp_path / f"m.{fmt}"
    path.write_text((to_lp if fmt == "lp" else to_mps)(model, ["test"]))
    h = _highs()
    assert str(h.readModel(str(path))) == "HighsStatus.kOk"
    lp = h.getLp()
    names = [h.getColName(j)[1] for j in range(lp.num_col_)]
    perm = [names.index(n) for n in model.col_names]
    assert np.array_equal(np.array(lp.col_lower_)[perm], model.col_lower)
    assert np.array_equal(np.array(lp.col_upper_)[perm], model.col_upper)
    assert np.array_equal(np.array(lp.col_cost_)[perm], model.objective)
    rows = written_rows(model)
    assert lp.num_row_ == len(rows)
    a = lp.a_matrix_
    read = sp.csc_matrix((a.value_, a.index_, a.start_), shape=(lp.num_row_, lp.num_col_)).tocsr()[:, perm]
    ours = sp.vstack([model.A[i] for _, _, _, i in rows]).tocsr()
    assert abs(read - ours).max() == 0
    rl, ru = np.array(lp.row_lower_), np.array(lp.row_upper_)
    row_names = [h.getRowName(i)[1] for i in range(lp.num_row_)]
    assert row_names == [r[0] for r in rows]
    for k, (_, kind, rhs, _) in enumerate(rows):
        if kind in "EG":
            assert rl[k] == rhs
        if kind in "EL":
            assert ru[k] == rhs
    import highspy
    integer = [t == highspy.HighsVarType.kInteger for t in lp.integrality_]
    assert np.array_equal(np.array(integer)[perm], model.integrality)


# ------------------------------------------------------------------ the command

def _toy_args(tmp_path, fmt, *extra):
    return ["export", str(REPO / "examples" / "toy_spirals.onnx"), str(REPO / "examples" / "toy_eps0.15.vnnlib"),
            "--format", fmt, "-o", str(tmp_path / f"toy.{fmt}"), *extra]


def test_export_writes_one_file_per_case_and_disjunct(tmp_path, capsys):
    assert main(_toy_args(tmp_path, "lp")) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "toy.c0.d0.lp"), str(tmp_path / "toy.c0.d1.lp")]
    assert all(Path(p).is_file() for p in printed)
    assert main(_toy_args(tmp_path, "smt2", "--case", "0", "--disjunct", "1", "--tightening", "interval")) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "toy.smt2")]
    text = (tmp_path / "toy.smt2").read_text()
    assert "(set-logic QF_LRA)" in text and "(check-sat)" in text and "disjunct 1 of 2" in text


@pytest.mark.parametrize("extra, message", [
    (["--case", "1"], "--case 1: the property has 1 case(s)"),
    (["--disjunct", "2"], "--disjunct 2: case 0 has 2 disjunct(s)"),
])
def test_export_bad_selection_is_one_line_exit_2(tmp_path, capsys, extra, message):
    assert main(_toy_args(tmp_path, "mps", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not os.listdir(tmp_path)


def test_export_missing_output_directory_is_exit_2(tmp_path, capsys):
    args = _toy_args(tmp_path, "lp")
    args[-1] = str(tmp_path / "nope" / "toy.lp")
    assert main(args) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_export_of_a_bad_property_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(declare-const X_0 Real)\n(assert (>= X_0 1.0))\n(assert (<= X_0 0.0))\n")
    args = _toy_args(tmp_path, "lp")
    args[2] = str(bad)
    assert main(args) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_export_matches_what_verify_solves_on_random_networks():
    """Each exported part of a random property, solved by HiGHS from the file: same verdict as verify."""
    import tempfile

    for seed in range(6):
        net = random_network([3, 8, 6, 3], seed=seed)
        x0 = np.random.default_rng(seed).uniform(-1, 1, 3)
        prop = robustness_property(x0, 0.3, int(np.argmax(net.forward(x0))), 3)
        expected = verify(net, prop, timeout=VERDICT_TIMEOUT).status
        parts = select_parts(prop)
        feasible = False
        with tempfile.TemporaryDirectory() as d:
            for (ci, di), text in zip(parts, export_texts(net, prop, "mps", parts)):
                path = Path(d) / f"p{ci}{di}.mps"
                path.write_text(text)
                status, objective, values = _read_with_highs(path)
                if status == "Optimal" and objective <= 0:
                    x = np.array([values[f"x{i}"] for i in range(3)])
                    feasible |= check_point(net, prop, x) is not None
                else:
                    assert status == "Infeasible"
        assert ("sat" if feasible else "unsat") == expected, seed
