"""`verify` on several worker processes: the property cut into pieces that workers decide alone.

First one process tries alone for a short while (`solo` seconds: most instances end there, and a
pool costs about a second to start). If that does not decide it, the property is cut into pieces
whose union is the whole property: each case's input box is halved along its widest inputs
(closed halves, as input splitting does) when the input has at most `_SPLIT_MAX_INPUTS` values,
else each (case, disjunct) becomes a piece. Spawned workers take pieces in turn, each with the
time left to the common deadline. Verdicts combine soundly:
- sat: the first piece with a counterexample; it is re-checked against the whole property
  (`check_point`, float64 and float32) in this process before it is reported, and the pool is
  stopped;
- unsat: only when every piece is unsat (the pieces cover the property);
- otherwise timeout, or unknown when no piece timed out.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .property import Case, Property
from .result import VerificationResult

_SPLIT_MAX_INPUTS = 16
_WORKER: dict = {}


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def pieces_of(prop: Property, target: int) -> list[Property]:
    """Sub-properties whose union is `prop`: at least `target` of them where the boxes can be cut."""
    pieces = []
    for ci, case in enumerate(prop.cases):
        if prop.n_inputs > _SPLIT_MAX_INPUTS:
            for di, d in enumerate(case.disjuncts):
                pieces.append(Property(prop.n_inputs, prop.n_outputs,
                                       [Case(case.lower, case.upper, [d], case.input_A, case.input_b)],
                                       source=f"{prop.source} [case {ci} disjunct {di}]"))
            continue
        boxes = [(case.lower.copy(), case.upper.copy())]
        per_case = max(1, -(-target // len(prop.cases)))
        while len(boxes) < per_case:
            lo, hi = boxes.pop(0)
            dim = int(np.argmax(hi - lo))
            mid = lo[dim] + (hi[dim] - lo[dim]) / 2
            if not lo[dim] < mid < hi[dim]:
                boxes.append((lo, hi))
                break
            for a, b in ((lo[dim], mid), (mid, hi[dim])):
                clo, chi = lo.copy(), hi.copy()
                clo[dim], chi[dim] = a, b
                boxes.append((clo, chi))
        for k, (lo, hi) in enumerate(boxes):
            pieces.append(Property(prop.n_inputs, prop.n_outputs,
                                   [Case(lo, hi, list(case.disjuncts), case.input_A, case.input_b)],
                                   source=f"{prop.source} [case {ci} box {k}]"))
    return pieces


def _init(network, options):
    _WORKER["network"] = network
    _WORKER["options"] = options


def _run_piece(item):
    from .verifier import verify
    k, piece, deadline = item
    left = deadline - time.time()
    if left <= 0:
        return k, VerificationResult(status="timeout", reason="no time left for this piece")
    return k, verify(_WORKER["network"], piece, timeout=left, workers=1, **_WORKER["options"])


def verify_parallel(network, prop: Property, timeout: float, workers: int, solo: float | None = None,
                    **options) -> VerificationResult:
    from .check import check_point
    from .verifier import verify
    start = time.time()
    deadline = start + float(timeout)
    solo = min(float(timeout), max(2.0, 0.05 * float(timeout)) if solo is None else float(solo))
    first = verify(network, prop, timeout=solo, workers=1, **options)
    if first.status != "timeout" or deadline - time.time() < 1.0:
        return first
    progress = options.pop("progress", None)
    pieces = pieces_of(prop, 4 * workers)
    statuses = {}
    import multiprocessing as mp
    ctx = mp.get_context("spawn")  # not fork: a forked copy of a process that has run HiGHS is not safe
    pool = ctx.Pool(min(workers, len(pieces)), initializer=_init, initargs=(network, options))
    found = None
    try:
        for k, res in pool.imap_unordered(_run_piece, [(k, p, deadline) for k, p in enumerate(pieces)]):
            statuses[k] = res.status
            if progress is not None:
                progress(f"[{time.time() - start:6.1f} s] piece {k + 1}/{len(pieces)}: {res.status} "
                         f"({len(statuses)} done)")
            if res.status == "sat" and res.counterexample is not None:
                ce = check_point(network, prop, np.asarray(res.counterexample.x, dtype=np.float64))
                if ce is not None:
                    found = (ce, res)
                    break
    finally:
        pool.terminate()
        pool.join()
    seconds = time.time() - start
    counts = {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))}
    stats = {"workers": workers, "pieces": len(pieces), "piece_statuses": counts, "solo_seconds": first.seconds}
    if found is not None:
        ce, res = found
        return VerificationResult(status="sat", counterexample=ce, seconds=seconds, stats=stats,
                                  reason=f"counterexample re-checked (piece of {len(pieces)} on {workers} workers: "
                                         f"{res.reason})", network=first.network, property=first.property)
    if len(statuses) == len(pieces) and all(s == "unsat" for s in statuses.values()):
        return VerificationResult(status="unsat", seconds=seconds, stats=stats, network=first.network,
                                  property=first.property,
                                  reason=f"every disjunct refuted (all {len(pieces)} pieces unsat on {workers} workers)")
    status = "timeout" if (time.time() >= deadline or "timeout" in statuses.values()
                           or len(statuses) < len(pieces)) else "unknown"
    return VerificationResult(status=status, seconds=seconds, stats=stats, network=first.network,
                              property=first.property,
                              reason=f"{counts.get('unsat', 0)} of {len(pieces)} pieces unsat on {workers} workers; "
                                     f"the rest: {', '.join(f'{s} {n}' for s, n in counts.items() if s != 'unsat')}"
                                     or "no piece decided")
