"""LP (CPLEX LP) and MPS (free MPS) text of a `MilpModel`, with no number rounded.

Every number is written as `repr(float)`: the shortest decimal string that
reads back as the very same float64 (Python guarantees the round trip; any
correctly rounding reader, e.g. HiGHS' `readModel`, gets the exact model back,
which tests/encodings/test_export.py checks bit for bit).

Both formats say the same thing:

- every column with both its bounds written explicitly (`lo <= x <= hi`, or
  `x = v` / FX when they are equal); integer columns (the binaries) in the
  `General` section / between INTORG markers, with their [0, 1] bounds;
- a row `rl <= a x <= ru` is written as one `=` row when rl == ru, one `<=`
  or `>=` row when only one side is finite, and otherwise as TWO rows named
  `<name>_lo` (`>= rl`) and `<name>_up` (`<= ru`) rather than an MPS RANGES
  entry, whose width ru - rl would itself be a rounded float;
- row names are the model's, made unique by appending `__<index>` where the
  encoding repeats one (MaxGroups rows);
- the objective row is `obj` (min s for the verifier's models).
"""

from __future__ import annotations

import numpy as np

_TERMS_PER_LINE = 6


def _num(v: float) -> str:
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"cannot write the non-finite number {v} as a bound or coefficient")
    return repr(v)


def unique_names(names, prefix: str, identifiers: bool = False) -> list:
    """`names` as distinct strings: `prefix` + index for an empty one, `__<index>` appended to a repeat
    (again until it is new: two columns or rows must never share a name in a written model);
    with `identifiers`, every character but letters, digits and underscores becomes an underscore."""
    out, seen = [], set()
    for k, n in enumerate(names):
        n = str(n) if n else ""
        if identifiers:
            n = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in n)
        n = n or f"{prefix}{k}"
        while n in seen:
            n = f"{n}__{k}"
        seen.add(n)
        out.append(n)
    return out


def written_rows(model):
    """[(name, sense, rhs, row index)] as written: sense is 'E', 'L' or 'G'; ranged rows give two entries."""
    names = unique_names(model.row_names, "r")
    out = []
    for i in range(model.num_rows):
        lo, hi = float(model.row_lower[i]), float(model.row_upper[i])
        fl, fh = np.isfinite(lo), np.isfinite(hi)
        if fl and fh and lo == hi:
            out.append((names[i], "E", lo, i))
        elif fl and fh:
            out.append((f"{names[i]}_lo", "G", lo, i))
            out.append((f"{names[i]}_up", "L", hi, i))
        elif fl:
            out.append((names[i], "G", lo, i))
        elif fh:
            out.append((names[i], "L", hi, i))
        # a row free on both sides constrains nothing: not written
    unique = unique_names([r[0] for r in out], "r")  # a `_lo`/`_up` suffix must not meet another row's name
    return [(n,) + r[1:] for n, r in zip(unique, out)]


def to_lp(model, comments=()) -> str:
    """The model in CPLEX LP format (as HiGHS, CBC, GLPK, SCIP, Gurobi and CPLEX read it)."""
    cols = unique_names(model.col_names, "c")
    A = model.A.tocsr()
    lines = [f"\\ {c}" for c in comments]
    lines.append("Minimize" if model.sense == "min" else "Maximize")
    obj = [(j, v) for j, v in enumerate(model.objective) if v != 0]
    lines += _expression(" obj:", [(cols[j], v) for j, v in obj] or [(cols[0], 0.0)])
    lines.append("Subject To")
    sense = {"E": "=", "L": "<=", "G": ">="}
    for name, kind, rhs, i in written_rows(model):
        s, e = A.indptr[i], A.indptr[i + 1]
        terms = [(cols[j], v) for j, v in zip(A.indices[s:e], A.data[s:e])]
        expr = _expression(f" {name}:", terms or [(cols[0], 0.0)])
        expr[-1] += f" {sense[kind]} {_num(rhs)}"
        lines += expr
    lines.append("Bounds")
    for n, lo, hi in zip(cols, model.col_lower, model.col_upper):
        if lo == hi:
            lines.append(f" {n} = {_num(lo)}")
        else:
            lines.append(f" {_bound(lo, '-inf')} <= {n} <= {_bound(hi, '+inf')}")
    ints = [cols[j] for j in np.flatnonzero(model.integrality)]
    if ints:
        lines.append("General")
        for k in range(0, len(ints), 10):
            lines.append(" " + " ".join(ints[k:k + 10]))
    lines.append("End")
    return "\n".join(lines) + "\n"


def to_mps(model, comments=(), name: str = "exactverify") -> str:
    """The model in free MPS format (names without spaces; explicit bounds on every column)."""
    cols = unique_names(model.col_names, "c")
    rows = written_rows(model)
    lines = [f"* {c}" for c in comments]
    lines.append(f"NAME {name}")
    if model.sense != "min":
        lines += ["OBJSENSE", "    MAX"]
    lines.append("ROWS")
    lines.append(" N obj")
    lines += [f" {kind} {n}" for n, kind, _, _ in rows]
    # column-wise entries: for each original row index, the written rows it became
    written_of = {}
    for n, _, _, i in rows:
        written_of.setdefault(i, []).append(n)
    Ac = model.A.tocsc()
    lines.append("COLUMNS")
    in_int = False
    for j, cname in enumerate(cols):
        integer = bool(model.integrality[j])
        if integer and not in_int:
            lines.append("    MARKER 'MARKER' 'INTORG'")
            in_int = True
        elif not integer and in_int:
            lines.append("    MARKER 'MARKER' 'INTEND'")
            in_int = False
        lines.append(f"    {cname} obj {_num(model.objective[j])}")
        s, e = Ac.indptr[j], Ac.indptr[j + 1]
        for i, v in zip(Ac.indices[s:e], Ac.data[s:e]):
            for rname in written_of.get(int(i), ()):
                lines.append(f"    {cname} {rname} {_num(v)}")
    if in_int:
        lines.append("    MARKER 'MARKER' 'INTEND'")
    lines.append("RHS")
    lines += [f"    RHS {n} {_num(rhs)}" for n, _, rhs, _ in rows if rhs != 0]
    lines.append("BOUNDS")
    for n, lo, hi in zip(cols, model.col_lower, model.col_upper):
        if lo == hi:
            lines.append(f" FX BND {n} {_num(lo)}")
            continue
        if np.isfinite(lo):
            lines.append(f" LO BND {n} {_num(lo)}")
        else:
            lines.append(f" MI BND {n}")
        if np.isfinite(hi):
            lines.append(f" UP BND {n} {_num(hi)}")
        else:
            lines.append(f" PL BND {n}")
    lines.append("ENDATA")
    return "\n".join(lines) + "\n"


def _bound(v, inf: str) -> str:
    return _num(v) if np.isfinite(v) else inf


def _expression(head: str, terms) -> list:
    """` head + a x - b y ...` over several lines (LP readers limit line length)."""
    lines, cur = [], head
    for k, (name, v) in enumerate(terms):
        v = float(v)
        sign = "-" if (v < 0 or (v == 0 and np.signbit(v))) else "+"
        cur += f" {sign} {_num(abs(v))} {name}"
        if (k + 1) % _TERMS_PER_LINE == 0 and k + 1 < len(terms):
            lines.append(cur)
            cur = "   "
    lines.append(cur)
    return lines
