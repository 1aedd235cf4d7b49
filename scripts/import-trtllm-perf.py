#!/usr/bin/env python3
"""Write validation/inference-trtllm-perf.csv (and its .facts.csv) from TensorRT-LLM's v0.17
throughput table, transcribed below.

Source: NVIDIA/TensorRT-LLM@258c7540c03517def55d9a5aadfa9288af474e1b
docs/source/performance/perf-overview.md, 'Throughput Measurements' ("All data in the table below
was generated using version 0.17"): trtllm-bench throughput, a local client fed requests at an
infinite rate, synthetic requests of one fixed input and output length (prepare_dataset.py
token-norm-dist, stdev 0), engines built by `trtllm-bench build --dataset` (its tuning heuristics
pick max batch size and max num tokens), FP8 weights and KV cache on H100/H200, FP16 on A100.
Columns kept: H200 141GB, H100 80GB, A100-SXM4-80GB (GH200 and L40S are not in the catalog). Runs
the shared table already holds (TRT17-*) are left out. The metric is output tokens/s: the page's
own example prints 'Token Throughput' = 3000 requests x 128 output tokens / total latency.

    python3 scripts/import-trtllm-perf.py validation/inference-trtllm-perf.csv
"""

import sys

from validation_table import FACTS_HEADER, HEADER, write_atomic

SOURCE = ("TensorRT-LLM perf overview (v0.17 throughput table) [NVIDIA/TensorRT-LLM@258c7540c03517def55d9a5aadfa9288af474e1b:"
          "docs/source/performance/perf-overview.md 'Throughput Measurements' (trtllm-bench throughput, infinite request rate, "
          "fixed ISL/OSL synthetic)]")
GPUS = [("H200", "hgx-h200", "fp8"), ("H100", "dgx-h100", "fp8"), ("A100", "dgx-a100", "fp16")]
MODELS = {"L8": "llama3.1-8b", "L70": "llama3.1-70b", "L405": "llama3.1-405b", "M7": "mistral-7b",
          "MX7": "mixtral-8x7b", "MX22": "mixtral-8x22b"}
# Models whose window TensorRT-LLM 0.17 does not apply: its engine attends over the whole context
# on every layer (run fact attention_window = full).
FULL_ATTENTION = {
    "M7": "NVIDIA/TensorRT-LLM@258c7540 (v0.17): trtllm-bench builds Mistral 7B through tensorrt_llm/models/llama/config.py "
          "LLaMAConfig.from_hugging_face, which reads no sliding_window from the Hugging Face config, and the perf-overview "
          "trtllm-bench throughput command sets no max_attention_window, so the engine attends over the whole context on "
          "every layer (the 4,096-token window of Mistral 7B v0.1 is not applied); the table agrees: at 20000/2000 Mistral "
          "7B runs at the Llama 3.1 8B rate on each GPU (H200 1822.69 vs 1804.1, H100 1373.24 vs 1401.31, A100 332.3 vs "
          "330.04 tokens/s)"}
# The page's '$num_requests' table: requests per input/output length.
REQUESTS = {(128, 128): 30000, (128, 2048): 3000, (128, 4096): 1500, (2048, 128): 3000, (2048, 2048): 1500,
            (5000, 500): 1500, (1000, 1000): 3000, (500, 2000): 3000, (20000, 2000): 1000}
# Runs already in validation/inference-public.csv (TRT17-*): (model, tp, isl, osl, gpu).
SHARED = {("L8", 1, 128, 128, "A100"), ("L8", 1, 128, 128, "H200"), ("L8", 1, 2048, 2048, "H100"),
          ("L70", 1, 128, 2048, "H100"), ("L70", 8, 2048, 128, "H200"), ("L405", 8, 1000, 1000, "H200"),
          ("MX7", 2, 1000, 1000, "H100"), ("MX7", 2, 1000, 1000, "A100")}

# model tp isl osl H200 H100 A100 ('-': no figure), as the page prints them.
TABLE = """
L8 1 128 128 29526.04 28836.77 6627.27
L8 1 128 2048 25398.86 21109.38 5255.99
L8 1 128 4096 17370.8 13593.65 3453.79
L8 1 500 2000 21020.81 16500.69 4276.58
L8 1 1000 1000 17537.96 15244.78 3786.83
L8 1 2048 128 3794.14 3556.73 799.61
L8 1 2048 2048 11968.5 9488.42 2424.16
L8 1 5000 500 3987.79 3559.36 825.13
L8 1 20000 2000 1804.1 1401.31 330.04
L70 1 128 128 4020.75 3378.03 -
L70 1 128 2048 4165.68 911.62 -
L70 1 128 4096 2651.75 426.32 -
L70 1 500 2000 3018.39 775.57 -
L70 1 1000 1000 2823.45 839.97 -
L70 1 2048 128 465.99 343.29 -
L70 1 2048 2048 1913.8 - -
L70 1 5000 500 560.16 245.34 -
L70 1 20000 2000 279.52 - -
L70 2 128 128 6823.01 6645.12 1313.96
L70 2 128 2048 8290.35 6169.58 531.26
L70 2 128 4096 6526.67 3897.06 -
L70 2 500 2000 6848.02 4972.57 439.41
L70 2 1000 1000 5164.76 4390.53 472.94
L70 2 2048 128 809 772.66 148.96
L70 2 2048 2048 4183.88 2898.16 261.1
L70 2 5000 500 1025.38 919.73 121.47
L70 2 20000 2000 640.62 443.01 -
L70 4 128 128 11098.63 11127.53 2733.48
L70 4 128 2048 14156 11511.93 2811.27
L70 4 128 4096 10574.06 7439.41 1976.49
L70 4 500 2000 12452.79 9836.7 2275.79
L70 4 1000 1000 8911.29 7430.99 1921.77
L70 4 2048 128 1358.06 1302.6 325.15
L70 4 2048 2048 7130.44 5480.03 1393.64
L70 4 5000 500 1811.55 1602.78 392.62
L70 4 20000 2000 1199.68 920.19 212.08
L70 8 128 128 15355.84 14730.69 4717.62
L70 8 128 2048 21195.88 17061.82 5241.5
L70 8 128 4096 16941.52 14171.43 3724.67
L70 8 500 2000 17278.4 14679.33 4445.37
L70 8 1000 1000 13181.24 11451.16 3320.41
L70 8 2048 128 1983.03 1923.41 542.38
L70 8 2048 2048 11142.47 8801.95 2553.71
L70 8 5000 500 2717.83 2457.42 696.34
L70 8 20000 2000 1920.45 1512.6 413.38
L405 8 128 128 3874.19 - -
L405 8 128 2048 5938.09 - -
L405 8 128 4096 5168.37 - -
L405 8 500 2000 5084.29 - -
L405 8 1000 1000 3399.69 - -
L405 8 2048 128 463.42 - -
L405 8 2048 2048 2940.62 - -
L405 8 5000 500 669.13 - -
L405 8 20000 2000 535.31 - -
M7 1 128 128 31938.12 31674.49 6982.53
M7 1 128 2048 27409.3 23496.42 5630.62
M7 1 128 4096 18505.03 14350.99 3591.22
M7 1 500 2000 22354.67 18026.27 4400.48
M7 1 1000 1000 18426.16 16035.66 3896.58
M7 1 2048 128 3834.43 3642.48 808.58
M7 1 2048 2048 12347.37 9958.17 2489.77
M7 1 5000 500 4041.59 3591.33 844.64
M7 1 20000 2000 1822.69 1373.24 332.3
MX7 1 128 128 17157.72 15962.49 -
MX7 1 128 2048 15095.21 8290.13 -
MX7 1 128 4096 9534.62 4784.86 -
MX7 1 500 2000 12105.27 6800.6 -
MX7 1 1000 1000 10371.36 6868.52 -
MX7 1 2048 128 2009.67 1892.81 -
MX7 1 2048 2048 6940.32 3983.1 -
MX7 1 5000 500 2309.1 1764.7 -
MX7 1 20000 2000 1151.78 673.7 -
MX7 2 128 128 27825.34 27451.13 5541.47
MX7 2 128 2048 29584.05 22830.08 4169.78
MX7 2 128 4096 21564.68 14237.01 2608.05
MX7 2 500 2000 23410.63 17036.04 3446.37
MX7 2 1000 1000 19151.19 15770.89 3154.52
MX7 2 2048 128 3383.16 3333.68 649
MX7 2 2048 2048 14007.29 10685.85 2056.58
MX7 2 5000 500 4223.68 3646.09 724.44
MX7 2 20000 2000 2299.21 1757.45 337.51
MX7 4 128 128 42551.59 41068.23 10324.28
MX7 4 128 2048 52291.78 41164.73 10911.86
MX7 4 128 4096 39513.73 27912.48 7666.51
MX7 4 500 2000 43818.99 34489.34 8456.21
MX7 4 1000 1000 33580.9 27784.74 7122.84
MX7 4 2048 128 5467.62 5234.98 1237.62
MX7 4 2048 2048 24980.93 19432.08 5222.98
MX7 4 5000 500 7084.94 6401.56 1500.55
MX7 4 20000 2000 4236.84 3303.83 829.59
MX7 8 128 128 53212.55 50849.55 17043.54
MX7 8 128 2048 68608.45 61607.7 20277.88
MX7 8 128 4096 54827.78 48280.37 15282.89
MX7 8 500 2000 58706.39 52583.65 17184.24
MX7 8 1000 1000 44705.48 40631.71 12851.44
MX7 8 2048 128 7554.38 6988.18 2165.52
MX7 8 2048 2048 36193.64 30983.35 9809.76
MX7 8 5000 500 10271.8 9210.11 2761.28
MX7 8 20000 2000 6835.53 5602.43 1592.53
MX22 8 128 128 22948.57 21876.08 6381.95
MX22 8 128 2048 32415.81 25150.03 6685.99
MX22 8 128 4096 25753.14 18387.4 4789.13
MX22 8 500 2000 27429.6 21421.86 5648.46
MX22 8 1000 1000 19712.35 16573.24 4549.46
MX22 8 2048 128 2899.84 2794.97 761.56
MX22 8 2048 2048 15798.59 12244.93 3521.98
MX22 8 5000 500 4031.79 3645.27 959.14
MX22 8 20000 2000 2815.76 2227.63 575.02
"""

def rows():
    for line in TABLE.strip().splitlines():
        m, tp, isl, osl, *vals = line.split()
        tp, isl, osl = int(tp), int(isl), int(osl)
        for (gpu, system, prec), v in zip(GPUS, vals):
            if v == "-" or (m, tp, isl, osl, gpu) in SHARED:
                continue
            yield m, tp, isl, osl, gpu, system, prec, v


def main():
    if len(sys.argv) != 2 or not sys.argv[1].endswith(".csv"):
        sys.exit("usage: import-trtllm-perf.py OUT.csv (writes OUT.csv and OUT.facts.csv)")
    out = sys.argv[1]
    table, facts = [], []
    for m, tp, isl, osl, gpu, system, prec, v in rows():
        rid = f"TRTP17-{m}-{gpu}-TP{tp}-{isl}x{osl}-tput-mean"
        cells = dict.fromkeys(HEADER, "")
        cells.update(id=rid, source=SOURCE, grade="B", system=system, devices=tp, model=MODELS[m],
                     weight_precision=prec, kv_precision=prec, tp=tp, pp=1, replicas=1, scenario="offline",
                     input_len=isl, output_len=osl, metric="output_tokens_per_s", stat="mean", value=v,
                     notes=f"trtllm-bench throughput, TensorRT-LLM 0.17 (C++ engine); {gpu} column ({prec.upper()}, "
                           f"KV cache {prec.upper()}); TP {tp}; engine settings from trtllm-bench build's dataset "
                           f"heuristics (not printed); catalog architecture")
        table.append([cells[h] for h in HEADER])
        facts.append([rid, "requests", REQUESTS[(isl, osl)],
                      f"the row's source: perf-overview.md '$num_requests' table: {REQUESTS[(isl, osl)]} requests at "
                      f"input {isl} / output {osl}"])
        if m in FULL_ATTENTION:
            facts.append([rid, "attention_window", "full", FULL_ATTENTION[m]])
    write_atomic(out, HEADER, table)
    write_atomic(out[:-4] + ".facts.csv", FACTS_HEADER, facts)
    print(f"wrote {len(table)} rows to {out} and {len(facts)} facts beside it")


if __name__ == "__main__":
    main()
