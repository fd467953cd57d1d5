"""validate: incomplete verifiers against exact answers (exactverify.metrics.validate, `exactverify validate`)."""

import json

import numpy as np
import pytest

from exactverify.testing import make_onnx
from exactverify.bounds.crown import propagate_interval
from exactverify.core.check import check_point
from exactverify.core.errors import InputError
from exactverify.cli.app import main
from exactverify.core.network import Affine, Network, ReLU
from exactverify.testing import VERDICT_TIMEOUT, random_network
from exactverify.core.property import robustness_property
from exactverify.metrics.validate import load_data, validate


def shrunk_ibp(network, x, eps, label):
    """A deliberately UNSOUND method: interval bounds shrunk by 10% about their centre at every layer."""
    lo, hi = x - eps, x + eps
    for layer in network.layers:
        lo, hi = propagate_interval(layer, lo, hi)
        mid, rad = (lo + hi) / 2, (hi - lo) / 2
        lo, hi = mid - 0.9 * rad, mid + 0.9 * rad
    return all(lo[label] > hi[j] for j in range(len(lo)) if j != label)


def diagonal_network(seed=0, n=3, k=3):
    """x -> W2 relu(D x + b1) + b2 with D diagonal: interval bounds are exact on it, so shrinking them
    by 10% certifies balls just beyond the exact robustness radius."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # noqa: E731
    d, b1 = f32(rng.uniform(0.5, 2, n)), f32(rng.uniform(-0.3, 0.3, n))
    w2, b2 = f32(rng.standard_normal((k, n))), f32(0.1 * rng.standard_normal(k))
    return Network([Affine(np.diag(d), b1), ReLU(n), Affine(w2, b2)], input_shape=(1, n), output_shape=(1, k),
                   source="diagonal")


def test_unsound_method_is_caught_with_rechecked_counterexamples():
    net = diagonal_network()
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (5, 3))
    y = np.argmax(net.forward(X), axis=1)
    eps = list(0.02 * 1.05 ** np.arange(40))
    rep = validate(net, X, y, eps, methods={"shrunk-ibp": shrunk_ibp, "ibp": "ibp", "crown": "crown"},
                   timeout=VERDICT_TIMEOUT)
    viol = rep.violations()
    assert viol and all(m == "shrunk-ibp" for m, _ in viol)
    for _, row in viol:
        ce = row.counterexample
        x = np.asarray(ce["x"])
        assert np.max(np.abs(x - X[row.index])) <= row.eps  # inside the ball
        prop = robustness_property(X[row.index], row.eps, row.label, 3)
        assert check_point(net, prop, x) is not None  # re-checks on the network, float64 and float32
        yv = net.forward(x)
        assert max(yv[j] for j in range(3) if j != row.label) >= yv[row.label]
    assert sum(rep.stats("shrunk-ibp", e)["violations"] for e in rep.eps) == len(viol)
    text = rep.format_table()
    assert "SOUNDNESS VIOLATIONS" in text and "shrunk-ibp" in text
    md = rep.format_markdown()
    assert "### Soundness violations" in md
    json.dumps(rep.as_dict())  # plain data


@pytest.mark.parametrize("sizes,seed", [([4, 12, 12, 3], 1), ([3, 16, 4], 2)])
def test_sound_methods_have_no_violations(sizes, seed):
    net = random_network(sizes, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (6, sizes[0]))
    y = np.argmax(net.forward(X), axis=1)
    y[0] = (y[0] + 1) % sizes[-1]  # one misclassified point: never robust
    rep = validate(net, X, y, [0.02, 0.1, 0.3], methods=["ibp", "crown", "alpha-crown", "lipschitz"],
                   timeout=VERDICT_TIMEOUT, exact_radius=False)
    assert rep.violations() == []
    for m in rep.methods:
        for e in rep.eps:
            s = rep.stats(m, e)
            assert s["violations"] == 0
            assert s["certified"] == s["certified_and_robust"] + s["certified_unchecked"]
    # CROWN is complete wherever the ball is tiny and the point well inside its linear region
    assert rep.stats("crown", 0.02)["certified"] >= 1
    assert all(not r.answers["crown"]["certified"] for r in rep.rows if r.index == 0)


def test_hook_without_label_and_radius_answers():
    net = random_network([3, 10, 3], seed=3)
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (4, 3))
    y = np.argmax(net.forward(X), axis=1)
    y[1] = (y[1] + 1) % 3
    seen = []

    def radius_zero(network, x, eps):  # certifies only eps == 0 balls; never asked about point 1
        seen.append(x.copy())
        return 0.0

    rep = validate(net, X, y, [0.0, 0.05], methods={"zero": radius_zero}, timeout=VERDICT_TIMEOUT, exact_radius=False)
    assert len(seen) == 6  # 3 correctly classified points x 2 eps
    at0 = rep.stats("zero", 0.0)
    assert at0["certified"] == 3 and at0["violations"] == 0 and at0["truly_robust"] == 3
    assert rep.stats("zero", 0.05)["certified"] == 0
    assert [r.answers["zero"]["radius"] for r in rep.rows if r.index == 0] == [0.0, 0.0]


def test_load_data_csv_and_npz(tmp_path):
    (tmp_path / "d.csv").write_text("label,p0,p1\n1,0,255\n0,51,102\n")
    X, y = load_data(tmp_path / "d.csv", scale=255)
    assert y.tolist() == [1, 0] and np.allclose(X, [[0, 1], [0.2, 0.4]])
    np.savez(tmp_path / "d.npz", x=np.ones((3, 2, 2)), y=np.array([0, 1, 2]))
    X, y = load_data(tmp_path / "d.npz", limit=2)
    assert X.shape == (2, 4) and y.tolist() == [0, 1]


def test_cli_validate_writes_reports(tmp_path, capsys):
    rng = np.random.default_rng(0)
    w = [rng.standard_normal((8, 2)), rng.standard_normal((3, 8))]
    net_path = make_onnx(tmp_path / "n.onnx", w, [np.zeros(8), np.zeros(3)])
    from exactverify import load_network
    net = load_network(net_path)
    X = rng.uniform(0, 1, (3, 2))
    np.savez(tmp_path / "d.npz", x=X, y=np.argmax(net.forward(X), axis=1))
    out = tmp_path / "r.json"
    rc = main(["validate", str(net_path), str(tmp_path / "d.npz"), "--eps", "0.01", "0.05", "--methods",
               "ibp,crown", "--domain", "0", "1", "--json", str(out), "--markdown", str(tmp_path / "r.md"),
               "--no-progress", "--timeout", "10"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ibp" in text and "crown" in text and "VIOLATIONS" in text
    rep = json.loads(out.read_text())
    assert rep["summary"]["crown"]["0.01"]["violations"] == 0 and rep["points"] == 3
    assert "| crown | 0.05 |" in (tmp_path / "r.md").read_text()


def test_cli_validate_bad_input_exits_2(tmp_path, capsys):
    net_path = make_onnx(tmp_path / "n.onnx", [np.eye(2)], [np.zeros(2)])
    (tmp_path / "bad.csv").write_text("1,0.5,0.5\n0,oops,1\n")
    assert main(["validate", str(net_path), str(tmp_path / "bad.csv"), "--eps", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.csv" in err[0]
    (tmp_path / "wide.csv").write_text("1,0.5,0.5,0.5\n")
    assert main(["validate", str(net_path), str(tmp_path / "wide.csv"), "--eps", "0.1"]) == 2
    assert main(["validate", str(net_path), str(tmp_path / "missing.npz"), "--eps", "0.1"]) == 2
    assert main(["validate", str(net_path), str(tmp_path / "wide.csv"), "--eps", "0.1", "--methods", "magic"]) == 2


def test_lipschitz_radius_against_exact_radius(tmp_path):
    pytest.importorskip("exactverify.bounds.lipschitz")
    pytest.importorskip("exactverify.metrics.radius")
    net = random_network([2, 8, 3], seed=4)
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, (2, 2))
    y = np.argmax(net.forward(X), axis=1)
    rep = validate(net, X, y, [0.01, 0.05], methods=["lipschitz", "crown"], timeout=VERDICT_TIMEOUT)
    assert rep.radius_methods() == ["lipschitz"]
    rs = rep.radius_stats("lipschitz")
    assert rs is not None and rs["radius_violations"] == []
    assert rs["exact_points"] >= 1 and 0 < rs["max_ratio"] <= 1.0
    rep.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize("kind", ["ibp", "crown", "alpha-crown"])
def test_margin_bounds_hold_on_sampled_points(kind):
    from exactverify.metrics.validate import builtin_method
    net = random_network([5, 20, 20, 4], seed=7)
    method = builtin_method(kind, domain=(-1.0, 1.0))
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.uniform(-1, 1, 5)
        label = int(np.argmax(net.forward(x)))
        eps = 0.15
        low = method.margin_lower(net, x, eps, label)
        pts = np.clip(x + rng.uniform(-eps, eps, (2000, 5)), -1, 1)
        ys = net.forward(pts)
        others = [j for j in range(4) if j != label]
        margins = ys[:, [label]] - ys[:, others]
        assert np.all(low <= margins.min(axis=0))


def _shrunk_l2_radius(network, x, eps, label):
    """A deliberately UNSOUND radius method: 30% beyond the exact L2 radius."""
    from exactverify.metrics.radius import pointwise_robustness
    r = pointwise_robustness(network, x, label, norm="2", domain=(-1.0, 1.0), timeout=VERDICT_TIMEOUT)
    return 1.3 * r.upper


def test_validate_in_l2_against_exact_ball_answers(tmp_path):
    """--norm 2: exact answers by ball checks agree with the exact L2 radius (robust at eps iff rho > eps),
    sound methods have no violations and certify no radius above the exact one, and a method that
    claims 30% too much is caught with counterexamples inside the L2 ball."""
    from exactverify.metrics.norms import norm_distance
    net = random_network([3, 10, 8, 3], seed=5, scale=1.5)
    rng = np.random.default_rng(5)
    X = rng.uniform(-0.5, 0.5, (4, 3))
    y = np.argmax(net.forward(X), axis=1)
    eps = [0.05, 0.2, 0.5]
    rep = validate(net, X, y, eps, methods={"ibp": "ibp", "crown": "crown", "alpha-crown": "alpha-crown",
                                           "lipschitz": "lipschitz", "too-far": _shrunk_l2_radius},
                   norm="2", domain=(-1.0, 1.0), timeout=VERDICT_TIMEOUT)
    assert rep.norm == "2"
    for r in rep.rows:
        rho = rep.exact_radius[r.index]
        assert rho["status"] == "exact" and r.exact in ("sat", "unsat")
        assert (r.exact == "unsat") == (rho["radius"] > r.eps)
        if r.exact == "sat":
            x = np.asarray(r.counterexample["x"])
            assert norm_distance(x, X[r.index], "2") <= r.eps  # inside the L2 ball
            yv = net.forward(x)
            assert max(yv[j] for j in range(3) if j != r.label) > yv[r.label]
    viol = rep.violations()
    assert viol and {m for m, _ in viol} == {"too-far"}
    for m in ("crown", "alpha-crown", "lipschitz"):
        rs = rep.radius_stats(m)
        assert rs is not None and rs["radius_violations"] == [] and rs["max_ratio"] <= 1.0
    assert rep.radius_stats("too-far")["radius_violations"]
    assert "L-2" in rep.format_table() and "ball checks" in rep.format_table() and "ball checks" in rep.format_markdown()


def test_cli_validate_l2_needs_a_domain(tmp_path, capsys):
    net_path = make_onnx(tmp_path / "n.onnx", [np.eye(2)], [np.zeros(2)])
    (tmp_path / "d.csv").write_text("1,0.5,0.5\n")
    assert main(["validate", str(net_path), str(tmp_path / "d.csv"), "--eps", "0.1", "--norm", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "domain" in err[0]


def test_validate_on_workers_and_resumed_gives_the_same_report(tmp_path, monkeypatch):
    """Points run on worker processes give the rows of the in-process run; a rerun with the progress
    file asks nothing again, and one with other settings is refused."""
    import exactverify.metrics.validate as validation
    net = random_network([3, 10, 3], seed=5)
    X = np.random.default_rng(5).uniform(0.2, 0.8, (4, 3))
    y = np.argmax(net.forward(X), axis=1)
    kw = dict(eps_list=[0.02, 0.1], methods=["crown", "lipschitz"], domain=(0, 1), timeout=VERDICT_TIMEOUT)
    here = validate(net, X, y, **kw)
    progress = tmp_path / "v.progress.jsonl"
    pooled = validate(net, X, y, workers=2, resume_path=progress, **kw)
    strip = lambda rep: [(r.index, r.eps, r.exact, {m: a["certified"] for m, a in r.answers.items()})  # noqa: E731
                         for r in rep.rows]
    assert strip(pooled) == strip(here) and len(here.rows) == 8
    assert pooled.exact_radius.keys() == here.exact_radius.keys() and len(here.exact_radius) == 4
    asked = []
    monkeypatch.setattr(validation, "_run_point", lambda item: asked.append(item))
    resumed = validate(net, X, y, resume_path=progress, **kw)
    assert asked == [] and strip(resumed) == strip(here)
    with pytest.raises(InputError, match="different run"):
        validate(net, X, y, resume_path=progress, **{**kw, "eps_list": [0.05]})
