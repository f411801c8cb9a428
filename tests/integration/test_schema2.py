"""Schema version 2 through the transaction service: accounts opened with a
currency, their own limits and metadata; money only within a currency;
every refusal with its exact status, and what accounting then shows."""

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class Deployment:
    def __init__(self, extra_txn=(), extra_acc=()):
        self.endpoints = harness.Endpoints()
        work = harness.tmpdir()
        self.stream_dir = os.path.join(work, "stream")
        self.stream = harness.start_stream(self.endpoints, self.stream_dir)
        self.txn = harness.start_transaction(self.endpoints, extra=list(extra_txn))
        self.acc = harness.start_accounting(self.endpoints, os.path.join(work, "acc"),
                                            extra=list(extra_acc))

    def post(self, path, body, headers=None):
        return harness.post_json(self.txn.url + path, body, headers)[:2]

    def patch(self, account, body, headers=None):
        status, _, data = harness.request("PATCH", f"{self.txn.url}/accounts/{account}", body,
                                          headers)
        return status, json.loads(data)

    def account(self, account, query=""):
        head = harness.get_json(self.txn.url + "/health")[1]["head_seq"]
        return harness.get_json(f"{self.acc.url}/accounts/{account}?min_seq={head}{query}")

    def log(self):
        return harness.read_log(self.stream_dir)

    def stop(self):
        for service in (self.acc, self.txn, self.stream):
            service.stop_clean()


def fields(problem):
    return {e["field"]: e["message"] for e in problem.get("errors", [])}


def test_open_update_and_what_accounting_shows():
    d = Deployment()
    status, body = d.post("/accounts", {"account": "eur-1", "currency": "EUR",
                                        "overdraft_limit": 100,
                                        "metadata": {"tier": "gold", "city": "Zürich"}})
    assert status == 201, body
    assert body["type"] == "account_opened" and body["currency"] == "EUR", body
    assert body["overdraft_limit"] == 100 and body["version"] == 1, body
    assert body["metadata"] == {"city": "Zürich", "tier": "gold"}, body
    # The same settings again: a replay, nothing appended.
    before = len(d.log())
    status, again = d.post("/accounts", {"account": "eur-1", "currency": "EUR",
                                         "overdraft_limit": 100,
                                         "metadata": {"city": "Zürich", "tier": "gold"}})
    assert status == 201 and again["currency"] == "EUR" and again["version"] == 1, again
    assert len(d.log()) == before
    # Other settings: 409, nothing appended.
    for other in ({"currency": "USD"}, {"currency": "EUR", "overdraft_limit": 5},
                  {"currency": "EUR", "overdraft_limit": 100, "metadata": {"tier": "x"}}):
        status, problem = d.post("/accounts", {"account": "eur-1", **other})
        assert status == 409, (other, status, problem)
    assert len(d.log()) == before
    status, body = d.post("/transactions", {"account": "eur-1", "amount": -100})
    assert status == 201 and body["currency"] == "EUR" and body["balance"] == -100, body
    status, problem = d.post("/transactions", {"account": "eur-1", "amount": -1})
    assert status == 422 and problem["overdraft_limit"] == 100, problem
    status, body = d.patch("eur-1", {"overdraft_limit": 1000, "metadata": {"tier": "plat"}})
    assert status == 200 and body["type"] == "account_updated", body
    assert body["overdraft_limit"] == 1000 and body["version"] == 3, body
    status, body = d.post("/transactions", {"account": "eur-1", "amount": -900,
                                            "currency": "EUR"})
    assert status == 201 and body["balance"] == -1000, body
    status, account = d.account("eur-1")
    assert status == 200, account
    assert account["balance"] == -1000 and account["version"] == 4
    assert account["currency"] == "EUR" and account["overdraft_limit"] == 1000
    assert account["metadata"] == {"tier": "plat"}
    opened_seq = d.log()[0]["seq"]
    status, past = d.account("eur-1", f"&at_seq={opened_seq + 1}")
    assert past["overdraft_limit"] == 100 and past["balance"] == -100, past
    assert past["metadata"] == {"city": "Zürich", "tier": "gold"}, past
    # A keyed open retried answers as it did first (the event), not the settings.
    keyed = {"account": "eur-2", "currency": "EUR"}
    status, first = d.post("/accounts", keyed, {"Idempotency-Key": "open-eur-2"})
    assert status == 201 and first["type"] == "account_opened", first
    assert d.post("/accounts", keyed, {"Idempotency-Key": "open-eur-2"}) == (201, first)
    # Unlimited accounts may go negative without end.
    assert d.post("/accounts", {"account": "cash", "currency": "EUR",
                                "overdraft_limit": None})[0] == 201
    status, body = d.post("/transfers", {"from": "cash", "to": "eur-1",
                                         "amount": 10**15})
    assert status == 201 and body["balances"]["cash"] == -10**15, body
    # An implicit account takes the command's currency, else XXX.
    status, body = d.post("/transactions", {"account": "usd-1", "amount": 5,
                                            "currency": "USD"})
    assert status == 201 and body["currency"] == "USD", body
    status, body = d.post("/transactions", {"account": "plain", "amount": 5})
    assert status == 201 and body["currency"] == "XXX", body
    assert d.account("plain")[0] == 200  # accounting has applied everything
    status, stats = harness.get_json(d.acc.url + "/stats")
    assert stats["currencies"]["EUR"] == {"accounts": 3, "total_balance": -1000}, stats
    assert stats["currencies"]["USD"]["total_balance"] == 5, stats
    status, page = harness.get_json(d.acc.url + "/accounts?currency=EUR")
    assert [a["account"] for a in page["accounts"]] == ["cash", "eur-1", "eur-2"], page
    status, page = harness.get_json(d.acc.url + "/accounts?metadata.tier=plat")
    assert [a["account"] for a in page["accounts"]] == ["eur-1"], page
    assert [e["v"] for e in d.log()] == [2] * len(d.log())
    d.stop()


def test_every_new_validation_has_its_exact_status():
    d = Deployment()
    assert d.post("/accounts", {"account": "e1", "currency": "EUR"})[0] == 201
    assert d.post("/accounts", {"account": "u1", "currency": "USD"})[0] == 201
    assert d.post("/transactions", {"account": "u1", "amount": 50})[0] == 201
    before = len(d.log())
    cases = [
        ("/accounts", {"account": "x", "currency": "eur"}, 422, "currency"),
        ("/accounts", {"account": "x", "currency": "EU"}, 422, "currency"),
        ("/accounts", {"account": "x", "currency": "EURO1234567890"}, 422, "currency"),
        ("/accounts", {"account": "x", "currency": 978}, 422, "currency"),
        ("/accounts", {"account": "x"}, 422, "currency"),
        ("/accounts", {"account": "x", "currency": "EUR", "overdraft_limit": -1}, 422,
         "overdraft_limit"),
        ("/accounts", {"account": "x", "currency": "EUR", "overdraft_limit": 1.5}, 422,
         "overdraft_limit"),
        ("/accounts", {"account": "x", "currency": "EUR",
                       "metadata": {f"k{i}": "v" for i in range(17)}}, 422, "metadata"),
        ("/accounts", {"account": "x", "currency": "EUR", "metadata": {"Bad": "v"}}, 422,
         "metadata.Bad"),
        ("/accounts", {"account": "x", "currency": "EUR", "metadata": {"k": "v" * 257}},
         422, "metadata.k"),
        ("/accounts", {"account": "x", "currency": "EUR", "metadata": {"k": 1}}, 422,
         "metadata.k"),
        ("/accounts", {"account": "x", "currency": "EUR", "metadata": ["k"]}, 422,
         "metadata"),
        ("/accounts", {"account": "x", "currency": "EUR", "amount": 5}, 422, "amount"),
        ("/transactions", {"account": "e1", "amount": 5, "currency": "USD"}, 422,
         "currency"),
        ("/transactions", {"account": "e1", "amount": 5, "currency": "usd"}, 422,
         "currency"),
        ("/transfers", {"from": "u1", "to": "e1", "amount": 5}, 422, "to"),
        ("/transfers", {"from": "u1", "to": "e1", "amount": 5, "currency": "USD"}, 422,
         "currency"),
        ("/batch", {"commands": [
            {"account": "b-eur", "currency": "EUR"},
            {"account": "b-usd", "currency": "USD"},
            {"account": "b-usd", "amount": 10},
            {"from": "b-usd", "to": "b-eur", "amount": 5}]}, 422, "commands[3].to"),
        ("/batch", {"commands": [
            {"account": "b2", "amount": 10, "currency": "USD"},
            {"from": "b2", "to": "e1", "amount": 5}]}, 422, "commands[1].to"),
        ("/batch", {"commands": [
            {"account": "b3", "currency": "EUR"},
            {"account": "b3", "currency": "EUR"}]}, 409, "commands[1].account"),
    ]
    for path, body, status, field in cases:
        got, problem = d.post(path, body)
        assert got == status and field in fields(problem), (path, body, got, problem)
    status, problem = d.patch("e1", {"overdraft_limit": -5})
    assert status == 422 and "overdraft_limit" in fields(problem), problem
    status, problem = d.patch("e1", {})
    assert status == 422 and "overdraft_limit" in fields(problem), problem
    status, problem = d.patch("e1", {"account": "e1", "overdraft_limit": 5})
    assert status == 422 and "account" in fields(problem), problem
    status, problem = d.patch("nobody", {"overdraft_limit": 5})
    assert status == 404, problem
    assert len(d.log()) == before
    # The same batch without the cross-currency transfer lands whole.
    status, body = d.post("/batch", {"commands": [
        {"account": "b-eur", "currency": "EUR", "overdraft_limit": 0},
        {"account": "b-usd", "currency": "USD", "metadata": {"k": ""}},
        {"account": "b-usd", "amount": 10},
        {"from": "b-usd", "to": "u1", "amount": 5},
        {"account": "b-usd", "overdraft_limit": None}]})
    assert status == 201, body
    assert [r["type"] for r in body["results"]] == [
        "account_opened", "account_opened", "deposited", "transferred", "account_updated"]
    d.stop()


def test_account_routes_need_write_and_the_accounts_of_the_token():
    work = harness.tmpdir()
    tokens = {"eu": "e" * 64, "reader": "r" * 64}
    auth = os.path.join(work, "auth")
    with open(auth, "w") as f:
        f.write(f"eu write,read eur-* {hashlib.sha256(tokens['eu'].encode()).hexdigest()}\n")
        f.write(f"reader read * {hashlib.sha256(tokens['reader'].encode()).hexdigest()}\n")
    d = Deployment(extra_txn=["--auth-file", auth], extra_acc=["--auth-file", auth])
    eu = {"Authorization": f"Bearer {tokens['eu']}"}
    reader = {"Authorization": f"Bearer {tokens['reader']}"}
    assert d.post("/accounts", {"account": "eur-1", "currency": "EUR"})[0] == 401
    status, problem = d.post("/accounts", {"account": "eur-1", "currency": "EUR"}, reader)
    assert status == 403, problem
    status, problem = d.post("/accounts", {"account": "usd-1", "currency": "USD"}, eu)
    assert status == 403 and "account" in fields(problem), problem
    status, problem = d.patch("usd-1", {"overdraft_limit": 1}, eu)
    assert status == 403, problem
    status, problem = d.post("/batch", {"commands": [
        {"account": "eur-2", "currency": "EUR"}, {"account": "usd-2", "currency": "USD"}]}, eu)
    assert status == 403 and "commands[1].account" in fields(problem), problem
    assert d.log() == []
    assert d.post("/accounts", {"account": "eur-1", "currency": "EUR"}, eu)[0] == 201
    assert d.patch("eur-1", {"metadata": {"k": "v"}}, eu)[0] == 200
    assert [e["meta"]["principal"] for e in d.log()] == ["eu", "eu"]
    # /stats for a token that sees some accounts: their totals per currency.
    status, _, data = harness.request("POST", d.txn.url + "/transactions",
                                      {"account": "xxx-1", "amount": 5}, reader)
    assert status == 403
    harness.wait_until(lambda: harness.request("GET", d.acc.url + "/accounts/eur-1",
                                               headers=eu)[0] == 200, what="eur-1 folded")
    status, _, data = harness.request("GET", d.acc.url + "/stats", headers=eu)
    stats = json.loads(data)
    assert status == 200 and stats["filtered"] is True, stats
    assert stats["currencies"] == {"EUR": {"accounts": 1, "total_balance": 0}}, stats
    d.stop()


if __name__ == "__main__":
    harness.run_tests([
        test_open_update_and_what_accounting_shows,
        test_every_new_validation_has_its_exact_status,
        test_account_routes_need_write_and_the_accounts_of_the_token,
    ])
