#!/usr/bin/env python3
"""An output path that names a file the command read is refused (exit 2) and the file is kept:
--out over a model, system, trace, agent, fleet or contract file, --trace over the model file, and
sweep export --csv over its --db. Each had replaced the input with the report, exit 0.
Usage: out_onto_input.py XPUPLAN SOURCE_DIR WORK_DIR."""
import os, shutil, subprocess, sys

x, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
for rel in ["data/models/llama3-8b.toml", "data/systems/dgx-h100.toml", "examples/serve/trace.csv",
            "examples/serve/coding-agent.csv", "examples/budget/lab-10b-runway.toml",
            "examples/contracts/amazon-anthropic.toml"]:
    shutil.copy(os.path.join(src, rel), work)
w = lambda name: os.path.join(work, name)
train = [x, "train", "--model", w("llama3-8b.toml"), "--system", "dgx-h100", "--devices", "8", "--seq-len", "4096",
         "--global-batch", "64"]
cases = [
    (train + ["--out", w("llama3-8b.toml")], "llama3-8b.toml", "--out"),
    (train + ["--out", w("r.json"), "--trace", w("llama3-8b.toml")], "llama3-8b.toml", "--trace"),
    ([x, "train", "--model", "llama3-8b", "--system", w("dgx-h100.toml"), "--devices", "8", "--seq-len", "4096",
      "--global-batch", "64", "--out", "./" + os.path.relpath(w("dgx-h100.toml"))], "dgx-h100.toml", "--out"),
    ([x, "serve", "--model", "llama3-8b", "--system", "dgx-h100", "--devices", "8", "--trace", w("trace.csv"),
      "--out", w("trace.csv")], "trace.csv", "--out"),
    ([x, "serve", "--model", "llama3.1-8b", "--system", "dgx-h100", "--devices", "8", "--agent", w("coding-agent.csv"),
      "--out", w("coding-agent.csv")], "coding-agent.csv", "--out"),
    ([x, "budget", "--fleet", w("lab-10b-runway.toml"), "--as-of", "2026-11-26", "--out", w("lab-10b-runway.toml")],
     "lab-10b-runway.toml", "--out"),
    ([x, "contract", w("amazon-anthropic.toml"), "--as-of", "2026-11-26", "--out", w("amazon-anthropic.toml")],
     "amazon-anthropic.toml", "--out"),
]
for cmd, name, flag in cases:
    before = open(w(name), "rb").read()
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 2, (cmd, p.returncode, p.stdout[:200], p.stderr)
    assert "is an input of this command" in p.stderr and flag in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    assert open(w(name), "rb").read() == before, name + " was changed"
    assert not os.path.exists(w("r.json")), "--out written before --trace was refused"
# A different output beside the inputs is still written.
p = subprocess.run(train + ["--out", w("report.txt")], capture_output=True, text=True)
assert p.returncode == 0 and open(w("report.txt")).read().startswith("xpuplan train"), p.stderr
# sweep export --csv over its own database.
db = w("s.sqlite")
subprocess.run([x, "sweep", os.path.join(src, "examples/sweeps/small.toml"), "--db", db, "--threads", "1"],
               check=True, capture_output=True)
before = open(db, "rb").read()
p = subprocess.run([x, "sweep", "export", "--db", db, "--table", "meta", "--csv", db], capture_output=True, text=True)
assert p.returncode == 2 and "--csv" in p.stderr and "is the --db database" in p.stderr, (p.returncode, p.stderr)
assert open(db, "rb").read() == before
print("outputs onto inputs refused:", len(cases) + 1)
# calibrate --out-dir rewrites the calibration files it read from --data on purpose: allowed.
data = os.path.join(work, "data")
shutil.copytree(os.path.join(src, "data"), data)
p = subprocess.run([x, "--data", data, "calibrate", "--truth", os.path.join(src, "validation/training-public.csv"),
                    "--out-dir", os.path.join(data, "calibration")], capture_output=True, text=True)
assert p.returncode == 0, p.stderr
print("calibrate rewrote its own --data calibration files")
