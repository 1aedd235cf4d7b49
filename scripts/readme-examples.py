#!/usr/bin/env python3
"""Re-run the example commands of README.md and put their current output in place.

Every fenced block whose first line is a command's own header ("xpuplan serve: ...") is the
output of the first command of the nearest ```sh block above it; the opening example ("$ xpuplan
train ...") keeps its own command and its closing "..." line. Run from the repository root after
a change to the model or the data:

    python3 scripts/readme-examples.py            # rewrite README.md
    python3 scripts/readme-examples.py --check    # exit 1 if README.md is out of date

XPUPLAN (default build/release/xpuplan) names the binary.
"""
import os
import re
import shlex
import subprocess
import sys

BIN = os.environ.get("XPUPLAN", "build/release/xpuplan")


def run(cmd):
    args = shlex.split(cmd)
    assert args[0] == "xpuplan", cmd
    out = subprocess.run([BIN] + args[1:], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"readme-examples: '{cmd}' failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout.rstrip("\n").split("\n")


def first_command(block):
    """The first command of a ```sh block, its continuation lines joined."""
    cmd = ""
    for line in block:
        text = re.sub(r"\s+#.*$", "", line).rstrip()  # a trailing comment
        if not cmd and not text.startswith("xpuplan"):
            continue
        cmd += " " + text.rstrip("\\").strip()
        if not text.endswith("\\"):
            break
    return cmd.strip()


def main():
    check = "--check" in sys.argv[1:]
    lines = open("README.md").read().split("\n")
    out, i, last_sh, changed = [], 0, None, 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("```"):
            out.append(line)
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = lines[i + 1:j]
        new = body
        if line.strip() == "```sh":
            last_sh = body
        elif body and body[0].startswith("$ xpuplan"):
            k = 0
            cmd = ""
            while k < len(body):
                cmd += " " + body[k].lstrip("$ ").rstrip("\\").strip()
                if not body[k].endswith("\\"):
                    break
                k += 1
            keep = len(body) - 1 if body[-1].startswith("...") else len(body)
            shown = keep - (k + 1)
            new = body[:k + 1] + run(cmd.strip())[:shown] + body[keep:]
        elif body and re.match(r"xpuplan [a-z -]+:", body[0]) and last_sh:
            new = run(first_command(last_sh))
        if new != body:
            changed += 1
        out += [line] + new + [lines[j]] if j < len(lines) else [line] + new
        i = j + 1
    if check:
        if changed:
            sys.exit(f"readme-examples: {changed} example output(s) in README.md are out of date")
        return
    with open("README.md.tmp", "w") as f:
        f.write("\n".join(out))
    os.replace("README.md.tmp", "README.md")
    print(f"readme-examples: {changed} example output(s) rewritten")


if __name__ == "__main__":
    main()
