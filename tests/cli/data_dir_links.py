#!/usr/bin/env python3
"""--data DIR with a .toml that is a dangling or looping link: an error naming it (exit 2), not a
file quietly left out of the catalog. Usage: data_dir_links.py XPUPLAN SOURCE_DIR WORK_DIR."""
import os, shutil, subprocess, sys

x, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(work, ignore_errors=True)
shutil.copytree(os.path.join(src, "data"), work)
for name, target in [("loop.toml", "loop.toml"), ("gone.toml", "/nonexistent/x.toml")]:
    link = os.path.join(work, "chips", name)
    os.symlink(target, link)
    p = subprocess.run([x, "--data", work, "catalog", "list"], capture_output=True, text=True)
    assert p.returncode == 2 and name + ": is not a readable file" in p.stderr and not p.stdout, (name, p.returncode, p.stderr)
    os.remove(link)
p = subprocess.run([x, "--data", work, "catalog", "list"], capture_output=True, text=True)
assert p.returncode == 0, p.stderr
print("dangling and looping links refused")
# A hidden entry is skipped: an editor's lock file (Emacs: .#name.toml, a dangling link) or backup.
lock = os.path.join(work, "systems", ".#dgx-h100.toml")
os.symlink("user@host.123:1", lock)
p = subprocess.run([x, "--data", work, "catalog", "list"], capture_output=True, text=True)
assert p.returncode == 0 and "dgx-h100" in p.stdout, p.stderr
print("an editor's lock link skipped")
