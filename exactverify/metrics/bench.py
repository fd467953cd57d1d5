"""Running VNN-COMP style instance lists and comparing with ground truth.

An instances csv has rows `network,property,timeout` (no header in VNN-COMP;
a header row is tolerated), paths relative to the csv. A ground-truth csv has a
header with at least `network`, `property` and `expected`; rows are matched by
the file names (basenames) of network and property, which is how the files in
shared/benchmarks name them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import statistics
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..core.errors import InputError
from ..core.journal import Journal
from ..core.runner import Runner
from ..core.runtime import Interrupted, default_workers, progress_bar


@dataclass
class Instance:
    """One row of an instances csv: the network and property files and the time limit."""

    network: Path
    property: Path
    timeout: float  # seconds, as the csv gives it
    line: int  # line in the csv (1-based)
    listed: tuple = ("", "")  # network and property as the csv writes them (relative to it)


@dataclass
class InstanceResult:
    """The outcome of one instance: verify's status and time, and whether it agrees with the ground truth."""

    network: str  # as the instances csv writes it
    property: str
    status: str  # sat / unsat / timeout / unknown / error
    seconds: float
    timeout: float  # the time limit it ran under
    expected: str = ""  # ground truth, when given
    agrees: str = ""  # "yes", "WRONG", or "" when either side is undecided
    reason: str = ""
    onnxruntime_recheck: str = ""  # for sat: "ok" / "FAILED" / "skipped" without onnxruntime / "" when not ONNX
    counterexample: list | None = None  # for sat: the input x


@dataclass
class BenchReport:
    """The results of running one instances csv: an InstanceResult per instance."""

    instances_csv: str
    rows: list = field(default_factory=list)

    def summary(self) -> dict:
        """The counts by status, agreement with the ground truth, onnxruntime re-checks, and the times."""
        statuses = [r.status for r in self.rows]
        times = [r.seconds for r in self.rows]
        decided = [r for r in self.rows if r.status in ("sat", "unsat")]
        with_truth = [r for r in self.rows if r.expected in ("sat", "unsat")]
        return {
            "instances": len(self.rows),
            "decided": len(decided),
            **{s: statuses.count(s) for s in ("sat", "unsat", "timeout", "unknown", "error")},
            "with_ground_truth": len(with_truth),
            "agreeing": sum(r.agrees == "yes" for r in self.rows),
            "wrong": sum(r.agrees == "WRONG" for r in self.rows),
            "sat_onnxruntime_rechecked": sum(r.onnxruntime_recheck == "ok" for r in self.rows),
            "sat_onnxruntime_failed": sum(r.onnxruntime_recheck == "FAILED" for r in self.rows),
            "sat_onnxruntime_skipped": sum(r.onnxruntime_recheck == RECHECK_SKIPPED for r in self.rows),
            "time_total_s": round(sum(times), 3),
            "time_median_s": round(statistics.median(times), 4) if times else 0.0,
            "time_median_decided_s": round(statistics.median([r.seconds for r in decided]), 4) if decided else None,
            "time_max_s": round(max(times), 3) if times else 0.0,
        }

    def as_dict(self) -> dict:
        """The report as JSON-ready data: the csv, the summary and every instance's result."""
        return {"instances_csv": self.instances_csv, "summary": self.summary(),
                "results": [asdict(r) for r in self.rows]}

    def to_csv(self) -> str:
        """The results as csv text with a header, one row per instance (counterexamples left out)."""
        out = io.StringIO()
        cols = ["network", "property", "status", "seconds", "timeout", "expected", "agrees", "reason",
                "onnxruntime_recheck"]
        w = csv.writer(out)
        w.writerow(cols)
        for r in self.rows:
            w.writerow([getattr(r, c) if c != "seconds" else f"{r.seconds:.4f}" for c in cols])
        return out.getvalue()


def read_instances(csv_path) -> list:
    """The Instances of an instances csv, paths relative to its folder; InputError on a bad row or a missing file."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(csv_path, "instances csv not found")
    base = csv_path.parent
    out = []
    with open(csv_path, newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            row = [c.strip() for c in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise InputError(csv_path, f"line {line_no}: expected network,property,timeout")
            try:
                timeout = float(row[2])
            except ValueError:
                if line_no == 1:
                    continue  # a header row
                raise InputError(csv_path, f"line {line_no}: timeout {row[2]!r} is not a number")
            if not (math.isfinite(timeout) and timeout > 0):  # a nan limit would never run out
                raise InputError(csv_path, f"line {line_no}: timeout {row[2]!r} must be a finite number > 0")
            inst = Instance(base / row[0], base / row[1], timeout, line_no, (row[0], row[1]))
            for p in (inst.network, inst.property):
                if not p.is_file():
                    raise InputError(csv_path, f"line {line_no}: file {p} not found")
            out.append(inst)
    if not out:
        raise InputError(csv_path, "no instances in the csv")
    return out


def read_ground_truth(path) -> dict:
    """The expected verdicts of a ground-truth csv, keyed by (network file name, property file name)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ground-truth csv not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"network", "property", "expected"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(path, f"ground-truth csv lacks column(s) {', '.join(sorted(missing))}")
        truth = {}
        for r in reader:
            if None in (r["network"], r["property"], r["expected"]):  # a row shorter than the header
                raise InputError(path, f"line {reader.line_num}: expected network,property,expected")
            truth[(Path(r["network"]).name, Path(r["property"]).name)] = r["expected"].strip().lower()
        return truth


def run_instances(instances_csv, ground_truth=None, timeout=None, bounds="crown", pattern=None, limit=None,
                  progress=True, verify_options=None, workers: int = 1, scheduler: str | None = None,
                  resume_path=None, on_progress=None) -> BenchReport:
    """Run the instances on `workers` processes (0: one per core) or on the Dask cluster at `scheduler`.

    Each instance's time is measured where it runs, so per-instance figures do not depend on the
    number of workers (as long as workers <= cores). Finished instances are appended to
    `resume_path` (a core.journal.Journal) as they end, and those it already holds are not run
    again; `on_progress(report)` is called with the finished ones each time an instance ends (the
    command line rewrites its csv then).
    On Ctrl-C (or SIGTERM under the command line) the workers are stopped and `Interrupted` is
    raised with the finished instances as a BenchReport in its `partial`.
    """
    instances = read_instances(instances_csv)
    truth = read_ground_truth(ground_truth) if ground_truth else {}
    if pattern:
        rx = re.compile(pattern)
        instances = [i for i in instances if rx.search(f"{i.network} {i.property}")]
    if limit is not None:
        instances = instances[:limit]
    verify_options = verify_options or {}
    workers = default_workers() if not workers or workers < 1 else int(workers)
    runner = Runner(workers, scheduler)
    problem = runner.shared_paths_problem([p.resolve() for i in instances for p in (i.network, i.property)])
    if problem:
        raise InputError(instances_csv, problem)
    config = {"instances_csv": str(Path(instances_csv).resolve()), "timeout": timeout, "bounds": bounds,
              "verify_options": verify_options}
    journal = Journal(resume_path, config, key="line") if resume_path else None
    finished = journal.finished if journal else {}
    rows: dict = {inst.line: _row_of(finished[inst.line]) for inst in instances if inst.line in finished}
    # absolute paths: a task may run in another folder, or on another machine of a cluster
    jobs = [(inst.line, Instance(inst.network.resolve(), inst.property.resolve(), inst.timeout, inst.line,
                                 inst.listed),
             timeout if timeout is not None else inst.timeout,
             truth.get((inst.network.name, inst.property.name), ""), bounds, verify_options)
            for inst in instances if inst.line not in rows]
    report = BenchReport(str(instances_csv))
    order = [inst.line for inst in instances]
    bar = progress_bar(len(instances), progress, initial=len(rows))

    def keep():
        report.rows = [rows[line] for line in order if line in rows]

    try:
        with journal if journal and jobs else contextlib.nullcontext(), \
                runner.results(_run_numbered, jobs) as results:
            for line, row in results:
                rows[line] = row
                if journal:
                    journal.append({"line": line, **asdict(row)})
                keep()
                if on_progress is not None:
                    on_progress(report)
                if bar is not None:
                    s = report.summary()
                    bar.set_postfix_str(f"decided {s['decided']} wrong {s['wrong']}")
                    bar.update(1)
    except KeyboardInterrupt:
        # the workers are stopped; the finished instances go back to the caller to keep
        # raised as it is made: an exception held in a local would make a cycle through this frame, and the
        # pool it references would be collected at exit ("Exception ignored in Pool.__del__")
        keep()
        raise Interrupted(len(report.rows), len(instances), "instances", partial=report) from None
    finally:
        if bar is not None:
            bar.close()
    keep()
    return report


def _row_of(record: dict) -> InstanceResult:
    """An InstanceResult back from its progress-file record."""
    names = {f.name for f in fields(InstanceResult)}
    return InstanceResult(**{k: v for k, v in record.items() if k in names})


def _run_numbered(item):
    line, *job = item
    return line, run_instance(*job)


# onnxruntime_recheck's answer when onnxruntime is not installed (an optional extra: exactverify[recheck])
RECHECK_SKIPPED = "skipped"

_NETWORKS: dict = {}  # per process: a network is loaded once however many properties use it


def run_instance(inst: Instance, budget: float, expected: str, bounds: str, verify_options: dict) -> InstanceResult:
    """Verify one instance within `budget` seconds; a bad input file gives status "error" with its message."""
    from ..loaders import load_network
    from ..loaders.vnnlib import load_vnnlib
    from ..search.verifier import verify

    t0 = time.perf_counter()
    # results name the files as the instances csv does, so they do not depend on where it lies
    row = InstanceResult(inst.listed[0] or str(inst.network), inst.listed[1] or str(inst.property), "error", 0.0,
                         budget, expected)
    try:
        if inst.network not in _NETWORKS:
            _NETWORKS.clear()  # instances come grouped by network; keep one in memory
            _NETWORKS[inst.network] = load_network(inst.network)
        net = _NETWORKS[inst.network]
        prop = load_vnnlib(inst.property)
        prop.validate(net)
        result = verify(net, prop, timeout=budget, bounds=bounds, **verify_options)
        row.status, row.reason = result.status, result.reason
        if result.counterexample is not None:
            row.counterexample = [float(v) for v in result.counterexample.x]
            row.onnxruntime_recheck = onnxruntime_recheck(inst.network, net, prop, result.counterexample.x)
    except InputError as e:
        row.reason = e.message
    row.seconds = time.perf_counter() - t0
    if row.expected in ("sat", "unsat") and row.status in ("sat", "unsat"):
        row.agrees = "yes" if row.expected == row.status else "WRONG"
    return row


def onnxruntime_recheck(network_path: Path, net, prop, x) -> str:
    """Evaluate the ONNX file with onnxruntime (float32) at x: ok, FAILED, skipped (not installed) or '' (not ONNX)."""
    if network_path.suffix.lower() != ".onnx":
        return ""
    import numpy as np
    try:
        import onnxruntime as ort
    except ImportError:
        return RECHECK_SKIPPED
    sess = ort.InferenceSession(str(network_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    x32 = np.asarray(x, dtype=np.float32).reshape(shape)
    y = sess.run(None, {inp.name: x32})[0].astype(np.float64).ravel()
    return "ok" if prop.satisfied_by(np.asarray(x, dtype=np.float64), y) else "FAILED"


def format_summary(report: BenchReport) -> str:
    """The terminal summary: counts, agreement, times, and a line per WRONG, error or onnxruntime-FAILED instance."""
    s = report.summary()
    lines = [
        f"instances: {s['instances']}  decided: {s['decided']} (sat {s['sat']}, unsat {s['unsat']})  "
        f"timeout: {s['timeout']}  unknown: {s['unknown']}  error: {s['error']}",
    ]
    if s["with_ground_truth"]:
        lines.append(f"ground truth: {s['with_ground_truth']} with a sat/unsat verdict; "
                     f"agreeing {s['agreeing']}, WRONG {s['wrong']}")
    if s["sat"]:
        if s["sat_onnxruntime_skipped"] and not s["sat_onnxruntime_rechecked"] and not s["sat_onnxruntime_failed"]:
            # "0 ok, 0 failed" would read as if the counterexamples had been looked at
            lines.append('sat counterexamples re-checked by onnxruntime: skipped (onnxruntime not installed; '
                         'pip install "exactverify[recheck]")')
        else:
            skipped = s["sat_onnxruntime_skipped"]
            lines.append(f"sat counterexamples re-checked by onnxruntime: {s['sat_onnxruntime_rechecked']} ok, "
                         f"{s['sat_onnxruntime_failed']} failed"
                         + (f", {skipped} skipped (onnxruntime not installed)" if skipped else ""))
    lines.append(f"time: total {s['time_total_s']:.2f} s, median {s['time_median_s']:.3f} s, "
                 f"max {s['time_max_s']:.2f} s")
    for r in report.rows:
        if r.agrees == "WRONG" or r.status == "error" or r.onnxruntime_recheck == "FAILED":
            lines.append(f"  {r.status.upper()} {Path(r.network).name} {Path(r.property).name}: "
                         f"expected {r.expected or '?'}; {r.reason}")
    return "\n".join(lines)
