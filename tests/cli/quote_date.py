#!/usr/bin/env python3
"""A --price quote carries the money command's --as-of date, not the clock's: a pinned run gives
the same output any day. Usage: quote_date.py XPUPLAN."""
import json, subprocess, sys

out = subprocess.run([sys.argv[1], "--price", "dgx-h100=2.5", "compare", "--model", "llama3-8b", "--tokens", "1e11",
                      "--systems", "dgx-h100", "--devices", "64", "--as-of", "2026-01-15", "--json"],
                     check=True, capture_output=True, text=True).stdout
price = json.loads(out)["rows"][0]["price"]
assert price["as_of"] == "2026-01-15", price
assert price["usd_per_device_hour"] == 2.5, price
print("quote dated", price["as_of"])
