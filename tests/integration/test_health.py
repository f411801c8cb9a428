"""/health tells the truth: transaction answers 503 (with the reason) while
it cannot write, accounting answers 503 not-caught-up for /health and for
reads until it has caught up once or has local state, and /health says
which. Real binaries; the stream is stopped and started under them."""

import json
import threading

import harness
from harness import request, wait_until

HTTP_TIMEOUT_S = 30.0
JSON = {"Content-Type": "application/json"}
NOT_CAUGHT_UP = "https://ledger.example/problems/not-caught-up"


def answer(url, method="GET", body=None):
    """(status, headers, JSON body) or None while nothing listens."""
    try:
        status, headers, data = request(method, url, body, JSON if body else None,
                                        timeout=HTTP_TIMEOUT_S)
    except OSError:
        return None
    return status, headers, json.loads(data) if data else None


def health(service):
    return answer(service.url + "/health")


def deposit(tx, account, amount):
    return answer(tx.url + "/transactions", "POST",
                  json.dumps({"account": account, "amount": amount}))


def test_transaction_health_is_503_while_it_cannot_write():
    endpoints = harness.Endpoints()
    # No stream yet: it cannot catch up, so it cannot write.
    tx = harness.start_transaction(endpoints, wait=False)
    got = wait_until(lambda: health(tx), what="transaction listening")
    status, headers, body = got
    assert status == 503 and body["status"] == "starting", body
    assert "catching up" in body["reason"] and headers.get("retry-after"), (headers, body)
    stream = harness.start_stream(endpoints, harness.tmpdir("ledger-stream-"))
    wait_until(lambda: health(tx)[0] == 200, what="transaction ready")
    status, _, body = health(tx)
    assert body["status"] == "ok" and "reason" not in body, body
    first = json.dumps({"account": "alice", "amount": 100})
    wait_until(lambda: request("POST", tx.url + "/transactions", first,
                               {**JSON, "Idempotency-Key": "health-first"},
                               timeout=HTTP_TIMEOUT_S)[0] == 201,
               timeout_s=60, what="a first write")
    # The stream goes away: /health says so before a write has to fail.
    stream.stop_clean()
    status, headers, body = wait_until(lambda: (lambda h: h if h[0] == 503 else None)(
        health(tx)), what="health 503 without the stream")
    assert body["status"] == "unavailable" and "unreachable" in body["reason"], body
    assert headers.get("retry-after") == "1", headers
    status, headers, problem = deposit(tx, "alice", 1)
    assert status == 503 and headers.get("retry-after"), problem
    # Back: healthy again, and writes land.
    stream.start()
    wait_until(lambda: health(tx)[0] == 200, what="transaction ready again")
    # A write sent before the subscriber is back may get 503 "no result"
    # (it may still land): the contract's retry with the same key.
    body = json.dumps({"account": "alice", "amount": 5})
    wait_until(lambda: request("POST", tx.url + "/transactions", body,
                               {**JSON, "Idempotency-Key": "health-back"},
                               timeout=HTTP_TIMEOUT_S)[0] == 201,
               timeout_s=60, what="a write landing again")
    tx.stop_clean()
    stream.stop_clean()


def test_accounting_says_not_caught_up_until_it_has_caught_up_or_has_local_state():
    endpoints = harness.Endpoints()
    data = harness.tmpdir("ledger-accounting-")
    # A fresh data dir and no stream: nothing to answer reads from.
    accounting = harness.start_accounting(endpoints, data, wait=False)
    status, headers, body = wait_until(lambda: health(accounting),
                                       what="accounting listening")
    assert status == 503 and body["status"] == "not-caught-up", body
    assert body["reads"] == "not-caught-up" and body["caught_up"] is False, body
    assert headers.get("retry-after") == "1"
    for path in ("/accounts/alice", "/accounts", "/accounts/alice/events", "/stats"):
        status, headers, problem = answer(accounting.url + path)
        assert status == 503 and problem["type"] == NOT_CAUGHT_UP, (path, problem)
        assert headers.get("retry-after") == "1", path
    # The stream comes: caught up, an unknown account is a real 404.
    stream = harness.start_stream(endpoints, harness.tmpdir("ledger-stream-"))
    tx = harness.start_transaction(endpoints)
    assert deposit(tx, "alice", 700)[0] == 201
    wait_until(lambda: health(accounting)[0] == 200, what="accounting caught up")
    status, _, body = health(accounting)
    assert body["status"] == "ok" and body["reads"] == "caught-up", body
    assert answer(accounting.url + "/accounts/zoe")[0] == 404
    wait_until(lambda: answer(accounting.url + "/accounts/alice")[0] == 200,
               what="alice applied")
    accounting.stop_clean()
    tx.stop_clean()
    stream.stop_clean()
    # Restarted without the stream: its replica is local state to answer from.
    accounting.start(wait=False)
    status, _, body = wait_until(lambda: health(accounting), what="accounting listening")
    assert status == 200 and body["reads"] == "local-state", body
    assert body["caught_up"] is False and body["upstream"] == "disconnected", body
    status, _, account = answer(accounting.url + "/accounts/alice")
    assert status == 200 and account["balance"] == 700, account
    accounting.stop_clean()


def test_a_read_that_waits_for_min_seq_is_not_refused_before_catching_up():
    """Read-your-writes right after a start: ?min_seq waits for the seq
    instead of answering not-caught-up, which it would have, having nothing
    yet to answer from."""
    endpoints = harness.Endpoints()
    accounting = harness.start_accounting(endpoints, harness.tmpdir("ledger-accounting-"),
                                          wait=False)
    wait_until(lambda: health(accounting), what="accounting listening")
    answers = []
    reader = threading.Thread(target=lambda: answers.append(
        answer(accounting.url + "/accounts/alice?min_seq=1&wait_ms=20000")))
    reader.start()
    stream = harness.start_stream(endpoints, harness.tmpdir("ledger-stream-"))
    tx = harness.start_transaction(endpoints)
    assert deposit(tx, "alice", 700)[0] == 201
    reader.join(HTTP_TIMEOUT_S)
    status, _, account = answers[0]
    assert status == 200 and account["balance"] == 700, (status, account)
    for service in (accounting, tx, stream):
        service.stop_clean()


if __name__ == "__main__":
    harness.run_tests([
        test_transaction_health_is_503_while_it_cannot_write,
        test_accounting_says_not_caught_up_until_it_has_caught_up_or_has_local_state,
        test_a_read_that_waits_for_min_seq_is_not_refused_before_catching_up,
    ])
