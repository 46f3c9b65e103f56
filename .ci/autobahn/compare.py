"""Compares a kosoku report (index.json) with the verdicts a run is allowed to have.

The expected file: {"default": {"behavior": [...], "behaviorClose": [...]},
"cases": {"<id>": {"behavior": [...], "behaviorClose": [...], "closeCode": N,
"reason": "why this case is not plain OK"}}}. A case listed under "cases" replaces the
default; "closeCode" also requires that close code from the server. Every case the report
holds must be allowed, and every case the file lists must have run.
"""
import json
import sys


def main(report_path, expected_path):
    with open(report_path) as f:
        report = json.load(f)
    with open(expected_path) as f:
        expected = json.load(f)
    results = {}
    for agent_cases in report.values():
        results.update(agent_cases)
    default = expected["default"]
    listed = expected.get("cases", {})
    problems = []
    for case, got in sorted(results.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        allowed = listed.get(case, default)
        for key in ("behavior", "behaviorClose"):
            if got.get(key) not in allowed[key]:
                problems.append(f"{case}: {key} {got.get(key)}, allowed {allowed[key]}")
        code = allowed.get("closeCode")
        if code is not None and got.get("remoteCloseCode") != code:
            problems.append(f"{case}: close code {got.get('remoteCloseCode')}, expected {code}")
    missing = sorted(set(listed) - set(results))
    if missing:
        problems.append(f"cases listed but not run: {', '.join(missing)}")
    counts = {}
    for got in results.values():
        counts[got.get("behavior")] = counts.get(got.get("behavior"), 0) + 1
    print(f"{expected_path}: {len(results)} cases, {counts}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
