"""Two-phase transfers (schema 2's holds) through real processes: a hold
reserves the payer's available balance at once on every transaction
instance, moves money only when posted, and resolves exactly once —
posted, voided or expired — whatever races it; the log then holds one
resolution per hold, and accounting shows each step."""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

RESOLUTIONS = ("transfer_posted", "transfer_voided", "transfer_expired")


class Deployment:
    def __init__(self, instances=1, extra_txn=(), work=None):
        self.endpoints = harness.Endpoints()
        self.work = work or harness.tmpdir()
        self.stream_dir = os.path.join(self.work, "stream")
        self.stream = harness.start_stream(self.endpoints, self.stream_dir)
        self.txns = [harness.start_transaction(self.endpoints, extra=list(extra_txn))
                     for _ in range(instances)]
        self.acc = harness.start_accounting(self.endpoints, os.path.join(self.work, "acc"))

    @property
    def txn(self):
        return self.txns[0]

    def post(self, path, body, headers=None, txn=None):
        status, data, resp_headers = harness.post_json((txn or self.txn).url + path, body,
                                                       headers)
        return status, data

    def head(self):
        return len(self.log())

    def account(self, account, query=""):
        status, body = harness.get_json(
            f"{self.acc.url}/accounts/{account}?min_seq={self.head()}{query}")
        assert status == 200, (account, status, body)
        return body

    def transfer(self, pending_id):
        return harness.get_json(f"{self.acc.url}/transfers/{pending_id}?min_seq={self.head()}")

    def folded(self):
        """Waits until every transaction instance has folded the whole log."""
        head = self.head()
        harness.wait_until(lambda: all(
            harness.get_json(t.url + "/health")[1]["applied_seq"] >= head
            for t in self.txns), what=f"every instance at seq {head}")

    def log(self):
        return harness.read_log(self.stream_dir)

    def resolutions(self, pending_id):
        return [e for e in self.log()
                if e["type"] in RESOLUTIONS and e.get("pending_id") == pending_id]

    def stop(self):
        for service in [self.acc] + self.txns + [self.stream]:
            service.stop_clean()


def fields(problem):
    return {e["field"]: e["message"] for e in problem.get("errors", [])}


def figures(account):
    return {k: account[k] for k in ("balance", "pending_debits", "pending_credits",
                                    "available")}


def hold(d, amount, frm="alice", to="bob", txn=None, **extra):
    status, body = d.post("/transfers", {"from": frm, "to": to, "amount": amount,
                                         "pending": True, **extra}, txn=txn)
    assert status == 201, (status, body)
    assert body["type"] == "transfer_pending" and body["amount"] == amount, body
    return body


def wait_past(timeout_at, offset_s=0.01):
    """Sleeps until the wall clock is offset_s past an RFC 3339 timeout_at
    (not a measurement: a point the test must be beyond)."""
    import datetime
    due = datetime.datetime.strptime(timeout_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    while time.time() <= due + offset_s:
        time.sleep(0.02)


def test_a_hold_reserves_then_a_partial_post_moves_and_releases():
    d = Deployment()
    assert d.post("/transactions", {"account": "alice", "amount": 1000})[0] == 201
    pending = hold(d, 300)
    assert pending["balances"] == {"alice": 1000, "bob": 0}, pending
    assert "timeout_at" not in pending
    assert figures(d.account("alice")) == {"balance": 1000, "pending_debits": 300,
                                           "pending_credits": 0, "available": 700}
    assert figures(d.account("bob")) == {"balance": 0, "pending_debits": 0,
                                         "pending_credits": 300, "available": 0}
    # The hold counts against alice at once: 701 is refused.
    status, problem = d.post("/transactions", {"account": "alice", "amount": -701})
    assert status == 422 and problem["available"] == 700, problem
    status, posted = d.post(f"/transfers/{pending['id']}/post", {"amount": 200})
    assert status == 201, posted
    assert posted["type"] == "transfer_posted" and posted["pending_id"] == pending["id"]
    assert posted["amount"] == 200 and posted["balances"] == {"alice": 800, "bob": 200}
    assert figures(d.account("alice")) == {"balance": 800, "pending_debits": 0,
                                           "pending_credits": 0, "available": 800}
    # A second resolution of either kind: 422, nothing appended.
    before = d.head()
    status, problem = d.post(f"/transfers/{pending['id']}/post", {})
    assert status == 422 and problem["state"] == "posted", problem
    status, problem = d.post(f"/transfers/{pending['id']}/void", {})
    assert status == 422 and problem["state"] == "posted", problem
    assert d.head() == before
    status, transfer = d.transfer(pending["id"])
    assert status == 200 and transfer["state"] == "posted", transfer
    assert transfer["amount"] == 300 and transfer["posted_amount"] == 200, transfer
    assert transfer["pending_seq"] == pending["seq"], transfer
    assert transfer["resolved_seq"] == posted["seq"], transfer
    assert transfer["seqs"] == [pending["seq"], posted["seq"]], transfer
    assert len(d.resolutions(pending["id"])) == 1
    # Time travel sees the hold before it was posted.
    past = d.account("alice", f"&at_seq={pending['seq']}")
    assert figures(past) == {"balance": 1000, "pending_debits": 300, "pending_credits": 0,
                             "available": 700}, past
    # History shows each step.
    status, history = harness.get_json(f"{d.acc.url}/accounts/alice/events")
    assert [e["type"] for e in history["events"]] == [
        "deposited", "transfer_pending", "transfer_posted"], history
    # Unknown holds and bad bodies.
    assert d.post("/transfers/nope/post", {})[0] == 404
    status, problem = d.post("/transfers", {"from": "alice", "to": "bob", "amount": 1,
                                            "pending": True, "timeout_ms": 2592000001})
    assert status == 422 and "timeout_ms" in fields(problem), problem
    status, problem = d.post("/transfers", {"from": "alice", "to": "bob", "amount": 1,
                                            "timeout_ms": 1000})
    assert status == 422 and "timeout_ms" in fields(problem), problem
    big = hold(d, 10)
    status, problem = d.post(f"/transfers/{big['id']}/post", {"amount": 11})
    assert status == 422 and "amount" in fields(problem), problem
    d.stop()


def test_void_then_post_is_refused_and_the_hold_is_released():
    d = Deployment()
    assert d.post("/transactions", {"account": "alice", "amount": 500})[0] == 201
    pending = hold(d, 500)
    status, voided = d.post(f"/transfers/{pending['id']}/void", {})
    assert status == 201 and voided["type"] == "transfer_voided", voided
    assert voided["amount"] == 500 and voided["balances"] == {"alice": 500, "bob": 0}
    before = d.head()
    for action in ("post", "void"):
        status, problem = d.post(f"/transfers/{pending['id']}/{action}", {})
        assert status == 422 and problem["state"] == "voided", (action, problem)
    assert d.head() == before
    assert figures(d.account("alice"))["available"] == 500
    assert figures(d.account("bob"))["pending_credits"] == 0
    assert d.transfer(pending["id"])[1]["state"] == "voided"
    assert len(d.resolutions(pending["id"])) == 1
    d.stop()


def test_the_same_post_retried_replays_with_its_key_and_is_refused_without():
    d = Deployment()
    assert d.post("/transactions", {"account": "alice", "amount": 500})[0] == 201
    pending = hold(d, 100)
    key = {"Idempotency-Key": "post-once"}
    status, first, _ = harness.post_json(f"{d.txn.url}/transfers/{pending['id']}/post",
                                         {}, key)
    assert status == 201, first
    status, again, headers = harness.post_json(
        f"{d.txn.url}/transfers/{pending['id']}/post", {}, key)
    assert status == 201 and again == first, again
    assert headers.get("idempotent-replayed") == "true", headers
    status, problem = d.post(f"/transfers/{pending['id']}/post", {})
    assert status == 422 and problem["state"] == "posted", problem
    assert len(d.resolutions(pending["id"])) == 1
    d.stop()


def test_a_hold_in_a_batch_is_seen_by_the_batch_s_later_commands():
    d = Deployment()
    assert d.post("/transactions", {"account": "alice", "amount": 1000})[0] == 201
    before = d.head()
    status, problem = d.post("/batch", {"commands": [
        {"from": "alice", "to": "bob", "amount": 800, "pending": True},
        {"account": "alice", "amount": -300}]})
    assert status == 422 and "commands[1].amount" in fields(problem), problem
    assert d.head() == before
    status, problem = d.post("/batch", {"commands": [
        {"from": "alice", "to": "bob", "amount": 800, "pending": True, "id": "b-hold"},
        {"account": "alice", "amount": -200},
        {"post": "b-hold", "amount": 500},
        {"void": "b-hold"}]})
    assert status == 422 and "commands[3].void" in fields(problem), problem
    assert problem["state"] == "posted", problem
    status, body = d.post("/batch", {"commands": [
        {"from": "alice", "to": "bob", "amount": 800, "pending": True, "id": "b-hold"},
        {"account": "alice", "amount": -200},
        {"post": "b-hold", "amount": 500}]})
    assert status == 201, body
    assert [r["type"] for r in body["results"]] == [
        "transfer_pending", "withdrawn", "transfer_posted"], body
    assert figures(d.account("alice")) == {"balance": 300, "pending_debits": 0,
                                           "pending_credits": 0, "available": 300}
    assert d.account("bob")["balance"] == 500
    d.stop()


def test_holds_on_two_instances_at_once_never_reserve_more_than_the_account_has():
    d = Deployment(instances=2)
    assert d.post("/transactions", {"account": "alice", "amount": 1000})[0] == 201
    d.folded()
    statuses = []
    lock = threading.Lock()

    def worker(txn, count):
        for _ in range(count):
            status, body = d.post("/transfers", {"from": "alice", "to": "bob",
                                                 "amount": 100, "pending": True}, txn=txn)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=worker, args=(t, 8)) for t in d.txns for _ in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(statuses) <= {201, 422, 409}, statuses
    held = statuses.count(201)
    assert held <= 10, statuses
    pendings = [e for e in d.log() if e["type"] == "transfer_pending"]
    assert len(pendings) == held
    alice = d.account("alice")
    assert alice["pending_debits"] == 100 * held and alice["available"] >= 0, alice
    # Once full, both instances refuse any further hold.
    if held == 10:
        for txn in d.txns:
            status, problem = d.post("/transfers", {"from": "alice", "to": "bob",
                                                    "amount": 1, "pending": True}, txn=txn)
            assert status == 422 and problem["available"] == 0, problem
    d.stop()


def test_after_its_timeout_a_post_is_refused_before_the_expiry_lands():
    # The instance that is asked never expires (--hold-expiry-ms 0): the
    # refusal comes from timeout_at alone.
    d = Deployment(extra_txn=["--hold-expiry-ms", "0"])
    assert d.post("/transactions", {"account": "alice", "amount": 100})[0] == 201
    pending = hold(d, 100, timeout_ms=300)
    assert "timeout_at" in pending, pending
    wait_past(pending["timeout_at"])
    status, problem = d.post(f"/transfers/{pending['id']}/post", {})
    assert status == 422 and problem["state"] == "expired", problem
    status, problem = d.post(f"/transfers/{pending['id']}/void", {})
    assert status == 422 and problem["state"] == "expired", problem
    assert d.resolutions(pending["id"]) == []
    # Still reserved until the expiry lands; another instance appends it.
    assert d.account("alice")["available"] == 0
    other = harness.start_transaction(d.endpoints)
    d.txns.append(other)
    harness.wait_until(lambda: d.resolutions(pending["id"]), what="the expiry")
    [expired] = d.resolutions(pending["id"])
    assert expired["type"] == "transfer_expired" and expired["amount"] == 100, expired
    assert expired["id"] == pending["id"] + ".expired", expired
    assert figures(d.account("alice"))["available"] == 100
    assert d.transfer(pending["id"])[1]["state"] == "expired"
    status, problem = d.post(f"/transfers/{pending['id']}/post", {}, txn=other)
    assert status == 422 and problem["state"] == "expired", problem
    d.stop()


def test_expiry_racing_posts_from_another_instance_resolves_each_hold_once():
    # Instance 0 posts each hold about when it times out; instance 1
    # expires what is due. Whichever lands first wins; the other is
    # refused (a post 422, an expiry dropped): one resolution per hold.
    d = Deployment(instances=2)
    assert d.post("/transactions", {"account": "alice", "amount": 10000})[0] == 201
    d.folded()
    holds = [hold(d, 10, timeout_ms=400 + 40 * i, txn=d.txns[1]) for i in range(12)]
    outcomes = {}
    for index, pending in enumerate(holds):
        # From a little before the timeout (the post is validated in
        # time) to just after it (refused by timeout_at alone).
        wait_past(pending["timeout_at"], offset_s=-0.06 + 0.01 * (index % 8))
        status, body = d.post(f"/transfers/{pending['id']}/post", {}, txn=d.txns[0])
        assert status in (201, 422), (status, body)
        outcomes[pending["id"]] = status
    harness.wait_until(lambda: all(d.resolutions(p["id"]) for p in holds),
                       what="every hold resolved")
    for pending in holds:
        kinds = [e["type"] for e in d.resolutions(pending["id"])]
        expected = "transfer_posted" if outcomes[pending["id"]] == 201 else "transfer_expired"
        assert kinds == [expected], (pending["id"], outcomes[pending["id"]], kinds)
    posted = sum(1 for s in outcomes.values() if s == 201)
    print(f"    {posted} of {len(holds)} posted, the others expired", flush=True)
    alice = d.account("alice")
    assert alice["balance"] == 10000 - 10 * posted and alice["pending_debits"] == 0, alice
    d.stop()


def test_holds_due_while_transaction_was_killed_expire_once_after_restart():
    d = Deployment()
    assert d.post("/transactions", {"account": "alice", "amount": 100})[0] == 201
    pending = hold(d, 60, timeout_ms=500)
    later = hold(d, 40, timeout_ms=900)
    d.txn.kill9()
    wait_past(later["timeout_at"])
    assert d.resolutions(pending["id"]) == [] and d.resolutions(later["id"]) == []
    d.txn.start()
    harness.wait_until(lambda: d.resolutions(pending["id"]) and d.resolutions(later["id"]),
                       what="both expiries")
    # Restart everything: nothing expires twice.
    d.stop()
    d.stream.start()
    d.txn.start()
    d.acc.start()
    assert figures(d.account("alice")) == {"balance": 100, "pending_debits": 0,
                                           "pending_credits": 0, "available": 100}
    assert harness.get_json(d.txn.url + "/health")[1]["applied_seq"] == d.head()
    for p in (pending, later):
        assert [e["type"] for e in d.resolutions(p["id"])] == ["transfer_expired"]
    d.stop()


def test_while_the_instance_that_held_is_down_another_expires_it_once():
    d = Deployment(instances=2)
    assert d.post("/transactions", {"account": "alice", "amount": 100})[0] == 201
    d.folded()
    pending = hold(d, 70, timeout_ms=300, txn=d.txns[0])
    d.txns[0].kill9()
    harness.wait_until(lambda: d.resolutions(pending["id"]), what="the other's expiry")
    status, _, metrics = harness.request("GET", d.txns[1].url + "/metrics")
    assert status == 200 and b"\ntransaction_holds_expired_total 1\n" in metrics, metrics
    d.txns[0].start()
    d.folded()
    assert [e["type"] for e in d.resolutions(pending["id"])] == ["transfer_expired"]
    status, problem = d.post(f"/transfers/{pending['id']}/void", {}, txn=d.txns[0])
    assert status == 422 and problem["state"] == "expired", problem
    d.stop()


if __name__ == "__main__":
    harness.run_tests([
        test_a_hold_reserves_then_a_partial_post_moves_and_releases,
        test_void_then_post_is_refused_and_the_hold_is_released,
        test_the_same_post_retried_replays_with_its_key_and_is_refused_without,
        test_a_hold_in_a_batch_is_seen_by_the_batch_s_later_commands,
        test_holds_on_two_instances_at_once_never_reserve_more_than_the_account_has,
        test_after_its_timeout_a_post_is_refused_before_the_expiry_lands,
        test_expiry_racing_posts_from_another_instance_resolves_each_hold_once,
        test_holds_due_while_transaction_was_killed_expire_once_after_restart,
        test_while_the_instance_that_held_is_down_another_expires_it_once,
    ])
