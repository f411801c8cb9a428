"""Median microseconds of a FETCH of one page (1000 events) at FROM_SEQ
from the stream's replay ROUTER, over RUNS requests on one DEALER.

    fetch_page.py REPLAY_ENDPOINT FROM_SEQ [RUNS]
"""
import statistics
import sys
import time

import zmq

PAGE_EVENTS = 1000


def main():
    endpoint, from_seq = sys.argv[1], int(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 10000)
    dealer.connect(endpoint)
    took = []
    for _ in range(runs + 1):  # the first one connects
        start = time.perf_counter()
        dealer.send_multipart([b"FETCH", str(from_seq).encode(), str(PAGE_EVENTS).encode()])
        reply = dealer.recv_multipart()
        took.append((time.perf_counter() - start) * 1e6)
        assert reply[0] == b"BATCH" and len(reply) > 2, reply[:2]
    print(f"{statistics.median(took[1:]):.0f}")


if __name__ == "__main__":
    main()
