"""Invariants of the whole ledger under a seeded random workload with
crashes: deposits, withdrawals, transfers, batches, repeated keys (same
body, other body) and bad commands from concurrent clients against two
transaction and three accounting instances, while the stream, a
transaction or an accounting instance is killed (-9) and restarted at
random points. Everything is compared with a reference model: the fold of
the stream's log and the bookkeeping of what the clients were told.
The accounts are in three currencies, with limits of their own (one
unlimited) or the service's: per currency the balances sum to the net
deposits acknowledged, no balance goes below its own limit, money never
crosses currencies (such transfers are refused 422).
Holds (two-phase transfers) are made, posted in part or whole, voided
and left to expire (some with a timeout) on both instances: per currency
the unresolved holds sum to the pending debits every accounting instance
shows, no available balance (balance - pending debits) goes below its
limit, and every hold is resolved at most once (expiries included).

The seed is printed; LEDGER_SEED=<n> replays the same commands and crash
schedule (thread interleaving still varies). LEDGER_STRESS=1 runs longer.
"""

import json
import os
import random
import threading
import time

import harness
from harness import get_json
from test_faults import (HTTP_TIMEOUT_S, JOIN_TIMEOUT_S, RESOLVE_TIMEOUT_S,
                         STRESS, SUMMARY, Cluster, answered_seqs, event_ids,
                         note)

OVERDRAFT_LIMIT = 300
ACCOUNTS = [f"inv-{i}" for i in range(6)]
# Opened explicitly before the workload: currency and own limit (None:
# unlimited). inv-5 is opened implicitly by money: XXX, --overdraft-limit.
OPENED = {"inv-0": ("EUR", None), "inv-1": ("EUR", 0), "inv-2": ("EUR", 1000),
          "inv-3": ("USD", 50), "inv-4": ("USD", None)}
CURRENCY = {**{a: c for a, (c, _) in OPENED.items()}, "inv-5": "XXX"}
LIMIT = {**{a: limit for a, (_, limit) in OPENED.items()}, "inv-5": OVERDRAFT_LIMIT}
AMOUNT_MAX = 500
UNKNOWN = (None, 503)       # no answer, or 503: may or may not have landed
RESOLUTIONS = ("transfer_posted", "transfer_voided", "transfer_expired")
HOLD_TIMEOUTS_MS = (None, None, 300, 3000)  # None: the hold waits to be posted or voided


class Client(threading.Thread):
    """One seeded client. ops: key -> {path, body, status, answer, kind}."""

    def __init__(self, cluster, seed, index, stopping, holds):
        super().__init__()
        self.holds = holds      # shared: (hold id, amount) of every 201 hold
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.index = index
        self.stopping = stopping
        self.ops = {}
        self.replays = []       # (key, first answer, status, answer) of same-key resends
        self.count = 0

    def _command(self):
        rng = self.rng
        a, b = rng.sample(ACCOUNTS, 2)
        amount = rng.randint(1, AMOUNT_MAX)
        kind = rng.choice(["deposit", "withdraw", "transfer", "hold"])
        if kind == "deposit":
            return {"account": a, "amount": amount}
        if kind == "withdraw":
            return {"account": a, "amount": -amount}
        if kind == "hold":
            timeout_ms = rng.choice(HOLD_TIMEOUTS_MS)
            return {"from": a, "to": b, "amount": amount, "pending": True,
                    **({"timeout_ms": timeout_ms} if timeout_ms else {})}
        return {"from": a, "to": b, "amount": amount}

    def _next(self):
        """(kind, path, body, key)."""
        rng = self.rng
        key = f"c{self.index}-{self.count}"
        self.count += 1
        roll = rng.random()
        done = [k for k, op in self.ops.items() if op["status"] == 201]
        if 0.27 <= roll < 0.37 and self.holds:
            hold_id, amount = rng.choice(self.holds)
            if rng.random() < 0.3:
                return "new", f"/transfers/{hold_id}/void", {}, key
            body = {} if rng.random() < 0.5 else {"amount": rng.randint(1, amount)}
            return "new", f"/transfers/{hold_id}/post", body, key
        # Resent with another body: those with an amount to change.
        changeable = [k for k in done if "amount" in (
            self.ops[k]["body"]["commands"][0] if self.ops[k]["path"] == "/batch"
            else self.ops[k]["body"])]
        if roll < 0.05 and done:
            old = self.ops[rng.choice(done)]
            return "same-key-same-body", old["path"], old["body"], old["key"]
        if roll < 0.10 and changeable:
            old = self.ops[rng.choice(changeable)]
            other = json.loads(json.dumps(old["body"]))
            target = other["commands"][0] if old["path"] == "/batch" else other
            target["amount"] += 1 if target["amount"] > 0 else -1
            return "same-key-other-body", old["path"], other, old["key"]
        if roll < 0.15:
            body = rng.choice([{"account": "inv-0", "amount": 0},
                               {"account": "bad id", "amount": 5},
                               {"from": "inv-0", "to": "inv-0", "amount": 5},
                               {"account": "inv-0", "amount": 1.5},
                               {"commands": []}])
            path = "/batch" if "commands" in body else \
                "/transfers" if "from" in body else "/transactions"
            return "bad", path, body, key
        if roll < 0.27:
            commands = [self._command() for _ in range(rng.randint(2, 4))]
            return "new", "/batch", {"commands": commands}, key
        body = self._command()
        return "new", "/transfers" if "from" in body else "/transactions", body, key

    def run(self):
        while not self.stopping.is_set():
            kind, path, body, key = self._next()
            tx = self.rng.choice(self.cluster.txs)
            status, answer = self.cluster.post(path, body, key, tx)
            if kind == "new" or kind == "bad":
                self.ops[key] = {"key": key, "path": path, "body": body, "status": status,
                                 "answer": answer, "kind": kind}
                if status == 201:
                    note_holds(self.holds, path, answer)
            else:
                self.replays.append((kind, self.ops[key], status, answer))
            if status in UNKNOWN:
                time.sleep(0.05)


def note_holds(holds, path, answer):
    """The holds a 201 made, for later posts and voids."""
    for result in answer["results"] if path == "/batch" else [answer]:
        if result["type"] == "transfer_pending":
            holds.append((result["id"], result["amount"]))


def command_list(path, body):
    return body["commands"] if path == "/batch" else [body]


def resolve(cluster, ops):
    """Retries unknown answers with the same key and body until definitive."""
    deadline = time.monotonic() + RESOLVE_TIMEOUT_S
    rng = random.Random(2)
    for op in ops:
        while op["status"] in UNKNOWN:
            assert time.monotonic() < deadline, f"{op['key']} stays unanswered: {op}"
            op["retried"] = True
            op["status"], op["answer"] = cluster.post_definitive(
                op["path"], op["body"], op["key"], rng.choice(cluster.txs), timeout_s=5)


def deltas(path, body):
    """Net change of each currency's total by a command (transfers: 0)."""
    commands = command_list(path, body)
    net = {}
    for c in commands:
        if "account" in c:
            net[CURRENCY[c["account"]]] = net.get(CURRENCY[c["account"]], 0) + c["amount"]
    return net


def check_answer_against_log(op, by_id, states_at):
    """A 201's events are in the log at its seqs with its content, and the
    balances it reports are the fold's balances right after each event."""
    seqs = answered_seqs(op["path"], op["answer"])
    assert sorted(seqs) == sorted(event_ids(op["key"], op["path"], op["body"])), op
    commands = command_list(op["path"], op["body"])
    results = op["answer"]["results"] if op["path"] == "/batch" else [op["answer"]]
    for command, result in zip(commands, results):
        ev = by_id[result["id"]]
        assert ev["seq"] == result["seq"] and ev["ts"] == result["ts"], (ev, result)
        assert ev["type"] == result["type"] and ev["amount"] == result["amount"], (ev, result)
        state = states_at[ev["seq"]]
        if ev["type"] in RESOLUTIONS:
            action = op["path"].rsplit("/", 1)[1]
            assert (ev["type"], ev["pending_id"]) == \
                (f"transfer_{action}ed", op["path"].split("/")[2]), (ev, op)
            assert "amount" not in command or ev["amount"] == command["amount"], (ev, op)
            assert result["balances"] == {ev["from"]: state[ev["from"]],
                                          ev["to"]: state[ev["to"]]}, (ev, result)
            continue
        assert ev["amount"] == abs(command["amount"]), (ev, command)
        if command.get("pending"):
            assert (ev["type"], ev["from"], ev["to"]) == \
                ("transfer_pending", command["from"], command["to"]), (ev, command)
            assert ("timeout_at" in ev) == ("timeout_ms" in command), (ev, command)
            assert result["balances"] == {command["from"]: state[command["from"]],
                                          command["to"]: state[command["to"]]}, (ev, result)
        elif "from" in command:
            assert (ev["type"], ev["from"], ev["to"]) == \
                ("transferred", command["from"], command["to"]), (ev, command)
            assert result["balances"] == {command["from"]: state[command["from"]],
                                          command["to"]: state[command["to"]]}, (ev, result)
        else:
            want = "deposited" if command["amount"] > 0 else "withdrawn"
            assert (ev["type"], ev["account"]) == (want, command["account"]), (ev, command)
            assert result["balance"] == state[command["account"]], (ev, result)


def fold_checked(events):
    """Balances after each seq ({seq: {account: balance}}, sparse copies are
    too big: the touched accounts only), asserting each account's own
    floor (none when unlimited) under its pending debits, that money stays
    in its currency and that every hold resolves at most once. Returns
    the balances, the states and the holds ({id: hold})."""
    balances, states_at, currency, limit = {}, {}, {}, {}
    holds, pending = {}, {}  # pending: account -> its unresolved holds' sum
    for ev in events:
        if ev["type"] in ("account_opened", "account_updated"):
            if ev["type"] == "account_opened":
                assert ev["account"] not in currency, f"{ev['account']} opened twice"
                currency[ev["account"]] = ev["currency"]
            if "overdraft_limit" in ev:
                limit[ev["account"]] = ev["overdraft_limit"]
            balances.setdefault(ev["account"], 0)
            states_at[ev["seq"]] = {ev["account"]: balances[ev["account"]]}
            continue
        for account in (ev.get("from"), ev.get("to"), ev.get("account")):
            if account:
                assert currency.setdefault(account, ev["currency"]) == ev["currency"], \
                    f"seq {ev['seq']} moves {ev['currency']} of a {currency[account]} account"
                limit.setdefault(account, OVERDRAFT_LIMIT)
        if ev["type"] == "transfer_pending":
            assert ev["id"] not in holds, f"hold {ev['id']} made twice"
            holds[ev["id"]] = {**ev, "state": "pending"}
            pending[ev["from"]] = pending.get(ev["from"], 0) + ev["amount"]
            balances.setdefault(ev["from"], 0)
            balances.setdefault(ev["to"], 0)
            touched = (ev["from"], ev["to"])
        elif ev["type"] in RESOLUTIONS:
            hold = holds.get(ev["pending_id"])
            assert hold, f"seq {ev['seq']} resolves hold {ev['pending_id']}, never made"
            assert hold["state"] == "pending", \
                f"seq {ev['seq']} resolves hold {ev['pending_id']} again ({hold['state']})"
            assert (ev["from"], ev["to"], ev["currency"]) == \
                (hold["from"], hold["to"], hold["currency"]), (ev, hold)
            if ev["type"] == "transfer_posted":
                assert 1 <= ev["amount"] <= hold["amount"], (ev, hold)
                balances[ev["from"]] -= ev["amount"]
                balances[ev["to"]] += ev["amount"]
            else:
                assert ev["amount"] == hold["amount"], (ev, hold)
            if ev["type"] == "transfer_expired":
                assert ev["id"] == hold["id"] + ".expired", ev
                assert "timeout_at" in hold and ev["ts"] >= hold["timeout_at"], (ev, hold)
            hold["state"] = ev["type"][len("transfer_"):]
            pending[ev["from"]] -= hold["amount"]
            touched = (ev["from"], ev["to"])
        elif ev["type"] == "transferred":
            balances[ev["from"]] = balances.get(ev["from"], 0) - ev["amount"]
            balances[ev["to"]] = balances.get(ev["to"], 0) + ev["amount"]
            touched = (ev["from"], ev["to"])
        else:
            sign = 1 if ev["type"] == "deposited" else -1
            balances[ev["account"]] = balances.get(ev["account"], 0) + sign * ev["amount"]
            touched = (ev["account"],)
        for account in touched:
            available = balances[account] - pending.get(account, 0)
            assert limit[account] is None or available >= -limit[account], \
                f"{account} available {available} after seq {ev['seq']}"
        states_at[ev["seq"]] = {a: balances[a] for a in touched}
    return balances, states_at, holds


def check_reader_against_prefix(cluster, rng):
    """While running: an instance's answer for an account equals the fold
    of the log up to the seq the instance says it has applied."""
    acc = rng.choice([a for a in cluster.accs if a.alive()])
    account = rng.choice(ACCOUNTS)
    try:
        status, body = get_json(f"{acc.url}/accounts/{account}", timeout=HTTP_TIMEOUT_S)
    except OSError:
        return
    if status != 200:
        assert status == 404, (status, body)
        return
    events = cluster.events_prefix()
    assert body["applied_seq"] <= len(events), (body, len(events))
    state = harness.fold(events, body["applied_seq"]).get(account)
    assert [body["balance"], body["version"], body["last_seq"]] == state, (body, state)
    assert body["currency"] == CURRENCY[account], body
    assert body["overdraft_limit"] == LIMIT[account], body
    note("reader answers checked against the log mid-run", 1)


def wait_for_due_holds(cluster):
    """Until no hold with a timeout is left pending in the log (the
    transaction instances expire them), so the log is quiescent."""
    def settled():
        holds = {}
        for ev in cluster.events_prefix():
            if ev["type"] == "transfer_pending" and "timeout_at" in ev:
                holds[ev["id"]] = True
            elif ev["type"] in RESOLUTIONS:
                holds.pop(ev["pending_id"], None)
        return not holds
    harness.wait_until(settled, RESOLVE_TIMEOUT_S, interval_s=0.1, what="due holds expired")


def check_pending(cluster, holds):
    """Every accounting instance shows each account's pending debits and
    credits as the unresolved holds sum them; per currency the pending
    debits are the unresolved holds' sum."""
    debits, credits, per_currency = {}, {}, {}
    for hold in holds.values():
        if hold["state"] == "pending":
            debits[hold["from"]] = debits.get(hold["from"], 0) + hold["amount"]
            credits[hold["to"]] = credits.get(hold["to"], 0) + hold["amount"]
            per_currency[hold["currency"]] = per_currency.get(hold["currency"], 0) + \
                hold["amount"]
    for acc in cluster.accs:
        shown = {}
        for account in ACCOUNTS:
            status, body = get_json(f"{acc.url}/accounts/{account}", timeout=HTTP_TIMEOUT_S)
            assert status == 200, (status, body)
            assert body["pending_debits"] == debits.get(account, 0), (acc.url, body)
            assert body["pending_credits"] == credits.get(account, 0), (acc.url, body)
            want = None if LIMIT[account] is None else \
                body["balance"] - body["pending_debits"] + LIMIT[account]
            assert body["available"] == want, (acc.url, body)
            shown[CURRENCY[account]] = shown.get(CURRENCY[account], 0) + body["pending_debits"]
        assert {c: v for c, v in shown.items() if v} == per_currency, (shown, per_currency)


def test_random_workload_with_crashes_keeps_every_invariant():
    seed = int(os.environ.get("LEDGER_SEED") or random.randrange(1 << 30))
    print(f"seed {seed} (LEDGER_SEED={seed} replays it)", flush=True)
    rng = random.Random(seed)
    crashes = 40 if STRESS else 10
    cluster = Cluster(transactions=2, accountings=3,
                      tx_extra=["--overdraft-limit", str(OVERDRAFT_LIMIT)],
                      acc_extra=["--overdraft-limit", str(OVERDRAFT_LIMIT)])
    for account, (currency, limit) in OPENED.items():
        status, answer = cluster.post_definitive(
            "/accounts", {"account": account, "currency": currency, "overdraft_limit": limit},
            f"open-{account}", cluster.txs[0])
        assert status == 201, (status, answer)
    # inv-5 opened implicitly by money, in XXX (else the first transfer to
    # it would open it in its payer's currency).
    status, answer = cluster.post_definitive("/transactions", {"account": "inv-5", "amount": 1},
                                             "open-inv-5", cluster.txs[0])
    assert status == 201 and answer["currency"] == "XXX", (status, answer)
    stopping = threading.Event()
    holds = []
    clients = [Client(cluster, rng.random(), i, stopping, holds) for i in range(6)]
    for client in clients:
        client.start()
    try:
        for _ in range(crashes):
            for _ in range(rng.randint(1, 4)):
                time.sleep(rng.uniform(0.05, 0.3))
                check_reader_against_prefix(cluster, rng)
            victim = rng.choice([cluster.stream] + cluster.txs + cluster.accs)
            victim.kill9()
            time.sleep(rng.uniform(0.0, 0.3))
            victim.start()
            note("crashes injected and survived", 1)
    finally:
        stopping.set()
        for client in clients:
            client.join(JOIN_TIMEOUT_S)
            assert not client.is_alive(), "a client hangs"
    ops = [op for client in clients for op in client.ops.values()]
    resolve(cluster, ops)
    for op in ops:
        if op["status"] == 201:
            note_holds(holds, op["path"], op["answer"])
    wait_for_due_holds(cluster)
    events = cluster.converge()
    by_id = {}
    for ev in events:
        assert ev["id"] not in by_id, f"{ev['id']} is in the log twice"
        by_id[ev["id"]] = ev
    balances, states_at, folded_holds = fold_checked(events)

    statuses = {}
    acked_total = {"XXX": 1}  # open-inv-5
    for op in ops:
        statuses[op["status"]] = statuses.get(op["status"], 0) + 1
        ids = event_ids(op["key"], op["path"], op["body"])
        landed = [i in by_id for i in ids]
        assert all(landed) or not any(landed), f"{op['key']} landed in part"
        if op["kind"] == "bad":
            assert op["status"] in (400, 422) and not any(landed), op
        elif op["status"] == 201:
            check_answer_against_log(op, by_id, states_at)
            for currency, net in deltas(op["path"], op["body"]).items():
                acked_total[currency] = acked_total.get(currency, 0) + net
        else:
            # A refusal is definitive: a landed command retried by key is
            # answered with its original 201, never refused. (404: a post
            # or void of a hold the instance had not folded yet.)
            assert op["status"] in (409, 422, 404) and not any(landed), op
            assert op["status"] != 404 or "/transfers/" in op["path"], op
    want_ids = {i for op in ops if op["status"] == 201
                for i in event_ids(op["key"], op["path"], op["body"])}
    want_ids |= {f"open-{account}" for account in [*OPENED, "inv-5"]}
    # Expiries are the transaction service's own (checked in fold_checked).
    want_ids |= {ev["id"] for ev in events if ev["type"] == "transfer_expired"}
    assert set(by_id) == want_ids, sorted(set(by_id) ^ want_ids)[:10]
    totals = {}
    for account, balance in balances.items():
        totals[CURRENCY[account]] = totals.get(CURRENCY[account], 0) + balance
    assert {c: t for c, t in totals.items() if t} == \
        {c: t for c, t in acked_total.items() if t}, (totals, acked_total)
    unlimited_negative = [a for a, b in balances.items() if LIMIT[a] is None and b < 0]
    note("unlimited accounts that went below zero", len(unlimited_negative))
    check_pending(cluster, folded_holds)
    note("holds made", len(folded_holds))
    for state in ("posted", "voided", "expired", "pending"):
        note(f"holds {state}", sum(1 for h in folded_holds.values() if h["state"] == state))
    for acc in cluster.accs:
        status, stats = get_json(f"{acc.url}/stats")
        assert {c: v["total_balance"] for c, v in stats["currencies"].items() if
                v["total_balance"]} == {c: t for c, t in totals.items() if t}, stats

    replays = [r for client in clients for r in client.replays]
    for kind, op, status, answer in replays:
        if status in UNKNOWN:
            continue
        if kind == "same-key-other-body":
            assert status == 422, (op, status, answer)
        else:
            assert status == 201 and answer == op["answer"], (op, status, answer)

    print(f"statuses {statuses}, {len(events)} events, {len(replays)} resends")
    note("commands acknowledged and verified", statuses.get(201, 0))
    note("commands answered 201 after a retry", sum(
        1 for op in ops if op.get("retried") and op["status"] == 201))
    assert statuses.get(201, 0) > 0 and statuses.get(422, 0) > 0, statuses
    cluster.stop()


if __name__ == "__main__":
    import atexit
    atexit.register(lambda: print("SUMMARY " + json.dumps(SUMMARY), flush=True))
    harness.run_tests([test_random_workload_with_crashes_keeps_every_invariant])
