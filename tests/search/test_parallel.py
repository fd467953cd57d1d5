"""verify on several worker processes (exactverify/search/parallel.py)."""

import numpy as np
import pytest

from exactverify.search.parallel import pieces_of, verify_parallel
from exactverify.search.verifier import verify
from exactverify.core.property import Case, OutputConstraint, Property
from exactverify.testing import VERDICT_TIMEOUT, make_instance


def test_pieces_cover_the_property():
    rng = np.random.default_rng(0)
    d = [OutputConstraint(np.eye(2)[:1], np.zeros(1)), OutputConstraint(-np.eye(2)[:1], np.ones(1))]
    prop = Property(3, 2, [Case(np.zeros(3), np.array([1.0, 4.0, 2.0]), d),
                           Case(-np.ones(3), np.zeros(3), d[:1])])
    pieces = pieces_of(prop, 8)
    assert len(pieces) >= 8
    for p in pieces:
        assert len(p.cases) == 1
        assert any(np.all(p.cases[0].lower >= c.lower) and np.all(p.cases[0].upper <= c.upper)
                   and len(p.cases[0].disjuncts) == len(c.disjuncts) for c in prop.cases)
    for ci, case in enumerate(prop.cases):
        x = case.lower + rng.random((500, 3)) * (case.upper - case.lower)
        inside = np.zeros(500, bool)
        for p in pieces:
            c = p.cases[0]
            if len(c.disjuncts) == len(case.disjuncts):
                inside |= np.all((x >= c.lower) & (x <= c.upper), axis=1)
        assert inside.all()


def test_high_dimensional_pieces_are_the_disjuncts():
    d = [OutputConstraint(np.eye(2)[k:k + 1], np.zeros(1)) for k in range(2)]
    prop = Property(20, 2, [Case(np.zeros(20), np.ones(20), d)])
    pieces = pieces_of(prop, 8)
    assert len(pieces) == 2 and [len(p.cases[0].disjuncts) for p in pieces] == [1, 1]


@pytest.mark.parametrize("seed", [1, 4])
def test_parallel_verdict_matches_the_oracle(seed):
    net, prop, expected, _ = make_instance(seed)
    res = verify_parallel(net, prop, timeout=VERDICT_TIMEOUT, workers=2, decide=verify, solo=0.0)
    assert res.status == expected
    assert res.stats.get("pieces", 0) >= 1  # it went on to the pool
    if expected == "sat":
        x = np.asarray(res.counterexample.x)
        assert prop.satisfied_by(x, net.forward(x))
        assert prop.satisfied_by(x, net.forward32(x).astype(np.float64))
