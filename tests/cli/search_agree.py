#!/usr/bin/env python3
"""Pruned search and brute force agree: with the exact passes (divisibility, memory) the top K are
identical; with dominance on as well, the best plan is identical. Usage: search_agree.py XPUPLAN."""
import json, subprocess, sys

exe = sys.argv[1]
base = [exe, "search", "--model", "llama3-8b", "--system", "dgx-h100", "--devices", "16", "--seq-len", "4096",
        "--global-batch", "64", "--top", "8", "--threads", "2", "--json"]

def run(*extra):
    out = subprocess.run(base + list(extra), check=True, capture_output=True, text=True).stdout
    return json.loads(out)

brute = run("--no-prune", "divisibility", "--no-prune", "memory", "--no-prune", "dominance")
exact = run("--no-prune", "dominance")
full = run()
assert brute["counts"]["pruned_divisibility"] == 0 and brute["counts"]["pruned_memory"] == 0, brute["counts"]
assert exact["counts"]["pruned_divisibility"] > 0 and exact["counts"]["pruned_memory"] > 0, exact["counts"]
assert full["counts"]["pruned_dominance"] > 0, full["counts"]
assert brute["counts"]["considered"] == exact["counts"]["considered"] == full["counts"]["considered"]
# Every feasible plan is either kept or pruned by dominance: the counts add up.
assert brute["counts"]["feasible"] == exact["counts"]["feasible"]
assert brute["top"] == exact["top"], "top K differ between brute force and exact pruning"
assert brute["top"][0] == full["top"][0], "best plan differs with dominance pruning"
print("search agrees with brute force:", brute["counts"]["considered"], "layouts")
