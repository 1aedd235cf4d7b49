#!/usr/bin/env python3
"""Ctrl-C (SIGINT) or SIGTERM while a report is being written: the process dies of the signal, the
target is not created and no partial <out>.tmp.XXXXXX is left beside it (one had been).
Usage: signal_temp.py XPUPLAN WORK_DIR."""
import os, shutil, signal, subprocess, sys, time

x, work = sys.argv[1], sys.argv[2]
caught = 0
for sig in (signal.SIGINT, signal.SIGTERM):
    for attempt in range(20):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        # About 240,000 trace spans: a 50 MB file, written for tens of milliseconds.
        p = subprocess.Popen([x, "train", "--model", "llama3-8b", "--system", "dgx-h100", "--devices", "64", "--seq-len",
                              "4096", "--global-batch", "20000", "--pp", "8", "--vp", "4", "--tp", "1", "--micro-batch", "1",
                              "--trace", os.path.join(work, "t.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen = False
        while p.poll() is None:
            if any(".tmp." in n for n in os.listdir(work)):
                p.send_signal(sig)
                seen = True
                break
            time.sleep(0.0005)
        rc = p.wait()
        if not seen:
            continue  # finished before the poll saw the temporary file: try again
        left = os.listdir(work)
        if rc == 0:
            # The write finished (renamed) between the poll and the signal: a whole report and no
            # temporary file, as it should be; try again to catch one in progress.
            assert not any(".tmp." in n for n in left), (sig, left)
            continue
        assert rc == -sig, (sig, rc)
        assert not any(".tmp." in n for n in left), (sig, left)
        assert "t.json" not in left or os.path.getsize(os.path.join(work, "t.json")) > 0, left
        caught += 1
        break
assert caught == 2, "never caught the write in progress: %d of 2 signals" % caught
print("temporary files removed on SIGINT and SIGTERM")

# A signal the process was started ignoring stays ignored (nohup's SIGHUP, a background job's
# SIGINT): the handler that removes temporary files had made it fatal.
for sig in (signal.SIGHUP, signal.SIGINT):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    p = subprocess.Popen([x, "train", "--model", "llama3-8b", "--system", "dgx-h100", "--devices", "64", "--seq-len",
                          "4096", "--global-batch", "20000", "--pp", "8", "--vp", "4", "--tp", "1", "--micro-batch", "1",
                          "--trace", os.path.join(work, "t.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=lambda s=sig: signal.signal(s, signal.SIG_IGN))
    time.sleep(0.05)
    if p.poll() is None:
        p.send_signal(sig)
    assert p.wait() == 0, "an ignored %s ended the run" % sig.name
    assert os.path.getsize(os.path.join(work, "t.json")) > 0
print("ignored SIGHUP and SIGINT stay ignored")
