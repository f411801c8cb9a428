"""The upcast, for real: a v1 log written by the schema-1 services
(tests/fixtures/v1, made by its make_fixture.py) loads under this version
and every answer equals what the v1 code answered, but for the fields
schema 2 adds; a log with a v1 prefix and a v2 tail works and its
replicas stay byte-identical; the stream versions and checks `expect`
for the new types by the account they name."""

import json
import os
import shutil
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_stream import Client, new_id  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "v1")
# What schema 2 adds to an account body (and to each list entry), and to /stats.
ACCOUNT_ADDED = ("currency", "overdraft_limit", "metadata", "pending_debits",
                 "pending_credits", "available")
STATS_ADDED = ("currency_skipped", "currencies", "feed_subscribers")


def fixture():
    with open(os.path.join(FIXTURE, "answers.json"), encoding="utf-8") as f:
        return json.load(f)


def start_with_fixture(extra=()):
    endpoints = harness.Endpoints()
    work = harness.tmpdir()
    stream_dir = os.path.join(work, "stream")
    os.makedirs(stream_dir)
    shutil.copyfile(os.path.join(FIXTURE, "events.jsonl"),
                    os.path.join(stream_dir, "events.jsonl"))
    stream = harness.start_stream(endpoints, stream_dir, extra=["--heartbeat-ms", "100"])
    return endpoints, work, stream_dir, stream


def caught_up(accounting, seq):
    harness.wait_until(
        lambda: harness.get_json(accounting.url + "/health")[1]["applied_seq"] >= seq,
        what=f"accounting at seq {seq}")


def without(body, keys):
    return {k: v for k, v in body.items() if k not in keys}


def strip_account(answer):
    """A v2 answer as v1 gave it: the added fields removed, after checking
    them (a v1 account is in XXX with the default limit and no metadata)."""
    status, body = answer
    if status == 200 and "account" in body and "balance" in body:
        assert body["currency"] == "XXX" and body["overdraft_limit"] == 0, body
        assert body["metadata"] == {}, body
        # No holds in v1: nothing pending, all of the balance available.
        assert body["pending_debits"] == body["pending_credits"] == 0, body
        assert body["available"] == body["balance"], body
        body = without(body, ACCOUNT_ADDED)
    return {"status": status, "body": body}


def check_answers(accounting, recorded):
    get = lambda path: harness.get_json(accounting.url + path)  # noqa: E731
    for account, answer in recorded["accounts"].items():
        quoted = urllib.parse.quote(account)
        assert strip_account(get(f"/accounts/{quoted}")) == answer, account
        for seq, past in recorded["at_seq"][account].items():
            assert strip_account(get(f"/accounts/{quoted}?at_seq={seq}")) == past, (account, seq)
        for ts, past in recorded["at"][account].items():
            got = get(f"/accounts/{quoted}?at=" + urllib.parse.quote(ts))
            assert strip_account(got) == past, (account, ts)
        after = 0
        for page in recorded["history"][account]:
            status, body = get(f"/accounts/{quoted}/events?after_seq={after}&limit=40")
            assert {"status": status, "body": body} == page, (account, after)
            after = body.get("next_after_seq") if status == 200 else None
    for page in recorded["list"]:
        status, body = get("/accounts?limit=7&after=" + urllib.parse.quote(page["after"]))
        for entry in body["accounts"]:
            assert entry["currency"] == "XXX" and entry["metadata"] == {}, entry
        body["accounts"] = [without(a, ACCOUNT_ADDED) for a in body["accounts"]]
        assert {"status": status, "body": body} == without(page, ("after",)), page["after"]
    status, stats = get("/stats")
    assert stats["currency_skipped"] == 0
    assert stats["currencies"] == {"XXX": {"accounts": stats["accounts"],
                                           "total_balance": stats["total_balance"]}}
    assert {"status": status, "body": without(stats, STATS_ADDED)} == recorded["stats"]


def test_v1_log_answers_exactly_as_the_v1_code_did():
    recorded = fixture()
    endpoints, work, stream_dir, stream = start_with_fixture()
    accounting = harness.start_accounting(endpoints, os.path.join(work, "acc"))
    caught_up(accounting, recorded["stats"]["body"]["applied_seq"])
    check_answers(accounting, recorded)
    # The replica is the fixture's bytes, and a restart from it alone (the
    # stream down) answers the same.
    with open(os.path.join(FIXTURE, "events.jsonl"), "rb") as f:
        original = f.read()
    assert harness.log_data(os.path.join(work, "acc")) == original
    assert harness.log_data(stream_dir) == original
    accounting.stop_clean()
    stream.stop_clean()
    accounting.start()
    check_answers(accounting, recorded)
    accounting.stop_clean()


def opened(account, currency, limit, metadata=None, expect=None):
    event = {"id": new_id(), "type": "account_opened", "v": 2, "account": account,
             "currency": currency, "overdraft_limit": limit}
    if metadata is not None:
        event["metadata"] = metadata
    if expect is not None:
        event["expect"] = expect
    return json.dumps(event, separators=(",", ":"))


def money(kind, currency, amount, expect=None, **accounts):
    event = {"id": new_id(), "type": kind, "v": 2, **accounts, "amount": amount,
             "currency": currency}
    if expect is not None:
        event["expect"] = expect
    return json.dumps(event, separators=(",", ":"))


def test_mixed_log_v1_prefix_v2_tail_folds_and_replicas_stay_identical():
    recorded = fixture()
    last_v1 = recorded["stats"]["body"]["applied_seq"]
    endpoints, work, stream_dir, stream = start_with_fixture()
    first = harness.start_accounting(endpoints, os.path.join(work, "acc1"))
    client = Client(endpoints)
    # The stream versions account_opened by its account: opening an
    # account that has events, expecting version 0, is a conflict.
    alice_version = recorded["accounts"]["alice"]["body"]["version"]
    result = client.append(opened("alice", "EUR", 0, expect={"alice": 0}))
    assert result == {"status": "conflict", "versions": {"alice": alice_version}}, result
    assert client.append(opened("eu-cash", "EUR", None, expect={"eu-cash": 0}))["status"] == "ok"
    assert client.append(opened("eu-shop", "EUR", 500, {"tier": "gold", "city": "Zürich"},
                                expect={"eu-shop": 0}))["status"] == "ok"
    ok = client.append(
        money("deposited", "EUR", 1000, account="eu-shop", expect={"eu-shop": 1}),
        money("withdrawn", "EUR", 300, account="eu-cash"),
        money("transferred", "EUR", 1500, **{"from": "eu-shop", "to": "eu-cash"}),
        money("deposited", "XXX", 7, account="alice"),
        json.dumps({"id": new_id(), "type": "account_updated", "v": 2, "account": "eu-shop",
                    "overdraft_limit": 900, "metadata": {"tier": "platinum"},
                    "expect": {"eu-shop": 1}}, separators=(",", ":")))
    assert ok["status"] == "ok", ok
    # A v1 proposal (a writer of the previous version) is stored as given.
    v1 = json.dumps({"id": new_id(), "type": "deposited", "v": 1, "account": "bob",
                     "amount": 5})
    assert client.append(v1)["status"] == "ok"
    client.close()
    head = last_v1 + 8
    second = harness.start_accounting(endpoints, os.path.join(work, "acc2"))
    for accounting in (first, second):
        caught_up(accounting, head)
    lines = harness.log_data(stream_dir)
    for name in ("acc1", "acc2"):
        assert harness.log_data(os.path.join(work, name)) == lines, name
    tail = [json.loads(line) for line in lines.splitlines()[last_v1:]]
    assert [e["v"] for e in tail] == [2, 2, 2, 2, 2, 2, 2, 1]
    assert tail[-1] == {**json.loads(v1), "seq": head, "ts": tail[-1]["ts"]}
    for accounting in (first, second):
        status, shop = harness.get_json(accounting.url + "/accounts/eu-shop")
        assert status == 200 and shop["balance"] == -500 and shop["version"] == 4, shop
        assert shop["currency"] == "EUR" and shop["overdraft_limit"] == 900
        assert shop["metadata"] == {"tier": "platinum"}
        status, past = harness.get_json(accounting.url + f"/accounts/eu-shop?at_seq={head - 4}")
        assert past["overdraft_limit"] == 500 and past["balance"] == 1000, past
        assert past["metadata"] == {"city": "Zürich", "tier": "gold"}, past
        status, cash = harness.get_json(accounting.url + "/accounts/eu-cash")
        assert cash["overdraft_limit"] is None and cash["balance"] == 1200, cash
        status, alice = harness.get_json(accounting.url + "/accounts/alice")
        assert alice["currency"] == "XXX" and alice["version"] == alice_version + 1
        status, page = harness.get_json(accounting.url + "/accounts?currency=EUR")
        assert [a["account"] for a in page["accounts"]] == ["eu-cash", "eu-shop"], page
        status, page = harness.get_json(accounting.url + "/accounts?metadata.tier=platinum")
        assert [a["account"] for a in page["accounts"]] == ["eu-shop"], page
        status, page = harness.get_json(accounting.url + "/accounts?metadata.tier=gold")
        assert status == 200 and page["accounts"] == [], page
        status, stats = harness.get_json(accounting.url + "/stats")
        v1_total = recorded["stats"]["body"]["total_balance"]
        assert stats["currencies"]["EUR"] == {"accounts": 2, "total_balance": 700}, stats
        assert stats["currencies"]["XXX"]["total_balance"] == v1_total + 12, stats
        status, history = harness.get_json(accounting.url + "/accounts/eu-shop/events")
        assert [e["type"] for e in history["events"]] == [
            "account_opened", "deposited", "transferred", "account_updated"], history
        assert [e["balance_after"] for e in history["events"]] == [0, 1000, -500, -500]
    for service in (first, second, stream):
        service.stop_clean()


def test_unknown_types_of_a_newer_writer_are_stored_skipped_and_counted():
    recorded = fixture()
    endpoints, work, stream_dir, stream = start_with_fixture()
    stream.stop_clean()
    last = recorded["stats"]["body"]["applied_seq"]
    ts = json.loads(harness.log_data(stream_dir).splitlines()[-1])["ts"]
    newer = ('{"seq":%d,"id":"h1","type":"transfer_frozen","v":2,"ts":"%s","from":"alice",'
             '"to":"bob","amount":5,"currency":"XXX","until":"2030-01-01T00:00:00.000Z"}'
             % (last + 1, ts))
    harness.append_log(stream_dir, newer.encode() + b"\n")
    stream.start()
    accounting = harness.start_accounting(endpoints, os.path.join(work, "acc"))
    caught_up(accounting, last + 1)
    status, stats = harness.get_json(accounting.url + "/stats")
    assert stats["unknown_skipped"] == 1 and stats["applied_seq"] == last + 1, stats
    status, alice = harness.get_json(accounting.url + "/accounts/alice")
    assert strip_account((status, alice)) == {**recorded["accounts"]["alice"], "body": {
        **recorded["accounts"]["alice"]["body"], "applied_seq": last + 1}}
    accounting.stop_clean()
    stream.stop_clean()


def test_a_v1_writer_paying_into_an_eur_account_is_stored_and_skipped_by_the_folds():
    """Rolling upgrade: a transaction of the previous version proposes v1
    (currency XXX) money for an account opened in EUR. The stream, with
    no rules, stores it; accounting and the write model both skip it and
    count it, so their balances stay those of the rule."""
    endpoints = harness.Endpoints()
    work = harness.tmpdir()
    stream = harness.start_stream(endpoints, os.path.join(work, "stream"),
                                  extra=["--heartbeat-ms", "100"])
    txn = harness.start_transaction(endpoints)
    accounting = harness.start_accounting(endpoints, os.path.join(work, "acc"))
    client = Client(endpoints)
    assert client.append(opened("eur", "EUR", 0))["status"] == "ok"
    v1 = json.dumps({"id": new_id(), "type": "deposited", "v": 1, "account": "eur",
                     "amount": 5})
    assert client.append(v1)["status"] == "ok"
    client.close()
    caught_up(accounting, 2)
    status, stats = harness.get_json(accounting.url + "/stats")
    assert stats["currency_skipped"] == 1 and stats["currencies"] == {
        "EUR": {"accounts": 1, "total_balance": 0}}, stats
    status, account = harness.get_json(accounting.url + "/accounts/eur")
    assert account["balance"] == 0 and account["version"] == 1, account
    # The write model agrees: a withdrawal finds nothing to spend.
    harness.wait_until(lambda: harness.get_json(txn.url + "/health")[1]["applied_seq"] == 2,
                       what="the write model at seq 2")
    status, problem, _ = harness.post_json(txn.url + "/transactions",
                                           {"account": "eur", "amount": -1})
    assert status == 422 and problem["balance"] == 0, problem
    for service in (accounting, txn, stream):
        service.stop_clean()


if __name__ == "__main__":
    harness.run_tests([
        test_v1_log_answers_exactly_as_the_v1_code_did,
        test_mixed_log_v1_prefix_v2_tail_folds_and_replicas_stay_identical,
        test_unknown_types_of_a_newer_writer_are_stored_skipped_and_counted,
        test_a_v1_writer_paying_into_an_eur_account_is_stored_and_skipped_by_the_folds,
    ])
