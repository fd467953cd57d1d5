"""Data sets of labelled points: one loader for every command that reads them.

A data set is a `.npz` with arrays `x` (points, any shape per point: each is
flattened) and `y` (integer labels), or a csv of rows `label,p0,p1,...` such as
../shared/benchmarks/data/mnist_test_first100.csv (a header row is skipped).
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import InputError, require_file


def load_dataset(path, scale: float | None = None, n_inputs: int | None = None, n_outputs: int | None = None,
                 limit: int | None = None):
    """(X, y) from a `.npz` (arrays x, y) or a csv `label,p0,p1,...` (a header row is skipped).

    X is divided by `scale` when given; `limit` keeps the first points only. Problems (missing file, wrong shapes, labels out of range,
    non-finite values) raise InputError(path, problem).
    """
    path = require_file(path, "a data file")
    name = path.name.lower()
    if name.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                if "x" not in f or "y" not in f:
                    raise InputError(path, f"expected arrays 'x' and 'y', found {', '.join(f.files) or 'none'}")
                X, y = np.asarray(f["x"]), np.asarray(f["y"])
        except InputError:
            raise
        except Exception as e:
            raise InputError(path, f"cannot read npz: {e}")
    elif name.endswith(".csv") or name.endswith(".txt"):
        try:
            text = path.read_text().strip().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(path, f"cannot read csv: {e}")
        rows = []
        for k, line in enumerate(text):
            if not line.strip():
                continue
            parts = line.split(",")
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                if k == 0:
                    continue  # a header
                raise InputError(path, f"line {k + 1}: not a number in '{line[:40]}'")
        if not rows:
            raise InputError(path, "no data rows")
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise InputError(path, f"rows have different lengths ({', '.join(map(str, sorted(widths)))})")
        arr = np.array(rows, dtype=np.float64)
        if arr.shape[1] < 2:
            raise InputError(path, "each row needs a label and at least one value")
        y, X = arr[:, 0], arr[:, 1:]
    else:
        raise InputError(path, f"unknown data file type '{path.suffix}' (expected .npz or .csv)")
    if X.ndim < 1 or len(X) == 0:
        raise InputError(path, "no data points")
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y).ravel()
    if len(y) != len(X):
        raise InputError(path, f"{len(X)} points but {len(y)} labels")
    if not np.all(np.isfinite(X)):
        raise InputError(path, "inputs contain NaN or infinite values")
    yf = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)):
        raise InputError(path, "labels must be integers")
    y = yf.astype(np.int64)
    if scale is not None:
        if not (scale > 0 and math.isfinite(scale)):
            raise InputError(None, f"--scale must be a positive number, not {scale}")
        X = X / float(scale)
    if n_inputs is not None and X.shape[1] != n_inputs:
        raise InputError(path, f"points have {X.shape[1]} values but the network takes {n_inputs} inputs")
    if n_outputs is not None and (np.any(y < 0) or np.any(y >= n_outputs)):
        bad = int(y[(y < 0) | (y >= n_outputs)][0])
        raise InputError(path, f"label {bad} is out of range for a network with {n_outputs} outputs")
    if limit is not None:
        X, y = X[:limit], y[:limit]
    return X, y
