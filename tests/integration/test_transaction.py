"""Integration tests for transaction (the write side): real stream,
transaction and accounting binaries on free ports. Every claim about what
was written is checked against the stream's own log (harness.fold and the
log's bytes), and balances against accounting with ?min_seq=.
"""

import http.client
import json
import random
import threading
import uuid

import harness
from harness import get_json, post_json, request, wait_until

HTTP_TIMEOUT_S = 30.0       # generous: a shared, noisy machine
AMOUNT_MAX = 10 ** 15
BATCH_COMMANDS_MAX = 4096   # EVENT_REQUEST_EVENTS_MAX: one batch is one append request


class Ledger(harness.StreamLog):
    """A stream, N transaction instances and one accounting instance."""

    def __init__(self, transactions=1, tx_extra=(), accounting=True):
        self.endpoints = harness.Endpoints()
        self.stream_dir = harness.tmpdir("ledger-stream-")
        self.stream = harness.start_stream(
            self.endpoints, self.stream_dir, extra=["--heartbeat-ms", "200"])
        self.tx_extra = list(tx_extra)
        self.txs = [harness.start_transaction(self.endpoints, extra=self.tx_extra)
                    for _ in range(transactions)]
        self.accounting = None
        if accounting:
            self.accounting = harness.start_accounting(
                self.endpoints, harness.tmpdir("ledger-accounting-"))

    @property
    def tx(self):
        return self.txs[0]

    def post(self, path, body, headers=None, tx=None):
        return post_json((tx or self.tx).url + path, body, headers, timeout=HTTP_TIMEOUT_S)

    def deposit(self, account, amount, **kw):
        status, body, _ = self.post("/transactions", {"account": account, "amount": amount}, **kw)
        assert status == 201, (status, body)
        return body

    def account(self, name, min_seq):
        status, body = get_json(
            f"{self.accounting.url}/accounts/{name}?min_seq={min_seq}&wait_ms=10000",
            timeout=HTTP_TIMEOUT_S)
        assert status == 200, (status, body)
        return body

    def stop(self):
        for tx in self.txs:
            tx.stop_clean()
        if self.accounting:
            self.accounting.stop_clean()
        self.stream.stop_clean()


def by_id(events):
    return {ev["id"]: ev for ev in events}


# ---------------------------------------------------------------------------

def test_deposit_withdraw_transfer_and_batch_answer_with_the_stored_events():
    ledger = Ledger()
    headers = {"X-Request-Id": "req-1", "X-Correlation-Id": "corr-1"}
    status, dep, resp_headers = ledger.post(
        "/transactions", {"account": "alice", "amount": 1250, "reference": "salary"}, headers)
    assert status == 201, dep
    assert resp_headers["x-request-id"] == "req-1"
    assert list(dep) == ["seq", "id", "type", "ts", "account", "amount", "currency",
                         "balance"], dep
    assert (dep["type"], dep["account"], dep["amount"], dep["balance"]) == \
        ("deposited", "alice", 1250, 1250)

    status, wd, _ = ledger.post("/transactions", {"account": "alice", "amount": -200},
                                {"Idempotency-Key": "wd-1"})
    assert status == 201, wd
    assert (wd["type"], wd["id"], wd["amount"], wd["balance"]) == ("withdrawn", "wd-1", 200, 1050)
    assert wd["seq"] == dep["seq"] + 1

    status, tr, _ = ledger.post("/transfers", {"from": "alice", "to": "bob", "amount": 300})
    assert status == 201, tr
    assert tr["type"] == "transferred" and tr["balances"] == {"alice": 750, "bob": 300}, tr

    status, batch, _ = ledger.post("/batch", {"commands": [
        {"account": "carol", "amount": 500},
        {"from": "carol", "to": "bob", "amount": 200},
        {"account": "carol", "amount": -300}]}, {"Idempotency-Key": "batch-1"})
    assert status == 201, batch
    assert batch["last_seq"] - batch["first_seq"] == 2
    assert [r["seq"] for r in batch["results"]] == list(range(batch["first_seq"],
                                                              batch["last_seq"] + 1))
    assert [r["id"] for r in batch["results"]] == ["batch-1:0", "batch-1:1", "batch-1:2"]
    assert batch["results"][1]["balances"] == {"carol": 300, "bob": 500}
    assert batch["results"][2]["balance"] == 0

    status, big, _ = ledger.post("/transactions", {"account": "dave", "amount": AMOUNT_MAX})
    assert status == 201 and big["amount"] == AMOUNT_MAX, big

    events = ledger.events()
    stored = by_id(events)
    assert stored[dep["id"]]["meta"] == {"correlation_id": "corr-1", "request_id": "req-1",
                                         "reference": "salary"}
    for answer in [dep, wd, tr, big] + batch["results"]:
        ev = stored[answer["id"]]
        for key in ("seq", "type", "ts", "amount"):
            assert ev[key] == answer[key], (ev, answer)
    state = harness.fold(events)
    assert state["alice"][0] == 750 and state["bob"][0] == 500 and state["carol"][0] == 0
    last = events[-1]["seq"]
    assert ledger.account("alice", last)["balance"] == 750
    assert ledger.account("bob", last)["balance"] == 500
    assert ledger.account("dave", last)["balance"] == AMOUNT_MAX

    # The same key and body again: the original answer, marked as a replay.
    status, again, again_headers = ledger.post("/transactions", {"account": "alice", "amount": -200},
                                               {"Idempotency-Key": "wd-1"})
    assert status == 201 and again == wd and again_headers["idempotent-replayed"] == "true"
    status, again, again_headers = ledger.post("/batch", {"commands": [
        {"account": "carol", "amount": 500},
        {"from": "carol", "to": "bob", "amount": 200},
        {"account": "carol", "amount": -300}]}, {"Idempotency-Key": "batch-1"})
    assert status == 201 and again == batch and again_headers["idempotent-replayed"] == "true"
    assert len(ledger.events()) == len(events)
    ledger.stop()


def test_connections_are_kept_alive_across_writes():
    ledger = Ledger(accounting=False)
    conn = http.client.HTTPConnection("127.0.0.1", ledger.tx.http_port, timeout=HTTP_TIMEOUT_S)
    for amount in (1, 2, 3):
        conn.request("POST", "/transactions", json.dumps({"account": "k", "amount": amount}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201
        assert (resp.getheader("Connection") or "").lower() != "close"
    conn.close()
    ledger.stop()


def _bad_requests():
    """(name, method, path, body, headers, status, field or None)."""
    json_ct = {"Content-Type": "application/json"}
    long_id = "a" * 65
    T, F, B = "/transactions", "/transfers", "/batch"
    cases = [
        ("malformed json", "POST", T, b'{"account":', json_ct, 400, None),
        ("truncated body", "POST", T, b'{"account":"a","amount":1', json_ct, 400, None),
        ("empty body", "POST", T, b"", json_ct, 400, None),
        ("not json at all", "POST", T, b"hello", json_ct, 400, None),
        ("array body", "POST", T, b"[]", json_ct, 422, "body"),
        ("number body", "POST", T, b"5", json_ct, 422, "body"),
        ("missing amount", "POST", T, {"account": "a"}, None, 422, "amount"),
        ("missing account", "POST", T, {"amount": 5}, None, 422, "account"),
        ("extra field", "POST", T, {"account": "a", "amount": 5, "x": 1}, None, 422, "x"),
        ("duplicate field", "POST", T, b'{"account":"a","account":"b","amount":5}', json_ct,
         422, "account"),
        ("amount as string", "POST", T, {"account": "a", "amount": "100"}, None, 422, "amount"),
        ("amount float", "POST", T, b'{"account":"a","amount":1.5}', json_ct, 422, "amount"),
        ("amount 1.0", "POST", T, b'{"account":"a","amount":1.0}', json_ct, 422, "amount"),
        ("amount exponent", "POST", T, b'{"account":"a","amount":1e3}', json_ct, 422, "amount"),
        ("amount zero", "POST", T, {"account": "a", "amount": 0}, None, 422, "amount"),
        ("amount -0", "POST", T, b'{"account":"a","amount":-0}', json_ct, 422, "amount"),
        ("amount above 10^15", "POST", T, {"account": "a", "amount": AMOUNT_MAX + 1}, None,
         422, "amount"),
        ("amount below -10^15", "POST", T, {"account": "a", "amount": -AMOUNT_MAX - 1}, None,
         422, "amount"),
        ("amount 10^16+1 (rounds as a double)", "POST", T,
         b'{"account":"a","amount":10000000000000001}', json_ct, 422, "amount"),
        ("huge amount", "POST", T, b'{"account":"a","amount":123456789012345678901234567890}',
         json_ct, 422, "amount"),
        ("amount 1e400", "POST", T, b'{"account":"a","amount":1e400}', json_ct, 422, "amount"),
        ("amount true", "POST", T, {"account": "a", "amount": True}, None, 422, "amount"),
        ("amount null", "POST", T, {"account": "a", "amount": None}, None, 422, "amount"),
        ("amount array", "POST", T, {"account": "a", "amount": [5]}, None, 422, "amount"),
        ("account empty", "POST", T, {"account": "", "amount": 5}, None, 422, "account"),
        ("account with space", "POST", T, {"account": "a b", "amount": 5}, None, 422, "account"),
        ("account too long", "POST", T, {"account": long_id, "amount": 5}, None, 422, "account"),
        ("account leading dash", "POST", T, {"account": "-a", "amount": 5}, None, 422, "account"),
        ("account a number", "POST", T, {"account": 7, "amount": 5}, None, 422, "account"),
        ("reference too long", "POST", T, {"account": "a", "amount": 5, "reference": "r" * 257},
         None, 422, "reference"),
        ("reference a number", "POST", T, {"account": "a", "amount": 5, "reference": 5}, None,
         422, "reference"),
        ("bad id", "POST", T, {"account": "a", "amount": 5, "id": "no spaces"}, None, 422, "id"),
        ("bad Idempotency-Key", "POST", T, {"account": "a", "amount": 5},
         {"Idempotency-Key": "bad key"}, 422, "Idempotency-Key"),
        ("id differs from key", "POST", T, {"account": "a", "amount": 5, "id": "k1"},
         {"Idempotency-Key": "k2"}, 422, "id"),
        ("key reused with another body", "POST", T, {"account": "rich", "amount": 6},
         {"Idempotency-Key": "used-key"}, 422, "Idempotency-Key"),
        ("transfer fields on /transactions", "POST", T, {"from": "a", "to": "b", "amount": 5},
         None, 422, "from"),
        ("transfer negative amount", "POST", F, {"from": "rich", "to": "b", "amount": -5}, None,
         422, "amount"),
        ("transfer zero amount", "POST", F, {"from": "rich", "to": "b", "amount": 0}, None,
         422, "amount"),
        ("transfer to self", "POST", F, {"from": "rich", "to": "rich", "amount": 5}, None,
         422, "to"),
        ("transfer missing to", "POST", F, {"from": "rich", "amount": 5}, None, 422, "to"),
        ("transfer with account", "POST", F, {"account": "a", "from": "rich", "to": "b",
                                              "amount": 5}, None, 422, "account"),
        ("transfer beyond balance", "POST", F, {"from": "rich", "to": "b", "amount": 106},
         None, 422, "amount"),
        ("overdraft of a fresh account", "POST", T, {"account": "nobody", "amount": -1}, None,
         422, "amount"),
        ("overdraft by one", "POST", T, {"account": "rich", "amount": -106}, None, 422,
         "amount"),
        ("batch missing commands", "POST", B, {}, None, 422, "commands"),
        ("batch empty", "POST", B, {"commands": []}, None, 422, "commands"),
        ("batch commands not an array", "POST", B, {"commands": {}}, None, 422, "commands"),
        ("batch unknown field", "POST", B, {"commands": [{"account": "a", "amount": 1}],
                                            "x": 1}, None, 422, "x"),
        ("batch bad command", "POST", B, {"commands": [{"account": "a", "amount": 1},
                                                       {"account": "a", "amount": 1.5}]},
         None, 422, "commands[1].amount"),
        ("batch command neither kind", "POST", B, {"commands": [{"amount": 1}]}, None, 422,
         "commands[0].account"),
        ("batch overdraws by its own earlier command", "POST", B, {"commands": [
            {"account": "rich", "amount": -60}, {"from": "rich", "to": "b", "amount": 46}]},
         None, 422, "commands[1].amount"),
        ("batch duplicate ids", "POST", B, {"commands": [
            {"account": "a", "amount": 1, "id": "same"},
            {"account": "a", "amount": 2, "id": "same"}]}, None, 422, "commands[1].id"),
        ("NUL escape in an account (would read as 'al')", "POST", T,
         b'{"account":"al\\u0000ice","amount":5}', json_ct, 422, "body"),
        ("NUL escape in a key", "POST", T,
         b'{"account\\u0000x":"a","amount":5}', json_ct, 422, "body"),
        ("batch over 4096 commands", "POST", B,
         {"commands": [{"account": "a", "amount": 1}] * (BATCH_COMMANDS_MAX + 1)}, None, 422,
         "commands"),
        ("wrong method on /transactions", "GET", T, None, None, 405, None),
        ("wrong method on /batch", "DELETE", B, None, None, 405, None),
        ("wrong content type", "POST", T, b'{"account":"a","amount":5}',
         {"Content-Type": "text/plain"}, 415, None),
        ("oversized single body", "POST", T,
         json.dumps({"account": "a", "amount": 5, "reference": "r" * 70000}).encode(), json_ct,
         413, None),
        ("unknown route", "POST", "/nope", {"account": "a", "amount": 5}, None, 404, None),
    ]
    return cases


def test_bad_requests_get_exact_problems_and_leave_the_log_untouched():
    ledger = Ledger(accounting=False)
    ledger.deposit("rich", 100)
    status, _, _ = ledger.post("/transactions", {"account": "rich", "amount": 5},
                               {"Idempotency-Key": "used-key"})
    assert status == 201
    before = ledger.log_bytes()
    cases = _bad_requests()
    assert len(cases) >= 40
    for name, method, path, body, headers, want_status, field in cases:
        status, resp_headers, data = request(method, ledger.tx.url + path, body, headers,
                                             timeout=HTTP_TIMEOUT_S)
        assert status == want_status, (name, status, data)
        assert resp_headers.get("content-type", "").startswith("application/problem+json"), \
            (name, resp_headers)
        problem = json.loads(data)
        assert problem["status"] == want_status and problem["type"] and problem["title"], \
            (name, problem)
        if field:
            fields = [e["field"] for e in problem.get("errors", [])]
            assert field in fields, (name, problem)
        if want_status == 405:
            assert "allow" in resp_headers, name
        if name in ("overdraft by one", "transfer beyond balance"):
            assert problem["balance"] == 105, (name, problem)
        if name == "overdraft of a fresh account":
            assert problem["balance"] == 0, problem
    assert ledger.log_bytes() == before
    ledger.stop()


def test_overdraft_limit_lets_a_balance_go_down_to_minus_the_limit():
    ledger = Ledger(accounting=False, tx_extra=["--overdraft-limit", "50"])
    status, body, _ = ledger.post("/transactions", {"account": "o", "amount": -50})
    assert status == 201 and body["balance"] == -50, body
    status, body, _ = ledger.post("/transactions", {"account": "o", "amount": -1})
    assert status == 422 and body["balance"] == -50, body
    ledger.stop()


def _worker(ledger, rng_seed, accounts, attempts, results):
    rng = random.Random(rng_seed)
    for _ in range(attempts):
        key = uuid.uuid4().hex
        tx = rng.choice(ledger.txs)
        account = rng.choice(accounts)
        if rng.random() < 0.2:
            other = rng.choice([a for a in accounts if a != account])
            path, body = "/transfers", {"from": account, "to": other, "amount": rng.randint(1, 60)}
        else:
            path, body = "/transactions", {"account": account, "amount": -rng.randint(1, 60)}
        status, answer, _ = ledger.post(path, body, {"Idempotency-Key": key}, tx=tx)
        results.append((key, status, answer))


def test_concurrent_withdrawals_on_two_instances_never_overdraw():
    ledger = Ledger(transactions=2, accounting=False)
    accounts = ["hot-1", "hot-2", "hot-3"]
    for account in accounts:
        ledger.deposit(account, 2000)
    results = []
    threads = [threading.Thread(target=_worker, args=(ledger, seed, accounts, 40, results))
               for seed in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    statuses = [status for _, status, _ in results]
    assert set(statuses) <= {201, 409, 422, 503}, set(statuses)
    assert statuses.count(201) > 0 and statuses.count(422) > 0, statuses
    events = ledger.events()
    # The reference fold, event by event: no balance ever below zero.
    balances = {}
    for ev in events:
        if ev["type"] == "transferred":
            balances[ev["from"]] = balances.get(ev["from"], 0) - ev["amount"]
            balances[ev["to"]] = balances.get(ev["to"], 0) + ev["amount"]
        else:
            sign = 1 if ev["type"] == "deposited" else -1
            balances[ev["account"]] = balances.get(ev["account"], 0) + sign * ev["amount"]
        assert min(balances.values()) >= 0, ev
    # Every 201 is exactly one event with its key as id; nothing else landed
    # except what got 503 (which may still land).
    ids = [ev["id"] for ev in events]
    assert len(ids) == len(set(ids))
    created = {key for key, status, _ in results if status == 201}
    maybe = {key for key, status, _ in results if status == 503}
    for key, status, answer in results:
        if status == 201:
            assert answer["id"] == key and by_id(events)[key]["seq"] == answer["seq"]
    landed = set(ids[len(accounts):])
    assert created <= landed and landed <= created | maybe, (created ^ landed)
    ledger.stop()


def test_the_same_key_sent_concurrently_makes_exactly_one_event():
    ledger = Ledger(transactions=2, accounting=False)
    seq = ledger.deposit("shared", 1000)["seq"]
    # The other instance validates against its own write model: let it see the deposit.
    for tx in ledger.txs:
        wait_until(lambda: get_json(tx.url + "/health")[1]["applied_seq"] >= seq,
                   what="both instances applied the deposit")
    barrier = threading.Barrier(12)
    answers = []

    def client(index):
        barrier.wait(30)
        answers.append(ledger.post("/transactions", {"account": "shared", "amount": -10},
                                   {"Idempotency-Key": "same-key"},
                                   tx=ledger.txs[index % 2]))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 12
    assert all(status == 201 for status, _, _ in answers), answers
    assert len({json.dumps(body, sort_keys=True) for _, body, _ in answers}) == 1
    replayed = [h.get("idempotent-replayed") for _, _, h in answers]
    assert replayed.count(None) <= 1, replayed
    events = ledger.events()
    assert [ev["id"] for ev in events].count("same-key") == 1
    assert harness.fold(events)["shared"][0] == 990
    ledger.stop()


def test_stream_down_answers_503_and_a_retry_by_key_lands_once():
    ledger = Ledger(accounting=False, tx_extra=["--ack-timeout-ms", "500"])
    ledger.deposit("s", 100)
    ledger.stream.kill9()
    body = {"account": "s", "amount": 7}
    status, problem, headers = ledger.post("/transactions", body, {"Idempotency-Key": "retry-me"})
    assert status == 503, problem
    assert headers["retry-after"] and problem["status"] == 503
    ledger.stream.start()

    def retried():
        status, answer, _ = ledger.post("/transactions", body, {"Idempotency-Key": "retry-me"})
        assert status in (201, 503), (status, answer)
        return answer if status == 201 else None
    answer = wait_until(retried, 60, interval_s=0.1, what="a retry to succeed")
    assert answer["id"] == "retry-me" and answer["balance"] == 107, answer
    status, again, headers = ledger.post("/transactions", body, {"Idempotency-Key": "retry-me"})
    assert status == 201 and again == answer and headers["idempotent-replayed"] == "true"
    events = ledger.events()
    assert [ev["id"] for ev in events].count("retry-me") == 1
    ledger.stop()


def test_a_restarted_instance_replays_a_key_from_the_stored_event():
    ledger = Ledger(accounting=False)
    ledger.deposit("r", 100)
    body = {"from": "r", "to": "q", "amount": 30}
    status, first, _ = ledger.post("/transfers", body, {"Idempotency-Key": "t-1"})
    assert status == 201
    ledger.tx.stop_clean()
    ledger.tx.start()
    status, again, headers = ledger.post("/transfers", body, {"Idempotency-Key": "t-1"})
    assert status == 201 and again == first and headers["idempotent-replayed"] == "true"
    status, other, _ = ledger.post("/transfers", dict(body, amount=31),
                                   {"Idempotency-Key": "t-1"})
    assert status == 422, other
    assert [ev["id"] for ev in ledger.events()].count("t-1") == 1
    ledger.stop()


def test_landed_requests_replay_on_an_instance_that_never_saw_their_key():
    # The second instance knows the keys only from the events it folded:
    # it answers the original 201s, although validating the withdrawal
    # again would now find no funds, and refuses the keys for other commands.
    ledger = Ledger(transactions=2, accounting=False)
    tx, other = ledger.txs
    ledger.deposit("x", 100)
    withdrawal = {"account": "x", "amount": -100}
    status, first, _ = ledger.post("/transactions", withdrawal, {"Idempotency-Key": "wx"})
    assert status == 201, first
    batch = {"commands": [{"account": "y", "amount": 50}, {"account": "y", "amount": -50}]}
    status, first_batch, _ = ledger.post("/batch", batch, {"Idempotency-Key": "bx"})
    assert status == 201, first_batch
    wait_until(lambda: get_json(other.url + "/health")[1]["applied_seq"] >=
               first_batch["last_seq"], what="the other instance to apply the batch")
    for path, body, key, want in (("/transactions", withdrawal, "wx", first),
                                  ("/batch", batch, "bx", first_batch)):
        status, again, headers = ledger.post(path, body, {"Idempotency-Key": key}, tx=other)
        assert (status, again, headers.get("idempotent-replayed")) == (201, want, "true"), \
            (key, status, again)
    for path, body, key in (("/transactions", {"account": "x", "amount": -99}, "wx"),
                            ("/batch", {"commands": batch["commands"][:1]}, "bx")):
        status, problem, _ = ledger.post(path, body, {"Idempotency-Key": key}, tx=other)
        assert status == 422 and "idempotency key" in problem["detail"], (key, problem)
    assert len(ledger.events()) == 4
    ledger.stop()


def test_the_last_kept_batches_replay_after_older_events_were_evicted():
    # More events than the write model keeps (WRITE_MODEL_RECENT_EVENTS_MAX,
    # 32768): the oldest leave its id index, and the batches still kept are
    # found and replayed by an instance that never saw their keys. Each
    # batch spends part of one pot that ends empty, so validating any of
    # them again (instead of finding it) would answer 422.
    ledger = Ledger(transactions=2, accounting=False)
    tx, other = ledger.txs
    batches = 9
    ledger.deposit("pot", batches * BATCH_COMMANDS_MAX)
    batch = {"commands": [{"account": "pot", "amount": -1}] * BATCH_COMMANDS_MAX}
    answers = {}
    for n in range(batches):
        status, answers[n], _ = ledger.post("/batch", batch, {"Idempotency-Key": f"pot-{n}"})
        assert status == 201, answers[n]
    last_seq = answers[batches - 1]["last_seq"]
    assert answers[batches - 1]["results"][-1]["balance"] == 0
    assert last_seq - BATCH_COMMANDS_MAX > 32768
    wait_until(lambda: get_json(other.url + "/health")[1]["applied_seq"] >= last_seq, 60,
               what="the other instance to apply every batch")
    for n in range(2, batches):
        status, again, headers = ledger.post("/batch", batch, {"Idempotency-Key": f"pot-{n}"},
                                             tx=other)
        assert status == 201 and headers.get("idempotent-replayed") == "true", (n, again)
        assert again == answers[n], n
    assert len(ledger.events()) == last_seq
    ledger.stop()


def test_an_escaped_backslash_before_u0000_is_text_not_nul():
    ledger = Ledger(accounting=False)
    status, _, data = request("POST", ledger.tx.url + "/transactions",
                              b'{"account":"a","amount":5,"reference":"\\\\u0000"}',
                              {"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT_S)
    assert status == 201, data
    assert ledger.events()[0]["meta"]["reference"] == "\\u0000"
    ledger.stop()


def test_the_largest_batch_is_one_atomic_append():
    ledger = Ledger(accounting=False)
    commands = [{"account": f"big-{i % 50}", "amount": i + 1} for i in range(BATCH_COMMANDS_MAX)]
    status, body, _ = ledger.post("/batch", {"commands": commands})
    assert status == 201, body
    assert body["last_seq"] - body["first_seq"] + 1 == BATCH_COMMANDS_MAX
    assert len(ledger.events()) == BATCH_COMMANDS_MAX
    ledger.stop()


def test_balances_beyond_2_53_are_exact():
    # Doubles hold integers exactly only up to 2^53: every amount and balance
    # in an answer must be the exact integer, never a rounded or 1e+16 one.
    limit = 2 ** 53 + 1
    ledger = Ledger(accounting=False, tx_extra=["--overdraft-limit", str(limit)])
    for _ in range(10):
        ledger.deposit("rich", AMOUNT_MAX)
    body = ledger.deposit("rich", 1)
    assert type(body["balance"]) is int and body["balance"] == 10 * AMOUNT_MAX + 1, body

    status, tr, _ = ledger.post("/transfers", {"from": "rich", "to": "heir", "amount": 2})
    assert status == 201, tr
    assert tr["balances"] == {"rich": 10 * AMOUNT_MAX - 1, "heir": 2}, tr

    status, batch, _ = ledger.post("/batch", {"commands": [
        {"account": "rich", "amount": 3},
        {"from": "rich", "to": "heir", "amount": AMOUNT_MAX}]})
    assert status == 201, batch
    assert batch["results"][0]["balance"] == 10 * AMOUNT_MAX + 2, batch
    assert batch["results"][1]["balances"] == {"rich": 9 * AMOUNT_MAX + 2,
                                               "heir": AMOUNT_MAX + 2}, batch

    for _ in range(9):
        status, body, _ = ledger.post("/transactions", {"account": "poor", "amount": -AMOUNT_MAX})
        assert status == 201, body
    status, body, _ = ledger.post("/transactions", {"account": "poor", "amount": -AMOUNT_MAX})
    assert status == 422, body
    assert (body["balance"], body["available"], body["overdraft_limit"]) == \
        (-9 * AMOUNT_MAX, -9 * AMOUNT_MAX, limit), body

    # What the answers said is what the log stores.
    state = harness.fold(ledger.events())
    assert state["rich"][0] == 9 * AMOUNT_MAX + 2 and state["heir"][0] == AMOUNT_MAX + 2
    ledger.stop()


def test_generated_ids_are_distinct_version_4_uuids():
    import re
    pattern = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    ledger = Ledger(accounting=False)
    ids = [ledger.deposit("u", 1)["id"] for _ in range(50)]
    status, batch, _ = ledger.post("/batch", {"commands": [{"account": "u", "amount": 1}] * 3})
    assert status == 201, batch
    ids += [r["id"].rsplit(":", 1)[0] for r in batch["results"][:1]]
    assert all(pattern.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids), ids
    # A restarted instance draws a new random base: no id comes back.
    ledger.tx.stop_clean()
    ledger.txs[0] = harness.start_transaction(ledger.endpoints)
    again = [ledger.deposit("u", 1)["id"] for _ in range(50)]
    assert not set(again) & set(ids), again
    ledger.stop()


def test_a_batch_over_many_accounts_holds_each_account_apart():
    # Beyond a few accounts a request indexes its holds: every account must
    # still meet its own balance, and the later commands see the earlier ones.
    ledger = Ledger(accounting=False)
    names = [f"many-{i}" for i in range(40)]
    status, body, _ = ledger.post("/batch", {"commands": [
        {"account": name, "amount": 100} for name in names]})
    assert status == 201, body

    spend = [{"account": name, "amount": -100} for name in names]
    status, body, _ = ledger.post("/batch", {"commands": spend + [
        {"account": names[13], "amount": -1}]})
    assert status == 422, body
    assert body["account"] == names[13] and body["available"] == 0, body
    assert body["errors"] == [{"field": f"commands[{len(names)}].amount",
                               "message": "exceeds the available balance"}], body

    # A chain of transfers: each account passes on what it was just given.
    chain = [{"from": names[i], "to": names[i + 1], "amount": 100 + 100 * i}
             for i in range(len(names) - 1)]
    status, body, _ = ledger.post("/batch", {"commands": chain})
    assert status == 201, body
    last = body["results"][-1]["balances"]
    assert last == {names[-2]: 0, names[-1]: 100 * len(names)}, last
    state = harness.fold(ledger.events())
    assert all(state[name][0] == 0 for name in names[:-1]), state
    assert state[names[-1]][0] == 100 * len(names)
    ledger.stop()


def test_a_body_spelled_plainly_or_with_escapes_is_the_same_request():
    # Plain bodies take transaction's fast reader, spellings with escapes or
    # unusual whitespace take cJSON: both must read the same commands, so a
    # retry by key in the other spelling replays instead of being refused.
    ledger = Ledger(accounting=False)
    json_type = {"Content-Type": "application/json"}
    cases = [
        ("/transactions", b'{"account":"sp-a","amount":900,"reference":"r\xc3\xa9f"}',
         b'{"acc\\u006funt" : "sp-a",\t"amount":900,"reference":"r\\u00e9f"}'),
        ("/transfers", b'{"from":"sp-a","to":"sp-b","amount":100}',
         b'{"from":"sp\\u002da","to":"sp-b","amount":100}'),
        ("/batch", b'{"commands":[{"account":"sp-b","amount":-40},'
                   b'{"from":"sp-a","to":"sp-b","amount":1,"id":"sp-x"}],"id":"sp-k"}',
         b'{"commands":[{"account":"sp-b","amount":-40},'
         b'{"from":"sp-a","to":"sp-b","amount":1,"id":"sp\\u002dx"}],"id":"sp-k"}'),
    ]
    for n, (path, plain, escaped) in enumerate(cases):
        key = {"Idempotency-Key": "sp-k"} if path == "/batch" else {"Idempotency-Key": f"sp-{n}"}
        status, _, first = request("POST", ledger.tx.url + path, plain, {**json_type, **key},
                                   timeout=HTTP_TIMEOUT_S)
        assert status == 201, (path, first)
        status, headers, again = request("POST", ledger.tx.url + path, escaped,
                                         {**json_type, **key}, timeout=HTTP_TIMEOUT_S)
        assert status == 201 and again == first, (path, again)
        assert headers["idempotent-replayed"] == "true", path
    status, _, data = request("POST", ledger.tx.url + "/transactions",
                              b'{"account":"sp-a","amount":901,"reference":"r\\u00e9f"}',
                              {**json_type, "Idempotency-Key": "sp-0"}, timeout=HTTP_TIMEOUT_S)
    assert status == 422, data
    events = ledger.events()
    assert len(events) == 4
    assert events[0]["meta"]["reference"] == "r\u00e9f"
    assert [ev["id"] for ev in events[2:]] == ["sp-k:0", "sp-x"]
    ledger.stop()


if __name__ == "__main__":
    harness.run_tests([
        test_deposit_withdraw_transfer_and_batch_answer_with_the_stored_events,
        test_connections_are_kept_alive_across_writes,
        test_bad_requests_get_exact_problems_and_leave_the_log_untouched,
        test_overdraft_limit_lets_a_balance_go_down_to_minus_the_limit,
        test_concurrent_withdrawals_on_two_instances_never_overdraw,
        test_the_same_key_sent_concurrently_makes_exactly_one_event,
        test_stream_down_answers_503_and_a_retry_by_key_lands_once,
        test_a_restarted_instance_replays_a_key_from_the_stored_event,
        test_landed_requests_replay_on_an_instance_that_never_saw_their_key,
        test_the_last_kept_batches_replay_after_older_events_were_evicted,
        test_the_largest_batch_is_one_atomic_append,
        test_a_batch_over_many_accounts_holds_each_account_apart,
        test_balances_beyond_2_53_are_exact,
        test_generated_ids_are_distinct_version_4_uuids,
        test_a_body_spelled_plainly_or_with_escapes_is_the_same_request,
    ])
