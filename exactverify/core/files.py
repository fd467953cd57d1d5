"""Result files: written whole or not at all, and JSON that understands numpy and result dataclasses."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import InputError


def output_problem(path, appended: bool = False) -> str | None:
    """Why `path` cannot be written as an output file (its folder missing or read-only, or it is a folder), or None."""
    path = Path(path)
    folder = Path(os.path.abspath(path)).parent  # not resolved: a symlinked output is replaced where it lies
    if path.is_dir():
        return "is a directory"
    if not folder.exists():
        return f"output directory {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a directory"
    # write_atomic writes a temporary file in the folder and renames it: the folder must be writable
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"output directory {folder} is not writable"
    if appended and path.exists() and not os.access(path, os.W_OK):
        return "is not writable"
    return None



def write_atomic(path, text: str) -> None:
    """Write via a temporary file and rename, so a failed run never leaves a half-written file."""
    path = Path(path)
    problem = output_problem(path)  # the same check the command line makes before any work
    if problem:
        raise InputError(path, problem)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a result file is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def json_default(obj):
    """`json.dumps(default=...)` for numpy arrays and scalars and objects with `as_dict()`."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    raise TypeError(f"cannot serialise {type(obj).__name__}")
