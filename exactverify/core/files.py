"""Result files: written whole or not at all, and JSON that understands numpy and result dataclasses."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import InputError


def write_atomic(path, text: str) -> None:
    """Write via a temporary file and rename, so a failed run never leaves a half-written file."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise InputError(path, f"output directory {path.parent} does not exist")
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
