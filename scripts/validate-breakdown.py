#!/usr/bin/env python3
"""Break a serving validation down by metric and one more key: the engine named in the notes, the
model, the system, the concurrency band, the input/output shape or the tensor-parallel degree.
Reads the measured table and `xpuplan validate --json`.

    build/release/xpuplan validate --truth validation/inference-aiconfigurator.csv --json --out /tmp/v.json
    python3 scripts/validate-breakdown.py validation/inference-aiconfigurator.csv /tmp/v.json --by engine

Columns: rows, MAPE (mean |error|), median signed error, and the geometric-mean bias
(exp(mean ln(predicted / measured)) - 1): negative means the model predicts too little.
"""

import argparse
import csv
import json
import math
import re
import statistics
from collections import defaultdict


def key_of(by, row, result):
    if by == "engine":
        m = re.search(r"engine (TensorRT-LLM|vLLM|SGLang)", row["notes"])
        return m.group(1) if m else "(not stated)"
    if by == "model":
        return row["model"]
    if by == "system":
        return result["system"]
    if by == "concurrency":
        c = int(row["concurrency"] or 0)
        return "c<=8" if c <= 8 else "c9-64" if c <= 64 else "c>64"
    if by == "shape":
        return f"{row['input_len'] or '?'}/{row['output_len'] or '?'}"
    if by == "tp":
        return f"tp{row['tp'] or '?'}"
    raise ValueError(by)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("table")
    parser.add_argument("result", help="xpuplan validate --json output for the table")
    parser.add_argument("--by", choices=["engine", "model", "system", "concurrency", "shape", "tp"], default="engine")
    args = parser.parse_args()

    with open(args.table, newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    with open(args.result) as f:
        result = json.load(f)
    groups = defaultdict(list)
    for r in result["rows"]:
        if not r.get("evaluated", True) or r["grade"] not in ("A", "B"):
            continue
        row = rows[r["id"]]
        ratio = r["predicted"] / r["measured"]
        for key in ((r["metric"], "all"), (r["metric"], key_of(args.by, row, r))):
            groups[key].append((r["error_pct"], ratio))
    print(f"{'metric':<22} {args.by:<16} {'rows':>5} {'MAPE':>7} {'median':>8} {'bias':>7}")
    for (metric, key), v in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "all", kv[0][1])):
        errors = [e for e, _ in v]
        bias = math.exp(statistics.mean(math.log(x) for _, x in v)) - 1
        print(f"{metric:<22} {key:<16} {len(v):>5} {statistics.mean(abs(e) for e in errors):>6.1f}% "
              f"{statistics.median(errors):>+7.1f}% {100 * bias:>+6.1f}%")


if __name__ == "__main__":
    main()
