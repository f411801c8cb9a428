"""Integration tests of the stream: the real binary on free ports, driven
by real ZeroMQ clients (PUSH ingest, SUB publish, DEALER replay) and HTTP.
Each test reads as the claim it checks."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid

import zmq

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

WAIT_S = 20.0          # every wait for an answer has this timeout
HEARTBEAT_MS = 100     # fast heartbeats: a SUB knows it is joined when one arrives

CTX = zmq.Context.instance()


def deposit(event_id, account="alice", amount=100, expect=None):
    event = {"id": event_id, "type": "deposited", "v": 1, "account": account,
             "amount": amount}
    if expect is not None:
        event["expect"] = expect
    return json.dumps(event)


def transfer(event_id, src, dst, amount=1, expect=None):
    event = {"id": event_id, "type": "transferred", "v": 1, "from": src, "to": dst,
             "amount": amount}
    if expect is not None:
        event["expect"] = expect
    return json.dumps(event)


def new_id():
    return str(uuid.uuid4())


class Client:
    """PUSH to ingest, SUB to everything published, DEALER to replay."""

    def __init__(self, endpoints):
        self.push = CTX.socket(zmq.PUSH)
        self.push.linger = 0
        self.push.connect(endpoints.ingest)
        self.sub = CTX.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoints.publish)
        self.dealer = CTX.socket(zmq.DEALER)
        self.dealer.linger = 0
        self.dealer.connect(endpoints.replay)
        self.messages = []   # everything received on SUB, in order (heartbeats dropped)
        self.results = {}    # request_id -> result dict
        self.wait_for(lambda m: m[0] == b"HEARTBEAT", what="a heartbeat (SUB joined)")

    def close(self):
        for sock in (self.push, self.sub, self.dealer):
            sock.close()

    def _receive(self, timeout_s):
        if not self.sub.poll(int(timeout_s * 1000)):
            return None
        msg = self.sub.recv_multipart()
        if msg[0] in (b"RESULT", b"RESULTS"):
            for request_id, result in harness.results(msg):
                self.results[request_id.decode()] = json.loads(result)
        if msg[0] != b"HEARTBEAT":
            self.messages.append(msg)
        return msg

    def wait_for(self, predicate, what="a message"):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            msg = self._receive(deadline - time.monotonic())
            if msg is not None and predicate(msg):
                return msg
        raise AssertionError(f"timed out waiting for {what}")

    def send(self, request_id, *events, command=b"APPEND"):
        frames = [command, request_id.encode()]
        frames += [e if isinstance(e, bytes) else e.encode() for e in events]
        self.push.send_multipart(frames)

    def result(self, request_id):
        if request_id not in self.results:
            self.wait_for(lambda m: request_id in self.results, what=f"RESULT {request_id}")
        return self.results[request_id]

    def append(self, *events, request_id=None):
        request_id = request_id or new_id()
        self.send(request_id, *events)
        return self.result(request_id)

    def fetch(self, *frames):
        self.dealer.send_multipart([f if isinstance(f, bytes) else str(f).encode()
                                    for f in frames])
        if not self.dealer.poll(int(WAIT_S * 1000)):
            raise AssertionError("no answer to FETCH")
        return self.dealer.recv_multipart()


class Stream:
    """A stream on free ports with its data dir, and a connected client."""

    def __init__(self, data_dir=None, extra=()):
        self.endpoints = harness.Endpoints()
        self.data_dir = data_dir or harness.tmpdir("stream-test-")
        self.extra = ["--heartbeat-ms", str(HEARTBEAT_MS), *extra]
        self.service = harness.start_stream(self.endpoints, self.data_dir, extra=self.extra)
        self.client = Client(self.endpoints)

    @property
    def log_path(self):
        return harness.log_path(self.data_dir)

    def log_bytes(self):
        return harness.log_data(self.data_dir)

    def restart(self, kill=False):
        self.client.close()
        if kill or not self.service.alive():
            self.service.kill9()
        else:
            self.service.stop_clean()
        self.service = harness.start_stream(self.endpoints, self.data_dir, extra=self.extra,
                                            http_port=self.service.http_port)
        self.client = Client(self.endpoints)

    def stop(self):
        self.client.close()
        self.service.stop_clean()


def test_appended_events_are_published_in_order_after_their_seqs():
    s = Stream()
    c = s.client
    ids = [[new_id() for _ in range(n)] for n in (1, 3, 2)]
    request_ids = []
    for group in ids:
        request_ids.append(new_id())
        c.send(request_ids[-1], *[deposit(i, account=f"acct-{k}") for k, i in enumerate(group)])
    results = [c.result(r) for r in request_ids]
    assert results == [{"status": "ok", "first_seq": 1, "last_seq": 1},
                       {"status": "ok", "first_seq": 2, "last_seq": 4},
                       {"status": "ok", "first_seq": 5, "last_seq": 6}], results
    # A burst's EVENTS (its lines) come before its results, in request order.
    seen_seq = 0
    answered = []
    for m in c.messages:
        if m[0] == b"EVENTS":
            seen_seq = json.loads(harness.event_lines(m)[-1])["seq"]
        else:
            for request_id, result in harness.results(m):
                assert json.loads(result)["last_seq"] <= seen_seq, (m, seen_seq)
                answered.append(request_id.decode())
    assert answered == request_ids, answered
    published = [line for m in c.messages if m[0] == b"EVENTS"
                 for line in harness.event_lines(m)]
    assert b"\n".join(published) + b"\n" == s.log_bytes()
    events = harness.assert_log_valid(s.data_dir)
    assert [e["id"] for e in events] == [i for group in ids for i in group]
    assert all("expect" not in e for e in events)
    s.stop()


def test_expect_that_does_not_hold_is_a_conflict_naming_current_versions():
    s = Stream()
    c = s.client
    assert c.append(deposit(new_id(), "alice", expect={"alice": 0}))["status"] == "ok"
    assert c.append(transfer(new_id(), "alice", "bob", expect={"alice": 1, "bob": 0}))[
        "status"] == "ok"
    before = s.log_bytes()
    result = c.append(transfer(new_id(), "alice", "bob", expect={"alice": 1, "bob": 1}))
    assert result == {"status": "conflict", "versions": {"alice": 2, "bob": 1}}, result
    assert s.log_bytes() == before
    # expect is the version before the request, for every event of it.
    result = c.append(deposit(new_id(), "alice", expect={"alice": 2}),
                      deposit(new_id(), "alice", expect={"alice": 2}))
    assert result == {"status": "ok", "first_seq": 3, "last_seq": 4}, result
    s.stop()


def test_retry_with_stored_ids_is_a_duplicate_with_the_original_seqs():
    s = Stream()
    c = s.client
    ids = [new_id(), new_id()]
    c.append(deposit(new_id()))
    first = c.append(deposit(ids[0]), deposit(ids[1]))
    assert first == {"status": "ok", "first_seq": 2, "last_seq": 3}
    before = s.log_bytes()
    # Duplicate is decided before expect: a stale expect does not matter.
    again = c.append(deposit(ids[0], expect={"alice": 0}), deposit(ids[1]))
    assert again == {"status": "duplicate", "first_seq": 2, "last_seq": 3}, again
    assert s.log_bytes() == before
    s.stop()


def test_requests_of_one_burst_see_each_other():
    s = Stream()
    c = s.client
    shared = new_id()
    rids = [new_id() for _ in range(4)]
    c.send(rids[0], deposit(shared, "carol", expect={"carol": 0}))
    c.send(rids[1], deposit(shared, "carol"))                        # same id: duplicate
    c.send(rids[2], deposit(new_id(), "carol", expect={"carol": 0}))  # stale: conflict
    c.send(rids[3], deposit(new_id(), "carol", expect={"carol": 1}))
    results = [c.result(r) for r in rids]
    assert results == [{"status": "ok", "first_seq": 1, "last_seq": 1},
                       {"status": "duplicate", "first_seq": 1, "last_seq": 1},
                       {"status": "conflict", "versions": {"carol": 1}},
                       {"status": "ok", "first_seq": 2, "last_seq": 2}], results
    s.stop()


def test_invalid_requests_are_answered_and_leave_the_log_unchanged():
    s = Stream()
    c = s.client
    stored = new_id()
    c.append(deposit(stored))
    before = s.log_bytes()
    repeated = new_id()
    shapes = {
        "no events": [],
        "not JSON": [b"{not json"],
        "not an object": [b"[1,2]"],
        "unknown key": [json.dumps({"id": new_id(), "type": "deposited", "v": 1,
                                    "account": "a", "amount": 1, "colour": "red"})],
        "seq given": [json.dumps({"seq": 5, "id": new_id(), "type": "deposited", "v": 1,
                                  "account": "a", "amount": 1})],
        "zero amount": [deposit(new_id(), amount=0)],
        "bad account": [deposit(new_id(), account="no spaces allowed")],
        "unknown type": [json.dumps({"id": new_id(), "type": "refunded", "v": 1,
                                     "account": "a", "amount": 1})],
        "one bad event of two": [deposit(new_id()), b"{}"],
        "id repeated inside": [deposit(repeated), deposit(repeated)],
        "stored id mixed with a new one": [deposit(new_id()), deposit(stored)],
    }
    for what, events in shapes.items():
        result = c.append(*events)
        assert result["status"] == "invalid", (what, result)
        assert result["error"], what
    result = c.append(deposit(new_id()), request_id="cmd")
    assert result["status"] == "ok"
    c.send("bad-command", deposit(new_id()), command=b"DELETE")
    assert c.result("bad-command")["status"] == "invalid"
    lines = s.log_bytes()
    assert lines.startswith(before) and lines.count(b"\n") == before.count(b"\n") + 1
    harness.assert_log_valid(s.data_dir)
    s.stop()


def compact(event_json):
    """The canonical form transaction sends (no spaces): the stream's fast path."""
    return json.dumps(json.loads(event_json), separators=(",", ":"))


def test_canonical_requests_are_decided_like_any_other_form():
    s = Stream()
    c = s.client
    ids = [new_id() for _ in range(1000)]
    repeated = list(ids)
    repeated[700] = ids[3]
    result = c.append(*[compact(deposit(i, account="carol")) for i in repeated])
    assert result["status"] == "invalid"
    assert f'event 700: id \\"{ids[3]}\\" repeats event 3' in json.dumps(result["error"])
    too_many = [compact(deposit(new_id())) for _ in range(4097)]
    result = c.append(*too_many)
    assert result == {"status": "invalid", "error": "too many events: 4097 (at most 4096 per request)"}
    result = c.append(*[compact(deposit(i, account="carol")) for i in ids])
    assert result == {"status": "ok", "first_seq": 1, "last_seq": 1000}
    stale = compact(transfer(new_id(), "carol", "dave", expect={"carol": 999, "dave": 0}))
    assert c.append(stale) == {"status": "conflict", "versions": {"carol": 1000, "dave": 0}}
    fresh = compact(transfer(new_id(), "carol", "dave", expect={"carol": 1000, "dave": 0}))
    assert c.append(fresh)["status"] == "ok"
    assert c.append(*[compact(deposit(i, account="carol")) for i in ids]) == {
        "status": "duplicate", "first_seq": 1, "last_seq": 1000}
    lines = s.log_bytes().splitlines()
    assert len(lines) == 1001
    harness.assert_log_valid(s.data_dir)
    s.stop()


def test_fetch_pages_over_10000_events_equal_the_log_lines_in_both_shapes():
    s = Stream()
    c = s.client
    per_request, requests = 64, 160   # 10,240 events
    rids = [new_id() for _ in range(requests)]
    for r in rids:
        c.send(r, *[deposit(new_id(), f"acct-{k % 50}") for k in range(per_request)])
    assert all(c.result(r)["status"] == "ok" for r in rids)
    lines = s.log_bytes().split(b"\n")[:-1]
    assert len(lines) == per_request * requests
    fetched, from_seq = [], 1
    while True:
        reply = c.fetch("FETCH", from_seq, 3000)
        assert reply[0] == b"BATCH", reply[:2]
        assert int(reply[1]) == len(lines)
        if len(reply) == 2:
            break
        assert len(reply) - 2 <= 3000
        fetched += reply[2:]
        from_seq += len(reply) - 2
    assert fetched == lines
    # A large max_events is capped, and the batch stays near 1 MiB.
    reply = c.fetch("FETCH", 1, 1000000)
    assert reply[0] == b"BATCH" and 2 < len(reply) <= 10002
    assert sum(len(f) for f in reply[2:]) <= 1024 * 1024
    # The packed shape pages the same lines, each ending in \n, in one frame.
    packed, from_seq = b"", 1
    while True:
        reply = c.fetch("FETCH", from_seq, 3000, "packed")
        assert reply[0] == b"PACKED" and len(reply) == 3, reply[:2]
        assert int(reply[1]) == len(lines)
        if not reply[2]:
            break
        assert reply[2].endswith(b"\n") and reply[2].count(b"\n") <= 3000
        packed += reply[2]
        from_seq += reply[2].count(b"\n")
    assert packed == s.log_bytes()
    reply = c.fetch("FETCH", 1, 1000000, "packed")
    assert reply[0] == b"PACKED" and 0 < reply[2].count(b"\n") <= 10000
    assert len(reply[2]) <= 1024 * 1024 and s.log_bytes().startswith(reply[2])
    for bad in (["FETCH", 0, 10], ["FETCH", "x", 10], ["FETCH", 1], ["FETCH", 1, -3],
                ["FETCH", 1, 10, 99], ["FETCH", 1, 10, "PACKED"], ["FETCH", 1, 10, ""],
                ["FETCH", 1, 10, "packed", "packed"], ["FETCH", 0, 10, "packed"],
                ["GIVE", 1, 10]):
        reply = c.fetch(*bad)
        assert reply[0] == b"ERROR" and len(reply) == 2 and reply[1], (bad, reply)
    s.stop()


def test_restart_keeps_the_log_versions_and_ids_and_continues_the_seq():
    s = Stream()
    ids = [new_id() for _ in range(3)]
    s.client.append(deposit(ids[0], "dave"), deposit(ids[1], "erin"))
    s.client.append(transfer(ids[2], "dave", "erin"))
    before = s.log_bytes()
    s.restart()
    c = s.client
    assert s.log_bytes() == before
    assert c.append(deposit(ids[2], "dave")) == {"status": "duplicate", "first_seq": 3,
                                                 "last_seq": 3}
    assert c.append(deposit(new_id(), "dave", expect={"dave": 1})) == {
        "status": "conflict", "versions": {"dave": 2}}
    assert c.append(deposit(new_id(), "dave", expect={"dave": 2})) == {
        "status": "ok", "first_seq": 4, "last_seq": 4}
    harness.assert_log_valid(s.data_dir)
    s.stop()


def _hammer(ingest, name, record_path):
    """One PUSH client sending 8-event requests until killed. It runs as its
    own process: libzmq 4.3.4 can abort a client whose peer dies while a
    multipart message is half through its session (zeromq/libzmq#3442),
    which must not take the test down with it. Each request is recorded
    before it is sent."""
    push = zmq.Context().socket(zmq.PUSH)
    push.connect(ingest)
    with open(record_path, "w") as record:
        n = 0
        while True:
            rid = f"{name}-{n}"
            ids = [f"{name}-{n}-{k}" for k in range(8)]
            record.write(" ".join([rid] + ids) + "\n")
            record.flush()
            push.send_multipart([b"APPEND", rid.encode()]
                                + [deposit(i, f"{name}-{k}").encode()
                                   for k, i in enumerate(ids)])
            n += 1
            if n % 50 == 0:
                time.sleep(0.001)   # let the stream breathe; it is a crash test, not a bench


def _read_records(paths):
    sent = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):
                    rid, *ids = line.split()
                    sent[rid] = ids
    return sent


def test_kill9_during_appends_keeps_every_acknowledged_event_exactly_once():
    s = Stream()
    c = s.client
    record_dir = harness.tmpdir("stream-hammers-")
    records = [os.path.join(record_dir, f"hammer-{k}.txt") for k in range(3)]
    hammers = [subprocess.Popen([sys.executable, __file__, "--hammer", s.endpoints.ingest,
                                 f"c{k}", records[k]]) for k in range(3)]
    try:
        harness.wait_until(lambda: all(os.path.exists(r) and os.path.getsize(r) for r in records),
                           timeout_s=WAIT_S, what="every hammer sending")
        c.wait_for(lambda m: m[0] == b"RESULT" and len(c.results) >= 300,
                   what="300 results")
        s.service.kill9()
    finally:
        for hammer in hammers:
            hammer.kill()
            hammer.wait()
    all_sent = _read_records(records)
    while c._receive(0.2) is not None:   # results already queued before the kill
        pass
    acked = {rid: r for rid, r in c.results.items() if r["status"] == "ok"}
    assert len(acked) >= 300
    s.restart()
    events = harness.assert_log_valid(s.data_dir)
    by_id = {}
    for e in events:
        assert e["id"] not in by_id, f"id {e['id']} stored twice"
        by_id[e["id"]] = e["seq"]
    for rid, result in acked.items():
        ids = all_sent[rid]
        assert [by_id.get(i) for i in ids] == list(range(result["first_seq"],
                                                         result["last_seq"] + 1)), rid
    # Atomic per request: every request in the log is there whole.
    for rid, ids in all_sent.items():
        present = [i in by_id for i in ids]
        assert all(present) or not any(present), rid
    # Retrying an acknowledged request after the crash is a duplicate.
    rid, result = next(iter(acked.items()))
    again = s.client.append(*[deposit(i, f"{rid.split('-')[0]}-{k}")
                              for k, i in enumerate(all_sent[rid])])
    assert again == {"status": "duplicate", "first_seq": result["first_seq"],
                     "last_seq": result["last_seq"]}
    s.stop()


def test_storage_failure_answers_unavailable_and_appends_work_again_after():
    s = Stream()
    c = s.client
    assert c.append(deposit(new_id(), "fay"))["status"] == "ok"
    before = s.log_bytes()
    pid = s.service.proc.pid
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (len(before) + 10, hard))
    try:
        result = c.append(deposit(new_id(), "fay", expect={"fay": 1}),
                          deposit(new_id(), "fay", expect={"fay": 1}))
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
    assert result["status"] == "unavailable", result
    assert result["error"].startswith("storage: "), result
    assert s.log_bytes() == before
    # The failed burst left no trace: versions and seqs continue as before it.
    assert c.append(deposit(new_id(), "fay", expect={"fay": 1})) == {
        "status": "ok", "first_seq": 2, "last_seq": 2}
    harness.assert_log_valid(s.data_dir)
    status, metrics = harness.request("GET", s.service.url + "/metrics")[::2]
    assert b"stream_requests_unavailable_total 1" in metrics
    s.stop()


def test_http_health_events_and_metrics_answer():
    s = Stream()
    c = s.client
    first = new_id()
    c.append(deposit(first, "gil"), *[deposit(new_id(), "gil") for _ in range(4)])
    url = s.service.url
    status, health = harness.get_json(url + "/health")
    assert status == 200 and health == {"status": "ok", "last_seq": 5, "fsync": "always",
                                        "identity": first}, health
    status, page = harness.get_json(url + "/events?from_seq=2&limit=2")
    assert status == 200 and page["last_seq"] == 5
    assert [e["seq"] for e in page["events"]] == [2, 3]
    lines = s.log_bytes().split(b"\n")
    assert [json.dumps(e, separators=(",", ":")).encode() for e in page["events"]] == lines[1:3]
    status, page = harness.get_json(url + "/events?from_seq=99")
    assert status == 200 and page == {"events": [], "last_seq": 5}
    status, page = harness.get_json(url + "/events")
    assert status == 200 and len(page["events"]) == 5
    status, headers, body = harness.request("GET", url + "/events?from_seq=0&limit=x")
    assert status == 400 and headers["content-type"].startswith("application/problem+json")
    fields = sorted(e["field"] for e in json.loads(body)["errors"])
    assert fields == ["from_seq", "limit"], body
    status, _, body = harness.request("GET", url + "/events?limit=1001")
    assert status == 400 and [e["field"] for e in json.loads(body)["errors"]] == ["limit"]
    status, headers, body = harness.request("GET", url + "/metrics")
    assert status == 200
    for figure in (b"stream_appends_total 1", b"stream_events_total 5",
                   b"stream_last_seq 5", b"stream_fsyncs_total", b"stream_events_per_fsync",
                   b"stream_log_bytes"):
        assert figure in body, figure
    assert harness.request("POST", url + "/health", body=b"{}")[0] == 405
    assert harness.request("GET", url + "/nope")[0] == 404
    s.stop()


def test_heartbeat_carries_the_last_committed_seq_and_the_logs_identity():
    s = Stream()
    c = s.client
    # While the log is empty its identity is "".
    beat = c.wait_for(lambda m: m[0] == b"HEARTBEAT", what="a heartbeat")
    assert beat[:3] == [b"HEARTBEAT", b"0", b""], beat
    first = new_id()
    c.append(deposit(first), deposit(new_id()))
    beat = c.wait_for(lambda m: m[0] == b"HEARTBEAT" and m[1] == b"2", what="a heartbeat")
    assert beat[:3] == [b"HEARTBEAT", b"2", first.encode()], beat
    #  The fourth frame is the head, as GET /head answers it.
    status, head = harness.get_json(s.service.url + "/head")
    assert status == 200 and json.loads(beat[3]) == head, (beat, head)
    assert head["seq"] == 2 and bytes.fromhex(head["chain"]) == harness.check_chain(
        s.log_bytes().splitlines()), head
    s.stop()


def test_packed_fetch_asked_for_the_identity_ends_with_it():
    s = Stream()
    c = s.client
    assert c.fetch("FETCH", 1, 10, "packed", "identity") == [b"PACKED", b"0", b"", b""]
    first = new_id()
    c.append(deposit(first))
    reply = c.fetch("FETCH", 1, 10, "packed", "identity")
    assert reply[:2] == [b"PACKED", b"1"] and reply[3] == first.encode(), reply
    assert reply[2] == s.log_bytes()
    # Not asked, the reply keeps its three frames.
    assert len(c.fetch("FETCH", 1, 10, "packed")) == 3
    for bad in (["FETCH", 1, 10, "packed", "IDENTITY"], ["FETCH", 1, 10, "identity"],
                ["FETCH", 1, 10, "packed", "identity", "x"]):
        reply = c.fetch(*bad)
        assert reply[0] == b"ERROR" and len(reply) == 2, (bad, reply)
    s.stop()


def test_lookup_answers_from_the_dedupe_window_across_a_restart():
    s = Stream()
    c = s.client
    ids = [new_id(), new_id()]
    c.append(deposit(ids[0]), deposit(ids[1]))
    lines = s.log_bytes().split(b"\n")
    for seq, event_id in enumerate(ids, start=1):
        assert c.fetch("LOOKUP", event_id) == [b"FOUND", event_id.encode(), str(seq).encode(),
                                               lines[seq - 1]]
    assert c.fetch("LOOKUP", "never-stored") == [b"ABSENT", b"never-stored"]
    for bad in (["LOOKUP"], ["LOOKUP", "bad id"], ["LOOKUP", ids[0], ids[1]], ["LOOKUP", ""]):
        reply = c.fetch(*bad)
        assert reply[0] == b"ERROR" and len(reply) == 2, (bad, reply)
    s.stop()
    s = Stream(data_dir=s.data_dir)  # the window is rebuilt from the log
    assert s.client.fetch("LOOKUP", ids[1])[:3] == [b"FOUND", ids[1].encode(), b"2"]
    s.stop()


def test_sigterm_and_sigint_stop_the_stream_cleanly():
    for signum in (signal.SIGTERM, signal.SIGINT):
        s = Stream()
        s.client.append(deposit(new_id()))
        s.client.close()
        s.service.signal(signum)
        assert s.service.proc.wait(harness.STOP_TIMEOUT_S) == 0, s.service.output()
        s.service.stop()


def test_bad_options_exit_2_and_fsync_never_warns():
    stream = harness.binary("stream")
    for args in (["--fsync", "sometimes"], ["--http-port", "70000"], ["--heartbeat-ms", "0"],
                 ["--dedupe-window", "x"], ["--log-level", "loud"], ["--bogus"], ["extra"]):
        proc = subprocess.run([stream, *args], capture_output=True, timeout=WAIT_S)
        assert proc.returncode == 2, (args, proc.returncode)
        assert proc.stderr, args
    proc = subprocess.run([stream, "--help"], capture_output=True, timeout=WAIT_S)
    assert proc.returncode == 0 and b"--dedupe-window" in proc.stdout
    s = Stream(extra=["--fsync", "never"])
    assert "not durable" in s.service.output()
    status, health = harness.get_json(s.service.url + "/health")
    assert health["fsync"] == "never"
    s.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["--hammer"]:
    _hammer(*sys.argv[2:5])
elif __name__ == "__main__":
    harness.run_tests([
        test_appended_events_are_published_in_order_after_their_seqs,
        test_expect_that_does_not_hold_is_a_conflict_naming_current_versions,
        test_retry_with_stored_ids_is_a_duplicate_with_the_original_seqs,
        test_requests_of_one_burst_see_each_other,
        test_invalid_requests_are_answered_and_leave_the_log_unchanged,
        test_canonical_requests_are_decided_like_any_other_form,
        test_fetch_pages_over_10000_events_equal_the_log_lines_in_both_shapes,
        test_restart_keeps_the_log_versions_and_ids_and_continues_the_seq,
        test_kill9_during_appends_keeps_every_acknowledged_event_exactly_once,
        test_storage_failure_answers_unavailable_and_appends_work_again_after,
        test_http_health_events_and_metrics_answer,
        test_heartbeat_carries_the_last_committed_seq_and_the_logs_identity,
        test_packed_fetch_asked_for_the_identity_ends_with_it,
        test_lookup_answers_from_the_dedupe_window_across_a_restart,
        test_sigterm_and_sigint_stop_the_stream_cleanly,
        test_bad_options_exit_2_and_fsync_never_warns,
    ])
