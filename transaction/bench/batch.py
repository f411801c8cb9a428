"""POST /batch throughput: events/s for batches of N deposits.
    /usr/bin/python3 transaction/bench/batch.py URL N ROUNDS CLIENTS"""
import http.client
import json
import sys
import threading
import time

url, size, rounds, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
host, port = url.split("//")[1].split(":")
body = json.dumps({"commands": [{"account": f"b-{i % 1000}", "amount": i + 1}
                                for i in range(size)]})
failures = []


def client():
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    for _ in range(rounds):
        conn.request("POST", "/batch", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            failures.append(resp.status)


start = time.monotonic()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
events = size * rounds * clients - size * len(failures)
print(f"batch={size} clients={clients} requests={rounds * clients} failures={len(failures)} "
      f"events/s={events / elapsed:.0f} requests/s={rounds * clients / elapsed:.1f}")
