"""Integration tests for the log's segments over the real binaries: the
stream and accounting rolled at a small --segment-bytes, so a few thousand
events make dozens of segments. Claims: a replica's segment files are the
stream's, byte for byte, under concurrent writes and after a catch-up
across boundaries; kill -9 at any moment (rolls included) restarts on a
valid log; a missing segment refuses to start naming it; --verify reads
every sealed line and its checksum; --rebuild refetches identical files.
"""

import os
import random
import subprocess
import threading
import time
import uuid

import zmq

import harness
from test_accounting import Ledger, assert_matches_log, wait_applied

SEGMENT_BYTES = 4096
SMALL = ["--segment-bytes", str(SEGMENT_BYTES)]
WRITERS = 3


def segment_files(data_dir):
    """{name: bytes} of a data dir's events/ folder, the open segment
    without its preallocated zeros."""
    folder = os.path.join(data_dir, "events")
    names = sorted(os.listdir(folder))
    segments = [n for n in names if n.endswith(".jsonl")]
    files = {}
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        files[name] = data.split(b"\0", 1)[0] if name == segments[-1] else data
    return files


def assert_same_segments(stream_dir, replica_dir):
    left, right = segment_files(stream_dir), segment_files(replica_dir)
    assert sorted(left) == sorted(right), (sorted(left)[-4:], sorted(right)[-4:])
    for name in left:
        assert left[name] == right[name], f"{name} differs"


def write_concurrently(ledger, events_per_writer, batch=7):
    """WRITERS threads, each its own PUSH socket, APPENDing at once."""
    def writer(index):
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 2000)
        push.connect(ledger.endpoints.ingest)
        rng = random.Random(index)
        left = events_per_writer
        while left > 0:
            n = min(batch, left)
            frames = [b"APPEND", uuid.uuid4().hex.encode()]
            for _ in range(n):
                frames.append(('{"id":"%s","type":"deposited","v":1,"account":"w%d-%d",'
                               '"amount":%d}' % (uuid.uuid4(), index, rng.randrange(50),
                                                 rng.randint(1, 1000))).encode())
            push.send_multipart(frames)
            left -= n
        push.close()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.sent += WRITERS * events_per_writer
    return ledger.sent


def test_replica_segments_are_the_streams_under_concurrent_writes_and_catch_up():
    ledger = Ledger(extra=SMALL)
    live = ledger.accounting(extra=SMALL)
    last = write_concurrently(ledger, 1000)
    ledger.wait_committed(last)
    wait_applied(live, last)
    assert len(harness.segment_paths(ledger.stream_dir)) > 20
    assert_same_segments(ledger.stream_dir, live.args[live.args.index("--data-dir") + 1])
    #  A late instance fetches every page across every boundary.
    late = ledger.accounting(extra=SMALL)
    wait_applied(late, last)
    assert_matches_log(late, ledger)
    late_dir = late.args[late.args.index("--data-dir") + 1]
    assert_same_segments(ledger.stream_dir, late_dir)
    #  Restarts open the same files and keep rolling the same way.
    ledger.stream.kill9()
    ledger.stream.start()
    late.stop_clean()
    late.start()
    last = write_concurrently(ledger, 300)
    ledger.wait_committed(last)
    wait_applied(late, last)
    wait_applied(live, last)
    assert_same_segments(ledger.stream_dir, late_dir)
    assert_matches_log(live, ledger)
    #  --rebuild discards the replica's segments and fetches the same ones.
    late.stop_clean()
    late.args += ["--rebuild"]
    late.start()
    wait_applied(late, last)
    assert_same_segments(ledger.stream_dir, late_dir)
    for service in (late, live, ledger.stream):
        service.stop_clean()


def test_kill_9_at_any_moment_rolls_included_restarts_on_a_valid_log():
    ledger = Ledger(extra=SMALL)
    stop = threading.Event()

    def writer():
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(ledger.endpoints.ingest)
        while not stop.is_set():
            frames = [b"APPEND", uuid.uuid4().hex.encode()]
            frames += [('{"id":"%s","type":"deposited","v":1,"account":"k","amount":1}'
                        % uuid.uuid4()).encode() for _ in range(5)]
            try:
                push.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                pass
            time.sleep(0.001)
        push.close()

    thread = threading.Thread(target=writer)
    thread.start()
    rng = random.Random(11)
    try:
        for _ in range(6):
            time.sleep(0.3 + rng.random() * 0.4)
            ledger.stream.kill9()
            ledger.stream.start()   # must come up healthy on what was left
    finally:
        stop.set()
        thread.join()
    events = ledger.events()
    assert len(events) > 0
    assert len(harness.segment_paths(ledger.stream_dir)) > 3
    #  Every sealed segment has its index; a --verify start checks them all.
    ledger.stream.stop_clean()
    ledger.stream.args += ["--verify"]
    ledger.stream.start()
    ledger.stream.stop_clean()


def start_refused(service):
    service.start(wait=False)
    try:
        code = service.proc.wait(20)
    except subprocess.TimeoutExpired:
        raise AssertionError("started on a log it should refuse:\n" + service.output())
    assert code not in (None, 0), service.output()
    return service.output()


def test_a_missing_segment_or_a_changed_sealed_byte_refuses_naming_the_file():
    ledger = Ledger(extra=SMALL)
    last = ledger.append(1500, batch=50)
    ledger.wait_committed(last)
    ledger.stream.stop_clean()
    paths = harness.segment_paths(ledger.stream_dir)
    assert len(paths) > 5
    victim = paths[2]
    with open(victim, "rb") as f:
        data = f.read()
    #  A byte inside an id that still spells a canonical line: the line's
    #  chain key no longer follows, which a start reading it for the
    #  dedupe window sees, and so does --verify (before the checksum).
    at = data.index(b'"id":"') + 8
    flipped = data[:at] + (b"0" if data[at:at + 1] != b"0" else b"1") + data[at + 1:]
    with open(victim, "wb") as f:
        f.write(flipped)
    output = start_refused(ledger.stream)
    assert os.path.basename(victim) in output and "chain" in output, output
    ledger.stream.args += ["--verify"]
    output = start_refused(ledger.stream)
    assert os.path.basename(victim) in output and "chain" in output, output
    ledger.stream.args.remove("--verify")
    with open(victim, "wb") as f:
        f.write(data)
    #  A segment gone (with its index): the next one names the gap.
    os.rename(paths[3], paths[3] + ".away")
    os.rename(paths[3][:-len(".jsonl")] + ".idx", paths[3] + ".idx.away")
    output = start_refused(ledger.stream)
    assert os.path.basename(paths[4]) in output and "missing or extra segment" in output, \
        output
    os.rename(paths[3] + ".away", paths[3])
    os.rename(paths[3] + ".idx.away", paths[3][:-len(".jsonl")] + ".idx")
    ledger.stream.start()
    assert len(ledger.events()) == last
    ledger.stream.stop_clean()


def backup(stream_dir, target_dir):
    """README's backup of a live stream, step by step: list events/; copy
    every segment that has its .idx, with the .idx; then the last listed
    segment up to the last newline before its first zero byte. Returns the
    seq the copy ends at."""
    folder = os.path.join(stream_dir, "events")
    names = sorted(os.listdir(folder))
    segments = [n for n in names if n.endswith(".jsonl")]
    copy = os.path.join(target_dir, "events")
    os.makedirs(copy)
    for name in segments[:-1]:
        index = name[:-len(".jsonl")] + ".idx"
        assert index in names, f"{name} listed without its index"
        for part in (name, index):
            with open(os.path.join(folder, part), "rb") as f:
                data = f.read()
            with open(os.path.join(copy, part), "wb") as f:
                f.write(data)
    with open(os.path.join(folder, segments[-1]), "rb") as f:
        data = f.read()
    data = data.split(b"\0", 1)[0]  # before its preallocated zeros
    data = data[:data.rfind(b"\n") + 1]
    with open(os.path.join(copy, segments[-1]), "wb") as f:
        f.write(data)
    return int(segments[-1][:-len(".jsonl")]) - 1 + data.count(b"\n")


def test_a_backup_of_a_live_stream_restores_to_a_prefix_of_its_log():
    ledger = Ledger(extra=SMALL)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            ledger.append(20, batch=20)
            time.sleep(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        harness.wait_until(lambda: len(harness.segment_paths(ledger.stream_dir)) > 10, 30,
                           what="ten segments")
        target = harness.tmpdir("segments-backup-")
        seq = backup(ledger.stream_dir, target)
    finally:
        stop.set()
        thread.join()
    assert seq > 0
    ledger.wait_committed(ledger.sent)
    live = harness.log_data(ledger.stream_dir)
    restored = harness.log_data(target)
    assert restored == b"".join(line + b"\n" for line in live.split(b"\n")[:seq]), \
        "the copy is not the log's prefix up to its last seq"
    #  Restore: a stream on the copy, checked whole, serving from that seq on.
    endpoints = harness.Endpoints()
    stream = harness.start_stream(endpoints, target, extra=SMALL + ["--verify"])
    status, health = harness.get_json(stream.url + "/health")
    assert status == 200 and health["last_seq"] == seq, health
    other = Ledger.__new__(Ledger)
    other.__dict__.update(ledger.__dict__)
    other.endpoints, other.stream_dir, other.stream = endpoints, target, stream
    other.push = zmq.Context.instance().socket(zmq.PUSH)
    other.push.setsockopt(zmq.LINGER, 1000)
    other.push.connect(endpoints.ingest)
    other.sent = seq
    other.wait_committed(other.append(100))
    assert len(harness.assert_log_valid(target)) == seq + 100
    other.push.close()
    stream.stop_clean()
    ledger.stream.stop_clean()


FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "v1",
                       "events.jsonl")


def test_an_events_jsonl_the_previous_version_wrote_is_adopted_byte_for_byte():
    """tests/fixtures/v1/events.jsonl: events written by the schema-1
    stream before segments (one events.jsonl). The new stream renames it into events/ as
    its first segment, untouched, and keeps its ids and seqs."""
    with open(FIXTURE, "rb") as f:
        fixture = f.read()
    endpoints = harness.Endpoints()
    data_dir = harness.tmpdir("segments-v1-")
    legacy = os.path.join(data_dir, "events.jsonl")
    with open(legacy, "wb") as f:
        f.write(fixture)
    inode = os.stat(legacy).st_ino
    stream = harness.start_stream(endpoints, data_dir, extra=SMALL)
    first = os.path.join(data_dir, "events", "%020d.jsonl" % 1)
    assert not os.path.exists(legacy) and os.stat(first).st_ino == inode
    with open(first, "rb") as f:
        assert f.read() == fixture
    status, health = harness.get_json(stream.url + "/health")
    count = fixture.count(b"\n")
    assert status == 200 and health["last_seq"] == count, health
    #  Its ids stay known; new lines go to a new segment (it is larger
    #  than --segment-bytes), and the adopted one is sealed unchanged.
    ledger = Ledger.__new__(Ledger)
    ledger.endpoints, ledger.stream_dir, ledger.stream = endpoints, data_dir, stream
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 1000)
    push.connect(endpoints.ingest)
    old_line = fixture.split(b"\n")[41]
    old_id = old_line.split(b'"id":"')[1].split(b'"')[0]
    push.send_multipart([b"APPEND", b"again", b'{"id":"%s","type":"deposited","v":1,'
                         b'"account":"v1","amount":5}' % old_id])
    push.send_multipart([b"APPEND", b"new", b'{"id":"v2-new","type":"deposited","v":1,'
                         b'"account":"v1","amount":5}'])
    push.close()
    ledger.wait_committed(count + 1)
    assert len(harness.segment_paths(data_dir)) == 2
    assert os.path.exists(os.path.join(data_dir, "events", "%020d.idx" % 1))
    with open(first, "rb") as f:
        assert f.read() == fixture
    events = harness.assert_log_valid(data_dir)
    assert len(events) == count + 1 and events[-1]["id"] == "v2-new"
    #  A replica fetched from it holds the same log.
    accounting = harness.start_accounting(endpoints, harness.tmpdir("segments-v1-acc-"),
                                          extra=SMALL)
    wait_applied(accounting, count + 1)
    assert harness.log_data(accounting.args[accounting.args.index("--data-dir") + 1]) == \
        harness.log_data(data_dir)
    accounting.stop_clean()
    stream.stop_clean()
    stream.start()
    stream.stop_clean()


if __name__ == "__main__":
    harness.run_tests([
        test_replica_segments_are_the_streams_under_concurrent_writes_and_catch_up,
        test_kill_9_at_any_moment_rolls_included_restarts_on_a_valid_log,
        test_a_missing_segment_or_a_changed_sealed_byte_refuses_naming_the_file,
        test_an_events_jsonl_the_previous_version_wrote_is_adopted_byte_for_byte,
        test_a_backup_of_a_live_stream_restores_to_a_prefix_of_its_log,
    ])
