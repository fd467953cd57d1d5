"""Regenerate the encodings gallery: `python encodings/regenerate.py` (from anywhere).

Writes, for the bundled example network examples/toy_spirals.onnx and each of
examples/toy_eps0.05.vnnlib and examples/toy_eps0.15.vnnlib, the exported
encodings in every format (lp, mps, smt2) into this folder, one file per
(case, disjunct): <property stem>.c<I>.d<J>.<ext>. It runs exactly
`exactverify export NETWORK PROPERTY --format FMT -o encodings/<stem>.<ext>`
(default tightening, crown) from the repository root, so the files name the
inputs by their repository-relative paths and do not depend on the checkout.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NETWORK = "examples/toy_spirals.onnx"
PROPERTIES = ("examples/toy_eps0.05.vnnlib", "examples/toy_eps0.15.vnnlib")
FORMATS = ("lp", "mps", "smt2")


def regenerate() -> list:
    sys.path.insert(0, str(REPO))
    from exactverify.cli.app import main

    written = []
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for prop in PROPERTIES:
            stem = Path(prop).stem
            for fmt in FORMATS:
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    rc = main(["export", NETWORK, prop, "--format", fmt, "-o", f"encodings/{stem}.{fmt}"])
                if rc != 0:
                    raise SystemExit(f"export of {prop} as {fmt} failed (exit {rc})")
                for path in out.getvalue().split():
                    os.chmod(path, 0o644)  # the CLI's atomic writes leave 0600
                    written.append(path)
    finally:
        os.chdir(cwd)
    return written


if __name__ == "__main__":
    for path in regenerate():
        print(path)
