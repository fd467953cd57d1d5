"""Auditing another tool's verdicts against exact answers.

A results csv lists one verdict per instance. Two layouts are read:

- with a header row naming at least `network`, `property` and `result` (any
  other columns are kept and carried into the report); a `year`/`tool` pair of
  columns (the `results_all_tools_long.csv` tables of shared/benchmarks) is
  narrowed to one tool-year with `tool=` and `year=`;
- headerless, the VNN-COMP layout `network,property,prepare_time,result,run_time`
  (or, as the competition's own results files have it, with the benchmark name
  first: `benchmark,network,property,prepare_time,result,run_time`).

Paths are relative to `root` (default: the csv's folder); a bare file name that
is not found there is looked up in the folders directly below `root` (so the
`onnx/` and `vnnlib/` folders of a benchmark need no prefix).

Result words: holds / unsat / safe / verified claim **unsat** (the property
holds); violated / sat / unsafe / falsified claim **sat**; anything else
(timeout, unknown, error, ...) is no claim and is skipped.

Every claim is decided with `verify` and classified:

- `confirmed`: the exact answer is the claimed one;
- `WRONG`: the exact answer is the opposite one. A wrong `unsat` claim comes
  with a counterexample re-checked on the network in float64 and float32 (and,
  for ONNX, by onnxruntime); a wrong `sat` claim with the proof (how every
  disjunct was refuted);
- `undecided`: verify ran out of time or could not decide.

`audit` never calls a claim WRONG on anything but a `sat` with a re-checked
counterexample or an `unsat` proof, so a WRONG is as trustworthy as those.
"""

from __future__ import annotations

import contextlib
import csv
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.errors import InputError
from ..core.journal import Journal
from ..core.runner import Runner
from ..core.runtime import Interrupted, progress_bar

CLAIMS_UNSAT = ("holds", "unsat", "safe", "verified", "robust")
CLAIMS_SAT = ("violated", "sat", "unsafe", "falsified", "not_robust")
OUTCOMES = ("confirmed", "WRONG", "undecided")


def claim_of(word: str) -> str:
    """'sat', 'unsat', or '' (no claim) for a result word of another tool."""
    w = (word or "").strip().lower()
    if w.startswith("excluded:"):  # the organisers excluded the run; the tool still claimed it
        w = w[len("excluded:"):]
    if w in CLAIMS_UNSAT:
        return "unsat"
    if w in CLAIMS_SAT:
        return "sat"
    return ""


@dataclass
class Claim:
    """One row of a results csv: the tool's word, the claim it makes and the files it names."""

    line: int  # line in the results csv (1-based)
    network: str  # as the csv writes it
    property: str
    result: str  # the tool's word, as written
    claim: str  # "sat", "unsat" or "" (no claim)
    network_path: Path | None = None  # the file found for `network`; set for claims only
    property_path: Path | None = None  # the file found for `property`; set for claims only
    extra: dict = field(default_factory=dict)  # the csv's other columns


@dataclass
class AuditRow:
    """One audited claim: the tool's claim, verify's exact verdict, the outcome and its evidence."""

    line: int
    network: str
    property: str
    result: str  # the tool's word
    claim: str  # sat / unsat
    exact: str = ""  # verify's verdict: sat / unsat / timeout / unknown / error
    outcome: str = ""  # confirmed / WRONG / undecided
    evidence: str = ""  # one line: the counterexample or the proof
    reason: str = ""  # verify's own reason
    seconds: float = 0.0  # time spent deciding this claim
    counterexample: dict | None = None  # for exact == sat: x, y (float64), y_float32
    onnxruntime_recheck: str = ""  # for exact == sat on ONNX: ok / FAILED / skipped (not installed) / ""
    expected: str = ""  # ground truth, when given
    extra: dict = field(default_factory=dict)  # the csv's other columns


@dataclass
class AuditReport:
    """The audit of one results csv: a row per checked claim, the rows skipped, and the settings used."""

    results_csv: str
    root: str  # the folder the csv's paths are relative to
    timeout: float  # seconds per claim
    tool: str | None = None  # the tool-year picked from a long table, if any
    year: str | None = None
    rows: list = field(default_factory=list)  # AuditRow, claims only
    skipped: dict = field(default_factory=dict)  # result word -> count, rows without a claim
    not_selected: int = 0  # claims left out by `only`
    seconds: float = 0.0  # wall time of the whole audit

    @property
    def wrong(self) -> list:
        """The rows whose outcome is WRONG."""
        return [r for r in self.rows if r.outcome == "WRONG"]

    def summary(self) -> dict:
        """The counts: claims by kind and outcome, rows skipped, time in verify, agreement with any ground truth."""
        by = Counter((r.claim, r.outcome) for r in self.rows)
        s = {
            "rows": len(self.rows) + sum(self.skipped.values()) + self.not_selected,
            "claims": len(self.rows),
            "claims_sat": sum(r.claim == "sat" for r in self.rows),
            "claims_unsat": sum(r.claim == "unsat" for r in self.rows),
            "confirmed": sum(r.outcome == "confirmed" for r in self.rows),
            "WRONG": sum(r.outcome == "WRONG" for r in self.rows),
            "undecided": sum(r.outcome == "undecided" for r in self.rows),
            "no_claim": sum(self.skipped.values()),
            "not_selected": self.not_selected,
            "by_claim": {c: {o: by[(c, o)] for o in OUTCOMES} for c in ("sat", "unsat")},
            "time_total_s": round(sum(r.seconds for r in self.rows), 3),
        }
        truth = [r for r in self.rows if r.expected in ("sat", "unsat")]
        if truth:
            s["with_ground_truth"] = len(truth)
            s["claims_contradicting_ground_truth"] = sum(r.claim != r.expected for r in truth)
            # the audit's own answer against the ground truth: every decided answer must agree
            decided = [r for r in truth if r.exact in ("sat", "unsat")]
            s["exact_agrees_with_ground_truth"] = sum(r.exact == r.expected for r in decided)
            s["exact_disagrees_with_ground_truth"] = sum(r.exact != r.expected for r in decided)
        return s

    def as_dict(self) -> dict:
        """The report as JSON-ready data: the settings, the summary, the skipped words and every claim's row."""
        return {"results_csv": self.results_csv, "root": self.root, "tool": self.tool, "year": self.year,
                "timeout_s": self.timeout, "seconds": round(self.seconds, 3), "summary": self.summary(),
                "skipped": dict(self.skipped), "claims": [asdict(r) for r in self.rows]}


# ---------------------------------------------------------------- reading

def _norm_name(s) -> str:
    """'NV.jl', 'nv_jl' and 'nvjl' name the same tool."""
    return re.sub(r"[^a-z0-9]", "", str(s).lower())


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_claims(csv_path, root=None, tool=None, year=None) -> list:
    """Every row of a results csv as a Claim (rows without a claim included, claim == '').

    Raises InputError for a missing or malformed csv, an unknown tool/year, and
    for a claim whose network or property file cannot be found.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(csv_path, "results csv not found")
    root = Path(root) if root is not None else csv_path.parent
    if not root.is_dir():
        raise InputError(root, "--root is not a directory")
    try:
        with open(csv_path, newline="") as f:
            rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(f), start=1)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(csv_path, f"not a readable csv ({e})")
    rows = [(n, r) for n, r in rows if r and any(r) and not r[0].startswith("#")]
    if not rows:
        raise InputError(csv_path, "no rows in the results csv")
    head = [c.lower() for c in rows[0][1]]
    claims = []
    if {"network", "property", "result"} <= set(head):
        col = {name: head.index(name) for name in head}
        body = rows[1:]
        if "tool" in col:
            body = _one_tool(csv_path, body, col, tool, year)
        elif tool is not None or year is not None:
            raise InputError(csv_path, "--tool/--year given but the csv has no 'tool' column")
        for n, r in body:
            if len(r) < len(head):
                raise InputError(csv_path, f"line {n}: {len(r)} columns, the header names {len(head)}")
            extra = {h: r[i] for i, h in enumerate(head) if h not in ("network", "property", "result")}
            claims.append(Claim(n, r[col["network"]], r[col["property"]], r[col["result"]],
                                claim_of(r[col["result"]]), extra=extra))
    elif any(h in ("network", "property", "result", "onnx", "vnnlib") for h in head):
        raise InputError(csv_path, "the header must name at least the columns network, property and result")
    else:
        if tool is not None or year is not None:
            raise InputError(csv_path, "--tool/--year need a csv with 'tool' and 'year' columns")
        for n, r in rows:
            if len(r) == 5 and _is_number(r[2]):
                net, prop, prep, word, run = r
                extra = {"prepare_time": prep, "run_time": run}
            elif len(r) == 6 and _is_number(r[3]):
                bench, net, prop, prep, word, run = r
                extra = {"benchmark": bench, "prepare_time": prep, "run_time": run}
            else:
                raise InputError(csv_path, f"line {n}: expected network,property,prepare_time,result,run_time "
                                           f"(or a header naming network, property, result); got {len(r)} columns")
            claims.append(Claim(n, net, prop, word, claim_of(word), extra=extra))
    if not claims:
        raise InputError(csv_path, "no results in the csv" + (f" for tool {tool} year {year}" if tool else ""))
    finder = _Finder(root, csv_path)
    for c in claims:
        if c.claim:
            c.network_path = finder.find(c.network, c.line)
            c.property_path = finder.find(c.property, c.line)
    return claims


def _one_tool(csv_path, body, col, tool, year):
    """The rows of one tool-year of a long table (columns year, tool, ...)."""
    present = sorted({(r[col["tool"]], r[col["year"]] if "year" in col else "") for _, r in body
                      if len(r) > col["tool"]})
    listing = ", ".join(f"{t} {y}".strip() for t, y in present)
    if tool is None:
        if len({t for t, _ in present}) > 1 or (year is None and len(present) > 1):
            raise InputError(csv_path, f"the csv holds results of several tool-years; pick one with --tool and "
                                       f"--year ({listing})")
        return body
    keep = [(n, r) for n, r in body if len(r) > col["tool"] and _norm_name(r[col["tool"]]) == _norm_name(tool)
            and (year is None or "year" not in col or r[col["year"]] == str(year))]
    if not keep:
        raise InputError(csv_path, f"no rows for tool {tool!r}" + (f" year {year}" if year is not None else "")
                         + f" (present: {listing})")
    if year is None and "year" in col and len({r[col['year']] for _, r in keep}) > 1:
        raise InputError(csv_path, f"tool {tool!r} ran in several years; pick one with --year")
    return keep


class _Finder:
    """Resolves a csv's path to a file under root (or one folder below it, for bare names)."""

    def __init__(self, root: Path, csv_path: Path):
        self.root, self.csv_path = root, csv_path
        self.cache: dict = {}

    def find(self, listed: str, line: int) -> Path:
        if listed in self.cache:
            return self.cache[listed]
        if not listed:
            raise InputError(self.csv_path, f"line {line}: empty file name")
        p = Path(listed)
        cand = p if p.is_absolute() else self.root / p
        if not cand.is_file() and not p.is_absolute() and len(p.parts) == 1:
            found = [d / p for d in sorted(self.root.iterdir()) if d.is_dir() and (d / p).is_file()]
            if len(found) > 1:
                raise InputError(self.csv_path, f"line {line}: {listed} is ambiguous under {self.root} "
                                                f"({', '.join(str(f.parent.name) for f in found)}); "
                                                f"write the folder in the csv or pick --root")
            if found:
                cand = found[0]
        if not cand.is_file():
            raise InputError(self.csv_path, f"line {line}: file {cand} not found (paths are relative to --root "
                                            f"{self.root})")
        self.cache[listed] = cand
        return cand


def convert_long(long_csv, tool, year, out=None, root=None) -> str:
    """The rows of one tool-year of a `results_all_tools_long.csv` as a results csv.

    Columns network, property, result, time_s (plus witness_check when present),
    paths relative to `root` (default: the long csv's folder), so that
    `audit OUT --root ROOT` reads it. Returns the csv text; writes it to `out` if given.
    """
    import io
    claims = read_claims(long_csv, root=root, tool=tool, year=year)
    root = Path(root) if root is not None else Path(long_csv).parent
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra_cols = [c for c in ("time_s", "witness_check") if claims and c in claims[0].extra]
    w.writerow(["network", "property", "result", *extra_cols])
    finder = _Finder(root, Path(long_csv))
    for c in claims:
        net, prop = c.network, c.property
        try:
            net = finder.find(net, c.line).relative_to(root).as_posix()
            prop = finder.find(prop, c.line).relative_to(root).as_posix()
        except (InputError, ValueError):
            pass  # keep the name as written: a row without a claim need not resolve
        word = c.result[len("excluded:"):] if c.result.lower().startswith("excluded:") else c.result
        w.writerow([net, prop, word, *(c.extra.get(k, "") for k in extra_cols)])
    text = buf.getvalue()
    if out is not None:
        from ..core.files import write_atomic
        write_atomic(out, text)
    return text


# ---------------------------------------------------------------- running

def audit(results_csv, root=None, timeout: float = 60.0, tool=None, year=None, workers: int = 1,
          ground_truth=None, progress: bool = False, verify_options=None, only=None,
          witnesses=None, scheduler: str | None = None, resume_path=None) -> AuditReport:
    """Check every claim of a results csv exactly; see the module docstring.

    ground_truth: optional csv (network, property, expected; matched by file
    names) to set each row's `expected`. only: optional predicate on a Claim to
    audit a subset. witnesses: optional folder of published counterexamples,
    `<network stem>__<property stem>.txt` in the VNN-COMP result format
    ((X_0 v) ...), as shared/benchmarks/acasxu/witnesses holds them: a
    witness that re-checks (the same float64 and float32 check as any `sat`)
    answers its instance `sat` without running verify; one that does not is
    ignored. The claims run on `workers` local processes or on the Dask cluster at `scheduler`;
    finished ones are appended to `resume_path` (a core.journal.Journal), and those it holds are
    not checked again.
    """
    from ..loaders import load_network
    from ..loaders.vnnlib import load_vnnlib

    t0 = time.perf_counter()
    claims = read_claims(results_csv, root=root, tool=tool, year=year)
    report = AuditReport(str(results_csv), str(Path(root) if root is not None else Path(results_csv).parent),
                         float(timeout), tool, None if year is None else str(year))
    todo = []
    for c in claims:
        if c.claim and (only is None or only(c)):
            todo.append(c)
        elif c.claim:
            report.not_selected += 1
        else:
            key = c.result.strip().lower() or "(empty)"
            report.skipped[key] = report.skipped.get(key, 0) + 1
    # bad files are bad input: load each once here, before any long run
    nets = {}
    for c in todo:
        if c.network_path not in nets:
            nets[c.network_path] = load_network(c.network_path)
        load_vnnlib(c.property_path).validate(nets[c.network_path])
    truth = {}
    if ground_truth is not None:
        from .bench import read_ground_truth
        truth = read_ground_truth(ground_truth)
    wdir = None
    if witnesses is not None:
        wdir = Path(witnesses)
        if not wdir.is_dir():
            raise InputError(wdir, "witness folder not found")
    runner = Runner(max(1, int(workers or 1)), scheduler)
    problem = runner.shared_paths_problem([p for c in todo for p in (c.network_path, c.property_path)])
    if problem:
        raise InputError(results_csv, problem)
    config = {"results_csv": str(Path(results_csv).resolve()), "root": report.root, "tool": report.tool,
              "year": report.year, "timeout": float(timeout), "verify_options": verify_options or {},
              "witnesses": None if wdir is None else str(wdir.resolve())}
    journal = Journal(resume_path, config, key="line") if resume_path else None
    finished = journal.finished if journal else {}
    done = {c.line: _outcome_of(finished[c.line]) for c in todo if c.line in finished}
    jobs = [(c.line, str(Path(c.network_path).resolve()), str(Path(c.property_path).resolve()), float(timeout),
             verify_options or {}, _witness_file(wdir, c)) for c in todo if c.line not in done]
    bar = progress_bar(len(todo), progress, unit="claim", initial=len(done))
    try:
        with journal if journal and jobs else contextlib.nullcontext(), runner.results(_check, jobs) as results:
            for line, res in results:
                done[line] = res
                if journal:
                    journal.append({"line": line, **res})
                _tick(bar, done, todo)
    except KeyboardInterrupt:
        # the workers are stopped; the finished claims go back to the caller to keep
        _add_rows(report, todo, done, truth)
        report.seconds = time.perf_counter() - t0
        raise Interrupted(len(report.rows), len(todo), "claims", partial=report) from None  # no local: no cycle
    finally:
        if bar is not None:
            bar.close()
    _add_rows(report, todo, done, truth)
    report.seconds = time.perf_counter() - t0
    return report


def _outcome_of(record: dict) -> dict:
    """A claim's outcome (what `_check` returns) back from its progress-file record."""
    return {k: v for k, v in record.items() if k != "line"}


def _add_rows(report, todo, done: dict, truth) -> None:
    for c in todo:
        res = done.get(c.line)
        if res is None:  # not finished (an interrupted run)
            continue
        row = AuditRow(c.line, c.network, c.property, c.result, c.claim, extra=dict(c.extra), **res)
        row.outcome, row.evidence = _classify(row)
        row.expected = truth.get((Path(c.network).name, Path(c.property).name), "")
        report.rows.append(row)


def _tick(bar, done, todo):
    if bar is None:
        return
    wrong = sum(1 for c in todo if (r := done.get(c.line)) is not None and r["exact"] in ("sat", "unsat")
                and r["exact"] != c.claim)
    bar.set_postfix_str(f"WRONG {wrong}")
    bar.update(1)


_NETWORKS: dict = {}  # per process: a network is loaded once however many properties use it


def _check(job):
    """Run verify on one claim (in a worker process or here); a plain dict comes back."""
    from ..loaders import load_network
    from ..loaders.vnnlib import load_vnnlib
    from ..search.verifier import verify
    from .bench import onnxruntime_recheck

    i, net_path, prop_path, timeout, options, witness = job
    t = time.perf_counter()
    out = {"exact": "error", "seconds": 0.0, "counterexample": None, "onnxruntime_recheck": "", "reason": ""}
    try:
        if net_path not in _NETWORKS:
            _NETWORKS.clear()
            _NETWORKS[net_path] = load_network(net_path)
        net = _NETWORKS[net_path]
        prop = load_vnnlib(prop_path)
        prop.validate(net)
        ce = _recheck_witness(net, prop, witness) if witness else None
        if ce is not None:
            out["exact"], out["reason"] = "sat", f"counterexample re-checked (witness {Path(witness).name})"
        else:
            result = verify(net, prop, timeout=timeout, **options)
            out["exact"], out["reason"] = result.status, result.reason
            ce = result.counterexample
        if ce is not None:
            out["counterexample"] = {"x": [float(v) for v in ce.x], "y": [float(v) for v in ce.y],
                                     "y_float32": [float(v) for v in ce.y32], "case": ce.case,
                                     "disjunct": ce.disjunct}
            out["onnxruntime_recheck"] = onnxruntime_recheck(Path(net_path), net, prop, ce.x)
    except InputError as e:
        out["reason"] = e.message
    out["seconds"] = time.perf_counter() - t
    return i, out


def _witness_file(wdir, claim) -> str | None:
    if wdir is None:
        return None
    f = wdir / f"{Path(claim.network).stem}__{Path(claim.property).stem}.txt"
    return str(f) if f.is_file() else None


def _recheck_witness(net, prop, path):
    """A Counterexample from a published witness file, if its X values re-check; else None."""
    from ..core.check import check_point
    import numpy as np
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"\(\s*X_(\d+)\s+([^\s()]+)\s*\)", text)
    values = {int(k): v for k, v in found}
    if len(found) != prop.n_inputs or sorted(values) != list(range(prop.n_inputs)):
        return None  # not one complete point (several points, or a different input size)
    try:
        x = np.array([float(values[k]) for k in range(prop.n_inputs)])
    except ValueError:
        return None
    return check_point(net, prop, x)


def _classify(row: AuditRow):
    """(outcome, evidence) for one claim, from verify's answer."""
    if row.exact not in ("sat", "unsat"):
        return "undecided", f"exact: {row.exact}" + (f" ({row.reason})" if row.reason else "")
    if row.exact == row.claim:
        if row.exact == "sat":
            return "confirmed", f"counterexample re-checked ({_ce_origin(row.reason)})"
        return "confirmed", f"proof: {row.reason}"
    if row.exact == "sat":  # claimed unsat (holds), but a counterexample re-checks
        ort = {"ok": "; onnxruntime agrees", "FAILED": "; onnxruntime DISAGREES"}.get(row.onnxruntime_recheck, "")
        return "WRONG", f"counterexample x = {_fmt_vec(row.counterexample['x'])}, " \
                        f"y = {_fmt_vec(row.counterexample['y'])}{ort}"
    return "WRONG", f"proven unsat: {row.reason}"


def _ce_origin(reason: str) -> str:
    m = re.search(r"\(([^)]*)\)", reason or "")
    return m.group(1) if m else (reason or "")


def _fmt_vec(v, limit: int = 6) -> str:
    shown = ", ".join(f"{x:.6g}" for x in v[:limit])
    return f"[{shown}{', ...' if len(v) > limit else ''}]"


# ---------------------------------------------------------------- reporting

def format_table(report: AuditReport, all_rows: bool = True) -> str:
    """The terminal report: one line per claim (or only WRONG/undecided ones), then the summary."""
    s = report.summary()
    rows = report.rows if all_rows else [r for r in report.rows if r.outcome != "confirmed"]
    lines = []
    if rows:
        wn = max(len("network"), *(len(Path(r.network).name) for r in rows))
        wp = max(len("property"), *(len(Path(r.property).name) for r in rows))
        lines.append(f"{'network':<{wn}}  {'property':<{wp}}  {'claim':<5}  {'exact':<7}  {'outcome':<9}  "
                     f"{'time':>7}  evidence")
        for r in rows:
            lines.append(f"{Path(r.network).name:<{wn}}  {Path(r.property).name:<{wp}}  {r.claim:<5}  "
                         f"{r.exact:<7}  {r.outcome:<9}  {r.seconds:>6.2f}s  {_short(r.evidence, 110)}")
        lines.append("")
    who = f"{report.tool} {report.year or ''}".strip() if report.tool else Path(report.results_csv).name
    lines.append(f"audit of {who}: {s['claims']} claims ({s['claims_sat']} sat, {s['claims_unsat']} unsat) of "
                 f"{s['rows']} rows; {s['no_claim']} rows without a claim skipped"
                 + (f", {s['not_selected']} claims not selected" if s["not_selected"] else ""))
    lines.append(f"  confirmed {s['confirmed']}, WRONG {s['WRONG']}, undecided {s['undecided']} "
                 f"(timeout {report.timeout:g} s per claim; {s['time_total_s']:.1f} s in verify)")
    if "with_ground_truth" in s:
        lines.append(f"  ground truth: {s['claims_contradicting_ground_truth']} of {s['with_ground_truth']} claims "
                     f"contradict it; exact answers agree with it on {s['exact_agrees_with_ground_truth']}, "
                     f"disagree on {s['exact_disagrees_with_ground_truth']}")
    for r in report.wrong:
        lines.append(f"  WRONG: {Path(r.network).name} {Path(r.property).name} claimed {r.claim}"
                     f"{_word(r)}; {r.evidence}")
    return "\n".join(lines)


def _word(r) -> str:
    """The tool's own word, where it differs from the claim ('holds' for unsat)."""
    return f" ({r.result})" if r.result.strip().lower() != r.claim else ""


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def format_markdown(report: AuditReport) -> str:
    """A summary to paste into a paper or a README: method, counts, and every WRONG claim with its evidence."""
    from .._version import __version__
    s = report.summary()
    who = f"{report.tool} ({report.year})" if report.tool and report.year else (report.tool or
                                                                                  Path(report.results_csv).name)
    out = [f"## Exact audit of {who}", ""]
    out.append(f"Every `sat`/`unsat` claim in `{Path(report.results_csv).name}` was decided again with exactverify "
               f"{__version__} (big-M MILP on HiGHS over sound CROWN bounds, input splitting where the input is "
               f"small; {report.timeout:g} s per instance). A claim is **WRONG** only on a counterexample that "
               f"re-checks on the network in float64 and float32 (for a claimed `unsat`), or on a solver proof "
               f"of infeasibility (for a claimed `sat`).")
    out.append("")
    out.append("| claim | claims | confirmed | WRONG | undecided |")
    out.append("|---|---:|---:|---:|---:|")
    for c in ("sat", "unsat"):
        b = s["by_claim"][c]
        out.append(f"| {c} | {sum(b.values())} | {b['confirmed']} | {b['WRONG']} | {b['undecided']} |")
    out.append(f"| **all** | **{s['claims']}** | **{s['confirmed']}** | **{s['WRONG']}** | **{s['undecided']}** |")
    out.append("")
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items()))
    out.append(f"{s['rows']} rows in all; {s['no_claim']} without a claim ({skipped or 'none'}) were not checked"
               + (f", nor {s['not_selected']} claims left out by a filter." if s["not_selected"] else "."))
    if "with_ground_truth" in s:
        out.append(f"Against the consensus ground truth: {s['claims_contradicting_ground_truth']} of the "
                   f"{s['with_ground_truth']} claims contradict it; the exact answers agree with it on "
                   f"{s['exact_agrees_with_ground_truth']} and disagree on {s['exact_disagrees_with_ground_truth']}.")
    out.append("")
    if report.wrong:
        out.append("### WRONG claims")
        out.append("")
        out.append("| network | property | claimed | exact | evidence | time (s) |")
        out.append("|---|---|---|---|---|---:|")
        for r in report.wrong:
            ev = r.evidence.replace("|", "\\|")
            out.append(f"| {Path(r.network).name} | {Path(r.property).name} | {r.claim}{_word(r)} | {r.exact} | "
                       f"{ev} | {r.seconds:.2f} |")
        out.append("")
        ces = [r for r in report.wrong if r.counterexample]
        if ces:
            out.append("Counterexamples (x, then the network output y in float64):")
            out.append("")
            for r in ces:
                out.append(f"- {Path(r.network).name} {Path(r.property).name}: "
                           f"x = {[float(f'{v:.9g}') for v in r.counterexample['x']]}, "
                           f"y = {[float(f'{v:.9g}') for v in r.counterexample['y']]}")
            out.append("")
    else:
        out.append("No claim was found WRONG.")
        out.append("")
    wit = [r for r in report.rows if "(witness " in r.reason]
    if wit:
        out.append(f"{len(wit)} instance(s) were answered `sat` by a published counterexample (witness file) that "
                   f"re-checked here, without a search: " + ", ".join(
                       f"{Path(r.network).name} {Path(r.property).name}" for r in wit) + ".")
        out.append("")
    und = [r for r in report.rows if r.outcome == "undecided"]
    if und:
        out.append("Undecided within the time limit: " + ", ".join(
            f"{Path(r.network).name} {Path(r.property).name} (claimed {r.claim}; {r.exact})" for r in und) + ".")
        out.append("")
    return "\n".join(out)
