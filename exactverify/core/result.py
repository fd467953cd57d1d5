"""Results as plain data: what `verify` returns and `--json` writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

STATUSES = ("sat", "unsat", "timeout", "unknown")


@dataclass
class VerificationResult:
    """What `verify` returns: a status, the re-checked counterexample if sat, the reason, timings and stats."""

    status: str  # one of STATUSES
    # sat: a re-checked Counterexample (see check.py); None otherwise
    counterexample: object = None
    # how the verdict was reached, e.g. "counterexample re-checked (milp)",
    # "milp infeasible for every disjunct", "bounds prove every disjunct infeasible"
    reason: str = ""
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # stage name -> seconds
    # summary of the bounds used: method, unstable ReLUs per layer, output bounds
    bounds: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)  # solver calls, nodes, binaries, ...
    network: str | None = None  # the network's source file, if known
    property: str | None = None  # the property's source: its file or a description

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    def as_dict(self) -> dict:
        """The result as JSON-ready data, the counterexample included as a dict."""
        d = asdict(self)
        ce = self.counterexample
        d["counterexample"] = ce.as_dict() if ce is not None and hasattr(ce, "as_dict") else ce
        return d
