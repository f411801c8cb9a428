#!/usr/bin/python3
"""Live feed fan-out: N subscribers (curl -N on GET /events) at the head
while EVENTS events arrive in POST /batch requests of 1,000; prints when
accounting had applied them all and when the last subscriber had them all,
and the accounting's CPU time over the run.

  bench/feed.py [SUBSCRIBERS...]     (default 0 1 4 16 64; build in build/)
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("LEDGER_BUILD_DIR", os.path.join(ROOT, "build"))
import harness  # noqa: E402
from harness import get_json, post_json  # noqa: E402

EVENTS = 100_000
BATCH = 1000


def cpu_s(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(subscribers):
    e = harness.Endpoints()
    harness.start_stream(e, harness.tmpdir(), extra=["--fsync", "never"])
    tx = harness.start_transaction(e)
    acc = harness.start_accounting(e, harness.tmpdir(),
                                   extra=["--feed-subscribers-max", str(max(subscribers, 1))])
    out = tempfile.mkdtemp(prefix="ledger-feed-bench-")
    curls = [subprocess.Popen(["curl", "-sN", "-H", "Accept: text/event-stream",
                               acc.url + "/events"], stdout=open(f"{out}/{i}", "wb"))
             for i in range(subscribers)]
    harness.wait_until(lambda: get_json(acc.url + "/stats")[1]["feed_subscribers"]
                       == subscribers, 20)
    commands = [{"account": f"a{i % 50}", "amount": 1} for i in range(BATCH)]
    start, cpu_start = time.monotonic(), cpu_s(acc.proc.pid)
    for _ in range(EVENTS // BATCH):
        status, answer, _ = post_json(tx.url + "/batch", {"commands": commands}, timeout=30)
        assert status == 201, answer
    last = answer["last_seq"]
    harness.wait_until(lambda: get_json(acc.url + "/health")[1]["applied_seq"] >= last,
                       120, 0.005)
    applied = time.monotonic() - start
    tail = f"id: {last}\n".encode()

    def delivered():
        for i in range(subscribers):
            with open(f"{out}/{i}", "rb") as f:
                f.seek(max(0, os.path.getsize(f"{out}/{i}") - 4096))
                if tail not in f.read():
                    return False
        return True
    harness.wait_until(delivered, 300, 0.01)
    done = time.monotonic() - start
    cpu = cpu_s(acc.proc.pid) - cpu_start
    status, _, body = harness.request("GET", acc.url + "/metrics")
    cutoffs = [line for line in body.decode().splitlines()
               if line.startswith("accounting_feed_cutoffs_total ")]
    print(f"{subscribers:3d} subscribers: {last} events applied after {applied:.2f} s, "
          f"at every subscriber after {done:.2f} s; accounting CPU {cpu:.2f} s; "
          f"{cutoffs[0] if cutoffs else ''}", flush=True)
    for c in curls:
        c.kill()
        c.wait()
    harness._kill_all()


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [0, 1, 4, 16, 64]:
        run(n)
