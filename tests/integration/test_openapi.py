"""openapi.json cannot drift from the code: every route a service exposes
is in the document, and every operation in the document is served by some
service and answers (not a route 404)."""

import json
import os
import re

import harness

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def example_body(operation):
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    return None if content is None else content["example"]


def test_every_route_is_documented_and_every_documented_route_answers():
    with open(os.path.join(ROOT, "openapi.json")) as f:
        document = json.load(f)
    assert document["openapi"].startswith("3.1")

    endpoints = harness.Endpoints()
    data = harness.tmpdir()
    services = [harness.start_stream(endpoints, os.path.join(data, "stream")),
                harness.start_transaction(endpoints),
                harness.start_accounting(endpoints, os.path.join(data, "accounting"))]

    served = set()
    methods = {"get", "post", "put", "patch", "delete"}
    for service in services:
        status, part = harness.get_json(service.url + "/openapi.json")
        assert status == 200, service.name
        assert "x-undocumented-routes" not in part, \
            f"{service.name} serves undocumented routes: {part['x-undocumented-routes']}"
        for path, operations in part["paths"].items():
            for method, operation in operations.items():
                if method not in methods:
                    continue
                served.add((path, method))
                url = service.url + re.sub(r"\{[a-z_]+\}", "alice", path)
                status, headers, body = harness.request(
                    method.upper(), url, example_body(operation), timeout=15)
                if status == 404:
                    problem = json.loads(body)
                    detail = problem.get("detail", "")
                    assert "account" in detail or "transfer" in detail, \
                        f"{service.name} {method.upper()} {path}: route not found"
                assert str(status) in operation["responses"], \
                    f"{service.name} {method.upper()} {path}: {status} is not documented"
    documented = {(p, m) for p, ops in document["paths"].items() for m in ops if m in methods}
    assert documented == served, f"documented but served nowhere: {documented - served}"

    for service in services:
        service.stop_clean()


if __name__ == "__main__":
    harness.run_tests([test_every_route_is_documented_and_every_documented_route_answers])
