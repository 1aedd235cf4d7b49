#!/usr/bin/env python3
"""Write validation/inference-trtllm-online.csv (and its .facts.csv) from TensorRT-LLM's online
serving table, transcribed below.

Source: NVIDIA/TensorRT-LLM@258c7540c03517def55d9a5aadfa9288af474e1b
docs/source/performance/perf-overview.md, 'Online Serving Measurements' ("All data in the table
below was generated using version 0.14.0, with 500 requests and BF16 precision"): the Triton
tensorrtllm_backend serving Llama 3.1 70B (tp 4) and 8B (tp 1) on H100 80GB and H200, requests of
one input/output length (467/256, 467/16, 202/214) sent at 2, 4, 8, 16 and 32 queries per second
and all at once (QPS INF). Per run it prints the request throughput, mean TTFT, mean inter-token
latency (ITL) and the total and output token throughputs.

Rows: every run's mean TTFT and mean ITL (as tpot_ms), and its output tokens/s where the server was
the limit: at QPS INF (an offline row) and where the measured request rate fell below 90% of the
offered one (below that the output rate is the offered rate, which says nothing about the engine).
Runs at a finite QPS are server rows (Poisson arrivals at that rate). Runs the shared table already
holds (TRTO-*) are left out, metric by metric. Facts: `requests` 500 on every row (the page's
stated request count). The engine's max batch size, max num tokens and scheduler policy are not on
the page; the rows leave them to the serving profile.

    python3 scripts/import-trtllm-online.py validation/inference-trtllm-online.csv
"""

import sys

from validation_table import FACTS_HEADER, HEADER, write_atomic

SOURCE = ("TensorRT-LLM perf overview (v0.14 online serving table) [NVIDIA/TensorRT-LLM@258c7540c03517def55d9a5aadfa9288af474e1b:"
          "docs/source/performance/perf-overview.md 'Online Serving Measurements' (Triton tensorrtllm_backend, 500 requests, BF16)]")
GPUS = {"H100": "dgx-h100", "H200": "hgx-h200"}
MODELS = {"L70": ("llama3.1-70b", 4), "L8": ("llama3.1-8b", 1)}
REQUESTS = 500
# Metrics the shared table holds (TRTO-*): (model, gpu, isl, osl, qps) -> metrics.
SHARED = {("L70", "H100", 467, 256, "INF"): {"tput", "tpot"}, ("L8", "H100", 467, 256, "16"): {"ttft", "tpot"},
          ("L70", "H200", 467, 16, "4"): {"ttft", "tpot"}}

# model gpu isl osl qps req/s ttft_ms itl_ms total_tok/s output_tok/s, as the page prints them.
TABLE = """
L70 H100 467 256 2 2 62 21 1406 498
L70 H100 467 256 4 4 68 24 2750 973
L70 H100 467 256 8 7 92 32 5256 1860
L70 H100 467 256 16 12 175 66 8941 3164
L70 H100 467 256 32 16 1229 86 11537 4083
L70 H100 467 256 INF 16 9123 85 11593 4103
L70 H100 467 16 2 2 53 18 844 28
L70 H100 467 16 4 4 58 20 1908 63
L70 H100 467 16 8 8 71 24 3795 126
L70 H100 467 16 16 16 109 38 7492 248
L70 H100 467 16 32 28 1197 482 13655 452
L70 H100 467 16 INF 28 9126 548 13719 454
L70 H100 202 214 2 2 48 20 780 401
L70 H100 202 214 4 4 51 22 1499 771
L70 H100 202 214 8 7 57 25 2702 1390
L70 H100 202 214 16 11 74 32 4364 2245
L70 H100 202 214 32 14 116 42 5837 3003
L70 H100 202 214 INF 16 4482 50 6725 3459
L8 H100 467 256 2 2 23 8 1423 504
L8 H100 467 256 4 4 24 9 2624 929
L8 H100 467 256 8 8 26 9 5535 1959
L8 H100 467 256 16 15 30 11 10636 3765
L8 H100 467 256 32 26 50 19 19138 6774
L8 H100 467 256 INF 37 3335 39 26614 9420
L8 H100 467 16 2 2 19 7 956 32
L8 H100 467 16 4 4 20 7 1910 63
L8 H100 467 16 8 8 22 7 3808 126
L8 H100 467 16 16 16 24 8 7567 251
L8 H100 467 16 32 31 29 10 14894 493
L8 H100 467 16 INF 79 3280 193 38319 1269
L8 H100 202 214 2 2 19 7 809 416
L8 H100 202 214 4 4 20 8 1586 816
L8 H100 202 214 8 7 21 9 3047 1568
L8 H100 202 214 16 13 23 10 5597 2879
L8 H100 202 214 32 23 27 11 9381 4825
L8 H100 202 214 INF 39 1657 21 16117 8291
L70 H200 467 256 2 2 58 18 1411 499
L70 H200 467 256 4 4 63 20 2770 980
L70 H200 467 256 8 7 84 27 5328 1886
L70 H200 467 256 16 13 165 60 9224 3264
L70 H200 467 256 32 16 1279 83 11800 4176
L70 H200 467 256 INF 16 9222 83 11826 4185
L70 H200 467 16 2 2 50 15 956 32
L70 H200 467 16 4 4 55 16 1909 63
L70 H200 467 16 8 8 67 20 3799 126
L70 H200 467 16 16 16 103 33 7499 248
L70 H200 467 16 32 28 1259 485 13586 450
L70 H200 467 16 INF 29 9074 546 13792 457
L70 H200 202 214 2 2 43 17 793 408
L70 H200 202 214 4 4 46 18 1524 784
L70 H200 202 214 8 7 51 21 2796 1438
L70 H200 202 214 16 11 67 28 4639 2386
L70 H200 202 214 32 15 112 39 6288 3235
L70 H200 202 214 INF 17 4480 48 7230 3719
L8 H200 467 256 2 2 21 6 1425 504
L8 H200 467 256 4 4 23 7 2828 1001
L8 H200 467 256 8 8 24 7 5567 1971
L8 H200 467 256 16 15 27 9 10761 3809
L8 H200 467 256 32 27 44 16 19848 7025
L8 H200 467 256 INF 40 3237 36 28596 10121
L8 H200 467 16 2 2 18 5 956 32
L8 H200 467 16 4 4 19 6 1910 63
L8 H200 467 16 8 8 20 6 3810 126
L8 H200 467 16 16 16 22 7 7567 250
L8 H200 467 16 32 31 27 9 14927 494
L8 H200 467 16 INF 81 3227 190 39007 1291
L8 H200 202 214 2 2 17 6 812 418
L8 H200 202 214 4 4 18 6 1597 822
L8 H200 202 214 8 7 19 7 3088 1589
L8 H200 202 214 16 14 20 8 5771 2969
L8 H200 202 214 32 24 24 9 9931 5109
L8 H200 202 214 INF 43 1665 19 17861 9189
"""


def main():
    if len(sys.argv) != 2 or not sys.argv[1].endswith(".csv"):
        sys.exit("usage: import-trtllm-online.py OUT.csv (writes OUT.csv and OUT.facts.csv)")
    out = sys.argv[1]
    table, facts = [], []
    for line in TABLE.strip().splitlines():
        m, gpu, isl, osl, qps, reqs, ttft, itl, _total, out_tput = line.split()
        isl, osl = int(isl), int(osl)
        model, tp = MODELS[m]
        offline = qps == "INF"
        metrics = [("ttft", "ttft_ms", ttft), ("tpot", "tpot_ms", itl)]
        if offline or float(reqs) < 0.9 * float(qps):
            metrics.append(("tput", "output_tokens_per_s", out_tput))
        shared = SHARED.get((m, gpu, isl, osl, qps), set())
        for key, metric, value in metrics:
            if key in shared:
                continue
            rid = f"TRTON-{m}-{gpu}-{isl}x{osl}-Q{qps}-{key}-mean"
            cells = dict.fromkeys(HEADER, "")
            cells.update(id=rid, source=SOURCE, grade="B", system=GPUS[gpu], devices=tp, model=model,
                         weight_precision="bf16", tp=tp, pp=1, replicas=1,
                         scenario="offline" if offline else "server", input_len=isl, output_len=osl,
                         request_rate="" if offline else qps, metric=metric, stat="mean", value=value,
                         notes=f"Triton tensorrtllm_backend, TensorRT-LLM 0.14, BF16; QPS {qps}"
                               f"{' (all requests at once)' if offline else ''}; measured {reqs} req/s; "
                               f"tpot = mean inter-token latency (ITL); catalog architecture")
            table.append([cells[h] for h in HEADER])
            facts.append([rid, "requests", REQUESTS, "the row's source: perf-overview.md 'Online Serving "
                                                     "Measurements' (v0.14.0, 500 requests, BF16)"])
    write_atomic(out, HEADER, table)
    write_atomic(out[:-4] + ".facts.csv", FACTS_HEADER, facts)
    print(f"wrote {len(table)} rows to {out} and {len(facts)} facts beside it")


if __name__ == "__main__":
    main()
