#!/usr/bin/env python3
"""Convert NVIDIA AIConfigurator's measured serving runs into an inference table (FORMAT.md).

Input: aic-core/src/aiconfigurator_core/systems/silicon_sample.csv from ai-dynamo/aiconfigurator
(the commit is recorded in every row's source). Output: validation/inference-aiconfigurator.csv.

This script documents how the held-out table was made; nothing runs it at build, test or run
time, and the project does not need the upstream file. Run it again only to refresh the table
from a newer upstream copy:

    python3 scripts/import-aiconfigurator.py silicon_sample.csv --commit <40-hex> \
        --shared validation/inference-public.csv > validation/inference-aiconfigurator.csv

What it keeps (every kept measurement becomes two rows, TTFT mean and TPOT mean, as the source
records averages):
- aggregated serving (`mode = agg`); disaggregated runs need prefill/decode pool columns FORMAT.md
  does not have;
- models the columns or the catalog express: Llama 3.1 8B and 70B, Qwen3-32B (columns, from the
  published configurations), GPT-OSS-120B, Qwen3-235B-A22B and DeepSeek-V3/R1 (catalog ids);
- layouts FORMAT.md expresses: no attention data parallelism, pipeline depth 1, and for MoE
  models experts either tensor-split over the whole group (moe_tp = tp, ep = 1) or spread over it
  (moe_ep = tp, ep = tp); mixed expert layouts (moe_tp x moe_ep = tp, both > 1) are left out;
- systems in the catalog: h100_sxm, h200_sxm, b200_sxm, b300_sxm, gb200, gb300;
- positive TTFT and TPOT.
Rows the shared table already holds (AIC-01 to AIC-06) are left out, matched on model, system,
engine, lengths, concurrency, tp and the measured TTFT.
"""

import argparse
import csv
import sys

from validation_table import HEADER

SYSTEMS = {
    "h100_sxm": ("dgx-h100", 8),
    "h200_sxm": ("hgx-h200", 8),
    "b200_sxm": ("dgx-b200", 8),
    "b300_sxm": ("dgx-b300", 8),
    "gb200": ("gb200-nvl72", 72),
    "gb300": ("gb300-nvl72", 72),
}

# Architecture columns: layers, hidden, heads, kv_heads, head_dim, ffn_hidden, vocab, gated_mlp.
# Sources: the published Llama 3.1 configurations; Qwen3-32B from aiconfigurator
# model_configs/Qwen--Qwen3-32B_config.json (64 layers, hidden 5120, 64 heads, 8 KV heads,
# head_dim 128, intermediate 25600, vocab 151936).
LLAMA_8B = ("Llama-3.1-8B", [32, 4096, 32, 8, "", 14336, 128256, 1], "published architecture")
LLAMA_70B = ("Llama-3.1-70B", [80, 8192, 64, 8, "", 28672, 128256, 1], "published architecture")
QWEN3_32B = ("Qwen3-32B", [64, 5120, 64, 8, 128, 25600, 151936, 1], "published architecture")
MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": (LLAMA_8B, False),
    "nvidia/Llama-3.1-8B-Instruct-FP8": (LLAMA_8B, False),
    "meta-llama/Llama-3.1-70B": (LLAMA_70B, False),
    "Qwen/Qwen3-32B": (QWEN3_32B, False),
    "openai/gpt-oss-120b": (("gpt-oss-120b", None, "catalog architecture"), True),
    "Qwen/Qwen3-235B-A22B-FP8": (("qwen3-235b-a22b", None, "catalog architecture"), True),
    "deepseek-ai/DeepSeek-V3": (("deepseek-v3", None, "catalog architecture; MTP not recorded"), True),
    "deepseek-ai/DeepSeek-R1": (("deepseek-v3", None, "DeepSeek-R1 = DeepSeek-V3 catalog "
                                 "architecture; MTP not recorded"), True),
}

# Weight precision from the GEMM quantisation the source records.
PRECISION = {"": "", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4", "int4_wo": "int4"}

def as_int(text, default=0):
    return int(text) if text not in ("", None) else default


def shared_keys(path):
    """(model, system, lengths, concurrency, tp, ttft) of the AIC rows already in the shared table."""
    keys = set()
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["id"].startswith("AIC-") and row["metric"] == "ttft_ms":
                keys.add((row["system"], row["input_len"], row["output_len"], row["concurrency"],
                          row["tp"], round(float(row["value"]), 1)))
    return keys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("silicon", help="upstream silicon_sample.csv")
    parser.add_argument("--commit", required=True, help="upstream commit the file comes from")
    parser.add_argument("--shared", required=True, help="the shared inference table")
    args = parser.parse_args()

    skip = shared_keys(args.shared)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(HEADER)
    counts = {"kept": 0, "shared": 0, "layout": 0, "model": 0, "mode": 0, "value": 0}
    with open(args.silicon, newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            if row["mode"] != "agg":
                counts["mode"] += 1
                continue
            if row["model_path"] not in MODELS or row["system"] not in SYSTEMS:
                counts["model"] += 1
                continue
            (name, columns, arch_note), moe = MODELS[row["model_path"]]
            system, _ = SYSTEMS[row["system"]]
            tp, pp = as_int(row["tp_size"], 1), as_int(row["pp_size"], 1)
            adp = as_int(row["attention_dp_size"], 1)
            moe_tp, moe_ep = as_int(row["moe_tp_size"], 1), as_int(row["moe_ep_size"], 1)
            ep = 1
            if pp != 1 or adp > 1:
                counts["layout"] += 1
                continue
            if moe:
                if moe_ep == tp and moe_tp == 1:
                    ep = tp
                elif not (moe_tp == tp and moe_ep == 1):
                    counts["layout"] += 1
                    continue
            try:
                ttft, tpot = float(row["silicon_ttft_ms"]), float(row["silicon_tpot_ms"])
            except ValueError:
                counts["value"] += 1
                continue
            if not (ttft > 0 and tpot > 0):
                counts["value"] += 1
                continue
            conc = as_int(row["batch_size"])
            key = (system, row["isl"], row["osl"], str(conc), str(tp), round(ttft, 1))
            if key in skip:
                counts["shared"] += 1
                continue
            counts["kept"] += 1
            source = (f"AIConfigurator silicon sample [ai-dynamo/aiconfigurator@{args.commit[:8]}:"
                      f"aic-core/src/aiconfigurator_core/systems/silicon_sample.csv line {n}]")
            engine = {"trtllm": "TensorRT-LLM", "vllm": "vLLM", "sglang": "SGLang"}[row["backend"]]
            version = row["backend_version"] or "(not recorded)"
            gemm = row["gemm_quant_mode"]
            measured = next((part.split("=", 1)[1][:10] for part in row["silicon_data_source"].split("; ")
                             if part.startswith("measured=")), "not recorded")
            notes = (f"engine {engine} {version}; measured {measured}; gemm {gemm or '-'}, moe "
                     f"{row['moe_quant_mode'] or '-'}; {arch_note} (validation/README.md)")
            cols = columns if columns is not None else [""] * 8
            base = [system, tp * pp, name, *cols, "", "", "", "", "",
                    PRECISION[gemm], "", tp, pp, ep, 1, "fixed_batch", row["isl"], row["osl"],
                    conc, "", "", ""]
            rid = f"AICS-{counts['kept']:04d}"
            writer.writerow([f"{rid}-ttft-mean", source, "B", *base, "ttft_ms", "mean",
                             f"{ttft:.4g}", notes])
            writer.writerow([f"{rid}-tpot-mean", source, "B", *base, "tpot_ms", "mean",
                             f"{tpot:.4g}", notes])
    print(" ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
