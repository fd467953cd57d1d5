"""Errors a user can cause, as opposed to bugs.

Every problem with the files a user hands us (a malformed ONNX or VNN-LIB file,
an unsupported operator, NaN weights, an empty input box, a shape mismatch) is
raised as an `InputError` naming the file and the problem. The CLI prints its
one-line message and exits with code 2; it never shows a traceback for these.
"""

from __future__ import annotations


class InputError(Exception):
    """A problem with user input: `path` is the offending file (or None)."""

    def __init__(self, path, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The one-line message the CLI prints: "path: problem", or the problem alone without a path."""
        if self.path:
            return f"{self.path}: {self.problem}"
        return self.problem


def require_file(path, kind: str):
    """`path` as a Path if it names an existing regular file; otherwise InputError ("a network file", ...)."""
    from pathlib import Path
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, f"is a directory, not {kind}")
    return path
