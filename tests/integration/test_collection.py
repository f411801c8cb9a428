"""insomnia.json, run as a user would: every request in order against
freshly started services, each answering the status its description
documents ("Expect: <status>"). A request without an expectation fails.
The collection runs twice: on open services with the environment's empty
token, and on services with --auth-file given a token of every scope."""

import hashlib
import json
import os
import re
import secrets
import urllib.parse

import harness

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXPECT = re.compile(r"^Expect: (\d{3})\b")


def load_collection():
    with open(os.path.join(ROOT, "insomnia.json")) as f:
        doc = json.load(f)
    assert doc["_type"] == "export" and doc["__export_format"] == 4
    return doc["resources"]


def ordered_requests(resources):
    folders = {r["_id"]: r for r in resources if r["_type"] == "request_group"}
    requests = [r for r in resources if r["_type"] == "request"]
    for r in requests:
        assert r["parentId"] in folders, f"{r['name']}: not in a folder"
    return sorted(requests, key=lambda r: (folders[r["parentId"]]["metaSortKey"], r["metaSortKey"]))


def render(text, env):
    def var(m):
        name = m.group(1)
        assert name in env, f"unknown variable {name}"
        return env[name]
    return re.sub(r"\{\{\s*_\.(\w+)\s*\}\}", var, text)


def request_headers(r, env):
    """The headers Insomnia sends: the request's own, and its bearer
    authentication (Insomnia leaves the header out while the token is empty)."""
    headers = {h["name"]: render(h["value"], env) for h in r.get("headers", [])}
    auth = r.get("authentication") or {}
    if auth.get("type") == "bearer" and not auth.get("disabled"):
        token = render(auth["token"], env)
        if token:
            headers["Authorization"] = ((auth.get("prefix") or "Bearer") + " " + token)
    return headers


def request_body(r, env):
    """The body Insomnia builds: a form mimeType from body.params (enabled
    ones, form-encoded), any other from body.text. Multipart and files are
    not used by the collection."""
    body = r.get("body") or {}
    mime = body.get("mimeType")
    assert mime != "multipart/form-data" and "fileName" not in body, r["name"]
    if mime == "application/x-www-form-urlencoded":
        params = [(render(p["name"], env), render(p.get("value", ""), env))
                  for p in body.get("params", []) if not p.get("disabled")]
        return urllib.parse.urlencode(params).encode()
    text = body.get("text")
    return render(text, env).encode() if text else None


def request_url(r, env):
    """The URL with the request's enabled parameters appended, as Insomnia does."""
    url = render(r["url"], env)
    params = [(render(p["name"], env), render(p.get("value", ""), env))
              for p in r.get("parameters", []) if not p.get("disabled")]
    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    return url


def run_collection(token=None):
    resources = load_collection()
    base = [r for r in resources if r["_type"] == "environment" and r["parentId"].startswith("wrk_")]
    assert len(base) == 1, "one base environment"
    assert {"transaction_url", "accounting_url", "stream_url", "token"} <= set(base[0]["data"])

    endpoints = harness.Endpoints()
    data = harness.tmpdir()
    extra = ()
    if token:
        auth_file = os.path.join(data, "auth")
        with open(auth_file, "w") as f:
            f.write("insomnia write,read,metrics * %s\n" % hashlib.sha256(token.encode()).hexdigest())
        extra = ("--auth-file", auth_file)
    stream = harness.start_stream(endpoints, os.path.join(data, "stream"), extra=extra)
    transaction = harness.start_transaction(endpoints, extra=extra)
    accounting = harness.start_accounting(endpoints, os.path.join(data, "accounting"), extra=extra)
    env = {"transaction_url": transaction.url, "accounting_url": accounting.url,
           "stream_url": stream.url, "token": token or base[0]["data"]["token"]}

    requests = ordered_requests(resources)
    assert len(requests) >= 30
    for r in requests:
        m = EXPECT.match(r.get("description", ""))
        assert m, f"request '{r['name']}' documents no 'Expect: <status>'"
        headers = request_headers(r, env)
        body = request_body(r, env)
        status, resp_headers, payload = harness.request(
            r["method"], request_url(r, env), body, headers)
        assert status == int(m.group(1)), \
            f"{r['name']}: expected {m.group(1)}, got {status}: {payload[:300]!r}"
        if status >= 400:
            assert resp_headers["content-type"].startswith("application/problem+json"), r["name"]
            problem = json.loads(payload)
            assert problem["status"] == status and problem["title"], r["name"]
        assert resp_headers.get("x-request-id"), f"{r['name']}: no X-Request-Id"

    for service in (accounting, transaction, stream):
        service.stop_clean()


def test_collection_runs_top_to_bottom_as_documented():
    run_collection()


def test_collection_runs_the_same_with_a_token():
    run_collection(token=secrets.token_hex(16))


if __name__ == "__main__":
    harness.run_tests([test_collection_runs_top_to_bottom_as_documented,
                       test_collection_runs_the_same_with_a_token])
