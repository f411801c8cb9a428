"""Write-to-read visibility: POST a deposit to transaction, then GET the
account on accounting with ?min_seq=<the event's seq>, sequentially over two
keep-alive connections. Prints one BENCH line (milliseconds):
  read_*: from the 201 arriving to the GET's 200 (how long until readable)
  total_*: POST sent to GET answered (write + read-your-write)
    /usr/bin/python3 bench/visibility.py TRANSACTION_PORT ACCOUNTING_PORT ITERATIONS"""
import http.client
import json
import sys
import time

WAIT_MS = 5000   # generous: a timeout shows up as a failure, not as a figure


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def main():
    txn_port, acc_port, iterations = (int(a) for a in sys.argv[1:4])
    txn = http.client.HTTPConnection("127.0.0.1", txn_port, timeout=30)
    acc = http.client.HTTPConnection("127.0.0.1", acc_port, timeout=30)
    run = f"vis-{int(time.time() * 1000)}"
    reads, totals, failures = [], [], 0
    for i in range(iterations):
        account = f"{run}-{i % 100}"
        start = time.monotonic()
        txn.request("POST", "/transactions", json.dumps({"account": account, "amount": 1}),
                    {"Content-Type": "application/json"})
        resp = txn.getresponse()
        body = resp.read()
        if resp.status != 201:
            failures += 1
            continue
        seq = json.loads(body)["seq"]
        written = time.monotonic()
        acc.request("GET", f"/accounts/{account}?min_seq={seq}&wait_ms={WAIT_MS}")
        resp = acc.getresponse()
        resp.read()
        done = time.monotonic()
        if resp.status != 200:
            failures += 1
            continue
        reads.append((done - written) * 1000)
        totals.append((done - start) * 1000)
    if not reads:
        print(f"BENCH failures={failures}")
        return 1
    print(f"BENCH iterations={iterations} failures={failures} "
          f"read_p50_ms={percentile(reads, 50):.3f} read_p99_ms={percentile(reads, 99):.3f} "
          f"total_p50_ms={percentile(totals, 50):.3f} total_p99_ms={percentile(totals, 99):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
