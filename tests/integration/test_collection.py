"""insomnia.json, run as a user would: every request in order against
freshly started services, each answering the status its description
documents ("Expect: <status>"). A request without an expectation fails."""

import json
import os
import re

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


def test_collection_runs_top_to_bottom_as_documented():
    resources = load_collection()
    base = [r for r in resources if r["_type"] == "environment" and r["parentId"].startswith("wrk_")]
    assert len(base) == 1, "one base environment"
    assert {"transaction_url", "accounting_url", "stream_url"} <= set(base[0]["data"])

    endpoints = harness.Endpoints()
    data = harness.tmpdir()
    stream = harness.start_stream(endpoints, os.path.join(data, "stream"))
    transaction = harness.start_transaction(endpoints)
    accounting = harness.start_accounting(endpoints, os.path.join(data, "accounting"))
    env = {"transaction_url": transaction.url, "accounting_url": accounting.url,
           "stream_url": stream.url}

    requests = ordered_requests(resources)
    assert len(requests) >= 30
    for r in requests:
        m = EXPECT.match(r.get("description", ""))
        assert m, f"request '{r['name']}' documents no 'Expect: <status>'"
        headers = {h["name"]: render(h["value"], env) for h in r.get("headers", [])}
        body = r.get("body", {}).get("text")
        status, resp_headers, payload = harness.request(
            r["method"], render(r["url"], env), body.encode() if body else None, headers)
        assert status == int(m.group(1)), \
            f"{r['name']}: expected {m.group(1)}, got {status}: {payload[:300]!r}"
        if status >= 400:
            assert resp_headers["content-type"].startswith("application/problem+json"), r["name"]
            problem = json.loads(payload)
            assert problem["status"] == status and problem["title"], r["name"]
        assert resp_headers.get("x-request-id"), f"{r['name']}: no X-Request-Id"

    for service in (accounting, transaction, stream):
        service.stop_clean()


if __name__ == "__main__":
    harness.run_tests([test_collection_runs_top_to_bottom_as_documented])
