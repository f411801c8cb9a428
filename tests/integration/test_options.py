"""The command line of every service: each option keeps its spelling and
shows in --help, --help and --version exit 0, and bad usage (an unknown
option, a value out of range or malformed, a missing argument, a stray
argument, options that need each other) exits 2 with a message, before
the service opens anything."""

import re
import subprocess

import harness

EXIT_TIMEOUT_S = 10

SECURITY = ["auth-file", "tls-cert", "tls-key", "curve-dir", "insecure",
            "body-buffer-bytes-max"]
OPTIONS = {
    "stream": ["ingest", "publish", "replay", "http-addr", "http-port", "data-dir",
               "segment-bytes", "verify", "fsync", "heartbeat-ms", "dedupe-window",
               "log-level"],
    "transaction": ["ingest", "publish", "replay", "http-addr", "http-port",
                    "ack-timeout-ms", "overdraft-limit", "inflight-max", "retries-max",
                    "hold-expiry-ms", "idempotency-keys-max", "connections-per-ip",
                    "log-level"],
    "accounting": ["publish", "replay", "http-addr", "http-port", "data-dir", "reuse-port",
                   "rebuild", "segment-bytes", "verify", "snapshot-every", "wait-ms-max",
                   "waiters-max", "connections-per-ip", "log-level", "subscriber-hwm",
                   "upstream-timeout-ms", "overdraft-limit", "feed-subscribers-max",
                   "feed-keepalive-ms", "feed-stall-ms"],
}
BAD_EVERYWHERE = [["--http-port", "65536"], ["--http-port", "-1"], ["--http-port", "8x"],
                  ["--http-port"], ["--log-level", "loud"], ["--bogus"], ["extra"],
                  ["--help=yes"], ["--tls-cert", "cert.pem"],
                  ["--body-buffer-bytes-max", "5"]]
BAD = {
    "stream": [["--fsync", "sometimes"], ["--heartbeat-ms", "0"], ["--dedupe-window", "x"],
               ["--segment-bytes", "10"], ["--verify=1"]],
    "transaction": [["--ack-timeout-ms", "0"], ["--retries-max", "1001"],
                    ["--hold-expiry-ms", "-1"], ["--hold-expiry-ms", "3600001"],
                    ["--overdraft-limit", "-1"], ["--inflight-max", "0"],
                    ["--connections-per-ip", "0"], ["--fsync", "never"]],
    "accounting": [["--segment-bytes", "10"], ["--feed-stall-ms", "0"],
                   ["--waiters-max", "1000001"], ["--upstream-timeout-ms", "0"],
                   ["--snapshot-every", "-1"], ["--ingest", "tcp://127.0.0.1:1"]],
}


def run(name, args):
    return subprocess.run([harness.binary(name)] + args, capture_output=True, text=True,
                          timeout=EXIT_TIMEOUT_S)


def test_help_lists_every_option_and_exits_0():
    for name, options in OPTIONS.items():
        proc = run(name, ["--help"])
        assert proc.returncode == 0, (name, proc.returncode, proc.stderr)
        assert proc.stdout.startswith(f"Usage: {name} [OPTION]...\n"), proc.stdout
        listed = re.findall(r"^  --([a-z-]+)", proc.stdout, re.M)
        assert listed == options + SECURITY + ["help", "version"], (name, listed)


def test_help_shows_the_defaults():
    proc = run("transaction", ["--help"])
    assert "--ingest ENDPOINT       stream's ingest, PUSH connect (tcp://127.0.0.1:5557)\n" \
        in proc.stdout, proc.stdout
    assert "--http-port N           HTTP port (3000; 0 = any)\n" in proc.stdout, proc.stdout
    proc = run("stream", ["--help"])
    assert "--fsync always|never    fdatasync each burst before acknowledging (always)\n" \
        in proc.stdout, proc.stdout
    proc = run("accounting", ["--help"])
    assert "--upstream-timeout-ms N  silence before upstream counts as down (3000)\n" \
        in proc.stdout, proc.stdout


def test_version_names_the_service_and_exits_0():
    for name in OPTIONS:
        proc = run(name, ["--version"])
        assert proc.returncode == 0, (name, proc.returncode, proc.stderr)
        assert re.fullmatch(rf"{name} \S+\n", proc.stdout), proc.stdout


def test_bad_usage_exits_2_with_a_message():
    for name in OPTIONS:
        for args in BAD_EVERYWHERE + BAD[name]:
            proc = run(name, args)
            assert proc.returncode == 2, (name, args, proc.returncode, proc.stdout)
            assert proc.stderr.strip(), (name, args)


if __name__ == "__main__":
    harness.run_tests([
        test_help_lists_every_option_and_exits_0,
        test_help_shows_the_defaults,
        test_version_names_the_service_and_exits_0,
        test_bad_usage_exits_2_with_a_message,
    ])
