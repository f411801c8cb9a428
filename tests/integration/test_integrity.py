"""Integrity: readers that notice when the stream's history changes, and
retries answered from the truth. Real stream, transaction and accounting
binaries on free ports; the faults are done to the files as an operator
or a crash would (a log restored from a backup, a replica from another
deployment), never by a fake component.

Claims: a reader whose state the stream's log no longer holds refuses
(reads 503 .../diverged, writes 503, /health 503 naming it) instead of
serving totals the log does not have, until it is rebuilt or restarted;
a keyed retry whose key the instance no longer remembers is answered
from the stored events, never with a 4xx that reads "not applied"; one
key applies once across routes and restarts.
"""

import json
import os
import shutil
import signal

import harness
from harness import get_json, post_json, request, wait_until

HTTP_TIMEOUT_S = 30.0   # generous: a shared, noisy machine
DETECT_TIMEOUT_S = 20.0
HEARTBEAT_MS = 200      # divergence shows within a few heartbeats
PROBLEMS = "https://ledger.example/problems/"


class Deployment(harness.StreamLog):
    """One stream (restartable on the same endpoints and files), one
    transaction and one accounting instance."""

    def __init__(self, endpoints=None, tx_extra=(), accounting=True, accounting_dir=None):
        self.endpoints = endpoints or harness.Endpoints()
        self.stream_dir = harness.tmpdir("ledger-stream-")
        self.stream_port = harness.free_port()
        self.start_stream()
        self.tx = harness.start_transaction(
            self.endpoints, extra=["--ack-timeout-ms", "2000", *tx_extra])
        self.accounting_dir = accounting_dir or harness.tmpdir("ledger-accounting-")
        self.accounting_port = harness.free_port()
        self.accounting = self.start_accounting() if accounting else None

    def start_stream(self, wait=True):
        self.stream = harness.start_stream(
            self.endpoints, self.stream_dir, http_port=self.stream_port,
            extra=["--heartbeat-ms", str(HEARTBEAT_MS)], wait=wait)
        return self.stream

    def start_accounting(self, extra=(), wait=True):
        self.accounting = harness.start_accounting(
            self.endpoints, self.accounting_dir, http_port=self.accounting_port,
            extra=["--upstream-timeout-ms", "1000", *extra], wait=wait)
        return self.accounting

    def post(self, path, body, headers=None):
        return post_json(self.tx.url + path, body, headers, timeout=HTTP_TIMEOUT_S)

    def move(self, account, amount, key=None):
        headers = {"Idempotency-Key": key} if key else None
        status, body, _ = self.post("/transactions", {"account": account, "amount": amount},
                                    headers)
        assert status == 201, (status, body)
        return body

    def balances(self, min_seq):
        """accounting's balances once it applied min_seq: {account: balance}."""
        status, _ = get_json(f"{self.accounting.url}/accounts/nobody?min_seq={min_seq}"
                             "&wait_ms=10000", timeout=HTTP_TIMEOUT_S)
        assert status == 404, status
        return {name: entry[0] for name, entry in harness.all_accounts(self.accounting).items()}

    def stop(self):
        for service in (self.tx, self.accounting, self.stream):
            if service and service.alive():
                service.stop_clean()


def assert_diverged_problem(status, body, headers=None):
    assert status == 503, (status, body)
    problem = body if isinstance(body, dict) else json.loads(body)
    assert problem["type"] == PROBLEMS + "diverged", problem
    assert "diverged" in problem["detail"], problem


def accounting_refuses(dep):
    """accounting's /health, reads and stats all refuse, naming the divergence."""
    try:
        status, health = get_json(dep.accounting.url + "/health")
    except OSError:
        return False  # not listening yet
    if status != 503:
        return False
    assert health["status"] == "unhealthy" and health["reason"] == "diverged", health
    assert health["detail"], health
    for path in ("/accounts/alice", "/accounts", "/accounts/alice/events", "/stats"):
        status, headers, data = request("GET", dep.accounting.url + path)
        assert headers["content-type"] == "application/problem+json", (path, headers)
        assert_diverged_problem(status, data)
    return health


def transaction_refuses(dep):
    status, health = get_json(dep.tx.url + "/health")
    if status != 503 or health.get("reason") != "diverged":
        return False
    assert health["status"] == "unhealthy" and health["detail"], health
    status, body, headers = dep.post("/transactions", {"account": "alice", "amount": 1})
    assert_diverged_problem(status, body)
    return health


def restore(dep, backup):
    """Stops the stream, puts the earlier copy of its log back, starts it."""
    dep.stream.stop_clean()
    shutil.copyfile(backup, dep.log_path)
    dep.start_stream()


# ---------------------------------------------------------------------------
# Divergence

def test_log_restored_from_an_earlier_backup_is_refused_under_running_services():
    dep = Deployment()
    dep.move("alice", 600)
    last = dep.move("alice", 1)["seq"]
    assert dep.balances(last) == {"alice": 601}
    backup = os.path.join(harness.tmpdir(), "events.jsonl")
    shutil.copyfile(dep.log_path, backup)
    dep.move("alice", -101)
    dep.move("bob", 50)
    last = dep.move("carol", 70)["seq"]
    assert dep.balances(last) == {"alice": 500, "bob": 50, "carol": 70}
    restore(dep, backup)
    health = wait_until(lambda: accounting_refuses(dep), DETECT_TIMEOUT_S,
                        what="accounting refusing the restored log")
    assert "before seq 5 applied here" in health["detail"], health
    health = wait_until(lambda: transaction_refuses(dep), DETECT_TIMEOUT_S,
                        what="transaction refusing the restored log")
    assert "before seq 5" in health["detail"], health
    # The log says alice 601 and nothing of bob and carol: nobody serves
    # either story until an operator acts. A restart is not enough...
    dep.accounting.stop_clean()
    dep.start_accounting(wait=False)
    wait_until(lambda: accounting_refuses(dep), DETECT_TIMEOUT_S, what="refusal after restart")
    assert "diverges" in dep.accounting.output()
    # ...--rebuild is: the replica is the stream's log again.
    dep.accounting.stop_clean()
    dep.start_accounting(extra=["--rebuild"])
    assert dep.balances(2) == {"alice": 601}
    assert harness.log_data(dep.accounting_dir) == dep.log_bytes()
    # transaction folds the stream's log from scratch at start.
    dep.tx.stop_clean()
    dep.tx.start()
    assert dep.move("alice", -601)["balance"] == 0
    dep.stop()


def test_replica_ahead_of_its_stream_is_refused_at_connect():
    dep = Deployment()
    for amount in (10, 20, 30):
        last = dep.move("alice", amount)["seq"]
    backup = os.path.join(harness.tmpdir(), "events.jsonl")
    shutil.copyfile(dep.log_path, backup)
    for amount in (40, 50):
        last = dep.move("alice", amount)["seq"]
    assert dep.balances(last) == {"alice": 150}
    dep.accounting.stop_clean()
    dep.tx.stop_clean()
    restore(dep, backup)  # three events where the replica has five
    dep.start_accounting(wait=False)
    health = wait_until(lambda: accounting_refuses(dep), DETECT_TIMEOUT_S,
                        what="accounting refusing a replica ahead of the stream")
    assert "ends at seq 3, before seq 5" in health["detail"], health
    assert health["applied_seq"] == 5, health
    dep.accounting.stop_clean()
    dep.start_accounting(extra=["--rebuild"])
    assert dep.balances(3) == {"alice": 60}
    dep.stop()


def test_replica_of_another_deployments_stream_is_refused_at_connect():
    first = Deployment()
    for amount in (1000000, 2000000):
        last = first.move("alice", amount)["seq"]
    assert first.balances(last) == {"alice": 3000000}
    replica_dir = first.accounting_dir
    first.stop()
    # Another deployment on the same endpoints, with a longer log of its own.
    other = Deployment(endpoints=first.endpoints, accounting=False)
    for amount in (1, 2, 3, 4):
        last = other.move("alice", amount)["seq"]
    other.accounting_dir = replica_dir
    other.start_accounting(wait=False)
    health = wait_until(lambda: accounting_refuses(other), DETECT_TIMEOUT_S,
                        what="accounting refusing another deployment's stream")
    assert "another log" in health["detail"] or "holds id" in health["detail"], health
    other.accounting.stop_clean()
    other.start_accounting(extra=["--rebuild"])
    assert other.balances(last) == {"alice": 10}
    other.stop()


def test_after_a_restore_under_load_no_reader_serves_a_balance_its_log_does_not_hold():
    """The invariant test's "restore from backup" fault: writers and readers
    keep going through it; every 200 a replica gives is the fold of the
    log it followed (the one before the restore) at its applied_seq, and
    after --rebuild the fold of the restored one."""
    import random
    import threading
    dep = Deployment()
    second = Deployment.__new__(Deployment)  # a second replica of the same stream
    second.endpoints, second.accounting_dir = dep.endpoints, harness.tmpdir("ledger-acc-")
    second.accounting_port = harness.free_port()
    second.start_accounting()
    replicas = [dep, second]
    accounts = ["ra", "rb", "rc"]
    stopping = threading.Event()
    answers = []  # (instance index, body) of every 200

    def write(seed):
        rng = random.Random(seed)
        count = 0
        while not stopping.is_set():
            count += 1
            a, b = rng.sample(accounts, 2)
            body = rng.choice([{"account": a, "amount": rng.randint(1, 50)},
                               {"account": a, "amount": -rng.randint(1, 5)},
                               {"from": a, "to": b, "amount": rng.randint(1, 5)}])
            path = "/transfers" if "from" in body else "/transactions"
            try:
                post_json(dep.tx.url + path, body, {"Idempotency-Key": f"w{seed}-{count}"},
                          timeout=HTTP_TIMEOUT_S)
            except OSError:
                pass

    def read(seed):
        rng = random.Random(seed)
        while not stopping.is_set():
            index = rng.randrange(len(replicas))
            try:
                status, body = get_json(f"{replicas[index].accounting.url}/accounts/"
                                        f"{rng.choice(accounts)}", timeout=HTTP_TIMEOUT_S)
            except OSError:
                continue
            if status == 200:
                answers.append((index, body))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)] + \
              [threading.Thread(target=read, args=(10 + i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(dep.log_bytes().splitlines()) >= 200, DETECT_TIMEOUT_S,
                   what="200 events")
        data = dep.log_bytes()
        backup = os.path.join(harness.tmpdir(), "events.jsonl")
        with open(backup, "wb") as f:
            f.write(data[:data.rfind(b"\n") + 1])  # the complete lines: a backup
        wait_until(lambda: len(dep.log_bytes()) > len(data) + 20000, DETECT_TIMEOUT_S,
                   what="more events after the backup")
        dep.stream.stop_clean()
        before = dep.events()  # the history the replicas followed
        shutil.copyfile(backup, dep.log_path)
        dep.start_stream()
        for replica in replicas:
            wait_until(lambda: accounting_refuses(replica), DETECT_TIMEOUT_S,
                       what="each replica refusing the restored log")
        wait_until(lambda: transaction_refuses(dep), DETECT_TIMEOUT_S,
                   what="transaction refusing the restored log")
    finally:
        stopping.set()
        for thread in threads:
            thread.join(HTTP_TIMEOUT_S * 2)
    assert len(answers) > 10, f"{len(answers)} reads answered"
    for index, body in answers:
        state = harness.fold(before, body["applied_seq"]).get(body["account"])
        assert [body["balance"], body["version"], body["last_seq"]] == state, (index, body)
    # Rebuilt, each replica is the restored log again, byte for byte.
    after = dep.events()
    for replica in replicas:
        replica.accounting.stop_clean()
        replica.start_accounting(extra=["--rebuild"])
        for account, state in harness.fold(after).items():
            status, body = get_json(f"{replica.accounting.url}/accounts/{account}"
                                    f"?min_seq={len(after)}&wait_ms=10000")
            assert status == 200, (status, body)
            assert [body["balance"], body["version"], body["last_seq"]] == state, body
        replica.accounting.stop_clean()
    dep.stop()


# ---------------------------------------------------------------------------
# Retries answered from the truth

RING_EVENTS = 32768        # WRITE_MODEL_RECENT_EVENTS_MAX: events the write model keeps
OTHER_EVENTS = 40000       # the scenario: beyond them
BATCH_COMMANDS = 4000


def fill(dep, events):
    """events other events, in batches, on an account of their own."""
    last = None
    while events > 0:
        count = min(events, BATCH_COMMANDS)
        status, body, _ = dep.post("/batch", {"commands": [{"account": "filler", "amount": 1}]
                                              * count})
        assert status == 201, (status, body)
        last, events = body["last_seq"], events - count
    return last


def events_with_ids(dep, *ids):
    return [ev for ev in dep.events() if ev["id"] in ids]


def post_keyed(dep, path, body, key):
    return dep.post(path, body, {"Idempotency-Key": key})


def assert_applied_answer(status, body, headers, seq):
    """201 replayed, or the documented 200 .../already-applied: never a 4xx."""
    assert headers.get("idempotent-replayed") == "true", (status, body, headers)
    if status == 201:
        assert body["seq"] == seq, body
    else:
        assert status == 200, (status, body)
        assert body["type"] == PROBLEMS + "already-applied", body
        assert (body["first_seq"], body["last_seq"]) == (seq, seq), body


def landed_elsewhere(dep, other, key, amount):
    """A keyed withdrawal that landed without this instance answering it:
    as one answered 503 (the stream stalled) that lands later, or one
    sent to another instance. Returns its seq."""
    wait_until(lambda: get_json(other.url + "/health")[1]["applied_seq"]
               >= get_json(dep.tx.url + "/health")[1]["applied_seq"],
               DETECT_TIMEOUT_S, what="the other instance folding what this one did")
    status, body, _ = post_json(other.url + "/transactions",
                                {"account": "alice", "amount": amount},
                                {"Idempotency-Key": key}, timeout=HTTP_TIMEOUT_S)
    assert status == 201, (status, body)
    return body["seq"]


def test_late_retry_after_40000_events_is_answered_as_applied_never_422():
    dep = Deployment(accounting=False)
    other = harness.start_transaction(dep.endpoints)
    dep.move("alice", 100)
    # Without enough funds for a second one: a revalidation would say 422.
    poor = landed_elsewhere(dep, other, "late-poor", -100)
    dep.move("alice", 300)
    rich = landed_elsewhere(dep, other, "late-rich", -100)  # 200 left: enough for another
    other.stop_clean()
    assert fill(dep, OTHER_EVENTS) - rich > RING_EVENTS
    for key, seq in (("late-poor", poor), ("late-rich", rich)):
        status, body, headers = post_keyed(dep, "/transactions",
                                           {"account": "alice", "amount": -100}, key)
        assert_applied_answer(status, body, headers, seq)
        assert len(events_with_ids(dep, key)) == 1
    # The same key with another command is still refused as key reuse.
    status, body, _ = post_keyed(dep, "/transactions", {"account": "alice", "amount": -1},
                                 "late-rich")
    assert status == 422 and "another request" in body["detail"], (status, body)
    assert len(events_with_ids(dep, "late-rich")) == 1
    dep.stop()


def test_retry_of_a_forgotten_key_is_replayed_from_the_stored_events():
    # One remembered key: every other keyed request pushes it out.
    dep = Deployment(accounting=False, tx_extra=["--idempotency-keys-max", "1"])
    dep.move("alice", 100)
    first = dep.post("/transactions", {"account": "alice", "amount": -100},
                     {"Idempotency-Key": "k-forgotten"})
    assert first[0] == 201, first
    dep.move("bob", 1, key="k-other")
    status, body, headers = post_keyed(dep, "/transactions",
                                       {"account": "alice", "amount": -100}, "k-forgotten")
    assert (status, body) == (201, first[1]) and headers["idempotent-replayed"] == "true", \
        (status, body)
    # After a restart the instance remembers no key at all.
    dep.tx.stop_clean()
    dep.tx.start()
    status, body, headers = post_keyed(dep, "/transactions",
                                       {"account": "alice", "amount": -100}, "k-forgotten")
    assert (status, body) == (201, first[1]) and headers["idempotent-replayed"] == "true", \
        (status, body)
    assert len(events_with_ids(dep, "k-forgotten")) == 1
    dep.stop()


def test_one_key_applies_once_across_routes_and_restarts():
    dep = Deployment(accounting=False)
    dep.move("alice", 1000)
    single = {"account": "alice", "amount": -10}
    batch = {"commands": [{"account": "alice", "amount": -10}, {"account": "bob",
                                                                "amount": 5}]}
    status, body, _ = post_keyed(dep, "/transactions", single, "route-a")
    assert status == 201, body
    status, body, _ = post_keyed(dep, "/batch", batch, "route-b")
    assert status == 201, body
    for restart in (False, True):
        if restart:
            dep.tx.stop_clean()
            dep.tx.start()
        for path, body_, key in (("/batch", batch, "route-a"),
                                 ("/transactions", single, "route-b"),
                                 ("/transfers", {"from": "alice", "to": "bob", "amount": 1},
                                  "route-a")):
            status, answer, _ = post_keyed(dep, path, body_, key)
            assert status == 422, (restart, path, key, status, answer)
            assert "another request" in answer["detail"], answer
    ids = [ev["id"] for ev in dep.events()]
    assert [i for i in ids if i.startswith("route-a")] == ["route-a"], ids
    assert [i for i in ids if i.startswith("route-b")] == ["route-b:0", "route-b:1"], ids
    dep.stop()


def test_a_key_check_the_stream_cannot_answer_is_503_never_a_guess():
    dep = Deployment(accounting=False, tx_extra=["--idempotency-keys-max", "1"])
    dep.move("alice", 100)
    status, body, _ = post_keyed(dep, "/transactions", {"account": "alice", "amount": -100},
                                 "stalled")
    assert status == 201, body
    dep.move("bob", 1, key="pushes-stalled-out")  # one remembered key: "stalled" is not
    batch = {"commands": [{"account": "alice", "amount": -100}]}
    dep.stream.signal(signal.SIGSTOP)  # the key was seen: its check must ask the stream
    try:
        status, body, headers = post_keyed(dep, "/batch", batch, "stalled")
    finally:
        dep.stream.signal(signal.SIGCONT)
    assert status == 503 and headers.get("retry-after"), (status, body)
    status, body, _ = post_keyed(dep, "/batch", batch, "stalled")
    assert status == 422 and "another request" in body["detail"], (status, body)
    assert [ev["id"] for ev in dep.events() if ev["id"].startswith("stalled")] == ["stalled"]
    dep.stop()


def test_key_checks_and_divergence_checks_work_over_curve():
    from test_security_zmq import make_certs
    certs = make_certs()
    endpoints = harness.Endpoints()
    stream_dir = harness.tmpdir("ledger-stream-")
    stream_args = ["--heartbeat-ms", str(HEARTBEAT_MS),
                   "--curve-dir", os.path.join(certs, "stream")]
    stream = harness.start_stream(endpoints, stream_dir, extra=stream_args)
    tx_args = ["--idempotency-keys-max", "1", "--curve-dir",
               os.path.join(certs, "transaction")]
    tx = harness.start_transaction(endpoints, extra=tx_args)
    url = tx.url
    status, body, _ = post_json(url + "/transactions", {"account": "alice", "amount": 5},
                                {"Idempotency-Key": "curve-key"})
    assert status == 201, body
    post_json(url + "/transactions", {"account": "bob", "amount": 5},
              {"Idempotency-Key": "curve-other"})
    # Its key forgotten, the batch is checked with a LOOKUP over CURVE.
    status, body, _ = post_json(url + "/batch", {"commands": [{"account": "alice",
                                                               "amount": 5}]},
                                {"Idempotency-Key": "curve-key"})
    assert status == 422 and "another request" in body["detail"], (status, body)
    # The stream's log replaced by an empty one: the transaction notices.
    stream.stop_clean()
    harness.write_log_data(stream_dir, b"")
    stream = harness.start_stream(endpoints, stream_dir, http_port=stream.http_port,
                                  extra=stream_args)

    def diverged():
        status, health = get_json(url + "/health")
        return status == 503 and health.get("reason") == "diverged" and health
    health = wait_until(diverged, DETECT_TIMEOUT_S, what="transaction refusing the empty log")
    assert "another log" in health["detail"] or "ends at seq 0" in health["detail"], health
    tx.stop_clean()
    stream.stop_clean()


if __name__ == "__main__":
    harness.run_tests([
        test_log_restored_from_an_earlier_backup_is_refused_under_running_services,
        test_replica_ahead_of_its_stream_is_refused_at_connect,
        test_replica_of_another_deployments_stream_is_refused_at_connect,
        test_after_a_restore_under_load_no_reader_serves_a_balance_its_log_does_not_hold,
        test_late_retry_after_40000_events_is_answered_as_applied_never_422,
        test_retry_of_a_forgotten_key_is_replayed_from_the_stored_events,
        test_one_key_applies_once_across_routes_and_restarts,
        test_a_key_check_the_stream_cannot_answer_is_503_never_a_guess,
        test_key_checks_and_divergence_checks_work_over_curve,
    ])
