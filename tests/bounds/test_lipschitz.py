"""Lipschitz bounds and one-pass certificates: soundness against the exact Jacobian, sampling and the MILP.

- every norm bound is an upper bound (exact SVD, exact row sums), and tight where it should be;
- K[i, j] >= the local Lipschitz constant of f_i - f_j (the dual norm of the exact Jacobian row
  difference, at many points: for a piecewise-linear network the supremum of these IS the constant);
- the carried floating-point error bound covers the float64 logits (against an extended-precision pass);
- every point the certificate accepts is robust under the exact check (MILP) of the same property, on
  the inscribed L-inf ball for L2 certificates and on the same ball for L-inf ones, at the largest
  radius the certificate accepts;
- the top-K / affinity logic equals a brute-force reading of the definitions;
- the `certify` command, and its bad-input exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from pathlib import Path
import scipy.sparse as sp

from exactverify.testing import make_onnx
from exactverify.bounds.lipschitz import (certify_batch, l2_operator_norm, linear_form_lipschitz, linf_operator_norm, lipschitz_certificate, lipschitz_refutes, margin_lipschitz, max_groups_l2, _spectral_fallback)
from exactverify.metrics.local_robustness import candidate_sets, check_local_robustness
from exactverify.core.network import Affine, MaxGroups, Network, ReLU
from exactverify.core.property import Case, Property
from exactverify.testing import VERDICT_TIMEOUT, random_network

REPO = Path(__file__).resolve().parents[2]

GROUPS = [[0, 1], [2, 3, 4]]


# ------------------------------------------------------------------ helpers


def jacobian(net: Network, x: np.ndarray) -> np.ndarray:
    """The exact Jacobian of the piecewise-linear network at x (in the linear piece x lies in)."""
    h = np.asarray(x, dtype=np.float64)
    J = np.eye(len(h))
    for layer in net.layers:
        if isinstance(layer, Affine):
            J = np.asarray(layer.weight @ J)
            h = layer.apply(h[None])[0]
        elif isinstance(layer, ReLU):
            J = J * (h > 0)[:, None]
            h = np.maximum(h, 0)
        else:
            idx = np.where(layer.groups >= 0, layer.groups, layer.groups[:, :1])
            arg = idx[np.arange(len(idx)), np.argmax(h[idx], axis=1)]
            J = J[arg]
            h = h[arg]
    return J


def mixed_network(seed: int) -> Network:
    """Sparse and dense affine maps, consecutive affines, overlapping MaxGroups, ReLU."""
    rng = np.random.default_rng(seed)
    w0 = sp.csr_matrix(rng.standard_normal((8, 6)) * (rng.random((8, 6)) < 0.5))
    w1 = rng.standard_normal((8, 8)) / 3
    groups = np.array([[0, 1, 2], [2, 3, -1], [3, 4, 5], [5, 6, 7], [7, 0, -1]])  # overlaps: multiplicity 2
    w2 = rng.standard_normal((4, 5))
    return Network([Affine(w0, rng.standard_normal(8) * 0.1), ReLU(8), Affine(w1, np.zeros(8)),
                    MaxGroups(groups, 8), ReLU(5), Affine(w2, rng.standard_normal(4) * 0.1)]).validate()


def dual(v, norm):
    return np.abs(v).sum(axis=-1) if norm == "inf" else np.linalg.norm(v, axis=-1)


# ------------------------------------------------------------------ norms


@pytest.mark.parametrize("shape", [(1, 7), (10, 64), (64, 64), (120, 30), (300, 280)])
def test_spectral_norm_is_a_tight_upper_bound(shape):
    rng = np.random.default_rng(sum(shape))
    W = rng.standard_normal(shape) * 3.7
    exact = np.linalg.norm(W, 2)
    bound = l2_operator_norm(W)
    assert exact <= bound <= exact * (1 + 1e-6)
    assert l2_operator_norm(sp.csr_matrix(W)) == bound
    assert _spectral_fallback(W) >= exact  # the large-layer fallback is sound too
    assert l2_operator_norm(W, exact_max=0) >= exact


def test_spectral_norm_edge_cases():
    assert l2_operator_norm(np.zeros((3, 4))) == 0.0
    W = np.diag([1e-200, 3e-200])  # tiny: the power-of-two scaling keeps it exact
    assert 3e-200 <= l2_operator_norm(W) <= 3e-200 * (1 + 1e-6)
    W = np.array([[1e150, 0.0], [0.0, 2e150]])
    assert 2e150 <= l2_operator_norm(W) <= 2e150 * (1 + 1e-6)
    W = np.ones((5, 1)) * 2.0  # rank one, exact norm 2 sqrt(5)
    assert 2 * np.sqrt(5) <= l2_operator_norm(W) <= 2 * np.sqrt(5) * (1 + 1e-6)


def test_linf_norm_and_max_groups():
    W = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, -4.0]])
    assert 4.0 <= linf_operator_norm(W) <= 4.0 * (1 + 1e-12)
    layer = MaxGroups(np.array([[0, 1], [1, 2], [1, 3]]), 4)  # input 1 in three groups
    assert np.sqrt(3) <= max_groups_l2(layer) <= np.sqrt(3) * (1 + 1e-12)
    d = np.array([[0.0, 1.0, 0.0, 0.0]])  # moving input 1 moves three outputs: the bound is attained
    assert np.linalg.norm(layer.apply(d)) == pytest.approx(np.sqrt(3))


# ------------------------------------------------------------------ K against the exact Jacobian


@pytest.mark.parametrize("norm", ["2", "inf"])
@pytest.mark.parametrize("make", [lambda: random_network([5, 12, 12, 4], seed=1),
                                  lambda: random_network([3, 8, 6], seed=2),
                                  lambda: random_network([4, 6, 3], seed=3, output_relu=True),
                                  lambda: mixed_network(4)], ids=["relu", "one-hidden", "final-relu", "mixed"])
def test_margin_lipschitz_bounds_every_local_constant(norm, make):
    net = make()
    K = margin_lipschitz(net, norm)
    n = net.output_size
    assert K.shape == (n, n) and np.all(np.diag(K) == 0) and np.all(K >= 0)
    rng = np.random.default_rng(0)
    worst = 0.0
    for x in rng.uniform(-2, 2, (300, net.input_size)):
        J = jacobian(net, x)
        local = dual(J[:, None, :] - J[None, :, :], norm)  # the exact local constant of f_i - f_j
        off = ~np.eye(n, dtype=bool)
        assert np.all(local[off] <= K[off]), (x, local, K)
        worst = max(worst, float(np.max(local[off] / K[off])))
    assert worst > 0.05  # the bound is not vacuous
    # sampled pairs, too
    X = rng.uniform(-2, 2, (2000, net.input_size))
    D = rng.standard_normal(X.shape)
    D *= 1e-2 / np.linalg.norm(D, ord=2 if norm == "2" else np.inf, axis=1)[:, None]
    dy = net.forward(X + D) - net.forward(X)
    for i in range(n):
        for j in range(n):
            if i != j:
                assert np.all(np.abs(dy[:, i] - dy[:, j]) <= K[i, j] * 1e-2 * (1 + 1e-9))


def test_single_affine_layer_is_exact():
    W = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]])
    net = Network([Affine(W, np.zeros(3))])
    K2, Kinf = margin_lipschitz(net, "2"), margin_lipschitz(net, "inf")
    assert K2[0, 1] == pytest.approx(np.linalg.norm(W[0] - W[1]), rel=1e-12) and K2[0, 1] >= np.linalg.norm(W[0] - W[1])
    assert Kinf[0, 2] == pytest.approx(3.0, rel=1e-12) and Kinf[0, 2] >= 3.0


# ------------------------------------------------------------------ the certificate


def test_error_bound_covers_float64_logits():
    net = random_network([6, 30, 30, 5], seed=5, scale=3.0)
    X = np.random.default_rng(1).uniform(-3, 3, (200, 6))
    cert = certify_batch(net, X, 0.01)
    exact = X.astype(np.longdouble)
    for layer in net.layers:
        if isinstance(layer, Affine):
            exact = exact @ layer.weight.astype(np.longdouble).T + layer.bias.astype(np.longdouble)
        else:
            exact = np.maximum(exact, 0)
    err = np.abs(cert.logits.astype(np.longdouble) - exact).max(axis=1).astype(np.float64)
    assert np.all(err <= cert.error_bound)
    assert np.all(cert.error_bound < 1e-9)


def reference_modes(y, K, eps, mode, k=None, groups=None):
    """Brute force from the definitions (no floating-point padding)."""
    n = len(y)
    order = list(np.argsort(-y, kind="stable"))
    gsets = [set(g) for g in groups or []]
    gsets += [{c} for c in range(n) if not any(c in g for g in gsets)]
    sizes = [1] if mode == "standard" else range(1, (k if mode == "topk" else n) + 1)
    for kc in sizes:
        S = set(order[:kc])
        if mode == "affinity" and not any(S <= g for g in gsets):
            continue
        if all(y[i] - y[j] > eps * K[i, j] for i in S for j in range(n) if j not in S):
            return True, kc
    return False, 0


@pytest.mark.parametrize("mode,kw", [("standard", {}), ("topk", {"k": 3}), ("affinity", {"groups": GROUPS})])
def test_modes_match_their_definitions(mode, kw):
    net = random_network([4, 10, 5], seed=6)
    X = np.random.default_rng(2).uniform(-1, 1, (400, 4))
    K = margin_lipschitz(net, "2")
    cert = certify_batch(net, X, 0.05, mode=mode, **kw)
    assert 0 < cert.certified.sum() < len(X)
    for n in range(len(X)):
        ok, kc = reference_modes(cert.logits[n], K, 0.05, mode, **kw)
        assert (bool(cert.certified[n]), int(cert.k[n])) == (ok, kc), n
        single = lipschitz_certificate(net, X[n], 0.05, mode=mode, **kw)
        assert single.certified == ok and single.predicted == cert.predicted[n]
        if ok:
            assert single.top_set == sorted(np.argsort(-cert.logits[n], kind="stable")[:kc].tolist())
            assert single.top_set == candidate_sets(cert.logits[n], mode, **kw)[
                [len(s) for s in candidate_sets(cert.logits[n], mode, **kw)].index(kc)]
    labels = np.random.default_rng(3).integers(0, 5, len(X))
    hit = cert.label_in_set(labels)
    expect = [c and int(l) in cert.top_set(i) for i, (c, l) in enumerate(zip(cert.certified, labels))]
    assert hit.tolist() == expect


def test_certificate_arguments():
    net = random_network([3, 4, 3], seed=0)
    with pytest.raises(ValueError):
        certify_batch(net, np.zeros((1, 3)), -1.0)
    with pytest.raises(ValueError):
        certify_batch(net, np.zeros((1, 3)), 0.1, mode="topk")
    with pytest.raises(ValueError):
        certify_batch(net, np.zeros((1, 3)), 0.1, mode="affinity")
    with pytest.raises(ValueError):
        certify_batch(net, np.zeros((1, 4)), 0.1)
    c = lipschitz_certificate(net, np.zeros(3), 0.0)
    assert json.dumps(c.as_dict())  # plain JSON: no inf/nan


def certifiable_network(seed: int) -> Network:
    """A small net with modest weights, so that a good share of points certify at useful radii."""
    return random_network([4, 12, 12, 5], seed=seed, scale=0.8)


@pytest.mark.parametrize("norm", ["2", "inf"])
@pytest.mark.parametrize("mode,kw", [("standard", {}), ("topk", {"k": 2}), ("affinity", {"groups": GROUPS})])
def test_certified_points_are_exactly_robust(norm, mode, kw):
    """At the largest radius the certificate accepts, the exact check must say robust."""
    net = certifiable_network(7)
    X = np.random.default_rng(4).uniform(0, 1, (24, 4))
    K = margin_lipschitz(net, norm)
    checked = 0
    for x in X:
        lo, hi = 0.0, 1.0  # bisect the certified radius (the certificate is monotone in eps)
        if not lipschitz_certificate(net, x, 1e-6, norm=norm, mode=mode, K=K, **kw).certified:
            continue
        for _ in range(30):
            mid = (lo + hi) / 2
            ok = lipschitz_certificate(net, x, mid, norm=norm, mode=mode, K=K, **kw).certified
            lo, hi = (mid, hi) if ok else (lo, mid)
        radius = lo if norm == "inf" else lo / np.sqrt(4)  # the L-inf ball inscribed in the L2 ball
        res = check_local_robustness(net, x, radius, mode=mode, timeout=VERDICT_TIMEOUT, **kw)
        assert res.status == "robust", (x, radius, res)
        if norm == "2":  # and on the L2 ball itself, by cutting planes
            res = check_local_robustness(net, x, lo, mode=mode, timeout=VERDICT_TIMEOUT, norm="2", **kw)
            assert res.status == "robust", (x, lo, res)
        checked += 1
    assert checked >= 8


def test_exact_checks_known_answers():
    # f(x) = (x0, x1, 0.2 x0) at x = (0.6, 0.4): class 0, then 1, then 2
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.0]])
    net = Network([Affine(W, np.zeros(3))])
    x = np.array([0.6, 0.4])
    assert check_local_robustness(net, x, 0.05).status == "robust"
    res = check_local_robustness(net, x, 0.15)  # x0 = 0.45 < x1 = 0.55 in the ball
    assert res.status == "not_robust"
    ce = np.array(res.counterexamples[0]["x"])
    assert np.max(np.abs(ce - x)) <= 0.15 and ce[1] >= ce[0]
    # top-2 at 0.15: {0, 1} stays above class 2 (min(x0, x1) >= 0.25 > 0.2 x0 <= 0.15)
    res = check_local_robustness(net, x, 0.15, mode="topk", k=2)
    assert res.status == "robust" and res.top_set == [0, 1] and [c["status"] for c in res.candidates] == ["sat", "unsat"]
    assert check_local_robustness(net, x, 0.15, mode="affinity", groups=[[0, 1]]).status == "robust"
    # with groups {0, 2}, {1}: the top-2 set {0, 1} lies in no group, so only {0} counts
    res = check_local_robustness(net, x, 0.15, mode="affinity", groups=[[0, 2]])
    assert res.status == "not_robust" and len(res.counterexamples) == 1
    # top-2 at 0.35: class 2 = 0.19 > x1 = 0.05 is possible
    res = check_local_robustness(net, x, 0.35, mode="topk", k=2)
    assert res.status == "not_robust" and len(res.counterexamples) == 2
    # the domain clips the ball: x1 <= 0.52 keeps class 1 below x0 >= 0.54
    x = np.array([0.6, 0.5])
    assert check_local_robustness(net, x, 0.06).status == "not_robust"
    assert check_local_robustness(net, x, 0.06, domain=(np.zeros(2), np.array([1.0, 0.52]))).status == "robust"
    with pytest.raises(ValueError):
        check_local_robustness(net, x, 0.06, domain=(0.0, 0.55))


def test_exact_l2_checks_by_cutting_planes():
    # f(x) = (x0, x1, 0.2 x0) at (0.6, 0.4): the L2 distance to the boundary x0 = x1 is 0.2 / sqrt(2) = 0.141421...
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.0]])
    net = Network([Affine(W, np.zeros(3))])
    x = np.array([0.6, 0.4])
    res = check_local_robustness(net, x, 0.1413, norm="2")
    assert res.status == "robust" and res.candidates[0]["cuts"] >= 1  # the L-inf box alone is not robust
    assert check_local_robustness(net, x, 0.1413, norm="inf").status == "not_robust"
    res = check_local_robustness(net, x, 0.1415, norm="2")
    assert res.status == "not_robust"
    ce = np.array(res.counterexamples[0]["x"])
    assert np.linalg.norm(ce - x) <= 0.1415 and ce[1] >= ce[0]
    # a ReLU network: the L2 answer lies between the inscribed and the circumscribed L-inf answers
    net = random_network([2, 16, 16, 3], seed=11)
    x = np.array([0.3, -0.2])
    for eps in (0.05, 0.1, 0.2):
        l2 = check_local_robustness(net, x, eps, norm="2", timeout=VERDICT_TIMEOUT).status
        inner = check_local_robustness(net, x, eps / np.sqrt(2), timeout=VERDICT_TIMEOUT).status
        outer = check_local_robustness(net, x, eps, timeout=VERDICT_TIMEOUT).status
        assert l2 in ("robust", "not_robust")
        assert not (l2 == "robust" and inner == "not_robust") and not (l2 == "not_robust" and outer == "robust")


# ------------------------------------------------------------------ the certify command


class _Run:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(*args):
    """The command line in-process (exactverify.cli.app.main), with its exit code and output."""
    import contextlib
    import io

    from exactverify.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return _Run(code, out.getvalue(), err.getvalue())


def cli_subprocess(*args):
    return subprocess.run([sys.executable, "-m", "exactverify.cli.app", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


@pytest.fixture
def small_net(tmp_path):
    net = certifiable_network(7)
    ws = [l.weight for l in net.layers if isinstance(l, Affine)]
    bs = [l.bias for l in net.layers if isinstance(l, Affine)]
    return make_onnx(tmp_path / "net.onnx", ws, bs), net


def test_certify_command_npz_and_json(tmp_path, small_net):
    path, net = small_net
    X = np.random.default_rng(5).uniform(0, 1, (30, 4))
    y = np.argmax(net.forward(X), axis=1)
    y[:3] = (y[:3] + 1) % 5  # three wrong labels
    np.savez(tmp_path / "d.npz", x=X.astype(np.float32), y=y)
    out = tmp_path / "c.json"
    r = cli("certify", path, tmp_path / "d.npz", "--eps", "0.05", "--json", out)
    assert r.returncode == 0, r.stderr
    assert "verified-robust accuracy" in r.stdout and len(r.stdout.splitlines()) > 30
    rep = json.loads(out.read_text())
    s = rep["summary"]
    cert = certify_batch(net, X.astype(np.float32).astype(np.float64), 0.05)
    assert s["points"] == 30 and s["certified_fraction"] == pytest.approx(cert.certified.mean())
    assert s["vra"] == pytest.approx(np.mean(cert.certified & (cert.predicted == y)))
    assert s["clean_accuracy"] == pytest.approx(27 / 30)
    assert [p["certified"] for p in rep["points"]] == cert.certified.tolist()
    r = cli("certify", path, tmp_path / "d.npz", "--eps", "0.05", "--mode", "topk", "2", "--norm", "inf",
            "--summary-only")
    assert r.returncode == 0 and "mode: topk 2" in r.stdout, r.stderr
    r = cli("certify", path, tmp_path / "d.npz", "--eps", "0.05", "--mode", "affinity", "0,1", "2,3,4",
            "--summary-only")
    assert r.returncode == 0 and "mode: affinity 0,1 2,3,4" in r.stdout, r.stderr


def test_certify_command_csv_scale(tmp_path, small_net):
    path, net = small_net
    X = np.round(np.random.default_rng(6).uniform(0, 255, (10, 4)))
    y = np.argmax(net.forward(X / 255), axis=1)
    (tmp_path / "d.csv").write_text("".join(f"{l}," + ",".join(f"{v:g}" for v in row) + "\n" for l, row in zip(y, X)))
    out = tmp_path / "c.json"
    r = cli("certify", path, tmp_path / "d.csv", "--eps", "0.02", "--scale", "255", "--json", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["summary"]["clean_accuracy"] == 1.0


def test_certify_command_bad_input_exits_2(tmp_path, small_net):
    path, _ = small_net
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 4)), y=np.array([0, 1, 9]))
    out = tmp_path / "c.json"
    r = cli_subprocess("certify", path, tmp_path / "bad.npz", "--eps", "0.1", "--json", out)
    assert r.returncode == 2 and "bad.npz" in r.stderr and "labels must lie in 0..4" in r.stderr
    assert r.stderr.count("\n") == 1 and not out.exists()
    np.savez(tmp_path / "wide.npz", x=np.zeros((3, 5)), y=np.zeros(3))
    r = cli("certify", path, tmp_path / "wide.npz", "--eps", "0.1")
    assert r.returncode == 2 and "5 values but the network takes 4" in r.stderr
    r = cli("certify", path, tmp_path / "missing.npz", "--eps", "0.1")
    assert r.returncode == 2 and "file not found" in r.stderr
    np.savez(tmp_path / "ok.npz", x=np.zeros((3, 4)), y=np.zeros(3))
    r = cli("certify", path, tmp_path / "ok.npz", "--eps", "0.1", "--mode", "topk", "zero")
    assert r.returncode == 2 and "K must be an integer" in r.stderr


def test_importing_lipschitz_and_gloro_does_not_import_torch():
    code = ("import sys, exactverify.bounds.lipschitz, exactverify.training.gloro, exactverify.metrics.local_robustness, "
            "exactverify.cli.certify; assert 'torch' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ refuting properties over a box


def test_linear_form_lipschitz_matches_margins():
    net = mixed_network(5)
    for norm in ("2", "inf"):
        K = margin_lipschitz(net, norm)
        A = np.array([[1.0, -1.0, 0, 0], [0, 0, -1.0, 1.0]])
        L = linear_form_lipschitz(net, A, norm)
        assert L[0] == pytest.approx(K[0, 1], rel=1e-9) and L[1] == pytest.approx(K[3, 2], rel=1e-9)


def test_lipschitz_refutes_only_what_the_verifier_proves():
    from exactverify.core.property import robustness_property
    from exactverify.search.verifier import verify

    net = certifiable_network(8)
    rng = np.random.default_rng(9)
    refuted_any = 0
    for x in rng.uniform(0, 1, (30, 4)):
        label = int(np.argmax(net.forward(x)))
        for eps in (0.005, 0.02, 0.08):
            prop = robustness_property(x, eps, label, 5, domain=(0.0, 1.0))
            flags = lipschitz_refutes(net, prop.cases[0])
            for d, flag in zip(prop.cases[0].disjuncts, flags):
                if flag:
                    refuted_any += 1
                    single = Property(4, 5, [Case(prop.cases[0].lower, prop.cases[0].upper, [d])])
                    assert verify(net, single, timeout=VERDICT_TIMEOUT).status == "unsat"
    assert refuted_any > 30
