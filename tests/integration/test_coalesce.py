#!/usr/bin/env python3
"""Coalesced frames (DESIGN.md, "Wire codec and coalesced frames"): many
writers at once, their requests in packed APPENDs, the stream's answers in
packed EVENTS and RESULTS. Every request gets exactly its own result, each
is atomic on its own (a conflicting or broken request in a pack does not
reject its neighbours), and the accounting replicas that read the packed
EVENTS stay byte-identical to the stream's log. Through the transaction
service too: concurrent HTTP clients, whose requests reach the stream
packed.
"""

import http.client
import json
import threading
import time
import uuid

import zmq

import harness

WRITERS = 8
PACKS_PER_WRITER = 20
REQUESTS_PER_PACK = 6
WAIT_S = 60.0
HTTP_CLIENTS = 16
HTTP_REQUESTS_PER_CLIENT = 40


def proposed(event_id, account, amount=1, expect=None):
    event = {"id": event_id, "type": "deposited", "v": 1, "account": account,
             "amount": amount}
    if expect is not None:
        event["expect"] = expect
    return json.dumps(event, separators=(",", ":")).encode()


class Results:
    """Every result the stream publishes, by request id (a list: a request
    answered twice shows)."""

    def __init__(self, endpoints):
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.setsockopt(zmq.SUBSCRIBE, b"RESULT")
        self.sub.setsockopt(zmq.SUBSCRIBE, b"HEARTBEAT")
        self.sub.connect(endpoints.publish)
        self.by_id = {}
        self.forms = set()
        self.wait(lambda: False, until_heartbeat=True)

    def wait(self, done, until_heartbeat=False):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if done():
                return
            if not self.sub.poll(200):
                continue
            msg = self.sub.recv_multipart()
            if msg[0] == b"HEARTBEAT":
                if until_heartbeat:
                    return
                continue
            self.forms.add(msg[0])
            for request_id, result in harness.results(msg):
                self.by_id.setdefault(request_id.decode(), []).append(json.loads(result))
        raise AssertionError("timed out waiting for results")

    def close(self):
        self.sub.close()


def test_many_writers_packed_each_request_atomic_with_its_own_result():
    endpoints = harness.Endpoints()
    stream_dir = harness.tmpdir("coalesce-stream-")
    stream = harness.start_stream(endpoints, stream_dir, extra=["--heartbeat-ms", "100"])
    replicas = [harness.start_accounting(endpoints, harness.tmpdir("coalesce-acc-"),
                                         extra=["--upstream-timeout-ms", "600"])
                for _ in range(2)]
    results = Results(endpoints)
    expected = {}   # request id -> ("ok", [event ids]) | ("conflict",) | ("invalid",)
    lock = threading.Lock()
    errors = []

    def writer(w):
        try:
            push = zmq.Context.instance().socket(zmq.PUSH)
            push.linger = 5000
            push.connect(endpoints.ingest)
            for p in range(PACKS_PER_WRITER):
                requests, mine = [], {}
                for r in range(REQUESTS_PER_PACK):
                    rid = f"w{w}-p{p}-r{r}".encode()
                    if r == 2:      # an expect that cannot hold: conflict, alone
                        lines = [proposed(uuid.uuid4().hex, f"acct-{w}", expect={f"acct-{w}": 10**9})]
                        mine[rid.decode()] = ("conflict",)
                    elif r == 4:    # an empty request: invalid, alone
                        lines = []
                        mine[rid.decode()] = ("invalid",)
                    else:
                        ids = [uuid.uuid4().hex for _ in range(1 + (r % 3))]
                        lines = [proposed(i, f"acct-{(w + k) % 5}") for k, i in enumerate(ids)]
                        mine[rid.decode()] = ("ok", ids)
                    requests.append((rid, lines))
                # The last request's count lies: the frame ends first.
                rid = f"w{w}-p{p}-cut".encode()
                requests.append((rid, [proposed(uuid.uuid4().hex, "acct-cut")]))
                mine[rid.decode()] = ("invalid",)
                frames = harness.packed_append(requests)
                frames[2] = frames[2].replace(rid + b" 1\n", rid + b" 2\n")
                with lock:
                    expected.update(mine)
                push.send_multipart(frames)
            push.close()
        except Exception as e:   # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert not errors, errors
    total = WRITERS * PACKS_PER_WRITER * (REQUESTS_PER_PACK + 1)
    results.wait(lambda: len(results.by_id) >= total)
    assert results.forms == {b"RESULTS"}, results.forms
    assert set(results.by_id) == set(expected)
    assert all(len(answers) == 1 for answers in results.by_id.values())

    events = harness.assert_log_valid(stream_dir)
    seq_of = {e["id"]: e["seq"] for e in events}
    for rid, want in expected.items():
        got = results.by_id[rid][0]
        assert got["status"] == want[0], (rid, got)
        if want[0] == "ok":
            # Its events, contiguous at the seqs its result names.
            seqs = [seq_of[i] for i in want[1]]
            assert seqs == list(range(got["first_seq"], got["last_seq"] + 1)), (rid, got)
    ok_events = sum(len(w[1]) for w in expected.values() if w[0] == "ok")
    assert len(events) == ok_events

    status, _, body = harness.request("GET", stream.url + "/metrics")
    metrics = dict(line.split()[:2] for line in body.decode().splitlines()
                   if line and not line.startswith("#"))
    assert float(metrics["stream_packed_appends_total"]) == WRITERS * PACKS_PER_WRITER
    assert float(metrics["stream_packed_requests_total"]) == total

    for replica in replicas:
        harness.wait_until(lambda: harness.get_json(replica.url + "/health")[1]
                           .get("applied_seq", 0) >= len(events), WAIT_S,
                           what="a replica to apply the log")
        data_dir = replica.args[replica.args.index("--data-dir") + 1]
        assert harness.log_data(data_dir) == harness.log_data(stream_dir), \
            "replica differs from the stream's log"
        assert harness.all_accounts(replica) == harness.fold(events)
    results.close()
    for replica in replicas:
        replica.stop_clean()
    stream.stop_clean()


def test_concurrent_http_clients_reach_the_stream_packed():
    endpoints = harness.Endpoints()
    stream_dir = harness.tmpdir("coalesce-stream-")
    stream = harness.start_stream(endpoints, stream_dir)
    replica = harness.start_accounting(endpoints, harness.tmpdir("coalesce-acc-"))
    tx = harness.start_transaction(endpoints)
    answers = {}
    errors = []

    def client(c):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", tx.http_port, timeout=WAIT_S)
            for n in range(HTTP_REQUESTS_PER_CLIENT):
                key = f"c{c}-n{n}"
                # Withdrawing more than there is (n % 10 == 9): refused, alone.
                amount = -10**12 if n % 10 == 9 else 1 + n
                body = {"account": f"acct-{c % 4}", "amount": amount}
                conn.request("POST", "/transactions", json.dumps(body),
                             {"Content-Type": "application/json", "Idempotency-Key": key})
                response = conn.getresponse()
                answers[key] = (response.status, json.loads(response.read() or b"{}"))
            conn.close()
        except Exception as e:   # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(HTTP_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert not errors, errors
    assert len(answers) == HTTP_CLIENTS * HTTP_REQUESTS_PER_CLIENT
    events = harness.assert_log_valid(stream_dir)
    by_id = {e["id"]: e for e in events}
    answered_ids = set()
    for key, (status, body) in answers.items():
        c, n = (int(part[1:]) for part in key.split("-"))
        if n % 10 == 9:
            assert status == 422, (key, status, body)
            continue
        # Its own answer: its event, at the seq it names.
        assert status == 201, (key, status, body)
        stored = by_id[body["id"]]
        assert stored["seq"] == body["seq"], (key, body, stored)
        assert stored["amount"] == 1 + n and stored["account"] == f"acct-{c % 4}", \
            (key, body, stored)
        answered_ids.add(body["id"])
    assert answered_ids == set(by_id), "events no answer names, or answers sharing one"
    status, _, metrics_body = harness.request("GET", stream.url + "/metrics")
    metrics = dict(line.split()[:2] for line in metrics_body.decode().splitlines()
                   if line and not line.startswith("#"))
    # Clients that wait for their answers send again together, when a
    # burst's results answer them: some turns of the transaction's loop
    # held several requests, and they reached the stream as one pack.
    assert float(metrics["stream_packed_requests_total"]) > \
        float(metrics["stream_packed_appends_total"]) > 0, metrics
    harness.wait_until(lambda: harness.get_json(replica.url + "/health")[1]
                       .get("applied_seq", 0) >= len(events), WAIT_S,
                       what="the replica to apply the log")
    data_dir = replica.args[replica.args.index("--data-dir") + 1]
    assert harness.log_data(data_dir) == harness.log_data(stream_dir)
    tx.stop_clean()
    replica.stop_clean()
    stream.stop_clean()


if __name__ == "__main__":
    harness.run_tests([
        test_many_writers_packed_each_request_atomic_with_its_own_result,
        test_concurrent_http_clients_reach_the_stream_packed,
    ])
