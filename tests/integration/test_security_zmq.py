"""Integration tests of the ZeroMQ half of DESIGN.md's Security: CURVE with
--curve-dir on every service (certificates from scripts/certs), the
stream's per-socket key lists (writers/ for ingest, readers/ and writers/
for publish and replay), and memory the stream keeps bounded against
peers that misbehave, authenticated or not (measured as VmRSS).

Clients that push to the stream run as child processes of this file
(--child ...): libzmq 4.3.4 can abort a process whose peer goes away in
the middle of a multipart message (zeromq/libzmq#3442)."""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import uuid

import zmq
import zmq.auth

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

WAIT_S = 20.0
HEARTBEAT_MS = 100
CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                     "certs")
# Memory a misbehaving peer may make the stream grow by. The unbounded
# cases grew it by hundreds of MiB.
RSS_GROWTH_KIB_MAX = 64 * 1024
CTX = zmq.Context.instance()


# ---------------------------------------------------------------------------
# Helpers

def make_certs(count=1):
    out = os.path.join(harness.tmpdir("certs-"), "deployment")
    env = dict(os.environ, CURVE_KEYGEN=os.path.join(harness.BUILD_DIR, "stream",
                                                      "curve_keygen"))
    subprocess.run([CERTS, out, str(count)], check=True, env=env, timeout=WAIT_S,
                   capture_output=True)
    return out


def stranger_cert(name="stranger"):
    """A keypair nobody allowed: (public file, secret file)."""
    return zmq.auth.create_certificates(harness.tmpdir("stranger-"), name)


def rss_kib(service):
    with open(f"/proc/{service.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def metric(service, name):
    status, _, body = harness.request("GET", service.url + "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def log_lines(stream_dir):
    return harness.log_data(stream_dir).splitlines()


def deposit(account, amount=100, reference=None):
    event = {"id": str(uuid.uuid4()), "type": "deposited", "v": 1, "account": account,
             "amount": amount}
    if reference:
        event["meta"] = {"reference": reference}
    return json.dumps(event).encode()


def curve_client(sock, client_secret_file, server_public_file):
    """Makes sock a CURVE client; None files leave it plain."""
    if client_secret_file:
        public, secret = zmq.auth.load_certificate(client_secret_file)
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey, _ = zmq.auth.load_certificate(server_public_file)


def start_curve_stream(certs, endpoints=None):
    endpoints = endpoints or harness.Endpoints()
    data = harness.tmpdir("stream-")
    service = harness.start_stream(endpoints, data, extra=[
        "--curve-dir", os.path.join(certs, "stream"), "--heartbeat-ms", str(HEARTBEAT_MS)])
    return endpoints, data, service


def child(*args):
    return subprocess.Popen([sys.executable, __file__, "--child", *map(str, args)])


def stop_children(children):
    for proc in children:
        proc.kill()
        proc.wait()


def sub_socket(endpoint, client_secret=None, server_public=None):
    sub = CTX.socket(zmq.SUB)
    sub.linger = 0
    curve_client(sub, client_secret, server_public)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    return sub


def received(sock, timeout_ms=0):
    """Every message waiting on sock (heartbeats left out)."""
    messages = []
    while sock.poll(timeout_ms):
        msg = sock.recv_multipart()
        if msg[0] != b"HEARTBEAT":
            messages.append(msg)
        timeout_ms = 0
    return messages


def wait_heartbeat(sub):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if sub.poll(100) and sub.recv_multipart()[0] == b"HEARTBEAT":
            return
    raise AssertionError("no heartbeat: the SUB did not join")


# ---------------------------------------------------------------------------
# Child processes

def _child_push(endpoint, client_secret, server_public, count):
    """Sends count APPENDs (one deposit each), then waits to be killed."""
    push = zmq.Context().socket(zmq.PUSH)
    push.linger = 0
    curve_client(push, None if client_secret == "-" else client_secret, server_public)
    push.connect(endpoint)
    for n in range(int(count)):
        push.send_multipart([b"APPEND", f"child-{os.getpid()}-{n}".encode(),
                             deposit(f"intruder{n}")])
    time.sleep(3600)


def _child_fetch_never_read(endpoint, count, done_path):
    """Sends count FETCHes of ~1 MiB replies and never reads one."""
    dealer = zmq.Context().socket(zmq.DEALER)
    dealer.linger = 0
    dealer.rcvhwm = 1   # its own queue holds one reply: the rest stays with the stream
    dealer.connect(endpoint)
    for _ in range(int(count)):
        dealer.send_multipart([b"FETCH", b"1", b"10000", b"packed"])
    with open(done_path, "w") as f:
        f.write("sent\n")
    time.sleep(3600)


# ---------------------------------------------------------------------------
# CURVE

def test_curve_deployment_from_scripts_certs_works_end_to_end():
    certs = make_certs()
    endpoints, _, stream = start_curve_stream(certs)
    tx = harness.start_transaction(endpoints, extra=[
        "--curve-dir", os.path.join(certs, "transaction")])
    acc = harness.start_accounting(endpoints, harness.tmpdir("acc-"), extra=[
        "--curve-dir", os.path.join(certs, "accounting")])
    status, answer, _ = harness.post_json(tx.url + "/transactions",
                                          {"account": "alice", "amount": 1250})
    assert status == 201, (status, answer)
    harness.wait_until(lambda: harness.get_json(acc.url + "/accounts/alice")[0] == 200,
                       what="alice at accounting")
    status, body = harness.get_json(acc.url + "/accounts/alice")
    assert body["balance"] == 1250
    # transaction's PUSH, SUB and DEALER, accounting's SUB and DEALER
    assert metric(stream, "stream_curve_allowed_total") >= 5
    assert metric(stream, "stream_curve_refused_total") == 0
    for service in (tx, acc, stream):
        service.stop_clean()


def test_appends_from_no_key_a_stranger_or_a_reader_change_nothing():
    certs = make_certs()
    endpoints, data, stream = start_curve_stream(certs)
    reader = sub_socket(endpoints.publish, os.path.join(certs, "accounting",
                                                        "self.key_secret"),
                        os.path.join(certs, "accounting", "stream.key"))
    wait_heartbeat(reader)
    stream_key = os.path.join(certs, "accounting", "stream.key")
    _, stranger_secret = stranger_cert()
    intruders = [child("push", endpoints.ingest, "-", stream_key, 20),
                 child("push", endpoints.ingest, stranger_secret, stream_key, 20),
                 child("push", endpoints.ingest,
                       os.path.join(certs, "accounting", "self.key_secret"), stream_key, 20)]
    try:
        # The stranger and the reader are refused by ZAP (libzmq 4.3.4's
        # client then stops trying); the plain one fails at the greeting.
        harness.wait_until(lambda: metric(stream, "stream_curve_refused_total") >= 2,
                           timeout_s=WAIT_S, what="refused handshakes")
        # A writer sent after them lands first: nothing was waiting.
        writer = child("push", endpoints.ingest,
                       os.path.join(certs, "transaction", "self.key_secret"), stream_key, 1)
        intruders.append(writer)
        harness.wait_until(lambda: len(log_lines(data)) >= 1, what="the writer's event")
    finally:
        stop_children(intruders)
    lines = log_lines(data)
    assert len(lines) == 1 and b'"seq":1,' in lines[0] and b"intruder0" in lines[0], lines
    assert metric(stream, "stream_events_total") == 1
    published = [m for m in received(reader, 500) if m[0] == b"EVENTS"]
    assert len(published) == 1 and b'"seq":1,' in published[0][1], published
    assert "zap: refused key" in stream.output()
    reader.close()
    stream.stop_clean()


def test_sub_and_dealer_without_an_allowed_key_receive_nothing():
    certs = make_certs()
    endpoints, data, stream = start_curve_stream(certs)
    stream_key = os.path.join(certs, "accounting", "stream.key")
    reader_secret = os.path.join(certs, "accounting", "self.key_secret")
    _, stranger_secret = stranger_cert()
    reader = sub_socket(endpoints.publish, reader_secret, stream_key)
    strangers = [sub_socket(endpoints.publish, stranger_secret, stream_key),
                 sub_socket(endpoints.publish)]
    wait_heartbeat(reader)
    dealers = []
    for secret in (reader_secret, stranger_secret, None):
        dealer = CTX.socket(zmq.DEALER)
        dealer.linger = 0
        curve_client(dealer, secret, stream_key)
        dealer.connect(endpoints.replay)
        dealers.append(dealer)
    writer = child("push", endpoints.ingest,
                   os.path.join(certs, "transaction", "self.key_secret"), stream_key, 1)
    try:
        harness.wait_until(lambda: len(log_lines(data)) >= 1, what="the writer's event")
    finally:
        stop_children([writer])
    for dealer in dealers:
        try:
            dealer.send_multipart([b"FETCH", b"1", b"10"], zmq.NOBLOCK)
        except zmq.Again:
            pass   # no connection to queue it on: the key was refused
    assert dealers[0].poll(int(WAIT_S * 1000)), "the reader's FETCH was not answered"
    reply = dealers[0].recv_multipart()
    assert reply[0] == b"BATCH" and b'"seq":1,' in reply[2], reply
    events = [m for m in received(reader, int(WAIT_S * 1000)) if m[0] == b"EVENTS"]
    assert len(events) == 1
    wait_heartbeat(reader)   # what reached the reader had time to reach the others
    for sock in strangers + dealers[1:]:
        assert received(sock) == [], "a socket without an allowed key received"
    for sock in [reader] + strangers + dealers:
        sock.close()
    stream.stop_clean()


def test_accounting_pinned_on_another_stream_key_receives_nothing_and_keeps_answering():
    certs = make_certs(2)
    endpoints, data, stream = start_curve_stream(certs)
    fooled_dir = os.path.join(harness.tmpdir("fooled-"), "accounting")
    shutil.copytree(os.path.join(certs, "accounting-1"), fooled_dir)
    other_stream_public, _ = stranger_cert("stream")
    shutil.copy(other_stream_public, os.path.join(fooled_dir, "stream.key"))
    fooled_data = harness.tmpdir("acc-fooled-")
    honest = harness.start_accounting(endpoints, harness.tmpdir("acc-honest-"), extra=[
        "--curve-dir", os.path.join(certs, "accounting-2")])
    fooled = harness.start_accounting(endpoints, fooled_data,
                                      extra=["--curve-dir", fooled_dir])
    stream_key = os.path.join(certs, "transaction", "stream.key")
    writer = child("push", endpoints.ingest,
                   os.path.join(certs, "transaction", "self.key_secret"), stream_key, 3)
    try:
        harness.wait_until(
            lambda: harness.get_json(honest.url + "/health")[1]["applied_seq"] == 3,
            what="the honest replica at seq 3")
    finally:
        stop_children([writer])
    status, health = harness.get_json(fooled.url + "/health")
    assert status == 503 and health["upstream"] == "disconnected", health
    assert health["applied_seq"] == 0 and health["reads"] == "not-caught-up", health
    status, problem = harness.get_json(fooled.url + "/accounts/intruder0")
    # Never caught up, no local state: it says so rather than 404.
    assert status == 503 and problem["type"].endswith("/not-caught-up"), problem
    status, body = harness.get_json(honest.url + "/accounts/intruder0")
    assert status == 200 and body["balance"] == 100
    for service in (honest, fooled, stream):
        service.stop_clean()


def test_keys_added_to_or_removed_from_writers_take_effect_without_restart():
    certs = make_certs()
    endpoints, data, stream = start_curve_stream(certs)
    stream_key = os.path.join(certs, "transaction", "stream.key")
    newcomer_public, newcomer_secret = stranger_cert("newcomer")
    pushers = [child("push", endpoints.ingest, newcomer_secret, stream_key, 1)]
    try:
        harness.wait_until(lambda: metric(stream, "stream_curve_refused_total") >= 1,
                           what="the newcomer refused")
        assert log_lines(data) == []
        # Renamed into place: the folder's time changes, the stream reads it.
        staged = os.path.join(certs, "stream", "newcomer.key.tmp")
        shutil.copy(newcomer_public, staged)
        os.rename(staged, os.path.join(certs, "stream", "writers", "newcomer.key"))
        # A refused libzmq client does not try again: a new one connects.
        pushers.append(child("push", endpoints.ingest, newcomer_secret, stream_key, 1))
        harness.wait_until(lambda: len(log_lines(data)) == 1, what="the newcomer's event")
        # Removed: refused again.
        os.unlink(os.path.join(certs, "stream", "writers", "newcomer.key"))
        refused = metric(stream, "stream_curve_refused_total")
        pushers.append(child("push", endpoints.ingest, newcomer_secret, stream_key, 1))
        harness.wait_until(lambda: metric(stream, "stream_curve_refused_total") > refused,
                           what="the removed key refused")
    finally:
        stop_children(pushers)
    assert len(log_lines(data)) == 1
    stream.stop_clean()


def test_a_missing_or_damaged_certificate_stops_the_service_at_start():
    certs = make_certs()
    endpoints = harness.Endpoints()

    def run(name, curve_dir):
        args = {"stream": endpoints.flags("ingest", "publish", "replay")
                + ["--data-dir", harness.tmpdir(), "--http-port", str(harness.free_port())],
                "transaction": endpoints.flags("ingest", "publish", "replay")
                + ["--http-port", str(harness.free_port())],
                "accounting": endpoints.flags("publish", "replay")
                + ["--data-dir", harness.tmpdir(), "--http-port", str(harness.free_port())]}
        proc = subprocess.run([harness.binary(name), *args[name], "--curve-dir", curve_dir],
                              capture_output=True, timeout=WAIT_S)
        return proc.returncode, proc.stdout.decode() + proc.stderr.decode()

    def broken(service, change):
        copy = os.path.join(harness.tmpdir("broken-"), service)
        shutil.copytree(os.path.join(certs, service), copy)
        change(copy)
        return copy

    cases = [
        ("stream", os.path.join(certs, "nowhere"), "self.key_secret"),
        ("stream", broken("stream", lambda d: shutil.rmtree(os.path.join(d, "writers"))),
         "writers"),
        ("stream", broken("stream", lambda d: open(os.path.join(d, "readers", "bad.key"),
                                                   "w").write("curve\n    public-key = \"x\"\n")),
         "bad.key"),
        ("transaction", broken("transaction", lambda d: os.unlink(os.path.join(
            d, "stream.key"))), "stream.key"),
    ]
    for name, curve_dir, named in cases:
        code, output = run(name, curve_dir)
        assert code == 1, (name, curve_dir, code, output)
        assert named in output, (name, named, output)
    # A secret key that does not belong to its public key.
    mismatched = broken("accounting", lambda d: None)
    with open(os.path.join(certs, "transaction", "self.key_secret")) as f:
        other_secret = [line for line in f if "secret-key" in line][0]
    with open(os.path.join(mismatched, "self.key_secret")) as f:
        text = [other_secret if "secret-key" in line else line for line in f]
    with open(os.path.join(mismatched, "self.key_secret"), "w") as f:
        f.writelines(text)
    code, output = run("accounting", mismatched)
    assert code == 1 and "does not belong" in output, (code, output)


# ---------------------------------------------------------------------------
# Bounded memory

ZMTP_GREETING_NULL = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00")
                      + b"\x00" + b"\x00" * 31)


def zmtp_ready(socket_type):
    body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return b"\x04" + bytes([len(body)]) + body


def raw_ingest_peer(endpoint):
    host, port = endpoint.rsplit("/", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
    sock.sendall(ZMTP_GREETING_NULL + zmtp_ready(b"PUSH"))
    return sock


def send_until_refused(sock, header, chunk, bytes_max):
    """Sends header and then chunk until bytes_max or the peer closes;
    returns True if the stream closed the connection."""
    try:
        sock.sendall(header)
        sent = 0
        while sent < bytes_max:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        return True
    return False


PEERS = 16
PEER_BYTES_MAX = 24 * 1024 * 1024   # 16 peers x 24 MiB: 384 MiB if it were all kept


def test_raw_peer_sending_a_frame_beyond_the_limit_is_disconnected_and_costs_no_memory():
    endpoints = harness.Endpoints()
    data = harness.tmpdir("stream-")
    stream = harness.start_stream(endpoints, data)
    before = rss_kib(stream)
    peers = [raw_ingest_peer(endpoints.ingest) for _ in range(PEERS)]
    # One frame of 1 GiB announced (LONG, no MORE), its body streamed.
    header = b"\x02" + struct.pack(">Q", 1 << 30)
    refused = [send_until_refused(p, header, b"x" * 65536, PEER_BYTES_MAX) for p in peers]
    grown = rss_kib(stream) - before
    for p in peers:
        p.close()
    assert all(refused), refused
    assert grown < RSS_GROWTH_KIB_MAX, f"stream grew by {grown} KiB"
    assert log_lines(data) == []
    stream.stop_clean()


def test_unauthenticated_raw_peer_sending_an_endless_multipart_message_costs_no_memory():
    certs = make_certs()
    endpoints, data, stream = start_curve_stream(certs)
    before = rss_kib(stream)
    peers = [raw_ingest_peer(endpoints.ingest) for _ in range(PEERS)]
    # Frames of 60000 bytes with MORE set, never a last one.
    frame = b"\x03" + struct.pack(">Q", 60000) + b"y" * 60000
    refused = [send_until_refused(p, b"", frame, PEER_BYTES_MAX) for p in peers]
    grown = rss_kib(stream) - before
    for p in peers:
        p.close()
    assert all(refused), refused
    assert grown < RSS_GROWTH_KIB_MAX, f"stream grew by {grown} KiB"
    assert log_lines(data) == []
    stream.stop_clean()


def test_dealer_that_fetches_and_never_reads_pins_a_bounded_amount():
    endpoints = harness.Endpoints()
    data = harness.tmpdir("stream-")
    stream = harness.start_stream(endpoints, data)
    # A log of ~2.5 MiB: every FETCH from seq 1 is answered with ~1 MiB.
    push = CTX.socket(zmq.PUSH)
    push.linger = 0
    push.connect(endpoints.ingest)
    reference = "r" * 250
    for n in range(12):
        push.send_multipart([b"APPEND", f"fill-{n}".encode()]
                            + [deposit(f"a{k}", reference=reference) for k in range(500)])
    harness.wait_until(lambda: len(log_lines(data)) == 6000, what="6000 events")
    push.close()
    normal = CTX.socket(zmq.DEALER)
    normal.linger = 0
    normal.connect(endpoints.replay)
    normal.send_multipart([b"FETCH", b"1", b"10000", b"packed"])
    assert normal.poll(int(WAIT_S * 1000))
    reply = normal.recv_multipart()
    assert reply[0] == b"PACKED" and len(reply[2]) > 900 * 1024, len(reply[2])
    before = rss_kib(stream)
    done = os.path.join(harness.tmpdir("fetcher-"), "done")
    fetches = 400
    fetcher = child("fetch-never-read", endpoints.replay, fetches, done)
    try:
        harness.wait_until(lambda: os.path.exists(done), what="the FETCHes sent")
        harness.wait_until(
            lambda: metric(stream, "stream_replay_requests_total") >= fetches + 1,
            what="every FETCH received")
        grown = rss_kib(stream) - before
        dropped = metric(stream, "stream_replay_replies_dropped_total")
        # Others are still served while it holds its replies.
        normal.send_multipart([b"FETCH", b"5990", b"100", b"packed"])
        assert normal.poll(int(WAIT_S * 1000)), "a normal FETCH was not answered"
        assert normal.recv_multipart()[2].count(b"\n") == 11
    finally:
        stop_children([fetcher])
    assert dropped > 0, "no reply was dropped: the queue is not bounded"
    assert grown < RSS_GROWTH_KIB_MAX, f"stream grew by {grown} KiB for {fetches} FETCHes"
    normal.close()
    stream.stop_clean()


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    kind, args = sys.argv[2], sys.argv[3:]
    {"push": _child_push, "fetch-never-read": _child_fetch_never_read}[kind](*args)
elif __name__ == "__main__":
    harness.run_tests([
        test_curve_deployment_from_scripts_certs_works_end_to_end,
        test_appends_from_no_key_a_stranger_or_a_reader_change_nothing,
        test_sub_and_dealer_without_an_allowed_key_receive_nothing,
        test_accounting_pinned_on_another_stream_key_receives_nothing_and_keeps_answering,
        test_keys_added_to_or_removed_from_writers_take_effect_without_restart,
        test_a_missing_or_damaged_certificate_stops_the_service_at_start,
        test_raw_peer_sending_a_frame_beyond_the_limit_is_disconnected_and_costs_no_memory,
        test_unauthenticated_raw_peer_sending_an_endless_multipart_message_costs_no_memory,
        test_dealer_that_fetches_and_never_reads_pins_a_bounded_amount,
    ])
