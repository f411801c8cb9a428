"""insomnia.json run by Insomnia's own engine: the inso CLI (pinned in
tests/contract/package.json, set up by tests/contract/install), with one
unit test per request asserting the status its description promises
("Expect: <status>"), against freshly started services. Twice, like
test_collection.py: open, and with --auth-file and a token.

The unit tests and an environment with the services' real addresses are
added to a copy of the collection (an Insomnia v4 export, what inso
reads with --src); the collection itself is not changed. Exits 77 (a
skip for meson) when inso is not installed: scripts/test installs it.
"""

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys

import harness

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
INSO = os.path.join(ROOT, "tests", "contract", "node_modules", ".bin", "inso")
EXPECT = re.compile(r"^Expect: (\d{3})\b")
INSO_TIMEOUT_S = 240
SUITE_ID = "uts_collection_statuses"
ENV_ID = "env_inso_run"


def with_unit_tests(doc, urls, token):
    """A copy of the export with a sub-environment and the unit tests."""
    resources = list(doc["resources"])
    workspace = next(r for r in resources if r["_type"] == "workspace")
    base = next(r for r in resources
                if r["_type"] == "environment" and r["parentId"] == workspace["_id"])
    folders = {r["_id"]: r for r in resources if r["_type"] == "request_group"}
    requests = sorted((r for r in resources if r["_type"] == "request"),
                      key=lambda r: (folders[r["parentId"]]["metaSortKey"], r["metaSortKey"]))
    resources.append({"_id": ENV_ID, "_type": "environment", "parentId": base["_id"],
                      "name": "inso run", "data": {**urls, "token": token or ""}})
    resources.append({"_id": SUITE_ID, "_type": "unit_test_suite",
                      "parentId": workspace["_id"], "name": "Every request's status"})
    for index, r in enumerate(requests):
        m = EXPECT.match(r.get("description", ""))
        assert m, f"request '{r['name']}' documents no 'Expect: <status>'"
        resources.append({
            "_id": f"ut_{index:03d}", "_type": "unit_test", "parentId": SUITE_ID,
            "requestId": r["_id"], "name": f"{r['name']} -> {m.group(1)}",
            "code": "const response = await insomnia.send();\n"
                    f"expect(response.status).to.equal({int(m.group(1))});\n"})
    return {**doc, "resources": resources}, len(requests)


def run_with_inso(token=None):
    with open(os.path.join(ROOT, "insomnia.json")) as f:
        doc = json.load(f)
    endpoints = harness.Endpoints()
    data = harness.tmpdir()
    extra = ()
    if token:
        auth_file = os.path.join(data, "auth")
        with open(auth_file, "w") as f:
            f.write("insomnia write,read,metrics * %s\n"
                    % hashlib.sha256(token.encode()).hexdigest())
        extra = ("--auth-file", auth_file)
    stream = harness.start_stream(endpoints, os.path.join(data, "stream"), extra=extra)
    transaction = harness.start_transaction(endpoints, extra=extra)
    accounting = harness.start_accounting(endpoints, os.path.join(data, "accounting"),
                                          extra=extra)
    urls = {"transaction_url": transaction.url, "accounting_url": accounting.url,
            "stream_url": stream.url}
    export, count = with_unit_tests(doc, urls, token)
    src = os.path.join(data, "insomnia-with-tests.json")
    with open(src, "w") as f:
        json.dump(export, f)
    result = subprocess.run(
        [INSO, "run", "test", SUITE_ID, "--src", src, "--env", ENV_ID, "--ci",
         "--reporter", "spec"],
        capture_output=True, text=True, timeout=INSO_TIMEOUT_S,
        env={**os.environ, "NO_COLOR": "1"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"inso failed ({result.returncode}):\n{output}"
    passing = re.search(r"(\d+) passing", output)
    assert passing and int(passing.group(1)) == count, output
    assert "failing" not in output, output
    for service in (accounting, transaction, stream):
        service.stop_clean()


def test_inso_runs_every_request_with_the_status_it_documents():
    run_with_inso()


def test_inso_runs_them_the_same_with_a_token():
    run_with_inso(token=secrets.token_hex(16))


if __name__ == "__main__":
    if not os.access(INSO, os.X_OK):
        print("inso is not installed (run tests/contract/install): skipped")
        sys.exit(77)
    harness.run_tests([test_inso_runs_every_request_with_the_status_it_documents,
                       test_inso_runs_them_the_same_with_a_token])
