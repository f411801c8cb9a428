"""Integration tests for accounting's snapshots over the real binaries.
Claims: a restart loads the newest snapshot and folds only what follows
it, to the reference fold; a snapshot that fails its checksum, or one of
another fold version, is ignored (and the answers stay right); --rebuild
ignores and discards snapshots; kill -9 while snapshots are being written
leaves a start that removes the cut temp file and answers right.
"""

import glob
import hashlib
import os
import random
import re
import struct
import time

import harness
from test_accounting import Ledger, assert_matches_log, wait_applied
from test_stream import Client, deposit, new_id

HEAD_BYTES = 24       # magic[8], format u32, fold u32, seq i64 (snapshot.c)
FOLD_OFFSET = 12
HASH_BYTES = 32       # BLAKE2b-256, libsodium's crypto_generichash


def data_dir(service):
    return service.args[service.args.index("--data-dir") + 1]


def snapshots(service):
    return sorted(glob.glob(os.path.join(data_dir(service), "snapshot-*.bin")))


def snapshot_seq(path):
    return int(os.path.basename(path)[len("snapshot-"):-len(".bin")])


def test_a_restart_loads_the_newest_snapshot_and_folds_only_the_tail():
    ledger = Ledger()
    accounting = ledger.accounting(extra=["--snapshot-every", "700"])
    last = ledger.append(3000, batch=100)
    wait_applied(accounting, last)
    harness.wait_until(lambda: snapshots(accounting), 20, what="a snapshot")
    assert len(snapshots(accounting)) <= 2
    accounting.stop_clean()     # a clean stop snapshots the last seq
    assert snapshot_seq(snapshots(accounting)[-1]) == last
    accounting.start()
    assert f"snapshot at seq {last}, then folded to seq {last}" in accounting.output()
    assert_matches_log(accounting, ledger)
    last = ledger.append(500, batch=100)
    wait_applied(accounting, last)
    assert_matches_log(accounting, ledger)
    #  Killed, it starts from the newest snapshot and folds the replica's tail.
    accounting.kill9()
    accounting.start()
    wait_applied(accounting, last)
    assert_matches_log(accounting, ledger)
    accounting.stop_clean()
    ledger.stream.stop_clean()


def rewrite(path, change):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    change(data)
    with open(path, "wb") as f:
        f.write(data)


def test_a_bad_checksum_or_another_fold_version_is_ignored_and_rebuild_ignores_all():
    ledger = Ledger()
    accounting = ledger.accounting(extra=["--snapshot-every", "0"])
    last = ledger.append(2000, batch=100)
    wait_applied(accounting, last)
    accounting.stop_clean()
    [newest] = snapshots(accounting)

    def flip(data):
        data[len(data) // 2] ^= 0x01
    rewrite(newest, flip)
    accounting.start()
    output = accounting.output()
    assert "fails its checksum: ignored" in output, output
    assert "snapshot at seq 0, then folded to seq 2000" in output, output
    assert_matches_log(accounting, ledger)
    accounting.stop_clean()

    #  Another fold's snapshot, its checksum right: ignored all the same.
    [newest] = [p for p in snapshots(accounting) if snapshot_seq(p) == last]

    def other_fold(data):
        fold = struct.unpack_from("<I", data, FOLD_OFFSET)[0]
        struct.pack_into("<I", data, FOLD_OFFSET, fold + 1)
        data[-HASH_BYTES:] = hashlib.blake2b(bytes(data[:-HASH_BYTES]),
                                             digest_size=HASH_BYTES).digest()
    rewrite(newest, other_fold)
    accounting.start()
    output = accounting.output()
    assert "is of another fold version: ignored" in output, output
    assert_matches_log(accounting, ledger)
    accounting.stop_clean()

    #  --rebuild: snapshots are discarded with the replica, not loaded.
    accounting.args += ["--rebuild"]
    accounting.start()
    output = accounting.output()
    assert "discarded the replica and snapshots" in output, output
    wait_applied(accounting, last)
    assert_matches_log(accounting, ledger)
    accounting.stop_clean()
    ledger.stream.stop_clean()


def test_kill_9_while_snapshots_are_written_starts_right():
    ledger = Ledger()
    accounting = ledger.accounting(extra=["--snapshot-every", "200"])
    rng = random.Random(5)
    for _ in range(6):
        ledger.append(1500, batch=50)
        time.sleep(rng.random() * 0.3)
        accounting.kill9()
        accounting.start()
    last = ledger.sent
    ledger.wait_committed(last)
    wait_applied(accounting, last)
    assert_matches_log(accounting, ledger)
    accounting.kill9()
    #  A cut write left behind is removed at start.
    cut = os.path.join(data_dir(accounting), "snapshot-%020d.tmp" % last)
    with open(cut, "wb") as f:
        f.write(b"LDGSNAP\n" + b"\0" * 100)
    accounting.start()
    assert not os.path.exists(cut)
    assert_matches_log(accounting, ledger)
    accounting.stop_clean()
    ledger.stream.stop_clean()


WINDOW = 50   # the stream's --dedupe-window in these tests


def start_stream(endpoints, stream_dir):
    return harness.start_stream(endpoints, stream_dir, extra=[
        "--dedupe-window", str(WINDOW), "--segment-bytes", "4096"])


def scanned(output, snapshot_seq, last):
    """The first seq the stream's last start scanned, from its log line;
    it must cover the dedupe window and skip what the snapshot holds."""
    found = re.findall(r"versions from the snapshot at seq (\d+), then scanned from seq "
                       r"(\d+) to (\d+)", output)
    assert found, output
    seq, first, to = (int(x) for x in found[-1])
    assert seq == snapshot_seq and to == last, found[-1]
    return first


def fill(client, accounts=10, per_account=60):
    """accounts * per_account deposits, one request each; returns the ids."""
    ids = []
    for n in range(per_account):
        for a in range(accounts):
            ids.append(new_id())
            assert client.append(deposit(ids[-1], account=f"v-{a}"))["status"] == "ok"
    return ids


def test_the_stream_restarts_from_its_versions_snapshot_and_the_dedupe_window():
    endpoints = harness.Endpoints()
    stream_dir = harness.tmpdir("snap-stream-")
    stream = start_stream(endpoints, stream_dir)
    client = Client(endpoints)
    ids = fill(client)                                  # seqs 1..600, v-N at version 60
    client.close()
    stream.stop_clean()
    assert os.path.exists(os.path.join(stream_dir, "snapshot-%020d.bin" % 600))
    stream.start()
    assert 1 < scanned(stream.output(), 600, 600) <= 600 - WINDOW + 1
    client = Client(endpoints)
    conflict = client.append(deposit(new_id(), account="v-4", expect={"v-4": 59}))
    assert conflict == {"status": "conflict", "versions": {"v-4": 60}}, conflict
    assert client.append(deposit(new_id(), account="v-3", expect={"v-3": 60}))["status"] == "ok"
    assert client.append(deposit(ids[580]))["status"] == "duplicate"   # in the window
    #  Killed after more events: the snapshot, then the versions after it.
    for _ in range(9):
        assert client.append(deposit(new_id(), account="v-3"))["status"] == "ok"
    client.close()
    stream.kill9()
    stream.start()
    assert 1 < scanned(stream.output(), 600, 610) <= 610 - WINDOW + 1
    client = Client(endpoints)
    conflict = client.append(deposit(new_id(), account="v-3", expect={"v-3": 1}))
    assert conflict == {"status": "conflict", "versions": {"v-3": 70}}, conflict
    client.close()
    stream.stop_clean()


def test_a_stream_snapshot_of_another_log_or_with_a_bad_checksum_is_ignored():
    endpoints = harness.Endpoints()
    first_dir, other_dir = harness.tmpdir("snap-first-"), harness.tmpdir("snap-other-")
    stream = start_stream(endpoints, first_dir)
    client = Client(endpoints)
    fill(client, accounts=2, per_account=100)           # 200 events, v-0 and v-1 at 100
    client.close()
    stream.stop_clean()
    #  Another log of 300 events with the first one's snapshot beside it.
    stream = start_stream(endpoints, other_dir)
    client = Client(endpoints)
    fill(client, accounts=3, per_account=100)           # v-0, v-1, v-2 at 100
    assert client.append(deposit(new_id(), account="v-0"))["status"] == "ok"
    client.close()
    stream.kill9()                                      # no snapshot of its own
    for name in os.listdir(other_dir):
        if name.startswith("snapshot-"):
            os.unlink(os.path.join(other_dir, name))
    snapshot = "snapshot-%020d.bin" % 200
    with open(os.path.join(first_dir, snapshot), "rb") as f:
        data = f.read()
    with open(os.path.join(other_dir, snapshot), "wb") as f:
        f.write(data)
    stream = start_stream(endpoints, other_dir)
    output = stream.output()
    assert "snapshot at seq 200" in output and "does not match its log" in output, output
    assert scanned(output, 0, 301) > 1   # the window; the versions from seq 1 again
    client = Client(endpoints)
    conflict = client.append(deposit(new_id(), account="v-0", expect={"v-0": 1}))
    assert conflict == {"status": "conflict", "versions": {"v-0": 101}}, conflict
    client.close()
    stream.stop_clean()
    #  Its own snapshot, a byte flipped: ignored, the whole log scanned.
    own = os.path.join(other_dir, "snapshot-%020d.bin" % 301)
    rewrite(own, lambda data: data.__setitem__(len(data) // 2, data[len(data) // 2] ^ 1))
    stream.start()
    assert "fails its checksum: ignored" in stream.output(), stream.output()
    client = Client(endpoints)
    conflict = client.append(deposit(new_id(), account="v-2", expect={"v-2": 1}))
    assert conflict == {"status": "conflict", "versions": {"v-2": 100}}, conflict
    client.close()
    stream.stop_clean()


if __name__ == "__main__":
    harness.run_tests([
        test_a_restart_loads_the_newest_snapshot_and_folds_only_the_tail,
        test_a_bad_checksum_or_another_fold_version_is_ignored_and_rebuild_ignores_all,
        test_kill_9_while_snapshots_are_written_starts_right,
        test_the_stream_restarts_from_its_versions_snapshot_and_the_dedupe_window,
        test_a_stream_snapshot_of_another_log_or_with_a_bad_checksum_is_ignored,
    ])
