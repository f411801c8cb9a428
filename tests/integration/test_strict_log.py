"""Integration tests: the stream starts only on a strict log.

The real stream binary is started on logs laid out by hand. Only a tail
without its \\n (or NUL padding) is torn and truncated; every complete line
must be exactly canonical, and an id may be stored once: otherwise the
stream refuses to start (non-zero exit), names the line and byte offset,
and leaves the file as it was, byte for byte. A log in the canonical form
loads unchanged, and its ids are still known to the dedupe window.
Accounting's replica follows the same rules, and --rebuild discards it.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_stream import Client, deposit, new_id  # noqa: E402

WAIT_S = 30.0
EVENTS = 5


def line(seq, event_id=None):
    """A canonical stored line, as the stream writes it."""
    return (f'{{"seq":{seq},"id":"{event_id or f"ev-{seq}"}","type":"deposited","v":1,'
            f'"ts":"2026-11-22T07:28:47.{seq * 10:03d}Z","account":"alice",'
            f'"amount":{seq * 100}}}').encode()


def good_lines():
    return [line(seq) for seq in range(1, EVENTS + 1)]


def joined(lines, end=b"\n"):
    return b"".join(x + end for x in lines)


def offset_of(lines, index, end=b"\n"):
    return sum(len(x) + len(end) for x in lines[:index])


def write_log(content):
    data_dir = harness.tmpdir("strict-log-")
    with open(os.path.join(data_dir, "events.jsonl"), "wb") as f:
        f.write(content)
    return data_dir


def read_log(data_dir):
    """The log file's bytes: the earlier version's events.jsonl, or the
    first segment it was adopted as (by rename, not a byte rewritten)."""
    legacy = os.path.join(data_dir, "events.jsonl")
    path = legacy if os.path.exists(legacy) else harness.log_path(data_dir)
    with open(path, "rb") as f:
        return f.read()


def run_stream(data_dir):
    """Starts the stream on data_dir; returns (exit status, or None if it
    became healthy, and then it is stopped cleanly; its output)."""
    endpoints = harness.Endpoints()
    service = harness.start_stream(endpoints, data_dir, wait=False)
    try:
        service.wait_healthy()
    except RuntimeError:
        if service.alive():
            raise
        code = service.stop()
        return code, service.output()
    service.stop_clean()
    return None, service.output()


def assert_refused(content, *expected):
    data_dir = write_log(content)
    code, output = run_stream(data_dir)
    assert code not in (None, 0), f"started on a bad log:\n{output}"
    for text in expected:
        assert text in output, f"{text!r} not in:\n{output}"
    assert read_log(data_dir) == content, "a refused log was changed"


def test_flipped_byte_in_the_last_complete_line_refuses_to_start():
    lines = good_lines()
    content = bytearray(joined(lines))
    content[-2] ^= 0x01                      # its closing brace
    assert_refused(bytes(content), f"line {EVENTS} ",
                   f"byte offset {offset_of(lines, EVENTS - 1)}")


def test_crlf_line_ends_refuse_to_start_at_the_first_line():
    assert_refused(joined(good_lines(), b"\r\n"), "line 1 ", "byte offset 0", "canonical")


def test_json_dumps_spacing_refuses_to_start():
    lines = good_lines()
    lines[2] = json.dumps(json.loads(lines[2])).encode()
    assert_refused(joined(lines), "line 3 ", f"byte offset {offset_of(lines, 2)}")


def test_other_key_order_refuses_to_start():
    lines = good_lines()
    event = json.loads(lines[1])
    reordered = {"id": event["id"], "seq": event["seq"],
                 **{k: v for k, v in event.items() if k not in ("id", "seq")}}
    lines[1] = json.dumps(reordered, separators=(",", ":")).encode()
    assert_refused(joined(lines), "line 2 ", f"byte offset {offset_of(lines, 1)}")


def test_an_id_at_two_seqs_refuses_to_start_naming_both():
    lines = good_lines()
    lines[3] = line(4, event_id="ev-2")
    assert_refused(joined(lines), "line 4 ", f"byte offset {offset_of(lines, 3)}",
                   "seq 4", "line 2 ", f"byte offset {offset_of(lines, 1)}", "seq 2",
                   '"ev-2"')


def assert_truncated(tail, dropped=None):
    good = joined(good_lines())
    data_dir = write_log(good + tail)
    code, output = run_stream(data_dir)
    assert code is None, f"refused a torn tail:\n{output}"
    dropped = len(tail) if dropped is None else dropped
    assert f"torn tail at byte offset {len(good)}: dropping {dropped} bytes" in output, \
        output
    assert read_log(data_dir) == good


def test_tail_without_newline_is_truncated_and_the_stream_starts():
    assert_truncated(line(6)[:40])
    assert_truncated(line(6))              # whole, but never terminated


def test_nul_padded_tail_is_truncated_and_the_stream_starts():
    #  The zeros after the cut line were never data (what preallocation
    #  leaves): the warning counts the torn bytes alone.
    assert_truncated(line(6)[:30] + b"\x00" * 10000, dropped=30)


def test_zeros_alone_are_the_preallocated_tail_and_stay():
    good = joined(good_lines())
    data_dir = write_log(good + b"\x00" * 4096)
    code, output = run_stream(data_dir)
    assert code is None, f"refused a preallocated tail:\n{output}"
    assert "torn tail" not in output, output
    assert read_log(data_dir) == good + b"\x00" * 4096


def test_canonical_log_loads_unchanged_and_its_ids_stay_known():
    content = joined(good_lines())
    data_dir = write_log(content)
    endpoints = harness.Endpoints()
    service = harness.start_stream(endpoints, data_dir)
    client = Client(endpoints)
    try:
        assert read_log(data_dir) == content
        assert client.append(deposit("ev-3")) == {"status": "duplicate", "first_seq": 3,
                                                  "last_seq": 3}
        assert client.append(deposit(new_id())) == {"status": "ok", "first_seq": 6,
                                                    "last_seq": 6}
        assert read_log(data_dir).startswith(content)
    finally:
        client.close()
        service.stop_clean()


def test_accounting_refuses_a_non_canonical_replica_until_rebuilt():
    lines = good_lines()
    lines[1] = json.dumps(json.loads(lines[1])).encode()
    content = joined(lines)
    data_dir = write_log(content)
    endpoints = harness.Endpoints()
    service = harness.start_accounting(endpoints, data_dir, wait=False)
    try:
        service.wait_healthy()
    except RuntimeError:
        pass
    assert not service.alive(), "accounting started on a non-canonical replica"
    code, output = service.stop(), service.output()
    assert code not in (None, 0), output
    for text in ("line 2 ", f"byte offset {offset_of(lines, 1)}", "--rebuild"):
        assert text in output, f"{text!r} not in:\n{output}"
    assert read_log(data_dir) == content
    service = harness.start_accounting(endpoints, data_dir, extra=["--rebuild"])
    service.stop_clean()
    assert read_log(data_dir) == b""   # discarded, to be fetched again


if __name__ == "__main__":
    harness.run_tests([
        test_flipped_byte_in_the_last_complete_line_refuses_to_start,
        test_crlf_line_ends_refuse_to_start_at_the_first_line,
        test_json_dumps_spacing_refuses_to_start,
        test_other_key_order_refuses_to_start,
        test_an_id_at_two_seqs_refuses_to_start_naming_both,
        test_tail_without_newline_is_truncated_and_the_stream_starts,
        test_nul_padded_tail_is_truncated_and_the_stream_starts,
        test_zeros_alone_are_the_preallocated_tail_and_stay,
        test_canonical_log_loads_unchanged_and_its_ids_stay_known,
        test_accounting_refuses_a_non_canonical_replica_until_rebuilt,
    ])
