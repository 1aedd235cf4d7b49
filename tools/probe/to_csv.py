#!/usr/bin/env python3
"""Turns gpu_probe.py results (probe.json files) into a kernels table (validation/README.md).

Usage: python3 tools/probe/to_csv.py CHIP_ID OUT.csv RUN.json [RUN.json ...]

Rows taken, and their grades:
  gemm     CUDA-graph-timed rows (launch cost removed): A. Rows timed by back-to-back launches: B,
           and only where the kernel lasts at least 60 us (three times the ~20 us Python launch
           cost, so the GPU never waits for the host); a shape and M measured both ways keeps the
           graph-timed row.
  attention, attention_fwd_bwd
           (both attn sections; the head-dim sweep's ids carry -D<head dim>)
           the cuDNN backend (what Transformer Engine / Megatron use on Hopper): A; PyTorch's
           FlashAttention-2 backend: C (an older kernel the calibration does not describe).
  copy     device-to-device copy, bytes read + written: A.
Standard library only; the output is written atomically and is byte-stable for the same inputs.
"""
import csv
import io
import json
import os
import sys

COLS = ["id", "source", "grade", "chip", "kernel", "precision", "m", "n", "k", "batch", "heads", "head_dim", "seq",
        "bytes", "metric", "value", "notes"]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    chip, out_path, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows, seen = [], set()
    base = chip.upper().replace("-", "")
    loaded = [json.load(open(p)) for p in runs]
    sources = []
    for ri, (path, R) in enumerate(zip(runs, loaded)):
        m = R["meta"]
        sources.append(f"xpuplan tools/probe/gpu_probe.py run {chr(ord('a') + ri)} ({m['date_utc']}) on {m['device']}, "
                       f"torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}; nvidia-smi before: {m['smi_before']}; "
                       f"raw: validation/probes/{os.path.basename(path)}")
    # GEMMs: every run's graph-timed rows first, so a shape measured both ways keeps that one.
    gemms = [(g.get("timing") == "cuda_graph", ri, g) for ri, R in enumerate(loaded) for g in R["gemm"]]
    gemms = [x for x in gemms if x[0]] + [x for x in gemms if not x[0]]
    for timed_graph, ri, g in gemms:
        src = sources[ri]
        shape = g["tag"].replace("@graph", "")
        key = (g["prec"], g["M"], g["N"], g["K"])
        us = g["ms"] * 1000
        if key in seen or (not timed_graph and us < 60):
            continue
        seen.add(key)
        rows.append({"id": f"{base}-GEMM-{g['prec']}-{shape}-M{g['M']}", "source": src, "grade": "A" if timed_graph else "B",
                     "chip": chip, "kernel": "gemm", "precision": g["prec"], "m": g["M"], "n": g["N"], "k": g["K"],
                     "metric": "time_us", "value": f"{us:.4g}",
                     "notes": f"y = x @ w^T, {shape}; " + ("CUDA graph of 20 calls" if timed_graph else "back-to-back launches") +
                              f", median of 5, {g['weight_copies']} weight copies rotated (L2 cold)"})
    for ri, R in enumerate(loaded):
        src, tag = sources[ri], chr(ord("a") + ri)
        for a in R["attn"]:
            for kern, ms in (("attention", a["fwd_ms"]), ("attention_fwd_bwd", a["fwd_bwd_ms"])):
                dim = f"-D{a['D']}" if a.get("sweep") == "dims" else ""  # the head-dim sweep (attn_dims)
                rows.append({"id": f"{base}-{kern.upper()}-{a['backend']}-S{a['S']}{dim}-{tag}", "source": src,
                             "grade": "A" if a["backend"] == "cudnn" else "C", "chip": chip, "kernel": kern,
                             "precision": "bf16", "batch": a["B"], "heads": a["H"], "head_dim": a["D"], "seq": a["S"],
                             "metric": "time_us", "value": f"{ms * 1000:.4g}",
                             "notes": f"torch SDPA causal, backend {a['backend']}, median of 5"})
        for h in R["hbm"]:
            if h["op"] != "copy":
                continue
            rows.append({"id": f"{base}-COPY-{tag}", "source": src, "grade": "A", "chip": chip, "kernel": "copy",
                         "bytes": h["bytes"], "metric": "time_us", "value": f"{h['ms'] * 1000:.4g}",
                         "notes": "device-to-device copy of 2 GiB (bytes = read + written), median of 5"})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in COLS})
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(buf.getvalue())
    os.replace(tmp, out_path)
    print(f"{out_path}: {len(rows)} rows")


if __name__ == "__main__":
    main()
