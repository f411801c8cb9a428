#!/usr/bin/env python3
"""The ZeroMQ protocol's bytes, pinned: every message the services build
(APPEND, EVENTS, RESULT, HEARTBEAT, BATCH, PACKED, ERROR, FOUND, ABSENT)
and every refusal the stream answers, frame for frame, as DESIGN.md spells
them; the packed forms (APPEND with an empty request id, EVENTS of one
frame, RESULTS) beside the older ones, which stay as they were (EVENTS of
a frame per line with the stream's --publish-lines). Written against the code before common/wire existed (and run
against it again for schema 2's proposed lines), so the codec is proven
to send the same bytes.

The stream is the real binary, driven over its three sockets; the
transaction's APPEND is captured by a fake stream (PULL, PUB, ROUTER) that
answers its catch-up with an empty log.
"""

import json
import re
import threading
import time

import zmq

import harness as h

RECV_TIMEOUT_MS = 10000


def recv(sock, what):
    if not sock.poll(RECV_TIMEOUT_MS):
        raise AssertionError(f"no {what} within {RECV_TIMEOUT_MS} ms")
    return sock.recv_multipart()


def recv_topic(sub, topic):
    """The next message on sub with this topic (others are skipped)."""
    deadline = time.monotonic() + RECV_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        frames = recv(sub, topic.decode())
        if frames[0] == topic:
            return frames
    raise AssertionError(f"no {topic!r}")


def proposed(event_id, account="alice", amount=5, type_="deposited", **extra):
    event = {"id": event_id, "type": type_, "v": 1, "account": account, "amount": amount}
    event.update(extra)
    return json.dumps(event, separators=(",", ":")).encode()


TS = re.compile(rb',"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')


def without_ts(line):
    """The stored line with its one ts field taken out."""
    assert len(TS.findall(line)) == 1, line
    return TS.sub(b"", line)


def test_stream_frames_are_pinned():
    endpoints = h.Endpoints()
    stream = h.start_stream(endpoints, h.tmpdir(),
                            extra=["--heartbeat-ms", "100", "--publish-lines"])
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoints.publish)
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoints.ingest)
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(endpoints.replay)
    try:
        assert recv_topic(sub, b"HEARTBEAT") == [
            b"HEARTBEAT", b"0", b"",
            b'{"seq":0,"ts":null,"chain":"' + b"0" * 64 + b'"}']

        push.send_multipart([b"APPEND", b"req-1", proposed("dep-1"),
                             proposed("dep-2", account="bob", amount=7)])
        events = recv_topic(sub, b"EVENTS")
        assert len(events) == 3, events
        assert without_ts(h.unchained(events[1])) == \
            b'{"seq":1,"id":"dep-1","type":"deposited","v":1,"account":"alice","amount":5}'
        assert without_ts(h.unchained(events[2])) == \
            b'{"seq":2,"id":"dep-2","type":"deposited","v":1,"account":"bob","amount":7}'
        chain2 = h.check_chain(events[1:])
        assert h.chain_key(events[2]) == chain2, events
        assert recv_topic(sub, b"RESULT") == \
            [b"RESULT", b"req-1", b'{"status":"ok","first_seq":1,"last_seq":2}']

        push.send_multipart([b"APPEND", b"req-2", proposed("dep-1")])
        assert recv_topic(sub, b"RESULT") == \
            [b"RESULT", b"req-2", b'{"status":"duplicate","first_seq":1,"last_seq":1}']

        push.send_multipart([b"APPEND", b"req-3",
                             proposed("wd-1", type_="withdrawn", amount=1,
                                      expect={"alice": 4})])
        assert recv_topic(sub, b"RESULT") == \
            [b"RESULT", b"req-3", b'{"status":"conflict","versions":{"alice":1}}']

        push.send_multipart([b"APPEND", b"req-4"])
        assert recv_topic(sub, b"RESULT") == \
            [b"RESULT", b"req-4", b'{"status":"invalid","error":"empty request: no events"}']
        push.send_multipart([b"APPLY", b"req-5", proposed("x-1")])
        assert recv_topic(sub, b"RESULT") == [
            b"RESULT", b"req-5",
            b'{"status":"invalid","error":"unknown command (expected APPEND)"}']
        push.send_multipart([b"APPEND", b"req-6", b"{"])
        assert recv_topic(sub, b"RESULT") == [
            b"RESULT", b"req-6", b'{"status":"invalid","error":"event 0: event: not valid JSON"}']

        beat = recv_topic(sub, b"HEARTBEAT")
        ts2 = json.loads(events[2])["ts"]
        assert beat == [b"HEARTBEAT", b"2", b"dep-1",
                        b'{"seq":2,"ts":"%s","chain":"%s"}' % (ts2.encode(),
                                                               chain2.hex().encode())], beat

        line1, line2 = events[1], events[2]
        dealer.send_multipart([b"FETCH", b"1", b"10"])
        assert recv(dealer, "BATCH") == [b"BATCH", b"2", line1, line2]
        dealer.send_multipart([b"FETCH", b"3", b"10"])
        assert recv(dealer, "BATCH") == [b"BATCH", b"2"]
        dealer.send_multipart([b"FETCH", b"2", b"10", b"packed"])
        assert recv(dealer, "PACKED") == [b"PACKED", b"2", line2 + b"\n"]
        dealer.send_multipart([b"FETCH", b"1", b"1", b"packed", b"identity"])
        assert recv(dealer, "PACKED") == [b"PACKED", b"2", line1 + b"\n", b"dep-1"]
        dealer.send_multipart([b"FETCH", b"1", b"10", b"packed", b"identity"])
        assert recv(dealer, "PACKED") == \
            [b"PACKED", b"2", line1 + b"\n" + line2 + b"\n", b"dep-1"]

        refusals = [
            ([b"FETCH"], b"from_seq: must be an integer >= 1"),
            ([b"GET", b"1", b"1"], b"unknown command (expected FETCH from_seq max_events [packed])"),
            ([b"FETCH", b"0", b"1"], b"from_seq: must be an integer >= 1"),
            ([b"FETCH", b"-1", b"1"], b"from_seq: must be an integer >= 1"),
            ([b"FETCH", b"1", b"0"], b"max_events: must be an integer >= 1"),
            ([b"FETCH", b"1", b"x"], b"max_events: must be an integer >= 1"),
            ([b"FETCH", b"1", b"1", b"lines"], b'the fourth frame, if any, must be "packed"'),
            ([b"FETCH", b"1", b"1", b"packed", b"id"],
             b'the fifth frame, if any, must be "identity"'),
            ([b"FETCH", b"1", b"1", b"packed", b"identity", b"more"],
             b"FETCH takes at most four arguments: from_seq max_events [packed [identity]]"),
            ([b"LOOKUP"], b"LOOKUP takes one event id"),
            ([b"LOOKUP", b"a", b"b"], b"LOOKUP takes one event id"),
            ([b"LOOKUP", b"bad id"], b"LOOKUP takes one event id"),
        ]
        for request, error in refusals:
            dealer.send_multipart(request)
            assert recv(dealer, "ERROR") == [b"ERROR", error], request

        dealer.send_multipart([b"LOOKUP", b"dep-2"])
        assert recv(dealer, "FOUND") == [b"FOUND", b"dep-2", b"2", line2]
        dealer.send_multipart([b"LOOKUP", b"dep-9"])
        assert recv(dealer, "ABSENT") == [b"ABSENT", b"dep-9"]

        # A REQ's envelope delimiter comes back too.
        req = ctx.socket(zmq.REQ)
        req.connect(endpoints.replay)
        req.send_multipart([b"FETCH", b"2", b"1"])
        assert recv(req, "BATCH") == [b"BATCH", b"2", line2]
        req.close(0)
    finally:
        for sock in (sub, push, dealer):
            sock.close(0)
    stream.stop()


def test_stream_packed_frames_are_pinned():
    endpoints = h.Endpoints()
    stream = h.start_stream(endpoints, h.tmpdir(), extra=["--heartbeat-ms", "100"])
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoints.publish)
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoints.ingest)
    try:
        assert recv_topic(sub, b"HEARTBEAT")[:3] == [b"HEARTBEAT", b"0", b""]
        # Decided one by one: a duplicate of an earlier request's event, a
        # conflict, an empty request, a line that is not JSON and a count
        # that lies do not reject their neighbours.
        packed = (b"req-1 2\n" + proposed("dep-1") + b"\n" +
                  proposed("dep-2", account="bob", amount=7) + b"\n" +
                  b"req-2 1\n" + proposed("dep-1") + b"\n" +
                  b"req-3 1\n" + proposed("wd-1", type_="withdrawn", amount=1,
                                          expect={"alice": 4}) + b"\n" +
                  b"req-4 0\n" +
                  b"req-5 1\n{\n" +
                  b"req-6 1\n" + proposed("dep-3", account="carol") + b"\n" +
                  b"req-7 2\n" + proposed("dep-4") + b"\n")
        push.send_multipart([b"APPEND", b"", packed])
        events = recv_topic(sub, b"EVENTS")
        assert len(events) == 2, events
        lines = events[1].split(b"\n")
        assert lines[-1] == b"" and len(lines) == 4, events
        assert [without_ts(h.unchained(line)) for line in lines[:3]] == [
            b'{"seq":1,"id":"dep-1","type":"deposited","v":1,"account":"alice","amount":5}',
            b'{"seq":2,"id":"dep-2","type":"deposited","v":1,"account":"bob","amount":7}',
            b'{"seq":3,"id":"dep-3","type":"deposited","v":1,"account":"carol","amount":5}',
        ]
        assert recv_topic(sub, b"RESULTS") == [b"RESULTS", b"".join([
            b'req-1 {"status":"ok","first_seq":1,"last_seq":2}\n',
            b'req-2 {"status":"duplicate","first_seq":1,"last_seq":1}\n',
            b'req-3 {"status":"conflict","versions":{"alice":1}}\n',
            b'req-4 {"status":"invalid","error":"empty request: no events"}\n',
            b'req-5 {"status":"invalid","error":"event 0: event: not valid JSON"}\n',
            b'req-6 {"status":"ok","first_seq":3,"last_seq":3}\n',
            b'req-7 {"status":"invalid","error":"packed request: count 2, but the frame '
            b'ends after 1 line(s)"}\n',
        ])]
        # A header that cannot be read ends the pack: what came before it
        # is answered, nothing after it.
        push.send_multipart([b"APPEND", b"", b"req-8 1\n" + proposed("dep-5") +
                             b"\nreq 9 1\n" + proposed("dep-6") + b"\n"])
        assert recv_topic(sub, b"EVENTS")[1].count(b"\n") == 1
        assert recv_topic(sub, b"RESULTS") == [
            b"RESULTS", b'req-8 {"status":"ok","first_seq":4,"last_seq":4}\n']
        # The one-request form is answered in its own form.
        push.send_multipart([b"APPEND", b"req-10", proposed("dep-1")])
        assert recv_topic(sub, b"RESULT") == \
            [b"RESULT", b"req-10", b'{"status":"duplicate","first_seq":1,"last_seq":1}']
    finally:
        for sock in (sub, push):
            sock.close(0)
    stream.stop()


class FakeStream:
    """PULL for ingest, PUB for heartbeats, ROUTER answering every FETCH
    with an empty PACKED page: a log with nothing in it."""

    def __init__(self, endpoints):
        ctx = zmq.Context.instance()
        self.pull = ctx.socket(zmq.PULL)
        self.pull.bind(endpoints.ingest)
        self.pub = ctx.socket(zmq.PUB)
        self.pub.bind(endpoints.publish)
        self.router = ctx.socket(zmq.ROUTER)
        self.router.bind(endpoints.replay)
        self.fetches = []

    def serve(self, until_s):
        """Heartbeats and FETCH answers for until_s seconds, or until an
        APPEND arrives (returned)."""
        deadline = time.monotonic() + until_s
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        poller.register(self.router, zmq.POLLIN)
        while time.monotonic() < deadline:
            self.pub.send_multipart([b"HEARTBEAT", b"0", b""])
            for sock, _ in poller.poll(50):
                if sock is self.pull:
                    return self.pull.recv_multipart()
                frames = self.router.recv_multipart()
                self.fetches.append(frames[1:])
                reply = [frames[0], b"PACKED", b"0", b""]
                if frames[-1] == b"identity":
                    reply.append(b"")
                self.router.send_multipart(reply)
        return None

    def close(self):
        for sock in (self.pull, self.pub, self.router):
            sock.close(0)


def post_in_thread(url, path, body, headers):
    def run():
        try:
            h.request("POST", url + path, body, headers=headers, timeout=5.0)
        except Exception:
            pass  # the fake stream never answers; only the APPEND matters
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_transaction_append_frames_are_pinned():
    endpoints = h.Endpoints()
    fake = FakeStream(endpoints)
    transaction = h.start_transaction(endpoints, wait=False)
    try:
        assert fake.serve(2.0) is None
        assert fake.fetches, "no FETCH from the transaction's subscriber"
        assert fake.fetches[0] == [b"FETCH", b"1", b"10000", b"packed", b"identity"], \
            fake.fetches[0]
        transaction.wait_healthy()

        post_in_thread(transaction.url, "/transactions",
                       {"id": "t-1", "account": "alice", "amount": 12, "reference": "pay"},
                       {"X-Request-Id": "rq-1"})
        append = fake.serve(10.0)
        assert append is not None, "no APPEND"
        assert len(append) == 3, append
        assert append[0] == b"APPEND"
        assert re.match(rb"^[0-9A-F]{32}-1$", append[1]), append[1]
        instance = append[1][:32]
        assert append[2] == (
            b'{"id":"t-1","type":"deposited","v":2,"account":"alice","amount":12,'
            b'"currency":"XXX","meta":{"request_id":"rq-1","reference":"pay"}}'), \
            append[2]

        post_in_thread(transaction.url, "/batch",
                       {"commands": [
                           {"account": "bob", "amount": 3},
                           {"from": "bob", "to": "carol", "amount": 2},
                           {"account": "bob", "amount": -1}]},
                       {"X-Request-Id": "rq-2", "Idempotency-Key": "bx"})
        append = fake.serve(10.0)
        assert append is not None, "no APPEND for the batch"
        # A request of several events goes packed, even alone: one frame
        # instead of one per event. (The one-request form of several
        # events stays pinned in test_stream_frames_are_pinned.)
        assert append[:2] == [b"APPEND", b""], append[:2]
        # The expect rides on the first event that debits an account.
        assert append[2:] == [instance + b"-2 3\n" +
            b'{"id":"bx:0","type":"deposited","v":2,"account":"bob","amount":3,'
            b'"currency":"XXX","meta":{"request_id":"rq-2"}}\n'
            b'{"id":"bx:1","type":"transferred","v":2,"from":"bob","to":"carol","amount":2,'
            b'"currency":"XXX","meta":{"request_id":"rq-2"},"expect":{"bob":0}}\n'
            b'{"id":"bx:2","type":"withdrawn","v":2,"account":"bob","amount":1,'
            b'"currency":"XXX","meta":{"request_id":"rq-2"}}\n'], append[2:]
    finally:
        fake.close()
    transaction.stop()


if __name__ == "__main__":
    h.run_tests([test_stream_frames_are_pinned, test_stream_packed_frames_are_pinned,
                 test_transaction_append_frames_are_pinned])
