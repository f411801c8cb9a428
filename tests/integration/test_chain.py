"""Integration tests of tamper evidence (docs/DESIGN.md): the real stream
writes a chained log and signs its heads (--sign-key, a key from
scripts/sign-key); copies of that log are edited the ways an operator
could, and `stream --verify` must name the first line that does not hold
(seq, file, byte offset). A replica refuses a line whose chain does not
follow and keeps answering; a log written before chains, continued with
them, verifies whole and serves the same.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import test_hostile  # noqa: E402  (its fake stream)
from test_stream import Client, deposit, new_id, transfer  # noqa: E402

WAIT_S = 30.0
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SIGN_KEY = os.path.join(ROOT, "scripts", "sign-key")
FIXTURE_V1 = os.path.join(ROOT, "tests", "fixtures", "v1", "events.jsonl")
EVENTS = 20
EARLY_SEQ = 10   # a head kept after this many events
VERIFY_TIMEOUT_S = 60


def make_key(directory, name):
    """(key file, public key hex) from scripts/sign-key."""
    path = os.path.join(directory, name)
    run = subprocess.run([SIGN_KEY, path], capture_output=True, text=True,
                         timeout=VERIFY_TIMEOUT_S, check=True)
    return path, run.stdout.strip()


def get_head(service):
    status, head = harness.get_json(service.url + "/head")
    assert status == 200, (status, head)
    return head


def verify(path, *args):
    """(exit code, stdout, stderr) of stream --verify PATH args."""
    run = subprocess.run([harness.binary("stream"), "--verify", path, *args],
                         capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S)
    return run.returncode, run.stdout, run.stderr


def write_head(directory, name, head):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(head, f)
    return path


class Written:
    """A real log: EVENTS events (deposits, then transfers) appended one
    request each to a stream signing with a key of its own, the head taken
    at EARLY_SEQ and at the end."""

    def __init__(self, extra=(), events=EVENTS, accounting=False):
        self.dir = harness.tmpdir("chain-test-")
        self.key, self.public = make_key(self.dir, "sign.key")
        self.data = os.path.join(self.dir, "stream")
        self.endpoints = harness.Endpoints()
        self.stream = harness.start_stream(
            self.endpoints, self.data,
            extra=["--heartbeat-ms", "100", "--sign-key", self.key, *extra])
        client = Client(self.endpoints)
        for seq in range(1, events + 1):
            if seq <= EARLY_SEQ:
                event = deposit(new_id(), amount=100 + seq)
            else:
                event = transfer(new_id(), "alice", "bob", amount=seq)
            assert client.append(event)["status"] == "ok"
            if seq == EARLY_SEQ:
                self.early = get_head(self.stream)
        self.head = get_head(self.stream)
        client.close()
        self.accounting = None
        if accounting:
            self.accounting = harness.start_accounting(
                self.endpoints, os.path.join(self.dir, "accounting"))
        else:
            self.stream.stop_clean()

    def copy(self):
        """A copy of the log's data dir; (its dir, its one segment's path)."""
        target = os.path.join(harness.tmpdir("chain-copy-"), "stream")
        shutil.copytree(self.data, target)
        return target, harness.log_path(target)


def lines_of(path):
    with open(path, "rb") as f:
        return f.read().split(b"\0", 1)[0].split(b"\n")[:-1]


def write_lines(path, lines):
    with open(path, "wb") as f:
        f.write(b"".join(x + b"\n" for x in lines))


def offset_of(lines, seq):
    """Byte offset of line seq (1-based) in a file of lines."""
    return sum(len(x) + 1 for x in lines[:seq - 1])


def assert_named(result, seq, path, offset):
    code, out, err = result
    assert code == 1, result
    assert f"seq {seq} ({path}, byte offset {offset})" in err, (seq, offset, err)
    assert out == "", out


def reseal(lines, start):
    """The lines with every chain key from line start on recomputed: what
    an operator with the log alone can do."""
    prev = harness.check_chain(lines[:start - 1])
    out = lines[:start - 1]
    for line in lines[start - 1:]:
        sealed, prev = harness.chained(prev, harness.unchained(line))
        out.append(sealed)
    return out


def test_an_untouched_log_verifies_to_its_signed_head():
    log = Written()
    assert log.head["seq"] == EVENTS and log.head["public_key"] == log.public, log.head
    assert log.early["seq"] == EARLY_SEQ and "signature" in log.early, log.early
    data, path = log.copy()
    lines = lines_of(path)
    assert all(harness.chain_key(x) for x in lines), "every line ends with its chain"
    assert bytes.fromhex(log.head["chain"]) == harness.check_chain(lines)
    head_file = write_head(log.dir, "head.json", log.head)
    for target in (data, os.path.join(data, "events"), path):
        code, out, err = verify(target, "--head", head_file, "--public-key", log.public)
        assert code == 0, (target, code, err)
        assert json.loads(out) == {k: log.head[k] for k in ("seq", "ts", "chain")}, out
    code, out, err = verify(data, "--head", write_head(log.dir, "early.json", log.early))
    assert code == 0 and "not who signed it" in err, (code, err)


def test_one_digit_of_an_amount_is_named_at_its_seq():
    log = Written()
    data, path = log.copy()
    lines = lines_of(path)
    assert b'"amount":107,' in lines[6] or b'"amount":107}' in lines[6], lines[6]
    lines[6] = lines[6].replace(b'"amount":107', b'"amount":187')
    write_lines(path, lines)
    assert_named(verify(data), 7, path, offset_of(lines, 7))


def test_a_deleted_line_is_named_at_its_seq():
    log = Written()
    data, path = log.copy()
    lines = lines_of(path)
    offset = offset_of(lines, 5)
    del lines[4]
    write_lines(path, lines)
    assert_named(verify(data), 5, path, offset)


def test_an_inserted_line_is_named_at_its_seq():
    log = Written()
    data, path = log.copy()
    lines = lines_of(path)
    forged = lines[4].replace(b'"amount":105', b'"amount":999')
    assert forged != lines[4]
    lines.insert(4, forged)
    write_lines(path, lines)
    assert_named(verify(data), 5, path, offset_of(lines, 5))


def test_two_swapped_lines_are_named_at_the_first():
    log = Written()
    data, path = log.copy()
    lines = lines_of(path)
    lines[7], lines[8] = lines[8], lines[7]
    write_lines(path, lines)
    assert_named(verify(data), 8, path, offset_of(lines, 8))


def test_a_rewritten_tail_with_its_chain_recomputed_fails_an_earlier_signed_head():
    log = Written()
    data, path = log.copy()
    lines = lines_of(path)
    lines[6] = lines[6].replace(b'"amount":107', b'"amount":187')
    lines = reseal(lines, 7)
    write_lines(path, lines)
    #  Consistent in itself: the chain alone proves nothing without a head kept.
    code, out, err = verify(data)
    assert code == 0, (code, err)
    early = write_head(log.dir, "early.json", log.early)
    assert_named(verify(data, "--head", early, "--public-key", log.public),
                 EARLY_SEQ, path, offset_of(lines, EARLY_SEQ))
    final = write_head(log.dir, "final.json", log.head)
    assert_named(verify(data, "--head", final, "--public-key", log.public),
                 EVENTS, path, offset_of(lines, EVENTS))
    #  Cut back before the head: the head names lines that are gone.
    write_lines(path, lines[:EARLY_SEQ - 1])
    code, _, err = verify(data, "--head", early, "--public-key", log.public)
    assert code == 1 and f"seq {EARLY_SEQ} (--head" in err and "ends at seq" in err, err


def test_a_head_signed_by_another_key_is_refused_at_its_seq():
    log = Written()
    data, _ = log.copy()
    #  Another key signs the same log: a stream started on the copy with it.
    other_key, other_public = make_key(log.dir, "other.key")
    assert other_public != log.public
    endpoints = harness.Endpoints()
    other = harness.start_stream(endpoints, data, extra=["--sign-key", other_key])
    forged = get_head(other)
    other.stop_clean()
    assert forged["chain"] == log.head["chain"] and forged["public_key"] == other_public
    forged_file = write_head(log.dir, "forged.json", forged)
    code, out, err = verify(data, "--head", forged_file, "--public-key", log.public)
    assert code == 1 and out == "", (code, out, err)
    assert f"seq {EVENTS} (--head {forged_file})" in err and "key given" in err, err
    #  Another signature on the right key does not hold either.
    broken = dict(log.head, signature=forged["signature"])
    code, _, err = verify(data, "--head", write_head(log.dir, "broken.json", broken),
                          "--public-key", log.public)
    assert code == 1 and f"seq {EVENTS} (--head" in err, err


def test_segments_verify_whole_and_one_by_one_and_a_sealed_edit_is_named():
    log = Written(extra=["--segment-bytes", "4096"], events=60)
    data, _ = log.copy()
    paths = harness.segment_paths(data)
    assert len(paths) >= 3, paths
    for target in [data] + paths:
        code, out, err = verify(target)
        assert code == 0, (target, err)
    assert json.loads(verify(data)[1])["chain"] == log.head["chain"]
    #  The index beside a sealed segment names the chain at its end.
    with open(paths[0][:-len(".jsonl")] + ".idx") as f:
        index = json.load(f)
    assert bytes.fromhex(index["chain"]) == harness.check_chain(lines_of(paths[0]))
    victim = paths[1]
    lines = lines_of(victim)
    first = json.loads(lines[0])["seq"]
    lines[2] = lines[2].replace(b'"amount":', b'"amount":1', 1)
    write_lines(victim, lines)
    assert_named(verify(data), first + 2, victim, offset_of(lines, 3))


def test_a_replica_verifies_like_the_stream_and_serves_the_signed_head():
    log = Written(accounting=True)
    try:
        def caught_up():
            head = get_head(log.accounting)
            return head.get("seq") == EVENTS and "signature" in head and head
        head = harness.wait_until(caught_up, WAIT_S, 0.05, "accounting's signed head")
        assert head == log.head, (head, log.head)
        log.accounting.stop_clean()
        code, out, err = verify(os.path.join(log.dir, "accounting"), "--head",
                                write_head(log.dir, "head.json", head),
                                "--public-key", log.public)
        assert code == 0 and json.loads(out)["chain"] == log.head["chain"], (code, err)
    finally:
        log.stream.stop_clean()


def chained_lines(count, wrong_at=None):
    """test_hostile's canonical lines 1..count with their chain keys; the
    key of line wrong_at names another chain."""
    prev, out = harness.CHAIN_ZERO, []
    for seq in range(1, count + 1):
        sealed, prev = harness.chained(prev, test_hostile.line(seq))
        if seq == wrong_at:
            wrong, _ = harness.chained(b"\1" * 32, test_hostile.line(seq))
            sealed = wrong
        out.append(sealed)
    return out


def test_a_replica_refuses_a_line_whose_chain_does_not_follow_and_keeps_answering():
    workdir = harness.tmpdir()
    endpoints = harness.Endpoints()
    fake = test_hostile.FakeStream(endpoints, workdir)
    fake.set_lines(chained_lines(5))
    data_dir = os.path.join(workdir, "accounting")
    accounting = harness.start_accounting(endpoints, data_dir)
    try:
        def applied(version):
            def check():
                fake.keep_alive()
                status, body = harness.get_json(accounting.url + "/accounts/alice")
                return status == 200 and body["version"] == version and body
            return check
        harness.wait_until(applied(5), WAIT_S, 0.05, "the five good lines")
        good = harness.log_data(data_dir)
        fake.set_lines(chained_lines(6, wrong_at=6))

        def rejected():
            status, _, metrics = harness.request("GET", accounting.url + "/metrics")
            lines = [x for x in metrics.decode().splitlines()
                     if x.startswith("accounting_stream_rejected_total ")]
            return int(lines[0].split()[1]) if status == 200 and lines else 0

        def refused():
            fake.keep_alive()
            return rejected() > 0
        harness.wait_until(refused, WAIT_S, 0.1, "the wrong chain refused")
        #  (Complaints are logged at most once a second: one may go uncounted.)
        output = accounting.output()
        assert "its chain does not follow" in output or "not logged" in output, output
        status, body = harness.get_json(accounting.url + "/accounts/alice")
        assert status == 200 and body["version"] == 5, (status, body)
        status, health = harness.get_json(accounting.url + "/health")
        assert status == 200 and health["applied_seq"] == 5, (status, health)
        assert harness.log_data(data_dir) == good, "the replica took the refused line"
        head = get_head(accounting)
        assert head["seq"] == 5 and bytes.fromhex(head["chain"]) == harness.check_chain(
            chained_lines(5)), head
        #  The right line 6 follows.
        fake.set_lines(chained_lines(6))
        harness.wait_until(applied(6), WAIT_S, 0.05, "the right line 6")
        accounting.stop_clean()
    finally:
        fake.stop()


def test_a_log_from_before_chains_continued_with_them_verifies_whole():
    directory = harness.tmpdir("chain-mixed-")
    data = os.path.join(directory, "stream")
    os.makedirs(data)
    shutil.copy(FIXTURE_V1, os.path.join(data, "events.jsonl"))
    with open(FIXTURE_V1, "rb") as f:
        old = f.read().split(b"\n")[:-1]
    endpoints = harness.Endpoints()
    stream = harness.start_stream(endpoints, data, extra=["--heartbeat-ms", "100"])
    client = Client(endpoints)
    for _ in range(5):
        assert client.append(deposit(new_id(), account="judy", amount=3))["status"] == "ok"
    head = get_head(stream)
    client.close()
    #  A replica of the mixed log applies all of it.
    accounting = harness.start_accounting(endpoints, os.path.join(directory, "accounting"))
    harness.wait_until(lambda: harness.get_json(accounting.url + "/health")[1]
                       .get("applied_seq") == len(old) + 5, WAIT_S, 0.05, "the replica")
    assert get_head(accounting)["chain"] == head["chain"]
    accounting.stop_clean()
    stream.stop_clean()
    path = harness.log_path(data)
    lines = lines_of(path)
    assert lines[:len(old)] == old, "the old lines are kept as they were"
    assert all(harness.chain_key(x) is None for x in lines[:len(old)])
    assert all(harness.chain_key(x) for x in lines[len(old):])
    assert head["seq"] == len(old) + 5
    code, out, err = verify(data, "--head", write_head(directory, "head.json", head))
    assert code == 0 and json.loads(out) == head, (code, out, err)
    #  An edit among the old lines shows at the first line with a key.
    edited = list(lines)
    edited[99] = edited[99].replace(b'"amount":', b'"amount":9', 1)
    write_lines(path, edited)
    assert_named(verify(data), len(old) + 1, path, offset_of(edited, len(old) + 1))


def test_verify_refuses_bad_arguments_with_2():
    assert verify("/nonexistent-" + uuid.uuid4().hex)[0] == 2
    log_dir = harness.tmpdir()
    assert verify(log_dir, "--head", os.path.join(log_dir, "none.json"))[0] == 2
    assert verify(log_dir, "--bogus")[0] == 2


if __name__ == "__main__":
    harness.run_tests([
        test_an_untouched_log_verifies_to_its_signed_head,
        test_one_digit_of_an_amount_is_named_at_its_seq,
        test_a_deleted_line_is_named_at_its_seq,
        test_an_inserted_line_is_named_at_its_seq,
        test_two_swapped_lines_are_named_at_the_first,
        test_a_rewritten_tail_with_its_chain_recomputed_fails_an_earlier_signed_head,
        test_a_head_signed_by_another_key_is_refused_at_its_seq,
        test_segments_verify_whole_and_one_by_one_and_a_sealed_edit_is_named,
        test_a_replica_verifies_like_the_stream_and_serves_the_signed_head,
        test_a_replica_refuses_a_line_whose_chain_does_not_follow_and_keeps_answering,
        test_a_log_from_before_chains_continued_with_them_verifies_whole,
        test_verify_refuses_bad_arguments_with_2,
    ])
