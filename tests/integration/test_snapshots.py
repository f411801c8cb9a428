"""Integration tests for accounting's snapshots over the real binaries.
Claims: a restart loads the newest snapshot and folds only what follows
it, to the reference fold; a snapshot that fails its checksum, or one of
another fold version, is ignored (and the answers stay right); --rebuild
ignores and discards snapshots; kill -9 while snapshots are being written
leaves a start that removes the cut temp file and answers right. The
same for transaction's write model (--data-dir): a restart folds only the
log after its snapshot and still replays a key from the stored events;
its snapshots are removed once the stream's log is not the one they
folded.
"""

import glob
import hashlib
import os
import random
import re
import shutil
import struct
import time

import harness
from test_accounting import Ledger, assert_matches_log, wait_applied
from test_stream import Client, deposit, new_id
import test_transaction

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


# --------------------------------------------------------------- transaction

def tx_ledger(extra=()):
    data = harness.tmpdir("ledger-transaction-")
    return test_transaction.Ledger(accounting=False, tx_extra=["--data-dir", data, *extra])


def tx_applied(tx):
    return harness.get_json(tx.url + "/health")[1]["applied_seq"]


def fill_tx(ledger, accounts=20, per_account=30):
    """Deposits per_account times 10 on each of accounts: seq accounts * per_account."""
    commands = [{"account": f"t-{a}", "amount": 10}
                for _ in range(per_account) for a in range(accounts)]
    status, body, _ = ledger.post("/batch", {"commands": commands})
    assert status == 201, body
    return body["last_seq"]


def assert_tx_balances(ledger, accounts=20, balance=300):
    """Each account's balance, as a withdrawal of one more is refused and
    of all of it answers 0 (t-0 is spent by assert_tx_spends)."""
    for a in range(1, accounts, 7):
        status, body, _ = ledger.post("/transactions", {"account": f"t-{a}",
                                                        "amount": -(balance + 1)})
        assert status == 422, (a, status, body)


def test_transaction_restarts_from_its_snapshot_and_replays_a_key():
    ledger = tx_ledger(["--snapshot-every", "0"])
    tx = ledger.tx
    last = fill_tx(ledger)
    withdrawal = {"account": "t-0", "amount": -100}
    status, first, _ = ledger.post("/transactions", withdrawal, {"Idempotency-Key": "k-1"})
    assert status == 201, first
    tx.stop_clean()                     # a clean stop snapshots the last seq
    [newest] = snapshots(tx)
    assert snapshot_seq(newest) == last + 1
    tx.start()
    assert f"write model from the snapshot at seq {last + 1}" in tx.output(), tx.output()
    status, again, headers = ledger.post("/transactions", withdrawal, {"Idempotency-Key": "k-1"})
    assert (status, again, headers.get("idempotent-replayed")) == (201, first, "true")
    assert_tx_balances(ledger)
    status, body, _ = ledger.post("/transactions", {"account": "t-0", "amount": -200})
    assert status == 201 and body["balance"] == 0, (status, body)
    assert len(ledger.events()) == last + 2
    ledger.stop()


def test_a_transaction_snapshot_with_a_bad_checksum_or_another_fold_is_ignored():
    ledger = tx_ledger(["--snapshot-every", "0"])
    tx = ledger.tx
    last = fill_tx(ledger)
    tx.stop_clean()
    [newest] = snapshots(tx)

    def flip(data):
        data[len(data) // 2] ^= 0x01
    rewrite(newest, flip)
    tx.start()
    output = tx.output()
    assert "fails its checksum: ignored" in output, output
    assert "write model: no snapshot loaded; folding the stream's log from seq 1" in output
    harness.wait_until(lambda: tx_applied(tx) >= last, what="the fold from seq 1")
    assert_tx_balances(ledger)
    tx.stop_clean()

    def other_fold(data):
        fold = struct.unpack_from("<I", data, FOLD_OFFSET)[0]
        struct.pack_into("<I", data, FOLD_OFFSET, fold + 1)
        data[-HASH_BYTES:] = hashlib.blake2b(bytes(data[:-HASH_BYTES]),
                                             digest_size=HASH_BYTES).digest()
    [newest] = snapshots(tx)
    rewrite(newest, other_fold)
    tx.start()
    output = tx.output()
    assert "is of another fold version: ignored" in output, output
    harness.wait_until(lambda: tx_applied(tx) >= last, what="the fold from seq 1")
    assert_tx_balances(ledger)
    ledger.stop()


def test_kill_9_while_transaction_snapshots_are_written_starts_right():
    ledger = tx_ledger(["--snapshot-every", "100"])
    tx = ledger.tx
    rng = random.Random(9)
    last = 0
    for _ in range(5):
        last = fill_tx(ledger, per_account=6)
        time.sleep(rng.random() * 0.2)
        tx.kill9()
        tx.start()
    cut = os.path.join(data_dir(tx), "snapshot-%020d.tmp" % last)
    tx.kill9()
    with open(cut, "wb") as f:
        f.write(b"LDGSNAP\n" + b"\0" * 100)
    tx.start()
    assert not os.path.exists(cut)
    harness.wait_until(lambda: tx_applied(tx) >= last, what="the fold")
    assert_tx_balances(ledger, balance=300)
    ledger.stop()


def test_transaction_snapshots_of_another_log_are_removed():
    ledger = tx_ledger(["--snapshot-every", "0"])
    tx = ledger.tx
    fill_tx(ledger)
    tx.stop_clean()
    assert snapshots(tx)
    #  The stream starts again on an empty log: the snapshot is ahead of it.
    ledger.stream.stop_clean()
    shutil.rmtree(ledger.stream_dir)
    os.makedirs(ledger.stream_dir)
    ledger.stream.start()
    tx.start(wait=False)                # diverged: /health answers 503
    harness.wait_until(lambda: "removed them" in tx.output(), what="the snapshots removed")
    status, body = harness.get_json(tx.url + "/health")
    assert status == 503 and body.get("reason") == "diverged", (status, body)
    assert not snapshots(tx)
    tx.stop_clean()
    tx.start()
    assert "no snapshot loaded" in tx.output()
    status, body, _ = ledger.post("/transactions", {"account": "t-1", "amount": -1})
    assert status == 422, body  # the new log has no deposits
    fill_tx(ledger, accounts=2, per_account=1)
    ledger.stop()


if __name__ == "__main__":
    harness.run_tests([
        test_a_restart_loads_the_newest_snapshot_and_folds_only_the_tail,
        test_a_bad_checksum_or_another_fold_version_is_ignored_and_rebuild_ignores_all,
        test_kill_9_while_snapshots_are_written_starts_right,
        test_the_stream_restarts_from_its_versions_snapshot_and_the_dedupe_window,
        test_a_stream_snapshot_of_another_log_or_with_a_bad_checksum_is_ignored,
        test_transaction_restarts_from_its_snapshot_and_replays_a_key,
        test_a_transaction_snapshot_with_a_bad_checksum_or_another_fold_is_ignored,
        test_kill_9_while_transaction_snapshots_are_written_starts_right,
        test_transaction_snapshots_of_another_log_are_removed,
    ])
