"""Ctrl-C during a HiGHS run reaches the caller: HiGHS calls back into Python, and an exception raised
there used to be lost (a run went on to its time limit and exited 0)."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from exactverify.bounds.interval import interval_bounds
from exactverify.core.property import Case, OutputConstraint
from exactverify.encodings.milp import build_milp
from exactverify.solvers.highs import solve_highs
from exactverify.testing import random_network


@pytest.mark.parametrize("after", [0.5, 1.5])
def test_ctrl_c_during_a_long_milp_raises_keyboard_interrupt(after):
    net = random_network([8, 80, 80, 80, 2], seed=0)
    lo, hi = -np.ones(8), np.ones(8)
    unsafe = OutputConstraint(np.array([[-1.0, 0.0]]), np.array([-3.0]))  # y0 >= 3: interval bounds are loose
    model = build_milp(net, interval_bounds(net, lo, hi), Case(lo, hi, [unsafe]), unsafe)
    timer = threading.Timer(after, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            solve_highs(model, time_limit=30.0)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < after + 3.0  # stopped at the next callback, not at the time limit
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
