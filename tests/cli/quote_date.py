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

# serve and catalog judge no staleness and pin no day: a quote there has no date (JSON null), so the
# same command prints the same report any day.
out = subprocess.run([sys.argv[1], "--price", "dgx-h100=2.5", "serve", "--model", "llama3-8b", "--system", "dgx-h100",
                      "--devices", "1", "--input-len", "256", "--output-len", "32", "--concurrency", "2", "--requests", "8",
                      "--json"], check=True, capture_output=True, text=True).stdout
cost = json.loads(out)["cost"]
assert cost["as_of"] is None and cost["provider"] == "quote" and cost["usd_per_device_hour"] == 2.5, cost
out = subprocess.run([sys.argv[1], "--price", "dgx-h100=2.5", "catalog", "show", "dgx-h100", "--json"],
                     check=True, capture_output=True, text=True).stdout
quotes = [o for o in json.loads(out)["prices"] if o["provider"] == "quote"]
assert len(quotes) == 1 and quotes[0]["as_of"] is None, quotes
dated = [o for o in json.loads(out)["prices"] if o["provider"] != "quote"]
assert dated and all(isinstance(o["as_of"], str) for o in dated), dated
print("serve and catalog quotes undated")
