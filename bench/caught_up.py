"""Milliseconds from START_MS (epoch) until an accounting instance on PORT
has applied SEQ: it long-polls GET /accounts/{id}?min_seq=SEQ, which
answers the moment the fold reaches SEQ, instead of polling /health from
a new process every few milliseconds (that would steal the cores the
catch-up runs on, and round the figure up to the polling period).

    caught_up.py PORT SEQ START_MS [TIMEOUT_S]

$BENCH_TOKEN, when set, is sent as a bearer token.
"""
import http.client
import os
import sys
import time

WAIT_MS = 60000           # one long poll; re-asked if it expires
CONNECT_RETRY_S = 0.001   # the instance is starting: its port opens soon


def main():
    port, seq, start_ms = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    deadline = time.monotonic() + (float(sys.argv[4]) if len(sys.argv) > 4 else 120)
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_MS / 1000 + 5)
        try:
            token = os.environ.get("BENCH_TOKEN")
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            conn.request("GET", f"/accounts/bench-caught-up?min_seq={seq}&wait_ms={WAIT_MS}",
                         headers=headers)
            status = conn.getresponse().status
        except OSError:
            time.sleep(CONNECT_RETRY_S)
            continue
        finally:
            conn.close()
        if status in (200, 404):  # 404: min_seq met, the account does not exist
            print(time.time_ns() // 1000000 - start_ms)
            return 0
    print(f"caught_up.py: seq {seq} not reached on port {port}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
