"""Tests for the VNN-LIB reader and writer (exactverify.loaders.vnnlib)."""

import functools
import gzip
import math
import random
import re
import tarfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from exactverify.core.errors import InputError
from exactverify.core.property import Case, OutputConstraint, Property
from exactverify.loaders.vnnlib import load_vnnlib, parse_vnnlib, write_vnnlib

BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
ACAS = BENCHMARKS / "acasxu" / "vnnlib"


def benchmark_files():
    if not BENCHMARKS.is_dir():
        return []
    return sorted(BENCHMARKS.rglob("*.vnnlib"))


@functools.lru_cache(maxsize=None)
def load_benchmark(path):
    """Each benchmark file is parsed once for all the tests that look at it (read-only)."""
    return load_vnnlib(path)


def need_benchmarks():
    if not BENCHMARKS.is_dir():
        pytest.skip("../shared/benchmarks is not present")


# --- an independent reference: evaluate the asserts of a file directly ----------
# Deliberately naive and exact (Fractions), sharing no code with the parser.

def read_sexprs(text):
    tokens = re.findall(r"\(|\)|[^\s()]+", re.sub(r";[^\n]*", " ", text))
    stack = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    assert len(stack) == 1
    return stack[0]


def term_value(expr, env):
    if isinstance(expr, str):
        return env[expr] if expr in env else Fraction(expr)
    op, *args = expr
    values = [term_value(a, env) for a in args]
    if op == "+":
        return sum(values)
    if op == "-":
        return -values[0] if len(values) == 1 else values[0] - sum(values[1:])
    if op == "*":
        return math.prod(values)
    raise AssertionError(op)


def formula_holds(expr, env):
    op, *args = expr
    if op == "and":
        return all(formula_holds(a, env) for a in args)
    if op == "or":
        return any(formula_holds(a, env) for a in args)
    values = [term_value(a, env) for a in args]
    # The parser's documented reading: '<' and '>' are non-strict.
    compare = {"<=": lambda a, b: a <= b, "<": lambda a, b: a <= b,
               ">=": lambda a, b: a >= b, ">": lambda a, b: a >= b, "=": lambda a, b: a == b}[op]
    return all(compare(a, b) for a, b in zip(values, values[1:]))


def text_holds(text, x, y):
    env = {f"X_{i}": Fraction(float(v)) for i, v in enumerate(x)}
    env.update({f"Y_{j}": Fraction(float(v)) for j, v in enumerate(y)})
    return all(formula_holds(cmd[1], env) for cmd in read_sexprs(text) if cmd[0] == "assert")


def compare_on_points(text, prop, points):
    """Property.satisfied_by agrees with the direct evaluation; returns how many points hold."""
    n_true = 0
    for x, y in points:
        expected = text_holds(text, x, y)
        assert prop.satisfied_by(np.asarray(x, float), np.asarray(y, float)) == expected, (x, y)
        n_true += expected
    return n_true


def points_near(prop, rng, n, spread=0.2, y_scale=1.0):
    """Random points, half inside a case's box (up to spread outside), with random outputs."""
    lo = np.min([c.lower for c in prop.cases], axis=0)
    hi = np.max([c.upper for c in prop.cases], axis=0)
    pad = spread * (hi - lo) + 1e-3
    points = []
    for k in range(n):
        if k % 2:
            case = prop.cases[rng.integers(len(prop.cases))]
            x = rng.uniform(case.lower, case.upper)
        else:
            x = rng.uniform(lo - pad, hi + pad)
        points.append((x, rng.normal(0.0, y_scale, prop.n_outputs)))
    return points


# --- the benchmark files -----------------------------------------------------------

@pytest.mark.parametrize("path", benchmark_files(), ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_every_benchmark_file_parses(path):
    prop = load_benchmark(path)
    assert prop.source == str(path)
    declared = path.read_text().count("declare-const X_")
    assert prop.n_inputs == declared
    assert prop.n_outputs == path.read_text().count("declare-const Y_")
    assert prop.cases
    for case in prop.cases:
        assert np.all(np.isfinite(case.lower)) and np.all(np.isfinite(case.upper))
        assert np.all(case.lower <= case.upper)
        assert case.disjuncts
        for d in case.disjuncts:
            assert d.A.shape == (len(d.b), prop.n_outputs)


def test_acasxu_prop_1_is_one_box_and_one_row():
    need_benchmarks()
    prop = load_vnnlib(ACAS / "prop_1.vnnlib", n_inputs=5, n_outputs=5)
    assert (prop.n_inputs, prop.n_outputs, len(prop.cases)) == (5, 5, 1)
    case = prop.cases[0]
    np.testing.assert_array_equal(case.lower, [0.6, -0.5, -0.5, 0.45, -0.5])
    np.testing.assert_array_equal(case.upper, [0.679857769, 0.5, 0.5, 0.5, -0.45])
    assert case.input_A is None
    assert len(case.disjuncts) == 1
    np.testing.assert_array_equal(case.disjuncts[0].A, [[-1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(case.disjuncts[0].b, [-3.991125645861615])


def test_acasxu_prop_2_has_four_conjoined_rows():
    need_benchmarks()
    prop = load_vnnlib(ACAS / "prop_2.vnnlib")
    assert len(prop.cases) == 1 and len(prop.cases[0].disjuncts) == 1
    d = prop.cases[0].disjuncts[0]
    expected = np.zeros((4, 5))
    expected[:, 0] = -1
    expected[np.arange(4), np.arange(1, 5)] = 1  # Y_j - Y_0 <= 0
    np.testing.assert_array_equal(d.A, expected)
    np.testing.assert_array_equal(d.b, np.zeros(4))


def test_acasxu_prop_6_has_two_boxes_with_four_disjuncts_each():
    need_benchmarks()
    prop = load_vnnlib(ACAS / "prop_6.vnnlib")
    assert len(prop.cases) == 2
    assert [len(c.disjuncts) for c in prop.cases] == [4, 4]
    assert [tuple(c.lower[1:2]) + tuple(c.upper[1:2]) for c in prop.cases] == [
        (0.11140846, 0.499999896), (-0.499999896, -0.11140846)]
    for case in prop.cases:
        for j, d in enumerate(case.disjuncts, start=1):
            row = np.zeros(5)
            row[0], row[j] = -1, 1
            np.testing.assert_array_equal(d.A, [row])


def test_acasxu_prop_8_has_three_disjuncts_of_two_rows():
    need_benchmarks()
    prop = load_vnnlib(ACAS / "prop_8.vnnlib")
    assert len(prop.cases) == 1
    disjuncts = prop.cases[0].disjuncts
    assert [d.A.shape for d in disjuncts] == [(2, 5)] * 3
    for k, d in enumerate(disjuncts):
        expected = np.zeros((2, 5))
        expected[:, k + 2] = 1
        expected[0, 0] = expected[1, 1] = -1  # Y_{k+2} <= Y_0 and Y_{k+2} <= Y_1
        np.testing.assert_array_equal(d.A, expected)


@pytest.mark.parametrize("subdir", ["mnist_fc/vnnlib_2021", "mnist_fc/vnnlib_2022", "eran_mnist_relu_9_200/vnnlib"])
def test_mnist_robustness_specs_are_one_box_with_nine_disjuncts(subdir):
    need_benchmarks()
    files = sorted((BENCHMARKS / subdir).glob("*.vnnlib"))
    assert files
    for path in files:
        eps = float(re.search(r"_(?:eps_)?([0-9.]+)\.vnnlib$", path.name)[1])
        prop = load_benchmark(path)
        assert (prop.n_inputs, prop.n_outputs, len(prop.cases)) == (784, 10, 1), path
        case = prop.cases[0]
        assert np.all(case.upper - case.lower <= 2 * eps * (1 + 1e-6)), path
        assert np.all(case.lower >= 0) and np.all(case.upper <= 1), path
        assert len(case.disjuncts) == 9, path
        rows = np.vstack([d.A for d in case.disjuncts])
        label = int(np.flatnonzero(rows[0] == 1)[0])  # y_label - y_j <= 0 for every j != label
        others = [j for j in range(10) if j != label]
        expected = np.zeros((9, 10))
        expected[:, label] = 1
        expected[np.arange(9), others] = -1
        np.testing.assert_array_equal(rows, expected, err_msg=str(path))


def test_marabou_targeted_attack_is_one_conjunction_of_nine_rows():
    need_benchmarks()
    for path in sorted((BENCHMARKS / "marabou_mnist_small" / "vnnlib").glob("*.vnnlib")):
        target = int(re.search(r"target(\d)", path.name)[1])
        prop = load_benchmark(path)
        assert len(prop.cases) == 1 and len(prop.cases[0].disjuncts) == 1
        d = prop.cases[0].disjuncts[0]
        assert d.A.shape == (9, 10)
        assert np.all(d.A[:, target] == -1) and np.all(d.A.sum(axis=1) == 0)


def test_vnncomp2021_test_small_reads_box_and_output_from_one_or():
    need_benchmarks()
    prop = load_vnnlib(BENCHMARKS / "vnncomp2021_test" / "test_small.vnnlib")
    (case,) = prop.cases
    assert (case.lower[0], case.upper[0]) == (-1.0, 1.0)
    np.testing.assert_array_equal(case.disjuncts[0].A, [[-1.0]])
    np.testing.assert_array_equal(case.disjuncts[0].b, [-100.0])


def test_coav_specs_in_the_tarball_parse():
    need_benchmarks()
    with tarfile.open(BENCHMARKS / "coav" / "coav.tar.xz") as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".vnnlib")]
        assert len(members) == 500
        for m in members:
            prop = parse_vnnlib(tar.extractfile(m).read().decode(), source=m.name)
            assert (prop.n_inputs, prop.n_outputs, len(prop.cases)) == (6, 1, 1)
            (d,) = prop.cases[0].disjuncts
            np.testing.assert_array_equal(d.A, [[1.0]])
            np.testing.assert_array_equal(d.b, [0.0])


@pytest.mark.parametrize("name", [f"prop_{k}" for k in range(1, 11)])
def test_acasxu_semantics_match_direct_evaluation(name):
    need_benchmarks()
    text = (ACAS / f"{name}.vnnlib").read_text()
    prop = parse_vnnlib(text)
    rng = np.random.default_rng(1)
    points = points_near(prop, rng, 400, y_scale=3.0)  # prop_1 needs Y_0 >= 3.99
    assert 0 < compare_on_points(text, prop, points) < len(points)


def test_mnist_semantics_match_direct_evaluation():
    need_benchmarks()
    text = (BENCHMARKS / "mnist_fc" / "vnnlib_2022" / "prop_3_0.03.vnnlib").read_text()
    prop = parse_vnnlib(text)
    rng = np.random.default_rng(2)
    points = points_near(prop, rng, 30, spread=0.0005)
    # Points inside the box whose outputs favour the label: the disjunction fails.
    label = int(np.flatnonzero(prop.cases[0].disjuncts[0].A[0] == 1)[0])
    y = -np.ones(10)
    y[label] = 1
    points.append((prop.cases[0].lower, y))
    assert 0 < compare_on_points(text, prop, points) < len(points)


@pytest.mark.slow  # a timing, not a correctness check: CI skips it (shared machines are noisy)
def test_largest_files_parse_fast():
    need_benchmarks()
    path = max(benchmark_files(), key=lambda p: p.stat().st_size)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        load_vnnlib(path)
        best = min(best, time.perf_counter() - start)
    assert best < 0.1, f"{path.name} took {best:.3f} s"


# --- syntax and semantics on hand-written and random formulas ------------------------

HEADER = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
"""
BOX = """(assert (<= X_0 1))
(assert (>= X_0 -1))
(assert (<= X_1 1))
(assert (>= X_1 -1))
"""


def test_numbers_in_every_spelling():
    text = HEADER + """
    (assert (>= X_0 (- 3)))   ; unary minus on a number
    (assert (<= X_0 -2.5E-1))
    (assert (>= X_1 1e-3)) (assert (<= X_1 +2.))
    (assert (<= Y_0 .5))
    (assert (>= Y_1 -2.5E+2))
    (assert (<= Y_2 (- 7 (* 2 1.5))))
    """
    (case,) = parse_vnnlib(text).cases
    np.testing.assert_array_equal(case.lower, [-3.0, 0.001])
    np.testing.assert_array_equal(case.upper, [-0.25, 2.0])
    (d,) = case.disjuncts
    np.testing.assert_array_equal(d.A, [[1, 0, 0], [0, -1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(d.b, [0.5, 250.0, 4.0])


def test_linear_terms_are_collected_exactly():
    text = HEADER + BOX + "(assert (>= (+ (* 2 Y_0) (- Y_1) 0.1) (- (* 0.5 Y_2) 0.2 Y_0)))"
    (d,) = parse_vnnlib(text).cases[0].disjuncts
    # 2 y0 - y1 + 0.1 >= 0.5 y2 - 0.2 - y0   <=>   -3 y0 + y1 + 0.5 y2 <= 0.3 (exactly, then rounded once)
    np.testing.assert_array_equal(d.A, [[-3, 1, 0.5]])
    assert d.b[0] == 0.3


def test_repeated_bounds_keep_the_tightest():
    text = HEADER + BOX + "(assert (<= X_0 0.5)) (assert (<= X_0 0.75)) (assert (>= X_1 -2)) (assert (>= 0.25 X_1))"
    (case,) = parse_vnnlib(text).cases
    np.testing.assert_array_equal(case.upper, [0.5, 0.25])
    np.testing.assert_array_equal(case.lower, [-1, -1])


def test_scaled_single_input_bounds():
    text = HEADER + """(assert (<= (* 2 X_0) 1)) (assert (<= (* -4 X_0) 2))
    (assert (<= (* 3 X_1) 1)) (assert (>= X_1 -1))"""
    (case,) = parse_vnnlib(text).cases
    # x0 <= 1/2 and x0 >= -1/2 are float64 numbers, so they go to the box alone; 1/3 is not,
    # so 3 x1 <= 1 stays a row and the box gets the bound rounded outward.
    assert (case.lower[0], case.upper[0]) == (-0.5, 0.5)
    assert Fraction(case.upper[1]) > Fraction(1, 3) and case.upper[1] == np.nextafter(1 / 3, 1)
    np.testing.assert_array_equal(case.input_A, [[0, 3]])
    np.testing.assert_array_equal(case.input_b, [1])


def test_scaled_single_input_bounds_need_a_lower_bound():
    with pytest.raises(InputError, match="X_0 has no lower bound"):
        parse_vnnlib(HEADER + "(assert (<= (* 2 X_0) 1)) (assert (>= (* -4 X_0) 2)) (assert (<= X_1 0)) (assert (>= X_1 0))")


def test_multi_input_atoms_become_input_rows():
    text = HEADER + BOX + "(assert (<= (+ X_0 X_1) 0.5)) (assert (<= Y_0 Y_1))"
    (case,) = parse_vnnlib(text).cases
    np.testing.assert_array_equal(case.input_A, [[1, 1]])
    np.testing.assert_array_equal(case.input_b, [0.5])
    assert case.contains(np.array([0.2, 0.2])) and not case.contains(np.array([0.4, 0.4]))


def test_equality_is_two_inequalities_and_strict_is_non_strict():
    text = HEADER + BOX + "(assert (= Y_0 (* 2 Y_1))) (assert (< Y_2 1)) (assert (> Y_2 -1))"
    prop = parse_vnnlib(text)
    (d,) = prop.cases[0].disjuncts
    np.testing.assert_array_equal(d.A, [[1, -2, 0], [-1, 2, 0], [0, 0, 1], [0, 0, -1]])
    x = np.zeros(2)
    assert prop.satisfied_by(x, np.array([2.0, 1.0, 1.0]))  # boundary of '<' counts
    assert not prop.satisfied_by(x, np.array([2.0, 1.5, 0.0]))


def test_chained_comparison_means_each_neighbouring_pair():
    prop = parse_vnnlib(HEADER + BOX + "(assert (<= Y_0 Y_1 Y_2))")
    (d,) = prop.cases[0].disjuncts
    np.testing.assert_array_equal(d.A, [[1, -1, 0], [0, 1, -1]])


def test_comments_whitespace_and_missing_final_newline():
    text = ("; leading comment (with parentheses)\n(declare-const X_0 Real)(declare-const Y_0 Real)"
            "\t(assert\n  (and ; comment inside ( an expression\n (<=\tX_0\r\n 1)\n\n (>= X_0 0)))"
            "(assert (<= Y_0 0)) ; trailing")
    (case,) = parse_vnnlib(text).cases
    assert (case.lower[0], case.upper[0]) == (0.0, 1.0)
    np.testing.assert_array_equal(case.disjuncts[0].A, [[1.0]])


def test_ignored_smtlib_commands():
    prop = parse_vnnlib("(set-logic QF_LRA)" + HEADER + BOX + "(assert (<= Y_0 0)) (check-sat) (get-model) (exit)")
    assert len(prop.cases[0].disjuncts[0].b) == 1


def test_boxes_in_or_branches_with_shared_outputs_group_by_box():
    text = HEADER + """(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (<= Y_0 0))
                                    (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (<= Y_1 0))
                                    (and (>= X_0 2) (<= X_0 3) (>= X_1 0) (<= X_1 1) (<= Y_2 0))))"""
    prop = parse_vnnlib(text)
    assert [len(c.disjuncts) for c in prop.cases] == [2, 1]
    assert prop.cases[1].lower[0] == 2


def test_term_without_output_atoms_is_an_always_true_disjunct():
    text = HEADER + BOX + "(assert (or (<= Y_0 0) (<= (+ X_0 X_1) 10)))"
    prop = parse_vnnlib(text)
    # The second alternative holds on the whole box, so it swallows the first.
    (case,) = [c for c in prop.cases if c.input_A is not None]
    assert len(case.disjuncts) == 1 and case.disjuncts[0].A.shape == (0, 3)
    assert prop.satisfied_by(np.zeros(2), np.array([5.0, 5, 5]))
    plain = parse_vnnlib(HEADER + BOX)
    (d,) = plain.cases[0].disjuncts
    assert d.A.shape == (0, 3) and d.violation(np.zeros(3)) < 0


def test_counts_are_checked_when_given():
    assert parse_vnnlib(HEADER + BOX, n_inputs=2, n_outputs=3).n_inputs == 2
    with pytest.raises(InputError, match="declares 2 inputs .* but 5 were expected"):
        parse_vnnlib(HEADER + BOX, source="p.vnnlib", n_inputs=5)
    with pytest.raises(InputError, match="declares 3 outputs .* but 10 were expected"):
        parse_vnnlib(HEADER + BOX, n_outputs=10)


def test_gzipped_file(tmp_path):
    path = tmp_path / "p.vnnlib.gz"
    path.write_bytes(gzip.compress((HEADER + BOX + "(assert (<= Y_0 0))").encode()))
    assert load_vnnlib(path).cases[0].upper[0] == 1


# Random formulas in a mix of spellings, compared point by point with the direct evaluation.

def spell_number(rng, value):
    style = rng.randrange(5)
    if style == 0:
        return repr(value)
    if style == 1:
        return f"{value:.4e}"
    if style == 2:
        return f"{value:.3E}"
    if style == 3 and value < 0:
        return f"(- {-value!r})"
    return repr(round(value, 2))


def random_linear(rng, kind, n, every_variable=False):
    """A random linear term over kind_0..kind_{n-1}, spelled in one of several ways."""
    variables = list(range(n)) if every_variable else rng.sample(range(n), rng.randint(1, n))
    parts = []
    for i in variables:
        v = f"{kind}_{i}"
        coeff = spell_number(rng, round(rng.choice([-1, 1]) * rng.uniform(0.1, 3), 3))
        parts.append(rng.choice([v, f"(- {v})", f"(* {coeff} {v})", f"(* {v} {coeff})"]))
    if rng.random() < 0.5:
        parts.append(spell_number(rng, round(rng.uniform(-1, 1), 3)))
    if len(parts) == 1:
        return parts[0]
    if rng.random() < 0.3:
        return f"(- {parts[0]} {' '.join(parts[1:])})"
    return f"(+ {' '.join(parts)})"


def random_formula(rng, depth, n_in, n_out):
    if depth == 0 or rng.random() < 0.3:
        op = rng.choice(["<=", ">=", "<", ">"])
        if rng.random() < 0.2:
            # Over several inputs, so that it becomes an input row and never empties the box.
            return f"({op} {random_linear(rng, 'X', n_in, every_variable=True)} {spell_number(rng, 0.5)})"
        lhs = random_linear(rng, "Y", n_out)
        rhs = random_linear(rng, "Y", n_out) if rng.random() < 0.5 else spell_number(rng, round(rng.uniform(-2, 2), 2))
        return f"({op} {lhs} {rhs})"
    op = rng.choice(["and", "or"])
    return f"({op} " + " ".join(random_formula(rng, depth - 1, n_in, n_out)
                                  for _ in range(rng.randint(1, 3))) + ")"


def random_file(rng, n_in=3, n_out=3):
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(n_in):
        lo = round(rng.uniform(-1, -0.1), 3)
        hi = round(rng.uniform(0.1, 1), 3)
        if rng.random() < 0.5:
            lines.append(f"(assert (and (>= X_{i} {spell_number(rng, lo)}) (>= {spell_number(rng, hi)} X_{i})))")
        else:
            lines.append(f"(assert (<= X_{i} {spell_number(rng, hi)})) ; upper\n"
                         f"(assert (>= X_{i} {spell_number(rng, lo)}))")
        if i == 0 and rng.random() < 0.5:  # alternative sub-boxes, all inside the box
            a, b, c = (round(lo + (hi - lo) * t, 3) for t in (0.25, 0.5, 0.75))
            lines.append(f"(assert (or (<= X_0 {a}) (and (>= (* 2 X_0) {2 * b}) (<= X_0 {c}))))")
    for _ in range(rng.randint(1, 3)):
        lines.append(f"(assert {random_formula(rng, 3, n_in, n_out)})")
    return "\n".join(lines)


def test_random_formulas_match_direct_evaluation():
    rng = random.Random(7)
    nrng = np.random.default_rng(7)
    totals = [0, 0]
    for _ in range(40):
        text = random_file(rng)
        prop = parse_vnnlib(text)
        points = points_near(prop, nrng, 120, y_scale=2.0)
        n_true = compare_on_points(text, prop, points)
        totals[0] += n_true
        totals[1] += len(points) - n_true
    assert min(totals) > 300, totals  # both outcomes are well exercised


# --- writing -----------------------------------------------------------------------

def assert_same_property(a, b):
    assert (a.n_inputs, a.n_outputs, len(a.cases)) == (b.n_inputs, b.n_outputs, len(b.cases))
    for ca, cb in zip(a.cases, b.cases):
        np.testing.assert_array_equal(ca.lower, cb.lower)
        np.testing.assert_array_equal(ca.upper, cb.upper)
        assert (ca.input_A is None) == (cb.input_A is None)
        if ca.input_A is not None:
            np.testing.assert_array_equal(ca.input_A, cb.input_A)
            np.testing.assert_array_equal(ca.input_b, cb.input_b)
        assert len(ca.disjuncts) == len(cb.disjuncts)
        for da, db in zip(ca.disjuncts, cb.disjuncts):
            np.testing.assert_array_equal(da.A, db.A)
            np.testing.assert_array_equal(da.b, db.b)


@pytest.mark.parametrize("name", ["acasxu/vnnlib/prop_1.vnnlib", "acasxu/vnnlib/prop_6.vnnlib",
                                  "acasxu/vnnlib/prop_8.vnnlib", "mnist_fc/vnnlib_2022/prop_0_0.05.vnnlib",
                                  "vnncomp2021_test/test_small.vnnlib"])
def test_round_trip_of_benchmark_files(name, tmp_path):
    need_benchmarks()
    prop = load_vnnlib(BENCHMARKS / name)
    write_vnnlib(prop, tmp_path / "out.vnnlib")
    again = load_vnnlib(tmp_path / "out.vnnlib")
    assert_same_property(prop, again)


def test_round_trip_of_random_formulas(tmp_path):
    rng = random.Random(11)
    nrng = np.random.default_rng(11)
    for k in range(40):
        text = random_file(rng)
        prop = parse_vnnlib(text)
        write_vnnlib(prop, tmp_path / f"{k}.vnnlib")
        again = load_vnnlib(tmp_path / f"{k}.vnnlib")
        assert_same_property(prop, again)
        for x, y in points_near(prop, nrng, 50, y_scale=2.0):
            assert again.satisfied_by(x, y) == text_holds(text, x, y)


def test_round_trip_of_a_hand_built_property(tmp_path):
    cases = [
        Case(np.array([0.0, -1.0]), np.array([0.1, 1e-5]),
             [OutputConstraint(np.array([[1.0, -1.0], [0.25, 3e10]]), np.array([0.0, -2.5])),
              OutputConstraint(np.array([[0.0, 1.0]]), np.array([7.0]))],
             np.array([[1.0, 1.0], [3.0, 0.0]]), np.array([0.05, 0.2])),
        Case(np.array([1.0, 1.0]), np.array([2.0, 2.0]), [OutputConstraint(np.zeros((0, 2)), np.zeros(0))]),
    ]
    prop = Property(2, 2, cases)
    write_vnnlib(prop, tmp_path / "p.vnnlib")
    again = load_vnnlib(tmp_path / "p.vnnlib")
    assert len(again.cases) == 2
    np.testing.assert_array_equal(again.cases[0].input_A, [[1, 1], [3, 0]])
    # 3 x0 <= 0.2 also tightens the box, to just above 1/15, which the row implies.
    assert Fraction(1, 15) <= Fraction(again.cases[0].upper[0]) < Fraction(1, 15) + Fraction(1, 10**15)
    assert again.cases[1].disjuncts[0].A.shape == (0, 2)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        x = rng.uniform(-0.2, 2.2, 2)
        y = rng.normal(0, 5, 2)
        assert prop.satisfied_by(x, y) == again.satisfied_by(x, y)


def test_write_rejects_an_invalid_property(tmp_path):
    prop = Property(1, 1, [Case(np.array([0.0]), np.array([np.inf]), [OutputConstraint(np.zeros((0, 1)), np.zeros(0))])])
    with pytest.raises(InputError, match="X_0 has no finite"):
        write_vnnlib(prop, tmp_path / "p.vnnlib")


# --- bad input: always an InputError naming the file, the line and the problem -----------------

GOOD = HEADER + BOX + "(assert (<= Y_0 Y_1))\n"  # 10 lines; an appended line is line 11


BAD_INPUTS = {  # what is wrong -> (file text, expected part of the message)
    "empty file": ("", "the file is empty"),
    "only comments": ("; only a comment\n", "the file is empty"),
    "no asserts": (HEADER, "no (assert ...)"),
    "unclosed paren": (GOOD + "(assert (<= Y_0 1)\n", "line 11: unbalanced parentheses: this '(' is never closed"),
    "extra close paren": (GOOD + "(assert (<= Y_0 1)))\n", "line 11: unbalanced parentheses: ')' without a matching '('"),
    "unknown operator": (GOOD + "(assert (foo X_0 1))\n", "line 11: unknown operator 'foo'"),
    "division": (GOOD + "(assert (<= (/ Y_0 2) 1))\n", "line 11: unknown operator '/' in a term"),
    "undeclared variable": (GOOD + "(assert (<= Y_7 1))\n", "line 11: Y_7 is used but not declared"),
    "not X/Y style": (GOOD + "(assert (<= Z 1))\n", "line 11: unknown symbol 'Z'"),
    "leading zero index": (GOOD + "(assert (<= X_01 1))\n", "line 11: unknown symbol 'X_01'"),
    "nonlinear product": (GOOD + "(assert (<= (* X_0 X_1) 1))\n", "line 11: non-linear term"),
    "nonlinear product of sums": (GOOD + "(assert (<= (* Y_0 (+ Y_1 1)) 1))\n", "line 11: non-linear term"),
    "two dots": (GOOD + "(assert (<= Y_0 1.2.3))\n", "line 11: cannot parse the number '1.2.3'"),
    "exponent without digits": (GOOD + "(assert (<= Y_0 1e))\n", "line 11: cannot parse the number '1e'"),
    "overflow": (GOOD + "(assert (<= Y_0 1e400))\n", "line 11: the number '1e400' is out of the float64 range"),
    "huge exponent": (GOOD + "(assert (<= Y_0 1e-999999999))\n", "line 11: the number '1e-999999999' is out of the float64 range"),
    "coefficient overflow": (GOOD + "(assert (<= (* 1e300 1e300 Y_0) 1))\n", "line 11: a coefficient or bound of this comparison is out of"),
    "non-Real type": (GOOD.replace("X_1 Real", "X_1 Int"), "line 2: X_1 is declared as Int; only Real is supported"),
    "declare non-X/Y": (GOOD + "(declare-const Z Real)\n", "line 11: cannot declare 'Z'"),
    "declared twice": (GOOD + "(declare-const X_0 Real)\n", "line 11: X_0 is declared twice (first on line 1)"),
    "declare-fun": (GOOD + "(declare-fun X_2 () Real)\n", "line 11: unknown command 'declare-fun'"),
    "gap in indices": (GOOD + "(declare-const X_3 Real)\n", "inputs must be declared as X_0, X_1, ... without gaps, but X_2 is not declared"),
    "huge index": (GOOD + "(declare-const Y_99999999999999 Real)\n", "but Y_3 is not declared"),
    "no outputs declared but used": (GOOD.replace("(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n", ""),
     "line 7: Y_0 is used but not declared"),
    "no outputs declared": ("(declare-const X_0 Real)\n(assert (<= X_0 1))\n(assert (>= X_0 0))\n", "no output variables declared"),
    "input without lower bound": (GOOD.replace("(assert (>= X_1 -1))\n", ""), "input X_1 has no lower bound"),
    "input without bounds": (GOOD.replace("(assert (<= X_0 1))\n", "").replace("(assert (>= X_0 -1))\n", ""), "input X_0 has no lower or upper bound"),
    "empty box": (GOOD + "(assert (>= X_1 2))\n", "line 11: empty input box: X_1 >= 2.0 (line 11) and X_1 <= 1.0 (line 8)"),
    "mixed input output": (GOOD + "(assert (<= X_0 Y_0))\n", "line 11: mixed input/output constraint not supported"),
    "DNF blow-up across asserts": (GOOD + "(assert (or (<= Y_0 0) (<= Y_1 0)))\n" * 17, "would expand to more than 100000 terms"),
    "DNF blow-up in and": (GOOD + "(assert (and" + " (or (<= Y_0 0) (<= Y_1 0))" * 17 + "))\n", "line 11: this formula would expand"),
    "nesting too deep": (GOOD + "(assert " + "(and " * 300 + "(<= Y_0 1)" + ")" * 301 + "\n", "line 11: expressions are nested more than"),
    "constant false": (GOOD + "(assert (<= 1 0))\n", "the asserts can never hold"),
    "empty or": (GOOD + "(assert (or))\n", "line 11: 'or' needs at least one argument"),
    "bare symbol as formula": (GOOD + "(assert X_0)\n", "line 11: expected a formula"),
    "term as formula": (GOOD + "(assert (+ Y_0 1))\n", "line 11: expected a formula, found the arithmetic term"),
    "formula as term": (GOOD + "(assert (<= (<= Y_0 1) 1))\n", "line 11: expected a number, variable or linear term"),
    "comparison with one side": (GOOD + "(assert (<= Y_0))\n", "line 11: '<=' needs at least two arguments"),
    "assert with two formulas": (GOOD + "(assert (<= Y_0 1) (<= Y_1 1))\n", "line 11: assert takes exactly one formula"),
    "empty parentheses": (GOOD + "(assert ())\n", "line 11: empty parentheses"),
    "list as operator": (GOOD + "(assert ((<= Y_0 1)))\n", "line 11: expected an operator or command name"),
    "stray token": (GOOD + "X_0\n", "line 11: expected '(' to start a command, found 'X_0'"),
}


@pytest.mark.parametrize("text, problem", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_raises_input_error_naming_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "bad_spec.vnnlib"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_vnnlib(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": "), message
    assert problem in message, message
    assert info.value.path == str(path)


def test_missing_file_is_an_input_error(tmp_path):
    path = tmp_path / "nowhere.vnnlib"
    with pytest.raises(InputError, match=r"nowhere\.vnnlib: cannot read the property file"):
        load_vnnlib(path)


def test_binary_file_is_an_input_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\xff\xfe\x00")
    with pytest.raises(InputError, match=r"model\.onnx: not a text file"):
        load_vnnlib(path)


def test_mutated_files_give_a_property_or_an_input_error():
    """Random edits of a valid file never escape as another exception type."""
    base = HEADER + BOX + ("(assert (or (and (<= (+ Y_0 (* -2.5e-1 Y_1)) (- 3)) (>= Y_2 1e-3))"
                           " (and (<= X_0 0.5) (= Y_1 (- Y_2 Y_0)))))\n")
    alphabet = "()XY_0123456789.-+eE ;\n<=>andor*"
    rng = random.Random(3)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(1500):
        text = base
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(text))
            edit = rng.randrange(3)
            if edit == 0:
                text = text[:k] + text[k + 1:]
            elif edit == 1:
                text = text[:k] + rng.choice(alphabet) + text[k:]
            else:
                j = rng.randrange(len(text))
                text = text[:k] + text[j:j + rng.randint(1, 12)] + text[k:]
        try:
            parse_vnnlib(text, source="fuzz.vnnlib")
            outcomes["ok"] += 1
        except InputError as e:
            assert str(e).startswith("fuzz.vnnlib: ")
            outcomes["error"] += 1
    assert outcomes["ok"] > 10 and outcomes["error"] > 10, outcomes


def test_api_load_vnnlib_takes_the_network_for_its_sizes(tmp_path):
    """`exactverify.load_vnnlib(path, net)` checks the property against the network's sizes, and a
    mismatch is one short line naming the sizes (not the network's weights)."""
    from exactverify import api
    from exactverify.testing import random_network

    path = tmp_path / "p.vnnlib"
    path.write_text("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
                    "(declare-const Y_1 Real)\n(assert (>= X_0 0))\n(assert (<= X_0 1))\n"
                    "(assert (>= X_1 0))\n(assert (<= X_1 1))\n(assert (>= Y_0 Y_1))\n")
    assert api.load_vnnlib(path, random_network([2, 3, 2])).n_inputs == 2
    with pytest.raises(InputError) as err:
        api.load_vnnlib(path, random_network([3, 3, 2]))
    assert "3" in str(err.value) and len(str(err.value)) < 300
