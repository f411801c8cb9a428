"""Integration tests for the HTTP half of DESIGN's Security: bearer tokens
(401 / 403 per route scope and account pattern, SIGHUP reloads), the
principal in each stored event, HTTPS, refused framing and the global
body budget. Real stream, transaction and accounting binaries; tokens
come from scripts/token, certificates from the openssl CLI.

Every refused write is checked against the stream's log: nothing of it
is appended (the next allowed write is the only new line).
"""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import harness
from harness import raw_exchange, wait_until

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HTTP_TIMEOUT_S = 30.0
PROBLEM = "application/problem+json"
CHALLENGE = 'Bearer realm="ledger"'
BATCH_BODY_BYTES_MAX = 8 * 1024 * 1024


def make_token(name, scopes, accounts):
    """(token, auth-file line) from scripts/token."""
    out = subprocess.run([os.path.join(ROOT, "scripts", "token"), name, scopes, accounts],
                         check=True, capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    assert len(lines) == 2, out
    token, line = lines
    assert len(token) >= 32 and line.split()[:3] == [name, scopes, accounts]
    return token, line


PRINCIPALS = {
    "teller": ("write", "team-a:*"),
    "writer-all": ("write", "*"),
    "reader-a": ("read", "team-a:*"),
    "reader-all": ("read", "*"),
    "alice-only": ("read", "alice"),
    "mon": ("metrics", "*"),
    "ops": ("admin", "*"),
}


def call(method, url, body=None, token=None, headers=None, context=None):
    """One request on a fresh connection: (status, headers, body bytes)."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, int(port), timeout=HTTP_TIMEOUT_S,
                                           context=context)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=HTTP_TIMEOUT_S)
    try:
        conn.request(method, "/" + path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def assert_problem(result, status, detail_part=None):
    got, headers, data = result
    assert got == status, (got, data)
    assert headers.get("content-type") == PROBLEM, headers
    problem = json.loads(data)
    assert problem["status"] == status, problem
    if detail_part:
        assert detail_part in problem["detail"], problem
    if status == 401:
        assert headers.get("www-authenticate") == CHALLENGE, headers
    return problem


class System(harness.StreamLog):
    """stream, transaction and accounting sharing one auth file."""

    def __init__(self, auth=True, extra=(), tx_extra=()):
        self.dir = harness.tmpdir("ledger-sec-")
        self.tokens, lines = {}, []
        for name, (scopes, accounts) in PRINCIPALS.items():
            self.tokens[name], line = make_token(name, scopes, accounts)
            lines.append(line)
        self.auth_path = os.path.join(self.dir, "auth")
        self.write_auth(lines)
        self.lines = lines
        flags = (["--auth-file", self.auth_path] if auth else []) + list(extra)
        self.endpoints = harness.Endpoints()
        self.stream_dir = os.path.join(self.dir, "stream")
        self.stream = harness.start_stream(self.endpoints, self.stream_dir,
                                           extra=["--heartbeat-ms", "200"] + flags)
        self.tx = harness.start_transaction(self.endpoints, extra=flags + list(tx_extra))
        self.accounting = harness.start_accounting(
            self.endpoints, os.path.join(self.dir, "accounting"), extra=flags)
        self.services = [self.stream, self.tx, self.accounting]

    def write_auth(self, lines):
        with open(self.auth_path + ".tmp", "w") as f:
            f.write("# principals of the test\n\n" + "\n".join(lines) + "\n")
        os.rename(self.auth_path + ".tmp", self.auth_path)

    def write(self, path, body, who="ops", headers=None):
        return call("POST", self.tx.url + path, body, self.tokens[who], headers)

    def deposit(self, account, amount=100, who="ops"):
        status, _, data = self.write("/transactions", {"account": account, "amount": amount},
                                     who)
        assert status == 201, (status, data)
        return json.loads(data)

    def read(self, service, path, who="reader-all"):
        return call("GET", service.url + path, token=self.tokens[who])

    def read_json(self, service, path, who="reader-all"):
        status, _, data = self.read(service, path, who)
        assert status == 200, (status, data)
        return json.loads(data)

    def applied(self, seq):
        """Waits until accounting has applied seq."""
        wait_until(lambda: self.read_json(self.accounting, "/health")["applied_seq"] >= seq,
                   what=f"accounting at seq {seq}")

    def assert_nothing_appended(self, before, account="team-a:probe"):
        """One allowed write now is the only line after `before`."""
        reply = self.deposit(account, 1)
        after = self.log_bytes()
        assert after.startswith(before)
        new_lines = after[len(before):].split(b"\n")
        assert len(new_lines) == 2 and new_lines[1] == b"", new_lines
        assert json.loads(new_lines[0])["seq"] == reply["seq"]

    def metric(self, service, name):
        _, _, data = self.read(service, "/metrics", "mon")
        for line in data.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics of {service.name}")


def test_requests_without_a_good_token_are_401_and_append_nothing():
    s = System()
    before = s.log_bytes()
    cases = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dGVsbGVyOnNlY3JldA=="},
        {"Authorization": "Bearer not-a-known-token"},
        {"Authorization": "Bearer " + s.tokens["ops"] + " extra"},
    ]
    deposit = {"account": "team-a:1", "amount": 5}
    for headers in cases:
        assert_problem(call("POST", s.tx.url + "/transactions", deposit, headers=headers), 401)
        assert_problem(call("POST", s.tx.url + "/batch", {"commands": [deposit]},
                            headers=headers), 401)
        assert_problem(call("GET", s.accounting.url + "/accounts/team-a:1", headers=headers),
                       401)
        assert_problem(call("GET", s.accounting.url + "/accounts", headers=headers), 401)
        assert_problem(call("GET", s.stream.url + "/events", headers=headers), 401)
        for service in s.services:
            assert_problem(call("GET", service.url + "/metrics", headers=headers), 401)
    # Two Authorization headers are one too many.
    conn = http.client.HTTPConnection("127.0.0.1", s.stream.http_port, timeout=HTTP_TIMEOUT_S)
    conn.putrequest("GET", "/events")
    conn.putheader("Authorization", "Bearer " + s.tokens["ops"])
    conn.putheader("Authorization", "Bearer " + s.tokens["ops"])
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 401 and resp.getheader("WWW-Authenticate") == CHALLENGE
    conn.close()
    # /health and /openapi.json stay open.
    for service in s.services:
        assert call("GET", service.url + "/health")[0] == 200
        assert call("GET", service.url + "/openapi.json")[0] == 200
    s.assert_nothing_appended(before)


def test_a_token_without_the_scope_is_403():
    s = System()
    before = s.log_bytes()
    deposit = {"account": "team-a:1", "amount": 5}
    for who in ("reader-all", "reader-a", "mon"):
        problem = assert_problem(s.write("/transactions", deposit, who), 403, who)
        assert problem["title"] == "Forbidden"
        assert_problem(s.write("/transfers", {"from": "team-a:1", "to": "team-a:2",
                                              "amount": 1}, who), 403)
        assert_problem(s.write("/batch", {"commands": [deposit]}, who), 403)
    for who in ("teller", "mon"):
        assert_problem(s.read(s.accounting, "/accounts/team-a:1", who), 403)
        assert_problem(s.read(s.accounting, "/stats", who), 403)
        assert_problem(s.read(s.stream, "/events", who), 403)
    for who in ("teller", "reader-all"):
        for service in s.services:
            assert_problem(s.read(service, "/metrics", who), 403)
    # The scope each route needs is enough, and admin is every scope.
    for who in ("mon", "ops"):
        for service in s.services:
            assert s.read(service, "/metrics", who)[0] == 200
    assert s.read(s.stream, "/events", "ops")[0] == 200
    assert s.read(s.accounting, "/stats", "ops")[0] == 200
    s.assert_nothing_appended(before)


def test_each_documented_scope_is_the_one_its_route_asks_for():
    s = System()
    lacking = {"write": "reader-all", "read": "mon", "metrics": "reader-all"}
    having = {"write": "writer-all", "read": "reader-all", "metrics": "mon"}
    checked = 0
    for service in s.services:
        status, _, data = call("GET", service.url + "/openapi.json")
        assert status == 200
        for path, operations in json.loads(data)["paths"].items():
            for method, operation in operations.items():
                url = service.url + path.replace("{id}", "team-a:1")
                body = operation.get("requestBody", {}).get("content", {}) \
                    .get("application/json", {}).get("example")
                if "x-scope" not in operation:
                    assert operation["security"] == [{}], (path, method)
                    assert call(method.upper(), url, body)[0] == 200, (path, method)
                    continue
                scope = operation["x-scope"]
                assert "401" in operation["responses"] and "403" in operation["responses"]
                assert_problem(call(method.upper(), url, body), 401)
                assert_problem(call(method.upper(), url, body, s.tokens[lacking[scope]]), 403)
                status, _, data = call(method.upper(), url, body, s.tokens[having[scope]])
                assert status not in (401, 403), (path, method, status, data[:200])
                checked += 1
    assert checked >= 10


def test_a_command_outside_the_account_pattern_is_403_and_appends_nothing():
    s = System()
    before = s.log_bytes()
    problem = assert_problem(s.write("/transactions", {"account": "bob", "amount": 5},
                                     "teller"), 403, "bob")
    assert problem["errors"] == [{"field": "account",
                                  "message": "outside the accounts of the token"}]
    # A transfer is refused for either side.
    problem = assert_problem(s.write("/transfers", {"from": "team-a:1", "to": "bob",
                                                    "amount": 1}, "teller"), 403)
    assert problem["errors"][0]["field"] == "to"
    problem = assert_problem(s.write("/transfers", {"from": "bob", "to": "team-a:1",
                                                    "amount": 1}, "teller"), 403)
    assert problem["errors"][0]["field"] == "from"
    # "team-a" and "team-a0" do not start with "team-a:".
    for account in ("team-a", "team-a0", "team-b:1"):
        assert_problem(s.write("/transactions", {"account": account, "amount": 5},
                               "teller"), 403)
    # One command deep in a batch refuses the whole batch, naming its index.
    commands = [{"account": f"team-a:{i}", "amount": 10} for i in range(40)]
    commands[27] = {"from": "team-a:1", "to": "mallory", "amount": 1}
    problem = assert_problem(s.write("/batch", {"commands": commands}, "teller"), 403,
                             "commands[27].to")
    assert problem["errors"][0]["field"] == "commands[27].to"
    # The same key later, within the pattern, is a new request, not a replay.
    assert_problem(s.write("/transactions", {"account": "zed", "amount": 5}, "teller",
                           {"Idempotency-Key": "k-1"}), 403)
    s.assert_nothing_appended(before)
    status, _, data = s.write("/transactions", {"account": "team-a:1", "amount": 5},
                              "teller", {"Idempotency-Key": "k-1"})
    assert status == 201, data


def test_the_principal_is_in_each_stored_event_and_in_accounting_history():
    s = System()
    first = s.deposit("team-a:1", 500, "teller")
    status, _, data = s.write("/transfers", {"from": "team-a:1", "to": "team-a:2",
                                             "amount": 200}, "teller")
    assert status == 201, data
    status, _, data = s.write("/batch", {"commands": [
        {"account": "team-a:2", "amount": 1}, {"account": "team-a:3", "amount": 2}]},
        "teller", {"X-Correlation-Id": "corr-9"})
    assert status == 201, data
    admin = s.deposit("bob", 7, "ops")
    events = s.events()
    assert [e["meta"]["principal"] for e in events] == ["teller"] * 4 + ["ops"]
    # Written last in meta, after what was there before.
    assert list(events[2]["meta"]) == ["correlation_id", "request_id", "principal"]
    assert events[0]["seq"] == first["seq"] and events[-1]["seq"] == admin["seq"]
    s.applied(admin["seq"])
    history = s.read_json(s.accounting, "/accounts/team-a:1/events", "reader-a")
    assert [e["meta"]["principal"] for e in history["events"]] == ["teller", "teller"]
    # The stored line, byte for byte, as the stream's /events gives it.
    stored = s.read_json(s.stream, "/events?from_seq=1&limit=10", "reader-all")["events"]
    assert stored == events


def test_reads_show_only_the_accounts_of_the_pattern():
    s = System()
    ids = ["alice", "bob", "team-a", "team-a.x", "team-a0", "team-a:1", "team-a:2",
           "team-a:3", "team-b:1", "zoe"]
    last = None
    for i, account in enumerate(ids):
        last = s.deposit(account, 100 + i)
    transfer = s.write("/transfers", {"from": "bob", "to": "team-a:2", "amount": 5})
    assert transfer[0] == 201
    last = json.loads(transfer[2])
    s.applied(last["seq"])

    # The list, whole and page by page.
    page = s.read_json(s.accounting, "/accounts?limit=1000", "reader-a")
    assert [a["account"] for a in page["accounts"]] == ["team-a:1", "team-a:2", "team-a:3"]
    assert page["next_after"] is None
    seen, after = [], None
    while True:
        query = "/accounts?limit=2" + (f"&after={after}" if after else "")
        page = s.read_json(s.accounting, query, "reader-a")
        seen += [a["account"] for a in page["accounts"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == ["team-a:1", "team-a:2", "team-a:3"]
    page = s.read_json(s.accounting, "/accounts", "alice-only")
    assert [a["account"] for a in page["accounts"]] == ["alice"]
    page = s.read_json(s.accounting, "/accounts?after=alice", "alice-only")
    assert page["accounts"] == []
    everyone = s.read_json(s.accounting, "/accounts?limit=1000", "reader-all")
    assert [a["account"] for a in everyone["accounts"]] == sorted(ids)

    # One account and its history outside the pattern: 403.
    assert s.read_json(s.accounting, "/accounts/team-a:2", "reader-a")["balance"] == 111
    for path in ("/accounts/bob", "/accounts/bob/events", "/accounts/team-a",
                 "/accounts/team-a0?at_seq=1", "/accounts/zoe?min_seq=1"):
        assert_problem(s.read(s.accounting, path, "reader-a"), 403)
    assert_problem(s.read(s.accounting, "/accounts/bob", "alice-only"), 403)

    # /stats: the count and total of the visible accounts only.
    stats = s.read_json(s.accounting, "/stats", "reader-a")
    assert stats["accounts"] == 3 and stats["total_balance"] == 105 + 111 + 107
    assert stats["applied_seq"] == last["seq"] and "events_applied" not in stats
    stats = s.read_json(s.accounting, "/stats", "reader-all")
    assert stats["accounts"] == len(ids) and stats["events_applied"] == last["seq"]

    # The stream's log: the events touching the pattern, and where to go on.
    page = s.read_json(s.stream, "/events?from_seq=1&limit=1000", "reader-a")
    touched = [e for e in s.events()
               if any(e.get(k, "").startswith("team-a:") for k in ("account", "from", "to"))]
    assert page["events"] == touched and len(touched) == 4
    assert page["next_from_seq"] == last["seq"] + 1
    page = s.read_json(s.stream, "/events?from_seq=1&limit=2", "reader-a")
    assert page["events"] == [] and page["next_from_seq"] == 3
    page = s.read_json(s.stream, "/events?from_seq=1&limit=1000", "alice-only")
    assert [e["account"] for e in page["events"]] == ["alice"]
    page = s.read_json(s.stream, "/events?from_seq=1&limit=1000", "reader-all")
    assert page["events"] == s.events() and "next_from_seq" not in page


def test_the_filtered_list_pages_like_a_model_over_random_ids():
    import random
    rng = random.Random(7)
    ids = set()
    while len(ids) < 400:
        head = rng.choice(["team-a:", "team-a", "team-", "team-a9", "team-b:", "t", "A", "9"])
        tail = "".join(rng.choice("aZ09.-:_") for _ in range(rng.randrange(0, 6)))
        account = head + tail
        if account[0].isalnum() and len(account) <= 64:
            ids.add(account)
    s = System()
    status, _, data = s.write("/batch", {"commands": [{"account": a, "amount": 1}
                                                      for a in sorted(ids)]})
    assert status == 201, data[:300]
    s.applied(json.loads(data)["last_seq"])
    expected = sorted(a for a in ids if a.startswith("team-a:"))
    for limit in (1, 3, 1000):
        seen, after = [], None
        while True:
            query = f"/accounts?limit={limit}" + (f"&after={after}" if after else "")
            page = s.read_json(s.accounting, query, "reader-a")
            assert len(page["accounts"]) <= limit
            seen += [a["account"] for a in page["accounts"]]
            after = page["next_after"]
            if after is None:
                break
        assert seen == expected, (limit, seen, expected)
    # Starting anywhere: after an id below, inside and past the run.
    for after in ("team-a", "team-a9", expected[len(expected) // 2], "team-b"):
        page = s.read_json(s.accounting, f"/accounts?limit=1000&after={after}", "reader-a")
        assert [a["account"] for a in page["accounts"]] == [a for a in expected if a > after]
    stats = s.read_json(s.accounting, "/stats", "reader-a")
    assert stats["accounts"] == len(expected) and stats["total_balance"] == len(expected)


def test_sighup_revokes_a_token_and_a_bad_file_keeps_the_table():
    s = System()
    s.deposit("team-a:1", 5, "teller")
    # Revoke teller: the file without its line, then SIGHUP.
    s.write_auth([line for line in s.lines if not line.startswith("teller ")])
    for service in s.services:
        service.signal(signal.SIGHUP)
    wait_until(lambda: s.write("/transactions", {"account": "team-a:1", "amount": 5},
                               "teller")[0] == 401, what="teller revoked")
    before = s.log_bytes()
    assert_problem(s.write("/transactions", {"account": "team-a:1", "amount": 5}, "teller"),
                   401, "not known")
    for service in (s.stream, s.accounting):
        wait_until(lambda: f"reloaded: {len(PRINCIPALS) - 1} principals" in service.output(),
                   what="reload")
    # A file that does not parse: every service keeps the table it has.
    with open(s.auth_path, "a") as f:
        f.write("broken line\n")
    for service in s.services:
        service.signal(signal.SIGHUP)
    for service in s.services:
        wait_until(lambda: "refused: line " in service.output(), what="refused reload")
        assert s.metric(service, "ledger_http_auth_reload_failures_total") == 1
        assert s.metric(service, "ledger_http_auth_reloads_total") == 2
        assert s.metric(service, "ledger_http_auth_principals") == len(PRINCIPALS) - 1
        assert service.alive()
    assert s.read(s.accounting, "/accounts/team-a:1", "reader-a")[0] == 200
    assert s.read(s.stream, "/events", "reader-a")[0] == 200
    assert_problem(s.write("/transactions", {"account": "team-a:1", "amount": 5}, "teller"),
                   401)
    s.assert_nothing_appended(before)
    for service in s.services:
        service.stop_clean()


def test_auth_failures_are_counted_by_reason():
    s = System()
    url = s.tx.url + "/transactions"
    deposit = {"account": "team-a:1", "amount": 5}
    call("POST", url, deposit)
    call("POST", url, deposit, headers={"Authorization": "Basic x"})
    call("POST", url, deposit, headers={"Authorization": "Bearer"})
    call("POST", url, deposit, token="unknown")
    s.write("/transactions", deposit, "reader-a")
    s.write("/transactions", {"account": "bob", "amount": 1}, "teller")
    _, _, data = s.read(s.tx, "/metrics", "mon")
    text = data.decode()
    for reason, count in (("missing", 1), ("malformed", 2), ("unknown", 1),
                          ("plaintext", 0), ("scope", 1), ("account", 1)):
        assert f'ledger_http_auth_failures_total{{reason="{reason}"}} {count}\n' in text, text


def test_an_auth_file_that_does_not_parse_refuses_to_start():
    d = harness.tmpdir()
    path = os.path.join(d, "auth")
    with open(path, "w") as f:
        f.write("ops admin * " + "0" * 64 + "\nops read * " + "1" * 64 + "\n")
    endpoints = harness.Endpoints()
    for service in (harness.Service("stream", endpoints.flags("ingest", "publish", "replay")
                                    + ["--http-port", str(harness.free_port()), "--data-dir",
                                       os.path.join(d, "s"), "--auth-file", path],
                                    wait=False),
                    harness.Service("accounting", endpoints.flags("publish", "replay")
                                    + ["--http-port", str(harness.free_port()), "--data-dir",
                                       os.path.join(d, "a"), "--auth-file", path],
                                    wait=False)):
        assert service.proc.wait(HTTP_TIMEOUT_S) == 1
        assert "line 2: name: ops is already given" in service.output(), service.output()


def test_without_an_auth_file_tokens_are_ignored_and_events_name_nobody():
    s = System(auth=False)
    headers = {"Authorization": "Basic whatever"}
    status, _, data = call("POST", s.tx.url + "/transactions",
                           {"account": "bob", "amount": 5}, headers=headers)
    assert status == 201, data
    seq = json.loads(data)["seq"]
    for service in s.services:
        assert call("GET", service.url + "/metrics", headers=headers)[0] == 200
    assert "principal" not in s.events()[0].get("meta", {})
    wait_until(lambda: call("GET", s.accounting.url + f"/accounts/bob?min_seq={seq}")[0]
               == 200, what="bob in accounting")
    status, _, data = call("GET", s.accounting.url + "/stats")
    assert status == 200 and "events_applied" in json.loads(data)


# -------------------------------------------------------------------------
# HTTPS

def make_certificates(directory):
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr = os.path.join(directory, "server.key"), os.path.join(directory, "server.csr")
    cert, ext = os.path.join(directory, "server.pem"), os.path.join(directory, "ext")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
            "-days", "2", "-subj", "/CN=ledger test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=localhost")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


def wait_https(port, context):
    def healthy():
        try:
            return call("GET", f"https://127.0.0.1:{port}/health", context=context)[0] == 200
        except (OSError, http.client.HTTPException):
            return False
    wait_until(healthy, what=f"HTTPS on {port}")


def test_https_serves_with_the_test_ca_and_plain_http_fails_cleanly():
    d = harness.tmpdir()
    ca, cert, key = make_certificates(d)
    token, line = make_token("ops", "admin", "*")
    auth = os.path.join(d, "auth")
    with open(auth, "w") as f:
        f.write(line + "\n")
    tls = ["--tls-cert", cert, "--tls-key", key, "--auth-file", auth]
    endpoints = harness.Endpoints()
    context = ssl.create_default_context(cafile=ca)
    stream_port, tx_port, acc_port = (harness.free_port() for _ in range(3))
    stream = harness.start_stream(endpoints, os.path.join(d, "stream"), stream_port,
                                  extra=tls, wait=False)
    wait_https(stream_port, context)
    tx = harness.start_transaction(endpoints, tx_port, extra=tls, wait=False)
    accounting = harness.start_accounting(endpoints, os.path.join(d, "acc"), acc_port,
                                          extra=tls, wait=False)
    wait_https(tx_port, context)
    wait_https(acc_port, context)
    tx_url = f"https://127.0.0.1:{tx_port}"
    status, _, data = call("POST", tx_url + "/transactions", {"account": "a", "amount": 3},
                           token, context=context)
    assert status == 201, data
    seq = json.loads(data)["seq"]
    status, _, data = call("GET", f"https://localhost:{acc_port}/accounts/a?min_seq={seq}",
                           token=token, context=context)
    assert status == 200 and json.loads(data)["balance"] == 3
    # curl with the CA, as an operator would.
    out = subprocess.run(["curl", "-sS", "--cacert", ca, "-H", "Authorization: Bearer " + token,
                          f"https://127.0.0.1:{stream_port}/events"],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["last_seq"] == seq
    # A client that does not trust the CA gets no answer.
    try:
        call("GET", f"https://127.0.0.1:{stream_port}/health",
             context=ssl.create_default_context())
        raise AssertionError("an untrusted certificate was accepted")
    except ssl.SSLError:
        pass
    # Plain HTTP to the TLS port fails, and the service serves on.
    for port in (stream_port, tx_port, acc_port):
        for _ in range(3):
            try:
                status, _, _ = call("GET", f"http://127.0.0.1:{port}/health")
                raise AssertionError(f"plain HTTP answered {status}")
            except (OSError, http.client.HTTPException):
                pass
            with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT_S) as raw:
                raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    reply = raw.recv(4096)
                except OSError:
                    reply = b""
                assert not reply.startswith(b"HTTP/"), reply
        assert call("GET", f"https://127.0.0.1:{port}/health", context=context)[0] == 200
    for service in (stream, tx, accounting):
        assert service.alive()
        service.stop_clean()


def test_a_bad_certificate_or_key_refuses_to_start():
    d = harness.tmpdir()
    ca, cert, key = make_certificates(d)
    endpoints = harness.Endpoints()
    not_pem = os.path.join(d, "not.pem")
    with open(not_pem, "w") as f:
        f.write("hello\n")
    cases = [([cert, os.path.join(d, "missing.pem")], "--tls-key"),
             ([not_pem, key], "not a PEM file"),
             ([key, key], "HTTPS"),     # a key where the certificate goes
             ([cert, ca], "HTTPS")]     # a certificate where the key goes
    for (cert_path, key_path), message in cases:
        service = harness.start_stream(endpoints, os.path.join(d, "s"),
                                       extra=["--tls-cert", cert_path, "--tls-key", key_path],
                                       wait=False)
        assert service.proc.wait(HTTP_TIMEOUT_S) == 1, service.output()
        assert message in service.output(), service.output()
        service.stop()


def non_loopback_address():
    """An address of this host that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_tokens_over_plain_http_beyond_loopback_are_403_unless_insecure():
    address = non_loopback_address()
    if address is None:
        print("     (skipped: this host has no address beyond loopback)")
        return
    d = harness.tmpdir()
    token, line = make_token("ops", "admin", "*")
    auth = os.path.join(d, "auth")
    with open(auth, "w") as f:
        f.write(line + "\n")
    endpoints = harness.Endpoints()
    for insecure, expected in ((False, 403), (True, 200)):
        port = harness.free_port()
        extra = ["--http-addr", address, "--auth-file", auth] + (["--insecure"] if insecure
                                                                 else [])
        stream = harness.start_stream(endpoints, os.path.join(d, f"s{port}"), port,
                                      extra=extra, wait=False)
        url = f"http://{address}:{port}"
        wait_until(lambda: _answers(url + "/health"), what="stream beyond loopback")
        result = call("GET", url + "/events", token=token)
        if expected == 403:
            assert_problem(result, 403, "bearer tokens are only accepted over HTTPS")
            assert_problem(call("GET", url + "/events", token="unknown"), 403)
        else:
            assert result[0] == 200, result
        stream.stop_clean()


def _answers(url):
    try:
        return call("GET", url)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


# -------------------------------------------------------------------------
# Framing and the body budget (no auth file: the rules hold for everyone)

def test_ambiguous_framing_is_400_and_the_smuggled_request_never_runs():
    s = System(auth=False)
    before = s.log_bytes()
    smuggled_body = b'{"account":"smuggled","amount":1000}'
    smuggled = (b"POST /transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(smuggled_body), smuggled_body))
    body = b'{"account":"a","amount":1}'
    heads = [
        # TE.CL: chunked ends at once, the rest would be the next request.
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        % (5 + len(smuggled)),
        # CL.CL: one reader takes 0 bytes, another the smuggled request.
        b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(smuggled),
        b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
    ]
    heads = [(400, head) for head in heads] + [
        # TE.TE: two codings headers, or one MHD would read to the close.
        (400, b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        (501, b"Transfer-Encoding: gzip\r\n\r\n"),
        (501, b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    ]
    for status, head in heads:
        reply = raw_exchange(s.tx.http_port,
                             b"POST /transactions HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: application/json\r\n" + head + smuggled)
        assert reply.startswith(b"HTTP/1.1 %d " % status), reply
        assert b"\r\nConnection: close\r\n" in reply, reply
        assert reply.count(b"HTTP/1.1 ") == 1, reply   # the connection was closed
        assert not reply.endswith(b"<open>"), reply
        assert b"application/problem+json" in reply
    # Two Idempotency-Keys: 400, nothing appended.
    reply = raw_exchange(s.tx.http_port,
                         b"POST /transactions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"Content-Type: application/json\r\nIdempotency-Key: k1\r\n"
                         b"Idempotency-Key: k2\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
    assert reply.startswith(b"HTTP/1.1 400 ") and b"Idempotency-Key" in reply, reply
    # The same Content-Length twice is one length: served, then kept alive.
    reply = raw_exchange(s.stream.http_port,
                         b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                         b"Content-Length: 0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 ") == 2, reply
    s.assert_nothing_appended(before, "probe")
    assert b"smuggled" not in s.log_bytes()
    for service in s.services:
        assert service.alive()


def test_a_bad_body_budget_is_refused_with_exit_2():
    endpoints = harness.Endpoints()
    d = harness.tmpdir()
    for value in ("10", "-1", "64k", "", "99999999999999999999999"):
        for name, flags in (("stream", endpoints.flags("ingest", "publish", "replay")
                             + ["--data-dir", os.path.join(d, "s")]),
                            ("transaction", endpoints.flags("ingest", "publish", "replay")),
                            ("accounting", endpoints.flags("publish", "replay")
                             + ["--data-dir", os.path.join(d, "a")])):
            service = harness.Service(name, flags + ["--http-port", str(harness.free_port()),
                                                     "--body-buffer-bytes-max", value],
                                      wait=False)
            assert service.proc.wait(HTTP_TIMEOUT_S) == 2, (name, value, service.output())
            assert "--body-buffer-bytes-max must be a number of bytes from 65536" \
                in service.output(), service.output()
            service.stop()


def vm_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_bodies_beyond_the_budget_get_503_and_memory_stays_bounded():
    budget = 20 * 1024 * 1024   # two 8 MiB bodies fit, a third does not
    s = System(auth=False, tx_extra=["--body-buffer-bytes-max", str(budget)])
    rss_before = vm_rss_bytes(s.tx.proc.pid)
    length = BATCH_BODY_BYTES_MAX
    head = (b"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % length)
    filler = b" " * (1024 * 1024)
    hogs = []
    try:
        # Twelve uploads of nearly 8 MiB each, their last byte held back:
        # 96 MiB asked for, a 20 MiB budget.
        for _ in range(12):
            conn = socket.create_connection(("127.0.0.1", s.tx.http_port), timeout=30)
            conn.sendall(head)
            hogs.append(conn)
        for conn in hogs:
            sent = 0
            conn.setblocking(False)
            while sent < length - 1:
                try:
                    sent += conn.send(filler[:min(len(filler), length - 1 - sent)])
                except BlockingIOError:
                    time.sleep(0.01)
                    if conn.fileno() < 0:
                        break
                except OSError:
                    break   # a refused upload may be answered and closed early
            conn.setblocking(True)
        wait_until(lambda: _metric(s.tx, "ledger_http_body_budget_refusals_total") >= 1,
                   what="a refusal")
        held = _metric(s.tx, "ledger_http_body_buffered_bytes")
        assert 0 < held <= budget, held
        rss = vm_rss_bytes(s.tx.proc.pid)
        slack = 16 * 1024 * 1024   # MHD's connection pools, the write model, the allocator
        assert rss - rss_before <= budget + slack, (rss_before, rss)
        # A whole body now, beyond what is left: 503 with Retry-After.
        commands = [{"account": f"acc-{i}", "amount": 1} for i in range(4000)]
        status, headers, data = call("POST", s.tx.url + "/batch",
                                     json.dumps({"commands": commands}).ljust(length - 16),
                                     headers={"Content-Type": "application/json"})
        assert status == 503 and headers.get("retry-after") == "1", (status, data[:300])
        assert headers.get("content-type") == PROBLEM
        # A small command still fits in its connection's own buffer.
        status, _, data = call("POST", s.tx.url + "/transactions",
                               {"account": "small", "amount": 1})
        assert status == 201, data
    finally:
        for conn in hogs:
            conn.close()
    wait_until(lambda: _metric(s.tx, "ledger_http_body_buffered_bytes") == 0,
               what="bodies released")
    status, _, data = call("POST", s.tx.url + "/batch",
                           {"commands": [{"account": "after", "amount": 2}]})
    assert status == 201, data[:300]
    assert s.tx.alive()


def _metric(service, name):
    _, _, data = call("GET", service.url + "/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


if __name__ == "__main__":
    harness.run_tests([
        test_requests_without_a_good_token_are_401_and_append_nothing,
        test_a_token_without_the_scope_is_403,
        test_each_documented_scope_is_the_one_its_route_asks_for,
        test_a_command_outside_the_account_pattern_is_403_and_appends_nothing,
        test_the_principal_is_in_each_stored_event_and_in_accounting_history,
        test_reads_show_only_the_accounts_of_the_pattern,
        test_the_filtered_list_pages_like_a_model_over_random_ids,
        test_sighup_revokes_a_token_and_a_bad_file_keeps_the_table,
        test_auth_failures_are_counted_by_reason,
        test_an_auth_file_that_does_not_parse_refuses_to_start,
        test_without_an_auth_file_tokens_are_ignored_and_events_name_nobody,
        test_https_serves_with_the_test_ca_and_plain_http_fails_cleanly,
        test_a_bad_certificate_or_key_refuses_to_start,
        test_tokens_over_plain_http_beyond_loopback_are_403_unless_insecure,
        test_ambiguous_framing_is_400_and_the_smuggled_request_never_runs,
        test_a_bad_body_budget_is_refused_with_exit_2,
        test_bodies_beyond_the_budget_get_503_and_memory_stays_bounded,
    ])
