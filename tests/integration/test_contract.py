"""The contract test: a tour of every route of the three services, success
and error, each response checked against the OpenAPI document the service
serves at /openapi.json, with Debian's python3-jsonschema (Draft 2020-12,
the dialect of OpenAPI 3.1):

* the operation (path template and method) exists in the served part,
  and its per-path servers (or the document's) name the service's real
  address and port;
* the status is one of the operation's responses (405 and unknown-route
  404 against the document's x-method-not-allowed / x-route-not-found);
* the Content-Type is one of the response's media types and the body
  validates against its schema (problem bodies: their type URI too);
* every header the response declares as required is sent and valid,
  and every header of ours the service sends is declared.

Set CONTRACT_DUMP=FILE to write every (request, response) of the tour as
JSON lines, to see what the services answer.
"""

import json
import os
import signal
import subprocess
import time

import harness
from harness import request, wait_until

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError:   # scripts/setup installs python3-jsonschema
    jsonschema = None

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HTTP_TIMEOUT_S = 30.0
JSON = {"Content-Type": "application/json"}
# Headers the services set themselves; each must be declared where sent.
OUR_HEADERS = {"x-request-id", "retry-after", "allow", "idempotent-replayed",
               "www-authenticate"}


def make_token(name, scopes, accounts):
    out = subprocess.run([os.path.join(ROOT, "scripts", "token"), name, scopes, accounts],
                         check=True, capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    return lines[0], lines[1]


class Tour:
    """Runs requests and keeps (service, method, template, request, response)."""

    def __init__(self):
        self.records = []

    def run(self, service, method, template, path=None, body=None, headers=None,
            expect=None):
        path = path or template
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = {**JSON, **(headers or {})}
        status, resp_headers, data = request(method, service.url + path, body, headers,
                                             timeout=HTTP_TIMEOUT_S)
        if expect is not None:
            assert status == expect, (method, path, status, data[:300])
        self.records.append({"service": service, "method": method, "template": template,
                             "path": path, "status": status, "headers": resp_headers,
                             "body": data})
        return status, resp_headers, data


def tour_open(tour, stream, tx, accounting):
    run = tour.run
    # transaction: successes
    run(tx, "POST", "/transactions", body={"account": "alice", "amount": 1000,
                                           "reference": "salary"}, expect=201)
    run(tx, "POST", "/transactions", body={"account": "alice", "amount": -200}, expect=201)
    key = {"Idempotency-Key": "tour-1"}
    run(tx, "POST", "/transactions", body={"account": "bob", "amount": 5}, headers=key,
        expect=201)
    _, headers, _ = run(tx, "POST", "/transactions", body={"account": "bob", "amount": 5},
                        headers=key, expect=201)
    assert headers.get("idempotent-replayed") == "true"
    run(tx, "POST", "/transfers", body={"from": "alice", "to": "bob", "amount": 300},
        expect=201)
    status, _, data = run(tx, "POST", "/batch", body={"commands": [
        {"account": "carol", "amount": 50}, {"from": "carol", "to": "bob", "amount": 20}]},
        expect=201)
    # schema 2: accounts with a currency, their limit and metadata
    run(tx, "POST", "/accounts", body={"account": "eur-shop", "currency": "EUR",
                                       "overdraft_limit": 0, "metadata": {"tier": "gold"}},
        expect=201)
    _, headers, _ = run(tx, "POST", "/accounts", body={
        "account": "eur-shop", "currency": "EUR", "overdraft_limit": 0,
        "metadata": {"tier": "gold"}}, expect=201)
    assert headers.get("idempotent-replayed") == "true"
    run(tx, "PATCH", "/accounts/{id}", "/accounts/eur-shop",
        body={"overdraft_limit": None}, expect=200)
    run(tx, "POST", "/transactions", body={"account": "eur-shop", "amount": -5,
                                           "currency": "EUR"}, expect=201)
    status, _, data = run(tx, "POST", "/batch", body={"commands": [
        {"account": "eur-cash", "currency": "EUR"},
        {"from": "eur-shop", "to": "eur-cash", "amount": 5}]}, expect=201)
    last_seq = json.loads(data)["last_seq"]
    run(tx, "POST", "/accounts", body={"account": "eur-shop", "currency": "USD"},
        expect=409)
    run(tx, "POST", "/accounts", body={"account": "x", "currency": "eur"}, expect=422)
    run(tx, "POST", "/transfers", body={"from": "eur-shop", "to": "alice", "amount": 1},
        expect=422)
    run(tx, "PATCH", "/accounts/{id}", "/accounts/nobody", body={"overdraft_limit": 1},
        expect=404)
    run(tx, "PATCH", "/accounts/{id}", "/accounts/eur-shop", body={}, expect=422)
    # transaction: refusals
    run(tx, "POST", "/transactions", body={"account": "bob", "amount": 6}, headers=key,
        expect=422)
    run(tx, "POST", "/transactions", body={"account": "dave", "amount": -1}, expect=422)
    run(tx, "POST", "/transfers", body={"from": "dave", "to": "bob", "amount": 1},
        expect=422)
    run(tx, "POST", "/transactions", body={"account": "bad id!", "amount": 0}, expect=422)
    run(tx, "POST", "/transfers", body={"from": "a", "to": "a", "amount": 1}, expect=422)
    run(tx, "POST", "/batch", body={"commands": []}, expect=422)
    run(tx, "POST", "/transactions", body='{"account":', headers=JSON, expect=400)
    run(tx, "POST", "/transactions", body="", headers={}, expect=400)
    run(tx, "POST", "/transactions", body="", expect=415,
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    run(tx, "POST", "/transactions", body='{"account":"a","amount":1,"reference":"'
        + "x" * 70000 + '"}', headers=JSON, expect=413)
    run(tx, "POST", "/transactions", "/transactions?dry_run=1",
        body={"account": "a", "amount": 1}, expect=400)
    run(tx, "GET", "/transactions", expect=405)
    run(tx, "GET", "/nowhere", expect=404)
    run(tx, "GET", "/health", expect=200)
    run(tx, "GET", "/metrics", expect=200)
    run(tx, "GET", "/openapi.json", expect=200)
    # accounting
    wait_until(lambda: request("GET", accounting.url + f"/accounts/bob?min_seq={last_seq}"
                               "&wait_ms=5000", timeout=HTTP_TIMEOUT_S)[0] == 200,
               what="accounting caught up")
    run(accounting, "GET", "/accounts", expect=200)
    run(accounting, "GET", "/accounts", "/accounts?limit=1", expect=200)
    run(accounting, "GET", "/accounts", "/accounts?limit=1&after=alice", expect=200)
    run(accounting, "GET", "/accounts", "/accounts?limit=0", expect=400)
    run(accounting, "GET", "/accounts/{id}", "/accounts/alice", expect=200)
    run(accounting, "GET", "/accounts/{id}", "/accounts/alice?at_seq=1", expect=200)
    run(accounting, "GET", "/accounts/{id}", "/accounts/alice?at=2999-01-01T00:00:00Z",
        expect=200)
    run(accounting, "GET", "/accounts/{id}", f"/accounts/bob?min_seq={last_seq}&wait_ms=100",
        expect=200)
    run(accounting, "GET", "/accounts/{id}", f"/accounts/bob?min_seq={last_seq + 1000}"
        "&wait_ms=0", expect=503)
    run(accounting, "GET", "/accounts/{id}", f"/accounts/bob?at_seq={last_seq + 1000}",
        expect=422)
    run(accounting, "GET", "/accounts/{id}", "/accounts/bob?at_seq=1&at=2026-01-01T00:00:00Z",
        expect=400)
    run(accounting, "GET", "/accounts/{id}", "/accounts/zoe", expect=404)
    run(accounting, "GET", "/accounts/{id}", "/accounts/bad%20id", expect=400)
    run(accounting, "GET", "/accounts/{id}", "/accounts/alice?verbose=1", expect=400)
    run(accounting, "GET", "/accounts/{id}/events", "/accounts/alice/events", expect=200)
    run(accounting, "GET", "/accounts/{id}/events", "/accounts/alice/events?after_seq=1"
        "&limit=1", expect=200)
    run(accounting, "GET", "/accounts/{id}/events", "/accounts/zoe/events", expect=404)
    run(accounting, "GET", "/accounts/{id}/events", "/accounts/alice/events?limit=x",
        expect=400)
    run(accounting, "GET", "/accounts", "/accounts?currency=EUR", expect=200)
    run(accounting, "GET", "/accounts", "/accounts?metadata.tier=gold", expect=200)
    run(accounting, "GET", "/accounts", "/accounts?currency=eur", expect=400)
    run(accounting, "GET", "/accounts/{id}", "/accounts/eur-shop", expect=200)
    run(accounting, "GET", "/accounts/{id}/events", "/accounts/eur-shop/events", expect=200)
    run(accounting, "GET", "/stats", expect=200)
    run(accounting, "GET", "/events", "/events?from_seq=1&limit=2", expect=200)
    run(accounting, "GET", "/events", "/events?account=alice", expect=200)
    run(accounting, "GET", "/events", "/events?from_seq=0", expect=400)
    run(accounting, "GET", "/events", "/events?account=bad%20id", expect=400)
    run(accounting, "GET", "/", expect=200)
    run(accounting, "GET", "/", "/?x=1", expect=400)
    run(accounting, "GET", "/health", expect=200)
    run(accounting, "GET", "/metrics", expect=200)
    run(accounting, "GET", "/openapi.json", expect=200)
    run(accounting, "DELETE", "/accounts/{id}", "/accounts/alice", expect=405)
    run(accounting, "GET", "/accounts/{id}/nothing", "/accounts/alice/nothing", expect=404)
    # stream
    run(stream, "GET", "/events", expect=200)
    run(stream, "GET", "/events", "/events?from_seq=2&limit=2", expect=200)
    run(stream, "GET", "/events", "/events?limit=0", expect=400)
    run(stream, "GET", "/events", "/events?since=1", expect=400)
    run(stream, "POST", "/events", body={}, expect=405)
    run(stream, "GET", "/health", expect=200)
    run(stream, "GET", "/metrics", expect=200)
    run(stream, "GET", "/openapi.json", expect=200)
    # A GET with a body: its routes take none.
    run(stream, "GET", "/health", body={"x": 1}, expect=413)


def tour_secured(tour, stream, tx, accounting, tokens):
    run = tour.run
    bearer = lambda name: {"Authorization": "Bearer " + tokens[name]}   # noqa: E731
    run(tx, "POST", "/transactions", body={"account": "a", "amount": 1}, expect=401)
    run(tx, "POST", "/transactions", body={"account": "a", "amount": 1},
        headers={"Authorization": "Basic eDp5"}, expect=401)
    run(tx, "POST", "/transactions", body={"account": "a", "amount": 1},
        headers=bearer("reader"), expect=403)
    run(tx, "POST", "/transactions", body={"account": "x-1", "amount": 1},
        headers=bearer("teller"), expect=403)
    run(tx, "POST", "/transactions", body={"account": "team-a:1", "amount": 1},
        headers=bearer("teller"), expect=201)
    run(tx, "GET", "/metrics", expect=401)
    run(tx, "GET", "/health", expect=200)
    run(accounting, "GET", "/accounts/{id}", "/accounts/team-a:1", expect=401)
    run(accounting, "GET", "/accounts/{id}", "/accounts/x-1", headers=bearer("reader"),
        expect=403)
    run(accounting, "GET", "/stats", headers=bearer("teller"), expect=403)
    run(accounting, "GET", "/events", expect=401)
    run(accounting, "GET", "/events", "/events?account=x-1", headers=bearer("reader"),
        expect=403)
    run(accounting, "GET", "/events", headers=bearer("reader"), expect=200)
    run(accounting, "GET", "/", expect=200)
    run(stream, "GET", "/events", expect=401)
    run(stream, "GET", "/metrics", headers=bearer("reader"), expect=403)
    run(stream, "GET", "/openapi.json", expect=200)


def tour_unavailable(tour, stream, tx, token):
    """With the stream stopped: writes are 503 with Retry-After."""
    stream.stop_clean()
    headers = {**JSON, "Authorization": "Bearer " + token}
    body = json.dumps({"account": "team-a:late", "amount": 1})
    wait_until(lambda: request("POST", tx.url + "/transactions", body, headers,
                               timeout=HTTP_TIMEOUT_S)[0] == 503,
               timeout_s=30, what="503 while the stream is down")
    tour.run(tx, "POST", "/transactions", body=body, headers=headers, expect=503)
    tour.run(tx, "GET", "/health", expect=503)
    # A fresh accounting that never caught up: reads and /health are 503.
    fresh = harness.start_accounting(harness.Endpoints(), harness.tmpdir("ledger-fresh-"))
    tour.run(fresh, "GET", "/health", expect=503)
    for template, path in (("/accounts/{id}", "/accounts/zoe"), ("/accounts", "/accounts"),
                           ("/accounts/{id}/events", "/accounts/zoe/events"),
                           ("/stats", "/stats")):
        tour.run(fresh, "GET", template, path, expect=503)
    fresh.stop_clean()


# ---------------------------------------------------------------------------
# Validation

class Contract:
    def __init__(self, document):
        self.document = document
        self.resolver = jsonschema.RefResolver.from_schema(document)

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            _, node = self.resolver.resolve(node["$ref"])
        return node

    def validate(self, schema, instance, what):
        validator = Draft202012Validator(schema, resolver=self.resolver,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(instance), key=lambda e: e.path)
        assert not errors, f"{what}: " + "; ".join(
            f"{list(e.path)}: {e.message[:300]}" for e in errors[:5])

    def response_for(self, record):
        paths = self.document["paths"]
        method = record["method"].lower()
        status = str(record["status"])
        if status == "405":
            assert record["template"] in paths, record["template"]
            assert method not in paths[record["template"]], "405 for a served method"
            return self.deref(self.document["x-method-not-allowed"])
        if record["template"] not in paths:
            assert status == "404", (record["template"], status)
            return self.deref(self.document["x-route-not-found"])
        path_item = paths[record["template"]]
        assert method in path_item, f"{method} {record['template']} not in the served part"
        responses = path_item[method]["responses"]
        assert status in responses, \
            f"{record['method']} {record['path']}: {status} not documented"
        return self.deref(responses[status])

    def check(self, record):
        what = f"{record['service'].name} {record['method']} {record['path']} " \
               f"-> {record['status']}"
        response = self.response_for(record)
        headers = record["headers"]
        declared = {name.lower(): self.deref(header)
                    for name, header in response.get("headers", {}).items()}
        for name in OUR_HEADERS & set(headers):
            assert name in declared, f"{what}: header {name} sent but not declared"
        for name, header in declared.items():
            if header.get("required"):
                assert name in headers, f"{what}: required header {name} missing"
            if name in headers:
                self.validate(header["schema"], headers[name], f"{what} header {name}")
        content = response.get("content")
        if not content:
            assert not record["body"] or record["method"] == "HEAD", \
                f"{what}: a body where none is declared"
            return
        media = headers.get("content-type", "").split(";")[0].strip()
        assert media in content, f"{what}: Content-Type {media!r} not in {list(content)}"
        schema = content[media].get("schema")
        if schema is None:
            return
        body = record["body"]
        instance = json.loads(body) if "json" in media else body.decode()
        self.validate(schema, instance, what)


def check_servers(document, service):
    """The served part names the service's own address and port."""
    url = service.url
    top = [s["url"] for s in document.get("servers", [])]
    assert top == [url], (service.name, top, url)
    for path, item in document["paths"].items():
        servers = [s["url"] for s in item.get("servers", [])] or top
        assert url in servers, (service.name, path, servers)


def test_every_response_of_the_tour_matches_the_served_openapi():
    assert jsonschema is not None, "python3-jsonschema is missing: run scripts/setup"
    endpoints = harness.Endpoints()
    stream = harness.start_stream(endpoints, harness.tmpdir("ledger-stream-"))
    tx = harness.start_transaction(endpoints)
    accounting = harness.start_accounting(endpoints, harness.tmpdir("ledger-accounting-"))
    tour = Tour()
    tour_open(tour, stream, tx, accounting)
    # The same services with an auth file.
    accounting.stop_clean()
    tx.stop_clean()
    stream.stop_clean()
    tokens, lines = {}, []
    for name, scopes, accounts in (("teller", "write", "team-a:*"),
                                   ("reader", "read", "team-a:*")):
        tokens[name], line = make_token(name, scopes, accounts)
        lines.append(line)
    auth_file = os.path.join(harness.tmpdir("ledger-auth-"), "auth")
    with open(auth_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    auth = ["--auth-file", auth_file]
    endpoints = harness.Endpoints()
    stream = harness.start_stream(endpoints, harness.tmpdir("ledger-stream-"), extra=auth)
    tx = harness.start_transaction(endpoints, extra=auth)
    accounting = harness.start_accounting(endpoints, harness.tmpdir("ledger-accounting-"),
                                          extra=auth)
    tour_secured(tour, stream, tx, accounting, tokens)
    documents, services = {}, (stream, tx, accounting)
    for service in services:
        status, document = harness.get_json(service.url + "/openapi.json")
        assert status == 200
        documents[service.name] = document
    tour_unavailable(tour, stream, tx, tokens["teller"])

    dump = os.environ.get("CONTRACT_DUMP")
    if dump:
        with open(dump, "w") as f:
            for r in tour.records:
                f.write(json.dumps({**r, "service": r["service"].name,
                                    "body": r["body"].decode(errors="replace")[:2000]})
                        + "\n")
    for service in services:
        check_servers(documents[service.name], service)
    contracts = {name: Contract(document) for name, document in documents.items()}
    failures = []
    for record in tour.records:
        try:
            contracts[record["service"].name].check(record)
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, f"{len(failures)} of {len(tour.records)} responses:\n" + \
        "\n".join(failures)
    # The repository's document is what the services serve, paths filtered.
    with open(os.path.join(ROOT, "openapi.json")) as f:
        whole = json.load(f)
    for name, document in documents.items():
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if method in ("servers", "parameters", "description", "summary"):
                    continue
                assert operation == whole["paths"][path][method], (name, path, method)
    tx.stop_clean()
    accounting.stop_clean()


if __name__ == "__main__":
    harness.run_tests([test_every_response_of_the_tour_matches_the_served_openapi])
