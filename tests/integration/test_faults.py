"""Faults under fire: real stream, transaction and accounting binaries on
free ports, concurrent clients, and kill -9, SIGSTOP, torn and full disks,
overload and slow clients thrown at them. After every fault the claims are
the same: each acknowledged (201) command is in the stream's log exactly
once with the seq it was answered with, the log is valid, and every
accounting replica converges to the log's bytes.

LEDGER_STRESS=1 runs the long version (scripts/stress).
"""

import http.client
import json
import os
import random
import resource
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import get_json, post_json, wait_until

STRESS = os.environ.get("LEDGER_STRESS") == "1"
HTTP_TIMEOUT_S = 30.0          # generous: a shared, noisy machine
CONVERGE_TIMEOUT_S = 90.0
RESOLVE_TIMEOUT_S = 90.0
JOIN_TIMEOUT_S = 120.0
ACK_TIMEOUT_MS = 1000          # transaction: 503 soon while the stream is down
FUNDING = 10 ** 12             # every account starts rich: withdrawals never overdraw
RSS_BOUND_KIB = 1024 * 1024    # a service's peak RSS under overload (ASan included)
SUMMARY = {}                   # figures printed at the end (scripts/stress reads them)


def note(name, value):
    SUMMARY[name] = SUMMARY.get(name, 0) + value if isinstance(value, int) else value


# ---------------------------------------------------------------------------
# A deployment and its files

class Cluster(harness.StreamLog):
    """One stream, N transaction and M accounting instances."""

    def __init__(self, transactions=1, accountings=1, tx_extra=(), acc_extra=(),
                 stream_extra=(), stream_class=harness.Service):
        self.endpoints = harness.Endpoints()
        self.stream_dir = harness.tmpdir("ledger-stream-")
        self.stream = harness.start_stream(
            self.endpoints, self.stream_dir, extra=["--heartbeat-ms", "200", *stream_extra])
        if stream_class is not harness.Service:
            self.stream = self._restart_as(self.stream, stream_class)
        self.txs = [harness.start_transaction(
            self.endpoints, extra=["--ack-timeout-ms", str(ACK_TIMEOUT_MS), *tx_extra])
            for _ in range(transactions)]
        self.accs = [harness.start_accounting(
            self.endpoints, harness.tmpdir("ledger-accounting-"),
            extra=["--upstream-timeout-ms", "1000", *acc_extra])
            for _ in range(accountings)]

    @staticmethod
    def _restart_as(service, cls):
        service.kill9()
        return cls(service.name, service.args, http_port=service.http_port)

    def events_prefix(self):
        """The complete lines written so far (the stream may be appending),
        valid: seqs contiguous from 1, ts never decreasing."""
        data = self.log_bytes()
        data = data[:data.rfind(b"\n") + 1]
        events = [json.loads(line) for line in data.split(b"\n") if line]
        for i, ev in enumerate(events, start=1):
            assert ev["seq"] == i, f"line {i} has seq {ev['seq']}"
            assert i == 1 or ev["ts"] >= events[i - 2]["ts"], f"ts goes backwards at {i}"
        return events

    @staticmethod
    def restart(service):
        service.kill9()
        service.start()

    def assert_replicas_are_prefixes(self):
        """While events flow: a replica is always a prefix of the log."""
        for acc in self.accs:
            replica = replica_bytes(acc)
            assert self.log_bytes().startswith(replica), f"{acc.url} replica diverged"

    def converge(self, timeout_s=CONVERGE_TIMEOUT_S):
        """At a quiescent point: every replica equals the log's bytes and
        every instance's balances equal the reference fold."""
        events = self.events()
        log = self.log_bytes()
        state = harness.fold(events)
        for acc in self.accs:
            wait_until(lambda: replica_bytes(acc) == log and
                       health(acc)["applied_seq"] == len(events), timeout_s,
                       interval_s=0.1, what=f"{acc.url} to converge to seq {len(events)}")
            assert harness.all_accounts(acc, timeout=HTTP_TIMEOUT_S) == state, \
                f"{acc.url} balances differ from the fold"
        return events

    def post(self, path, body, key, tx):
        """(status or None when the connection failed, answer)."""
        try:
            status, answer, _ = post_json(tx.url + path, body, {"Idempotency-Key": key},
                                          timeout=HTTP_TIMEOUT_S)
            return status, answer
        except (OSError, http.client.HTTPException):
            return None, None

    def post_definitive(self, path, body, key, tx, timeout_s=RESOLVE_TIMEOUT_S):
        """Retries with the same key while the answer is 503 or none (the
        stream or the instance is starting or unreachable)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, answer = self.post(path, body, key, tx)
            if status not in (None, 503) or time.monotonic() > deadline:
                return status, answer
            time.sleep(0.1)

    def fund(self, accounts):
        for account in accounts:
            status, answer = self.post_definitive(
                "/transactions", {"account": account, "amount": FUNDING}, f"fund-{account}",
                self.txs[0])
            assert status == 201, (status, answer)

    def stop(self):
        for service in self.txs + self.accs + [self.stream]:
            service.stop_clean()


def replica_bytes(acc):
    return harness.log_data(acc.args[acc.args.index("--data-dir") + 1])


def health(service):
    try:
        status, body = get_json(service.url + "/health", timeout=HTTP_TIMEOUT_S)
    except (OSError, http.client.HTTPException):
        return {"applied_seq": -1}
    return body if status == 200 else {"applied_seq": -1}


def vm_hwm_kib(service):
    with open(f"/proc/{service.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


# ---------------------------------------------------------------------------
# Concurrent clients that remember every answer

def event_ids(key, path, body):
    if path == "/batch":
        return [f"{key}:{i}" for i in range(len(body["commands"]))]
    return [key]


def answered_seqs(path, answer):
    """{event id: seq} from a 201 body."""
    results = answer["results"] if path == "/batch" else [answer]
    return {r["id"]: r["seq"] for r in results}


class Load:
    """Threads POSTing keyed commands to the cluster's transaction
    instances. Every key's last answer is kept: 201 (acknowledged),
    409/422 (definitively not applied), 503 or None (unknown: may have
    landed, resolved later by retrying with the same key)."""

    def __init__(self, cluster, accounts, threads=6, seed=0, prefix="k"):
        self.cluster = cluster
        self.accounts = accounts
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.ops = {}               # key -> [path, body, status, answer]
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._worker, args=(self.rng.random(), i))
                        for i in range(threads)]

    def command(self, rng):
        a, b = rng.sample(self.accounts, 2)
        roll = rng.random()
        if roll < 0.5:
            return "/transactions", {"account": a, "amount": rng.randint(1, 1000)}
        if roll < 0.7:
            return "/transactions", {"account": a, "amount": -rng.randint(1, 1000)}
        if roll < 0.9:
            return "/transfers", {"from": a, "to": b, "amount": rng.randint(1, 1000)}
        return "/batch", {"commands": [{"account": a, "amount": rng.randint(1, 1000)},
                                       {"from": a, "to": b, "amount": rng.randint(1, 1000)}]}

    def _worker(self, seed, index):
        rng = random.Random(seed)
        n = 0
        while not self.stopping.is_set():
            key = f"{self.prefix}-{index}-{n}"
            n += 1
            path, body = self.command(rng)
            tx = rng.choice(self.cluster.txs)
            status, answer = self.cluster.post(path, body, key, tx)
            with self.lock:
                self.ops[key] = [path, body, status, answer]
            if status is None or status == 503:
                time.sleep(0.05)    # the service is down or busy: do not spin

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(JOIN_TIMEOUT_S)
            assert not t.is_alive(), "a client thread hangs"

    def acked(self):
        with self.lock:
            return {key: op for key, op in self.ops.items() if op[2] == 201}

    def resolve(self, timeout_s=RESOLVE_TIMEOUT_S):
        """Retries every unknown answer with its key until it is definitive."""
        deadline = time.monotonic() + timeout_s
        rng = random.Random(1)
        for key, op in self.ops.items():
            while op[2] is None or op[2] == 503:
                assert time.monotonic() < deadline, f"{key} stays unanswered: {op}"
                tx = rng.choice([t for t in self.cluster.txs if t.alive()])
                op[2], op[3] = self.cluster.post(op[0], op[1], key, tx)
                if op[2] is None or op[2] == 503:
                    time.sleep(0.1)
        counts = {}
        for op in self.ops.values():
            counts[op[2]] = counts.get(op[2], 0) + 1
        return counts


def assert_acked_in_log_once(events, acked):
    """Every acknowledged command's events are in the log once, at the
    seqs it was answered with, with matching content."""
    seen = {}
    for ev in events:
        assert ev["id"] not in seen, f"id {ev['id']} is in the log twice"
        seen[ev["id"]] = ev
    for key, (path, body, _, answer) in acked.items():
        seqs = answered_seqs(path, answer)
        assert sorted(seqs) == sorted(event_ids(key, path, body)), (key, answer)
        for event_id, seq in seqs.items():
            assert event_id in seen, (f"acknowledged {event_id} (seq {seq}) is not in the log "
                                      f"of {len(events)} events", key, path, body, answer,
                                      events[seq - 1] if seq <= len(events) else None)
            assert seen[event_id]["seq"] == seq, (event_id, seq, seen[event_id])
    return seen


def assert_exactly_the_acked_landed(events, load, setup_ids=()):
    """After resolve(): the log holds exactly the acknowledged commands."""
    acked = load.acked()
    seen = assert_acked_in_log_once(events, acked)
    want = set(setup_ids)
    for key, (path, body, _, _) in acked.items():
        want.update(event_ids(key, path, body))
    landed = set(seen)
    assert landed == want, {"landed, not acknowledged": sorted(landed - want)[:10],
                            "acknowledged, missing": sorted(want - landed)[:10]}
    return len(acked)


# ---------------------------------------------------------------------------

def _crash_under_load(prefix, cycles, pause_max_s, crash, what):
    """Keyed load from 6 threads over 2 transaction and 2 accounting
    instances while crash(cluster, rng) kills and restarts something, then
    checks after every cycle that each acknowledged command is in the log
    once and every replica is a prefix of it, and at the end that exactly
    the acknowledged commands landed."""
    cluster = Cluster(transactions=2, accountings=2)
    accounts = [f"acct-{i}" for i in range(8)]
    cluster.fund(accounts)
    seed = random.randrange(1 << 30)
    print(f"seed {seed}", flush=True)
    rng = random.Random(seed)
    load = Load(cluster, accounts, threads=6, seed=seed, prefix=prefix).start()
    try:
        for _ in range(cycles):
            time.sleep(rng.uniform(0.1, pause_max_s))
            crash(cluster, rng)
            acked = load.acked()    # before reading the log: acks imply durability
            assert_acked_in_log_once(cluster.events_prefix(), acked)
            cluster.assert_replicas_are_prefixes()
            note(what, 1)
    finally:
        load.stop()
    counts = load.resolve()
    events = cluster.converge()
    verified = assert_exactly_the_acked_landed(events, load, [f"fund-{a}" for a in accounts])
    print(f"answers after resolve {counts}, {verified} acknowledged and verified")
    note("commands acknowledged and verified", verified)
    assert verified > 0
    cluster.stop()


def _kill9_and_restart(service, rng):
    service.kill9()
    time.sleep(rng.uniform(0.0, 0.3))
    service.start()


def test_kill9_stream_under_load_loses_and_doubles_no_acknowledged_command():
    _crash_under_load("s", 50 if STRESS else 10, 0.8,
                      lambda cluster, rng: _kill9_and_restart(cluster.stream, rng),
                      "stream kill -9 cycles survived")


def test_kill9_transaction_and_accounting_under_load_converge():
    _crash_under_load("t", 30 if STRESS else 6, 0.6,
                      lambda cluster, rng: _kill9_and_restart(
                          rng.choice(cluster.txs + cluster.accs), rng),
                      "transaction/accounting kill -9 cycles survived")


def test_torn_tail_is_truncated_with_a_warning():
    cluster = Cluster(transactions=1, accountings=0)
    cluster.fund(["torn"])
    before = cluster.log_bytes()
    cluster.stream.kill9()
    for garbage in (b'{"seq":2,"id":"half', b"\x00\xff garbage", b'{"seq":2}\x00'):
        harness.append_log(cluster.stream_dir, garbage)
        cluster.stream.start()
        assert cluster.log_bytes() == before, "the torn tail was not truncated"
        warning = (f"torn tail at byte offset {len(before)}: "
                   f"dropping {len(garbage)} bytes")
        assert warning in cluster.stream.output(), cluster.stream.output()
        cluster.stream.kill9()
    cluster.stream.start()
    status, answer = cluster.post_definitive("/transactions", {"account": "torn", "amount": 5},
                                             "after", cluster.txs[0])
    assert status == 201 and answer["seq"] == 2, (status, answer)
    cluster.events()
    cluster.stop()


def test_corruption_in_the_middle_refuses_to_start_and_leaves_the_file_alone():
    cluster = Cluster(transactions=1, accountings=0)
    cluster.fund(["m1", "m2", "m3"])
    cluster.stream.kill9()
    lines = cluster.log_bytes().split(b"\n")
    offset = len(lines[0]) + 1
    cases = [
        ("garbage line", lines[0] + b"\nnot json\n" + b"\n".join(lines[1:])),
        ("seq gap", lines[0] + b"\n" + b"\n".join(lines[2:])),
        ("flipped byte", lines[0] + b"\n" + lines[1].replace(b'"seq"', b'"seX"', 1) + b"\n"
         + b"\n".join(lines[2:])),
    ]
    for name, data in cases:
        with open(cluster.log_path, "wb") as f:
            f.write(data)
        cluster.stream.start(wait=False)
        try:
            code = cluster.stream.proc.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name}: the stream started on a corrupt log")
        output = cluster.stream.output()
        cluster.stream.kill9()
        assert code != 0, (name, output)
        assert "line 2" in output and f"offset {offset}" in output, (name, output)
        assert cluster.log_bytes() == data, f"{name}: the file was changed"
    with open(cluster.log_path, "wb") as f:
        f.write(b"\n".join(lines))
    cluster.stream.start()
    status, answer = cluster.post_definitive("/transactions", {"account": "m1", "amount": 5},
                                             "repaired", cluster.txs[0])
    assert status == 201 and answer["seq"] == 4, (status, answer)
    cluster.stop()


class LimitedStream(harness.Service):
    """A stream whose files may not grow beyond FSIZE_BYTES (a full disk):
    the soft RLIMIT_FSIZE is set and SIGXFSZ ignored before exec."""
    FSIZE_BYTES = 4096

    def start(self, wait=True):
        real_popen = subprocess.Popen

        def preexec():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.FSIZE_BYTES, hard))

        def popen(*args, **kw):
            return real_popen(*args, preexec_fn=preexec, **kw)
        subprocess.Popen = popen
        try:
            return super().start(wait)
        finally:
            subprocess.Popen = real_popen


def test_disk_full_answers_503_keeps_the_log_valid_and_recovers():
    cluster = Cluster(transactions=1, accountings=1, stream_class=LimitedStream)
    tx = cluster.txs[0]
    answers = {}
    for i in range(200):
        key = f"full-{i}"
        answers[key] = cluster.post("/transactions", {"account": "disk", "amount": 10}, key, tx)
        if answers[key][0] == 503:
            break
    statuses = [s for s, _ in answers.values()]
    assert statuses[-1] == 503 and set(statuses[:-1]) == {201}, statuses
    assert "store" in answers[key][1]["detail"], answers[key]
    assert len(cluster.log_bytes()) <= LimitedStream.FSIZE_BYTES
    events = cluster.events()
    acked = {k: ["/transactions", None, s, a] for k, (s, a) in answers.items() if s == 201}
    for k in acked:
        acked[k][1] = {"account": "disk", "amount": 10}
    assert_acked_in_log_once(events, acked)
    # Still full: still 503, nothing written.
    before = cluster.log_bytes()
    assert cluster.post("/transactions", {"account": "disk", "amount": 10}, key, tx)[0] == 503
    assert cluster.log_bytes() == before
    # Space returns (the soft limit is raised): the same key lands once.
    _, hard = resource.prlimit(cluster.stream.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(cluster.stream.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
    status, answer = cluster.post("/transactions", {"account": "disk", "amount": 10}, key, tx)
    assert status == 201 and answer["seq"] == len(events) + 1, (status, answer)
    # The failed bursts' version bumps were undone: a withdrawal, whose
    # expect names the version the log implies, lands without a conflict.
    status, answer = cluster.post("/transactions", {"account": "disk", "amount": -5},
                                  "after-full", tx)
    assert status == 201 and answer["seq"] == len(events) + 2, (status, answer)
    # And a restart without any limit finds the log intact.
    cluster.stream = Cluster._restart_as(cluster.stream, harness.Service)
    status, answer = cluster.post_definitive("/transactions", {"account": "disk", "amount": 1},
                                             "fresh", tx)
    assert status == 201 and answer["balance"] == 10 * len(events) + 6, (status, answer)
    cluster.converge()
    cluster.stop()


def test_sigstop_and_sigcont_of_readers_and_writers_leave_no_divergence():
    rounds = 12 if STRESS else 3
    cluster = Cluster(transactions=2, accountings=2,
                      acc_extra=["--subscriber-hwm", "20"])
    accounts = [f"acct-{i}" for i in range(8)]
    cluster.fund(accounts)
    seed = random.randrange(1 << 30)
    print(f"seed {seed}", flush=True)
    rng = random.Random(seed)
    load = Load(cluster, accounts, threads=6, seed=seed, prefix="p").start()
    try:
        for _ in range(rounds):
            frozen = rng.sample(cluster.txs + cluster.accs, 2)
            for service in frozen:
                service.signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.5, 2.0))
            for service in frozen:
                service.signal(signal.SIGCONT)
            time.sleep(rng.uniform(0.2, 0.5))
            note("SIGSTOP/SIGCONT rounds survived", 1)
    finally:
        for service in cluster.txs + cluster.accs:
            service.signal(signal.SIGCONT)
        load.stop()
    load.resolve()
    events = cluster.converge()
    verified = assert_exactly_the_acked_landed(events, load, [f"fund-{a}" for a in accounts])
    note("commands acknowledged and verified", verified)
    cluster.stop()


def test_overload_gets_quick_503s_bounded_memory_and_recovers():
    inflight_max = 4
    clients = 10 * inflight_max
    requests_each = 60 if STRESS else 15
    cluster = Cluster(transactions=1, accountings=1,
                      tx_extra=["--inflight-max", str(inflight_max)],
                      acc_extra=["--waiters-max", str(inflight_max)])
    tx, acc = cluster.txs[0], cluster.accs[0]
    cluster.fund(["hot"])
    statuses, lock, slowest_503 = {}, threading.Lock(), {"write": 0.0, "read": 0.0}
    barrier = threading.Barrier(clients)

    def client(index):
        barrier.wait(30)
        conn_tx = http.client.HTTPConnection("127.0.0.1", tx.http_port, timeout=HTTP_TIMEOUT_S)
        conn_acc = http.client.HTTPConnection("127.0.0.1", acc.http_port, timeout=HTTP_TIMEOUT_S)
        for n in range(requests_each):
            sent = time.monotonic()
            try:
                if n % 3 == 2:      # a reader waiting for a seq that is far ahead
                    conn_acc.request("GET", "/accounts/hot?min_seq=100000000&wait_ms=2000")
                    resp = conn_acc.getresponse()
                else:
                    conn_tx.request("POST", "/transactions",
                                    json.dumps({"account": "hot", "amount": 1}),
                                    {"Content-Type": "application/json",
                                     "Idempotency-Key": f"o-{index}-{n}"})
                    resp = conn_tx.getresponse()
                resp.read()
                status = resp.status
                if status == 503:
                    assert resp.getheader("Retry-After"), "503 without Retry-After"
                if status == 503:
                    with lock:
                        kind = "read" if n % 3 == 2 else "write"
                        slowest_503[kind] = max(slowest_503[kind], time.monotonic() - sent)
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                conn_tx.close()
                conn_acc.close()
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
        conn_tx.close()
        conn_acc.close()

    # The stream is frozen for a while so that writes pile up in flight.
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    cluster.stream.signal(signal.SIGSTOP)
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
    finally:
        cluster.stream.signal(signal.SIGCONT)
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
        assert not t.is_alive(), "a client hangs under overload"
    print(f"statuses under overload: {statuses}, slowest 503 (s) {slowest_503}")
    note("overload statuses", statuses)
    assert set(statuses) <= {201, 503}, statuses
    assert statuses.get(503, 0) > 0 and sum(statuses.values()) == clients * requests_each
    peaks = {name: vm_hwm_kib(service) for name, service in
             (("stream", cluster.stream), ("transaction", tx), ("accounting", acc))}
    print("peak RSS under overload (KiB): " + ", ".join(f"{k} {v}" for k, v in peaks.items()))
    note("peak RSS under overload (KiB)", peaks)
    for name, kib in peaks.items():
        assert kib < RSS_BOUND_KIB, (name, kib)
    # Served normally afterwards.
    status, answer = cluster.post("/transactions", {"account": "hot", "amount": 7}, "after", tx)
    assert status == 201, (status, answer)
    status, body = get_json(f"{acc.url}/accounts/hot?min_seq={answer['seq']}&wait_ms=10000",
                            timeout=HTTP_TIMEOUT_S)
    assert status == 200 and body["balance"] == answer["balance"], (status, body)
    cluster.converge()
    cluster.stop()


def _slowloris(port, connections, stopping, opened, source):
    """Opens connections from address source and feeds each a request
    header one byte at a time, never finishing it."""
    socks = []
    try:
        for _ in range(connections):
            s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=(source, 0))
            socks.append(s)
        opened.set()
        header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000
        position = 0
        while not stopping.is_set():
            for s in socks:
                try:
                    s.send(header[position:position + 1])
                except OSError:
                    pass
            position = (position + 1) % len(header)
            stopping.wait(0.2)
    finally:
        opened.set()
        for s in socks:
            s.close()


def assert_slow_clients_do_not_starve_normal_ones(connections, source="127.0.0.1"):
    """A client at source holds connections trickling header bytes; a
    normal client (from 127.0.0.1) is still answered on every service."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < connections + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cluster = Cluster(transactions=1, accountings=1)
    for service in (cluster.stream, cluster.txs[0], cluster.accs[0]):
        stopping, opened = threading.Event(), threading.Event()
        thread = threading.Thread(
            target=_slowloris,
            args=(service.http_port, connections, stopping, opened, source))
        thread.start()
        try:
            assert opened.wait(60), "could not open the slow connections"
            for _ in range(5):
                # A liveness check: the timeout is generous, not a bound.
                status, _ = get_json(service.url + "/health", timeout=HTTP_TIMEOUT_S)
                assert status == 200, (service.name, status)
                time.sleep(0.2)
        finally:
            stopping.set()
            thread.join(JOIN_TIMEOUT_S)
    status, _ = cluster.post("/transactions", {"account": "slow", "amount": 1}, "slow",
                             cluster.txs[0])
    assert status == 201
    cluster.stop()


def test_slowloris_clients_do_not_starve_a_normal_client():
    assert_slow_clients_do_not_starve_normal_ones(200)


def test_retry_of_a_landed_503_withdrawal_replays_the_original():
    """A withdrawal answered 503 (ack timeout while the stream was stopped)
    that landed afterwards is retried with the same key: the answer is the
    original event (201, Idempotent-Replayed), not a 422 "insufficient
    funds" from validating it again against balances that already hold its
    debit (the bug this reproduced: transaction planned a keyed request
    before looking for its landed events). Then the same retry goes to a
    second instance that never saw the key, and to the first one after a
    restart: both replay the same 201."""
    cluster = Cluster(transactions=2, accountings=0)
    tx, other = cluster.txs
    assert cluster.post_definitive("/transactions", {"account": "b", "amount": 100}, "fund",
                                   tx)[0] == 201
    body = {"account": "b", "amount": -100}
    cluster.stream.signal(signal.SIGSTOP)
    try:
        status, answer = cluster.post("/transactions", body, "w-1", tx)
    finally:
        cluster.stream.signal(signal.SIGCONT)
    assert status == 503, (status, answer)
    wait_until(lambda: "w-1" in [ev["id"] for ev in cluster.events_prefix()], 30,
               what="the 503'd withdrawal to land")
    landed = next(ev for ev in cluster.events_prefix() if ev["id"] == "w-1")
    status, first = cluster.post_definitive("/transactions", body, "w-1", tx)
    assert status == 201, (status, first)
    assert (first["id"], first["seq"], first["ts"], first["balance"]) == \
        ("w-1", landed["seq"], landed["ts"], 0), (first, landed)
    # The stream's log moved on meanwhile: the replay still tells the balance
    # right after the withdrawal.
    assert cluster.post_definitive("/transactions", {"account": "b", "amount": 5}, "more",
                                   other)[0] == 201
    wait_until(lambda: health(other)["applied_seq"] >= landed["seq"], 30,
               what="the second instance to apply the withdrawal")
    status, again, headers = post_json(other.url + "/transactions", body,
                                       {"Idempotency-Key": "w-1"}, timeout=HTTP_TIMEOUT_S)
    assert (status, again, headers.get("idempotent-replayed")) == (201, first, "true")
    cluster.restart(tx)
    assert cluster.post_definitive("/transactions", body, "w-1", tx) == (201, first)
    # The same key with another command is still refused.
    status, answer = cluster.post_definitive("/transactions", {"account": "b", "amount": -1},
                                             "w-1", other)
    assert status == 422, (status, answer)
    assert [ev["id"] for ev in cluster.events()].count("w-1") == 1
    cluster.stop()


def test_one_address_holding_more_slow_connections_than_it_may_does_not_starve_others():
    """One client address (127.0.0.2: Linux routes all of 127/8 to lo)
    opens 1100 connections, more than the old global limit of 1024, each
    trickling a header byte every 200 ms, which MHD's inactivity timeout
    never ends. Its share is capped per address (common/http.h,
    HTTP_CONNECTIONS_PER_IP_MAX_DEFAULT) below a global limit sized to the
    descriptor limit, so a normal client from 127.0.0.1 is still served by
    the stream, transaction and accounting alike."""
    assert_slow_clients_do_not_starve_normal_ones(1100, source="127.0.0.2")


if __name__ == "__main__":
    tests = [
        test_kill9_stream_under_load_loses_and_doubles_no_acknowledged_command,
        test_kill9_transaction_and_accounting_under_load_converge,
        test_torn_tail_is_truncated_with_a_warning,
        test_corruption_in_the_middle_refuses_to_start_and_leaves_the_file_alone,
        test_disk_full_answers_503_keeps_the_log_valid_and_recovers,
        test_sigstop_and_sigcont_of_readers_and_writers_leave_no_divergence,
        test_overload_gets_quick_503s_bounded_memory_and_recovers,
        test_slowloris_clients_do_not_starve_a_normal_client,
        test_retry_of_a_landed_503_withdrawal_replays_the_original,
        test_one_address_holding_more_slow_connections_than_it_may_does_not_starve_others,
    ]
    import atexit
    atexit.register(lambda: print("SUMMARY " + json.dumps(SUMMARY), flush=True))
    harness.run_tests(tests)
