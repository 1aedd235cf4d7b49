#!/usr/bin/env python3
"""Regenerates the output blocks of the README's compare, budget and contract walk-through.

Each block follows a ```sh block whose command starts with `xpuplan compare|budget|contract`; the
command is run with build/release/xpuplan (or $XPUPLAN) and the ``` block after it is replaced.
Usage: python3 scripts/readme-money-examples.py [README.md]
"""
import os
import re
import subprocess
import sys

readme = sys.argv[1] if len(sys.argv) > 1 else "README.md"
binary = os.environ.get("XPUPLAN", "build/release/xpuplan")
text = open(readme).read()
pattern = re.compile(r"```sh\n(xpuplan (?:compare|budget|contract)[^`]*?)```\n\n```\n(.*?)```\n", re.S)


def run(match):
    cmd = match.group(1).replace("\\\n", " ").strip()
    out = subprocess.run([binary] + cmd.split()[1:], capture_output=True, text=True, check=True).stdout
    return "```sh\n" + match.group(1) + "```\n\n```\n" + out.rstrip() + "\n```\n"


new, n = pattern.subn(run, text)
open(readme, "w").write(new)
print(f"{readme}: {n} blocks regenerated")
