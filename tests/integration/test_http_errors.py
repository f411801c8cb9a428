"""Integration tests for the errors a client's tools meet first: what the
services answer to bodies, headers, queries and framing they refuse, over
real sockets (raw ones where a library would not send the bytes).

Every refused write is checked against the stream's log: nothing of it is
appended. The answers libmicrohttpd 0.9.75 gives by itself (no hook lets
us reword them, see docs/DESIGN.md) are checked for their status and for
closing the connection, not for their HTML body.
"""

import json

import harness
from harness import raw_exchange, request, wait_until

HTTP_TIMEOUT_S = 30.0
PROBLEM = "application/problem+json"


class System(harness.StreamLog):
    def __init__(self):
        self.endpoints = harness.Endpoints()
        self.stream_dir = harness.tmpdir("ledger-stream-")
        self.stream = harness.start_stream(self.endpoints, self.stream_dir)
        self.tx = harness.start_transaction(self.endpoints)
        self.accounting = harness.start_accounting(self.endpoints,
                                                   harness.tmpdir("ledger-accounting-"))

    def post(self, body, headers=None, path="/transactions"):
        return request("POST", self.tx.url + path, body,
                       {"Content-Type": "application/json", **(headers or {})},
                       timeout=HTTP_TIMEOUT_S)


def parse_reply(reply):
    """(status, lower-cased headers, body) of the first response in reply."""
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def assert_problem(status, headers, body, expected):
    assert status == expected, (status, body[:300])
    assert headers.get("content-type") == PROBLEM, headers
    assert headers.get("x-request-id"), headers
    problem = json.loads(body)
    assert problem["status"] == expected and problem["type"].startswith("https://"), problem
    return problem


def test_a_foreign_content_type_is_415_even_with_an_empty_body():
    # What Insomnia sends for a non-JSON mimeType with no params.
    s = System()
    before = s.log_bytes()
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        status, headers, body = request("POST", s.tx.url + "/transactions", b"",
                                        {"Content-Type": content_type},
                                        timeout=HTTP_TIMEOUT_S)
        assert_problem(status, headers, body, 415)
    # No Content-Type and no body: the body is what is missing.
    status, headers, body = request("POST", s.tx.url + "/transactions", b"", {},
                                    timeout=HTTP_TIMEOUT_S)
    assert "empty" in assert_problem(status, headers, body, 400)["detail"]
    assert s.log_bytes() == before


def test_a_declared_length_over_the_limit_is_413_before_the_body():
    s = System()
    before = s.log_bytes()
    head = (b"POST /transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    # 10^12 bytes declared, none sent: answered at once, connection closed.
    reply = raw_exchange(s.tx.http_port, head + b"Content-Length: 1000000000000\r\n\r\n")
    assert not reply.endswith(b"<open>"), reply
    status, headers, body = parse_reply(reply)
    assert_problem(status, headers, body, 413)
    assert headers.get("connection") == "close"
    # Expect: 100-continue for a body that will be refused: no 100 Continue.
    reply = raw_exchange(s.tx.http_port, head + b"Content-Length: 99000000\r\n"
                         b"Expect: 100-continue\r\n\r\n")
    assert b"100 Continue" not in reply and not reply.endswith(b"<open>"), reply
    assert_problem(*parse_reply(reply), 413)
    # Expect with a wrong Content-Type: refused before the body too.
    reply = raw_exchange(s.tx.http_port,
                         b"POST /transactions HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 30\r\nExpect: 100-continue\r\n\r\n")
    assert b"100 Continue" not in reply and not reply.endswith(b"<open>"), reply
    assert_problem(*parse_reply(reply), 415)
    # A slightly too large body that is sent anyway: read, dropped, 413, and
    # the connection stays usable.
    big = b'{"account":"a","amount":1,"reference":"' + b"x" * 70000 + b'"}'
    status, headers, body = s.post(big)
    assert_problem(status, headers, body, 413)
    assert s.log_bytes() == before


def test_an_unknown_transfer_coding_is_501_at_once():
    s = System()
    for coding in (b"xchunked", b"gzip, chunked"):
        reply = raw_exchange(s.tx.http_port,
                             b"POST /transactions HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: application/json\r\nTransfer-Encoding: "
                             + coding + b"\r\n\r\n", timeout_s=10)
        assert not reply.endswith(b"<open>"), reply
        assert_problem(*parse_reply(reply), 501)


def test_json_is_strict_control_bytes_and_leading_zeros_are_400():
    s = System()
    before = s.log_bytes()
    bad = [
        b'{"account":"a","amount":1,"reference":"a\x01b"}',
        b'{"account":"a","amount":1,"reference":"tab\there"}',
        b'{"account":"a","amount":05}',
        b'{"account":"a","amount":-05}',
        b'{"account":"a","amount":00}',
        b'\x01{"account":"a","amount":1}',
        b'{"account":"a",\f"amount":1}',
        b'{"commands":[{"account":"a","amount":007}]}',
    ]
    for body in bad:
        path = "/batch" if body.startswith(b'{"commands"') else "/transactions"
        status, headers, data = s.post(body, path=path)
        assert "not valid JSON" in assert_problem(status, headers, data, 400)["detail"], body
    # Still JSON: an escaped control byte, zero itself, an exponent's zeros
    # (valid JSON, but not an integer amount: 422, not 400).
    status, _, data = s.post(b'{"account":"zero-ok","amount":1,"reference":"a\\u0001b"}')
    assert status == 201, data
    status, _, data = s.post(b'{"account":"zero-ok","amount":0.0}')
    assert status == 422, data
    status, _, data = s.post(b'{"account":"zero-ok","amount":1e05}')
    assert status in (201, 422), data
    status, _, data = s.post(b'{"account":"zero-ok","amount":10, "reference":"05"}')
    assert status == 201, data
    assert s.log_bytes() > before


def test_control_characters_in_id_headers_are_400_and_never_stored():
    s = System()
    before = s.log_bytes()
    body = b'{"account":"ctl","amount":1}'
    for name in (b"X-Correlation-Id", b"Idempotency-Key", b"X-Request-Id"):
        for value in (b"a\x01b", b"a\x7fb", b"a\tb"):
            reply = raw_exchange(s.tx.http_port,
                                 b"POST /transactions HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\nContent-Type: application/json\r\n"
                                 + name + b": " + value + b"\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            status, headers, data = parse_reply(reply)
            problem = assert_problem(status, headers, data, 400)
            assert problem["errors"][0]["field"] == name.decode(), problem
            assert value.decode() not in headers["x-request-id"]
    # Reads refuse them too (the id would reach the log).
    reply = raw_exchange(s.accounting.http_port,
                         b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"X-Request-Id: r\x02\r\n\r\n")
    assert_problem(*parse_reply(reply), 400)
    assert s.log_bytes() == before
    status, _, data = s.post(body, {"X-Correlation-Id": "fine-1"})
    assert status == 201, data
    assert b"fine-1" in open(s.log_path, "rb").read()


def test_unknown_query_parameters_are_400_naming_them():
    s = System()
    before = s.log_bytes()
    cases = [
        (s.accounting.url + "/accounts?limits=5", "limits"),
        (s.accounting.url + "/accounts/alice?at_seqs=1", "at_seqs"),
        (s.accounting.url + "/accounts/alice/events?since=1", "since"),
        (s.accounting.url + "/stats?x=1", "x"),
        (s.stream.url + "/events?since=1", "since"),
        (s.tx.url + "/health?verbose", "verbose"),
    ]
    for url, key in cases:
        status, headers, data = request("GET", url, timeout=HTTP_TIMEOUT_S)
        problem = assert_problem(status, headers, data, 400)
        assert problem["errors"] == [{"field": key, "message": "unknown query parameter"}], \
            problem
    status, headers, data = s.post({"account": "q", "amount": 1}, path="/transactions?dry_run=1")
    assert assert_problem(status, headers, data, 400)["errors"][0]["field"] == "dry_run"
    assert s.log_bytes() == before
    # The keys each route takes are still taken.
    for url in (s.accounting.url + "/accounts?limit=5&after=a",
                s.accounting.url + "/accounts/zz/events?after_seq=0&limit=5",
                s.stream.url + "/events?from_seq=1&limit=5"):
        status, _, data = request("GET", url, timeout=HTTP_TIMEOUT_S)
        assert status in (200, 404), (url, data)


def test_errors_libmicrohttpd_raises_itself_keep_their_status_and_close():
    # MHD 0.9.75 answers these before any callback of ours runs (docs/DESIGN.md):
    # the status is right and the connection closes; the body is MHD's HTML.
    s = System()
    port = s.tx.http_port
    cases = [
        (400, b"POST /transactions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        (400, b"GET /health\r\n\r\n"),
        (431, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10240 + b"\r\n\r\n"),
        (431, b"GET /health HTTP/1.1\r\nHost: x\r\n"
              + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"),
        (505, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (413, b"POST /transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n"),
    ]
    for status, data in cases:
        reply = raw_exchange(port, data)
        assert not reply.endswith(b"<open>"), (status, reply[:200])
        assert reply.startswith(b"HTTP/1.1 %d " % status), (status, reply[:200])
    # And the service goes on serving.
    status, _, _ = request("GET", s.tx.url + "/health", timeout=HTTP_TIMEOUT_S)
    assert status in (200, 503)
    assert s.tx.alive()


if __name__ == "__main__":
    harness.run_tests([
        test_a_foreign_content_type_is_415_even_with_an_empty_body,
        test_a_declared_length_over_the_limit_is_413_before_the_body,
        test_an_unknown_transfer_coding_is_501_at_once,
        test_json_is_strict_control_bytes_and_leading_zeros_are_400,
        test_control_characters_in_id_headers_are_400_and_never_stored,
        test_unknown_query_parameters_are_400_naming_them,
        test_errors_libmicrohttpd_raises_itself_keep_their_status_and_close,
    ])
