"""Audit published VNN-COMP ACAS Xu results exactly (issue 7).

    python benchmarks/run_audit.py                     # NV.jl 2021: all 60 of its sat/unsat claims
                                                       # -> benchmarks/results/audit_nvjl2021.{json,md}
    python benchmarks/run_audit.py --tool cgdtest --year 2022 --filter prop_2
    python benchmarks/run_audit.py --timeout 120 --workers 2
    python benchmarks/run_audit.py --retry-undecided 600 [--witnesses]   # only the undecided claims again

Converts the tool-year's rows of ../shared/benchmarks/acasxu/results_all_tools_long.csv
into a results csv (benchmarks/results/audit_<tool><year>_claims.csv), runs
`exactverify audit` on it (the same code path as the CLI), and writes
benchmarks/results/audit_<tool><year>.{json,md}. Then it compares with the
consensus ground truth: every claim the ground truth calls wrong must come out
WRONG or undecided, and no claim the ground truth supports may come out WRONG.
Exit status: 0 when that holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "benchmarks"
sys.path.insert(0, str(HERE.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", default="nv_jl")
    ap.add_argument("--year", default="2021")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per claim (default 300)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--filter", help="only claims whose 'network property' matches this regex")
    ap.add_argument("--name", help="file stem under benchmarks/results (default audit_<tool><year>)")
    ap.add_argument("--witnesses", action="store_true",
                    help="re-check the published counterexamples of acasxu/witnesses first (a re-checked one "
                         "answers sat without a search)")
    ap.add_argument("--retry-undecided", type=float, metavar="S",
                    help="do not start over: read the last <stem>.json and run only its undecided claims again, "
                         "one at a time with S seconds each (for a machine that was busy the first time)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from exactverify.metrics.audit import audit, convert_long, format_markdown, format_table
    from exactverify.core.files import json_default, write_atomic

    bench = SHARED / "acasxu"
    if not bench.is_dir():
        print(f"{bench} is not present", file=sys.stderr)
        return 2
    tool_id = re.sub(r"[^a-z0-9]", "", args.tool.lower())
    # the NV.jl 2021 audit keeps the name it was asked for (audit_nvjl2021); NNV itself is tool "nnv"
    stem = args.name or ("audit_nvjl2021" if (tool_id, str(args.year)) == ("nvjl", "2021") else
                         f"audit_{tool_id}{args.year}")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    claims_csv = out_dir / f"{stem}_claims.csv"
    # the converted results csv names the files relative to the benchmark folder: audit it with --root there
    convert_long(bench / "results_all_tools_long.csv", args.tool, args.year, out=claims_csv, root=bench)
    rx = re.compile(args.filter) if args.filter else None
    retried, history = [], []
    if args.retry_undecided:
        report, history = _load_report(out_dir / f"{stem}.json")
        todo = {r.line for r in report.rows if r.outcome == "undecided"}
        if todo:
            again = audit(claims_csv, root=bench, timeout=args.retry_undecided, workers=1,
                          ground_truth=bench / "ground_truth.csv", progress=True, only=lambda c: c.line in todo,
                          witnesses=bench / "witnesses" if args.witnesses else None)
            new = {r.line: r for r in again.rows}
            report.rows = [new.get(r.line, r) for r in report.rows]
            retried = [f"{r.network} {r.property}: {r.exact} in {r.seconds:.1f} s"
                       + (" from a published witness" if "(witness " in r.reason else "") for r in again.rows]
            report.seconds += again.seconds
    else:
        report = audit(claims_csv, root=bench, timeout=args.timeout, workers=args.workers,
                       ground_truth=bench / "ground_truth.csv", progress=True,
                       witnesses=bench / "witnesses" if args.witnesses else None,
                       only=(lambda c: rx.search(f"{c.network} {c.property}") is not None) if rx else None)
    report.tool, report.year = args.tool, args.year
    print(format_table(report))

    # against the consensus ground truth
    known_wrong = [r for r in report.rows if r.expected in ("sat", "unsat") and r.claim != r.expected]
    supported = [r for r in report.rows if r.expected in ("sat", "unsat") and r.claim == r.expected]
    caught = [r for r in known_wrong if r.outcome == "WRONG"]
    missed = [r for r in known_wrong if r.outcome != "WRONG"]
    false_alarms = [r for r in supported if r.outcome == "WRONG"]
    check = {"claims_wrong_per_ground_truth": len(known_wrong), "reported_WRONG": len(caught),
             "wrong_but_undecided": [f"{r.network} {r.property} ({r.outcome})" for r in missed],
             "claims_supported_by_ground_truth": len(supported),
             "supported_but_flagged_WRONG": [f"{r.network} {r.property}" for r in false_alarms],
             "supported_confirmed": sum(r.outcome == "confirmed" for r in supported),
             "supported_undecided": [f"{r.network} {r.property}" for r in supported if r.outcome == "undecided"]}
    print(f"\nground truth: {len(known_wrong)} claims are wrong per the consensus, {len(caught)} reported WRONG"
          f"{'; undecided: ' + ', '.join(check['wrong_but_undecided']) if missed else ''}; "
          f"{len(supported)} claims are right, {check['supported_confirmed']} confirmed, "
          f"{len(false_alarms)} flagged WRONG")

    data = report.as_dict()
    data["ground_truth_check"] = check
    if retried:
        history.append({"timeout_s": args.retry_undecided, "workers": 1, "witnesses": bool(args.witnesses),
                        "claims": retried})
    if history:
        data["retried_undecided"] = history
    data["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                       "cpus": os.cpu_count(), "workers": args.workers}
    write_atomic(out_dir / f"{stem}.json", json.dumps(data, indent=2, default=json_default) + "\n")
    md = format_markdown(report)
    md += (f"\nConsensus ground truth (`acasxu/ground_truth.csv`): {len(known_wrong)} of these claims are wrong, "
           f"{len(caught)} were reported WRONG here"
           + (f" ({len(missed)} undecided)" if missed else "")
           + f"; of the {len(supported)} claims it supports, {check['supported_confirmed']} were confirmed and "
           f"{len(false_alarms)} flagged WRONG. Machine: {platform.machine()}, {os.cpu_count()} cores, "
           f"{args.workers} worker(s)"
           + "".join(f"; then the claims still undecided were run again one at a time with {h['timeout_s']:g} s"
                     + (" and the published witnesses" if h.get("witnesses") else "")
                     + f" ({'; '.join(h['claims'])})" for h in history) + ".\n")
    write_atomic(out_dir / f"{stem}.md", md)
    print(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.md')}")
    return 0 if not missed and not false_alarms else 1


def _load_report(path: Path):
    """The AuditReport a previous run wrote as JSON."""
    from exactverify.metrics.audit import AuditReport, AuditRow
    d = json.loads(path.read_text())
    report = AuditReport(d["results_csv"], d["root"], d["timeout_s"], d["tool"], d["year"],
                         [AuditRow(**r) for r in d["claims"]], dict(d["skipped"]),
                         d["summary"].get("not_selected", 0), d["seconds"])
    history = d.get("retried_undecided", [])
    if isinstance(history, dict):  # the first format: one retry
        history = [history]
    return report, history


if __name__ == "__main__":
    sys.exit(main())
