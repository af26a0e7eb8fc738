#!/usr/bin/env python3
"""Print the headline figures of a pixflow run report: report_summary.py REPORT_JSON

Items (done/failed/skipped), wall time, and a line per graph node (items, failed, busy seconds,
peak concurrency and queue), from the JSON the CLI writes with --report. Tolerates a report that
keeps per-item results as a list ("items": [...]) or as counts.
"""
import json
import sys
from collections import Counter


def find(obj, *keys):
    """The first of keys found at the top level or under 'summary'/'totals'/'run'."""
    for scope in (obj, obj.get("summary"), obj.get("totals"), obj.get("run")):
        if isinstance(scope, dict):
            for key in keys:
                if key in scope:
                    return scope[key]
    return None


def outcome_counts(items):
    counts = Counter()
    for item in items:
        if not isinstance(item, dict):
            continue
        status = item.get("status") or item.get("outcome") or item.get("result")
        if status is None:
            status = "failed" if item.get("error") or item.get("reason") else "ok"
        counts[str(status)] += 1
    return counts


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: report_summary.py REPORT_JSON", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        report = json.load(f)

    items = find(report, "items", "results")
    if isinstance(items, list):
        counts = outcome_counts(items)
        detail = ", ".join("%s %d" % kv for kv in sorted(counts.items()))
        print("items:   %d%s" % (len(items), " (%s)" % detail if detail else ""))
    else:
        failed = find(report, "failed")
        skipped = find(report, "skipped")
        print("items:   %s, failed: %s%s" % (items if items is not None else "n/a",
                                           failed if failed is not None else "n/a",
                                           ", skipped: %s" % skipped if skipped is not None else ""))
    wall = find(report, "wall_s")
    print("wall_s:  %s" % ("%.3f" % wall if isinstance(wall, (int, float)) else "n/a"))
    if find(report, "cancelled"):
        print("cancelled: %s" % find(report, "cancel_reason"))

    nodes = find(report, "nodes")
    if isinstance(nodes, dict):
        nodes = [dict(v, name=k) for k, v in nodes.items()]
    if isinstance(nodes, list) and nodes:
        print("%-12s %8s %7s %9s %11s %10s" % ("node", "items", "failed", "busy_s", "peak_active", "peak_queue"))
        for n in nodes:
            busy = n.get("busy_s")
            print("%-12s %8s %7s %9s %11s %10s" % (
                n.get("name", "?"), n.get("items", "-"), n.get("failed", "-"),
                "%.3f" % busy if isinstance(busy, (int, float)) else "-",
                n.get("peak_active", "-"), n.get("peak_queue", "-")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
