"""Integration tests for accounting (the read model): the real stream and
accounting binaries on free ports. Events are appended by PUSHing APPEND
requests to the stream's ingest, as transaction does; every claim is checked
against harness.fold, the reference fold, and the stream's own log bytes.
"""

import http.client
import json
import os
import random
import signal
import threading
import time
import urllib.parse
import uuid

import zmq

import harness
from harness import get_json, request, wait_until

BATCH_EVENTS = 500          # events per APPEND request
CATCH_UP_TIMEOUT_S = 60.0   # generous: a shared, noisy machine


class Ledger:
    """A stream plus a PUSH socket to its ingest, and the events sent."""

    def __init__(self, extra=()):
        self.endpoints = harness.Endpoints()
        self.stream_dir = harness.tmpdir("ledger-stream-")
        self.stream = harness.start_stream(
            self.endpoints, self.stream_dir, extra=["--heartbeat-ms", "200", *extra])
        self.context = zmq.Context.instance()
        self.push = self.context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 1000)
        self.push.connect(self.endpoints.ingest)
        self.rng = random.Random(7)
        self.sent = 0
        self.accounts = [f"acct-{i}" for i in range(250)] + ["a.b", "x:y", "Z-9", "m_n"]

    @property
    def log_path(self):
        return harness.log_path(self.stream_dir)

    def _proposed(self):
        rng = self.rng
        kind = rng.random()
        event = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "v": 1}
        amount = rng.randint(1, 100000)
        if kind < 0.45:
            event.update(type="deposited", account=rng.choice(self.accounts), amount=amount)
        elif kind < 0.65:
            event.update(type="withdrawn", account=rng.choice(self.accounts), amount=amount)
        else:
            source, target = rng.sample(self.accounts, 2)
            event.update(type="transferred", **{"from": source, "to": target}, amount=amount)
        order = ["id", "type", "v", "account", "from", "to", "amount"]
        return json.dumps({k: event[k] for k in order if k in event}, separators=(",", ":"))

    def append(self, count, batch=BATCH_EVENTS, pause_s=0.0):
        """Appends count events in requests of batch events; returns the
        seq the last one will get once the stream has committed it."""
        while count > 0:
            n = min(batch, count)
            frames = [b"APPEND", uuid.uuid4().hex.encode()]
            frames += [self._proposed().encode() for _ in range(n)]
            self.push.send_multipart(frames)
            self.sent += n
            count -= n
            if pause_s:
                time.sleep(pause_s)
        return self.sent

    def wait_committed(self, seq, timeout_s=CATCH_UP_TIMEOUT_S):
        def committed():
            status, body = get_json(self.stream.url + "/health")
            return status == 200 and body.get("last_seq", 0) >= seq
        wait_until(committed, timeout_s, what=f"stream to commit seq {seq}")

    def events(self):
        return harness.assert_log_valid(self.stream_dir)

    def log_bytes(self):
        return harness.log_data(self.stream_dir)

    def accounting(self, data_dir=None, extra=(), **kw):
        data_dir = data_dir or harness.tmpdir("ledger-accounting-")
        return harness.start_accounting(
            self.endpoints, data_dir,
            extra=["--upstream-timeout-ms", "600", *extra], **kw)

    def close(self):
        self.push.close(0)


def replica_dir(service):
    return service.args[service.args.index("--data-dir") + 1]


def health(service):
    status, body = get_json(service.url + "/health")
    # 503 until caught up once (a fresh instance without local state).
    assert status == 200 or (status == 503 and body["status"] == "not-caught-up"), \
        (status, body)
    return body


def wait_applied(service, seq, timeout_s=CATCH_UP_TIMEOUT_S):
    wait_until(lambda: health(service)["applied_seq"] >= seq, timeout_s,
               what=f"{service.url} to apply seq {seq}")


def assert_matches_log(service, ledger):
    """Balances equal the reference fold of the stream's log, and the
    replica is byte-identical to it."""
    events = ledger.events()
    assert harness.all_accounts(service, page_limit=97) == harness.fold(events)
    assert harness.log_data(replica_dir(service)) == ledger.log_bytes(), \
        "replica differs from the stream's log"
    status, stats = get_json(service.url + "/stats")
    assert stats["applied_seq"] == len(events)
    assert stats["total_balance"] == sum(v[0] for v in harness.fold(events).values())


def test_late_instance_catches_up_to_reference_fold_with_identical_replica():
    ledger = Ledger()
    last = ledger.append(50000)
    ledger.wait_committed(last)
    accounting = ledger.accounting()
    wait_applied(accounting, last)
    assert_matches_log(accounting, ledger)
    status, body = get_json(accounting.url + "/accounts/acct-3")
    expected = harness.fold(ledger.events())["acct-3"]
    assert status == 200
    assert [body["balance"], body["version"], body["last_seq"]] == expected
    assert body["applied_seq"] == last
    accounting.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


def test_three_instances_converge_while_events_flow():
    ledger = Ledger()
    ledger.wait_committed(ledger.append(3000))
    instances = [ledger.accounting() for _ in range(3)]
    last = ledger.append(12000, batch=50, pause_s=0.002)
    ledger.wait_committed(last)
    for accounting in instances:
        wait_applied(accounting, last)
        assert_matches_log(accounting, ledger)
    for accounting in instances:
        accounting.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


def test_answers_from_own_files_while_stream_is_down_and_resumes_without_gap():
    ledger = Ledger()
    ledger.wait_committed(ledger.append(5000))
    data_dir = harness.tmpdir("ledger-accounting-")
    accounting = ledger.accounting(data_dir)
    wait_applied(accounting, 5000)
    ledger.stream.stop_clean()
    wait_until(lambda: health(accounting)["upstream"] == "disconnected", 20,
               what="upstream to be reported disconnected")
    status, body = get_json(accounting.url + "/accounts/acct-1")
    assert status == 200 and body["applied_seq"] == 5000
    # Restart accounting while the stream is down: it answers from its files.
    accounting.stop_clean()
    accounting = ledger.accounting(data_dir, http_port=accounting.http_port)
    assert health(accounting)["applied_seq"] == 5000
    assert_matches_log(accounting, ledger)
    # Stream back, more events: resumes from 5001, nothing applied twice.
    ledger.stream.start()
    last = ledger.append(4000, batch=100)
    ledger.wait_committed(last)
    wait_applied(accounting, last)
    wait_until(lambda: health(accounting)["upstream"] == "connected", 20,
               what="upstream to be reported connected")
    assert_matches_log(accounting, ledger)
    accounting.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


def test_frozen_instance_with_tiny_hwm_ends_exact():
    ledger = Ledger()
    accounting = ledger.accounting(extra=["--subscriber-hwm", "1"])
    ledger.wait_committed(ledger.append(1000))
    wait_applied(accounting, 1000)
    # Frozen while events flow: they pile up in queues and TCP buffers, then
    # rush in through a one-message receive queue; none lost or doubled.
    accounting.signal(signal.SIGSTOP)
    last = ledger.append(20000, batch=20)
    ledger.wait_committed(last)
    accounting.signal(signal.SIGCONT)
    last = ledger.append(2000, batch=10)   # and a tiny HWM while it flows on
    ledger.wait_committed(last)
    wait_applied(accounting, last)
    assert_matches_log(accounting, ledger)
    status, metrics = request("GET", accounting.url + "/metrics")[::2]
    assert status == 200 and b"accounting_fetches_total" in metrics
    accounting.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


class LossyProxy:
    """XSUB/XPUB forwarder between the stream's PUB and a subscriber that
    drops every drop_every-th EVENTS message: live messages lost for sure."""

    def __init__(self, upstream, drop_every):
        self.endpoint = f"tcp://127.0.0.1:{harness.free_port()}"
        self.upstream, self.drop_every = upstream, drop_every
        self.dropped = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        context = zmq.Context.instance()
        xsub, xpub = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
        xsub.connect(self.upstream)
        xpub.bind(self.endpoint)
        poller = zmq.Poller()
        poller.register(xsub, zmq.POLLIN)
        poller.register(xpub, zmq.POLLIN)
        events = 0
        while self.running:
            for sock, _ in poller.poll(50):
                if sock is xpub:
                    xsub.send(xpub.recv())   # subscriptions go upstream
                    continue
                frames = xsub.recv_multipart()
                if frames[0] == b"EVENTS":
                    events += 1
                    if events % self.drop_every == 0:
                        self.dropped += 1
                        continue
                xpub.send_multipart(frames)
        xsub.close(0)
        xpub.close(0)

    def stop(self):
        self.running = False
        self.thread.join(5)


def test_live_messages_lost_on_the_way_are_refetched_and_state_stays_exact():
    ledger = Ledger()
    proxy = LossyProxy(ledger.endpoints.publish, drop_every=7)
    data_dir = harness.tmpdir("ledger-accounting-")
    accounting = harness.start_accounting(
        ledger.endpoints, data_dir, extra=["--publish", proxy.endpoint])
    last = ledger.append(6000, batch=20, pause_s=0.001)
    ledger.wait_committed(last)
    wait_applied(accounting, last)
    assert proxy.dropped > 0
    assert_matches_log(accounting, ledger)
    metrics = request("GET", accounting.url + "/metrics")[2].decode()
    gaps = [line for line in metrics.splitlines() if line.startswith("accounting_gaps_total ")]
    assert gaps and int(gaps[0].split()[1]) > 0, gaps
    accounting.stop_clean()
    proxy.stop()
    ledger.stream.stop_clean()
    ledger.close()


def test_time_travel_equals_reference_fold_at_that_point():
    ledger = Ledger()
    accounting = ledger.accounting()
    for _ in range(6):   # appended in steps, so timestamps differ
        last = ledger.append(700, batch=100)
        time.sleep(0.02)
    ledger.wait_committed(last)
    wait_applied(accounting, last)
    events = ledger.events()
    for at_seq in (0, 1, 2, 17, 999, 2100, 3333, last):
        expected = harness.fold(events, at_seq)
        for account in ("acct-0", "acct-7", "a.b", "x:y"):
            status, body = get_json(f"{accounting.url}/accounts/{account}?at_seq={at_seq}")
            if account in expected:
                assert status == 200, (at_seq, account, body)
                assert [body["balance"], body["version"], body["last_seq"]] == expected[account]
            else:
                assert status == 404, (at_seq, account, body)
    for seq in (1, 350, 1400, 2801, last):
        ts = events[seq - 1]["ts"]
        upto = max(e["seq"] for e in events if e["ts"] <= ts)
        expected = harness.fold(events, upto)
        for account in ("acct-0", "acct-7", "Z-9"):
            url = f"{accounting.url}/accounts/{account}?at={urllib.parse.quote(ts)}"
            status, body = get_json(url)
            if account in expected:
                assert status == 200, (ts, account, body)
                assert [body["balance"], body["version"], body["last_seq"]] == expected[account]
            else:
                assert status == 404
    status, body = get_json(f"{accounting.url}/accounts/acct-0?at=1970-01-01T00:00:00Z")
    assert status == 404
    status, body = get_json(f"{accounting.url}/accounts/acct-0?at_seq={last + 1}")
    assert status == 422 and body["errors"][0]["field"] == "at_seq"
    # The account's history: pages of stored lines plus balance_after.
    history, after = [], 0
    while after is not None:
        status, page = get_json(
            f"{accounting.url}/accounts/acct-7/events?after_seq={after}&limit=7")
        assert status == 200
        history += page["events"]
        after = page["next_after_seq"]
    touching = [e for e in events if "acct-7" in (e.get("account"), e.get("from"), e.get("to"))]
    assert [{k: v for k, v in e.items() if k != "balance_after"} for e in history] == touching
    for e in history:
        assert e["balance_after"] == harness.fold(events, e["seq"])["acct-7"][0]
    accounting.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


def _get_in_thread(url, results, timeout=30.0):
    def run():
        results.append(request("GET", url, timeout=timeout))
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_min_seq_answers_once_applied_and_503_when_it_never_comes():
    ledger = Ledger()
    accounting = ledger.accounting(extra=["--waiters-max", "2", "--wait-ms-max", "20000"])
    ledger.wait_committed(ledger.append(10))
    wait_applied(accounting, 10)
    results = []
    thread = _get_in_thread(f"{accounting.url}/accounts/acct-1?min_seq=11&wait_ms=20000",
                            results)
    wait_until(lambda: b"accounting_waiters 1" in request(
        "GET", accounting.url + "/metrics")[2], 10, what="the request to wait")
    ledger.append(1, batch=1)
    thread.join(30)
    assert not thread.is_alive()
    status, _, data = results[0]
    body = json.loads(data)
    if status == 404:   # the new event did not touch acct-1
        assert "acct-1" not in harness.fold(ledger.events())
    else:
        assert status == 200 and body["applied_seq"] >= 11, (status, body)
    # Never comes: 503 with Retry-After after wait_ms; wait_ms=0: at once.
    status, headers, data = request("GET", f"{accounting.url}/accounts/acct-1?min_seq=999&wait_ms=100")
    assert status == 503 and headers["retry-after"] and \
        headers["content-type"].startswith("application/problem+json")
    status, headers, _ = request("GET", f"{accounting.url}/accounts/acct-1?min_seq=999&wait_ms=0")
    assert status == 503
    # Bounded: two wait, the third is refused at once; SIGTERM answers the two.
    results = []
    threads = [_get_in_thread(f"{accounting.url}/accounts/acct-1?min_seq=999&wait_ms=20000",
                              results) for _ in range(2)]
    wait_until(lambda: b"accounting_waiters 2" in request(
        "GET", accounting.url + "/metrics")[2], 10, what="two requests to wait")
    status, _, data = request("GET", f"{accounting.url}/accounts/acct-1?min_seq=999&wait_ms=20000")
    assert status == 503 and b"too many" in data
    accounting.stop_clean()
    for thread in threads:
        thread.join(30)
    assert [r[0] for r in results] == [503, 503]
    ledger.stream.stop_clean()
    ledger.close()


def test_two_instances_share_one_port_with_reuse_port():
    ledger = Ledger()
    ledger.wait_committed(ledger.append(100))
    port = harness.free_port()
    first = ledger.accounting(http_port=port, extra=["--reuse-port"])
    second = ledger.accounting(http_port=port, extra=["--reuse-port"])
    seen = set()
    for _ in range(400):
        # Either may still be catching up (503 not-caught-up): both say who.
        seen.add(get_json(first.url + "/health")[1]["instance"])
        if len(seen) == 2:
            break
    assert seen == {str(first.proc.pid), str(second.proc.pid)}, seen
    wait_applied(first, 100)
    first.stop_clean()
    second.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


def _health_on(conn):
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    return response.status


def _health_from(port, source):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    try:
        return _health_on(conn)
    except (OSError, http.client.HTTPException):
        return None  # closed at once: over the address's share
    finally:
        conn.close()


def test_connections_per_ip_caps_one_client_address():
    """--connections-per-ip N: one address (say a proxy's) holds at most N
    connections; one more is closed at once while the N are still served,
    another address is not affected, and a freed place can be taken."""
    ledger = Ledger()
    acc = ledger.accounting(extra=["--connections-per-ip", "2"])
    held = [http.client.HTTPConnection("127.0.0.1", acc.http_port, timeout=10)
            for _ in range(2)]
    # Connections the start-up health checks used may still be closing.
    wait_until(lambda: _health_on(held[0]) == 200, 10, what="a first connection")
    assert _health_on(held[1]) == 200
    assert _health_from(acc.http_port, "127.0.0.1") is None
    assert _health_from(acc.http_port, "127.0.0.2") == 200
    assert [_health_on(conn) for conn in held] == [200, 200]
    held.pop().close()
    wait_until(lambda: _health_from(acc.http_port, "127.0.0.1") == 200, 10,
               what="the freed place to be taken")
    held[0].close()
    acc.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


def test_bad_ids_params_and_routes_get_problem_json():
    ledger = Ledger()
    accounting = ledger.accounting()
    ledger.wait_committed(ledger.append(20))
    wait_applied(accounting, 20)
    url = accounting.url

    def problem(path, status, field=None):
        code, headers, data = request("GET", url + path)
        assert code == status, (path, code, data)
        assert headers["content-type"].startswith("application/problem+json"), path
        body = json.loads(data)
        assert body["status"] == status
        if field:
            assert field in [e["field"] for e in body["errors"]], (path, body)
        assert headers.get("x-request-id")

    problem("/accounts/-bad", 400, "id")
    problem("/accounts/" + "a" * 65, 400, "id")
    problem("/accounts/nobody", 404)
    problem("/accounts/acct-1?at_seq=abc", 400, "at_seq")
    problem("/accounts/acct-1?at_seq=-1", 400, "at_seq")
    problem("/accounts/acct-1?at_seq=99999999999999999999", 400, "at_seq")
    problem("/accounts/acct-1?at=yesterday", 400, "at")
    problem("/accounts/acct-1?at=2026-01-01T00:00:00Z&at_seq=3", 400, "at")
    problem("/accounts/acct-1?min_seq=x", 400, "min_seq")
    problem("/accounts/acct-1?wait_ms=1.5&min_seq=1", 400, "wait_ms")
    problem("/accounts?limit=0", 400, "limit")
    problem("/accounts?limit=1001", 400, "limit")
    problem("/accounts?after=%20x", 400, "after")
    problem("/accounts/acct-1/events?limit=x", 400, "limit")
    problem("/accounts/acct-1/events?after_seq=-5", 400, "after_seq")
    problem("/accounts/nobody/events", 404)
    problem("/nowhere", 404)
    code, headers, _ = request("POST", url + "/accounts/acct-1", body={"x": 1})
    assert code == 405 and "GET" in headers["allow"]
    # Keep-alive: two answers on one connection, none saying "close".
    conn = http.client.HTTPConnection("127.0.0.1", accounting.http_port, timeout=10)
    for _ in range(2):
        conn.request("GET", "/accounts/acct-1")
        resp = conn.getresponse()
        resp.read()
        assert resp.status in (200, 404)
        assert (resp.getheader("Connection") or "").lower() != "close"
    conn.close()
    status, body = get_json(url + "/accounts/acct-1?unknown=1")
    assert status == 400 and body["errors"] == [{"field": "unknown", "message": "unknown query parameter"}], body
    accounting.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


def test_rebuild_refetches_everything_into_an_identical_replica():
    ledger = Ledger()
    ledger.wait_committed(ledger.append(3000))
    data_dir = harness.tmpdir("ledger-accounting-")
    accounting = ledger.accounting(data_dir)
    wait_applied(accounting, 3000)
    accounting.stop_clean()
    harness.append_log(data_dir, b'{"seq":3001,"id":"torn')   # a torn tail, recovered at open
    accounting = ledger.accounting(data_dir, http_port=accounting.http_port)
    wait_applied(accounting, 3000)
    assert_matches_log(accounting, ledger)
    accounting.stop_clean()
    accounting = ledger.accounting(data_dir, http_port=accounting.http_port,
                                   extra=["--rebuild"])
    wait_applied(accounting, 3000)
    assert_matches_log(accounting, ledger)
    accounting.stop_clean()
    ledger.stream.stop_clean()
    ledger.close()


if __name__ == "__main__":
    harness.run_tests([
        test_late_instance_catches_up_to_reference_fold_with_identical_replica,
        test_three_instances_converge_while_events_flow,
        test_answers_from_own_files_while_stream_is_down_and_resumes_without_gap,
        test_frozen_instance_with_tiny_hwm_ends_exact,
        test_live_messages_lost_on_the_way_are_refetched_and_state_stays_exact,
        test_time_travel_equals_reference_fold_at_that_point,
        test_min_seq_answers_once_applied_and_503_when_it_never_comes,
        test_two_instances_share_one_port_with_reuse_port,
        test_connections_per_ip_caps_one_client_address,
        test_bad_ids_params_and_routes_get_problem_json,
        test_rebuild_refetches_everything_into_an_identical_replica,
    ])
