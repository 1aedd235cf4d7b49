"""What the import-*.py scripts share: the inference table's columns (validation/FORMAT.md) and an
atomic CSV writer (temp file, then rename)."""

import csv
import os

HEADER = ("id,source,grade,system,devices,model,layers,hidden,heads,kv_heads,head_dim,ffn_hidden,vocab,gated_mlp,"
          "moe_experts,moe_topk,moe_ffn_hidden,moe_shared_experts,moe_dense_layers,weight_precision,kv_precision,tp,pp,ep,"
          "replicas,scenario,input_len,output_len,concurrency,request_rate,ttft_slo_ms,tpot_slo_ms,metric,stat,value,notes").split(",")
FACTS_HEADER = ["id", "field", "value", "source"]


def write_atomic(path, header, records):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(records)
    os.replace(tmp, path)
