"""Exact pointwise robustness (Bastani et al. metrics) against a brute-force oracle, verify, and the CLI."""

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from pathlib import Path

from exactverify.testing import make_onnx
from exactverify import verify
from exactverify.core.network import Affine, ReLU
from exactverify.loaders.datasets import load_dataset
from exactverify.metrics.bastani import bastani_estimate
from exactverify.metrics.dataset import dataset_metrics, dataset_robustness
from exactverify.metrics.norms import norm_distance
from exactverify.metrics.radius import pointwise_robustness
from exactverify.testing import VERDICT_TIMEOUT, random_network
from exactverify.core.property import robustness_property

REPO = Path(__file__).resolve().parents[2]

DOMAIN = (-2.0, 2.0)


# ------------------------------------------------------------------ the oracle

def _pattern_forms(net, pattern):
    """For a fixed activation pattern: region rows (G x + g >= 0) and the output map A x + a."""
    n = net.input_size
    A, a = np.eye(n), np.zeros(n)
    G, g = [], []
    k = 0
    for layer in net.layers:
        if isinstance(layer, Affine):
            W = layer.dense_weight()
            A, a = W @ A, W @ a + layer.bias
        else:
            on = np.array(pattern[k:k + layer.size], dtype=bool)
            k += layer.size
            s = np.where(on, 1.0, -1.0)
            G.append(s[:, None] * A)
            g.append(s * a)
            A, a = A * on[:, None], a * on
    return np.vstack(G), np.concatenate(g), A, a


def _min_norm(G, g, c, c0, x0, norm, lo, hi):
    """min ||x - x0|| s.t. G x + g >= 0, c x + c0 >= 0, lo <= x <= hi; None if infeasible."""
    import highspy
    n = len(x0)
    rows = np.vstack([G, c[None, :]])
    rl = -np.concatenate([g, [c0]])
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("primal_feasibility_tolerance", 1e-10)
    h.setOptionValue("dual_feasibility_tolerance", 1e-10)
    inf = highspy.kHighsInf
    if norm == "2":
        ncol, cost, cl, cu, M, Ml = n, np.zeros(n), lo, hi, rows, rl
    elif norm == "inf":  # x, t
        ncol = n + 1
        cost = np.r_[np.zeros(n), 1.0]
        cl, cu = np.r_[lo, 0.0], np.r_[hi, inf]
        I = np.eye(n)
        M = np.vstack([np.c_[rows, np.zeros(len(rl))], np.c_[I, np.ones(n)], np.c_[-I, np.ones(n)]])
        Ml = np.r_[rl, x0, -x0]
    else:  # x, e with e >= |x - x0|
        ncol = 2 * n
        cost = np.r_[np.zeros(n), np.ones(n)]
        cl, cu = np.r_[lo, np.zeros(n)], np.r_[hi, np.full(n, inf)]
        I = np.eye(n)
        M = np.vstack([np.c_[rows, np.zeros((len(rl), n))], np.c_[I, I], np.c_[-I, I]])
        Ml = np.r_[rl, x0, -x0]
    h.addVars(ncol, cl, cu)
    h.changeColsCost(ncol, np.arange(ncol, dtype=np.int32), cost)
    for r, l in zip(M, Ml):
        idx = np.flatnonzero(r)
        h.addRow(float(l), inf, len(idx), idx.astype(np.int32), r[idx])
    if norm == "2":
        h.passHessian(n, n, highspy.HessianFormat.kTriangular, np.arange(n + 1, dtype=np.int32),
                      np.arange(n, dtype=np.int32), np.full(n, 2.0))
        h.changeColsCost(n, np.arange(n, dtype=np.int32), -2.0 * x0)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    x = np.array(h.getSolution().col_value)[:n]
    d = x - x0
    return float({"inf": np.max(np.abs(d)), "1": np.sum(np.abs(d)), "2": np.linalg.norm(d)}[norm])


def oracle_rho(net, x0, label, norm, domain):
    """Brute force: every activation pattern, every other class, one LP (QP for L2) each."""
    n_relu = sum(l.size for l in net.layers if isinstance(l, ReLU))
    lo, hi = np.full(len(x0), domain[0]), np.full(len(x0), domain[1])
    best = math.inf
    for pattern in itertools.product([0, 1], repeat=n_relu):
        G, g, A, a = _pattern_forms(net, pattern)
        for j in range(net.output_size):
            if j != label:
                v = _min_norm(G, g, A[j] - A[label], a[j] - a[label], x0, norm, lo, hi)
                if v is not None:
                    best = min(best, v)
    return best


# finite rho (one at a degenerate vertex: [3, 4, 3] seed 7) and one network robust on the whole domain
FINITE = [([2, 4, 3], 0), ([2, 3, 3, 3], 2), ([3, 4, 3], 7), ([2, 5, 3], 4), ([3, 3, 2, 3], 6), ([2, 6, 4], 3)]
CASES = FINITE + [([2, 4, 3], 1)]


def _point(net, seed):
    rng = np.random.default_rng(100 + seed)
    return rng.uniform(-0.5, 0.5, net.input_size)


@pytest.mark.parametrize("norm", ["inf", "1", "2"])
@pytest.mark.parametrize("sizes,seed", CASES)
def test_rho_matches_brute_force_oracle(sizes, seed, norm):
    net = random_network(sizes, seed=seed)
    x0 = _point(net, seed)
    label = int(np.argmax(net.forward(x0)))
    rho = oracle_rho(net, x0, label, norm, DOMAIN)
    r = pointwise_robustness(net, x0, label, norm=norm, domain=DOMAIN, timeout=VERDICT_TIMEOUT)
    assert r.status == "exact", (r.lower, r.upper, rho, r.stats)
    if math.isinf(rho):
        assert math.isinf(r.lower) and math.isinf(r.upper)
        return
    tol = 1e-6 * max(1.0, rho)
    assert r.lower <= rho + tol and r.upper >= rho - tol, (r.lower, r.upper, rho)
    assert r.upper - rho <= 1e-5 * max(1.0, rho)
    # the counterexample at the upper bound re-checks: strict flip in float64 and float32, in the domain
    ce = r.counterexample
    x = np.array(ce["x"])
    assert np.all(x >= DOMAIN[0]) and np.all(x <= DOMAIN[1])
    assert np.array_equal(x.astype(np.float32).astype(np.float64), x)
    for y in (net.forward(x), net.forward32(x).astype(np.float64)):
        assert max(v for j, v in enumerate(y) if j != label) > y[label]
    assert norm_distance(x, x0, norm) <= r.upper


@pytest.mark.parametrize("sizes,seed", CASES)
def test_both_linf_methods_match_the_oracle(sizes, seed):
    """The default closes L-inf brackets with region descent and fixed-radius checks; the radius MILP
    ("milp") must agree with it and with the oracle."""
    net = random_network(sizes, seed=seed)
    x0 = _point(net, seed)
    label = int(np.argmax(net.forward(x0)))
    rho = oracle_rho(net, x0, label, "inf", DOMAIN)
    checks = pointwise_robustness(net, x0, label, norm="inf", domain=DOMAIN, timeout=VERDICT_TIMEOUT)
    milp = pointwise_robustness(net, x0, label, norm="inf", domain=DOMAIN, timeout=VERDICT_TIMEOUT, method="milp")
    assert checks.status == milp.status == "exact"
    assert "checks" not in milp.stats
    if math.isinf(rho):
        assert math.isinf(checks.upper) and math.isinf(milp.upper)
        return
    assert checks.stats.get("checks", 0) >= 1 or checks.stats.get("region_lps", 0) >= 1
    for r in (checks, milp):
        assert r.lower - 1e-6 * max(1.0, rho) <= rho <= r.upper + 1e-6 * max(1.0, rho)


@pytest.mark.parametrize("method", ["checks", "milp"])
def test_max_radius_below_rho_is_a_bound_not_infinity(method):
    """Nothing flips within max_radius < rho: rho >= max_radius is all that is known, never rho = inf."""
    sizes, seed = FINITE[0]
    net = random_network(sizes, seed=seed)
    x0 = _point(net, seed)
    label = int(np.argmax(net.forward(x0)))
    rho = oracle_rho(net, x0, label, "inf", DOMAIN)
    assert math.isfinite(rho)
    # no Bastani point: then no point at all is found within max_radius (the attack stays inside it)
    r = pointwise_robustness(net, x0, label, norm="inf", domain=DOMAIN, timeout=VERDICT_TIMEOUT, max_radius=0.5 * rho,
                             method=method, bastani=False)
    assert r.status != "exact" and math.isinf(r.upper)
    assert 0.5 * rho * (1 - 1e-6) <= r.lower <= 0.5 * rho * (1 + 1e-9)
    assert not r.stats.get("robust_on_domain")


def test_l1_with_no_point_found_falls_back_to_the_checks():
    """L1 normally goes to the ball MILPs once the descents found a point; where nothing in the domain
    flips (the label's output raised by 100) no point is found, and the check of the whole domain
    proves rho = inf, as before."""
    net = random_network([2, 4, 3], seed=0)
    x0 = _point(net, 0)
    label = int(np.argmax(net.forward(x0)))
    net.layers[-1].bias[label] += 100.0
    r = pointwise_robustness(net, x0, label, norm="1", domain=DOMAIN, timeout=VERDICT_TIMEOUT)
    assert r.status == "exact" and math.isinf(r.upper) and r.stats.get("robust_on_domain")
    assert r.stats.get("checks", 0) >= 1 and r.stats["milps"] == 0


@pytest.mark.parametrize("sizes,seed", FINITE)
def test_verify_below_rho_is_unsat(sizes, seed):
    net = random_network(sizes, seed=seed)
    x0 = _point(net, seed)
    r = pointwise_robustness(net, x0, norm="inf", domain=DOMAIN, timeout=VERDICT_TIMEOUT)
    assert r.status == "exact" and math.isfinite(r.upper)
    n_out = net.output_size
    below = verify(net, robustness_property(x0, 0.999 * r.upper, r.label, n_out, DOMAIN), timeout=VERDICT_TIMEOUT)
    assert below.status == "unsat"
    at = verify(net, robustness_property(x0, r.upper, r.label, n_out, DOMAIN), timeout=VERDICT_TIMEOUT)
    assert at.status == "sat"


def test_binary_disjunction_agrees_with_per_class():
    net = random_network([3, 6, 5, 4], seed=7)
    x0 = _point(net, 7)
    a = pointwise_robustness(net, x0, norm="inf", domain=DOMAIN, timeout=VERDICT_TIMEOUT, disjunction="per_class")
    b = pointwise_robustness(net, x0, norm="inf", domain=DOMAIN, timeout=VERDICT_TIMEOUT, disjunction="binary")
    assert a.status == b.status == "exact"
    assert abs(a.upper - b.upper) <= 1e-6 * max(1, a.upper)


def test_misclassified_label_gives_zero_and_unbounded_domain():
    net = random_network([2, 4, 3], seed=0)
    x0 = _point(net, 0)
    pred = int(np.argmax(net.forward(x0)))
    wrong = (pred + 1) % 3
    r = pointwise_robustness(net, x0, wrong, norm="2", timeout=VERDICT_TIMEOUT)
    assert r.lower == 0.0 and r.upper <= 1e-6 and r.status == "exact"
    # no domain: the search region comes from the attack alone
    r = pointwise_robustness(net, x0, norm="inf", timeout=VERDICT_TIMEOUT)
    rho = oracle_rho(net, x0, pred, "inf", (-1e3, 1e3))
    assert r.status == "exact" and abs(r.upper - rho) <= 1e-5 * max(1, rho)


def test_bastani_estimate_is_an_upper_bound():
    for sizes, seed in CASES:
        net = random_network(sizes, seed=seed)
        x0 = _point(net, seed)
        for norm in ("inf", "1", "2"):
            r = pointwise_robustness(net, x0, norm=norm, domain=DOMAIN, timeout=VERDICT_TIMEOUT)
            est = bastani_estimate(net, x0, None, norm, DOMAIN)
            if est is not None:
                assert est >= r.lower - 1e-7


def test_timeout_returns_a_sound_bracket():
    """With no time at all (timeout 0, whatever the machine) the bracket still holds the exact radius."""
    net = random_network([3, 6, 5, 4], seed=7)
    x0 = _point(net, 7)
    r = pointwise_robustness(net, x0, norm="1", domain=DOMAIN, timeout=0.0)
    exact = pointwise_robustness(net, x0, norm="1", domain=DOMAIN, timeout=VERDICT_TIMEOUT)
    assert exact.status == "exact"
    assert r.lower <= exact.upper + 1e-9 and r.upper >= exact.lower - 1e-9
    assert r.status in ("timeout", "exact")


def test_dataset_metrics_and_resume(tmp_path):
    net = random_network([2, 4, 3], seed=0)
    rng = np.random.default_rng(0)
    X = rng.uniform(-0.5, 0.5, (5, 2))
    y = np.argmax(net.forward(X), axis=1)
    y[3] = (y[3] + 1) % 3  # one misclassified point
    resume = tmp_path / "progress.jsonl"
    rep = dataset_robustness(net, X, y, norm="inf", domain=DOMAIN, eps_list=[0.05, 10.0], timeout=VERDICT_TIMEOUT,
                             resume_path=resume, progress=False, baseline=True)
    assert [p["index"] for p in rep["points"]] == list(range(5))
    assert rep["summary"]["misclassified"] == [3]
    rhos = [p["radius"]["upper"] for p in rep["points"] if p["status"] != "misclassified"]
    assert all(p["status"] == "exact" for p in rep["points"] if p["status"] != "misclassified")
    big = rep["metrics"][1]
    assert big["points"] == 4 and big["adversarial_frequency"] == sum(r <= 10 for r in rhos) / 4
    assert big["adversarial_severity"] == pytest.approx(np.mean([r for r in rhos if r <= 10]))
    lines = resume.read_text().splitlines()
    assert "config" in json.loads(lines[0]) and len(lines) == 6
    # resume: a finished point is not redone (its marker survives), a missing one is
    recs = [json.loads(l) for l in lines[1:]]
    recs = [r for r in recs if r["index"] != 4]
    recs[0]["seconds"] = 12345.0
    resume.write_text(lines[0] + "\n" + "".join(json.dumps(r) + "\n" for r in recs) + '{"index": 4, "lab')
    rep2 = dataset_robustness(net, X, y, norm="inf", domain=DOMAIN, eps_list=[0.05], timeout=VERDICT_TIMEOUT,
                              resume_path=resume, progress=False)
    assert rep2["points"][recs[0]["index"]]["seconds"] == 12345.0
    assert rep2["points"][4]["radius"]["upper"] == pytest.approx(rep["points"][4]["radius"]["upper"], rel=1e-5)


def test_metrics_with_brackets():
    pts = [{"index": 0, "status": "exact", "radius": {"lower": 0.1, "upper": 0.1}},
           {"index": 1, "status": "timeout", "radius": {"lower": 0.2, "upper": 0.4}},
           {"index": 2, "status": "misclassified", "radius": {"lower": 0.0, "upper": 0.0}},
           {"index": 3, "status": "exact", "radius": {"lower": None, "upper": None}}]
    m = dataset_metrics(pts, [0.15, 0.3, 0.5])
    assert m[0]["adversarial_frequency"] == pytest.approx(1 / 3) and m[0]["adversarial_severity"] == 0.1
    assert m[1]["adversarial_frequency"] is None and m[1]["adversarial_frequency_bounds"] == [1 / 3, 2 / 3]
    assert m[2]["adversarial_frequency"] == pytest.approx(2 / 3)


def test_load_dataset_csv_and_errors(tmp_path):
    from exactverify.core.errors import InputError
    p = tmp_path / "d.csv"
    p.write_text("label,p0,p1\n1,0,255\n0,51,102\n")
    X, y = load_dataset(p, scale=255, n_inputs=2, n_outputs=3)
    assert np.allclose(X, [[0, 1], [0.2, 0.4]]) and list(y) == [1, 0]
    with pytest.raises(InputError, match="label 5"):
        p.write_text("5,0,1\n")
        load_dataset(p, n_inputs=2, n_outputs=3)
    with pytest.raises(InputError, match="3 values"):
        p.write_text("1,0,1,2\n")
        load_dataset(p, n_inputs=2, n_outputs=3)
    with pytest.raises(InputError, match="not found"):
        load_dataset(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 2)))
    with pytest.raises(InputError, match="'x' and 'y'"):
        load_dataset(tmp_path / "bad.npz")


# ------------------------------------------------------------------ CLI

def cli(*args):
    return subprocess.run([sys.executable, "-m", "exactverify.cli.app", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


@pytest.fixture
def small_onnx(tmp_path):
    net = random_network([2, 4, 3], seed=0)
    ws = [l.weight for l in net.layers if isinstance(l, Affine)]
    bs = [l.bias for l in net.layers if isinstance(l, Affine)]
    path = make_onnx(tmp_path / "net.onnx", ws, bs)
    rng = np.random.default_rng(1)
    X = rng.uniform(0.2, 0.8, (4, 2))
    np.savez(tmp_path / "data.npz", x=X, y=np.argmax(net.forward(X), axis=1))
    return path, tmp_path / "data.npz", net, X


def test_cli_robustness_json_plot_and_resume(tmp_path, small_onnx):
    net_path, data, net, X = small_onnx
    out, png = tmp_path / "rob.json", tmp_path / "rob.png"
    r = cli("robustness", net_path, data, "--domain", 0, 1, "--eps", 0.01, 0.1, "--timeout", 10, "--json", out,
            "--plot", png, "--baseline", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "adversarial frequency" in r.stdout
    rep = json.loads(out.read_text())
    assert len(rep["points"]) == 4 and png.stat().st_size > 0
    # a short run lists every point: its rho when exact, else its bracket
    for p in rep["points"]:
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(f"  point {p['index']} "))
        if p["status"] == "exact":
            assert f"rho = {p['radius']['upper']:.7g}" in line
    p = rep["points"][0]
    for key in ("index", "label", "predicted", "radius", "status", "counterexample", "seconds", "bastani_estimate"):
        assert key in p
    assert set(p["radius"]) == {"lower", "upper"}
    assert {m["eps"] for m in rep["metrics"]} == {0.01, 0.1}
    assert "adversarial_frequency" in rep["metrics"][0] and "adversarial_severity" in rep["metrics"][0]
    assert not (tmp_path / "rob.json.progress.jsonl").exists()  # removed once the report is written
    # an interrupted run: the progress file holds two points; the rerun keeps them and adds the rest
    progress = tmp_path / "prog.jsonl"
    lines = [json.dumps({"config": {"inputs": 2, "norm": "inf", "domain": [0.0, 1.0]}})]
    for q in rep["points"][:2]:
        lines.append(json.dumps({**q, "seconds": 999.0}))
    progress.write_text("\n".join(lines) + "\n")
    r = cli("robustness", net_path, data, "--domain", 0, 1, "--timeout", 10, "--json", out, "--resume", progress,
            "--no-progress")
    assert r.returncode == 0, r.stderr
    rep2 = json.loads(out.read_text())
    assert [q["seconds"] for q in rep2["points"][:2]] == [999.0, 999.0]
    assert rep2["points"][3]["seconds"] < 999.0
    assert len(progress.read_text().splitlines()) == 5
    # a progress file from another run is refused
    r = cli("robustness", net_path, data, "--norm", "2", "--domain", 0, 1, "--resume", progress)
    assert r.returncode == 2 and "different run" in r.stderr


def test_cli_robustness_bad_input(tmp_path, small_onnx):
    net_path, data, net, X = small_onnx
    out = tmp_path / "rob.json"
    np.savez(tmp_path / "wide.npz", x=np.zeros((2, 5)), y=np.zeros(2))
    np.savez(tmp_path / "label.npz", x=np.zeros((2, 2)), y=np.array([0, 7]))
    for bad, word in [(tmp_path / "missing.npz", "not found"), (tmp_path / "wide.npz", "5 values"),
                      (tmp_path / "label.npz", "label 7")]:
        r = cli("robustness", net_path, bad, "--json", out)
        assert r.returncode == 2, r.stderr
        assert word in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not out.exists()
    r = cli("robustness", net_path, data, "--domain", 0, 0.5, "--json", out)
    assert r.returncode == 2 and "outside --domain" in r.stderr and not out.exists()


@pytest.mark.slow
@pytest.mark.timeout(900)  # 120 s + 300 s of limits: above the 300 s default
def test_mnist_first_point_exact(benchmarks):
    from exactverify import load_network
    net = load_network(benchmarks / "mnist_fc" / "onnx" / "mnist-net_256x2.onnx")
    X, y = load_dataset(benchmarks / "data" / "mnist_test_first100.csv", scale=255)
    r = pointwise_robustness(net, X[0], int(y[0]), norm="inf", domain=(0, 1), timeout=120)
    assert r.status == "exact"
    below = verify(net, robustness_property(X[0], 0.999 * r.upper, int(y[0]), 10, (0, 1)), timeout=300)
    assert below.status == "unsat"
