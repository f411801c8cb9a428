"""The loopback rule: a service binds or connects beyond loopback only
with credentials (--auth-file for HTTP, --curve-dir for ZeroMQ). Without
them it refuses to start with exit status 2 and a message naming the
endpoint and the missing flag, before it opens anything; --insecure lets
it start and says so in the log."""

import os
import socket
import subprocess

import harness

# Not loopback, and never reached: the service exits before it resolves it.
REMOTE = "tcp://ledger-host.invalid:5556"
EXIT_TIMEOUT_S = 10


def run_until_exit(name, args):
    proc = subprocess.run([harness.binary(name)] + args, capture_output=True, text=True,
                          timeout=EXIT_TIMEOUT_S)
    return proc.returncode, proc.stdout + proc.stderr


def loopback_flags(name, data):
    endpoints = harness.Endpoints()
    flags = ["--http-port", str(harness.free_port())]
    if name == "stream":
        flags += endpoints.flags("ingest", "publish", "replay") + ["--data-dir", data]
    elif name == "transaction":
        flags += endpoints.flags("ingest", "publish", "replay")
    else:
        flags += endpoints.flags("publish", "replay") + ["--data-dir", data]
    return flags


def port_open(address, port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((address, port)) == 0


def replaced(flags, option, value):
    out = list(flags)
    if option in out:
        out[out.index(option) + 1] = value
    else:
        out += [option, value]
    return out


def exposures(name):
    """(option, value, the flag the refusal must name) for each endpoint of name."""
    cases = [("--http-addr", "0.0.0.0", "--auth-file"), ("--http-addr", "::", "--auth-file")]
    if name == "stream":
        cases += [(o, v, "--curve-dir") for o in ("--ingest", "--publish", "--replay")
                  for v in ("tcp://0.0.0.0:5557", "tcp://*:5557", "tcp://eth0:5557")]
    elif name == "transaction":
        cases += [(o, REMOTE, "--curve-dir") for o in ("--ingest", "--publish", "--replay")]
    else:
        cases += [(o, REMOTE, "--curve-dir") for o in ("--publish", "--replay")]
    return cases


def test_every_endpoint_beyond_loopback_without_credentials_refuses_to_start():
    for name in ("stream", "transaction", "accounting"):
        data = harness.tmpdir()
        for option, value, missing in exposures(name):
            flags = replaced(loopback_flags(name, os.path.join(data, "d")), option, value)
            status, output = run_until_exit(name, flags)
            assert status == 2, f"{name} {option} {value}: exit {status}: {output}"
            assert missing in output and value in output, f"{name} {option} {value}: {output}"
            assert not os.path.exists(os.path.join(data, "d", "events")), \
                f"{name} {option} {value}: opened its log before refusing"


def test_insecure_starts_beyond_loopback_and_says_so_in_the_log():
    data = harness.tmpdir()
    port = harness.free_port()
    endpoints = harness.Endpoints()
    endpoints.ingest = f"tcp://0.0.0.0:{harness.free_port()}"
    stream = harness.Service("stream", endpoints.flags("ingest", "publish", "replay") + [
        "--http-addr", "0.0.0.0", "--http-port", str(port), "--data-dir", data, "--insecure"],
        http_port=port)
    log = stream.output()
    assert "--insecure" in log and "0.0.0.0" in log, log
    stream.stop_clean()


def test_credentials_let_a_service_bind_beyond_loopback():
    data = harness.tmpdir()
    auth = os.path.join(data, "auth")
    with open(auth, "w") as f:
        f.write("ops read * " + "0" * 64 + "\n")
    port = harness.free_port()
    endpoints = harness.Endpoints()
    stream = harness.Service("stream", endpoints.flags("ingest", "publish", "replay") + [
        "--http-addr", "0.0.0.0", "--http-port", str(port), "--data-dir",
        os.path.join(data, "s"), "--auth-file", auth], http_port=port)
    assert "--insecure" not in stream.output()
    stream.stop_clean()


def test_loopback_needs_no_credentials():
    for name in ("stream", "accounting"):
        data = harness.tmpdir()
        flags = loopback_flags(name, data)
        port = int(flags[1])
        service = harness.Service(name, replaced(flags, "--http-addr", "127.0.0.2"),
                                  http_port=None)
        harness.wait_until(lambda: port_open("127.0.0.2", port), what=f"{name} on 127.0.0.2")
        assert "--insecure" not in service.output()
        service.stop_clean()


if __name__ == "__main__":
    harness.run_tests([
        test_every_endpoint_beyond_loopback_without_credentials_refuses_to_start,
        test_insecure_starts_beyond_loopback_and_says_so_in_the_log,
        test_credentials_let_a_service_bind_beyond_loopback,
        test_loopback_needs_no_credentials,
    ])
