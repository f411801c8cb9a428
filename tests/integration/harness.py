"""Integration harness: start the real binaries on free ports, talk to them
as clients do (HTTP, ZeroMQ), and kill everything that was started, even
when a test fails or the interpreter is interrupted.

Binaries come from $LEDGER_BUILD_DIR (set by meson test). Every process is
started in its own process group and registered; atexit and signal
handlers kill them all. A graceful stop (SIGTERM) must exit with status 0:
under ASan+UBSan a leak or UB report makes the exit status non-zero, so
sanitizer findings fail the test that stopped the service.
"""

import atexit
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

BUILD_DIR = os.environ.get("LEDGER_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
# libzmq's own leak when a peer is killed mid-message; see the file.
LSAN_SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0

_processes = []


def _kill_all():
    for proc in list(_processes):
        proc.kill9()


def _on_signal(signum, _frame):
    _kill_all()
    sys.exit(128 + signum)


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def binary(name):
    path = os.path.join(BUILD_DIR, name, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"binary not found: {path} (set LEDGER_BUILD_DIR)")
    return path


# Ports below Linux's ephemeral range (32768-60999 by default): a client's
# outgoing connection never takes one of these as its source port, so a
# service restarted on its old port finds it free.
_PORT_RANGE = (20000, 32000)
_ports_given = set()


def free_port():
    """A TCP port free right now on 127.0.0.1 and not given out before by
    this process."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(*_PORT_RANGE)
        if port in _ports_given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port in %d-%d" % _PORT_RANGE)


def tmpdir(prefix="ledger-test-"):
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, True)
    return path


class Endpoints:
    """One set of stream endpoints, shared by every service of a test."""

    def __init__(self):
        self.ingest = f"tcp://127.0.0.1:{free_port()}"
        self.publish = f"tcp://127.0.0.1:{free_port()}"
        self.replay = f"tcp://127.0.0.1:{free_port()}"

    def flags(self, *names):
        return [arg for name in names
                for arg in (f"--{name}", getattr(self, name))]


class Service:
    """One running binary. Output goes to a log file that is printed when
    the process dies unexpectedly or a test asks for it."""

    def __init__(self, name, args, http_port=None, wait=True, env=None):
        self.name = name
        self.args = list(args)
        self.http_port = http_port
        self.log_path = tempfile.mktemp(prefix=f"{name}-", suffix=".log")
        atexit.register(lambda: os.path.exists(self.log_path) and os.unlink(self.log_path))
        self.proc = None
        self.env = env
        self.start(wait)

    def start(self, wait=True):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.setdefault("LSAN_OPTIONS", "suppressions=" + LSAN_SUPPRESSIONS)
        if self.env:
            env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary(self.name)] + self.args,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        _processes.append(self)
        if wait and self.http_port:
            self.wait_healthy()
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_healthy(self, timeout_s=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   + self.output())
            try:
                status, _, _ = request("GET", self.url + "/health", timeout=1.0)
                # Accounting answers 503 not-caught-up until it has caught
                # up once (or has local state): up, and saying so.
                if status == 200 or (status == 503 and self.name == "accounting"):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} not healthy after {timeout_s}s:\n" + self.output())

    def stop(self, timeout_s=STOP_TIMEOUT_S):
        """SIGTERM and wait; returns the exit status (0 expected)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise RuntimeError(f"{self.name} did not stop within {timeout_s}s:\n"
                                   + self.output())
        return self._reap()

    def stop_clean(self):
        """Stop and fail loudly unless the exit was clean (sanitizers included)."""
        code = self.stop()
        if code != 0:
            raise AssertionError(f"{self.name} exited with {code}:\n" + self.output())

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        return self._reap()

    def signal(self, signum):
        self.proc.send_signal(signum)

    def _reap(self):
        code = self.proc.returncode if self.proc else None
        if self in _processes:
            _processes.remove(self)
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        return code

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


def start_stream(endpoints, data_dir, http_port=None, extra=(), **kw):
    http_port = http_port or free_port()
    args = endpoints.flags("ingest", "publish", "replay") + [
        "--http-port", str(http_port), "--data-dir", data_dir, *extra]
    return Service("stream", args, http_port=http_port, **kw)


def start_accounting(endpoints, data_dir, http_port=None, extra=(), **kw):
    http_port = http_port or free_port()
    args = endpoints.flags("publish", "replay") + [
        "--http-port", str(http_port), "--data-dir", data_dir, *extra]
    return Service("accounting", args, http_port=http_port, **kw)


def start_transaction(endpoints, http_port=None, extra=(), **kw):
    http_port = http_port or free_port()
    args = endpoints.flags("ingest", "publish", "replay") + [
        "--http-port", str(http_port), *extra]
    return Service("transaction", args, http_port=http_port, **kw)


def request(method, url, body=None, headers=None, timeout=10.0):
    """One HTTP request on a fresh connection. body may be bytes, str or a
    JSON-able object (sent as application/json). Returns (status, headers
    as a lower-cased dict, body bytes)."""
    assert url.startswith("http://")
    hostport, _, path = url[len("http://"):].partition("/")
    host, _, port = hostport.partition(":")
    headers = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, "/" + path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def get_json(url, timeout=10.0):
    status, headers, data = request("GET", url, timeout=timeout)
    return status, (json.loads(data) if data else None)


def post_json(url, obj, headers=None, timeout=10.0):
    status, resp_headers, data = request("POST", url, obj, headers, timeout)
    return status, (json.loads(data) if data else None), resp_headers


def wait_until(predicate, timeout_s=20.0, interval_s=0.02, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def segment_paths(data_dir):
    """A data dir's log segments (events/<first seq>.jsonl), in seq order."""
    folder = os.path.join(data_dir, "events")
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if name.endswith(".jsonl")]


def log_path(data_dir):
    """The open (last) segment of a data dir's log."""
    paths = segment_paths(data_dir)
    return paths[-1] if paths else os.path.join(data_dir, "events", "%020d.jsonl" % 1)


def log_data(data_dir):
    """The bytes of a data dir's log: its segments end to end, the open one
    up to its first zero byte (its preallocated tail; a write under way can
    show a zero page before a later written one)."""
    data = b""
    paths = segment_paths(data_dir)
    for path in paths:
        with open(path, "rb") as f:
            part = f.read()
        data += part.split(b"\0", 1)[0] if path == paths[-1] else part
    return data


def write_log_data(data_dir, data):
    """Replaces a data dir's log with data, as one segment."""
    folder = os.path.join(data_dir, "events")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    with open(os.path.join(folder, "%020d.jsonl" % 1), "wb") as f:
        f.write(data)


def append_log(data_dir, data):
    """Writes data at the end of the open segment's lines (over its
    preallocated zeros), as a cut write would leave it."""
    path = log_path(data_dir)
    with open(path, "r+b") as f:
        content = f.read()
        f.seek(len(content.rstrip(b"\0")))
        f.write(data)


def read_log(path):
    """The lines of a JSON Lines log (a data dir's, or one file) as parsed
    objects (strict)."""
    if os.path.isdir(path):
        data = log_data(path)
    else:
        with open(path, "rb") as f:
            data = f.read()
    assert data == b"" or data.endswith(b"\n"), "log does not end with a newline"
    return [json.loads(line) for line in data.split(b"\n") if line]


def assert_log_valid(path):
    """Seqs contiguous from 1, ts never decreasing. Returns the events."""
    events = read_log(path)
    for i, ev in enumerate(events, start=1):
        assert ev["seq"] == i, f"line {i} has seq {ev['seq']}"
        if i > 1:
            assert ev["ts"] >= events[i - 2]["ts"], f"ts goes backwards at seq {i}"
    return events


def all_accounts(service, page_limit=1000, timeout=10.0):
    """Every account of an accounting instance through its paginated list,
    checking the pages come sorted: {id: [balance, version, last_seq]}."""
    result, after = {}, None
    for _ in range(100000):
        query = f"limit={page_limit}" + (f"&after={urllib.parse.quote(after)}" if after else "")
        status, page = get_json(f"{service.url}/accounts?{query}", timeout=timeout)
        assert status == 200, (status, page)
        ids = [a["account"] for a in page["accounts"]]
        assert ids == sorted(ids) and (after is None or not ids or ids[0] > after)
        for a in page["accounts"]:
            result[a["account"]] = [a["balance"], a["version"], a["last_seq"]]
        after = page["next_after"]
        if after is None:
            return result
    raise AssertionError("the account list does not end")


class StreamLog:
    """The stream's log seen from a test; the class sets self.stream_dir."""

    @property
    def log_path(self):
        return log_path(self.stream_dir)

    def log_bytes(self):
        return log_data(self.stream_dir)

    def events(self):
        """The whole log, strictly valid (use at a quiescent point)."""
        return assert_log_valid(self.stream_dir)


def fold(events, upto_seq=None):
    """The reference fold: {account: [balance, version, last_seq]}."""
    state = {}
    for ev in events:
        if upto_seq is not None and ev["seq"] > upto_seq:
            break
        def touch(account, delta):
            entry = state.setdefault(account, [0, 0, 0])
            entry[0] += delta
            entry[1] += 1
            entry[2] = ev["seq"]
        if ev["type"] == "deposited":
            touch(ev["account"], ev["amount"])
        elif ev["type"] == "withdrawn":
            touch(ev["account"], -ev["amount"])
        elif ev["type"] == "transferred":
            touch(ev["from"], -ev["amount"])
            touch(ev["to"], ev["amount"])
        elif ev["type"] in ("account_opened", "account_updated"):
            touch(ev["account"], 0)  # a touch that moves no money
        elif ev["type"] == "transfer_posted":
            touch(ev["from"], -ev["amount"])
            touch(ev["to"], ev["amount"])
        elif ev["type"] in ("transfer_pending", "transfer_voided", "transfer_expired"):
            touch(ev["from"], 0)  # a hold and its release move no balance
            touch(ev["to"], 0)
    return state


def run_tests(test_functions):
    """Runs test_* functions in order, prints claims as they pass, and
    exits non-zero on the first failure (after killing every process)."""
    failed = 0
    for fn in test_functions:
        start = time.monotonic()
        try:
            fn()
        except Exception:
            import traceback
            traceback.print_exc()
            print(f"FAIL {fn.__name__}", flush=True)
            failed += 1
        else:
            print(f"ok   {fn.__name__} ({time.monotonic() - start:.2f}s)", flush=True)
        finally:
            _kill_all()
    sys.exit(1 if failed else 0)
