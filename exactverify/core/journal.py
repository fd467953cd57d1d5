"""The progress file of a batch command: each finished task is appended to a jsonl file as it ends,
and a rerun with the same file (`--resume`) skips the tasks it already holds. bench, robustness,
validate and audit all keep their progress this way.

The first line is `{"config": {...}}`, the settings of the run. A rerun whose settings differ in
one of the keys that decide the results (`match`) is refused with an InputError rather than mixing
two runs' results in one report. Then comes one line per finished task: a JSON object whose field
`key` names the task. A line is written whole, then flushed: an interrupt lands after it, never
inside it, and a last line cut off by a killed run is dropped when the file is read or appended to.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError
from .files import json_default
from .runtime import held_interrupts


class Journal:
    """The finished tasks of a run as `path` held them when opened (`finished`: key -> record), appended to as
    tasks end."""

    def __init__(self, path, config: dict, key: str, match: tuple = ()):
        self.path = Path(path)
        self.config = json.loads(json.dumps(config, default=json_default))  # as it reads back
        self.key = key
        self.match = tuple(match) or tuple(self.config)
        self._file = None
        self.finished: dict = self._read()

    def _read(self) -> dict:
        if not self.path.exists():
            return {}
        with open(self.path) as f:
            lines = f.read().splitlines()
        done: dict = {}
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if k == len(lines) - 1:
                    continue  # a line cut off by a killed run
                raise InputError(self.path, f"line {k + 1} is not JSON")
            if not isinstance(record, dict):
                raise InputError(self.path, f"line {k + 1} is not a JSON object")
            if "config" in record:
                theirs = {name: record["config"].get(name) for name in self.match}
                ours = {name: self.config.get(name) for name in self.match}
                if theirs != ours:
                    different = ", ".join(f"{n} {theirs[n]!r} there, {ours[n]!r} now" for n in self.match
                                          if theirs[n] != ours[n])
                    raise InputError(self.path, f"progress file of a different run ({different}); "
                                                "give another --resume file or remove this one")
                continue
            if self.key not in record:
                raise InputError(self.path, f"line {k + 1} has no {self.key!r}")
            done[record[self.key]] = record
        return done

    def __enter__(self) -> "Journal":
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            _drop_cut_line(self.path)
        self._file = open(self.path, "a")
        if new:
            self._write({"config": self.config})
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def append(self, record: dict) -> None:
        """Write one finished task's record (it must hold `key`) as a whole line and flush it."""
        self._write(record)

    def _write(self, record: dict) -> None:
        line = json.dumps(record, default=json_default) + "\n"
        with held_interrupts():  # a Ctrl-C lands after the line, never inside it
            self._file.write(line)
            self._file.flush()


def _drop_cut_line(path: Path) -> None:
    """Drop a last line that lacks its newline (a run killed while writing it), so appended records start a line."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
