"""The live feed (GET /events as server-sent events) and the dashboard page,
against the real binaries over real HTTP: catch-up then live, the account
filter, the subscriber cap, a slow reader cut off with bounded memory, and
resume with Last-Event-ID across kill -9 of accounting and of the stream
while a writer runs (every seq exactly once, in order, byte for byte).
The page is loaded in headless Chromium, driven over the DevTools
protocol: no console errors, balances shown, a deposit made after load
appears in the feed, and the bearer token entered on the page is sent.

LEDGER_SCREENSHOT=PATH writes the page's screenshot there (the README's
docs/dashboard.png); by default it goes to the build directory.
"""

import base64
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import get_json, post_json, wait_until

HTTP_TIMEOUT_S = 30.0   # generous: a shared, noisy machine
WAIT_S = 60.0           # wait-until bound for anything eventually true
FEED_BUFFER_BYTES_MAX = 1024 * 1024
RSS_GROWTH_BOUND_KIB = 12 * 1024  # the cut-off client's buffer is 1 MiB
REFERENCE = "r" * 200   # pads lines to ~400 bytes
FLOOD_BATCHES = 70      # of 1,000 events: ~28 MiB of lines
STALL_MS = 1000         # --feed-stall-ms for the reader that stops


# ---------------------------------------------------------------------------
# An SSE client on a raw socket: the test controls reading (and SO_RCVBUF)

class EndOfStream(Exception):
    pass


class Sse:
    """GET path with Accept: text/event-stream; frames() yields dicts with
    id, event, data (one data line each here) or comment."""

    def __init__(self, port, path, headers=None, rcvbuf=None, timeout=HTTP_TIMEOUT_S):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                 "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        self.body = b""
        self.ended = False
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, v in
                        (h.split(":", 1) for h in header_lines)}
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        if not self.chunked:
            length = int(self.headers.get("content-length", "0"))
            while len(self.raw) < length:
                self._recv()
            self.body, self.ended = self.raw[:length], True

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EndOfStream("connection closed")
        self.raw += data

    def _dechunk(self):
        while not self.ended:
            size_end = self.raw.find(b"\r\n")
            if size_end < 0:
                return
            size = int(self.raw[:size_end].split(b";")[0], 16)
            if size == 0:
                self.ended = True
                return
            if len(self.raw) < size_end + 2 + size + 2:
                return
            self.body += self.raw[size_end + 2:size_end + 2 + size]
            self.raw = self.raw[size_end + 2 + size + 2:]

    def next_frame(self):
        """The next frame; EndOfStream once the response is complete."""
        while True:
            self._dechunk()
            end = self.body.find(b"\n\n")
            if end >= 0:
                text, self.body = self.body[:end].decode(), self.body[end + 2:]
                frame = {}
                for line in text.split("\n"):
                    if line.startswith(":"):
                        frame["comment"] = line[1:].strip()
                    else:
                        field, _, value = line.partition(": ")
                        frame[field] = value
                return frame
            if self.ended:
                raise EndOfStream("response complete")
            self._recv()

    def next_event(self):
        """The next frame that is an event (skips comments and retry)."""
        while True:
            frame = self.next_frame()
            if "data" in frame:
                return frame

    def close(self):
        self.sock.close()


# Tokens of an auth file (DESIGN: NAME SCOPES ACCOUNTS SHA256).
WRITER_TOKEN = "feed-writer-token-0123456789abcdef"
ALICE_TOKEN = "feed-alice-token-0123456789abcdef"
READER_TOKEN = "feed-reader-token-0123456789abcdef"
OPS_TOKEN = "feed-ops-token-0123456789abcdef"


PRINCIPALS = [("writer", "write", "*", WRITER_TOKEN),
              ("alice", "read", "alice*", ALICE_TOKEN),
              ("reader", "read", "*", READER_TOKEN),
              ("ops", "metrics", "*", OPS_TOKEN)]


def auth_file(path=None, principals=PRINCIPALS):
    path = path or os.path.join(harness.tmpdir("ledger-auth-"), "auth")
    with open(path + ".tmp", "w") as f:
        for name, scopes, accounts, token in principals:
            f.write(f"{name} {scopes} {accounts} "
                    f"{hashlib.sha256(token.encode()).hexdigest()}\n")
    os.rename(path + ".tmp", path)
    return path


def bearer(token):
    return {"Authorization": "Bearer " + token} if token else {}


class Deployment(harness.StreamLog):
    """stream, transaction and accounting; with tokens=True the HTTP APIs
    take the tokens of auth_file()."""

    def __init__(self, acc_extra=(), acc_env=None, tokens=False):
        self.endpoints = harness.Endpoints()
        self.stream_dir = harness.tmpdir("ledger-stream-")
        self.acc_dir = harness.tmpdir("ledger-accounting-")
        self.auth_path = auth_file() if tokens else None
        auth = ["--auth-file", self.auth_path] if tokens else []
        self.write_headers = bearer(WRITER_TOKEN if tokens else None)
        self.read_headers = bearer(READER_TOKEN if tokens else None)
        self.stream = harness.start_stream(self.endpoints, self.stream_dir,
                                           extra=["--heartbeat-ms", "200", *auth])
        self.tx = harness.start_transaction(self.endpoints,
                                            extra=["--ack-timeout-ms", "2000", *auth])
        self.acc = harness.start_accounting(
            self.endpoints, self.acc_dir,
            extra=["--upstream-timeout-ms", "1000", *auth, *acc_extra], env=acc_env)

    def _post(self, path, body):
        status, answer, _ = post_json(self.tx.url + path, body, self.write_headers,
                                      timeout=HTTP_TIMEOUT_S)
        assert status == 201, (status, answer)
        return answer

    def deposit(self, account, amount, reference=None):
        body = {"account": account, "amount": amount}
        if reference:
            body["reference"] = reference
        return self._post("/transactions", body)["seq"]

    def transfer(self, source, target, amount):
        return self._post("/transfers", {"from": source, "to": target, "amount": amount})["seq"]

    def batch(self, commands):
        return self._post("/batch", {"commands": commands})["last_seq"]

    def wait_applied(self, seq, service=None):
        service = service or self.acc
        wait_until(lambda: get_json(service.url + "/health")[1]["applied_seq"] >= seq,
                   WAIT_S, what=f"{service.name} applied seq {seq}")

    def lines(self):
        """seq -> stored line (bytes, no newline) of the stream's log."""
        data = self.log_bytes()
        return {i: line for i, line in enumerate(data.split(b"\n")[:-1], start=1)}

    def stop(self):
        for service in (self.acc, self.tx, self.stream):
            service.stop_clean()


def metric(service, name, headers=None):
    status, _, body = harness.request("GET", service.url + "/metrics", headers=headers)
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------------------
# The feed

def test_catch_up_then_live_sends_the_stored_lines_in_order():
    d = Deployment(acc_extra=["--feed-keepalive-ms", "200"])
    for i in range(20):
        d.deposit("alice" if i % 2 else "bob", i + 1)
    d.transfer("alice", "bob", 5)
    d.wait_applied(21)
    sse = Sse(d.acc.http_port, "/events?from_seq=3")
    assert sse.status == 200
    assert sse.headers["content-type"].startswith("text/event-stream")
    received = [sse.next_event() for _ in range(19)]
    live_seqs = [d.deposit("carol", 7) for _ in range(5)]
    received += [sse.next_event() for _ in range(5)]
    lines = d.lines()
    assert [int(f["id"]) for f in received] == list(range(3, 22)) + live_seqs
    for frame in received:
        seq = int(frame["id"])
        assert frame["data"].encode() == lines[seq], seq
        assert frame["event"] == json.loads(lines[seq])["type"]
    # Idle: comments keep the connection alive, and it still goes live after.
    comment = sse.next_frame()
    assert comment.get("comment") == "keep-alive", comment
    seq = d.deposit("dave", 1)
    assert int(sse.next_event()["id"]) == seq
    sse.close()
    # Without from_seq or Last-Event-ID the feed starts at the next event.
    sse = Sse(d.acc.http_port, "/events")
    seq = d.deposit("erin", 2)
    assert int(sse.next_event()["id"]) == seq
    sse.close()
    # Last-Event-ID wins over from_seq (an EventSource reconnects to the same URL).
    sse = Sse(d.acc.http_port, "/events?from_seq=1", headers={"Last-Event-ID": "20"})
    assert [int(sse.next_event()["id"]) for _ in range(3)] == [21] + live_seqs[:2]
    sse.close()
    # Without Accept: text/event-stream: a JSON page of the replica.
    status, page = get_json(d.acc.url + "/events?from_seq=2&limit=3")
    assert status == 200 and [e["seq"] for e in page["events"]] == [2, 3, 4]
    assert page["next_from_seq"] == 5
    status, _, _ = harness.request("GET", d.acc.url + "/events?from_seq=0")
    assert status == 400
    sse = Sse(d.acc.http_port, "/events", headers={"Last-Event-ID": "x"})
    assert sse.status == 400 and sse.headers["content-type"] == "application/problem+json"
    sse.close()
    d.stop()


def test_account_filter_sends_only_events_touching_the_account():
    d = Deployment()
    d.deposit("alice", 100)
    d.deposit("bob", 50)
    d.transfer("alice", "bob", 10)
    d.deposit("carol", 5)
    d.wait_applied(4)
    sse = Sse(d.acc.http_port, "/events?from_seq=1&account=bob")
    assert [int(sse.next_event()["id"]) for _ in range(2)] == [2, 3]
    d.deposit("alice", 1)
    d.transfer("bob", "carol", 1)
    frame = sse.next_event()
    assert int(frame["id"]) == 6 and json.loads(frame["data"])["from"] == "bob"
    sse.close()
    status, page = get_json(d.acc.url + "/events?account=carol")
    assert status == 200 and [e["seq"] for e in page["events"]] == [4, 6]
    status, _, _ = harness.request("GET", d.acc.url + "/events?account=bad%20id",
                                   headers={"Accept": "text/event-stream"})
    assert status == 400
    d.stop()


def test_a_token_sees_only_the_events_of_its_account_pattern():
    d = Deployment(tokens=True)
    d.deposit("alice", 100)
    d.deposit("bob", 50)
    d.transfer("bob", "alice2", 10)
    d.deposit("carol", 5)
    d.wait_applied(4)
    sse = Sse(d.acc.http_port, "/events?from_seq=1", headers=bearer(ALICE_TOKEN))
    assert sse.status == 200
    assert [int(sse.next_event()["id"]) for _ in range(2)] == [1, 3]
    d.deposit("carol", 1)
    seq = d.transfer("alice", "bob", 1)
    assert int(sse.next_event()["id"]) == seq  # carol's deposit is not shown
    sse.close()
    everything = Sse(d.acc.http_port, "/events?from_seq=1", headers=bearer(READER_TOKEN))
    assert [int(everything.next_event()["id"]) for _ in range(6)] == list(range(1, 7))
    everything.close()
    # The JSON page is filtered the same way.
    status, _, body = harness.request("GET", d.acc.url + "/events", headers=bearer(ALICE_TOKEN))
    assert status == 200 and [e["seq"] for e in json.loads(body)["events"]] == [1, 3, seq]
    # An account outside the pattern: 403; no token: 401; no read scope: 403.
    for path, headers, expected in [("/events?account=bob", bearer(ALICE_TOKEN), 403),
                                    ("/events", {}, 401),
                                    ("/events", bearer(WRITER_TOKEN), 403)]:
        refused = Sse(d.acc.http_port, path, headers=headers)
        assert refused.status == expected, (path, headers, refused.status)
        refused.close()
    # The page itself is open: it holds no data until a token is entered.
    status, _, _ = harness.request("GET", d.acc.url + "/")
    assert status == 200
    # alice's token is revoked: at the reload her stream ends, and so does
    # every stream with a token, to be checked again when it reconnects.
    alice = Sse(d.acc.http_port, "/events", headers=bearer(ALICE_TOKEN))
    reader = Sse(d.acc.http_port, "/events", headers=bearer(READER_TOKEN))
    first = d.deposit("alice", 7)
    assert int(alice.next_event()["id"]) == first
    assert int(reader.next_event()["id"]) == first
    auth_file(d.auth_path, [p for p in PRINCIPALS if p[0] != "alice"])
    ops = bearer(OPS_TOKEN)
    reloads = metric(d.acc, "ledger_http_auth_reloads_total", ops)
    d.acc.signal(signal.SIGHUP)
    wait_until(lambda: metric(d.acc, "ledger_http_auth_reloads_total", ops) > reloads,
               WAIT_S, what="the reload")
    for sse in (alice, reader):
        try:
            frame = sse.next_event()
            raise AssertionError(f"the stream went on after the reload: {frame}")
        except EndOfStream:
            sse.close()
    assert Sse(d.acc.http_port, "/events", headers=bearer(ALICE_TOKEN)).status == 401
    resumed = Sse(d.acc.http_port, "/events", headers={**bearer(READER_TOKEN),
                                                        "Last-Event-ID": str(first)})
    second = d.deposit("alice", 8)
    assert int(resumed.next_event()["id"]) == second
    resumed.close()
    d.stop()


def test_subscribers_beyond_the_cap_get_503_with_retry_after():
    d = Deployment(acc_extra=["--feed-subscribers-max", "2", "--feed-keepalive-ms", "100"])
    first = Sse(d.acc.http_port, "/events")
    second = Sse(d.acc.http_port, "/events")
    assert first.status == second.status == 200
    third = Sse(d.acc.http_port, "/events")
    assert third.status == 503
    assert third.headers.get("retry-after") == "1"
    assert third.headers["content-type"] == "application/problem+json"
    assert json.loads(third.body)["status"] == 503
    third.close()
    assert metric(d.acc, "accounting_feed_refused_total") >= 1
    # A closed subscriber frees its slot (noticed at the next keep-alive).
    first.close()

    def subscribed():
        sse = Sse(d.acc.http_port, "/events")
        if sse.status == 200:
            return sse
        sse.close()
        return None
    fourth = wait_until(subscribed, WAIT_S, interval_s=0.1, what="a free slot")
    seq = d.deposit("alice", 3)
    assert int(fourth.next_event()["id"]) == seq
    assert int(second.next_event()["id"]) == seq
    fourth.close()
    second.close()
    d.stop()


def test_a_reader_that_stops_reading_is_cut_off_and_memory_stays_bounded():
    # Under ASan freed memory waits in a quarantine (256 MiB by default):
    # kept small, RSS shows what the service holds.
    d = Deployment(acc_extra=["--feed-stall-ms", str(STALL_MS)],
                   acc_env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:"
                                            "quarantine_size_mb=1"})
    d.deposit("warmup", 1)
    d.wait_applied(1)
    slow = Sse(d.acc.http_port, "/events", rcvbuf=4096)
    assert slow.status == 200
    assert slow.next_frame().get("comment") == "connected"
    rss_before = vm_rss_kib(d.acc.proc.pid)
    commands = [{"account": f"acct{i % 8}", "amount": 1, "reference": REFERENCE}
                for i in range(1000)]
    # The reader reads nothing: a buffer without a bound would hold it all.
    for _ in range(FLOOD_BATCHES):
        last_seq = d.batch(commands)
    d.wait_applied(last_seq)
    rss_after = vm_rss_kib(d.acc.proc.pid)
    flood_bytes = len(b"".join(d.lines().values()))
    print(f"     {flood_bytes >> 20} MiB of events unread; RSS {rss_before} -> {rss_after} KiB")
    assert flood_bytes > 2 * RSS_GROWTH_BOUND_KIB * 1024, "the flood is too small to tell"
    assert rss_after - rss_before < RSS_GROWTH_BOUND_KIB, (rss_before, rss_after)
    assert metric(d.acc, "accounting_feed_fallbacks_total") > 0
    wait_until(lambda: metric(d.acc, "accounting_feed_cutoffs_total") >= 1, WAIT_S,
               what="the cut-off")
    # The reader reads again: whole events in order, then the error, then the end.
    seqs, error = [], None
    try:
        while error is None:
            frame = slow.next_frame()
            if frame.get("event") == "error":
                error = json.loads(frame["data"])
            elif "data" in frame:
                seqs.append(int(frame["id"]))
        slow.next_frame()
        raise AssertionError("the response goes on after the error")
    except EndOfStream:
        pass
    slow.close()
    assert error and "slow consumer" in error["error"], error
    assert seqs and seqs == list(range(2, 2 + len(seqs)))
    assert seqs[-1] < last_seq
    # Resuming with Last-Event-ID gets the rest, from the replica.
    resumed = Sse(d.acc.http_port, "/events", headers={"Last-Event-ID": str(seqs[-1])})
    rest = [int(resumed.next_event()["id"]) for _ in range(last_seq - seqs[-1])]
    assert rest == list(range(seqs[-1] + 1, last_seq + 1))
    resumed.close()
    d.stop()


class Reader(threading.Thread):
    """Reads the feed until it has seq last (set later); reading waits
    while paused is set."""

    def __init__(self, port, rcvbuf=None):
        super().__init__(daemon=True)
        self.sse = Sse(port, "/events", rcvbuf=rcvbuf)
        self.seqs, self.errors, self.failure = [], [], None
        self.last = None
        self.resumed = threading.Event()
        self.resumed.set()

    def run(self):
        try:
            while self.last is None or not self.seqs or self.seqs[-1] < self.last:
                self.resumed.wait()
                frame = self.sse.next_frame()
                if frame.get("event") == "error":
                    self.errors.append(frame["data"])
                elif "data" in frame:
                    self.seqs.append(int(frame["id"]))
        except (OSError, EndOfStream) as e:
            self.failure = e


def test_a_reader_that_falls_behind_but_reads_on_gets_every_event_once():
    # The stall bound stays out of the way: this reader pauses, it does not
    # stop. Keep-alives wake a reader that is waiting for its last event.
    d = Deployment(acc_extra=["--feed-stall-ms", "25000", "--feed-keepalive-ms", "100"])
    fast = Reader(d.acc.http_port)
    paused = Reader(d.acc.http_port, rcvbuf=4096)
    paused.resumed.clear()
    for reader in (fast, paused):
        assert reader.sse.status == 200
        reader.start()
    commands = [{"account": f"acct{i % 8}", "amount": 1, "reference": REFERENCE}
                for i in range(1000)]
    batches = 0
    # Until the paused reader's buffer is full and live events go to the replica.
    while metric(d.acc, "accounting_feed_fallbacks_total") == 0:
        assert batches < 200, "the buffer never filled"
        last_seq = d.batch(commands)
        batches += 1
    for _ in range(5):
        last_seq = d.batch(commands)
    paused.resumed.set()
    for reader in (fast, paused):
        reader.last = last_seq
    for reader in (fast, paused):
        reader.join(WAIT_S)
        assert not reader.is_alive() and reader.failure is None, reader.failure
        assert reader.errors == []
        assert reader.seqs == list(range(1, last_seq + 1))
        reader.sse.close()
    print(f"     {last_seq} events; "
          f"{metric(d.acc, 'accounting_feed_fallbacks_total'):.0f} fallback(s) to the replica")
    assert metric(d.acc, "accounting_feed_cutoffs_total") == 0
    d.stop()


class Follower(threading.Thread):
    """Follows the feed from seq 1 like an EventSource: on any end or error,
    reconnects with Last-Event-ID, to the next of ports, until stopped."""

    def __init__(self, ports):
        super().__init__(daemon=True)
        self.ports = ports
        self.frames = []
        self.reconnects = 0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            try:
                headers = {"Last-Event-ID": self.frames[-1]["id"]} if self.frames else {}
                port = self.ports[self.reconnects % len(self.ports)]
                sse = Sse(port, "/events?from_seq=1", headers=headers, timeout=2.0)
                if sse.status != 200:
                    raise OSError(f"status {sse.status}")
                while not self.stopped.is_set():
                    frame = sse.next_event()
                    self.frames.append(frame)
            except (OSError, EndOfStream, ValueError, IndexError):
                self.reconnects += 1
                time.sleep(0.05)

    def last_seq(self):
        return int(self.frames[-1]["id"]) if self.frames else 0


class Writer(threading.Thread):
    """Deposits until stopped; failures (services down) are retried later."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.acknowledged = 0
        self.stopped = threading.Event()

    def run(self):
        n = 0
        while not self.stopped.is_set():
            n += 1
            try:
                status, _, _ = post_json(self.url + "/transactions",
                                         {"account": f"w{n % 5}", "amount": 1}, timeout=5.0)
                if status == 201:
                    self.acknowledged += 1
                else:
                    time.sleep(0.05)
            except OSError:
                time.sleep(0.05)


def test_resume_with_last_event_id_across_kill9_of_accounting_and_stream():
    d = Deployment()
    # A second instance: a reconnect may land on either (their replicas
    # hold the same bytes).
    other = harness.start_accounting(d.endpoints, harness.tmpdir("ledger-accounting-"),
                                     extra=["--upstream-timeout-ms", "1000"])
    follower = Follower([d.acc.http_port, other.http_port])
    writer = Writer(d.tx.url)
    follower.start()
    writer.start()
    faults = [d.acc, d.stream, other, d.acc, d.stream, other]
    for service in faults:
        progress = writer.acknowledged
        wait_until(lambda: writer.acknowledged >= progress + 20, WAIT_S,
                   what="the writer getting through")
        service.kill9()
        time.sleep(0.3)
        service.start()
    progress = writer.acknowledged
    wait_until(lambda: writer.acknowledged >= progress + 20, WAIT_S, what="writes after")
    writer.stopped.set()
    writer.join(HTTP_TIMEOUT_S)
    head = len(d.lines())
    d.wait_applied(head)
    d.wait_applied(head, other)
    wait_until(lambda: follower.last_seq() >= head, WAIT_S, what="the follower at the head")
    follower.stopped.set()
    follower.join(HTTP_TIMEOUT_S)
    seqs = [int(f["id"]) for f in follower.frames]
    assert seqs == list(range(1, head + 1)), "gap or duplicate in the feed"
    lines = d.lines()
    for frame in follower.frames:
        assert frame["data"].encode() == lines[int(frame["id"])]
    assert follower.reconnects >= 2, follower.reconnects  # both instances served it
    print(f"     {head} events, {follower.reconnects} reconnects, "
          f"{writer.acknowledged} acknowledged writes")
    other.stop_clean()
    d.stop()


class RandomClient(threading.Thread):
    """From a random seq, with or without a random account filter, reads
    a few events, drops the connection at a random point and resumes with
    Last-Event-ID, again and again, until it has seq last (set later)."""

    def __init__(self, port, rng, head, accounts):
        super().__init__(daemon=True)
        self.port, self.rng = port, rng
        self.from_seq = rng.randint(1, head + 20)
        self.account = rng.choice([None, *accounts])
        self.seqs, self.sessions, self.failure = [], 0, None
        self.last = None

    def run(self):
        query = f"/events?from_seq={self.from_seq}" + (
            f"&account={self.account}" if self.account else "")
        try:
            while not self.done():
                headers = {"Last-Event-ID": str(self.seqs[-1])} if self.seqs else {}
                sse = Sse(self.port, query, headers=headers)
                assert sse.status == 200, sse.status
                self.sessions += 1
                for _ in range(self.rng.randint(1, 40)):
                    frame = sse.next_frame()  # keep-alives let it see `last`
                    if "data" in frame:
                        self.seqs.append(int(frame["id"]))
                    if self.done():
                        break
                sse.close()
        except Exception as e:  # reported by the test
            self.failure = e

    def done(self):
        last = self.last  # set by the test once the log is complete
        return last is not None and (last == 0 or (self.seqs and self.seqs[-1] >= last))

    def expected(self, events):
        def touches(ev):
            return self.account in (ev.get("account"), ev.get("from"), ev.get("to"))
        return [ev["seq"] for ev in events
                if ev["seq"] >= self.from_seq and (self.account is None or touches(ev))]


def test_random_subscribers_resuming_at_random_points_match_a_model_of_the_log():
    seed = int(os.environ.get("LEDGER_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"     seed {seed} (LEDGER_SEED)")
    accounts = ["ann", "ben", "cat", "dan", "eve"]
    # Dropped connections hold a slot until the next keep-alive notices
    # them: room for the quick reconnects here.
    d = Deployment(acc_extra=["--feed-keepalive-ms", "100", "--feed-subscribers-max", "1000"])
    d.batch([{"account": a, "amount": 10 ** 9} for a in accounts])
    clients = []
    for _ in range(24):
        if rng.random() < 0.5:
            commands = []
            for _ in range(rng.randint(1, 300)):
                if rng.random() < 0.5:
                    commands.append({"account": rng.choice(accounts),
                                     "amount": rng.randint(1, 1000)})
                else:
                    source, target = rng.sample(accounts, 2)
                    commands.append({"from": source, "to": target,
                                     "amount": rng.randint(1, 1000)})
            d.batch(commands)
        client = RandomClient(d.acc.http_port, random.Random(rng.random()),
                              len(d.lines()), accounts)
        client.start()
        clients.append(client)
    # Written after every client started: one deposit per account, so
    # every client's last expected event comes after its start.
    last = d.batch([{"account": a, "amount": 1} for a in accounts])
    events = [json.loads(line) for line in d.lines().values()]
    for client in clients:
        expected = client.expected(events)
        client.last = expected[-1] if expected else 0  # 0: from_seq beyond the log
    for client in clients:
        client.join(WAIT_S)
        assert not client.is_alive(), "a client never reached its last event"
        assert client.failure is None, client.failure
        assert client.seqs == client.expected(events), (client.from_seq, client.account)
    print(f"     {last} events, {sum(c.sessions for c in clients)} sessions of "
          f"{len(clients)} clients")
    d.stop()


# ---------------------------------------------------------------------------
# The page in headless Chromium, over the DevTools protocol

def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("chromium not found: scripts/setup installs Debian's chromium")


class WebSocket:
    """The client half of RFC 6455 that CDP needs: text frames, masked."""

    def __init__(self, url, timeout=HTTP_TIMEOUT_S):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head

    def _recv(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("websocket closed")
        return data

    def _take(self, n):
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, text):
        payload = text.encode()
        head = bytes([0x81])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def receive(self):
        message = b""
        while True:
            b0, b1 = self._take(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._take(2), "big")
            elif n == 127:
                n = int.from_bytes(self._take(8), "big")
            payload = self._take(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                raise EOFError("websocket closed by the browser")
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return message.decode()


class Browser:
    """Headless Chromium with one page, its console watched."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="ledger-chromium-")
        port = harness.free_port()
        self.proc = subprocess.Popen(
            [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
             f"--remote-debugging-port={port}", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

        def page_target():
            try:
                status, targets = get_json(f"http://127.0.0.1:{port}/json/list", timeout=2.0)
            except OSError:
                return None
            pages = [t for t in targets or [] if t.get("type") == "page"]
            return pages[0] if pages else None
        target = wait_until(page_target, WAIT_S, interval_s=0.2, what="chromium's DevTools")
        self.ws = WebSocket(target["webSocketDebuggerUrl"])
        self.next_id = 0
        self.problems = []   # console errors, exceptions, failed loads
        self.requests = []   # (url, headers, wall time) of every request the page sent
        self.sent = {}       # request id -> wall time it was sent
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(domain + ".enable")

    def _on_event(self, message):
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.problems.append(("console", [a.get("value", a.get("description"))
                                              for a in params["args"]]))
        elif method == "Runtime.exceptionThrown":
            self.problems.append(("exception", params["exceptionDetails"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            sent = self.sent.get(entry.get("networkRequestId"))
            self.problems.append(("log", entry["text"], entry.get("url"), sent))
        elif method == "Network.requestWillBeSent":
            self.sent[params["requestId"]] = params["wallTime"]
            self.requests.append((params["request"]["url"], params["request"]["headers"],
                                  params["wallTime"]))

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self.next_id:
                assert "error" not in message, (method, message["error"])
                return message["result"]
            self._on_event(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression, what):
        # False while the page is still loading (its elements not there yet).
        guarded = f"(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()"
        return wait_until(lambda: self.evaluate(guarded), WAIT_S, interval_s=0.1, what=what)

    def close(self):
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def screenshot_path():
    return os.environ.get("LEDGER_SCREENSHOT") or os.path.join(harness.BUILD_DIR,
                                                               "dashboard.png")


def test_the_page_shows_balances_and_live_deposits_without_console_errors():
    d = Deployment()
    d.deposit("alice", 125000)
    d.deposit("bob", 30000)
    d.transfer("alice", "bob", 2550)
    d.wait_applied(3)
    browser = Browser()
    try:
        browser.call("Page.navigate", url=d.acc.url + "/")
        browser.wait_for("document.readyState === 'complete'", "the page loaded")
        rows = ("[...document.querySelectorAll('#balances tbody tr')]"
                ".map(r => r.dataset.account + '=' + r.querySelector('td[data-key=balance]').textContent).join(' ')")
        browser.wait_for(rows + ".includes('alice=1,224.50')", "alice's balance")
        assert "bob=325.50" in browser.evaluate(rows)
        browser.wait_for("document.querySelectorAll('#feed li').length === 3",
                         "the backlog in the feed")
        browser.wait_for("document.getElementById('feed-state').textContent === 'feed: live'",
                         "the feed live")
        posted = time.monotonic()
        seq = d.deposit("carol", 4200)
        feed = f"document.querySelector('#feed li[data-seq=\"{seq}\"]')"
        browser.wait_for(f"{feed} !== null && {feed}.textContent.includes('carol')",
                         "the deposit in the feed")
        print(f"     a deposit was in the page's feed {time.monotonic() - posted:.3f} s "
              "after it was posted (polled every 0.1 s)")
        browser.wait_for(rows + ".includes('carol=42.00')", "carol's balance")
        for second in range(6):  # a few seconds of traffic for the chart
            d.batch([{"account": f"shop{i % 4}", "amount": 100 + 37 * i}
                     for i in range(5 + (second * 7) % 11)])
            time.sleep(1)
        shot = browser.call("Page.captureScreenshot", format="png")
        with open(screenshot_path(), "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        # A token entered once: kept in session storage, sent on every call.
        browser.evaluate("document.getElementById('token').value = 'feedtoken';"
                         "document.querySelector('#token-form button').click(); true")
        clicked = time.time()  # requests stamped later were sent after the click
        browser.wait_for("sessionStorage.getItem('ledger.token') === 'feedtoken'", "the token")
        d.deposit("erin", 1)
        browser.wait_for("!!document.querySelector('#feed li') && "
                         "document.querySelector('#feed li').textContent.includes('erin')",
                         "a deposit after the token")
        browser.wait_for("new Promise(r => setTimeout(() => r(true), 1500))", "a poll")
        browser.evaluate("1")  # collect the events queued meanwhile
        after = [(url, h) for url, h, sent in browser.requests
                 if sent > clicked and url.startswith(d.acc.url)]
        for url, h in after:
            assert h.get("Authorization") == "Bearer feedtoken", (url, h)
        with_token = {url[len(d.acc.url):].split("?")[0] for url, h, _ in browser.requests
                      if h.get("Authorization") == "Bearer feedtoken"}
        assert {"/events", "/stats", "/health", "/accounts"} <= with_token, with_token
        assert browser.problems == [], browser.problems
    finally:
        browser.close()
    d.stop()


def test_the_page_asks_for_a_token_once_and_keeps_it_for_the_session():
    d = Deployment(tokens=True)
    d.deposit("alice", 1000)
    d.wait_applied(1)
    browser = Browser()
    try:
        browser.call("Page.navigate", url=d.acc.url + "/")
        browser.wait_for("document.getElementById('message').textContent"
                         ".includes('bearer token')", "the page asking for a token")
        browser.evaluate(f"document.getElementById('token').value = '{READER_TOKEN}';"
                         "document.querySelector('#token-form button').click(); true")
        clicked = time.time()  # requests stamped later were sent after the click
        rows = ("[...document.querySelectorAll('#balances tbody tr')]"
                ".map(r => r.dataset.account + '=' + r.querySelector('td[data-key=balance]').textContent).join(' ')")
        browser.wait_for(rows + ".includes('alice=10.00')", "the balances with the token")
        browser.wait_for("document.getElementById('feed-state').textContent === 'feed: live'",
                         "the feed live")
        seq = d.deposit("bob", 250)
        browser.wait_for(f"!!document.querySelector('#feed li[data-seq=\"{seq}\"]')",
                         "the deposit in the feed")
        # A reload keeps the token (session storage): no second prompt.
        browser.call("Page.reload")
        browser.wait_for(rows + ".includes('bob=2.50')", "the balances after a reload")
        assert browser.evaluate("document.getElementById('token').value") == READER_TOKEN
        after = [(url, h) for url, h, sent in browser.requests
                 if sent > clicked and url.startswith(d.acc.url + "/")
                 and url != d.acc.url + "/"]
        assert after
        for url, h in after:
            assert h.get("Authorization") == "Bearer " + READER_TOKEN, (url, h)
        # Until the token the API answered 401, and the browser logs each;
        # nothing else, and nothing for a request sent after the click.
        for problem in browser.problems:
            assert problem[0] == "log" and "401" in problem[1], problem
            assert problem[3] is not None and problem[3] < clicked, problem
    finally:
        browser.close()
    d.stop()


if __name__ == "__main__":
    harness.run_tests([
        test_catch_up_then_live_sends_the_stored_lines_in_order,
        test_account_filter_sends_only_events_touching_the_account,
        test_a_token_sees_only_the_events_of_its_account_pattern,
        test_subscribers_beyond_the_cap_get_503_with_retry_after,
        test_a_reader_that_stops_reading_is_cut_off_and_memory_stays_bounded,
        test_a_reader_that_falls_behind_but_reads_on_gets_every_event_once,
        test_resume_with_last_event_id_across_kill9_of_accounting_and_stream,
        test_random_subscribers_resuming_at_random_points_match_a_model_of_the_log,
        test_the_page_shows_balances_and_live_deposits_without_console_errors,
        test_the_page_asks_for_a_token_once_and_keeps_it_for_the_session,
    ])
